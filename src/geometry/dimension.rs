//! Dimensionality and sparsity of the hidden representation.
//!
//! *Participation ratio* (Gao et al. 2017, "A theory of multineuronal
//! dimensionality, dynamics and measurement"; Recanatesi et al. 2019):
//! for the `N x N` covariance `C` of the rows of `Z` over the `P`
//! conditions, `PR = (tr C)^2 / tr(C^2) = (sum l)^2 / sum l^2` over its
//! eigenvalues `l`. It runs from 1 (one direction carries all variance) to
//! the rank of `C` (variance spread evenly), at most `min(N, P - 1)`. The
//! non-zero eigenvalues of `C` are those of the double-centred Gram
//! matrix `H Z Z^T H / P`, so it is computed on the `P x P` side.
//!
//! *Sparsity*: the fraction of hidden responses `h_ci > 0`, over all
//! conditions and units (for ReLU, the fraction of active pairs).

use super::kernel::{double_centre, gram};

/// The participation ratio of the row-major `[P, N]` representation;
/// `NaN` when it has no variance.
///
/// # Panics
///
/// If `z` is not `p` rows.
pub fn participation_ratio(z: &[f64], p: usize) -> f64 {
    let g = double_centre(&gram(z, p));
    let sq = g.norm_squared();
    if sq == 0.0 {
        f64::NAN
    } else {
        g.trace() * g.trace() / sq
    }
}

/// The fraction of entries of `h` that are strictly positive; `NaN` for
/// an empty array.
pub fn sparsity(h: &[f64]) -> f64 {
    if h.is_empty() {
        return f64::NAN;
    }
    h.iter().filter(|&&v| v > 0.0).count() as f64 / h.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::DMatrix;

    #[test]
    fn isotropic_points_have_their_rank() {
        // The 2n points +-e_i: covariance I / n, rank n.
        for n in 1..6 {
            let mut z = vec![0.0; 2 * n * n];
            for i in 0..n {
                z[2 * i * n + i] = 1.0;
                z[(2 * i + 1) * n + i] = -1.0;
            }
            let pr = participation_ratio(&z, 2 * n);
            assert!((pr - n as f64).abs() < 1e-12, "n = {n}: {pr}");
        }
        // The P corners e_c of a simplex: rank P - 1 after centring,
        // also when rotated into more units.
        let p = 6;
        let q = DMatrix::from_fn(9, 9, |r, c| ((r * 7 + c * 3) % 11) as f64 - 5.0)
            .qr()
            .q();
        let z = DMatrix::<f64>::identity(p, 9) * q.transpose();
        let rows: Vec<f64> = z.transpose().iter().copied().collect();
        assert!((participation_ratio(&rows, p) - 5.0).abs() < 1e-10);
    }

    #[test]
    fn one_direction_has_ratio_one_and_it_ignores_scale() {
        let z = [1.0, 2.0, -3.0, -6.0, 0.5, 1.0];
        assert!((participation_ratio(&z, 3) - 1.0).abs() < 1e-12);
        let unequal = [2.0, 0.0, -2.0, 0.0, 0.0, 1.0, 0.0, -1.0];
        // Eigenvalues 2 and 0.5: (2.5)^2 / 4.25.
        let pr = participation_ratio(&unequal, 4);
        assert!((pr - 6.25 / 4.25).abs() < 1e-12);
        let scaled: Vec<f64> = unequal.iter().map(|v| 7.0 * v).collect();
        assert!((participation_ratio(&scaled, 4) - pr).abs() < 1e-12);
        assert!(participation_ratio(&[1.0, 1.0, 1.0, 1.0], 2).is_nan());
    }

    #[test]
    fn sparsity_counts_strictly_positive_responses() {
        assert_eq!(sparsity(&[0.0, 0.5, -1.0, 2.0]), 0.5);
        assert_eq!(sparsity(&[0.0; 3]), 0.0);
        assert!(sparsity(&[]).is_nan());
    }
}
