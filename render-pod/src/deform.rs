//! Skins and morph targets (glTF 2.0 §3.7.3 and §3.7.2.2): how a mesh's vertices move at a
//! point in time, once the node animation has been sampled. Pure functions; `gltf_scene`
//! reads the accessors and hands the results to them.
//!
//! - Morphing: `p = base + Σ weightₜ · deltaₜ`, for positions and normals alike (normals are
//!   renormalised after), with the node's weights (animated, else the node's, else the mesh's
//!   defaults).
//! - Skinning: each vertex moves by `Σ weightₖ · world(jointₖ) · inverseBind(jointₖ)` over its
//!   influences (`JOINTS_n`/`WEIGHTS_n`, every set), normals by that matrix's inverse
//!   transpose. The skinned mesh node's own transform is ignored, as the specification says.
//!   Weights that do not sum to 1 are normalised; a vertex without weight stays where the mesh
//!   puts it.

use crate::math::{Mat4, Vec3};

/// Adds `Σ weights[t] · targets[t][i]` to each `base[i]`; targets shorter than `base` leave
/// the rest alone, weights beyond the targets (or targets beyond the weights) count as 0.
pub fn morph(base: &mut [Vec3], targets: &[Vec<Vec3>], weights: &[f32]) {
    for (target, &weight) in targets.iter().zip(weights) {
        if weight == 0.0 || !weight.is_finite() {
            continue;
        }
        for (p, d) in base.iter_mut().zip(target) {
            *p = *p + *d * weight;
        }
    }
}

/// The matrices of a skin's joints: `world(joint) · inverseBind`.
pub fn joint_matrices(joint_worlds: &[Mat4], inverse_binds: &[Mat4]) -> Vec<Mat4> {
    joint_worlds
        .iter()
        .zip(inverse_binds)
        .map(|(world, inverse_bind)| world.mul(inverse_bind))
        .collect()
}

/// The skinning matrix of a vertex from its `(joint, weight)` influences; `Err` names a joint
/// the skin does not have. Non-positive and non-finite weights are ignored.
pub fn skin_matrix(joints: &[Mat4], influences: &[(u16, f32)]) -> Result<Mat4, String> {
    let mut out = [[0.0f32; 4]; 4];
    let mut total = 0.0f32;
    for &(joint, weight) in influences {
        if !(weight > 0.0 && weight.is_finite()) {
            continue;
        }
        let matrix = joints.get(usize::from(joint)).ok_or_else(|| {
            format!(
                "a vertex is weighted to joint {joint} of a skin with {} joint(s)",
                joints.len()
            )
        })?;
        total += weight;
        for (column, source) in out.iter_mut().zip(&matrix.0) {
            for (value, s) in column.iter_mut().zip(source) {
                *value += weight * s;
            }
        }
    }
    if total <= 0.0 {
        return Ok(Mat4::IDENTITY);
    }
    for value in out.iter_mut().flatten() {
        *value /= total;
    }
    Ok(Mat4(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::vec3;

    fn close(a: Vec3, b: Vec3) -> bool {
        (a - b).length() < 1e-5
    }

    #[test]
    fn morph_targets_add_their_weighted_deltas() {
        let mut base = vec![vec3(0.0, 0.0, 0.0), vec3(1.0, 0.0, 0.0)];
        let targets = vec![
            vec![vec3(0.0, 1.0, 0.0), vec3(0.0, 2.0, 0.0)],
            vec![vec3(1.0, 0.0, 0.0)], // shorter than the mesh: the rest unmoved
        ];
        morph(&mut base, &targets, &[0.5, 2.0, 7.0]);
        assert!(close(base[0], vec3(2.0, 0.5, 0.0)), "{:?}", base[0]);
        assert!(close(base[1], vec3(1.0, 1.0, 0.0)), "{:?}", base[1]);
    }

    #[test]
    fn a_vertex_follows_its_joints_in_proportion_to_its_weights() {
        // Joint 0 at rest; joint 1 turned 90° about +Z around the point (1, 0, 0).
        let bind = Mat4::from_trs([1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], [1.0; 3]);
        let inverse_bind = Mat4::from_trs([-1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], [1.0; 3]);
        let half = std::f32::consts::FRAC_1_SQRT_2;
        let turned = bind.mul(&Mat4::from_trs([0.0; 3], [0.0, 0.0, half, half], [1.0; 3]));
        let joints = joint_matrices(&[Mat4::IDENTITY, turned], &[Mat4::IDENTITY, inverse_bind]);
        let p = vec3(2.0, 0.0, 0.0);
        let rigid = skin_matrix(&joints, &[(1, 1.0)]).unwrap();
        assert!(close(rigid.transform_point(p), vec3(1.0, 1.0, 0.0)));
        assert!(close(
            rigid.transform_normal(vec3(1.0, 0.0, 0.0)),
            vec3(0.0, 1.0, 0.0)
        ));
        // Half and half, given as weights that sum to 2: normalised to the midpoint.
        let blended = skin_matrix(&joints, &[(0, 1.0), (1, 1.0)]).unwrap();
        assert!(close(blended.transform_point(p), vec3(1.5, 0.5, 0.0)));
        // No weight at all: where the mesh puts it.
        assert_eq!(skin_matrix(&joints, &[(0, 0.0)]).unwrap(), Mat4::IDENTITY);
        // A zero weight on a joint the skin lacks is harmless; a real one is refused.
        assert!(skin_matrix(&joints, &[(9, 0.0), (1, 1.0)]).is_ok());
        let error = skin_matrix(&joints, &[(9, 0.5)]).unwrap_err();
        assert!(error.contains("joint 9 of a skin with 2"), "{error}");
    }
}
