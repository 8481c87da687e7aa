//! `render-pod local`: a whole job on this machine, no Kubernetes. Plans shards exactly as the
//! operator does ([`ShardPlan`]), renders each through [`ShardRenderer::render_shard`] into a
//! `file://` store under `<out>/.shards`, merges through [`merge::merge`], and writes
//! `<out>/frame_<NNNN>.exr` and `.png`.

use std::time::Instant;

use tessera_shard::contract::{
    CONTRACT_VERSION, ImageFormat, MergeSpec, RenderSettings, ShardSpec,
};
use tessera_shard::{AttemptMap, ShardPlan};

use crate::commands::merge::{self, FrameDestination};
use crate::commands::render::ShardRenderer;
use crate::environment::{self, Environment};
use crate::error::{Error, Result};
use crate::gltf_scene::GltfAsset;
use crate::gpu::GpuContext;
use crate::scene_source;
use crate::storage::{Storage, to_url};

#[derive(Debug, Clone)]
pub struct LocalJob {
    pub scene: String,
    pub frames: String,
    pub settings: RenderSettings,
    pub tiles: (u32, u32),
    pub sample_splits: u32,
    pub frames_per_shard: u32,
    pub out: String,
}

/// What a local run did, for the one-line summary.
#[derive(Debug, Clone)]
pub struct LocalSummary {
    pub frames: u64,
    pub shards: u32,
    pub seconds: f64,
    pub render_seconds: f64,
    pub samples: u64,
    pub adapter: String,
}

impl LocalSummary {
    /// Pixel samples per second over the GPU render time.
    pub fn samples_per_second(&self) -> f64 {
        if self.render_seconds > 0.0 {
            self.samples as f64 / self.render_seconds
        } else {
            0.0
        }
    }
}

pub const LOCAL_JOB: &str = "local";
pub const LOCAL_UID: &str = "local";

/// A validated job with its scene loaded: everything that can fail on bad input fails here,
/// before a GPU is opened.
pub struct PreparedJob {
    plan: ShardPlan,
    merge_spec: MergeSpec,
    settings: RenderSettings,
    asset: GltfAsset,
    environment: Option<Environment>,
    shards_url: String,
    out_url: String,
}

pub fn prepare(storage: &Storage, job: &LocalJob) -> Result<PreparedJob> {
    let out_url = to_url(&job.out)?.to_string();
    let shards_url = format!("{}/.shards", out_url.trim_end_matches('/'));
    let mut settings = job.settings.clone();
    settings.scene = to_url(&job.scene)?.to_string();
    if let Some(environment) = settings.environment.as_mut() {
        environment.url = to_url(&environment.url)?.to_string();
    }
    if !settings
        .background
        .iter()
        .all(|v| v.is_finite() && *v >= 0.0)
    {
        return Err(Error::BadSpec(format!(
            "background {:?} must be finite and non-negative",
            settings.background
        )));
    }
    let merge_spec = MergeSpec {
        version: CONTRACT_VERSION,
        job: LOCAL_JOB.into(),
        namespace: "local".into(),
        job_uid: LOCAL_UID.into(),
        settings: settings.clone(),
        frames: job.frames.clone(),
        frames_per_shard: job.frames_per_shard,
        tiles_x: job.tiles.0,
        tiles_y: job.tiles.1,
        sample_splits: job.sample_splits,
        attempts: AttemptMap::new(),
        races: Default::default(),
        missing: Default::default(),
        formats: vec![ImageFormat::Exr, ImageFormat::Png],
        output: shards_url.clone(),
        step: Default::default(),
    };
    let plan = merge::plan_of(&merge_spec)?;
    let asset = scene_source::load(storage, &settings.scene, &settings.limits)?;
    // Fail on a bad camera name before any GPU work.
    asset.scene_at(0.0, settings.camera.as_deref())?;
    let environment = settings
        .environment
        .as_ref()
        .map(|e| environment::load(storage, e, &settings.limits))
        .transpose()?;
    Ok(PreparedJob {
        plan,
        merge_spec,
        settings,
        asset,
        environment,
        shards_url,
        out_url,
    })
}

/// Where a local run stands: shard `shard` of `shards` (1-based), `fraction` of all paths done.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub shard: u32,
    pub shards: u32,
    pub fraction: f64,
}

/// Renders every shard, then merges. `progress` is called after every dispatch.
pub fn run(
    ctx: &GpuContext,
    storage: &Storage,
    job: &PreparedJob,
    progress: &mut dyn FnMut(Progress),
) -> Result<LocalSummary> {
    let started = Instant::now();
    let PreparedJob {
        plan,
        merge_spec,
        settings,
        asset,
        environment,
        shards_url,
        out_url,
    } = job;
    let mut renderer = ShardRenderer::new(ctx, storage, asset, environment.as_ref());
    let total_paths: u64 = plan.input().frames.len()
        * u64::from(settings.width)
        * u64::from(settings.height)
        * u64::from(settings.samples_per_pixel);
    let mut finished_paths = 0u64;
    let mut render_seconds = 0.0;
    for shard in plan.shards() {
        let spec = ShardSpec {
            version: CONTRACT_VERSION,
            job: LOCAL_JOB.into(),
            namespace: "local".into(),
            job_uid: LOCAL_UID.into(),
            shard: shard.index,
            attempt: 0,
            settings: settings.clone(),
            frames: shard.frames.clone(),
            tile: shard.tile,
            samples: shard.samples,
            output: shards_url.clone(),
        };
        let base = finished_paths;
        let mut on_dispatch = |done: u64, _total: u64| {
            progress(Progress {
                shard: shard.index + 1,
                shards: plan.len(),
                fraction: (base + done) as f64 / total_paths.max(1) as f64,
            })
        };
        let manifest = renderer.render_shard(&spec, &mut on_dispatch)?;
        render_seconds += manifest.stats.render_seconds;
        finished_paths +=
            shard.tile.pixel_count() * u64::from(shard.samples.count) * shard.frames.len() as u64;
    }
    merge::merge(
        storage,
        merge_spec,
        &FrameDestination::Directory(out_url.clone()),
    )?;
    Ok(LocalSummary {
        frames: plan.input().frames.len(),
        shards: plan.len(),
        seconds: started.elapsed().as_secs_f64(),
        render_seconds,
        samples: total_paths,
        adapter: ctx.adapter_label(),
    })
}
