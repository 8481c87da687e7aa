//! Device setup, apart from the work: [`GpuContext`] is built once per process (instance,
//! adapter, device, queue, pipeline); [`GpuScene`] uploads one packed scene; the tile renderer in
//! [`tile`] runs dispatches against both.

pub mod layout;
pub mod tile;
pub mod wavefront;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};

use wgpu::util::DeviceExt;

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::gpu::layout::{BvhLayout, PackedScene};
use crate::scene::Camera;

/// The WGSL source, for CPU-side validation in tests.
pub const TRACE_WGSL: &str = include_str!("trace.wgsl");
/// The wavefront integrator's kernels, appended to [`TRACE_WGSL`].
pub const WAVEFRONT_WGSL: &str = include_str!("wavefront.wgsl");

/// How trace.wgsl declares the kernels' parameters: a read-only storage buffer.
const PARAMS_IN_STORAGE: &str = "@group(1) @binding(0) var<storage, read> params: Params;";

/// The renderer's shader module: the megakernel and the wavefront kernels, their parameters
/// read from immediates (push constants) instead of the storage buffer when `immediates`.
pub fn integrator_wgsl(immediates: bool) -> String {
    let trace = if immediates {
        TRACE_WGSL.replace(PARAMS_IN_STORAGE, "var<immediate> params: Params;")
    } else {
        TRACE_WGSL.to_string()
    };
    format!("{trace}\n{WAVEFRONT_WGSL}")
}

/// What a context is built with; each `None` comes from the environment (`TESSERA_SAMPLER`,
/// `TESSERA_INTEGRATOR`, `TESSERA_SHADER_CHECKS`, `TESSERA_PARAMS`), else the adapter's
/// default.
#[derive(Debug, Clone, Copy, Default)]
pub struct GpuOptions {
    pub sampler: Option<Sampler>,
    pub integrator: Option<Integrator>,
    /// Shader modules without wgpu's runtime checks (see [`trusted_shaders_from`]).
    pub trusted_shaders: Option<bool>,
    /// Kernel parameters as immediates (push constants; see [`immediates_from`]).
    pub immediates: Option<bool>,
}

/// Paths (samples × pixels) in the first dispatch of a context; later dispatches are sized
/// from the measured rate to take about [`GpuContext::dispatch_seconds`].
pub const INITIAL_PATHS_PER_DISPATCH: u64 = 1 << 16;
/// Target duration of one submit on a GPU: well under watchdog budgets (Windows TDR is 2 s;
/// keep ≤ 100–250 ms), long enough to fill the device.
pub const GPU_DISPATCH_SECONDS: f64 = 0.1;
/// Software adapters (lavapipe) have no watchdog and a high per-dispatch cost: larger steps.
pub const CPU_DISPATCH_SECONDS: f64 = 1.0;
/// Samples per pixel a dispatch takes on a software adapter, for paths of `max_bounces`.
///
/// llvmpipe ends every loop of an invocation once all its loops together have run 65,535
/// iterations (`LP_MAX_TGSI_LOOP_ITERATIONS`, "shared between every loop in a shader"),
/// silently, for a whole 8-lane row of invocations at once: a glass sphere rendered at 256
/// samples a dispatch lost 9 % of its light, and so did the background pixels beside it. A
/// dispatch therefore takes only as many samples as keep an invocation's loops within half
/// the limit, counting 400 loop iterations per ray (traversal steps, leaf triangles and stack
/// pops of a deep BVH) and two rays (light and BSDF) per vertex: 6 samples at 4 bounces, 1
/// from 19 bounces on.
pub fn cpu_samples_per_dispatch(max_bounces: u32) -> u32 {
    const LOOP_BUDGET: u32 = 65_535 / 2;
    const ITERATIONS_PER_RAY: u32 = 400;
    let per_path = max_bounces
        .saturating_add(2)
        .saturating_mul(2 * ITERATIONS_PER_RAY);
    (LOOP_BUDGET / per_path.max(1)).max(1)
}

pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    module: wgpu::ShaderModule,
    pipeline_layout: wgpu::PipelineLayout,
    /// One per [`ShaderVariant`], compiled when a scene first needs it.
    pipelines: [OnceLock<wgpu::ComputePipeline>; 32],
    /// The wavefront kernels: group 3 holds the paths between them.
    wave_layout: wgpu::PipelineLayout,
    pub(crate) wave_state_layout: wgpu::BindGroupLayout,
    wave_pipelines: [OnceLock<wavefront::WavePipelines>; 32],
    settle: OnceLock<wavefront::Settle>,
    scene_layout: wgpu::BindGroupLayout,
    tile_layout: wgpu::BindGroupLayout,
    environment_layout: wgpu::BindGroupLayout,
    /// Bound where a render has no environment map (the shader's code for one compiled out).
    pub(crate) no_environment: wgpu::BindGroup,
    /// Current adaptive dispatch size (paths); see [`INITIAL_PATHS_PER_DISPATCH`].
    pub(crate) paths_per_dispatch: AtomicU64,
    /// Target seconds per submit.
    pub dispatch_seconds: f64,
    /// A software adapter (lavapipe): dispatches take few samples
    /// ([`cpu_samples_per_dispatch`]).
    pub software: bool,
    /// The BVH scenes are packed with ([`bvh_layout_from`]).
    pub bvh_layout: BvhLayout,
    /// Where paths' random numbers come from ([`sampler_from`]).
    pub sampler: Sampler,
    /// How paths are traced ([`integrator_from`]).
    pub integrator: Integrator,
    /// The shader module was created without runtime checks ([`trusted_shaders_from`]).
    pub trusted_shaders: bool,
    /// The kernels read their parameters from immediates ([`immediates_from`]).
    pub immediates: bool,
    lost: Arc<Mutex<Option<String>>>,
}

/// The shader's optional code a scene needs (its override constants). A branch no invocation
/// takes still costs its body on lavapipe (8-wide SIMD runs both sides under a mask): ~12 % of
/// the Cornell box's samples/s for the vertex colour fetch. Scenes without the feature get a
/// pipeline with its code compiled out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShaderVariant {
    /// `SCENE_EXTRAS`: vertex colours, `TEXCOORD_1`, texture transforms.
    pub extras: bool,
    /// `SCENE_TRANSMISSION`: a transmissive material.
    pub transmission: bool,
    /// `SCENE_ENVIRONMENT`: an environment map instead of the constant background.
    pub environment: bool,
    /// `SCENE_AOVS`: compositing passes are written.
    pub aovs: bool,
    /// `BVH_WIDE`: the scene's BVH is the compressed 8-wide one.
    pub wide_bvh: bool,
}

impl ShaderVariant {
    fn slot(self) -> usize {
        usize::from(self.extras)
            | (usize::from(self.transmission) << 1)
            | (usize::from(self.environment) << 2)
            | (usize::from(self.aovs) << 3)
            | (usize::from(self.wide_bvh) << 4)
    }

    /// The shader's override constants for this variant.
    fn constants(self, sampler: Sampler) -> [(&'static str, f64); 6] {
        let flag = |on: bool| if on { 1.0 } else { 0.0 };
        [
            ("SCENE_EXTRAS", flag(self.extras)),
            ("SCENE_TRANSMISSION", flag(self.transmission)),
            ("SCENE_ENVIRONMENT", flag(self.environment)),
            ("SCENE_AOVS", flag(self.aovs)),
            ("BVH_WIDE", flag(self.wide_bvh)),
            ("SAMPLER_SOBOL", flag(sampler == Sampler::Sobol)),
        ]
    }
}

/// How paths are traced. Both give the same pixels (tests hold it); they differ in how the
/// work meets the hardware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrator {
    /// One invocation a pixel walks each of its samples' paths to the end (trace.wgsl `main`).
    Megakernel,
    /// One invocation a path, each step a kernel over compacted queues (wavefront.wgsl): the
    /// design GPU path tracers use (Cycles among them); a small tile still fills the device.
    Wavefront,
}

/// `TESSERA_INTEGRATOR` (`wavefront` or `megakernel`) when set, else the wavefront integrator
/// everywhere: it is the design GPUs favour, and on lavapipe it renders 1.2–1.7× the
/// megakernel's samples/s too (docs/renderer.md, "Integrators").
pub fn integrator_from(setting: Option<&str>) -> Result<Integrator> {
    match setting {
        None | Some("wavefront") => Ok(Integrator::Wavefront),
        Some("megakernel") => Ok(Integrator::Megakernel),
        Some(other) => Err(Error::Gpu(format!(
            "TESSERA_INTEGRATOR={other:?}: expected \"wavefront\" or \"megakernel\""
        ))),
    }
}

/// Where a path's random numbers come from (`SAMPLER_SOBOL` in trace.wgsl).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sampler {
    /// Owen-scrambled Sobol (src/sampling.rs `Sobol`): a pixel's samples stratified in every
    /// draw; less error for the same samples (docs/renderer.md, "Samples").
    #[default]
    Sobol,
    /// One PCG stream per path, numbers drawn in a fixed order: for comparison.
    Pcg,
}

/// `TESSERA_SAMPLER` (`sobol`, the default, or `pcg`).
pub fn sampler_from(setting: Option<&str>) -> Result<Sampler> {
    match setting {
        None | Some("sobol") => Ok(Sampler::Sobol),
        Some("pcg") => Ok(Sampler::Pcg),
        Some(other) => Err(Error::Gpu(format!(
            "TESSERA_SAMPLER={other:?}: expected \"sobol\" or \"pcg\""
        ))),
    }
}

/// The BVH layout: `TESSERA_BVH_LAYOUT` (`binary` or `wide`) when set, else the compressed
/// 8-wide tree everywhere: it reads a third of the binary tree's bytes per ray
/// (bench/render/traversal) and renders 1.4–1.5× the binary tree's samples/s on lavapipe too
/// (docs/renderer.md, "BVH layouts"). The binary tree stays for comparison and tests.
pub fn bvh_layout_from(setting: Option<&str>) -> Result<BvhLayout> {
    match setting {
        None | Some("wide") => Ok(BvhLayout::Wide),
        Some("binary") => Ok(BvhLayout::Binary),
        Some(other) => Err(Error::Gpu(format!(
            "TESSERA_BVH_LAYOUT={other:?}: expected \"binary\" or \"wide\""
        ))),
    }
}

/// `TESSERA_SHADER_CHECKS` (`on` or `off`) when set, else off on hardware adapters and on
/// for a software one; always on for the megakernel (under a trusted module it rendered other
/// pixels on lavapipe, the wavefront kernels the same). Off, the module is created trusted:
/// naga adds no clamp to array and buffer indexes and no counter to loops. What the checks would guard is proven by the code
/// (docs/renderer.md, "Trusted shader modules"): the traversal stacks are indexed below
/// `STACK_SIZE` by explicit tests, every loop ends (trees built by the packer, children after
/// their parents; counted loops; paths end after `max_bounces`), and buffer accesses stay
/// bounded by the driver's robust buffer access, which wgpu enables where the device has it.
pub fn trusted_shaders_from(setting: Option<&str>, software: bool) -> Result<bool> {
    match setting {
        None => Ok(!software),
        Some("off") => Ok(true),
        Some("on") => Ok(false),
        Some(other) => Err(Error::Gpu(format!(
            "TESSERA_SHADER_CHECKS={other:?}: expected \"on\" or \"off\""
        ))),
    }
}

/// `TESSERA_PARAMS` (`immediate` or `storage`, the default). Immediates need an adapter with
/// 160 bytes of them (`available`: NVIDIA and AMD have 256, lavapipe 128), so no test here
/// can run them: they stay opt-in until a GPU run (bench/render/gpu-run.sh renders both and
/// compares the images byte for byte) has shown them right and faster. On lavapipe they would
/// be slower anyway: it compiles a new shader variant for every new push-constant value
/// (docs/renderer.md, "Profile").
pub fn immediates_from(setting: Option<&str>, available: bool) -> Result<bool> {
    match setting {
        None => Ok(false),
        Some("immediate") if available => Ok(true),
        Some("immediate") => Err(Error::Gpu(
            "TESSERA_PARAMS=immediate: the adapter has no immediates (push constants) of 160 bytes"
                .into(),
        )),
        Some("storage") => Ok(false),
        Some(other) => Err(Error::Gpu(format!(
            "TESSERA_PARAMS={other:?}: expected \"immediate\" or \"storage\""
        ))),
    }
}

/// A bind group of whole `buffers` at bindings 0, 1, … of `layout`.
pub(crate) fn bind_buffers(
    device: &wgpu::Device,
    layout: &wgpu::BindGroupLayout,
    label: &str,
    buffers: &[&wgpu::Buffer],
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry> = buffers
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupEntry {
            binding: i as u32,
            resource: b.as_entire_binding(),
        })
        .collect();
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries: &entries,
    })
}

/// A compute-stage storage-buffer binding (the only kind the renderer's shader has).
pub fn storage_entry(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

impl GpuContext {
    /// Opens the first high-performance Vulkan adapter and builds the pipeline.
    /// `Error::NoAdapter` when none exists.
    pub fn new() -> Result<Self> {
        Self::with(GpuOptions::default())
    }

    /// [`Self::new`] with what `options` sets, whatever the environment says (tests and
    /// benchmarks compare samplers, integrators and shader settings).
    pub fn with(options: GpuOptions) -> Result<Self> {
        let ctx = pollster::block_on(Self::new_async(options))?;
        // The plain variant at once: a shader that does not compile fails here.
        ctx.prepare(ShaderVariant::default())?;
        Ok(ctx)
    }

    async fn new_async(options: GpuOptions) -> Result<Self> {
        let env = |name: &str| std::env::var(name).ok();
        let sampler = match options.sampler {
            Some(sampler) => sampler,
            None => sampler_from(env("TESSERA_SAMPLER").as_deref())?,
        };
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::VULKAN,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                compatible_surface: None,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        tracing::info!(
            adapter = %info.name,
            backend = ?info.backend,
            device_type = ?info.device_type,
            driver = %info.driver,
            driver_info = %info.driver_info,
            "GPU adapter"
        );
        if info.device_type == wgpu::DeviceType::Cpu
            && std::env::var_os("TESSERA_REQUIRE_HARDWARE_GPU").is_some_and(|v| v == "1")
        {
            return Err(Error::NoAdapter(format!(
                "only a software adapter ({}) is available and TESSERA_REQUIRE_HARDWARE_GPU=1",
                info.name
            )));
        }
        let limits = adapter.limits();
        let software = info.device_type == wgpu::DeviceType::Cpu;
        let integrator = match options.integrator {
            Some(integrator) => integrator,
            None => integrator_from(env("TESSERA_INTEGRATOR").as_deref())?,
        };
        let trusted_shaders = integrator == Integrator::Wavefront
            && match options.trusted_shaders {
                Some(trusted) => trusted,
                None => trusted_shaders_from(env("TESSERA_SHADER_CHECKS").as_deref(), software)?,
            };
        let has_immediates = adapter.features().contains(wgpu::Features::IMMEDIATES)
            && limits.max_immediate_size >= tile::PARAMS_BYTES;
        let immediates = match options.immediates {
            Some(true) if !has_immediates => immediates_from(Some("immediate"), false)?,
            Some(immediates) => immediates,
            None => immediates_from(env("TESSERA_PARAMS").as_deref(), has_immediates)?,
        };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("render-pod"),
                required_features: if immediates {
                    wgpu::Features::IMMEDIATES
                } else {
                    wgpu::Features::empty()
                },
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu(format!("request_device: {e}")))?;
        let lost = Arc::new(Mutex::new(None));
        let lost_flag = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut slot) = lost_flag.lock() {
                *slot = Some(format!("{reason:?}: {message}"));
            }
        });

        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let source = wgpu::ShaderModuleDescriptor {
            label: Some("trace.wgsl + wavefront.wgsl"),
            source: wgpu::ShaderSource::Wgsl(integrator_wgsl(immediates).into()),
        };
        let module = if trusted_shaders {
            // SAFETY: the checks left out guard out-of-range indexes into private arrays and
            // buffers and loops that never end; see `trusted_shaders_from` for why the shader
            // has none (the traversal stacks are indexed under explicit `sp < STACK_SIZE` /
            // `sp > 0` tests; buffer accesses stay under the driver's robust buffer access).
            unsafe {
                device.create_shader_module_trusted(source, wgpu::ShaderRuntimeChecks::unchecked())
            }
        } else {
            device.create_shader_module(source)
        };
        let immediate_size = if immediates { tile::PARAMS_BYTES } else { 0 };
        let scene_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("scene"),
            entries: &(0..9).map(|b| storage_entry(b, true)).collect::<Vec<_>>(),
        });
        let tile_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("tile"),
            // Params (read-only storage, see trace.wgsl for why not a uniform), accumulator,
            // compositing passes.
            entries: &[
                storage_entry(0, true),
                storage_entry(1, false),
                storage_entry(2, false),
            ],
        });
        let environment_layout =
            device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some("environment"),
                entries: &[storage_entry(0, true)],
            });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("trace"),
            bind_group_layouts: &[
                Some(&scene_layout),
                Some(&tile_layout),
                Some(&environment_layout),
            ],
            immediate_size,
        });
        let wave_state_layout = wavefront::state_layout(&device);
        let wave_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("wavefront"),
            bind_group_layouts: &[
                Some(&scene_layout),
                Some(&tile_layout),
                Some(&environment_layout),
                Some(&wave_state_layout),
            ],
            immediate_size,
        });
        let no_environment = environment_bind_group(
            &device,
            &environment_layout,
            &[0.0; crate::environment::HEADER_WORDS],
        );
        if let Some(error) = scope.pop().await {
            return Err(Error::Gpu(format!("shader module or layouts: {error}")));
        }
        let dispatch_seconds = std::env::var("TESSERA_DISPATCH_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&v: &f64| v > 0.0 && v.is_finite())
            .unwrap_or(if info.device_type == wgpu::DeviceType::Cpu {
                CPU_DISPATCH_SECONDS
            } else {
                GPU_DISPATCH_SECONDS
            });
        let bvh_layout = bvh_layout_from(std::env::var("TESSERA_BVH_LAYOUT").ok().as_deref())?;
        tracing::info!(
            ?bvh_layout,
            ?sampler,
            ?integrator,
            trusted_shaders,
            immediates,
            "renderer settings"
        );
        Ok(GpuContext {
            device,
            queue,
            info,
            limits,
            module,
            pipeline_layout,
            pipelines: Default::default(),
            wave_layout,
            wave_state_layout,
            wave_pipelines: Default::default(),
            settle: OnceLock::new(),
            scene_layout,
            tile_layout,
            environment_layout,
            no_environment,
            paths_per_dispatch: AtomicU64::new(INITIAL_PATHS_PER_DISPATCH),
            dispatch_seconds,
            software,
            bvh_layout,
            sampler,
            integrator,
            trusted_shaders,
            immediates,
            lost,
        })
    }

    /// `"name (driver driver_info) backend"`, recorded in shard manifests.
    pub fn adapter_label(&self) -> String {
        format!(
            "{} ({} {}) {:?}",
            self.info.name, self.info.driver, self.info.driver_info, self.info.backend
        )
    }

    /// Compiles the pipelines `variant` needs with this context's integrator unless it was.
    /// A pipeline that fails validation is not kept.
    pub(crate) fn prepare(&self, variant: ShaderVariant) -> Result<()> {
        let constants = variant.constants(self.sampler);
        match self.integrator {
            Integrator::Megakernel => self.compile(&self.pipelines[variant.slot()], || {
                self.device
                    .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(&format!("trace {variant:?}")),
                        layout: Some(&self.pipeline_layout),
                        module: &self.module,
                        entry_point: Some("main"),
                        compilation_options: wgpu::PipelineCompilationOptions {
                            constants: &constants,
                            ..Default::default()
                        },
                        cache: None,
                    })
            }),
            Integrator::Wavefront => {
                self.compile(&self.settle, || wavefront::Settle::new(&self.device))?;
                self.compile(&self.wave_pipelines[variant.slot()], || {
                    wavefront::WavePipelines::new(
                        &self.device,
                        &self.module,
                        &self.wave_layout,
                        variant,
                        &constants,
                    )
                })
            }
        }
    }

    /// Fills `slot` with what `make` creates unless it is full, keeping it only when the
    /// device reported no validation error.
    fn compile<T>(&self, slot: &OnceLock<T>, make: impl FnOnce() -> T) -> Result<()> {
        if slot.get().is_some() {
            return Ok(());
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let made = make();
        if let Some(error) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(format!("pipeline creation failed: {error}")));
        }
        let _ = slot.set(made);
        Ok(())
    }

    /// The wavefront kernels of `variant` (compiled by [`Self::prepare`]).
    pub(crate) fn wave_pipelines(
        &self,
        variant: ShaderVariant,
    ) -> Result<&wavefront::WavePipelines> {
        self.wave_pipelines[variant.slot()]
            .get()
            .ok_or_else(|| Error::Gpu(format!("no wavefront pipelines for {variant:?}")))
    }

    /// The wavefront integrator's bookkeeping kernels (compiled by [`Self::prepare`]).
    pub(crate) fn settle(&self) -> Result<&wavefront::Settle> {
        self.settle
            .get()
            .ok_or_else(|| Error::Gpu("no wavefront settle pipelines".into()))
    }

    /// The pipeline of `variant` (compiled by [`Self::prepare`]).
    pub(crate) fn pipeline(&self, variant: ShaderVariant) -> Result<&wgpu::ComputePipeline> {
        self.pipelines[variant.slot()]
            .get()
            .ok_or_else(|| Error::Gpu(format!("no pipeline for {variant:?}")))
    }

    /// The largest storage buffer this device can bind.
    pub fn max_storage_bytes(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    pub(crate) fn check_lost(&self) -> Result<()> {
        match self.lost.lock().ok().and_then(|slot| slot.clone()) {
            Some(reason) => Err(Error::Gpu(format!("device lost: {reason}"))),
            None => Ok(()),
        }
    }

    pub(crate) fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("poll: {e}")))?;
        self.check_lost()
    }
}

fn environment_bind_group(
    device: &wgpu::Device,
    layout: &wgpu::BindGroupLayout,
    words: &[f32],
) -> wgpu::BindGroup {
    let buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("environment"),
        contents: bytemuck::cast_slice(words),
        usage: wgpu::BufferUsages::STORAGE,
    });
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("environment"),
        layout,
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: buffer.as_entire_binding(),
        }],
    })
}

/// An environment map on the device.
#[derive(Debug)]
pub struct GpuEnvironment {
    pub(crate) bind_group: wgpu::BindGroup,
    pub bytes: u64,
}

impl GpuEnvironment {
    /// Uploads `environment` after checking its size against the device's limits.
    pub fn upload(ctx: &GpuContext, environment: &Environment) -> Result<Self> {
        let bytes = (environment.packed_len() * 4) as u64;
        let limit = ctx.max_storage_bytes();
        if bytes > limit {
            return Err(Error::SceneTooLarge {
                what: "environment map",
                bytes,
                limit,
            });
        }
        let bind_group =
            environment_bind_group(&ctx.device, &ctx.environment_layout, &environment.pack());
        Ok(GpuEnvironment { bind_group, bytes })
    }
}

/// One scene on the device: its buffers, bind group and camera.
#[derive(Debug)]
pub struct GpuScene {
    pub(crate) bind_group: wgpu::BindGroup,
    pub camera: Camera,
    pub triangle_count: u32,
    pub light_count: u32,
    pub bytes: u64,
    /// The shader code it needs.
    pub variant: ShaderVariant,
}

impl GpuScene {
    /// Uploads a packed scene after checking every buffer against the device's limits.
    pub fn upload(ctx: &GpuContext, packed: &PackedScene, camera: Camera) -> Result<Self> {
        let variant = ShaderVariant {
            extras: packed.uses_extras(),
            transmission: packed.uses_transmission(),
            environment: false,
            aovs: false,
            wide_bvh: packed.layout == BvhLayout::Wide,
        };
        let limit = ctx.max_storage_bytes();
        for (what, bytes) in packed.buffer_sizes() {
            if bytes > limit {
                return Err(Error::SceneTooLarge { what, bytes, limit });
            }
        }
        let make = |label: &str, contents: &[u8]| {
            ctx.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(label),
                    contents,
                    usage: wgpu::BufferUsages::STORAGE,
                })
        };
        let buffers = [
            make("bvh nodes", bytemuck::cast_slice(&packed.nodes)),
            make("triangle positions", bytemuck::cast_slice(&packed.tri_pos)),
            make(
                "triangle attributes",
                bytemuck::cast_slice(&packed.tri_attr),
            ),
            make("materials", bytemuck::cast_slice(&packed.materials)),
            make("lights", bytemuck::cast_slice(&packed.lights)),
            make("textures", bytemuck::cast_slice(&packed.textures)),
            make("uv maps", bytemuck::cast_slice(&packed.uv_maps)),
            make("triangle extras", bytemuck::cast_slice(&packed.tri_extra)),
            make("wide bvh nodes", bytemuck::cast_slice(&packed.wide_nodes)),
        ];
        let bind_group = bind_buffers(
            &ctx.device,
            &ctx.scene_layout,
            "scene",
            &buffers.iter().collect::<Vec<_>>(),
        );
        let bytes = packed.buffer_sizes().iter().map(|(_, b)| b).sum();
        tracing::debug!(
            triangles = packed.triangle_count,
            lights = packed.light_count,
            bvh_layout = ?packed.layout,
            bvh_nodes = packed.nodes.len().max(packed.wide_nodes.len()),
            bvh_depth = packed.bvh_depth,
            bvh_sah = packed.bvh_sah_cost,
            bytes,
            "scene uploaded"
        );
        Ok(GpuScene {
            bind_group,
            camera,
            triangle_count: packed.triangle_count,
            light_count: packed.light_count,
            bytes,
            variant,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bvh_layout_sampler_and_integrator_are_wide_sobol_and_wavefront_unless_set_otherwise() {
        assert_eq!(bvh_layout_from(None).unwrap(), BvhLayout::Wide);
        assert_eq!(bvh_layout_from(Some("wide")).unwrap(), BvhLayout::Wide);
        assert_eq!(bvh_layout_from(Some("binary")).unwrap(), BvhLayout::Binary);
        assert_eq!(sampler_from(None).unwrap(), Sampler::Sobol);
        assert_eq!(sampler_from(Some("pcg")).unwrap(), Sampler::Pcg);
        assert!(sampler_from(Some("halton")).is_err());
        assert_eq!(integrator_from(None).unwrap(), Integrator::Wavefront);
        assert_eq!(
            integrator_from(Some("megakernel")).unwrap(),
            Integrator::Megakernel
        );
        assert!(integrator_from(Some("mega")).is_err());
        // Hardware adapters get trusted modules; immediates are asked for.
        assert!(trusted_shaders_from(None, false).unwrap());
        assert!(!trusted_shaders_from(None, true).unwrap());
        assert!(!trusted_shaders_from(Some("on"), false).unwrap());
        assert!(!immediates_from(None, true).unwrap());
        assert!(immediates_from(Some("immediate"), true).unwrap());
        assert!(immediates_from(Some("immediate"), false).is_err());
        let e = bvh_layout_from(Some("quad")).unwrap_err().to_string();
        assert!(
            e.contains("TESSERA_BVH_LAYOUT") && e.contains("quad"),
            "{e}"
        );
    }

    /// The shader is parsed and validated on the CPU with naga (the version wgpu uses).
    #[test]
    fn wgsl_validates_with_naga() {
        use wgpu::naga;
        assert!(super::TRACE_WGSL.contains(super::PARAMS_IN_STORAGE));
        let module = naga::front::wgsl::parse_str(super::TRACE_WGSL).unwrap_or_else(|e| {
            panic!("WGSL parse error:\n{}", e.emit_to_string(super::TRACE_WGSL))
        });
        let mut validator = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        );
        if let Err(e) = validator.validate(&module) {
            panic!(
                "WGSL validation error:\n{}",
                e.emit_to_string(super::TRACE_WGSL)
            );
        }
        assert!(
            module
                .entry_points
                .iter()
                .any(|e| e.name == "main" && e.workgroup_size == [8, 8, 1])
        );
    }
}
