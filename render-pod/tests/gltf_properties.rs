//! Property tests for the glTF loader: arbitrary bytes and randomly broken documents are loaded
//! or refused as a bad scene that names the file, never a panic (debug builds included, where
//! the `gltf` crate's readers assert), and never more work than the limits allow.

use proptest::prelude::*;
use render_pod::Error;
use render_pod::gltf_scene::{External, GltfAsset};
use serde_json::{Value, json};
use tessera_shard::SceneLimits;

const URL: &str = "memory:///prop/scene.gltf";

/// Small budgets, so a document that passes them is cheap to flatten.
const LIMITS: SceneLimits = SceneLimits {
    max_scene_bytes: 1 << 20,
    max_buffer_bytes: 1 << 20,
    max_nodes: 1_000,
    max_instances: 1_000,
    max_vertices: 100_000,
    max_triangles: 100_000,
    max_image_pixels: 1 << 16,
    max_texture_bytes: 1 << 20,
    max_keyframes: 100_000,
};

fn load(bytes: &[u8]) -> Result<(), Error> {
    let mut no_files = |uri: &str, _: External| -> Result<Vec<u8>, Error> {
        Err(Error::bad_scene(URL, format!("no external files ({uri})")))
    };
    let asset = GltfAsset::parse(URL, bytes, &LIMITS, &mut no_files)?;
    asset.scene_at(0.5, None).map(|_| ())
}

fn assert_named_bad_scene(result: Result<(), Error>) -> Result<(), TestCaseError> {
    if let Err(e) = result {
        prop_assert!(
            matches!(&e, Error::BadScene { url, .. } if url == URL),
            "not a bad scene naming the file: {e}"
        );
        prop_assert!(
            !e.to_string()
                .contains(render_pod::gltf_scene::LOADER_PANICKED),
            "{}",
            e
        );
    }
    Ok(())
}

/// A base64 data URI of `n` bytes of a repeating pattern.
fn buffer(n: usize) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = (0..n).map(|i| (i * 37 % 251) as u8).collect();
    format!(
        "data:application/octet-stream;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

prop_compose! {
    fn accessor()(
        view in prop::option::weighted(0.97, 0usize..4),
        offset in prop_oneof![4 => 0usize..64, 1 => any::<u32>().prop_map(|v| v as usize)],
        component in prop_oneof![19 => prop::sample::select(vec![5120u32, 5121, 5122, 5123, 5125, 5126, 5126, 5126]), 1 => Just(5124u32)],
        kind in prop::sample::select(vec!["SCALAR", "VEC2", "VEC3", "VEC4", "MAT2", "MAT4"]),
        count in prop_oneof![4 => 1usize..16, 1 => any::<u32>().prop_map(|v| v as usize)],
        sparse in prop::option::weighted(0.2, (1usize..8, 0usize..4, 0usize..4)),
    ) -> Value {
        let mut a = json!({"componentType": component, "count": count, "type": kind,
                           "byteOffset": offset});
        if let Some(view) = view {
            a["bufferView"] = view.into();
        }
        if kind == "VEC3" {
            a["min"] = json!([0, 0, 0]);
            a["max"] = json!([1, 1, 1]);
        }
        if kind == "SCALAR" {
            a["min"] = json!([0]);
            a["max"] = json!([1]);
        }
        if let Some((n, indices, values)) = sparse {
            a["sparse"] = json!({"count": n,
                "indices": {"bufferView": indices, "componentType": 5125},
                "values": {"bufferView": values}});
        }
        a
    }
}

prop_compose! {
    fn document()(
        short in prop::option::weighted(0.1, 0usize..400),
        declared in prop_oneof![9 => 320usize..400, 1 => any::<u32>().prop_map(|v| v as usize)],
        views in prop::collection::vec((prop_oneof![9 => 0usize..32, 1 => 0usize..300], prop_oneof![9 => 12usize..160, 1 => 0usize..300], prop::option::weighted(0.3, prop_oneof![4 => (1usize..64).prop_map(|s| s * 4), 1 => 0usize..300])), 4),
        position in accessor(),
        accessors in prop::collection::vec(accessor(), 5),
        attributes in prop::collection::vec((prop::sample::select(vec!["NORMAL", "TEXCOORD_0"]), prop_oneof![9 => 0usize..6, 1 => Just(6usize)]), 0..3),
        indices in prop::option::of(0usize..6),
        mode in 0u32..7,
        children in prop::collection::vec(prop::collection::vec(0usize..6, 0..2), 6),
        roots in prop::collection::vec(0usize..6, 1..4),
        animated in prop::option::of((0usize..6, 0usize..6, prop::sample::select(vec!["translation", "rotation", "scale", "weights"]))),
    ) -> Value {
        let nodes: Vec<Value> = children
            .iter()
            .enumerate()
            .map(|(i, kids)| {
                let mut node = json!({"children": kids});
                if i == 0 {
                    node["camera"] = 0.into();
                } else {
                    node["mesh"] = 0.into();
                }
                node
            })
            .collect();
        // Accessor 0 is a POSITION (VEC3 of floats, as the spec requires) at any place.
        let mut position = position;
        position["type"] = "VEC3".into();
        position["componentType"] = 5126.into();
        position["min"] = json!([0, 0, 0]);
        position["max"] = json!([1, 1, 1]);
        let mut accessors = accessors;
        accessors.insert(0, position);
        let mut primitive = json!({"attributes": {"POSITION": 0}, "mode": mode});
        for (name, accessor) in attributes {
            primitive["attributes"][name] = accessor.into();
        }
        if let Some(i) = indices {
            primitive["indices"] = i.into();
        }
        let mut doc = json!({
            "asset": {"version": "2.0"},
            "scenes": [{"nodes": roots}],
            "scene": 0,
            "nodes": nodes,
            "cameras": [{"type": "perspective", "perspective": {"yfov": 0.8, "znear": 0.1}}],
            "meshes": [{"primitives": [primitive]}],
            "accessors": accessors,
            "bufferViews": views.iter().map(|(offset, length, stride)| {
                let mut v = json!({"buffer": 0, "byteOffset": offset, "byteLength": length.max(&1)});
                if let Some(stride) = stride {
                    v["byteStride"] = (*stride).into();
                }
                v
            }).collect::<Vec<_>>(),
            "buffers": [{"byteLength": declared.max(1),
                          "uri": buffer(short.unwrap_or(declared.min(4096)))}],
        });
        if let Some((input, output, path)) = animated {
            doc["animations"] = json!([{"channels": [{"sampler": 0, "target": {"node": 1, "path": path}}],
                "samplers": [{"input": input, "output": output}]}]);
        }
        doc
    }
}

/// A valid animated, indexed, textured-coordinates quad: each case breaks a few of its fields.
fn quad() -> Value {
    let mut bytes = Vec::new();
    for v in [[0f32, 0., 0.], [1., 0., 0.], [1., 1., 0.], [0., 1., 0.]] {
        bytes.extend(v.iter().flat_map(|f| f.to_le_bytes()));
    }
    for i in [0u16, 1, 2, 0, 2, 3] {
        bytes.extend(i.to_le_bytes());
    }
    for _ in 0..4 {
        bytes.extend([0f32, 0., 1.].iter().flat_map(|f| f.to_le_bytes()));
    }
    for uv in [[0f32, 0.], [1., 0.], [1., 1.], [0., 1.]] {
        bytes.extend(uv.iter().flat_map(|f| f.to_le_bytes()));
    }
    for f in [0f32, 1., 0., 0., 0., 0., 1., 0.] {
        bytes.extend(f.to_le_bytes());
    }
    use base64::Engine;
    let uri = format!(
        "data:application/octet-stream;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&bytes)
    );
    json!({
        "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0, 1]}],
        "nodes": [{"camera": 0, "translation": [0.5, 0.5, 2]}, {"mesh": 0, "children": [2]}, {"mesh": 0}],
        "cameras": [{"type": "perspective", "perspective": {"yfov": 0.8, "znear": 0.1}}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "NORMAL": 2, "TEXCOORD_0": 3},
                                    "indices": 1, "mode": 4}]}],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": 4, "type": "VEC3", "min": [0, 0, 0], "max": [1, 1, 0]},
            {"bufferView": 1, "componentType": 5123, "count": 6, "type": "SCALAR"},
            {"bufferView": 2, "componentType": 5126, "count": 4, "type": "VEC3"},
            {"bufferView": 3, "componentType": 5126, "count": 4, "type": "VEC2"},
            {"bufferView": 4, "componentType": 5126, "count": 2, "type": "SCALAR", "min": [0], "max": [1]},
            {"bufferView": 4, "byteOffset": 8, "componentType": 5126, "count": 2, "type": "VEC3"}
        ],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": 48},
            {"buffer": 0, "byteOffset": 48, "byteLength": 12},
            {"buffer": 0, "byteOffset": 60, "byteLength": 48},
            {"buffer": 0, "byteOffset": 108, "byteLength": 32},
            {"buffer": 0, "byteOffset": 140, "byteLength": 32}
        ],
        "buffers": [{"byteLength": bytes.len(), "uri": uri}],
        "animations": [{"channels": [{"sampler": 0, "target": {"node": 1, "path": "translation"}}],
                        "samplers": [{"input": 4, "output": 5, "interpolation": "LINEAR"}]}]
    })
}

/// Where a mutation lands in [`quad`], and what it writes there.
fn mutation() -> impl Strategy<Value = (String, Value)> {
    let field = prop_oneof![
        (
            0usize..6,
            prop::sample::select(vec![
                "count",
                "byteOffset",
                "componentType",
                "type",
                "bufferView"
            ])
        )
            .prop_map(|(i, f)| format!("/accessors/{i}/{f}")),
        (
            0usize..5,
            prop::sample::select(vec!["byteOffset", "byteLength", "byteStride", "buffer"])
        )
            .prop_map(|(i, f)| format!("/bufferViews/{i}/{f}")),
        (0usize..3, prop::sample::select(vec!["children", "mesh"]))
            .prop_map(|(i, f)| format!("/nodes/{i}/{f}")),
        prop::sample::select(vec![
            "/meshes/0/primitives/0/mode",
            "/meshes/0/primitives/0/indices",
            "/meshes/0/primitives/0/attributes/NORMAL",
            "/buffers/0/byteLength",
            "/scenes/0/nodes",
            "/animations/0/samplers/0/interpolation",
            "/animations/0/channels/0/target/path",
            "/animations/0/samplers/0/output",
        ])
        .prop_map(str::to_string),
    ];
    let value = prop_oneof![
        prop::sample::select(vec![
            0u64,
            1,
            2,
            3,
            4,
            5,
            6,
            12,
            255,
            5121,
            5123,
            5125,
            5126,
            1 << 31,
            u32::MAX as u64,
            1 << 53
        ])
        .prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
        prop::sample::select(vec![
            "SCALAR",
            "VEC2",
            "VEC4",
            "MAT4",
            "STEP",
            "CUBICSPLINE",
            "rotation",
            "scale",
            "weights"
        ])
        .prop_map(Value::from),
        prop::collection::vec(0u64..4, 0..4).prop_map(Value::from),
    ];
    (field, value)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_are_refused_as_a_bad_scene(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        assert_named_bad_scene(load(&bytes))?;
        let mut glb = b"glTF\x02\0\0\0".to_vec();
        glb.extend(&bytes);
        assert_named_bad_scene(load(&glb))?;
    }

    #[test]
    fn a_valid_quad_with_a_few_fields_broken_loads_or_is_refused_by_name(
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut doc = quad();
        for (pointer, value) in mutations {
            if let Some(slot) = doc.pointer_mut(&pointer) {
                *slot = value;
            } else if let Some((parent, key)) = pointer.rsplit_once('/')
                && let Some(Value::Object(map)) = doc.pointer_mut(parent)
            {
                map.insert(key.to_string(), value);
            }
        }
        assert_named_bad_scene(load(&serde_json::to_vec(&doc).unwrap()))?;
    }

    #[test]
    fn broken_documents_load_or_are_refused_by_name(doc in document()) {
        let bytes = serde_json::to_vec(&doc).unwrap();
        assert_named_bad_scene(load(&bytes))?;
    }
}

#[test]
fn the_unbroken_quad_loads() {
    load(&serde_json::to_vec(&quad()).unwrap()).expect("the base document is valid");
}
