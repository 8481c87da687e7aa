//! Compositing passes on the GPU (lavapipe in CI): depth and IDs against sample 0's camera ray
//! traced on the CPU, normal and albedo against the surface it hits, and every pass unchanged
//! by tiles (bit for bit) and by sample splits (first-sample passes bit for bit, averaged ones
//! within rounding).

mod common;

use common::*;
use render_pod::bvh::Traverse;
use render_pod::gpu::GpuScene;
use render_pod::gpu::tile::{AovPixel, DispatchSize, Tile, TileParams, render_in_dispatches};
use render_pod::math::Vec3;
use render_pod::passes::{PassSum, channels};
use render_pod::sampling::{Sobol, pixel_key};
use render_pod::scene::Scene;
use tessera_shard::contract::Aov;
use tessera_shard::plan::{SampleRange, TileRect};

const SEED: u64 = 11;
const FRAME: i64 = 2;

fn render(scene: &GpuScene, (w, h): (u32, u32), tile: TileRect, samples: SampleRange) -> Tile {
    let params = TileParams {
        scene,
        frame: FRAME,
        image_width: w,
        image_height: h,
        tile,
        samples,
        max_bounces: 2,
        background: [0.2; 3],
        environment: None,
        aovs: true,
        sample_stride: 1,
        seed: SEED,
    };
    render_in_dispatches(ctx(), &params, DispatchSize::Fixed(97), &mut |_, _| {}).unwrap()
}

fn whole(w: u32, h: u32) -> TileRect {
    TileRect {
        x: 0,
        y: 0,
        width: w,
        height: h,
    }
}

/// Sample 0's camera ray through pixel (x, y), as `trace.wgsl` draws it: the path's first
/// draw of the (default) Sobol sampler.
fn sample_0_ray(scene: &Scene, (w, h): (u32, u32), x: u32, y: u32) -> (Vec3, Vec3) {
    assert_eq!(ctx().sampler, render_pod::gpu::Sampler::Sobol);
    let (jx, jy) = Sobol::new(pixel_key(SEED, FRAME, x, y), 0).next_2d();
    let ndc_x = (x as f32 + jx) / w as f32 * 2.0 - 1.0;
    let ndc_y = 1.0 - (y as f32 + jy) / h as f32 * 2.0;
    let cam = &scene.camera;
    let tan = (cam.yfov * 0.5).tan();
    let aspect = w as f32 / h as f32;
    let d = (cam.forward + cam.right * (ndc_x * tan * aspect) + cam.up * (ndc_y * tan))
        .try_normalize()
        .unwrap();
    (cam.position, d)
}

/// On the Cornell box (flat walls, no normal maps, no textures): each pixel's depth is the
/// distance along its sample-0 camera ray to the first triangle, its object and material IDs
/// are that triangle's, and where every sample's surface is the same wall the mean normal is
/// the wall's normal facing the camera and the mean albedo its base colour. Mutation: the
/// depth from the last sample instead of sample 0 fails at the pixels' edges.
#[test]
fn depth_ids_normal_and_albedo_are_what_the_camera_rays_hit() {
    let scene = cbox();
    let gpu = upload(&scene);
    let size = (40, 32);
    let tile = render(
        &gpu,
        size,
        whole(40, 32),
        SampleRange { start: 0, count: 6 },
    );
    let aovs = tile.aovs.as_ref().expect("passes asked for");
    let verts: Vec<_> = scene.triangles.iter().map(|t| t.positions).collect();
    let bvh = render_pod::bvh::build(&verts);
    let (mut checked_surfaces, mut misses) = (0, 0);
    for y in 0..size.1 {
        for x in 0..size.0 {
            let p: AovPixel = aovs[(y * size.0 + x) as usize];
            let (o, d) = sample_0_ray(&scene, size, x, y);
            let Some((t, tri)) = bvh.intersect(&verts, o, d, f32::INFINITY) else {
                assert_eq!(
                    (p.depth, p.object, p.material),
                    (1e10, 0.0, 0.0),
                    "({x}, {y})"
                );
                misses += 1;
                continue;
            };
            let triangle = &scene.triangles[tri as usize];
            assert!(
                (p.depth - t).abs() <= 1e-4 * t,
                "({x}, {y}): depth {} vs {t}",
                p.depth
            );
            assert_eq!(p.object, triangle.object as f32, "({x}, {y})");
            assert_eq!(p.material, (triangle.material + 1) as f32, "({x}, {y})");
            // A pixel well inside one wall: its corners see the same material and plane.
            let n = triangle.cross().try_normalize().unwrap();
            let facing = if n.dot(d) < 0.0 { n } else { n * -1.0 };
            let same_wall =
                [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)]
                    .iter()
                    .all(|&(dx, dy)| {
                        let cam = &scene.camera;
                        let tan = (cam.yfov * 0.5).tan();
                        let nx = (x as f32 + dx) / size.0 as f32 * 2.0 - 1.0;
                        let ny = 1.0 - (y as f32 + dy) / size.1 as f32 * 2.0;
                        let aspect = size.0 as f32 / size.1 as f32;
                        let dir =
                            (cam.forward + cam.right * (nx * tan * aspect) + cam.up * (ny * tan))
                                .try_normalize()
                                .unwrap();
                        bvh.intersect(&verts, o, dir, f32::INFINITY)
                            .is_some_and(|(_, other)| {
                                let other = &scene.triangles[other as usize];
                                other.material == triangle.material
                                    && other.cross().try_normalize().unwrap().dot(n) > 0.9999
                            })
                    });
            if same_wall {
                let base = scene.materials[triangle.material as usize].base_color;
                for k in 0..3 {
                    let normal = [facing.x, facing.y, facing.z][k];
                    assert!((p.normal[k] - normal).abs() < 1e-4, "({x}, {y}): {p:?}");
                    assert!((p.albedo[k] - base[k]).abs() < 1e-5, "({x}, {y}): {p:?}");
                }
                checked_surfaces += 1;
            }
        }
    }
    assert!(
        checked_surfaces > 500,
        "only {checked_surfaces} pixels inside walls"
    );
    let _ = misses;
}

/// Every pass of a frame cut into tiles equals the whole frame's, bit for bit; cut into
/// sample splits and merged (`PassSum`, as the merge does), depth and IDs are bit-identical
/// (they are sample 0's) and normal and albedo equal within rounding.
#[test]
fn passes_survive_tiles_bit_for_bit_and_sample_splits_within_rounding() {
    let scene = cbox();
    let gpu = upload(&scene);
    let (w, h) = (30u32, 22u32);
    let all = [
        Aov::Depth,
        Aov::Normal,
        Aov::Albedo,
        Aov::ObjectId,
        Aov::MaterialId,
    ];
    let samples = SampleRange { start: 0, count: 6 };
    let reference = render(&gpu, (w, h), whole(w, h), samples);
    let reference_channels = channels(&all, reference.aovs.as_ref().unwrap());

    let merge = |parts: &[(TileRect, SampleRange)]| {
        let mut sum = PassSum::new(&all, w as usize, h as usize);
        for &(rect, range) in parts {
            let tile = render(&gpu, (w, h), rect, range);
            sum.add(rect, range, &channels(&all, tile.aovs.as_ref().unwrap()))
                .unwrap();
        }
        sum.channels(u64::from(samples.count))
    };
    let tiles: Vec<(TileRect, SampleRange)> = [(0, 13), (13, 17)]
        .iter()
        .flat_map(|&(x, width)| {
            [(0, 9), (9, 13)].map(|(y, height)| {
                (
                    TileRect {
                        x,
                        y,
                        width,
                        height,
                    },
                    samples,
                )
            })
        })
        .collect();
    let tiled = merge(&tiles);
    let splits = merge(&[
        (whole(w, h), SampleRange { start: 0, count: 2 }),
        (whole(w, h), SampleRange { start: 2, count: 4 }),
    ]);
    for (k, expected) in reference_channels.iter().enumerate() {
        // Averaged channels of one whole-sample tile are mean · n / n: the same bits.
        let bits = |c: &[f32]| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(tiled[k].name, expected.name);
        assert!(
            bits(&tiled[k].values) == bits(&expected.values),
            "{}: tiles changed it",
            expected.name
        );
        let first_sample = ["Depth.Z", "IndexOB.X", "IndexMA.X"].contains(&expected.name.as_str());
        for (a, b) in splits[k].values.iter().zip(&expected.values) {
            if first_sample {
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "{}: split changed it",
                    expected.name
                );
            } else {
                assert!(
                    (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                    "{}: {a} vs {b}",
                    expected.name
                );
            }
        }
    }
}
