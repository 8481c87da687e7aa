//! Small linear algebra for scene loading and the BVH: a 3-vector and a column-major 4×4
//! matrix (glTF's layout). The GPU does its own math in WGSL.

use std::ops::{Add, Div, Index, Mul, Neg, Sub};

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Vec3 {
    pub x: f32,
    pub y: f32,
    pub z: f32,
}

pub const fn vec3(x: f32, y: f32, z: f32) -> Vec3 {
    Vec3 { x, y, z }
}

impl Vec3 {
    pub const ZERO: Vec3 = vec3(0.0, 0.0, 0.0);

    pub fn splat(v: f32) -> Vec3 {
        vec3(v, v, v)
    }
    pub fn from_array(a: [f32; 3]) -> Vec3 {
        vec3(a[0], a[1], a[2])
    }
    pub fn to_array(self) -> [f32; 3] {
        [self.x, self.y, self.z]
    }
    pub fn dot(self, o: Vec3) -> f32 {
        self.x * o.x + self.y * o.y + self.z * o.z
    }
    pub fn cross(self, o: Vec3) -> Vec3 {
        vec3(
            self.y * o.z - self.z * o.y,
            self.z * o.x - self.x * o.z,
            self.x * o.y - self.y * o.x,
        )
    }
    pub fn length(self) -> f32 {
        self.dot(self).sqrt()
    }
    /// The unit vector, or `None` for a (near) zero vector.
    pub fn try_normalize(self) -> Option<Vec3> {
        let len = self.length();
        (len > 1e-20 && len.is_finite()).then(|| self / len)
    }
    pub fn min(self, o: Vec3) -> Vec3 {
        vec3(self.x.min(o.x), self.y.min(o.y), self.z.min(o.z))
    }
    pub fn max(self, o: Vec3) -> Vec3 {
        vec3(self.x.max(o.x), self.y.max(o.y), self.z.max(o.z))
    }
    pub fn max_element(self) -> f32 {
        self.x.max(self.y).max(self.z)
    }
    pub fn mul_elem(self, o: Vec3) -> Vec3 {
        vec3(self.x * o.x, self.y * o.y, self.z * o.z)
    }
    pub fn is_finite(self) -> bool {
        self.x.is_finite() && self.y.is_finite() && self.z.is_finite()
    }
}

impl Add for Vec3 {
    type Output = Vec3;
    fn add(self, o: Vec3) -> Vec3 {
        vec3(self.x + o.x, self.y + o.y, self.z + o.z)
    }
}
impl Sub for Vec3 {
    type Output = Vec3;
    fn sub(self, o: Vec3) -> Vec3 {
        vec3(self.x - o.x, self.y - o.y, self.z - o.z)
    }
}
impl Mul<f32> for Vec3 {
    type Output = Vec3;
    fn mul(self, s: f32) -> Vec3 {
        vec3(self.x * s, self.y * s, self.z * s)
    }
}
impl Div<f32> for Vec3 {
    type Output = Vec3;
    fn div(self, s: f32) -> Vec3 {
        vec3(self.x / s, self.y / s, self.z / s)
    }
}
impl Neg for Vec3 {
    type Output = Vec3;
    fn neg(self) -> Vec3 {
        vec3(-self.x, -self.y, -self.z)
    }
}
impl Index<usize> for Vec3 {
    type Output = f32;
    fn index(&self, axis: usize) -> &f32 {
        match axis {
            0 => &self.x,
            1 => &self.y,
            _ => &self.z,
        }
    }
}

/// Column-major 4×4 matrix, as glTF stores it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mat4(pub [[f32; 4]; 4]);

impl Mat4 {
    pub const IDENTITY: Mat4 = Mat4([
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]);

    /// `T * R * S`, with the rotation a unit quaternion `[x, y, z, w]`.
    pub fn from_trs(t: [f32; 3], r: [f32; 4], s: [f32; 3]) -> Mat4 {
        let [x, y, z, w] = r;
        let (x2, y2, z2) = (x + x, y + y, z + z);
        let (xx, xy, xz) = (x * x2, x * y2, x * z2);
        let (yy, yz, zz) = (y * y2, y * z2, z * z2);
        let (wx, wy, wz) = (w * x2, w * y2, w * z2);
        Mat4([
            [
                (1.0 - (yy + zz)) * s[0],
                (xy + wz) * s[0],
                (xz - wy) * s[0],
                0.0,
            ],
            [
                (xy - wz) * s[1],
                (1.0 - (xx + zz)) * s[1],
                (yz + wx) * s[1],
                0.0,
            ],
            [
                (xz + wy) * s[2],
                (yz - wx) * s[2],
                (1.0 - (xx + yy)) * s[2],
                0.0,
            ],
            [t[0], t[1], t[2], 1.0],
        ])
    }

    pub fn mul(&self, o: &Mat4) -> Mat4 {
        let mut out = [[0.0f32; 4]; 4];
        for (c, column) in out.iter_mut().enumerate() {
            for (r, value) in column.iter_mut().enumerate() {
                *value = (0..4).map(|k| self.0[k][r] * o.0[c][k]).sum();
            }
        }
        Mat4(out)
    }

    pub fn transform_point(&self, p: Vec3) -> Vec3 {
        let m = &self.0;
        vec3(
            m[0][0] * p.x + m[1][0] * p.y + m[2][0] * p.z + m[3][0],
            m[0][1] * p.x + m[1][1] * p.y + m[2][1] * p.z + m[3][1],
            m[0][2] * p.x + m[1][2] * p.y + m[2][2] * p.z + m[3][2],
        )
    }

    pub fn transform_vector(&self, v: Vec3) -> Vec3 {
        let m = &self.0;
        vec3(
            m[0][0] * v.x + m[1][0] * v.y + m[2][0] * v.z,
            m[0][1] * v.x + m[1][1] * v.y + m[2][1] * v.z,
            m[0][2] * v.x + m[1][2] * v.y + m[2][2] * v.z,
        )
    }

    fn column3(&self, c: usize) -> Vec3 {
        vec3(self.0[c][0], self.0[c][1], self.0[c][2])
    }

    /// Determinant of the upper 3×3 block; negative means the transform mirrors (and flips
    /// the triangle winding).
    pub fn determinant3(&self) -> f32 {
        self.column3(0).dot(self.column3(1).cross(self.column3(2)))
    }

    /// The inverse-transpose of the upper 3×3 block, for normals (columns returned as rows of
    /// the cofactor matrix; the scale does not matter because normals are renormalized).
    pub fn normal_matrix(&self) -> [Vec3; 3] {
        let (a, b, c) = (self.column3(0), self.column3(1), self.column3(2));
        let sign = if self.determinant3() < 0.0 { -1.0 } else { 1.0 };
        [b.cross(c) * sign, c.cross(a) * sign, a.cross(b) * sign]
    }

    pub fn transform_normal(&self, n: Vec3) -> Vec3 {
        let [cx, cy, cz] = self.normal_matrix();
        cx * n.x + cy * n.y + cz * n.z
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Vec3, b: Vec3) -> bool {
        (a - b).length() < 1e-5
    }

    #[test]
    fn trs_composes_scale_rotation_translation() {
        // 90° about +Z: x → y.
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let m = Mat4::from_trs([1.0, 2.0, 3.0], [0.0, 0.0, h, h], [2.0, 2.0, 2.0]);
        assert!(close(
            m.transform_point(vec3(1.0, 0.0, 0.0)),
            vec3(1.0, 4.0, 3.0)
        ));
        assert!(close(
            m.transform_vector(vec3(0.0, 1.0, 0.0)),
            vec3(-2.0, 0.0, 0.0)
        ));
        let parent = Mat4::from_trs([10.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0]);
        assert!(close(
            parent.mul(&m).transform_point(Vec3::ZERO),
            vec3(11.0, 2.0, 3.0)
        ));
    }

    #[test]
    fn normals_stay_perpendicular_under_non_uniform_scale() {
        let m = Mat4::from_trs([0.0; 3], [0.0, 0.0, 0.0, 1.0], [4.0, 1.0, 1.0]);
        let tangent = m.transform_vector(vec3(1.0, 1.0, 0.0));
        let normal = m.transform_normal(vec3(1.0, -1.0, 0.0));
        assert!(tangent.dot(normal).abs() < 1e-5);
        let mirror = Mat4::from_trs([0.0; 3], [0.0, 0.0, 0.0, 1.0], [-1.0, 1.0, 1.0]);
        assert!(mirror.determinant3() < 0.0);
        assert!(close(
            mirror
                .transform_normal(vec3(0.0, 0.0, 1.0))
                .try_normalize()
                .unwrap(),
            vec3(0.0, 0.0, 1.0)
        ));
    }
}
