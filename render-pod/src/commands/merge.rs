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
//! The operator runs this in steps ([`MergeStep`]): each frame chunk as soon as its shards are
//! rendered (writing a [`ChunkRecord`]), previews of chunks still rendering, and last the job
//! manifest from the records. `render-pod local` runs every step at once.
//!
//! A job that accepts missing frames names its failed shards in [`MergeSpec::missing`]: the
//! frames they cover are left out (and listed in the job manifest), every other frame is merged.

use std::collections::BTreeMap;

use tessera_shard::contract::{
    CONTRACT_VERSION, ChunkRecord, FrameRecord, ImageFormat, InvalidShards, JobManifest,
    MANIFEST_FILE, ManifestFile, MergeSpec, MergeStep, RaceCheck, ShardManifest, chunk_record_path,
    frame_path, job_manifest_path, preview_path, shard_prefix,
};
use tessera_shard::{FrameList, IndexSet, Shard, ShardPlan};

use crate::commands::render::MAX_DIMENSION;
use crate::commands::shard_frame_file;
use crate::error::{Error, Result};
use crate::image_io::{
    Channel, RgbImage, decode_exr, decode_exr_extra, encode_exr_with, encode_png, exr_size,
};
use crate::passes::PassSum;
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

impl FrameSum {
    fn new(pixels: usize) -> Self {
        Self {
            sum: vec![[0.0; 3]; pixels],
            count: vec![0; pixels],
        }
    }

    /// Adds one shard's tile of this frame: its mean weighted by its sample count.
    fn add(&mut self, shard: &Shard, tile: &RgbImage, width: usize) {
        let r = shard.tile;
        let n = u64::from(shard.samples.count);
        let weight = n as f64;
        for ty in 0..r.height as usize {
            for tx in 0..r.width as usize {
                let p = tile.pixels[ty * r.width as usize + tx];
                let i = (r.y as usize + ty) * width + r.x as usize + tx;
                for (sum, value) in self.sum[i].iter_mut().zip(p) {
                    *sum += f64::from(value) * weight;
                }
                self.count[i] += n;
            }
        }
    }

    /// The mean per pixel, rounded once to f32; a pixel no sample reached is black.
    fn image(&self, width: usize, height: usize) -> RgbImage {
        RgbImage {
            width: width as u32,
            height: height as u32,
            pixels: self
                .sum
                .iter()
                .zip(&self.count)
                .map(|(s, &n)| match n {
                    0 => [0.0; 3],
                    n => s.map(|v| (v / n as f64) as f32),
                })
                .collect(),
        }
    }
}

/// Runs the spec's step: everything at once, some frame chunks, a preview, or the job manifest.
pub fn merge(storage: &Storage, spec: &MergeSpec, destination: &FrameDestination) -> Result<()> {
    let plan = plan_of(spec)?;
    let span = tracing::info_span!("merge", job = %spec.job, shards = plan.len());
    let _enter = span.enter();
    let missing = MissingFrames::of(spec, &plan);
    let in_plan = |chunks: &IndexSet| match chunks.iter().find(|&c| c >= plan.frame_chunks()) {
        Some(c) => Err(Error::BadSpec(format!(
            "frame chunk {c} is not in the plan ({} chunks)",
            plan.frame_chunks()
        ))),
        None => Ok(()),
    };
    match &spec.step {
        MergeStep::All => {
            let chunks = IndexSet::full(plan.frame_chunks());
            let records = merge_chunks(storage, spec, &plan, &chunks, &missing, destination)?;
            write_job_manifest(storage, spec, records, &missing)
        }
        MergeStep::Chunks(chunks) => {
            in_plan(chunks)?;
            for record in merge_chunks(storage, spec, &plan, chunks, &missing, destination)? {
                let json = serde_json::to_vec_pretty(&record)
                    .map_err(|e| Error::Image(format!("chunk record JSON: {e}")))?;
                storage.put(
                    &chunk_record_path(&spec.output, &spec.job_uid, record.chunk),
                    json,
                )?;
            }
            Ok(())
        }
        MergeStep::Preview { chunk, shards } => {
            in_plan(&IndexSet::from_iter([*chunk]))?;
            preview(storage, spec, &plan, *chunk, shards)
        }
        MergeStep::Manifest => {
            let mut records = Vec::new();
            for chunk in 0..plan.frame_chunks() {
                if !missing.covers_chunk(&plan, chunk) {
                    records.push(read_chunk_record(storage, spec, &plan, chunk)?);
                }
            }
            write_job_manifest(storage, spec, records, &missing)
        }
    }
}

/// The frames a failed shard covers (a job that accepts missing frames): every shard of their
/// frame chunks is left out, and so are the frames.
struct MissingFrames(std::collections::BTreeSet<i64>);

impl MissingFrames {
    fn of(spec: &MergeSpec, plan: &ShardPlan) -> Self {
        Self(
            spec.missing
                .iter()
                .filter_map(|i| plan.shard(i))
                .flat_map(|s| s.frames)
                .collect(),
        )
    }

    fn covers(&self, shard: &Shard) -> bool {
        shard.frames.iter().any(|f| self.0.contains(f))
    }

    fn covers_chunk(&self, plan: &ShardPlan, chunk: u32) -> bool {
        plan.shard(plan.shards_of_chunk(chunk).start)
            .is_some_and(|s| self.covers(&s))
    }
}

/// Verifies every shard of `chunks` (all of them before writing anything), then merges chunk
/// by chunk (memory: `framesPerShard` full frames) and returns what each chunk wrote.
fn merge_chunks(
    storage: &Storage,
    spec: &MergeSpec,
    plan: &ShardPlan,
    chunks: &IndexSet,
    missing: &MissingFrames,
    destination: &FrameDestination,
) -> Result<Vec<ChunkRecord>> {
    let chunks: Vec<u32> = chunks
        .iter()
        .filter(|&c| !missing.covers_chunk(plan, c))
        .collect();
    let mut invalid = IndexSet::new();
    let mut reasons = Vec::new();
    let mut manifests = BTreeMap::new();
    for shard in chunks
        .iter()
        .flat_map(|&c| plan.shards_of_chunk(c))
        .filter_map(|i| plan.shard(i))
    {
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
    let mut records = Vec::new();
    for chunk in chunks {
        let frames = merge_chunk(storage, spec, plan, chunk, &manifests, destination)?;
        let range = plan.shards_of_chunk(chunk);
        let chunk_manifests = manifests.range(range).map(|(k, v)| (*k, v.clone()));
        let races = check_races(storage, spec, &chunk_manifests.collect())?;
        records.push(ChunkRecord {
            version: CONTRACT_VERSION,
            chunk,
            frames,
            races,
        });
    }
    Ok(records)
}

/// Merges one verified frame chunk: pixel = Σᵢ countᵢ·meanᵢ / Σᵢ countᵢ over the shards
/// covering it, in shard order. Objects are re-checked against the manifest while merging.
fn merge_chunk(
    storage: &Storage,
    spec: &MergeSpec,
    plan: &ShardPlan,
    chunk: u32,
    manifests: &BTreeMap<u32, Vec<ManifestFile>>,
    destination: &FrameDestination,
) -> Result<Vec<FrameRecord>> {
    let (w, h) = (spec.settings.width as usize, spec.settings.height as usize);
    let spp = u64::from(spec.settings.samples_per_pixel);
    let aovs = &spec.settings.aovs;
    let mut frames: BTreeMap<i64, (FrameSum, PassSum)> = BTreeMap::new();
    let mut inputs: BTreeMap<i64, BTreeMap<u32, u32>> = BTreeMap::new();
    for index in plan.shards_of_chunk(chunk) {
        let (Some(shard), Some(files)) = (plan.shard(index), manifests.get(&index)) else {
            continue;
        };
        let attempt = spec.attempts.get(index);
        for &frame in &shard.frames {
            let (tile, passes) = read_tile(storage, spec, &shard, files, frame)?;
            let (sum, pass_sum) = frames
                .entry(frame)
                .or_insert_with(|| (FrameSum::new(w * h), PassSum::new(aovs, w, h)));
            sum.add(&shard, &tile, w);
            pass_sum
                .add(shard.tile, shard.samples, &passes)
                .map_err(|why| invalid_shard(index, &shard_frame_file(frame), &why))?;
            inputs.entry(frame).or_default().insert(index, attempt);
        }
    }
    let mut records = Vec::new();
    for (frame, (acc, pass_sum)) in frames {
        if let Some(i) = acc.count.iter().position(|&c| c != spp) {
            return Err(Error::BadSpec(format!(
                "frame {frame}: pixel ({}, {}) got {} samples, expected {spp}: the plan does not cover the image",
                i % w,
                i / w,
                acc.count[i]
            )));
        }
        let image = acc.image(w, h);
        let mut files = Vec::new();
        for &format in &spec.formats {
            let bytes = match format {
                ImageFormat::Exr => encode_exr_with(&image, &pass_sum.channels(spp))?,
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
    Ok(records)
}

/// One verified shard's tile of `frame`, re-checked against its manifest entry and decoded,
/// with its compositing passes when the job asks for any.
fn read_tile(
    storage: &Storage,
    spec: &MergeSpec,
    shard: &Shard,
    files: &[ManifestFile],
    frame: i64,
) -> Result<(RgbImage, Vec<Channel>)> {
    let index = shard.index;
    let prefix = shard_prefix(&spec.output, &spec.job_uid, index, spec.attempts.get(index));
    let name = shard_frame_file(frame);
    // The check listed each frame once, with its size.
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
    // The check read the header; pixel data can still be corrupt. Either way the shard is
    // invalid and re-rendered, never retried as a transient failure.
    let passes = match spec.settings.aovs.is_empty() {
        true => Ok(Vec::new()),
        false => decode_exr_extra(&bytes),
    };
    match decode_exr(&bytes).and_then(|tile| Ok((tile, passes?))) {
        Ok((tile, passes)) if tile.width == r.width && tile.height == r.height => {
            Ok((tile, passes))
        }
        Ok((tile, _)) => {
            let why = format!("is {}x{}", tile.width, tile.height);
            Err(invalid_shard(index, &name, &why))
        }
        Err(e) => Err(invalid_shard(index, &name, &e.to_string())),
    }
}

/// A PNG preview of each frame of `chunk` from `shards` (whole sample splits of it): the mean
/// of the samples that landed. A shard whose outputs do not check out is left out (the final
/// merge will send it back to rendering); a preview never fails a job.
fn preview(
    storage: &Storage,
    spec: &MergeSpec,
    plan: &ShardPlan,
    chunk: u32,
    shards: &IndexSet,
) -> Result<()> {
    let range = plan.shards_of_chunk(chunk);
    if let Some(stray) = shards.iter().find(|i| !range.contains(i)) {
        return Err(Error::BadSpec(format!(
            "preview of frame chunk {chunk}: shard {stray} is not one of its shards"
        )));
    }
    let (w, h) = (spec.settings.width as usize, spec.settings.height as usize);
    let mut frames: BTreeMap<i64, FrameSum> = BTreeMap::new();
    for shard in shards.iter().filter_map(|i| plan.shard(i)) {
        let files = match check_shard(storage, spec, &shard)? {
            Ok(manifest) => manifest.files,
            Err(why) => {
                tracing::warn!(shard = shard.index, reason = %why, "left out of the preview");
                continue;
            }
        };
        for &frame in &shard.frames {
            match read_tile(storage, spec, &shard, &files, frame) {
                Ok((tile, _)) => frames
                    .entry(frame)
                    .or_insert_with(|| FrameSum::new(w * h))
                    .add(&shard, &tile, w),
                Err(Error::InvalidShards(why)) => {
                    tracing::warn!(shard = shard.index, reason = %why.reason, "left out of the preview");
                }
                Err(e) => return Err(e),
            }
        }
    }
    for (frame, acc) in frames {
        let location = preview_path(&spec.output, &spec.job, frame);
        storage.put(&location, encode_png(&acc.image(w, h))?)?;
        tracing::info!(frame, object = %location, "preview written");
    }
    Ok(())
}

/// A chunk merge's record, checked against the spec: the chunk it names, and every frame
/// merged from exactly the attempts the spec says. Anything else is a record from another
/// merge (overwritten since, or never written): a retry of the merge steps can fix it.
fn read_chunk_record(
    storage: &Storage,
    spec: &MergeSpec,
    plan: &ShardPlan,
    chunk: u32,
) -> Result<ChunkRecord> {
    let path = chunk_record_path(&spec.output, &spec.job_uid, chunk);
    let stale =
        |why: &str| Error::StaleRecord(format!("frame chunk {chunk}'s record {path} {why}"));
    let bytes = match storage.get_bounded(&path, MAX_MANIFEST_BYTES)? {
        Some(Bounded::Bytes(bytes)) => bytes,
        Some(Bounded::TooLarge(_)) => return Err(stale("is too large")),
        None => return Err(stale("is missing")),
    };
    let record: ChunkRecord =
        serde_json::from_slice(&bytes).map_err(|e| stale(&format!("is unreadable: {e}")))?;
    let expected: BTreeMap<u32, u32> = plan
        .shards_of_chunk(chunk)
        .map(|i| (i, spec.attempts.get(i)))
        .collect();
    let frames: Vec<i64> = plan
        .shard(plan.shards_of_chunk(chunk).start)
        .map(|s| s.frames)
        .unwrap_or_default();
    let matches = record.chunk == chunk
        && record
            .frames
            .iter()
            .map(|f| f.frame)
            .eq(frames.iter().copied())
        && record.frames.iter().all(|f| f.inputs == expected);
    if !matches {
        return Err(stale("was written from other shard attempts"));
    }
    Ok(record)
}

fn write_job_manifest(
    storage: &Storage,
    spec: &MergeSpec,
    records: Vec<ChunkRecord>,
    missing: &MissingFrames,
) -> Result<()> {
    let mut manifest = JobManifest {
        version: CONTRACT_VERSION,
        job: spec.job.clone(),
        namespace: spec.namespace.clone(),
        job_uid: spec.job_uid.clone(),
        frames: Vec::new(),
        races: Vec::new(),
        missing_frames: missing.0.iter().copied().collect(),
    };
    for record in records {
        manifest.frames.extend(record.frames);
        manifest.races.extend(record.races);
    }
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::Image(format!("job manifest JSON: {e}")))?;
    storage.put(&job_manifest_path(&spec.output, &spec.job_uid), json)
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
