//! The reconcile decision for one RenderJob, as a pure function.
//!
//! `assess` reads the job, its pool and its observed pods into a [`Assessment`]: which shards
//! succeeded, failed, run, or are ready to start. The admission step (shared with every other
//! job of the pool) turns "ready" into a grant; `decide` then returns what to do — pods to
//! create and delete, the new status, events — without touching the API. `now` is an input;
//! nothing here reads a clock.
//!
//! Truth lives in the API: the pods (one per attempt, named `<job>-<shard>-<attempt>`) and the
//! job's status (succeeded/failed sets and the attempt map, which survive pod deletion). A
//! restarted operator re-derives everything from them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tessera_shard::contract::{
    CONTRACT_VERSION, MergeSpec, RenderSettings, ShardSpec, job_manifest_path,
};
use tessera_shard::{AttemptMap, IndexSet, ShardPlan};

use crate::api::{
    JobPhase, NodeFailures, OutputStatus, RenderJob, RenderJobStatus, RenderPool, RetryPolicy,
    ShardCounts, ShardFailure,
};
use crate::conditions::{self, ACCEPTED, COMPLETE, FAILED, MERGING, RENDERING, SUSPENDED};
use crate::job_plan::{self, SpecError};
use crate::observe::{self, Attempt, AttemptState, FailureKind, Observed};
use crate::pods::{self, Avoidance};
use crate::status;

/// How long a job waiting for pool capacity sleeps before it looks again, in case no pod
/// event wakes it.
pub const CAPACITY_RECHECK: Duration = Duration::from_secs(5);

/// A shard ready to start: its next attempt and the nodes it should stay off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyShard {
    pub shard: u32,
    pub attempt: u32,
    pub avoid: Avoidance,
}

/// What assess knows of the pool's nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolNodes {
    /// Ready, schedulable nodes of the pool.
    pub ready: BTreeSet<String>,
    /// Nodes that failed shards of several jobs (the pool's status).
    pub suspects: BTreeSet<String>,
}

impl PoolNodes {
    /// Hard avoidance of `nodes`, unless that would leave no ready node of the pool: then a
    /// preference only, so the shard still runs somewhere instead of pending forever.
    fn avoidance(&self, nodes: BTreeSet<String>) -> Avoidance {
        let leaves_none = !self.ready.is_empty() && self.ready.iter().all(|n| nodes.contains(n));
        let mut preferred: BTreeSet<String> = self.suspects.difference(&nodes).cloned().collect();
        if leaves_none {
            preferred.extend(nodes);
            Avoidance {
                required: BTreeSet::new(),
                preferred,
            }
        } else {
            Avoidance {
                required: nodes,
                preferred,
            }
        }
    }
}

/// Where the job stands.
#[derive(Debug, Clone)]
pub struct Assessment {
    pub plan: Option<ShardPlan>,
    pub spec_error: Option<SpecError>,
    pub succeeded: IndexSet,
    pub failed: IndexSet,
    pub attempts: AttemptMap,
    /// Shards with a pod pending or running: (shard, attempt).
    pub active: Vec<(u32, Attempt)>,
    /// Shards ready to start, in index order.
    pub ready: Vec<ReadyShard>,
    /// Earliest time a backing-off shard becomes ready.
    pub next_retry: Option<Timestamp>,
    pub counted_failures: u32,
    pub node_failures: BTreeMap<String, u32>,
    pub last_failure: Option<ShardFailure>,
    /// Shards the latest merge found bad and that are now being rendered again.
    pub invalidated: IndexSet,
}

/// What reconcile must do.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    pub create: Vec<Pod>,
    pub delete: Vec<String>,
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

fn retry_policy(job: &RenderJob) -> RetryPolicy {
    job.spec.retry.clone().unwrap_or_default()
}

/// Reads the job's state from its status and observed pods.
pub fn assess(
    job: &RenderJob,
    observed: &Observed,
    nodes: &PoolNodes,
    now: Timestamp,
) -> Assessment {
    let old = job.status.clone().unwrap_or_default();
    let mut assessment = Assessment {
        plan: None,
        spec_error: None,
        succeeded: IndexSet::new(),
        failed: old.failed_shards.clone(),
        attempts: old.shard_attempts.clone(),
        active: Vec::new(),
        ready: Vec::new(),
        next_retry: None,
        counted_failures: 0,
        node_failures: observe::failures_by_node(observed),
        last_failure: old.last_failure.clone(),
        invalidated: IndexSet::new(),
    };
    let plan = match job_plan::plan(&job.spec) {
        Ok(plan) => plan,
        Err(error) => {
            assessment.spec_error = Some(error);
            return assessment;
        }
    };
    let policy = retry_policy(job);
    // The current attempt of a shard is the highest one recorded or seen.
    for (&shard, attempts) in &observed.shards {
        if let Some(latest) = attempts
            .last()
            .filter(|a| a.attempt > assessment.attempts.get(shard))
        {
            assessment.attempts.set(shard, latest.attempt);
        }
    }
    invalidate_from_merge(&mut assessment, observed, plan.len());
    let status_succeeded: IndexSet = old
        .succeeded_shards
        .iter()
        .filter(|s| !assessment.invalidated.contains(*s))
        .collect();

    let excluded: BTreeSet<String> = assessment
        .node_failures
        .iter()
        .filter(|(_, count)| **count >= policy.node_failure_threshold)
        .map(|(node, _)| node.clone())
        .collect();

    let no_attempts: Vec<Attempt> = Vec::new();
    for shard in 0..plan.len() {
        let attempts = observed.shards.get(&shard).unwrap_or(&no_attempts);
        let current = assessment.attempts.get(shard);
        let counted = attempts
            .iter()
            .filter(
                |a| matches!(&a.state, AttemptState::Failed(f) if f.kind == FailureKind::Retryable),
            )
            .count() as u32;
        assessment.counted_failures += counted;
        let latest = attempts.iter().find(|a| a.attempt == current);
        match latest.map(|a| &a.state) {
            Some(AttemptState::Succeeded) => {
                assessment.succeeded.insert(shard);
            }
            Some(AttemptState::Pending | AttemptState::Running) => {
                assessment
                    .active
                    .push((shard, latest.cloned().expect("latest exists")));
            }
            Some(AttemptState::Failed(failure)) => {
                let attempt = latest.expect("latest exists");
                if assessment.failed.contains(shard) {
                    continue;
                }
                let give_up =
                    failure.kind == FailureKind::Permanent || counted >= policy.attempts_per_shard;
                let failure_record = ShardFailure {
                    shard,
                    attempt: current,
                    node: attempt.node.clone(),
                    reason: failure.reason.clone(),
                    message: failure.message.clone(),
                };
                if give_up {
                    assessment.failed.insert(shard);
                    assessment.last_failure = Some(failure_record);
                    continue;
                }
                if assessment
                    .last_failure
                    .as_ref()
                    .is_none_or(|f| (f.shard, f.attempt) < (shard, current))
                {
                    assessment.last_failure = Some(failure_record);
                }
                let delay = match failure.kind {
                    FailureKind::Disruption => SignedDuration::ZERO,
                    _ => backoff(&policy, counted),
                };
                let ready_at = attempt
                    .finished
                    .unwrap_or(now)
                    .checked_add(delay)
                    .unwrap_or(now);
                if ready_at <= now {
                    let mut avoid = observe::nodes_failed_for(attempts)
                        .into_iter()
                        .collect::<BTreeSet<_>>();
                    avoid.extend(excluded.iter().cloned());
                    assessment.ready.push(ReadyShard {
                        shard,
                        attempt: current + 1,
                        avoid: nodes.avoidance(avoid),
                    });
                } else {
                    assessment.next_retry =
                        Some(assessment.next_retry.map_or(ready_at, |t| t.min(ready_at)));
                }
            }
            None if status_succeeded.contains(shard) => {
                assessment.succeeded.insert(shard);
            }
            None if assessment.failed.contains(shard) => {}
            None => assessment.ready.push(ReadyShard {
                shard,
                attempt: current,
                avoid: nodes.avoidance(excluded.clone()),
            }),
        }
    }
    assessment.plan = Some(plan);
    assessment
}

/// A merge that found bad outputs sends exactly the attempts it read back to rendering: each
/// named shard whose current attempt is still the one the merge read moves to a new attempt.
/// Idempotent: once bumped, the same merge verdict no longer matches.
fn invalidate_from_merge(assessment: &mut Assessment, observed: &Observed, shard_count: u32) {
    let Some(merge) = observed.merges.last() else {
        return;
    };
    let (AttemptState::Failed(failure), Some(inputs)) = (&merge.state, &merge.merge_inputs) else {
        return;
    };
    let FailureKind::InvalidShards(bad) = &failure.kind else {
        return;
    };
    for shard in bad.iter().filter(|&s| s < shard_count) {
        if assessment.attempts.get(shard) == inputs.get(shard) {
            assessment.attempts.set(shard, inputs.get(shard) + 1);
            assessment.invalidated.insert(shard);
        }
    }
    if let Some(first) = assessment.invalidated.iter().next() {
        assessment.last_failure = Some(ShardFailure {
            shard: first,
            attempt: inputs.get(first),
            node: None,
            reason: "OutputCorrupt".into(),
            message: format!(
                "shards {} render again: {}",
                assessment.invalidated, failure.message
            ),
        });
    }
}

/// Retry delay after `failures` counted failures: base × 2^(failures−1), capped.
pub fn backoff(policy: &RetryPolicy, failures: u32) -> SignedDuration {
    let exponent = failures.saturating_sub(1).min(20);
    let seconds = u64::from(policy.backoff_seconds).saturating_mul(1 << exponent);
    SignedDuration::from_secs(seconds.min(u64::from(policy.max_backoff_seconds)) as i64)
}

/// Everything `decide` needs besides the assessment.
pub struct DecideInput<'a> {
    pub job: &'a RenderJob,
    pub pool: Option<&'a RenderPool>,
    pub observed: &'a Observed,
    pub assessment: &'a Assessment,
    /// Shards admission lets this job start now.
    pub grant: u32,
    pub now: Timestamp,
}

/// Decides what to do. Pure.
pub fn decide(input: DecideInput<'_>) -> Decision {
    let DecideInput {
        job,
        pool,
        observed,
        assessment,
        grant,
        now,
    } = input;
    let old = job.status.clone().unwrap_or_default();
    let generation = job.metadata.generation;
    let policy = retry_policy(job);
    let mut decision = Decision::default();
    let mut status = RenderJobStatus {
        observed_generation: generation,
        conditions: old.conditions.clone(),
        start_time: old.start_time.clone(),
        completion_time: old.completion_time.clone(),
        output: old.output.clone(),
        ..Default::default()
    };
    let set =
        |status: &mut RenderJobStatus, type_: &str, on: bool, reason: &str, message: String| {
            conditions::set(
                &mut status.conditions,
                type_,
                on,
                reason,
                message,
                generation,
                now,
            )
        };

    // 1. A spec the API server let through but that cannot be planned fails the job; a missing
    //    pool only queues it (the pool may be created later).
    let Some(pool) = pool else {
        set(
            &mut status,
            ACCEPTED,
            false,
            "PoolNotFound",
            format!("RenderPool {} does not exist", job.spec.pool),
        );
        status.phase = Some(JobPhase::Queued);
        decision.events.extend(transition_event(&old, &status));
        decision.status = status;
        decision.requeue_after = Some(Duration::from_secs(30));
        return decision;
    };
    let prepared = match (&assessment.plan, &assessment.spec_error) {
        (Some(plan), None) => job_plan::output_prefix(job, pool)
            .and_then(|output| Ok((plan, output, job_plan::render_settings(&job.spec)?))),
        (_, Some(error)) => Err(error.clone()),
        (None, None) => unreachable!("assess sets a plan or an error"),
    };
    let (plan, output, settings) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            set(
                &mut status,
                ACCEPTED,
                false,
                error.reason(),
                error.to_string(),
            );
            return finish_failed(
                decision,
                status,
                old,
                observed,
                error.reason(),
                error.to_string(),
                now,
            );
        }
    };
    set(
        &mut status,
        ACCEPTED,
        true,
        "Planned",
        format!("{} shards", plan.len()),
    );
    let job_name = job.metadata.name.clone().unwrap_or_default();
    status.output = Some(OutputStatus {
        frames: format!("{output}/frames/{job_name}.####.{{exr,png}}"),
        manifest: job_manifest_path(&output, job.metadata.uid.as_deref().unwrap_or_default()),
    });
    fill_counts(&mut status, plan, assessment, observed);

    // 2. Finished jobs only wait for their TTL.
    if conditions::is_true(&old.conditions, COMPLETE)
        || conditions::is_true(&old.conditions, FAILED)
    {
        status.phase = old.phase;
        status.last_failure = old.last_failure.clone();
        decision.delete = active_pods(observed);
        if let (Some(ttl), Some(done)) = (job.spec.ttl_seconds_after_finished, &old.completion_time)
        {
            let expires = done
                .0
                .checked_add(SignedDuration::from_secs(ttl))
                .unwrap_or(done.0);
            if expires <= now {
                decision.delete_job = true;
            } else {
                decision.requeue_after = Some(to_duration(expires.duration_since(now)));
            }
        }
        decision.status = status;
        return decision;
    }

    // 3. Failure budgets and the deadline.
    if assessment.failed.len() > u64::from(policy.max_failed_shards)
        || (!assessment.failed.is_empty()
            && assessment.active.is_empty()
            && assessment.ready.is_empty()
            && assessment.next_retry.is_none())
    {
        let failure = assessment.last_failure.clone();
        let message = match &failure {
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
        status.last_failure = failure;
        return finish_failed(decision, status, old, observed, "ShardFailed", message, now);
    }
    if let Some(limit) = policy
        .failure_limit
        .filter(|limit| assessment.counted_failures >= *limit)
    {
        let message = format!(
            "{} shard attempts failed; the job's failureLimit is {limit}",
            assessment.counted_failures
        );
        status.last_failure = assessment.last_failure.clone();
        return finish_failed(
            decision,
            status,
            old,
            observed,
            "FailureLimitExceeded",
            message,
            now,
        );
    }
    if let (Some(deadline), Some(start)) = (job.spec.active_deadline_seconds, &old.start_time) {
        let expires = start
            .0
            .checked_add(SignedDuration::from_secs(deadline))
            .unwrap_or(start.0);
        if expires <= now {
            let message = format!("the job ran longer than activeDeadlineSeconds ({deadline} s)");
            status.last_failure = assessment.last_failure.clone();
            return finish_failed(
                decision,
                status,
                old,
                observed,
                "DeadlineExceeded",
                message,
                now,
            );
        }
        decision.requeue_after = Some(to_duration(expires.duration_since(now)));
    }
    status.last_failure = assessment.last_failure.clone();
    for (node, failures) in &assessment.node_failures {
        if *failures == policy.node_failure_threshold
            && !old
                .node_failures
                .iter()
                .any(|n| &n.node == node && n.failures >= *failures)
        {
            decision.events.push(EventNote {
                warning: true,
                reason: "NodeExcluded".into(),
                note: format!(
                    "{failures} shard attempts failed on node {node}; this job no longer uses it"
                ),
            });
        }
    }
    if !assessment.invalidated.is_empty() {
        decision.events.push(EventNote {
            warning: true,
            reason: "OutputCorrupt".into(),
            note: format!(
                "shards {} have missing or corrupt outputs and render again",
                assessment.invalidated
            ),
        });
    }

    // 4. Suspended: start nothing, drop what has not started running.
    if job.spec.suspend {
        set(
            &mut status,
            SUSPENDED,
            true,
            "Suspended",
            "spec.suspend is set".into(),
        );
        set(
            &mut status,
            RENDERING,
            false,
            "Suspended",
            "spec.suspend is set".into(),
        );
        status.phase = Some(JobPhase::Suspended);
        decision.delete = assessment
            .active
            .iter()
            .filter(|(_, a)| a.state == AttemptState::Pending && !a.terminating)
            .map(|(_, a)| a.pod.clone())
            .collect();
        decision.events.extend(transition_event(&old, &status));
        decision.status = status;
        return decision;
    }
    set(&mut status, SUSPENDED, false, "Running", String::new());

    let storage_secret = job_plan::storage_secret(job, pool);
    let shards_done = assessment.succeeded.len() == u64::from(plan.len());

    // 5. Rendering: start what admission granted.
    if !shards_done {
        for ready in assessment.ready.iter().take(grant as usize) {
            let Some(shard) = plan.shard(ready.shard) else {
                continue;
            };
            let spec = ShardSpec {
                version: CONTRACT_VERSION,
                job: job_name.clone(),
                namespace: job.metadata.namespace.clone().unwrap_or_default(),
                job_uid: job.metadata.uid.clone().unwrap_or_default(),
                shard: ready.shard,
                attempt: ready.attempt,
                settings: settings.clone(),
                frames: shard.frames,
                tile: shard.tile,
                samples: shard.samples,
                output: output.clone(),
            };
            decision.create.push(pods::shard_pod(
                job,
                pool,
                &spec,
                &ready.avoid,
                storage_secret.as_deref(),
            ));
            status.shard_attempts.set(ready.shard, ready.attempt);
        }
        if status.start_time.is_none() && !decision.create.is_empty() {
            status.start_time = Some(Time(now));
        }
        let running = assessment.active.len() + decision.create.len();
        let waiting = assessment.ready.len().saturating_sub(decision.create.len());
        set(
            &mut status,
            RENDERING,
            running > 0,
            if running > 0 {
                "ShardsRunning"
            } else {
                "WaitingForCapacity"
            },
            format!("{running} shards running, {waiting} waiting"),
        );
        set(
            &mut status,
            MERGING,
            false,
            "ShardsRendering",
            String::new(),
        );
        status.phase = Some(if status.start_time.is_some() {
            JobPhase::Rendering
        } else {
            JobPhase::Queued
        });
        status.shards.active = running as u32;
        status.shards.waiting = status.shards.total
            - status.shards.succeeded
            - status.shards.failed
            - status.shards.active;
        let remaining = status.shards.total as u64 - assessment.succeeded.len();
        status.estimated_completion_time =
            status::estimated_completion(observed, remaining, running as u32).map(Time);
        if waiting > 0 {
            decision.requeue_after = min_duration(decision.requeue_after, CAPACITY_RECHECK);
        }
        if let Some(next) = assessment.next_retry {
            decision.requeue_after = min_duration(
                decision.requeue_after,
                to_duration(next.duration_since(now)),
            );
        }
        decision.events.extend(transition_event(&old, &status));
        decision.status = status;
        return decision;
    }

    // 6. Every shard rendered: merge, then complete.
    set(
        &mut status,
        RENDERING,
        false,
        "AllShardsRendered",
        format!("{} shards rendered", plan.len()),
    );
    let failed_merges = observed
        .merges
        .iter()
        .filter(|m| matches!(&m.state, AttemptState::Failed(f) if f.kind == FailureKind::Retryable))
        .count() as u32;
    let latest = observed.merges.last();
    let create_merge = |attempt: u32| {
        let spec = merge_spec(job, &settings, &output, &assessment.attempts);
        pods::merge_pod(job, pool, &spec, attempt, storage_secret.as_deref())
    };
    match latest.map(|m| (&m.state, m.attempt)) {
        Some((AttemptState::Succeeded, _)) => {
            set(
                &mut status,
                MERGING,
                false,
                "Merged",
                "frames written".into(),
            );
            set(
                &mut status,
                COMPLETE,
                true,
                "FramesWritten",
                format!(
                    "{} frames written to {output}/frames",
                    plan.input().frames.len()
                ),
            );
            status.phase = Some(JobPhase::Complete);
            status.completion_time = Some(Time(now));
            if let Some(ttl) = job.spec.ttl_seconds_after_finished {
                decision.requeue_after = Some(Duration::from_secs(ttl.max(0) as u64));
            }
        }
        Some((AttemptState::Failed(failure), attempt)) => match &failure.kind {
            FailureKind::Permanent => {
                return finish_failed(
                    decision,
                    status,
                    old,
                    observed,
                    "MergeFailed",
                    format!("merge attempt {attempt}: {}", failure.message),
                    now,
                );
            }
            FailureKind::Retryable if failed_merges >= policy.attempts_per_shard => {
                return finish_failed(
                    decision,
                    status,
                    old,
                    observed,
                    "MergeFailed",
                    format!(
                        "merge failed {failed_merges} times; last: {}",
                        failure.message
                    ),
                    now,
                );
            }
            _ => {
                decision.create.push(create_merge(attempt + 1));
                set(
                    &mut status,
                    MERGING,
                    true,
                    "Merging",
                    format!("merge attempt {}", attempt + 1),
                );
                status.phase = Some(JobPhase::Merging);
            }
        },
        Some(_) => {
            set(
                &mut status,
                MERGING,
                true,
                "Merging",
                "merge pod running".into(),
            );
            status.phase = Some(JobPhase::Merging);
        }
        None => {
            decision.create.push(create_merge(0));
            set(
                &mut status,
                MERGING,
                true,
                "Merging",
                "merge pod created".into(),
            );
            status.phase = Some(JobPhase::Merging);
        }
    }
    decision.events.extend(transition_event(&old, &status));
    decision.status = status;
    decision
}

fn merge_spec(
    job: &RenderJob,
    settings: &RenderSettings,
    output: &str,
    attempts: &AttemptMap,
) -> MergeSpec {
    let sharding = &job.spec.sharding;
    MergeSpec {
        version: CONTRACT_VERSION,
        job: job.metadata.name.clone().unwrap_or_default(),
        namespace: job.metadata.namespace.clone().unwrap_or_default(),
        job_uid: job.metadata.uid.clone().unwrap_or_default(),
        settings: settings.clone(),
        frames: job.spec.frames.clone(),
        frames_per_shard: sharding.frames_per_shard,
        tiles_x: sharding.tiles.columns,
        tiles_y: sharding.tiles.rows,
        sample_splits: sharding.sample_splits,
        attempts: attempts.clone(),
        formats: job_plan::formats(&job.spec),
        output: output.to_string(),
    }
}

/// Counts, sets, attempts, GPU-seconds, the active list: the parts of status every branch shares.
fn fill_counts(
    status: &mut RenderJobStatus,
    plan: &ShardPlan,
    assessment: &Assessment,
    observed: &Observed,
) {
    let total = plan.len();
    status.shards = ShardCounts {
        total,
        succeeded: assessment.succeeded.len() as u32,
        failed: assessment.failed.len() as u32,
        active: assessment.active.len() as u32,
        waiting: total
            .saturating_sub(assessment.succeeded.len() as u32)
            .saturating_sub(assessment.failed.len() as u32)
            .saturating_sub(assessment.active.len() as u32),
    };
    status.succeeded_shards = assessment.succeeded.clone();
    status.failed_shards = assessment.failed.clone();
    status.shard_attempts = assessment.attempts.clone();
    status.progress = Some(status::progress(
        assessment.succeeded.len(),
        u64::from(total),
    ));
    status.gpu_seconds = status::gpu_seconds(observed);
    status.active_shards = status::active_list(assessment.active.iter().map(|(s, a)| (*s, a)));
    status.node_failures = assessment
        .node_failures
        .iter()
        .map(|(node, failures)| NodeFailures {
            node: node.clone(),
            failures: *failures,
        })
        .collect();
}

fn finish_failed(
    mut decision: Decision,
    mut status: RenderJobStatus,
    old: RenderJobStatus,
    observed: &Observed,
    reason: &str,
    message: String,
    now: Timestamp,
) -> Decision {
    let generation = status.observed_generation;
    conditions::set(
        &mut status.conditions,
        FAILED,
        true,
        reason,
        message,
        generation,
        now,
    );
    conditions::set(
        &mut status.conditions,
        RENDERING,
        false,
        reason,
        String::new(),
        generation,
        now,
    );
    conditions::set(
        &mut status.conditions,
        MERGING,
        false,
        reason,
        String::new(),
        generation,
        now,
    );
    status.phase = Some(JobPhase::Failed);
    status.completion_time = Some(Time(now));
    status.estimated_completion_time = None;
    decision.delete = active_pods(observed);
    decision.events.extend(transition_event(&old, &status));
    decision.status = status;
    decision
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
pub(crate) mod tests {
    use super::*;
    use crate::api::RenderPool;
    use serde_json::json;

    pub const JOB_YAML: &str = include_str!("../tests/fixtures/renderjob.yaml");
    pub const POOL_YAML: &str = include_str!("../tests/fixtures/renderpool.yaml");

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
            settings: job_plan::render_settings(&job.spec).unwrap(),
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
                "tessera.dev/role": "shard", "tessera.dev/shard": shard.to_string(), "tessera.dev/attempt": attempt.to_string()}},
            "spec": {"nodeName": node, "containers": [{"name": "render", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
            "status": status,
        }))
        .unwrap()
    }

    fn run(job: &RenderJob, pods: &[Pod], grant: u32) -> (Assessment, Decision) {
        let pool = pool_from_yaml();
        let observed = observe::observe(pods, &|_| true, "nvidia.com/gpu");
        let assessment = assess(job, &observed, &PoolNodes::default(), now());
        let decision = decide(DecideInput {
            job,
            pool: Some(&pool),
            observed: &observed,
            assessment: &assessment,
            grant,
            now: now(),
        });
        (assessment, decision)
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
                avoid: Avoidance {
                    required: BTreeSet::from(["gpu-node-1".to_string()]),
                    preferred: BTreeSet::new(),
                }
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
            ready: BTreeSet::from(["a".to_string(), "b".to_string()]),
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
        let (assessment, _) = run(&job_from_yaml(), &[evicted], 8);
        assert_eq!(assessment.counted_failures, 0);
        assert_eq!(assessment.ready[0].attempt, 1);
    }

    #[test]
    fn the_last_success_creates_the_merge_pod() {
        let pods: Vec<Pod> = (0..8)
            .map(|s| pod(s, 0, "Succeeded", Some(0), "gpu-node-1"))
            .collect();
        let (_, decision) = run(&job_from_yaml(), &pods, 8);
        assert_eq!(names(&decision.create), ["shot010-merge-0"]);
        assert_eq!(decision.status.phase, Some(JobPhase::Merging));
        assert_eq!(decision.status.progress.as_deref(), Some("100%"));
        assert_eq!(decision.status.succeeded_shards.to_string(), "0-7");
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
        assert_eq!(names(&decision.create), ["shot010-3-1"]);
        assert_eq!(decision.status.succeeded_shards.to_string(), "0-2,4-7");
        assert!(decision.events.iter().any(|e| e.reason == "OutputCorrupt"));

        // Shard 3's new attempt succeeds: the merge runs again, reading attempt 1 of shard 3.
        pods.push(pod(3, 1, "Succeeded", Some(0), "gpu-node-2"));
        let mut job = job_from_yaml();
        job.status = Some(decision.status.clone());
        let (_, decision) = run(&job, &pods, 8);
        assert_eq!(names(&decision.create), ["shot010-merge-1"]);
        let annotations = decision.create[0].metadata.annotations.clone().unwrap();
        assert_eq!(annotations["tessera.dev/merge-attempts"], "3:1");
    }

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
        assert_eq!(
            names(&decision.create),
            ["shot010-4-0", "shot010-5-0", "shot010-6-0", "shot010-7-0"]
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
}
