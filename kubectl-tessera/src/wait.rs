//! `wait`: whether a job has finished, and what that means for a CI step's exit code.

use std::time::Duration;

use tessera_operator::api::RenderJob;

/// Exit codes of `kubectl tessera` (`wait` uses all of them).
pub mod exit {
    /// Complete (or, for other commands, success).
    pub const OK: i32 = 0;
    /// The job Failed (`wait`), or the command could not do what it was asked.
    pub const FAILED: i32 = 1;
    /// Bad flags or arguments.
    pub const USAGE: i32 = 2;
    /// `wait` could not tell: the job does not exist, was deleted, or the API server
    /// refused or could not be reached.
    pub const UNKNOWN: i32 = 3;
    /// `wait --timeout` passed first (as timeout(1) exits).
    pub const TIMEOUT: i32 = 124;
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    Complete { reason: String, message: String },
    Failed { reason: String, message: String },
}

/// `Some` once the job's `Complete` or `Failed` condition is `True`.
pub fn finished(job: &RenderJob) -> Option<Finished> {
    let conditions = job.status.as_ref().map(|s| s.conditions.as_slice())?;
    let true_ = |type_: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == "True")
    };
    if let Some(c) = true_("Failed") {
        return Some(Finished::Failed {
            reason: c.reason.clone(),
            message: c.message.clone(),
        });
    }
    true_("Complete").map(|c| Finished::Complete {
        reason: c.reason.clone(),
        message: c.message.clone(),
    })
}

/// One line on where a job stands: `Rendering 42% (672/1600 shards, 2 failed)`.
pub fn progress_line(job: &RenderJob) -> String {
    let Some(status) = &job.status else {
        return "no status yet".into();
    };
    let phase = status
        .phase
        .and_then(|p| serde_json::to_value(p).ok())
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| "-".into());
    let mut line = phase;
    if let Some(progress) = &status.progress {
        line.push(' ');
        line.push_str(progress);
    }
    let c = &status.shards;
    line.push_str(&format!(" ({}/{} shards", c.succeeded, c.total));
    if c.failed > 0 {
        line.push_str(&format!(", {} failed", c.failed));
    }
    line.push(')');
    line
}

/// `30m`, `1h30m`, `1h 30m`, `90s`, `90` (seconds), `PT30M`; `0` means no limit.
pub fn parse_timeout(text: &str) -> Result<Option<Duration>, String> {
    let text = text.trim();
    let seconds = if let Ok(n) = text.parse::<u64>() {
        n
    } else {
        let duration: jiff::SignedDuration = text.parse().map_err(|_| {
            format!("{text:?} is not a duration: write 30m, 1h30m, 90s or 0 (no limit)")
        })?;
        if duration.is_negative() {
            return Err(format!("{text:?}: a timeout cannot be negative"));
        }
        u64::try_from(duration.as_secs()).unwrap_or(0) + u64::from(duration.subsec_nanos() > 0)
    };
    Ok((seconds > 0).then(|| Duration::from_secs(seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(conditions: serde_json::Value) -> RenderJob {
        serde_json::from_value(json!({
            "apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
            "metadata": {"name": "j", "namespace": "n"},
            "spec": {"pool": "p", "scene": {"url": "s3://b/s.glb"}, "frames": "1",
                     "resolution": {"width": 8, "height": 8}, "samplesPerPixel": 1},
            "status": {"phase": "Rendering", "progress": "42%",
                       "shards": {"total": 10, "succeeded": 4, "failed": 1},
                       "conditions": conditions},
        }))
        .unwrap()
    }

    fn condition(type_: &str, status: &str, reason: &str) -> serde_json::Value {
        json!({"type": type_, "status": status, "reason": reason, "message": format!("{reason} message"),
               "lastTransitionTime": "2026-12-01T00:00:00Z"})
    }

    #[test]
    fn complete_and_failed_are_read_from_true_conditions_only() {
        assert_eq!(finished(&job(json!([]))), None);
        assert_eq!(
            finished(&job(json!([condition("Complete", "False", "Rendering")]))),
            None
        );
        assert_eq!(
            finished(&job(json!([condition(
                "Complete",
                "True",
                "FramesWritten"
            )]))),
            Some(Finished::Complete {
                reason: "FramesWritten".into(),
                message: "FramesWritten message".into()
            })
        );
        assert_eq!(
            finished(&job(json!([
                condition("Complete", "False", "x"),
                condition("Failed", "True", "ShardFailed")
            ]))),
            Some(Finished::Failed {
                reason: "ShardFailed".into(),
                message: "ShardFailed message".into()
            })
        );
        assert_eq!(
            progress_line(&job(json!([]))),
            "Rendering 42% (4/10 shards, 1 failed)"
        );
    }

    #[test]
    fn timeouts_parse_as_people_write_them() {
        let s = |n| Ok(Some(Duration::from_secs(n)));
        assert_eq!(parse_timeout("30m"), s(1800));
        assert_eq!(parse_timeout("1h30m"), s(5400));
        assert_eq!(parse_timeout("1h 30m"), s(5400));
        assert_eq!(parse_timeout("90s"), s(90));
        assert_eq!(parse_timeout("90"), s(90));
        assert_eq!(parse_timeout("PT2M"), s(120));
        assert_eq!(parse_timeout("0"), Ok(None));
        assert!(
            parse_timeout("soon")
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(parse_timeout("-5m").is_err());
    }
}
