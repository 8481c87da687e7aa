//! The reconcile decision for one RenderJob, as pure functions.
//!
//! The pipeline (docs/architecture.md, "The reconcile pipeline"): [`valid`] turns the job
//! and its pool into a [`ValidJob`] once; the ledger settles the attempts that ended;
//! [`assess`] says where each shard stands; admission (shared with every other job of the
//! pool) turns "ready" into a grant; [`decide`] then returns what to do — pods to create,
//! release and delete, the new status, events — without touching the API. `now` is an input;
//! nothing here reads a clock.
//!
//! `decide` goes by phase, one small function each: no pool, invalid spec, finished, out of
//! budget, suspended, rendering, merging.

pub mod assess;
pub mod blocked;
pub mod cleanup;
pub mod depends;
pub mod merges;
pub mod rerender;
pub mod valid;

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tessera_shard::contract::{
    CONTRACT_VERSION, MergeSpec, MergeStep, ShardSpec, job_manifest_path, shard_log_path,
};
use tessera_shard::{AttemptMap, FrameList, IndexSet};

use crate::api::{
    JobPhase, OutputStatus, RenderJob, RenderJobStatus, ShardCounts, SpeculativeRace,
};
use crate::conditions::{
    self, ACCEPTED, COMPLETE, DEPENDENCIES_READY, FAILED, MERGING, PODS_BLOCKED, POLICY_LIMITED,
    PRIORITY_CLAMPED, QUEUE_ADMITTED, RENDERING, SUSPENDED,
};
use crate::job_plan::{self, SpecError};
use crate::ledger::{Ledger, Settled};
use crate::observe::{AttemptState, Observed};
use crate::pods;
use crate::status;

pub use assess::{Assessment, PoolNodes, ReadyShard, assess, backoff};
pub use blocked::{Blocked, blocked};
pub use depends::Gate;
pub use valid::ValidJob;

/// Speculative races kept in status for the merge's check (the CRD's bound).
const MAX_RACES_LISTED: usize = 256;

/// Failed attempts announced one Event each per pass; the rest are summed in one more.
const MAX_FAILURE_EVENTS: usize = 10;

/// How long a job waiting for pool capacity sleeps before it looks again, in case no pod
/// event wakes it.
pub const CAPACITY_RECHECK: Duration = Duration::from_secs(5);

/// What reconcile must do.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    pub create: Vec<Pod>,
    pub delete: Vec<String>,
    /// Shard blocks whose succeeded pods go in one delete-collection request each.
    pub collect_blocks: Vec<u32>,
    /// Finished merge pods, by merge id, that go in one delete-collection request.
    pub collect_merges: Vec<String>,
    /// Pods whose attempt the recorded ledger holds: drop their ledger finalizer.
    pub release: Vec<String>,
    /// Other jobs' shard pods to evict for this one (preemption, set by admission):
    /// (namespace, pod, who preempts them).
    pub evict: Vec<(String, String, String)>,
    /// The write to the job's Kueue Workload (jobs that name a LocalQueue).
    pub workload: Option<crate::kueue::WorkloadWrite>,
    /// The TTL after finishing has passed: delete the RenderJob itself.
    pub delete_job: bool,
    pub status: RenderJobStatus,
    pub events: Vec<EventNote>,
    pub requeue_after: Option<Duration>,
}

/// An event for humans; `reason` is PascalCase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventNote {
    pub warning: bool,
    pub reason: String,
    pub note: String,
}

impl EventNote {
    /// Whether the event tells a difference between the recorded status and the pass's
    /// (frames merged, attempts failed, nodes excluded since the last write): a pass whose
    /// status write waits drops it, and the pass that writes states it again, covering both.
    /// Events of what a pass did (a speculative attempt started) are published at once.
    pub fn restated_by_next_write(&self) -> bool {
        matches!(
            self.reason.as_str(),
            "FramesMerged" | "ShardAttemptFailed" | "NodeExcluded"
        )
    }
}

/// Why a job failed, as a type; its reason is the Failed condition's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobFailure {
    InvalidSpec(SpecError),
    ShardFailed,
    FailureLimitExceeded,
    DeadlineExceeded,
    MergeFailed,
    /// A job in `spec.dependsOn` failed, or the dependencies form a cycle.
    Dependency(&'static str),
}

impl JobFailure {
    pub fn reason(&self) -> &'static str {
        match self {
            JobFailure::InvalidSpec(error) => error.reason(),
            JobFailure::ShardFailed => "ShardFailed",
            JobFailure::FailureLimitExceeded => "FailureLimitExceeded",
            JobFailure::DeadlineExceeded => "DeadlineExceeded",
            JobFailure::MergeFailed => "MergeFailed",
            JobFailure::Dependency(reason) => reason,
        }
    }
}

/// The job as far as planning got.
pub enum JobState<'a> {
    /// Its RenderPool does not exist (or does not admit the job's namespace).
    NoPool,
    /// The spec passed the API server but cannot be planned.
    Invalid(SpecError),
    /// Planned, settled and assessed.
    Planned(Planned<'a>),
}

pub struct Planned<'a> {
    pub job: &'a ValidJob<'a>,
    pub assessment: &'a Assessment,
    /// The ledger after this pass's settling.
    pub ledger: &'a Ledger,
    /// What this pass settled.
    pub settled: &'a [Settled],
}

/// Everything `decide` needs.
pub struct DecideInput<'a> {
    pub job: &'a RenderJob,
    pub state: JobState<'a>,
    pub observed: &'a Observed,
    /// Shards admission lets this job start now.
    pub grant: u32,
    /// Whether `spec.dependsOn` lets the job start.
    pub dependencies: Gate,
    /// Shards held back by frame-by-frame dependencies still rendering (`None`: none pending).
    pub frames_held: Option<depends::FramesHeld>,
    /// What the pool's namespace policy says of the job.
    pub policy: crate::pool::policy::Verdict,
    pub now: Timestamp,
}

/// The decision being built: the old status, the new one, and what to do.
struct Draft<'a> {
    job: &'a RenderJob,
    old: RenderJobStatus,
    status: RenderJobStatus,
    decision: Decision,
    now: Timestamp,
}

impl<'a> Draft<'a> {
    fn new(job: &'a RenderJob, now: Timestamp) -> Self {
        let old = job.status.clone().unwrap_or_default();
        let status = RenderJobStatus {
            observed_generation: job.metadata.generation,
            conditions: old.conditions.clone(),
            start_time: old.start_time.clone(),
            completion_time: old.completion_time.clone(),
            output: old.output.clone(),
            suspended_seconds: old.suspended_seconds,
            suspend_time: old.suspend_time.clone(),
            // The merge ledger and the re-render history carry over unless this pass
            // changes them.
            merged_chunks: old.merged_chunks.clone(),
            frames_done: old.frames_done.clone(),
            previewed_shards: old.previewed_shards.clone(),
            rerender_generation: old.rerender_generation,
            rerenders: old.rerenders.clone(),
            ..Default::default()
        };
        Self {
            job,
            old,
            status,
            decision: Decision::default(),
            now,
        }
    }

    fn set(&mut self, type_: &str, on: bool, reason: &str, message: impl Into<String>) {
        conditions::set(
            &mut self.status.conditions,
            type_,
            on,
            reason,
            message,
            self.job.metadata.generation,
            self.now,
        );
    }

    fn event(&mut self, warning: bool, reason: &str, note: String) {
        self.decision.events.push(EventNote {
            warning,
            reason: reason.into(),
            note,
        });
    }

    fn requeue_within(&mut self, after: Duration) {
        self.decision.requeue_after = min_duration(self.decision.requeue_after, after);
    }

    fn finish(mut self) -> Decision {
        self.decision
            .events
            .extend(transition_event(&self.old, &self.status));
        self.decision.status = self.status;
        self.decision
    }

    /// Fails the job: the Failed condition, no more rendering, every active pod deleted.
    fn fail(mut self, failure: JobFailure, message: String, observed: &Observed) -> Decision {
        let reason = failure.reason();
        self.set(FAILED, true, reason, message);
        self.set(RENDERING, false, reason, String::new());
        self.set(MERGING, false, reason, String::new());
        self.status.phase = Some(JobPhase::Failed);
        self.status.completion_time = Some(Time(self.now));
        self.status.estimated_completion_time = None;
        self.decision.delete.extend(active_pods(observed));
        self.finish()
    }
}

/// Decides what to do. Pure.
pub fn decide(input: DecideInput<'_>) -> Decision {
    let mut draft = Draft::new(input.job, input.now);
    match input.state {
        // A finished job stays as it finished, even if its pool or the rules changed since
        // (a deleted pool, or an upgrade that confines storage, must not reopen or fail it).
        JobState::NoPool | JobState::Invalid(_) if is_finished(&draft.old) => {
            finished(draft, input.observed)
        }
        JobState::NoPool => no_pool(draft),
        JobState::Invalid(error) => {
            draft.set(ACCEPTED, false, error.reason(), error.to_string());
            let message = error.to_string();
            draft.fail(JobFailure::InvalidSpec(error), message, input.observed)
        }
        JobState::Planned(planned) => {
            let cleanup = cleanup::settled_pods(
                input.observed,
                &Ledger::from_status(&draft.old),
                &cleanup::Done {
                    succeeded: &planned.assessment.succeeded,
                    failed: &planned.assessment.failed,
                    shard_count: planned.job.shard_count(),
                    job_finished: is_finished(&draft.old),
                },
            );
            draft.decision.release = cleanup.release;
            draft.decision.delete = cleanup.delete;
            draft.decision.collect_blocks = cleanup.collect_blocks;
            decide_planned(
                draft,
                &planned,
                input.observed,
                input.grant,
                (&input.dependencies, input.frames_held.as_ref()),
                &input.policy,
            )
        }
    }
}

/// A missing pool only queues the job: the pool may be created later.
fn no_pool(mut draft: Draft<'_>) -> Decision {
    let message = format!(
        "RenderPool {} does not exist or does not admit namespace {}",
        draft.job.spec.pool,
        draft.job.metadata.namespace.as_deref().unwrap_or("?")
    );
    draft.set(ACCEPTED, false, "PoolNotFound", message);
    draft.status.phase = Some(JobPhase::Queued);
    draft.decision.requeue_after = Some(Duration::from_secs(30));
    draft.finish()
}

fn decide_planned(
    mut draft: Draft<'_>,
    planned: &Planned<'_>,
    observed: &Observed,
    grant: u32,
    (dependencies, frames_held): (&Gate, Option<&depends::FramesHeld>),
    policy: &crate::pool::policy::Verdict,
) -> Decision {
    let job = planned.job;
    draft.set(
        ACCEPTED,
        true,
        "Planned",
        format!("{} shards", job.shard_count()),
    );
    draft.status.output = Some(OutputStatus {
        frames: format!("{}/frames/{}.####.{{exr,png}}", job.output, job.name),
        manifest: job_manifest_path(&job.output, &job.uid),
        previews: (merge_policy(job).previews && job.plan.input().sample_splits > 1)
            .then(|| format!("{}/previews/{}.####.png", job.output, job.name)),
    });
    fill_counts(&mut draft.status, planned);
    planned.ledger.write_to(&mut draft.status);
    draft.status.estimated_completion_time = draft.old.estimated_completion_time.clone();
    let missing = missing_shards(planned);
    draft.status.missing_frames = (!missing.is_empty()).then(|| missing_frames(job, &missing));

    if conditions::is_true(&draft.old.conditions, COMPLETE)
        || conditions::is_true(&draft.old.conditions, FAILED)
    {
        return finished(draft, observed);
    }
    // Dependencies gate the start only: a job that started renders on whatever they do later,
    // except that a failed frame-by-frame dependency fails it (its frames would wait forever).
    let frame_by_frame = draft.job.spec.depends_on.iter().any(|d| d.frame_by_frame);
    if draft.status.start_time.is_some()
        && frame_by_frame
        && let Gate::Broken { reason, message } = dependencies
    {
        draft.set(DEPENDENCIES_READY, false, reason, message.clone());
        return draft.fail(JobFailure::Dependency(reason), message.clone(), observed);
    }
    if draft.status.start_time.is_none() && !draft.job.spec.depends_on.is_empty() {
        match dependencies {
            Gate::Broken { reason, message } => {
                draft.set(DEPENDENCIES_READY, false, reason, message.clone());
                return draft.fail(JobFailure::Dependency(reason), message.clone(), observed);
            }
            Gate::Waiting(message) => {
                draft.set(
                    DEPENDENCIES_READY,
                    false,
                    "WaitingForDependencies",
                    message.clone(),
                );
                draft.status.phase = Some(JobPhase::Queued);
                // Dependencies finish without touching this job: look again soon.
                draft.decision.requeue_after = Some(Duration::from_secs(5));
                return draft.finish();
            }
            Gate::Open => {
                let names: Vec<&str> = draft
                    .job
                    .spec
                    .depends_on
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect();
                let message = format!("{} complete", names.join(", "));
                draft.set(DEPENDENCIES_READY, true, "DependenciesComplete", message);
            }
        }
    }
    match frames_held {
        Some(held) if held.shards > 0 => {
            draft.set(
                DEPENDENCIES_READY,
                false,
                "WaitingForFrames",
                held.message.clone(),
            );
            // Dependencies merge frames without touching this job: look again soon.
            draft.requeue_within(Duration::from_secs(5));
        }
        Some(_) => draft.set(
            DEPENDENCIES_READY,
            true,
            "FramesReady",
            "every shard ready to run has its frames merged in the jobs it depends on",
        ),
        None => {}
    }
    note_policy(&mut draft, policy);
    // Attempts that lost a race to another attempt of their shard stop now.
    draft
        .decision
        .delete
        .extend(planned.assessment.superseded.iter().cloned());
    track_suspension(&mut draft);
    let assessment = planned.assessment;
    let more_to_render = (!assessment.active.is_empty()
        || !assessment.ready.is_empty()
        || assessment.next_retry.is_some())
        && out_of_budget(&draft, planned).is_none();
    let merge_plan = merges::plan(&merges::MergeInput {
        plan: &job.plan,
        attempts: &planned.assessment.attempts,
        succeeded: &planned.assessment.succeeded,
        missing: &missing,
        merged: &draft.old.merged_chunks,
        previewed: &draft.old.previewed_shards,
        merges: &observed.merges,
        max_concurrent: merge_policy(job).max_concurrent,
        previews: merge_policy(job).previews,
        attempts_per_merge: job.policy.attempts_per_shard,
        now: draft.now,
        rendering: more_to_render,
    });
    if let Some(wait) = merge_plan.look_again_in {
        draft.requeue_within(wait);
    }
    record_merges(&mut draft, planned, &merge_plan);
    if let Some((failure, message)) = out_of_budget(&draft, planned) {
        draft.status.last_failure = planned.assessment.last_failure.clone();
        let shards_failed = matches!(
            failure,
            JobFailure::ShardFailed | JobFailure::FailureLimitExceeded
        );
        if shards_failed && merge_plan.failure.is_none() && merge_plan.merging_chunks {
            return failing(draft, planned, observed, merge_plan, &message);
        }
        return draft.fail(failure, message, observed);
    }
    draft.status.last_failure = planned.assessment.last_failure.clone();
    announce_failures(&mut draft, planned);
    let stuck = blocked(job, observed, draft.now);
    note_blocked(&mut draft, stuck.as_ref());
    if let Some(message) = merge_plan.failure.clone() {
        return draft.fail(JobFailure::MergeFailed, message, observed);
    }
    if draft.job.spec.suspend {
        return suspended(draft, planned);
    }
    draft.set(SUSPENDED, false, "Running", String::new());
    start_merges(&mut draft, planned, &merge_plan);
    let settled = planned.assessment.succeeded.len() + missing.len();
    if settled < u64::from(job.shard_count()) {
        // Pods that cannot start (a missing Secret, a bad image): start no more of them.
        let grant = if stuck.is_some_and(|b| b.stops_creates) {
            0
        } else {
            grant
        };
        rendering(draft, planned, grant)
    } else {
        finishing(draft, planned, &merge_plan)
    }
}

/// Shards failed for good, but frames already rendered are still merging: they are merged
/// first (the artist keeps them, and a re-render later merges only what it renders again),
/// nothing else starts, and the next pass with no chunk merge left fails the job.
fn failing(
    mut draft: Draft<'_>,
    planned: &Planned<'_>,
    observed: &Observed,
    mut merge_plan: merges::MergePlan,
    message: &str,
) -> Decision {
    merge_plan
        .start
        .retain(|s| matches!(s.step, MergeStep::Chunks(_)));
    start_merges(&mut draft, planned, &merge_plan);
    draft.decision.delete.extend(
        observed
            .shards
            .values()
            .flatten()
            .filter(|a| a.is_active() && !a.terminating)
            .map(|a| a.pod.clone()),
    );
    let note = format!("{message}; merging the frames already rendered, then failing");
    draft.set(RENDERING, false, "ShardFailed", note);
    draft.status.phase = Some(JobPhase::Merging);
    draft.finish()
}

fn merge_policy(job: &ValidJob<'_>) -> crate::api::MergePolicy {
    job.job.spec.merge.clone().unwrap_or_default()
}

/// The merge ledger into status (chunks merged, frames done, shards previewed), the merge
/// pods nothing reads any more deleted, and an event for the frames merged in this pass.
fn record_merges(draft: &mut Draft<'_>, planned: &Planned<'_>, merge_plan: &merges::MergePlan) {
    let job = planned.job;
    draft.status.merged_chunks = merge_plan.merged.clone();
    draft.status.previewed_shards = merge_plan.previewed.clone();
    draft.status.frames_done =
        (!merge_plan.merged.is_empty()).then(|| frames_of_chunks(job, &merge_plan.merged));
    draft
        .decision
        .delete
        .extend(merge_plan.delete.iter().cloned());
    draft
        .decision
        .collect_merges
        .extend(merge_plan.collect.iter().cloned());
    if !merge_plan.newly_merged.is_empty() {
        let frames = frames_of_chunks(job, &merge_plan.newly_merged);
        let note = format!("frames {frames} written to {}/frames", job.output);
        draft.event(false, "FramesMerged", note);
    }
}

/// The frames of some frame chunks, in frame-list syntax.
fn frames_of_chunks(job: &ValidJob<'_>, chunks: &IndexSet) -> String {
    tessera_shard::frames::compact(
        chunks
            .iter()
            .filter_map(|c| job.plan.shard(job.plan.shards_of_chunk(c).start))
            .flat_map(|s| s.frames),
    )
}

/// The merge pods the plan starts, and the `Merging` condition: true while any runs.
fn start_merges(draft: &mut Draft<'_>, planned: &Planned<'_>, merge_plan: &merges::MergePlan) {
    let job = planned.job;
    let assessment = planned.assessment;
    let missing = missing_shards(planned);
    for start in &merge_plan.start {
        let mut spec = merge_spec(job, &assessment.attempts, &assessment.races);
        spec.missing = missing.clone();
        spec.step = start.step.clone();
        draft
            .decision
            .create
            .push(pods::merge_pod(job, &spec, start.attempt));
    }
    if merge_plan.running > 0 {
        let frames = draft.status.frames_done.as_deref().unwrap_or("none");
        let message = format!(
            "{} merge pods running; frames merged: {frames}",
            merge_plan.running
        );
        draft.set(MERGING, true, "Merging", message);
    } else {
        draft.set(MERGING, false, "NoMergeRunning", String::new());
    }
}

/// Shards that failed for good in a job that accepts missing frames: the merge leaves their
/// frames out. Empty for every other job (a failed shard fails it instead).
fn missing_shards(planned: &Planned<'_>) -> IndexSet {
    if planned.job.policy.allow_missing_frames {
        planned.assessment.failed.clone()
    } else {
        IndexSet::new()
    }
}

/// The frames `shards` cover, in frame-list syntax.
fn missing_frames(job: &ValidJob<'_>, shards: &IndexSet) -> String {
    tessera_shard::frames::compact(
        shards
            .iter()
            .filter_map(|i| job.plan.shard(i))
            .flat_map(|s| s.frames),
    )
}

fn is_finished(status: &RenderJobStatus) -> bool {
    conditions::is_true(&status.conditions, COMPLETE)
        || conditions::is_true(&status.conditions, FAILED)
}

/// Finished jobs only wait for their TTL (and stop what still runs).
fn finished(mut draft: Draft<'_>, observed: &Observed) -> Decision {
    draft.status.phase = draft.old.phase;
    draft.status.last_failure = draft.old.last_failure.clone();
    draft.status.estimated_completion_time = None;
    draft.decision.delete.extend(active_pods(observed));
    if let (Some(ttl), Some(done)) = (
        draft.job.spec.ttl_seconds_after_finished,
        &draft.old.completion_time,
    ) {
        let expires = done
            .0
            .checked_add(SignedDuration::from_secs(ttl))
            .unwrap_or(done.0);
        if expires <= draft.now {
            draft.decision.delete_job = true;
        } else {
            draft.decision.requeue_after = Some(to_duration(expires.duration_since(draft.now)));
        }
    }
    draft.decision.status = draft.status;
    draft.decision
}

/// The failure budgets and the deadline: the reason the job must fail now, if any.
fn out_of_budget(draft: &Draft<'_>, planned: &Planned<'_>) -> Option<(JobFailure, String)> {
    let assessment = planned.assessment;
    let policy = &planned.job.policy;
    let stuck = !assessment.failed.is_empty()
        && assessment.active.is_empty()
        && assessment.ready.is_empty()
        && assessment.next_retry.is_none();
    // A job that accepts missing frames merges what it has once nothing is left to run.
    let partial = stuck && policy.allow_missing_frames;
    if assessment.failed.len() > u64::from(policy.max_failed_shards) || (stuck && !partial) {
        let message = match &assessment.last_failure {
            Some(f) => format!(
                "shard {} failed on node {} after attempt {}: {}: {}",
                f.shard,
                f.node.as_deref().unwrap_or("(none)"),
                f.attempt,
                f.reason,
                f.message
            ),
            None => format!("shards {} failed", assessment.failed),
        };
        return Some((JobFailure::ShardFailed, message));
    }
    let counted = planned.ledger.total_counted_failures();
    if let Some(limit) = policy.failure_limit.filter(|limit| counted >= *limit) {
        let message = format!("{counted} shard attempts failed; the job's failureLimit is {limit}");
        return Some((JobFailure::FailureLimitExceeded, message));
    }
    let deadline = draft.job.spec.active_deadline_seconds?;
    let expires = deadline_expiry(&draft.status, deadline)?;
    (expires <= draft.now && !draft.job.spec.suspend).then(|| {
        (
            JobFailure::DeadlineExceeded,
            format!("the job ran longer than activeDeadlineSeconds ({deadline} s, time suspended not counted)"),
        )
    })
}

/// When activeDeadlineSeconds runs out: counted from the start, time suspended excluded.
fn deadline_expiry(status: &RenderJobStatus, deadline: i64) -> Option<Timestamp> {
    let start = status.start_time.as_ref()?.0;
    let allowed =
        SignedDuration::from_secs(deadline.saturating_add(status.suspended_seconds.max(0)));
    Some(start.checked_add(allowed).unwrap_or(Timestamp::MAX))
}

/// Suspend pauses the deadline: the time between suspending and resuming is not counted.
fn track_suspension(draft: &mut Draft<'_>) {
    let started = draft.status.start_time.is_some();
    match (&draft.status.suspend_time, draft.job.spec.suspend) {
        (None, true) if started => draft.status.suspend_time = Some(Time(draft.now)),
        (Some(since), false) => {
            let paused = draft.now.duration_since(since.0).as_secs().max(0);
            draft.status.suspended_seconds = draft.status.suspended_seconds.saturating_add(paused);
            draft.status.suspend_time = None;
        }
        _ => {}
    }
}

fn announce_failures(draft: &mut Draft<'_>, planned: &Planned<'_>) {
    let threshold = planned.job.policy.node_failure_threshold;
    let newly_excluded: Vec<(String, u32)> = planned
        .ledger
        .node_failures
        .iter()
        .filter(|(node, failures)| {
            **failures >= threshold
                && !draft
                    .old
                    .node_failures
                    .iter()
                    .any(|n| &n.node == *node && n.failures >= threshold)
        })
        .map(|(node, failures)| (node.clone(), *failures))
        .collect();
    for (node, failures) in newly_excluded {
        draft.event(
            true,
            "NodeExcluded",
            format!("{failures} shard attempts failed on node {node}; this job no longer uses it"),
        );
    }
    let failed_now: Vec<&Settled> = planned
        .settled
        .iter()
        .filter(|s| s.failure.is_some() && !s.superseded)
        .collect();
    for settled in failed_now.iter().take(MAX_FAILURE_EVENTS) {
        let (reason, message) = settled.failure.clone().unwrap_or_default();
        let log = shard_log_path(
            &planned.job.output,
            &planned.job.uid,
            settled.shard,
            settled.attempt,
        );
        draft.event(
            true,
            "ShardAttemptFailed",
            format!(
                "shard {} attempt {} failed on node {}: {reason}: {message}; log: {log}",
                settled.shard,
                settled.attempt,
                settled.node.as_deref().unwrap_or("(none)")
            ),
        );
    }
    if failed_now.len() > MAX_FAILURE_EVENTS {
        let more = failed_now.len() - MAX_FAILURE_EVENTS;
        draft.event(
            true,
            "ShardAttemptFailed",
            format!("{more} more shard attempts failed; status.failedAttempts counts them all"),
        );
    }
    let invalidated = &planned.assessment.invalidated;
    if !invalidated.is_empty() {
        draft.event(
            true,
            "OutputCorrupt",
            format!("shards {invalidated} have missing or corrupt outputs and render again"),
        );
    }
}

/// `PolicyLimited` (a spent GPU-hour budget first, then the namespace's shard cap) and
/// `PriorityClamped`, each set while it holds and cleared once it no longer does.
fn note_policy(draft: &mut Draft<'_>, policy: &crate::pool::policy::Verdict) {
    let limited = match (&policy.budget_spent, &policy.cap_reached) {
        (Some(spent), _) => Some(("GPUHourBudgetSpent", spent)),
        (None, Some(cap)) => Some(("ConcurrentShardLimit", cap)),
        (None, None) => None,
    };
    let had =
        |draft: &Draft<'_>, type_: &str| draft.old.conditions.iter().any(|c| c.type_ == type_);
    match limited {
        Some((reason, message)) => {
            draft.set(POLICY_LIMITED, true, reason, message.clone());
            // Budgets are rolled over and raised without touching this job: look again.
            draft.requeue_within(Duration::from_secs(15));
        }
        None if had(draft, POLICY_LIMITED) => {
            draft.set(POLICY_LIMITED, false, "WithinPolicy", String::new())
        }
        None => {}
    }
    if let Some(queue) = &policy.queue {
        let was = draft
            .old
            .conditions
            .iter()
            .find(|c| c.type_ == QUEUE_ADMITTED)
            .map(|c| (c.status == "True", c.reason.clone()));
        if was != Some((queue.admitted, queue.reason.clone())) {
            let reason = match (queue.admitted, queue.reason.as_str()) {
                (true, _) => "QueueAdmitted",
                (false, "Finished") => "QueueFinished",
                (false, _) => "QueueWaiting",
            };
            draft.event(
                !queue.admitted && queue.reason == "Preempted",
                reason,
                queue.message.clone(),
            );
        }
        draft.set(
            QUEUE_ADMITTED,
            queue.admitted,
            &queue.reason,
            queue.message.clone(),
        );
        if !queue.admitted {
            // Kueue's decisions arrive as Workload events; this is the safety net.
            draft.requeue_within(Duration::from_secs(30));
        }
    }
    match &policy.clamped {
        Some(message) => draft.set(
            PRIORITY_CLAMPED,
            true,
            "AboveNamespaceMaximum",
            message.clone(),
        ),
        None if had(draft, PRIORITY_CLAMPED) => draft.set(
            PRIORITY_CLAMPED,
            false,
            "WithinNamespaceMaximum",
            String::new(),
        ),
        None => {}
    }
}

/// The `PodsBlocked` condition: set (with an event when it appears or its reason changes)
/// while pods cannot start, cleared once none is blocked.
fn note_blocked(draft: &mut Draft<'_>, stuck: Option<&Blocked>) {
    let old = draft
        .old
        .conditions
        .iter()
        .find(|c| c.type_ == PODS_BLOCKED && c.status == "True")
        .map(|c| c.reason.clone());
    match stuck {
        Some(stuck) => {
            draft.set(PODS_BLOCKED, true, &stuck.reason, stuck.message.clone());
            if old.as_deref() != Some(stuck.reason.as_str()) {
                draft.event(true, &stuck.reason, stuck.message.clone());
            }
        }
        None if old.is_some() => draft.set(PODS_BLOCKED, false, "PodsStarted", String::new()),
        None => {}
    }
}

/// Suspended: start nothing, drop what has not started running.
fn suspended(mut draft: Draft<'_>, planned: &Planned<'_>) -> Decision {
    draft.set(SUSPENDED, true, "Suspended", "spec.suspend is set");
    draft.set(RENDERING, false, "Suspended", "spec.suspend is set");
    draft.status.phase = Some(JobPhase::Suspended);
    draft.decision.delete.extend(
        planned
            .assessment
            .active
            .iter()
            .filter(|(_, a)| a.state == AttemptState::Pending && !a.terminating)
            .map(|(_, a)| a.pod.clone()),
    );
    draft.finish()
}

/// Rendering: start what admission granted.
fn rendering(mut draft: Draft<'_>, planned: &Planned<'_>, grant: u32) -> Decision {
    let job = planned.job;
    let assessment = planned.assessment;
    let before = draft.decision.create.len();
    for ready in assessment.ready.iter().take(grant as usize) {
        if let Some(pod) = attempt_pod(job, ready) {
            draft.decision.create.push(pod);
            draft.status.shard_attempts.set(ready.shard, ready.attempt);
        }
    }
    let regular = draft.decision.create.len() - before;
    let spare = (grant as usize).saturating_sub(regular);
    for extra in assessment.speculative.iter().take(spare) {
        // The attempt map keeps the running attempt: whichever succeeds first is recorded.
        let Some(pod) = attempt_pod(job, extra) else {
            continue;
        };
        draft.decision.create.push(pod);
        draft.event(
            false,
            "SpeculativeAttempt",
            format!(
                "shard {} runs far longer than the job's median; attempt {} starts on another node",
                extra.shard, extra.attempt
            ),
        );
    }
    let created = regular;
    if draft.status.start_time.is_none() && created > 0 {
        draft.status.start_time = Some(Time(draft.now));
    }
    let running = assessment.active.len() + created;
    let waiting = assessment.ready.len().saturating_sub(created);
    draft.set(
        RENDERING,
        running > 0,
        if running > 0 {
            "ShardsRunning"
        } else {
            "WaitingForCapacity"
        },
        format!("{running} shards running, {waiting} waiting"),
    );
    draft.status.phase = Some(if draft.status.start_time.is_some() {
        JobPhase::Rendering
    } else {
        JobPhase::Queued
    });
    let counts = &mut draft.status.shards;
    counts.active = running as u32;
    counts.waiting = counts
        .total
        .saturating_sub(counts.succeeded)
        .saturating_sub(counts.failed)
        .saturating_sub(counts.active);
    let remaining = u64::from(job.shard_count()).saturating_sub(assessment.succeeded.len());
    if !planned.settled.is_empty() {
        draft.status.estimated_completion_time = status::estimated_completion(
            planned.ledger.succeeded_seconds,
            assessment.succeeded.len(),
            planned.settled.iter().map(|s| s.finished).max(),
            remaining,
            running as u32,
        )
        .map(Time);
    }
    if waiting > 0 {
        draft.requeue_within(CAPACITY_RECHECK);
    }
    for next in [assessment.next_retry, assessment.next_speculation]
        .into_iter()
        .flatten()
    {
        draft.requeue_within(to_duration(next.duration_since(draft.now)));
    }
    if let (Some(deadline), false) = (
        draft.job.spec.active_deadline_seconds,
        draft.job.spec.suspend,
    ) && let Some(expires) = deadline_expiry(&draft.status, deadline)
    {
        draft.requeue_within(to_duration(expires.duration_since(draft.now)));
    }
    draft.finish()
}

/// What one shard pod of the job looks like (its first shard, first attempt): the pod set
/// template of its Kueue Workload.
pub fn shard_template(job: &ValidJob<'_>) -> Option<Pod> {
    let first = ReadyShard {
        shard: 0,
        attempt: 0,
        avoid: Default::default(),
    };
    attempt_pod(job, &first)
}

/// The pod of one shard attempt; `None` for a shard outside the plan.
fn attempt_pod(job: &ValidJob<'_>, ready: &ReadyShard) -> Option<Pod> {
    let shard = job.plan.shard(ready.shard)?;
    let spec = ShardSpec {
        version: CONTRACT_VERSION,
        job: job.name.clone(),
        namespace: job.namespace.clone(),
        job_uid: job.uid.clone(),
        shard: ready.shard,
        attempt: ready.attempt,
        settings: job.settings.clone(),
        frames: shard.frames,
        tile: shard.tile,
        samples: shard.samples,
        output: job.output.clone(),
    };
    Some(pods::shard_pod(job, &spec, &ready.avoid))
}

/// Every shard rendered (or missing): the last frame chunks merge, then the job manifest is
/// written, then the job is complete.
fn finishing(
    mut draft: Draft<'_>,
    planned: &Planned<'_>,
    merge_plan: &merges::MergePlan,
) -> Decision {
    let job = planned.job;
    draft.status.estimated_completion_time = None;
    draft.set(
        RENDERING,
        false,
        "AllShardsRendered",
        format!("{} shards rendered", job.shard_count()),
    );
    if merge_plan.manifest != merges::ManifestState::Written {
        draft.status.phase = Some(JobPhase::Merging);
        return draft.finish();
    }
    draft.set(MERGING, false, "Merged", "frames written");
    let total = job.plan.input().frames.len();
    let (reason, message) = match &draft.status.missing_frames {
        None => (
            "FramesWritten",
            format!("{total} frames written to {}/frames", job.output),
        ),
        Some(frames) => {
            let lost = FrameList::parse(frames).map_or(0, |l| l.len());
            (
                "MissingFrames",
                format!(
                    "{} of {total} frames written to {}/frames; missing frames {frames} \
                     (shards {} failed; retry.allowMissingFrames)",
                    total - lost,
                    job.output,
                    missing_shards(planned)
                ),
            )
        }
    };
    draft.set(COMPLETE, true, reason, message);
    draft.status.phase = Some(JobPhase::Complete);
    draft.status.completion_time = Some(Time(draft.now));
    if let Some(ttl) = draft.job.spec.ttl_seconds_after_finished {
        draft.decision.requeue_after = Some(Duration::from_secs(ttl.max(0) as u64));
    }
    draft.finish()
}

fn merge_spec(
    job: &ValidJob<'_>,
    attempts: &AttemptMap,
    races: &std::collections::BTreeMap<u32, u32>,
) -> MergeSpec {
    let sharding = &job.job.spec.sharding;
    MergeSpec {
        version: CONTRACT_VERSION,
        job: job.name.clone(),
        namespace: job.namespace.clone(),
        job_uid: job.uid.clone(),
        settings: job.settings.clone(),
        frames: job.job.spec.frames.clone(),
        frames_per_shard: sharding.frames_per_shard,
        tiles_x: sharding.tiles.columns,
        tiles_y: sharding.tiles.rows,
        sample_splits: sharding.sample_splits,
        attempts: attempts.clone(),
        races: races.clone(),
        missing: IndexSet::new(),
        formats: job_plan::formats(&job.job.spec),
        output: job.output.clone(),
        step: MergeStep::All,
    }
}

/// Counts, sets, attempts, the active list: the parts of status every phase shares.
fn fill_counts(status: &mut RenderJobStatus, planned: &Planned<'_>) {
    let assessment = planned.assessment;
    let total = planned.job.shard_count();
    let succeeded = assessment.succeeded.len() as u32;
    let failed = assessment.failed.len() as u32;
    let active = assessment.active.len() as u32;
    status.shards = ShardCounts {
        total,
        succeeded,
        failed,
        active,
        waiting: total
            .saturating_sub(succeeded)
            .saturating_sub(failed)
            .saturating_sub(active),
    };
    status.succeeded_shards = assessment.succeeded.clone();
    status.failed_shards = assessment.failed.clone();
    status.shard_attempts = assessment.attempts.clone();
    status.speculative_races = assessment
        .races
        .iter()
        .take(MAX_RACES_LISTED)
        .map(|(&shard, &loser)| SpeculativeRace { shard, loser })
        .collect();
    status.progress = Some(status::progress(
        assessment.succeeded.len(),
        u64::from(total),
    ));
    status.active_shards = status::active_list(assessment.active.iter().map(|(s, a)| (*s, a)));
}

fn active_pods(observed: &Observed) -> Vec<String> {
    observed
        .shards
        .values()
        .flatten()
        .chain(&observed.merges)
        .filter(|a| a.is_active() && !a.terminating)
        .map(|a| a.pod.clone())
        .collect()
}

/// One event per phase change.
fn transition_event(old: &RenderJobStatus, new: &RenderJobStatus) -> Option<EventNote> {
    if old.phase == new.phase {
        return None;
    }
    let phase = new.phase?;
    let failed = new
        .conditions
        .iter()
        .find(|c| c.type_ == FAILED && c.status == "True");
    let (warning, note) = match phase {
        JobPhase::Queued => (false, "waiting for pool capacity".to_string()),
        JobPhase::Rendering => (false, format!("rendering {} shards", new.shards.total)),
        JobPhase::Merging => (false, "all shards rendered; merging frames".to_string()),
        JobPhase::Complete => (
            false,
            format!(
                "frames written to {}",
                new.output
                    .as_ref()
                    .map(|o| o.frames.as_str())
                    .unwrap_or("?")
            ),
        ),
        JobPhase::Failed => (true, failed.map(|c| c.message.clone()).unwrap_or_default()),
        JobPhase::Suspended => (false, "suspended".to_string()),
    };
    Some(EventNote {
        warning,
        reason: format!("{phase:?}"),
        note,
    })
}

fn to_duration(d: SignedDuration) -> Duration {
    Duration::try_from(d)
        .unwrap_or(Duration::ZERO)
        .max(Duration::from_millis(100))
}

fn min_duration(current: Option<Duration>, other: Duration) -> Option<Duration> {
    Some(current.map_or(other, |c| c.min(other)))
}

#[cfg(test)]
pub(crate) mod tests;
