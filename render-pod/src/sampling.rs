//! Random numbers and sampling math, the CPU mirror of what `trace.wgsl` does.
//!
//! Determinism (docs/architecture.md §9): the GPU seeds one PCG stream per path from a hash of
//! (seed, frame, pixel x, pixel y, sample index) — see [`path_seed`] — and draws every random
//! number of that path from it in a fixed order. Nothing depends on the tile, the dispatch or
//! the thread that runs the path, so a pixel's samples are the same however the frame is cut.

use crate::math::{Vec3, vec3};

/// PCG-RXS-M-XS 32-bit output permutation of one LCG step (Jarzynski & Olano, JCGT 2020).
pub fn pcg_hash(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// The initial RNG state of one path; `trace.wgsl::path_seed` computes the same value.
pub fn path_seed(seed: u64, frame: i64, x: u32, y: u32, sample: u32) -> u32 {
    let mut h = pcg_hash(seed as u32);
    h = pcg_hash(h ^ (seed >> 32) as u32);
    h = pcg_hash(h ^ frame as u32);
    h = pcg_hash(h ^ (frame >> 32) as u32);
    h = pcg_hash(h ^ x);
    h = pcg_hash(h ^ y);
    pcg_hash(h ^ sample)
}

/// A PCG32 stream (the GPU's `rand()` steps the same way).
#[derive(Debug, Clone)]
pub struct Pcg {
    state: u32,
}

impl Pcg {
    pub fn new(seed: u32) -> Self {
        Pcg { state: seed }
    }
    pub fn next_u32(&mut self) -> u32 {
        self.state = self
            .state
            .wrapping_mul(747_796_405)
            .wrapping_add(2_891_336_453);
        let s = self.state;
        let word = ((s >> ((s >> 28) + 4)) ^ s).wrapping_mul(277_803_737);
        (word >> 22) ^ word
    }
    /// Uniform in [0, 1) with 24 bits.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0)
    }
}

/// Cosine-weighted direction around +Z; pdf = cos θ / π.
pub fn cosine_hemisphere(u1: f32, u2: f32) -> Vec3 {
    let r = u1.sqrt();
    let phi = 2.0 * std::f32::consts::PI * u2;
    vec3(r * phi.cos(), r * phi.sin(), (1.0 - u1).max(0.0).sqrt())
}

/// Uniform barycentrics on a triangle: (b1, b2), b0 = 1 − b1 − b2.
pub fn uniform_triangle(u1: f32, u2: f32) -> (f32, f32) {
    let s = u1.sqrt();
    (1.0 - s, u2 * s)
}

/// Veach's power heuristic with β = 2.
pub fn power_heuristic(pdf_a: f32, pdf_b: f32) -> f32 {
    let (a, b) = (pdf_a * pdf_a, pdf_b * pdf_b);
    if a + b == 0.0 { 0.0 } else { a / (a + b) }
}

/// An orthonormal basis with `n` as +Z (Duff et al., JCGT 2017).
pub fn basis(n: Vec3) -> (Vec3, Vec3) {
    let sign = 1.0f32.copysign(n.z);
    let a = -1.0 / (sign + n.z);
    let b = n.x * n.y * a;
    (
        vec3(1.0 + sign * n.x * n.x * a, sign * b, -sign * n.x),
        vec3(b, sign + n.y * n.y * a, -n.y),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_seeds_differ_per_input_and_are_stable() {
        let a = path_seed(7, 1, 10, 20, 3);
        assert_eq!(a, path_seed(7, 1, 10, 20, 3));
        for other in [
            path_seed(8, 1, 10, 20, 3),
            path_seed(7, 2, 10, 20, 3),
            path_seed(7, 1, 11, 20, 3),
            path_seed(7, 1, 10, 21, 3),
            path_seed(7, 1, 10, 20, 4),
        ] {
            assert_ne!(a, other);
        }
    }

    #[test]
    fn pcg_is_uniform_enough() {
        let mut rng = Pcg::new(path_seed(1, 0, 0, 0, 0));
        let n = 100_000;
        let mut bins = [0u32; 10];
        for _ in 0..n {
            let v = rng.next_f32();
            assert!((0.0..1.0).contains(&v));
            bins[(v * 10.0) as usize] += 1;
        }
        for b in bins {
            assert!((b as f32 - n as f32 / 10.0).abs() < 500.0, "{bins:?}");
        }
    }

    #[test]
    fn basis_is_orthonormal() {
        for n in [
            vec3(0.0, 0.0, 1.0),
            vec3(0.0, 0.0, -1.0),
            vec3(1.0, 2.0, -3.0).try_normalize().unwrap(),
        ] {
            let (t, b) = basis(n);
            assert!(t.dot(n).abs() < 1e-6 && b.dot(n).abs() < 1e-6 && t.dot(b).abs() < 1e-6);
            assert!((t.length() - 1.0).abs() < 1e-6 && (b.length() - 1.0).abs() < 1e-6);
        }
    }
}
