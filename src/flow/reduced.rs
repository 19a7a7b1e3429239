//! Exact reduced coordinates for flows on few data points.
//!
//! The gradient of `W` is `-(1/M) delta X^T`: every row lies in the span
//! of the training inputs. With `Q` (`D x r`) an orthonormal basis of that
//! span, `W(t) = W(0) + (Z(t) - Z(0)) Q^T` where `Z = W Q` (`N x r`)
//! follows the flow of the same network on the coordinates `x~ = Q^T x`:
//! `u = W x + b = Z x~ + b` for every `x` in the span. So the flow of `P`
//! condition means in `D` dimensions is integrated on `N x (r + 1)`
//! numbers instead of `N x (D + 1)` (for the paper-size cube, `r = 7`
//! against `D = 100`), with the part of `W(0)` orthogonal to the span kept
//! fixed, and the full `W` rebuilt only at the saved times. Nothing else
//! changes: biases, readout, losses, hidden responses, kink events and
//! sliding counts are those of the reduced run.
//!
//! The reduction applies when the points the flow is evaluated on (the
//! conditions) lie in the span of the points it trains on, which holds
//! when it trains on the conditions themselves; a flow on noisy samples,
//! which span the whole input space, runs in full.

use faer::MatRef;
use nalgebra::DMatrix;

use crate::network::{Dims, Model, Params};
use crate::trajectory::Trajectory;

/// A flow problem moved to the coordinates of the span of its inputs.
pub struct Reduction {
    /// `D x r` orthonormal basis of the span of the training inputs.
    basis: DMatrix<f64>,
    /// The training inputs in that basis, `r x M` column-major.
    pub inputs: Vec<f64>,
    /// The reduced model (`D` replaced by `r`).
    pub model: Model,
    /// The reduced initial parameters, `Z(0) = W(0) Q`.
    pub init: Params,
    /// The full initial parameters, for rebuilding `W`.
    full_init: Params,
}

impl Reduction {
    /// The reduction of `model` from `init` over inputs `x` (`D x M`), or
    /// `None` when the inputs span the whole input space (nothing to gain).
    pub fn new(model: &Model, init: &Params, x: MatRef<'_, f64>) -> Option<Self> {
        let (d, m) = (x.nrows(), x.ncols());
        let xm = DMatrix::from_fn(d, m, |a, c| x[(a, c)]);
        let basis = span_basis(&xm);
        let r = basis.ncols();
        if r >= d || r == 0 {
            return None;
        }

        let coords = basis.transpose() * &xm;
        let n = init.dims.hidden;
        let w = DMatrix::from_row_slice(n, d, &init.w);
        let z = &w * &basis;
        let dims = Dims {
            inputs: r,
            ..init.dims
        };
        let mut reduced = init.clone();
        reduced.dims = dims;
        reduced.w = row_major(&z);
        let mut rmodel = model.clone();
        rmodel.dims = dims;

        Some(Reduction {
            basis,
            inputs: coords.as_slice().to_vec(),
            model: rmodel,
            init: reduced,
            full_init: init.clone(),
        })
    }

    /// The rank `r` of the span.
    pub fn rank(&self) -> usize {
        self.basis.ncols()
    }

    /// The inputs in the basis as an `r x M` view.
    pub fn inputs_view(&self) -> MatRef<'_, f64> {
        let r = self.rank();
        MatRef::from_column_major_slice(&self.inputs, r, self.inputs.len() / r)
    }

    /// Rewrites a reduced trajectory's weights `Z(t)` as full `W(t)`.
    pub fn expand(&self, mut tr: Trajectory) -> Trajectory {
        let Dims {
            inputs: d,
            hidden: n,
            ..
        } = self.full_init.dims;
        let r = self.rank();
        // Q^T row-major is Q column-major: the basis vectors one after
        // another.
        let qt = self.basis.as_slice();
        let mut full = Vec::with_capacity(tr.w.len() / r * d);
        for zt in tr.w.chunks_exact(n * r) {
            full.extend_from_slice(&self.full_init.w);
            let start = full.len() - n * d;
            rebuild(&self.init.w, zt, qt, r, &mut full[start..]);
        }
        tr.w = full;
        tr
    }
}

crate::simd_fn! {
    /// `W += (Z - Z(0)) Q^T` on a copy of `W(0)`, row by row (`W`
    /// `[N, D]`, `Z` `[N, r]`, `Q^T` `[r, D]`, all row-major): exactly
    /// `W(0)` where `Z` has not moved.
    fn rebuild(z0: &[f64], z: &[f64], qt: &[f64], r: usize, w: &mut [f64]) {
        let d = qt.len() / r;
        for (i, wi) in w.chunks_exact_mut(d).enumerate() {
            for j in 0..r {
                let dz = z[i * r + j] - z0[i * r + j];
                let q = &qt[j * d..(j + 1) * d];
                for a in 0..d {
                    wi[a] += dz * q[a];
                }
            }
        }
    }
}

/// An orthonormal basis of the column span of `x`, by modified
/// Gram-Schmidt with one re-orthogonalisation pass (\"twice is enough\",
/// Giraud et al. 2005); a column whose remainder is below `1e-10` of the
/// largest column norm adds nothing to the span and is dropped.
fn span_basis(x: &DMatrix<f64>) -> DMatrix<f64> {
    let top = x.column_iter().map(|c| c.norm()).fold(0.0, f64::max);
    let mut basis: Vec<nalgebra::DVector<f64>> = Vec::new();
    for col in x.column_iter() {
        let mut v = col.clone_owned();
        for _ in 0..2 {
            for q in &basis {
                let along = q.dot(&v);
                v.axpy(-along, q, 1.0);
            }
        }
        let norm = v.norm();
        if norm > 1e-10 * top {
            basis.push(v / norm);
        }
    }
    DMatrix::from_columns(&basis)
}

fn row_major(m: &DMatrix<f64>) -> Vec<f64> {
    m.transpose().as_slice().to_vec()
}
