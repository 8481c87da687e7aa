//! Status figures that humans read: progress, ETA, GPU-seconds, the active list.
//!
//! All of them are computed from finished work only (or from pod identities), never from
//! "now", so that the status of a job whose pods did not change is byte-for-byte the same and
//! is not rewritten (every status write would trigger another reconcile).

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::ActiveShard;
use crate::observe::Attempt;

/// Most active shards listed in status; the count covers the rest. Keeps a 10,000-shard
/// job's object small whatever the pool's size.
pub const MAX_ACTIVE_LISTED: usize = 50;

/// `42%`, rounded down so that 100% means done.
pub fn progress(succeeded: u64, total: u64) -> String {
    if total == 0 {
        return "0%".into();
    }
    format!("{}%", succeeded * 100 / total)
}

/// When the remaining shards should be done: the mean run time of succeeded attempts (from
/// the ledger) times the remaining waves of `parallel` shards, counted from `last_finish`.
pub fn estimated_completion(
    succeeded_seconds: f64,
    succeeded: u64,
    last_finish: Option<Timestamp>,
    remaining: u64,
    parallel: u32,
) -> Option<Timestamp> {
    if remaining == 0 || succeeded == 0 {
        return None;
    }
    let mean = succeeded_seconds / succeeded as f64;
    let waves = (remaining as f64 / f64::from(parallel.max(1))).ceil();
    let ahead = SignedDuration::try_from_secs_f64(mean * waves).ok()?;
    last_finish?.checked_add(ahead).ok()
}

/// The active list, sorted by shard and capped.
pub fn active_list<'a>(active: impl Iterator<Item = (u32, &'a Attempt)>) -> Vec<ActiveShard> {
    let mut list: Vec<ActiveShard> = active
        .map(|(shard, a)| ActiveShard {
            shard,
            attempt: a.attempt,
            node: a.node.clone(),
            start_time: a.started.map(Time),
        })
        .collect();
    list.sort_by_key(|a| a.shard);
    list.truncate(MAX_ACTIVE_LISTED);
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_rounds_down() {
        assert_eq!(progress(0, 0), "0%");
        assert_eq!(progress(999, 1000), "99%");
        assert_eq!(progress(1000, 1000), "100%");
    }

    #[test]
    fn the_eta_comes_from_finished_work() {
        let last = Timestamp::from_second(25).unwrap();
        // Mean 15 s; 4 remaining over 2 in parallel = 2 waves = 30 s after the last finish.
        let eta = estimated_completion(30.0, 2, Some(last), 4, 2).unwrap();
        assert_eq!(eta, Timestamp::from_second(55).unwrap());
        assert_eq!(estimated_completion(30.0, 2, Some(last), 0, 2), None);
        assert_eq!(estimated_completion(0.0, 0, Some(last), 3, 2), None);
        assert_eq!(
            estimated_completion(f64::INFINITY, 1, Some(last), 3, 2),
            None
        );
    }
}
