//! Merges while rendering: each frame chunk is merged as soon as all its shards are rendered,
//! chunks still rendering get previews as their sample splits land, and the job manifest is
//! written last from the chunks' records — by merge pods, at most `maxConcurrent` at once.
//!
//! Pure: from the plan, the shards' state, the recorded merge ledger (`status.mergedChunks`,
//! `status.previewedShards`) and the observed merge pods, [`plan`] says what is merged and what
//! to start. A merge pod counts only if it read the shards' *current* attempts (its
//! `tessera.dev/merge-attempts` annotation): a re-render, or a corrupt shard rendered again,
//! makes every earlier merge of its chunk stale, whatever pods still exist.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use jiff::Timestamp;

use tessera_shard::contract::MergeStep;
use tessera_shard::{AttemptMap, IndexSet, ShardPlan};

use crate::observe::{Attempt, AttemptState, Failure, FailureKind};

/// Frame chunks one merge pod takes while merges keep up: a merge pod starts in a few
/// seconds, so chunks that finish together share one, and one pod never holds up many frames.
pub const MAX_CHUNKS_PER_MERGE: u32 = 8;

/// Frame chunks one merge pod takes at most when more are waiting than the free merge slots
/// hold at [`MAX_CHUNKS_PER_MERGE`] each: the backlog is spread over the slots instead of
/// waiting for pods of 8 in turn (a thousand-node farm finishes frames faster than 32 pods of
/// 8 merge them), and fewer pods start.
pub const MAX_CHUNKS_PER_MERGE_BEHIND: u32 = 64;

/// How long rendered chunks wait for others to share a merge pod with once a chunk merge has
/// started: a job whose frames finish steadily otherwise starts a pod for every two or three
/// of them (43 merge pods per job of 125 frames in `bench/scale`, each a create, a status write
/// and an event). Not before the job's first merge (its first frames land at once), nor once
/// nothing more will render.
pub const MERGE_GATHER: Duration = Duration::from_secs(15);

/// Chunks per merge pod for `ready` chunks and `slots` free merge slots.
fn chunks_per_merge(ready: usize, slots: usize) -> usize {
    ready.div_ceil(slots.max(1)).clamp(
        MAX_CHUNKS_PER_MERGE as usize,
        MAX_CHUNKS_PER_MERGE_BEHIND as usize,
    )
}

/// What [`plan`] reads.
pub struct MergeInput<'a> {
    pub plan: &'a ShardPlan,
    /// Each shard's current attempt.
    pub attempts: &'a AttemptMap,
    pub succeeded: &'a IndexSet,
    /// Shards failed for good in a job that accepts missing frames: their chunks are never
    /// merged.
    pub missing: &'a IndexSet,
    /// The merge ledger as recorded in the job's status.
    pub merged: &'a IndexSet,
    pub previewed: &'a IndexSet,
    pub merges: &'a [Attempt],
    pub max_concurrent: u32,
    pub previews: bool,
    /// Failed attempts a merge step may have before the job fails.
    pub attempts_per_merge: u32,
    pub now: Timestamp,
    /// More shards will render: some are active, ready or waiting for a retry, and the job is
    /// within its failure budget. Otherwise ready chunks merge at once: a job that fails for
    /// its shards fails only once what rendered is merged, and waits for no gathering.
    pub rendering: bool,
}

/// A merge pod to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeStart {
    pub step: MergeStep,
    pub attempt: u32,
}

/// Where the job manifest stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestState {
    /// Some frame chunk is not merged yet.
    Waiting,
    /// Its merge pod runs (or is being started).
    Writing,
    /// Written from the current attempts: the job is complete.
    Written,
}

/// What [`plan`] decided.
#[derive(Debug, Clone, PartialEq)]
pub struct MergePlan {
    /// Frame chunks merged from the current attempts.
    pub merged: IndexSet,
    /// Of those, the ones this pass found merged.
    pub newly_merged: IndexSet,
    /// Shards of unmerged chunks that a preview includes.
    pub previewed: IndexSet,
    pub start: Vec<MergeStart>,
    /// Finished merge pods the recorded ledger holds, or that merged stale attempts, without
    /// a merge id (pods of older operators): deleted one by one.
    pub delete: Vec<String>,
    /// The same with a merge id: their ids, for one delete-collection request. Gathered until
    /// [`COLLECT_MERGES_AT`] wait, or until no merge runs or starts.
    pub collect: Vec<String>,
    /// Merge pods running, and starting in this pass.
    pub running: usize,
    /// A merge of frame chunks runs or starts in this pass.
    pub merging_chunks: bool,
    pub manifest: ManifestState,
    /// Why the job must fail: a merge step failed for good.
    pub failure: Option<String>,
    /// Rendered chunks are gathering for a merge pod ([`MERGE_GATHER`]): look again then.
    pub look_again_in: Option<Duration>,
}

/// Finished merge pods that go together in one delete-collection request while other merges
/// still run: a job whose frames finish steadily runs a merge pod every few seconds, and one
/// delete each was 0.09 writes per shard (20 jobs of 125 frames × 4 tiles, `bench/scale`).
pub const COLLECT_MERGES_AT: usize = 8;

/// Decides the merges of one pass.
pub fn plan(input: &MergeInput<'_>) -> MergePlan {
    let mut result = plan_merges(input);
    let view = View { input };
    let finished = view.finished_pods();
    let (labelled, unlabelled): (Vec<&Attempt>, Vec<&Attempt>) =
        finished.into_iter().partition(|p| p.merge_id.is_some());
    result.delete = unlabelled.iter().map(|p| p.pod.clone()).collect();
    if labelled.len() >= COLLECT_MERGES_AT || result.running == 0 {
        result.collect = labelled.iter().filter_map(|p| p.merge_id.clone()).collect();
    }
    result
}

fn plan_merges(input: &MergeInput<'_>) -> MergePlan {
    let view = View { input };
    let chunks = input.plan.frame_chunks();
    let mut merged: IndexSet = input
        .merged
        .iter()
        .filter(|&c| c < chunks && view.rendered(c))
        .collect();
    let mut newly_merged = IndexSet::new();
    for pod in input
        .merges
        .iter()
        .filter(|p| p.state == AttemptState::Succeeded)
    {
        for c in view.chunks_of(pod) {
            if view.rendered(c) && view.current(pod, view.shards(c)) && !merged.contains(c) {
                merged.insert(c);
                newly_merged.insert(c);
            }
        }
    }
    let mut previewed = input.previewed.clone();
    for pod in input
        .merges
        .iter()
        .filter(|p| p.state == AttemptState::Succeeded)
    {
        if let Some(MergeStep::Preview { shards, .. }) = &pod.merge_step {
            previewed = previewed.union(shards);
        }
    }
    let previewed = previewed
        .difference(&view.shards_of_chunks(&merged))
        .iter()
        .filter(|&s| input.succeeded.contains(s))
        .collect();
    let mut result = MergePlan {
        failure: view.failure(),
        delete: Vec::new(),
        collect: Vec::new(),
        running: input
            .merges
            .iter()
            .filter(|p| p.is_active() && !p.terminating)
            .count(),
        merging_chunks: input.merges.iter().any(|p| {
            p.is_active() && !p.terminating && matches!(p.merge_step, Some(MergeStep::Chunks(_)))
        }),
        merged,
        newly_merged,
        previewed,
        start: Vec::new(),
        manifest: ManifestState::Waiting,
        look_again_in: None,
    };
    let all_merged = (0..chunks).all(|c| result.merged.contains(c) || view.is_missing(c));
    if all_merged {
        result.manifest = view.manifest(&mut result);
        return result;
    }
    view.start_chunk_merges(&mut result);
    if input.previews && input.plan.input().sample_splits > 1 {
        view.start_previews(&mut result);
    }
    result
}

/// The input, read chunk by chunk.
struct View<'a> {
    input: &'a MergeInput<'a>,
}

impl View<'_> {
    fn shards(&self, chunk: u32) -> Range<u32> {
        self.input.plan.shards_of_chunk(chunk)
    }

    /// Every shard of the chunk succeeded.
    fn rendered(&self, chunk: u32) -> bool {
        let shards = self.shards(chunk);
        !shards.is_empty()
            && self
                .input
                .succeeded
                .contains_range(shards.start, shards.end - 1)
    }

    fn is_missing(&self, chunk: u32) -> bool {
        !self.input.missing.is_empty() && self.shards(chunk).any(|s| self.input.missing.contains(s))
    }

    /// The pod read the current attempt of every shard of `shards`.
    fn current(&self, pod: &Attempt, shards: Range<u32>) -> bool {
        pod.merge_inputs.as_ref().is_some_and(|read| {
            shards
                .into_iter()
                .all(|s| read.get(s) == self.input.attempts.get(s))
        })
    }

    /// The chunks a merge pod merges (all of them for a pod that merged everything at once).
    fn chunks_of(&self, pod: &Attempt) -> Vec<u32> {
        match &pod.merge_step {
            None | Some(MergeStep::All) => (0..self.input.plan.frame_chunks()).collect(),
            Some(MergeStep::Chunks(chunks)) => chunks.iter().collect(),
            Some(MergeStep::Preview { .. } | MergeStep::Manifest) => Vec::new(),
        }
    }

    /// The chunks a pod writes frames or previews of: while it runs, no other pod may.
    fn touches(&self, pod: &Attempt, chunk: u32) -> bool {
        // Asked for every chunk against every merge pod in each pass: no list is built.
        match &pod.merge_step {
            None | Some(MergeStep::All) => chunk < self.input.plan.frame_chunks(),
            Some(MergeStep::Chunks(chunks)) => chunks.contains(chunk),
            Some(MergeStep::Preview { chunk: c, .. }) => *c == chunk,
            Some(MergeStep::Manifest) => false,
        }
    }

    fn busy(&self, chunk: u32) -> bool {
        self.input
            .merges
            .iter()
            .any(|p| p.is_active() && self.touches(p, chunk))
    }

    fn shards_of_chunks(&self, chunks: &IndexSet) -> IndexSet {
        let per_chunk = self.input.plan.shards_per_frame_chunk();
        let mut shards = IndexSet::new();
        for &(low, high) in chunks.intervals() {
            shards.insert_range(low * per_chunk, (high + 1) * per_chunk - 1);
        }
        shards
    }

    /// A chunk merge that failed for good (a permanent failure, or too many on current
    /// attempts). Preview failures never count: a preview is a courtesy.
    fn failure(&self) -> Option<String> {
        let mut failures: BTreeMap<u32, u32> = BTreeMap::new();
        for pod in self.input.merges {
            let AttemptState::Failed(failure) = &pod.state else {
                continue;
            };
            if matches!(
                pod.merge_step,
                Some(MergeStep::Preview { .. } | MergeStep::Manifest)
            ) {
                continue;
            }
            for c in self.chunks_of(pod) {
                if !self.current(pod, self.shards(c)) {
                    continue;
                }
                match failure.kind {
                    FailureKind::Permanent => {
                        return Some(format!("merge {}: {}", pod.pod, failure.message));
                    }
                    FailureKind::Retryable => {
                        let count = failures.entry(c).or_default();
                        *count += 1;
                        if *count >= self.input.attempts_per_merge {
                            return Some(format!(
                                "merging frame chunk {c} failed {count} times; last ({}): {}",
                                pod.pod, failure.message
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
        None
    }

    /// Succeeded chunk merges and previews that the recorded ledger already holds, or that
    /// read attempts no longer current: nothing will read them again. Failed pods stay (their
    /// logs, and the failure count); so does the manifest's.
    fn finished_pods(&self) -> Vec<&Attempt> {
        let recorded = self.input.merged;
        self.input
            .merges
            .iter()
            .filter(|p| p.state == AttemptState::Succeeded && !p.terminating)
            .filter(|pod| match &pod.merge_step {
                Some(MergeStep::Chunks(chunks)) => chunks
                    .iter()
                    .all(|c| recorded.contains(c) || !self.current(pod, self.shards(c))),
                Some(MergeStep::Preview { chunk, shards }) => {
                    recorded.contains(*chunk)
                        || shards.iter().all(|s| self.input.previewed.contains(s))
                        || !self.current(pod, self.shards(*chunk))
                }
                _ => false,
            })
            .collect()
    }

    /// Merge pods that may start now. None while one of the job's merge pods waits for room
    /// the scheduler cannot find: more would only wait beside it, and the scheduler tries
    /// every waiting pod again whenever any pod in the cluster ends (hundreds of merge pods
    /// waiting for CPU nodes tripled its CPU at 1,000 nodes).
    fn slots(&self, result: &MergePlan) -> usize {
        let no_room = self
            .input
            .merges
            .iter()
            .any(|p| p.unschedulable && p.is_active() && !p.terminating);
        if no_room {
            return 0;
        }
        (self.input.max_concurrent as usize).saturating_sub(result.running)
    }

    /// Rendered chunks not merged yet, in batches of up to [`MAX_CHUNKS_PER_MERGE`] (more
    /// when they outnumber what the free slots take so, [`chunks_per_merge`]); fewer than a
    /// batch wait up to [`MERGE_GATHER`] for more while the job renders.
    fn start_chunk_merges(&self, result: &mut MergePlan) {
        if result.failure.is_some() {
            return;
        }
        let ready: Vec<u32> = (0..self.input.plan.frame_chunks())
            .filter(|&c| {
                self.rendered(c)
                    && !result.merged.contains(c)
                    && !self.is_missing(c)
                    && !self.busy(c)
            })
            .collect();
        if let Some(wait) = self.gathering(ready.len(), result) {
            result.look_again_in = Some(wait);
            return;
        }
        let slots = self.slots(result);
        for batch in ready
            .chunks(chunks_per_merge(ready.len(), slots))
            .take(slots)
        {
            let first = batch[0];
            let attempt = self
                .input
                .merges
                .iter()
                .filter(|p| {
                    matches!(&p.merge_step, Some(MergeStep::Chunks(c)) if c.iter().next() == Some(first))
                })
                .map(|p| p.attempt.saturating_add(1))
                .max()
                .unwrap_or(0);
            result.start.push(MergeStart {
                step: MergeStep::Chunks(batch.iter().copied().collect()),
                attempt,
            });
            result.running += 1;
            result.merging_chunks = true;
        }
    }

    /// How much longer `ready` chunks wait for more to share a merge pod with, if they do.
    fn gathering(&self, ready: usize, result: &MergePlan) -> Option<Duration> {
        if ready == 0 || ready >= MAX_CHUNKS_PER_MERGE as usize {
            return None;
        }
        let chunks = self.input.plan.frame_chunks();
        let more_to_come = self.input.rendering
            && (0..chunks)
                .any(|c| !self.rendered(c) && !result.merged.contains(c) && !self.is_missing(c));
        // A pod not started yet counts as starting now.
        let last_merge = self
            .input
            .merges
            .iter()
            .filter(|p| matches!(p.merge_step, Some(MergeStep::Chunks(_))))
            .filter_map(|p| match p.is_active() {
                true => Some(p.started.unwrap_or(self.input.now)),
                false => p.started,
            })
            .max()?;
        let since = self.input.now.duration_since(last_merge);
        let wait = MERGE_GATHER.saturating_sub(since.try_into().unwrap_or_default());
        (more_to_come && !wait.is_zero()).then_some(wait)
    }

    /// A preview of each chunk still rendering whose completed sample splits (every tile of
    /// the split rendered) outnumber those its last preview had, in the slots chunk merges
    /// leave. The pod's attempt is the number of splits, so each preview is made once.
    fn start_previews(&self, result: &mut MergePlan) {
        let input = self.input;
        let splits = input.plan.input().sample_splits;
        let tiles = input.plan.input().tiles_x * input.plan.input().tiles_y;
        for chunk in 0..input.plan.frame_chunks() {
            if self.slots(result) == 0 {
                return;
            }
            if self.rendered(chunk) || self.is_missing(chunk) || self.busy(chunk) {
                continue;
            }
            let start = self.shards(chunk).start;
            let split_shards = |split: u32| (0..tiles).map(move |t| start + t * splits + split);
            let complete = |set: &IndexSet| -> Vec<u32> {
                (0..splits)
                    .filter(|&s| split_shards(s).all(|i| set.contains(i)))
                    .collect()
            };
            let done = complete(input.succeeded);
            let shown = complete(&result.previewed).len();
            let count = done.len() as u32;
            let made = input.merges.iter().any(|p| {
                p.attempt == count
                    && matches!(&p.merge_step, Some(MergeStep::Preview { chunk: c, .. }) if *c == chunk)
            });
            if done.len() <= shown || made {
                continue;
            }
            result.start.push(MergeStart {
                step: MergeStep::Preview {
                    chunk,
                    shards: done.iter().flat_map(|&s| split_shards(s)).collect(),
                },
                attempt: count,
            });
            result.running += 1;
        }
    }

    /// Every chunk merged: the job manifest, from the current attempts of every shard.
    fn manifest(&self, result: &mut MergePlan) -> ManifestState {
        let all = 0..self.input.plan.len();
        let manifests: Vec<&Attempt> = self
            .input
            .merges
            .iter()
            .filter(|p| {
                matches!(
                    p.merge_step,
                    None | Some(MergeStep::All | MergeStep::Manifest)
                )
            })
            .collect();
        let current: Vec<&Attempt> = manifests
            .iter()
            .copied()
            .filter(|p| self.current(p, all.clone()))
            .collect();
        if current.iter().any(|p| p.state == AttemptState::Succeeded) {
            return ManifestState::Written;
        }
        if current.iter().any(|p| p.is_active()) {
            return ManifestState::Writing;
        }
        let failed: Vec<(&Attempt, &Failure)> = current
            .iter()
            .filter_map(|p| match &p.state {
                AttemptState::Failed(f)
                    if matches!(f.kind, FailureKind::Retryable | FailureKind::Permanent) =>
                {
                    Some((*p, f))
                }
                _ => None,
            })
            .collect();
        if let Some((last, f)) = failed.last()
            && (f.kind == FailureKind::Permanent
                || failed.len() as u32 >= self.input.attempts_per_merge)
        {
            result.failure.get_or_insert(format!(
                "writing the job manifest failed {} times; last ({}): {}",
                failed.len(),
                last.pod,
                f.message
            ));
            return ManifestState::Waiting;
        }
        if result.failure.is_some() {
            return ManifestState::Waiting;
        }
        let attempt = manifests
            .iter()
            .map(|p| p.attempt.saturating_add(1))
            .max()
            .unwrap_or(0);
        result.start.push(MergeStart {
            step: MergeStep::Manifest,
            attempt,
        });
        result.running += 1;
        ManifestState::Writing
    }
}

#[cfg(test)]
mod tests;
