//! Scale figures for a 10,000-shard RenderJob (`cargo bench -p tessera-operator --bench scale`):
//! - planning time (the whole plan, every shard computed);
//! - observe + assess + decide time with 10,000 shard pods in the cache;
//! - the serialized RenderJob size (budget: under 64 KiB, DESIGN §3).
//!
//! Prints figures; asserts nothing about time (timed assertions flake on shared machines).

use std::hint::black_box;
use std::time::Instant;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use tessera_operator::api::{RenderJob, RenderPool};
use tessera_operator::decide::{self, DecideInput};
use tessera_operator::{job_plan, observe};

const SHARDS: u32 = 10_000;

fn job() -> RenderJob {
    serde_json::from_value(json!({
        "apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
        "metadata": {"name": "shot010-lighting-v003", "namespace": "lighting", "uid": "8d3c1f0e-5b7a-4c1e-9a51-3f0f3c2a7e11", "generation": 1},
        "spec": {"pool": "gpu-a", "scene": {"url": "s3://studio-renders/scenes/shot010/v003/scene.glb"},
                 "frames": "1001-3500", "resolution": {"width": 3840, "height": 2160}, "samplesPerPixel": 1024,
                 "sharding": {"framesPerShard": 1, "tiles": {"columns": 2, "rows": 2}, "sampleSplits": 1}}
    }))
    .expect("valid job")
}

fn pool() -> RenderPool {
    serde_json::from_value(json!({
        "apiVersion": "tessera.dev/v1alpha1", "kind": "RenderPool", "metadata": {"name": "gpu-a"},
        "spec": {"image": "ghcr.io/tessera-dev/render-pod:0.1.0", "storage": {"url": "s3://studio-renders/out"}}
    }))
    .expect("valid pool")
}

/// The pods of a job in its last stretch: most shards succeeded (a few after a retry),
/// some failed once, and a pool's worth running.
fn pods(running: u32) -> Vec<Pod> {
    let mut pods = Vec::new();
    for shard in 0..SHARDS {
        let (phase, code, attempt) = match shard {
            s if s >= SHARDS - running => ("Running", None, 0),
            s if s % 97 == 0 => ("Succeeded", Some(0), 1),
            _ => ("Succeeded", Some(0), 0),
        };
        if attempt == 1 {
            pods.push(pod(shard, 0, "Failed", Some(1)));
        }
        pods.push(pod(shard, attempt, phase, code));
    }
    pods
}

fn pod(shard: u32, attempt: u32, phase: &str, code: Option<i32>) -> Pod {
    let mut status = json!({"phase": phase, "startTime": "2026-01-15T08:00:00Z"});
    if let Some(code) = code {
        status["containerStatuses"] = json!([{"name": "render", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": code, "startedAt": "2026-01-15T08:00:00Z", "finishedAt": "2026-01-15T08:03:00Z"}}}]);
    }
    serde_json::from_value(json!({
        "metadata": {"name": format!("shot010-{shard}-{attempt}"), "namespace": "lighting", "labels": {
            "tessera.dev/role": "shard", "tessera.dev/shard": shard.to_string(), "tessera.dev/attempt": attempt.to_string()}},
        "spec": {"nodeName": format!("gpu-node-{}", shard % 200), "containers": [{"name": "render", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
        "status": status,
    }))
    .expect("valid pod")
}

fn time<T>(runs: u32, mut f: impl FnMut() -> T) -> f64 {
    let start = Instant::now();
    for _ in 0..runs {
        black_box(f());
    }
    start.elapsed().as_secs_f64() * 1000.0 / f64::from(runs)
}

fn main() {
    let job = job();
    let pool = pool();

    let plan_ms = time(20, || {
        let plan = job_plan::plan(&job.spec).expect("plannable");
        plan.shards().map(|s| s.frames.len()).sum::<usize>()
    });
    let plan = job_plan::plan(&job.spec).expect("plannable");
    assert_eq!(plan.len(), SHARDS);

    let pods = pods(200);
    let now = Timestamp::now();
    // One reconcile's pure part: observe the pods, assess the job, decide.
    let reconcile = || {
        let observed = observe::observe(&pods, &|_| true, "nvidia.com/gpu");
        let assessment = decide::assess(&job, &observed, &decide::PoolNodes::default(), now);
        decide::decide(DecideInput {
            job: &job,
            pool: Some(&pool),
            observed: &observed,
            assessment: &assessment,
            grant: 200,
            now,
        })
    };
    let reconcile_ms = time(20, reconcile);
    let decision = reconcile();
    let mut stored = job.clone();
    stored.status = Some(decision.status.clone());
    let size = serde_json::to_vec(&stored).expect("serializes").len();

    println!(
        "tessera-operator scale figures ({SHARDS} shards, {} pods in cache)",
        pods.len()
    );
    println!("  plan (all shards computed)         {plan_ms:8.2} ms");
    println!("  observe+assess+decide (one job)    {reconcile_ms:8.2} ms");
    println!(
        "  RenderJob object with status       {:8.1} KiB (budget 64 KiB)",
        size as f64 / 1024.0
    );
    println!(
        "  status: {} succeeded, {} active, attempts map {} bytes",
        decision.status.shards.succeeded,
        decision.status.shards.active,
        decision.status.shard_attempts.to_string().len()
    );
}
