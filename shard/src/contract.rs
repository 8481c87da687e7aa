//! The JSON contract between the operator and the render pod.
//!
//! - [`ShardSpec`]: what one render pod renders (`render-pod render --spec JSON`).
//! - [`MergeSpec`]: what the merge pod stitches (`render-pod merge --spec JSON`).
//! - [`ShardManifest`]: written LAST by a render pod, beside its objects; a shard counts as
//!   rendered only when its manifest exists and its objects match it.
//! - [`JobManifest`]: written by the merge pod: every frame, its inputs and checksums.
//! - [`exit`]: exit codes, which tell the operator whether a retry can help.
//!
//! Storage layout under the job's output prefix (docs/architecture.md §8):
//!
//! ```text
//! <prefix>/<job-uid>/shards/<i>/<attempt>/...            tile/sample pixels
//! <prefix>/<job-uid>/shards/<i>/<attempt>/manifest.json  written last
//! <prefix>/<job-uid>/shards/<i>/<attempt>/log.txt        the attempt's log tail
//! <prefix>/frames/<job>.<frame>.exr|png                   merged frames
//! <prefix>/previews/<job>.<frame>.png                     progressive previews
//! <prefix>/<job-uid>/merged/<chunk>.json                  one frame chunk's merge record
//! <prefix>/<job-uid>/job-manifest.json                    every frame and its inputs
//! ```
//!
//! Field names are camelCase, like the Kubernetes objects around them. `version` lets a newer
//! pod refuse a spec it does not understand instead of guessing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::attempt_map::AttemptMap;
use crate::index_set::IndexSet;
use crate::plan::{SampleRange, TileRect};

/// The contract version this build writes and reads.
pub const CONTRACT_VERSION: u32 = 1;

/// Passes for compositing, written as extra channels of each frame's EXR (named as Blender
/// Cycles names its layers) beside the beauty pass's R, G, B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Aov {
    /// `Depth.Z`: distance along the camera ray to the first surface, 1e10 where the ray
    /// leaves the scene; from the pixel's first sample (not antialiased, as in Cycles).
    Depth,
    /// `Normal.X/Y/Z`: the world-space shading normal at the first surface, averaged over the
    /// samples (0 where rays leave the scene).
    Normal,
    /// `Albedo.R/G/B`: the first surface's base colour (textures and vertex colours applied),
    /// averaged over the samples.
    Albedo,
    /// `IndexOB.X`: 1 + the glTF node index of the first surface's mesh instance, 0 for
    /// none; from the first sample.
    ObjectId,
    /// `IndexMA.X`: 1 + the glTF material index of the first surface, 0 for none; from the
    /// first sample.
    MaterialId,
}

impl Aov {
    /// The EXR channels of the pass.
    pub fn channels(self) -> &'static [&'static str] {
        match self {
            Aov::Depth => &["Depth.Z"],
            Aov::Normal => &["Normal.X", "Normal.Y", "Normal.Z"],
            Aov::Albedo => &["Albedo.R", "Albedo.G", "Albedo.B"],
            Aov::ObjectId => &["IndexOB.X"],
            Aov::MaterialId => &["IndexMA.X"],
        }
    }

    /// Whether the pass is a mean over the samples (else it is the first sample's).
    pub fn averaged(self) -> bool {
        matches!(self, Aov::Normal | Aov::Albedo)
    }
}

/// Output image formats the merge writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Exr,
    Png,
}

impl ImageFormat {
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Exr => "exr",
            ImageFormat::Png => "png",
        }
    }
}

/// Settings shared by every shard of a job; part of both specs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderSettings {
    /// Scene URL: `file://`, `s3://`, `gs://`, `az://`, `http(s)://`.
    pub scene: String,
    /// Camera name; `None` means the first camera of the scene.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera: Option<String>,
    pub width: u32,
    pub height: u32,
    /// Samples per pixel of the whole frame (all sample splits together).
    pub samples_per_pixel: u32,
    pub max_bounces: u32,
    /// Constant environment radiance, linear RGB.
    #[serde(default)]
    pub background: [f32; 3],
    /// An environment image lighting the scene and seen behind it, instead of `background`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvironmentSettings>,
    /// Compositing passes written beside the beauty pass, in this order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aovs: Vec<Aov>,
    /// Motion blur: the shutter interval in frames (0 < shutter ≤ 1), centred on each frame;
    /// 0 for none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shutter: f32,
    pub seed: u64,
    /// What the render pod will load (the pool's `spec.sceneLimits`, else the defaults).
    #[serde(default)]
    pub limits: crate::limits::SceneLimits,
}

/// An equirectangular environment (Radiance `.hdr` or OpenEXR), read like the scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentSettings {
    /// Image URL: the same schemes as the scene's.
    pub url: String,
    /// Radiance multiplier.
    #[serde(default = "unit_strength")]
    pub strength: f32,
    /// Turn about the scene's up axis (+Y), counter-clockwise seen from above.
    #[serde(default)]
    pub rotation_degrees: f32,
}

fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

fn unit_strength() -> f32 {
    1.0
}

/// One shard attempt, as the operator hands it to a render pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardSpec {
    pub version: u32,
    pub job: String,
    pub namespace: String,
    pub job_uid: String,
    pub shard: u32,
    pub attempt: u32,
    pub settings: RenderSettings,
    /// The frames this shard renders, in order.
    pub frames: Vec<i64>,
    pub tile: TileRect,
    pub samples: SampleRange,
    /// Output prefix URL, without a trailing slash.
    pub output: String,
}

impl ShardSpec {
    /// `<prefix>/<job-uid>/shards/<i>/<attempt>`
    pub fn shard_prefix(&self) -> String {
        shard_prefix(&self.output, &self.job_uid, self.shard, self.attempt)
    }
}

/// The merge: which attempt of every shard to read, and where the frames go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MergeSpec {
    pub version: u32,
    pub job: String,
    pub namespace: String,
    pub job_uid: String,
    pub settings: RenderSettings,
    /// The job's frame list in render-farm syntax (re-planned by the merge, never expanded here).
    pub frames: String,
    pub frames_per_shard: u32,
    pub tiles_x: u32,
    pub tiles_y: u32,
    pub sample_splits: u32,
    /// The attempt to read for each shard; shards not listed use attempt 0.
    pub attempts: AttemptMap,
    /// Shards that had a speculative race: the attempt that lost. Renders are deterministic,
    /// so every object the loser wrote must equal the winner's; the merge checks and records it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub races: BTreeMap<u32, u32>,
    /// Shards that failed for good in a job that accepts missing frames
    /// (`retry.allowMissingFrames`): the merge writes every frame but those these shards cover.
    #[serde(default, skip_serializing_if = "IndexSet::is_empty")]
    pub missing: IndexSet,
    pub formats: Vec<ImageFormat>,
    pub output: String,
    /// What this merge pod does; absent means everything at once (`render-pod local`).
    #[serde(default)]
    pub step: MergeStep,
}

/// One merge pod's part of a job's merge. The operator merges each frame chunk as soon as its
/// shards are rendered (`Chunks`), writes previews of chunks still rendering (`Preview`), and
/// last writes the job manifest from the chunks' records (`Manifest`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MergeStep {
    /// Verify and merge every chunk, then write the job manifest.
    #[default]
    All,
    /// Verify and merge these frame chunks; write each one's [`ChunkRecord`].
    Chunks(IndexSet),
    /// A PNG preview of one frame chunk from the shards named (whole sample splits): the
    /// mean of the samples that have landed.
    Preview { chunk: u32, shards: IndexSet },
    /// Read every chunk's record (all but the missing ones) and write the job manifest.
    Manifest,
}

/// What a chunk merge wrote, at `<prefix>/<job-uid>/merged/<chunk>.json`; the manifest step
/// assembles the job manifest from these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkRecord {
    pub version: u32,
    pub chunk: u32,
    pub frames: Vec<FrameRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub races: Vec<RaceCheck>,
}

impl MergeSpec {
    /// The plan input the spec describes, with its frame list already parsed; the merge and
    /// any stand-in for it re-plan from this (never from a list of frames the spec carries).
    pub fn plan_input(&self, frames: crate::FrameList) -> crate::PlanInput {
        crate::PlanInput {
            frames,
            width: self.settings.width,
            height: self.settings.height,
            samples_per_pixel: self.settings.samples_per_pixel,
            frames_per_shard: self.frames_per_shard,
            tiles_x: self.tiles_x,
            tiles_y: self.tiles_y,
            sample_splits: self.sample_splits,
        }
    }
}

/// One object a pod wrote, relative to its prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestFile {
    pub path: String,
    pub size: u64,
    /// Lower-case hex SHA-256 of the object's bytes.
    pub sha256: String,
}

/// What a render took; for status, metrics and benchmarks.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderStats {
    pub render_seconds: f64,
    pub total_seconds: f64,
    pub samples_per_second: f64,
    /// `adapter.get_info()` of the GPU (or lavapipe) that rendered.
    pub adapter: String,
}

/// Written last by a render pod, at `<shard prefix>/manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardManifest {
    pub version: u32,
    pub job_uid: String,
    pub shard: u32,
    pub attempt: u32,
    pub frames: Vec<i64>,
    pub tile: TileRect,
    pub samples: SampleRange,
    pub files: Vec<ManifestFile>,
    pub stats: RenderStats,
    /// Where the attempt ran. Absent in manifests written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    /// What the renderer left out of the scene (an extension it does not implement, skins,
    /// alpha blending, …), one sentence each; absent when nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Where a shard attempt ran: its pod and node (the downward API), its GPU and driver (as the
/// graphics API reports them) and the GPU's UUID where the device plugin exposes it
/// (`NVIDIA_VISIBLE_DEVICES=GPU-…`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
}

/// One merged frame in the job manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrameRecord {
    pub frame: i64,
    /// Paths relative to the output prefix.
    pub files: Vec<ManifestFile>,
    /// The shard attempts this frame was merged from: shard index → attempt.
    pub inputs: BTreeMap<u32, u32>,
}

/// Written by the merge pod at `<prefix>/<job-uid>/job-manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobManifest {
    pub version: u32,
    pub job: String,
    pub namespace: String,
    pub job_uid: String,
    pub frames: Vec<FrameRecord>,
    /// What the merge found comparing speculative races' attempts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub races: Vec<RaceCheck>,
    /// Frames not written because a shard covering them failed ([`MergeSpec::missing`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_frames: Vec<i64>,
}

/// One speculative race: the objects both attempts wrote, compared byte for byte (through the
/// winner's manifest checksums). A loser stopped early wrote fewer objects; none may differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RaceCheck {
    pub shard: u32,
    pub winner: u32,
    pub loser: u32,
    /// Objects both attempts wrote.
    pub compared: u32,
    /// Whether every compared object is identical.
    pub identical: bool,
}

/// What a merge pod that found bad shard outputs writes to its termination message
/// (`/dev/termination-log`), so the operator re-renders exactly those shards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvalidShards {
    /// Shards whose manifest is missing, or whose objects do not match it.
    pub shards: crate::index_set::IndexSet,
    pub reason: String,
}

/// `<prefix>/<job-uid>/shards/<i>/<attempt>`
pub fn shard_prefix(output: &str, job_uid: &str, shard: u32, attempt: u32) -> String {
    format!(
        "{}/{job_uid}/shards/{shard}/{attempt}",
        output.trim_end_matches('/')
    )
}

/// `<prefix>/frames/<job>.<frame>.<ext>`, the frame number zero-padded to 4 digits.
pub fn frame_path(output: &str, job: &str, frame: i64, format: ImageFormat) -> String {
    format!(
        "{}/frames/{job}.{frame:04}.{}",
        output.trim_end_matches('/'),
        format.extension()
    )
}

/// `<prefix>/previews/<job>.<frame>.png`: the frame from the sample splits rendered so far.
pub fn preview_path(output: &str, job: &str, frame: i64) -> String {
    format!(
        "{}/previews/{job}.{frame:04}.png",
        output.trim_end_matches('/')
    )
}

/// `<prefix>/<job-uid>/merged/<chunk>.json`
pub fn chunk_record_path(output: &str, job_uid: &str, chunk: u32) -> String {
    format!(
        "{}/{job_uid}/merged/{chunk}.json",
        output.trim_end_matches('/')
    )
}

/// `<prefix>/<job-uid>/job-manifest.json`
pub fn job_manifest_path(output: &str, job_uid: &str) -> String {
    format!(
        "{}/{job_uid}/job-manifest.json",
        output.trim_end_matches('/')
    )
}

/// The file name of a shard manifest inside its shard prefix.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The tail of a shard attempt's log (at most 64 KiB), beside its manifest; written for failed
/// attempts too, so the log outlives the pod.
pub const LOG_FILE: &str = "log.txt";

/// Where a shard attempt's log tail is: `<prefix>/<job-uid>/shards/<i>/<attempt>/log.txt`.
pub fn shard_log_path(output: &str, job_uid: &str, shard: u32, attempt: u32) -> String {
    format!(
        "{}/{LOG_FILE}",
        shard_prefix(output, job_uid, shard, attempt)
    )
}

/// Exit codes of `render-pod`. The operator reads them from the pod's container status.
pub mod exit {
    /// Rendered and written.
    pub const OK: i32 = 0;
    /// Something that may pass on a retry (storage hiccup, GPU lost, out of memory on this node).
    pub const TRANSIENT: i32 = 1;
    /// The command line was wrong (clap's usage error code); no retry helps.
    pub const USAGE: i32 = 2;
    /// The scene or the spec is invalid (unreadable glTF, no camera, spec of another version);
    /// no retry helps.
    pub const BAD_INPUT: i32 = 3;
    /// Merge only: some shard outputs are missing or corrupt; the termination message holds
    /// an [`InvalidShards`](super::InvalidShards) naming them.
    pub const INVALID_SHARDS: i32 = 4;
    /// No GPU adapter was found on this node; another node may have one.
    pub const NO_ADAPTER: i32 = 5;

    /// What a failed exit code means for the operator.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum FailureKind {
        /// Retry, perhaps on another node.
        Retryable,
        /// Fail the shard at once.
        Permanent,
        /// Re-render the shards named in the termination message, then merge again.
        InvalidShards,
    }

    pub fn classify(code: i32) -> FailureKind {
        match code {
            USAGE | BAD_INPUT => FailureKind::Permanent,
            INVALID_SHARDS => FailureKind::InvalidShards,
            _ => FailureKind::Retryable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHARD_SPEC_FIXTURE: &str = include_str!("../fixtures/shard-spec.json");
    const MERGE_SPEC_FIXTURE: &str = include_str!("../fixtures/merge-spec.json");
    const MANIFEST_FIXTURE: &str = include_str!("../fixtures/shard-manifest.json");

    #[test]
    fn fixtures_parse_and_round_trip() {
        let spec: ShardSpec = serde_json::from_str(SHARD_SPEC_FIXTURE).unwrap();
        assert_eq!(spec.version, CONTRACT_VERSION);
        assert_eq!(
            spec.tile,
            TileRect {
                x: 64,
                y: 0,
                width: 64,
                height: 48
            }
        );
        assert_eq!(spec.shard_prefix(), "file:///data/out/2a8f/shards/5/1");
        let again: ShardSpec =
            serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(again, spec);

        let merge: MergeSpec = serde_json::from_str(MERGE_SPEC_FIXTURE).unwrap();
        assert_eq!(merge.attempts.get(5), 1);
        assert_eq!(merge.attempts.get(4), 0);

        let manifest: ShardManifest = serde_json::from_str(MANIFEST_FIXTURE).unwrap();
        assert_eq!(manifest.files.len(), 1);
        assert_eq!(manifest.shard, spec.shard);
    }

    #[test]
    fn paths_follow_the_storage_layout() {
        assert_eq!(
            shard_prefix("s3://b/p/", "u", 3, 0),
            "s3://b/p/u/shards/3/0"
        );
        assert_eq!(
            frame_path("s3://b/p", "shot", 7, ImageFormat::Exr),
            "s3://b/p/frames/shot.0007.exr"
        );
        assert_eq!(
            frame_path("s3://b/p", "shot", -7, ImageFormat::Png),
            "s3://b/p/frames/shot.-007.png"
        );
        assert_eq!(
            job_manifest_path("file:///o", "u"),
            "file:///o/u/job-manifest.json"
        );
    }

    #[test]
    fn exit_codes_say_whether_a_retry_helps() {
        use exit::*;
        assert_eq!(classify(TRANSIENT), FailureKind::Retryable);
        assert_eq!(classify(NO_ADAPTER), FailureKind::Retryable);
        assert_eq!(classify(137), FailureKind::Retryable);
        assert_eq!(classify(BAD_INPUT), FailureKind::Permanent);
        assert_eq!(classify(USAGE), FailureKind::Permanent);
        assert_eq!(classify(INVALID_SHARDS), FailureKind::InvalidShards);
    }
}
