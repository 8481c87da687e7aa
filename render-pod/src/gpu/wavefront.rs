//! The wavefront integrator's host side (kernels: `wavefront.wgsl`, `settle.wgsl`): its
//! pipelines, a band's path buffers, and the passes of one wave. A wave is one
//! [`super::tile::Dispatch`] (rows × samples of a band), one invocation a path, so a small
//! tile still fills a large GPU; its bounces are recorded without reading anything back (the
//! queues size their own indirect dispatches) until [`ROUNDS_PER_SUBMIT`] rounds.

use crate::error::{Error, Result};
use crate::gpu::{GpuContext, ShaderVariant};

/// `vec4` fields a path keeps between kernels (wavefront.wgsl `F_*`), without and with the
/// compositing passes.
const FIELDS: u64 = 10;
const FIELDS_AOVS: u64 = 13;
/// Queue regions (two path queues, two shadow queues), each one wave long.
const QUEUES: u64 = 4;
/// Paths in a wave at most: 2^21 keeps the H200's 270k resident threads busy ~8 times over in
/// ~400 MB of path state, and keeps a 1-D dispatch under the 65,535-workgroup cap.
pub const MAX_WAVE_PATHS: u64 = 1 << 21;
/// Samples of one pixel in a wave at most (the accumulate kernel loops over them; llvmpipe
/// ends loops past 65,535 iterations, see `cpu_samples_per_dispatch`).
pub const MAX_WAVE_SAMPLES: u32 = 4096;
/// Extend/shade/shadow rounds recorded per submit; a path longer than this many bounces costs
/// a readback of the queue counts, to stop once every path has ended.
pub const ROUNDS_PER_SUBMIT: u32 = 16;
const WORKGROUP: u64 = 64;

/// The wavefront kernels of one shader variant.
pub struct WavePipelines {
    generate: wgpu::ComputePipeline,
    extend: wgpu::ComputePipeline,
    shade: wgpu::ComputePipeline,
    shadow: wgpu::ComputePipeline,
    accumulate: wgpu::ComputePipeline,
}

impl WavePipelines {
    pub(crate) fn new(
        device: &wgpu::Device,
        module: &wgpu::ShaderModule,
        layout: &wgpu::PipelineLayout,
        variant: ShaderVariant,
        constants: &[(&str, f64)],
    ) -> Self {
        let make = |entry: &str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&format!("{entry} {variant:?}")),
                layout: Some(layout),
                module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    ..Default::default()
                },
                cache: None,
            })
        };
        WavePipelines {
            generate: make("wave_generate"),
            extend: make("wave_extend"),
            shade: make("wave_shade"),
            shadow: make("wave_shadow"),
            accumulate: make("wave_accumulate"),
        }
    }
}

/// The two bookkeeping kernels (settle.wgsl), the same for every variant.
pub struct Settle {
    layout: wgpu::BindGroupLayout,
    after_shade: wgpu::ComputePipeline,
    after_shadow: wgpu::ComputePipeline,
}

impl Settle {
    pub(crate) fn new(device: &wgpu::Device) -> Self {
        let module = device.create_shader_module(wgpu::include_wgsl!("settle.wgsl"));
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("settle"),
            entries: &[
                super::storage_entry(0, false),
                super::storage_entry(1, false),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("settle"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let make = |entry: &str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        Settle {
            after_shade: make("after_shade"),
            after_shadow: make("after_shadow"),
            layout,
        }
    }
}

/// The layout of the path buffers (group 3 of the wavefront kernels).
pub(crate) fn state_layout(device: &wgpu::Device) -> wgpu::BindGroupLayout {
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("wavefront paths"),
        entries: &[
            super::storage_entry(0, false),
            super::storage_entry(1, false),
            super::storage_entry(2, false),
        ],
    })
}

/// The most paths a wave of a band may hold: [`MAX_WAVE_PATHS`], what the device can bind,
/// and what the band needs, but at least one row.
pub fn wave_capacity(ctx: &GpuContext, width: u32, band_paths: u64, aovs: bool) -> u64 {
    let fields = if aovs { FIELDS_AOVS } else { FIELDS };
    let bindable = ctx.max_storage_bytes() / (fields * 16);
    MAX_WAVE_PATHS
        .min(bindable)
        .min(band_paths)
        .max(u64::from(width))
}

/// A band's path buffers and the bind groups over them.
pub struct WaveBuffers {
    capacity: u64,
    counts: wgpu::Buffer,
    args: wgpu::Buffer,
    staging: wgpu::Buffer,
    state: wgpu::BindGroup,
    settle: wgpu::BindGroup,
}

impl WaveBuffers {
    pub fn new(ctx: &GpuContext, capacity: u64, aovs: bool) -> Result<Self> {
        let fields = if aovs { FIELDS_AOVS } else { FIELDS };
        let device = &ctx.device;
        let buffer = |label: &str, size: u64, usage: wgpu::BufferUsages| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            })
        };
        let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        let paths = buffer("wave paths", capacity * fields * 16, storage);
        let items = buffer("wave queues", capacity * QUEUES * 4, storage);
        let counts = buffer(
            "wave queue counts",
            32,
            storage | wgpu::BufferUsages::COPY_SRC,
        );
        let args = buffer(
            "wave dispatch sizes",
            24,
            storage | wgpu::BufferUsages::INDIRECT,
        );
        let staging = buffer(
            "wave queue counts readback",
            32,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        let state = super::bind_buffers(
            device,
            &ctx.wave_state_layout,
            "wave paths",
            &[&paths, &counts, &items],
        );
        let settle =
            super::bind_buffers(device, &ctx.settle()?.layout, "settle", &[&counts, &args]);
        Ok(WaveBuffers {
            capacity,
            counts,
            args,
            staging,
            state,
            settle,
        })
    }

    /// The buffers in `slot`, replaced by larger ones (twice the paths, up to `max`) unless
    /// they hold `paths`: a band allocates only what its waves use.
    pub fn at_least<'a>(
        ctx: &GpuContext,
        slot: &'a mut Option<WaveBuffers>,
        paths: u64,
        max: u64,
        aovs: bool,
    ) -> Result<&'a WaveBuffers> {
        if slot.as_ref().is_none_or(|b| b.capacity < paths) {
            let capacity = paths.next_power_of_two().min(max).max(paths);
            *slot = Some(WaveBuffers::new(ctx, capacity, aovs)?);
        }
        slot.as_ref()
            .ok_or_else(|| Error::Gpu("no wave buffers".into()))
    }
}

/// What a wave binds besides its path buffers (groups 0–2, as the megakernel's).
pub struct WaveBindings<'a> {
    pub scene: &'a wgpu::BindGroup,
    pub tile: &'a wgpu::BindGroup,
    pub environment: &'a wgpu::BindGroup,
    /// The tile parameters when the kernels read them from immediates.
    pub immediates: Option<&'a [u8]>,
}

fn groups(n: u64) -> u32 {
    n.div_ceil(WORKGROUP) as u32
}

/// Traces one wave of `paths` paths over `pixels` pixels (the tile params already written)
/// through `max_bounces` bounces and adds them to the accumulator; returns once it is done.
pub fn run_wave(
    ctx: &GpuContext,
    variant: ShaderVariant,
    buffers: &WaveBuffers,
    bindings: &WaveBindings,
    pixels: u64,
    paths: u64,
    max_bounces: u32,
) -> Result<()> {
    if paths > buffers.capacity {
        return Err(Error::Gpu(format!(
            "a wave of {paths} paths in buffers for {}",
            buffers.capacity
        )));
    }
    let kernels = ctx.wave_pipelines(variant)?;
    let settle = ctx.settle()?;
    let mut counts = [0u32; 8];
    counts[0] = paths as u32;
    ctx.queue
        .write_buffer(&buffers.counts, 0, bytemuck::cast_slice(&counts));
    let args = [groups(paths), 1, 1, 0, 1, 1];
    ctx.queue
        .write_buffer(&buffers.args, 0, bytemuck::cast_slice(&args));
    // Vertices 0..=max_bounces shade; one more ray collects what the last one's BSDF finds.
    let rounds = max_bounces.saturating_add(2);
    let bind = |pass: &mut wgpu::ComputePass, pipeline: &wgpu::ComputePipeline| {
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, bindings.scene, &[]);
        pass.set_bind_group(1, bindings.tile, &[]);
        pass.set_bind_group(2, bindings.environment, &[]);
        pass.set_bind_group(3, &buffers.state, &[]);
        if let Some(data) = bindings.immediates {
            pass.set_immediates(0, data);
        }
    };
    let mut round = 0u32;
    loop {
        let last = rounds.min(round.saturating_add(ROUNDS_PER_SUBMIT));
        let ended = active_paths_checked(ctx, buffers, round)?;
        submit(ctx, |pass| {
            if round == 0 {
                bind(pass, &kernels.generate);
                pass.dispatch_workgroups(groups(paths), 1, 1);
            }
            if !ended {
                for _ in round..last {
                    bind(pass, &kernels.extend);
                    pass.dispatch_workgroups_indirect(&buffers.args, 0);
                    bind(pass, &kernels.shade);
                    pass.dispatch_workgroups_indirect(&buffers.args, 0);
                    pass.set_pipeline(&settle.after_shade);
                    pass.set_bind_group(0, &buffers.settle, &[]);
                    pass.dispatch_workgroups(1, 1, 1);
                    bind(pass, &kernels.shadow);
                    pass.dispatch_workgroups_indirect(&buffers.args, 12);
                    pass.set_pipeline(&settle.after_shadow);
                    pass.set_bind_group(0, &buffers.settle, &[]);
                    pass.dispatch_workgroups(1, 1, 1);
                }
            }
            if ended || last == rounds {
                bind(pass, &kernels.accumulate);
                pass.dispatch_workgroups(groups(pixels), 1, 1);
            }
        })?;
        if ended || last == rounds {
            return Ok(());
        }
        round = last;
    }
}

/// Records one compute pass, submits it and waits for it: one bounded submit at a time, as
/// the megakernel's.
fn submit(ctx: &GpuContext, record: impl FnOnce(&mut wgpu::ComputePass)) -> Result<()> {
    let mut encoder = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("wave"),
        });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("wave"),
            timestamp_writes: None,
        });
        record(&mut pass);
    }
    ctx.queue.submit([encoder.finish()]);
    ctx.wait()
}

/// Whether every path of the wave has ended before `round` (read back only after the first
/// submit's rounds: most paths end within them).
fn active_paths_checked(ctx: &GpuContext, buffers: &WaveBuffers, round: u32) -> Result<bool> {
    Ok(round > 0 && active_paths(ctx, buffers)? == 0)
}

/// Paths still queued for the next bounce.
fn active_paths(ctx: &GpuContext, buffers: &WaveBuffers) -> Result<u32> {
    let bytes = super::tile::read_bytes(ctx, &buffers.counts, &buffers.staging, 32)?;
    let counts: &[u32] = bytemuck::cast_slice(&bytes);
    Ok(counts[(counts[4] & 1) as usize])
}

#[cfg(test)]
mod tests {
    /// The kernels are parsed and validated on the CPU with naga, appended to trace.wgsl as
    /// the context compiles them.
    #[test]
    fn wavefront_and_settle_kernels_validate_with_naga() {
        use wgpu::naga;
        for (name, source) in [
            ("wavefront", crate::gpu::integrator_wgsl(false)),
            ("wavefront, immediates", crate::gpu::integrator_wgsl(true)),
            ("settle", include_str!("settle.wgsl").to_string()),
        ] {
            let module = naga::front::wgsl::parse_str(&source)
                .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&source)));
            naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::IMMEDIATES,
            )
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&source)));
        }
    }
}
