use std::collections::BTreeSet;
use std::sync::Arc;

use super::*;
use crate::api::{RenderPool, RetryPolicy};
use crate::observe::{self, FailureKind};
use crate::pods::Avoidance;
use serde_json::json;
use tessera_shard::IndexSet;

pub const JOB_YAML: &str = include_str!("../../tests/fixtures/renderjob.yaml");
pub const POOL_YAML: &str = include_str!("../../tests/fixtures/renderpool.yaml");

pub fn job_from_yaml() -> RenderJob {
    serde_yaml::from_str(JOB_YAML).unwrap()
}

pub fn pool_from_yaml() -> RenderPool {
    serde_yaml::from_str(POOL_YAML).unwrap()
}

pub fn shard_spec_for(job: &RenderJob, shard: u32, attempt: u32) -> ShardSpec {
    let plan = job_plan::plan(&job.spec).unwrap();
    let s = plan.shard(shard).unwrap();
    ShardSpec {
        version: CONTRACT_VERSION,
        job: "shot010".into(),
        namespace: "lighting".into(),
        job_uid: "uid-1".into(),
        shard,
        attempt,
        settings: job_plan::render_settings(
            &job.spec,
            &pool_from_yaml(),
            "file:///data/scenes/cbox.gltf".into(),
            None,
        ),
        frames: s.frames,
        tile: s.tile,
        samples: s.samples,
        output: "file:///data/out".into(),
    }
}

fn now() -> Timestamp {
    // An hour after the fixture pods finished.
    Timestamp::from_second(1_800_003_600).unwrap()
}

/// A pod of the fixture job in the given state.
pub fn pod(shard: u32, attempt: u32, phase: &str, exit_code: Option<i32>, node: &str) -> Pod {
    let mut status = json!({"phase": phase, "startTime": "2027-01-15T08:00:00Z"});
    if let Some(code) = exit_code {
        status["containerStatuses"] = json!([{"name": "render", "image": "x", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"terminated": {"exitCode": code, "reason": "Error", "message": "boom",
            "startedAt": "2027-01-15T08:00:00Z", "finishedAt": "2027-01-15T08:00:30Z"}}}]);
    }
    serde_json::from_value(json!({
        "metadata": {"name": format!("shot010-{shard}-{attempt}"), "namespace": "lighting", "labels": {
            "tessera.dev/role": "shard", "tessera.dev/shard": shard.to_string(), "tessera.dev/attempt": attempt.to_string()},
            "finalizers": ["tessera.dev/ledger"]},
        "spec": {"nodeName": node, "containers": [{"name": "render", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
        "status": status,
    }))
    .unwrap()
}

fn run(job: &RenderJob, pods: &[Pod], grant: u32) -> (Assessment, Decision) {
    run_with(job, pods, grant, Gate::Open)
}

fn run_with(job: &RenderJob, pods: &[Pod], grant: u32, gate: Gate) -> (Assessment, Decision) {
    let pool = pool_from_yaml();
    let observed = observe::observe(pods, &|_| true, "nvidia.com/gpu");
    let valid = ValidJob::new(job, &pool).unwrap();
    let recorded = job.status.clone().unwrap_or_default();
    let mut ledger = Ledger::from_status(&recorded);
    let settled = ledger.settle(
        &observed,
        valid.shard_count(),
        &recorded.succeeded_shards,
        now(),
    );
    let assessment = assess(&valid, &observed, &ledger, &PoolNodes::default(), now());
    let decision = decide(DecideInput {
        dependencies: gate,
        frames_held: None,
        policy: Default::default(),
        job,
        state: JobState::Planned(Planned {
            job: &valid,
            assessment: &assessment,
            ledger: &ledger,
            settled: &settled,
        }),
        observed: &observed,
        grant,
        now: now(),
    });
    (assessment, decision)
}

/// Runs `pods` through `job` twice, the second time with the status the first wrote, as the
/// operator does on its next pass.
fn run_twice(job: &RenderJob, pods: &[Pod], grant: u32) -> (RenderJob, Assessment, Decision) {
    let (_, first) = run(job, pods, grant);
    let mut job = job.clone();
    job.status = Some(first.status);
    let (assessment, second) = run(&job, pods, grant);
    (job, assessment, second)
}

fn names(pods: &[Pod]) -> Vec<String> {
    pods.iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect()
}

#[test]
fn a_new_job_starts_what_admission_grants() {
    let job = job_from_yaml();
    let (assessment, decision) = run(&job, &[], 3);
    assert_eq!(assessment.ready.len(), 8);
    assert_eq!(
        names(&decision.create),
        ["shot010-0-0", "shot010-1-0", "shot010-2-0"]
    );
    let status = &decision.status;
    assert_eq!(status.phase, Some(JobPhase::Rendering));
    assert_eq!(
        status.shards,
        ShardCounts {
            total: 8,
            succeeded: 0,
            failed: 0,
            active: 3,
            waiting: 5
        }
    );
    assert!(conditions::is_true(&status.conditions, ACCEPTED));
    assert!(conditions::is_true(&status.conditions, RENDERING));
    assert_eq!(decision.requeue_after, Some(CAPACITY_RECHECK));
    assert_eq!(decision.events[0].reason, "Rendering");
}

#[test]
fn a_job_writing_into_another_namespace_fails_without_a_pod() {
    let mut job = job_from_yaml();
    job.spec.output =
        Some(serde_json::from_value(json!({"url": "file:///data/out/comp/shot010"})).unwrap());
    let pool = pool_from_yaml();
    let error = ValidJob::new(&job, &pool).unwrap_err();
    assert_eq!(error.reason(), "OutputOutsideNamespace");
    let running = pod(0, 0, "Running", None, "gpu-1");
    let observed = observe::observe([&running], &|_| true, "nvidia.com/gpu");
    let decision = decide(DecideInput {
        dependencies: Gate::Open,
        frames_held: None,
        policy: Default::default(),
        job: &job,
        state: JobState::Invalid(error),
        observed: &observed,
        grant: 8,
        now: now(),
    });
    assert!(decision.create.is_empty());
    assert_eq!(decision.delete, ["shot010-0-0"]);
    assert_eq!(decision.status.phase, Some(JobPhase::Failed));
    let condition = |type_: &str| {
        decision
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .cloned()
            .unwrap()
    };
    let accepted = condition(ACCEPTED);
    assert_eq!(
        (accepted.status.as_str(), accepted.reason.as_str()),
        ("False", "OutputOutsideNamespace")
    );
    assert!(
        accepted.message.starts_with(
            "spec.output.url: file:///data/out/comp/shot010 is not under file:///data/out/lighting/"
        ),
        "{}",
        accepted.message
    );
    assert_eq!(condition(FAILED).reason, "OutputOutsideNamespace");
}

#[test]
fn a_finished_job_stays_finished_when_its_spec_no_longer_passes() {
    // Complete before an upgrade that confines storage: it must not turn into Failed.
    let mut job = job_from_yaml();
    let (_, first) = run(&job, &[], 8);
    let mut status = first.status;
    conditions::set(
        &mut status.conditions,
        COMPLETE,
        true,
        "FramesWritten",
        "done",
        Some(1),
        now(),
    );
    status.phase = Some(JobPhase::Complete);
    status.completion_time = Some(Time(now()));
    job.status = Some(status.clone());
    job.spec.ttl_seconds_after_finished = Some(60);
    job.spec.scene.url = Some("file:///elsewhere/cbox.gltf".into());
    let error = ValidJob::new(&job, &pool_from_yaml()).unwrap_err();
    assert_eq!(error.reason(), "SceneOutsideNamespace");
    let observed = Observed::default();
    let decision = decide(DecideInput {
        dependencies: Gate::Open,
        frames_held: None,
        policy: Default::default(),
        job: &job,
        state: JobState::Invalid(error),
        observed: &observed,
        grant: 0,
        now: now(),
    });
    assert_eq!(decision.status.phase, Some(JobPhase::Complete));
    assert!(!conditions::is_true(&decision.status.conditions, FAILED));
    assert_eq!(decision.requeue_after, Some(Duration::from_secs(60)));
    // Nor does a deleted pool reopen it.
    let decision = decide(DecideInput {
        dependencies: Gate::Open,
        frames_held: None,
        policy: Default::default(),
        job: &job,
        state: JobState::NoPool,
        observed: &observed,
        grant: 0,
        now: now(),
    });
    assert_eq!(decision.status.phase, Some(JobPhase::Complete));
}

#[test]
fn pods_that_cannot_start_are_named_and_no_more_start() {
    let mut stuck = pod(0, 0, "Pending", None, "gpu-1");
    stuck.status.as_mut().unwrap().container_statuses = Some(vec![
        serde_json::from_value(
            json!({"name": "render", "image": "x", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"waiting": {"reason": "CreateContainerConfigError",
                "message": "secret \"render-s3\" not found"}}}),
        )
        .unwrap(),
    ]);
    let job = job_from_yaml();
    let (_, decision) = run(&job, std::slice::from_ref(&stuck), 3);
    assert!(decision.create.is_empty(), "{:?}", names(&decision.create));
    let blocked = decision
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == conditions::PODS_BLOCKED)
        .unwrap();
    assert_eq!(
        (blocked.status.as_str(), blocked.reason.as_str()),
        ("True", "SecretNotFound")
    );
    assert!(
        decision
            .events
            .iter()
            .any(|e| e.reason == "SecretNotFound" && e.warning)
    );
    // Once the pod runs, the condition clears and shards start again.
    let mut job = job;
    job.status = Some(decision.status);
    let running = pod(0, 0, "Running", None, "gpu-1");
    let (_, decision) = run(&job, &[running], 3);
    assert_eq!(decision.create.len(), 3);
    let blocked = decision
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == conditions::PODS_BLOCKED)
        .unwrap();
    assert_eq!(
        (blocked.status.as_str(), blocked.reason.as_str()),
        ("False", "PodsStarted")
    );
}

#[test]
fn without_a_grant_the_job_is_queued() {
    let (_, decision) = run(&job_from_yaml(), &[], 0);
    assert!(decision.create.is_empty());
    assert_eq!(decision.status.phase, Some(JobPhase::Queued));
    assert!(!conditions::is_true(&decision.status.conditions, RENDERING));
}

#[test]
fn a_failed_attempt_retries_after_backoff_avoiding_its_node() {
    let job = job_from_yaml();
    // The fixture's backoff is 0 s, so the retry is due at once.
    let pods = [
        pod(0, 0, "Failed", Some(1), "gpu-node-1"),
        pod(1, 0, "Running", None, "gpu-node-2"),
    ];
    let (assessment, decision) = run(&job, &pods, 1);
    assert_eq!(
        assessment.ready[0],
        ReadyShard {
            shard: 0,
            attempt: 1,
            avoid: Arc::new(Avoidance {
                required: BTreeSet::from(["gpu-node-1".to_string()]),
                preferred: BTreeSet::new(),
            })
        }
    );
    assert_eq!(names(&decision.create), ["shot010-0-1"]);
    assert_eq!(decision.status.shard_attempts.to_string(), "0:1");
    let failure = decision.status.last_failure.clone().unwrap();
    assert_eq!(
        (failure.shard, failure.node.as_deref()),
        (0, Some("gpu-node-1"))
    );
}

#[test]
fn backoff_doubles_up_to_its_cap() {
    let policy = RetryPolicy {
        backoff_seconds: 10,
        max_backoff_seconds: 60,
        ..Default::default()
    };
    let secs: Vec<i64> = (1..=5).map(|n| backoff(&policy, n).as_secs()).collect();
    assert_eq!(secs, [10, 20, 40, 60, 60]);
}

#[test]
fn waiting_for_backoff_requeues_at_the_retry_time() {
    let mut job = job_from_yaml();
    job.spec.retry.as_mut().unwrap().backoff_seconds = 60;
    job.spec.retry.as_mut().unwrap().max_backoff_seconds = 60;
    let mut failed = pod(0, 0, "Failed", Some(1), "gpu-node-1");
    // Finished 10 s before now.
    let finished = now().checked_sub(SignedDuration::from_secs(10)).unwrap();
    failed
        .status
        .as_mut()
        .unwrap()
        .container_statuses
        .as_mut()
        .unwrap()[0]
        .state
        .as_mut()
        .unwrap()
        .terminated
        .as_mut()
        .unwrap()
        .finished_at = Some(Time(finished));
    let (assessment, decision) = run(&job, &[failed], 8);
    assert!(!assessment.ready.iter().any(|r| r.shard == 0));
    assert!(!names(&decision.create).contains(&"shot010-0-1".to_string()));
    // Every other shard was granted, so only the backoff wakes the job: 60 s after the failure.
    assert_eq!(decision.requeue_after, Some(Duration::from_secs(50)));
}

#[test]
fn a_bad_scene_fails_the_job_at_once_naming_shard_node_and_reason() {
    let pods = [
        pod(2, 0, "Failed", Some(3), "gpu-node-1"),
        pod(1, 0, "Running", None, "gpu-node-2"),
    ];
    let (_, decision) = run(&job_from_yaml(), &pods, 4);
    let status = &decision.status;
    assert_eq!(status.phase, Some(JobPhase::Failed));
    let failed = status
        .conditions
        .iter()
        .find(|c| c.type_ == FAILED)
        .unwrap();
    assert_eq!(failed.reason, "ShardFailed");
    assert!(
        failed.message.contains("shard 2 failed on node gpu-node-1"),
        "{}",
        failed.message
    );
    assert!(failed.message.contains("BadInput"), "{}", failed.message);
    assert_eq!(decision.delete, ["shot010-1-0"]);
    assert!(decision.create.is_empty());
}

#[test]
fn exhausted_attempts_fail_the_job() {
    let pods = [
        pod(5, 0, "Failed", Some(1), "gpu-node-1"),
        pod(5, 1, "Failed", Some(1), "gpu-node-2"),
        pod(5, 2, "Failed", Some(1), "gpu-node-3"),
    ];
    let (assessment, decision) = run(&job_from_yaml(), &pods, 4);
    assert_eq!(assessment.failed.to_string(), "5");
    assert_eq!(decision.status.phase, Some(JobPhase::Failed));
    assert_eq!(decision.status.failed_shards.to_string(), "5");
}

#[test]
fn a_node_at_the_failure_threshold_is_excluded_for_every_shard() {
    let pods = [
        pod(0, 0, "Failed", Some(1), "bad-node"),
        pod(1, 0, "Failed", Some(1), "bad-node"),
        pod(2, 0, "Failed", Some(1), "bad-node"),
    ];
    let (assessment, decision) = run(&job_from_yaml(), &pods, 8);
    assert!(
        assessment
            .ready
            .iter()
            .all(|r| r.avoid.required.contains("bad-node"))
    );
    assert_eq!(
        decision
            .events
            .iter()
            .filter(|e| e.reason == "NodeExcluded")
            .count(),
        1
    );
}

#[test]
fn avoidance_never_excludes_every_ready_node_and_suspects_are_soft() {
    let nodes = PoolNodes {
        ready: std::sync::Arc::new(BTreeSet::from(["a".to_string(), "b".to_string()])),
        suspects: BTreeSet::from(["c".to_string()]),
    };
    let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        nodes.avoidance(set(&["a"])),
        Avoidance {
            required: set(&["a"]),
            preferred: set(&["c"])
        }
    );
    // Avoiding every ready node would leave the pod pending forever: only prefer.
    assert_eq!(
        nodes.avoidance(set(&["a", "b"])),
        Avoidance {
            required: set(&[]),
            preferred: set(&["a", "b", "c"])
        }
    );
}

#[test]
fn evictions_retry_without_counting() {
    let mut evicted = pod(0, 0, "Failed", None, "gpu-node-1");
    evicted.status.as_mut().unwrap().reason = Some("Evicted".into());
    let (assessment, decision) = run(&job_from_yaml(), &[evicted], 8);
    assert!(decision.status.failed_attempts.is_empty());
    assert_eq!(decision.status.disrupted_attempts, 1);
    assert_eq!(assessment.ready[0].attempt, 1);
}

#[test]
fn frames_merge_as_their_shards_finish_then_the_manifest_completes_the_job() {
    // Frames 1-3 (shards 0-5) rendered, frame 4 still rendering: frames 1-3 merge now.
    let mut pods: Vec<Pod> = (0..6)
        .map(|s| pod(s, 0, "Succeeded", Some(0), "gpu-node-1"))
        .collect();
    pods.extend((6..8).map(|s| pod(s, 0, "Running", None, "gpu-node-2")));
    let (_, decision) = run(&job_from_yaml(), &pods, 8);
    assert_eq!(names(&decision.create), ["shot010-merge-0-0"]);
    let annotations = decision.create[0].metadata.annotations.clone().unwrap();
    assert_eq!(annotations["tessera.dev/merge-step"], r#"{"chunks":"0-2"}"#);
    assert!(conditions::is_true(&decision.status.conditions, MERGING));
    assert_eq!(decision.status.frames_done, None);

    // That merge succeeded: frames 1-3 are done while frame 4 renders.
    pods.push(step_pod(
        "shot010-merge-0-0",
        r#"{"chunks":"0-2"}"#,
        0,
        0,
        "",
    ));
    let (_, decision) = run(&job_from_yaml(), &pods, 8);
    assert_eq!(decision.status.frames_done.as_deref(), Some("1-3"));
    assert_eq!(decision.status.merged_chunks.to_string(), "0-2");
    assert!(decision.events.iter().any(|e| e.reason == "FramesMerged"));
    assert!(decision.create.is_empty());

    // Frame 4 rendered: its own merge (the ledger holds frames 1-3; their pod goes).
    let mut job = job_from_yaml();
    job.status = Some(decision.status.clone());
    for p in pods.iter_mut().skip(6).take(2) {
        let shard = p.metadata.labels.as_ref().unwrap()["tessera.dev/shard"]
            .parse()
            .unwrap();
        *p = pod(shard, 0, "Succeeded", Some(0), "gpu-node-2");
    }
    let (_, decision) = run(&job, &pods, 8);
    assert_eq!(names(&decision.create), ["shot010-merge-3-0"]);
    assert!(decision.delete.contains(&"shot010-merge-0-0".to_string()));
    assert_eq!(decision.status.phase, Some(JobPhase::Merging));
    assert_eq!(decision.status.progress.as_deref(), Some("100%"));

    // Every frame merged: the job manifest, last; then Complete.
    pods.push(step_pod("shot010-merge-3-0", r#"{"chunks":"3"}"#, 0, 0, ""));
    let (_, decision) = run(&job, &pods, 8);
    assert_eq!(names(&decision.create), ["shot010-manifest-0"]);
    assert_eq!(decision.status.frames_done.as_deref(), Some("1-4"));
    pods.push(step_pod("shot010-manifest-0", r#""manifest""#, 0, 0, ""));
    let (_, decision) = run(&job, &pods, 8);
    assert_eq!(decision.status.phase, Some(JobPhase::Complete));
}

fn merge_pod(attempt: u32, exit_code: i32, message: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("shot010-merge-{attempt}"), "namespace": "lighting",
            "labels": {"tessera.dev/role": "merge", "tessera.dev/attempt": attempt.to_string()},
            "annotations": {"tessera.dev/merge-attempts": ""}},
        "status": {"phase": if exit_code == 0 { "Succeeded" } else { "Failed" }, "containerStatuses": [{
            "name": "merge", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": exit_code, "message": message,
                "startedAt": "2027-01-15T08:01:00Z", "finishedAt": "2027-01-15T08:02:00Z"}}}]},
    }))
    .unwrap()
}

/// A merge pod of the fixture job with its step annotation (JSON), read with no shard
/// re-rendered (every attempt 0).
fn step_pod(name: &str, step: &str, attempt: u32, exit_code: i32, message: &str) -> Pod {
    let mut pod = merge_pod(attempt, exit_code, message);
    pod.metadata.name = Some(name.into());
    pod.metadata
        .annotations
        .get_or_insert_default()
        .insert("tessera.dev/merge-step".into(), step.into());
    pod
}

#[test]
fn corrupt_outputs_found_by_the_merge_are_rendered_again_then_merged_again() {
    let mut pods: Vec<Pod> = (0..8)
        .map(|s| pod(s, 0, "Succeeded", Some(0), "gpu-node-1"))
        .collect();
    pods.push(merge_pod(
        0,
        4,
        r#"{"shards": "3", "reason": "sha256 mismatch"}"#,
    ));
    let (assessment, decision) = run(&job_from_yaml(), &pods, 8);
    assert_eq!(assessment.invalidated.to_string(), "3");
    // The frames whose shards are sound merge now; shard 3 renders again.
    assert_eq!(
        names(&decision.create),
        ["shot010-merge-0-0", "shot010-3-1"]
    );
    assert_eq!(decision.status.succeeded_shards.to_string(), "0-2,4-7");
    assert!(decision.events.iter().any(|e| e.reason == "OutputCorrupt"));

    // Shard 3's new attempt succeeds: frame 2 merges again, reading attempt 1 of shard 3.
    pods.push(pod(3, 1, "Succeeded", Some(0), "gpu-node-2"));
    pods.push(step_pod(
        "shot010-merge-0-0",
        r#"{"chunks":"0,2-3"}"#,
        0,
        0,
        "",
    ));
    let mut job = job_from_yaml();
    job.status = Some(decision.status.clone());
    let (_, decision) = run(&job, &pods, 8);
    assert_eq!(names(&decision.create), ["shot010-merge-1-0"]);
    let annotations = decision.create[0].metadata.annotations.clone().unwrap();
    assert_eq!(annotations["tessera.dev/merge-attempts"], "3:1");
}

/// A merge pod of an operator from before merge steps (no step annotation) merged everything
/// at once: it still completes the job after an upgrade.
#[test]
fn a_successful_merge_completes_the_job() {
    let mut pods: Vec<Pod> = (0..8)
        .map(|s| pod(s, 0, "Succeeded", Some(0), "gpu-node-1"))
        .collect();
    pods.push(merge_pod(0, 0, ""));
    let (_, decision) = run(&job_from_yaml(), &pods, 8);
    assert!(decision.create.is_empty());
    assert_eq!(decision.status.phase, Some(JobPhase::Complete));
    assert!(conditions::is_true(&decision.status.conditions, COMPLETE));
    assert!(decision.status.completion_time.is_some());
}

fn run_gated(job: &RenderJob, pods: &[Pod], gate: Gate) -> Decision {
    run_with(job, pods, 8, gate).1
}

fn dependent_job() -> RenderJob {
    let mut job = job_from_yaml();
    job.spec.depends_on = vec![crate::api::Dependency {
        name: "layout".into(),
        frame_by_frame: false,
    }];
    job
}

#[test]
fn a_job_waits_for_its_dependencies_then_starts() {
    let waiting = run_gated(
        &dependent_job(),
        &[],
        Gate::Waiting("waiting for job layout (Rendering)".into()),
    );
    assert!(waiting.create.is_empty());
    assert_eq!(waiting.status.phase, Some(JobPhase::Queued));
    let ready = waiting
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == DEPENDENCIES_READY)
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "WaitingForDependencies")
    );
    assert!(ready.message.contains("layout (Rendering)"));
    assert!(waiting.requeue_after.is_some());

    let open = run_gated(&dependent_job(), &[], Gate::Open);
    assert_eq!(open.create.len(), 8);
    assert!(conditions::is_true(
        &open.status.conditions,
        DEPENDENCIES_READY
    ));

    // Once started, a job no longer looks at its dependencies.
    let mut started = dependent_job();
    started.status = Some(open.status.clone());
    let later = run_gated(&started, &[], Gate::Waiting("anything".into()));
    assert_ne!(later.status.phase, Some(JobPhase::Queued));
}

#[test]
fn a_failed_dependency_or_a_cycle_fails_the_job_before_it_starts() {
    let broken = run_gated(
        &dependent_job(),
        &[],
        Gate::Broken {
            reason: "DependencyCycle",
            message: "spec.dependsOn forms a cycle: shot010 -> layout -> shot010".into(),
        },
    );
    assert!(broken.create.is_empty());
    assert_eq!(broken.status.phase, Some(JobPhase::Failed));
    let failed = broken
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == FAILED)
        .unwrap();
    assert_eq!(failed.reason, "DependencyCycle");
    assert!(failed.message.contains("shot010 -> layout -> shot010"));
}

fn partial_job() -> RenderJob {
    let mut job = job_from_yaml();
    let retry = job.spec.retry.as_mut().unwrap();
    retry.max_failed_shards = 1;
    retry.allow_missing_frames = true;
    job
}

#[test]
fn a_job_that_accepts_missing_frames_keeps_rendering_then_merges_the_rest() {
    // 4 frames x 2 tiles: shard 2 (frame 2's left tile) fails on bad input while others run.
    let mut pods = vec![
        pod(2, 0, "Failed", Some(3), "gpu-node-1"),
        pod(1, 0, "Running", None, "gpu-node-2"),
    ];
    let (_, decision) = run(&partial_job(), &pods, 8);
    assert_eq!(decision.status.phase, Some(JobPhase::Rendering));
    assert_eq!(decision.status.missing_frames.as_deref(), Some("2"));
    assert!(decision.delete.is_empty());

    // Everything else succeeds: the merge leaves shard 2's frame out.
    pods = (0..8)
        .filter(|&s| s != 2)
        .map(|s| pod(s, 0, "Succeeded", Some(0), "gpu-node-1"))
        .collect();
    pods.push(pod(2, 0, "Failed", Some(3), "gpu-node-1"));
    let (_, decision) = run(&partial_job(), &pods, 8);
    assert_eq!(names(&decision.create), ["shot010-merge-0-0"]);
    let args = decision.create[0].spec.as_ref().unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    let spec: tessera_shard::contract::MergeSpec = serde_json::from_str(&args[2]).unwrap();
    assert_eq!(spec.missing.to_string(), "2");

    // The frames merge; the job manifest lists the missing frame; Complete, with a reason
    // that says it is partial.
    pods.push(step_pod(
        "shot010-merge-0-0",
        r#"{"chunks":"0,2-3"}"#,
        0,
        0,
        "",
    ));
    let (_, decision) = run(&partial_job(), &pods, 8);
    assert_eq!(decision.status.frames_done.as_deref(), Some("1,3-4"));
    assert_eq!(names(&decision.create), ["shot010-manifest-0"]);
    pods.push(step_pod("shot010-manifest-0", r#""manifest""#, 0, 0, ""));
    let (_, decision) = run(&partial_job(), &pods, 8);
    assert_eq!(decision.status.phase, Some(JobPhase::Complete));
    let complete = decision
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == COMPLETE && c.status == "True")
        .unwrap();
    assert_eq!(complete.reason, "MissingFrames");
    assert!(
        complete.message.contains("3 of 4 frames written")
            && complete.message.contains("missing frames 2"),
        "{}",
        complete.message
    );
    assert_eq!(decision.status.missing_frames.as_deref(), Some("2"));
}

#[test]
fn missing_frames_beyond_the_budget_or_without_the_policy_fail_the_job() {
    let failed = [
        pod(2, 0, "Failed", Some(3), "gpu-node-1"),
        pod(5, 0, "Failed", Some(3), "gpu-node-1"),
    ];
    let (_, decision) = run(&partial_job(), &failed, 8);
    assert_eq!(decision.status.phase, Some(JobPhase::Failed));
    let mut strict = partial_job();
    strict.spec.retry.as_mut().unwrap().allow_missing_frames = false;
    let pods: Vec<Pod> = (0..8)
        .map(|s| match s {
            2 => pod(2, 0, "Failed", Some(3), "gpu-node-1"),
            s => pod(s, 0, "Succeeded", Some(0), "gpu-node-1"),
        })
        .collect();
    // The frames that rendered are merged first; then the job fails.
    let (_, decision) = run(&strict, &pods, 8);
    assert_eq!(decision.status.phase, Some(JobPhase::Merging));
    assert_eq!(names(&decision.create), ["shot010-merge-0-0"]);
    assert!(!conditions::is_true(&decision.status.conditions, FAILED));
    let mut pods = pods;
    pods.push(step_pod(
        "shot010-merge-0-0",
        r#"{"chunks":"0,2-3"}"#,
        0,
        0,
        "",
    ));
    let (_, decision) = run(&strict, &pods, 8);
    assert_eq!(decision.status.phase, Some(JobPhase::Failed));
    assert_eq!(decision.status.frames_done.as_deref(), Some("1,3-4"));
    assert_eq!(decision.status.missing_frames, None);
}

#[test]
fn suspending_deletes_pods_that_have_not_started() {
    let mut job = job_from_yaml();
    job.spec.suspend = true;
    let pods = [
        pod(0, 0, "Pending", None, "gpu-node-1"),
        pod(1, 0, "Running", None, "gpu-node-1"),
    ];
    let (_, decision) = run(&job, &pods, 8);
    assert!(decision.create.is_empty());
    assert_eq!(decision.delete, ["shot010-0-0"]);
    assert_eq!(decision.status.phase, Some(JobPhase::Suspended));
}

#[test]
fn the_active_deadline_fails_the_job_and_stops_its_pods() {
    let mut job = job_from_yaml();
    job.spec.active_deadline_seconds = Some(60);
    job.status = Some(RenderJobStatus {
        start_time: Some(Time(
            now().checked_sub(SignedDuration::from_secs(61)).unwrap(),
        )),
        ..Default::default()
    });
    let (_, decision) = run(&job, &[pod(0, 0, "Running", None, "gpu-node-1")], 8);
    assert_eq!(decision.status.phase, Some(JobPhase::Failed));
    assert_eq!(
        decision
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == FAILED)
            .unwrap()
            .reason,
        "DeadlineExceeded"
    );
    assert_eq!(decision.delete, ["shot010-0-0"]);
}

#[test]
fn a_finished_job_is_deleted_after_its_ttl() {
    let mut job = job_from_yaml();
    job.spec.ttl_seconds_after_finished = Some(100);
    let mut status = RenderJobStatus {
        phase: Some(JobPhase::Complete),
        ..Default::default()
    };
    conditions::set(
        &mut status.conditions,
        COMPLETE,
        true,
        "FramesWritten",
        "",
        Some(1),
        now(),
    );
    status.completion_time = Some(Time(
        now().checked_sub(SignedDuration::from_secs(40)).unwrap(),
    ));
    job.status = Some(status.clone());
    let (_, decision) = run(&job, &[], 8);
    assert!(!decision.delete_job);
    assert_eq!(decision.requeue_after, Some(Duration::from_secs(60)));
    status.completion_time = Some(Time(
        now().checked_sub(SignedDuration::from_secs(100)).unwrap(),
    ));
    job.status = Some(status);
    let (_, decision) = run(&job, &[], 8);
    assert!(decision.delete_job);
}

#[test]
fn status_alone_keeps_succeeded_shards_after_their_pods_are_gone() {
    let mut job = job_from_yaml();
    job.status = Some(RenderJobStatus {
        succeeded_shards: IndexSet::parse("0-3").unwrap(),
        shard_attempts: AttemptMap::parse("2:1").unwrap(),
        ..Default::default()
    });
    let (assessment, decision) = run(&job, &[], 8);
    assert_eq!(assessment.succeeded.to_string(), "0-3");
    // Frames 1-2 merge (their shards' pods are long gone) while 3-4 render.
    assert_eq!(
        names(&decision.create),
        [
            "shot010-merge-0-0",
            "shot010-4-0",
            "shot010-5-0",
            "shot010-6-0",
            "shot010-7-0"
        ]
    );
}

#[test]
fn the_status_of_an_unchanged_job_is_identical() {
    let job = job_from_yaml();
    let pods = [pod(0, 0, "Running", None, "gpu-node-1")];
    let (_, first) = run(&job, &pods, 0);
    let mut job = job.clone();
    job.status = Some(first.status.clone());
    let (_, second) = run(&job, &pods, 0);
    assert_eq!(second.status, first.status);
    assert!(second.events.is_empty());
}

#[test]
fn a_finished_pod_goes_only_after_the_status_that_records_it() {
    let job = job_from_yaml();
    let pods = [
        pod(0, 0, "Succeeded", Some(0), "gpu-node-1"),
        pod(1, 0, "Failed", Some(1), "gpu-node-1"),
    ];
    let (_, first) = run(&job, &pods, 8);
    assert!(first.delete.is_empty() && first.release.is_empty());
    // Shard 0 succeeded: its settled count is implied; shard 1 retries: listed.
    assert_eq!(first.status.settled_attempts.to_string(), "1:1");
    let recorded = Ledger::from_status(&first.status);
    assert_eq!(
        (recorded.settled_count(0), recorded.settled_count(1)),
        (1, 1)
    );
    assert_eq!(first.status.failed_attempts.to_string(), "1:1");
    assert_eq!(first.status.gpu_seconds, 60.0);
    let (_, _, second) = run_twice(&job, &pods, 8);
    assert_eq!(second.release, ["shot010-0-0", "shot010-1-0"]);
    // Shard 1 has not succeeded: its failed pod stays (its retry avoids that node).
    assert_eq!(second.delete, ["shot010-0-0"]);
    // Accounting does not change on the second pass, and not once the pods are gone.
    assert_eq!(second.status.gpu_seconds, 60.0);
    assert_eq!(second.status.failed_attempts.to_string(), "1:1");
    let mut gone = job.clone();
    gone.status = Some(second.status.clone());
    let (_, third) = run(&gone, &[], 8);
    assert_eq!(third.status.gpu_seconds, 60.0);
    assert_eq!(third.status.failed_attempts.to_string(), "1:1");
    assert_eq!(third.status.succeeded_shards.to_string(), "0");
    // Shard 1's pod is gone but its attempt 0 is accounted: the retry is attempt 1.
    assert!(names(&third.create).contains(&"shot010-1-1".to_string()));
}

#[test]
fn a_settlement_left_unwritten_is_judged_the_same_by_the_next_pass() {
    let running = [
        pod(0, 0, "Running", None, "gpu-node-1"),
        pod(1, 0, "Running", None, "gpu-node-1"),
        pod(2, 0, "Running", None, "gpu-node-2"),
    ];
    let (job, _, _) = run_twice(&job_from_yaml(), &running, 1);
    let recorded = job.status.clone().unwrap();
    // Shards 0 and 2 (of different frames: no merge starts).
    let pods = [
        pod(0, 0, "Succeeded", Some(0), "gpu-node-1"),
        pod(1, 0, "Running", None, "gpu-node-1"),
        pod(2, 0, "Succeeded", Some(0), "gpu-node-2"),
    ];
    let (_, first) = run(&job, &pods, 0);
    assert_eq!(first.status.succeeded_shards.to_string(), "0,2");
    assert!(crate::status::may_wait(&recorded, &first.status));
    assert!(first.delete.is_empty() && first.collect_blocks.is_empty());
    // The write waits: the next pass reads the same recorded status and pods.
    let (_, second) = run(&job, &pods, 0);
    assert_eq!(second.status, first.status);
    assert!(second.delete.is_empty() && second.collect_blocks.is_empty());

    // A failed attempt is written at once: its shard's retry soon hides it from the next
    // pass, which would not name it the last failure.
    let failed = [
        pod(0, 0, "Succeeded", Some(0), "gpu-node-1"),
        pod(1, 0, "Failed", Some(1), "gpu-node-1"),
        pod(2, 0, "Running", None, "gpu-node-2"),
    ];
    let (_, first) = run(&job, &failed, 1);
    assert_eq!(first.status.last_failure.as_ref().map(|f| f.shard), Some(1));
    assert!(!crate::status::may_wait(&recorded, &first.status));
    let mut retried = failed.to_vec();
    retried.extend(first.create.iter().cloned());
    let (_, second) = run(&job, &retried, 1);
    assert_eq!(second.status.last_failure, None);
}

#[test]
fn a_shard_failed_for_good_stays_the_reason_when_the_failing_job_deletes_pods() {
    let mut deleted = pod(3, 0, "Pending", None, "gpu-node-2");
    deleted.metadata.deletion_timestamp = Some(Time(now()));
    let pods = [
        pod(0, 0, "Running", None, "gpu-node-1"),
        pod(1, 0, "Failed", Some(3), "gpu-node-1"),
        deleted,
    ];
    // Both orders: the deleted pod seen in the pass that fails the job (its status write
    // refused, say), and in the pass after it.
    let (_, failing) = run(&job_from_yaml(), &pods, 8);
    let (failed, _, _) = run_twice(&job_from_yaml(), &pods[..2], 8);
    let (_, after) = run(&failed, &pods, 8);
    for decision in [failing, after] {
        let reason = decision.status.last_failure.clone().unwrap();
        assert_eq!((reason.shard, reason.reason.as_str()), (1, "BadInput"));
        assert_eq!(decision.status.phase, Some(JobPhase::Failed));
        let failed = decision
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == FAILED);
        assert!(failed.unwrap().message.starts_with("shard 1 failed"));
    }
}

#[test]
fn failure_budgets_survive_the_pods_that_counted_them() {
    let mut job = job_from_yaml();
    job.spec.retry.as_mut().unwrap().attempts_per_shard = 2;
    let pods = [pod(5, 0, "Failed", Some(1), "gpu-node-1")];
    let (job, _, _) = run_twice(&job, &pods, 8);
    // Attempt 0's pod deleted by someone; attempt 1 fails too: the shard is out of attempts.
    let pods = [pod(5, 1, "Failed", Some(1), "gpu-node-2")];
    let (_, decision) = run(&job, &pods, 8);
    assert_eq!(decision.status.failed_attempts.to_string(), "5:2");
    assert_eq!(decision.status.failed_shards.to_string(), "5");
    assert_eq!(decision.status.phase, Some(JobPhase::Failed));
}

#[test]
fn a_timed_out_attempt_counts_and_its_retry_avoids_the_node() {
    let mut hung = pod(3, 0, "Failed", None, "gpu-node-2");
    let status = hung.status.as_mut().unwrap();
    status.reason = Some("DeadlineExceeded".into());
    status.message = Some("Pod was active on the node longer than the specified deadline".into());
    let (assessment, decision) = run(&job_from_yaml(), &[hung], 8);
    assert_eq!(decision.status.failed_attempts.to_string(), "3:1");
    assert_eq!(
        decision.status.last_failure.as_ref().unwrap().reason,
        "Timeout"
    );
    let retry = assessment.ready.iter().find(|r| r.shard == 3).unwrap();
    assert_eq!(retry.attempt, 1);
    assert!(retry.avoid.required.contains("gpu-node-2"));
}

#[test]
fn suspend_pauses_the_active_deadline() {
    let mut job = job_from_yaml();
    job.spec.active_deadline_seconds = Some(100);
    let started = now().checked_sub(SignedDuration::from_secs(90)).unwrap();
    job.status = Some(RenderJobStatus {
        start_time: Some(Time(started)),
        ..Default::default()
    });
    job.spec.suspend = true;
    let (_, suspended) = run(&job, &[], 8);
    assert_eq!(suspended.status.suspend_time, Some(Time(now())));
    // Resumed an hour later: the hour does not count, 10 s of the deadline are left.
    job.spec.suspend = false;
    let mut status = suspended.status.clone();
    // It had run 90 s when it was suspended, an hour ago.
    status.start_time = Some(Time(
        now().checked_sub(SignedDuration::from_secs(3690)).unwrap(),
    ));
    status.suspend_time = Some(Time(
        now().checked_sub(SignedDuration::from_secs(3600)).unwrap(),
    ));
    job.status = Some(status);
    let (_, resumed) = run(&job, &[], 8);
    assert_ne!(resumed.status.phase, Some(JobPhase::Failed));
    assert_eq!(resumed.status.suspended_seconds, 3600);
    assert_eq!(resumed.status.suspend_time, None);
    // The next look is when the remaining 10 s of the deadline run out.
    assert_eq!(resumed.requeue_after, Some(Duration::from_secs(10)));
    let mut later = job.clone();
    later.status = Some(resumed.status.clone());
    later.status.as_mut().unwrap().suspended_seconds = 3590; // as if resumed 10 s ago
    let (_, expired) = run(&later, &[], 8);
    assert_eq!(expired.status.phase, Some(JobPhase::Failed));
}

#[test]
fn a_hand_edited_status_cannot_panic_the_decision() {
    let mut job = job_from_yaml();
    job.status = Some(
        serde_json::from_value(json!({
            "succeededShards": "0-99999", "failedShards": "77777",
            "shardAttempts": "0-7:99999", "settledAttempts": "3:99999",
            "shards": {"total": 1, "succeeded": 99, "failed": 99, "active": 99, "waiting": 99},
            "gpuSeconds": 1e308, "suspendedSeconds": 9223372036854775807i64,
        }))
        .unwrap(),
    );
    job.spec.active_deadline_seconds = Some(i64::MAX);
    let (_, decision) = run(&job, &[pod(3, 99999, "Failed", Some(1), "n")], 8);
    // Out-of-plan indices are dropped; counts are recomputed.
    assert_eq!(decision.status.shards.total, 8);
    assert!(decision.status.succeeded_shards.iter().all(|s| s < 8));
}

/// The RenderJob as stored after a pass over a job of `frames` × 2×2 tiles in its last
/// stretch: 200 shards running, 1% of shards retried once after failing on one of 1,000 nodes
/// with cloud-length names, the rest succeeded. Answers (shards, serialized bytes).
fn stored_size_near_the_end(frames: &str) -> (u32, usize) {
    let mut job = job_from_yaml();
    job.spec.frames = frames.into();
    job.spec.sharding.tiles.rows = 2;
    let pool = pool_from_yaml();
    let valid = ValidJob::new(&job, &pool).unwrap();
    let shards = valid.shard_count();
    let at = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
    let node = |i: u32| {
        format!(
            "ip-10-{}-{}-{}.us-west-2.compute.internal",
            i % 7,
            i % 251,
            i % 1000
        )
    };
    let attempt = |n: u32, node: String, state: AttemptState| crate::observe::Attempt {
        pod: String::new(),
        attempt: n,
        node: Some(node),
        finished: (!matches!(state, AttemptState::Running)).then(|| at(300)),
        state,
        started: Some(at(0)),
        gpus: 1,
        terminating: false,
        finalizer: true,
        block: None,
        merge_inputs: None,
        merge_step: None,
        merge_id: None,
        waiting: None,
        unschedulable: false,
    };
    let mut observed = Observed::default();
    for shard in 0..shards {
        let attempts = if shard >= shards - 200 {
            vec![attempt(0, node(shard), AttemptState::Running)]
        } else if shard % 100 == 7 {
            let failed = AttemptState::Failed(crate::observe::Failure {
                kind: FailureKind::Retryable,
                reason: "Error".into(),
                message: "exit code 1: CUDA error: an illegal memory access was encountered".into(),
            });
            vec![
                attempt(0, node(shard.wrapping_mul(2_654_435_761)), failed),
                attempt(1, node(shard), AttemptState::Succeeded),
            ]
        } else {
            vec![attempt(0, node(shard), AttemptState::Succeeded)]
        };
        observed.shards.insert(shard, attempts);
    }
    let mut ledger = Ledger::default();
    let settled = ledger.settle(&observed, shards, &IndexSet::new(), at(400));
    let assessment = assess(&valid, &observed, &ledger, &PoolNodes::default(), at(400));
    let decision = decide(DecideInput {
        dependencies: Gate::Open,
        frames_held: None,
        policy: Default::default(),
        job: &job,
        state: JobState::Planned(Planned {
            job: &valid,
            assessment: &assessment,
            ledger: &ledger,
            settled: &settled,
        }),
        observed: &observed,
        grant: 0,
        now: at(400),
    });
    let mut stored = job.clone();
    stored.status = Some(decision.status);
    (shards, serde_json::to_vec(&stored).unwrap().len())
}

#[test]
fn the_status_stays_under_64_kib_at_ten_thousand_and_a_hundred_thousand_shards() {
    for (frames, expected) in [("1-2500", 10_000), ("1-25000", 100_000)] {
        let (shards, bytes) = stored_size_near_the_end(frames);
        println!("{shards} shards: RenderJob {bytes} bytes");
        assert_eq!(shards, expected);
        assert!(
            bytes < 64 * 1024,
            "{shards} shards: the RenderJob is {bytes} bytes"
        );
    }
}

/// The fixture job with speculation at 3× the median, and a ledger that has seen 6 shards
/// succeed in about 30 s each.
fn speculating_job() -> RenderJob {
    let mut job = job_from_yaml();
    job.spec.retry.as_mut().unwrap().speculative_factor = Some(3);
    job.status = Some(RenderJobStatus {
        succeeded_shards: IndexSet::parse("2-7").unwrap(),
        succeeded_durations: tessera_shard::AttemptMap::parse(&format!(
            "{}:6",
            crate::ledger::duration_bucket(30.0)
        ))
        .unwrap(),
        ..Default::default()
    });
    job
}

/// A running pod of the fixture job that started `ago` seconds before `now()`.
fn running_since(shard: u32, attempt: u32, node: &str, ago: i64) -> Pod {
    let mut pod = pod(shard, attempt, "Running", None, node);
    let started = now().checked_sub(SignedDuration::from_secs(ago)).unwrap();
    pod.status.as_mut().unwrap().start_time = Some(Time(started));
    pod
}

#[test]
fn a_shard_far_slower_than_the_median_gets_one_speculative_attempt_elsewhere() {
    let job = speculating_job();
    let pods = [
        running_since(0, 0, "slow-node", 200), // > 3 × ~30 s
        running_since(1, 0, "gpu-node-2", 40),
    ];
    let (assessment, decision) = run(&job, &pods, 8);
    assert_eq!(assessment.speculative.len(), 1);
    let extra = &assessment.speculative[0];
    assert_eq!((extra.shard, extra.attempt), (0, 1));
    assert!(extra.avoid.required.contains("slow-node"));
    assert_eq!(
        names(&decision.create),
        ["shot010-merge-1-0", "shot010-0-1"]
    );
    // The attempt map keeps the running attempt until one of them succeeds.
    assert_eq!(decision.status.shard_attempts.get(0), 0);
    assert!(
        decision
            .events
            .iter()
            .any(|e| e.reason == "SpeculativeAttempt")
    );
    // Shard 1 becomes slow 3 × median after its start: the job looks again then.
    assert!(
        decision
            .requeue_after
            .is_some_and(|d| d <= Duration::from_secs(60))
    );
    // No second extra attempt while two run.
    let mut job = job.clone();
    job.status = Some(decision.status.clone());
    let pods = [
        running_since(0, 0, "slow-node", 260),
        running_since(0, 1, "gpu-node-3", 10),
        running_since(1, 0, "gpu-node-2", 50),
    ];
    let (assessment, _) = run(&job, &pods, 8);
    assert!(assessment.speculative.is_empty());
}

#[test]
fn the_first_attempt_to_succeed_wins_and_the_other_is_stopped_and_not_blamed() {
    let job = speculating_job();
    let pods = [
        running_since(0, 0, "slow-node", 300),
        pod(0, 1, "Succeeded", Some(0), "gpu-node-3"),
    ];
    let (assessment, decision) = run(&job, &pods, 8);
    // Attempt 1 won, but the ledger holds it only once attempt 0 has ended.
    assert!(!assessment.succeeded.contains(0));
    assert_eq!(decision.status.shard_attempts.get(0), 1);
    assert_eq!(assessment.superseded, ["shot010-0-0"]);
    assert!(decision.delete.contains(&"shot010-0-0".to_string()));
    // The loser, stopped, ends Failed while terminating: superseded, not a failure.
    let mut job = job.clone();
    job.status = Some(decision.status.clone());
    let mut loser = pod(0, 0, "Failed", Some(143), "slow-node");
    loser.metadata.deletion_timestamp = Some(Time(now()));
    let (_, decision) = run(
        &job,
        &[loser, pod(0, 1, "Succeeded", Some(0), "gpu-node-3")],
        8,
    );
    let status = &decision.status;
    assert!(status.succeeded_shards.contains(0));
    // The race is remembered for the merge, which compares what the loser wrote.
    assert_eq!(
        status.speculative_races,
        [crate::api::SpeculativeRace { shard: 0, loser: 0 }]
    );
    assert!(status.failed_attempts.is_empty());
    assert!(status.node_failures.is_empty());
    assert_eq!(status.disrupted_attempts, 1);
    assert!(
        !decision
            .events
            .iter()
            .any(|e| e.reason == "ShardAttemptFailed")
    );
}
