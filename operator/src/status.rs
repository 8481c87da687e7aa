//! Status figures that humans read: progress, ETA, GPU-seconds, the active list.
//!
//! All of them are computed from finished work only (or from pod identities), never from
//! "now", so that the status of a job whose pods did not change is byte-for-byte the same and
//! is not rewritten (every status write would trigger another reconcile).

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{ActiveShard, RenderJobStatus};
use crate::observe::Attempt;
use tessera_shard::IndexSet;

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

/// Whether `new` may wait for the job's next status write: it differs from `old` only in
/// figures and in the ledger of attempts that ended plainly — the shard counts, the active
/// list, current attempts, succeeded and failed shards, the settled, failed and disrupted
/// attempts, run times, GPU-seconds, node tallies, progress, the ETA and the counts in
/// condition messages. A job of many short shards would otherwise write its status
/// after nearly every pod event.
///
/// Settled attempts may wait because the next pass judges them the same: the operator deletes
/// no pod before the recorded status holds its attempt (`decide/cleanup.rs`), and a pod deleted
/// by someone else is remembered until then (`PodIndex::departed_of`). Written at once: the
/// phase, a condition's status or reason, the last failure (only the pass that sees a failed
/// attempt as its shard's latest names it), a speculative race (the recorded current attempt
/// pins its winner), re-renders, missing frames, start and completion.
///
/// Merged chunks and previews that only grow may wait too: a finished merge pod is deleted
/// only once the recorded ledger holds it (`decide/merges.rs`), so the next pass reads the same
/// merges, and the `FramesMerged` event, published with the write, names all the frames
/// merged since the last one. Written at once, with twenty jobs merging every few seconds,
/// they were about a quarter of the status writes (so a frame-by-frame dependent now sees a
/// merged frame up to [`crate::context::STATUS_BATCH_WINDOW`] later). A merged set that
/// shrinks (a re-render) does not wait.
pub fn may_wait(old: &RenderJobStatus, new: &RenderJobStatus) -> bool {
    let mut same = new.clone();
    same.shards = old.shards.clone();
    same.active_shards = old.active_shards.clone();
    same.shard_attempts = old.shard_attempts.clone();
    same.succeeded_shards = old.succeeded_shards.clone();
    same.failed_shards = old.failed_shards.clone();
    same.settled_attempts = old.settled_attempts.clone();
    same.failed_attempts = old.failed_attempts.clone();
    same.disrupted_attempts = old.disrupted_attempts;
    same.succeeded_seconds = old.succeeded_seconds;
    same.succeeded_durations = old.succeeded_durations.clone();
    same.gpu_seconds = old.gpu_seconds;
    same.node_failures = old.node_failures.clone();
    same.progress = old.progress.clone();
    same.estimated_completion_time = old.estimated_completion_time.clone();
    if grows(&old.merged_chunks, &new.merged_chunks)
        && grows(&old.previewed_shards, &new.previewed_shards)
    {
        same.merged_chunks = old.merged_chunks.clone();
        same.previewed_shards = old.previewed_shards.clone();
        same.frames_done = old.frames_done.clone();
    }
    for condition in &mut same.conditions {
        let before = old.conditions.iter().find(|c| {
            c.type_ == condition.type_
                && c.status == condition.status
                && c.reason == condition.reason
        });
        if let Some(before) = before {
            condition.message = before.message.clone();
        }
    }
    same == *old
}

/// `new` holds everything `old` does.
fn grows(old: &IndexSet, new: &IndexSet) -> bool {
    old.difference(new).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SpeculativeRace;
    use tessera_shard::{AttemptMap, IndexSet};

    #[test]
    fn figures_plain_settlements_and_new_merges_may_wait_races_rerenders_and_conditions_may_not() {
        let status = |reason: &str, message: &str, settled: &str| -> RenderJobStatus {
            serde_json::from_value(serde_json::json!({
                "phase": "Rendering", "settledAttempts": settled, "succeededShards": "0-3",
                "conditions": [{"type": "Rendering", "status": "True", "reason": reason,
                    "message": message, "lastTransitionTime": "2026-11-30T00:00:00Z"}]}))
            .unwrap()
        };
        let old = status("ShardsRunning", "8 shards running, 2 waiting", "4-9:1");
        assert!(may_wait(
            &old,
            &status("ShardsRunning", "9 shards running, 0 waiting", "4-9:1")
        ));
        // Attempts that ended plainly: their pods stay until the recorded status holds them.
        let mut settled = status("ShardsRunning", "9 shards running, 0 waiting", "4-11:1");
        settled.succeeded_shards = IndexSet::parse("0-4").unwrap();
        settled.gpu_seconds = 12.5;
        settled.failed_attempts = AttemptMap::parse("7:1").unwrap();
        assert!(may_wait(&old, &settled));
        assert!(!may_wait(
            &old,
            &status("WaitingForCapacity", "0 shards running, 2 waiting", "4-9:1")
        ));
        let mut done = old.clone();
        done.phase = Some(crate::api::JobPhase::Merging);
        assert!(!may_wait(&old, &done));
        let mut raced = settled.clone();
        raced.speculative_races = vec![SpeculativeRace { shard: 4, loser: 0 }];
        assert!(!may_wait(&old, &raced));
        // Merges that only add chunks wait; a merged set that shrinks (a re-render) does not.
        let mut merged = settled;
        merged.merged_chunks = IndexSet::parse("0").unwrap();
        merged.frames_done = Some("1".into());
        assert!(may_wait(&old, &merged));
        let mut rerendered = merged.clone();
        rerendered.merged_chunks = IndexSet::default();
        assert!(!may_wait(&merged, &rerendered));
    }

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
