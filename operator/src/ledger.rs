//! The shard ledger: what happened to every shard attempt, accounted once, when it ends.
//!
//! Pods are disposable (people delete them, PodGC collects them, the operator deletes them
//! once accounted), so nothing the job's budgets or accounting rest on may be recomputed from
//! the pods that still exist. Instead each attempt is *settled* into the job's status when it
//! ends: its GPU-seconds, whether it counts against its shard, and the node to blame.
//!
//! Exactly once: the ledger remembers, per shard, how many attempts it has settled
//! (`settledAttempts`; attempts settle in order, so a count is enough; for a shard that
//! succeeded or failed for good it is implied: its current attempt + 1). Settling is a pure
//! function of (old status, observed pods), the status is written with the resourceVersion it
//! was computed from (a stale read is refused, never applied twice), and a shard pod carries
//! the `tessera.dev/ledger` finalizer until its attempt is settled, so no pod can disappear
//! before it is accounted (see docs/architecture.md, "The shard ledger").

use std::collections::BTreeMap;

use jiff::Timestamp;
use tessera_shard::{AttemptMap, IndexSet};

use crate::api::{NodeFailures, RenderJobStatus};
use crate::observe::{Attempt, AttemptState, Failure, FailureKind, Observed};

/// Most nodes whose failure tallies a job's status keeps.
pub const MAX_NODES_LISTED: usize = 256;

/// The accounted history of a job's shard attempts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ledger {
    /// Per shard: attempts `0..n` are accounted for, where more than the recorded status
    /// implies (see [`Ledger::settled_count`]).
    pub settled: AttemptMap,
    /// Shards the recorded status held as succeeded or failed for good: each has settled its
    /// recorded attempt (`finished_attempts`) and the ones before it. Kept as the status's
    /// ranges, not expanded per shard: a pass reads the ledger several times, and expanding
    /// 100,000 finished shards into a map was most of a late pass's time.
    pub finished: IndexSet,
    /// The recorded status's attempt per shard (`shardAttempts`).
    pub finished_attempts: AttemptMap,
    /// Per shard: failed attempts that count against attemptsPerShard.
    pub failed: AttemptMap,
    /// Per node: failed attempts blamed on it.
    pub node_failures: BTreeMap<String, u32>,
    /// Attempts that ended without counting (evicted, preempted, lost, deleted).
    pub disrupted: u32,
    /// GPUs × wall-clock seconds of every settled attempt.
    pub gpu_seconds: f64,
    /// Wall-clock seconds of the settled attempts that succeeded.
    pub succeeded_seconds: f64,
    /// Their run times, as a histogram (see [`duration_bucket`]).
    pub succeeded_durations: AttemptMap,
}

/// Histogram buckets of run times: bucket `b` holds [2^(b/4), 2^((b+1)/4)) seconds, a
/// quarter octave (about 19 %) wide; bucket 0 also holds shorter runs.
pub fn duration_bucket(seconds: f64) -> u32 {
    let quarter_octaves = 4.0 * seconds.max(1.0).log2();
    (quarter_octaves.floor() as u32).min(MAX_DURATION_BUCKET)
}

/// The last bucket: about 2^25 s, longer than any render.
const MAX_DURATION_BUCKET: u32 = 100;

/// One attempt the ledger accounted for in this pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub shard: u32,
    pub attempt: u32,
    pub succeeded: bool,
    pub node: Option<String>,
    /// Why it failed (PascalCase reason, message), when it did.
    pub failure: Option<(String, String)>,
    /// It was stopped because another attempt of its shard succeeded first.
    pub superseded: bool,
    /// Wall-clock seconds, where the attempt started.
    pub seconds: Option<f64>,
    pub finished: Timestamp,
}

impl Ledger {
    /// The ledger as recorded in a job's status.
    pub fn from_status(status: &RenderJobStatus) -> Self {
        // A shard that succeeded or failed for good has settled its current attempt: status
        // leaves those out (see `write_to`), which keeps a 100,000-shard job's ledger small.
        Self {
            settled: status.settled_attempts.clone(),
            finished: status.succeeded_shards.union(&status.failed_shards),
            finished_attempts: status.shard_attempts.clone(),
            failed: status.failed_attempts.clone(),
            node_failures: status
                .node_failures
                .iter()
                .map(|n| (n.node.clone(), n.failures))
                .collect(),
            disrupted: status.disrupted_attempts,
            gpu_seconds: finite(status.gpu_seconds),
            succeeded_seconds: finite(status.succeeded_seconds),
            succeeded_durations: status.succeeded_durations.clone(),
        }
    }

    /// Attempts `0..n` of `shard` are accounted for: what was settled explicitly, or what
    /// the recorded status implies for a finished shard (its attempt + 1), whichever is more.
    pub fn settled_count(&self, shard: u32) -> u32 {
        let implied = if self.finished.contains(shard) {
            self.finished_attempts.get(shard).saturating_add(1)
        } else {
            0
        };
        self.settled.get(shard).max(implied)
    }

    /// Every shard's settled count, listed or implied: the whole account, for checks and
    /// reports (a pass asks [`Ledger::settled_count`] per shard instead).
    pub fn settled_counts(&self) -> AttemptMap {
        let mut all = self.settled.clone();
        for shard in self.finished.iter() {
            all.set(shard, self.settled_count(shard));
        }
        all
    }

    /// Writes the ledger's fields into `status`. Per-node tallies keep the
    /// [`MAX_NODES_LISTED`] nodes with the most failures: on a farm of thousands of nodes a
    /// scatter of single failures would otherwise outgrow the object (a dropped node starts
    /// again from zero, which only delays its exclusion).
    ///
    /// Call it after the status's `succeededShards`, `failedShards` and `shardAttempts` are
    /// set: a finished shard's settled count is implied by them and left out.
    pub fn write_to(&self, status: &mut RenderJobStatus) {
        let finished_now = status.succeeded_shards.union(&status.failed_shards);
        let implied_now = |shard: u32, count: u32| {
            finished_now.contains(shard)
                && count == status.shard_attempts.get(shard).saturating_add(1)
        };
        // A count the old status implied stays implied unless its shard is no longer finished
        // or its attempt changed: only those shards and the explicit ones need a look.
        let no_longer_finished = self.finished.difference(&finished_now);
        let candidates = self
            .settled
            .iter()
            .map(|(shard, _)| shard)
            .chain(no_longer_finished.iter())
            .chain(self.finished_attempts.iter().map(|(shard, _)| shard))
            .chain(status.shard_attempts.iter().map(|(shard, _)| shard));
        let mut explicit = AttemptMap::new();
        for shard in candidates {
            let count = self.settled_count(shard);
            if count > 0 && !implied_now(shard, count) {
                explicit.set(shard, count);
            }
        }
        status.settled_attempts = explicit;
        status.failed_attempts = self.failed.clone();
        let mut nodes: Vec<(&String, &u32)> = self.node_failures.iter().collect();
        nodes.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        nodes.truncate(MAX_NODES_LISTED);
        nodes.sort_by(|a, b| a.0.cmp(b.0));
        status.node_failures = nodes
            .into_iter()
            .map(|(node, failures)| NodeFailures {
                node: node.clone(),
                failures: *failures,
            })
            .collect();
        status.disrupted_attempts = self.disrupted;
        status.gpu_seconds = round_ms(self.gpu_seconds);
        status.succeeded_seconds = round_ms(self.succeeded_seconds);
        status.succeeded_durations = self.succeeded_durations.clone();
    }

    /// Whether attempt `attempt` of `shard` is accounted for.
    pub fn is_settled(&self, shard: u32, attempt: u32) -> bool {
        attempt < self.settled_count(shard)
    }

    /// Failed attempts of `shard` that count against it.
    pub fn counted_failures(&self, shard: u32) -> u32 {
        self.failed.get(shard)
    }

    /// The median run time of succeeded attempts, once at least `min_samples` succeeded: the
    /// middle of the histogram bucket that holds it.
    pub fn median_seconds(&self, min_samples: u32) -> Option<f64> {
        let total = self
            .succeeded_durations
            .iter()
            .fold(0u32, |sum, (_, n)| sum.saturating_add(n));
        if total < min_samples.max(1) {
            return None;
        }
        let mut seen = 0u32;
        for (bucket, count) in self.succeeded_durations.iter() {
            seen = seen.saturating_add(count);
            if seen.saturating_mul(2) >= total {
                return Some(2f64.powf((f64::from(bucket) + 0.5) / 4.0));
            }
        }
        None
    }

    /// Failed attempts that counted, over the whole job.
    pub fn total_counted_failures(&self) -> u32 {
        self.failed
            .iter()
            .fold(0u32, |sum, (_, n)| sum.saturating_add(n))
    }

    /// Accounts for every attempt of `observed` that has ended and is not yet settled, in
    /// attempt order per shard (an unfinished attempt holds back the later ones of its
    /// shard). Shards outside the plan (`shard_count`) are ignored. `now` closes the run time
    /// of attempts that ended without reporting a finish (a lost node, a deleted pod).
    /// `succeeded`: shards the recorded status holds as succeeded. An attempt the operator
    /// stopped because another attempt of its shard succeeded (a speculative race) is
    /// accounted as `Superseded`: not a failure, no node blamed.
    pub fn settle(
        &mut self,
        observed: &Observed,
        shard_count: u32,
        succeeded: &IndexSet,
        now: Timestamp,
    ) -> Vec<Settled> {
        let mut settled = Vec::new();
        for (&shard, attempts) in observed.shards.range(..shard_count) {
            let won = succeeded.contains(shard)
                || attempts.iter().any(|a| a.state == AttemptState::Succeeded);
            for attempt in attempts {
                if self.is_settled(shard, attempt.attempt) {
                    continue;
                }
                let Some(entry) = self.account(shard, attempt, won, now) else {
                    break;
                };
                settled.push(entry);
            }
        }
        settled
    }

    fn account(
        &mut self,
        shard: u32,
        attempt: &Attempt,
        won: bool,
        now: Timestamp,
    ) -> Option<Settled> {
        let superseded = Failure {
            kind: FailureKind::Disruption,
            reason: "Superseded".into(),
            message: "another attempt of the shard succeeded first".into(),
        };
        let lost_a_race = won && attempt.terminating;
        let failure = match &attempt.state {
            AttemptState::Succeeded => None,
            AttemptState::Failed(_) if lost_a_race => Some(&superseded),
            AttemptState::Failed(failure) => Some(failure),
            AttemptState::Pending | AttemptState::Running => return None,
        };
        let finished = attempt.finished.unwrap_or(now);
        let seconds = attempt
            .started
            .map(|started| finished.duration_since(started).as_secs_f64().max(0.0));
        let gpu_seconds = seconds.unwrap_or(0.0) * f64::from(attempt.gpus);
        self.gpu_seconds = finite(self.gpu_seconds + gpu_seconds);
        match failure {
            None => {
                let run = seconds.unwrap_or(0.0);
                self.succeeded_seconds = finite(self.succeeded_seconds + run);
                let bucket = duration_bucket(run);
                let count = self.succeeded_durations.get(bucket).saturating_add(1);
                self.succeeded_durations.set(bucket, count);
            }
            Some(failure) => {
                if failure.counts_against_shard() {
                    let failed = self.failed.get(shard).saturating_add(1);
                    self.failed.set(shard, failed);
                } else if failure.is_disruption() {
                    self.disrupted = self.disrupted.saturating_add(1);
                }
                if failure.blames_node()
                    && let Some(node) = &attempt.node
                {
                    let tally = self.node_failures.entry(node.clone()).or_default();
                    *tally = tally.saturating_add(1);
                }
            }
        }
        self.settled.set(
            shard,
            attempt
                .attempt
                .saturating_add(1)
                .max(self.settled_count(shard)),
        );
        Some(Settled {
            shard,
            attempt: attempt.attempt,
            succeeded: failure.is_none(),
            node: attempt.node.clone(),
            failure: failure.map(|f| (f.reason.clone(), f.message.clone())),
            superseded: failure.is_some() && lost_a_race,
            seconds,
            finished,
        })
    }
}

/// A hand-edited status may hold NaN or infinities; the ledger never carries them on.
/// A figure read from status: a non-negative finite number, else 0.
pub fn finite(value: f64) -> f64 {
    if value.is_finite() && value >= 0.0 {
        value
    } else {
        0.0
    }
}

/// Millisecond precision keeps the status stable across float rounding.
pub fn round_ms(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).unwrap()
    }

    fn attempt(attempt: u32, node: &str, state: AttemptState, run: (i64, i64)) -> Attempt {
        Attempt {
            pod: format!("j-0-{attempt}"),
            attempt,
            node: Some(node.into()),
            finished: matches!(state, AttemptState::Succeeded | AttemptState::Failed(_))
                .then(|| at(run.1)),
            state,
            started: Some(at(run.0)),
            gpus: 2,
            terminating: false,
            finalizer: true,
            block: None,
            merge_inputs: None,
            merge_step: None,
            merge_id: None,
            waiting: None,
            unschedulable: false,
        }
    }

    fn failed(kind: FailureKind, reason: &str) -> AttemptState {
        AttemptState::Failed(Failure {
            kind,
            reason: reason.into(),
            message: String::new(),
        })
    }

    fn observed(shards: &[(u32, Vec<Attempt>)]) -> Observed {
        Observed {
            shards: shards.iter().cloned().collect(),
            merges: Vec::new(),
        }
    }

    #[test]
    fn each_ended_attempt_is_accounted_once() {
        let pods = observed(&[
            (0, vec![attempt(0, "a", AttemptState::Succeeded, (0, 10))]),
            (
                1,
                vec![
                    attempt(0, "a", failed(FailureKind::Retryable, "Error"), (0, 5)),
                    attempt(1, "b", AttemptState::Running, (6, 0)),
                ],
            ),
        ]);
        let mut ledger = Ledger::default();
        let settled = ledger.settle(&pods, 8, &IndexSet::new(), at(100));
        assert_eq!(settled.len(), 2);
        assert_eq!(ledger.settled.to_string(), "0-1:1");
        assert_eq!(ledger.failed.to_string(), "1:1");
        assert_eq!(ledger.node_failures, BTreeMap::from([("a".into(), 1)]));
        assert_eq!(ledger.gpu_seconds, 30.0);
        assert_eq!(ledger.succeeded_seconds, 10.0);

        // The same pods again, as after an operator restart that read this status: nothing new.
        let mut status = RenderJobStatus::default();
        ledger.write_to(&mut status);
        let mut again = Ledger::from_status(&status);
        assert!(again.settle(&pods, 8, &IndexSet::new(), at(200)).is_empty());
        assert_eq!(again, ledger);

        // Deleting every pod changes nothing either.
        assert!(
            again
                .settle(&Observed::default(), 8, &IndexSet::new(), at(300))
                .is_empty()
        );
        assert_eq!(again, ledger);
    }

    #[test]
    fn counts_the_recorded_status_implies_survive_a_status_that_no_longer_implies_them() {
        let status: RenderJobStatus = serde_json::from_value(serde_json::json!({
            "succeededShards": "0-4,6-9", "failedShards": "5", "shardAttempts": "3:2,5:1",
        }))
        .unwrap();
        let ledger = Ledger::from_status(&status);
        let counts = |ledger: &Ledger| (0..10).map(|s| ledger.settled_count(s)).collect::<Vec<_>>();
        assert_eq!(counts(&ledger), [1, 1, 1, 3, 1, 2, 1, 1, 1, 1]);
        assert_eq!(
            ledger.settled_counts().to_string(),
            "0-2:1,3:3,4:1,5:2,6-9:1"
        );
        let mut same = status.clone();
        ledger.write_to(&mut same);
        assert_eq!(same.settled_attempts.to_string(), "");
        // Shard 7 is no longer succeeded (its output went missing) and shard 3 records a
        // later attempt: what they settled must now be written out.
        let mut next = status.clone();
        next.succeeded_shards = IndexSet::parse("0-4,6,8-9").unwrap();
        next.shard_attempts = AttemptMap::parse("3:4,5:1").unwrap();
        ledger.write_to(&mut next);
        assert_eq!(next.settled_attempts.to_string(), "3:3,7:1");
        // Read back: shard 7 keeps its count; shard 3's new record implies attempts 0-4.
        assert_eq!(
            counts(&Ledger::from_status(&next)),
            [1, 1, 1, 5, 1, 2, 1, 1, 1, 1]
        );
    }

    #[test]
    fn disruptions_do_not_count_but_lost_nodes_are_blamed() {
        let pods = observed(&[
            (
                0,
                vec![attempt(
                    0,
                    "a",
                    failed(FailureKind::Disruption, "Evicted"),
                    (0, 4),
                )],
            ),
            (
                1,
                vec![attempt(
                    0,
                    "b",
                    failed(FailureKind::NodeLost, "NodeLost"),
                    (0, 4),
                )],
            ),
            (
                2,
                vec![attempt(
                    0,
                    "c",
                    failed(FailureKind::Retryable, "Timeout"),
                    (0, 4),
                )],
            ),
        ]);
        let mut ledger = Ledger::default();
        ledger.settle(&pods, 8, &IndexSet::new(), at(10));
        assert_eq!(ledger.failed.to_string(), "2:1");
        assert_eq!(ledger.disrupted, 2);
        assert_eq!(
            ledger.node_failures,
            BTreeMap::from([("b".into(), 1), ("c".into(), 1)])
        );
    }

    #[test]
    fn an_unfinished_attempt_holds_back_later_ones_and_gaps_are_skipped() {
        let pods = observed(&[(
            0,
            vec![
                attempt(1, "a", AttemptState::Running, (0, 0)),
                attempt(2, "b", failed(FailureKind::Retryable, "Error"), (0, 3)),
            ],
        )]);
        let mut ledger = Ledger::default();
        assert!(ledger.settle(&pods, 8, &IndexSet::new(), at(10)).is_empty());
        // Attempt 0 left no pod (deleted before this version kept finalizers): skipped.
        let pods = observed(&[(
            0,
            vec![
                attempt(1, "a", AttemptState::Succeeded, (0, 5)),
                attempt(2, "b", failed(FailureKind::Retryable, "Error"), (0, 3)),
            ],
        )]);
        assert_eq!(ledger.settle(&pods, 8, &IndexSet::new(), at(10)).len(), 2);
        assert_eq!(ledger.settled.get(0), 3);
    }

    #[test]
    fn the_median_run_time_comes_from_a_quarter_octave_histogram() {
        assert_eq!(duration_bucket(0.2), 0);
        assert_eq!(duration_bucket(2.0), 4);
        assert_eq!(duration_bucket(1e30), 100);
        let mut ledger = Ledger::default();
        assert_eq!(ledger.median_seconds(5), None);
        for seconds in [10.0, 11.0, 12.0, 95.0, 9.5] {
            let bucket = duration_bucket(seconds);
            let count = ledger.succeeded_durations.get(bucket) + 1;
            ledger.succeeded_durations.set(bucket, count);
        }
        let median = ledger.median_seconds(5).unwrap();
        // Within the 19 % width of the bucket that holds the middle run (10-11 s).
        assert!((9.0..13.0).contains(&median), "{median}");
        assert_eq!(ledger.median_seconds(6), None);
    }

    #[test]
    fn a_hand_edited_status_cannot_overflow_or_poison_the_ledger() {
        let status: RenderJobStatus = serde_json::from_value(serde_json::json!({
            "settledAttempts": "0:4294967295", "failedAttempts": "1:4294967295,2:4294967295",
            "gpuSeconds": -5.0, "nodeFailures": [{"node": "a", "failures": 4294967295u32}],
        }))
        .unwrap();
        let mut ledger = Ledger::from_status(&status);
        assert_eq!(ledger.total_counted_failures(), u32::MAX);
        assert_eq!(ledger.gpu_seconds, 0.0);
        let pods = observed(&[(
            1,
            vec![attempt(0, "a", failed(FailureKind::Retryable, "E"), (0, 1))],
        )]);
        ledger.settle(&pods, 8, &IndexSet::new(), at(10));
        assert_eq!(ledger.counted_failures(1), u32::MAX);
        assert_eq!(ledger.node_failures["a"], u32::MAX);
        // Shards outside the plan are never accounted.
        let pods = observed(&[(99, vec![attempt(0, "a", AttemptState::Succeeded, (0, 1))])]);
        assert!(ledger.settle(&pods, 8, &IndexSet::new(), at(10)).is_empty());
    }
}
