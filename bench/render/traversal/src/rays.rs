//! The ray sets, each `count` rays from fixed seeds, ordered as a GPU's 32-lane groups would
//! meet them: camera rays by 8×4 pixel blocks (one block a group), secondary rays in the order
//! of the pixels they come from (a wavefront queue, misses compacted away).

use render_pod::bvh::{Bvh, Traverse};
use render_pod::math::{Vec3, vec3};
use render_pod::sampling::{Pcg, basis, cosine_hemisphere, pcg_hash, uniform_triangle};

use crate::scenes::BenchScene;

#[derive(Debug, Clone, Copy)]
pub struct Ray {
    pub origin: Vec3,
    pub dir: Vec3,
    pub tmax: f32,
}

pub struct RaySet {
    pub name: &'static str,
    /// Shadow rays: any hit closer than `tmax` ends the ray.
    pub any_hit: bool,
    pub rays: Vec<Ray>,
}

/// Square image the camera rays cover: `side`² = `count` pixels.
fn side(count: usize) -> u32 {
    let side = (count as f64).sqrt() as u32;
    assert!(
        side as usize * side as usize == count && side.is_multiple_of(8),
        "ray count must be a square of a multiple of 8"
    );
    side
}

/// Pixel of the `i`-th camera ray: 8×4 blocks in row order, lanes in row order inside.
fn pixel(i: u32, side: u32) -> (u32, u32) {
    let (block, lane) = (i / 32, i % 32);
    let blocks_per_row = side / 8;
    (
        (block % blocks_per_row) * 8 + lane % 8,
        (block / blocks_per_row) * 4 + lane / 8,
    )
}

fn rng(set: u32, index: u32, round: u32) -> Pcg {
    Pcg::new(pcg_hash(pcg_hash(pcg_hash(set) ^ index) ^ round))
}

fn camera_ray(scene: &BenchScene, side: u32, i: u32, round: u32) -> Ray {
    let (x, y) = pixel(i, side);
    let mut r = rng(1, i, round);
    let tan_half = (scene.camera.yfov * 0.5).tan();
    let ndc_x = 2.0 * (x as f32 + r.next_f32()) / side as f32 - 1.0;
    let ndc_y = 1.0 - 2.0 * (y as f32 + r.next_f32()) / side as f32;
    let c = &scene.camera;
    let dir = c.forward + c.right * (ndc_x * tan_half) + c.up * (ndc_y * tan_half);
    Ray {
        origin: c.position,
        dir: dir.try_normalize().expect("camera basis"),
        tmax: f32::INFINITY,
    }
}

/// A surface point: where a ray hit, its geometric normal facing the ray, the ray's index.
#[derive(Clone, Copy)]
struct Hit {
    point: Vec3,
    normal: Vec3,
    index: u32,
}

fn hit(scene: &BenchScene, bvh: &Bvh, ray: &Ray, index: u32) -> Option<Hit> {
    let (t, tri) = bvh.intersect(&scene.triangles, ray.origin, ray.dir, ray.tmax)?;
    let [a, b, c] = scene.triangles[tri as usize];
    let n = (b - a).cross(c - a).try_normalize()?;
    let normal = if n.dot(ray.dir) > 0.0 { -n } else { n };
    Some(Hit {
        point: ray.origin + ray.dir * t,
        normal,
        index,
    })
}

/// Scale of the offset that keeps a secondary ray off the surface it leaves.
fn epsilon(scene: &BenchScene) -> f32 {
    let (lo, hi) = scene.bounds();
    1e-5 * (hi - lo).max_element().max(1.0)
}

fn diffuse_ray(h: &Hit, eps: f32, r: &mut Pcg) -> Ray {
    let (t, b) = basis(h.normal);
    let local = cosine_hemisphere(r.next_f32(), r.next_f32());
    Ray {
        origin: h.point + h.normal * eps,
        dir: t * local.x + b * local.y + h.normal * local.z,
        tmax: f32::INFINITY,
    }
}

/// Where shadow rays go: a point on a random emitting triangle, or (a scene without any) a
/// point one scene size above the scene's top, like a sun.
enum LightTarget<'a> {
    Emitters(&'a BenchScene),
    Point(Vec3),
}

impl LightTarget<'_> {
    fn of(scene: &BenchScene) -> LightTarget<'_> {
        if !scene.emitters.is_empty() {
            return LightTarget::Emitters(scene);
        }
        let (lo, hi) = scene.bounds();
        let centre = (lo + hi) * 0.5;
        LightTarget::Point(vec3(centre.x, hi.y + (hi - lo).max_element(), centre.z))
    }

    fn sample(&self, r: &mut Pcg) -> Vec3 {
        match self {
            LightTarget::Point(p) => *p,
            LightTarget::Emitters(scene) => {
                let pick = (r.next_f32() * scene.emitters.len() as f32) as usize;
                let emitter = scene.emitters[pick.min(scene.emitters.len() - 1)];
                let [a, b, c] = scene.triangles[emitter as usize];
                let (b1, b2) = uniform_triangle(r.next_f32(), r.next_f32());
                a * (1.0 - b1 - b2) + b * b1 + c * b2
            }
        }
    }
}

fn shadow_ray(light: &LightTarget, h: &Hit, eps: f32, r: &mut Pcg) -> Ray {
    let origin = h.point + h.normal * eps;
    let to = light.sample(r) - origin;
    let dist = to.length();
    Ray {
        origin,
        dir: to * (1.0 / dist),
        tmax: dist * (1.0 - 1e-3),
    }
}

/// All five sets for `scene`: camera, first diffuse bounce, shadow, later bounces (2nd to
/// 4th, diffuse), random rays through the scene's box.
pub fn ray_sets(scene: &BenchScene, bvh: &Bvh, count: usize) -> Vec<RaySet> {
    let side = side(count);
    let eps = epsilon(scene);
    let light = LightTarget::of(scene);
    let camera: Vec<Ray> = (0..count as u32)
        .map(|i| camera_ray(scene, side, i, 0))
        .collect();
    let (mut diffuse, mut shadow, mut later) = (Vec::new(), Vec::new(), Vec::new());
    // Rounds of one camera sample a pixel until every set is full (or nothing is hit at all).
    for round in 0..64u32 {
        if diffuse.len() >= count && shadow.len() >= count && later.len() >= count {
            break;
        }
        for i in 0..count as u32 {
            let ray = if round == 0 {
                camera[i as usize]
            } else {
                camera_ray(scene, side, i, round)
            };
            let Some(first) = hit(scene, bvh, &ray, i) else {
                continue;
            };
            let mut r = rng(2, first.index, round);
            if shadow.len() < count {
                shadow.push(shadow_ray(&light, &first, eps, &mut r));
            }
            let mut bounce = diffuse_ray(&first, eps, &mut r);
            if diffuse.len() < count {
                diffuse.push(bounce);
            }
            for _ in 2..=4 {
                let Some(next) = hit(scene, bvh, &bounce, i) else {
                    break;
                };
                bounce = diffuse_ray(&next, eps, &mut r);
                if later.len() < count {
                    later.push(bounce);
                }
            }
        }
    }
    let (lo, hi) = scene.bounds();
    let random = (0..count as u32)
        .map(|i| {
            let mut r = rng(3, i, 0);
            let origin = lo + (hi - lo).mul_elem(vec3(r.next_f32(), r.next_f32(), r.next_f32()));
            let z = 1.0 - 2.0 * r.next_f32();
            let phi = std::f32::consts::TAU * r.next_f32();
            let s = (1.0 - z * z).max(0.0).sqrt();
            Ray {
                origin,
                dir: vec3(s * phi.cos(), s * phi.sin(), z),
                tmax: f32::INFINITY,
            }
        })
        .collect();
    vec![
        RaySet {
            name: "camera",
            any_hit: false,
            rays: camera,
        },
        RaySet {
            name: "diffuse",
            any_hit: false,
            rays: diffuse,
        },
        RaySet {
            name: "shadow",
            any_hit: true,
            rays: shadow,
        },
        RaySet {
            name: "later",
            any_hit: false,
            rays: later,
        },
        RaySet {
            name: "random",
            any_hit: false,
            rays: random,
        },
    ]
}
