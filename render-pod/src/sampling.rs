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

/// The hash of a pixel's samples: (seed, frame, x, y); `trace.wgsl::pixel_key` is the same.
pub fn pixel_key(seed: u64, frame: i64, x: u32, y: u32) -> u32 {
    let mut h = pcg_hash(seed as u32);
    h = pcg_hash(h ^ (seed >> 32) as u32);
    h = pcg_hash(h ^ frame as u32);
    h = pcg_hash(h ^ (frame >> 32) as u32);
    h = pcg_hash(h ^ x);
    pcg_hash(h ^ y)
}

/// Laine and Karras's hash as Burley ("Practical hash-based Owen scrambling", JCGT 2020)
/// tunes it: each output bit depends only on the same and lower input bits, so on
/// bit-reversed values it is an Owen scramble.
fn lk_hash(mut x: u32, seed: u32) -> u32 {
    x = x.wrapping_add(seed);
    x ^= x.wrapping_mul(0x6c50_b47c);
    x ^= x.wrapping_mul(0xb82f_1e52);
    x ^= x.wrapping_mul(0xc7af_e638);
    x ^= x.wrapping_mul(0x8d22_f6e6);
    x
}

/// Nested uniform (Owen) scrambling of a 32-bit fixed-point value in [0, 1).
pub fn owen_scramble(x: u32, seed: u32) -> u32 {
    lk_hash(x.reverse_bits(), seed).reverse_bits()
}

/// Sobol's second dimension (direction numbers `v₀ = 2³¹`, `vₖ₊₁ = vₖ ^ (vₖ >> 1)`) without
/// a loop: its bit `31 − j` is the XOR of the index bits `k` whose bits contain `j`'s (Lucas),
/// a superset transform in five shifts.
pub fn sobol_second(index: u32) -> u32 {
    let mut a = index;
    a ^= (a >> 1) & 0x5555_5555;
    a ^= (a >> 2) & 0x3333_3333;
    a ^= (a >> 4) & 0x0f0f_0f0f;
    a ^= (a >> 8) & 0x00ff_00ff;
    a ^= (a >> 16) & 0x0000_ffff;
    a.reverse_bits()
}

fn unit(x: u32) -> f32 {
    (x >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// Owen-scrambled Sobol samples of one path (Burley 2020), keyed by (seed, frame, pixel,
/// sample, dimension): each draw takes the next dimension, shuffles the sample order and
/// scrambles the values with hashes of (pixel key, dimension), so a pixel's first 2ᵏ samples
/// stay stratified in every 1-D and 2-D draw while dimensions stay independent ("padding").
/// `trace.wgsl`'s `sample1`/`sample2` in Sobol mode compute the same numbers.
#[derive(Debug, Clone)]
pub struct Sobol {
    key: u32,
    index: u32,
    dimension: u32,
}

impl Sobol {
    pub fn new(key: u32, sample: u32) -> Self {
        Sobol {
            key,
            index: sample,
            dimension: 0,
        }
    }

    /// The next draw's seed and its shuffled sample index.
    fn next(&mut self) -> (u32, u32) {
        let seed = pcg_hash(self.key ^ pcg_hash(self.dimension));
        self.dimension += 1;
        (seed, owen_scramble(self.index, seed))
    }

    pub fn next_1d(&mut self) -> f32 {
        let (seed, i) = self.next();
        unit(owen_scramble(
            i.reverse_bits(),
            pcg_hash(seed ^ 0x9e37_79b9),
        ))
    }

    pub fn next_2d(&mut self) -> (f32, f32) {
        let (seed, i) = self.next();
        (
            unit(owen_scramble(
                i.reverse_bits(),
                pcg_hash(seed ^ 0x9e37_79b9),
            )),
            unit(owen_scramble(sobol_second(i), pcg_hash(seed ^ 0x85eb_ca6b))),
        )
    }
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

    /// Sobol's second dimension from its direction numbers, one bit at a time.
    fn sobol_second_by_directions(index: u32) -> u32 {
        let (mut x, mut v) = (0u32, 1u32 << 31);
        for k in 0..32 {
            if index >> k & 1 == 1 {
                x ^= v;
            }
            v ^= v >> 1;
        }
        x
    }

    #[test]
    fn sobol_second_dimension_matches_its_direction_numbers() {
        let mut rng = Pcg::new(3);
        for i in (0..4096).chain((0..4096).map(|_| rng.next_u32())) {
            assert_eq!(sobol_second(i), sobol_second_by_directions(i), "index {i}");
        }
    }

    /// Every elementary interval of area 2⁻ᵏ holds exactly one of the first 2ᵏ points: a
    /// (0, k, 2)-net, what Owen scrambling and the index shuffle keep of Sobol's first two
    /// dimensions; and the 1-D draws are stratified in 2ᵏ intervals.
    #[test]
    fn a_pixels_first_samples_are_stratified_in_every_draw() {
        for key in [1u32, 0xdead_beef, pixel_key(7, 3, 10, 20)] {
            for k in 0..=8u32 {
                let n = 1u32 << k;
                // Each path draws a 1-D, a 2-D, a 1-D and a 2-D sample: the third and fourth
                // draws must be as stratified as the first two.
                let draws: Vec<_> = (0..n)
                    .map(|s| {
                        let mut sobol = Sobol::new(key, s);
                        let a = sobol.next_1d();
                        let b = sobol.next_2d();
                        let c = sobol.next_1d();
                        let d = sobol.next_2d();
                        (a, b, c, d)
                    })
                    .collect();
                for one in [
                    draws.iter().map(|d| d.0).collect::<Vec<_>>(),
                    draws.iter().map(|d| d.2).collect(),
                ] {
                    let mut cells: Vec<u32> = one.iter().map(|&u| (u * n as f32) as u32).collect();
                    cells.sort();
                    assert_eq!(
                        cells,
                        (0..n).collect::<Vec<_>>(),
                        "1-D, key {key:#x}, k {k}"
                    );
                }
                for two in [
                    draws.iter().map(|d| d.1).collect::<Vec<_>>(),
                    draws.iter().map(|d| d.3).collect(),
                ] {
                    for a in 0..=k {
                        let (cols, rows) = (1u32 << a, 1u32 << (k - a));
                        let mut cells: Vec<u32> = two
                            .iter()
                            .map(|&(u, v)| {
                                (v * rows as f32) as u32 * cols + (u * cols as f32) as u32
                            })
                            .collect();
                        cells.sort();
                        assert_eq!(
                            cells,
                            (0..n).collect::<Vec<_>>(),
                            "2-D {cols}x{rows}, key {key:#x}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn sobol_draws_differ_by_pixel_dimension_and_sample() {
        let first = |key, sample| Sobol::new(key, sample).next_2d();
        assert_ne!(
            first(pixel_key(7, 3, 10, 20), 0),
            first(pixel_key(7, 3, 11, 20), 0)
        );
        assert_ne!(
            first(pixel_key(7, 3, 10, 20), 0),
            first(pixel_key(7, 4, 10, 20), 0)
        );
        assert_ne!(
            first(pixel_key(7, 3, 10, 20), 0),
            first(pixel_key(7, 3, 10, 20), 1)
        );
        let mut s = Sobol::new(pixel_key(7, 3, 10, 20), 5);
        assert_ne!(s.next_2d(), s.next_2d());
        // Uniform over many pixels: the mean of a draw is 1/2.
        let mean: f64 = (0..20_000u32)
            .map(|x| f64::from(Sobol::new(pixel_key(1, 0, x, 0), 0).next_1d()))
            .sum::<f64>()
            / 20_000.0;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
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
