//! Status figures that humans read: progress, ETA, GPU-seconds, the active list.
//!
//! All of them are computed from finished work only (or from pod identities), never from
//! "now", so that the status of a job whose pods did not change is byte-for-byte the same and
//! is not rewritten (every status write would trigger another reconcile).

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::ActiveShard;
use crate::observe::{Attempt, AttemptState, Observed};

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

/// GPU time of finished attempts, in seconds.
pub fn gpu_seconds(observed: &Observed) -> f64 {
    observed
        .shards
        .values()
        .flatten()
        .chain(&observed.merges)
        .filter_map(|a| {
            Some(
                a.finished?
                    .duration_since(a.started?)
                    .as_secs_f64()
                    .max(0.0)
                    * f64::from(a.gpus),
            )
        })
        .sum()
}

/// When the remaining shards should be done: the mean duration of succeeded attempts times the
/// remaining shards, over the shards running in parallel, counted from the last finish.
pub fn estimated_completion(
    observed: &Observed,
    remaining: u64,
    parallel: u32,
) -> Option<Timestamp> {
    if remaining == 0 {
        return None;
    }
    let finished: Vec<(&Attempt, Timestamp, Timestamp)> = observed
        .shards
        .values()
        .flatten()
        .filter(|a| a.state == AttemptState::Succeeded)
        .filter_map(|a| Some((a, a.started?, a.finished?)))
        .collect();
    if finished.is_empty() {
        return None;
    }
    let total: f64 = finished
        .iter()
        .map(|(_, s, f)| f.duration_since(*s).as_secs_f64().max(0.0))
        .sum();
    let mean = total / finished.len() as f64;
    let last = finished.iter().map(|(_, _, f)| *f).max()?;
    let waves = (remaining as f64 / f64::from(parallel.max(1))).ceil();
    last.checked_add(SignedDuration::from_secs_f64(mean * waves))
        .ok()
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

    fn done(start: i64, end: i64, gpus: u32) -> Attempt {
        Attempt {
            pod: "p".into(),
            attempt: 0,
            node: Some("n".into()),
            state: AttemptState::Succeeded,
            started: Some(Timestamp::from_second(start).unwrap()),
            finished: Some(Timestamp::from_second(end).unwrap()),
            gpus,
            terminating: false,
            merge_inputs: None,
        }
    }

    #[test]
    fn progress_rounds_down() {
        assert_eq!(progress(0, 0), "0%");
        assert_eq!(progress(999, 1000), "99%");
        assert_eq!(progress(1000, 1000), "100%");
    }

    #[test]
    fn gpu_seconds_and_eta_come_from_finished_work() {
        let mut observed = Observed::default();
        observed.shards.insert(0, vec![done(0, 10, 2)]);
        observed.shards.insert(1, vec![done(5, 25, 1)]);
        assert_eq!(gpu_seconds(&observed), 40.0);
        // Mean 15 s; 4 remaining over 2 in parallel = 2 waves = 30 s after the last finish (25).
        let eta = estimated_completion(&observed, 4, 2).unwrap();
        assert_eq!(eta, Timestamp::from_second(55).unwrap());
        assert_eq!(estimated_completion(&observed, 0, 2), None);
        assert_eq!(estimated_completion(&Observed::default(), 3, 2), None);
    }
}
