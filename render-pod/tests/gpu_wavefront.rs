//! The wavefront integrator against the megakernel (lavapipe in CI; they fail, never skip,
//! without an adapter). Both run the same path steps with the same random numbers, so they
//! must give the same pixels; and the wavefront's own result must not depend on how a tile is
//! cut into waves (queue order, wave size, tiles). The rest of the GPU tests run against the
//! wavefront integrator too: scripts/test.sh runs them again with TESSERA_INTEGRATOR=wavefront.

mod common;

use common::*;
use render_pod::gpu::tile::{DispatchSize, Tile, TileParams, render_in_dispatches};
use render_pod::gpu::{GpuContext, GpuOptions, GpuScene, Integrator, layout};
use render_pod::math::vec3;
use render_pod::scene::{Alpha, Material, Scene};
use tessera_shard::plan::{SampleRange, TileRect, split_evenly};

const WIDTH: u32 = 40;
const HEIGHT: u32 = 32;

fn context(integrator: Integrator) -> GpuContext {
    GpuContext::with(GpuOptions {
        integrator: Some(integrator),
        ..GpuOptions::default()
    })
    .expect("a GPU context")
}

/// The Cornell box with a glass sphere (a volume inside) and a half-transparent BLEND sphere:
/// every branch of a path step (transmission, absorption, stochastic alpha, lights).
fn busy_box() -> Scene {
    let mut scene = cbox();
    let glass = Material {
        metallic: 0.0,
        roughness: 0.1,
        transmission: 1.0,
        ior: 1.5,
        volume: Some([0.8, 0.3, 0.1]),
        ..Material::default()
    };
    let mut veil = Material::diffuse("veil", [0.2, 0.3, 0.9]);
    veil.alpha = Alpha::Blend;
    veil.base_color[3] = 0.4;
    for (material, centre) in [
        (glass, vec3(-0.3, -0.5, 0.2)),
        (veil, vec3(0.35, -0.3, -0.2)),
    ] {
        let index = scene.materials.len() as u32;
        scene.materials.push(material);
        for mut t in icosphere(0.25, 2, index) {
            for p in &mut t.positions {
                *p = *p + centre;
            }
            scene.triangles.push(t);
        }
    }
    scene
}

struct Render<'a> {
    ctx: &'a GpuContext,
    scene: &'a GpuScene,
    aovs: bool,
    max_bounces: u32,
}

impl Render<'_> {
    fn tile(&self, rect: TileRect, samples: SampleRange, size: DispatchSize) -> Tile {
        let params = TileParams {
            scene: self.scene,
            frame: 2,
            image_width: WIDTH,
            image_height: HEIGHT,
            tile: rect,
            samples,
            max_bounces: self.max_bounces,
            background: [0.1, 0.2, 0.3],
            environment: None,
            aovs: self.aovs,
            sample_stride: 1,
            seed: 17,
        };
        render_in_dispatches(self.ctx, &params, size, &mut |_, _| {}).expect("render")
    }

    fn whole(&self, samples: SampleRange, size: DispatchSize) -> Tile {
        let rect = TileRect {
            x: 0,
            y: 0,
            width: WIDTH,
            height: HEIGHT,
        };
        self.tile(rect, samples, size)
    }
}

fn upload_to(ctx: &GpuContext, scene: &Scene) -> GpuScene {
    let packed = layout::pack(scene, ctx.bvh_layout);
    GpuScene::upload(ctx, &packed, scene.camera.clone()).expect("upload")
}

fn bits(tile: &Tile) -> Vec<u32> {
    let mut out: Vec<u32> = tile
        .pixels
        .iter()
        .flat_map(|p| p.map(f32::to_bits))
        .collect();
    for a in tile.aovs.iter().flatten() {
        out.extend(a.normal.map(f32::to_bits));
        out.extend(a.albedo.map(f32::to_bits));
        out.extend([a.depth, a.object, a.material].map(f32::to_bits));
    }
    out
}

/// Same scene, same samples: the megakernel and the wavefront kernels give the same bits,
/// compositing passes included, with long paths (8 bounces, Russian roulette from the third).
#[test]
fn wavefront_and_megakernel_render_the_same_pixels() {
    let (mega, wave) = (
        context(Integrator::Megakernel),
        context(Integrator::Wavefront),
    );
    for (name, scene, aovs) in [
        ("cbox", cbox(), false),
        ("busy box", busy_box(), false),
        ("busy box with passes", busy_box(), true),
    ] {
        let render = |ctx: &GpuContext| {
            let gpu = upload_to(ctx, &scene);
            let job = Render {
                ctx,
                scene: &gpu,
                aovs,
                max_bounces: 8,
            };
            job.whole(SampleRange { start: 3, count: 6 }, DispatchSize::Adaptive)
        };
        let (a, b) = (render(&mega), render(&wave));
        let lit = b
            .pixels
            .iter()
            .filter(|p| p.iter().any(|&v| v > 0.0))
            .count();
        assert!(lit > b.pixels.len() / 2, "{name}: {lit} lit pixels");
        let (a, b) = (bits(&a), bits(&b));
        let differ = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        assert_eq!(differ, 0, "{name}: {differ} of {} values differ", a.len());
    }
}

/// The wavefront's pixels do not depend on the waves: one wave for the frame, waves of 37
/// paths (a part of a row, many queue flushes), 3×2 tiles; and rendering twice repeats them
/// (queue order is whatever the atomics make it).
#[test]
fn wavefront_pixels_do_not_depend_on_waves_or_tiles() {
    let wave = context(Integrator::Wavefront);
    let scene = upload_to(&wave, &busy_box());
    let job = Render {
        ctx: &wave,
        scene: &scene,
        aovs: true,
        max_bounces: 5,
    };
    let samples = SampleRange { start: 0, count: 5 };
    let whole = job.whole(samples, DispatchSize::Fixed(1 << 20));
    assert_eq!(
        bits(&job.whole(samples, DispatchSize::Fixed(37))),
        bits(&whole)
    );
    assert_eq!(
        bits(&job.whole(samples, DispatchSize::Adaptive)),
        bits(&whole)
    );
    let mut stitched = whole.clone();
    for ty in 0..2 {
        for tx in 0..3 {
            let (x, width) = split_evenly(WIDTH, 3, tx);
            let (y, height) = split_evenly(HEIGHT, 2, ty);
            let rect = TileRect {
                x,
                y,
                width,
                height,
            };
            let tile = job.tile(rect, samples, DispatchSize::Fixed(53));
            for row in 0..height {
                for col in 0..width {
                    let from = (row * width + col) as usize;
                    let to = ((y + row) * WIDTH + x + col) as usize;
                    stitched.pixels[to] = tile.pixels[from];
                    stitched.aovs.as_mut().unwrap()[to] = tile.aovs.as_ref().unwrap()[from];
                }
            }
        }
    }
    assert_eq!(bits(&stitched), bits(&whole), "3×2 tiles");
}

/// The setting of hardware adapters, forced on lavapipe: a trusted shader module (no runtime
/// bounds checks, no loop counters) gives the wavefront integrator the same bits as the
/// checked module. The megakernel is never given one (it rendered other pixels under it here:
/// docs/renderer.md, "Trusted shader modules"). Immediates need 160 bytes of them; lavapipe
/// has 128: gpu-run.sh checks them on a GPU.
#[test]
fn trusted_modules_render_the_same_pixels() {
    let scene = busy_box();
    let render = |trusted: bool| {
        let ctx = GpuContext::with(GpuOptions {
            integrator: Some(Integrator::Wavefront),
            trusted_shaders: Some(trusted),
            ..GpuOptions::default()
        })
        .expect("a GPU context");
        assert_eq!(ctx.trusted_shaders, trusted);
        let gpu = upload_to(&ctx, &scene);
        let job = Render {
            ctx: &ctx,
            scene: &gpu,
            aovs: true,
            max_bounces: 6,
        };
        bits(&job.whole(SampleRange { start: 0, count: 4 }, DispatchSize::Fixed(500)))
    };
    assert_eq!(render(true), render(false));
    let megakernel = GpuContext::with(GpuOptions {
        integrator: Some(Integrator::Megakernel),
        trusted_shaders: Some(true),
        ..GpuOptions::default()
    })
    .expect("a GPU context");
    assert!(
        !megakernel.trusted_shaders,
        "the megakernel's module keeps its checks"
    );
}
