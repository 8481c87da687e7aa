//! The pod contract through the real binary: exit codes, local mode, `render` + `merge` with
//! shard verification, the termination log, and merge idempotence.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tessera_shard::contract::{
    CONTRACT_VERSION, ImageFormat, InvalidShards, JobManifest, MergeSpec, MergeStep,
    RenderSettings, ShardSpec, exit,
};
use tessera_shard::{AttemptMap, FrameList, IndexSet, PlanInput, ShardPlan};

const BIN: &str = env!("CARGO_BIN_EXE_render-pod");

fn cbox_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenes/cbox.gltf")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("render-pod-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Where a `render` that fails leaves its error (the pod's termination message).
fn termination_message_path() -> PathBuf {
    std::env::temp_dir().join(format!("render-pod-cli-termination-{}", std::process::id()))
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .env("TESSERA_TERMINATION_LOG", termination_message_path())
        .output()
        .expect("spawn render-pod")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The arguments of `render-pod local` of `scene` at 8×8, 1 spp, into `out`.
fn local_8x8_args<'a>(scene: &'a Path, out: &'a Path) -> Vec<&'a str> {
    vec![
        "local",
        "--scene",
        scene.to_str().unwrap(),
        "--width",
        "8",
        "--height",
        "8",
        "--spp",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]
}

/// `render-pod local` of `scene` at 8×8, 1 spp, into `out`, with `more` arguments.
fn local_8x8(scene: &Path, out: &Path, more: &[&str]) -> Output {
    let mut args = local_8x8_args(scene, out);
    args.extend(more);
    run(&args)
}

#[test]
fn bad_scenes_and_specs_exit_bad_input_with_a_clear_message() {
    let dir = temp_dir("bad");
    let garbage = dir.join("garbage.gltf");
    std::fs::write(&garbage, "{ this is not glTF").unwrap();
    let missing = dir.join("missing.gltf");
    let out = dir.join("out");
    for scene in [&garbage, &missing] {
        let o = local_8x8(scene, &out, &[]);
        assert_eq!(o.status.code(), Some(exit::BAD_INPUT), "{}", stderr(&o));
        assert!(stderr(&o).contains("bad scene"), "{}", stderr(&o));
    }
    let o = local_8x8(&cbox_path(), &out, &["--camera", "nope"]);
    assert_eq!(o.status.code(), Some(exit::BAD_INPUT));
    assert!(
        stderr(&o).contains("no camera named \"nope\""),
        "{}",
        stderr(&o)
    );
    let o = run(&["render", "--spec", "{not json"]);
    assert_eq!(o.status.code(), Some(exit::BAD_INPUT));
    assert!(stderr(&o).contains("spec JSON"), "{}", stderr(&o));
    // The operator fixture parses; its scene does not exist here.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shard/fixtures/shard-spec.json");
    let _ = std::fs::remove_file(termination_message_path());
    let o = run(&["render", "--spec-file", fixture.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(exit::BAD_INPUT), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("file:///data/scenes/cbox.gltf"),
        "{}",
        stderr(&o)
    );
    // The pod's termination message is the error itself, not a tail of the log.
    let message = std::fs::read_to_string(termination_message_path()).unwrap();
    assert!(
        message.starts_with("bad scene file:///data/scenes/cbox.gltf"),
        "{message}"
    );
    // Usage errors are clap's exit code 2.
    assert_eq!(run(&["render"]).status.code(), Some(exit::USAGE));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Environment maps that cannot be used fail as bad input before a GPU is opened, naming the
/// map and why: not an image, missing, a header claiming more pixels than the limit, a
/// negative strength.
#[test]
fn bad_environment_maps_exit_bad_input_with_a_clear_message() {
    let dir = temp_dir("bad-environment");
    let out = dir.join("out");
    let not_an_image = dir.join("sky.hdr");
    std::fs::write(&not_an_image, "P6 3 2 255 not a radiance file").unwrap();
    // A Radiance header claiming 100,000 × 100,000 pixels and no pixels at all.
    let huge = dir.join("huge.hdr");
    std::fs::write(
        &huge,
        "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 100000 +X 100000\n",
    )
    .unwrap();
    let missing = dir.join("missing.exr");
    for (map, message) in [
        (&not_an_image, "not a Radiance .hdr or OpenEXR image"),
        (&huge, "sceneLimits.maxImagePixels"),
        (&missing, "no such file or object"),
    ] {
        let o = local_8x8(
            &cbox_path(),
            &out,
            &["--environment", map.to_str().unwrap()],
        );
        assert_eq!(o.status.code(), Some(exit::BAD_INPUT), "{}", stderr(&o));
        let text = stderr(&o);
        assert!(
            text.contains("environment") && text.contains(message),
            "{map:?}: {text}"
        );
    }
    let sky = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenes/sky.hdr");
    let o = local_8x8(
        &cbox_path(),
        &out,
        &[
            "--environment",
            sky.to_str().unwrap(),
            "--environment-strength",
            "-2",
        ],
    );
    assert_eq!(o.status.code(), Some(exit::BAD_INPUT), "{}", stderr(&o));
    assert!(stderr(&o).contains("strength -2"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--aovs` writes the passes into the frame's EXR beside R, G, B, merged from tiles and sample
/// splits: depth and object IDs equal a whole-frame render's bit for bit.
#[test]
fn local_writes_compositing_passes_merged_across_tiles_and_splits() {
    let dir = temp_dir("aovs");
    let render = |name: &str, more: &[&str]| {
        let out = dir.join(name);
        let scene = cbox_path();
        let mut args = vec![
            "local",
            "--scene",
            scene.to_str().unwrap(),
            "--width",
            "8",
            "--height",
            "8",
            "--spp",
            "4",
            "--aovs",
            "depth,object-id,albedo",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(more);
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let bytes = std::fs::read(out.join("frame_0001.exr")).unwrap();
        let mut channels = render_pod::image_io::decode_exr_extra(&bytes).unwrap();
        channels.sort_by(|a, b| a.name.cmp(&b.name));
        channels
    };
    let whole = render("whole", &[]);
    let names: Vec<&str> = whole.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["Albedo.B", "Albedo.G", "Albedo.R", "Depth.Z", "IndexOB.X"]
    );
    let cut = render("cut", &["--tiles", "2x2", "--sample-splits", "2"]);
    for (a, b) in cut.iter().zip(&whole) {
        assert_eq!(a.name, b.name);
        if !a.name.starts_with("Albedo") {
            assert_eq!(a.values, b.values, "{}", a.name);
        }
    }
    let depth = &whole[3].values;
    // Inside the box 3-5 m away; where sample 0 left through the open front, 1e10.
    assert!(
        depth.iter().all(|&d| (d > 3.0 && d < 6.0) || d == 1e10),
        "{depth:?}"
    );
    assert!(depth.iter().filter(|&&d| d < 6.0).count() > 48, "{depth:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A white emissive quad, 1 × 2 units, sliding along x at one unit per frame (x = 0 at frame
/// 4) before a camera that sees 8 × 2 units at 64 × 16 pixels: 8 pixels per unit.
fn sliding_quad() -> serde_json::Value {
    use base64::Engine;
    let mut bin = Vec::new();
    for v in [
        -0.5f32, -1.0, 0.0, 0.5, -1.0, 0.0, 0.5, 1.0, 0.0, -0.5, 1.0, 0.0,
    ] {
        bin.extend(v.to_le_bytes());
    }
    for i in [0u16, 1, 2, 0, 2, 3] {
        bin.extend(i.to_le_bytes());
    }
    for v in [0.0f32, 8.0 / 24.0, -4.0, 0.0, 0.0, 4.0, 0.0, 0.0] {
        bin.extend(v.to_le_bytes());
    }
    let uri = format!(
        "data:application/octet-stream;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&bin)
    );
    serde_json::json!({
        "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0, 1]}],
        "nodes": [{"mesh": 0}, {"camera": 0, "translation": [0, 0, 2]}],
        "cameras": [{"type": "perspective", "perspective": {"yfov": 2.0 * 0.5f32.atan(),
            "znear": 0.01, "aspectRatio": 4.0}}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1, "material": 0}]}],
        "materials": [{"emissiveFactor": [1, 1, 1], "doubleSided": true,
            "pbrMetallicRoughness": {"baseColorFactor": [0, 0, 0, 1]}}],
        "animations": [{"samplers": [{"input": 2, "output": 3}],
            "channels": [{"sampler": 0, "target": {"node": 0, "path": "translation"}}]}],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": 4, "type": "VEC3",
             "min": [-0.5, -1, 0], "max": [0.5, 1, 0]},
            {"bufferView": 1, "componentType": 5123, "count": 6, "type": "SCALAR"},
            {"bufferView": 2, "componentType": 5126, "count": 2, "type": "SCALAR",
             "min": [0.0], "max": [8.0 / 24.0]},
            {"bufferView": 3, "componentType": 5126, "count": 2, "type": "VEC3"}
        ],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": 48},
            {"buffer": 0, "byteOffset": 48, "byteLength": 12},
            {"buffer": 0, "byteOffset": 60, "byteLength": 8},
            {"buffer": 0, "byteOffset": 68, "byteLength": 24}
        ],
        "buffers": [{"byteLength": 92, "uri": uri}]
    })
}

/// `--motion-blur 1` (a shutter of one frame) smears the sliding quad's edges over the unit
/// it travels (8 pixels) while keeping its light (the image mean); without it the edges stay
/// within a pixel or two. The same frame in 2 × 2 tiles and 2 sample splits equals the
/// whole-frame render bit for bit for tiles (each sample's time depends on its index alone).
#[test]
fn motion_blur_smears_a_moving_quad_over_its_path_and_keeps_tiles_bit_identical() {
    let dir = temp_dir("motion-blur");
    let scene = dir.join("sliding.gltf");
    std::fs::write(&scene, serde_json::to_vec(&sliding_quad()).unwrap()).unwrap();
    let render = |name: &str, more: &[&str]| {
        let out = dir.join(name);
        let mut args = vec![
            "local",
            "--scene",
            scene.to_str().unwrap(),
            "--frames",
            "4",
            "--width",
            "64",
            "--height",
            "16",
            "--spp",
            "64",
            "--max-bounces",
            "0",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(more);
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read(out.join("frame_0004.exr")).unwrap()
    };
    let image = |bytes: &[u8]| render_pod::image_io::decode_exr(bytes).unwrap();
    let still = image(&render("still", &[]));
    let blurred_bytes = render("blurred", &["--motion-blur", "1"]);
    let blurred = image(&blurred_bytes);
    // Partly covered pixels of the middle row: the edges' width.
    let partial = |img: &render_pod::image_io::RgbImage| {
        img.pixels[8 * 64..9 * 64]
            .iter()
            .filter(|p| p[0] > 0.05 && p[0] < 0.95)
            .count()
    };
    let (mean_still, mean_blurred) = (still.mean()[0], blurred.mean()[0]);
    eprintln!(
        "means {mean_still:.4} / {mean_blurred:.4}, partial pixels {} / {}",
        partial(&still),
        partial(&blurred)
    );
    assert!((mean_still - 0.125).abs() < 0.01, "{mean_still}");
    assert!(
        (mean_blurred - mean_still).abs() < 0.01,
        "{mean_blurred} vs {mean_still}"
    );
    assert!(
        partial(&still) <= 4,
        "still: {} partial pixels",
        partial(&still)
    );
    assert!(
        partial(&blurred) >= 12,
        "blurred: {} partial pixels",
        partial(&blurred)
    );
    let tiled = render("tiled", &["--motion-blur", "1", "--tiles", "2x2"]);
    assert!(tiled == blurred_bytes, "tiles changed the blurred frame");
    let split = image(&render(
        "split",
        &["--motion-blur", "1", "--sample-splits", "2"],
    ));
    for (a, b) in split.pixels.iter().zip(&blurred.pixels) {
        for c in 0..3 {
            assert!(
                (a[c] - b[c]).abs() <= 1e-6 * b[c].max(1.0),
                "{a:?} vs {b:?}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A scene that requires an extension render-pod does not implement is refused, naming it;
/// one that merely uses it renders, and every shard's manifest says what was left out.
#[test]
fn unimplemented_extensions_are_refused_when_required_and_reported_when_used() {
    let dir = temp_dir("extensions");
    let mut cbox: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cbox_path()).unwrap()).unwrap();
    let render = |doc: &serde_json::Value, name: &str| {
        let scene = dir.join(name);
        std::fs::write(&scene, serde_json::to_vec(doc).unwrap()).unwrap();
        let out = dir.join(format!("{name}.out"));
        (local_8x8(&scene, &out, &[]), out)
    };
    cbox["extensionsUsed"] = serde_json::json!(["KHR_materials_clearcoat"]);
    let (o, out) = render(&cbox, "used.gltf");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("KHR_materials_clearcoat is used but not implemented"));
    let manifest: tessera_shard::contract::ShardManifest = serde_json::from_slice(
        &std::fs::read(out.join(".shards/local/shards/0/0/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest.warnings.len(), 1, "{:?}", manifest.warnings);
    assert!(manifest.warnings[0].contains("KHR_materials_clearcoat"));
    cbox["extensionsRequired"] = serde_json::json!(["KHR_materials_clearcoat"]);
    let (o, _) = render(&cbox, "required.gltf");
    assert_eq!(o.status.code(), Some(exit::BAD_INPUT), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("requires KHR_materials_clearcoat (extensionsRequired)"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_adapter_exits_no_adapter() {
    let dir = temp_dir("noadapter");
    let (scene, out) = (cbox_path(), dir.join("out"));
    let o = Command::new(BIN)
        .args(local_8x8_args(&scene, &out))
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(exit::NO_ADAPTER), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no GPU adapter found"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn settings() -> RenderSettings {
    RenderSettings {
        scene: format!("file://{}", cbox_path().display()),
        camera: None,
        width: 30,
        height: 22,
        samples_per_pixel: 6,
        max_bounces: 2,
        background: [0.0; 3],
        environment: None,
        aovs: Vec::new(),
        shutter: 0.0,
        seed: 3,
        limits: Default::default(),
    }
}

#[test]
fn local_render_merge_verify_rerender_and_merge_again() {
    let dir = temp_dir("pipeline");
    let out = dir.join("out");
    let s = settings();
    let o = run(&[
        "local",
        "--scene",
        cbox_path().to_str().unwrap(),
        "--frames",
        "1-2",
        "--width",
        "30",
        "--height",
        "22",
        "--spp",
        "6",
        "--max-bounces",
        "2",
        "--seed",
        "3",
        "--tiles",
        "2x2",
        "--sample-splits",
        "2",
        "--frames-per-shard",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Msamples/s"));
    for f in [
        "frame_0001.exr",
        "frame_0001.png",
        "frame_0002.exr",
        "frame_0002.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }

    // The contract merge over the same shards writes byte-identical frames, twice.
    let shards_url = format!("file://{}/.shards", out.display());
    let mut spec = MergeSpec {
        version: CONTRACT_VERSION,
        job: "local".into(),
        namespace: "local".into(),
        job_uid: "local".into(),
        settings: s.clone(),
        frames: "1-2".into(),
        frames_per_shard: 2,
        tiles_x: 2,
        tiles_y: 2,
        sample_splits: 2,
        attempts: AttemptMap::new(),
        races: Default::default(),
        missing: Default::default(),
        formats: vec![ImageFormat::Exr, ImageFormat::Png],
        output: shards_url.clone(),
        step: MergeStep::All,
    };
    // Objects per shard, a storage budget: its frames' tiles and its manifest, nothing else
    // (8 shards: 1 frame chunk x 2x2 tiles x 2 sample splits).
    for shard in 0..8 {
        let mut names: Vec<String> =
            std::fs::read_dir(out.join(format!(".shards/local/shards/{shard}/0")))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
        names.sort();
        assert_eq!(
            names,
            ["frame_0001.exr", "frame_0002.exr", "manifest.json"],
            "shard {shard}"
        );
    }
    assert!(!out.join(".shards/local/shards/8").exists());
    let merged_exr = out.join(".shards/frames/local.0001.exr");
    let termination = dir.join("termination-log");
    let merge = |spec: &MergeSpec| {
        run(&[
            "merge",
            "--spec",
            &serde_json::to_string(spec).unwrap(),
            "--termination-log",
            termination.to_str().unwrap(),
        ])
    };
    let o = merge(&spec);
    assert!(o.status.success(), "{}", stderr(&o));
    let first = std::fs::read(&merged_exr).unwrap();
    assert_eq!(
        first,
        std::fs::read(out.join("frame_0001.exr")).unwrap(),
        "local and contract merges differ"
    );
    assert!(merge(&spec).status.success());
    assert_eq!(
        first,
        std::fs::read(&merged_exr).unwrap(),
        "merging twice must give identical bytes"
    );
    let manifest: JobManifest = serde_json::from_slice(
        &std::fs::read(out.join(".shards/local/job-manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest.frames.len(), 2);
    assert_eq!(manifest.frames[0].inputs.len(), 8);
    assert_eq!(manifest.frames[0].files[0].path, "frames/local.0001.exr");

    // The operator's steps (the chunk as soon as it is rendered, the job manifest last)
    // write exactly the bytes of the merge all at once.
    let job_manifest = out.join(".shards/local/job-manifest.json");
    let all_at_once = std::fs::read(&job_manifest).unwrap();
    std::fs::remove_file(&merged_exr).unwrap();
    std::fs::remove_file(&job_manifest).unwrap();
    spec.step = MergeStep::Chunks(IndexSet::parse("0").unwrap());
    assert!(merge(&spec).status.success());
    assert_eq!(first, std::fs::read(&merged_exr).unwrap());
    assert!(
        !job_manifest.exists(),
        "a chunk merge writes no job manifest"
    );
    assert!(out.join(".shards/local/merged/0.json").is_file());
    spec.step = MergeStep::Manifest;
    assert!(merge(&spec).status.success());
    assert_eq!(all_at_once, std::fs::read(&job_manifest).unwrap());
    // A record merged from other attempts than the spec's is refused, as a transient error
    // (merging the chunk again fixes it), and no job manifest is written from it.
    std::fs::remove_file(&job_manifest).unwrap();
    spec.attempts.set(4, 1);
    let o = merge(&spec);
    assert_eq!(o.status.code(), Some(exit::TRANSIENT), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("other shard attempts"),
        "{}",
        stderr(&o)
    );
    assert!(!job_manifest.exists());
    spec.attempts = AttemptMap::new();
    // A preview from the first sample split of every tile (shards 0, 2, 4, 6): a PNG of
    // every frame of the chunk, noisier than the final frame, never the final frame.
    spec.step = MergeStep::Preview {
        chunk: 0,
        shards: IndexSet::parse("0,2,4,6").unwrap(),
    };
    assert!(merge(&spec).status.success());
    for frame in ["0001", "0002"] {
        let preview =
            std::fs::read(out.join(format!(".shards/previews/local.{frame}.png"))).unwrap();
        let final_png =
            std::fs::read(out.join(format!(".shards/frames/local.{frame}.png"))).unwrap();
        assert_ne!(
            preview, final_png,
            "frame {frame}: a half-sampled preview equals the frame"
        );
    }
    spec.step = MergeStep::All;

    // Corrupt shard 3's object and delete shard 5's manifest: the merge names both.
    let shard_dir = |i: u32, a: u32| out.join(format!(".shards/local/shards/{i}/{a}"));
    let mut bytes = std::fs::read(shard_dir(3, 0).join("frame_0002.exr")).unwrap();
    bytes.push(0);
    std::fs::write(shard_dir(3, 0).join("frame_0002.exr"), bytes).unwrap();
    std::fs::remove_file(shard_dir(5, 0).join("manifest.json")).unwrap();
    // Shard 6's manifest sends the merge outside its prefix; shard 7's object is garbage
    // that matches its (rewritten) manifest: both are invalid shards, not transient errors.
    let edit_manifest = |i: u32, edit: &dyn Fn(&mut serde_json::Value)| {
        let path = shard_dir(i, 0).join("manifest.json");
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        edit(&mut manifest);
        std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    };
    edit_manifest(6, &|m| {
        m["files"][0]["path"] = "../../../../../etc/passwd".into()
    });
    let garbage = vec![7u8; 300];
    std::fs::write(shard_dir(7, 0).join("frame_0001.exr"), &garbage).unwrap();
    edit_manifest(7, &|m| {
        m["files"][0]["size"] = garbage.len().into();
        m["files"][0]["sha256"] = render_pod::storage::sha256_hex(&garbage).into();
    });
    let o = merge(&spec);
    assert_eq!(
        o.status.code(),
        Some(exit::INVALID_SHARDS),
        "{}",
        stderr(&o)
    );
    let invalid: InvalidShards =
        serde_json::from_slice(&std::fs::read(&termination).unwrap()).unwrap();
    assert_eq!(invalid.shards.to_string(), "3,5-7");
    for why in [
        "manifest missing",
        "\"../../../../../etc/passwd\", which is not one of its frame objects",
        "not a readable EXR",
    ] {
        assert!(invalid.reason.contains(why), "{why}: {}", invalid.reason);
    }

    // Re-render exactly those shards as attempt 1 through `render`, merge with the new
    // attempts: identical frames (determinism across processes and attempts).
    let plan = ShardPlan::new(PlanInput {
        frames: FrameList::parse("1-2").unwrap(),
        width: s.width,
        height: s.height,
        samples_per_pixel: s.samples_per_pixel,
        frames_per_shard: 2,
        tiles_x: 2,
        tiles_y: 2,
        sample_splits: 2,
    })
    .unwrap();
    for index in [3u32, 5, 6, 7] {
        let shard = plan.shard(index).unwrap();
        let shard_spec = ShardSpec {
            version: CONTRACT_VERSION,
            job: "local".into(),
            namespace: "local".into(),
            job_uid: "local".into(),
            shard: index,
            attempt: 1,
            settings: s.clone(),
            frames: shard.frames,
            tile: shard.tile,
            samples: shard.samples,
            output: shards_url.clone(),
        };
        let spec_file = dir.join(format!("shard-{index}.json"));
        std::fs::write(&spec_file, serde_json::to_string(&shard_spec).unwrap()).unwrap();
        let o = run(&["render", "--spec-file", spec_file.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(shard_dir(index, 1).join("manifest.json").is_file());
    }
    spec.attempts = AttemptMap::parse("3:1,5-7:1").unwrap();
    let o = merge(&spec);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(&merged_exr).unwrap(),
        first,
        "re-rendered shards must merge to the same frame"
    );

    // A job that accepts missing frames: shard 3 failed for good, so its frame chunk (both
    // frames here) is left out, and the job manifest says which frames are missing. Shard 3's
    // objects are not even read (they are corrupt from above).
    spec.attempts = AttemptMap::parse("5-7:1").unwrap();
    spec.missing = tessera_shard::IndexSet::parse("3").unwrap();
    let o = merge(&spec);
    assert!(o.status.success(), "{}", stderr(&o));
    let manifest: JobManifest = serde_json::from_slice(
        &std::fs::read(out.join(".shards/local/job-manifest.json")).unwrap(),
    )
    .unwrap();
    assert!(manifest.frames.is_empty());
    assert_eq!(manifest.missing_frames, [1, 2]);
    std::fs::remove_dir_all(&dir).unwrap();
}
