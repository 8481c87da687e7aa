//! The scene as the GPU reads it: `#[repr(C)]` records matching the structs in `trace.wgsl`,
//! packed from a [`Scene`] and its [`Bvh`] by a pure function (no device needed).

use bytemuck::{Pod, Zeroable};

use crate::bsdf;
use crate::bvh::{self, BvhNode};
use crate::math::Vec3;
use crate::scene::{
    Alpha, Material, PunctualLight, Scene, Texture, TextureRef, Triangle, UvTransform,
};
use crate::wide_bvh::{WideBvh, WideNode};

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct GpuTriPos {
    pub v0: [f32; 4],
    pub e1: [f32; 4],
    pub e2: [f32; 4],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct GpuTriAttr {
    pub n0: [f32; 4],
    pub n1: [f32; 4],
    pub n2: [f32; 4],
    pub v: [f32; 4],
    pub tangent: [f32; 4],
    pub material: u32,
    /// Bit 0: vertex normals; bit 1: `TEXCOORD_1` or `COLOR_0`, in `tri_extra[extra]`.
    pub flags: u32,
    pub extra: u32,
    /// 1 + the glTF node of the mesh instance (the object ID pass).
    pub object: u32,
}

/// What only some triangles have: vertex colours and a second UV set.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct GpuTriExtra {
    /// `COLOR_0`, linear RGBA as 16-bit unorm pairs (WGSL `unpack2x16unorm`): rg and ba of
    /// vertex 0, then of vertex 1; of vertex 2, then two unused words. White without.
    pub colors01: [u32; 4],
    pub colors2: [u32; 4],
    /// `TEXCOORD_1`: u of the three vertices (w unused), then v.
    pub uv1_u: [f32; 4],
    pub uv1_v: [f32; 4],
}

/// Two values in [0, 1] as WGSL's `pack2x16unorm` packs them.
fn pack2x16unorm(a: f32, b: f32) -> u32 {
    let unorm = |x: f32| (x.clamp(0.0, 1.0) * 65535.0).round() as u32;
    unorm(a) | (unorm(b) << 16)
}

/// KHR_texture_transform of a texture header: `uv' = (row0.xyz · (u, v, 1), row1.xyz · (u, v, 1))`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct GpuUvMap {
    pub row0: [f32; 4],
    pub row1: [f32; 4],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct GpuMaterial {
    pub base_color: [f32; 4],
    pub emissive: [f32; 4],
    pub params: [f32; 4],
    pub specular_color: [f32; 4],
    /// Texture headers (`pack_textures`) of base colour, metallic-roughness, emissive and
    /// normal; -1: none.
    pub textures: [i32; 4],
    /// Transmission factor, IOR, 1 for a volume (0: thin-walled), the IOR's F0.
    pub transmission: [f32; 4],
    /// The volume's absorption per unit length; w: the transmission texture's header (-1:
    /// none), as a float.
    pub absorption: [f32; 4],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct GpuLight {
    pub kind: u32,
    pub index: u32,
    pub select_pdf: f32,
    pub cdf: f32,
    pub position: [f32; 4],
    pub direction: [f32; 4],
    pub intensity: [f32; 4],
}

const LIGHT_TRIANGLE: u32 = 0;
const LIGHT_POINT: u32 = 1;
const LIGHT_SPOT: u32 = 2;
const LIGHT_DIRECTIONAL: u32 = 3;

/// Which BVH the shader walks: the binary tree of [`crate::bvh`] or the compressed 8-wide one
/// of [`crate::wide_bvh`] (the default; `GpuContext::bvh_layout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BvhLayout {
    Binary,
    #[default]
    Wide,
}

/// Everything uploaded once per scene (per frame when animated).
#[derive(Debug, Clone)]
pub struct PackedScene {
    pub layout: BvhLayout,
    /// Binary nodes; one zeroed placeholder when the layout is wide.
    pub nodes: Vec<BvhNode>,
    /// Wide nodes; one zeroed placeholder when the layout is binary (or the scene is empty).
    pub wide_nodes: Vec<WideNode>,
    pub tri_pos: Vec<GpuTriPos>,
    pub tri_attr: Vec<GpuTriAttr>,
    pub tri_extra: Vec<GpuTriExtra>,
    pub materials: Vec<GpuMaterial>,
    pub uv_maps: Vec<GpuUvMap>,
    pub lights: Vec<GpuLight>,
    pub textures: Vec<u32>,
    pub triangle_count: u32,
    /// Real lights (the buffer holds one dummy record when there are none).
    pub light_count: u32,
    pub bvh_depth: u32,
    pub bvh_sah_cost: f32,
}

fn v4(v: Vec3, w: f32) -> [f32; 4] {
    [v.x, v.y, v.z, w]
}

fn luminance(c: [f32; 3]) -> f32 {
    0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]
}

/// The texture headers: one per texture, read through `TEXCOORD_0` as it is, then one more
/// per other way a material slot reads a texture (`TEXCOORD_1`, a transform). A texture's
/// coordinates are chosen by the header the shader already reads, so textures without a
/// transform, and materials without textures, cost nothing more.
struct TextureHeaders {
    /// (texture, `TEXCOORD` set, index into `uv_maps` + 1 or 0) of the headers after the first
    /// `textures.len()`.
    mapped: Vec<(u32, u32, u32)>,
    uv_maps: Vec<GpuUvMap>,
}

impl TextureHeaders {
    fn new() -> Self {
        TextureHeaders {
            mapped: Vec::new(),
            uv_maps: Vec::new(),
        }
    }

    /// The header a material slot reads, -1 for none.
    fn index(&mut self, t: &Option<TextureRef>, textures: usize) -> i32 {
        let Some(t) = t else { return -1 };
        if !t.is_mapped() {
            return t.texture as i32;
        }
        let map = if t.transform == UvTransform::IDENTITY {
            0
        } else {
            let [a, b] = t.transform.0;
            self.uv_maps.push(GpuUvMap {
                row0: [a[0], a[1], a[2], 0.0],
                row1: [b[0], b[1], b[2], 0.0],
            });
            self.uv_maps.len() as u32
        };
        self.mapped.push((t.texture, t.tex_coord, map));
        (textures + self.mapped.len() - 1) as i32
    }
}

fn tri_extra(t: &Triangle) -> Option<GpuTriExtra> {
    if t.uvs1.is_none() && t.colors.is_none() {
        return None;
    }
    // Set 1 on a triangle that has colours only: the shader reads TEXCOORD_0 there.
    let [a, b, c] = t.uvs1.unwrap_or(t.uvs);
    let [c0, c1, c2] = t
        .colors
        .unwrap_or([[1.0; 4]; 3])
        .map(|[r, g, b, a]| [pack2x16unorm(r, g), pack2x16unorm(b, a)]);
    Some(GpuTriExtra {
        colors01: [c0[0], c0[1], c1[0], c1[1]],
        colors2: [c2[0], c2[1], 0, 0],
        uv1_u: [a[0], b[0], c[0], 0.0],
        uv1_v: [a[1], b[1], c[1], 0.0],
    })
}

/// The coordinates a material's normal map reads at a triangle's corners: its UV set
/// (`TEXCOORD_1` when it asks for it and the mesh has one), through its texture transform. The
/// tangent frame must follow them, or a map read through set 1 or a rotated transform bends
/// normals the wrong way.
fn normal_map_uvs(t: &Triangle, material: &Material) -> [[f32; 2]; 3] {
    let Some(map) = &material.normal_texture else {
        return t.uvs;
    };
    let uvs = match (map.tex_coord, &t.uvs1) {
        (1, Some(uvs1)) => *uvs1,
        _ => t.uvs,
    };
    uvs.map(|uv| map.transform.apply(uv))
}

/// Per-triangle tangent from the UV parameterisation `uvs` (w: bitangent handedness).
fn tangent(t: &Triangle, uvs: [[f32; 2]; 3]) -> [f32; 4] {
    let [p0, p1, p2] = t.positions;
    let [uv0, uv1, uv2] = uvs;
    let (e1, e2) = (p1 - p0, p2 - p0);
    let (du1, dv1) = (uv1[0] - uv0[0], uv1[1] - uv0[1]);
    let (du2, dv2) = (uv2[0] - uv0[0], uv2[1] - uv0[1]);
    let det = du1 * dv2 - du2 * dv1;
    if det.abs() < 1e-20 {
        return [0.0; 4];
    }
    let r = 1.0 / det;
    let tan = (e1 * dv2 - e2 * dv1) * r;
    let bit = (e2 * du1 - e1 * du2) * r;
    let n = e1.cross(e2);
    let sign = if n.cross(tan).dot(bit) < 0.0 {
        -1.0
    } else {
        1.0
    };
    match tan.try_normalize() {
        Some(t) => v4(t, sign),
        None => [0.0; 4],
    }
}

/// Headers of 4 words (texel offset, width, height, flags: wrap s in bits 0–3, wrap t 4–7,
/// nearest 8, `TEXCOORD_1` 9, uv map + 1 in 16–31), then the texels of every texture once.
fn pack_textures(textures: &[Texture], mapped: &[(u32, u32, u32)]) -> Vec<u32> {
    let header = (textures.len() + mapped.len()) * 4;
    let texels: usize = textures.iter().map(|t| (t.width * t.height) as usize).sum();
    let mut out = Vec::with_capacity((header + texels).max(4));
    let mut offset = header as u32;
    let mut plain = Vec::with_capacity(textures.len());
    for t in textures {
        let flags = (t.wrap_s as u32) | ((t.wrap_t as u32) << 4) | (u32::from(t.nearest) << 8);
        plain.push([offset, t.width, t.height, flags]);
        offset += t.width * t.height;
    }
    out.extend(plain.iter().flatten());
    for &(texture, set, map) in mapped {
        let [offset, width, height, flags] = plain[texture as usize];
        out.extend_from_slice(&[offset, width, height, flags | (set << 9) | (map << 16)]);
    }
    for t in textures {
        out.extend(
            t.rgba8
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
    }
    if out.is_empty() {
        out.extend_from_slice(&[0; 4]); // a binding may not be empty
    }
    out
}

/// The BVH as packed: the layout it has, its nodes (the other layout's nodes are one
/// placeholder: a binding may not be empty) and its leaf order.
struct PackedTree {
    layout: BvhLayout,
    nodes: Vec<BvhNode>,
    wide_nodes: Vec<WideNode>,
    order: Vec<u32>,
    depth: u32,
    sah_cost: f32,
}

/// The tree of `layout` over `verts`; the binary one where the wide one cannot be built
/// ([`WideBvh::build`]).
fn build_tree(verts: &[[Vec3; 3]], layout: BvhLayout) -> PackedTree {
    if layout == BvhLayout::Wide {
        if let Some(wide) = WideBvh::build(verts) {
            let mut wide_nodes = wide.nodes;
            if wide_nodes.is_empty() {
                wide_nodes.push(WideNode::default());
            }
            return PackedTree {
                layout,
                nodes: vec![BvhNode::zeroed()],
                wide_nodes,
                order: wide.order,
                depth: 0,
                sah_cost: 0.0,
            };
        }
        tracing::info!(
            "the scene reaches beyond {:e} units: a binary BVH instead of the wide one",
            crate::wide_bvh::MAX_EXTENT
        );
    }
    let bvh = bvh::build(verts);
    PackedTree {
        layout: BvhLayout::Binary,
        nodes: bvh.nodes,
        wide_nodes: vec![WideNode::default()],
        order: bvh.order,
        depth: bvh.depth,
        sah_cost: bvh.sah_cost,
    }
}

/// Packs the scene: builds the BVH of `layout`, reorders triangles into leaf order and sets
/// up the light selection distribution (emissive triangles by power, punctual lights by
/// intensity).
pub fn pack(scene: &Scene, layout: BvhLayout) -> PackedScene {
    let verts: Vec<[Vec3; 3]> = scene.triangles.iter().map(|t| t.positions).collect();
    let tree = build_tree(&verts, layout);
    let mut headers = TextureHeaders::new();
    let texture_count = scene.textures.len();
    let materials: Vec<GpuMaterial> = scene
        .materials
        .iter()
        .map(|m| GpuMaterial {
            base_color: m.base_color,
            emissive: [
                m.emissive[0],
                m.emissive[1],
                m.emissive[2],
                if m.double_sided { 1.0 } else { 0.0 },
            ],
            params: [
                m.metallic,
                m.roughness,
                m.specular,
                m.normal_texture.map_or(1.0, |t| t.scale),
            ],
            // w: MASK cutoff; -1: opaque; -2: BLEND.
            specular_color: [
                m.specular_color[0],
                m.specular_color[1],
                m.specular_color[2],
                match m.alpha {
                    Alpha::Opaque => -1.0,
                    Alpha::Mask(cutoff) => cutoff,
                    Alpha::Blend => -2.0,
                },
            ],
            textures: [
                headers.index(&m.base_color_texture, texture_count),
                headers.index(&m.metallic_roughness_texture, texture_count),
                headers.index(&m.emissive_texture, texture_count),
                headers.index(&m.normal_texture, texture_count),
            ],
            transmission: [
                m.transmission,
                m.ior,
                if m.volume.is_some() { 1.0 } else { 0.0 },
                bsdf::ior_f0(m.ior),
            ],
            absorption: {
                let [r, g, b] = m.volume.unwrap_or_default();
                let header = headers.index(&m.transmission_texture, texture_count);
                [r, g, b, header as f32]
            },
        })
        .collect();

    let mut tri_pos = Vec::with_capacity(scene.triangles.len());
    let mut tri_attr = Vec::with_capacity(scene.triangles.len());
    let mut tri_extra_records = Vec::new();
    // (light kind, index, weight) before normalisation.
    let mut weights: Vec<(GpuLight, f32)> = Vec::new();
    let mut triangle_lights: Vec<(u32, GpuLight, f32)> = Vec::new();
    let scene_radius = {
        let mut lo = Vec3::splat(f32::INFINITY);
        let mut hi = Vec3::splat(f32::NEG_INFINITY);
        for t in &scene.triangles {
            for &p in &t.positions {
                lo = lo.min(p);
                hi = hi.max(p);
            }
        }
        if scene.triangles.is_empty() {
            1.0
        } else {
            ((hi - lo).length() * 0.5).max(1e-3)
        }
    };
    for (slot, &original) in tree.order.iter().enumerate() {
        let t = &scene.triangles[original as usize];
        let [p0, p1, p2] = t.positions;
        let masked = scene.materials[t.material as usize].alpha != Alpha::Opaque;
        tri_pos.push(GpuTriPos {
            // w = 1: alpha-tested (MASK or BLEND) triangle, checked during traversal.
            v0: v4(p0, if masked { 1.0 } else { 0.0 }),
            e1: v4(p1 - p0, 0.0),
            e2: v4(p2 - p0, 0.0),
        });
        let normals = t.normals.unwrap_or([Vec3::ZERO; 3]);
        let extra = tri_extra(t);
        let extra_index = tri_extra_records.len() as u32;
        tri_extra_records.extend(extra);
        tri_attr.push(GpuTriAttr {
            n0: v4(normals[0], t.uvs[0][0]),
            n1: v4(normals[1], t.uvs[1][0]),
            n2: v4(normals[2], t.uvs[2][0]),
            v: [t.uvs[0][1], t.uvs[1][1], t.uvs[2][1], 0.0],
            tangent: tangent(t, normal_map_uvs(t, &scene.materials[t.material as usize])),
            material: t.material,
            flags: u32::from(t.normals.is_some()) | (u32::from(extra.is_some()) << 1),
            extra: if extra.is_some() { extra_index } else { 0 },
            object: t.object,
        });
        let material = &scene.materials[t.material as usize];
        if material.is_emissive() {
            // Power ∝ area × luminance of the factor (textures only modulate it).
            let sides = if material.double_sided { 2.0 } else { 1.0 };
            let w = t.area() * luminance(material.emissive) * sides;
            if w > 0.0 && w.is_finite() {
                triangle_lights.push((
                    original,
                    GpuLight {
                        kind: LIGHT_TRIANGLE,
                        index: slot as u32,
                        ..GpuLight::zeroed()
                    },
                    w,
                ));
            }
        }
    }
    // Emitters in the scene's triangle order, not the tree's: the light a random number picks
    // (so every image) does not depend on the BVH (binary or wide, or how it was built).
    triangle_lights.sort_by_key(|(original, _, _)| *original);
    weights.extend(triangle_lights.into_iter().map(|(_, light, w)| (light, w)));
    for light in &scene.lights {
        let (gpu, w) = match *light {
            PunctualLight::Point {
                position,
                intensity,
            } => (
                GpuLight {
                    kind: LIGHT_POINT,
                    position: v4(position, 0.0),
                    intensity: v4(intensity, 0.0),
                    ..GpuLight::zeroed()
                },
                4.0 * std::f32::consts::PI * luminance(intensity.to_array()),
            ),
            PunctualLight::Spot {
                position,
                direction,
                intensity,
                cos_inner,
                cos_outer,
            } => (
                GpuLight {
                    kind: LIGHT_SPOT,
                    position: v4(position, 0.0),
                    direction: v4(direction, cos_inner),
                    intensity: v4(intensity, cos_outer),
                    ..GpuLight::zeroed()
                },
                2.0 * std::f32::consts::PI * (1.0 - cos_outer) * luminance(intensity.to_array()),
            ),
            PunctualLight::Directional {
                direction,
                irradiance,
            } => (
                GpuLight {
                    kind: LIGHT_DIRECTIONAL,
                    direction: v4(direction, 0.0),
                    intensity: v4(irradiance, 0.0),
                    ..GpuLight::zeroed()
                },
                std::f32::consts::PI
                    * scene_radius
                    * scene_radius
                    * luminance(irradiance.to_array()),
            ),
        };
        if w > 0.0 && w.is_finite() {
            weights.push((gpu, w));
        }
    }
    let total: f64 = weights.iter().map(|(_, w)| f64::from(*w)).sum();
    let mut lights = Vec::with_capacity(weights.len());
    let mut running = 0.0f64;
    for (mut light, w) in weights {
        running += f64::from(w);
        light.select_pdf = (f64::from(w) / total) as f32;
        light.cdf = (running / total) as f32;
        if light.kind == LIGHT_TRIANGLE {
            tri_attr[light.index as usize].v[3] = light.select_pdf;
        }
        lights.push(light);
    }
    if let Some(last) = lights.last_mut() {
        last.cdf = 1.0;
    }
    let light_count = lights.len() as u32;
    if lights.is_empty() {
        lights.push(GpuLight::zeroed());
    }
    let triangle_count = tri_pos.len() as u32;
    if tri_pos.is_empty() {
        tri_pos.push(GpuTriPos::zeroed());
        tri_attr.push(GpuTriAttr::zeroed());
    }
    let mut materials = materials;
    if materials.is_empty() {
        materials.push(GpuMaterial::zeroed());
    }
    let textures = pack_textures(&scene.textures, &headers.mapped);
    let mut uv_maps = headers.uv_maps;
    // A binding may not be empty.
    if uv_maps.is_empty() {
        uv_maps.push(GpuUvMap::zeroed());
    }
    if tri_extra_records.is_empty() {
        tri_extra_records.push(GpuTriExtra::zeroed());
    }
    PackedScene {
        layout: tree.layout,
        nodes: tree.nodes,
        wide_nodes: tree.wide_nodes,
        tri_pos,
        tri_attr,
        tri_extra: tri_extra_records,
        materials,
        uv_maps,
        lights,
        textures,
        triangle_count,
        light_count,
        bvh_depth: tree.depth,
        bvh_sah_cost: tree.sah_cost,
    }
}

impl PackedScene {
    /// Whether the shader's `SCENE_TRANSMISSION` code is needed: a material transmits.
    pub fn uses_transmission(&self) -> bool {
        self.materials.iter().any(|m| m.transmission[0] > 0.0)
    }

    /// Whether the shader's `SCENE_EXTRAS` code is needed: a triangle with an extra record,
    /// or a texture header that reads `TEXCOORD_1` or has a uv map.
    pub fn uses_extras(&self) -> bool {
        let headers = self
            .materials
            .iter()
            .flat_map(|m| m.textures.into_iter().chain([m.absorption[3] as i32]))
            .filter(|&t| t >= 0);
        self.tri_attr.iter().any(|a| a.flags & 2 != 0)
            || headers
                .map(|t| self.textures[t as usize * 4 + 3])
                .any(|flags| flags >> 9 != 0)
    }

    /// (name, bytes) of every storage buffer, for the device-limit check.
    pub fn buffer_sizes(&self) -> [(&'static str, u64); 9] {
        let size = |bytes: usize| bytes as u64;
        [
            (
                "BVH nodes",
                size(std::mem::size_of_val(self.nodes.as_slice())),
            ),
            (
                "triangle positions",
                size(std::mem::size_of_val(self.tri_pos.as_slice())),
            ),
            (
                "triangle attributes",
                size(std::mem::size_of_val(self.tri_attr.as_slice())),
            ),
            (
                "materials",
                size(std::mem::size_of_val(self.materials.as_slice())),
            ),
            (
                "lights",
                size(std::mem::size_of_val(self.lights.as_slice())),
            ),
            (
                "textures",
                size(std::mem::size_of_val(self.textures.as_slice())),
            ),
            (
                "texture coordinate maps",
                size(std::mem::size_of_val(self.uv_maps.as_slice())),
            ),
            (
                "triangle extras",
                size(std::mem::size_of_val(self.tri_extra.as_slice())),
            ),
            (
                "wide BVH nodes",
                size(std::mem::size_of_val(self.wide_nodes.as_slice())),
            ),
        ]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::math::vec3;
    use crate::scene::Camera;

    fn quad_scene() -> Scene {
        let tri = |a: Vec3, b: Vec3, c: Vec3, material| Triangle {
            positions: [a, b, c],
            normals: None,
            uvs: [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]],
            uvs1: None,
            colors: None,
            material,
            object: 0,
        };
        let mut light = Material::diffuse("light", [0.0; 3]);
        light.emissive = [2.0, 2.0, 2.0];
        Scene {
            triangles: vec![
                tri(
                    vec3(0.0, 0.0, 0.0),
                    vec3(1.0, 0.0, 0.0),
                    vec3(0.0, 1.0, 0.0),
                    0,
                ),
                tri(
                    vec3(0.0, 0.0, 1.0),
                    vec3(2.0, 0.0, 1.0),
                    vec3(0.0, 2.0, 1.0),
                    1,
                ),
                tri(
                    vec3(0.0, 0.0, 2.0),
                    vec3(1.0, 0.0, 2.0),
                    vec3(0.0, 1.0, 2.0),
                    1,
                ),
            ],
            materials: vec![Material::diffuse("wall", [0.5; 3]), light],
            textures: vec![],
            lights: vec![PunctualLight::Point {
                position: vec3(0.0, 0.0, 5.0),
                intensity: vec3(0.0, 0.0, 0.0),
            }],
            camera: Camera {
                name: "c".into(),
                position: Vec3::ZERO,
                right: vec3(1.0, 0.0, 0.0),
                up: vec3(0.0, 1.0, 0.0),
                forward: vec3(0.0, 0.0, -1.0),
                yfov: 1.0,
            },
        }
    }

    /// Sizes and member offsets of a struct of the parsed shader module, by member name.
    pub(crate) fn wgsl_layout(name: &str) -> (u32, Vec<(String, u32)>) {
        use wgpu::naga;
        let module = naga::front::wgsl::parse_str(crate::gpu::TRACE_WGSL).expect("trace.wgsl");
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).expect("layout");
        let (handle, ty) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("trace.wgsl has no struct {name}"));
        let naga::TypeInner::Struct { members, .. } = &ty.inner else {
            panic!("{name} is not a struct");
        };
        let members = members
            .iter()
            .map(|m| (m.name.clone().unwrap_or_default(), m.offset))
            .collect();
        (layouter[handle].size, members)
    }

    /// Every record the CPU uploads has the size and member offsets the shader reads, taken
    /// from trace.wgsl itself: change a field on either side and this fails.
    /// The tangent follows the UVs the normal map reads: set 0 here runs along +x; a map on
    /// set 1 (which runs along +y) or on set 0 turned 90° by its transform gets +y.
    #[test]
    fn the_tangent_frame_follows_the_normal_maps_uv_set_and_transform() {
        let triangle = Triangle {
            positions: [
                vec3(0.0, 0.0, 0.0),
                vec3(1.0, 0.0, 0.0),
                vec3(0.0, 1.0, 0.0),
            ],
            normals: None,
            uvs: [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]],
            uvs1: Some([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0]]),
            colors: None,
            material: 0,
            object: 0,
        };
        let tangent_with = |map: Option<TextureRef>| {
            let mut material = Material::diffuse("bumpy", [0.5; 3]);
            material.normal_texture = map;
            let t = tangent(&triangle, normal_map_uvs(&triangle, &material));
            [t[0], t[1], t[2]].map(|v| (v * 1e5).round() / 1e5)
        };
        assert_eq!(tangent_with(None), [1.0, 0.0, 0.0]);
        assert_eq!(tangent_with(Some(TextureRef::plain(0))), [1.0, 0.0, 0.0]);
        let second_set = TextureRef {
            tex_coord: 1,
            ..TextureRef::plain(0)
        };
        assert_eq!(tangent_with(Some(second_set)), [0.0, 1.0, 0.0]);
        let turned = TextureRef {
            transform: UvTransform::new([0.0; 2], std::f32::consts::FRAC_PI_2, [1.0; 2]),
            ..TextureRef::plain(0)
        };
        let t = tangent_with(Some(turned));
        assert_eq!([t[0].abs(), t[1].abs(), t[2]], [0.0, 1.0, 0.0], "{t:?}");
    }

    #[test]
    fn records_match_the_parsed_wgsl_structs() {
        use std::mem::{offset_of, size_of};
        // (WGSL struct, Rust size, [(WGSL member, Rust offset)])
        type Record = (&'static str, usize, Vec<(&'static str, usize)>);
        let records: [Record; 7] = [
            (
                "Node",
                size_of::<BvhNode>(),
                vec![
                    ("bmin", offset_of!(BvhNode, min)),
                    ("left_or_first", offset_of!(BvhNode, left_or_first)),
                    ("bmax", offset_of!(BvhNode, max)),
                    ("count", offset_of!(BvhNode, count)),
                ],
            ),
            (
                "TriPos",
                size_of::<GpuTriPos>(),
                vec![
                    ("v0", offset_of!(GpuTriPos, v0)),
                    ("e1", offset_of!(GpuTriPos, e1)),
                    ("e2", offset_of!(GpuTriPos, e2)),
                ],
            ),
            (
                "TriAttr",
                size_of::<GpuTriAttr>(),
                vec![
                    ("n0", offset_of!(GpuTriAttr, n0)),
                    ("n1", offset_of!(GpuTriAttr, n1)),
                    ("n2", offset_of!(GpuTriAttr, n2)),
                    ("v", offset_of!(GpuTriAttr, v)),
                    ("tangent", offset_of!(GpuTriAttr, tangent)),
                    ("material", offset_of!(GpuTriAttr, material)),
                    ("flags", offset_of!(GpuTriAttr, flags)),
                    ("extra", offset_of!(GpuTriAttr, extra)),
                    ("object", offset_of!(GpuTriAttr, object)),
                ],
            ),
            (
                "TriExtra",
                size_of::<GpuTriExtra>(),
                vec![
                    ("colors01", offset_of!(GpuTriExtra, colors01)),
                    ("colors2", offset_of!(GpuTriExtra, colors2)),
                    ("uv1_u", offset_of!(GpuTriExtra, uv1_u)),
                    ("uv1_v", offset_of!(GpuTriExtra, uv1_v)),
                ],
            ),
            (
                "UvMap",
                size_of::<GpuUvMap>(),
                vec![
                    ("row0", offset_of!(GpuUvMap, row0)),
                    ("row1", offset_of!(GpuUvMap, row1)),
                ],
            ),
            (
                "Material",
                size_of::<GpuMaterial>(),
                vec![
                    ("base_color", offset_of!(GpuMaterial, base_color)),
                    ("emissive", offset_of!(GpuMaterial, emissive)),
                    ("params", offset_of!(GpuMaterial, params)),
                    ("specular_color", offset_of!(GpuMaterial, specular_color)),
                    ("textures", offset_of!(GpuMaterial, textures)),
                    ("transmission", offset_of!(GpuMaterial, transmission)),
                    ("absorption", offset_of!(GpuMaterial, absorption)),
                ],
            ),
            (
                "Light",
                size_of::<GpuLight>(),
                vec![
                    ("kind", offset_of!(GpuLight, kind)),
                    ("index", offset_of!(GpuLight, index)),
                    ("select_pdf", offset_of!(GpuLight, select_pdf)),
                    ("cdf", offset_of!(GpuLight, cdf)),
                    ("position", offset_of!(GpuLight, position)),
                    ("direction", offset_of!(GpuLight, direction)),
                    ("intensity", offset_of!(GpuLight, intensity)),
                ],
            ),
        ];
        for (name, rust_size, rust_members) in records {
            let (size, members) = wgsl_layout(name);
            assert_eq!(size as usize, rust_size, "size of {name}");
            let wgsl: Vec<(String, usize)> =
                members.into_iter().map(|(n, o)| (n, o as usize)).collect();
            let rust: Vec<(String, usize)> = rust_members
                .into_iter()
                .map(|(n, o)| (n.to_string(), o))
                .collect();
            assert_eq!(wgsl, rust, "members of {name} (name, offset)");
        }
    }

    #[test]
    fn only_what_uses_them_gets_extras_and_uv_maps() {
        let mut scene = quad_scene();
        scene.textures = vec![Texture {
            width: 1,
            height: 1,
            rgba8: vec![255; 4].into(),
            wrap_s: crate::scene::Wrap::Repeat,
            wrap_t: crate::scene::Wrap::Repeat,
            nearest: false,
        }];
        scene.materials[0].base_color_texture = Some(TextureRef::plain(0));
        let plain = pack(&scene, BvhLayout::Binary);
        assert_eq!(plain.tri_extra.len(), 1, "one dummy record");
        assert_eq!(plain.uv_maps.len(), 1, "one dummy record");
        assert!(plain.tri_attr.iter().all(|a| a.flags & 2 == 0));
        assert_eq!(plain.materials[0].textures, [0, -1, -1, -1]);
        assert_eq!(plain.textures.len(), 4 + 1, "one header, one texel");
        assert!(!plain.uses_extras());

        scene.triangles[1].colors = Some([[0.5; 4]; 3]);
        let mut second_set = TextureRef::plain(0);
        second_set.tex_coord = 1;
        let mut moved = TextureRef::plain(0);
        moved.transform = UvTransform::new([0.5, 0.0], 0.0, [1.0, 1.0]);
        scene.materials[1].emissive_texture = Some(second_set);
        scene.materials[1].normal_texture = Some(moved);
        let packed = pack(&scene, BvhLayout::Binary);
        let extras: Vec<&GpuTriAttr> = packed
            .tri_attr
            .iter()
            .filter(|a| a.flags & 2 != 0)
            .collect();
        assert_eq!(extras.len(), 1);
        let half = pack2x16unorm(0.5, 0.5);
        assert_eq!(half, 32768 | 32768 << 16);
        assert_eq!(
            packed.tri_extra[extras[0].extra as usize].colors2,
            [half, half, 0, 0]
        );
        // The plain slot reads the texture's own header; the others get one each, sharing
        // its texels: TEXCOORD_1 (bit 9), then the transform (uv map 1 in bits 16-31).
        assert_eq!(packed.materials[0].textures, [0, -1, -1, -1]);
        assert_eq!(packed.materials[1].textures, [-1, -1, 1, 2]);
        let header = |i: usize| &packed.textures[i * 4..i * 4 + 4];
        assert_eq!(header(1)[..3], header(0)[..3]);
        assert_eq!(header(1)[3], header(0)[3] | 1 << 9);
        assert_eq!(header(2)[3], header(0)[3] | 1 << 16);
        assert_eq!(packed.uv_maps.len(), 1);
        assert_eq!(packed.uv_maps[0].row0, [1.0, 0.0, 0.5, 0.0]);
        assert!(packed.uses_extras());
    }

    #[test]
    fn the_wide_layout_falls_back_to_binary_beyond_its_extent() {
        let mut scene = quad_scene();
        let wide = pack(&scene, BvhLayout::Wide);
        assert_eq!(wide.layout, BvhLayout::Wide);
        assert!(wide.wide_nodes[0].children() > 0 && wide.nodes == vec![BvhNode::zeroed()]);
        scene.triangles[0].positions[0] = vec3(1e20, 0.0, 0.0);
        let far = pack(&scene, BvhLayout::Wide);
        assert_eq!(far.layout, BvhLayout::Binary);
        assert!(far.nodes.len() > 1 && far.wide_nodes == vec![WideNode::default()]);
        // The lights do not depend on the tree: same records up to the triangles' places.
        let binary = pack(&quad_scene(), BvhLayout::Binary);
        let pdfs = |p: &PackedScene| p.lights.iter().map(|l| l.select_pdf).collect::<Vec<_>>();
        assert_eq!(pdfs(&wide), pdfs(&binary));
    }

    #[test]
    fn emitters_are_selected_by_power() {
        let packed = pack(&quad_scene(), BvhLayout::Binary);
        // Two emissive triangles with areas 2 and 0.5; the black point light is dropped.
        assert_eq!(packed.light_count, 2);
        let pdfs: Vec<f32> = packed.lights.iter().map(|l| l.select_pdf).collect();
        let mut sorted = pdfs.clone();
        sorted.sort_by(f32::total_cmp);
        assert!(
            (sorted[0] - 0.2).abs() < 1e-6 && (sorted[1] - 0.8).abs() < 1e-6,
            "{pdfs:?}"
        );
        assert_eq!(packed.lights.last().unwrap().cdf, 1.0);
        for l in &packed.lights {
            assert_eq!(packed.tri_attr[l.index as usize].v[3], l.select_pdf);
            assert_eq!(packed.tri_attr[l.index as usize].material, 1);
        }
    }
}
