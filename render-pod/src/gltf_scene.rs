//! glTF 2.0 → [`Scene`]: `.gltf` (embedded or external buffers/images) and `.glb`.
//!
//! Parsing and decoding happen once ([`GltfAsset::parse`]); [`GltfAsset::scene_at`] then walks
//! the node hierarchy at a point in time (glTF animations of translation, rotation, scale and
//! morph target weights are sampled there; skins and morph targets deform meshes, [`deform`])
//! and flattens every triangle into world space. External URIs are fetched through a
//! resolver, so they work for any store.
//!
//! Supported: triangles, triangle strips and fans, indexed or not; `TEXCOORD_0` and
//! `TEXCOORD_1`; `COLOR_0`; perspective cameras; metallic-roughness materials with base-colour,
//! metallic-roughness, emissive and normal textures; KHR_texture_transform;
//! KHR_materials_emissive_strength; KHR_materials_specular (factors); KHR_materials_ior,
//! _transmission and _volume; KHR_lights_punctual; `alphaMode` MASK (cut-outs) and BLEND (stochastic); skins (`JOINTS_n`/`WEIGHTS_n`) and morph
//! targets. What is left out is refused or warned about (`gltf_support`).

use base64::Engine;
use gltf::animation::util::ReadOutputs;
use gltf::animation::{Interpolation, Property};
use gltf::mesh::Mode;

use tessera_shard::SceneLimits;

use crate::error::{Error, Result};
use crate::math::{Mat4, Vec3, vec3};
use crate::scene::{
    Alpha, Camera, Material, PunctualLight, Scene, Texture, TextureRef, Triangle, UvTransform, Wrap,
};
use crate::{deform, gltf_check, gltf_support};

/// Frames per second used to turn a frame number into an animation time (`t = frame / 24`).
pub const FRAMES_PER_SECOND: f64 = 24.0;

/// A parsed glTF asset with its buffers loaded and its images decoded.
pub struct GltfAsset {
    url: String,
    document: gltf::Document,
    buffers: Vec<Vec<u8>>,
    textures: Vec<Texture>,
    /// What the renderer leaves out of this scene ([`gltf_support::warnings`]).
    warnings: Vec<String>,
}

fn decode_data_uri(uri: &str) -> Option<Vec<u8>> {
    let rest = uri.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    if meta.ends_with(";base64") {
        base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .ok()
    } else {
        Some(data.as_bytes().to_vec())
    }
}

fn wrap(mode: gltf::texture::WrappingMode) -> Wrap {
    match mode {
        gltf::texture::WrappingMode::ClampToEdge => Wrap::Clamp,
        gltf::texture::WrappingMode::MirroredRepeat => Wrap::Mirror,
        gltf::texture::WrappingMode::Repeat => Wrap::Repeat,
    }
}

/// Runs a step of loading a file; a panic inside it (a reader of the `gltf` crate tripping over
/// something [`gltf_check`] does not yet refuse) becomes a bad scene instead of a crash that the
/// operator would retry and blame on the node. The property tests call the steps directly and
/// look for this message, so such a gap still fails a test.
pub fn contain_panics<T>(url: &str, step: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Error::bad_scene(url, format!("{LOADER_PANICKED}: {what}")))
    })
}

/// The start of the message of a contained panic.
pub const LOADER_PANICKED: &str =
    "the glTF loader failed on this file (a render-pod bug: please report it)";

/// What an external reference is fetched for, and so how much of it may be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum External {
    /// A buffer: exactly its declared `byteLength` is read (the object must hold at least that).
    Buffer { length: u64 },
    /// An encoded image: the whole object, refused unread when larger than `max_bytes`.
    Image { max_bytes: u64 },
}

/// A decoded image, shared by the textures that use it.
struct DecodedImage {
    width: u32,
    height: u32,
    rgba8: std::sync::Arc<[u8]>,
}

/// An image's size and RGBA8 pixels: checked against the limits from its header, then decoded.
fn decode_image(
    index: usize,
    encoded: &[u8],
    limits: &SceneLimits,
) -> std::result::Result<DecodedImage, String> {
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(encoded))
            .with_guessed_format()
            .map_err(|e| format!("image {index}: {e}"))
    };
    let (width, height) = reader()?
        .into_dimensions()
        .map_err(|e| format!("image {index}: {e} (PNG and JPEG are supported)"))?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_image_pixels {
        return Err(format!(
            "image {index} is {width}x{height}: {pixels} pixels exceed the limit of {} \
             (sceneLimits.maxImagePixels)",
            limits.max_image_pixels
        ));
    }
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(width);
    decoder_limits.max_image_height = Some(height);
    // 16-bit RGBA is the widest layout the PNG decoder produces.
    decoder_limits.max_alloc = Some(pixels.saturating_mul(8).saturating_add(1 << 20));
    let mut reader = reader()?;
    reader.limits(decoder_limits);
    let decoded = reader
        .decode()
        .map_err(|e| format!("image {index}: {e} (PNG and JPEG are supported)"))?;
    Ok(DecodedImage {
        width,
        height,
        rgba8: decoded.into_rgba8().into_raw().into(),
    })
}

impl GltfAsset {
    /// Parses `bytes` (the `.gltf` JSON or a `.glb`) within `limits`; `resolve(uri, what)`
    /// returns the bytes of an external buffer or image referenced relative to the scene. The
    /// document is checked ([`gltf_check`]) before anything is fetched or decoded.
    pub fn parse(
        url: &str,
        bytes: &[u8],
        limits: &SceneLimits,
        resolve: &mut dyn FnMut(&str, External) -> Result<Vec<u8>>,
    ) -> Result<Self> {
        let bad = |reason: String| Error::bad_scene(url, reason);
        let not_gltf = |e: gltf::Error| bad(format!("not a glTF 2.0 file: {e}"));
        let gltf = gltf::Gltf::from_slice_without_validation(bytes).map_err(not_gltf)?;
        gltf_support::refuse_unimplemented(gltf.document.as_json()).map_err(bad)?;
        gltf_check::check_before_validation(gltf.document.as_json()).map_err(bad)?;
        let warnings = gltf_support::warnings(gltf.document.as_json());
        let document = gltf::Document::from_json(gltf.document.into_json()).map_err(not_gltf)?;
        let cost = gltf_check::check(&document, limits).map_err(bad)?;
        let mut blob = gltf.blob;
        let mut buffers = Vec::new();
        for buffer in document.buffers() {
            let length = buffer.length();
            let mut data = match buffer.source() {
                gltf::buffer::Source::Bin => blob.take().ok_or_else(|| {
                    bad(format!(
                        "buffer {} refers to a missing GLB BIN chunk",
                        buffer.index()
                    ))
                })?,
                gltf::buffer::Source::Uri(uri) if uri.starts_with("data:") => decode_data_uri(uri)
                    .ok_or_else(|| bad(format!("buffer {}: malformed data URI", buffer.index())))?,
                gltf::buffer::Source::Uri(uri) => resolve(
                    uri,
                    External::Buffer {
                        length: length as u64,
                    },
                )?,
            };
            if data.len() < length {
                return Err(bad(format!(
                    "buffer {} has {} bytes, the file declares {length}",
                    buffer.index(),
                    data.len(),
                )));
            }
            data.truncate(length);
            buffers.push(data);
        }
        // Only images some texture uses are fetched and decoded, each once.
        let mut used = vec![false; document.images().len()];
        for texture in document.textures() {
            used[texture.source().index()] = true;
        }
        let mut image_bytes_left = limits.max_buffer_bytes.saturating_sub(cost.buffer_bytes);
        let mut images: Vec<Option<DecodedImage>> = Vec::new();
        for image in document.images() {
            if !used[image.index()] {
                images.push(None);
                continue;
            }
            let encoded: std::borrow::Cow<[u8]> = match image.source() {
                gltf::image::Source::View { view, .. } => {
                    // In range: gltf_check checked every view against its buffer.
                    let data = &buffers[view.buffer().index()];
                    std::borrow::Cow::Borrowed(&data[view.offset()..view.offset() + view.length()])
                }
                gltf::image::Source::Uri { uri, .. } if uri.starts_with("data:") => {
                    std::borrow::Cow::Owned(decode_data_uri(uri).ok_or_else(|| {
                        bad(format!("image {}: malformed data URI", image.index()))
                    })?)
                }
                gltf::image::Source::Uri { uri, .. } => {
                    let fetched = resolve(
                        uri,
                        External::Image {
                            max_bytes: image_bytes_left,
                        },
                    )?;
                    image_bytes_left = image_bytes_left.saturating_sub(fetched.len() as u64);
                    std::borrow::Cow::Owned(fetched)
                }
            };
            let decoded = decode_image(image.index(), &encoded, limits).map_err(&bad)?;
            images.push(Some(decoded));
        }
        let mut textures = Vec::new();
        let mut texture_bytes: u64 = 0;
        for texture in document.textures() {
            let image = images[texture.source().index()]
                .as_ref()
                .ok_or_else(|| bad(format!("texture {}: image not loaded", texture.index())))?;
            texture_bytes = texture_bytes.saturating_add(image.rgba8.len() as u64);
            if texture_bytes > limits.max_texture_bytes {
                return Err(bad(format!(
                    "textures need {texture_bytes} bytes or more, over the limit of {} \
                     (sceneLimits.maxTextureBytes)",
                    limits.max_texture_bytes
                )));
            }
            let sampler = texture.sampler();
            textures.push(Texture {
                width: image.width,
                height: image.height,
                rgba8: image.rgba8.clone(),
                wrap_s: wrap(sampler.wrap_s()),
                wrap_t: wrap(sampler.wrap_t()),
                nearest: matches!(
                    sampler.mag_filter(),
                    Some(gltf::texture::MagFilter::Nearest)
                ),
            });
        }
        Ok(GltfAsset {
            url: url.to_string(),
            document,
            buffers,
            textures,
            warnings,
        })
    }

    /// What the renderer leaves out of this scene, one sentence each; empty when nothing.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// True when node transforms change over time.
    pub fn is_animated(&self) -> bool {
        self.document.animations().next().is_some()
    }

    /// The names of the scene's cameras (camera name, else node name), for error messages.
    fn camera_names(&self) -> Vec<String> {
        self.document
            .nodes()
            .filter_map(|n| {
                n.camera()
                    .map(|c| c.name().or(n.name()).unwrap_or("<unnamed>").to_string())
            })
            .collect()
    }

    fn bad(&self, reason: impl Into<String>) -> Error {
        Error::bad_scene(&self.url, reason)
    }

    /// Flattens the default scene at `time` seconds, viewed through camera `camera` (by camera
    /// or node name) or the first camera found in node order.
    pub fn scene_at(&self, time: f64, camera: Option<&str>) -> Result<Scene> {
        let url = self.url.clone();
        contain_panics(&url, || self.flatten(time, camera))
    }

    fn flatten(&self, time: f64, camera: Option<&str>) -> Result<Scene> {
        let gltf_scene = self
            .document
            .default_scene()
            .or_else(|| self.document.scenes().next())
            .ok_or_else(|| self.bad("the file has no scene"))?;
        let animated = self.animate(time as f32)?;
        let worlds = self.node_worlds(&animated);
        let mut out = Scene {
            triangles: Vec::new(),
            materials: self.materials(),
            textures: self.textures.clone(),
            lights: Vec::new(),
            camera: Camera {
                name: String::new(),
                position: Vec3::ZERO,
                right: vec3(1.0, 0.0, 0.0),
                up: vec3(0.0, 1.0, 0.0),
                forward: vec3(0.0, 0.0, -1.0),
                yfov: 0.0,
            },
        };
        let default_material = out.materials.len() as u32;
        out.materials.push(Material::default());
        let mut found_camera = false;
        let mut stack: Vec<gltf::Node> = gltf_scene.nodes().collect();
        stack.reverse();
        while let Some(node) = stack.pop() {
            let world = worlds[node.index()];
            if let Some(mesh) = node.mesh() {
                let skin = node
                    .skin()
                    .map(|skin| self.skin_joints(&skin, &worlds))
                    .transpose()?;
                // Animated weights, else the node's, else the mesh's defaults.
                let weights = animated[node.index()]
                    .weights
                    .as_deref()
                    .or(node.weights())
                    .or(mesh.weights());
                let deformation = Deformation {
                    skin: skin.as_deref(),
                    weights,
                };
                let object = node.index() as u32 + 1;
                self.add_mesh(
                    &mesh,
                    &world,
                    object,
                    deformation,
                    default_material,
                    &mut out.triangles,
                )?;
            }
            if let Some(cam) = node.camera() {
                let name = cam.name().or(node.name()).unwrap_or("");
                let wanted = match camera {
                    Some(want) => {
                        !found_camera && (cam.name() == Some(want) || node.name() == Some(want))
                    }
                    None => !found_camera,
                };
                if wanted {
                    out.camera = self.camera(&cam, name, &world)?;
                    found_camera = true;
                }
            }
            if let Some(light) = node.light() {
                out.lights.push(punctual_light(&light, &world));
            }
            let children: Vec<_> = node.children().collect();
            stack.extend(children.into_iter().rev());
        }
        if !found_camera {
            return Err(match camera {
                Some(want) => self.bad(format!(
                    "no camera named {want:?} (cameras: {})",
                    self.camera_names().join(", ")
                )),
                None => self.bad("the scene has no camera"),
            });
        }
        Ok(out)
    }

    fn camera(&self, cam: &gltf::Camera, name: &str, world: &Mat4) -> Result<Camera> {
        let yfov = match cam.projection() {
            gltf::camera::Projection::Perspective(p) => p.yfov(),
            gltf::camera::Projection::Orthographic(_) => {
                return Err(self.bad(format!(
                    "camera {name:?} is orthographic; only perspective cameras are supported"
                )));
            }
        };
        if !(yfov > 0.0 && yfov < std::f32::consts::PI) {
            return Err(self.bad(format!("camera {name:?} has yfov {yfov}, expected (0, π)")));
        }
        let forward = world.transform_vector(vec3(0.0, 0.0, -1.0)).try_normalize();
        let up = world.transform_vector(vec3(0.0, 1.0, 0.0));
        let (Some(forward), Some(up)) = (forward, up.try_normalize()) else {
            return Err(self.bad(format!("camera {name:?} has a degenerate transform")));
        };
        let Some(right) = forward.cross(up).try_normalize() else {
            return Err(self.bad(format!("camera {name:?} has a degenerate transform")));
        };
        Ok(Camera {
            name: name.to_string(),
            position: world.transform_point(Vec3::ZERO),
            right,
            up: right.cross(forward),
            forward,
            yfov,
        })
    }

    fn materials(&self) -> Vec<Material> {
        let texref = |info: Option<gltf::texture::Info>| {
            info.map(|i| {
                let transform = i.texture_transform().map(|t| TransformJson {
                    offset: t.offset(),
                    rotation: t.rotation(),
                    scale: t.scale(),
                    tex_coord: t.tex_coord(),
                });
                texture_ref(i.texture().index(), 1.0, i.tex_coord(), transform)
            })
        };
        self.document
            .materials()
            .map(|m| {
                let name = m.name().unwrap_or("").to_string();
                let pbr = m.pbr_metallic_roughness();
                let strength = m.emissive_strength().unwrap_or(1.0);
                let e = m.emissive_factor();
                let (specular, specular_color) = match m.specular() {
                    Some(s) => (s.specular_factor(), s.specular_color_factor()),
                    None => (1.0, [1.0; 3]),
                };
                let transmission = m.transmission();
                // A thickness of 0 is the extension's thin-walled surface.
                let volume = m
                    .volume()
                    .filter(|v| v.thickness_factor() > 0.0)
                    .map(|v| Material::absorption(v.attenuation_color(), v.attenuation_distance()));
                Material {
                    base_color: pbr.base_color_factor(),
                    base_color_texture: texref(pbr.base_color_texture()),
                    metallic: pbr.metallic_factor(),
                    roughness: pbr.roughness_factor(),
                    metallic_roughness_texture: texref(pbr.metallic_roughness_texture()),
                    emissive: [e[0] * strength, e[1] * strength, e[2] * strength],
                    emissive_texture: texref(m.emissive_texture()),
                    normal_texture: m.normal_texture().map(|n| {
                        // The crate reads KHR_texture_transform only on textureInfo objects.
                        let transform = n
                            .extension_value("KHR_texture_transform")
                            .and_then(|v| serde_json::from_value(v.clone()).ok());
                        texture_ref(n.texture().index(), n.scale(), n.tex_coord(), transform)
                    }),
                    specular,
                    specular_color,
                    // Finite and at least 1 (an IOR of 0 would be a perfect mirror).
                    ior: m
                        .ior()
                        .filter(|i| i.is_finite() && *i >= 1.0)
                        .unwrap_or(1.5),
                    transmission: transmission
                        .as_ref()
                        .map_or(0.0, |t| t.transmission_factor().clamp(0.0, 1.0)),
                    transmission_texture: texref(
                        transmission.as_ref().and_then(|t| t.transmission_texture()),
                    ),
                    volume,
                    double_sided: m.double_sided(),
                    alpha: match m.alpha_mode() {
                        gltf::material::AlphaMode::Mask => {
                            Alpha::Mask(m.alpha_cutoff().unwrap_or(0.5))
                        }
                        gltf::material::AlphaMode::Blend => Alpha::Blend,
                        gltf::material::AlphaMode::Opaque => Alpha::Opaque,
                    },
                    name,
                }
            })
            .collect()
    }

    /// World matrices of every node at the sampled time (the node graph is a forest:
    /// `gltf_check`), whether or not the default scene shows it: joints may lie outside it.
    fn node_worlds(&self, animated: &[NodeAnimation]) -> Vec<Mat4> {
        let count = self.document.nodes().len();
        let mut parent = vec![None; count];
        for node in self.document.nodes() {
            for child in node.children() {
                parent[child.index()] = Some(node.index());
            }
        }
        let local = |node: &gltf::Node| match animated[node.index()].trs {
            Some((t, r, s)) => Mat4::from_trs(t, r, s),
            None => Mat4(node.transform().matrix()),
        };
        let mut worlds: Vec<Option<Mat4>> = vec![None; count];
        let nodes: Vec<gltf::Node> = self.document.nodes().collect();
        for start in 0..count {
            // Walk up to the nearest node already placed (or a root), then place the chain.
            let mut chain = vec![start];
            while let Some(p) = parent[*chain.last().unwrap_or(&start)] {
                if worlds[p].is_some() {
                    break;
                }
                chain.push(p);
            }
            for &n in chain.iter().rev() {
                if worlds[n].is_some() {
                    continue;
                }
                let above = parent[n].and_then(|p| worlds[p]).unwrap_or(Mat4::IDENTITY);
                worlds[n] = Some(above.mul(&local(&nodes[n])));
            }
        }
        worlds
            .into_iter()
            .map(|w| w.unwrap_or(Mat4::IDENTITY))
            .collect()
    }

    /// The joint matrices of `skin` (`world(joint) · inverseBind`).
    fn skin_joints(&self, skin: &gltf::Skin, worlds: &[Mat4]) -> Result<Vec<Mat4>> {
        let joint_worlds: Vec<Mat4> = skin.joints().map(|j| worlds[j.index()]).collect();
        let reader = skin.reader(|b| self.buffers.get(b.index()).map(|d| d.as_slice()));
        let inverse_binds: Vec<Mat4> = match reader.read_inverse_bind_matrices() {
            Some(matrices) => matrices.map(Mat4).collect(),
            None => vec![Mat4::IDENTITY; joint_worlds.len()],
        };
        if inverse_binds.len() < joint_worlds.len() {
            return Err(self.bad(format!(
                "skin {}: {} inverse bind matrices for {} joints",
                skin.index(),
                inverse_binds.len(),
                joint_worlds.len()
            )));
        }
        Ok(deform::joint_matrices(&joint_worlds, &inverse_binds))
    }

    fn add_mesh(
        &self,
        mesh: &gltf::Mesh,
        world: &Mat4,
        object: u32,
        deformation: Deformation,
        default_material: u32,
        out: &mut Vec<Triangle>,
    ) -> Result<()> {
        let mirrored = world.determinant3() < 0.0;
        for prim in mesh.primitives() {
            let mode = prim.mode();
            // Points and lines: named in the scene's warnings.
            if !matches!(
                mode,
                Mode::Triangles | Mode::TriangleStrip | Mode::TriangleFan
            ) {
                continue;
            }
            let reader = prim.reader(|b| self.buffers.get(b.index()).map(|d| d.as_slice()));
            let mut positions: Vec<Vec3> = reader
                .read_positions()
                .ok_or_else(|| {
                    self.bad(format!(
                        "mesh {:?}: primitive without POSITION",
                        mesh.name().unwrap_or("")
                    ))
                })?
                .map(Vec3::from_array)
                .collect();
            let mut normals: Option<Vec<Vec3>> = reader
                .read_normals()
                .map(|it| it.map(Vec3::from_array).collect());
            if let Some(weights) = deformation.weights {
                let (mut position_deltas, mut normal_deltas) = (Vec::new(), Vec::new());
                for (p, n, _) in reader.read_morph_targets() {
                    let read = |it: Option<gltf::mesh::util::ReadPositions>| {
                        it.map(|it| it.map(Vec3::from_array).collect())
                            .unwrap_or_default()
                    };
                    position_deltas.push(read(p));
                    normal_deltas.push(
                        n.map(|it| it.map(Vec3::from_array).collect())
                            .unwrap_or_default(),
                    );
                }
                deform::morph(&mut positions, &position_deltas, weights);
                if let Some(normals) = normals.as_mut() {
                    deform::morph(normals, &normal_deltas, weights);
                }
            }
            // Each vertex's matrix: the node's, or its skinning matrix.
            let matrices: Vec<Mat4> = match deformation.skin {
                Some(joints) => self.skinning_matrices(&prim, joints, positions.len())?,
                None => Vec::new(),
            };
            let matrix = |i: usize| matrices.get(i).unwrap_or(world);
            for (i, p) in positions.iter_mut().enumerate() {
                *p = matrix(i).transform_point(*p);
            }
            if let Some(normals) = normals.as_mut() {
                for (i, n) in normals.iter_mut().enumerate() {
                    *n = matrix(i)
                        .transform_normal(*n)
                        .try_normalize()
                        .unwrap_or(Vec3::ZERO);
                }
            }
            let uvs: Option<Vec<[f32; 2]>> =
                reader.read_tex_coords(0).map(|t| t.into_f32().collect());
            let uvs1: Option<Vec<[f32; 2]>> =
                reader.read_tex_coords(1).map(|t| t.into_f32().collect());
            let colors: Option<Vec<[f32; 4]>> =
                reader.read_colors(0).map(|c| c.into_rgba_f32().collect());
            let indices: Vec<u32> = match reader.read_indices() {
                Some(i) => i.into_u32().collect(),
                None => (0..positions.len() as u32).collect(),
            };
            let corners: Vec<[u32; 3]> = match mode {
                Mode::Triangles => indices
                    .chunks_exact(3)
                    .map(|c| [c[0], c[1], c[2]])
                    .collect(),
                Mode::TriangleStrip => (2..indices.len())
                    .map(|i| {
                        if i % 2 == 0 {
                            [indices[i - 2], indices[i - 1], indices[i]]
                        } else {
                            [indices[i - 1], indices[i - 2], indices[i]]
                        }
                    })
                    .collect(),
                _ => (2..indices.len())
                    .map(|i| [indices[0], indices[i - 1], indices[i]])
                    .collect(),
            };
            let material = prim
                .material()
                .index()
                .map_or(default_material, |m| m as u32);
            for mut c in corners {
                if c.iter().any(|&i| i as usize >= positions.len()) {
                    return Err(self.bad(format!(
                        "mesh {:?}: vertex index out of range ({} vertices)",
                        mesh.name().unwrap_or(""),
                        positions.len()
                    )));
                }
                let mirrored = match deformation.skin {
                    Some(_) => matrix(c[0] as usize).determinant3() < 0.0,
                    None => mirrored,
                };
                if mirrored {
                    c.swap(1, 2);
                }
                let p = c.map(|i| positions[i as usize]);
                if !p.iter().all(|v| v.is_finite()) {
                    continue;
                }
                let tri = Triangle {
                    positions: p,
                    normals: normals
                        .as_ref()
                        .and_then(|n| {
                            c.iter()
                                .map(|&i| n.get(i as usize).copied())
                                .collect::<Option<Vec<_>>>()
                        })
                        .map(|n| [n[0], n[1], n[2]]),
                    uvs: per_vertex(&uvs, c),
                    uvs1: uvs1.as_ref().map(|_| per_vertex(&uvs1, c)),
                    colors: colors.as_ref().map(|_| per_vertex(&colors, c)),
                    material,
                    object,
                };
                if tri.area() > 0.0 {
                    out.push(tri);
                }
            }
        }
        Ok(())
    }

    /// Each vertex's skinning matrix from its `JOINTS_n`/`WEIGHTS_n` sets (all of them).
    fn skinning_matrices(
        &self,
        prim: &gltf::Primitive,
        joints: &[Mat4],
        vertices: usize,
    ) -> Result<Vec<Mat4>> {
        let reader = prim.reader(|b| self.buffers.get(b.index()).map(|d| d.as_slice()));
        let mut influences: Vec<Vec<(u16, f32)>> = vec![Vec::new(); vertices];
        for set in 0.. {
            let (Some(joint_sets), Some(weight_sets)) =
                (reader.read_joints(set), reader.read_weights(set))
            else {
                break;
            };
            for ((slot, j), w) in influences
                .iter_mut()
                .zip(joint_sets.into_u16())
                .zip(weight_sets.into_f32())
            {
                slot.extend(j.into_iter().zip(w));
            }
        }
        influences
            .iter()
            .map(|v| deform::skin_matrix(joints, v).map_err(|e| self.bad(e)))
            .collect()
    }

    /// Per node: the animated (translation, rotation, scale) and morph weights at `time`;
    /// `None` where a node's are not animated.
    fn animate(&self, time: f32) -> Result<Vec<NodeAnimation>> {
        let mut out: Vec<NodeAnimation> =
            vec![NodeAnimation::default(); self.document.nodes().count()];
        for anim in self.document.animations() {
            for channel in anim.channels() {
                let node = channel.target().node();
                let reader = channel.reader(|b| self.buffers.get(b.index()).map(|d| d.as_slice()));
                let (Some(inputs), Some(outputs)) = (reader.read_inputs(), reader.read_outputs())
                else {
                    return Err(self.bad(format!("animation {}: unreadable sampler", anim.index())));
                };
                let times: Vec<f32> = inputs.collect();
                let interpolation = channel.sampler().interpolation();
                let mismatched = || {
                    self.bad(format!(
                        "animation {}: sampler with mismatched input/output counts",
                        anim.index()
                    ))
                };
                let values: Vec<Vec<f32>> = match outputs {
                    ReadOutputs::Translations(t) => t.map(|v| v.to_vec()).collect(),
                    ReadOutputs::Scales(s) => s.map(|v| v.to_vec()).collect(),
                    ReadOutputs::Rotations(r) => r.into_f32().map(|v| v.to_vec()).collect(),
                    ReadOutputs::MorphTargetWeights(w) => {
                        // One weight per target per value (three values a key for splines).
                        let flat: Vec<f32> = w.into_f32().collect();
                        let per_key = if interpolation == Interpolation::CubicSpline {
                            3
                        } else {
                            1
                        };
                        let entries = times.len() * per_key;
                        if entries == 0 || !flat.len().is_multiple_of(entries) {
                            return Err(mismatched());
                        }
                        flat.chunks(flat.len() / entries)
                            .map(<[f32]>::to_vec)
                            .collect()
                    }
                };
                let Some(value) = sample_channel(&times, &values, interpolation, time) else {
                    return Err(mismatched());
                };
                let slot = &mut out[node.index()];
                if channel.target().property() == Property::MorphTargetWeights {
                    slot.weights = Some(value);
                    continue;
                }
                let trs = slot
                    .trs
                    .get_or_insert_with(|| node.transform().decomposed());
                match channel.target().property() {
                    Property::Translation => trs.0 = [value[0], value[1], value[2]],
                    Property::Scale => trs.2 = [value[0], value[1], value[2]],
                    Property::Rotation => {
                        trs.1 = normalize_quat([value[0], value[1], value[2], value[3]])
                    }
                    Property::MorphTargetWeights => {}
                }
            }
        }
        Ok(out)
    }
}

/// A node's animated state at one time; `None`: not animated (the file's values hold).
#[derive(Debug, Clone, Default)]
struct NodeAnimation {
    trs: Option<([f32; 3], [f32; 4], [f32; 3])>,
    weights: Option<Vec<f32>>,
}

/// How a mesh instance is deformed: its skin's joint matrices, its morph weights.
#[derive(Debug, Clone, Copy)]
struct Deformation<'a> {
    skin: Option<&'a [Mat4]>,
    weights: Option<&'a [f32]>,
}

/// A vertex attribute at a triangle's corners (the default where absent or short).
fn per_vertex<T: Copy + Default>(values: &Option<Vec<T>>, corners: [u32; 3]) -> [T; 3] {
    corners.map(|i| {
        values
            .as_ref()
            .and_then(|v| v.get(i as usize).copied())
            .unwrap_or_default()
    })
}

/// KHR_texture_transform as written in the file (defaults per the extension).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransformJson {
    #[serde(default)]
    offset: [f32; 2],
    #[serde(default)]
    rotation: f32,
    #[serde(default = "unit_scale")]
    scale: [f32; 2],
    tex_coord: Option<u32>,
}

fn unit_scale() -> [f32; 2] {
    [1.0, 1.0]
}

/// A texture reference; a `TEXCOORD` set above the ones the renderer reads falls back to
/// `TEXCOORD_0` (the scene's warnings say so, `gltf_support`), as do non-finite transforms.
fn texture_ref(
    texture: usize,
    scale: f32,
    tex_coord: u32,
    transform: Option<TransformJson>,
) -> TextureRef {
    let set = transform.and_then(|t| t.tex_coord).unwrap_or(tex_coord);
    let map = transform
        .map(|t| UvTransform::new(t.offset, t.rotation, t.scale))
        .filter(|m| m.0.iter().flatten().all(|v| v.is_finite()))
        .unwrap_or(UvTransform::IDENTITY);
    TextureRef {
        texture: texture as u32,
        scale,
        tex_coord: if set <= gltf_support::MAX_TEX_COORD {
            set
        } else {
            0
        },
        transform: map,
    }
}

fn punctual_light(light: &gltf::khr_lights_punctual::Light, world: &Mat4) -> PunctualLight {
    let c = light.color();
    let intensity = vec3(c[0], c[1], c[2]) * light.intensity();
    let position = world.transform_point(Vec3::ZERO);
    let direction = world
        .transform_vector(vec3(0.0, 0.0, -1.0))
        .try_normalize()
        .unwrap_or(vec3(0.0, 0.0, -1.0));
    match light.kind() {
        gltf::khr_lights_punctual::Kind::Point => PunctualLight::Point {
            position,
            intensity,
        },
        gltf::khr_lights_punctual::Kind::Directional => PunctualLight::Directional {
            direction,
            irradiance: intensity,
        },
        gltf::khr_lights_punctual::Kind::Spot {
            inner_cone_angle,
            outer_cone_angle,
        } => PunctualLight::Spot {
            position,
            direction,
            intensity,
            cos_inner: inner_cone_angle.cos(),
            cos_outer: outer_cone_angle.cos(),
        },
    }
}

fn normalize_quat(q: [f32; 4]) -> [f32; 4] {
    let len = (q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]).sqrt();
    if len > 0.0 && len.is_finite() {
        q.map(|v| v / len)
    } else {
        [0.0, 0.0, 0.0, 1.0]
    }
}

fn slerp(a: &[f32], b: &[f32], t: f32) -> Vec<f32> {
    let mut dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let b: Vec<f32> = if dot < 0.0 {
        dot = -dot;
        b.iter().map(|v| -v).collect()
    } else {
        b.to_vec()
    };
    if dot > 0.9995 {
        return a.iter().zip(&b).map(|(x, y)| x + (y - x) * t).collect();
    }
    let theta = dot.clamp(-1.0, 1.0).acos();
    let s = theta.sin();
    let (wa, wb) = (((1.0 - t) * theta).sin() / s, (t * theta).sin() / s);
    a.iter().zip(&b).map(|(x, y)| x * wa + y * wb).collect()
}

/// Samples one animation channel at `time` (clamped to the keyframe range). `values` holds one
/// entry per keyframe, or three (in-tangent, value, out-tangent) for cubic splines. Rotations
/// (4 components) are slerped when linear. `None` when the counts do not match.
pub fn sample_channel(
    times: &[f32],
    values: &[Vec<f32>],
    interpolation: Interpolation,
    time: f32,
) -> Option<Vec<f32>> {
    let cubic = interpolation == Interpolation::CubicSpline;
    let per_key = if cubic { 3 } else { 1 };
    if times.is_empty() || values.len() != times.len() * per_key {
        return None;
    }
    let value = |k: usize| &values[k * per_key + usize::from(cubic)];
    if time <= times[0] || times.len() == 1 {
        return Some(value(0).clone());
    }
    let last = times.len() - 1;
    if time >= times[last] {
        return Some(value(last).clone());
    }
    let k = times
        .partition_point(|&t| t <= time)
        .saturating_sub(1)
        .min(last - 1);
    let (t0, t1) = (times[k], times[k + 1]);
    let dt = t1 - t0;
    let u = if dt > 0.0 { (time - t0) / dt } else { 0.0 };
    Some(match interpolation {
        Interpolation::Step => value(k).clone(),
        Interpolation::Linear if value(k).len() == 4 => slerp(value(k), value(k + 1), u),
        Interpolation::Linear => value(k)
            .iter()
            .zip(value(k + 1))
            .map(|(a, b)| a + (b - a) * u)
            .collect(),
        Interpolation::CubicSpline => {
            let (p0, m0) = (value(k), &values[k * 3 + 2]);
            let (p1, m1) = (value(k + 1), &values[(k + 1) * 3]);
            let (u2, u3) = (u * u, u * u * u);
            let (h00, h10, h01, h11) = (
                2.0 * u3 - 3.0 * u2 + 1.0,
                u3 - 2.0 * u2 + u,
                -2.0 * u3 + 3.0 * u2,
                u3 - u2,
            );
            (0..p0.len())
                .map(|i| h00 * p0[i] + h10 * dt * m0[i] + h01 * p1[i] + h11 * dt * m1[i])
                .collect()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_external(uri: &str, _: External) -> Result<Vec<u8>> {
        Err(Error::bad_scene(uri, "no external files in this test"))
    }

    const CBOX: &str = include_str!("../tests/scenes/cbox.gltf");

    #[test]
    fn cbox_loads_with_camera_materials_and_emitter() {
        let asset = GltfAsset::parse(
            "cbox.gltf",
            CBOX.as_bytes(),
            &SceneLimits::DEFAULT,
            &mut no_external,
        )
        .unwrap();
        let scene = asset.scene_at(0.0, None).unwrap();
        assert_eq!(scene.triangles.len(), 36);
        assert!((scene.camera.position.z - 3.9).abs() < 1e-6);
        assert!((scene.camera.forward.z + 1.0).abs() < 1e-6);
        assert!((scene.camera.yfov - 0.686_048_8).abs() < 1e-5);
        let light = scene.materials.iter().find(|m| m.name == "light").unwrap();
        assert!((light.emissive[0] - 18.387).abs() < 1e-3);
        assert!(!light.double_sided);
        let white = scene.materials.iter().find(|m| m.name == "white").unwrap();
        assert_eq!(white.specular, 0.0);
        assert_eq!(white.metallic, 0.0);
        // The light quad faces down (−Y) into the box.
        let emitters: Vec<_> = scene
            .triangles
            .iter()
            .filter(|t| scene.materials[t.material as usize].is_emissive())
            .collect();
        assert_eq!(emitters.len(), 2);
        for t in emitters {
            assert!(t.cross().y < 0.0);
        }
        assert!(asset.scene_at(0.0, Some("nope")).is_err());
    }

    #[test]
    fn garbage_is_a_bad_scene() {
        for bytes in [
            &b"not json"[..],
            b"{}",
            b"{\"asset\":{\"version\":\"2.0\"}}",
        ] {
            let err = GltfAsset::parse("x.gltf", bytes, &SceneLimits::DEFAULT, &mut no_external)
                .and_then(|a| a.scene_at(0.0, None).map(|_| ()));
            let err = err.expect_err("must fail");
            assert_eq!(
                err.exit_code(),
                tessera_shard::contract::exit::BAD_INPUT,
                "{err}"
            );
        }
    }

    #[test]
    fn channels_sample_linear_step_cubic_and_slerp() {
        let times = [0.0, 1.0, 2.0];
        let values = vec![vec![0.0], vec![10.0], vec![30.0]];
        let lin = |t| sample_channel(&times, &values, Interpolation::Linear, t).unwrap()[0];
        assert_eq!(lin(-1.0), 0.0);
        assert_eq!(lin(0.5), 5.0);
        assert_eq!(lin(1.5), 20.0);
        assert_eq!(lin(9.0), 30.0);
        assert_eq!(
            sample_channel(&times, &values, Interpolation::Step, 1.7).unwrap()[0],
            10.0
        );
        // Cubic spline with zero tangents passes through the keys and eases between them.
        let cubic: Vec<Vec<f32>> = values
            .iter()
            .flat_map(|v| [vec![0.0], v.clone(), vec![0.0]])
            .collect();
        let c = |t| sample_channel(&times, &cubic, Interpolation::CubicSpline, t).unwrap()[0];
        assert_eq!(c(1.0), 10.0);
        assert!((c(0.5) - 5.0).abs() < 1e-6);
        // 90° about Z halfway between identity and 180°.
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let q = sample_channel(
            &[0.0, 1.0],
            &[vec![0.0, 0.0, 0.0, 1.0], vec![0.0, 0.0, 1.0, 0.0]],
            Interpolation::Linear,
            0.5,
        )
        .unwrap();
        assert!((q[2] - h).abs() < 1e-5 && (q[3] - h).abs() < 1e-5);
        assert!(sample_channel(&times, &values[..2], Interpolation::Linear, 0.0).is_none());
    }
}
