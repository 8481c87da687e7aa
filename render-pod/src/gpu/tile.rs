//! Rendering one tile: `render(&ctx, &TileParams) -> Tile`.
//!
//! The tile is cut into short dispatches (a band of rows × a few samples, see
//! [`plan_dispatches`]); a pixel's samples are added, in sample order, to its own accumulator
//! slot (by the megakernel's invocation of that pixel, or the wavefront's accumulate kernel
//! once a wave's paths have ended), so the sum does not depend on how the work was cut. The
//! accumulator rows
//! are padded to 256 bytes (wgpu's `COPY_BYTES_PER_ROW_ALIGNMENT`) so the same readback path
//! would serve a texture copy; readback goes through a staging buffer.

use std::sync::atomic::Ordering;
use std::time::Instant;

use bytemuck::{Pod, Zeroable};
use tessera_shard::plan::{SampleRange, TileRect};

use crate::error::{Error, Result};
use crate::gpu::wavefront::{self, WaveBindings, WaveBuffers};
use crate::gpu::{
    GpuContext, GpuEnvironment, GpuScene, Integrator, ShaderVariant, cpu_samples_per_dispatch,
};

/// What to render: a tile of a frame, a range of sample indexes.
#[derive(Debug, Clone, Copy)]
pub struct TileParams<'a> {
    pub scene: &'a GpuScene,
    pub frame: i64,
    pub image_width: u32,
    pub image_height: u32,
    pub tile: TileRect,
    pub samples: SampleRange,
    pub max_bounces: u32,
    /// What rays that leave the scene find: this constant radiance, unless `environment`.
    pub background: [f32; 3],
    pub environment: Option<&'a GpuEnvironment>,
    /// Whether to gather the compositing passes ([`Tile::aovs`]).
    pub aovs: bool,
    /// The samples are `samples.start`, then every `sample_stride`-th after it, `samples.count`
    /// of them (motion blur renders each time step's share of a range this way); 1: all.
    pub sample_stride: u32,
    pub seed: u64,
}

/// A rendered tile: per-pixel MEAN radiance over `samples` samples, rows top to bottom.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    pub rect: TileRect,
    pub samples: u32,
    pub pixels: Vec<[f32; 3]>,
    /// When asked for: each pixel's compositing passes, in the same order.
    pub aovs: Option<Vec<AovPixel>>,
}

/// What the camera rays of a pixel found first: the mean shading normal and base colour over
/// its samples, and the distance, object ID and material ID of its sample 0 (0 when the tile's
/// samples do not include sample 0).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AovPixel {
    pub normal: [f32; 3],
    pub depth: f32,
    pub albedo: [f32; 3],
    pub object: f32,
    pub material: f32,
}

const MIN_PATHS_PER_DISPATCH: u64 = 1 << 12;
const MAX_PATHS_PER_DISPATCH: u64 = 1 << 26;

/// One dispatch: rows `row_start..row_start + rows` of the tile, samples
/// `sample_start..sample_start + sample_count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dispatch {
    pub row_start: u32,
    pub rows: u32,
    pub sample_start: u32,
    pub sample_count: u32,
    /// False for the first sample chunk: the shader overwrites instead of adding.
    pub accumulate: bool,
}

/// Cuts a tile into dispatches of about `budget` paths, at most `max_samples` per pixel each;
/// sample chunks outermost so every pixel receives its samples in ascending order.
pub fn plan_dispatches(
    width: u32,
    height: u32,
    samples: SampleRange,
    budget: u64,
    max_samples: u32,
) -> Vec<Dispatch> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels == 0 || samples.count == 0 {
        return Vec::new();
    }
    let (rows, per_dispatch) = if pixels >= budget {
        let rows = (budget / u64::from(width)).clamp(1, u64::from(height)) as u32;
        (rows, 1)
    } else {
        (
            height,
            (budget / pixels).clamp(1, u64::from(samples.count.min(max_samples).max(1))) as u32,
        )
    };
    let mut out = Vec::new();
    let mut done = 0;
    while done < samples.count {
        let count = per_dispatch.min(samples.count - done);
        let mut row = 0;
        while row < height {
            let n = rows.min(height - row);
            out.push(Dispatch {
                row_start: row,
                rows: n,
                sample_start: samples.start + done,
                sample_count: count,
                accumulate: done > 0,
            });
            row += n;
        }
        done += count;
    }
    out
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct GpuParams {
    cam_pos: [f32; 4],
    cam_right: [f32; 4],
    cam_up: [f32; 4],
    cam_fwd: [f32; 4],
    background: [f32; 4],
    image: [u32; 4],
    tile: [u32; 4],
    samples: [u32; 4],
    seed: [u32; 4],
    counts: [u32; 4],
}

/// Bytes of the kernels' parameters (trace.wgsl `Params`): a storage buffer, or immediates.
pub const PARAMS_BYTES: u32 = std::mem::size_of::<GpuParams>() as u32;

/// Accumulator row stride in pixels (16 bytes each), padded to 256 bytes.
pub fn padded_row_pixels(width: u32) -> u32 {
    let align = wgpu::COPY_BYTES_PER_ROW_ALIGNMENT / 16;
    width.div_ceil(align) * align
}

fn validate(p: &TileParams) -> Result<()> {
    let t = &p.tile;
    if p.image_width == 0 || p.image_height == 0 {
        return Err(Error::BadSpec("image size must be at least 1×1".into()));
    }
    if t.width == 0
        || t.height == 0
        || u64::from(t.x) + u64::from(t.width) > u64::from(p.image_width)
        || u64::from(t.y) + u64::from(t.height) > u64::from(p.image_height)
    {
        return Err(Error::BadSpec(format!(
            "tile {}x{}+{}+{} does not fit the {}x{} image",
            t.width, t.height, t.x, t.y, p.image_width, p.image_height
        )));
    }
    let last = (p.samples.count.max(1) - 1).checked_mul(p.sample_stride.max(1));
    if p.samples.count == 0 || last.and_then(|l| p.samples.start.checked_add(l)).is_none() {
        return Err(Error::BadSpec(format!(
            "bad sample range {}+{}",
            p.samples.start, p.samples.count
        )));
    }
    Ok(())
}

/// Renders a tile; see [`render_with_progress`].
pub fn render(ctx: &GpuContext, params: &TileParams) -> Result<Tile> {
    render_with_progress(ctx, params, &mut |_, _| {})
}

/// Renders a tile, calling `progress(paths done, paths total)` after each dispatch.
pub fn render_with_progress(
    ctx: &GpuContext,
    params: &TileParams,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Tile> {
    render_in_dispatches(ctx, params, DispatchSize::Adaptive, progress)
}

/// How large each dispatch is. Either way the result is the same, bit for bit (tests hold it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchSize {
    /// About this many paths per dispatch.
    Fixed(u64),
    /// Sized from the measured rate to take about `ctx.dispatch_seconds` each.
    Adaptive,
}

/// Renders a tile in dispatches sized by `size`, one sample chunk at a time (all row bands of
/// a chunk, then the next chunk), so every pixel still gets its samples in ascending order.
pub fn render_in_dispatches(
    ctx: &GpuContext,
    params: &TileParams,
    size: DispatchSize,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Tile> {
    render_in_bands(ctx, params, size, ctx.max_storage_bytes(), progress)
}

/// Renders a tile whose accumulator would exceed `max_band_bytes` as horizontal bands, each
/// with its own accumulator; pixels do not depend on the cut, so the result is the same.
pub fn render_in_bands(
    ctx: &GpuContext,
    params: &TileParams,
    size: DispatchSize,
    max_band_bytes: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Tile> {
    validate(params)?;
    let rect = params.tile;
    // The largest buffer a band binds: the accumulator, or the passes (three slots a pixel).
    let row_bytes = u64::from(padded_row_pixels(rect.width)) * 16 * if params.aovs { 3 } else { 1 };
    let max_rows = (max_band_bytes.min(ctx.max_storage_bytes()) / row_bytes)
        .min(u64::from(rect.height)) as u32;
    if max_rows == 0 {
        return Err(Error::SceneTooLarge {
            what: "one accumulator row (the image is too wide)",
            bytes: row_bytes,
            limit: max_band_bytes,
        });
    }
    if max_rows == rect.height {
        return render_band(ctx, params, size, progress);
    }
    let samples = u64::from(params.samples.count);
    let total = rect.pixel_count() * samples;
    let mut pixels = Vec::with_capacity(rect.pixel_count() as usize);
    let mut aovs = params.aovs.then(Vec::new);
    let mut y = 0;
    while y < rect.height {
        let rows = max_rows.min(rect.height - y);
        let band = TileParams {
            tile: TileRect {
                x: rect.x,
                y: rect.y + y,
                width: rect.width,
                height: rows,
            },
            ..*params
        };
        let before = u64::from(y) * u64::from(rect.width) * samples;
        let tile = render_band(ctx, &band, size, &mut |done, _| {
            progress(before + done, total)
        })?;
        pixels.extend(tile.pixels);
        if let (Some(all), Some(band)) = (aovs.as_mut(), tile.aovs) {
            all.extend(band);
        }
        y += rows;
    }
    Ok(Tile {
        rect,
        samples: params.samples.count,
        pixels,
        aovs,
    })
}

fn render_band(
    ctx: &GpuContext,
    params: &TileParams,
    size: DispatchSize,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Tile> {
    let rect = params.tile;
    let variant = ShaderVariant {
        environment: params.environment.is_some(),
        aovs: params.aovs,
        ..params.scene.variant
    };
    ctx.prepare(variant)?;
    let environment = params
        .environment
        .map_or(&ctx.no_environment, |e| &e.bind_group);
    let stride = padded_row_pixels(rect.width);
    let accum_bytes = u64::from(stride) * u64::from(rect.height) * 16;
    let device = &ctx.device;
    let scope_oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let scope_validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let accum = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("accumulator"),
        size: accum_bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size: accum_bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    // Rewritten before each dispatch. A storage buffer, not a uniform: lavapipe would compile a
    // new shader variant per dispatch with the uniform's values inlined (see trace.wgsl).
    let params_buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("params"),
        size: std::mem::size_of::<GpuParams>() as u64,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    // Three slots per accumulator slot when passes are gathered, else a placeholder.
    let aov_bytes = if params.aovs { accum_bytes * 3 } else { 48 };
    let aov = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("compositing passes"),
        size: aov_bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("tile"),
        layout: &ctx.tile_layout,
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: params_buffer.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: accum.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: aov.as_entire_binding(),
            },
        ],
    });

    let cam = &params.scene.camera;
    let aspect = params.image_width as f32 / params.image_height as f32;
    let base = GpuParams {
        cam_pos: [
            cam.position.x,
            cam.position.y,
            cam.position.z,
            (cam.yfov * 0.5).tan(),
        ],
        cam_right: [cam.right.x, cam.right.y, cam.right.z, aspect],
        cam_up: [cam.up.x, cam.up.y, cam.up.z, 0.0],
        cam_fwd: [cam.forward.x, cam.forward.y, cam.forward.z, 0.0],
        background: [
            params.background[0],
            params.background[1],
            params.background[2],
            0.0,
        ],
        image: [params.image_width, params.image_height, rect.x, rect.y],
        tile: [rect.width, rect.height, 0, 0],
        samples: [0, 0, params.max_bounces, stride],
        seed: [
            params.seed as u32,
            (params.seed >> 32) as u32,
            params.frame as u32,
            (params.frame >> 32) as u32,
        ],
        counts: [
            params.scene.light_count,
            params.scene.triangle_count,
            0,
            params.sample_stride.max(1),
        ],
    };
    let total: u64 = rect.pixel_count() * u64::from(params.samples.count);
    let max_samples = match (ctx.integrator, ctx.software) {
        (Integrator::Wavefront, _) => wavefront::MAX_WAVE_SAMPLES,
        (Integrator::Megakernel, true) => cpu_samples_per_dispatch(params.max_bounces),
        (Integrator::Megakernel, false) => u32::MAX,
    };
    // The wavefront integrator's largest wave (a dispatch), and its path buffers, grown as
    // the adaptive dispatch size grows.
    let max_wave = (ctx.integrator == Integrator::Wavefront)
        .then(|| wavefront::wave_capacity(ctx, rect.width, total, params.aovs));
    let mut waves: Option<WaveBuffers> = None;
    let mut done = 0u64;
    let mut samples_done = 0u32;
    let mut dispatches = 0u32;
    while samples_done < params.samples.count {
        let mut budget = match size {
            DispatchSize::Fixed(paths) => paths.max(1),
            DispatchSize::Adaptive => ctx.paths_per_dispatch.load(Ordering::Relaxed).max(1),
        };
        if let Some(max_wave) = max_wave {
            budget = budget.min(max_wave);
        }
        // Planned over sample positions 0..count; position i is sample start + i · stride.
        let remaining = SampleRange {
            start: samples_done,
            count: params.samples.count - samples_done,
        };
        // The first sample chunk of a plan over the remaining samples.
        let chunk: Vec<Dispatch> =
            plan_dispatches(rect.width, rect.height, remaining, budget, max_samples)
                .into_iter()
                .take_while(|d| d.sample_start == remaining.start)
                .collect();
        let Some(first) = chunk.first() else { break };
        let chunk_samples = first.sample_count;
        let started = Instant::now();
        for d in &chunk {
            let mut p = base;
            p.tile[2] = d.row_start;
            p.tile[3] = d.rows;
            p.samples[0] = params.samples.start + d.sample_start * params.sample_stride.max(1);
            p.samples[1] = d.sample_count;
            p.counts[2] = u32::from(samples_done > 0);
            let immediates = ctx.immediates.then_some(bytemuck::bytes_of(&p));
            if immediates.is_none() {
                ctx.queue
                    .write_buffer(&params_buffer, 0, bytemuck::bytes_of(&p));
            }
            let pixels = u64::from(d.rows) * u64::from(rect.width);
            let paths = pixels * u64::from(d.sample_count);
            if let Some(max_wave) = max_wave {
                let waves = WaveBuffers::at_least(ctx, &mut waves, paths, max_wave, params.aovs)?;
                let bindings = WaveBindings {
                    scene: &params.scene.bind_group,
                    tile: &bind_group,
                    environment,
                    immediates,
                };
                let bounces = params.max_bounces;
                wavefront::run_wave(ctx, variant, waves, &bindings, pixels, paths, bounces)?;
            } else {
                let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("trace"),
                });
                {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("trace"),
                        timestamp_writes: None,
                    });
                    pass.set_pipeline(ctx.pipeline(variant)?);
                    pass.set_bind_group(0, &params.scene.bind_group, &[]);
                    pass.set_bind_group(1, &bind_group, &[]);
                    pass.set_bind_group(2, environment, &[]);
                    if let Some(data) = immediates {
                        pass.set_immediates(0, data);
                    }
                    pass.dispatch_workgroups(rect.width.div_ceil(8), d.rows.div_ceil(8), 1);
                }
                ctx.queue.submit([encoder.finish()]);
                // One bounded submit at a time: no watchdog trips, and progress is real.
                ctx.wait()?;
            }
            dispatches += 1;
            done += paths;
            progress(done, total);
        }
        samples_done += chunk_samples;
        if size == DispatchSize::Adaptive {
            let paths = rect.pixel_count() * u64::from(chunk_samples);
            let seconds = started.elapsed().as_secs_f64().max(1e-6);
            let per_dispatch = paths as f64 / chunk.len() as f64;
            // Move towards the target duration, at most ×4 per step.
            let next = (per_dispatch
                * (ctx.dispatch_seconds * chunk.len() as f64 / seconds).min(4.0))
            .clamp(MIN_PATHS_PER_DISPATCH as f64, MAX_PATHS_PER_DISPATCH as f64);
            ctx.paths_per_dispatch.store(next as u64, Ordering::Relaxed);
        }
    }

    tracing::debug!(dispatches, rows = rect.height, "band traced");

    let samples = params.samples.count;
    let n = samples as f32;
    let width = rect.width as usize;
    let per_row = |data: &[[f32; 4]], slots: usize, row: usize| {
        let start = row * stride as usize * slots;
        data[start..start + width * slots].to_vec()
    };
    let accumulated = read_back(ctx, &accum, &staging, accum_bytes)?;
    let mut pixels = Vec::with_capacity(rect.pixel_count() as usize);
    for row in 0..rect.height as usize {
        for px in per_row(&accumulated, 1, row) {
            pixels.push([px[0] / n, px[1] / n, px[2] / n]);
        }
    }
    let aovs = if params.aovs {
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback of the passes"),
            size: aov_bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let data = read_back(ctx, &aov, &staging, aov_bytes)?;
        let mut out = Vec::with_capacity(rect.pixel_count() as usize);
        for row in 0..rect.height as usize {
            for p in per_row(&data, 3, row).chunks_exact(3) {
                out.push(AovPixel {
                    normal: [p[0][0] / n, p[0][1] / n, p[0][2] / n],
                    depth: p[0][3],
                    albedo: [p[1][0] / n, p[1][1] / n, p[1][2] / n],
                    object: p[1][3],
                    material: p[2][0],
                });
            }
        }
        Some(out)
    } else {
        None
    };
    if let Some(e) = pollster::block_on(scope_validation.pop()) {
        return Err(Error::Gpu(format!("validation: {e}")));
    }
    if let Some(e) = pollster::block_on(scope_oom.pop()) {
        return Err(Error::Gpu(format!("out of memory: {e}")));
    }
    Ok(Tile {
        rect,
        samples,
        pixels,
        aovs,
    })
}

/// Copies `buffer` (`bytes` long) through `staging` and returns its contents.
fn read_back(
    ctx: &GpuContext,
    buffer: &wgpu::Buffer,
    staging: &wgpu::Buffer,
    bytes: u64,
) -> Result<Vec<[f32; 4]>> {
    Ok(bytemuck::cast_slice::<u8, [f32; 4]>(&read_bytes(ctx, buffer, staging, bytes)?).to_vec())
}

/// The first `bytes` of `buffer`, copied through `staging` (`MAP_READ | COPY_DST`, at least
/// `bytes` long) once the work submitted before has finished.
pub fn read_bytes(
    ctx: &GpuContext,
    buffer: &wgpu::Buffer,
    staging: &wgpu::Buffer,
    bytes: u64,
) -> Result<Vec<u8>> {
    let mut encoder = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("readback"),
        });
    encoder.copy_buffer_to_buffer(buffer, 0, staging, 0, bytes);
    ctx.queue.submit([encoder.finish()]);
    let slice = staging.slice(..bytes);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    ctx.wait()?;
    rx.recv()
        .map_err(|_| Error::Gpu("readback callback dropped".into()))?
        .map_err(|e| Error::Gpu(format!("map_async: {e}")))?;
    let data = slice
        .get_mapped_range()
        .map_err(|e| Error::Gpu(format!("get_mapped_range: {e}")))?
        .to_vec();
    staging.unmap();
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_match_the_parsed_wgsl_struct() {
        use std::mem::{offset_of, size_of};
        let (size, members) = crate::gpu::layout::tests::wgsl_layout("Params");
        assert_eq!(size as usize, size_of::<GpuParams>());
        let rust = [
            ("cam_pos", offset_of!(GpuParams, cam_pos)),
            ("cam_right", offset_of!(GpuParams, cam_right)),
            ("cam_up", offset_of!(GpuParams, cam_up)),
            ("cam_fwd", offset_of!(GpuParams, cam_fwd)),
            ("background", offset_of!(GpuParams, background)),
            ("image", offset_of!(GpuParams, image)),
            ("tile", offset_of!(GpuParams, tile)),
            ("samples", offset_of!(GpuParams, samples)),
            ("seed", offset_of!(GpuParams, seed)),
            ("counts", offset_of!(GpuParams, counts)),
        ];
        let wgsl: Vec<(&str, usize)> = members
            .iter()
            .map(|(n, o)| (n.as_str(), *o as usize))
            .collect();
        assert_eq!(wgsl, rust);
    }

    fn covered(width: u32, height: u32, samples: SampleRange, budget: u64) {
        let plan = plan_dispatches(width, height, samples, budget, u32::MAX);
        let mut hits = vec![Vec::new(); (width * height) as usize];
        for d in &plan {
            assert!(
                u64::from(d.rows) * u64::from(width) * u64::from(d.sample_count)
                    <= budget.max(u64::from(width))
            );
            for y in d.row_start..d.row_start + d.rows {
                for x in 0..width {
                    let h = &mut hits[(y * width + x) as usize];
                    assert_eq!(d.accumulate, !h.is_empty());
                    h.extend(d.sample_start..d.sample_start + d.sample_count);
                }
            }
        }
        let expect: Vec<u32> = (samples.start..samples.start + samples.count).collect();
        assert!(
            hits.iter().all(|h| *h == expect),
            "every pixel gets every sample once, in order"
        );
    }

    #[test]
    fn dispatches_cover_every_pixel_sample_once_in_order() {
        covered(
            64,
            64,
            SampleRange {
                start: 0,
                count: 100,
            },
            1 << 14,
        );
        covered(37, 23, SampleRange { start: 5, count: 7 }, 100);
        covered(1000, 3, SampleRange { start: 0, count: 3 }, 10);
        covered(1, 1, SampleRange { start: 9, count: 1 }, 1 << 18);
    }

    #[test]
    fn a_software_adapter_takes_few_samples_a_dispatch() {
        assert_eq!(cpu_samples_per_dispatch(4), 6);
        assert_eq!(cpu_samples_per_dispatch(0), 20);
        assert_eq!(cpu_samples_per_dispatch(18), 2);
        assert_eq!(cpu_samples_per_dispatch(24), 1);
        assert_eq!(cpu_samples_per_dispatch(u32::MAX), 1);
        let samples = SampleRange {
            start: 0,
            count: 64,
        };
        let plan = plan_dispatches(8, 8, samples, 1 << 20, cpu_samples_per_dispatch(4));
        assert_eq!(plan.len(), 11);
        assert!(plan.iter().all(|d| d.sample_count <= 6 && d.rows == 8));
        assert_eq!(plan_dispatches(8, 8, samples, 1 << 20, u32::MAX).len(), 1);
    }

    #[test]
    fn rows_pad_to_256_bytes() {
        assert_eq!(padded_row_pixels(1), 16);
        assert_eq!(padded_row_pixels(16), 16);
        assert_eq!(padded_row_pixels(17), 32);
    }
}
