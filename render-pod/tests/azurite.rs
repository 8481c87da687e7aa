//! Azure Blob Storage end to end against the Azurite emulator: a put/get round trip through
//! render-pod's storage layer, then a whole `render-pod local` job whose scene, shards,
//! manifests and merged frames all live in `az://` storage, compared byte for byte with the
//! same job on local files.
//!
//! Needs Azurite. Install it once with `render-pod/tests/azurite.sh` (a pinned `npm install` into
//! `~/.cache/tessera/azurite`, or `$TESSERA_AZURITE_DIR`). Without it this test fails; it never
//! skips silently. (It is compiled only with the `azure` feature, which is on by default.)
#![cfg(feature = "azure")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use render_pod::storage::Storage;
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_render-pod");
/// Azurite's well-known development account (also object_store's emulator default).
const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const CONTAINER: &str = "tessera";

fn azurite_bin() -> PathBuf {
    let dir = std::env::var_os("TESSERA_AZURITE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is not set");
            Path::new(&home).join(".cache/tessera/azurite")
        });
    let bin = dir.join("node_modules/.bin/azurite-blob");
    assert!(
        bin.is_file(),
        "Azurite is not installed ({} is missing). Install it with\n\n    \
         render-pod/tests/azurite.sh\n\n(needs Node.js >= 18 and npm; set TESSERA_AZURITE_DIR to \
         install elsewhere)",
        bin.display()
    );
    bin
}

/// Kills Azurite when the test ends, however it ends.
struct Azurite {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("render-pod-azurite-{name}-{}", std::process::id()));
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

fn start_azurite() -> Azurite {
    let bin = azurite_bin();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = TempDir::new("data");
    let child = Command::new(&bin)
        .args([
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--silent",
        ])
        // In-memory persistence; the working directory only catches anything Azurite might write.
        .current_dir(&dir.0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e} (is Node.js installed?)",
                bin.display()
            )
        });
    let mut azurite = Azurite {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = azurite.child.try_wait().unwrap() {
            panic!("Azurite exited before it listened: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "Azurite did not listen on {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    azurite
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// RFC 1123 date (`Mon, 23 Nov 2026 14:10:14 GMT`) for `x-ms-date`.
fn http_date(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        months[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Creates a container with a Shared Key signed request (object_store never creates one).
fn create_container(port: u16, container: &str) {
    let date = http_date(SystemTime::now());
    let version = "2021-08-06";
    let path = format!("/{ACCOUNT}/{container}");
    let string_to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{ACCOUNT}{path}\nrestype:container"
    );
    let key = STANDARD.decode(KEY).unwrap();
    let signature = STANDARD.encode(hmac_sha256(&key, string_to_sign.as_bytes()));
    let request = format!(
        "PUT {path}?restype=container HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nx-ms-date: {date}\r\n\
         x-ms-version: {version}\r\nAuthorization: SharedKey {ACCOUNT}:{signature}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 201"),
        "creating container {container} failed:\n{response}"
    );
}

fn run(args: &[&str], azurite: &Azurite) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .env("AZURE_STORAGE_USE_EMULATOR", "true")
        .env(
            "AZURITE_BLOB_STORAGE_URL",
            format!("http://127.0.0.1:{}", azurite.port),
        )
        .output()
        .expect("spawn render-pod")
}

#[test]
fn azure_round_trip_and_a_whole_local_job_through_azurite() {
    let azurite = start_azurite();
    create_container(azurite.port, CONTAINER);
    // SAFETY: this test binary has this one test, and nothing else runs or reads the
    // environment while it is changed (before the first storage client exists).
    unsafe {
        std::env::set_var("AZURE_STORAGE_USE_EMULATOR", "true");
        std::env::set_var(
            "AZURITE_BLOB_STORAGE_URL",
            format!("http://127.0.0.1:{}", azurite.port),
        );
    }

    // Round trip through the storage layer, every Azure URL form to the same container.
    let storage = Storage::new().unwrap();
    storage
        .put("az://tessera/rt/hello world.bin", b"hello".to_vec())
        .unwrap();
    for url in [
        "az://tessera/rt/hello%20world.bin",
        "azure://tessera/rt/hello%20world.bin",
        "abfs://tessera/rt/hello%20world.bin",
    ] {
        assert_eq!(storage.get(url).unwrap(), b"hello", "{url}");
    }
    // A missing object is `None` (the merge relies on it to tell "render again" from errors).
    assert_eq!(
        storage.get_opt("az://tessera/rt/missing.bin").unwrap(),
        None
    );
    // A container that does not exist is a storage error (retryable), not a panic.
    let err = storage
        .put("az://no-such-container/x", vec![1])
        .unwrap_err();
    assert_eq!(
        err.exit_code(),
        tessera_shard::contract::exit::TRANSIENT,
        "{err}"
    );

    // A whole job: the scene from az://, shards, manifests and frames to az://.
    let scene = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenes/cbox.gltf");
    storage
        .put(
            "az://tessera/scenes/cbox.gltf",
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
            &azurite,
        )
    };
    let o = job("az://tessera/scenes/cbox.gltf", "az://tessera/jobs/cbox");
    assert!(
        o.status.success(),
        "local job on az:// failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let local = TempDir::new("local");
    let o = job(scene.to_str().unwrap(), local.0.to_str().unwrap());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for frame in ["frame_0001.exr", "frame_0001.png"] {
        let remote = storage
            .get(&format!("az://tessera/jobs/cbox/{frame}"))
            .unwrap();
        assert_eq!(
            remote,
            std::fs::read(local.0.join(frame)).unwrap(),
            "{frame}: az:// and local renders differ"
        );
    }
    let manifest = storage
        .get("az://tessera/jobs/cbox/.shards/local/job-manifest.json")
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert!(manifest["frames"].is_array(), "{manifest}");

    // An unknown scheme still fails the pod with BAD_INPUT and says what is supported.
    let o = job(scene.to_str().unwrap(), "ftp://host/out");
    assert_eq!(
        o.status.code(),
        Some(tessera_shard::contract::exit::BAD_INPUT)
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("unsupported storage URL"), "{stderr}");
}
