//! Helpers shared by the GPU integration tests: one device per test process, procedural scenes.
#![allow(dead_code)]

use std::sync::OnceLock;
use tessera_shard::SceneLimits;

use render_pod::bvh::Traverse;
use render_pod::gltf_scene::GltfAsset;
use render_pod::gpu::tile::{DispatchSize, Tile, TileParams, render_in_dispatches};
use render_pod::gpu::{GpuContext, GpuEnvironment, GpuScene, layout};
use render_pod::math::{Vec3, vec3};
use render_pod::scene::{Camera, Material, Scene, Triangle};
use tessera_shard::plan::{SampleRange, TileRect};

/// The device for this test process. GPU tests never skip: CI installs lavapipe
/// (`apt-get install -y mesa-vulkan-drivers libvulkan1`), so a missing adapter is a failure.
pub fn ctx() -> &'static GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| {
        GpuContext::new().unwrap_or_else(|e| {
            panic!(
                "GPU tests need a Vulkan adapter and do not skip: {e}. \
                 On CPU-only machines install lavapipe: apt-get install -y mesa-vulkan-drivers libvulkan1"
            )
        })
    })
}

pub const CBOX: &str = include_str!("../scenes/cbox.gltf");

pub fn cbox() -> Scene {
    let asset = GltfAsset::parse(
        "cbox.gltf",
        CBOX.as_bytes(),
        &SceneLimits::DEFAULT,
        &mut |uri, _| Err(render_pod::Error::bad_scene(uri, "no external files")),
    )
    .expect("cbox parses");
    asset.scene_at(0.0, None).expect("cbox flattens")
}

/// `scene` on the device, with the BVH layout the context picks for its adapter.
pub fn upload(scene: &Scene) -> GpuScene {
    upload_with(scene, ctx().bvh_layout)
}

pub fn upload_with(scene: &Scene, bvh: layout::BvhLayout) -> GpuScene {
    let packed = layout::pack(scene, bvh);
    GpuScene::upload(ctx(), &packed, scene.camera.clone()).expect("upload")
}

pub struct Job<'a> {
    pub scene: &'a GpuScene,
    pub width: u32,
    pub height: u32,
    pub max_bounces: u32,
    pub background: [f32; 3],
    pub environment: Option<&'a GpuEnvironment>,
    pub seed: u64,
    pub frame: i64,
}

impl Job<'_> {
    pub fn render(&self, tile: TileRect, samples: SampleRange, paths_per_dispatch: u64) -> Tile {
        let params = TileParams {
            scene: self.scene,
            frame: self.frame,
            image_width: self.width,
            image_height: self.height,
            tile,
            samples,
            max_bounces: self.max_bounces,
            background: self.background,
            environment: self.environment,
            aovs: false,
            sample_stride: 1,
            seed: self.seed,
        };
        render_in_dispatches(
            ctx(),
            &params,
            DispatchSize::Fixed(paths_per_dispatch),
            &mut |_, _| {},
        )
        .expect("render")
    }

    pub fn whole(&self, samples: SampleRange) -> Tile {
        let rect = TileRect {
            x: 0,
            y: 0,
            width: self.width,
            height: self.height,
        };
        self.render(rect, samples, 1 << 20)
    }
}

/// A unit icosphere at the origin in `material`, seen from (0, 0, 3) with `yfov`; no lights.
pub fn sphere_scene(material: Material, yfov: f32) -> Scene {
    Scene {
        triangles: icosphere(1.0, 3, 0),
        materials: vec![material],
        textures: vec![],
        lights: vec![],
        camera: camera(vec3(0.0, 0.0, 3.0), yfov),
    }
}

/// `spp` samples of a whole `width` × `height` frame under a constant grey `background`.
pub fn render_whole(
    scene: &GpuScene,
    (width, height): (u32, u32),
    max_bounces: u32,
    background: f32,
    seed: u64,
    spp: u32,
) -> Tile {
    let job = Job {
        scene,
        width,
        height,
        max_bounces,
        background: [background; 3],
        environment: None,
        seed,
        frame: 0,
    };
    job.whole(SampleRange {
        start: 0,
        count: spp,
    })
}

/// A pixel whose four corner rays all hit the scene: its index, the facet normal its centre
/// ray hits and that ray's direction.
pub struct CoveredPixel {
    pub index: usize,
    pub normal: Vec3,
    pub ray: Vec3,
}

/// The pixels of a `width` × `height` render of `scene` (a square-aspect camera) that lie wholly
/// on its geometry and those that lie wholly off it, from corner rays cast on the CPU.
pub fn classify_pixels(scene: &Scene, (w, h): (u32, u32)) -> (Vec<CoveredPixel>, Vec<usize>) {
    let verts: Vec<_> = scene.triangles.iter().map(|t| t.positions).collect();
    let bvh = render_pod::bvh::build(&verts);
    let cam = &scene.camera;
    let tan = (cam.yfov * 0.5).tan();
    let ray = |x: f32, y: f32| {
        let nx = x / w as f32 * 2.0 - 1.0;
        let ny = 1.0 - y / h as f32 * 2.0;
        (cam.forward + cam.right * (nx * tan) + cam.up * (ny * tan))
            .try_normalize()
            .unwrap()
    };
    let hit = |x: f32, y: f32| bvh.intersect(&verts, cam.position, ray(x, y), f32::INFINITY);
    let (mut covered, mut off) = (Vec::new(), Vec::new());
    for y in 0..h {
        for x in 0..w {
            let corners = [(0., 0.), (1., 0.), (0., 1.), (1., 1.)]
                .map(|(dx, dy)| hit(x as f32 + dx, y as f32 + dy).is_some());
            let index = (y * w + x) as usize;
            if corners.iter().all(|&c| c) {
                let (cx, cy) = (x as f32 + 0.5, y as f32 + 0.5);
                let (_, tri) = hit(cx, cy).expect("the centre of a covered pixel hits");
                let normal = scene.triangles[tri as usize]
                    .cross()
                    .try_normalize()
                    .unwrap();
                covered.push(CoveredPixel {
                    index,
                    normal,
                    ray: ray(cx, cy),
                });
            } else if corners.iter().all(|&c| !c) {
                off.push(index);
            }
        }
    }
    (covered, off)
}

pub fn camera(position: Vec3, yfov: f32) -> Camera {
    Camera {
        name: "test".into(),
        position,
        right: vec3(1.0, 0.0, 0.0),
        up: vec3(0.0, 1.0, 0.0),
        forward: vec3(0.0, 0.0, -1.0),
        yfov,
    }
}

/// The 12 triangles of the cube [-h, h]³, front faces pointing inward.
pub fn inward_cube(h: f32, material: u32) -> Vec<Triangle> {
    let c = |x: f32, y: f32, z: f32| vec3(x * h, y * h, z * h);
    // Each face as 4 corners counter-clockwise seen from OUTSIDE; reversed for inward.
    let faces = [
        [
            c(1., -1., -1.),
            c(1., 1., -1.),
            c(1., 1., 1.),
            c(1., -1., 1.),
        ],
        [
            c(-1., -1., 1.),
            c(-1., 1., 1.),
            c(-1., 1., -1.),
            c(-1., -1., -1.),
        ],
        [
            c(-1., 1., -1.),
            c(-1., 1., 1.),
            c(1., 1., 1.),
            c(1., 1., -1.),
        ],
        [
            c(-1., -1., 1.),
            c(-1., -1., -1.),
            c(1., -1., -1.),
            c(1., -1., 1.),
        ],
        [
            c(-1., -1., 1.),
            c(1., -1., 1.),
            c(1., 1., 1.),
            c(-1., 1., 1.),
        ],
        [
            c(1., -1., -1.),
            c(-1., -1., -1.),
            c(-1., 1., -1.),
            c(1., 1., -1.),
        ],
    ];
    let mut out = Vec::new();
    for [a, b, cc, d] in faces {
        for positions in [[a, cc, b], [a, d, cc]] {
            out.push(Triangle {
                positions,
                normals: None,
                uvs: [[0.0; 2]; 3],
                uvs1: None,
                colors: None,
                material,
                object: 0,
            });
        }
    }
    out
}

/// Icosphere (flat-shaded, outward), `subdivisions` levels.
pub fn icosphere(radius: f32, subdivisions: u32, material: u32) -> Vec<Triangle> {
    let t = (1.0 + 5f32.sqrt()) / 2.0;
    let mut verts: Vec<Vec3> = [
        (-1., t, 0.),
        (1., t, 0.),
        (-1., -t, 0.),
        (1., -t, 0.),
        (0., -1., t),
        (0., 1., t),
        (0., -1., -t),
        (0., 1., -t),
        (t, 0., -1.),
        (t, 0., 1.),
        (-t, 0., -1.),
        (-t, 0., 1.),
    ]
    .iter()
    .map(|&(x, y, z)| vec3(x, y, z).try_normalize().unwrap())
    .collect();
    let mut faces: Vec<[usize; 3]> = vec![
        [0, 11, 5],
        [0, 5, 1],
        [0, 1, 7],
        [0, 7, 10],
        [0, 10, 11],
        [1, 5, 9],
        [5, 11, 4],
        [11, 10, 2],
        [10, 7, 6],
        [7, 1, 8],
        [3, 9, 4],
        [3, 4, 2],
        [3, 2, 6],
        [3, 6, 8],
        [3, 8, 9],
        [4, 9, 5],
        [2, 4, 11],
        [6, 2, 10],
        [8, 6, 7],
        [9, 8, 1],
    ];
    for _ in 0..subdivisions {
        let mut next = Vec::new();
        let mut mid = std::collections::HashMap::new();
        let mut midpoint = |a: usize, b: usize, verts: &mut Vec<Vec3>| {
            *mid.entry((a.min(b), a.max(b))).or_insert_with(|| {
                verts.push(((verts[a] + verts[b]) * 0.5).try_normalize().unwrap());
                verts.len() - 1
            })
        };
        for [a, b, c] in faces {
            let ab = midpoint(a, b, &mut verts);
            let bc = midpoint(b, c, &mut verts);
            let ca = midpoint(c, a, &mut verts);
            next.extend([[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]);
        }
        faces = next;
    }
    faces
        .iter()
        .map(|f| Triangle {
            positions: f.map(|i| verts[i] * radius),
            normals: None,
            uvs: [[0.0; 2]; 3],
            uvs1: None,
            colors: None,
            material,
            object: 0,
        })
        .collect()
}

pub fn diffuse_emitter(albedo: f32, emission: f32) -> Material {
    let mut m = Material::diffuse("furnace", [albedo; 3]);
    m.emissive = [emission; 3];
    m
}

/// Mean and standard error of the mean over pixels, channel 0.
pub fn mean_and_stderr(values: &[f32]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / (n - 1.0);
    (mean, (var / n).sqrt())
}
