//! The environment: an equirectangular image (Radiance `.hdr` or OpenEXR) that lights the scene
//! from every direction and is seen where camera rays leave it.
//!
//! Mapping (the one Blender's Environment Texture uses on a glTF scene imported into it, so
//! Cycles references line up): +Y (glTF's up) is the top row, the image's centre column looks
//! along +X, and u grows toward +Z: `u = 0.5 + atan2(z, x) / 2π`, `v = acos(y) / π` (v down
//! from the top row). `rotationDegrees` turns the environment about +Y, counter-clockwise seen
//! from above. Radiance between texel centres is bilinear (wrapping in u).
//!
//! Importance sampling: a piecewise-constant distribution over texels proportional to
//! luminance × sin θ (the solid angle of the texel's row), sampled row then column by inverted
//! CDFs (Pharr, Jakob & Humphreys, PBR 4th ed., 12.5.2). [`Environment::pack`] lays out what
//! `trace.wgsl` reads; [`Environment::pdf`] and [`Environment::sample`] are its CPU mirror.

use std::f32::consts::PI;

use tessera_shard::SceneLimits;
use tessera_shard::contract::EnvironmentSettings;

use crate::error::{Error, Result};
use crate::image_io;
use crate::math::{Vec3, vec3};
use crate::storage::{Bounded, Storage};

/// Words before the texels in [`Environment::pack`]: width, height, cos and sin of the
/// rotation, 1 when the map can be sampled (some texel is bright), three unused.
pub const HEADER_WORDS: usize = 8;

/// Decoded bytes per texel counted against `maxTextureBytes`: RGB and the conditional CDF.
const BYTES_PER_TEXEL: u64 = 16;

#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    pub width: u32,
    pub height: u32,
    /// Rows top to bottom, linear RGB × strength; non-finite and negative values are 0.
    pub texels: Vec<[f32; 3]>,
    /// Radians about +Y.
    pub rotation: f32,
    /// Row probabilities' inclusive CDF (`height` entries, the last 1).
    marginal: Vec<f32>,
    /// Each row's column CDF (`width` entries per row, the last 1).
    conditional: Vec<f32>,
    /// False for an all-black map: nothing to sample.
    sampleable: bool,
}

/// Reads and decodes the environment of `settings` within the scene's budgets.
pub fn load(
    storage: &Storage,
    settings: &EnvironmentSettings,
    limits: &SceneLimits,
) -> Result<Environment> {
    let url = &settings.url;
    let bad = |reason: String| Error::BadScene {
        url: url.clone(),
        reason: format!("environment: {reason}"),
    };
    let bytes = match storage.get_bounded(url, limits.max_scene_bytes) {
        Ok(Some(Bounded::Bytes(bytes))) => bytes,
        Ok(Some(Bounded::TooLarge(size))) => {
            return Err(bad(format!(
                "the file has {size} bytes, over the limit of {} (sceneLimits.maxSceneBytes)",
                limits.max_scene_bytes
            )));
        }
        Ok(None) => return Err(bad("no such file or object".into())),
        Err(Error::BadSpec(reason)) => return Err(bad(reason)),
        Err(e) => return Err(e),
    };
    let (width, height, pixels) = decode(&bytes, limits).map_err(bad)?;
    let environment = Environment::new(
        width,
        height,
        pixels,
        settings.strength,
        settings.rotation_degrees,
    )
    .map_err(bad)?;
    tracing::info!(
        environment = %url,
        width,
        height,
        strength = settings.strength,
        rotation_degrees = settings.rotation_degrees,
        "environment loaded"
    );
    Ok(environment)
}

/// Size checked from the header against the limits, then linear RGB pixels, rows top down.
fn decode(
    bytes: &[u8],
    limits: &SceneLimits,
) -> std::result::Result<(u32, u32, Vec<[f32; 3]>), String> {
    const EXR_MAGIC: [u8; 4] = [0x76, 0x2f, 0x31, 0x01];
    let is_exr = bytes.starts_with(&EXR_MAGIC);
    let reader =
        || image::ImageReader::with_format(std::io::Cursor::new(bytes), image::ImageFormat::Hdr);
    let (width, height) = if is_exr {
        image_io::exr_size(bytes)?
    } else {
        reader()
            .into_dimensions()
            .map_err(|e| format!("not a Radiance .hdr or OpenEXR image: {e}"))?
    };
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_image_pixels {
        return Err(format!(
            "{width}x{height}: {pixels} pixels exceed the limit of {} (sceneLimits.maxImagePixels)",
            limits.max_image_pixels
        ));
    }
    if pixels.saturating_mul(BYTES_PER_TEXEL) > limits.max_texture_bytes {
        return Err(format!(
            "{width}x{height} needs {} bytes decoded, over the limit of {} \
             (sceneLimits.maxTextureBytes)",
            pixels.saturating_mul(BYTES_PER_TEXEL),
            limits.max_texture_bytes
        ));
    }
    if is_exr {
        let image = image_io::decode_exr(bytes).map_err(|e| e.to_string())?;
        return Ok((image.width, image.height, image.pixels));
    }
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(width);
    decoder_limits.max_image_height = Some(height);
    decoder_limits.max_alloc = Some(pixels.saturating_mul(16).saturating_add(1 << 20));
    let mut reader = reader();
    reader.limits(decoder_limits);
    let image = reader
        .decode()
        .map_err(|e| format!("Radiance .hdr: {e}"))?
        .into_rgb32f();
    let texels = image.pixels().map(|p| p.0).collect();
    Ok((width, height, texels))
}

/// `(u, v)` in [0, 1]² of a direction, before rotation.
pub fn direction_to_uv(d: Vec3) -> (f32, f32) {
    let u = 0.5 + d.z.atan2(d.x) / (2.0 * PI);
    let v = d.y.clamp(-1.0, 1.0).acos() / PI;
    (u - u.floor(), v)
}

/// The direction of `(u, v)`, before rotation.
pub fn uv_to_direction(u: f32, v: f32) -> Vec3 {
    let phi = 2.0 * PI * (u - 0.5);
    let theta = PI * v;
    vec3(
        theta.sin() * phi.cos(),
        theta.cos(),
        theta.sin() * phi.sin(),
    )
}

fn luminance(c: [f32; 3]) -> f32 {
    0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]
}

/// Inclusive CDF of `weights`, normalised; uniform when they sum to 0.
fn cdf(weights: &[f64]) -> (Vec<f32>, f64) {
    let total: f64 = weights.iter().sum();
    let n = weights.len();
    let mut out = Vec::with_capacity(n);
    let mut running = 0.0;
    for (i, w) in weights.iter().enumerate() {
        running += w;
        out.push(if total > 0.0 {
            (running / total) as f32
        } else {
            (i + 1) as f32 / n as f32
        });
    }
    if let Some(last) = out.last_mut() {
        *last = 1.0;
    }
    (out, total)
}

/// First index whose inclusive CDF exceeds `u`, and `u`'s place within that bin.
fn invert(cdf: &[f32], u: f32) -> (usize, f32) {
    let i = cdf.partition_point(|&c| c <= u).min(cdf.len() - 1);
    let lo = if i == 0 { 0.0 } else { cdf[i - 1] };
    let width = cdf[i] - lo;
    let within = if width > 0.0 { (u - lo) / width } else { 0.5 };
    (i, within.clamp(0.0, 1.0))
}

impl Environment {
    /// An environment of `pixels` (rows top down) scaled by `strength`.
    pub fn new(
        width: u32,
        height: u32,
        pixels: Vec<[f32; 3]>,
        strength: f32,
        rotation_degrees: f32,
    ) -> std::result::Result<Self, String> {
        if width == 0 || height == 0 || pixels.len() != width as usize * height as usize {
            return Err(format!(
                "a {width}x{height} image with {} pixels",
                pixels.len()
            ));
        }
        if !(strength.is_finite() && strength >= 0.0) {
            return Err(format!(
                "strength {strength} must be finite and non-negative"
            ));
        }
        if !rotation_degrees.is_finite() {
            return Err(format!("rotation {rotation_degrees} must be finite"));
        }
        let clean = |v: f32| {
            if v.is_finite() && v > 0.0 {
                v * strength
            } else {
                0.0
            }
        };
        let texels: Vec<[f32; 3]> = pixels
            .iter()
            .map(|p| [clean(p[0]), clean(p[1]), clean(p[2])])
            .collect();
        let (w, h) = (width as usize, height as usize);
        let mut conditional = Vec::with_capacity(w * h);
        let mut row_weights = Vec::with_capacity(h);
        for (j, row) in texels.chunks(w).enumerate() {
            let sin_theta = (PI * (j as f32 + 0.5) / height as f32).sin();
            let weights: Vec<f64> = row
                .iter()
                .map(|&t| f64::from(luminance(t) * sin_theta))
                .collect();
            let (row_cdf, total) = cdf(&weights);
            conditional.extend(row_cdf);
            row_weights.push(total);
        }
        let (marginal, total) = cdf(&row_weights);
        // A finite total: a map of huge values would make every probability 0 or NaN.
        let sampleable = total > 0.0 && total.is_finite();
        Ok(Environment {
            width,
            height,
            texels,
            rotation: rotation_degrees.to_radians(),
            marginal,
            conditional,
            sampleable,
        })
    }

    /// Whether importance sampling has anything to find (the map is not all black).
    pub fn sampleable(&self) -> bool {
        self.sampleable
    }

    /// What the shader reads: [`HEADER_WORDS`], texels (RGB), the row CDF, the column CDFs.
    pub fn pack(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.packed_len());
        out.extend([
            self.width as f32,
            self.height as f32,
            self.rotation.cos(),
            self.rotation.sin(),
            if self.sampleable { 1.0 } else { 0.0 },
            0.0,
            0.0,
            0.0,
        ]);
        out.extend(self.texels.iter().flatten());
        out.extend(&self.marginal);
        out.extend(&self.conditional);
        out
    }

    /// Words of [`Self::pack`].
    pub fn packed_len(&self) -> usize {
        let texels = self.texels.len();
        HEADER_WORDS + texels * 3 + self.height as usize + texels
    }

    /// The scene direction `d` in the image's frame (the rotation undone).
    fn to_image(&self, d: Vec3) -> Vec3 {
        let (s, c) = self.rotation.sin_cos();
        vec3(c * d.x - s * d.z, d.y, s * d.x + c * d.z)
    }

    fn to_scene(&self, d: Vec3) -> Vec3 {
        let (s, c) = self.rotation.sin_cos();
        vec3(c * d.x + s * d.z, d.y, -s * d.x + c * d.z)
    }

    fn texel_of(&self, u: f32, v: f32) -> (usize, usize) {
        let i = ((u * self.width as f32) as usize).min(self.width as usize - 1);
        let j = ((v * self.height as f32) as usize).min(self.height as usize - 1);
        (i, j)
    }

    fn probability(&self, i: usize, j: usize) -> f32 {
        let w = self.width as usize;
        let row = self.marginal[j] - if j == 0 { 0.0 } else { self.marginal[j - 1] };
        let k = j * w + i;
        let column = self.conditional[k] - if i == 0 { 0.0 } else { self.conditional[k - 1] };
        row * column
    }

    /// Solid-angle density of [`Self::sample`] at the unit direction `d`.
    pub fn pdf(&self, d: Vec3) -> f32 {
        if !self.sampleable {
            return 0.0;
        }
        let local = self.to_image(d);
        let sin_theta = (1.0 - local.y * local.y).max(0.0).sqrt();
        if sin_theta <= 0.0 {
            return 0.0;
        }
        let (u, v) = direction_to_uv(local);
        let (i, j) = self.texel_of(u, v);
        self.probability(i, j) * (self.width * self.height) as f32 / (2.0 * PI * PI * sin_theta)
    }

    /// A direction drawn with density [`Self::pdf`] from two uniform numbers, and that density
    /// (0 when nothing can be drawn).
    pub fn sample(&self, u1: f32, u2: f32) -> (Vec3, f32) {
        if !self.sampleable {
            return (vec3(0.0, 1.0, 0.0), 0.0);
        }
        let w = self.width as usize;
        let (j, dv) = invert(&self.marginal, u1);
        let (i, du) = invert(&self.conditional[j * w..(j + 1) * w], u2);
        let u = (i as f32 + du) / self.width as f32;
        let v = (j as f32 + dv) / self.height as f32;
        let d = self.to_scene(uv_to_direction(u, v));
        (d, self.pdf(d))
    }

    /// Bilinear radiance seen along the unit direction `d`.
    pub fn radiance(&self, d: Vec3) -> [f32; 3] {
        let (u, v) = direction_to_uv(self.to_image(d));
        let (w, h) = (self.width as i64, self.height as i64);
        let x = u * self.width as f32 - 0.5;
        let y = v * self.height as f32 - 0.5;
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let at = |xi: i64, yi: i64| {
            let xi = xi.rem_euclid(w) as usize;
            let yi = yi.clamp(0, h - 1) as usize;
            self.texels[yi * w as usize + xi]
        };
        let (x0, y0) = (x0 as i64, y0 as i64);
        let mut out = [0.0; 3];
        for (k, o) in out.iter_mut().enumerate() {
            let top = at(x0, y0)[k] * (1.0 - fx) + at(x0 + 1, y0)[k] * fx;
            let bottom = at(x0, y0 + 1)[k] * (1.0 - fx) + at(x0 + 1, y0 + 1)[k] * fx;
            *o = top * (1.0 - fy) + bottom * fy;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sky: dim blue above, dark below, and a 2×1-texel sun 5,000 times brighter.
    fn sky(width: u32, height: u32) -> Vec<[f32; 3]> {
        let mut pixels = Vec::new();
        for j in 0..height {
            for i in 0..width {
                let p = if (i == 5 || i == 6) && j == 3 {
                    [5000.0, 4500.0, 4000.0]
                } else if j < height / 2 {
                    [0.3, 0.5, 1.0]
                } else {
                    [0.1, 0.08, 0.05]
                };
                pixels.push(p);
            }
        }
        pixels
    }

    fn sphere_directions(n: usize) -> impl Iterator<Item = (Vec3, f32)> {
        // A midpoint grid in (cos θ, φ): every cell has the same solid angle 4π / n².
        let cell = 4.0 * PI / (n * n) as f32;
        (0..n).flat_map(move |a| {
            (0..n).map(move |b| {
                let y = 1.0 - 2.0 * (a as f32 + 0.5) / n as f32;
                let phi = 2.0 * PI * (b as f32 + 0.5) / n as f32;
                let r = (1.0 - y * y).sqrt();
                (vec3(r * phi.cos(), y, r * phi.sin()), cell)
            })
        })
    }

    #[test]
    fn the_mapping_matches_blenders_environment_texture() {
        // Measured with bpy 5.0.1 (Closest interpolation, one camera ray per direction),
        // directions converted from glTF to Blender axes (x, -z, y).
        let cases = [
            (vec3(1.0, 0.1, -0.2), 0.4668, 0.4727),
            (vec3(-1.0, 0.1, -0.3), 0.0449, 0.4727),
            (vec3(0.2, -0.3, -1.0), 0.2793, 0.5898),
            (vec3(0.1, 0.5, 1.0), 0.7324, 0.3555),
            (vec3(0.3, -0.8, -0.2), 0.4043, 0.8633),
        ];
        for (d, u_blender, v_blender) in cases {
            let (u, v) = direction_to_uv(d.try_normalize().unwrap());
            // Blender's values are texel centres of a 256x128 image.
            assert!(
                (u - u_blender).abs() <= 1.0 / 256.0,
                "{d:?}: u {u} vs {u_blender}"
            );
            assert!(
                (v - v_blender).abs() <= 1.0 / 128.0,
                "{d:?}: v {v} vs {v_blender}"
            );
        }
        for (d, _) in sphere_directions(16) {
            let (u, v) = direction_to_uv(d);
            let back = uv_to_direction(u, v);
            assert!((back - d).length() < 1e-5, "{d:?} -> {back:?}");
        }
    }

    #[test]
    fn the_density_integrates_to_one_and_sampling_follows_it() {
        let env = Environment::new(16, 8, sky(16, 8), 1.0, 37.0).unwrap();
        // A midpoint grid in (u, v): the cell at v has the solid angle sin θ · π/n · 2π/n.
        let n = 1024;
        let mut integral = 0.0f64;
        for a in 0..n {
            for b in 0..n {
                let (u, v) = ((b as f32 + 0.5) / n as f32, (a as f32 + 0.5) / n as f32);
                let dw = (PI * v).sin() * 2.0 * PI * PI / (n * n) as f32;
                integral += f64::from(env.pdf(uv_to_direction(u, v)) * dw);
            }
        }
        assert!((integral - 1.0).abs() < 2e-3, "∫pdf = {integral}");
        // Each sample's reported density is the density at its direction, and samples land in
        // texels as often as their probability says.
        let mut counts = vec![0u32; 16 * 8];
        let n = 200_000;
        let mut rng = crate::sampling::Pcg::new(7);
        for _ in 0..n {
            let (d, pdf) = env.sample(rng.next_f32(), rng.next_f32());
            assert!((d.length() - 1.0).abs() < 1e-4);
            assert!(
                (pdf - env.pdf(d)).abs() <= 1e-3 * pdf,
                "{pdf} vs {}",
                env.pdf(d)
            );
            let (u, v) = direction_to_uv(env.to_image(d));
            let (i, j) = env.texel_of(u, v);
            counts[j * 16 + i] += 1;
        }
        for j in 0..8 {
            for i in 0..16 {
                let expected = env.probability(i, j) * n as f32;
                let got = counts[j * 16 + i] as f32;
                assert!(
                    (got - expected).abs() <= 5.0 * expected.sqrt() + 2.0,
                    "texel {i},{j}: {got} samples, expected {expected}"
                );
            }
        }
        // The sun is most of the light, so most samples go to it.
        let sun = counts[3 * 16 + 5] + counts[3 * 16 + 6];
        assert!(
            sun as f32 > 0.9 * n as f32,
            "{sun} of {n} samples on the sun"
        );
    }

    #[test]
    fn rotation_turns_the_environment_counter_clockwise_seen_from_above() {
        let env = Environment::new(16, 8, sky(16, 8), 1.0, 0.0).unwrap();
        let turned = Environment::new(16, 8, sky(16, 8), 1.0, 90.0).unwrap();
        // Counter-clockwise from above (+Y) takes +X to -Z.
        for (d, _) in sphere_directions(12) {
            let moved = vec3(d.z, d.y, -d.x);
            let (a, b) = (env.radiance(d), turned.radiance(moved));
            for k in 0..3 {
                assert!(
                    (a[k] - b[k]).abs() <= 1e-3 * a[k].max(1.0),
                    "{d:?}: {a:?} vs {b:?}"
                );
            }
        }
    }

    #[test]
    fn radiance_is_bilinear_between_texel_centres_and_wraps() {
        let mut pixels = vec![[0.0; 3]; 4 * 2];
        pixels[0] = [1.0, 2.0, 3.0];
        let env = Environment::new(4, 2, pixels, 2.0, 0.0).unwrap();
        // Texel (0, 0)'s centre: u = 1/8, v = 1/4.
        let centre = uv_to_direction(0.125, 0.25);
        assert_eq!(
            env.radiance(centre).map(|v| (v * 1e4).round() / 1e4),
            [2.0, 4.0, 6.0]
        );
        // Halfway to texel (3, 0) across the seam at u = 0.
        let seam = uv_to_direction(0.0, 0.25);
        let r = env.radiance(seam);
        assert!((r[0] - 1.0).abs() < 1e-4, "{r:?}");
    }

    #[test]
    fn bad_values_are_dark_and_a_black_map_is_not_sampled() {
        let pixels = vec![[f32::NAN, f32::INFINITY, -1.0]; 8];
        let env = Environment::new(4, 2, pixels, 1.0, 0.0).unwrap();
        assert!(env.texels.iter().all(|t| *t == [0.0; 3]));
        assert!(!env.sampleable());
        assert_eq!(env.sample(0.3, 0.6).1, 0.0);
        assert_eq!(env.pdf(vec3(0.0, 0.0, 1.0)), 0.0);
        assert!(Environment::new(4, 2, vec![[1.0; 3]; 7], 1.0, 0.0).is_err());
        assert!(Environment::new(4, 2, vec![[1.0; 3]; 8], f32::NAN, 0.0).is_err());
        assert_eq!(env.pack().len(), env.packed_len());
    }

    #[test]
    fn hdr_and_exr_files_decode_within_the_limits() {
        let pixels = sky(16, 8);
        let exr = image_io::encode_exr(&image_io::RgbImage {
            width: 16,
            height: 8,
            pixels: pixels.clone(),
        })
        .unwrap();
        let limits = SceneLimits::DEFAULT;
        let (w, h, decoded) = decode(&exr, &limits).unwrap();
        assert_eq!((w, h), (16, 8));
        assert_eq!(decoded, pixels);

        let mut hdr = Vec::new();
        let rgb: Vec<image::Rgb<f32>> = pixels.iter().map(|p| image::Rgb(*p)).collect();
        image::codecs::hdr::HdrEncoder::new(&mut hdr)
            .encode(&rgb, 16, 8)
            .unwrap();
        let (w, h, decoded) = decode(&hdr, &limits).unwrap();
        assert_eq!((w, h), (16, 8));
        // RGBE keeps 8 bits of mantissa per channel.
        for (a, b) in decoded.iter().zip(&pixels) {
            for k in 0..3 {
                assert!(
                    (a[k] - b[k]).abs() <= 0.01 * b[0].max(b[1]).max(b[2]),
                    "{a:?} vs {b:?}"
                );
            }
        }

        let small = SceneLimits {
            max_image_pixels: 100,
            ..SceneLimits::DEFAULT
        };
        assert!(decode(&hdr, &small).unwrap_err().contains("maxImagePixels"));
        let tight = SceneLimits {
            max_texture_bytes: 1000,
            ..SceneLimits::DEFAULT
        };
        assert!(
            decode(&exr, &tight)
                .unwrap_err()
                .contains("maxTextureBytes")
        );
        let err = decode(b"P6 not an environment", &limits).unwrap_err();
        assert!(err.contains("not a Radiance .hdr or OpenEXR"), "{err}");
    }
}
