//! `render-pod merge`: verify every shard's outputs, then stitch tiles and average sample splits
//! into final frames.
//!
//! 1. Re-plan the job with [`ShardPlan`] (shard `i` ↔ frames × tile × samples).
//! 2. Verify: for each shard, the manifest of the chosen attempt exists, describes exactly the
//!    planned work, and every object matches its size and SHA-256. Any failure → an
//!    [`InvalidShards`] error naming all bad shards (exit `INVALID_SHARDS`), nothing written.
//! 3. Merge frame chunk by chunk: pixel = Σᵢ countᵢ·meanᵢ / Σᵢ countᵢ in f64 over the shards
//!    covering it, in shard order, rounded once to f32. With one split this returns the shard's
//!    value bit for bit. Objects are re-checked against the manifest while merging.
//! 4. Write frames (EXR linear float, PNG clamped sRGB) and the job manifest. Everything is a
//!    deterministic function of the shard objects, so merging twice gives identical bytes.
//!
//! A job that accepts missing frames names its failed shards in [`MergeSpec::missing`]: the
//! frames they cover are left out (and listed in the job manifest), every other frame is merged.

use std::collections::BTreeMap;

use tessera_shard::contract::{
    CONTRACT_VERSION, FrameRecord, ImageFormat, InvalidShards, JobManifest, MANIFEST_FILE,
    ManifestFile, MergeSpec, RaceCheck, ShardManifest, frame_path, job_manifest_path, shard_prefix,
};
use tessera_shard::{FrameList, IndexSet, Shard, ShardPlan};

use crate::commands::render::MAX_DIMENSION;
use crate::commands::shard_frame_file;
use crate::error::{Error, Result};
use crate::image_io::{RgbImage, decode_exr, encode_exr, encode_png, exr_size};
use crate::storage::{Bounded, Storage, sha256_hex};

/// Where merged frames go.
#[derive(Debug, Clone)]
pub enum FrameDestination {
    /// The contract layout: `frame_path(output, job, frame, format)`.
    Contract,
    /// Local mode: `<dir>/frame_<NNNN>.<ext>` (a URL or path).
    Directory(String),
}

impl FrameDestination {
    fn location(&self, spec: &MergeSpec, frame: i64, format: ImageFormat) -> String {
        match self {
            FrameDestination::Contract => frame_path(&spec.output, &spec.job, frame, format),
            FrameDestination::Directory(dir) => {
                format!(
                    "{}/frame_{frame:04}.{}",
                    dir.trim_end_matches('/'),
                    format.extension()
                )
            }
        }
    }
}

pub fn plan_of(spec: &MergeSpec) -> Result<ShardPlan> {
    if spec.version != CONTRACT_VERSION {
        return Err(Error::BadSpec(format!(
            "spec version {} is not supported (this pod speaks {CONTRACT_VERSION})",
            spec.version
        )));
    }
    let s = &spec.settings;
    if s.width > MAX_DIMENSION || s.height > MAX_DIMENSION {
        return Err(Error::BadSpec(format!(
            "images are limited to {MAX_DIMENSION} pixels per side"
        )));
    }
    if spec.formats.is_empty() {
        return Err(Error::BadSpec(
            "formats must name at least one of exr, png".into(),
        ));
    }
    let frames = FrameList::parse(&spec.frames)
        .map_err(|e| Error::BadSpec(format!("frames {:?}: {e}", spec.frames)))?;
    ShardPlan::new(spec.plan_input(frames)).map_err(|e| Error::BadSpec(e.to_string()))
}

/// Why one shard is unusable, or `Ok` with its manifest.
fn check_shard(
    storage: &Storage,
    spec: &MergeSpec,
    shard: &Shard,
) -> Result<Result<ShardManifest, String>> {
    let attempt = spec.attempts.get(shard.index);
    let prefix = shard_prefix(&spec.output, &spec.job_uid, shard.index, attempt);
    let bytes = match storage
        .get_bounded(&format!("{prefix}/{MANIFEST_FILE}"), MAX_MANIFEST_BYTES)?
    {
        Some(Bounded::Bytes(bytes)) => bytes,
        Some(Bounded::TooLarge(size)) => {
            return Ok(Err(format!(
                "shard {} attempt {attempt}: manifest has {size} bytes, more than any shard writes",
                shard.index
            )));
        }
        None => {
            return Ok(Err(format!(
                "shard {} attempt {attempt}: manifest missing",
                shard.index
            )));
        }
    };
    let manifest: ShardManifest = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => {
            return Ok(Err(format!(
                "shard {} attempt {attempt}: manifest unreadable: {e}",
                shard.index
            )));
        }
    };
    if manifest.job_uid != spec.job_uid
        || manifest.shard != shard.index
        || manifest.attempt != attempt
        || manifest.frames != shard.frames
        || manifest.tile != shard.tile
        || manifest.samples != shard.samples
    {
        return Ok(Err(format!(
            "shard {} attempt {attempt}: manifest describes other work than the plan",
            shard.index
        )));
    }
    // Exactly the planned objects, by name: a manifest cannot send the merge anywhere else.
    let expected: Vec<String> = shard.frames.iter().map(|&f| shard_frame_file(f)).collect();
    if let Some(file) = manifest.files.iter().find(|f| !expected.contains(&f.path)) {
        return Ok(Err(format!(
            "shard {}: manifest lists {:?}, which is not one of its frame objects",
            shard.index,
            file.path.chars().take(120).collect::<String>()
        )));
    }
    for (frame, name) in shard.frames.iter().zip(&expected) {
        if manifest.files.iter().filter(|f| &f.path == name).count() != 1 {
            return Ok(Err(format!(
                "shard {}: manifest must list frame {frame} once",
                shard.index
            )));
        }
    }
    for file in &manifest.files {
        let bytes = match storage.get_bounded(&format!("{prefix}/{}", file.path), file.size)? {
            None => Err("missing".to_string()),
            Some(Bounded::TooLarge(size)) => {
                Err(format!("has {size} bytes, manifest says {}", file.size))
            }
            Some(Bounded::Bytes(bytes)) => matches_manifest(file, &bytes).map(|()| bytes),
        };
        let tile = shard.tile;
        let checked = bytes.and_then(|bytes| match exr_size(&bytes)? {
            (w, h) if (w, h) == (tile.width, tile.height) => Ok(()),
            (w, h) => Err(format!(
                "is {w}x{h}, the plan says {}x{}",
                tile.width, tile.height
            )),
        });
        if let Err(why) = checked {
            return Ok(Err(format!(
                "shard {}: object {} {why}",
                shard.index, file.path
            )));
        }
    }
    Ok(Ok(manifest))
}

/// A manifest is a few hundred bytes per frame; anything this large was not written by us.
const MAX_MANIFEST_BYTES: u64 = 16 << 20;

fn invalid_shard(index: u32, object: &str, why: &str) -> Error {
    let mut shards = IndexSet::new();
    shards.insert(index);
    Error::InvalidShards(InvalidShards {
        shards,
        reason: format!("shard {index}: object {object} {why}"),
    })
}

fn matches_manifest(file: &ManifestFile, bytes: &[u8]) -> std::result::Result<(), String> {
    if bytes.len() as u64 != file.size {
        return Err(format!(
            "has {} bytes, manifest says {}",
            bytes.len(),
            file.size
        ));
    }
    if sha256_hex(bytes) != file.sha256 {
        return Err("does not match its SHA-256".into());
    }
    Ok(())
}

/// Per-frame accumulator: Σ count·mean in f64 and the sample count per pixel.
struct FrameSum {
    sum: Vec<[f64; 3]>,
    count: Vec<u64>,
}

/// Verifies all shards, then merges. Returns the job manifest it wrote.
pub fn merge(
    storage: &Storage,
    spec: &MergeSpec,
    destination: &FrameDestination,
) -> Result<JobManifest> {
    let plan = plan_of(spec)?;
    let span = tracing::info_span!("merge", job = %spec.job, shards = plan.len());
    let _enter = span.enter();

    // Pass 1: verify everything before writing anything.
    let mut invalid = IndexSet::new();
    let mut reasons = Vec::new();
    let mut manifests = BTreeMap::new();
    // Frames a failed shard covers (a job that accepts missing frames): every shard of their
    // frame chunks is left out, and so are the frames.
    let missing_frames: std::collections::BTreeSet<i64> = spec
        .missing
        .iter()
        .filter_map(|i| plan.shard(i))
        .flat_map(|s| s.frames)
        .collect();
    let is_missing = |shard: &Shard| shard.frames.iter().any(|f| missing_frames.contains(f));
    for shard in plan.shards() {
        if is_missing(&shard) {
            continue;
        }
        match check_shard(storage, spec, &shard)? {
            Ok(manifest) => {
                // Only the object list is kept: a merge of 10^5 shards holds 10^5 of these.
                manifests.insert(shard.index, manifest.files);
            }
            Err(why) => {
                tracing::warn!(shard = shard.index, reason = %why, "invalid shard output");
                invalid.insert(shard.index);
                reasons.push(why);
            }
        }
    }
    if !invalid.is_empty() {
        let mut reason = reasons
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        if reasons.len() > 5 {
            reason.push_str(&format!("; and {} more", reasons.len() - 5));
        }
        return Err(Error::InvalidShards(InvalidShards {
            shards: invalid,
            reason,
        }));
    }

    // Pass 2: merge chunk by chunk (memory: frames_per_shard full frames).
    let (w, h) = (spec.settings.width as usize, spec.settings.height as usize);
    let spp = u64::from(spec.settings.samples_per_pixel);
    let mut records = Vec::new();
    for chunk in 0..plan.frame_chunks() {
        let mut frames: BTreeMap<i64, FrameSum> = BTreeMap::new();
        let mut inputs: BTreeMap<i64, BTreeMap<u32, u32>> = BTreeMap::new();
        for index in plan.shards_of_chunk(chunk) {
            let Some(shard) = plan.shard(index).filter(|s| !is_missing(s)) else {
                continue;
            };
            let attempt = spec.attempts.get(index);
            let prefix = shard_prefix(&spec.output, &spec.job_uid, index, attempt);
            let Some(files) = manifests.get(&index) else {
                continue;
            };
            for &frame in &shard.frames {
                let name = shard_frame_file(frame);
                // Pass 1 checked the manifest lists each frame once, with its size.
                let Some(entry) = files.iter().find(|f| f.path == name) else {
                    return Err(invalid_shard(index, &name, "missing from the manifest"));
                };
                let bytes = match storage.get_bounded(&format!("{prefix}/{name}"), entry.size)? {
                    Some(Bounded::Bytes(bytes)) => bytes,
                    _ => Vec::new(),
                };
                if let Err(why) = matches_manifest(entry, &bytes) {
                    return Err(invalid_shard(
                        index,
                        &name,
                        &format!("{why} (changed during the merge)"),
                    ));
                }
                let r = shard.tile;
                // Pass 1 checked the header; pixel data can still be corrupt. Either way the
                // shard is invalid and re-rendered, never retried as a transient failure.
                let tile = match decode_exr(&bytes) {
                    Ok(tile) if tile.width == r.width && tile.height == r.height => tile,
                    Ok(tile) => {
                        let why = format!("is {}x{}", tile.width, tile.height);
                        return Err(invalid_shard(index, &name, &why));
                    }
                    Err(e) => return Err(invalid_shard(index, &name, &e.to_string())),
                };
                let acc = frames.entry(frame).or_insert_with(|| FrameSum {
                    sum: vec![[0.0; 3]; w * h],
                    count: vec![0; w * h],
                });
                let n = u64::from(shard.samples.count);
                let weight = n as f64;
                for ty in 0..r.height as usize {
                    for tx in 0..r.width as usize {
                        let p = tile.pixels[ty * r.width as usize + tx];
                        let i = (r.y as usize + ty) * w + r.x as usize + tx;
                        for (sum, value) in acc.sum[i].iter_mut().zip(p) {
                            *sum += f64::from(value) * weight;
                        }
                        acc.count[i] += n;
                    }
                }
                inputs.entry(frame).or_default().insert(index, attempt);
            }
        }
        for (frame, acc) in frames {
            if let Some(i) = acc.count.iter().position(|&c| c != spp) {
                return Err(Error::BadSpec(format!(
                    "frame {frame}: pixel ({}, {}) got {} samples, expected {spp}: the plan does not cover the image",
                    i % w,
                    i / w,
                    acc.count[i]
                )));
            }
            let image = RgbImage {
                width: w as u32,
                height: h as u32,
                pixels: acc
                    .sum
                    .iter()
                    .zip(&acc.count)
                    .map(|(s, &n)| s.map(|v| (v / n as f64) as f32))
                    .collect(),
            };
            let mut files = Vec::new();
            for &format in &spec.formats {
                let bytes = match format {
                    ImageFormat::Exr => encode_exr(&image)?,
                    ImageFormat::Png => encode_png(&image)?,
                };
                let location = destination.location(spec, frame, format);
                let relative = location
                    .strip_prefix(spec.output.trim_end_matches('/'))
                    .map(|p| p.trim_start_matches('/').to_string())
                    .unwrap_or_else(|| location.clone());
                files.push(ManifestFile {
                    path: relative,
                    size: bytes.len() as u64,
                    sha256: sha256_hex(&bytes),
                });
                storage.put(&location, bytes)?;
                tracing::info!(frame, object = %location, "frame written");
            }
            records.push(FrameRecord {
                frame,
                files,
                inputs: inputs.remove(&frame).unwrap_or_default(),
            });
        }
    }
    let races = check_races(storage, spec, &manifests)?;
    let manifest = JobManifest {
        version: CONTRACT_VERSION,
        job: spec.job.clone(),
        namespace: spec.namespace.clone(),
        job_uid: spec.job_uid.clone(),
        frames: records,
        races,
        missing_frames: missing_frames.into_iter().collect(),
    };
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::Image(format!("job manifest JSON: {e}")))?;
    storage.put(&job_manifest_path(&spec.output, &spec.job_uid), json)?;
    Ok(manifest)
}

/// Compares each speculative race's losing attempt with the winner that was merged: every
/// object the loser wrote must match the winner's manifest (renders are deterministic).
fn check_races(
    storage: &Storage,
    spec: &MergeSpec,
    manifests: &BTreeMap<u32, Vec<ManifestFile>>,
) -> Result<Vec<RaceCheck>> {
    let mut checks = Vec::new();
    for (&shard, &loser) in &spec.races {
        let winner = spec.attempts.get(shard);
        let Some(files) = manifests.get(&shard) else {
            continue;
        };
        let loser_prefix = shard_prefix(&spec.output, &spec.job_uid, shard, loser);
        let mut objects = Vec::new();
        for file in files {
            // Read no more than the winner's object: a longer one differs anyway.
            let bytes =
                match storage.get_bounded(&format!("{loser_prefix}/{}", file.path), file.size)? {
                    Some(Bounded::Bytes(bytes)) => Some(bytes),
                    Some(Bounded::TooLarge(_)) => Some(Vec::new()),
                    None => None,
                };
            objects.push((file, bytes));
        }
        let check = race_check(shard, winner, loser, &objects);
        if !check.identical {
            tracing::warn!(
                shard,
                winner,
                loser,
                "a speculative race's attempts wrote different objects: the render is not deterministic"
            );
        }
        checks.push(check);
    }
    Ok(checks)
}

/// The verdict on one race from the winner's manifest entries and what the loser wrote at the
/// same paths (`None`: it was stopped before writing that object).
pub fn race_check(
    shard: u32,
    winner: u32,
    loser: u32,
    objects: &[(&ManifestFile, Option<Vec<u8>>)],
) -> RaceCheck {
    let written: Vec<(&ManifestFile, &Vec<u8>)> = objects
        .iter()
        .filter_map(|(file, bytes)| Some((*file, bytes.as_ref()?)))
        .collect();
    RaceCheck {
        shard,
        winner,
        loser,
        compared: written.len() as u32,
        identical: written
            .iter()
            .all(|(file, bytes)| matches_manifest(file, bytes).is_ok()),
    }
}

/// Best-effort write of the termination message (Kubernetes reads at most 4 KiB).
pub fn write_termination_log(path: &std::path::Path, invalid: &InvalidShards) {
    let mut json = serde_json::to_string(invalid).unwrap_or_default();
    if json.len() > 4096 {
        let short = InvalidShards {
            shards: invalid.shards.clone(),
            reason: invalid.reason.chars().take(256).collect(),
        };
        json = serde_json::to_string(&short).unwrap_or_default();
    }
    if let Err(e) = std::fs::write(path, json) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the termination log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MERGE_SPEC: &str = include_str!("../../../shard/fixtures/merge-spec.json");

    #[test]
    fn a_race_is_identical_only_if_every_object_both_wrote_matches() {
        let good = b"tile pixels".to_vec();
        let file = |path: &str| ManifestFile {
            path: path.into(),
            size: good.len() as u64,
            sha256: sha256_hex(&good),
        };
        let (a, b) = (file("frame_0001.exr"), file("frame_0002.exr"));
        // The loser was stopped after its first frame: one object compared, identical.
        let check = race_check(3, 1, 0, &[(&a, Some(good.clone())), (&b, None)]);
        assert_eq!((check.compared, check.identical), (1, true));
        // A differing object (a render that is not deterministic) is recorded as such.
        let mut other = good.clone();
        other[0] ^= 1;
        let check = race_check(3, 1, 0, &[(&a, Some(good.clone())), (&b, Some(other))]);
        assert_eq!((check.compared, check.identical), (2, false));
    }

    #[test]
    fn fixture_merge_spec_parses_and_plans() {
        let spec: MergeSpec = crate::commands::read_spec(Some(MERGE_SPEC), None).unwrap();
        let plan = plan_of(&spec).unwrap();
        // 4 frames / 2 per shard × 4×4 tiles × 2 splits.
        assert_eq!(plan.len(), 2 * 16 * 2);
        assert_eq!(spec.attempts.get(5), 1);
        assert_eq!(spec.formats, vec![ImageFormat::Exr, ImageFormat::Png]);
        let mut bad = spec.clone();
        bad.frames = "x-y".into();
        assert_eq!(
            plan_of(&bad).unwrap_err().exit_code(),
            tessera_shard::contract::exit::BAD_INPUT
        );
        let mut bad = spec;
        bad.sample_splits = 1000;
        assert!(plan_of(&bad).is_err());
    }
}
