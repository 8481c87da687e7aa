//! The same trees and rays on the GPU: every tree's nodes and triangles uploaded as the render
//! pod's shader reads them, the rays cast by a kernel appended to `trace.wgsl` itself (its
//! `trace_binary` / `trace_wide`), hits compared with the CPU traversal's, rays per second
//! timed. What `bench/render/gpu-run.sh` reports on a GPU machine; on lavapipe here.

use std::time::Instant;

use render_pod::gpu::layout::GpuTriPos;
use render_pod::gpu::tile::read_bytes;
use render_pod::gpu::{GpuContext, TRACE_WGSL, storage_entry};
use render_pod::math::Vec3;
use serde_json::{Value, json};
use wgpu::util::DeviceExt;

use crate::rays::RaySet;
use crate::trees::{Layout, Tree};

/// Appended to trace.wgsl: one ray per invocation, two vec4 a ray (origin, tmax; direction,
/// any hit), the hit triangle's slot (or NO_HIT) out.
const CAST: &str = r#"
@group(3) @binding(0) var<storage, read> cast_rays: array<vec4f>;
@group(3) @binding(1) var<storage, read_write> cast_hits: array<u32>;

@compute @workgroup_size(64, 1, 1)
fn cast_rays_kernel(@builtin(global_invocation_id) gid: vec3u) {
    let i = gid.y * 4194240u + gid.x;
    if (2u * i >= arrayLength(&cast_rays)) {
        return;
    }
    let a = cast_rays[2u * i];
    let b = cast_rays[2u * i + 1u];
    var hit: Hit;
    if (BVH_WIDE) {
        hit = trace_wide(a.xyz, b.xyz, a.w, b.w > 0.5);
    } else {
        hit = trace_binary(a.xyz, b.xyz, a.w, b.w > 0.5);
    }
    cast_hits[i] = hit.tri;
}
"#;

/// Timed casts of each set per tree: the median of this many (after one untimed).
const REPEATS: usize = 3;

pub struct GpuCaster {
    ctx: GpuContext,
    module: wgpu::ShaderModule,
    scene_layout: wgpu::BindGroupLayout,
    io_layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    /// Bound at groups 1 and 2, which the cast kernel does not read.
    empty: wgpu::BindGroup,
}

struct Pipeline {
    pipeline: wgpu::ComputePipeline,
    scene: wgpu::BindGroup,
    /// Leaf order of the tree: slot → original triangle.
    order: Vec<u32>,
}

impl GpuCaster {
    pub fn new() -> Result<GpuCaster, String> {
        let ctx = GpuContext::new().map_err(|e| e.to_string())?;
        let source = format!("{TRACE_WGSL}\n{CAST}");
        let module = ctx
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("trace + cast"),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let device = &ctx.device;
        let layout = |label, entries: &[wgpu::BindGroupLayoutEntry]| {
            device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(label),
                entries,
            })
        };
        let scene_layout = layout(
            "scene",
            &(0..9).map(|b| storage_entry(b, true)).collect::<Vec<_>>(),
        );
        let empty_layout = layout("empty", &[]);
        let io_layout = layout("rays", &[storage_entry(0, true), storage_entry(1, false)]);
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("cast"),
            bind_group_layouts: &[
                Some(&scene_layout),
                Some(&empty_layout),
                Some(&empty_layout),
                Some(&io_layout),
            ],
            immediate_size: 0,
        });
        let empty = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("empty"),
            layout: &empty_layout,
            entries: &[],
        });
        Ok(GpuCaster {
            ctx,
            module,
            scene_layout,
            io_layout,
            pipeline_layout,
            empty,
        })
    }

    pub fn adapter(&self) -> String {
        self.ctx.adapter_label()
    }

    fn buffer(&self, label: &str, contents: &[u8]) -> wgpu::Buffer {
        self.ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            })
    }

    fn pipeline(&self, tree: &Tree, tris: &[[Vec3; 3]]) -> Pipeline {
        let wide = matches!(tree.layout, Layout::Wide(_));
        let pipeline = self
            .ctx
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some("cast"),
                layout: Some(&self.pipeline_layout),
                module: &self.module,
                entry_point: Some("cast_rays_kernel"),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &[("BVH_WIDE", if wide { 1.0 } else { 0.0 })],
                    ..Default::default()
                },
                cache: None,
            });
        let (binary_nodes, wide_nodes, order): (&[u8], &[u8], &[u32]) = match &tree.layout {
            Layout::Binary(b) => (bytemuck::cast_slice(&b.nodes), &[0; 80], &b.order),
            Layout::Wide(w) => (&[0; 32], bytemuck::cast_slice(&w.nodes), &w.order),
        };
        let positions: Vec<GpuTriPos> = order
            .iter()
            .map(|&t| {
                let [a, b, c] = tris[t as usize];
                let v = |p: Vec3| [p.x, p.y, p.z, 0.0];
                GpuTriPos {
                    v0: v(a),
                    e1: v(b - a),
                    e2: v(c - a),
                }
            })
            .collect();
        // Bindings the traversal never reads for opaque triangles (attributes, materials,
        // textures): one zeroed buffer, larger than any record.
        let unused = self.buffer("unused", &[0; 4096]);
        let buffers = [
            self.buffer("nodes", binary_nodes),
            self.buffer("triangle positions", bytemuck::cast_slice(&positions)),
            self.buffer("wide nodes", wide_nodes),
        ];
        let scene_entries: Vec<(u32, &wgpu::Buffer)> = (0..9)
            .map(|b| match b {
                0 => (b, &buffers[0]),
                1 => (b, &buffers[1]),
                8 => (b, &buffers[2]),
                _ => (b, &unused),
            })
            .collect();
        let entries: Vec<wgpu::BindGroupEntry> = scene_entries
            .iter()
            .map(|(binding, buffer)| wgpu::BindGroupEntry {
                binding: *binding,
                resource: buffer.as_entire_binding(),
            })
            .collect();
        let scene = self
            .ctx
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("scene"),
                layout: &self.scene_layout,
                entries: &entries,
            });
        Pipeline {
            pipeline,
            scene,
            order: order.to_vec(),
        }
    }

    /// One cast of every ray of `set`: (hit original triangles or −1; any-hit sets 1/−1,
    /// seconds on the device).
    fn cast(&self, p: &Pipeline, set: &RaySet) -> (Vec<i64>, f64) {
        let rays: Vec<[f32; 4]> = set
            .rays
            .iter()
            .flat_map(|r| {
                let (o, d) = (r.origin, r.dir);
                [
                    [o.x, o.y, o.z, r.tmax.min(3.0e38)],
                    [d.x, d.y, d.z, if set.any_hit { 1.0 } else { 0.0 }],
                ]
            })
            .collect();
        let count = set.rays.len();
        let device = &self.ctx.device;
        let ray_buffer = self.buffer("rays", bytemuck::cast_slice(&rays));
        let hits = self.buffer("hits", &vec![0u8; count * 4]);
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("hits readback"),
            size: (count * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let io = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("rays"),
            layout: &self.io_layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: ray_buffer.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: hits.as_entire_binding(),
                },
            ],
        });
        let groups = count.div_ceil(64) as u32;
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&p.pipeline);
            pass.set_bind_group(0, &p.scene, &[]);
            pass.set_bind_group(1, &self.empty, &[]);
            pass.set_bind_group(2, &self.empty, &[]);
            pass.set_bind_group(3, &io, &[]);
            pass.dispatch_workgroups(groups.min(65_535), groups.div_ceil(65_535), 1);
        }
        let started = Instant::now();
        self.ctx.queue.submit([encoder.finish()]);
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .expect("poll");
        let seconds = started.elapsed().as_secs_f64();
        let bytes = read_bytes(&self.ctx, &hits, &readback, (count * 4) as u64).expect("hits");
        let slots: &[u32] = bytemuck::cast_slice(&bytes);
        let found = slots
            .iter()
            .map(|&slot| match slot {
                u32::MAX => -1,
                _ if set.any_hit => 1,
                _ => i64::from(p.order[slot as usize]),
            })
            .collect();
        (found, seconds)
    }

    /// Rays per second (median of [`REPEATS`]) and the share of hits equal to the CPU's.
    pub fn measure(&self, tree: &Tree, tris: &[[Vec3; 3]], set: &RaySet, cpu: &[i64]) -> Value {
        let pipeline = self.pipeline(tree, tris);
        let (hits, _) = self.cast(&pipeline, set);
        let mut seconds: Vec<f64> = (0..REPEATS).map(|_| self.cast(&pipeline, set).1).collect();
        seconds.sort_by(f64::total_cmp);
        let same = hits.iter().zip(cpu).filter(|(g, c)| g == c).count();
        json!({
            "rays_per_second": (set.rays.len() as f64 / seconds[REPEATS / 2]).round(),
            "agree_with_cpu": same as f64 / hits.len().max(1) as f64,
        })
    }
}
