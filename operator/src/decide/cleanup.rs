//! Which shard pods the operator lets go once the ledger holds their attempt.
//!
//! Only attempts accounted for in the *recorded* status (the ledger as the API server holds
//! it, not the one this pass is about to write) are touched, so a pod never disappears before
//! its attempt is in the ledger. Kept: the pods of a shard's failed attempts while the shard
//! has not succeeded (its retries avoid their nodes, and `kubectl logs` reads them), and the
//! latest failed attempt's pod of every shard for the job's lifetime. Deleted: everything else
//! that has ended. Merge pods are the merge plan's (`decide/merges.rs`).

use crate::ledger::Ledger;
use crate::observe::{AttemptState, Observed};

/// Pods to release (drop the ledger finalizer) and to delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleanup {
    pub release: Vec<String>,
    pub delete: Vec<String>,
}

/// `recorded`: the ledger of the job's current status; `succeeded`: shards that succeeded.
pub fn settled_pods(
    observed: &Observed,
    recorded: &Ledger,
    succeeded: &tessera_shard::IndexSet,
) -> Cleanup {
    let mut cleanup = Cleanup::default();
    for (&shard, attempts) in &observed.shards {
        let latest_failed = attempts
            .iter()
            .filter(|a| matches!(a.state, AttemptState::Failed(_)))
            .map(|a| a.attempt)
            .max();
        for attempt in attempts {
            if !recorded.is_settled(shard, attempt.attempt) {
                continue;
            }
            if attempt.finalizer {
                cleanup.release.push(attempt.pod.clone());
            }
            let keep = match attempt.state {
                AttemptState::Failed(_) => {
                    !succeeded.contains(shard) || Some(attempt.attempt) == latest_failed
                }
                _ => false,
            };
            if !keep && !attempt.terminating {
                cleanup.delete.push(attempt.pod.clone());
            }
        }
    }
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
            merge_inputs: None,
            merge_step: None,
            waiting: None,
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
        let cleanup = settled_pods(&observed, &recorded, &succeeded);
        assert_eq!(
            cleanup.release,
            ["j-0-0", "j-1-0", "j-1-1", "j-1-2", "j-2-0"]
        );
        // Shard 1 keeps its latest failed attempt; shard 2 keeps its failure while it retries.
        assert_eq!(cleanup.delete, ["j-0-0", "j-1-0", "j-1-2"]);
    }
}
