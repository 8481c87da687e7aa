//! Google Cloud Storage end to end against fake-gcs-server: a put/get round trip through
//! render-pod's storage layer, then a whole `render-pod local` job whose scene, shards,
//! manifests and merged frames all live in `gs://` storage, compared byte for byte with the
//! same job on local files.
//!
//! Needs fake-gcs-server. Build it once with `e2e/gcs/build.sh` (the pinned upstream emulator
//! from the Go module proxy behind a small shim that adds the plain XML-API upload object_store
//! sends; into `e2e/gcs/bin/`), or point `$TESSERA_FAKE_GCS` at that binary. Without it
//! this test fails; it never skips silently. (It is compiled only with the `gcp` feature, which
//! is on by default.)
//!
//! object_store reaches the emulator the way its own tests do: a service-account file carrying
//! `gcs_base_url` (the emulator's address) and `disable_oauth: true` (no token exchange), named
//! by `GOOGLE_SERVICE_ACCOUNT`.
#![cfg(feature = "gcp")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use render_pod::storage::Storage;

const BIN: &str = env!("CARGO_BIN_EXE_render-pod");
const BUCKET: &str = "tessera";

fn fake_gcs_bin() -> PathBuf {
    let bin = std::env::var_os("TESSERA_FAKE_GCS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../e2e/gcs/bin/fake-gcs-server")
        });
    assert!(
        bin.is_file(),
        "fake-gcs-server is not built ({} is missing). Build it with\n\n    \
         e2e/gcs/build.sh\n\n(needs Go and the Go module proxy; or set TESSERA_FAKE_GCS to a \
         fake-gcs-server binary)",
        bin.display()
    );
    bin
}

/// Kills fake-gcs-server when the test ends, however it ends.
struct FakeGcs {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("render-pod-fake-gcs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start_fake_gcs() -> FakeGcs {
    let bin = fake_gcs_bin();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = TempDir::new("data");
    let child = Command::new(&bin)
        // In memory, plain HTTP; the XML API is routed by Host header, and object_store's is
        // `127.0.0.1:<port>` (its base URL), which is the default public host.
        .args(["-host", "127.0.0.1", "-port", &port.to_string()])
        // The working directory only catches anything it might write.
        .current_dir(&dir.0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut gcs = FakeGcs {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = gcs.child.try_wait().unwrap() {
            panic!("fake-gcs-server exited before it listened: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "fake-gcs-server did not listen on {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    gcs
}

/// Creates a bucket through the JSON API (object_store never creates one).
fn create_bucket(port: u16, bucket: &str) {
    let body = format!(r#"{{"name":"{bucket}"}}"#);
    let request = format!(
        "POST /storage/v1/b?project=tessera HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "creating bucket {bucket} failed:\n{response}"
    );
}

/// A service-account file that sends object_store to the emulator, without OAuth.
fn write_service_account(dir: &Path, port: u16) -> PathBuf {
    let path = dir.join("service-account.json");
    let json = serde_json::json!({
        "private_key": "unused",
        "private_key_id": "unused",
        "client_email": "tessera@fake-gcs.invalid",
        "gcs_base_url": format!("http://127.0.0.1:{port}"),
        "disable_oauth": true,
    });
    std::fs::write(&path, json.to_string()).unwrap();
    path
}

fn run(args: &[&str], service_account: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .env("GOOGLE_SERVICE_ACCOUNT", service_account)
        .output()
        .expect("spawn render-pod")
}

#[test]
fn gcs_round_trip_and_a_whole_local_job_through_fake_gcs_server() {
    let gcs = start_fake_gcs();
    create_bucket(gcs.port, BUCKET);
    let config = TempDir::new("config");
    let service_account = write_service_account(&config.0, gcs.port);
    // SAFETY: this test binary has this one test, and nothing else runs or reads the
    // environment while it is changed (before the first storage client exists).
    unsafe {
        std::env::set_var("GOOGLE_SERVICE_ACCOUNT", &service_account);
    }

    // Round trip through the storage layer (an object name that needs percent-encoding).
    let storage = Storage::new().unwrap();
    storage
        .put("gs://tessera/rt/hello world.bin", b"hello".to_vec())
        .unwrap();
    assert_eq!(
        storage.get("gs://tessera/rt/hello%20world.bin").unwrap(),
        b"hello"
    );
    // Overwriting replaces the object.
    storage
        .put("gs://tessera/rt/hello world.bin", b"again".to_vec())
        .unwrap();
    assert_eq!(
        storage.get("gs://tessera/rt/hello%20world.bin").unwrap(),
        b"again"
    );
    // A missing object is `None` (the merge relies on it to tell "render again" from errors).
    assert_eq!(
        storage.get_opt("gs://tessera/rt/missing.bin").unwrap(),
        None
    );

    // A bucket that does not exist is a storage error (retryable), not a panic.
    let err = storage.put("gs://no-such-bucket/x", vec![1]).unwrap_err();
    assert_eq!(
        err.exit_code(),
        tessera_shard::contract::exit::TRANSIENT,
        "{err}"
    );

    // A whole job: the scene from gs://, shards, manifests and frames to gs://.
    let scene = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenes/cbox.gltf");
    storage
        .put(
            "gs://tessera/scenes/cbox.gltf",
            std::fs::read(&scene).unwrap(),
        )
        .unwrap();
    let job = |scene: &str, out: &str| {
        run(
            &[
                "local",
                "--scene",
                scene,
                "--frames",
                "1",
                "--width",
                "16",
                "--height",
                "12",
                "--spp",
                "4",
                "--max-bounces",
                "2",
                "--tiles",
                "2x1",
                "--sample-splits",
                "2",
                "--out",
                out,
            ],
            &service_account,
        )
    };
    let o = job("gs://tessera/scenes/cbox.gltf", "gs://tessera/jobs/cbox");
    assert!(
        o.status.success(),
        "local job on gs:// failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let local = TempDir::new("local");
    let o = job(scene.to_str().unwrap(), local.0.to_str().unwrap());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for frame in ["frame_0001.exr", "frame_0001.png"] {
        let remote = storage
            .get(&format!("gs://tessera/jobs/cbox/{frame}"))
            .unwrap();
        assert_eq!(
            remote,
            std::fs::read(local.0.join(frame)).unwrap(),
            "{frame}: gs:// and local renders differ"
        );
    }
    let manifest = storage
        .get("gs://tessera/jobs/cbox/.shards/local/job-manifest.json")
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert!(manifest["frames"].is_array(), "{manifest}");
}
