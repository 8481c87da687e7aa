//! Shared by the storage emulator tests (`azurite.rs`, `fake_gcs.rs`): temp dirs, an emulator
//! process that dies with the test, and the checks every object store must pass.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use render_pod::storage::Storage;
use tessera_shard::contract::exit;

pub const BIN: &str = env!("CARGO_BIN_EXE_render-pod");

/// A directory removed when the test ends.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("render-pod-{name}-{}", std::process::id()));
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

/// An emulator process on a free local port, killed when the test ends, however it ends.
pub struct Emulator {
    child: Child,
    pub port: u16,
    _dir: TempDir,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Emulator {
    /// Starts `bin` with the arguments `args(port)` and waits until the port accepts.
    pub fn start(name: &str, bin: &Path, args: impl Fn(u16) -> Vec<String>) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = TempDir::new(&format!("{name}-data"));
        let child = Command::new(bin)
            .args(args(port))
            // The working directory only catches anything the emulator might write.
            .current_dir(&dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut emulator = Emulator {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = emulator.child.try_wait().unwrap() {
                panic!("{name} exited before it listened: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not listen on {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100)); // polling a child's port, bounded
        }
        emulator
    }
}

/// Put, get (an object name that needs percent-encoding), overwrite, a missing object, a
/// missing bucket — at `{base}` (`scheme://bucket`) and `{missing_bucket}`.
pub fn check_round_trip(storage: &Storage, base: &str, missing_bucket: &str) {
    storage
        .put(&format!("{base}/rt/hello world.bin"), b"hello".to_vec())
        .unwrap();
    assert_eq!(
        storage
            .get(&format!("{base}/rt/hello%20world.bin"))
            .unwrap(),
        b"hello"
    );
    storage
        .put(&format!("{base}/rt/hello world.bin"), b"again".to_vec())
        .unwrap();
    assert_eq!(
        storage
            .get(&format!("{base}/rt/hello%20world.bin"))
            .unwrap(),
        b"again"
    );
    // A missing object is `None` (the merge relies on it to tell "render again" from errors).
    assert_eq!(
        storage.get_opt(&format!("{base}/rt/missing.bin")).unwrap(),
        None
    );
    // A bucket that does not exist is a storage error (retryable), not a panic.
    let err = storage
        .put(&format!("{missing_bucket}/x"), vec![1])
        .unwrap_err();
    assert_eq!(err.exit_code(), exit::TRANSIENT, "{err}");
}

/// A whole `render-pod local` job whose scene, shards, manifests and frames live under
/// `{base}` gives the same bytes as the job on local files; an unknown scheme fails with
/// BAD_INPUT. `run` runs render-pod with the store's credentials in its environment.
pub fn check_whole_job(storage: &Storage, base: &str, run: &dyn Fn(&[&str]) -> Output) {
    let scene = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenes/cbox.gltf");
    let scene_url = format!("{base}/scenes/cbox.gltf");
    storage
        .put(&scene_url, std::fs::read(&scene).unwrap())
        .unwrap();
    let job = |scene: &str, out: &str| {
        run(&[
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
        ])
    };
    let out = format!("{base}/jobs/cbox");
    let o = job(&scene_url, &out);
    assert!(
        o.status.success(),
        "local job on {base} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let local = TempDir::new("local-job");
    let o = job(scene.to_str().unwrap(), local.0.to_str().unwrap());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for frame in ["frame_0001.exr", "frame_0001.png"] {
        let remote = storage.get(&format!("{out}/{frame}")).unwrap();
        assert_eq!(
            remote,
            std::fs::read(local.0.join(frame)).unwrap(),
            "{frame}: {base} and local renders differ"
        );
    }
    let manifest = storage
        .get(&format!("{out}/.shards/local/job-manifest.json"))
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert!(manifest["frames"].is_array(), "{manifest}");

    // An unknown scheme still fails the pod with BAD_INPUT and says what is supported.
    let o = job(scene.to_str().unwrap(), "ftp://host/out");
    assert_eq!(o.status.code(), Some(exit::BAD_INPUT));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("unsupported storage URL"), "{stderr}");
}

/// render-pod with `env` added to its environment.
pub fn render_pod(args: &[&str], env: &[(&str, String)]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("spawn render-pod")
}
