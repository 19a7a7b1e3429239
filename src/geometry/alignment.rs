//! Target and input alignment of the hidden representation, and the
//! plane they live in.
//!
//! With `K_z = Z Z^T`, `K_x = X X^T` and `K_y = Y Y^T` (`P x P` kernels
//! over the conditions), the *target alignment* is `a_y = A(K_z, K_y)` and
//! the *input alignment* is `a_x = A(K_z, K_x)`, with `A` the centred
//! kernel alignment of [`super::kernel`] (Cortes, Mohri and Rostamizadeh
//! 2012). `A` is the cosine between double-centred kernels seen as
//! vectors, so with the task's own alignment `c = A(K_x, K_y)` the three
//! angles obey the triangle inequality, which bounds the pair:
//!
//! `a_y <= c a_x + sqrt(1 - c^2) sqrt(1 - a_x^2)`.
//!
//! *Plane coordinates.* Take the orthonormal basis of the plane of the
//! centred `K_x` and `K_y` that starts at `K_x`: `e_1 = K_x`,
//! `e_2 = (K_y - c K_x) / sqrt(1 - c^2)` (unit, centred kernels). The
//! coordinates of the unit `K_z` projected on that plane are
//!
//! `u_1 = a_x`, `u_2 = (a_y - c a_x) / sqrt(1 - c^2)`,
//!
//! and `u_1^2 + u_2^2 <= 1`, with equality exactly when `K_z` lies in the
//! plane. The boundary above, for `a_x` in `[0, 1]`, maps to the quarter
//! circle `u_1^2 + u_2^2 = 1`, `u_1, u_2 >= 0`. In polar form
//! `(r, theta)`, `theta` is the angle from the input kernel towards the
//! target kernel: `theta = 0` is `K_x` itself and `theta = arccos c` is
//! `K_y`. repflow uses this convention throughout; the map is linear (a
//! shear and a scaling of the `(a_x, a_y)` plane, a rotation in the
//! angles).

use super::kernel::{cka, gram};

/// `A(Z Z^T, Y Y^T)` of the row-major `[P, N]` representation and the
/// row-major `[P, K]` targets; `NaN` when either has no variance.
///
/// # Panics
///
/// If either array is not `P` rows.
pub fn target_alignment(z: &[f64], targets: &[f64], p: usize) -> f64 {
    cka(&gram(z, p), &gram(targets, p))
}

/// `A(Z Z^T, X X^T)` of the row-major `[P, N]` representation and the
/// row-major `[P, D]` inputs; `NaN` when either has no variance.
///
/// # Panics
///
/// If either array is not `P` rows.
pub fn input_alignment(z: &[f64], inputs: &[f64], p: usize) -> f64 {
    cka(&gram(z, p), &gram(inputs, p))
}

/// The largest target alignment reachable at input alignment `a_x` when
/// the task's input-target alignment is `c`:
/// `c a_x + sqrt(1 - c^2) sqrt(1 - a_x^2)`.
pub fn alignment_bound(c: f64, a_x: f64) -> f64 {
    c * a_x + (1.0 - c * c).max(0.0).sqrt() * (1.0 - a_x * a_x).max(0.0).sqrt()
}

/// A point of the alignment plane in the coordinates of the module doc.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlanePoint {
    /// `u_1 = a_x`: the component along the input kernel.
    pub u1: f64,
    /// `u_2 = (a_y - c a_x) / sqrt(1 - c^2)`: the component along the part
    /// of the target kernel orthogonal to the input kernel.
    pub u2: f64,
}

impl PlanePoint {
    /// `(a_x, a_y)` for a task of input-target alignment `c`, or `None`
    /// when `c` is not in `[0, 1)` (at `c = 1` the plane degenerates).
    pub fn new(a_x: f64, a_y: f64, c: f64) -> Option<Self> {
        if !(0.0..1.0).contains(&c) {
            return None;
        }
        let s = (1.0 - c * c).sqrt();
        Some(PlanePoint {
            u1: a_x,
            u2: (a_y - c * a_x) / s,
        })
    }

    /// The radius: how much of the unit `K_z` lies in the plane; 1 on the
    /// boundary.
    pub fn radius(&self) -> f64 {
        self.u1.hypot(self.u2)
    }

    /// The angle from the input kernel towards the target kernel, in
    /// radians; the target kernel sits at `arccos c`.
    pub fn angle(&self) -> f64 {
        self.u2.atan2(self.u1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::cube::Spectrum;
    use crate::task::cube::{CubeSpec, cube};

    #[test]
    fn the_inputs_and_targets_sit_where_the_convention_puts_them() {
        let t = cube(CubeSpec {
            d: 3,
            k: 1,
            alignment: 0.25,
            dim: 20,
            seed: 2,
            spectrum: Spectrum::Deterministic,
        });
        let c = t.measured_alignment();

        // Z = X: (a_x, a_y) = (1, c), angle 0, on the boundary.
        let ax = input_alignment(&t.inputs, &t.inputs, 8);
        let ay = target_alignment(&t.inputs, &t.targets, 8);
        assert!((ax - 1.0).abs() < 1e-12 && (ay - c).abs() < 1e-12);
        let pt = PlanePoint::new(ax, ay, c).unwrap();
        assert!(pt.angle().abs() < 1e-6 && (pt.radius() - 1.0).abs() < 1e-12);

        // Z = Y: (a_x, a_y) = (c, 1), angle arccos c, on the boundary.
        let ax = input_alignment(&t.targets, &t.inputs, 8);
        let ay = target_alignment(&t.targets, &t.targets, 8);
        assert!((alignment_bound(c, ax) - ay).abs() < 1e-12);
        let pt = PlanePoint::new(ax, ay, c).unwrap();
        assert!((pt.angle() - c.acos()).abs() < 1e-9);
        assert!((pt.radius() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn the_boundary_maps_to_the_quarter_circle() {
        for c in [0.0, 0.2, 0.577, 0.95] {
            for i in 0..=20 {
                let ax = i as f64 / 20.0;
                let pt = PlanePoint::new(ax, alignment_bound(c, ax), c).unwrap();
                assert!((pt.radius() - 1.0).abs() < 1e-12, "c {c} a_x {ax}");
                assert!(pt.u1 >= 0.0 && pt.u2 >= -1e-15);
            }
        }
        assert!(PlanePoint::new(0.5, 0.5, 1.0).is_none());
    }

    #[test]
    fn representations_mixing_inputs_targets_and_noise_obey_the_bound() {
        use rand_distr::{Distribution, StandardNormal};
        let t = cube(CubeSpec {
            d: 3,
            k: 1,
            alignment: 0.3,
            dim: 12,
            seed: 5,
            spectrum: Spectrum::Deterministic,
        });
        let c = t.measured_alignment();
        let mut rng = crate::seed::stream(1, "test/alignment");
        for _ in 0..200 {
            let (a, b, e): (f64, f64, f64) = (
                StandardNormal.sample(&mut rng),
                StandardNormal.sample(&mut rng),
                StandardNormal.sample(&mut rng),
            );
            // Z = [a X, b y, e G]: its kernel is a positive mix of the
            // input, target and a noise kernel.
            let mut z = Vec::new();
            for cnd in 0..8 {
                z.extend(t.inputs[cnd * 12..(cnd + 1) * 12].iter().map(|v| a * v));
                z.push(b * 3.0 * t.targets[cnd]);
                for _ in 0..3 {
                    let g: f64 = StandardNormal.sample(&mut rng);
                    z.push(e * g);
                }
            }
            let ax = input_alignment(&z, &t.inputs, 8);
            let ay = target_alignment(&z, &t.targets, 8);
            assert!(ay <= alignment_bound(c, ax) + 1e-12, "{ax} {ay}");
            assert!(PlanePoint::new(ax, ay, c).unwrap().radius() <= 1.0 + 1e-12);
        }
    }
}
