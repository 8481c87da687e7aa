//! `render-pod render`: render one shard (frames × tile × sample range) and write one EXR per
//! frame under the shard prefix, then `manifest.json` LAST.
//!
//! Shard EXRs hold the per-pixel MEAN of the shard's samples; the sample count is in the
//! manifest (`samples.count`), so the merge can weight sample splits exactly.

use std::rc::Rc;
use std::time::Instant;

use tessera_shard::contract::{
    CONTRACT_VERSION, MANIFEST_FILE, ManifestFile, Provenance, RenderStats, ShardManifest,
    ShardSpec,
};

use crate::commands::shard_frame_file;
use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::gltf_scene::GltfAsset;
use crate::gpu::tile::{TileParams, render_with_progress};
use crate::gpu::{GpuContext, GpuEnvironment, GpuScene, layout};
use crate::image_io::{RgbImage, encode_exr_with};
use crate::storage::{Storage, sha256_hex};
use crate::{motion, passes};

/// Seconds between progress log lines while a shard renders.
const PROGRESS_LOG_SECONDS: f64 = 10.0;

/// Largest width or height accepted (the merge holds whole frames in memory).
pub const MAX_DIMENSION: u32 = 32_768;

/// Checks what the JSON schema cannot: version, sizes, ranges.
pub fn validate(spec: &ShardSpec) -> Result<()> {
    let bad = |m: String| Err(Error::BadSpec(m));
    if spec.version != CONTRACT_VERSION {
        return bad(format!(
            "spec version {} is not supported (this pod speaks {CONTRACT_VERSION})",
            spec.version
        ));
    }
    let s = &spec.settings;
    if s.width == 0 || s.height == 0 || s.samples_per_pixel == 0 {
        return bad("width, height and samplesPerPixel must be at least 1".into());
    }
    if s.width > MAX_DIMENSION || s.height > MAX_DIMENSION {
        return bad(format!(
            "images are limited to {MAX_DIMENSION} pixels per side"
        ));
    }
    let t = &spec.tile;
    if t.width == 0
        || t.height == 0
        || u64::from(t.x) + u64::from(t.width) > u64::from(s.width)
        || u64::from(t.y) + u64::from(t.height) > u64::from(s.height)
    {
        return bad(format!(
            "tile {t:?} is outside the {}x{} image",
            s.width, s.height
        ));
    }
    if spec.samples.count == 0
        || u64::from(spec.samples.start) + u64::from(spec.samples.count)
            > u64::from(s.samples_per_pixel)
    {
        return bad(format!(
            "sample range {:?} is outside 0..{}",
            spec.samples, s.samples_per_pixel
        ));
    }
    if spec.frames.is_empty() {
        return bad("the shard has no frames".into());
    }
    if !s.background.iter().all(|v| v.is_finite() && *v >= 0.0) {
        return bad(format!(
            "background {:?} must be finite and non-negative",
            s.background
        ));
    }
    if !(s.shutter.is_finite() && (0.0..=1.0).contains(&s.shutter)) {
        return bad(format!(
            "shutter {} must be between 0 and 1 frame",
            s.shutter
        ));
    }
    if let Some(e) = &s.environment
        && !(e.strength.is_finite() && e.strength >= 0.0 && e.rotation_degrees.is_finite())
    {
        return bad(format!(
            "environment strength {} must be finite and non-negative, rotation {} finite",
            e.strength, e.rotation_degrees
        ));
    }
    Ok(())
}

/// Renders shards against one GPU context and one scene asset (and environment), reusing the
/// uploaded scene while it does not change (static scenes are uploaded once).
pub struct ShardRenderer<'a> {
    pub ctx: &'a GpuContext,
    pub storage: &'a Storage,
    pub asset: &'a GltfAsset,
    /// The job's environment map, uploaded before the first shard renders.
    pub environment: Option<&'a Environment>,
    /// The uploaded scene, by the animation time it was built at (`None`: not animated).
    cached: Option<(Option<u64>, Option<String>, GpuScene)>,
    gpu_environment: Option<Rc<GpuEnvironment>>,
}

impl<'a> ShardRenderer<'a> {
    pub fn new(
        ctx: &'a GpuContext,
        storage: &'a Storage,
        asset: &'a GltfAsset,
        environment: Option<&'a Environment>,
    ) -> Self {
        ShardRenderer {
            ctx,
            storage,
            asset,
            environment,
            cached: None,
            gpu_environment: None,
        }
    }

    /// The scene at `time` seconds (the time of `frame`, or of one of its motion-blur steps).
    fn scene_for(&mut self, frame: i64, time: f64, camera: Option<&str>) -> Result<&GpuScene> {
        let key_time = self.asset.is_animated().then_some(time.to_bits());
        let key_camera = camera.map(str::to_string);
        let hit = matches!(&self.cached, Some((t, c, _)) if *t == key_time && *c == key_camera);
        if !hit {
            let started = Instant::now();
            let scene = self.asset.scene_at(time, camera)?;
            let packed = layout::pack(&scene, self.ctx.bvh_layout);
            let gpu = GpuScene::upload(self.ctx, &packed, scene.camera.clone())?;
            tracing::info!(
                frame,
                triangles = packed.triangle_count,
                lights = packed.light_count,
                bvh_layout = ?packed.layout,
                bvh_nodes = packed.nodes.len().max(packed.wide_nodes.len()),
                bvh_depth = packed.bvh_depth,
                camera = %scene.camera.name,
                seconds = started.elapsed().as_secs_f64(),
                "scene built (BVH + upload)"
            );
            self.cached = Some((key_time, key_camera, gpu));
        }
        match &self.cached {
            Some((_, _, gpu)) => Ok(gpu),
            None => Err(Error::Gpu("scene cache empty".into())),
        }
    }

    /// Renders the shard and writes its objects and manifest. `progress(paths done, total)`.
    pub fn render_shard(
        &mut self,
        spec: &ShardSpec,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<ShardManifest> {
        validate(spec)?;
        let span = tracing::info_span!("shard", job = %spec.job, shard = spec.shard, attempt = spec.attempt);
        let _enter = span.enter();
        let started = Instant::now();
        let prefix = spec.shard_prefix();
        let s = &spec.settings;
        let per_frame = spec.tile.pixel_count() * u64::from(spec.samples.count);
        let total = per_frame * spec.frames.len() as u64;
        let mut render_seconds = 0.0;
        let mut files = Vec::new();
        let mut last_log = Instant::now();
        if self.gpu_environment.is_none()
            && let Some(environment) = self.environment
        {
            self.gpu_environment = Some(Rc::new(GpuEnvironment::upload(self.ctx, environment)?));
        }
        // Shared, not borrowed: `scene_for` borrows the renderer mutably.
        let gpu_environment = self.gpu_environment.clone();
        let steps = motion::steps(s.shutter, s.samples_per_pixel, self.asset.is_animated());
        for (k, &frame) in spec.frames.iter().enumerate() {
            let ctx = self.ctx;
            let environment = gpu_environment.as_deref();
            let mut base = per_frame * k as u64;
            // Each motion-blur time step renders its share of the samples (all of them, and
            // the frame's own time, without blur).
            let mut parts = Vec::new();
            for step in 0..steps {
                let Some(samples) = motion::share(spec.samples, step, steps) else {
                    continue;
                };
                let time = motion::step_time(frame, s.shutter, step, steps);
                let scene = self.scene_for(frame, time, s.camera.as_deref())?;
                let params = TileParams {
                    scene,
                    frame,
                    image_width: s.width,
                    image_height: s.height,
                    tile: spec.tile,
                    samples,
                    max_bounces: s.max_bounces,
                    background: s.background,
                    environment,
                    aovs: !s.aovs.is_empty(),
                    sample_stride: steps,
                    seed: s.seed,
                };
                // GPU time only: scene builds are not rendering (samples/s leave them out).
                let t0 = Instant::now();
                let tile = render_with_progress(ctx, &params, &mut |done, _| {
                    let paths = base + done;
                    // A heartbeat for `kubectl logs`: at most one line per PROGRESS_LOG_SECONDS.
                    if last_log.elapsed().as_secs_f64() >= PROGRESS_LOG_SECONDS {
                        last_log = Instant::now();
                        let elapsed = started.elapsed().as_secs_f64();
                        let fraction = paths as f64 / total.max(1) as f64;
                        let eta = if fraction > 0.0 {
                            elapsed * (1.0 - fraction) / fraction
                        } else {
                            0.0
                        };
                        tracing::info!(
                            percent = format!("{:.1}", 100.0 * fraction),
                            eta_seconds = eta.round(),
                            "rendering"
                        );
                    }
                    progress(paths, total)
                })?;
                render_seconds += t0.elapsed().as_secs_f64();
                base += spec.tile.pixel_count() * u64::from(samples.count);
                parts.push((samples, tile));
            }
            let tile = match parts.len() {
                1 => parts.remove(0).1,
                _ => motion::combine(&parts)
                    .ok_or_else(|| Error::BadSpec("a shard with no samples".into()))?,
            };
            let image = RgbImage {
                width: tile.rect.width,
                height: tile.rect.height,
                pixels: tile.pixels,
            };
            let passes = tile
                .aovs
                .as_deref()
                .map(|pixels| passes::channels(&s.aovs, pixels))
                .unwrap_or_default();
            let bytes = encode_exr_with(&image, &passes)?;
            let name = shard_frame_file(frame);
            files.push(ManifestFile {
                path: name.clone(),
                size: bytes.len() as u64,
                sha256: sha256_hex(&bytes),
            });
            self.storage.put(&format!("{prefix}/{name}"), bytes)?;
            tracing::info!(frame, object = %format!("{prefix}/{name}"), "tile written");
        }
        let manifest = ShardManifest {
            version: CONTRACT_VERSION,
            job_uid: spec.job_uid.clone(),
            shard: spec.shard,
            attempt: spec.attempt,
            frames: spec.frames.clone(),
            tile: spec.tile,
            samples: spec.samples,
            files,
            stats: RenderStats {
                render_seconds,
                total_seconds: started.elapsed().as_secs_f64(),
                samples_per_second: if render_seconds > 0.0 {
                    total as f64 / render_seconds
                } else {
                    0.0
                },
                adapter: self.ctx.adapter_label(),
            },
            provenance: Some(provenance(Some(&self.ctx.info))),
            warnings: self.asset.warnings().to_vec(),
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| Error::Image(format!("manifest JSON: {e}")))?;
        // Written last: its presence means every object above is complete.
        self.storage
            .put(&format!("{prefix}/{MANIFEST_FILE}"), json)?;
        tracing::info!(
            seconds = manifest.stats.total_seconds,
            samples_per_second = manifest.stats.samples_per_second,
            "shard done"
        );
        Ok(manifest)
    }
}

/// Where this attempt runs: pod and node from the downward API (`TESSERA_POD_NAME`,
/// `TESSERA_NODE_NAME`), the GPU and driver from the adapter, the GPU UUID from the NVIDIA
/// device plugin's `NVIDIA_VISIBLE_DEVICES` when it names one.
pub fn provenance(adapter: Option<&wgpu::AdapterInfo>) -> Provenance {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    Provenance {
        pod: env("TESSERA_POD_NAME"),
        node: env("TESSERA_NODE_NAME"),
        gpu: adapter.map(|a| a.name.clone()),
        gpu_uuid: env("NVIDIA_VISIBLE_DEVICES").filter(|v| v.starts_with("GPU-")),
        driver: adapter.map(|a| format!("{} {}", a.driver, a.driver_info).trim().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHARD_SPEC: &str = include_str!("../../../shard/fixtures/shard-spec.json");

    #[test]
    fn fixture_spec_parses_and_validates() {
        let spec: ShardSpec = crate::commands::read_spec(Some(SHARD_SPEC), None).unwrap();
        validate(&spec).unwrap();
        assert_eq!(spec.shard_prefix(), "file:///data/out/2a8f/shards/5/1");
        let mut bad = spec.clone();
        bad.version = 99;
        assert_eq!(
            validate(&bad).unwrap_err().exit_code(),
            tessera_shard::contract::exit::BAD_INPUT
        );
        let mut bad = spec.clone();
        bad.tile.x = 250;
        assert!(validate(&bad).is_err());
        let mut bad = spec;
        bad.samples.start = 60;
        assert!(validate(&bad).is_err());
        assert!(crate::commands::read_spec::<ShardSpec>(Some("{"), None).is_err());
    }
}
