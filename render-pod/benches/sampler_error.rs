//! Error against a converged reference at equal sample counts: Owen-scrambled Sobol (the
//! default) against PCG streams, on the Cornell box. Prints figures; asserts nothing.
//!
//!     cargo bench -p render-pod --bench sampler_error
//!
//! 64 × 64 pixels, 3 bounces; the reference is 4,096 samples a pixel (PCG, its own seed); each
//! sampler renders 8 seeds at 16, 64 and 256 samples; RMSE over pixels and channels, mean
//! over the seeds. About 4 minutes on lavapipe with 2 cores.

use render_pod::gltf_scene::GltfAsset;
use render_pod::gpu::tile::{DispatchSize, TileParams, render_in_dispatches};
use render_pod::gpu::{GpuContext, GpuOptions, GpuScene, Sampler, layout};
use render_pod::image_io::rmse;
use render_pod::scene::Scene;
use tessera_shard::SceneLimits;
use tessera_shard::plan::{SampleRange, TileRect};

const SIZE: u32 = 64;
const SEEDS: u64 = 8;

fn cbox() -> Scene {
    let gltf = include_str!("../tests/scenes/cbox.gltf");
    let asset = GltfAsset::parse(
        "cbox.gltf",
        gltf.as_bytes(),
        &SceneLimits::DEFAULT,
        &mut |uri, _| Err(render_pod::Error::bad_scene(uri, "no external files")),
    )
    .expect("cbox parses");
    asset.scene_at(0.0, None).expect("cbox flattens")
}

fn render(ctx: &GpuContext, scene: &Scene, seed: u64, count: u32) -> Vec<[f32; 3]> {
    let packed = layout::pack(scene, ctx.bvh_layout);
    let gpu = GpuScene::upload(ctx, &packed, scene.camera.clone()).expect("upload");
    let params = TileParams {
        scene: &gpu,
        frame: 0,
        image_width: SIZE,
        image_height: SIZE,
        tile: TileRect {
            x: 0,
            y: 0,
            width: SIZE,
            height: SIZE,
        },
        samples: SampleRange { start: 0, count },
        max_bounces: 3,
        background: [0.0; 3],
        environment: None,
        aovs: false,
        sample_stride: 1,
        seed,
    };
    render_in_dispatches(ctx, &params, DispatchSize::Adaptive, &mut |_, _| {})
        .expect("render")
        .pixels
}

fn main() {
    let scene = cbox();
    let sobol = GpuContext::with(GpuOptions {
        sampler: Some(Sampler::Sobol),
        ..GpuOptions::default()
    })
    .expect("GPU context");
    let pcg = GpuContext::with(GpuOptions {
        sampler: Some(Sampler::Pcg),
        ..GpuOptions::default()
    })
    .expect("GPU context");
    println!("adapter: {}", sobol.adapter_label());
    let reference = render(&pcg, &scene, 1_000_000, 4096);
    println!("Cornell box {SIZE}², 3 bounces; RMSE against 4,096 spp, mean of {SEEDS} seeds");
    println!("| spp | Sobol | PCG | Sobol / PCG |");
    println!("|---:|---:|---:|---:|");
    for spp in [16, 64, 256] {
        let error = |ctx: &GpuContext| {
            (1..=SEEDS)
                .map(|seed| rmse(&render(ctx, &scene, seed, spp), &reference))
                .sum::<f64>()
                / SEEDS as f64
        };
        let (s, p) = (error(&sobol), error(&pcg));
        println!("| {spp} | {s:.5} | {p:.5} | {:.3} |", s / p);
    }
}
