//! What each tree costs: its structure, and per ray set what its traversal does per ray
//! (counted by `render_pod::bvh::Observer` inside the renderer's own CPU traversals).

use render_pod::bvh::{NODE_BYTES, Observer, TRIANGLE_BYTES, Traverse};
use render_pod::math::Vec3;
use render_pod::wide_bvh::WIDE_NODE_BYTES;
use serde_json::{Value, json};

use crate::rays::{Ray, RaySet};
use crate::trees::{Layout, Tree};

/// Bytes of one traversal stack entry (node index and entry distance, or a node group).
const STACK_ENTRY_BYTES: u32 = 8;
/// Lanes replayed in lockstep for the SIMT estimate.
const LANES: usize = 32;

/// Rounded for a stable, readable JSON.
fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

fn area(min: [f32; 3], max: [f32; 3]) -> f64 {
    let d: [f64; 3] = std::array::from_fn(|a| (max[a] - min[a]).max(0.0) as f64);
    2.0 * (d[0] * d[1] + d[1] * d[2] + d[2] * d[0])
}

/// Leaf sizes (triangles) and depths of a walk from the root.
#[derive(Default)]
struct Walk {
    nodes: u64,
    leaves: Vec<u32>,
    depths: Vec<u32>,
    /// Σ area × cost over the tree, before dividing by the root's area.
    sah: f64,
}

impl Walk {
    fn json(self, root_area: f64, node_bytes: u32, triangles: usize) -> Value {
        let leaves = self.leaves.len() as f64;
        let tris: u64 = self.leaves.iter().map(|&c| c as u64).sum();
        json!({
            "sah_cost": round(self.sah / root_area.max(f64::MIN_POSITIVE), 3),
            "nodes": self.nodes,
            "leaves": self.leaves.len(),
            "leaf_triangles_mean": round(tris as f64 / leaves.max(1.0), 3),
            "leaf_triangles_max": self.leaves.iter().max().copied().unwrap_or(0),
            "depth_max": self.depths.iter().max().copied().unwrap_or(0),
            "leaf_depth_mean": round(self.depths.iter().map(|&d| d as f64).sum::<f64>() / leaves.max(1.0), 3),
            "node_bytes": self.nodes * node_bytes as u64,
            "triangle_bytes": triangles as u64 * TRIANGLE_BYTES as u64,
        })
    }
}

/// SAH cost (a node visit costs 1, a triangle test 1, weighted by the box's surface area over
/// the root's), node count, leaves, depth, bytes.
pub fn structure(tree: &Tree, triangles: usize) -> Value {
    match &tree.layout {
        Layout::Binary(bvh) => {
            let mut walk = Walk::default();
            let mut todo = vec![(0u32, 0u32)];
            while let Some((i, depth)) = todo.pop() {
                let n = &bvh.nodes[i as usize];
                walk.nodes += 1;
                let a = area(n.min, n.max);
                if n.count > 0 {
                    walk.leaves.push(n.count);
                    walk.depths.push(depth);
                    walk.sah += a * n.count as f64;
                } else {
                    walk.sah += a;
                    todo.push((n.left_or_first, depth + 1));
                    todo.push((n.left_or_first + 1, depth + 1));
                }
            }
            let root = &bvh.nodes[0];
            walk.json(area(root.min, root.max), NODE_BYTES, triangles)
        }
        Layout::Wide(bvh) => {
            let mut walk = Walk::default();
            let mut todo = vec![(0u32, 0u32)];
            let mut root_area = 0.0;
            while let Some((i, depth)) = todo.pop() {
                let n = &bvh.nodes[i as usize];
                walk.nodes += 1;
                let (mut lo, mut hi) = ([f32::INFINITY; 3], [f32::NEG_INFINITY; 3]);
                let mut inner = 0;
                for slot in 0..8 {
                    let meta = n.meta[slot];
                    if meta == 0 {
                        continue;
                    }
                    let (clo, chi) = n.child_box(slot);
                    for a in 0..3 {
                        lo[a] = lo[a].min(clo[a]);
                        hi[a] = hi[a].max(chi[a]);
                    }
                    if n.inner_mask & (1 << slot) != 0 {
                        todo.push((n.child_base + inner, depth + 1));
                        inner += 1;
                    } else {
                        let count = (meta >> 5).count_ones();
                        walk.leaves.push(count);
                        walk.depths.push(depth + 1);
                        walk.sah += area(clo, chi) * count as f64;
                    }
                }
                walk.sah += area(lo, hi);
                if i == 0 {
                    root_area = area(lo, hi);
                }
            }
            walk.json(root_area, WIDE_NODE_BYTES, triangles)
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Count {
    steps: u32,
    boxes: u32,
    triangles: u32,
    bytes: u64,
    stack: u32,
}

impl Observer for Count {
    fn node(&mut self, bytes: u32, boxes: u32) {
        self.steps += 1;
        self.boxes += boxes;
        self.bytes += bytes as u64;
    }
    fn triangle(&mut self) {
        self.triangles += 1;
        self.bytes += TRIANGLE_BYTES as u64;
    }
    fn stack(&mut self, entries: u32) {
        self.stack = self.stack.max(entries);
    }
}

/// The hit of one ray: the triangle (nearest-hit sets) or 1 (any-hit), −1 for none.
pub fn trace(tree: &Tree, tris: &[[Vec3; 3]], ray: &Ray, any_hit: bool) -> (i64, Count) {
    let mut count = Count::default();
    let hit = match &tree.layout {
        Layout::Binary(b) => b.trace(tris, ray.origin, ray.dir, ray.tmax, any_hit, &mut count),
        Layout::Wide(w) => w.trace(tris, ray.origin, ray.dir, ray.tmax, any_hit, &mut count),
    };
    let id = match hit {
        None => -1,
        Some(_) if any_hit => 1,
        Some((_, tri)) => tri as i64,
    };
    (id, count)
}

/// Every ray of `set` through `tree`, on all cores; results in ray order.
pub fn trace_all(tree: &Tree, tris: &[[Vec3; 3]], set: &RaySet) -> Vec<(i64, Count)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = set.rays.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = set
            .rays
            .chunks(chunk)
            .map(|rays| {
                scope.spawn(move || {
                    rays.iter()
                        .map(|r| trace(tree, tris, r, set.any_hit))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    })
}

fn mean_p99(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let p99 = v[((v.len() - 1) as f64 * 0.99).round() as usize];
    (round(mean, 3), round(p99, 3))
}

/// Lanes' work (node visits + triangle tests) over what 32-lane groups in lockstep spend:
/// a group lasts as long as its longest ray.
fn simt_efficiency(counts: &[Count]) -> f64 {
    let (mut work, mut lockstep) = (0u64, 0u64);
    for group in counts.chunks(LANES) {
        let lane = |c: &Count| (c.steps + c.triangles) as u64;
        work += group.iter().map(lane).sum::<u64>();
        lockstep += group.iter().map(lane).max().unwrap_or(0) * group.len() as u64;
    }
    round(work as f64 / lockstep.max(1) as f64, 4)
}

/// Per-ray figures of one tree on one set, and how often its hits agree with `reference`.
pub fn figures(results: &[(i64, Count)], reference: &[i64]) -> Value {
    let counts: Vec<Count> = results.iter().map(|r| r.1).collect();
    let per = |f: fn(&Count) -> f64| mean_p99(counts.iter().map(f));
    let (steps, steps_p99) = per(|c| c.steps as f64);
    let (boxes, _) = per(|c| c.boxes as f64);
    let (tris, tris_p99) = per(|c| c.triangles as f64);
    let (stack, stack_p99) = per(|c| c.stack as f64);
    let (bytes, bytes_p99) = per(|c| c.bytes as f64);
    let same = results
        .iter()
        .zip(reference)
        .filter(|(r, h)| r.0 == **h)
        .count();
    json!({
        "hits": results.iter().filter(|r| r.0 >= 0).count(),
        "agree_with_first": round(same as f64 / results.len().max(1) as f64, 6),
        "steps_mean": steps, "steps_p99": steps_p99,
        "box_tests_mean": boxes,
        "triangle_tests_mean": tris, "triangle_tests_p99": tris_p99,
        "stack_entries_mean": stack, "stack_entries_p99": stack_p99,
        "stack_bytes_p99": round(stack_p99 * STACK_ENTRY_BYTES as f64, 1),
        "bytes_mean": bytes, "bytes_p99": bytes_p99,
        "simt_efficiency": simt_efficiency(&counts),
    })
}
