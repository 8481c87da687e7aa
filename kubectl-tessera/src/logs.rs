//! `logs`: which shards, which attempt, and where the render pod left the attempt's log.
//!
//! A shard attempt's pod log is the first choice (main.rs); once the pod is gone (succeeded
//! pods are deleted when accounted, PodGC collects others) the render pod's own copy of its
//! log tail in storage remains: `status.lastFailure.log` for the latest failure, else
//! `tessera_shard::contract::shard_log_path` under the job's output prefix.

use std::ops::Range;
use std::path::PathBuf;

use tessera_operator::api::RenderJob;
use tessera_shard::ShardPlan;
use tessera_shard::contract::shard_log_path;

/// The shards that render frame `frame` (every tile and sample split of its frame chunk).
pub fn shards_of_frame(plan: &ShardPlan, frame: i64) -> Result<Range<u32>, String> {
    let input = plan.input();
    let position = input
        .frames
        .iter()
        .position(|f| f == frame)
        .ok_or_else(|| {
            format!(
                "frame {frame} is not in the job's frames ({})",
                input.frames
            )
        })?;
    let chunk = position as u64 / u64::from(input.frames_per_shard);
    Ok(plan.shards_of_chunk(chunk as u32))
}

/// The attempt of `shard` the job is on: the one recorded in status or running now.
pub fn current_attempt(job: &RenderJob, shard: u32) -> u32 {
    let Some(status) = &job.status else {
        return 0;
    };
    let active = status
        .active_shards
        .iter()
        .filter(|a| a.shard == shard)
        .map(|a| a.attempt)
        .max()
        .unwrap_or(0);
    status.shard_attempts.get(shard).max(active)
}

/// The job's output prefix, from `status.output.manifest` (`<prefix>/<uid>/job-manifest.json`).
pub fn output_prefix(job: &RenderJob) -> Option<String> {
    let uid = job.metadata.uid.as_deref()?;
    let manifest = &job.status.as_ref()?.output.as_ref()?.manifest;
    manifest
        .strip_suffix(&format!("/{uid}/job-manifest.json"))
        .map(String::from)
}

/// Where the render pod wrote the log tail of `shard`'s `attempt`.
pub fn log_url(job: &RenderJob, shard: u32, attempt: u32) -> Result<String, String> {
    let failure = job.status.as_ref().and_then(|s| s.last_failure.as_ref());
    if let Some(log) = failure
        .filter(|f| f.shard == shard && f.attempt == attempt)
        .and_then(|f| f.log.clone())
    {
        return Ok(log);
    }
    let uid = job.metadata.uid.as_deref().unwrap_or_default();
    let prefix = output_prefix(job).ok_or(
        "the job's status names no output location yet (the operator has not accepted it)",
    )?;
    Ok(shard_log_path(&prefix, uid, shard, attempt))
}

/// Where a log URL can be read from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A `file://` URL: a path on this machine, if it shares the pool's volume.
    Local(PathBuf),
    /// An object store (`s3://`, `gs://`, `az://`, …) this plugin does not read.
    ObjectStore(String),
}

pub fn location(url: &str) -> Location {
    match url.strip_prefix("file://") {
        Some(path) if path.starts_with('/') => Location::Local(PathBuf::from(path)),
        _ => Location::ObjectStore(url.to_string()),
    }
}

/// The command that reads an object-store URL, for the message that names it.
pub fn reader_hint(url: &str) -> &'static str {
    match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("s3" | "s3a") => "aws s3 cp URL -",
        Some("gs") => "gcloud storage cat URL",
        Some("az" | "azure" | "adl" | "abfs" | "abfss") => {
            "az storage blob download (or azcopy) of URL"
        }
        _ => "your storage's client",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(frames: &str, fps: u32, status: serde_json::Value) -> RenderJob {
        serde_json::from_value(json!({
            "apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
            "metadata": {"name": "shot010", "namespace": "lighting", "uid": "u-1"},
            "spec": {"pool": "l40s", "scene": {"url": "s3://b/shot.glb"}, "frames": frames,
                     "resolution": {"width": 64, "height": 64}, "samplesPerPixel": 8,
                     "sharding": {"framesPerShard": fps, "tiles": {"columns": 2, "rows": 2}}},
            "status": status,
        }))
        .unwrap()
    }

    fn plan(job: &RenderJob) -> ShardPlan {
        tessera_operator::job_plan::plan(&job.spec).unwrap()
    }

    #[test]
    fn a_frame_is_rendered_by_every_tile_of_its_chunk() {
        let j = job("10-20x2", 2, json!(null));
        let plan = plan(&j);
        assert_eq!(shards_of_frame(&plan, 10), Ok(0..4));
        assert_eq!(shards_of_frame(&plan, 12), Ok(0..4));
        assert_eq!(shards_of_frame(&plan, 14), Ok(4..8));
        assert_eq!(shards_of_frame(&plan, 20), Ok(8..12));
        assert!(
            shards_of_frame(&plan, 11)
                .unwrap_err()
                .contains("not in the job's frames (10-20x2)")
        );
    }

    #[test]
    fn the_log_is_the_last_failures_or_under_the_output_prefix() {
        let j = job(
            "1-4",
            1,
            json!({
                "output": {"frames": "s3://b/out/frames/shot010.####.{exr,png}",
                           "manifest": "s3://b/out/u-1/job-manifest.json"},
                "shardAttempts": "3:2",
                "activeShards": [{"shard": 5, "attempt": 1}],
                "lastFailure": {"shard": 3, "attempt": 1, "reason": "Error", "message": "m",
                                "log": "s3://b/elsewhere/log.txt"},
            }),
        );
        assert_eq!(output_prefix(&j).as_deref(), Some("s3://b/out"));
        assert_eq!(log_url(&j, 3, 1).unwrap(), "s3://b/elsewhere/log.txt");
        assert_eq!(
            log_url(&j, 3, 2).unwrap(),
            "s3://b/out/u-1/shards/3/2/log.txt"
        );
        assert_eq!(current_attempt(&j, 3), 2);
        assert_eq!(current_attempt(&j, 5), 1);
        assert_eq!(current_attempt(&j, 0), 0);
        let fresh = job("1-4", 1, json!(null));
        assert!(
            log_url(&fresh, 0, 0)
                .unwrap_err()
                .contains("no output location")
        );
    }

    #[test]
    fn file_urls_are_read_here_and_object_stores_are_named() {
        assert_eq!(
            location("file:///data/x/log.txt"),
            Location::Local(PathBuf::from("/data/x/log.txt"))
        );
        assert_eq!(
            location("s3://b/x/log.txt"),
            Location::ObjectStore("s3://b/x/log.txt".into())
        );
        assert_eq!(reader_hint("s3://b/x"), "aws s3 cp URL -");
        assert_eq!(reader_hint("gs://b/x"), "gcloud storage cat URL");
    }
}
