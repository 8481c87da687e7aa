//! The hostile-scene corpus (tests/hostile/, written by make_corpus.py): every file is refused
//! as bad input (exit 3) with a message that names the problem, within seconds and with
//! bounded memory, under an address-space limit, and without opening any file outside the
//! scene's directory (checked with strace: every path the process opened under the test's
//! root must resolve, symbolic links followed, inside the corpus directory).

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tessera_shard::contract::exit;

const BIN: &str = env!("CARGO_BIN_EXE_render-pod");

/// Address space the render pod gets: a load that tried to allocate what a hostile file
/// claims would fail here instead of swapping the machine.
const ADDRESS_SPACE: u64 = 4 << 30;
const MAX_RSS_BYTES: u64 = 2 << 30;
const MAX_SECONDS: f64 = 10.0;

/// (file, what the message must say)
const CASES: &[(&str, &str)] = &[
    (
        "escape-parent.gltf",
        "\"../secret.bin\" refused: it climbs out",
    ),
    (
        "escape-absolute-path.gltf",
        "\"/etc/passwd\" refused: it is an absolute path",
    ),
    (
        "escape-file-url.gltf",
        "\"file:///etc/passwd\" refused: it names a scheme",
    ),
    (
        "escape-other-bucket.gltf",
        "\"s3://other-tenant/scene.bin\" refused",
    ),
    ("escape-metadata-endpoint.gltf", "\"http://169.254.169.254/"),
    (
        "escape-encoded-dots.gltf",
        "\"%2e%2e/secret.bin\" refused: it climbs out",
    ),
    (
        "escape-backslash.gltf",
        "refused: it holds control characters or backslashes",
    ),
    (
        "escape-symlink.gltf",
        "\"link.bin\" refused: it leads out of the scene's directory through a symbolic link",
    ),
    ("escape-image.gltf", "\"../secret.png\" refused"),
    (
        "accessor-beyond-view.gltf",
        "accessor 0: 1000000 elements of 12 bytes from offset 0 do not fit in bufferView 0",
    ),
    (
        "accessor-offset-overflow.gltf",
        "from offset 9223372036854775808 do not fit",
    ),
    (
        "view-outside-buffer.gltf",
        "bufferView 0: bytes 1000+36 lie outside buffer 0",
    ),
    ("view-stride-huge.gltf", "byteStride"),
    (
        "sparse-expands-to-billions.gltf",
        "3000000000 exceeds the limit of 100000000 (sceneLimits.maxVertices",
    ),
    (
        "sparse-indices-short.gltf",
        "accessor 0: sparse indices do not fit in bufferView 1",
    ),
    ("position-wrong-type.gltf", "attributes[\"POSITION\"]"),
    (
        "normal-wrong-type.gltf",
        "(mesh 0 NORMAL) is Vec2 F32; expected [Vec3]",
    ),
    ("indices-float.gltf", "(mesh 0 indices) is Scalar F32"),
    (
        "color-wrong-type.gltf",
        "(mesh 0 COLOR) is Scalar F32; expected [Vec3, Vec4]",
    ),
    (
        "requires-unimplemented-extension.gltf",
        "requires KHR_draco_mesh_compression (extensionsRequired)",
    ),
    (
        "transmission-texture-missing.gltf",
        "transmissionTexture.index: Index out of bounds",
    ),
    (
        "skin-joint-out-of-range.gltf",
        "a vertex is weighted to joint 9 of a skin with 1 joint(s)",
    ),
    (
        "skin-inverse-binds-short.gltf",
        "skin 0: 1 inverse bind matrices for 2 joints",
    ),
    (
        "morph-target-wrong-type.gltf",
        "(mesh 0 morph target 0 POSITION) is Vec2 F32; expected [Vec3]",
    ),
    ("node-own-child.gltf", "node 1 is its own child"),
    ("node-cycle.gltf", "root node 1 is also a child of node 2"),
    (
        "node-unreachable-cycle.gltf",
        "is part of a cycle of parents",
    ),
    ("node-exponential-sharing.gltf", "has two parents"),
    ("triangles-over-budget.gltf", "(sceneLimits.maxTriangles"),
    (
        "instancing-over-budget.gltf",
        "120000000 exceeds the limit of 100000000 (sceneLimits.maxVertices",
    ),
    ("buffers-over-budget.gltf", "(sceneLimits.maxBufferBytes"),
    (
        "buffer-shorter-than-declared.gltf",
        "\"short.bin\" has 10 bytes, the file declares 36",
    ),
    ("data-uri-malformed.gltf", "buffer 0: malformed data URI"),
    (
        "image-png-claims-10-gigapixels.gltf",
        "image 0 is 100000x100000",
    ),
    (
        "image-jpeg-claims-4-gigapixels.gltf",
        "image 0 is 65000x65000",
    ),
    (
        "texture-reuse-over-budget.gltf",
        "(sceneLimits.maxTextureBytes)",
    ),
    ("keyframes-over-budget.gltf", "(sceneLimits.maxKeyframes"),
    ("gltf-version-1.gltf", "asset.version is \"1.0\""),
    // Extension values are kept (KHR_texture_transform on normal textures is read from them):
    // serde_json's recursion limit refuses the nesting before anything is built.
    ("json-nested-100k-deep.gltf", "recursion limit exceeded"),
    (
        "glb-missing-bin.glb",
        "buffer 0 refers to a missing GLB BIN chunk",
    ),
    ("glb-truncated.glb", "not a glTF 2.0 file"),
];

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile")
}

/// The test's root: `corpus/` (a copy of the corpus, plus a symbolic link out of it) and,
/// outside it, the files the hostile scenes try to reach.
fn stage(test: &str) -> PathBuf {
    let root =
        std::env::temp_dir().join(format!("render-pod-hostile-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("corpus");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(corpus()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(root.join("secret.bin"), [0u8; 64]).unwrap();
    std::fs::write(root.join("secret.png"), b"not a png").unwrap();
    std::os::unix::fs::symlink("../secret.bin", dir.join("link.bin")).unwrap();
    root
}

struct Run {
    code: Option<i32>,
    signal: Option<i32>,
    stderr: String,
    seconds: f64,
    max_rss_bytes: u64,
    opened: Vec<String>,
}

/// `render-pod local` on `scene` under strace and an address-space limit.
// The child is reaped by wait4 (for its rusage), which std's Child cannot see.
#[allow(clippy::zombie_processes)]
fn run(root: &Path, scene: &Path) -> Run {
    let trace = root.join(format!(
        "{}.strace",
        scene.file_name().unwrap().to_string_lossy()
    ));
    let stderr_file = root.join("stderr.txt");
    let started = Instant::now();
    let child = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=open,openat,openat2,creat", "-o"])
        .arg(&trace)
        .arg(BIN)
        .args(["local", "--scene"])
        .arg(scene)
        .args(["--width", "8", "--height", "8", "--spp", "1", "--out"])
        .arg(root.join("out"))
        .env("RUST_LOG", "warn")
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_file).unwrap())
        .spawn()
        .expect("strace runs (CI installs it; apt-get install strace)");
    let pid = child.id() as libc::pid_t;
    // Limit the traced process tree's address space (inherited by render-pod).
    let limit = libc::rlimit {
        rlim_cur: ADDRESS_SPACE,
        rlim_max: ADDRESS_SPACE,
    };
    // SAFETY: prlimit on our own child with a valid rlimit struct.
    unsafe { libc::prlimit(pid, libc::RLIMIT_AS, &limit, std::ptr::null_mut()) };
    // A watchdog kills a run that never ends; the wait itself blocks until the child exits.
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let finished = finished.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !finished.load(std::sync::atomic::Ordering::Relaxed) {
                if Instant::now() > deadline {
                    // SAFETY: signalling our own child, not yet reaped.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    return true;
                }
                std::thread::park_timeout(Duration::from_millis(100));
            }
            false
        })
    };
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child; status and usage are valid out-pointers.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4 on {}", scene.display());
    finished.store(true, std::sync::atomic::Ordering::Relaxed);
    watchdog.thread().unpark();
    assert!(
        !watchdog.join().unwrap(),
        "{} ran past 60 s and was killed",
        scene.display()
    );
    drop(child);
    let exit = std::process::ExitStatus::from_raw(status);
    let text = std::fs::read_to_string(&trace).unwrap_or_default();
    Run {
        code: exit.code(),
        signal: exit.signal(),
        stderr: std::fs::read_to_string(&stderr_file).unwrap_or_default(),
        seconds: started.elapsed().as_secs_f64(),
        max_rss_bytes: usage.ru_maxrss as u64 * 1024,
        opened: text.lines().filter_map(opened_path).collect(),
    }
}

/// The path of an `open*(…, "path", …)` line of strace's output.
fn opened_path(line: &str) -> Option<String> {
    let call = line.find("open")?;
    let start = call + line[call..].find('"')? + 1;
    let end = start + line[start..].find('"')?;
    Some(line[start..end].to_string())
}

#[test]
fn every_hostile_scene_is_refused_quickly_and_reaches_nothing_outside_its_directory() {
    let files: Vec<String> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".gltf") || name.ends_with(".glb"))
        .collect();
    for file in &files {
        assert!(
            CASES.iter().any(|(name, _)| name == file),
            "{file} is in the corpus but has no expected message here"
        );
    }
    assert!(CASES.len() >= 25, "the corpus covers at least 25 classes");
    let root = stage("corpus");
    let corpus_dir = std::fs::canonicalize(root.join("corpus")).unwrap();
    let root_real = std::fs::canonicalize(&root).unwrap();
    let mut failures = Vec::new();
    for (file, expected) in CASES {
        let run = run(&root, &root.join("corpus").join(file));
        let mut problems = Vec::new();
        if run.code != Some(exit::BAD_INPUT) {
            problems.push(format!(
                "exit {:?} (signal {:?}), expected {}",
                run.code,
                run.signal,
                exit::BAD_INPUT
            ));
        }
        if !run.stderr.contains(expected) {
            problems.push(format!("message lacks {expected:?}"));
        }
        if run.stderr.contains("panicked") {
            problems.push("panicked".into());
        }
        if run.seconds > MAX_SECONDS {
            problems.push(format!("took {:.1} s", run.seconds));
        }
        if run.max_rss_bytes > MAX_RSS_BYTES {
            problems.push(format!("peak RSS {} MiB", run.max_rss_bytes >> 20));
        }
        for path in &run.opened {
            let real = std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path));
            if real.starts_with(&root_real) && !real.starts_with(&corpus_dir) {
                problems.push(format!("opened {path} (-> {})", real.display()));
            }
        }
        if run.opened.is_empty() {
            problems.push("strace recorded no opens: the check proves nothing".into());
        }
        println!(
            "{file}: exit {:?}, {:.2} s, peak RSS {} MiB, {} opens",
            run.code,
            run.seconds,
            run.max_rss_bytes >> 20,
            run.opened.len()
        );
        if !problems.is_empty() {
            failures.push(format!(
                "{file}: {}\n  stderr: {}",
                problems.join("; "),
                run.stderr.trim().lines().last().unwrap_or("")
            ));
        }
    }
    std::fs::remove_dir_all(&root).unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_open_check_would_catch_a_read_through_a_link() {
    // The negative control: reading the link's target through strace shows up as an open that
    // resolves outside the corpus, so the check above is not vacuous.
    let root = stage("control");
    let trace = root.join("control.strace");
    let status = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=open,openat,openat2", "-o"])
        .arg(&trace)
        .arg("cat")
        .arg(root.join("corpus/link.bin"))
        .stdout(Stdio::null())
        .status()
        .expect("strace runs");
    assert!(status.success());
    let corpus_dir = std::fs::canonicalize(root.join("corpus")).unwrap();
    let escaped = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .filter_map(opened_path)
        .any(|path| {
            let real = std::fs::canonicalize(&path).unwrap_or_default();
            real.ends_with("secret.bin") && !real.starts_with(&corpus_dir)
        });
    std::fs::remove_dir_all(&root).unwrap();
    assert!(
        escaped,
        "a read through corpus/link.bin must be seen as leaving the corpus"
    );
}
