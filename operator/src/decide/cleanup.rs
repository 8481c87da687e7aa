//! Which shard pods the operator lets go once the ledger holds their attempt.
//!
//! Only attempts accounted for in the *recorded* status (the ledger as the API server holds
//! it, not the one this pass is about to write) are touched, so a pod never disappears before
//! its attempt is in the ledger. Kept: the pods of a shard's failed attempts while the shard
//! has not succeeded (its retries avoid their nodes, and `kubectl logs` reads them), and the
//! latest failed attempt's pod of every shard for the job's lifetime. Deleted: everything else
//! that has ended — succeeded pods a block at a time (`labels::SHARD_BLOCK`): once every
//! shard of a block is done and its succeeded pods are recorded, one delete-collection request
//! (label `tessera.dev/shard-block`, field `status.phase=Succeeded`) takes them all. A block
//! whose last shards wait for a retry goes early, once [`COLLECT_EARLY_AT`] of its pods have
//! succeeded and are recorded, and its stragglers in a second request when it is done. Merge
//! pods are the merge plan's (`decide/merges.rs`).

use std::collections::BTreeMap;

use tessera_shard::IndexSet;

use crate::labels::SHARDS_PER_BLOCK;
use crate::ledger::Ledger;
use crate::observe::{AttemptState, Observed};

/// Recorded succeeded pods that take a block early. With 1 % of attempts failing, nine blocks
/// in ten wait for a retry that the scheduler places behind every pod created before it (at
/// 1,000 nodes, minutes): the whole block's succeeded pods stayed in the operator's cache for
/// that long. A second request per block is 1/256 of a request per shard.
pub const COLLECT_EARLY_AT: u32 = SHARDS_PER_BLOCK / 16 * 15;

/// Pods to release (drop the ledger finalizer) and to delete, and the blocks whose succeeded
/// pods go in one request each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleanup {
    pub release: Vec<String>,
    pub delete: Vec<String>,
    pub collect_blocks: Vec<u32>,
}

/// Where the job's shards stand, for the blocks.
pub struct Done<'a> {
    pub succeeded: &'a IndexSet,
    /// Shards failed for good.
    pub failed: &'a IndexSet,
    pub shard_count: u32,
    /// The job is Complete or Failed: nothing of it runs again.
    pub job_finished: bool,
}

impl Done<'_> {
    /// Every shard of the block has succeeded or failed for good.
    fn block_done(&self, block: u32) -> bool {
        let first = block.saturating_mul(SHARDS_PER_BLOCK);
        let end = first.saturating_add(SHARDS_PER_BLOCK).min(self.shard_count);
        self.job_finished
            || (first..end).all(|s| self.succeeded.contains(s) || self.failed.contains(s))
    }
}

/// `recorded`: the ledger of the job's current status.
pub fn settled_pods(observed: &Observed, recorded: &Ledger, done: &Done<'_>) -> Cleanup {
    let mut cleanup = Cleanup::default();
    // Blocks with a succeeded pod to collect: whether all such pods are recorded, and how many.
    let mut blocks: BTreeMap<u32, (bool, u32)> = BTreeMap::new();
    for (&shard, attempts) in &observed.shards {
        let latest_failed = attempts
            .iter()
            .filter(|a| matches!(a.state, AttemptState::Failed(_)))
            .map(|a| a.attempt)
            .max();
        for attempt in attempts {
            let recorded = recorded.is_settled(shard, attempt.attempt);
            if let (AttemptState::Succeeded, Some(block), false) =
                (&attempt.state, attempt.block, attempt.terminating)
            {
                let (all_recorded, pods) = blocks.entry(block).or_insert((true, 0));
                *all_recorded &= recorded;
                *pods += 1;
            }
            if !recorded {
                continue;
            }
            if attempt.finalizer {
                cleanup.release.push(attempt.pod.clone());
            }
            let keep = match attempt.state {
                AttemptState::Failed(_) => {
                    !done.succeeded.contains(shard) || Some(attempt.attempt) == latest_failed
                }
                // Pods of an operator before blocks have no block label: one delete each.
                AttemptState::Succeeded => attempt.block.is_some(),
                _ => false,
            };
            if !keep && !attempt.terminating {
                cleanup.delete.push(attempt.pod.clone());
            }
        }
    }
    cleanup.collect_blocks = blocks
        .into_iter()
        .filter(|&(block, (all_recorded, pods))| {
            all_recorded && (pods >= COLLECT_EARLY_AT || done.block_done(block))
        })
        .map(|(block, _)| block)
        .collect();
    cleanup
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::{Attempt, Failure, FailureKind};
    use tessera_shard::{AttemptMap, IndexSet};

    fn attempt(shard: u32, attempt: u32, state: AttemptState) -> Attempt {
        Attempt {
            pod: format!("j-{shard}-{attempt}"),
            attempt,
            node: Some("n".into()),
            state,
            started: None,
            finished: None,
            gpus: 1,
            terminating: false,
            finalizer: true,
            block: Some(shard / SHARDS_PER_BLOCK),
            merge_inputs: None,
            merge_step: None,
            merge_id: None,
            waiting: None,
            unschedulable: false,
        }
    }

    fn failed() -> AttemptState {
        AttemptState::Failed(Failure {
            kind: FailureKind::Retryable,
            reason: "Error".into(),
            message: String::new(),
        })
    }

    #[test]
    fn only_recorded_attempts_are_let_go_and_failed_ones_are_kept_for_logs() {
        let observed = Observed {
            shards: [
                (0, vec![attempt(0, 0, AttemptState::Succeeded)]),
                (
                    1,
                    vec![
                        attempt(1, 0, failed()),
                        attempt(1, 1, failed()),
                        attempt(1, 2, AttemptState::Succeeded),
                    ],
                ),
                (
                    2,
                    vec![
                        attempt(2, 0, failed()),
                        attempt(2, 1, AttemptState::Running),
                    ],
                ),
                (3, vec![attempt(3, 0, AttemptState::Succeeded)]),
            ]
            .into_iter()
            .collect(),
            merges: Vec::new(),
        };
        let recorded = Ledger {
            settled: AttemptMap::parse("0:1,1:3,2:1").unwrap(), // shard 3 not yet recorded
            ..Default::default()
        };
        let succeeded = IndexSet::parse("0-1,3").unwrap();
        let done = Done {
            succeeded: &succeeded,
            failed: &IndexSet::default(),
            shard_count: 4,
            job_finished: false,
        };
        let cleanup = settled_pods(&observed, &recorded, &done);
        assert_eq!(
            cleanup.release,
            ["j-0-0", "j-1-0", "j-1-1", "j-1-2", "j-2-0"]
        );
        // Shard 1 keeps its latest failed attempt; shard 2 keeps its failure while it retries.
        // Succeeded pods go by block: not yet, shard 2 still runs and shard 3 is not recorded.
        assert_eq!(cleanup.delete, ["j-1-0"]);
        assert!(cleanup.collect_blocks.is_empty());
    }

    #[test]
    fn a_done_block_whose_succeeded_pods_are_recorded_goes_in_one_request() {
        let succeeded_pod = |shard: u32| attempt(shard, 0, AttemptState::Succeeded);
        let observed = Observed {
            shards: [
                (0, vec![succeeded_pod(0)]),
                (300, vec![succeeded_pod(300)]),
                (520, vec![succeeded_pod(520)]),
            ]
            .into_iter()
            .collect(),
            merges: Vec::new(),
        };
        let recorded = Ledger {
            settled: AttemptMap::parse("0-519:1").unwrap(),
            ..Default::default()
        };
        // Block 0 (0-255): all done. Block 1 (256-511): 400 failed for good, the rest done.
        // Block 2 (512-599): shard 520's pod is not recorded yet.
        let succeeded = IndexSet::parse("0-399,401-599").unwrap();
        let failed = IndexSet::parse("400").unwrap();
        let mut done = Done {
            succeeded: &succeeded,
            failed: &failed,
            shard_count: 600,
            job_finished: false,
        };
        let cleanup = settled_pods(&observed, &recorded, &done);
        assert_eq!(cleanup.collect_blocks, [0, 1]);
        assert!(cleanup.delete.is_empty());
        // A shard not done holds its block back, unless the job has finished.
        let partly = IndexSet::parse("0-254,256-599").unwrap();
        done.succeeded = &partly;
        assert_eq!(
            settled_pods(&observed, &recorded, &done).collect_blocks,
            [1]
        );
        done.job_finished = true;
        assert_eq!(
            settled_pods(&observed, &recorded, &done).collect_blocks,
            [0, 1]
        );
    }

    #[test]
    fn a_block_waiting_for_a_few_retries_goes_early_and_its_stragglers_when_done() {
        let succeeded_pod = |shard: u32| (shard, vec![attempt(shard, 0, AttemptState::Succeeded)]);
        let recorded = Ledger {
            settled: AttemptMap::parse("0-255:1").unwrap(),
            ..Default::default()
        };
        let failed = IndexSet::default();
        // 240 of block 0's 256 shards succeeded; 16 wait for a retry.
        let succeeded = IndexSet::parse("0-239").unwrap();
        let done = Done {
            succeeded: &succeeded,
            failed: &failed,
            shard_count: 256,
            job_finished: false,
        };
        let most = Observed {
            shards: (0..COLLECT_EARLY_AT).map(succeeded_pod).collect(),
            merges: Vec::new(),
        };
        assert_eq!(settled_pods(&most, &recorded, &done).collect_blocks, [0]);
        let fewer = Observed {
            shards: (1..COLLECT_EARLY_AT).map(succeeded_pod).collect(),
            merges: Vec::new(),
        };
        assert!(
            settled_pods(&fewer, &recorded, &done)
                .collect_blocks
                .is_empty()
        );
        // Collected; two stragglers have succeeded since: they wait for the block to be done.
        let stragglers = Observed {
            shards: [succeeded_pod(240), succeeded_pod(241)]
                .into_iter()
                .collect(),
            merges: Vec::new(),
        };
        assert!(
            settled_pods(&stragglers, &recorded, &done)
                .collect_blocks
                .is_empty()
        );
        let all = IndexSet::parse("0-255").unwrap();
        let done = Done {
            succeeded: &all,
            ..done
        };
        assert_eq!(
            settled_pods(&stragglers, &recorded, &done).collect_blocks,
            [0]
        );
    }

    #[test]
    fn succeeded_pods_without_a_block_label_are_deleted_one_by_one() {
        let mut old = attempt(0, 0, AttemptState::Succeeded);
        old.block = None;
        let observed = Observed {
            shards: [(0, vec![old])].into_iter().collect(),
            merges: Vec::new(),
        };
        let recorded = Ledger {
            settled: AttemptMap::parse("0:1").unwrap(),
            ..Default::default()
        };
        let succeeded = IndexSet::parse("0").unwrap();
        let done = Done {
            succeeded: &succeeded,
            failed: &IndexSet::default(),
            shard_count: 1,
            job_finished: false,
        };
        let cleanup = settled_pods(&observed, &recorded, &done);
        assert_eq!(cleanup.delete, ["j-0-0"]);
        assert!(cleanup.collect_blocks.is_empty());
    }
}
