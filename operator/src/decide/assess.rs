//! Assess: where each shard of a valid job stands — succeeded, failed for good, running, ready
//! to start (with the nodes to avoid), or backing off — from the job's status, its ledger and
//! the pods that still exist.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tessera_shard::contract::{MergeStep, shard_log_path};
use tessera_shard::{AttemptMap, IndexSet};

use crate::api::{RetryPolicy, ShardFailure};
use crate::ledger::Ledger;
use crate::observe::{self, Attempt, AttemptState, FailureKind, Observed};
use crate::pods::Avoidance;

use super::valid::ValidJob;

/// A shard ready to start: its next attempt and the nodes it should stay off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyShard {
    pub shard: u32,
    pub attempt: u32,
    /// Shared by every shard that has not failed anywhere: a pass may list 90,000 ready
    /// shards, and a copy of the job's excluded nodes each cost a long job's passes dearly.
    pub avoid: Arc<Avoidance>,
}

/// What assess knows of the pool's nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolNodes {
    /// Ready, schedulable nodes of the pool (shared by the passes of a node cache's view).
    pub ready: Arc<BTreeSet<String>>,
    /// Nodes that failed shards of several jobs (the pool's status).
    pub suspects: BTreeSet<String>,
}

impl PoolNodes {
    /// Hard avoidance of `nodes`, unless that would leave no ready node of the pool: then a
    /// preference only, so the shard still runs somewhere instead of pending forever.
    pub fn avoidance(&self, nodes: BTreeSet<String>) -> Avoidance {
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
#[derive(Debug, Clone, Default)]
pub struct Assessment {
    pub succeeded: IndexSet,
    pub failed: IndexSet,
    pub attempts: AttemptMap,
    /// Shards with a pod pending or running: (shard, attempt).
    pub active: Vec<(u32, Attempt)>,
    /// Shards ready to start, in index order.
    pub ready: Vec<ReadyShard>,
    /// Earliest time a backing-off shard becomes ready.
    pub next_retry: Option<Timestamp>,
    pub last_failure: Option<ShardFailure>,
    /// Shards the latest merge found bad and that are now being rendered again.
    pub invalidated: IndexSet,
    /// Nodes this job no longer uses (at the retry policy's nodeFailureThreshold).
    pub excluded: BTreeSet<String>,
    /// Extra attempts of shards running far longer than the job's median (speculative
    /// re-runs), to start after the ready shards.
    pub speculative: Vec<ReadyShard>,
    /// Pods of attempts that lost a race: another attempt of their shard succeeded.
    pub superseded: Vec<String>,
    /// When a running attempt becomes slow enough for a speculative re-run.
    pub next_speculation: Option<Timestamp>,
    /// Shards whose speculative race has a winner: the losing attempt.
    pub races: BTreeMap<u32, u32>,
}

/// Reads the job's state from its status, its ledger (already settled with `observed`) and
/// its observed pods.
pub fn assess(
    job: &ValidJob<'_>,
    observed: &Observed,
    ledger: &Ledger,
    nodes: &PoolNodes,
    now: Timestamp,
) -> Assessment {
    let old = job.job.status.clone().unwrap_or_default();
    let shard_count = job.shard_count();
    let policy = &job.policy;
    let mut assessment = Assessment {
        failed: old
            .failed_shards
            .iter()
            .filter(|s| *s < shard_count)
            .collect(),
        attempts: old.shard_attempts.clone(),
        races: old
            .speculative_races
            .iter()
            .map(|r| (r.shard, r.loser))
            .collect(),
        last_failure: old.last_failure.clone(),
        excluded: ledger
            .node_failures
            .iter()
            .filter(|(_, count)| **count >= policy.node_failure_threshold)
            .map(|(node, _)| node.clone())
            .collect(),
        ..Default::default()
    };
    invalidate_from_merge(&mut assessment, observed, &job.plan);
    let status_succeeded: IndexSet = old
        .succeeded_shards
        .iter()
        .filter(|s| *s < shard_count && !assessment.invalidated.contains(*s))
        .collect();

    let no_attempts: Vec<Attempt> = Vec::new();
    let avoid_excluded = Arc::new(nodes.avoidance(assessment.excluded.clone()));
    for shard in 0..shard_count {
        let attempts = observed.shards.get(&shard).unwrap_or(&no_attempts);
        // Attempts at or after the recorded one: the ones that can still decide the shard.
        let floor = assessment.attempts.get(shard);
        let live: Vec<&Attempt> = attempts.iter().filter(|a| a.attempt >= floor).collect();
        // The first attempt to succeed wins (a speculative race may have two); the loser stops.
        if let Some(winner) = live
            .iter()
            .filter(|a| a.state == AttemptState::Succeeded)
            .min_by_key(|a| (a.finished, a.attempt))
        {
            assessment.attempts.set(shard, winner.attempt);
            assessment.superseded.extend(
                live.iter()
                    .filter(|a| a.is_active() && !a.terminating)
                    .map(|a| a.pod.clone()),
            );
            // The other attempt of a race: still running (stopped now) or stopped already.
            let lost = live.iter().find(|a| {
                a.attempt != winner.attempt
                    && (a.is_active() || (a.terminating && a.state != AttemptState::Succeeded))
            });
            if let Some(loser) = lost {
                assessment.races.insert(shard, loser.attempt);
            }
            // Succeeded once the ledger holds it (attempts settle in order, so a winner waits
            // for the attempt it beat to end); until then the shard still counts as active.
            if ledger.is_settled(shard, winner.attempt) {
                assessment.succeeded.insert(shard);
            } else {
                assessment.active.push((shard, (*winner).clone()));
            }
            continue;
        }
        let active: Vec<&Attempt> = live.iter().copied().filter(|a| a.is_active()).collect();
        if let Some(first) = active.iter().min_by_key(|a| a.attempt) {
            assessment.attempts.set(shard, first.attempt);
            assessment.active.push((shard, (*first).clone()));
            if let [only] = active[..] {
                let ctx = SpeculationInput {
                    job,
                    ledger,
                    nodes,
                    now,
                };
                consider_speculation(&mut assessment, &ctx, shard, attempts, only);
            }
            continue;
        }
        let latest = live.iter().max_by_key(|a| a.attempt);
        let current = latest.map_or(floor, |a| a.attempt);
        assessment.attempts.set(shard, current);
        match latest.map(|a| (*a, &a.state)) {
            Some((attempt, AttemptState::Failed(failure))) => {
                if assessment.failed.contains(shard) {
                    continue;
                }
                let counted = ledger.counted_failures(shard);
                let record = ShardFailure {
                    shard,
                    attempt: current,
                    node: attempt.node.clone(),
                    reason: failure.reason.clone(),
                    message: failure.message.clone(),
                    log: Some(shard_log_path(&job.output, &job.uid, shard, current)),
                };
                if failure.kind == FailureKind::Permanent || counted >= policy.attempts_per_shard {
                    assessment.failed.insert(shard);
                    assessment.last_failure = Some(record);
                    continue;
                }
                // The latest failure, except that a shard failed for good stays the job's
                // reason: the pods the failing job deletes must not replace it.
                if assessment.last_failure.as_ref().is_none_or(|f| {
                    !assessment.failed.contains(f.shard) && (f.shard, f.attempt) < (shard, current)
                }) {
                    assessment.last_failure = Some(record);
                }
                let delay = if failure.is_disruption() {
                    SignedDuration::ZERO
                } else {
                    backoff(policy, counted)
                };
                let ready_at = attempt
                    .finished
                    .unwrap_or(now)
                    .checked_add(delay)
                    .unwrap_or(now);
                if ready_at <= now {
                    let mut avoid: BTreeSet<String> =
                        observe::nodes_failed_for(attempts).into_iter().collect();
                    avoid.extend(assessment.excluded.iter().cloned());
                    assessment.ready.push(ReadyShard {
                        shard,
                        attempt: current.saturating_add(1),
                        avoid: Arc::new(nodes.avoidance(avoid)),
                    });
                } else {
                    assessment.next_retry =
                        Some(assessment.next_retry.map_or(ready_at, |t| t.min(ready_at)));
                }
            }
            Some(_) => {} // succeeded and active attempts were handled above
            None if status_succeeded.contains(shard) => assessment.succeeded.insert(shard),
            None if assessment.failed.contains(shard) => {}
            // No pod for the current attempt: not started yet, or its pod is gone. An attempt
            // the ledger already accounted for never runs again under the same number.
            None => assessment.ready.push(ReadyShard {
                shard,
                attempt: current.max(ledger.settled_count(shard)),
                avoid: avoid_excluded.clone(),
            }),
        }
    }
    assessment
}

/// Runs needed before the median run time is trusted for speculation.
const SPECULATION_MIN_SAMPLES: u32 = 5;

/// A shard whose only running attempt has run longer than `speculativeFactor` × the median
/// of the job's succeeded attempts gets one extra attempt, on another node.
fn consider_speculation(
    assessment: &mut Assessment,
    input: &SpeculationInput<'_>,
    shard: u32,
    attempts: &[Attempt],
    running: &Attempt,
) {
    let SpeculationInput {
        job,
        ledger,
        nodes,
        now,
    } = *input;
    let (Some(factor), Some(median)) = (
        job.policy.speculative_factor,
        ledger.median_seconds(SPECULATION_MIN_SAMPLES),
    ) else {
        return;
    };
    let (AttemptState::Running, Some(started), false) =
        (&running.state, running.started, running.terminating)
    else {
        return;
    };
    let Ok(limit) = SignedDuration::try_from_secs_f64(median * f64::from(factor)) else {
        return;
    };
    let slow_at = started.checked_add(limit).unwrap_or(Timestamp::MAX);
    if slow_at > now {
        assessment.next_speculation = Some(
            assessment
                .next_speculation
                .map_or(slow_at, |t| t.min(slow_at)),
        );
        return;
    }
    let next = attempts
        .iter()
        .map(|a| a.attempt.saturating_add(1))
        .max()
        .unwrap_or(0);
    let mut avoid: BTreeSet<String> = observe::nodes_failed_for(attempts).into_iter().collect();
    avoid.extend(running.node.iter().cloned());
    avoid.extend(assessment.excluded.iter().cloned());
    assessment.speculative.push(ReadyShard {
        shard,
        attempt: next.max(ledger.settled_count(shard)),
        avoid: Arc::new(nodes.avoidance(avoid)),
    });
}

/// What a speculation check reads besides the shard.
#[derive(Clone, Copy)]
struct SpeculationInput<'a> {
    job: &'a ValidJob<'a>,
    ledger: &'a Ledger,
    nodes: &'a PoolNodes,
    now: Timestamp,
}

/// A merge that found bad outputs sends exactly the attempts it read back to rendering: each
/// shard it names (of the chunks it merged) whose current attempt is still the one the merge
/// read moves to a new attempt. Idempotent: once bumped, the same verdict no longer matches.
fn invalidate_from_merge(
    assessment: &mut Assessment,
    observed: &Observed,
    plan: &tessera_shard::ShardPlan,
) {
    let shard_count = plan.len();
    for merge in &observed.merges {
        let (AttemptState::Failed(failure), Some(inputs)) = (&merge.state, &merge.merge_inputs)
        else {
            continue;
        };
        let FailureKind::InvalidShards(bad) = &failure.kind else {
            continue;
        };
        let merged_by_it = |shard: u32| match &merge.merge_step {
            Some(MergeStep::Chunks(chunks)) => chunks
                .iter()
                .any(|c| plan.shards_of_chunk(c).contains(&shard)),
            Some(MergeStep::Preview { .. } | MergeStep::Manifest) => false,
            Some(MergeStep::All) | None => true,
        };
        let mut invalidated = IndexSet::new();
        for shard in bad.iter().filter(|&s| s < shard_count && merged_by_it(s)) {
            if assessment.attempts.get(shard) == inputs.get(shard) {
                assessment
                    .attempts
                    .set(shard, inputs.get(shard).saturating_add(1));
                invalidated.insert(shard);
            }
        }
        if let Some(first) = invalidated.iter().next() {
            assessment.last_failure = Some(ShardFailure {
                shard: first,
                attempt: inputs.get(first),
                node: None,
                reason: "OutputCorrupt".into(),
                message: format!("shards {invalidated} render again: {}", failure.message),
                log: None,
            });
        }
        assessment.invalidated = assessment.invalidated.union(&invalidated);
    }
}

/// Retry delay after `failures` counted failures: base × 2^(failures−1), capped.
pub fn backoff(policy: &RetryPolicy, failures: u32) -> SignedDuration {
    let exponent = failures.saturating_sub(1).min(20);
    let seconds = u64::from(policy.backoff_seconds).saturating_mul(1 << exponent);
    SignedDuration::from_secs(seconds.min(u64::from(policy.max_backoff_seconds)) as i64)
}
