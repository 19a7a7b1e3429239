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
//! A smooth flow's step-size control measures the local error as the
//! full flow does, as the RMS over the `N x (D + 1)` weights and biases
//! (and the readout, when trained), of which those outside the span
//! carry none: the reduced numbers' scaled errors are summed and divided
//! by the full count ([`super::smooth::integrate_standing_for`]). Divided
//! by their own count instead, the same tolerances asked 3.5 times less
//! error of the weights at the paper size: 563 evaluations against the
//! full flow's 467 (medians over ten networks at `rtol = 1e-8`), where
//! now it takes 446. The piecewise-linear activations' paths keep
//! measuring their error on the state they integrate: the
//! pre-activations, or, with `flow.coordinates = "weights"`, the reduced
//! numbers themselves.
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
        // Each W(t) is built straight into the trajectory's memory, which
        // the allocator hands out zeroed by the page and is written once.
        let mut full = vec![0.0; tr.w.len() / r * d];
        for (zt, w) in tr.w.chunks_exact(n * r).zip(full.chunks_exact_mut(n * d)) {
            rebuild(&self.full_init.w, &self.init.w, zt, qt, r, w);
        }
        tr.w = full;
        tr
    }
}

crate::simd_fn! {
    /// `W = W(0) + (Z - Z(0)) Q^T` (`W` `[N, D]`, `Z` `[N, r]`, `Q^T`
    /// `[r, D]`, all row-major): four rows by eight columns at a time,
    /// summed in registers over `j` in order, so that the four rows'
    /// chains of multiply-adds overlap; exactly `W(0)` where `Z` has not
    /// moved.
    fn rebuild(w0: &[f64], z0: &[f64], z: &[f64], qt: &[f64], r: usize, w: &mut [f64]) {
        const L: usize = 8;
        const B: usize = 4;
        let d = qt.len() / r;
        let n = w0.len() / d;
        let mut dz = [[0.0; B]; 16];
        let mut i = 0;
        while i + B <= n && r <= dz.len() {
            for j in 0..r {
                for bi in 0..B {
                    dz[j][bi] = z[(i + bi) * r + j] - z0[(i + bi) * r + j];
                }
            }
            let mut a = 0;
            while a + L <= d {
                let mut acc = [[0.0; L]; B];
                for (j, dz) in dz.iter().enumerate().take(r) {
                    let q: &[f64; L] = qt[j * d + a..j * d + a + L].try_into().unwrap();
                    for bi in 0..B {
                        for l in 0..L {
                            acc[bi][l] = M::fma(dz[bi], q[l], acc[bi][l]);
                        }
                    }
                }
                for (bi, acc) in acc.iter().enumerate() {
                    let at = (i + bi) * d + a;
                    let (w0, w) = (&w0[at..at + L], &mut w[at..at + L]);
                    for l in 0..L {
                        w[l] = w0[l] + acc[l];
                    }
                }
                a += L;
            }
            for bi in 0..B {
                for c in a..d {
                    let mut acc = 0.0;
                    for (j, dz) in dz.iter().enumerate().take(r) {
                        acc = M::fma(dz[bi], qt[j * d + c], acc);
                    }
                    w[(i + bi) * d + c] = w0[(i + bi) * d + c] + acc;
                }
            }
            i += B;
        }
        for i in i..n {
            for c in 0..d {
                let mut acc = 0.0;
                for j in 0..r {
                    acc = M::fma(z[i * r + j] - z0[i * r + j], qt[j * d + c], acc);
                }
                w[i * d + c] = w0[i * d + c] + acc;
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
