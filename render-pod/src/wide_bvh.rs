//! Compressed 8-wide BVH (Ylitie, Karras & Laine 2017, "Efficient incoherent ray traversal on
//! GPUs through compressed wide BVHs"): 80-byte nodes whose eight child boxes are quantised to
//! 8 bits per plane against the node's origin and power-of-two scale, traversed by node groups
//! and triangle groups in the ray's octant order.
//!
//! The tree is built by `obvhs` (PLOC, reinsertion, then the paper's SAH-optimal collapse of
//! the binary tree into 8-wide nodes with up to three triangles a leaf); this module holds the
//! node format as the GPU reads it and the CPU traversal, step for step what a shader does,
//! with an [`Observer`] so the traversal benchmark (bench/render/traversal) can count it.

use std::time::Duration;

use crate::bvh::{Observer, intersect_triangle, safe_inverse};
use crate::math::Vec3;

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
    /// Builds with obvhs (its "medium" preset: PLOC search radius 14, 5 % reinsertion).
    pub fn build(triangles: &[[Vec3; 3]]) -> WideBvh {
        if triangles.is_empty() {
            return WideBvh::default();
        }
        let tris: Vec<obvhs::triangle::Triangle> = triangles
            .iter()
            .map(|t| {
                let [v0, v1, v2] = t.map(|p| glam::Vec3A::new(p.x, p.y, p.z));
                obvhs::triangle::Triangle { v0, v1, v2 }
            })
            .collect();
        let built = obvhs::cwbvh::builder::build_cwbvh_from_tris(
            &tris,
            obvhs::BvhBuildParams::medium_build(),
            &mut Duration::default(),
        );
        WideBvh::from_obvhs(&built)
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

    /// Nearest hit `(t, original triangle index)` closer than `tmax`.
    pub fn intersect(
        &self,
        tris: &[[Vec3; 3]],
        origin: Vec3,
        dir: Vec3,
        tmax: f32,
    ) -> Option<(f32, u32)> {
        self.trace(tris, origin, dir, tmax, false, &mut ())
    }

    /// Stack traversal by groups (the paper's Algorithm 1): a node group is (first inner
    /// child, hit bits 24–31 | the parent's inner mask), a triangle group (first triangle,
    /// hit bits 0–23). The nearest inner child of the current group is visited next, the
    /// rest of the group pushed; its leaf children's triangles are tested right after.
    /// `any_hit` stops at the first hit (shadow rays).
    pub fn trace(
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
            if group[1] & 0xff00_0000 != 0 {
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
        let bvh = WideBvh::build(&tris);
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
        let bvh = WideBvh::build(&tris);
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
    fn tiny_and_empty_scenes() {
        assert!(
            WideBvh::build(&[])
                .intersect(&[], Vec3::ZERO, vec3(0.0, 0.0, 1.0), 1e30)
                .is_none()
        );
        let one = [[
            vec3(-1.0, -1.0, 2.0),
            vec3(1.0, -1.0, 2.0),
            vec3(0.0, 1.0, 2.0),
        ]];
        let bvh = WideBvh::build(&one);
        let hit = bvh.intersect(&one, Vec3::ZERO, vec3(0.0, 0.0, 1.0), 1e30);
        assert_eq!(hit.map(|(_, i)| i), Some(0));
    }
}
