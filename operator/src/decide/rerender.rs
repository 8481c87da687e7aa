//! Re-render (`spec.rerender`): a generation and a selection — the shards that failed for
//! good, or every shard of some frames — turned back into shards that have not rendered:
//! a new attempt number each, a fresh attempt budget, their frame chunks no longer merged.
//!
//! Applied to the job's recorded status before anything else of the pass reads it, so the
//! ledger, assess and the merge plan simply see shards to render and chunks to merge; every
//! other shard and frame is left exactly as it was (its objects are never touched again).
//! Pure.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tessera_shard::{FrameList, IndexSet, ShardPlan};

use crate::api::{JobPhase, RenderJobStatus, Rerender, RerenderRecord};
use crate::conditions::{self, COMPLETE, FAILED};
use crate::ledger::Ledger;

/// Re-renders kept in `status.rerenders` (the CRD's bound).
pub const MAX_RERENDERS_LISTED: usize = 16;

/// The status after the job's pending re-render request, or `None` when there is none (no
/// request, or its generation was handled already).
pub fn apply(
    request: Option<&Rerender>,
    plan: &ShardPlan,
    status: &RenderJobStatus,
    generation: Option<i64>,
    now: Timestamp,
) -> Option<RenderJobStatus> {
    let request = request.filter(|r| r.generation > status.rerender_generation)?;
    let shards = select(request, plan, status);
    let ledger = Ledger::from_status(status);
    let mut next = status.clone();
    for shard in shards.iter() {
        // The next attempt number: never one the ledger has accounted for.
        let attempt = ledger
            .settled_count(shard)
            .max(status.shard_attempts.get(shard).saturating_add(1));
        next.shard_attempts.set(shard, attempt);
        next.settled_attempts.set(shard, attempt);
        next.failed_attempts.set(shard, 0);
    }
    next.succeeded_shards = status.succeeded_shards.difference(&shards);
    next.failed_shards = status.failed_shards.difference(&shards);
    let chunks: IndexSet = shards
        .iter()
        .map(|s| s / plan.shards_per_frame_chunk())
        .collect();
    next.merged_chunks = status.merged_chunks.difference(&chunks);
    next.previewed_shards = status.previewed_shards.difference(&shards);
    let frames = tessera_shard::frames::compact(
        chunks
            .iter()
            .filter_map(|c| plan.shard(plan.shards_of_chunk(c).start))
            .flat_map(|s| s.frames),
    );
    next.rerender_generation = request.generation;
    next.rerenders.push(RerenderRecord {
        generation: request.generation,
        shards: shards.clone(),
        frames: frames.clone(),
        time: Time(now),
    });
    let excess = next.rerenders.len().saturating_sub(MAX_RERENDERS_LISTED);
    next.rerenders.drain(..excess);
    if !shards.is_empty() {
        reopen(&mut next, request.generation, &frames, generation, now);
    }
    Some(next)
}

/// The shards a request selects.
fn select(request: &Rerender, plan: &ShardPlan, status: &RenderJobStatus) -> IndexSet {
    if request.failed {
        return status
            .failed_shards
            .iter()
            .filter(|&s| s < plan.len())
            .collect();
    }
    let Some(frames) = request
        .frames
        .as_deref()
        .and_then(|f| FrameList::parse(f).ok())
    else {
        return IndexSet::new();
    };
    let mut shards = IndexSet::new();
    for chunk in 0..plan.frame_chunks() {
        let range = plan.shards_of_chunk(chunk);
        let covered = plan
            .shard(range.start)
            .is_some_and(|s| s.frames.iter().any(|&f| frames.contains(f)));
        if covered && !range.is_empty() {
            shards.insert_range(range.start, range.end - 1);
        }
    }
    shards
}

/// A finished job goes back to rendering: not Complete or Failed any more, the deadline
/// counted afresh from now.
fn reopen(
    status: &mut RenderJobStatus,
    request: u32,
    frames: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    let message = format!("spec.rerender generation {request}: frames {frames} render again");
    for type_ in [COMPLETE, FAILED] {
        if conditions::is_true(&status.conditions, type_) {
            conditions::set(
                &mut status.conditions,
                type_,
                false,
                "Rerendering",
                message.clone(),
                generation,
                now,
            );
        }
    }
    status.phase = Some(JobPhase::Rendering);
    status.completion_time = None;
    status.last_failure = None;
    if status.start_time.is_some() {
        status.start_time = Some(Time(now));
        status.suspended_seconds = 0;
    }
}

#[cfg(test)]
mod tests {
    use tessera_shard::{AttemptMap, PlanInput};

    use super::*;

    /// 4 frames, one per chunk, 2 tiles: chunk c is shards 2c, 2c+1.
    fn plan() -> ShardPlan {
        ShardPlan::new(PlanInput {
            frames: FrameList::parse("1-4").unwrap(),
            width: 8,
            height: 8,
            samples_per_pixel: 4,
            frames_per_shard: 1,
            tiles_x: 2,
            tiles_y: 1,
            sample_splits: 1,
        })
        .unwrap()
    }

    fn failed_job() -> RenderJobStatus {
        let mut status = RenderJobStatus {
            succeeded_shards: IndexSet::parse("0-2,4-7").unwrap(),
            failed_shards: IndexSet::parse("3").unwrap(),
            shard_attempts: AttemptMap::parse("3:2,5:1").unwrap(),
            failed_attempts: AttemptMap::parse("3:3").unwrap(),
            merged_chunks: IndexSet::parse("0,2-3").unwrap(),
            phase: Some(JobPhase::Failed),
            start_time: Some(Time(Timestamp::UNIX_EPOCH)),
            completion_time: Some(Time(Timestamp::UNIX_EPOCH)),
            ..Default::default()
        };
        conditions::set(
            &mut status.conditions,
            FAILED,
            true,
            "ShardFailed",
            "shard 3 failed",
            Some(1),
            Timestamp::UNIX_EPOCH,
        );
        status
    }

    fn request(generation: u32, failed: bool, frames: Option<&str>) -> Rerender {
        Rerender {
            generation,
            failed,
            frames: frames.map(String::from),
        }
    }

    #[test]
    fn failed_shards_render_again_as_new_attempts_with_a_fresh_budget() {
        let now = Timestamp::from_second(1_000).unwrap();
        let status = failed_job();
        let next = apply(
            Some(&request(1, true, None)),
            &plan(),
            &status,
            Some(2),
            now,
        )
        .unwrap();
        assert_eq!(next.failed_shards, IndexSet::new());
        assert_eq!(next.succeeded_shards.to_string(), "0-2,4-7");
        assert_eq!(next.shard_attempts.get(3), 3);
        assert_eq!(next.settled_attempts.get(3), 3);
        assert_eq!(next.failed_attempts.get(3), 0);
        // Frame 2 merges again; the other chunks stay merged.
        assert_eq!(next.merged_chunks.to_string(), "0,2-3");
        assert!(!conditions::is_true(&next.conditions, FAILED));
        assert_eq!(next.phase, Some(JobPhase::Rendering));
        assert_eq!(next.completion_time, None);
        assert_eq!(next.start_time, Some(Time(now)));
        assert_eq!(next.rerender_generation, 1);
        let record = &next.rerenders[0];
        assert_eq!(
            (record.shards.to_string(), record.frames.as_str()),
            ("3".into(), "2")
        );
        // Handled once: the same generation again changes nothing.
        assert_eq!(
            apply(Some(&request(1, true, None)), &plan(), &next, Some(2), now),
            None
        );
    }

    #[test]
    fn frames_select_every_shard_of_their_chunks() {
        let now = Timestamp::from_second(1_000).unwrap();
        let mut status = failed_job();
        status.failed_shards = IndexSet::new();
        status.succeeded_shards = IndexSet::parse("0-7").unwrap();
        status.merged_chunks = IndexSet::parse("0-3").unwrap();
        let next = apply(
            Some(&request(2, false, Some("3-4,9"))),
            &plan(),
            &status,
            None,
            now,
        )
        .unwrap();
        assert_eq!(next.succeeded_shards.to_string(), "0-3");
        assert_eq!(next.merged_chunks.to_string(), "0-1");
        // Shard 5 was at attempt 1: the new one is 2; the others move from 0 to 1.
        assert_eq!(next.shard_attempts.to_string(), "3:2,4:1,5:2,6-7:1");
        assert_eq!(next.rerenders[0].frames, "3-4");
    }

    #[test]
    fn a_selection_of_nothing_is_recorded_and_reopens_nothing() {
        let now = Timestamp::from_second(1_000).unwrap();
        let status = failed_job();
        let next = apply(
            Some(&request(1, false, Some("99"))),
            &plan(),
            &status,
            None,
            now,
        )
        .unwrap();
        assert!(conditions::is_true(&next.conditions, FAILED));
        assert_eq!(next.rerender_generation, 1);
        assert!(next.rerenders[0].shards.is_empty());
    }
}
