//! The trees under test: each builder's output in the layouts the renderer can traverse —
//! binary (`render_pod::bvh`, 32-byte nodes, what `trace.wgsl` walks today) and compressed
//! 8-wide (`render_pod::wide_bvh`, 80-byte nodes).

use std::time::{Duration, Instant};

use glam::Vec3A;
use render_pod::bvh::{self, Bvh, BvhNode};
use render_pod::math::Vec3;
use render_pod::wide_bvh::{WideBvh, WideNode};

pub enum Layout {
    Binary(Bvh),
    Wide(WideBvh),
}

pub struct Tree {
    /// "builder/layout", e.g. "ours/binary", "obvhs/cwbvh".
    pub name: String,
    pub layout: Layout,
    pub build_time: Duration,
}

fn timed<T>(build: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let built = build();
    (built, start.elapsed())
}

fn tree(name: &str, (layout, build_time): (Layout, Duration)) -> Tree {
    Tree {
        name: name.into(),
        layout,
        build_time,
    }
}

/// Every builder × layout, in a fixed order.
pub fn build_all(tris: &[[Vec3; 3]]) -> Vec<Tree> {
    let ours = timed(|| bvh::build(tris));
    let ours_collapsed = timed(|| WideBvh::from_binary(&ours.0, tris));
    let tiny = timed(|| tinybvh_binary(tris));
    let tiny_collapsed = timed(|| WideBvh::from_binary(&tiny.0, tris));
    let tiny_wide = timed(|| tinybvh_cwbvh(tris));
    let ob_binary = timed(|| obvhs_binary(tris));
    let ob_wide = timed(|| WideBvh::build(tris).expect("bench scenes are within MAX_EXTENT"));
    // A collapse is timed on top of the binary build it starts from.
    let plus = |(w, t): (WideBvh, Duration), base: Duration| (Layout::Wide(w), t + base);
    let (ours_time, tiny_time) = (ours.1, tiny.1);
    vec![
        tree("ours/binary", (Layout::Binary(ours.0), ours.1)),
        tree("tinybvh/binary", (Layout::Binary(tiny.0), tiny.1)),
        tree("obvhs/binary", (Layout::Binary(ob_binary.0), ob_binary.1)),
        tree("obvhs/cwbvh", (Layout::Wide(ob_wide.0), ob_wide.1)),
        tree("ours+obvhs-collapse/cwbvh", plus(ours_collapsed, ours_time)),
        tree(
            "tinybvh+obvhs-collapse/cwbvh",
            plus(tiny_collapsed, tiny_time),
        ),
        tree("tinybvh/cwbvh", (Layout::Wide(tiny_wide.0), tiny_wide.1)),
    ]
}

fn tinybvh_positions(tris: &[[Vec3; 3]]) -> Vec<[f32; 4]> {
    tris.iter()
        .flat_map(|t| t.map(|p| [p.x, p.y, p.z, 0.0]))
        .collect()
}

/// tinybvh's `Build()`: binned SAH, in the same 32-byte node layout as ours.
fn tinybvh_binary(tris: &[[Vec3; 3]]) -> Bvh {
    let positions = tinybvh_positions(tris);
    let built = tinybvh_rs::bvh::BVH::new(positions.as_slice().into()).expect("tinybvh builds");
    let nodes: Vec<BvhNode> = built
        .nodes()
        .iter()
        .map(|n| BvhNode {
            min: n.min,
            left_or_first: n.left_first,
            max: n.max,
            count: n.tri_count,
        })
        .collect();
    Bvh {
        nodes,
        order: built.indices().to_vec(),
        depth: 0,
        sah_cost: 0.0,
    }
}

/// tinybvh's own wide path: leaves split to ≤ 3 triangles, collapsed to an 8-wide tree
/// (`MBVH8`, greedy), encoded as CWBVH (exponents stored signed, triangle bases in 16-byte
/// blocks of its 48-byte triangles).
fn tinybvh_cwbvh(tris: &[[Vec3; 3]]) -> WideBvh {
    let positions = tinybvh_positions(tris);
    let mut built = tinybvh_rs::bvh::BVH::new(positions.as_slice().into()).expect("tinybvh builds");
    built.split_leaves(3);
    let wide = tinybvh_rs::mbvh::BVH::new(&built);
    let cw = tinybvh_rs::cwbvh::BVH::new(&wide).expect("tinybvh CWBVH");
    let nodes = cw
        .nodes()
        .iter()
        .map(|n| WideNode {
            origin: n.min,
            exponent: n.exyz.map(|e| (e as i8 as i32 + 127) as u8),
            inner_mask: n.imask,
            child_base: n.child_base_idx,
            triangle_base: n.primitive_base_idx / 3,
            meta: n.child_meta,
            lo_x: n.qlo_x,
            lo_y: n.qlo_y,
            lo_z: n.qlo_z,
            hi_x: n.qhi_x,
            hi_y: n.qhi_y,
            hi_z: n.qhi_z,
        })
        .collect();
    let order = cw
        .primitives()
        .iter()
        .map(|p| p.original_primitive)
        .collect();
    WideBvh { nodes, order }
}

/// obvhs's binary tree (PLOC, reinsertion, leaves collapsed to ≤ 8 by SAH).
fn obvhs_binary(tris: &[[Vec3; 3]]) -> Bvh {
    let built = obvhs::bvh2::builder::build_bvh2_from_tris(
        &obvhs_triangles(tris),
        obvhs::BvhBuildParams::medium_build(),
        &mut Duration::default(),
    );
    let nodes = built
        .nodes
        .iter()
        .map(|n| BvhNode {
            min: n.aabb().min.to_array(),
            left_or_first: n.first_index,
            max: n.aabb().max.to_array(),
            count: n.prim_count,
        })
        .collect();
    Bvh {
        nodes,
        order: built.primitive_indices,
        depth: 0,
        sah_cost: 0.0,
    }
}

fn obvhs_triangles(tris: &[[Vec3; 3]]) -> Vec<obvhs::triangle::Triangle> {
    tris.iter()
        .map(|t| {
            let [v0, v1, v2] = t.map(|p| Vec3A::new(p.x, p.y, p.z));
            obvhs::triangle::Triangle { v0, v1, v2 }
        })
        .collect()
}
