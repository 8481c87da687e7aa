//! `status`: a RenderJob's status as frames → shards → state, computed from the job alone
//! (its spec's plan and its status: `succeededShards`, `failedShards`, `shardAttempts`,
//! `failedAttempts`, `activeShards`, `lastFailure`). Pure: `now` is an input.
//!
//! Rows are runs of consecutive shards in the same state and attempt, so a finished
//! 1,600-shard job is one row and a running one a few dozen; each active shard has its own row
//! (its node and start time). What status does not record is not shown: the node of a
//! succeeded shard, the run time of a finished one.

use std::collections::HashMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde::Serialize;
use tessera_operator::api::{NodeFailures, RenderJob, ShardCounts, ShardFailure};
use tessera_shard::{FrameList, IndexSet, ShardPlan};

/// A shard's state, as the table shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ShardState {
    /// Rendered and verified.
    Succeeded,
    /// Failed for good.
    Failed,
    /// A pod is pending or running.
    Active,
    /// Not started, or backing off before a retry.
    Waiting,
}

impl ShardState {
    pub fn as_str(self) -> &'static str {
        match self {
            ShardState::Succeeded => "succeeded",
            ShardState::Failed => "failed",
            ShardState::Active => "active",
            ShardState::Waiting => "waiting",
        }
    }
}

/// A run of consecutive shards sharing state, attempt and counted failures.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// The frames these shards render (all or part of each), in frame-list syntax.
    pub frames: String,
    /// The shards, as an index set (`0-15`).
    pub shards: String,
    pub first_shard: u32,
    pub last_shard: u32,
    pub state: ShardState,
    /// The current attempt (0 is the first).
    pub attempt: u32,
    /// Failed attempts that counted against each shard (`status.failedAttempts`).
    pub failed_attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// When an active shard's attempt started (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// How long an active shard's attempt has run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
}

/// A condition, as shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionView {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: String,
}

/// Everything `status` prints; `-o json|yaml` prints exactly this.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    pub name: String,
    pub namespace: String,
    pub pool: String,
    pub phase: Option<String>,
    pub progress: Option<String>,
    /// `status.shards` as the operator counted them.
    pub shards: ShardCounts,
    pub frames: String,
    /// Frames that will not be written (`retry.allowMissingFrames`), in frame-list syntax.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_frames: Option<String>,
    /// Frames merged so far (`status.framesDone`): they grow while the job renders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames_done: Option<String>,
    /// Where previews of frames still rendering are (`status.output.previews`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previews: Option<String>,
    pub shards_per_frame: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// Seconds from start to completion, or to now while it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_completion_time: Option<String>,
    pub gpu_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_frames: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_manifest: Option<String>,
    pub conditions: Vec<ConditionView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<ShardFailure>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub node_failures: Vec<NodeFailures>,
    /// Active shards status does not list (it lists at most 50): shown as waiting.
    #[serde(skip_serializing_if = "is_zero")]
    pub unlisted_active: u32,
    pub rows: Vec<Row>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The view of `job` at `now`. Fails only when the spec cannot be planned.
pub fn status_view(job: &RenderJob, now: Timestamp) -> Result<StatusView, String> {
    let plan = tessera_operator::job_plan::plan(&job.spec)
        .map_err(|e| format!("the job's spec cannot be planned: {e}"))?;
    let status = job.status.clone().unwrap_or_default();
    let active: HashMap<u32, &tessera_operator::api::ActiveShard> =
        status.active_shards.iter().map(|a| (a.shard, a)).collect();
    let failure = status.last_failure.as_ref();

    let mut runs: Vec<Row> = Vec::new();
    for shard in 0..plan.len() {
        let (state, attempt, node, start) = if status.succeeded_shards.contains(shard) {
            (
                ShardState::Succeeded,
                status.shard_attempts.get(shard),
                None,
                None,
            )
        } else if status.failed_shards.contains(shard) {
            let node = failure
                .filter(|f| f.shard == shard)
                .and_then(|f| f.node.clone());
            (
                ShardState::Failed,
                status.shard_attempts.get(shard),
                node,
                None,
            )
        } else if let Some(a) = active.get(&shard) {
            (
                ShardState::Active,
                a.attempt,
                a.node.clone(),
                a.start_time.as_ref().map(|t| t.0),
            )
        } else {
            (
                ShardState::Waiting,
                status.shard_attempts.get(shard),
                None,
                None,
            )
        };
        let failed_attempts = status.failed_attempts.get(shard);
        if let Some(last) = runs.last_mut()
            && state != ShardState::Active
            && last.state == state
            && last.attempt == attempt
            && last.failed_attempts == failed_attempts
            && last.node == node
            && last.last_shard + 1 == shard
        {
            last.last_shard = shard;
            continue;
        }
        runs.push(Row {
            frames: String::new(),
            shards: String::new(),
            first_shard: shard,
            last_shard: shard,
            state,
            attempt,
            failed_attempts,
            node,
            start_time: start.map(|t| t.to_string()),
            duration_seconds: start.map(|t| seconds_between(t, now)),
        });
    }
    let mut frames_of = FramesOfChunks::new(&plan);
    for row in &mut runs {
        row.frames = frames_of.frames(row.first_shard, row.last_shard);
        let mut set = IndexSet::new();
        set.insert_range(row.first_shard, row.last_shard);
        row.shards = set.to_string();
    }

    let start = status.start_time.as_ref().map(|t| t.0);
    let end = status.completion_time.as_ref().map(|t| t.0);
    Ok(StatusView {
        name: job.metadata.name.clone().unwrap_or_default(),
        namespace: job.metadata.namespace.clone().unwrap_or_default(),
        pool: job.spec.pool.clone(),
        phase: status
            .phase
            .map(|p| serde_json::to_value(p).ok())
            .and_then(|v| v.and_then(|v| v.as_str().map(String::from))),
        progress: status.progress.clone(),
        shards: status.shards.clone(),
        frames: plan.input().frames.to_string(),
        missing_frames: status.missing_frames.clone(),
        frames_done: status.frames_done.clone(),
        previews: status.output.as_ref().and_then(|o| o.previews.clone()),
        shards_per_frame: plan.shards_per_frame_chunk(),
        start_time: start.map(|t| t.to_string()),
        completion_time: end.map(|t| t.to_string()),
        duration_seconds: start.map(|s| seconds_between(s, end.unwrap_or(now))),
        estimated_completion_time: status
            .estimated_completion_time
            .as_ref()
            .map(|t| t.0.to_string()),
        gpu_seconds: status.gpu_seconds,
        output_frames: status.output.as_ref().map(|o| o.frames.clone()),
        output_manifest: status.output.as_ref().map(|o| o.manifest.clone()),
        conditions: status.conditions.iter().map(condition_view).collect(),
        last_failure: status.last_failure.clone(),
        node_failures: status.node_failures.clone(),
        unlisted_active: status
            .shards
            .active
            .saturating_sub(status.active_shards.len() as u32),
        rows: runs,
    })
}

fn condition_view(c: &Condition) -> ConditionView {
    ConditionView {
        type_: c.type_.clone(),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        last_transition_time: c.last_transition_time.0.to_string(),
    }
}

fn seconds_between(from: Timestamp, to: Timestamp) -> i64 {
    (to.as_second() - from.as_second()).max(0)
}

/// The frames of runs of frame chunks, formatted once per run.
struct FramesOfChunks<'a> {
    plan: &'a ShardPlan,
    cache: HashMap<(u32, u32), String>,
}

impl<'a> FramesOfChunks<'a> {
    fn new(plan: &'a ShardPlan) -> Self {
        Self {
            plan,
            cache: HashMap::new(),
        }
    }

    /// The frames shards `first..=last` render.
    fn frames(&mut self, first: u32, last: u32) -> String {
        let per_chunk = self.plan.shards_per_frame_chunk().max(1);
        let (c0, c1) = (first / per_chunk, last / per_chunk);
        let plan = self.plan;
        self.cache
            .entry((c0, c1))
            .or_insert_with(|| {
                let input = plan.input();
                let per = u64::from(input.frames_per_shard);
                let from = u64::from(c0) * per;
                let to = ((u64::from(c1) + 1) * per).min(input.frames.len());
                format_frames(&input.frames, from, to)
            })
            .clone()
    }
}

/// Frames at positions `from..to` of `list`, in frame-list syntax: arithmetic runs become
/// `a-b` or `a-bxstep`, as users write them.
pub fn format_frames(list: &FrameList, from: u64, to: u64) -> String {
    fn flush((start, step, count): (i64, i64, u64), parts: &mut Vec<String>) {
        let end = start + step * (count as i64 - 1);
        match count {
            1 => parts.push(start.to_string()),
            2 if step != 1 => {
                parts.push(start.to_string());
                parts.push(end.to_string());
            }
            _ if step == 1 => parts.push(format!("{start}-{end}")),
            _ => parts.push(format!("{start}-{end}x{step}")),
        }
    }
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(i64, i64, u64)> = None; // (start, step, count)
    for position in from..to {
        let Some(frame) = list.nth(position) else {
            break;
        };
        run = match run {
            None => Some((frame, 1, 1)),
            Some((start, _, 1)) if frame > start => Some((start, frame - start, 2)),
            Some((start, step, count)) if frame == start + step * count as i64 => {
                Some((start, step, count + 1))
            }
            // Two frames are no run yet: the second may start one with this frame.
            Some((start, step, 2)) => {
                flush((start, 1, 1), &mut parts);
                let second = start + step;
                if frame > second {
                    Some((second, frame - second, 2))
                } else {
                    flush((second, 1, 1), &mut parts);
                    Some((frame, 1, 1))
                }
            }
            Some(done) => {
                flush(done, &mut parts);
                Some((frame, 1, 1))
            }
        };
    }
    if let Some(done) = run {
        flush(done, &mut parts);
    }
    parts.join(",")
}

/// `90` → `1m30s`, `3700` → `1h1m40s`.
pub fn human_duration(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// The human form: a summary, the conditions, the last failure, then the rows.
pub fn render_table(view: &StatusView) -> String {
    let mut out = String::new();
    let c = &view.shards;
    out.push_str(&format!(
        "RenderJob {}/{} on pool {}\n",
        view.namespace, view.name, view.pool
    ));
    out.push_str(&format!(
        "Phase:     {}{}\n",
        view.phase.as_deref().unwrap_or("(no status yet)"),
        view.progress
            .as_deref()
            .map(|p| format!(" {p}"))
            .unwrap_or_default()
    ));
    out.push_str(&format!(
        "Shards:    {} total: {} succeeded, {} failed, {} active, {} waiting ({} per frame chunk)\n",
        c.total, c.succeeded, c.failed, c.active, c.waiting, view.shards_per_frame
    ));
    out.push_str(&format!("Frames:    {}\n", view.frames));
    if let Some(done) = &view.frames_done {
        out.push_str(&format!("Merged:    {done}\n"));
    }
    if let Some(previews) = &view.previews {
        out.push_str(&format!("Previews:  {previews}\n"));
    }
    if let Some(missing) = &view.missing_frames {
        out.push_str(&format!(
            "Missing:   {missing} (their shards failed; allowMissingFrames)\n"
        ));
    }
    if let Some(start) = &view.start_time {
        let took = view
            .duration_seconds
            .map(|d| format!(" ({})", human_duration(d)))
            .unwrap_or_default();
        match &view.completion_time {
            Some(end) => out.push_str(&format!("Ran:       {start} to {end}{took}\n")),
            None => out.push_str(&format!("Started:   {start}{took} ago\n")),
        }
    }
    if let Some(eta) = &view.estimated_completion_time {
        out.push_str(&format!("ETA:       {eta}\n"));
    }
    if view.gpu_seconds > 0.0 {
        out.push_str(&format!("GPU time:  {:.0} s\n", view.gpu_seconds));
    }
    if let Some(frames) = &view.output_frames {
        out.push_str(&format!("Output:    {frames}\n"));
    }
    if !view.conditions.is_empty() {
        out.push_str("\nConditions:\n");
        let rows: Vec<Vec<String>> = view
            .conditions
            .iter()
            .map(|c| {
                vec![
                    c.type_.clone(),
                    c.status.clone(),
                    c.reason.clone(),
                    c.message.clone(),
                ]
            })
            .collect();
        out.push_str(&table(
            &["TYPE", "STATUS", "REASON", "MESSAGE"],
            &rows,
            "  ",
        ));
    }
    if let Some(f) = &view.last_failure {
        out.push_str(&format!(
            "\nLast failure: shard {} attempt {}{}: {}: {}\n",
            f.shard,
            f.attempt,
            f.node
                .as_deref()
                .map(|n| format!(" on node {n}"))
                .unwrap_or_default(),
            f.reason,
            f.message
        ));
        if let Some(log) = &f.log {
            out.push_str(&format!("  log: {log}\n"));
        }
    }
    if !view.node_failures.is_empty() {
        let nodes: Vec<String> = view
            .node_failures
            .iter()
            .map(|n| format!("{} ({})", n.node, n.failures))
            .collect();
        out.push_str(&format!("Node failures: {}\n", nodes.join(", ")));
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = view
        .rows
        .iter()
        .map(|r| {
            vec![
                r.frames.clone(),
                r.shards.clone(),
                r.state.as_str().to_string(),
                r.attempt.to_string(),
                r.failed_attempts.to_string(),
                r.node.clone().unwrap_or_else(|| "-".into()),
                r.duration_seconds
                    .map(human_duration)
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "FRAMES", "SHARDS", "STATE", "ATTEMPT", "FAILURES", "NODE", "DURATION",
        ],
        &rows,
        "",
    ));
    if view.unlisted_active > 0 {
        out.push_str(&format!(
            "({} more active shards are shown as waiting: status lists at most 50)\n",
            view.unlisted_active
        ));
    }
    out
}

/// Columns padded to their widest cell, two spaces apart; the last column unpadded. Long
/// cells (frame lists of odd jobs) are cut at 60 characters.
fn table(header: &[&str], rows: &[Vec<String>], indent: &str) -> String {
    let cut = |cell: &str| -> String {
        if cell.chars().count() > 60 {
            cell.chars().take(59).chain(['…']).collect()
        } else {
            cell.to_string()
        }
    };
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| cut(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let last = cells.len() - 1;
        let mut text = indent.to_string();
        for (i, cell) in cells.into_iter().enumerate() {
            if i == last {
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            }
        }
        text.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(status: serde_json::Value) -> RenderJob {
        serde_json::from_value(json!({
            "apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
            "metadata": {"name": "shot010", "namespace": "lighting"},
            "spec": {"pool": "l40s", "scene": {"url": "s3://b/shot.glb"}, "frames": "1-4",
                     "resolution": {"width": 64, "height": 64}, "samplesPerPixel": 8,
                     "sharding": {"tiles": {"columns": 2, "rows": 2}}},
            "status": status,
        }))
        .unwrap()
    }

    fn now() -> Timestamp {
        "2026-12-01T10:05:00Z".parse().unwrap()
    }

    #[test]
    fn a_running_job_shows_runs_of_shards_by_frame_with_active_shards_on_their_own() {
        let job = job(json!({
            "phase": "Rendering", "progress": "50%",
            "shards": {"total": 16, "succeeded": 8, "failed": 0, "active": 2, "waiting": 6},
            "succeededShards": "0-5,7-8",
            "shardAttempts": "6:1,7:1",
            "failedAttempts": "6:1,7:1",
            "activeShards": [
                {"shard": 6, "attempt": 1, "node": "gpu-2", "startTime": "2026-12-01T10:04:30Z"},
                {"shard": 9, "attempt": 0, "node": "gpu-1", "startTime": "2026-12-01T10:03:00Z"},
            ],
            "startTime": "2026-12-01T10:00:00Z",
        }));
        let view = status_view(&job, now()).unwrap();
        type Summary<'a> = (
            &'a str,
            &'a str,
            ShardState,
            u32,
            u32,
            Option<&'a str>,
            Option<i64>,
        );
        let summary: Vec<Summary> = view
            .rows
            .iter()
            .map(|r| {
                (
                    r.frames.as_str(),
                    r.shards.as_str(),
                    r.state,
                    r.attempt,
                    r.failed_attempts,
                    r.node.as_deref(),
                    r.duration_seconds,
                )
            })
            .collect();
        use ShardState::*;
        assert_eq!(
            summary,
            vec![
                ("1-2", "0-5", Succeeded, 0, 0, None, None),
                ("2", "6", Active, 1, 1, Some("gpu-2"), Some(30)),
                ("2", "7", Succeeded, 1, 1, None, None),
                ("3", "8", Succeeded, 0, 0, None, None),
                ("3", "9", Active, 0, 0, Some("gpu-1"), Some(120)),
                ("3-4", "10-15", Waiting, 0, 0, None, None),
            ]
        );
        assert_eq!(view.duration_seconds, Some(300));
        assert_eq!(view.shards_per_frame, 4);

        let text = render_table(&view);
        assert!(text.contains("Phase:     Rendering 50%\n"), "{text}");
        assert!(
            text.contains(
                "FRAMES  SHARDS  STATE      ATTEMPT  FAILURES  NODE   DURATION\n\
                 1-2     0-5     succeeded  0        0         -      -\n\
                 2       6       active     1        1         gpu-2  30s\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("3-4     10-15   waiting    0        0         -      -\n"),
            "{text}"
        );
    }

    #[test]
    fn a_partial_job_shows_its_missing_frames() {
        let job = job(json!({
            "phase": "Complete", "missingFrames": "2", "framesDone": "1,3-4",
            "shards": {"total": 16, "succeeded": 15, "failed": 1, "active": 0, "waiting": 0},
            "succeededShards": "0-3,5-15", "failedShards": "4",
        }));
        let view = status_view(&job, now()).unwrap();
        assert_eq!(view.missing_frames.as_deref(), Some("2"));
        let text = render_table(&view);
        assert!(text.contains("Missing:   2 (their shards failed"), "{text}");
        assert!(text.contains("Merged:    1,3-4\n"), "{text}");
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["missingFrames"], "2");
        assert_eq!(json["framesDone"], "1,3-4");
    }

    #[test]
    fn a_failed_job_names_the_failure_and_its_node() {
        let job = job(json!({
            "phase": "Failed",
            "shards": {"total": 16, "succeeded": 15, "failed": 1, "active": 0, "waiting": 0},
            "succeededShards": "0-2,4-15", "failedShards": "3",
            "shardAttempts": "3:1", "failedAttempts": "3:2",
            "lastFailure": {"shard": 3, "attempt": 1, "node": "gpu-3", "reason": "Error",
                            "message": "exit code 1: boom", "log": "s3://b/x/log.txt"},
            "conditions": [{"type": "Failed", "status": "True", "reason": "ShardFailed",
                            "message": "shard 3 failed", "lastTransitionTime": "2026-12-01T10:04:00Z"}],
            "startTime": "2026-12-01T10:00:00Z", "completionTime": "2026-12-01T10:04:00Z",
        }));
        let view = status_view(&job, now()).unwrap();
        assert_eq!(view.rows.len(), 3);
        assert_eq!(view.rows[1].state, ShardState::Failed);
        assert_eq!(view.rows[1].node.as_deref(), Some("gpu-3"));
        assert_eq!(view.rows[1].failed_attempts, 2);
        assert_eq!(view.rows[1].frames, "1");
        assert_eq!(view.rows[2].frames, "2-4");
        assert_eq!(view.duration_seconds, Some(240));
        let text = render_table(&view);
        assert!(
            text.contains("Last failure: shard 3 attempt 1 on node gpu-3: Error: exit code 1: boom\n  log: s3://b/x/log.txt\n"),
            "{text}"
        );
        assert!(
            text.contains("  Failed  True    ShardFailed  shard 3 failed\n"),
            "{text}"
        );
        assert!(text.contains("(4m0s)"), "{text}");
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["shards"]["failed"], 1);
        assert_eq!(json["rows"][1]["state"], "failed");
        assert_eq!(json["phase"], "Failed");
    }

    #[test]
    fn a_finished_job_is_one_row_and_a_new_one_all_waiting() {
        let done = job(json!({"phase": "Complete", "succeededShards": "0-15",
                              "shards": {"total": 16, "succeeded": 16}}));
        let view = status_view(&done, now()).unwrap();
        assert_eq!(view.rows.len(), 1);
        assert_eq!(
            (view.rows[0].frames.as_str(), view.rows[0].shards.as_str()),
            ("1-4", "0-15")
        );
        let fresh = job(json!(null));
        let view = status_view(&fresh, now()).unwrap();
        assert_eq!(view.rows.len(), 1);
        assert_eq!(view.rows[0].state, ShardState::Waiting);
        assert!(render_table(&view).contains("Phase:     (no status yet)"));
    }

    #[test]
    fn more_active_shards_than_listed_are_said() {
        let job = job(json!({"shards": {"total": 16, "active": 60},
                             "activeShards": [{"shard": 0, "attempt": 0}]}));
        let view = status_view(&job, now()).unwrap();
        assert_eq!(view.unlisted_active, 59);
        assert!(render_table(&view).contains("59 more active shards"));
    }

    #[test]
    fn frames_are_written_as_users_write_them() {
        let list = FrameList::parse("1-100x2,8,200-203,-3--1").unwrap();
        let n = list.len();
        assert_eq!(format_frames(&list, 0, n), "1-99x2,8,200-203,-3--1");
        assert_eq!(format_frames(&list, 0, 2), "1,3");
        assert_eq!(format_frames(&list, 1, 3), "3,5");
        assert_eq!(format_frames(&list, 1, 4), "3-7x2");
        assert_eq!(format_frames(&list, 50, 52), "8,200");
        assert_eq!(format_frames(&list, 0, 0), "");
        assert_eq!(human_duration(59), "59s");
        assert_eq!(human_duration(90), "1m30s");
        assert_eq!(human_duration(3700), "1h1m40s");
    }
}
