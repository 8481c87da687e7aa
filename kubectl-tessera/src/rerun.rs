//! `rerun` and `preview`: the re-render request a job's spec takes, and where a frame's latest
//! image is.

use serde_json::{Value, json};
use tessera_operator::api::RenderJob;
use tessera_shard::FrameList;
use tessera_shard::contract::{ImageFormat, frame_path, preview_path};

use crate::logs::output_prefix;

/// The merge patch of `spec.rerender` for one more re-render: the next generation and the
/// selection (failed shards, or frames), and the scene when it changes. It names the
/// resourceVersion it was computed from, so two reruns at once cannot both take one
/// generation.
pub fn patch(job: &RenderJob, failed: bool, frames: Option<&str>, scene: Option<&str>) -> Value {
    let generation = job
        .spec
        .rerender
        .as_ref()
        .map_or(0, |r| r.generation)
        .saturating_add(1);
    let mut rerender = json!({"generation": generation});
    match frames {
        Some(frames) => {
            rerender["frames"] = json!(frames);
            rerender["failed"] = Value::Null; // a merge patch removes it
        }
        None => {
            rerender["failed"] = json!(failed);
            rerender["frames"] = Value::Null;
        }
    }
    let mut patch = json!({
        "metadata": {"resourceVersion": job.metadata.resource_version},
        "spec": {"rerender": rerender},
    });
    if let Some(scene) = scene {
        patch["spec"]["scene"] = json!({"url": scene, "configMap": null});
    }
    patch
}

/// A frame's latest image and which it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUrl {
    pub url: String,
    /// `frame` (merged, final) or `preview` (from the sample splits so far).
    pub kind: &'static str,
}

/// The merged PNG of `frame` once it is in `status.framesDone`, else its preview.
pub fn image_url(job: &RenderJob, frame: i64) -> Result<ImageUrl, String> {
    let frames = FrameList::parse(&job.spec.frames).map_err(|e| e.to_string())?;
    if !frames.contains(frame) {
        return Err(format!(
            "frame {frame} is not in the job's frames ({frames})"
        ));
    }
    let prefix = output_prefix(job).ok_or(
        "the job's status names no output location yet (the operator has not accepted it)",
    )?;
    let name = job.metadata.name.as_deref().unwrap_or_default();
    let status = job.status.as_ref();
    let done = status
        .and_then(|s| s.frames_done.as_deref())
        .and_then(|f| FrameList::parse(f).ok())
        .is_some_and(|done| done.contains(frame));
    if done {
        return Ok(ImageUrl {
            url: frame_path(&prefix, name, frame, ImageFormat::Png),
            kind: "frame",
        });
    }
    if status
        .and_then(|s| s.output.as_ref()?.previews.as_ref())
        .is_none()
    {
        return Err(format!(
            "frame {frame} is not merged yet, and the job writes no previews (they need \
             sharding.sampleSplits > 1 and merge.previews)"
        ));
    }
    Ok(ImageUrl {
        url: preview_path(&prefix, name, frame),
        kind: "preview",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(status: Value, rerender: Option<Value>) -> RenderJob {
        let mut spec = json!({
            "pool": "p", "scene": {"url": "s3://b/s.glb"}, "frames": "1-10",
            "resolution": {"width": 4, "height": 4}, "samplesPerPixel": 4,
        });
        if let Some(rerender) = rerender {
            spec["rerender"] = rerender;
        }
        serde_json::from_value(json!({
            "apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
            "metadata": {"name": "shot", "namespace": "ns", "uid": "u1", "resourceVersion": "42"},
            "spec": spec, "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn each_rerun_takes_the_next_generation_and_one_selection() {
        let first = patch(&job(json!({}), None), true, None, None);
        assert_eq!(
            first,
            json!({"metadata": {"resourceVersion": "42"},
                "spec": {"rerender": {"generation": 1, "failed": true, "frames": null}}})
        );
        let again = job(json!({}), Some(json!({"generation": 3, "failed": true})));
        let second = patch(&again, false, Some("12-14"), Some("s3://b/fixed.glb"));
        assert_eq!(
            second["spec"],
            json!({"rerender": {"generation": 4, "frames": "12-14", "failed": null},
                "scene": {"url": "s3://b/fixed.glb", "configMap": null}})
        );
    }

    #[test]
    fn a_frame_s_latest_image_is_the_frame_once_merged_else_its_preview() {
        let output = json!({"frames": "file:///o/frames/shot.####.{exr,png}",
            "manifest": "file:///o/u1/job-manifest.json",
            "previews": "file:///o/previews/shot.####.png"});
        let rendering = job(json!({"output": output, "framesDone": "1-3"}), None);
        assert_eq!(
            image_url(&rendering, 2).unwrap(),
            ImageUrl {
                url: "file:///o/frames/shot.0002.png".into(),
                kind: "frame"
            }
        );
        assert_eq!(
            image_url(&rendering, 7).unwrap().url,
            "file:///o/previews/shot.0007.png"
        );
        assert!(
            image_url(&rendering, 11)
                .unwrap_err()
                .contains("not in the job's frames")
        );
        let mut no_previews = output.clone();
        no_previews["previews"] = Value::Null;
        let plain = job(json!({"output": no_previews}), None);
        assert!(
            image_url(&plain, 7)
                .unwrap_err()
                .contains("writes no previews")
        );
    }
}
