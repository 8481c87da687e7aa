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
    pub material: u32,
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

/// A texture reference: which texture, and the scale glTF attaches (normal scale).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextureRef {
    pub texture: u32,
    pub scale: f32,
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
    /// Emission is one-sided unless the material is double-sided.
    pub double_sided: bool,
    /// `alphaMode: MASK`: surfaces whose alpha (factor × base-colour texture) is below this
    /// cutoff are invisible (to camera and shadow rays alike). `None`: opaque.
    pub alpha_cutoff: Option<f32>,
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
            double_sided: false,
            alpha_cutoff: None,
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
