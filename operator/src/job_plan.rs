//! From a RenderJob's spec to its shard plan and the settings every pod shares.

use tessera_shard::contract::{ImageFormat, RenderSettings};
use tessera_shard::{FrameList, PlanInput, ShardPlan};

use crate::api::{OutputFormat, RenderJob, RenderJobSpec, RenderPool};

/// Why a spec that passed the API server's checks still cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("spec.frames: {0}")]
    Frames(#[from] tessera_shard::FrameListError),
    #[error("spec.sharding: {0}")]
    Plan(#[from] tessera_shard::PlanError),
    #[error("spec.scene: {0}")]
    Scene(String),
    #[error("spec.output.url: the job names no output URL and pool {pool} has no storage")]
    NoOutput { pool: String },
    #[error("{0} is missing")]
    Metadata(&'static str),
}

impl SpecError {
    /// The PascalCase condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            SpecError::Frames(_) => "InvalidFrames",
            SpecError::Plan(_) => "InvalidSharding",
            SpecError::Scene(_) => "InvalidScene",
            SpecError::NoOutput { .. } => "NoOutputStorage",
            SpecError::Metadata(_) => "InvalidMetadata",
        }
    }
}

/// The shard plan of a spec.
pub fn plan(spec: &RenderJobSpec) -> Result<ShardPlan, SpecError> {
    let frames = FrameList::parse(&spec.frames)?;
    Ok(ShardPlan::new(PlanInput {
        frames,
        width: spec.resolution.width,
        height: spec.resolution.height,
        samples_per_pixel: spec.samples_per_pixel,
        frames_per_shard: spec.sharding.frames_per_shard,
        tiles_x: spec.sharding.tiles.columns,
        tiles_y: spec.sharding.tiles.rows,
        sample_splits: spec.sharding.sample_splits,
    })?)
}

/// Where a ConfigMap scene is mounted in pods.
pub const SCENE_MOUNT: &str = "/scene";

/// The scene URL as pods see it.
pub fn scene_url(spec: &RenderJobSpec) -> Result<String, SpecError> {
    match (&spec.scene.url, &spec.scene.config_map) {
        (Some(url), None) => Ok(url.clone()),
        (None, Some(key)) => Ok(format!("file://{SCENE_MOUNT}/{}", key.key)),
        _ => Err(SpecError::Scene(
            "set exactly one of scene.url and scene.configMap".into(),
        )),
    }
}

/// The settings shared by every shard and the merge.
pub fn render_settings(spec: &RenderJobSpec) -> Result<RenderSettings, SpecError> {
    let background = match spec.background.as_deref() {
        Some([r, g, b]) => [*r, *g, *b],
        _ => [0.0; 3],
    };
    Ok(RenderSettings {
        scene: scene_url(spec)?,
        camera: spec.camera.clone(),
        width: spec.resolution.width,
        height: spec.resolution.height,
        samples_per_pixel: spec.samples_per_pixel,
        max_bounces: spec.max_bounces,
        background,
        seed: spec.seed,
        limits: Default::default(),
    })
}

/// The job's output prefix: its own URL, else `<pool storage>/<namespace>/<job>`.
pub fn output_prefix(job: &RenderJob, pool: &RenderPool) -> Result<String, SpecError> {
    if let Some(url) = job.spec.output.as_ref().and_then(|o| o.url.as_ref()) {
        return Ok(url.trim_end_matches('/').to_string());
    }
    let storage = pool
        .spec
        .storage
        .as_ref()
        .ok_or_else(|| SpecError::NoOutput {
            pool: job.spec.pool.clone(),
        })?;
    Ok(format!(
        "{}/{}/{}",
        storage.url.trim_end_matches('/'),
        job.metadata.namespace.as_deref().unwrap_or("default"),
        job.metadata.name.as_deref().unwrap_or_default()
    ))
}

/// The Secret holding storage credentials: the job's, else the pool's.
pub fn storage_secret(job: &RenderJob, pool: &RenderPool) -> Option<String> {
    job.spec
        .output
        .as_ref()
        .and_then(|o| o.secret_name.clone())
        .or_else(|| pool.spec.storage.as_ref()?.secret_name.clone())
}

pub fn formats(spec: &RenderJobSpec) -> Vec<ImageFormat> {
    let formats = spec
        .output
        .as_ref()
        .map(|o| o.formats.clone())
        .unwrap_or_else(|| vec![OutputFormat::Exr, OutputFormat::Png]);
    formats
        .into_iter()
        .map(|format| match format {
            OutputFormat::Exr => ImageFormat::Exr,
            OutputFormat::Png => ImageFormat::Png,
        })
        .collect()
}
