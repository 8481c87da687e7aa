use tessera_shard::{FrameList, PlanInput};

use super::*;
use crate::observe::Failure;

/// 4 frames, one per chunk; 2×1 tiles × `splits` sample splits.
fn plan_of(splits: u32) -> ShardPlan {
    ShardPlan::new(PlanInput {
        frames: FrameList::parse("1-4").unwrap(),
        width: 8,
        height: 8,
        samples_per_pixel: 8,
        frames_per_shard: 1,
        tiles_x: 2,
        tiles_y: 1,
        sample_splits: splits,
    })
    .unwrap()
}

fn set(text: &str) -> IndexSet {
    IndexSet::parse(text).unwrap()
}

fn pod(name: &str, step: MergeStep, attempt: u32, state: AttemptState) -> Attempt {
    Attempt {
        pod: name.into(),
        attempt,
        node: None,
        state,
        started: None,
        finished: None,
        gpus: 0,
        terminating: false,
        finalizer: false,
        block: None,
        merge_inputs: Some(AttemptMap::new()),
        merge_step: Some(step),
        merge_id: name.strip_prefix("j-").map(String::from),
        waiting: None,
        unschedulable: false,
    }
}

fn failed(kind: FailureKind) -> AttemptState {
    AttemptState::Failed(Failure {
        kind,
        reason: "Error".into(),
        message: "storage unreachable".into(),
    })
}

struct Case {
    plan: ShardPlan,
    attempts: AttemptMap,
    succeeded: IndexSet,
    missing: IndexSet,
    merged: IndexSet,
    previewed: IndexSet,
    merges: Vec<Attempt>,
    max_concurrent: u32,
    now: Timestamp,
    rendering: bool,
}

impl Case {
    fn new(splits: u32, succeeded: &str) -> Self {
        Self {
            plan: plan_of(splits),
            attempts: AttemptMap::new(),
            succeeded: set(succeeded),
            missing: IndexSet::new(),
            merged: IndexSet::new(),
            previewed: IndexSet::new(),
            merges: Vec::new(),
            max_concurrent: 2,
            now: "2026-11-30T12:00:00Z".parse().unwrap(),
            rendering: true,
        }
    }

    fn run(&self) -> MergePlan {
        plan(&MergeInput {
            plan: &self.plan,
            attempts: &self.attempts,
            succeeded: &self.succeeded,
            missing: &self.missing,
            merged: &self.merged,
            previewed: &self.previewed,
            merges: &self.merges,
            max_concurrent: self.max_concurrent,
            previews: true,
            attempts_per_merge: 3,
            now: self.now,
            rendering: self.rendering,
        })
    }
}

#[test]
fn a_chunk_merges_as_soon_as_its_shards_are_rendered() {
    // Chunk 0 (shards 0-1) is rendered, chunk 1 half: one merge of chunk 0, nothing else.
    let case = Case::new(1, "0-2");
    let result = case.run();
    assert_eq!(
        result.start,
        vec![MergeStart {
            step: MergeStep::Chunks(set("0")),
            attempt: 0
        }]
    );
    assert_eq!(result.manifest, ManifestState::Waiting);
    assert!(result.merged.is_empty());
}

#[test]
fn after_the_first_merge_a_few_ready_chunks_gather_for_one_pod() {
    // 8 frames; chunk 0 merged by a pod that started 5 s ago; chunks 1-2 rendered, 3-7 not.
    let mut case = Case::new(1, "0-5");
    case.plan = ShardPlan::new(PlanInput {
        frames: FrameList::parse("1-8").unwrap(),
        ..case.plan.input().clone()
    })
    .unwrap();
    let mut first = pod(
        "j-merge-0-0",
        MergeStep::Chunks(set("0")),
        0,
        AttemptState::Succeeded,
    );
    first.started = Some(case.now - jiff::SignedDuration::from_secs(5));
    case.merges.push(first);
    case.merged = set("0");
    let result = case.run();
    assert!(result.start.is_empty(), "{:?}", result.start);
    assert_eq!(result.look_again_in, Some(Duration::from_secs(10)));
    // The gathering time is up: both go in one pod.
    case.now += jiff::SignedDuration::from_secs(10);
    let result = case.run();
    assert_eq!(result.start[0].step, MergeStep::Chunks(set("1-2")));
    assert_eq!(result.look_again_in, None);
    // Or nothing more will render (the rest failed, or the job is out of its failure
    // budget): a failing job merges what it has before it fails.
    case.now -= jiff::SignedDuration::from_secs(10);
    case.rendering = false;
    assert_eq!(case.run().start[0].step, MergeStep::Chunks(set("1-2")));
    case.rendering = true;
    // Or every chunk left is rendered: nothing more to wait for.
    case.succeeded = set("0-15");
    let result = case.run();
    assert_eq!(result.start[0].step, MergeStep::Chunks(set("1-7")));
}

#[test]
fn a_backlog_of_chunks_is_spread_over_the_free_merge_slots() {
    assert_eq!(chunks_per_merge(3, 2), 8);
    assert_eq!(chunks_per_merge(16, 2), 8);
    assert_eq!(chunks_per_merge(100, 4), 25);
    assert_eq!(chunks_per_merge(1000, 2), 64);
    assert_eq!(chunks_per_merge(10, 0), 10);
    // 40 frames rendered, 2 slots: two pods of 20 chunks, not two of 8.
    let mut case = Case::new(1, "0-79");
    case.plan = ShardPlan::new(PlanInput {
        frames: FrameList::parse("1-40").unwrap(),
        ..case.plan.input().clone()
    })
    .unwrap();
    let result = case.run();
    let steps: Vec<MergeStep> = result.start.iter().map(|s| s.step.clone()).collect();
    assert_eq!(
        steps,
        [
            MergeStep::Chunks(set("0-19")),
            MergeStep::Chunks(set("20-39"))
        ]
    );
}

#[test]
fn ready_chunks_share_merge_pods_up_to_the_concurrency_bound() {
    let mut case = Case::new(1, "0-7");
    case.max_concurrent = 1;
    let result = case.run();
    assert_eq!(result.start.len(), 1);
    assert_eq!(result.start[0].step, MergeStep::Chunks(set("0-3")));
    // One merge already running: no slot left, and its chunks are not merged twice.
    case.merges.push(pod(
        "j-merge-0-0",
        MergeStep::Chunks(set("0-1")),
        0,
        AttemptState::Running,
    ));
    let result = case.run();
    assert!(result.start.is_empty(), "{:?}", result.start);
    case.max_concurrent = 2;
    let result = case.run();
    assert_eq!(result.start[0].step, MergeStep::Chunks(set("2-3")));
    assert_eq!(result.running, 2);
}

#[test]
fn no_merge_starts_while_one_waits_for_room_on_a_node() {
    // Chunk 0 merges; chunks 1-3 are rendered too and two merge slots are free.
    let mut case = Case::new(1, "0-7");
    case.max_concurrent = 3;
    case.merges = vec![pod(
        "m-0",
        MergeStep::Chunks(set("0")),
        0,
        AttemptState::Pending,
    )];
    let placed = case.run();
    assert_eq!(
        placed.start.len(),
        1,
        "the merge pod is placed: the rest start"
    );
    // The scheduler found no node with room for it: the others would only wait beside it.
    case.merges[0].unschedulable = true;
    let waiting = case.run();
    assert!(waiting.start.is_empty(), "{:?}", waiting.start);
    assert_eq!(waiting.running, 1);
}

#[test]
fn a_merge_counts_only_for_the_attempts_it_read() {
    let mut case = Case::new(1, "0-3");
    case.merges.push(pod(
        "j-merge-0-0",
        MergeStep::Chunks(set("0-1")),
        0,
        AttemptState::Succeeded,
    ));
    case.attempts.set(3, 1); // shard 3 (chunk 1) was rendered again since
    let result = case.run();
    assert_eq!(result.merged, set("0"));
    assert_eq!(result.newly_merged, set("0"));
    // Chunk 1 merges again, from the new attempt; the next attempt of a batch starting there.
    assert_eq!(
        result.start,
        vec![MergeStart {
            step: MergeStep::Chunks(set("1")),
            attempt: 0
        }]
    );
    // Once the ledger holds chunk 0, its merge pod may go: with the next merge of chunk 1
    // starting, it waits to go with others (`finished_merge_pods_go_together_in_one_request`).
    case.merged = set("0");
    let result = case.run();
    assert!(result.newly_merged.is_empty());
    assert!(result.collect.is_empty() && result.delete.is_empty());
    case.succeeded = set("0-2");
    assert_eq!(case.run().collect, ["merge-0-0"]);
}

#[test]
fn finished_merge_pods_go_together_in_one_request() {
    let mut case = Case::new(1, "0-7");
    case.merged = set("0-2");
    let done = |a: u32| {
        let name = format!("j-merge-0-{a}");
        pod(
            &name,
            MergeStep::Chunks(set("0")),
            a,
            AttemptState::Succeeded,
        )
    };
    case.merges = (0..3).map(done).collect();
    let running = pod(
        "j-merge-3-0",
        MergeStep::Chunks(set("3")),
        0,
        AttemptState::Running,
    );
    case.merges.push(running);
    // Three finished while a merge runs: they wait for more.
    let result = case.run();
    assert!(result.collect.is_empty() && result.delete.is_empty());
    // Eight: one request names them all.
    case.merges.extend((3..COLLECT_MERGES_AT as u32).map(done));
    let ids: Vec<String> = (0..8).map(|a| format!("merge-0-{a}")).collect();
    assert_eq!(case.run().collect, ids);
    // No merge runs or starts (chunk 3 still renders): the finished ones go, however few. A
    // pod of an older operator, without a merge id, is deleted by name.
    case.succeeded = set("0-5");
    case.merges = vec![done(0), done(1)];
    case.merges[1].merge_id = None;
    let result = case.run();
    assert_eq!(result.collect, ["merge-0-0"]);
    assert_eq!(result.delete, ["j-merge-0-1"]);
}

#[test]
fn the_job_manifest_comes_last_and_completes_the_job() {
    let mut case = Case::new(1, "0-7");
    case.merged = set("0-2");
    assert!(
        case.run()
            .start
            .iter()
            .all(|s| s.step != MergeStep::Manifest)
    );
    case.merged = set("0-3");
    let result = case.run();
    assert_eq!(
        result.start,
        vec![MergeStart {
            step: MergeStep::Manifest,
            attempt: 0
        }]
    );
    assert_eq!(result.manifest, ManifestState::Writing);
    case.merges.push(pod(
        "j-manifest-0",
        MergeStep::Manifest,
        0,
        failed(FailureKind::Retryable),
    ));
    let result = case.run();
    assert_eq!(
        result.start[0].attempt, 1,
        "a failed manifest is written again"
    );
    case.merges.push(pod(
        "j-manifest-1",
        MergeStep::Manifest,
        1,
        AttemptState::Succeeded,
    ));
    let result = case.run();
    assert_eq!(result.manifest, ManifestState::Written);
    assert!(result.start.is_empty());
    // A re-render of shard 5 makes that manifest stale: chunk 2 merges again first.
    case.attempts.set(5, 1);
    case.succeeded = set("0-4,6-7");
    let result = case.run();
    assert_eq!(result.merged, set("0-1,3"));
    assert_eq!(result.manifest, ManifestState::Waiting);
}

#[test]
fn missing_frames_are_never_merged_and_do_not_hold_up_the_manifest() {
    let mut case = Case::new(1, "0-3,6-7");
    case.missing = set("4");
    case.merged = set("0-1,3");
    let result = case.run();
    assert_eq!(result.start[0].step, MergeStep::Manifest);
}

#[test]
fn merges_that_keep_failing_fail_the_job() {
    let mut case = Case::new(1, "0-1");
    for attempt in 0..2 {
        let name = format!("j-merge-0-{attempt}");
        case.merges.push(pod(
            &name,
            MergeStep::Chunks(set("0")),
            attempt,
            failed(FailureKind::Retryable),
        ));
    }
    let result = case.run();
    assert_eq!(result.failure, None);
    assert_eq!(result.start[0].attempt, 2);
    case.merges.push(pod(
        "j-merge-0-2",
        MergeStep::Chunks(set("0")),
        2,
        failed(FailureKind::Retryable),
    ));
    let failure = case.run().failure.expect("three failures fail the job");
    assert!(
        failure.contains("frame chunk 0 failed 3 times"),
        "{failure}"
    );
    // A permanent failure fails it at once; a failed preview never does.
    let mut case = Case::new(1, "0-1");
    case.merges.push(pod(
        "j-preview-1-1",
        MergeStep::Preview {
            chunk: 1,
            shards: set("2"),
        },
        1,
        failed(FailureKind::Permanent),
    ));
    assert_eq!(case.run().failure, None);
    case.merges.push(pod(
        "j-merge-0-0",
        MergeStep::Chunks(set("0")),
        0,
        failed(FailureKind::Permanent),
    ));
    assert!(case.run().failure.is_some());
}

#[test]
fn previews_follow_whole_sample_splits() {
    // 4 splits, 2 tiles: chunk 0 is shards 0-7, split s of tile t is shard t*4 + s.
    // Split 0 of both tiles (0 and 4) and split 1 of tile 0 only: one complete split.
    let mut case = Case::new(4, "0-1,4");
    case.max_concurrent = 8;
    let result = case.run();
    assert_eq!(
        result.start,
        vec![MergeStart {
            step: MergeStep::Preview {
                chunk: 0,
                shards: set("0,4")
            },
            attempt: 1
        }]
    );
    // Made: no second preview of one split, even after the pod is gone.
    case.merges.push(pod(
        "j-preview-0-1",
        MergeStep::Preview {
            chunk: 0,
            shards: set("0,4"),
        },
        1,
        AttemptState::Succeeded,
    ));
    let result = case.run();
    assert!(result.start.is_empty());
    assert_eq!(result.previewed, set("0,4"));
    case.merges.clear();
    case.previewed = set("0,4");
    assert!(case.run().start.is_empty());
    // Split 1 completes: a sharper preview from both splits.
    case.succeeded = set("0-1,4-5");
    assert_eq!(
        case.run().start[0].step,
        MergeStep::Preview {
            chunk: 0,
            shards: set("0-1,4-5")
        }
    );
    // A rendered chunk gets its frames, never a preview; once merged, its shards leave
    // `previewed`.
    case.succeeded = set("0-7");
    let result = case.run();
    assert_eq!(result.start[0].step, MergeStep::Chunks(set("0")));
    case.merged = set("0");
    assert!(case.run().previewed.is_empty());
}
