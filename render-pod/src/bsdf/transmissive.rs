//! Materials with KHR_materials_transmission (with KHR_materials_ior and _volume): smooth and
//! rough glass, and thin-walled transmission. CPU mirror of `trace.wgsl`'s `glass_*` functions.
//!
//! glTF's layering `mix(dielectric, metal, metallic)`, the dielectric being
//! `F·specular_brdf + (1 − F)·mix(diffuse, specular_btdf·baseColor, transmission)`. Here `F` is
//! the exact dielectric Fresnel of the microfacet normal times `specular` (not Schlick's: total
//! internal reflection has to come out of it, and Cycles' glass uses the exact one); the
//! reflection is not tinted by `specularColor`. The BTDF is GGX microfacet transmission (Walter
//! et al. 2007) with the height-correlated Smith G2 of the reflection; radiance is divided by η²
//! on crossing into a medium η times as dense (pbrt-v4's convention), so a path that goes in and
//! out again keeps its energy. Thin-walled (no volume): the transmitted ray is the reflected
//! one mirrored through the surface, weighted by (1 − F), so a smooth sheet passes light
//! straight through.
//!
//! The metal, microfacet and diffuse lobes are picked with probabilities that depend on `wo`
//! only; within the microfacet lobe, reflection or transmission by the Fresnel of the sampled
//! microfacet (as pbrt-v4 does). The pdf is the mixture's, so `eval`, `pdf` and `sample` agree
//! and MIS works as for opaque materials. Directions are in the shading frame, `wo.z > 0`; a transmitted `wi` has
//! `wi.z < 0`.

use std::f32::consts::PI;

use super::{BsdfParams, alpha, ggx_d, luminance, sample_vndf, smith_g1, smith_visibility};
use crate::math::{Vec3, vec3};
use crate::sampling::cosine_hemisphere;

/// Exact Fresnel reflectance of light arriving at cosine `cos_i` on an interface whose far side
/// has `eta` times the index of the near side; 1 beyond the critical angle.
pub fn fresnel_dielectric(cos_i: f32, eta: f32) -> f32 {
    let cos_i = cos_i.clamp(0.0, 1.0);
    let sin2_t = (1.0 - cos_i * cos_i) / (eta * eta);
    if sin2_t >= 1.0 {
        return 1.0;
    }
    let cos_t = (1.0 - sin2_t).sqrt();
    let rs = (cos_i - eta * cos_t) / (cos_i + eta * cos_t);
    let rp = (eta * cos_i - cos_t) / (eta * cos_i + cos_t);
    0.5 * (rs * rs + rp * rp)
}

/// The index across the surface relative to `wo`'s side.
pub fn eta(p: &BsdfParams) -> f32 {
    if p.thin || p.entering {
        p.ior
    } else {
        1.0 / p.ior
    }
}

/// Transmission goes straight on, as through a thin sheet: thin-walled, or an IOR of 1 (where
/// a refraction's half vector is undefined: `wo + wi` vanishes).
pub fn passes_straight(p: &BsdfParams) -> bool {
    p.thin || (p.ior - 1.0).abs() < 1e-3
}

/// `wo` refracted through the microfacet `h` into a medium `eta` times as dense; `None` on total
/// internal reflection.
pub fn refract(wo: Vec3, h: Vec3, eta: f32) -> Option<Vec3> {
    let cos_i = wo.dot(h);
    let sin2_t = (1.0 - cos_i * cos_i).max(0.0) / (eta * eta);
    if sin2_t >= 1.0 {
        return None;
    }
    let cos_t = (1.0 - sin2_t).sqrt();
    Some(-wo / eta + h * (cos_i / eta - cos_t))
}

/// Probabilities of sampling the metal, the dielectric's microfacets (reflecting or
/// transmitting, as [`reflect_share`] says for the microfacet sampled) and the diffuse lobe.
pub fn lobe_probabilities(p: &BsdfParams, wo_z: f32) -> [f32; 3] {
    let f = p.specular * fresnel_dielectric(wo_z, eta(p));
    let dielectric = 1.0 - p.metallic;
    let base = luminance(p.base_color);
    let weights = [
        p.metallic,
        dielectric * (f + (1.0 - f) * p.transmission * base),
        dielectric * (1.0 - f) * (1.0 - p.transmission) * base,
    ];
    let sum: f32 = weights.iter().sum();
    if sum <= 0.0 {
        return [0.0; 3];
    }
    weights.map(|w| w / sum)
}

/// Of the microfacet lobe, the share that reflects off microfacet `h`; the rest is
/// transmitted. Chosen after `h` is sampled, by its own Fresnel: near grazing angles a rough
/// surface's tilted microfacets transmit much more than the macro surface's Fresnel says, and
/// choosing by the latter made those paths rare and heavy (a dark rim at 64 spp).
pub fn reflect_share(p: &BsdfParams, wo: Vec3, h: Vec3) -> f32 {
    let f = p.specular * fresnel_dielectric(wo.dot(h), eta(p));
    let t = (1.0 - f) * p.transmission * luminance(p.base_color);
    if f + t <= 0.0 { 1.0 } else { f / (f + t) }
}

/// The half vector of a refraction from `wo` to `wi` (facing `wo`'s side) and its cosines with
/// both, if the pair can refract through it.
fn refraction_half(wo: Vec3, wi: Vec3, eta: f32) -> Option<(Vec3, f32, f32)> {
    let mut h = (wo + wi * eta).try_normalize()?;
    if h.z < 0.0 {
        h = -h;
    }
    let (o_h, i_h) = (wo.dot(h), wi.dot(h));
    (o_h > 0.0 && i_h < 0.0).then_some((h, o_h, i_h))
}

/// BSDF value f(wo, wi), without the cosine.
pub fn eval(p: &BsdfParams, wo: Vec3, wi: Vec3) -> Vec3 {
    if wo.z <= 0.0 || wi.z == 0.0 {
        return Vec3::ZERO;
    }
    let a = alpha(p.roughness);
    let eta = eta(p);
    let dielectric = 1.0 - p.metallic;
    if wi.z > 0.0 {
        let Some(h) = (wo + wi).try_normalize() else {
            return Vec3::ZERO;
        };
        let v_dot_h = wo.dot(h).clamp(0.0, 1.0);
        let spec = ggx_d(h.z, a) * smith_visibility(wi.z, wo.z, a);
        let fw = (1.0 - v_dot_h).powi(5);
        let metal = (p.base_color + (Vec3::splat(1.0) - p.base_color) * fw) * spec;
        let f = p.specular * fresnel_dielectric(v_dot_h, eta);
        let diffuse = p.base_color * ((1.0 - f) * (1.0 - p.transmission) / PI);
        return metal * p.metallic + (Vec3::splat(f * spec) + diffuse) * dielectric;
    }
    let tint = p.base_color * (dielectric * p.transmission);
    if passes_straight(p) {
        let mirrored = vec3(wi.x, wi.y, -wi.z);
        let Some(h) = (wo + mirrored).try_normalize() else {
            return Vec3::ZERO;
        };
        let f = p.specular * fresnel_dielectric(wo.dot(h), eta);
        return tint * ((1.0 - f) * ggx_d(h.z, a) * smith_visibility(mirrored.z, wo.z, a));
    }
    let Some((h, o_h, i_h)) = refraction_half(wo, wi, eta) else {
        return Vec3::ZERO;
    };
    let f = p.specular * fresnel_dielectric(o_h, eta);
    let g2 = 4.0 * wo.z * -wi.z * smith_visibility(-wi.z, wo.z, a);
    let denom = i_h + o_h / eta;
    let ft = ggx_d(h.z, a) * g2 * (1.0 - f) * (i_h * o_h).abs()
        / (wo.z * -wi.z * denom * denom * eta * eta);
    tint * ft
}

/// Mixture pdf (solid angle) of [`sample`] producing `wi`.
pub fn pdf(p: &BsdfParams, wo: Vec3, wi: Vec3) -> f32 {
    if wo.z <= 0.0 || wi.z == 0.0 {
        return 0.0;
    }
    let [metal, microfacet, diffuse] = lobe_probabilities(p, wo.z);
    let a = alpha(p.roughness);
    // Of the visible normals, those that reflect `wo` into `wr`, per solid angle of `wr`.
    let reflection = |wr: Vec3| {
        let h = (wo + wr).try_normalize()?;
        Some((h, ggx_d(h.z, a) * smith_g1(wo.z, a) / (4.0 * wo.z)))
    };
    if wi.z > 0.0 {
        let Some((h, pdf)) = reflection(wi) else {
            return 0.0;
        };
        return (metal + microfacet * reflect_share(p, wo, h)) * pdf + diffuse * wi.z / PI;
    }
    if passes_straight(p) {
        let Some((h, pdf)) = reflection(vec3(wi.x, wi.y, -wi.z)) else {
            return 0.0;
        };
        return microfacet * (1.0 - reflect_share(p, wo, h)) * pdf;
    }
    let eta = eta(p);
    let Some((h, o_h, i_h)) = refraction_half(wo, wi, eta) else {
        return 0.0;
    };
    let denom = i_h + o_h / eta;
    let visible_normals = ggx_d(h.z, a) * smith_g1(wo.z, a) * o_h / wo.z;
    microfacet * (1.0 - reflect_share(p, wo, h)) * visible_normals * -i_h / (denom * denom)
}

/// Samples `wi`; returns `(wi, f·|cos|/pdf, pdf)` or `None` when the path ends here.
pub fn sample(p: &BsdfParams, wo: Vec3, u: [f32; 3]) -> Option<(Vec3, Vec3, f32)> {
    if wo.z <= 0.0 {
        return None;
    }
    let [metal, microfacet, _] = lobe_probabilities(p, wo.z);
    let wi = if u[0] >= metal + microfacet {
        cosine_hemisphere(u[1], u[2])
    } else {
        let h = sample_vndf(wo, alpha(p.roughness), u[1], u[2]);
        // The lobe's own share of u0, reused for reflect-or-transmit.
        let transmitted = u[0] >= metal && (u[0] - metal) / microfacet >= reflect_share(p, wo, h);
        if transmitted && !passes_straight(p) {
            refract(wo, h, eta(p)).filter(|wi| wi.z < 0.0)?
        } else {
            let reflected = h * (2.0 * wo.dot(h)) - wo;
            if reflected.z <= 0.0 {
                return None; // reflected below the horizon
            }
            match transmitted {
                // A thin sheet passes the reflected ray on, mirrored through the surface.
                true => vec3(reflected.x, reflected.y, -reflected.z),
                false => reflected,
            }
        }
    };
    let pdf = pdf(p, wo, wi);
    if pdf <= 0.0 || !pdf.is_finite() {
        return None;
    }
    Some((wi, eval(p, wo, wi) * (wi.z.abs() / pdf), pdf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::Pcg;

    fn glass(roughness: f32, entering: bool, thin: bool) -> BsdfParams {
        BsdfParams {
            ior: 1.5,
            transmission: 1.0,
            thin,
            entering,
            ..BsdfParams::opaque(Vec3::splat(1.0), 0.0, roughness, 1.0, Vec3::splat(1.0))
        }
    }

    fn dir(theta: f32) -> Vec3 {
        vec3(theta.sin(), 0.0, theta.cos())
    }

    /// (reflected, transmitted) energy, and the transmitted part scaled back by η² (the energy
    /// that comes out again after crossing back).
    fn energy(p: &BsdfParams, wo: Vec3, n: u32, rng: &mut Pcg) -> (f64, f64) {
        let (mut r, mut t) = (0.0f64, 0.0f64);
        for _ in 0..n {
            let u = [rng.next_f32(), rng.next_f32(), rng.next_f32()];
            if let Some((wi, w, _)) = sample(p, wo, u) {
                match wi.z > 0.0 {
                    true => r += f64::from(w.x),
                    false => t += f64::from(w.x),
                }
            }
        }
        let eta2 = f64::from(eta(p) * eta(p));
        let t = if p.thin { t } else { t * eta2 };
        (r / f64::from(n), t / f64::from(n))
    }

    #[test]
    fn exact_fresnel_has_the_known_values_and_total_internal_reflection() {
        assert!((fresnel_dielectric(1.0, 1.5) - 0.04).abs() < 1e-6);
        assert!((fresnel_dielectric(1.0, 1.0 / 1.5) - 0.04).abs() < 1e-6);
        // Brewster's angle: the parallel part vanishes, (rs² + 0)/2.
        let brewster = 1.5f32.atan();
        let f = fresnel_dielectric(brewster.cos(), 1.5);
        assert!((f - 0.0739).abs() < 1e-3, "{f}");
        // From inside, beyond asin(1/1.5) = 41.8°: everything is reflected.
        assert_eq!(fresnel_dielectric(45f32.to_radians().cos(), 1.0 / 1.5), 1.0);
        assert!(fresnel_dielectric(40f32.to_radians().cos(), 1.0 / 1.5) < 1.0);
    }

    #[test]
    fn refraction_follows_snells_law() {
        let wo = dir(0.6);
        let wi = refract(wo, vec3(0.0, 0.0, 1.0), 1.5).unwrap();
        assert!(wi.z < 0.0);
        assert!((0.6f32.sin() - 1.5 * (wi.x * wi.x + wi.y * wi.y).sqrt()).abs() < 1e-6);
        assert!((wi.length() - 1.0).abs() < 1e-6);
        assert!(refract(dir(0.9), vec3(0.0, 0.0, 1.0), 1.0 / 1.5).is_none());
    }

    #[test]
    fn clear_smooth_glass_keeps_all_energy_on_both_sides() {
        // A white furnace through a smooth clear interface: reflected + transmitted = 1 at
        // every angle, from outside and from inside (total internal reflection included).
        let mut rng = Pcg::new(11);
        for entering in [true, false] {
            for theta in [0.0f32, 0.5, 1.0, 1.4] {
                let p = glass(0.0, entering, false);
                let (r, t) = energy(&p, dir(theta), 20_000, &mut rng);
                let expect_r = f64::from(fresnel_dielectric(theta.cos(), eta(&p)));
                assert!(
                    (r + t - 1.0).abs() < 0.01 && (r - expect_r).abs() < 0.01,
                    "entering {entering} θ {theta}: R {r} (Fresnel {expect_r}), T {t}"
                );
            }
        }
        // A thin sheet: the same sum, and a transmitted ray goes straight on.
        let p = glass(0.0, true, true);
        let (r, t) = energy(&p, dir(0.7), 20_000, &mut rng);
        assert!((r + t - 1.0).abs() < 0.01, "thin: R {r} T {t}");
        let (wi, _, _) = sample(&p, dir(0.7), [0.999, 0.3, 0.6]).unwrap();
        assert!((wi + dir(0.7)).length() < 1e-2, "{wi:?}");
    }

    #[test]
    fn rough_glass_loses_only_what_single_scattering_drops() {
        let mut rng = Pcg::new(12);
        for (roughness, floor) in [(0.2, 0.95), (0.5, 0.85)] {
            for entering in [true, false] {
                let p = glass(roughness, entering, false);
                let (r, t) = energy(&p, dir(0.4), 60_000, &mut rng);
                assert!(
                    r + t >= floor && r + t <= 1.01,
                    "r={roughness} entering {entering}: R {r} + T {t}"
                );
            }
        }
    }

    #[test]
    fn sampling_matches_pdf_on_the_whole_sphere() {
        // The mixture pdf integrates to the share of samples kept, over both hemispheres.
        // (Rough lobes: uniform directions rarely land in a narrow lobe, and the estimate of
        // a peaked pdf's integral falls short, 2 % at roughness 0.3 with 16 M directions.)
        let mut rng = Pcg::new(13);
        for p in [
            glass(0.6, true, false),
            glass(0.7, false, false),
            glass(0.6, true, true),
            BsdfParams {
                transmission: 0.5,
                metallic: 0.3,
                ..glass(0.7, true, false)
            },
        ] {
            let wo = dir(0.5);
            let n = 1_000_000;
            let mut integral = 0.0f64;
            for _ in 0..n {
                let z = rng.next_f32() * 2.0 - 1.0;
                let phi = 2.0 * PI * rng.next_f32();
                let r = (1.0 - z * z).max(0.0).sqrt();
                let wi = vec3(r * phi.cos(), r * phi.sin(), z);
                integral += f64::from(pdf(&p, wo, wi)) * 4.0 * std::f64::consts::PI;
            }
            let integral = integral / f64::from(n);
            let m = 100_000;
            let kept = (0..m)
                .filter(|_| {
                    let u = [rng.next_f32(), rng.next_f32(), rng.next_f32()];
                    sample(&p, wo, u).is_some()
                })
                .count();
            let kept = kept as f64 / f64::from(m);
            assert!(
                (integral - kept).abs() < 0.03,
                "pdf integrates to {integral}, samples kept {kept}: {p:?}"
            );
        }
    }
}
