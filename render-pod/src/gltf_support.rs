//! What render-pod implements of glTF 2.0, judged from a document's JSON before anything is
//! fetched. An extension the file *requires* (`extensionsRequired`) that is not implemented
//! refuses the scene (exit 3, naming it): the picture would be wrong. Whatever else the
//! renderer leaves out — an extension the file merely uses, a texture
//! reading a third UV set, points and lines — becomes a warning that the render pod logs and
//! writes into every shard's manifest, so a picture rendered without part of its scene never
//! passes silently. What changes nothing in the picture (an extra UV set no texture reads) is
//! not mentioned.

use gltf::json::Root;
use gltf::json::mesh::Mode;
use gltf::json::validation::Checked;

/// Extensions the renderer reads (KHR_materials_specular without its textures: a material
/// that has them gets a warning).
pub const IMPLEMENTED_EXTENSIONS: &[&str] = &[
    "KHR_lights_punctual",
    "KHR_materials_emissive_strength",
    "KHR_materials_ior",
    "KHR_materials_specular",
    "KHR_materials_transmission",
    "KHR_materials_volume",
    "KHR_texture_transform",
];

/// Highest `TEXCOORD_n` set a texture may read.
pub const MAX_TEX_COORD: u32 = 1;

/// The scene's required extensions that are not implemented, as a refusal.
pub fn refuse_unimplemented(root: &Root) -> Result<(), String> {
    let missing: Vec<&str> = root
        .extensions_required
        .iter()
        .map(String::as_str)
        .filter(|e| !IMPLEMENTED_EXTENSIONS.contains(e))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the scene requires {} (extensionsRequired), which render-pod does not implement; it \
         implements {}",
        missing.join(", "),
        IMPLEMENTED_EXTENSIONS.join(", ")
    ))
}

/// What the renderer leaves out of this scene, one sentence each, in a stable order.
pub fn warnings(root: &Root) -> Vec<String> {
    let mut out = Vec::new();
    for extension in &root.extensions_used {
        if !IMPLEMENTED_EXTENSIONS.contains(&extension.as_str()) {
            out.push(format!(
                "extension {extension} is used but not implemented: the scene renders without it"
            ));
        }
    }
    let specular_textures = names_of(root, |m| {
        m.extensions
            .as_ref()
            .and_then(|e| e.specular.as_ref())
            .is_some_and(|s| s.specular_texture.is_some() || s.specular_color_texture.is_some())
    });
    if !specular_textures.is_empty() {
        out.push(format!(
            "KHR_materials_specular textures are not implemented, only its factors (materials {})",
            specular_textures.join(", ")
        ));
    }
    let primitives = || root.meshes.iter().flat_map(|m| m.primitives.iter());
    let skipped = primitives()
        .filter(|p| {
            !matches!(
                p.mode,
                Checked::Valid(Mode::Triangles | Mode::TriangleStrip | Mode::TriangleFan)
            )
        })
        .count();
    if skipped > 0 {
        out.push(format!(
            "{skipped} primitive(s) of points or lines are not rendered"
        ));
    }
    let wide = names_of(root, |m| tex_coords_of(m).any(|set| set > MAX_TEX_COORD));
    if !wide.is_empty() {
        out.push(format!(
            "textures read TEXCOORD_0 and TEXCOORD_1 only; a higher set falls back to \
             TEXCOORD_0 (materials {})",
            wide.join(", ")
        ));
    }
    out
}

/// The materials that `pick` picks, by index and name.
fn names_of(root: &Root, pick: impl Fn(&gltf::json::Material) -> bool) -> Vec<String> {
    root.materials
        .iter()
        .enumerate()
        .filter(|(_, m)| pick(m))
        .map(|(i, m)| match &m.name {
            Some(name) => format!("{i} {name:?}"),
            None => i.to_string(),
        })
        .collect()
}

/// The `TEXCOORD` sets a material's textures read (KHR_texture_transform may override them).
fn tex_coords_of(m: &gltf::json::Material) -> impl Iterator<Item = u32> + '_ {
    let pbr = &m.pbr_metallic_roughness;
    let infos = [
        pbr.base_color_texture.as_ref(),
        pbr.metallic_roughness_texture.as_ref(),
        m.emissive_texture.as_ref(),
    ];
    let overridden = |info: &gltf::json::texture::Info| {
        info.extensions
            .as_ref()
            .and_then(|e| e.texture_transform.as_ref())
            .and_then(|t| t.tex_coord)
            .unwrap_or(info.tex_coord)
    };
    infos
        .into_iter()
        .flatten()
        .map(overridden)
        .chain(m.normal_texture.as_ref().map(|n| n.tex_coord))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(json: serde_json::Value) -> Root {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_required_extension_not_implemented_refuses_the_scene_by_name() {
        let required = root(serde_json::json!({
            "asset": {"version": "2.0"},
            "extensionsUsed": ["KHR_draco_mesh_compression", "KHR_texture_transform"],
            "extensionsRequired": ["KHR_draco_mesh_compression", "KHR_texture_transform"],
        }));
        let refusal = refuse_unimplemented(&required).unwrap_err();
        assert!(
            refusal
                .starts_with("the scene requires KHR_draco_mesh_compression (extensionsRequired)"),
            "{refusal}"
        );
        assert!(
            refusal.contains("implements KHR_lights_punctual"),
            "{refusal}"
        );
        let fine = root(serde_json::json!({
            "asset": {"version": "2.0"},
            "extensionsRequired": ["KHR_texture_transform", "KHR_materials_specular"],
        }));
        assert_eq!(refuse_unimplemented(&fine), Ok(()));
    }

    #[test]
    fn what_is_left_out_is_named() {
        let scene = root(serde_json::json!({
            "asset": {"version": "2.0"},
            "extensionsUsed": ["KHR_materials_clearcoat", "KHR_materials_specular",
                               "KHR_lights_punctual"],
            "skins": [{"joints": [0]}],
            "nodes": [{}],
            // Skins and morph targets render: no warning.
            "meshes": [{"primitives": [
                {"attributes": {"POSITION": 0, "TEXCOORD_2": 0}, "targets": [{"POSITION": 0}]},
                {"attributes": {"POSITION": 0}, "mode": 1}
            ]}],
            "materials": [
                {"name": "glass", "alphaMode": "BLEND", "extensions": {"KHR_materials_specular":
                    {"specularTexture": {"index": 0}}}},
                {"pbrMetallicRoughness": {"baseColorTexture": {"index": 0, "texCoord": 3}}}
            ],
        }));
        let warnings = warnings(&scene);
        let expected = [
            "extension KHR_materials_clearcoat is used but not implemented",
            "KHR_materials_specular textures are not implemented, only its factors (materials 0 \"glass\")",
            "1 primitive(s) of points or lines are not rendered",
            "a higher set falls back to TEXCOORD_0 (materials 1)",
        ];
        assert_eq!(warnings.len(), expected.len(), "{warnings:#?}");
        for (warning, start) in warnings.iter().zip(expected) {
            assert!(warning.contains(start), "{warning:?} lacks {start:?}");
        }
        let plain = root(serde_json::json!({"asset": {"version": "2.0"},
            "extensionsUsed": ["KHR_lights_punctual", "KHR_materials_specular"],
            "materials": [{"extensions": {"KHR_materials_specular": {"specularFactor": 0.5}}}],
            // A third UV set no texture reads changes nothing in the picture.
            "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "TEXCOORD_2": 0}}]}]}));
        assert!(super::warnings(&plain).is_empty());
    }
}
