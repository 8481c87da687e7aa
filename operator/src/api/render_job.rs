//! `RenderJob`: what to render. Namespaced, owned by an artist or a CI pipeline.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tessera_shard::{AttemptMap, IndexSet};

use super::validation::{NO_DOT_SEGMENTS, NO_EMPTY_SEGMENTS};

/// The frame-list syntax the API server accepts: `1-100`, `1-100x2`, `1,5,10-20`, `-10--1`.
/// The operator's parser (tessera_shard::frames) accepts the same and also refuses backwards
/// ranges and duplicates, which a regular expression cannot see.
pub const FRAMES_PATTERN: &str =
    r"^-?[0-9]+(--?[0-9]+(x[1-9][0-9]*)?)?(,-?[0-9]+(--?[0-9]+(x[1-9][0-9]*)?)?)*$";

/// A render of a glTF scene over a list of frames, split into shards that run on a RenderPool.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "tessera.dev",
    version = "v1alpha1",
    kind = "RenderJob",
    namespaced,
    shortname = "rj",
    status = "RenderJobStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Progress","type":"string","jsonPath":".status.progress"}"#,
    printcolumn = r#"{"name":"Done","type":"integer","jsonPath":".status.shards.succeeded"}"#,
    printcolumn = r#"{"name":"Total","type":"integer","jsonPath":".status.shards.total"}"#,
    printcolumn = r#"{"name":"ETA","type":"date","jsonPath":".status.estimatedCompletionTime","priority":1}"#,
    printcolumn = r#"{"name":"Pool","type":"string","jsonPath":".spec.pool","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new(
        "!has(oldSelf.status) || !has(oldSelf.status.startTime) || (self.spec.frames == oldSelf.spec.frames && self.spec.sharding == oldSelf.spec.sharding && self.spec.resolution == oldSelf.spec.resolution && self.spec.samplesPerPixel == oldSelf.spec.samplesPerPixel)"
    ).message("spec.frames, spec.sharding, spec.resolution and spec.samplesPerPixel cannot change once rendering has started (status.startTime is set); create a new RenderJob instead")
)]
#[x_kube(
    validation = Rule::new("self.sharding.tiles.columns <= self.resolution.width").message("spec.sharding.tiles.columns must not exceed spec.resolution.width"),
    validation = Rule::new("self.sharding.tiles.rows <= self.resolution.height").message("spec.sharding.tiles.rows must not exceed spec.resolution.height"),
    validation = Rule::new("self.sharding.sampleSplits <= self.samplesPerPixel").message("spec.sharding.sampleSplits must not exceed spec.samplesPerPixel"),
    validation = Rule::new("!has(self.environment) || !has(self.background)").message("spec.background and spec.environment are exclusive: the environment map replaces the constant background"),
    validation = Rule::new("!has(oldSelf.rerender) || (has(self.rerender) && self.rerender.generation >= oldSelf.rerender.generation)").message("spec.rerender.generation may only grow, and spec.rerender cannot be removed once set"),
    validation = Rule::new("!has(self.retry) || !has(self.retry.maxBackoffSeconds) || !has(self.retry.backoffSeconds) || self.retry.backoffSeconds <= self.retry.maxBackoffSeconds").message("spec.retry.backoffSeconds must not exceed spec.retry.maxBackoffSeconds")
)]
#[serde(rename_all = "camelCase")]
pub struct RenderJobSpec {
    /// The RenderPool whose nodes render this job.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub pool: String,

    /// Where the glTF 2.0 scene (.gltf with embedded buffers, or .glb) comes from.
    pub scene: SceneSource,

    /// Name of the camera to render through (at most 256 characters). Default: the scene's
    /// first camera.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub camera: Option<String>,

    /// Frames in render-farm syntax: `1-100`, `1-100x2` (every second frame), `1,5,10-20`,
    /// negative frames `-10--1`. Frames render in the order listed.
    #[schemars(
        length(min = 1, max = 4096),
        regex(
            pattern = r"^-?[0-9]+(--?[0-9]+(x[1-9][0-9]*)?)?(,-?[0-9]+(--?[0-9]+(x[1-9][0-9]*)?)?)*$"
        )
    )]
    pub frames: String,

    /// Output image size in pixels.
    pub resolution: Resolution,

    /// Path-tracing samples per pixel of each finished frame.
    #[schemars(range(min = 1, max = 1048576))]
    pub samples_per_pixel: u32,

    /// Bounces after the camera hit, with light sampled at every vertex (Cycles `max_bounces`).
    #[serde(default = "default_max_bounces")]
    #[schemars(range(min = 0, max = 64))]
    pub max_bounces: u32,

    /// Constant environment radiance, linear RGB, each component between 0 and 1,000,000.
    /// Default black. Not with `environment`, which replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 3), inner(range(min = 0.0, max = 1000000.0)))]
    pub background: Option<Vec<f32>>,

    /// An equirectangular environment map (HDRI) that lights the scene from every direction
    /// and is seen behind it, instead of the constant `background`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvironmentSpec>,

    /// Motion blur: each sample sees the animation at a time within a shutter interval
    /// centred on its frame (a still scene is unaffected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motion_blur: Option<MotionBlur>,

    /// Compositing passes written into every frame's EXR beside the beauty pass (R, G, B),
    /// named as Blender Cycles names its layers: `Depth` (`Depth.Z`: distance along the
    /// camera ray, 1e10 where it leaves the scene), `Normal` (`Normal.X/Y/Z`, world space),
    /// `Albedo` (`Albedo.R/G/B`, base colour), `ObjectId` (`IndexOB.X`: 1 + the glTF node),
    /// `MaterialId` (`IndexMA.X`: 1 + the glTF material). Depth and IDs are each pixel's
    /// first sample's (not antialiased, as in Cycles); normal and albedo are averaged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    pub aovs: Vec<AovName>,

    /// Seed of the random sequences; the same seed gives the same pixels.
    #[serde(default)]
    pub seed: u64,

    /// How the job is cut into shards.
    #[serde(default)]
    pub sharding: Sharding,

    /// Where the frames go. Default: the pool's storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputSpec>,

    /// Higher runs first when jobs compete for a pool; ties share the pool fairly across
    /// namespaces, then first come first served.
    #[serde(default)]
    #[schemars(range(min = -1000, max = 1000))]
    pub priority: i32,

    /// What happens when shards fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,

    /// Stop starting shards and delete the pods that have not started running. Running shards
    /// finish. Set back to false to resume.
    #[serde(default)]
    pub suspend: bool,

    /// Seconds after the job started rendering before it is failed with reason
    /// DeadlineExceeded and its pods deleted, as for Kubernetes Jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,

    /// Seconds after the job finished (Complete or Failed) before the RenderJob and its pods
    /// are deleted, as for Kubernetes Jobs. Outputs in storage stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i64>,

    /// Jobs of this namespace that must be Complete (wholly or with missing frames) before
    /// this job starts rendering: "render B after A". A dependency that does not exist yet is
    /// waited for (condition `DependenciesReady`); one that failed, or a cycle, fails this job
    /// (`DependencyFailed`, `DependencyCycle`). Dependencies gate the start only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub depends_on: Vec<Dependency>,

    /// How frames are merged while the job renders: each frame chunk as soon as its shards are
    /// rendered, by at most `maxConcurrent` merge pods at once, with progressive previews of
    /// frames still rendering when the job splits samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<MergePolicy>,

    /// Re-render part of the job: raise `generation` (it may only grow) with a selection —
    /// `failed: true` (every shard that failed for good) or `frames` (every shard of those
    /// frames). The selected shards run again as new attempts with a fresh attempt budget,
    /// the job goes back to Rendering, only the frames affected are merged again, and
    /// `status.rerenders` records it. May change at any time, even after the job finished;
    /// so may the scene, to render a fixed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerender: Option<Rerender>,
}

/// An environment map: an equirectangular image in latitude-longitude layout, +Y (glTF's up)
/// at the top row, the image's centre column looking along +X (as Blender's Environment
/// Texture maps it on an imported glTF scene).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentSpec {
    /// Storage URL of the image, a Radiance `.hdr` or an OpenEXR file: the same schemes and
    /// the same confinement as `spec.scene.url` (under the pool's `<storage>/<namespace>/` or
    /// a shared library, unless the job names a Secret of its own). Its size counts against
    /// the pool's scene limits (`maxSceneBytes`, `maxImagePixels`, `maxTextureBytes`).
    #[schemars(
        length(min = 1, max = 2048),
        regex(
            pattern = r"^(file:///|(s3|s3a|gs|az|azure|adl|abfs|abfss|https)://[a-z0-9])[^\s?#\\]*$"
        )
    )]
    #[x_kube(
        validation = Rule::new(NO_DOT_SEGMENTS).message("spec.environment.url must not contain `.` or `..` path segments (also percent-encoded)"),
        validation = Rule::new(NO_EMPTY_SEGMENTS).message("spec.environment.url must not contain empty path segments (`//`)")
    )]
    pub url: String,

    /// Multiplies the image's radiance. Default 1.
    #[serde(default = "unit_strength")]
    #[schemars(range(min = 0.0, max = 1000000.0))]
    pub strength: f32,

    /// Turns the environment about the up axis, counter-clockwise seen from above.
    #[serde(default)]
    #[schemars(range(min = -360.0, max = 360.0))]
    pub rotation_degrees: f32,
}

fn unit_strength() -> f32 {
    1.0
}

/// Frame merging while rendering.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MergePolicy {
    /// Merge pods of this job running at once (chunk merges and previews together).
    #[serde(default = "default_merge_concurrency")]
    #[schemars(range(min = 1, max = 32))]
    pub max_concurrent: u32,
    /// Write a PNG preview of each frame as its sample splits land (`<output>/previews/`);
    /// only jobs with `sharding.sampleSplits` > 1 have any.
    #[serde(default = "yes")]
    pub previews: bool,
}

impl Default for MergePolicy {
    fn default() -> Self {
        Self {
            max_concurrent: default_merge_concurrency(),
            previews: true,
        }
    }
}

fn default_merge_concurrency() -> u32 {
    2
}

fn yes() -> bool {
    true
}

/// A request to render part of a job again.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("(has(self.failed) && self.failed) != has(self.frames)").message("spec.rerender needs exactly one of failed: true and frames"))]
#[serde(rename_all = "camelCase")]
pub struct Rerender {
    /// Raise it to request a re-render; the operator acts once per value
    /// (`status.rerenderGeneration` says which it handled last).
    #[schemars(range(min = 1))]
    pub generation: u32,
    /// Every shard that failed for good (after a fixed scene, say).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
    /// These frames, in the syntax of `spec.frames` (`12-14`): all their shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 4096),
        regex(
            pattern = r"^-?[0-9]+(--?[0-9]+(x[1-9][0-9]*)?)?(,-?[0-9]+(--?[0-9]+(x[1-9][0-9]*)?)?)*$"
        )
    )]
    pub frames: Option<String>,
}

/// A job this one waits for.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    /// The RenderJob's name, in this job's namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// Frame by frame: this job starts when that one starts, and a shard of frame N runs
    /// only once frame N of that job is merged (its `status.framesDone`); frames that job
    /// does not render wait for it to complete.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frame_by_frame: bool,
}

fn default_max_bounces() -> u32 {
    4
}

/// The scene: exactly one of `url` and `configMap`.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.url) != has(self.configMap)").message("set exactly one of spec.scene.url and spec.scene.configMap"))]
#[serde(rename_all = "camelCase")]
pub struct SceneSource {
    /// Storage URL of the scene: `s3://…` (also `s3a://`), `gs://…`, `az://…` (also `azure://`,
    /// `adl://`, `abfs(s)://`), `https://` on an S3 or Azure storage host, or `file:///…`. Plain
    /// HTTP(S) servers are not supported. Without a Secret of the job's own
    /// (`spec.output.secretName`), it must lie under the pool's `<storage>/<namespace>/` or
    /// one of its `storage.sharedReadPrefixes`; `file://` scenes always must. No `.`/`..` or
    /// empty path segments, query, fragment or user information; at most 2048 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 2048),
        regex(
            pattern = r"^(file:///|(s3|s3a|gs|az|azure|adl|abfs|abfss|https)://[a-z0-9])[^\s?#\\]*$"
        )
    )]
    #[x_kube(
        validation = Rule::new(NO_DOT_SEGMENTS).message("spec.scene.url must not contain `.` or `..` path segments (also percent-encoded)"),
        validation = Rule::new(NO_EMPTY_SEGMENTS).message("spec.scene.url must not contain empty path segments (`//`)")
    )]
    pub url: Option<String>,

    /// A ConfigMap key in the job's namespace holding the scene (binaryData for .glb).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapKey>,
}

/// A key of a ConfigMap.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ConfigMapKey {
    /// ConfigMap name, in the job's namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// Key within the ConfigMap, for example `shot010.glb`.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// Image size in pixels.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct Resolution {
    #[schemars(range(min = 1, max = 32768))]
    pub width: u32,
    #[schemars(range(min = 1, max = 32768))]
    pub height: u32,
}

/// How a job is cut into shards: frame chunks × tiles × sample splits.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sharding {
    /// Consecutive frames (in list order) one shard renders.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 10000))]
    pub frames_per_shard: u32,

    /// Each frame is cut into `columns` × `rows` tiles rendered by separate shards; merged
    /// frames are bit-identical to whole-frame renders.
    #[serde(default)]
    pub tiles: Tiles,

    /// Each pixel's samples are split into this many ranges rendered by separate shards and
    /// averaged when merging.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 1024))]
    pub sample_splits: u32,
}

impl Default for Sharding {
    fn default() -> Self {
        Self {
            frames_per_shard: 1,
            tiles: Tiles::default(),
            sample_splits: 1,
        }
    }
}

/// Tiles per frame. (Named `columns`/`rows`, not `x`/`y`: YAML 1.1 parsers, kubectl's among
/// them, read a bare `y:` key as the boolean `true`.)
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct Tiles {
    /// Tiles across the image.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 256))]
    pub columns: u32,
    /// Tiles down the image.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 256))]
    pub rows: u32,
}

impl Default for Tiles {
    fn default() -> Self {
        Self {
            columns: 1,
            rows: 1,
        }
    }
}

fn one() -> u32 {
    1
}

/// Where outputs go.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputSpec {
    /// Output prefix URL (`s3://bucket/shots/010`, `file:///data/out`; the same schemes as
    /// `spec.scene.url`). Default: the pool's storage URL followed by `/<namespace>/<job>`.
    /// Without a Secret of the job's own it must lie under the pool's
    /// `<storage>/<namespace>/`; `file://` outputs always must. No `.`/`..` or empty path
    /// segments, query, fragment or user information; at most 2048 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 2048),
        regex(
            pattern = r"^(file:///|(s3|s3a|gs|az|azure|adl|abfs|abfss|https)://[a-z0-9])[^\s?#\\]*$"
        )
    )]
    #[x_kube(
        validation = Rule::new(NO_DOT_SEGMENTS).message("spec.output.url must not contain `.` or `..` path segments (also percent-encoded)"),
        validation = Rule::new(NO_EMPTY_SEGMENTS).message("spec.output.url must not contain empty path segments (`//`)")
    )]
    pub url: Option<String>,

    /// A Secret in this namespace with storage credentials; every key becomes an environment
    /// variable of the shard and merge pods. Naming one (other than the pool's
    /// `storage.secretName`) lets the job choose any object-store URL for its output and
    /// scene. Default: the pool's Secret, which confines the job to the pool's
    /// `<storage>/<namespace>/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub secret_name: Option<String>,

    /// Formats of the merged frames.
    #[serde(default = "default_formats")]
    #[schemars(length(min = 1, max = 2))]
    pub formats: Vec<OutputFormat>,
}

fn default_formats() -> Vec<OutputFormat> {
    vec![OutputFormat::Exr, OutputFormat::Png]
}

/// Motion blur settings.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, JsonSchema)]
pub struct MotionBlur {
    /// The shutter interval in frames, at most 1 (Blender's default is 0.5). The frame's
    /// samples are spread over up to 16 time steps across it.
    #[serde(default = "half_frame")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub shutter: f32,
}

fn half_frame() -> f32 {
    0.5
}

/// A compositing pass (`spec.aovs`).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AovName {
    Depth,
    Normal,
    Albedo,
    ObjectId,
    MaterialId,
}

impl AovName {
    /// The pass in the contract with the render pod.
    pub fn contract(self) -> tessera_shard::contract::Aov {
        use tessera_shard::contract::Aov;
        match self {
            AovName::Depth => Aov::Depth,
            AovName::Normal => Aov::Normal,
            AovName::Albedo => Aov::Albedo,
            AovName::ObjectId => Aov::ObjectId,
            AovName::MaterialId => Aov::MaterialId,
        }
    }
}

/// A merged-frame format.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum OutputFormat {
    /// Linear RGB, 32-bit float OpenEXR.
    #[serde(rename = "EXR")]
    Exr,
    /// Tone-mapped sRGB, 8-bit PNG.
    #[serde(rename = "PNG")]
    Png,
}

/// Retries and failure budgets.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Attempts per shard, the first included, before the shard fails. Evictions, preemption
    /// and lost nodes do not count.
    #[serde(default = "default_attempts")]
    #[schemars(range(min = 1, max = 20))]
    pub attempts_per_shard: u32,

    /// Delay before the first retry of a shard; doubles with each further failure.
    #[serde(default = "default_backoff")]
    #[schemars(range(min = 0, max = 3600))]
    pub backoff_seconds: u32,

    /// Upper bound of the retry delay.
    #[serde(default = "default_max_backoff")]
    #[schemars(range(min = 0, max = 86400))]
    pub max_backoff_seconds: u32,

    /// Shards that may fail for good before the job fails at once (like the Job controller's
    /// maxFailedIndexes). The job still cannot complete with a failed shard; the budget lets
    /// the rest of the job finish so that one bad frame does not hide others.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub max_failed_shards: u32,

    /// Finish with the frames that could be rendered when at most `maxFailedShards` shards
    /// failed for good (Flamenco's soft failures, Indexed Jobs' success policy): every other
    /// frame is merged, `status.missingFrames` lists the rest, and the job is Complete with
    /// reason `MissingFrames`, so pipelines can tell a partial result from a whole one.
    #[serde(default)]
    pub allow_missing_frames: bool,

    /// Failed shard attempts, over the whole job, after which the job fails (Deadline's job
    /// error limit). Unset: no limit beyond attemptsPerShard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub failure_limit: Option<u32>,

    /// Failed shard attempts on one node after which this job stops using that node
    /// (Flamenco's worker blocklist).
    #[serde(default = "default_node_threshold")]
    #[schemars(range(min = 1, max = 100))]
    pub node_failure_threshold: u32,

    /// Seconds a shard attempt may run before it is stopped and counted as a failed attempt
    /// with reason `Timeout` (a hung GPU or render); the retry avoids the node. It becomes the
    /// shard pod's `activeDeadlineSeconds`, so the kubelet enforces it. Unset: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 604800))]
    pub shard_timeout_seconds: Option<u32>,

    /// Speculative re-runs of slow shards: when an attempt has run longer than this many times
    /// the median run time of the job's succeeded attempts (once at least 5 have succeeded),
    /// one extra attempt of the shard starts on another node. The first to succeed wins; the
    /// other is stopped, and both are accounted (the loser as `Superseded`, not a failure).
    /// Unset: no speculation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 100))]
    pub speculative_factor: Option<u32>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts_per_shard: default_attempts(),
            backoff_seconds: default_backoff(),
            max_backoff_seconds: default_max_backoff(),
            max_failed_shards: 0,
            allow_missing_frames: false,
            failure_limit: None,
            node_failure_threshold: default_node_threshold(),
            shard_timeout_seconds: None,
            speculative_factor: None,
        }
    }
}

fn default_attempts() -> u32 {
    3
}
fn default_backoff() -> u32 {
    10
}
fn default_max_backoff() -> u32 {
    300
}
fn default_node_threshold() -> u32 {
    3
}

/// The life of a job, for humans; conditions are the machine-readable truth.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum JobPhase {
    /// Accepted, waiting for pool capacity.
    Queued,
    /// Shards are running.
    Rendering,
    /// Every shard rendered; the merge pod is stitching frames.
    Merging,
    /// Frames are written.
    Complete,
    /// The job failed; see the Failed condition.
    Failed,
    /// spec.suspend is set.
    Suspended,
}

/// What the operator observed and decided.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenderJobStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<JobPhase>,

    /// Accepted, Rendering, Merging, Complete, Failed, Suspended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Shards by state.
    #[serde(default)]
    pub shards: ShardCounts,

    /// Shards that rendered and were verified, as an index set (`0-41,43-99`).
    #[serde(default, skip_serializing_if = "IndexSet::is_empty")]
    #[schemars(schema_with = "index_set_schema")]
    pub succeeded_shards: IndexSet,

    /// Shards that failed for good.
    #[serde(default, skip_serializing_if = "IndexSet::is_empty")]
    #[schemars(schema_with = "index_set_schema")]
    pub failed_shards: IndexSet,

    /// The current attempt of every shard not on its first (`17:2,40-45:1`); the merge reads
    /// exactly these attempts.
    #[serde(default, skip_serializing_if = "AttemptMap::is_empty")]
    #[schemars(schema_with = "attempt_map_schema")]
    pub shard_attempts: AttemptMap,

    /// The ledger: how many attempts of each shard have ended and been accounted for
    /// (attempts `0..n`; `7:3,12:1`). Shards in succeededShards or failedShards are not listed:
    /// theirs is their current attempt + 1. Pods whose attempt is accounted for are deleted;
    /// the failure counts, node tallies and GPU-seconds never depend on pods that still exist.
    #[serde(default, skip_serializing_if = "AttemptMap::is_empty")]
    #[schemars(schema_with = "attempt_map_schema")]
    pub settled_attempts: AttemptMap,

    /// The ledger: failed attempts that count against each shard's attemptsPerShard
    /// (`17:2`); evictions, preemptions, lost nodes and deleted pods do not count.
    #[serde(default, skip_serializing_if = "AttemptMap::is_empty")]
    #[schemars(schema_with = "attempt_map_schema")]
    pub failed_attempts: AttemptMap,

    /// The ledger: attempts that ended without counting against their shard (evicted,
    /// preempted, node lost, pod deleted).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub disrupted_attempts: u32,

    /// The ledger: wall-clock seconds of the shard attempts that succeeded (for the ETA).
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub succeeded_seconds: f64,

    /// The ledger: run times of succeeded attempts as a histogram, `bucket:count`, bucket `b`
    /// holding [2^(b/4), 2^((b+1)/4)) seconds (bucket 0 also the shorter ones): the median
    /// that speculative re-runs compare against.
    #[serde(default, skip_serializing_if = "AttemptMap::is_empty")]
    #[schemars(schema_with = "attempt_map_schema")]
    pub succeeded_durations: AttemptMap,

    /// Shards that had a speculative race and the attempt that lost (at most 256 listed); the
    /// merge compares the loser's objects with the winner's and records the verdict in the job
    /// manifest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub speculative_races: Vec<SpeculativeRace>,

    /// Seconds the job spent suspended after it started; activeDeadlineSeconds does not
    /// count them.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub suspended_seconds: i64,

    /// When the current suspension began (unset while not suspended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend_time: Option<Time>,

    /// Shards running now (at most 50 listed; `shards.active` counts them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active_shards: Vec<ActiveShard>,

    /// The ledger: failed attempts per node, for nodes with at least one; nodes at the retry
    /// policy's nodeFailureThreshold are no longer used by this job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_failures: Vec<NodeFailures>,

    /// The most recent failure, for a human to start from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<ShardFailure>,

    /// Frames that will not be written because a shard covering them failed for good, in
    /// frame-list syntax (`retry.allowMissingFrames`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_frames: Option<String>,

    /// Frames merged so far, in frame-list syntax: each frame chunk is merged as soon as its
    /// shards are rendered, so this grows while the job renders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames_done: Option<String>,

    /// Frame chunks merged from the shards' current attempts (the merge's ledger).
    #[serde(default, skip_serializing_if = "IndexSet::is_empty")]
    #[schemars(schema_with = "index_set_schema")]
    pub merged_chunks: IndexSet,

    /// Shards that a preview already includes.
    #[serde(default, skip_serializing_if = "IndexSet::is_empty")]
    #[schemars(schema_with = "index_set_schema")]
    pub previewed_shards: IndexSet,

    /// The last `spec.rerender.generation` acted on.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rerender_generation: u32,

    /// Re-renders done, the latest last (at most 16 kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub rerenders: Vec<RerenderRecord>,

    /// Percentage of shards done, for `kubectl get` (e.g. `42%`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,

    /// When the remaining shards should be done at the current pace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_completion_time: Option<Time>,

    /// The ledger: GPU time of this job's finished shard attempts, in seconds (GPUs × wall
    /// clock), accounted once when each attempt ends.
    #[serde(default)]
    pub gpu_seconds: f64,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,

    /// Where the frames are (or will be).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputStatus>,
}

/// Shards by state.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
pub struct ShardCounts {
    #[serde(default)]
    pub total: u32,
    #[serde(default)]
    pub succeeded: u32,
    #[serde(default)]
    pub failed: u32,
    /// Pods pending or running.
    #[serde(default)]
    pub active: u32,
    /// Not started, or waiting to retry.
    #[serde(default)]
    pub waiting: u32,
}

/// A shard running now.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActiveShard {
    pub shard: u32,
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
}

/// A shard's speculative race: the attempt that lost.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SpeculativeRace {
    pub shard: u32,
    pub loser: u32,
}

/// Failed attempts of this job on one node.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct NodeFailures {
    pub node: String,
    pub failures: u32,
}

/// One failed shard attempt.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ShardFailure {
    pub shard: u32,
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// PascalCase reason, e.g. `BadInput`, `Error`, `OOMKilled`, `Timeout`, `OutputCorrupt`.
    pub reason: String,
    pub message: String,
    /// The attempt's log tail in storage (`…/shards/<i>/<attempt>/log.txt`), written by the
    /// render pod when it could reach storage; it outlives the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

/// One re-render: what it selected and when.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RerenderRecord {
    pub generation: u32,
    /// The shards that run again.
    #[schemars(schema_with = "index_set_schema")]
    pub shards: IndexSet,
    /// The frames merged again, in frame-list syntax.
    pub frames: String,
    pub time: Time,
}

/// Output locations.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputStatus {
    /// The merged frames, `<prefix>/frames/<job>.####.<ext>`.
    pub frames: String,
    /// The job manifest listing every frame, its inputs and checksums.
    pub manifest: String,
    /// Progressive previews of frames still rendering, `<prefix>/previews/<job>.####.png`
    /// (jobs with sample splits and previews on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previews: Option<String>,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

fn is_zero_i64(value: &i64) -> bool {
    *value == 0
}

fn is_zero_f64(value: &f64) -> bool {
    *value == 0.0
}

/// Index sets in status: shard indices have at most five digits (a plan has at most
/// 100,000 shards), so a hand-edited status cannot name a range the operator would take
/// minutes to expand; the API server refuses anything else.
fn index_set_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "maxLength": 65536,
        "pattern": r"^([0-9]{1,5}(-[0-9]{1,5})?(,[0-9]{1,5}(-[0-9]{1,5})?)*)?$",
    })
}

/// Attempt maps in status (`17:2,40-45:1`), bounded like index sets.
fn attempt_map_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "maxLength": 65536,
        "pattern": r"^([0-9]{1,5}(-[0-9]{1,5})?:[0-9]{1,5}(,[0-9]{1,5}(-[0-9]{1,5})?:[0-9]{1,5})*)?$",
    })
}
