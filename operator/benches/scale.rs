//! Scale figures (`cargo bench -p tessera-operator --bench scale`):
//! - planning a 10,000-shard RenderJob (every shard computed);
//! - one reconcile pass of that job (index lookup, observe, settle, assess, admit, decide)
//!   with its pods in the cache, alone and beside 100,000 other jobs' pods in the same pool:
//!   the pool boundary keeps the second within a small factor of the first;
//! - one pass late in the job, the pass a long job repeats most: half its shards recorded as
//!   succeeded in status (their pods collected), 8,000 running on 1,000 Ready nodes, 80 nodes
//!   excluded for failures
//!   (`TESSERA_BENCH_PROFILE_LATE=N` runs only N × 10 of these, for a profiler such as
//!   `perf record`);
//! - the serialized RenderJob size (budget: under 64 KiB, docs/architecture.md).
//!
//! Prints figures and writes them to `bench/operator/results/scale.json`; asserts nothing
//! about time (timed assertions flake on shared machines). `TESSERA_BENCH_SHARDS=100000`
//! measures a larger job (a multiple of 4; written to `scale-<shards>.json`).

use std::hint::black_box;
use std::time::Instant;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use serde_json::json;
use tessera_operator::api::{NodeFailures, RenderJob, RenderPool};
use tessera_operator::context::Refusals;
use tessera_operator::controller::{Caches, pass};
use tessera_operator::job_plan;
use tessera_operator::kueue::KueueCache;
use tessera_operator::pool::index::PodIndex;
use tessera_operator::pool::nodes::NodeViews;
use tessera_operator::pool::scheduler::Scheduler;

/// Shards of the job: `TESSERA_BENCH_SHARDS`, else 10,000.
fn shards() -> u32 {
    std::env::var("TESSERA_BENCH_SHARDS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|n| n % 4 == 0 && *n >= 400)
        .unwrap_or(10_000)
}
const JOB_UID: &str = "8d3c1f0e-5b7a-4c1e-9a51-3f0f3c2a7e11";

fn job() -> RenderJob {
    serde_json::from_value(json!({
        "apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
        "metadata": {"name": "shot010-lighting-v003", "namespace": "lighting", "uid": JOB_UID, "generation": 1},
        "spec": {"pool": "gpu-a", "scene": {"url": "s3://studio-renders/scenes/shot010/v003/scene.glb"},
                 "frames": format!("1001-{}", 1000 + shards() / 4), "resolution": {"width": 3840, "height": 2160}, "samplesPerPixel": 1024,
                 "sharding": {"framesPerShard": 1, "tiles": {"columns": 2, "rows": 2}, "sampleSplits": 1}}
    }))
    .expect("valid job")
}

fn pool() -> RenderPool {
    serde_json::from_value(json!({
        "apiVersion": "tessera.dev/v1alpha1", "kind": "RenderPool", "metadata": {"name": "gpu-a"},
        "spec": {"image": "ghcr.io/tessera-dev/render-pod:0.1.0", "storage": {"url": "s3://studio-renders/out",
                 "sharedReadPrefixes": ["s3://studio-renders/scenes"]}}
    }))
    .expect("valid pool")
}

/// The pods of a job in its last stretch: most shards succeeded (a few after a retry),
/// some failed once, and a pool's worth running.
fn pods(running: u32) -> Vec<Pod> {
    let mut pods = Vec::new();
    let total = shards();
    for shard in 0..total {
        let (phase, code, attempt) = match shard {
            s if s >= total - running => ("Running", None, 0),
            s if s % 97 == 0 => ("Succeeded", Some(0), 1),
            _ => ("Succeeded", Some(0), 0),
        };
        if attempt == 1 {
            pods.push(pod(
                "lighting",
                "shot010",
                JOB_UID,
                shard,
                0,
                "Failed",
                Some(1),
            ));
        }
        pods.push(pod(
            "lighting", "shot010", JOB_UID, shard, attempt, phase, code,
        ));
    }
    pods
}

/// 100,000 pods of 1,000 other jobs in 20 namespaces of the same pool: 1 in 50 running.
fn other_jobs_pods() -> Vec<Pod> {
    (0..100_000u32)
        .map(|i| {
            let job = i / 100;
            let phase = if i % 50 == 0 { "Running" } else { "Succeeded" };
            let code = (phase == "Succeeded").then_some(0);
            pod(
                &format!("team-{}", job % 20),
                &format!("other-{job}"),
                &format!("uid-other-{job}"),
                i % 100,
                0,
                phase,
                code,
            )
        })
        .collect()
}

fn pod(
    namespace: &str,
    job: &str,
    uid: &str,
    shard: u32,
    attempt: u32,
    phase: &str,
    code: Option<i32>,
) -> Pod {
    let mut status = json!({"phase": phase, "startTime": "2026-01-15T08:00:00Z"});
    if let Some(code) = code {
        status["containerStatuses"] = json!([{"name": "render", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": code, "startedAt": "2026-01-15T08:00:00Z", "finishedAt": "2026-01-15T08:03:00Z"}}}]);
    }
    serde_json::from_value(json!({
        "metadata": {"name": format!("{job}-{shard}-{attempt}"), "namespace": namespace, "labels": {
            "tessera.dev/role": "shard", "tessera.dev/pool": "gpu-a", "tessera.dev/shard": shard.to_string(),
            "tessera.dev/attempt": attempt.to_string()},
            "ownerReferences": [{"apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob", "name": job,
                "uid": uid, "controller": true}]},
        "spec": {"nodeName": format!("gpu-node-{}", shard % 200), "containers": [{"name": "render", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
        "status": status,
    }))
    .expect("valid pod")
}

/// A pod cache and index holding `pods`, as the watch stream would fill them.
fn caches_with(pods: &[Pod]) -> (Store<Pod>, PodIndex) {
    let (store, mut writer) = reflector::store();
    let index = PodIndex::default();
    for pod in pods {
        let event = watcher::Event::Apply(pod.clone());
        writer.apply_watcher_event(&event);
        index.apply_event(&event);
    }
    (store, index)
}

/// The caches a pass reads besides its pods: `nodes` Ready GPU nodes of 8 GPUs (the pods
/// run on the first 200), no other jobs, namespaces or Kueue.
struct Others {
    nodes: Store<Node>,
    jobs: Store<RenderJob>,
    namespaces: Store<Namespace>,
    scheduler: Scheduler,
    refusals: Refusals,
    node_views: NodeViews,
    kueue: KueueCache,
}

impl Others {
    fn with_nodes(count: u32) -> Self {
        let (nodes, mut writer) = reflector::store();
        for i in 0..count {
            let node: Node = serde_json::from_value(json!({
                "metadata": {"name": format!("gpu-node-{i}")},
                "status": {"allocatable": {"nvidia.com/gpu": "8"},
                           "conditions": [{"type": "Ready", "status": "True"}]},
            }))
            .expect("valid node");
            writer.apply_watcher_event(&watcher::Event::Apply(node));
        }
        Others {
            nodes,
            jobs: reflector::store().0,
            namespaces: reflector::store().0,
            scheduler: Scheduler::default(),
            refusals: Refusals::default(),
            node_views: NodeViews::default(),
            kueue: KueueCache::unavailable(),
        }
    }

    fn caches<'a>(&'a self, pods: &'a Store<Pod>, index: &'a PodIndex) -> Caches<'a> {
        Caches {
            pods,
            nodes: &self.nodes,
            jobs: &self.jobs,
            namespaces: &self.namespaces,
            index,
            scheduler: &self.scheduler,
            node_views: &self.node_views,
            refusals: &self.refusals,
            kueue: &self.kueue,
        }
    }
}

/// One pass late in a long job, the pass that repeats most: half the shards recorded as
/// succeeded in status (their pods collected), a pool's worth (8,000 on 1,000 nodes) running,
/// 80 nodes excluded.
/// The median of `rounds` × 10 passes (ms), and the running pods.
fn late_pass_ms(
    job: &RenderJob,
    pool: &RenderPool,
    others: &Others,
    now: Timestamp,
    rounds: u32,
) -> (f64, usize) {
    let (shard_count, half) = (shards(), shards() / 2);
    let finished: Vec<Pod> = (0..half)
        .map(|s| pod("lighting", "shot010", JOB_UID, s, 0, "Succeeded", Some(0)))
        .collect();
    let (finished_store, finished_index) = caches_with(&finished);
    let mut recorded = pass(
        job,
        Some(pool),
        &others.caches(&finished_store, &finished_index),
        now,
    )
    .decision
    .status;
    // 1 % of attempts failing over 1,000 nodes puts about 8 % of them at the job's threshold
    // of 3 failures by then: those are excluded, and every shard still to start avoids them.
    recorded.node_failures = (900..980)
        .map(|i| NodeFailures {
            node: format!("gpu-node-{i}"),
            failures: 3,
        })
        .collect();
    let late_job = RenderJob {
        status: Some(recorded),
        ..job.clone()
    };
    let running: Vec<Pod> = (half..shard_count.min(half + 8_000))
        .map(|s| pod("lighting", "shot010", JOB_UID, s, 0, "Running", None))
        .collect();
    let (store, index) = caches_with(&running);
    let caches = others.caches(&store, &index);
    let mut runs: Vec<f64> = (0..rounds)
        .map(|_| time(10, || pass(&late_job, Some(pool), &caches, now).decision))
        .collect();
    runs.sort_by(f64::total_cmp);
    (runs[runs.len() / 2], running.len())
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
    // `TESSERA_BENCH_PROFILE_LATE=N`: only N rounds of the late pass, for a profiler.
    if let Some(rounds) = std::env::var("TESSERA_BENCH_PROFILE_LATE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        let (ms, _) = late_pass_ms(
            &job,
            &pool,
            &Others::with_nodes(1_000),
            Timestamp::now(),
            rounds,
        );
        println!("one pass late: {ms:.2} ms");
        return;
    }

    let plan_ms = time(20, || {
        let plan = job_plan::plan(&job.spec).expect("plannable");
        plan.shards().map(|s| s.frames.len()).sum::<usize>()
    });
    let plan = job_plan::plan(&job.spec).expect("plannable");
    let shard_count = shards();
    assert_eq!(plan.len(), shard_count);

    let own = pods(200);
    let others = Others::with_nodes(0);
    let now = Timestamp::now();
    let (alone_store, alone_index) = caches_with(&own);
    let mut crowded = own.clone();
    crowded.extend(other_jobs_pods());
    let (crowded_store, crowded_index) = caches_with(&crowded);
    let reconcile_ms = |store: &Store<Pod>, index: &PodIndex| {
        let caches = others.caches(store, index);
        time(10, || pass(&job, Some(&pool), &caches, now).decision)
    };
    // Interleaved rounds, medians: a shared machine's noise hits both cases alike.
    let (mut alone, mut crowded_runs) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        alone.push(reconcile_ms(&alone_store, &alone_index));
        crowded_runs.push(reconcile_ms(&crowded_store, &crowded_index));
    }
    let median = |runs: &mut Vec<f64>| {
        runs.sort_by(f64::total_cmp);
        runs[runs.len() / 2]
    };
    let (alone_ms, crowded_ms) = (median(&mut alone), median(&mut crowded_runs));

    let (store, index) = caches_with(&own);
    let caches = others.caches(&store, &index);
    let decision = pass(&job, Some(&pool), &caches, now).decision;
    let mut stored = job.clone();
    stored.status = Some(decision.status.clone());
    let size = serde_json::to_vec(&stored).expect("serializes").len();

    let (late_ms, late_running) = late_pass_ms(&job, &pool, &Others::with_nodes(1_000), now, 7);

    let results = json!({
        "bench": "operator/benches/scale.rs",
        "shards": shard_count,
        "own_pods": own.len(),
        "other_pods": crowded.len() - own.len(),
        "plan_ms": plan_ms,
        "reconcile_alone_ms": alone_ms,
        "reconcile_crowded_ms": crowded_ms,
        "crowded_over_alone": crowded_ms / alone_ms,
        "reconcile_late_ms": late_ms,
        "renderjob_bytes": size,
    });
    // The raw figures, committed so that docs can name where a number comes from.
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/operator/results");
    if std::fs::create_dir_all(&out).is_ok() {
        let _ = std::fs::write(
            out.join(if shard_count == 10_000 {
                "scale.json".to_string()
            } else {
                format!("scale-{shard_count}.json")
            }),
            serde_json::to_string_pretty(&results).expect("serializes") + "\n",
        );
    }
    println!(
        "tessera-operator scale figures ({shard_count} shards, {} own pods)",
        own.len()
    );
    println!("  plan (all shards computed)                  {plan_ms:8.2} ms");
    println!("  one reconcile pass, the job alone           {alone_ms:8.2} ms  (median of 7 x 10)");
    println!(
        "  one reconcile pass, +100,000 other pods     {crowded_ms:8.2} ms  ({:.2}x)",
        crowded_ms / alone_ms
    );
    println!(
        "  one pass late: {} recorded succeeded, {late_running} running {late_ms:8.2} ms",
        shard_count / 2
    );
    println!(
        "  RenderJob object with status                {:8.1} KiB (budget 64 KiB)",
        size as f64 / 1024.0
    );
    println!(
        "  status: {} succeeded, {} active, attempts map {} bytes, ledger {} bytes",
        decision.status.shards.succeeded,
        decision.status.shards.active,
        decision.status.shard_attempts.to_string().len(),
        decision.status.settled_attempts.to_string().len()
            + decision.status.failed_attempts.to_string().len()
    );
}
