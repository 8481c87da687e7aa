//! The renderer's scene: world-space triangles, materials, textures, punctual lights and one
//! camera. Format-neutral: [`crate::gltf_scene`] fills it from glTF; tests build it directly.

use crate::math::Vec3;

/// A world-space triangle. Vertices are in counter-clockwise order seen from the front face
/// (the loader already swapped them for mirroring transforms).
#[derive(Debug, Clone, PartialEq)]
pub struct Triangle {
    pub positions: [Vec3; 3],
    /// Per-vertex shading normals; `None` means flat (geometric) shading.
    pub normals: Option<[Vec3; 3]>,
    /// `TEXCOORD_0` per vertex (zero when absent).
    pub uvs: [[f32; 2]; 3],
    /// `TEXCOORD_1` per vertex; `None`: the mesh has none (a texture asking for it reads
    /// `TEXCOORD_0`).
    pub uvs1: Option<[[f32; 2]; 3]>,
    /// `COLOR_0` per vertex, linear RGBA; `None`: white. It multiplies the base colour.
    pub colors: Option<[[f32; 4]; 3]>,
    pub material: u32,
    /// 1 + the glTF node index of the mesh instance it belongs to (0: none), for the object
    /// ID pass.
    pub object: u32,
}

impl Triangle {
    /// Unnormalized geometric normal (its length is twice the area).
    pub fn cross(&self) -> Vec3 {
        let [a, b, c] = self.positions;
        (b - a).cross(c - a)
    }
    pub fn area(&self) -> f32 {
        0.5 * self.cross().length()
    }
    pub fn centroid(&self) -> Vec3 {
        let [a, b, c] = self.positions;
        (a + b + c) / 3.0
    }
}

/// A texture reference: which texture, the scale glTF attaches (normal scale), the `TEXCOORD`
/// set it reads (0 or 1) and the KHR_texture_transform map applied to that set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextureRef {
    pub texture: u32,
    pub scale: f32,
    pub tex_coord: u32,
    pub transform: UvTransform,
}

impl TextureRef {
    /// Reads `TEXCOORD_0` as it is.
    pub fn plain(texture: u32) -> Self {
        TextureRef {
            texture,
            scale: 1.0,
            tex_coord: 0,
            transform: UvTransform::IDENTITY,
        }
    }

    /// Reads its coordinates some other way than `TEXCOORD_0` as it is.
    pub fn is_mapped(&self) -> bool {
        self.tex_coord != 0 || self.transform != UvTransform::IDENTITY
    }
}

/// KHR_texture_transform: `uv' = M · (u, v, 1)`, the two rows of `M`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UvTransform(pub [[f32; 3]; 2]);

impl UvTransform {
    pub const IDENTITY: UvTransform = UvTransform([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]);

    /// The extension's `T · R · S`: scale, then rotate by `rotation` radians (counter-clockwise
    /// in UV space), then offset.
    pub fn new(offset: [f32; 2], rotation: f32, scale: [f32; 2]) -> Self {
        let (sin, cos) = rotation.sin_cos();
        UvTransform([
            [cos * scale[0], sin * scale[1], offset[0]],
            [-sin * scale[0], cos * scale[1], offset[1]],
        ])
    }

    pub fn apply(&self, [u, v]: [f32; 2]) -> [f32; 2] {
        let [a, b] = self.0;
        [a[0] * u + a[1] * v + a[2], b[0] * u + b[1] * v + b[2]]
    }
}

/// glTF metallic-roughness material (+ KHR_materials_specular, KHR_materials_emissive_strength).
#[derive(Debug, Clone, PartialEq)]
pub struct Material {
    pub name: String,
    /// Linear RGBA factor.
    pub base_color: [f32; 4],
    pub base_color_texture: Option<TextureRef>,
    pub metallic: f32,
    pub roughness: f32,
    /// Blue = metallic, green = roughness (linear).
    pub metallic_roughness_texture: Option<TextureRef>,
    /// Linear emitted radiance factor, already multiplied by the emissive strength.
    pub emissive: [f32; 3],
    pub emissive_texture: Option<TextureRef>,
    pub normal_texture: Option<TextureRef>,
    /// KHR_materials_specular: weight of the dielectric specular lobe (1 = plain glTF).
    pub specular: f32,
    pub specular_color: [f32; 3],
    /// KHR_materials_ior: the dielectric's index of refraction (1.5 = plain glTF's F0 of 4 %).
    pub ior: f32,
    /// KHR_materials_transmission: how much of the dielectric's diffuse part is transmitted
    /// instead (a factor, times the red channel of `transmission_texture`).
    pub transmission: f32,
    pub transmission_texture: Option<TextureRef>,
    /// KHR_materials_volume: inside the mesh is a medium (rays refract into it), absorbing
    /// `absorption` per scene unit (from `attenuationColor` at `attenuationDistance`). `None`:
    /// thin-walled, a transmitted ray goes on in its direction (`thicknessFactor` 0 or no
    /// extension).
    pub volume: Option<[f32; 3]>,
    /// Emission is one-sided unless the material is double-sided.
    pub double_sided: bool,
    /// How the alpha (factor × base-colour texture × vertex colour) hides the surface, to
    /// camera and shadow rays alike.
    pub alpha: Alpha,
}

/// glTF's `alphaMode`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Alpha {
    Opaque,
    /// `MASK`: invisible where alpha is below the cutoff.
    Mask(f32),
    /// `BLEND`: each ray sees the surface with probability alpha (stochastic transparency),
    /// decided by a hash of the ray's sample and the triangle, so a render is the same for any
    /// tiling, sample split or dispatch layout.
    Blend,
}

impl Default for Material {
    fn default() -> Self {
        // glTF's default material.
        Material {
            name: "default".into(),
            base_color: [1.0; 4],
            base_color_texture: None,
            metallic: 1.0,
            roughness: 1.0,
            metallic_roughness_texture: None,
            emissive: [0.0; 3],
            emissive_texture: None,
            normal_texture: None,
            specular: 1.0,
            specular_color: [1.0; 3],
            ior: 1.5,
            transmission: 0.0,
            transmission_texture: None,
            volume: None,
            double_sided: false,
            alpha: Alpha::Opaque,
        }
    }
}

impl Material {
    pub fn diffuse(name: &str, albedo: [f32; 3]) -> Self {
        Material {
            name: name.into(),
            base_color: [albedo[0], albedo[1], albedo[2], 1.0],
            metallic: 0.0,
            specular: 0.0,
            ..Material::default()
        }
    }
    /// Absorption per unit length of a medium whose colour after `distance` is `colour`
    /// (KHR_materials_volume's Beer–Lambert law: `σ = −ln(colour) / distance`).
    pub fn absorption(colour: [f32; 3], distance: f32) -> [f32; 3] {
        colour.map(|c| match distance.is_finite() && distance > 0.0 {
            true => -(c.clamp(1e-6, 1.0)).ln() / distance,
            false => 0.0,
        })
    }

    pub fn is_emissive(&self) -> bool {
        self.emissive.iter().any(|&e| e > 0.0)
    }
}

/// How texture coordinates outside [0, 1] wrap (glTF sampler modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrap {
    Repeat = 0,
    Clamp = 1,
    Mirror = 2,
}

/// An RGBA8 texture; colour decoding (sRGB or linear) depends on the use, done on the GPU.
#[derive(Debug, Clone, PartialEq)]
pub struct Texture {
    pub width: u32,
    pub height: u32,
    /// Shared: every texture that uses one image, and every frame's scene, holds the same pixels.
    pub rgba8: std::sync::Arc<[u8]>,
    pub wrap_s: Wrap,
    pub wrap_t: Wrap,
    pub nearest: bool,
}

/// KHR_lights_punctual light in world space. Intensities are used as radiometric values
/// (point/spot: W/sr, directional: W/m²) as glTF viewers do; `range` is ignored.
#[derive(Debug, Clone, PartialEq)]
pub enum PunctualLight {
    Point {
        position: Vec3,
        intensity: Vec3,
    },
    Spot {
        position: Vec3,
        /// Unit direction the light points to.
        direction: Vec3,
        intensity: Vec3,
        cos_inner: f32,
        cos_outer: f32,
    },
    Directional {
        /// Unit direction the light travels.
        direction: Vec3,
        irradiance: Vec3,
    },
}

/// A perspective camera: position, orthonormal basis (looking down −`forward`... glTF −Z),
/// vertical field of view. The aspect ratio comes from the output resolution.
#[derive(Debug, Clone, PartialEq)]
pub struct Camera {
    pub name: String,
    pub position: Vec3,
    pub right: Vec3,
    pub up: Vec3,
    /// The viewing direction (glTF camera −Z in world space).
    pub forward: Vec3,
    pub yfov: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    pub triangles: Vec<Triangle>,
    pub materials: Vec<Material>,
    pub textures: Vec<Texture>,
    pub lights: Vec<PunctualLight>,
    pub camera: Camera,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_texture_transform_scales_then_rotates_then_offsets() {
        let t = UvTransform::new([0.5, 0.25], std::f32::consts::FRAC_PI_2, [2.0, 3.0]);
        // (1, 0) scaled to (2, 0), rotated a quarter turn to (0, -2), offset to (0.5, -1.75).
        let [u, v] = t.apply([1.0, 0.0]);
        assert!((u - 0.5).abs() < 1e-6 && (v + 1.75).abs() < 1e-6, "{u} {v}");
        // (0, 1) scaled to (0, 3), rotated to (3, 0), offset to (3.5, 0.25).
        let [u, v] = t.apply([0.0, 1.0]);
        assert!((u - 3.5).abs() < 1e-6 && (v - 0.25).abs() < 1e-6, "{u} {v}");
        assert_eq!(
            UvTransform::new([0.0; 2], 0.0, [1.0; 2]),
            UvTransform::IDENTITY
        );
    }
}
