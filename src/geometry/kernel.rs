//! Kernel measures: Gram matrices and centred kernel alignment.
//!
//! Centred kernel alignment (Cortes, Mohri and Rostamizadeh 2012; Kornblith
//! et al. 2019) compares two `P x P` kernels after double centring with
//! `H = I - 11^T / P`:
//!
//! `A(K1, K2) = <H K1 H, H K2 H>_F / (|H K1 H|_F |H K2 H|_F)`.
//!
//! It is 1 for a kernel with itself, invariant to scaling either kernel and
//! to adding a constant to it, and lies in `[0, 1]` for PSD kernels.

use nalgebra::DMatrix;

/// The Gram matrix `Z Z^T` of the `P` rows of a row-major `[P, F]` array.
pub fn gram(rows: &[f64], p: usize) -> DMatrix<f64> {
    assert!(
        p > 0 && rows.len() % p == 0,
        "{} values are not {p} rows",
        rows.len()
    );
    let f = rows.len() / p;
    let z = DMatrix::from_row_slice(p, f, rows);
    &z * z.transpose()
}

/// `H K H` with `H = I - 11^T / P`.
pub fn double_centre(k: &DMatrix<f64>) -> DMatrix<f64> {
    let p = k.nrows();
    let row_mean = k.row_mean();
    let col_mean = k.column_mean();
    let mean = k.mean();
    DMatrix::from_fn(p, p, |r, c| k[(r, c)] - row_mean[c] - col_mean[r] + mean)
}

/// Centred kernel alignment of two kernels of the same size; `NaN` when
/// either centred kernel is zero (a representation with no variance).
pub fn cka(k1: &DMatrix<f64>, k2: &DMatrix<f64>) -> f64 {
    assert_eq!(k1.shape(), k2.shape());
    let (c1, c2) = (double_centre(k1), double_centre(k2));
    let denom = c1.norm() * c2.norm();
    if denom == 0.0 {
        f64::NAN
    } else {
        c1.dot(&c2) / denom
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel() -> DMatrix<f64> {
        gram(
            &[
                1.0, 0.2, -0.3, 0.5, 0.9, 0.0, -1.2, 0.4, 0.3, 0.3, 0.8, -0.6,
            ],
            4,
        )
    }

    #[test]
    fn a_kernel_is_aligned_with_itself() {
        let k = kernel();
        assert!((cka(&k, &k) - 1.0).abs() < 1e-14);
    }

    #[test]
    fn alignment_ignores_scale_and_constant_offsets() {
        let k = kernel();
        let other = gram(&[0.3, -1.0, 0.2, 0.7, 0.5, 0.5, -0.1, 0.9], 4);
        let moved = k.map(|v| 3.5 * v + 2.0);
        assert!((cka(&k, &other) - cka(&moved, &other)).abs() < 1e-13);
    }

    #[test]
    fn orthogonal_centred_features_have_zero_alignment() {
        // Two orthogonal, centred features of four conditions.
        let a = gram(&[1.0, 1.0, -1.0, -1.0], 4);
        let b = gram(&[1.0, -1.0, 1.0, -1.0], 4);
        assert!(cka(&a, &b).abs() < 1e-15);
    }
}
