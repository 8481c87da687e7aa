//! `fake-render-pod`: stands in for `render-pod` in operator scenarios where rendering itself
//! does not matter (retries, node loss, operator restarts, leader election, scale). It speaks the
//! real pod contract (`render --spec JSON`, `merge --spec JSON`, parsed with tessera-shard) and
//! behaves as a script tells it:
//!
//! - `TESSERA_FAKE_SCRIPT`: a JSON file `{"<job>": {"sleepMs": 100, "fail": {"<shard>/<attempt>": 1},
//!   "failAlways": {"<shard>": 3}, "hang": ["<shard>/<attempt>"], "slowNodes": {"<node>": 10},
//!   "mergeInvalid": "3"}}` (shards the first merge that reads them reports corrupt), read at
//!   every start (tests may change it); a hanging attempt sleeps until it is killed;
//! - `TESSERA_FAKE_LOG`: a directory where every run leaves `<job>.<role>.<shard>.<attempt>`
//!   holding the node it ran on (`TESSERA_NODE_NAME`, from the downward API), so tests can
//!   count what was rendered where even after the operator deleted the pods.
//!
//! - a `file://` output prefix: a shard writes its `manifest.json` under its shard prefix; a
//!   merge writes the frames of its step's chunks (`frame_path`, but those of `missing`
//!   shards), a preview step its chunk's previews, the manifest step the job manifest, each holding
//!   `<namespace>/<job> <job-uid>`, so tests can see which job wrote where (not real images).
//!
//! Exit codes and termination messages follow `tessera_shard::contract::exit`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tessera_shard::contract::{
    InvalidShards, MANIFEST_FILE, MergeSpec, MergeStep, ShardSpec, exit, frame_path,
    job_manifest_path, preview_path,
};
use tessera_shard::{FrameList, IndexSet, ShardPlan};

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct JobScript {
    #[serde(default)]
    sleep_ms: u64,
    /// `"shard/attempt"` → exit code.
    #[serde(default)]
    fail: HashMap<String, i32>,
    /// `"shard"` → exit code, every attempt.
    #[serde(default)]
    fail_always: HashMap<String, i32>,
    /// `"shard/attempt"` that never finish.
    #[serde(default)]
    hang: Vec<String>,
    /// `"node"` → factor: renders on that node take `sleepMs` × factor (a slow GPU).
    #[serde(default)]
    slow_nodes: HashMap<String, u64>,
    /// Shards the first merge reports as corrupt.
    #[serde(default)]
    merge_invalid: Option<String>,
}

fn script(job: &str) -> JobScript {
    let Some(path) = std::env::var_os("TESSERA_FAKE_SCRIPT") else {
        return JobScript::default();
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut all: HashMap<String, JobScript> = serde_json::from_str(&text).unwrap_or_default();
    all.remove(job).unwrap_or_default()
}

fn log(name: &str) {
    if let Some(dir) = std::env::var_os("TESSERA_FAKE_LOG") {
        let node = std::env::var("TESSERA_NODE_NAME").unwrap_or_default();
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(PathBuf::from(dir).join(name), node);
    }
}

/// Writes `text` at `url` when it is a `file://` URL; other stores are not faked.
fn write_object(url: &str, text: &str) {
    let Some(path) = url.strip_prefix("file://") else {
        return;
    };
    let path = PathBuf::from(path);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(error) = std::fs::write(&path, text) {
        terminate(
            exit::TRANSIENT,
            &format!("writing {}: {error}", path.display()),
        );
    }
}

fn terminate(code: i32, message: &str) -> ! {
    if let Some(path) = std::env::var_os("TESSERA_TERMINATION_LOG") {
        let _ = std::fs::write(path, message);
    }
    eprintln!("fake-render-pod: exit {code}: {message}");
    std::process::exit(code)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, spec) = match args.as_slice() {
        [_, mode, flag, spec] if flag == "--spec" => (mode.as_str(), spec.as_str()),
        _ => terminate(
            exit::USAGE,
            "usage: fake-render-pod render|merge --spec JSON",
        ),
    };
    match mode {
        "render" => {
            let spec: ShardSpec = serde_json::from_str(spec)
                .unwrap_or_else(|e| terminate(exit::BAD_INPUT, &format!("bad shard spec: {e}")));
            let script = script(&spec.job);
            log(&format!(
                "{}.render.{}.{}",
                spec.job, spec.shard, spec.attempt
            ));
            let node = std::env::var("TESSERA_NODE_NAME").unwrap_or_default();
            let factor = script.slow_nodes.get(&node).copied().unwrap_or(1);
            std::thread::sleep(Duration::from_millis(
                script.sleep_ms.saturating_mul(factor),
            ));
            if script
                .hang
                .contains(&format!("{}/{}", spec.shard, spec.attempt))
            {
                loop {
                    std::thread::sleep(Duration::from_secs(3600)); // a hung render: until killed
                }
            }
            if let Some(code) = script.fail_always.get(&spec.shard.to_string()) {
                terminate(
                    *code,
                    &format!("scripted failure of shard {} (every attempt)", spec.shard),
                );
            }
            if let Some(code) = script.fail.get(&format!("{}/{}", spec.shard, spec.attempt)) {
                terminate(
                    *code,
                    &format!(
                        "scripted failure of shard {} attempt {}",
                        spec.shard, spec.attempt
                    ),
                );
            }
            write_object(
                &format!("{}/{MANIFEST_FILE}", spec.shard_prefix()),
                &format!(
                    "{}/{} {} shard {} attempt {}\n",
                    spec.namespace, spec.job, spec.job_uid, spec.shard, spec.attempt
                ),
            );
        }
        "merge" => {
            let spec: MergeSpec = serde_json::from_str(spec)
                .unwrap_or_else(|e| terminate(exit::BAD_INPUT, &format!("bad merge spec: {e}")));
            let script = script(&spec.job);
            let owner = format!("{}/{} {}", spec.namespace, spec.job, spec.job_uid);
            let frames = FrameList::parse(&spec.frames)
                .unwrap_or_else(|e| terminate(exit::BAD_INPUT, &format!("bad frames: {e}")));
            let plan = ShardPlan::new(spec.plan_input(frames.clone()))
                .unwrap_or_else(|e| terminate(exit::BAD_INPUT, &format!("bad plan: {e}")));
            let every_chunk = IndexSet::full(plan.frame_chunks());
            let (chunks, manifest) = match &spec.step {
                MergeStep::All => (every_chunk, true),
                MergeStep::Chunks(chunks) => (chunks.clone(), false),
                MergeStep::Manifest => (IndexSet::new(), true),
                MergeStep::Preview { chunk, .. } => {
                    log(&format!("{}.preview.{chunk}", spec.job));
                    for frame in plan
                        .shard(plan.shards_of_chunk(*chunk).start)
                        .into_iter()
                        .flat_map(|s| s.frames)
                    {
                        write_object(
                            &preview_path(&spec.output, &spec.job, frame),
                            &format!("{owner} preview {frame}\n"),
                        );
                    }
                    return;
                }
            };
            let marker = format!("{}.merge", spec.job);
            log(&marker);
            std::thread::sleep(Duration::from_millis(script.sleep_ms));
            // Each scripted corrupt shard is reported once, by the first merge that reads it.
            let merged_shards: IndexSet = chunks
                .iter()
                .flat_map(|c| plan.shards_of_chunk(c))
                .collect();
            let reported = |shard: u32| {
                let marker = format!("{}.merge-invalid.{shard}", spec.job);
                std::env::var_os("TESSERA_FAKE_LOG")
                    .is_some_and(|dir| PathBuf::from(dir).join(marker).exists())
            };
            let shards: IndexSet = IndexSet::parse(script.merge_invalid.as_deref().unwrap_or(""))
                .unwrap_or_default()
                .iter()
                .filter(|&s| merged_shards.contains(s) && !reported(s))
                .collect();
            if !shards.is_empty() {
                for shard in shards.iter() {
                    log(&format!("{}.merge-invalid.{shard}", spec.job));
                }
                let verdict = InvalidShards {
                    shards,
                    reason: "scripted: sha256 mismatch".into(),
                };
                terminate(
                    exit::INVALID_SHARDS,
                    &serde_json::to_string(&verdict).unwrap_or_default(),
                );
            }
            // Frames a missing (failed) shard covers are left out, as the real merge does.
            let missing: Vec<i64> = spec
                .missing
                .iter()
                .filter_map(|i| plan.shard(i))
                .flat_map(|s| s.frames)
                .collect();
            let chunk_frames = chunks
                .iter()
                .filter_map(|c| plan.shard(plan.shards_of_chunk(c).start))
                .flat_map(|s| s.frames);
            for frame in chunk_frames.filter(|f| !missing.contains(f)) {
                for format in &spec.formats {
                    write_object(
                        &frame_path(&spec.output, &spec.job, frame, *format),
                        &format!("{owner} frame {frame}\n"),
                    );
                }
            }
            if manifest {
                write_object(
                    &job_manifest_path(&spec.output, &spec.job_uid),
                    &format!("{owner} job manifest\n"),
                );
            }
        }
        other => terminate(exit::USAGE, &format!("unknown mode {other}")),
    }
}
