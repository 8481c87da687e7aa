//! Artists' and pipelines' workflow: frames merged as they finish, re-renders of exactly what
//! was asked, frame-by-frame dependencies, and previews that sharpen as sample splits land.

use std::time::SystemTime;

use kube::api::{Patch, PatchParams};

use tessera_operator::api::{JobPhase, RenderJobStatus};

use super::*;

/// Each frame file of a job's output and when it was last written.
fn frame_files(env: &Env, namespace: &str, job: &str) -> BTreeMap<String, SystemTime> {
    let dir = env.dir.join(format!("data/{namespace}/{job}/frames"));
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let modified = e.metadata().ok()?.modified().ok()?;
            Some((e.file_name().to_string_lossy().into_owned(), modified))
        })
        .collect()
}

/// When the fake render pod started `shard`'s `attempt` of `job` (its log file is written
/// first thing).
fn render_started(env: &Env, job: &str, shard: u32, attempt: u32) -> Option<SystemTime> {
    let path = env.fake_log.join(format!("{job}.render.{shard}.{attempt}"));
    std::fs::metadata(path).ok()?.modified().ok()
}

async fn status_of(env: &Env, namespace: &str, job: &str) -> Option<RenderJobStatus> {
    let api: Api<RenderJob> = Api::namespaced(env.client.clone(), namespace);
    api.get(job).await.ok()?.status
}

async fn patch_spec(
    env: &Env,
    namespace: &str,
    job: &str,
    spec: serde_json::Value,
) -> Result<(), String> {
    let api: Api<RenderJob> = Api::namespaced(env.client.clone(), namespace);
    api.patch(
        job,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "spec": spec })),
    )
    .await
    .map(drop)
    .map_err(|e| format!("patching {namespace}/{job}: {e}"))
}

async fn delete_pod(env: &Env, namespace: &str, pod: &str) -> Result<(), String> {
    let api: Api<Pod> = Api::namespaced(env.client.clone(), namespace);
    api.delete(pod, &DeleteParams::default())
        .await
        .map(drop)
        .map_err(|e| format!("deleting pod {pod}: {e}"))
}

/// Frame 1's object exists while a later frame still renders; `status.framesDone` grows.
/// A job that failed on one frame's scene, re-rendered with `failed: true` once the scene is
/// fixed, runs only that frame's shard again; re-rendering frames runs only theirs; every
/// other frame object keeps its bytes (it is not even written again).
pub fn frames_merge_as_they_finish_and_a_rerender_runs_only_what_it_selects(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        // Frame 4's shard hangs: frames 1-3 are merged while it renders.
        env.set_script("seq", json!({"hang": ["3/0"]}))?;
        env.job("workflow", "seq", "1-4", json!({})).await?;
        let done = eventually("frames 1-3 merged", Duration::from_secs(60), || async {
            let status = status_of(env, "workflow", "seq").await?;
            (status.frames_done.as_deref() == Some("1-3")).then_some(status)
        })
        .await?;
        ensure!(
            done.phase == Some(JobPhase::Rendering),
            "phase {:?} while frame 4 renders",
            done.phase
        );
        let early = frame_files(env, "workflow", "seq");
        ensure!(
            early.contains_key("seq.0001.exr") && !early.contains_key("seq.0004.exr"),
            "frames while frame 4 renders: {:?}",
            early.keys()
        );
        delete_pod(env, "workflow", "seq-3-0").await?;
        let job = env
            .wait_condition("workflow", "seq", "Complete", Duration::from_secs(60))
            .await?;
        let status = job.status.unwrap_or_default();
        ensure!(
            status.frames_done.as_deref() == Some("1-4"),
            "framesDone {:?}",
            status.frames_done
        );
        let manifest = env.dir.join(format!(
            "data/workflow/seq/{}/job-manifest.json",
            job.metadata.uid.unwrap_or_default()
        ));
        ensure!(
            manifest.is_file(),
            "no job manifest at {}",
            manifest.display()
        );

        // Frame 3's scene is broken (bad input): the job renders the rest, then fails.
        env.set_script("fixme", json!({"failAlways": {"2": 3}}))?;
        env.job(
            "workflow",
            "fixme",
            "1-4",
            json!({"retry": {"attemptsPerShard": 2, "backoffSeconds": 0, "maxBackoffSeconds": 0,
                             "maxFailedShards": 1}}),
        )
        .await?;
        let failed = env
            .wait_condition("workflow", "fixme", "Failed", Duration::from_secs(60))
            .await?;
        // It failed only once every frame that rendered was merged.
        let frames_done = failed.status.and_then(|s| s.frames_done);
        ensure!(
            frames_done.as_deref() == Some("1-2,4"),
            "framesDone {frames_done:?} when the job failed"
        );
        let before = frame_files(env, "workflow", "fixme");
        let renders_before = env.renders("fixme");
        // The scene is fixed; re-render the failed shards.
        env.set_script("fixme", json!({}))?;
        patch_spec(
            env,
            "workflow",
            "fixme",
            json!({"rerender": {"generation": 1, "failed": true}}),
        )
        .await?;
        let job = env
            .wait_condition("workflow", "fixme", "Complete", Duration::from_secs(60))
            .await?;
        let status = job.status.unwrap_or_default();
        let new_runs: Vec<(u32, u32)> = env
            .renders("fixme")
            .into_iter()
            .filter(|r| !renders_before.contains(r))
            .collect();
        ensure!(new_runs == [(2, 1)], "the re-render ran {new_runs:?}");
        let record = status.rerenders.first().ok_or("no rerender recorded")?;
        ensure!(
            (
                record.generation,
                record.shards.to_string(),
                record.frames.as_str()
            ) == (1, "2".into(), "3"),
            "rerender record {record:?}"
        );
        let after = frame_files(env, "workflow", "fixme");
        for (name, written) in &before {
            ensure!(
                after.get(name) == Some(written),
                "{name} was written again by a re-render of frame 3"
            );
        }
        ensure!(
            after.contains_key("fixme.0003.exr"),
            "frame 3 was not merged"
        );

        // Re-render frame 2: its shard alone runs again, frames 1, 3 and 4 are left alone.
        let renders_before = env.renders("fixme");
        patch_spec(
            env,
            "workflow",
            "fixme",
            json!({"rerender": {"generation": 2, "frames": "2", "failed": null}}),
        )
        .await?;
        eventually("the second re-render", Duration::from_secs(60), || async {
            let status = status_of(env, "workflow", "fixme").await?;
            let complete = conditions_true(&status, "Complete");
            (status.rerender_generation == 2 && complete).then_some(())
        })
        .await?;
        let new_runs: Vec<(u32, u32)> = env
            .renders("fixme")
            .into_iter()
            .filter(|r| !renders_before.contains(r))
            .collect();
        ensure!(
            new_runs == [(1, 1)],
            "re-rendering frame 2 ran {new_runs:?}"
        );
        let last = frame_files(env, "workflow", "fixme");
        for name in ["fixme.0001.exr", "fixme.0003.exr", "fixme.0004.exr"] {
            ensure!(
                last.get(name) == after.get(name),
                "{name} was written again by a re-render of frame 2"
            );
        }
        ensure!(
            last.get("fixme.0002.exr") != after.get("fixme.0002.exr"),
            "frame 2 was not merged again"
        );
        println!(
            "    frames 1-3 merged while frame 4 rendered; re-renders ran {:?} then {new_runs:?}",
            [(2, 1)]
        );
        Ok(())
    })
}

fn conditions_true(status: &RenderJobStatus, type_: &str) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// B depends on A frame by frame: B renders the frames A has merged while A still renders
/// the rest, and no shard of B starts before the same frame of A is merged.
pub fn frame_by_frame_dependencies_follow_the_frames(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        env.set_script("plate", json!({"hang": ["3/0"]}))?;
        env.job("frames", "plate", "1-4", json!({})).await?;
        env.job(
            "frames",
            "comp",
            "1-4",
            json!({"dependsOn": [{"name": "plate", "frameByFrame": true}]}),
        )
        .await?;
        // Frames 1-3 of comp render while plate's frame 4 hangs; comp's frame 4 waits. The
        // status may trail the pods by a pass (writes are batched): wait for it to say so.
        let waiting = eventually("comp's frames 1-3", Duration::from_secs(60), || async {
            let status = status_of(env, "frames", "comp").await?;
            let ready = status
                .conditions
                .iter()
                .find(|c| c.type_ == "DependenciesReady")?;
            let rendered: Vec<u32> = env.renders("comp").iter().map(|r| r.0).collect();
            (rendered == [0, 1, 2]
                && ready.reason == "WaitingForFrames"
                && ready.message.contains("plate (frames merged: 1-3)"))
            .then(|| ready.message.clone())
        })
        .await?;
        // Frame 4 never started while plate's frame 4 hung.
        let rendered: Vec<u32> = env.renders("comp").iter().map(|r| r.0).collect();
        ensure!(
            rendered == [0, 1, 2],
            "comp rendered {rendered:?}: {waiting}"
        );
        let plate = status_of(env, "frames", "plate").await.unwrap_or_default();
        ensure!(
            plate.phase == Some(JobPhase::Rendering),
            "plate is {:?}, not still rendering",
            plate.phase
        );
        delete_pod(env, "frames", "plate-3-0").await?;
        env.wait_condition("frames", "comp", "Complete", Duration::from_secs(60))
            .await?;
        let merged = frame_files(env, "frames", "plate");
        for (shard, frame) in (0..4).zip(1..) {
            let started = render_started(env, "comp", shard, 0)
                .ok_or(format!("comp's shard {shard} never ran"))?;
            let plate_frame = merged
                .get(&format!("plate.{frame:04}.exr"))
                .ok_or(format!("plate's frame {frame} was never merged"))?;
            ensure!(
                started >= *plate_frame,
                "comp's frame {frame} started before plate's frame {frame} was merged"
            );
        }
        println!("    comp waited: {waiting}");
        Ok(())
    })
}

/// Mean absolute difference of two 8-bit PNGs of one size, per channel value (0-255).
fn png_error(a: &Path, b: &Path) -> Result<f64, String> {
    let load = |p: &Path| {
        image::open(p)
            .map(|i| i.to_rgb8())
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let (a, b) = (load(a)?, load(b)?);
    ensure!(
        a.dimensions() == b.dimensions(),
        "the images differ in size"
    );
    let sum: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    Ok(sum as f64 / a.as_raw().len() as f64)
}

/// A real render with 4 sample splits whose shards are let start one at a time: after each
/// one a preview of the frame appears, and its error against the final frame shrinks.
pub fn previews_sharpen_as_sample_splits_land(
    env: &mut Env,
) -> Pin<Box<dyn Future<Output = Outcome> + '_>> {
    Box::pin(async move {
        env.namespace("pixels").await?;
        env.agent().hold_pods("tessera.dev/role", "shard");
        let mut spec = real_job_spec("1", 1);
        spec["samplesPerPixel"] = json!(16);
        spec["sharding"]["sampleSplits"] = json!(4);
        env.kubectl_apply(
            &json!({"apiVersion": "tessera.dev/v1alpha1", "kind": "RenderJob",
            "metadata": {"name": "sharpen", "namespace": "pixels"}, "spec": spec}),
        )?;
        eventually("4 held shard pods", Duration::from_secs(60), || async {
            (env.agent().held().len() == 4).then_some(())
        })
        .await?;
        let preview = env
            .dir
            .join("data/pixels/sharpen/previews/sharpen.0001.png");
        let mut previews = Vec::new();
        for shard in 0..3 {
            ensure!(
                env.agent().release_pod(&format!("sharpen-{shard}-0")),
                "shard {shard}'s pod was not held"
            );
            let pod = format!("sharpen-preview-0-{}", shard + 1);
            eventually(
                &format!("preview {pod}"),
                Duration::from_secs(120),
                || async {
                    let status = status_of(env, "pixels", "sharpen").await?;
                    status.previewed_shards.contains(shard).then_some(())
                },
            )
            .await?;
            let copy = env.dir.join(format!("preview-{}.png", shard + 1));
            std::fs::copy(&preview, &copy).map_err(|e| format!("{}: {e}", preview.display()))?;
            previews.push(copy);
        }
        env.agent().release_held();
        let job = env
            .wait_condition("pixels", "sharpen", "Complete", Duration::from_secs(300))
            .await?;
        let output = job
            .status
            .and_then(|s| s.output)
            .ok_or("no output status")?;
        ensure!(
            output
                .previews
                .as_deref()
                .is_some_and(|p| p.ends_with("/previews/sharpen.####.png")),
            "status.output.previews {:?}",
            output.previews
        );
        let last = env.dir.join("data/pixels/sharpen/frames/sharpen.0001.png");
        let errors: Vec<f64> = previews
            .iter()
            .map(|p| png_error(p, &last))
            .collect::<Result<_, _>>()?;
        ensure!(
            errors.windows(2).all(|w| w[1] < w[0]) && errors[2] > 0.0,
            "preview errors against the final frame (1, 2, 3 of 4 splits): {errors:?}"
        );
        println!(
            "    preview mean error against the final frame after 1, 2, 3 of 4 sample splits: {}",
            errors
                .iter()
                .map(|e| format!("{e:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(())
    })
}
