//! Compressed 8-wide BVH (Ylitie, Karras & Laine 2017, "Efficient incoherent ray traversal on
//! GPUs through compressed wide BVHs"): 80-byte nodes whose eight child boxes are quantised to
//! 8 bits per plane against the node's origin and power-of-two scale, traversed by node groups
//! and triangle groups in the ray's octant order.
//!
//! The tree is built by `obvhs` (PLOC, reinsertion, then the paper's SAH-optimal collapse of
//! the binary tree into 8-wide nodes with up to three triangles a leaf); this module holds the
//! node format as the GPU reads it and the CPU traversal, step for step what a shader does,
//! with an [`Observer`] so the traversal benchmark (bench/render/traversal) can count it.

use obvhs::aabb::Aabb;
use obvhs::bvh2::{Bvh2, node::Bvh2Node};

use crate::bvh::{Bvh, Observer, STACK_SIZE, Traverse, intersect_triangle, safe_inverse};
use crate::math::Vec3;

fn glam_vec(p: Vec3) -> glam::Vec3A {
    glam::Vec3A::new(p.x, p.y, p.z)
}

/// Writes binary node `from` as obvhs node `to` (already allocated), leaves split to one
/// triangle each.
fn expand(binary: &Bvh, tris: &[[Vec3; 3]], from: u32, to: usize, out: &mut Vec<Bvh2Node>) {
    let n = binary.nodes[from as usize];
    if n.count == 0 {
        let first = out.len();
        out.extend([Bvh2Node::default(); 2]);
        let bounds = Aabb::new(
            glam::Vec3A::from_array(n.min),
            glam::Vec3A::from_array(n.max),
        );
        out[to] = Bvh2Node::new(bounds, 0, first as u32);
        expand(binary, tris, n.left_or_first, first, out);
        expand(binary, tris, n.left_or_first + 1, first + 1, out);
    } else {
        split_leaf(binary, tris, (n.left_or_first, n.count), to, out);
    }
}

fn split_leaf(
    binary: &Bvh,
    tris: &[[Vec3; 3]],
    (first, count): (u32, u32),
    to: usize,
    out: &mut Vec<Bvh2Node>,
) {
    let mut bounds = Aabb::empty();
    for k in first..first + count {
        for p in tris[binary.order[k as usize] as usize] {
            bounds.extend(glam_vec(p));
        }
    }
    if count <= 1 {
        out[to] = Bvh2Node::new(bounds, count, first);
        return;
    }
    let children = out.len();
    out.extend([Bvh2Node::default(); 2]);
    out[to] = Bvh2Node::new(bounds, 0, children as u32);
    let half = count / 2;
    split_leaf(binary, tris, (first, half), children, out);
    split_leaf(
        binary,
        tris,
        (first + half, count - half),
        children + 1,
        out,
    );
}

/// One node, 80 bytes, in the paper's layout.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct WideNode {
    /// Origin of the child boxes' quantisation grid.
    pub origin: [f32; 3],
    /// Per axis, the biased exponent of the grid step: step = `f32::from_bits(e << 23)`.
    pub exponent: [u8; 3],
    /// Bit `s` set: child slot `s` is an inner node.
    pub inner_mask: u8,
    /// Index of the first inner child; inner children are stored contiguously in slot order.
    pub child_base: u32,
    /// Index (into [`WideBvh::order`]) of the first triangle of the leaf children.
    pub triangle_base: u32,
    /// Per slot: 0 empty; inner `0b001_11sss` (24 + slot); leaf: the triangle count in unary
    /// in the top 3 bits, its first triangle's offset from `triangle_base` in the low 5.
    pub meta: [u8; 8],
    pub lo_x: [u8; 8],
    pub lo_y: [u8; 8],
    pub lo_z: [u8; 8],
    pub hi_x: [u8; 8],
    pub hi_y: [u8; 8],
    pub hi_z: [u8; 8],
}

pub const WIDE_NODE_BYTES: u32 = 80;

/// Largest coordinate magnitude [`WideBvh::build`] takes: a box of this size has a surface
/// area of 6·10²⁴, which times millions of triangles and a tree's levels stays finite in f32.
pub const MAX_EXTENT: f32 = 1e12;

const _: () = assert!(std::mem::size_of::<WideNode>() == WIDE_NODE_BYTES as usize);

#[derive(Debug, Clone, Default)]
pub struct WideBvh {
    /// Root first; empty for a scene without triangles.
    pub nodes: Vec<WideNode>,
    /// `order[k]` is the original index of the k-th triangle the leaves refer to.
    pub order: Vec<u32>,
}

/// Per byte, the ray's inverted octant (bit 2: x ≥ 0, bit 1: y ≥ 0, bit 0: z ≥ 0): XORed into
/// an inner child's slot it makes the slot nearest along the ray the highest bit.
pub fn octant_inv4(dir: Vec3) -> u32 {
    (if dir.x < 0.0 { 0 } else { 0x0404_0404 })
        | (if dir.y < 0.0 { 0 } else { 0x0202_0202 })
        | (if dir.z < 0.0 { 0 } else { 0x0101_0101 })
}

impl WideNode {
    /// Slots that hold a child.
    pub fn children(&self) -> u32 {
        self.meta.iter().filter(|&&m| m != 0).count() as u32
    }

    fn is_inner_slot(&self, slot: usize) -> bool {
        self.meta[slot] & 0b0001_1000 == 0b0001_1000
    }

    /// Grid step per axis.
    pub fn step(&self) -> [f32; 3] {
        self.exponent.map(|e| f32::from_bits((e as u32) << 23))
    }

    /// The (dequantised) box of child `slot`: `(min, max)`.
    pub fn child_box(&self, slot: usize) -> ([f32; 3], [f32; 3]) {
        let step = self.step();
        let lo = [self.lo_x[slot], self.lo_y[slot], self.lo_z[slot]];
        let hi = [self.hi_x[slot], self.hi_y[slot], self.hi_z[slot]];
        let at = |q: [u8; 3]| std::array::from_fn(|a| self.origin[a] + step[a] * q[a] as f32);
        (at(lo), at(hi))
    }

    /// The hit mask of the ray against the eight child boxes: bits 24–31 for inner children
    /// (at 24 + slot XOR octant, so the nearest comes out first), bits 0–23 for the triangles
    /// of leaf children (at their offsets from `triangle_base`).
    fn intersect(&self, origin: Vec3, inv: Vec3, oct_inv4: u32, tmax: f32) -> u32 {
        let step = self.step();
        // The ray in the node's grid: t = q · scale + base.
        let scale: [f32; 3] = std::array::from_fn(|a| step[a] * inv[a]);
        let base: [f32; 3] = std::array::from_fn(|a| (self.origin[a] - origin[a]) * inv[a]);
        let planes = [
            (&self.lo_x, &self.hi_x),
            (&self.lo_y, &self.hi_y),
            (&self.lo_z, &self.hi_z),
        ];
        let mut mask = 0u32;
        for slot in 0..8 {
            let meta = self.meta[slot] as u32;
            if meta == 0 {
                continue;
            }
            let mut near = 0.0f32;
            let mut far = tmax;
            for (a, (lo, hi)) in planes.iter().enumerate() {
                let t_lo = lo[slot] as f32 * scale[a] + base[a];
                let t_hi = hi[slot] as f32 * scale[a] + base[a];
                near = near.max(t_lo.min(t_hi));
                far = far.min(t_lo.max(t_hi));
            }
            if near <= far {
                let bits = meta >> 5;
                let index = if self.is_inner_slot(slot) {
                    (meta ^ (oct_inv4 & 7)) & 31
                } else {
                    meta & 31
                };
                mask |= bits << index;
            }
        }
        mask
    }
}

impl WideBvh {
    /// Builds with obvhs: PLOC (its "medium" preset: search radius 14, 5 % reinsertion), then
    /// the SAH-optimal collapse. Coincident triangles can make PLOC chain them into a tree
    /// deeper than the traversal stack (100 copies of one triangle did); such a scene gets
    /// our binned tree (depth ≤ 31, split by count where centroids coincide) collapsed instead.
    ///
    /// `None` for a scene beyond [`MAX_EXTENT`] (or with non-finite coordinates): obvhs's f32
    /// surface-area costs overflow there (its collapse then fails); such a scene is traversed
    /// as a binary tree (`gpu::layout::pack`).
    pub fn build(triangles: &[[Vec3; 3]]) -> Option<WideBvh> {
        if triangles.is_empty() {
            return Some(WideBvh::default());
        }
        let within =
            |p: &Vec3| p.is_finite() && p.x.abs().max(p.y.abs()).max(p.z.abs()) <= MAX_EXTENT;
        if !triangles.iter().flatten().all(within) {
            return None;
        }
        let tris: Vec<obvhs::triangle::Triangle> = triangles
            .iter()
            .map(|t| {
                let [v0, v1, v2] = t.map(glam_vec);
                obvhs::triangle::Triangle { v0, v1, v2 }
            })
            .collect();
        let params = obvhs::BvhBuildParams::medium_build();
        let mut bvh2 = obvhs::ploc::PlocBuilder::with_capacity(tris.len()).build(
            params.ploc_search_distance,
            &tris,
            (0..tris.len() as u32).collect(),
            params.sort_precision,
            params.search_depth_threshold,
        );
        obvhs::bvh2::reinsertion::ReinsertionOptimizer::default().run(
            &mut bvh2,
            params.reinsertion_batch_ratio,
            None,
        );
        let wide = WideBvh::collapse(&bvh2);
        if wide.depth() < STACK_SIZE {
            return Some(wide);
        }
        Some(WideBvh::from_binary(
            &crate::bvh::build(triangles),
            triangles,
        ))
    }

    /// obvhs's SAH-optimal collapse (≤ 3 triangles a leaf) of a tree of one-triangle leaves.
    fn collapse(bvh2: &Bvh2) -> WideBvh {
        WideBvh::from_obvhs(&obvhs::cwbvh::bvh2_to_cwbvh::bvh2_to_cwbvh(
            bvh2, 3, true, false,
        ))
    }

    /// A binary tree of [`crate::bvh`] collapsed to 8-wide: each leaf of `k` triangles first
    /// becomes a balanced subtree of one-triangle leaves (what the collapse wants).
    pub fn from_binary(binary: &Bvh, triangles: &[[Vec3; 3]]) -> WideBvh {
        let mut nodes = vec![Bvh2Node::default()];
        expand(binary, triangles, 0, 0, &mut nodes);
        let bvh2 = Bvh2 {
            nodes,
            primitive_indices: binary.order.clone(),
            ..Default::default()
        };
        WideBvh::collapse(&bvh2)
    }

    /// Levels of nodes below the root (a root alone: 0); the traversal stack holds at most one
    /// entry a level.
    pub fn depth(&self) -> u32 {
        let mut deepest = 0;
        let mut todo = vec![(0u32, 0u32)];
        while let Some((i, depth)) = todo.pop() {
            deepest = deepest.max(depth);
            let node = &self.nodes[i as usize];
            for k in 0..node.inner_mask.count_ones() {
                todo.push((node.child_base + k, depth + 1));
            }
        }
        deepest
    }

    /// The same tree in this module's layout (obvhs keeps the planes in another order).
    pub fn from_obvhs(bvh: &obvhs::cwbvh::CwBvh) -> WideBvh {
        let nodes = bvh
            .nodes
            .iter()
            .map(|n| WideNode {
                origin: n.p.to_array(),
                exponent: n.e,
                inner_mask: n.imask,
                child_base: n.child_base_idx,
                triangle_base: n.primitive_base_idx,
                meta: n.child_meta,
                lo_x: n.child_min_x,
                lo_y: n.child_min_y,
                lo_z: n.child_min_z,
                hi_x: n.child_max_x,
                hi_y: n.child_max_y,
                hi_z: n.child_max_z,
            })
            .collect();
        WideBvh {
            nodes,
            order: bvh.primitive_indices.clone(),
        }
    }
}

impl Traverse for WideBvh {
    /// Stack traversal by groups (the paper's Algorithm 1): a node group is (first inner
    /// child, hit bits 24–31 | the parent's inner mask), a triangle group (first triangle,
    /// hit bits 0–23). The nearest inner child of the current group is visited next, the
    /// rest of the group pushed; its leaf children's triangles are tested right after.
    /// `any_hit` stops at the first hit (shadow rays). The CPU mirror of `trace_wide()` in
    /// `trace.wgsl`.
    fn trace(
        &self,
        tris: &[[Vec3; 3]],
        origin: Vec3,
        dir: Vec3,
        tmax: f32,
        any_hit: bool,
        observer: &mut impl Observer,
    ) -> Option<(f32, u32)> {
        if self.nodes.is_empty() {
            return None;
        }
        let inv = safe_inverse(dir);
        let oct_inv4 = octant_inv4(dir);
        let mut closest = tmax;
        let mut best = None;
        let mut stack: Vec<[u32; 2]> = Vec::with_capacity(32);
        // The root, as the only inner child (slot 7) of a virtual parent.
        let mut group = [0u32, 0x8000_0000];
        loop {
            let hits = group[1];
            let bit = 31 - hits.leading_zeros();
            group[1] &= !(1 << bit);
            if group[1] & 0xff00_0000 != 0 && stack.len() < STACK_SIZE as usize {
                stack.push(group);
                observer.stack(stack.len() as u32);
            }
            let slot = (bit - 24) ^ (oct_inv4 & 0xff);
            let before = (hits & 0xff) & !(u32::MAX << slot);
            let node = &self.nodes[(group[0] + before.count_ones()) as usize];
            let mask = node.intersect(origin, inv, oct_inv4, closest);
            observer.node(WIDE_NODE_BYTES, node.children());
            group = [
                node.child_base,
                (mask & 0xff00_0000) | node.inner_mask as u32,
            ];
            let mut triangles = mask & 0x00ff_ffff;
            while triangles != 0 {
                let bit = 31 - triangles.leading_zeros();
                triangles &= !(1 << bit);
                observer.triangle();
                let tri = self.order[(node.triangle_base + bit) as usize];
                if let Some(t) = intersect_triangle(&tris[tri as usize], origin, dir, 0.0, closest)
                {
                    closest = t;
                    best = Some((t, tri));
                    if any_hit {
                        return best;
                    }
                }
            }
            if group[1] & 0xff00_0000 == 0 {
                match stack.pop() {
                    Some(next) => group = next,
                    None => return best,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bvh::tests::{brute, random_soup};
    use crate::math::vec3;
    use crate::sampling::Pcg;

    #[test]
    fn wide_bvh_matches_brute_force_on_random_rays() {
        let mut rng = Pcg::new(42);
        let tris = random_soup(&mut rng, 3000);
        let bvh = WideBvh::build(&tris).unwrap();
        assert!(
            bvh.nodes.len() < tris.len() / 2,
            "{} nodes",
            bvh.nodes.len()
        );
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
            match (
                brute(&tris, o, d),
                bvh.intersect(&tris, o, d, f32::INFINITY),
            ) {
                (None, None) => {}
                (Some((te, ie)), Some((tg, ig))) => {
                    hits += 1;
                    assert!((te - tg).abs() <= 1e-5 * te.max(1.0), "t {te} vs {tg}");
                    assert_eq!(ie, ig);
                }
                other => panic!("hit/miss disagreement: {other:?}"),
            }
            let any = bvh.trace(&tris, o, d, f32::INFINITY, true, &mut ());
            assert_eq!(any.is_some(), brute(&tris, o, d).is_some());
        }
        assert!(hits > 500, "too few hits to mean anything: {hits}");
    }

    #[test]
    fn child_boxes_contain_their_triangles() {
        let mut rng = Pcg::new(7);
        let tris = random_soup(&mut rng, 1000);
        let bvh = WideBvh::build(&tris).unwrap();
        let mut seen = vec![0u32; tris.len()];
        for node in &bvh.nodes {
            for slot in 0..8 {
                let meta = node.meta[slot];
                if meta == 0 || node.is_inner_slot(slot) {
                    continue;
                }
                let (lo, hi) = node.child_box(slot);
                for k in 0..(meta >> 5).count_ones() {
                    let index = node.triangle_base + (meta & 31) as u32 + k;
                    let tri = bvh.order[index as usize] as usize;
                    seen[tri] += 1;
                    for p in &tris[tri] {
                        for a in 0..3 {
                            assert!(
                                p[a] >= lo[a] && p[a] <= hi[a],
                                "{p:?} outside {lo:?}..{hi:?}"
                            );
                        }
                    }
                }
            }
        }
        assert!(seen.iter().all(|&s| s == 1));
    }

    #[test]
    fn degenerate_and_extreme_input_builds_and_traverses() {
        let same = [vec3(1.0, 1.0, 1.0); 3];
        let flat = [
            vec3(0.0, 0.0, 0.0),
            vec3(1.0, 0.0, 0.0),
            vec3(2.0, 0.0, 0.0),
        ];
        let huge = [
            vec3(-1e30, -1e30, 5.0),
            vec3(1e30, -1e30, 5.0),
            vec3(0.0, 1e30, 5.0),
        ];
        let big = [
            vec3(-1e11, -1e11, 5.0),
            vec3(1e11, -1e11, 5.0),
            vec3(0.0, 1e11, 5.0),
        ];
        let tiny = [
            vec3(0.0, 0.0, 1.0),
            vec3(1e-30, 0.0, 1.0),
            vec3(0.0, 1e-30, 1.0),
        ];
        for tris in [
            vec![same; 100],
            vec![flat; 50],
            vec![huge, tiny, flat],
            vec![big, tiny, flat],
            vec![huge; 9],
        ] {
            let Some(bvh) = WideBvh::build(&tris) else {
                assert!(
                    tris.contains(&huge),
                    "only the huge triangle is beyond MAX_EXTENT"
                );
                continue;
            };
            let mut seen = bvh.order.clone();
            seen.sort();
            assert_eq!(seen, (0..tris.len() as u32).collect::<Vec<_>>());
            let hit = bvh.intersect(
                &tris,
                vec3(0.1, 0.1, 0.0),
                vec3(0.0, 0.0, 1.0),
                f32::INFINITY,
            );
            assert_eq!(
                hit.map(|h| h.0),
                brute(&tris, vec3(0.1, 0.1, 0.0), vec3(0.0, 0.0, 1.0)).map(|h| h.0)
            );
        }
    }

    #[test]
    fn tiny_and_empty_scenes() {
        assert!(
            WideBvh::build(&[])
                .unwrap()
                .intersect(&[], Vec3::ZERO, vec3(0.0, 0.0, 1.0), 1e30)
                .is_none()
        );
        let one = [[
            vec3(-1.0, -1.0, 2.0),
            vec3(1.0, -1.0, 2.0),
            vec3(0.0, 1.0, 2.0),
        ]];
        let bvh = WideBvh::build(&one).unwrap();
        let hit = bvh.intersect(&one, Vec3::ZERO, vec3(0.0, 0.0, 1.0), 1e30);
        assert_eq!(hit.map(|(_, i)| i), Some(0));
    }
}
