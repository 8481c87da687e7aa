//! The benchmark's scenes: glTF files loaded as render-pod loads them, and a generated scene of
//! overlapping boxes of mixed sizes (large triangles crossing many small ones: what binned SAH
//! handles worst).

use render_pod::math::{Vec3, vec3};
use render_pod::sampling::Pcg;
use render_pod::scene::Camera;
use render_pod::scene_source;
use render_pod::storage::Storage;
use tessera_shard::SceneLimits;

pub struct BenchScene {
    pub name: String,
    pub triangles: Vec<[Vec3; 3]>,
    /// Triangles that emit light: where shadow rays go (none: a point above the scene).
    pub emitters: Vec<u32>,
    pub camera: Camera,
}

impl BenchScene {
    pub fn bounds(&self) -> (Vec3, Vec3) {
        let mut lo = Vec3::splat(f32::INFINITY);
        let mut hi = Vec3::splat(f32::NEG_INFINITY);
        for p in self.triangles.iter().flatten() {
            lo = lo.min(*p);
            hi = hi.max(*p);
        }
        (lo, hi)
    }
}

/// A glTF scene at time 0, seen through its first camera.
pub fn load_gltf(name: &str, path: &str) -> Result<BenchScene, String> {
    let storage = Storage::new().map_err(|e| e.to_string())?;
    let asset =
        scene_source::load(&storage, path, &SceneLimits::DEFAULT).map_err(|e| e.to_string())?;
    let scene = asset.scene_at(0.0, None).map_err(|e| e.to_string())?;
    let emitters = scene
        .triangles
        .iter()
        .enumerate()
        .filter(|(_, t)| scene.materials[t.material as usize].is_emissive())
        .map(|(i, _)| i as u32)
        .collect();
    Ok(BenchScene {
        name: name.to_string(),
        triangles: scene.triangles.iter().map(|t| t.positions).collect(),
        emitters,
        camera: scene.camera,
    })
}

/// `count` axis-aligned boxes (12 triangles each) in a 10-unit cube: edge lengths
/// log-uniform from 0.01 to 4 per axis, so slabs, rods and cubes of every size overlap.
pub fn boxes(count: usize, seed: u32) -> BenchScene {
    let mut rng = Pcg::new(seed);
    let mut triangles = Vec::with_capacity(count * 12);
    for _ in 0..count {
        let size = Vec3::from_array(std::array::from_fn(|_| 0.01 * 400f32.powf(rng.next_f32())));
        let centre = vec3(rng.next_f32(), rng.next_f32(), rng.next_f32()) * 10.0;
        let (lo, hi) = (centre - size * 0.5, centre + size * 0.5);
        let corner = |i: usize| {
            vec3(
                if i & 1 == 0 { lo.x } else { hi.x },
                if i & 2 == 0 { lo.y } else { hi.y },
                if i & 4 == 0 { lo.z } else { hi.z },
            )
        };
        // Two triangles per face, faces given by their four corners.
        for [a, b, c, d] in [
            [0, 2, 6, 4],
            [1, 5, 7, 3],
            [0, 4, 5, 1],
            [2, 3, 7, 6],
            [0, 1, 3, 2],
            [4, 6, 7, 5],
        ] {
            triangles.push([corner(a), corner(b), corner(c)]);
            triangles.push([corner(a), corner(c), corner(d)]);
        }
    }
    let position = vec3(5.0, 6.0, -9.0);
    let forward = (vec3(5.0, 5.0, 5.0) - position).try_normalize().unwrap();
    let right = forward.cross(vec3(0.0, 1.0, 0.0)).try_normalize().unwrap();
    BenchScene {
        name: "boxes".into(),
        triangles,
        emitters: Vec::new(),
        camera: Camera {
            name: "bench".into(),
            position,
            right,
            up: right.cross(forward),
            forward,
            yfov: 1.0,
        },
    }
}
