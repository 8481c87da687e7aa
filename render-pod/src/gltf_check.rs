//! Checks a parsed glTF document against [`SceneLimits`] and the spec's structural rules before
//! any buffer is fetched or any accessor is read, so a small hostile file is refused in
//! milliseconds with a message that names the problem, and the `gltf` crate's readers (which
//! index without checks and assert in debug builds) only ever see well-formed data.
//!
//! Everything here is computed from the JSON alone: buffers are later read to exactly their
//! declared `byteLength`, so declared lengths are the lengths the readers see.

use gltf::accessor::{DataType, Dimensions};
use gltf::mesh::{Mode, Semantic};
use tessera_shard::SceneLimits;

/// What a checked document will cost: the totals over every mesh instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SceneCost {
    pub instances: u64,
    pub vertices: u64,
    pub triangles: u64,
    pub buffer_bytes: u64,
    pub keyframes: u64,
}

/// What the `gltf` crate's validation misses or trips over (gltf-json 1.4), checked on the raw
/// JSON first: it indexes the accessor a primitive's POSITION names without a bounds check,
/// and it never validates animation channel targets, which its readers unwrap.
pub fn check_before_validation(root: &gltf::json::Root) -> Result<(), String> {
    for (m, mesh) in root.meshes.iter().enumerate() {
        for (p, primitive) in mesh.primitives.iter().enumerate() {
            for (semantic, index) in &primitive.attributes {
                if index.value() >= root.accessors.len() {
                    return Err(format!(
                        "meshes[{m}].primitives[{p}].attributes[{semantic:?}]: accessor {} \
                         does not exist ({} accessors)",
                        index.value(),
                        root.accessors.len()
                    ));
                }
            }
        }
    }
    // Its animation validation skips channels' targets, which the readers then unwrap.
    for (a, animation) in root.animations.iter().enumerate() {
        for (c, channel) in animation.channels.iter().enumerate() {
            let at = format!("animations[{a}].channels[{c}].target");
            if channel.target.node.value() >= root.nodes.len() {
                return Err(format!(
                    "{at}.node: node {} does not exist",
                    channel.target.node.value()
                ));
            }
            if !matches!(
                channel.target.path,
                gltf::json::validation::Checked::Valid(_)
            ) {
                return Err(format!(
                    "{at}.path: not one of translation, rotation, scale, weights"
                ));
            }
        }
    }
    Ok(())
}

/// Runs every check; `Err` is the reason, for a bad-scene error.
pub fn check(document: &gltf::Document, limits: &SceneLimits) -> Result<SceneCost, String> {
    let version = &document.as_json().asset.version;
    if !version.starts_with("2.") {
        return Err(format!(
            "asset.version is {:?}: only glTF 2.x is supported",
            version.chars().take(32).collect::<String>()
        ));
    }
    let buffer_bytes = check_buffers(document, limits)?;
    check_views(document)?;
    for accessor in document.accessors() {
        check_accessor(&accessor)?;
    }
    check_semantics(document)?;
    let instances = node_forest(document, limits)?;
    let mut cost = mesh_cost(document, &instances, limits)?;
    cost.buffer_bytes = buffer_bytes;
    cost.keyframes = keyframes(document, limits)?;
    Ok(cost)
}

fn over(what: &str, value: u64, limit: u64, name: &str) -> String {
    format!(
        "{what}: {value} exceeds the limit of {limit} (sceneLimits.{name}; a pool can raise it)"
    )
}

/// Declared buffer lengths, summed with checked arithmetic against `maxBufferBytes`.
fn check_buffers(document: &gltf::Document, limits: &SceneLimits) -> Result<u64, String> {
    let mut total: u64 = 0;
    for buffer in document.buffers() {
        total = total.saturating_add(buffer.length() as u64);
    }
    if total > limits.max_buffer_bytes {
        return Err(over(
            "buffers declare",
            total,
            limits.max_buffer_bytes,
            "maxBufferBytes",
        ));
    }
    Ok(total)
}

/// Every buffer view lies inside its buffer; strides are the spec's 4..=252.
fn check_views(document: &gltf::Document) -> Result<(), String> {
    for view in document.views() {
        let end = view.offset().checked_add(view.length());
        if end.is_none_or(|end| end > view.buffer().length()) {
            return Err(format!(
                "bufferView {}: bytes {}+{} lie outside buffer {} ({} bytes)",
                view.index(),
                view.offset(),
                view.length(),
                view.buffer().index(),
                view.buffer().length()
            ));
        }
        if let Some(stride) = view.stride()
            && !(4..=252).contains(&stride)
        {
            return Err(format!(
                "bufferView {}: byteStride {stride} is outside 4..=252",
                view.index()
            ));
        }
    }
    Ok(())
}

/// Bytes one element of the accessor occupies (matrix columns of 1- and 2-byte components are
/// padded to 4 bytes, as the spec says).
fn element_size(accessor: &gltf::Accessor) -> usize {
    let component = accessor.data_type().size();
    match accessor.dimensions() {
        Dimensions::Mat2 if component < 4 => 2 * 4,
        Dimensions::Mat3 if component < 4 => 3 * 4,
        other => other.multiplicity() * component,
    }
}

/// `count` elements of `size` bytes every `stride` bytes from `offset` fit in `length`.
fn fits(offset: usize, stride: usize, count: usize, size: usize, length: usize) -> bool {
    count
        .checked_sub(1)
        .and_then(|n| n.checked_mul(stride))
        .and_then(|span| span.checked_add(offset))
        .and_then(|span| span.checked_add(size))
        .is_some_and(|end| end <= length)
}

fn check_accessor(accessor: &gltf::Accessor) -> Result<(), String> {
    let name = format!("accessor {}", accessor.index());
    let count = accessor.count();
    if count == 0 {
        return Err(format!("{name}: count is 0"));
    }
    let size = element_size(accessor);
    if let Some(view) = accessor.view() {
        let stride = view.stride().unwrap_or(size);
        if stride < size {
            return Err(format!(
                "{name}: byteStride {stride} is smaller than its {size}-byte elements"
            ));
        }
        if !fits(accessor.offset(), stride, count, size, view.length()) {
            return Err(format!(
                "{name}: {count} elements of {size} bytes from offset {} do not fit in \
                 bufferView {} ({} bytes)",
                accessor.offset(),
                view.index(),
                view.length()
            ));
        }
    }
    if let Some(sparse) = accessor.sparse() {
        let sparse_count = sparse.count();
        if sparse_count == 0 || sparse_count > count {
            return Err(format!(
                "{name}: sparse count {sparse_count} must be within 1..={count}"
            ));
        }
        let indices = sparse.indices();
        let index_size = indices.index_type().size();
        let view = indices.view();
        if !fits(
            indices.offset(),
            view.stride().unwrap_or(index_size),
            sparse_count,
            index_size,
            view.length(),
        ) {
            return Err(format!(
                "{name}: sparse indices do not fit in bufferView {}",
                view.index()
            ));
        }
        let values = sparse.values();
        let view = values.view();
        if !fits(
            values.offset(),
            view.stride().unwrap_or(size),
            sparse_count,
            size,
            view.length(),
        ) {
            return Err(format!(
                "{name}: sparse values do not fit in bufferView {}",
                view.index()
            ));
        }
    }
    Ok(())
}

/// The accessor types the loader reads, per use; the `gltf` readers assume them.
fn expect_type(
    accessor: &gltf::Accessor,
    what: &str,
    dimensions: &[Dimensions],
    types: &[DataType],
) -> Result<(), String> {
    if dimensions.contains(&accessor.dimensions()) && types.contains(&accessor.data_type()) {
        return Ok(());
    }
    Err(format!(
        "accessor {} ({what}) is {:?} {:?}; expected {dimensions:?} of {types:?}",
        accessor.index(),
        accessor.dimensions(),
        accessor.data_type()
    ))
}

fn check_semantics(document: &gltf::Document) -> Result<(), String> {
    use DataType::*;
    use Dimensions::*;
    for mesh in document.meshes() {
        for prim in mesh.primitives() {
            let at = |what: &str| format!("mesh {} {what}", mesh.index());
            for (semantic, accessor) in prim.attributes() {
                match semantic {
                    Semantic::Positions => {
                        expect_type(&accessor, &at("POSITION"), &[Vec3], &[F32])?
                    }
                    Semantic::Normals => expect_type(&accessor, &at("NORMAL"), &[Vec3], &[F32])?,
                    Semantic::TexCoords(_) => {
                        expect_type(&accessor, &at("TEXCOORD"), &[Vec2], &[F32, U8, U16])?
                    }
                    // The crate's colour reader has no case (it panics) for anything else.
                    Semantic::Colors(_) => {
                        expect_type(&accessor, &at("COLOR"), &[Vec3, Vec4], &[F32, U8, U16])?
                    }
                    Semantic::Joints(_) => {
                        expect_type(&accessor, &at("JOINTS"), &[Vec4], &[U8, U16])?
                    }
                    Semantic::Weights(_) => {
                        expect_type(&accessor, &at("WEIGHTS"), &[Vec4], &[F32, U8, U16])?
                    }
                    _ => {}
                }
            }
            for (t, target) in prim.morph_targets().enumerate() {
                let deltas = [
                    ("POSITION", target.positions()),
                    ("NORMAL", target.normals()),
                    ("TANGENT", target.tangents()),
                ];
                for (what, accessor) in deltas {
                    if let Some(accessor) = accessor {
                        let what = at(&format!("morph target {t} {what}"));
                        expect_type(&accessor, &what, &[Vec3], &[F32])?;
                    }
                }
            }
            if let Some(indices) = prim.indices() {
                expect_type(&indices, &at("indices"), &[Scalar], &[U8, U16, U32])?;
            }
        }
    }
    for skin in document.skins() {
        if let Some(matrices) = skin.inverse_bind_matrices() {
            let what = format!("skin {} inverseBindMatrices", skin.index());
            expect_type(&matrices, &what, &[Mat4], &[F32])?;
        }
    }
    for animation in document.animations() {
        for channel in animation.channels() {
            let sampler = channel.sampler();
            let what = format!("animation {}", animation.index());
            expect_type(&sampler.input(), &what, &[Scalar], &[F32])?;
            let (dimensions, types): (&[Dimensions], &[DataType]) =
                match channel.target().property() {
                    gltf::animation::Property::Translation | gltf::animation::Property::Scale => {
                        (&[Vec3], &[F32])
                    }
                    gltf::animation::Property::Rotation => (&[Vec4], &[F32, I8, U8, I16, U16]),
                    gltf::animation::Property::MorphTargetWeights => {
                        (&[Scalar], &[F32, I8, U8, I16, U16])
                    }
                };
            expect_type(&sampler.output(), &what, dimensions, types)?;
        }
    }
    Ok(())
}

/// The node graph must be a forest: every node has at most one parent, and no scene root is
/// anyone's child (so a walk from the roots visits each node once and ends). Returns how often
/// each node is instanced by the scenes (0 or 1 per scene; scenes are separate).
fn node_forest(document: &gltf::Document, limits: &SceneLimits) -> Result<Vec<u64>, String> {
    let nodes = document.nodes().len();
    if nodes as u64 > limits.max_nodes {
        return Err(over(
            "the node count",
            nodes as u64,
            limits.max_nodes,
            "maxNodes",
        ));
    }
    let mut parent: Vec<Option<usize>> = vec![None; nodes];
    for node in document.nodes() {
        for child in node.children() {
            if child.index() == node.index() {
                return Err(format!("node {} is its own child", node.index()));
            }
            if let Some(first) = parent[child.index()].replace(node.index()) {
                return Err(format!(
                    "node {} has two parents ({first} and {}): the node graph must be a tree",
                    child.index(),
                    node.index()
                ));
            }
        }
    }
    let mut instanced = vec![0u64; nodes];
    for scene in document.scenes() {
        let mut seen = vec![false; nodes];
        let mut stack = Vec::new();
        for root in scene.nodes() {
            if let Some(p) = parent[root.index()] {
                return Err(format!(
                    "scene {}: root node {} is also a child of node {p}",
                    scene.index(),
                    root.index()
                ));
            }
            stack.push(root);
        }
        while let Some(node) = stack.pop() {
            if std::mem::replace(&mut seen[node.index()], true) {
                return Err(format!(
                    "scene {}: node {} is reached twice (listed twice, or in a cycle)",
                    scene.index(),
                    node.index()
                ));
            }
            instanced[node.index()] += 1;
            stack.extend(node.children());
        }
    }
    // A cycle unreachable from any root is never walked, but it is still not a forest.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unknown,
        OnPath,
        Rooted,
    }
    let mut mark = vec![Mark::Unknown; nodes];
    for start in 0..nodes {
        let mut path = Vec::new();
        let mut at = Some(start);
        while let Some(node) = at {
            match mark[node] {
                Mark::Rooted => break,
                Mark::OnPath => return Err(format!("node {node} is part of a cycle of parents")),
                Mark::Unknown => {
                    mark[node] = Mark::OnPath;
                    path.push(node);
                    at = parent[node];
                }
            }
        }
        for node in path {
            mark[node] = Mark::Rooted;
        }
    }
    Ok(instanced)
}

/// Vertices and triangles the flattening will produce, from accessor counts alone.
fn mesh_cost(
    document: &gltf::Document,
    instanced: &[u64],
    limits: &SceneLimits,
) -> Result<SceneCost, String> {
    let mut cost = SceneCost::default();
    for node in document.nodes() {
        let (Some(mesh), n) = (node.mesh(), instanced[node.index()]) else {
            continue;
        };
        if n == 0 {
            continue;
        }
        cost.instances += n;
        for prim in mesh.primitives() {
            let vertices = prim.get(&Semantic::Positions).map_or(0, |a| a.count()) as u64;
            let corners = prim.indices().map_or(vertices, |a| a.count() as u64);
            // Each morph target is read over the vertices again.
            let vertices = vertices.saturating_mul(1 + prim.morph_targets().len() as u64);
            let triangles = match prim.mode() {
                Mode::Triangles => corners / 3,
                Mode::TriangleStrip | Mode::TriangleFan => corners.saturating_sub(2),
                _ => 0,
            };
            cost.vertices = cost.vertices.saturating_add(vertices.saturating_mul(n));
            cost.triangles = cost.triangles.saturating_add(triangles.saturating_mul(n));
        }
    }
    for (what, value, limit, name) in [
        (
            "mesh instances",
            cost.instances,
            limits.max_instances,
            "maxInstances",
        ),
        (
            "vertices over all instances",
            cost.vertices,
            limits.max_vertices,
            "maxVertices",
        ),
        (
            "triangles over all instances",
            cost.triangles,
            limits.max_triangles,
            "maxTriangles",
        ),
    ] {
        if value > limit {
            return Err(over(what, value, limit, name));
        }
    }
    Ok(cost)
}

/// Keyframes read per frame over all channels (inputs + outputs, each up to 3× for splines).
fn keyframes(document: &gltf::Document, limits: &SceneLimits) -> Result<u64, String> {
    let mut total: u64 = 0;
    for animation in document.animations() {
        for channel in animation.channels() {
            let sampler = channel.sampler();
            total = total
                .saturating_add(sampler.input().count() as u64)
                .saturating_add(sampler.output().count() as u64);
        }
    }
    if total > limits.max_keyframes {
        return Err(over(
            "animation keyframes",
            total,
            limits.max_keyframes,
            "maxKeyframes",
        ));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(json: &str) -> gltf::Document {
        gltf::Gltf::from_slice(json.as_bytes())
            .expect("valid glTF JSON")
            .document
    }

    const TRIANGLE: &str = r#"{"asset":{"version":"2.0"},
        "buffers":[{"byteLength":36}],
        "bufferViews":[{"buffer":0,"byteLength":36}],
        "accessors":[{"bufferView":0,"componentType":5126,"count":3,"type":"VEC3",
            "min":[0,0,0],"max":[1,1,0]}],
        "meshes":[{"primitives":[{"attributes":{"POSITION":0}}]}],
        NODES
        "scenes":[{"nodes":[0]}]}"#;

    fn with_nodes(nodes: &str) -> gltf::Document {
        document(&TRIANGLE.replace("NODES", nodes))
    }

    #[test]
    fn a_well_formed_triangle_costs_one_triangle_per_instance() {
        let doc = with_nodes(r#""nodes":[{"children":[1,2]},{"mesh":0},{"mesh":0}],"#);
        let cost = check(&doc, &SceneLimits::DEFAULT).unwrap();
        assert_eq!((cost.instances, cost.vertices, cost.triangles), (2, 6, 2));
        assert_eq!(cost.buffer_bytes, 36);
    }

    #[test]
    fn shared_children_and_cycles_are_refused() {
        let shared = with_nodes(r#""nodes":[{"children":[1,2]},{"children":[2]},{"mesh":0}],"#);
        let err = check(&shared, &SceneLimits::DEFAULT).unwrap_err();
        assert!(err.contains("node 2 has two parents"), "{err}");
        let cycle = with_nodes(r#""nodes":[{"mesh":0},{"children":[2]},{"children":[1]}],"#);
        let err = check(&cycle, &SceneLimits::DEFAULT).unwrap_err();
        assert!(err.contains("cycle"), "{err}");
        let own = with_nodes(r#""nodes":[{"children":[0]}],"#);
        assert!(check(&own, &SceneLimits::DEFAULT).is_err());
    }

    #[test]
    fn limits_name_themselves() {
        let doc = with_nodes(r#""nodes":[{"children":[1,2]},{"mesh":0},{"mesh":0}],"#);
        let limits = SceneLimits {
            max_triangles: 1,
            ..SceneLimits::DEFAULT
        };
        let err = check(&doc, &limits).unwrap_err();
        assert!(err.contains("sceneLimits.maxTriangles"), "{err}");
    }

    #[test]
    fn accessors_outside_their_views_are_refused() {
        let doc = document(
            &TRIANGLE
                .replace(r#""count":3"#, r#""count":4000000000"#)
                .replace("NODES", r#""nodes":[{"mesh":0}],"#),
        );
        let err = check(&doc, &SceneLimits::DEFAULT).unwrap_err();
        assert!(err.contains("do not fit in bufferView 0"), "{err}");
        assert!(!fits(usize::MAX, 4, 2, 12, usize::MAX));
        assert!(fits(0, 12, 3, 12, 36) && !fits(0, 12, 3, 12, 35));
    }
}
