//! Modes of the piecewise-smooth flow and the smooth field inside one.
//!
//! A mode freezes, for every (data point `c`, hidden unit `i`) pair, the
//! piece of the activation `u_ci` lies on, or the kink it slides on. With
//! the pattern frozen the gradient is a smooth function of the state:
//! free pairs use their piece's slope, and the sliding pairs of each unit
//! use the coefficients that keep them on their kinks (see
//! [`super::sliding`]).

use std::cell::RefCell;

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use super::sliding::{augmented_gram, cholesky};
use crate::activation::Kink;
use crate::fastmath::dot as fast_dot;
use crate::flow::integrator::VectorField;
use crate::network::{Model, Workspace};

/// What the run fixes once: the model, the data, the kinks, tolerances.
pub(super) struct Setup<'a> {
    /// The model.
    pub model: &'a Model,
    /// Training inputs `D x M` and targets `K x M`.
    pub x: MatRef<'a, f64>,
    /// Training targets `K x M`.
    pub y: MatRef<'a, f64>,
    /// The inputs again, as a contiguous column-major `D x M` copy.
    pub xs: Vec<f64>,
    /// Input dimension `D`.
    pub d: usize,
    /// Hidden units `N`.
    pub n: usize,
    /// Data points `M`.
    pub m: usize,
    /// Outputs `K`.
    pub k: usize,
    /// The activation's kinks, increasing.
    pub kinks: Vec<Kink>,
    /// The slope of each open piece (one more than kinks).
    pub piece_slopes: Vec<f64>,
    /// How close to a kink a pre-activation counts as on it.
    pub tol_u: f64,
    /// How far (relative to the slope interval) a sliding coefficient may
    /// go past an end of its interval before it counts as released.
    pub tol_alpha: f64,
    /// The Gram matrix of all the augmented inputs (column-major `M x
    /// M`), kept when there are few enough data points that the blocks
    /// the events and sliding sets need are cheaper gathered than summed.
    gram: Option<Vec<f64>>,
}

impl<'a> Setup<'a> {
    /// The weight of the constant input in `u = w . x + b`'s motion: 1
    /// when the hidden biases learn, 0 when they are frozen (the Fig. 1
    /// protocol), so that sliding and drift corrections move only what
    /// the flow moves.
    pub(super) fn bias_weight(&self) -> f64 {
        if self.model.train_bias { 1.0 } else { 0.0 }
    }

    /// The setup for training data `x` (`D x M`), `y` (`K x M`).
    pub fn new(
        model: &'a Model,
        x: MatRef<'a, f64>,
        y: MatRef<'a, f64>,
        atol: f64,
    ) -> Self {
        let dims = model.dims;
        let (d, m) = (dims.inputs, x.ncols());
        let mut xs = vec![0.0; d * m];
        for c in 0..m {
            for a in 0..d {
                xs[c * d + a] = x[(a, c)];
            }
        }
        let kinks = model.activation.kinks();
        let piece_slopes = (0..=kinks.len())
            .map(|p| model.activation.piece_slope(p))
            .collect();
        let bias = if model.train_bias { 1.0 } else { 0.0 };
        let all: Vec<usize> = (0..m).collect();
        let gram =
            (m <= super::preact::MAX_POINTS).then(|| augmented_gram(&xs, d, &all, bias));
        Setup {
            model,
            x,
            y,
            xs,
            d,
            n: dims.hidden,
            m,
            k: dims.outputs,
            kinks,
            piece_slopes,
            tol_u: atol.max(1e-15),
            tol_alpha: 1e-11,
            gram,
        }
    }

    /// The Gram matrix of the augmented inputs over `points`, column-major
    /// (see [`super::sliding::augmented_gram`]): gathered from the whole
    /// one when it is kept, the same numbers either way.
    pub fn gram_block(&self, points: &[usize]) -> Vec<f64> {
        let Some(all) = &self.gram else {
            return augmented_gram(&self.xs, self.d, points, self.bias_weight());
        };
        let m = self.m;
        points
            .iter()
            .flat_map(|&a| points.iter().map(move |&b| all[a * m + b]))
            .collect()
    }

    /// The input `x_c`.
    pub fn input(&self, c: usize) -> &[f64] {
        &self.xs[c * self.d..(c + 1) * self.d]
    }

    /// `J`, `[K, N]` row-major, frozen or read from the state.
    pub fn readout<'s>(&'s self, state: &'s [f64]) -> &'s [f64] {
        match &self.model.frozen_readout {
            Some((j, _)) => j,
            None => {
                let o = self.n * self.d + self.n;
                &state[o..o + self.k * self.n]
            }
        }
    }

    /// `g_ci = (J^T e_c)_i`, the back-propagated error of pair `(c, i)`,
    /// from `J` and the errors `e` (`[M, K]` row-major).
    pub fn back_error(&self, j: &[f64], e: &[f64], c: usize, i: usize) -> f64 {
        (0..self.k)
            .map(|o| j[o * self.n + i] * e[c * self.k + o])
            .sum()
    }

    /// `U = W X + b` (column-major `N x M`) for the `W`, `b` part of
    /// `state`; with a field value for `state` it gives `dU/dt`.
    pub fn pre_activations(&self, state: &[f64], out: &mut [f64]) {
        let (n, d, m) = (self.n, self.d, self.m);
        let w = MatRef::from_column_major_slice(&state[..n * d], d, n).transpose();
        let u = MatMut::from_column_major_slice_mut(&mut out[..n * m], n, m);
        matmul(u, Accum::Replace, w, self.x, 1.0, Par::Seq);
        let b = &state[n * d..n * d + n];
        for col in out[..n * m].chunks_exact_mut(n) {
            col.iter_mut().zip(b).for_each(|(u, b)| *u += b);
        }
    }

    /// The kinks bounding piece `p`: below and above.
    pub fn piece_bounds(&self, p: usize) -> (Option<f64>, Option<f64>) {
        let below = p.checked_sub(1).map(|k| self.kinks[k].at);
        let above = self.kinks.get(p).map(|k| k.at);
        (below, above)
    }
}

/// The state of one (data point, unit) pair in a mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Pair {
    /// On the open piece with this index.
    Free(u8),
    /// Held on the kink with this index.
    Sliding(u8),
}

/// The derivative pattern: one [`Pair`] per (data point, unit), at index
/// `c * N + i`.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Mode {
    /// The pairs.
    pub pairs: Vec<Pair>,
}

impl Mode {
    /// The mode of a state whose pre-activations are `u` (column-major
    /// `N x M`): every pair free, on the piece that contains it.
    pub fn of(setup: &Setup<'_>, u: &[f64]) -> Self {
        let act = setup.model.activation;
        let pairs = u
            .iter()
            .map(|&v| Pair::Free(act.piece_of(v) as u8))
            .collect();
        Mode { pairs }
    }

    /// The frozen slopes, zero for sliding pairs.
    pub fn slopes(&self, setup: &Setup<'_>) -> Vec<f64> {
        self.pairs
            .iter()
            .map(|p| match *p {
                Pair::Free(piece) => setup.piece_slopes[piece as usize],
                Pair::Sliding(_) => 0.0,
            })
            .collect()
    }

    /// The sliding pairs of unit `i`: `(c, kink)`.
    pub fn sliding_of(&self, setup: &Setup<'_>, i: usize) -> Vec<(usize, usize)> {
        (0..setup.m)
            .filter_map(|c| match self.pairs[c * setup.n + i] {
                Pair::Sliding(k) => Some((c, k as usize)),
                Pair::Free(_) => None,
            })
            .collect()
    }

    /// How many data points each unit slides on.
    pub fn sliding_counts(&self, n: usize) -> Vec<u32> {
        let mut counts = vec![0u32; n];
        for (idx, p) in self.pairs.iter().enumerate() {
            if matches!(p, Pair::Sliding(_)) {
                counts[idx % n] += 1;
            }
        }
        counts
    }
}

/// One unit's sliding set, with the factorised Gram matrix of its
/// augmented inputs.
#[derive(Clone, Debug)]
pub(super) struct SlidingUnit {
    /// The hidden unit.
    pub unit: usize,
    /// The data points on its kinks.
    pub points: Vec<usize>,
    /// The kink each point is on.
    pub kinks: Vec<usize>,
    /// Cholesky factor of the Gram matrix of the augmented inputs over
    /// `points` (see [`super::sliding`]).
    pub chol: Vec<f64>,
    /// The reciprocals of its diagonal: the solves multiply, off a
    /// division's latency at every step of their chains.
    pub inv_diag: Vec<f64>,
    /// Where this unit's coefficients start in the flat scratch arrays.
    pub offset: usize,
}

/// The units of `mode` with sliding pairs, in increasing order, each
/// with the Cholesky factor of the Gram matrix of its sliding points'
/// augmented inputs. `None` if one of those is not positive definite.
pub(super) fn sliding_units(setup: &Setup<'_>, mode: &Mode) -> Option<Vec<SlidingUnit>> {
    let mut units = Vec::new();
    let mut offset = 0;
    for i in 0..setup.n {
        let on = mode.sliding_of(setup, i);
        if on.is_empty() {
            continue;
        }
        let points: Vec<usize> = on.iter().map(|&(c, _)| c).collect();
        let mut chol = setup.gram_block(&points);
        if !cholesky(&mut chol, points.len()) {
            return None;
        }
        let s = points.len();
        units.push(SlidingUnit {
            unit: i,
            kinks: on.iter().map(|&(_, k)| k).collect(),
            points,
            inv_diag: (0..s).map(|k| 1.0 / chol[k * s + k]).collect(),
            chol,
            offset,
        });
        offset += s;
    }
    Some(units)
}

/// Scratch of the frozen-pattern field, reused by every evaluation.
struct Scratch {
    ws: Workspace,
    beta: Vec<f64>,
    margins: Vec<f64>,
    last_state: Vec<f64>,
}

/// `-grad L` with the derivative pattern frozen at a mode.
pub(super) struct FrozenField<'s, 'a> {
    setup: &'s Setup<'a>,
    slopes: Vec<f64>,
    /// The units with sliding pairs.
    pub units: Vec<SlidingUnit>,
    scratch: RefCell<Scratch>,
}

impl<'s, 'a> FrozenField<'s, 'a> {
    /// The field of `mode`. `None` if the augmented inputs of some unit's
    /// sliding set are linearly dependent (more points on one kink than
    /// the input space can hold generically).
    pub fn new(setup: &'s Setup<'a>, mode: &Mode) -> Option<Self> {
        let units = sliding_units(setup, mode)?;
        let offset = units.iter().map(|u| u.points.len()).sum();
        let state_len = setup.model.state_len();
        let scratch = Scratch {
            ws: Workspace::new(setup.model.dims, setup.m),
            beta: vec![0.0; offset],
            margins: vec![0.0; offset],
            last_state: vec![f64::NAN; state_len],
        };
        Some(FrozenField {
            setup,
            slopes: mode.slopes(setup),
            units,
            scratch: RefCell::new(scratch),
        })
    }

    /// The number of sliding pairs.
    pub fn sliding_pairs(&self) -> usize {
        self.units.iter().map(|u| u.points.len()).sum()
    }

    /// The release margins at `state`: for each sliding pair, in the
    /// order of [`FrozenField::units`], `min(alpha - lo, hi - alpha) / (hi
    /// - lo)`, negative once its coefficient has left its interval. Taken
    /// from the last evaluation when that was at `state` (the solvers'
    /// last stage is the new step's end point); otherwise one more
    /// evaluation, counted in `evals`.
    pub fn margins_at(
        &self,
        state: &[f64],
        scratch_dy: &mut [f64],
        out: &mut [f64],
        evals: &mut u64,
    ) {
        let cached = self.scratch.borrow().last_state == state;
        if !cached {
            self.eval(state, scratch_dy);
            *evals += 1;
        }
        out.copy_from_slice(&self.scratch.borrow().margins);
    }
}

impl VectorField for FrozenField<'_, '_> {
    fn eval(&self, state: &[f64], dy: &mut [f64]) {
        let setup = self.setup;
        let m = setup.m;
        let mut guard = self.scratch.borrow_mut();
        let sc = &mut *guard;
        setup.model.loss_grad_frozen(
            state,
            setup.x,
            setup.y,
            &mut sc.ws,
            dy,
            &self.slopes,
        );
        dy.iter_mut().for_each(|v| *v = -*v);

        let e = sc.ws.errors(m, setup.k);
        let j = setup.readout(state);
        slide(setup, &self.units, j, e, dy, &mut sc.beta, &mut sc.margins);
        sc.last_state.copy_from_slice(state);
    }
}

crate::simd_fn! {
    /// Holds every sliding unit's pairs on their kinks: the free pairs'
    /// motion of `u` on the sliding set, `v0 = M (X~_S^T w~')`, is undone
    /// by `w~' -= X~_S beta / M` with `G beta = v0` (`G` the Gram matrix of
    /// the augmented inputs `X~_S`), and each pair's release margin is
    /// written. In vector registers: at `d = 5` the reduced inputs have 31
    /// coordinates and units slide on many conditions at once, and these
    /// loops in plain scalar code were a quarter of a ReLU flow.
    fn slide(
        setup: &Setup<'_>,
        units: &[SlidingUnit],
        j: &[f64],
        e: &[f64],
        dy: &mut [f64],
        beta_all: &mut [f64],
        margins_all: &mut [f64],
    ) {
        let (n, d, m) = (setup.n, setup.d, setup.m);
        let inv_m = 1.0 / m as f64;
        let bias = setup.bias_weight();
        for unit in units {
            let i = unit.unit;
            let s = unit.points.len();
            let beta = &mut beta_all[unit.offset..unit.offset + s];

            // v0: what the free pairs alone do to u on the sliding set.
            let (dw, rest) = dy.split_at_mut(n * d);
            let dwi = &mut dw[i * d..(i + 1) * d];
            let dbi = &mut rest[i];
            for (bc, &c) in beta.iter_mut().zip(&unit.points) {
                *bc = m as f64 * (fast_dot(dwi, setup.input(c)) + *dbi);
            }

            // G beta = M v0 holds the sliding pairs on their kinks.
            solve_factored(&unit.chol, &unit.inv_diag, beta);
            for (&bc, &c) in beta.iter().zip(&unit.points) {
                let scale = bc * inv_m;
                dwi.iter_mut()
                    .zip(setup.input(c))
                    .for_each(|(w, x)| *w -= scale * x);
                *dbi -= scale * bias;
            }

            let margins = &mut margins_all[unit.offset..unit.offset + s];
            for a in 0..s {
                let g = setup.back_error(j, e, unit.points[a], i);
                margins[a] = margin(&setup.kinks[unit.kinks[a]], beta[a], g);
            }
        }
    }
}

/// Solves `L L^T z = rhs` in place for the column-major Cholesky factor
/// `l` of [`cholesky`] with the reciprocals `inv_diag` of its diagonal:
/// forward by columns (each an update of the entries below, contiguous),
/// backward by rows of `L^T` (each a dot product, contiguous), so that
/// both vectorise.
#[inline(always)]
pub(super) fn solve_factored(l: &[f64], inv_diag: &[f64], rhs: &mut [f64]) {
    let n = inv_diag.len();
    for k in 0..n {
        let col = &l[k * n..(k + 1) * n];
        rhs[k] *= inv_diag[k];
        let (done, below) = rhs.split_at_mut(k + 1);
        let rk = done[k];
        below
            .iter_mut()
            .zip(&col[k + 1..])
            .for_each(|(r, lik)| *r -= lik * rk);
    }
    for i in (0..n).rev() {
        let col = &l[i * n..(i + 1) * n];
        let sum = fast_dot(&col[i + 1..], &rhs[i + 1..n]);
        rhs[i] = (rhs[i] - sum) * inv_diag[i];
    }
}

/// How far inside `[lo, hi]` the coefficient `alpha = beta / g` is,
/// relative to the interval; negative outside.
pub(super) fn margin(kink: &Kink, beta: f64, g: f64) -> f64 {
    let (lo, hi) = kink.slope_range();
    let alpha = beta / g;
    if !alpha.is_finite() {
        return -1.0;
    }
    (alpha - lo).min(hi - alpha) / (hi - lo)
}
