//! Binary BVH built on the CPU with binned SAH, flattened for the GPU.
//!
//! Layout (mirrored by `trace.wgsl`): node `i` is a leaf when `count > 0` and then holds
//! triangles `first..first + count` of the reordered triangle array; otherwise its children
//! are the adjacent nodes `left` and `left + 1`. The GPU traverses with a fixed 32-entry stack,
//! nearest child first, so the builder caps the depth at [`MAX_DEPTH`] (a deeper node becomes a
//! leaf, however many triangles it holds).

use crate::math::{Vec3, vec3};

/// Depth cap; the traversal stack in `trace.wgsl` has 32 entries and pushes at most one per
/// level.
pub const MAX_DEPTH: u32 = 31;
const BINS: usize = 16;
const MAX_LEAF: usize = 8;
/// SAH cost of one traversal step relative to one triangle test.
const TRAVERSAL_COST: f32 = 1.0;

/// One flattened node, 32 bytes, as the GPU reads it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BvhNode {
    pub min: [f32; 3],
    /// Leaf: first triangle; inner node: index of the left child (right = left + 1).
    pub left_or_first: u32,
    pub max: [f32; 3],
    /// Triangle count; 0 for inner nodes.
    pub count: u32,
}

#[derive(Debug, Clone)]
pub struct Bvh {
    pub nodes: Vec<BvhNode>,
    /// Leaf order: `order[k]` is the original index of the k-th triangle the leaves refer to.
    pub order: Vec<u32>,
    pub depth: u32,
    /// SAH cost of the tree (in triangle-test units), for logs and regressions.
    pub sah_cost: f32,
}

#[derive(Debug, Clone, Copy)]
struct Aabb {
    min: Vec3,
    max: Vec3,
}

impl Aabb {
    const EMPTY: Aabb = Aabb {
        min: vec3(f32::INFINITY, f32::INFINITY, f32::INFINITY),
        max: vec3(f32::NEG_INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY),
    };
    fn grow(&mut self, p: Vec3) {
        self.min = self.min.min(p);
        self.max = self.max.max(p);
    }
    fn merge(&mut self, o: &Aabb) {
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }
    fn area(&self) -> f32 {
        let d = self.max - self.min;
        if d.x < 0.0 {
            return 0.0;
        }
        2.0 * (d.x * d.y + d.y * d.z + d.z * d.x)
    }
}

struct Prim {
    bounds: Aabb,
    centroid: Vec3,
}

/// Builds the BVH over triangles given as vertex triples.
pub fn build(triangles: &[[Vec3; 3]]) -> Bvh {
    let prims: Vec<Prim> = triangles
        .iter()
        .map(|t| {
            let mut bounds = Aabb::EMPTY;
            for &p in t {
                bounds.grow(p);
            }
            Prim {
                bounds,
                centroid: (bounds.min + bounds.max) * 0.5,
            }
        })
        .collect();
    let mut order: Vec<u32> = (0..triangles.len() as u32).collect();
    let mut nodes = vec![BvhNode {
        min: [0.0; 3],
        left_or_first: 0,
        max: [0.0; 3],
        count: 0,
    }];
    let mut depth_max = 0;
    // (node index, start, end, depth)
    let mut work = vec![(0usize, 0usize, order.len(), 0u32)];
    while let Some((node, start, end, depth)) = work.pop() {
        depth_max = depth_max.max(depth);
        let mut bounds = Aabb::EMPTY;
        let mut centroids = Aabb::EMPTY;
        for &i in &order[start..end] {
            bounds.merge(&prims[i as usize].bounds);
            centroids.grow(prims[i as usize].centroid);
        }
        if start == end {
            bounds = Aabb {
                min: Vec3::ZERO,
                max: Vec3::ZERO,
            };
        }
        nodes[node].min = bounds.min.to_array();
        nodes[node].max = bounds.max.to_array();
        let count = end - start;
        let make_leaf = |nodes: &mut Vec<BvhNode>| {
            nodes[node].left_or_first = start as u32;
            nodes[node].count = count as u32;
        };
        if count <= 2 || depth >= MAX_DEPTH {
            make_leaf(&mut nodes);
            continue;
        }
        let split = best_split(&prims, &order[start..end], &centroids);
        let leaf_cost = count as f32;
        let mid = match split {
            Some((axis, plane, cost)) if cost < leaf_cost || count > MAX_LEAF => {
                let (lo, extent) = (
                    centroids.min[axis],
                    centroids.max[axis] - centroids.min[axis],
                );
                let slice = &mut order[start..end];
                let mut left = 0;
                for k in 0..slice.len() {
                    if bin_of(prims[slice[k] as usize].centroid[axis], lo, extent) < plane {
                        slice.swap(k, left);
                        left += 1;
                    }
                }
                if left == 0 || left == slice.len() {
                    start + slice.len() / 2
                } else {
                    start + left
                }
            }
            Some(_) => {
                make_leaf(&mut nodes);
                continue;
            }
            // All centroids coincide: split by count so leaves stay small.
            None if count > MAX_LEAF => start + count / 2,
            None => {
                make_leaf(&mut nodes);
                continue;
            }
        };
        let left = nodes.len();
        let empty = nodes[node];
        nodes.push(empty);
        nodes.push(empty);
        nodes[node].left_or_first = left as u32;
        nodes[node].count = 0;
        work.push((left + 1, mid, end, depth + 1));
        work.push((left, start, mid, depth + 1));
    }
    let sah_cost = sah_cost(&nodes);
    Bvh {
        nodes,
        order,
        depth: depth_max,
        sah_cost,
    }
}

fn bin_of(c: f32, lo: f32, extent: f32) -> usize {
    let b = ((c - lo) / extent * BINS as f32) as usize;
    b.min(BINS - 1)
}

/// Best (axis, first bin of the right side, SAH cost) over all binned planes.
fn best_split(prims: &[Prim], items: &[u32], centroids: &Aabb) -> Option<(usize, usize, f32)> {
    let mut best: Option<(usize, usize, f32)> = None;
    let mut parent = Aabb::EMPTY;
    for &i in items {
        parent.merge(&prims[i as usize].bounds);
    }
    let parent_area = parent.area().max(f32::MIN_POSITIVE);
    for axis in 0..3 {
        let lo = centroids.min[axis];
        let extent = centroids.max[axis] - lo;
        if extent <= 0.0 || !extent.is_finite() {
            continue;
        }
        let mut bins = [(Aabb::EMPTY, 0usize); BINS];
        for &i in items {
            let prim = &prims[i as usize];
            let b = bin_of(prim.centroid[axis], lo, extent);
            bins[b].0.merge(&prim.bounds);
            bins[b].1 += 1;
        }
        // Sweep from the right to get suffix areas/counts.
        let mut right_area = [0.0f32; BINS];
        let mut right_count = [0usize; BINS];
        let mut acc = Aabb::EMPTY;
        let mut n = 0;
        for b in (1..BINS).rev() {
            acc.merge(&bins[b].0);
            n += bins[b].1;
            right_area[b] = acc.area();
            right_count[b] = n;
        }
        let mut acc = Aabb::EMPTY;
        let mut n = 0;
        for plane in 1..BINS {
            acc.merge(&bins[plane - 1].0);
            n += bins[plane - 1].1;
            if n == 0 || right_count[plane] == 0 {
                continue;
            }
            let cost = TRAVERSAL_COST
                + (acc.area() * n as f32 + right_area[plane] * right_count[plane] as f32)
                    / parent_area;
            if best.is_none_or(|(_, _, c)| cost < c) {
                best = Some((axis, plane, cost));
            }
        }
    }
    best
}

fn node_area(n: &BvhNode) -> f32 {
    Aabb {
        min: Vec3::from_array(n.min),
        max: Vec3::from_array(n.max),
    }
    .area()
}

fn sah_cost(nodes: &[BvhNode]) -> f32 {
    let root = node_area(&nodes[0]).max(f32::MIN_POSITIVE);
    nodes
        .iter()
        .map(|n| {
            let weight = node_area(n) / root;
            if n.count > 0 {
                weight * n.count as f32
            } else {
                weight * TRAVERSAL_COST
            }
        })
        .sum()
}

/// Möller–Trumbore, two-sided, as in `trace.wgsl`. Returns `t` in `(tmin, tmax)`.
pub fn intersect_triangle(
    t: &[Vec3; 3],
    origin: Vec3,
    dir: Vec3,
    tmin: f32,
    tmax: f32,
) -> Option<f32> {
    let e1 = t[1] - t[0];
    let e2 = t[2] - t[0];
    let p = dir.cross(e2);
    let det = e1.dot(p);
    if det.abs() < 1e-12 {
        return None;
    }
    let inv = 1.0 / det;
    let s = origin - t[0];
    let u = s.dot(p) * inv;
    if !(0.0..=1.0).contains(&u) {
        return None;
    }
    let q = s.cross(e1);
    let v = dir.dot(q) * inv;
    if v < 0.0 || u + v > 1.0 {
        return None;
    }
    let dist = e2.dot(q) * inv;
    (dist > tmin && dist < tmax).then_some(dist)
}

/// The shader's `safe_inverse`: a zero direction component becomes ±1e30, not infinity.
pub fn safe_inverse(d: Vec3) -> Vec3 {
    let inv = |c: f32| {
        if c.abs() < 1e-30 {
            if c >= 0.0 { 1e30 } else { -1e30 }
        } else {
            1.0 / c
        }
    };
    vec3(inv(d.x), inv(d.y), inv(d.z))
}

/// The shader's `box_entry`: the entry distance into the node's box, or `None` when the ray
/// misses it before `tmax`.
fn box_entry(n: &BvhNode, origin: Vec3, inv_dir: Vec3, tmax: f32) -> Option<f32> {
    let mut t0 = 0.0f32;
    let mut t1 = tmax;
    for axis in 0..3 {
        let a = (n.min[axis] - origin[axis]) * inv_dir[axis];
        let b = (n.max[axis] - origin[axis]) * inv_dir[axis];
        t0 = t0.max(a.min(b));
        t1 = t1.min(a.max(b));
    }
    (t0 <= t1).then_some(t0)
}

/// Bytes of one node and of one triangle's positions (`TriPos`: v0, e1, e2 as vec4) as the GPU
/// reads them; the traversal benchmark counts memory traffic with them.
pub const NODE_BYTES: u32 = 32;
pub const TRIANGLE_BYTES: u32 = 48;

/// What a traversal does, step by step: the traversal benchmark (bench/render/traversal)
/// counts it; `()` counts nothing.
pub trait Observer {
    /// A node visited: `bytes` read for it and the child boxes it tests, `boxes` of them.
    fn node(&mut self, _bytes: u32, _boxes: u32) {}
    /// One ray–triangle test (it reads [`TRIANGLE_BYTES`]).
    fn triangle(&mut self) {}
    /// The traversal stack after a push: `entries` deep.
    fn stack(&mut self, _entries: u32) {}
}

impl Observer for () {}

/// Entries of the shader's traversal stack.
pub const STACK_SIZE: u32 = 32;

/// A tree the CPU can walk as the shader does: the binary [`Bvh`] and the wide
/// [`crate::wide_bvh::WideBvh`]. Hits are `(t, original triangle index)`.
pub trait Traverse {
    /// The hit closer than `tmax` (the nearest, or with `any_hit` the first found), every step
    /// reported to `observer`.
    fn trace(
        &self,
        tris: &[[Vec3; 3]],
        origin: Vec3,
        dir: Vec3,
        tmax: f32,
        any_hit: bool,
        observer: &mut impl Observer,
    ) -> Option<(f32, u32)>;

    /// The nearest hit closer than `tmax`.
    fn intersect(
        &self,
        tris: &[[Vec3; 3]],
        origin: Vec3,
        dir: Vec3,
        tmax: f32,
    ) -> Option<(f32, u32)> {
        self.trace(tris, origin, dir, tmax, false, &mut ())
    }
}

impl Traverse for Bvh {
    /// The CPU mirror of `trace_binary()` in `trace.wgsl`, step for step: nearest child first,
    /// the farther one pushed with its entry distance, popped nodes farther than the current
    /// hit skipped; `any_hit` stops at the first hit (shadow rays).
    fn trace(
        &self,
        tris: &[[Vec3; 3]],
        origin: Vec3,
        dir: Vec3,
        tmax: f32,
        any_hit: bool,
        observer: &mut impl Observer,
    ) -> Option<(f32, u32)> {
        let inv = safe_inverse(dir);
        let mut best: Option<(f32, u32)> = None;
        let mut closest = tmax;
        let mut stack: Vec<(u32, f32)> = Vec::with_capacity(STACK_SIZE as usize);
        box_entry(&self.nodes[0], origin, inv, closest)?;
        let mut node = 0u32;
        loop {
            let n = &self.nodes[node as usize];
            if n.count > 0 {
                observer.node(NODE_BYTES, 0);
                for k in n.left_or_first..n.left_or_first + n.count {
                    observer.triangle();
                    let tri = self.order[k as usize];
                    if let Some(t) =
                        intersect_triangle(&tris[tri as usize], origin, dir, 0.0, closest)
                    {
                        closest = t;
                        best = Some((t, tri));
                        if any_hit {
                            return best;
                        }
                    }
                }
            } else {
                observer.node(3 * NODE_BYTES, 2);
                let (l, r) = (n.left_or_first, n.left_or_first + 1);
                let hl = box_entry(&self.nodes[l as usize], origin, inv, closest);
                let hr = box_entry(&self.nodes[r as usize], origin, inv, closest);
                let (near, far) = match (hl, hr) {
                    (Some(a), Some(b)) if b < a => ((r, b), Some((l, a))),
                    (Some(a), b) => ((l, a), b.map(|b| (r, b))),
                    (None, Some(b)) => ((r, b), None),
                    (None, None) => ((u32::MAX, 0.0), None),
                };
                if near.0 != u32::MAX {
                    if let Some(far) = far
                        && (stack.len() as u32) < STACK_SIZE
                    {
                        stack.push(far);
                        observer.stack(stack.len() as u32);
                    }
                    node = near.0;
                    continue;
                }
            }
            // Pop the next node still closer than the current hit.
            loop {
                match stack.pop() {
                    Some((next, entry)) if entry < closest => {
                        node = next;
                        break;
                    }
                    Some(_) => {}
                    None => return best,
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sampling::Pcg;

    pub(crate) fn random_soup(rng: &mut Pcg, n: usize) -> Vec<[Vec3; 3]> {
        (0..n)
            .map(|_| {
                let c = vec3(rng.next_f32(), rng.next_f32(), rng.next_f32()) * 10.0;
                let mut v = || {
                    c + vec3(
                        rng.next_f32() - 0.5,
                        rng.next_f32() - 0.5,
                        rng.next_f32() - 0.5,
                    )
                };
                [v(), v(), v()]
            })
            .collect()
    }

    pub(crate) fn brute(tris: &[[Vec3; 3]], o: Vec3, d: Vec3) -> Option<(f32, u32)> {
        let mut best = None;
        let mut closest = f32::INFINITY;
        for (i, t) in tris.iter().enumerate() {
            if let Some(h) = intersect_triangle(t, o, d, 0.0, closest) {
                closest = h;
                best = Some((h, i as u32));
            }
        }
        best
    }

    #[test]
    fn bvh_matches_brute_force_on_random_rays() {
        let mut rng = Pcg::new(42);
        let tris = random_soup(&mut rng, 3000);
        let bvh = build(&tris);
        let mut hits = 0;
        for _ in 0..4000 {
            let o = vec3(rng.next_f32(), rng.next_f32(), rng.next_f32()) * 14.0 - Vec3::splat(2.0);
            let d = vec3(
                rng.next_f32() - 0.5,
                rng.next_f32() - 0.5,
                rng.next_f32() - 0.5,
            )
            .try_normalize()
            .unwrap();
            let expected = brute(&tris, o, d);
            let got = bvh.intersect(&tris, o, d, f32::INFINITY);
            match (expected, got) {
                (None, None) => {}
                (Some((te, _)), Some((tg, _))) => {
                    hits += 1;
                    assert!((te - tg).abs() <= 1e-5 * te.max(1.0), "t {te} vs {tg}");
                }
                other => panic!("hit/miss disagreement: {other:?}"),
            }
        }
        assert!(hits > 500, "too few hits to mean anything: {hits}");
    }

    #[test]
    fn every_triangle_is_in_exactly_one_leaf_and_children_nest() {
        let mut rng = Pcg::new(7);
        let tris = random_soup(&mut rng, 1000);
        let bvh = build(&tris);
        let mut seen = vec![0u32; tris.len()];
        for n in &bvh.nodes {
            if n.count > 0 {
                for k in n.left_or_first..n.left_or_first + n.count {
                    seen[bvh.order[k as usize] as usize] += 1;
                    for p in &tris[bvh.order[k as usize] as usize] {
                        for a in 0..3 {
                            assert!(p[a] >= n.min[a] && p[a] <= n.max[a]);
                        }
                    }
                }
            } else {
                for child in [n.left_or_first, n.left_or_first + 1] {
                    let c = &bvh.nodes[child as usize];
                    for a in 0..3 {
                        assert!(c.min[a] >= n.min[a] && c.max[a] <= n.max[a]);
                    }
                }
            }
        }
        assert!(seen.iter().all(|&s| s == 1));
        assert!(bvh.depth <= MAX_DEPTH);
        assert!(
            bvh.sah_cost > 0.0 && bvh.sah_cost < tris.len() as f32 / 4.0,
            "SAH {}",
            bvh.sah_cost
        );
    }

    #[test]
    fn degenerate_input_builds() {
        let same = [vec3(1.0, 1.0, 1.0); 3];
        let bvh = build(&vec![same; 100]);
        assert!(bvh.depth <= MAX_DEPTH);
        let empty = build(&[]);
        assert_eq!(empty.nodes.len(), 1);
        assert_eq!(empty.nodes[0].count, 0);
    }
}
