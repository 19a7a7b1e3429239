//! The flow in pre-activation coordinates, and its field inside a mode.
//!
//! Every weight moves along the augmented training inputs: `d (w_i, b_i)
//! / dt = -(1/M) sum_c delta_ci (x_c, 1)`, so the pre-activations `u_ci =
//! w_i . x_c + b_i` move by
//!
//! ```text
//! dU/dt = -(1/M) delta G,     G_cc' = x_c . x_c' + 1,
//! ```
//!
//! with `U` and `delta` the `N x M` arrays of pre-activations and
//! back-propagated errors and `G` the Gram matrix of the augmented inputs
//! (`x_c . x_c'` alone when the hidden biases are frozen: they take no
//! push). The loss depends on the weights only through `U` (and the
//! readout), so the flow of `U` is closed: it is integrated on `N x M`
//! numbers, whatever the input dimension, with one `N x M x M` product
//! per evaluation where the weight coordinates need two products with
//! the inputs. The event functions of the ReLU family are coordinates of
//! this state, a sliding pair's velocity is exactly zero (it stays on its
//! kink to the last bit, with nothing to project back), and the solver's
//! continuous extension of the state is that of every pre-activation.
//!
//! The weights are rebuilt from `U` at the saved times: their change since
//! `t = 0` lies in the span of the augmented inputs `X~` (`(D + 1) x M`),
//! where `u - u(0) = X~^T (w - w(0))` determines it, so `(w, b)_i(t) = (w,
//! b)_i(0) + (X~^T)^+ (u_i(t) - u_i(0))` with the pseudo-inverse of `X~^T`
//! (exact, also when the inputs are linearly dependent: `u - u(0)` then
//! stays in the range of `X~^T`, as the flow keeps it).
//!
//! The solver's tolerances apply to the pre-activations (and the readout,
//! when it learns) instead of the weights: the quantities the kinks are
//! placed on.

use std::cell::RefCell;

use nalgebra::DMatrix;

use super::mode::{Mode, Pair, Setup};
use super::sliding::{cholesky, cholesky_solve};
use crate::activation::Activation;
use crate::fastmath::{MulAdd, dot, sigmoid_with};
use crate::flow::integrator::VectorField;
use crate::network::{Loss, Params};

/// The most data points for which a flow runs in pre-activation
/// coordinates: the Gram matrix and the per-unit work grow as `M^2`.
pub const MAX_POINTS: usize = 64;

/// Singular values of the augmented inputs below this fraction of the
/// largest are taken as zero when the weights are rebuilt (the inputs'
/// own rounding is far below it, any real direction far above it).
const RANK_TOLERANCE: f64 = 1e-10;

/// A flow problem moved to pre-activation coordinates: the state is
/// `[U | J | b_out]`, `U` row-major `[N, M]` (each unit's `M`
/// pre-activations together, so that a unit's sliding set is worked on in
/// contiguous memory), `J` (`[K, N]`) and `b_out` only when the readout
/// learns. The modes and events keep the weight path's pair index `c N +
/// i`; [`Coordinates::index`] maps it to the state.
pub struct Coordinates {
    n: usize,
    m: usize,
    k: usize,
    d: usize,
    train_bias: bool,
    trains_readout: bool,
    /// `G`, `M x M` (symmetric).
    pub gram: Vec<f64>,
    /// `(X~^T)^+`, column-major `(D + 1) x M`.
    recover: Vec<f64>,
    /// `U(0)`, row-major `[N, M]`.
    u0: Vec<f64>,
    /// The state at `t = 0` in the standard layout.
    init_state: Vec<f64>,
    /// Targets, `[M, K]` row-major.
    pub targets: Vec<f64>,
    /// The readout when frozen: `J` and `b_out`.
    pub frozen: Option<(Vec<f64>, Vec<f64>)>,
}

impl Coordinates {
    /// The coordinates of `model` from `init` on the training data of
    /// `setup`, or `None` for more than [`MAX_POINTS`] data points.
    pub(super) fn new(setup: &Setup<'_>, init: &Params) -> Option<Self> {
        let model = setup.model;
        let (n, m, k, d) = (setup.n, setup.m, setup.k, setup.d);
        if m > MAX_POINTS {
            return None;
        }
        let points: Vec<usize> = (0..m).collect();
        let gram = setup.gram_block(&points);
        let init_state = init.to_state(model.trains_readout());
        let mut by_point = vec![0.0; n * m];
        setup.pre_activations(&init_state, &mut by_point);
        let mut u0 = vec![0.0; n * m];
        transpose(&by_point, m, n, &mut u0);

        // (X~^T)^+ from the singular values of X~^T (M x (D + 1)).
        let xt = DMatrix::from_fn(m, d + 1, |c, a| {
            if a < d {
                setup.x[(a, c)]
            } else {
                setup.bias_weight()
            }
        });
        let svd = xt.svd(true, true);
        let top = svd.singular_values.iter().fold(0.0, |a: f64, &b| a.max(b));
        let recover = svd
            .pseudo_inverse(RANK_TOLERANCE * top)
            .expect("the SVD computed both factors");

        let targets = (0..m)
            .flat_map(|c| (0..k).map(move |o| setup.y[(o, c)]))
            .collect();
        Some(Coordinates {
            n,
            m,
            k,
            d,
            train_bias: model.train_bias,
            trains_readout: model.trains_readout(),
            gram,
            recover: recover.as_slice().to_vec(),
            u0,
            init_state,
            targets,
            frozen: model.frozen_readout.clone(),
        })
    }

    /// The pre-activations of state `y` by data point (column-major `N x
    /// M`, the layout of the modes and events), into `out`.
    pub fn by_point(&self, y: &[f64], out: &mut [f64]) {
        transpose(&y[..self.n * self.m], self.n, self.m, out);
    }

    /// The state at `t = 0`.
    pub fn initial_state(&self) -> Vec<f64> {
        let mut y = self.u0.clone();
        if self.trains_readout {
            let o = self.n * self.d + self.n;
            y.extend_from_slice(&self.init_state[o..]);
        }
        y
    }

    /// `J` (`[K, N]`) and `b_out` at state `y`.
    pub fn readout<'s>(&'s self, y: &'s [f64]) -> (&'s [f64], &'s [f64]) {
        match &self.frozen {
            Some((j, b_out)) => (j, b_out),
            None => {
                let o = self.n * self.m;
                y[o..].split_at(self.k * self.n)
            }
        }
    }

    /// Writes the standard-layout state (`W`, `b`, and the readout when it
    /// learns) of the pre-activation state `y` into `out`.
    pub fn to_standard(&self, y: &[f64], out: &mut [f64]) {
        let (n, m, d) = (self.n, self.m, self.d);
        out.copy_from_slice(&self.init_state);
        let (w, rest) = out.split_at_mut(n * d);
        rebuild(&self.recover, &self.u0, &y[..n * m], d, w, &mut rest[..n]);
        if !self.train_bias {
            rest[..n].copy_from_slice(&self.init_state[n * d..n * d + n]);
        }
        if self.trains_readout {
            rest[n..].copy_from_slice(&y[n * m..]);
        }
    }

    /// Puts the sliding pairs of `held` exactly on their kinks with the
    /// smallest change of their units' weights: for unit `i` with residues
    /// `r = u_S - kink` on its sliding points `S`, `u_i -= G_(:,S)
    /// G_SS^-1 r`, the change `-X~_S G_SS^-1 r` of `(w_i, b_i)`. Returns
    /// the largest residue.
    pub(super) fn hold_on_kinks(
        &self,
        setup: &Setup<'_>,
        held: &HeldUnits,
        y: &mut [f64],
    ) -> f64 {
        let m = self.m;
        let mut worst: f64 = 0.0;
        for unit in held.iter() {
            let ui = &mut y[unit.unit * m..(unit.unit + 1) * m];
            let r: Vec<f64> = unit
                .points
                .iter()
                .zip(&unit.kinks)
                .map(|(&c, &k)| ui[c] - setup.kinks[k].at)
                .collect();
            if r.iter().all(|&v| v == 0.0) {
                continue;
            }
            worst = r.iter().fold(worst, |w, v| w.max(v.abs()));
            for (row, ra) in unit.push.chunks_exact(m).zip(&r) {
                ui.iter_mut().zip(row).for_each(|(u, p)| *u -= ra * p);
            }
            for (&c, &k) in unit.points.iter().zip(&unit.kinks) {
                ui[c] = setup.kinks[k].at;
            }
        }
        worst
    }
}

/// One unit's sliding set and what holding it on its kinks takes, kept
/// from mode to mode for as long as the set stays the same.
pub(super) struct Held {
    /// The hidden unit.
    pub unit: usize,
    /// The data points on its kinks, increasing.
    pub points: Vec<usize>,
    /// The kink each point is on.
    pub kinks: Vec<usize>,
    /// `G_SS^-1`, row-major: the release margins need `G_SS^-1 v_S` at
    /// every step, as independent dot products rather than the chains of
    /// a triangular solve.
    inverse: Vec<f64>,
    /// `G_SS^-1 G_(S,:)`, a row of `M` per sliding point: the free pairs'
    /// motion `v_S` on the set is undone by `du_i -= sum_a v_a row_a`.
    push: Vec<f64>,
}

/// The [`Held`] sets of every unit that has one.
pub(super) struct HeldUnits {
    units: Vec<Option<Held>>,
}

impl HeldUnits {
    /// No unit holds anything yet.
    pub fn new(n: usize) -> Self {
        HeldUnits {
            units: (0..n).map(|_| None).collect(),
        }
    }

    /// The units that hold points, increasing (the order of the release
    /// margins).
    pub fn iter(&self) -> impl Iterator<Item = &Held> {
        self.units.iter().flatten()
    }

    /// Brings the sets up to `mode`, rebuilding only the units whose set
    /// changed. `false` if the augmented inputs of a new set are linearly
    /// dependent.
    pub(super) fn update(
        &mut self,
        setup: &Setup<'_>,
        coords: &Coordinates,
        mode: &Mode,
    ) -> bool {
        let (n, m) = (setup.n, setup.m);
        let mut on: Vec<(usize, usize)> = Vec::with_capacity(m);
        for (i, slot) in self.units.iter_mut().enumerate() {
            on.clear();
            on.extend((0..m).filter_map(|c| match mode.pairs[c * n + i] {
                Pair::Sliding(k) => Some((c, k as usize)),
                Pair::Free(_) => None,
            }));
            let same = slot.as_ref().is_some_and(|h| {
                h.points.len() == on.len()
                    && h.points
                        .iter()
                        .zip(&h.kinks)
                        .eq(on.iter().map(|(c, k)| (c, k)))
            });
            if same {
                continue;
            }
            *slot = None;
            if on.is_empty() {
                continue;
            }
            let points: Vec<usize> = on.iter().map(|&(c, _)| c).collect();
            let s = points.len();
            let mut chol = setup.gram_block(&points);
            if !cholesky(&mut chol, s) {
                return false;
            }
            let mut push = Vec::with_capacity(s * m);
            for &c in &points {
                push.extend_from_slice(&coords.gram[c * m..(c + 1) * m]);
            }
            // Column by column of G_(S,:): solve G_SS x = column.
            let mut col = vec![0.0; s];
            for c in 0..m {
                for a in 0..s {
                    col[a] = push[a * m + c];
                }
                cholesky_solve(&chol, s, &mut col);
                for a in 0..s {
                    push[a * m + c] = col[a];
                }
            }
            let mut inverse = vec![0.0; s * s];
            for a in 0..s {
                col.fill(0.0);
                col[a] = 1.0;
                cholesky_solve(&chol, s, &mut col);
                // Symmetric: column a is row a.
                inverse[a * s..(a + 1) * s].copy_from_slice(&col);
            }
            *slot = Some(Held {
                unit: i,
                kinks: on.iter().map(|&(_, k)| k).collect(),
                points,
                inverse,
                push,
            });
        }
        true
    }
}

/// `out` (`cols x rows`, row-major) is the transpose of `a` (`rows x
/// cols`, row-major).
fn transpose(a: &[f64], rows: usize, cols: usize, out: &mut [f64]) {
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = a[r * cols + c];
        }
    }
}

crate::simd_fn! {
    /// `(w_i, b_i) += P (u_i - u0_i)`, unit by unit: `W` rows and `P`
    /// columns (one per data point) are contiguous; `b` already holds
    /// the initial biases.
    fn rebuild(p: &[f64], u0: &[f64], u: &[f64], d: usize, w: &mut [f64], b: &mut [f64]) {
        let n = b.len();
        let m = u.len() / n;
        for i in 0..n {
            let wi = &mut w[i * d..(i + 1) * d];
            for c in 0..m {
                let du = u[i * m + c] - u0[i * m + c];
                if du == 0.0 {
                    continue;
                }
                let col = &p[c * (d + 1)..(c + 1) * (d + 1)];
                for a in 0..d {
                    wi[a] = M::fma(col[a], du, wi[a]);
                }
                b[i] = M::fma(col[d], du, b[i]);
            }
        }
    }
}

/// Scratch of the field, reused by every evaluation.
struct Scratch {
    h: Vec<f64>,
    e: Vec<f64>,
    /// The error signals transposed, `[K, M]`.
    et: Vec<f64>,
    delta: Vec<f64>,
    /// The free pairs' motion `v_S` of each held set, in the sets' order.
    v: Vec<f64>,
    /// `J` of the last evaluation, when the readout learns.
    j: Vec<f64>,
}

/// `dU/dt` (and the readout's gradient flow when it learns) with the
/// derivative pattern frozen at a mode: free pairs use their piece's
/// slope, and each unit's sliding pairs the coefficients that hold them
/// on their kinks.
pub(super) struct PreactField<'s, 'a> {
    setup: &'s Setup<'a>,
    coords: &'s Coordinates,
    /// The frozen slopes, row-major `[N, M]` as `U`.
    slopes: Vec<f64>,
    /// The held sets, each with where its pairs start in `v` and in the
    /// release margins.
    held: Vec<(&'s Held, usize)>,
    /// Each sliding pair's slope interval, as the release margins.
    slope_lo: Vec<f64>,
    slope_hi: Vec<f64>,
    /// The kinks bounding each free pair's piece, below and above
    /// (infinite where there is none, and for held pairs), as `U`.
    pub below: Vec<f64>,
    /// See `below`.
    pub above: Vec<f64>,
    scratch: RefCell<Scratch>,
}

impl<'s, 'a> PreactField<'s, 'a> {
    /// The field of `mode` with its `held` sets (brought up to `mode`).
    pub fn new(
        setup: &'s Setup<'a>,
        coords: &'s Coordinates,
        mode: &Mode,
        held: &'s HeldUnits,
    ) -> Self {
        let mut offset = 0;
        let held: Vec<(&Held, usize)> = held
            .iter()
            .map(|h| {
                offset += h.points.len();
                (h, offset - h.points.len())
            })
            .collect();
        let (n, m, k) = (setup.n, setup.m, setup.k);
        let scratch = Scratch {
            h: vec![0.0; n * m],
            e: vec![0.0; m * k],
            et: vec![0.0; k * m],
            delta: vec![0.0; n * m],
            v: vec![0.0; offset],
            j: Vec::new(),
        };
        let mut slopes = vec![0.0; n * m];
        transpose(&mode.slopes(setup), m, n, &mut slopes);
        let (slope_lo, slope_hi) = held
            .iter()
            .flat_map(|(h, _)| &h.kinks)
            .map(|&k| setup.kinks[k].slope_range())
            .unzip();
        let (mut below, mut above) =
            (vec![f64::NEG_INFINITY; n * m], vec![f64::INFINITY; n * m]);
        for i in 0..n {
            for c in 0..m {
                if let Pair::Free(piece) = mode.pairs[c * n + i] {
                    let (lo, hi) = setup.piece_bounds(piece as usize);
                    below[i * m + c] = lo.unwrap_or(f64::NEG_INFINITY);
                    above[i * m + c] = hi.unwrap_or(f64::INFINITY);
                }
            }
        }
        PreactField {
            setup,
            coords,
            slopes,
            held,
            slope_lo,
            slope_hi,
            below,
            above,
            scratch: RefCell::new(scratch),
        }
    }

    /// The number of sliding pairs.
    pub fn sliding_pairs(&self) -> usize {
        self.scratch.borrow().v.len()
    }

    /// The release margins of the last evaluation (see
    /// [`super::mode::FrozenField::margins_at`]), from its free pairs'
    /// motion on the held sets and its error signals; after an accepted
    /// Dopri5 step, those at its end, where its last stage was evaluated.
    /// (The evaluations themselves leave the sliding coefficients alone:
    /// solving for them and two divisions per pair were a fifth of each.)
    pub fn last_margins(&self, out: &mut Vec<f64>) {
        let sc = self.scratch.borrow();
        out.resize(sc.v.len(), 0.0);
        let j = match &self.coords.frozen {
            Some((j, _)) => j,
            None => &sc.j,
        };
        self.margins_of(j, &sc.e, &sc.v, out);
    }

    /// The release margins and the error signals (`[M, K]`) at `y`,
    /// without the Gram product of a whole evaluation: only the sliding
    /// units' rows of it.
    pub fn margins_and_errors(&self, y: &[f64], margins: &mut [f64], errors: &mut [f64]) {
        let (setup, coords) = (self.setup, self.coords);
        let m = setup.m;
        let mut guard = self.scratch.borrow_mut();
        let sc = &mut *guard;
        let (j, b_out) = coords.readout(y);
        self.readout_pass(&y[..setup.n * m], j, b_out, sc);
        let inv_m = 1.0 / m as f64;
        for &(held, offset) in &self.held {
            let di = &sc.delta[held.unit * m..(held.unit + 1) * m];
            for (a, &c) in held.points.iter().enumerate() {
                let row = &coords.gram[c * m..(c + 1) * m];
                sc.v[offset + a] = -inv_m * dot(row, di);
            }
        }
        self.margins_of(j, &sc.e, &sc.v, margins);
        errors.copy_from_slice(&sc.e);
    }

    /// The release margin of every sliding pair from its set's free
    /// motion `v`: the coefficients `beta = M G_SS^-1 v_S` (`beta_c = (J^T
    /// e)_ic alpha_c`), in the sets' order.
    fn margins_of(&self, j: &[f64], e: &[f64], v: &[f64], out: &mut [f64]) {
        let (n, k) = (self.setup.n, self.setup.k);
        let lo = (&self.slope_lo[..], &self.slope_hi[..]);
        release_margins(&self.held, self.setup.m, n, k, j, e, v, lo, out);
    }

    fn readout_pass(&self, u: &[f64], j: &[f64], b_out: &[f64], sc: &mut Scratch) {
        let model = self.setup.model;
        readout_pass(
            model.activation,
            model.loss,
            j,
            b_out,
            &self.coords.targets,
            &self.slopes,
            u,
            &mut sc.h,
            &mut sc.e,
            &mut sc.et,
            &mut sc.delta,
        );
    }
}

impl VectorField for PreactField<'_, '_> {
    fn eval(&self, y: &[f64], dy: &mut [f64]) {
        let (setup, coords) = (self.setup, self.coords);
        let (n, m, k) = (setup.n, setup.m, setup.k);
        let mut guard = self.scratch.borrow_mut();
        let sc = &mut *guard;
        let (j, b_out) = coords.readout(y);
        self.readout_pass(&y[..n * m], j, b_out, sc);
        let (du, dread) = dy.split_at_mut(n * m);
        let inv_m = 1.0 / m as f64;
        gram_product(&coords.gram, -inv_m, &sc.delta, du);
        hold(m, &self.held, du, &mut sc.v);
        if coords.trains_readout {
            readout_flow(&sc.et, &sc.h, n, k, -inv_m, dread);
            sc.j.clear();
            sc.j.extend_from_slice(j);
        }
    }
}

crate::simd_fn! {
    /// The readout and back-propagation of every data point, in three
    /// passes over the `[N, M]` arrays: `z_c = J f(u_c) + b_out` (summed
    /// over the units in order, a few outputs at a time), the error
    /// signals `e_c = dl/dz (z_c, y_c)` (`[M, K]`, and transposed in `et`),
    /// and `delta_i = s_i (J^T e)_i` with the frozen slopes `s_i`, with
    /// `h = f(u)` written on the way. These arrays live in the
    /// second-level cache, so passes over them, not multiply-adds, are
    /// what this costs.
    #[allow(clippy::too_many_arguments)]
    fn readout_pass(
        act: Activation,
        loss: Loss,
        j: &[f64],
        b_out: &[f64],
        targets: &[f64],
        slopes: &[f64],
        u: &[f64],
        h: &mut [f64],
        e: &mut [f64],
        et: &mut [f64],
        delta: &mut [f64],
    ) {
        let k = b_out.len();
        let n = j.len() / k;
        let m = u.len() / n;
        act.apply(u, h);

        // z, a block of outputs per pass: four, then two, then one.
        let mut z = [0.0; 4 * MAX_POINTS];
        let mut o = 0;
        while o < k {
            let block = match k - o {
                1 => 1,
                2 | 3 => 2,
                _ => 4,
            };
            let z = &mut z[..block * m];
            match block {
                1 => outputs::<M, 1, 4>(&j[o * n..], h, n, m, z),
                2 => outputs::<M, 2, 2>(&j[o * n..], h, n, m, z),
                _ => outputs::<M, 4, 1>(&j[o * n..], h, n, m, z),
            }
            // The error signals by the vectorised sigmoid (BCE): a libm
            // exp per output and point was a tenth of an evaluation.
            for b in 0..block {
                let (zb, eo) = (&z[b * m..(b + 1) * m], &mut et[(o + b) * m..(o + b + 1) * m]);
                let t = |c: usize| targets[c * k + o + b];
                match loss {
                    Loss::Bce => {
                        for c in 0..m {
                            eo[c] = sigmoid_with::<M>(zb[c] + b_out[o + b]) - t(c);
                        }
                    }
                    Loss::Mse => {
                        for c in 0..m {
                            eo[c] = zb[c] + b_out[o + b] - t(c);
                        }
                    }
                }
                for c in 0..m {
                    e[c * k + o + b] = eo[c];
                }
            }
            o += block;
        }

        // delta = s * (J^T e), four units by eight data points at a time.
        let mut i = 0;
        while i < n {
            let four = i + 4 <= n;
            let mut c0 = 0;
            while c0 < m {
                let full = c0 + LANES <= m;
                match (four, full) {
                    (true, true) => deltas::<M, 4, LANES>(j, et, slopes, n, m, i, c0, delta),
                    (true, false) => deltas::<M, 4, 1>(j, et, slopes, n, m, i, c0, delta),
                    (false, true) => deltas::<M, 1, LANES>(j, et, slopes, n, m, i, c0, delta),
                    (false, false) => deltas::<M, 1, 1>(j, et, slopes, n, m, i, c0, delta),
                }
                c0 += if full { LANES } else { 1 };
            }
            i += if four { 4 } else { 1 };
        }
    }
}

/// `z_bc = sum_i J_bi h_ic` for the `B` outputs whose rows of `J` start
/// `j`, every data point, in one pass over `h`: `S` running sums per
/// output over the units (`B S` chains of multiply-adds in flight), eight
/// data points at a time.
#[inline(always)]
fn outputs<M: MulAdd, const B: usize, const S: usize>(
    j: &[f64],
    h: &[f64],
    n: usize,
    m: usize,
    z: &mut [f64],
) {
    let mut c0 = 0;
    while c0 + LANES <= m {
        outputs_chunk::<M, B, S, LANES>(j, h, n, m, c0, z);
        c0 += LANES;
    }
    for c0 in c0..m {
        outputs_chunk::<M, B, S, 1>(j, h, n, m, c0, z);
    }
}

/// [`outputs`] for the `W` data points from `c0`.
#[inline(always)]
fn outputs_chunk<M: MulAdd, const B: usize, const S: usize, const W: usize>(
    j: &[f64],
    h: &[f64],
    n: usize,
    m: usize,
    c0: usize,
    z: &mut [f64],
) {
    let mut acc = [[[0.0; W]; S]; B];
    let mut i = 0;
    while i + S <= n {
        for q in 0..S {
            let hv: &[f64; W] = h[(i + q) * m + c0..][..W].try_into().unwrap();
            for (b, acc) in acc.iter_mut().enumerate() {
                let w = j[b * n + i + q];
                for l in 0..W {
                    acc[q][l] = M::fma(w, hv[l], acc[q][l]);
                }
            }
        }
        i += S;
    }
    for i in i..n {
        let hv: &[f64; W] = h[i * m + c0..][..W].try_into().unwrap();
        for (b, acc) in acc.iter_mut().enumerate() {
            let w = j[b * n + i];
            for l in 0..W {
                acc[0][l] = M::fma(w, hv[l], acc[0][l]);
            }
        }
    }
    for (b, acc) in acc.iter().enumerate() {
        for l in 0..W {
            let mut sum = acc[0][l];
            for part in &acc[1..] {
                sum += part[l];
            }
            z[b * m + c0 + l] = sum;
        }
    }
}

/// `delta_ic = s_ic sum_o J_oi e_oc` for the `U` units from `i0` and the
/// `W` data points from `c0`: `U` independent sums over the outputs.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn deltas<M: MulAdd, const U: usize, const W: usize>(
    j: &[f64],
    et: &[f64],
    slopes: &[f64],
    n: usize,
    m: usize,
    i0: usize,
    c0: usize,
    delta: &mut [f64],
) {
    let k = j.len() / n;
    let mut acc = [[0.0; W]; U];
    for o in 0..k {
        let eo: &[f64; W] = et[o * m + c0..][..W].try_into().unwrap();
        for (q, acc) in acc.iter_mut().enumerate() {
            let w = j[o * n + i0 + q];
            for l in 0..W {
                acc[l] = M::fma(w, eo[l], acc[l]);
            }
        }
    }
    for (q, acc) in acc.iter().enumerate() {
        let at = (i0 + q) * m + c0;
        let si: &[f64; W] = slopes[at..][..W].try_into().unwrap();
        let di: &mut [f64; W] = (&mut delta[at..][..W]).try_into().unwrap();
        for l in 0..W {
            di[l] = acc[l] * si[l];
        }
    }
}

/// Data points to a vector register in the per-unit loops.
const LANES: usize = 8;

crate::simd_fn! {
    /// `out_i = scale sum_c' delta_ic' G_c'` for every unit `i` (rows of
    /// `M`): four units at a time, eight data points to a register,
    /// summed over `c'` in order.
    fn gram_product(gram: &[f64], scale: f64, delta: &[f64], out: &mut [f64]) {
        const L: usize = 8;
        const B: usize = 4;
        let m = (gram.len() as f64).sqrt().round() as usize;
        let n = out.len() / m;
        let mut i = 0;
        while i + B <= n {
            let mut c = 0;
            while c + L <= m {
                let mut acc = [[0.0; L]; B];
                for cc in 0..m {
                    let g: &[f64; L] = gram[cc * m + c..cc * m + c + L].try_into().unwrap();
                    for (b, acc) in acc.iter_mut().enumerate() {
                        let dv = delta[(i + b) * m + cc];
                        for l in 0..L {
                            acc[l] = M::fma(dv, g[l], acc[l]);
                        }
                    }
                }
                for (b, acc) in acc.iter().enumerate() {
                    let o = &mut out[(i + b) * m + c..(i + b) * m + c + L];
                    for l in 0..L {
                        o[l] = scale * acc[l];
                    }
                }
                c += L;
            }
            for b in 0..B {
                gram_row_tail(gram, m, i + b, c, scale, delta, out);
            }
            i += B;
        }
        for i in i..n {
            gram_row_tail(gram, m, i, 0, scale, delta, out);
        }
    }
}

/// Data points `from..M` of unit `i`'s row of [`gram_product`].
#[inline(always)]
fn gram_row_tail(
    gram: &[f64],
    m: usize,
    i: usize,
    from: usize,
    scale: f64,
    delta: &[f64],
    out: &mut [f64],
) {
    for c in from..m {
        let mut acc = 0.0;
        for cc in 0..m {
            acc += delta[i * m + cc] * gram[cc * m + c];
        }
        out[i * m + c] = scale * acc;
    }
}

crate::simd_fn! {
    /// Holds every held set's pairs on their kinks: with `v_S` the free
    /// pairs' motion of a set's pre-activations (`du` there), `du_i -=
    /// G_(:,S) G_SS^-1 v_S`, which is zero on `S` (set exactly); `v_all`
    /// keeps every set's `v_S`.
    fn hold(m: usize, held: &[(&Held, usize)], du: &mut [f64], v_all: &mut [f64]) {
        for &(unit, offset) in held {
            let s = unit.points.len();
            let dui = &mut du[unit.unit * m..(unit.unit + 1) * m];
            let v = &mut v_all[offset..offset + s];
            for (va, &c) in v.iter_mut().zip(&unit.points) {
                *va = dui[c];
            }
            let mut c0 = 0;
            while c0 + LANES <= m {
                push_chunk::<M, LANES>(&unit.push, v, m, c0, dui);
                c0 += LANES;
            }
            for c0 in c0..m {
                push_chunk::<M, 1>(&unit.push, v, m, c0, dui);
            }
            for &c in &unit.points {
                dui[c] = 0.0;
            }
        }
    }
}

/// `du_c -= sum_a v_a rows_ac` for the `W` data points from `c0`, summed
/// over `a` in registers.
#[inline(always)]
fn push_chunk<M: MulAdd, const W: usize>(
    rows: &[f64],
    v: &[f64],
    m: usize,
    c0: usize,
    du: &mut [f64],
) {
    let out: &mut [f64; W] = (&mut du[c0..][..W]).try_into().unwrap();
    let mut acc = *out;
    for (a, &va) in v.iter().enumerate() {
        let row: &[f64; W] = rows[a * m + c0..][..W].try_into().unwrap();
        for l in 0..W {
            acc[l] = M::fma(-va, row[l], acc[l]);
        }
    }
    *out = acc;
}

crate::simd_fn! {
    /// [`PreactField::margins_of`]: for each held pair, its set's
    /// coefficient `beta = M (G_SS^-1 v_S)_a` (by the explicit inverse),
    /// its back-propagated error `g = (J^T e)_ic`, then `alpha = beta / g`
    /// and its margin `min(alpha - lo, hi - alpha) / (hi - lo)` (-1 where
    /// `alpha` is not finite), as [`super::mode::margin`] computes it.
    #[allow(clippy::too_many_arguments)]
    fn release_margins(
        held: &[(&Held, usize)],
        m: usize,
        n: usize,
        k: usize,
        j: &[f64],
        e: &[f64],
        v: &[f64],
        slopes: (&[f64], &[f64]),
        out: &mut [f64],
    ) {
        let (lo, hi) = slopes;
        for &(unit, offset) in held {
            let s = unit.points.len();
            let vs = &v[offset..offset + s];
            for (a, &c) in unit.points.iter().enumerate() {
                let row = &unit.inverse[a * s..(a + 1) * s];
                let mut beta = 0.0;
                for (r, va) in row.iter().zip(vs) {
                    beta = M::fma(*r, *va, beta);
                }
                let mut g = 0.0;
                for o in 0..k {
                    g += j[o * n + unit.unit] * e[c * k + o];
                }
                let p = offset + a;
                let alpha = m as f64 * beta / g;
                let inside = (alpha - lo[p]).min(hi[p] - alpha) / (hi[p] - lo[p]);
                out[p] = if alpha.is_finite() { inside } else { -1.0 };
            }
        }
    }
}

/// The readout's gradient flow: `dJ_oi = scale sum_c e_oc h_ic`, `db_out_o
/// = scale sum_c e_oc`, into `out` (`[J | b_out]`), from the transposed
/// error signals `et` (`[K, M]`) and the responses `h` (`[N, M]`).
fn readout_flow(et: &[f64], h: &[f64], n: usize, k: usize, scale: f64, out: &mut [f64]) {
    let m = et.len() / k;
    let (dj, db) = out.split_at_mut(k * n);
    for o in 0..k {
        let eo = &et[o * m..(o + 1) * m];
        for i in 0..n {
            dj[o * n + i] = scale * dot(eo, &h[i * m..(i + 1) * m]);
        }
        db[o] = scale * eo.iter().sum::<f64>();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::piecewise::mode::FrozenField;
    use crate::flow::piecewise::tests::paper_net;
    use crate::network::Model;

    /// `max |a - b|` over the largest `|b|`.
    fn gap(a: &[f64], b: &[f64]) -> f64 {
        let top = b.iter().fold(0.0, |m: f64, v| m.max(v.abs()));
        a.iter()
            .zip(b)
            .fold(0.0, |m: f64, (x, y)| m.max((x - y).abs()))
            / top
    }

    #[test]
    fn the_field_in_pre_activations_is_the_weight_field_seen_through_the_inputs() {
        for trains in [false, true] {
            let (task, init, model) = paper_net();
            let model = Model::new(model.activation, model.loss, &init, trains);
            let (x, y) = (task.inputs_view(), task.targets_view());
            let setup = Setup::new(&model, x, y, 1e-10);
            let coords = Coordinates::new(&setup, &init).unwrap();
            let (n, m) = (setup.n, setup.m);

            // A mode with sliding pairs: points 0 and 3 of the first ten
            // units held on their kink.
            let state = init.to_state(trains);
            let mut u = vec![0.0; n * m];
            setup.pre_activations(&state, &mut u);
            let mut mode = Mode::of(&setup, &u);
            for i in 0..10 {
                mode.pairs[i] = Pair::Sliding(0);
                mode.pairs[3 * n + i] = Pair::Sliding(0);
            }

            let weights = FrozenField::new(&setup, &mode).unwrap();
            let mut dw = vec![0.0; state.len()];
            weights.eval(&state, &mut dw);
            let mut du_w = vec![0.0; n * m];
            setup.pre_activations(&dw, &mut du_w);
            let mut margins_w = vec![0.0; weights.sliding_pairs()];
            weights.margins_at(
                &state,
                &mut vec![0.0; state.len()],
                &mut margins_w,
                &mut 0,
            );

            let mut held = HeldUnits::new(n);
            assert!(held.update(&setup, &coords, &mode));
            let field = PreactField::new(&setup, &coords, &mode, &held);
            let y0 = coords.initial_state();
            let mut du = vec![0.0; y0.len()];
            field.eval(&y0, &mut du);
            let mut margins = Vec::new();
            field.last_margins(&mut margins);

            let mut by_pair = vec![0.0; n * m];
            coords.by_point(&du, &mut by_pair);
            assert!(
                gap(&by_pair, &du_w) < 1e-12,
                "trains {trains}: {:e}",
                gap(&by_pair, &du_w)
            );
            assert!(gap(&margins, &margins_w) < 1e-10, "trains {trains}");
            for i in 0..10 {
                assert_eq!(by_pair[i], 0.0);
                assert_eq!(by_pair[3 * n + i], 0.0);
            }
            if trains {
                let o = n * setup.d + n;
                assert!(gap(&du[n * m..], &dw[o..]) < 1e-12, "readout");
            }
        }
    }

    #[test]
    fn weights_come_back_from_pre_activations_through_the_pseudo_inverse() {
        // The flow moves (w_i, b_i) by X~ a_i; such a move, put in the
        // pre-activations, comes back exactly, also with the biases frozen,
        // when the cube's inputs (which sum to zero) are dependent.
        for train_bias in [true, false] {
            let (task, init, mut model) = paper_net();
            model.train_bias = train_bias;
            let (x, y) = (task.inputs_view(), task.targets_view());
            let setup = Setup::new(&model, x, y, 1e-10);
            let coords = Coordinates::new(&setup, &init).unwrap();
            let (n, m, d) = (setup.n, setup.m, setup.d);

            let mut moved = init.clone();
            for i in 0..n {
                for c in 0..m {
                    let a = ((i * 7 + c * 3) % 11) as f64 / 11.0 - 0.5;
                    for k in 0..d {
                        moved.w[i * d + k] += a * x[(k, c)];
                    }
                    moved.b[i] += a * setup.bias_weight();
                }
            }
            let state = moved.to_state(false);
            let mut u = vec![0.0; n * m];
            setup.pre_activations(&state, &mut u);
            let mut y_u = vec![0.0; n * m];
            transpose(&u, m, n, &mut y_u);
            let mut back = vec![0.0; state.len()];
            coords.to_standard(&y_u, &mut back);
            assert!(
                gap(&back, &state) < 1e-12,
                "bias {train_bias}: {:e}",
                gap(&back, &state)
            );
            if !train_bias {
                assert_eq!(&back[n * d..], &init.b[..]);
            }
        }
    }
}
