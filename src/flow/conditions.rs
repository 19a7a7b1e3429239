//! The flow's right-hand side on few data points, vectorised across the
//! hidden units.
//!
//! On the condition means a flow sees a handful of data points (`P = 8`
//! for the paper-size cube) and, in reduced coordinates, each input is a
//! handful of numbers (`r = 7`). The two products of the gradient are then
//! far too small for a blocked matrix product to pay for its packing, and
//! the per-point passes around them (bias, readout, slopes) cost more than
//! the products. [`ConditionField`] instead runs every pass over vectors of
//! the `N` hidden units, in one function compiled for the widest vector
//! instructions the processor has ([`crate::simd`]).
//!
//! For that it holds the state in the *lane layout*: the standard layout
//! of [`crate::network`] with the `W` block transposed, `W^T` `[D, N]`
//! row-major (the weights from one input coordinate to every unit), then
//! `b`, `J` `[K, N]` and `b_out` unchanged. [`to_lanes`] and
//! [`from_lanes`] convert; the flow converts at its saved times only.
//!
//! The evaluation, with `x_c` the inputs, `w_a` the rows of `W^T` and
//! `M` the number of points:
//!
//! ```text
//! u_c = b + sum_a x_ac w_a          h_c = f(u_c)
//! z_c = J h_c + b_out               e_c = dl/dz (z_c, y_c)
//! delta_c = -(1/M) (J^T e_c) f'(u_c)
//! d w_a / dt = sum_c x_ac delta_c   d b / dt = sum_c delta_c
//! d J_o / dt = -(1/M) sum_c e_oc h_c,  d b_out / dt = -(1/M) sum_c e_c
//! ```
//!
//! It is the same field as [`super::smooth::GradientField`] to rounding
//! (tested), at a little over half its cost for the paper-size reduced
//! flow (2.0 against 3.6 us, `rhs` bench).

use std::cell::RefCell;

use faer::MatRef;

use super::integrator::VectorField;
use crate::activation::Activation;
use crate::fastmath::{MulAdd, dot};
use crate::network::{Dims, Loss, Model, readout_back};

/// The most data points for which [`ConditionField`] beats the blocked
/// products of [`super::smooth::GradientField`] on inputs of up to
/// [`MAX_INPUTS`] coordinates (measured: `rhs` bench, 19.8 against 16.9 us
/// for `D = 31`, `P = 32`).
pub const MAX_POINTS: usize = 64;

/// The most input coordinates for which it does at up to [`MAX_POINTS`]
/// points.
pub const MAX_INPUTS: usize = 64;

/// The most data points for which it beats them at any input size: at
/// `D = 100`, 9.7 against 15.4 us for 8 points, even at 64, 4% behind at
/// 32 points of 512 units.
pub const FEW_POINTS: usize = 16;

/// Whether [`ConditionField`] is the faster field for `model` on `points`
/// data points.
pub fn suits(model: &Model, points: usize) -> bool {
    points <= FEW_POINTS || (points <= MAX_POINTS && model.dims.inputs <= MAX_INPUTS)
}

/// Everything the evaluation reads besides the state.
struct Parts {
    dims: Dims,
    points: usize,
    activation: Activation,
    loss: Loss,
    train_bias: bool,
    frozen: Option<(Vec<f64>, Vec<f64>)>,
    /// Inputs with the bias's input, 1, below them, column-major
    /// `(D + 1) x M`: `x[c * (D + 1) + a]`.
    x: Vec<f64>,
    /// The same, row-major: `xt[a * M + c]`.
    xt: Vec<f64>,
    /// Targets, column-major `K x M`.
    y: Vec<f64>,
}

/// Per-point vectors over the units, column-major `N x M`.
struct Scratch {
    u: Vec<f64>,
    h: Vec<f64>,
    delta: Vec<f64>,
    /// The error signals times `-1/M`, column-major `K x M`.
    scaled: Vec<f64>,
}

/// `-grad L` over a few data points, on states in the lane layout.
pub struct ConditionField {
    parts: Parts,
    scratch: RefCell<Scratch>,
}

impl ConditionField {
    /// The field of `model` over inputs `x` (`D x M`) and targets `y`
    /// (`K x M`).
    pub fn new(model: &Model, x: MatRef<'_, f64>, y: MatRef<'_, f64>) -> Self {
        let Dims {
            inputs: d,
            hidden: n,
            outputs: k,
        } = model.dims;
        let m = x.ncols();
        assert!(x.nrows() == d && y.nrows() == k && y.ncols() == m);
        let parts = Parts {
            dims: model.dims,
            points: m,
            activation: model.activation,
            loss: model.loss,
            train_bias: model.train_bias,
            frozen: model.frozen_readout.clone(),
            x: (0..m)
                .flat_map(|c| (0..d).map(move |a| x[(a, c)]).chain([1.0]))
                .collect(),
            xt: (0..d)
                .flat_map(|a| (0..m).map(move |c| x[(a, c)]))
                .collect(),
            y: (0..m)
                .flat_map(|c| (0..k).map(move |o| y[(o, c)]))
                .collect(),
        };
        let scratch = Scratch {
            u: vec![0.0; n * m],
            h: vec![0.0; n * m],
            delta: vec![0.0; n * m],
            scaled: vec![0.0; k * m],
        };
        ConditionField {
            parts,
            scratch: RefCell::new(scratch),
        }
    }
}

impl VectorField for ConditionField {
    fn eval(&self, state: &[f64], dy: &mut [f64]) {
        assert_eq!(state.len(), dy.len());
        let mut scratch = self.scratch.borrow_mut();
        gradient(&self.parts, state, dy, &mut scratch);
    }
}

crate::simd_fn! {
    /// `dy = -grad L(state)`, both in the lane layout.
    fn gradient(f: &Parts, state: &[f64], dy: &mut [f64], s: &mut Scratch) {
        let Dims {
            inputs: d,
            hidden: n,
            outputs: k,
        } = f.dims;
        let m = f.points;
        let (wt, rest) = state.split_at(d * n);
        let (b, readout) = rest.split_at(n);
        let (j, b_out) = match &f.frozen {
            Some((j, b_out)) => (&j[..], &b_out[..]),
            None => readout.split_at(k * n),
        };

        // Forward: u_c = b + sum_a x_ac w_a, then h, z and -(1/M) e per
        // point: the scale on the K error signals rather than on the N
        // units.
        lane_products::<M>(&mut s.u, Some(b), &f.xt, m, wt, n);
        f.activation.apply(&s.u, &mut s.h);
        let scale = -1.0 / m as f64;
        for (c, hc) in s.h.chunks_exact(n).enumerate() {
            for o in 0..k {
                let z = dot(&j[o * n..(o + 1) * n], hc) + b_out[o];
                s.scaled[c * k + o] = scale * f.loss.error(z, f.y[c * k + o]);
            }
        }

        // delta_c = (J^T (-(1/M) e_c)) f'(u_c).
        let pairs = s.u.chunks_exact(n).zip(s.h.chunks_exact(n));
        for ((dc, es), (uc, hc)) in s
            .delta
            .chunks_exact_mut(n)
            .zip(s.scaled.chunks_exact(k))
            .zip(pairs)
        {
            readout_back(j, es, dc);
            f.activation.scale_by_slope(uc, hc, dc);
        }

        // Backward: d w_a = sum_c x_ac delta_c, and d b = sum_c delta_c as
        // the row below them, through the bias's input in `x`.
        let (dwb, dread) = dy.split_at_mut((d + 1) * n);
        lane_products::<M>(dwb, None, &f.x, d + 1, &s.delta, n);
        if !f.train_bias {
            dwb[d * n..].fill(0.0);
        }
        if f.frozen.is_none() {
            let (dj, dbo) = dread.split_at_mut(k * n);
            dj.fill(0.0);
            dbo.fill(0.0);
            for (hc, es) in s.h.chunks_exact(n).zip(s.scaled.chunks_exact(k)) {
                for (o, &w) in es.iter().enumerate() {
                    let row = &mut dj[o * n..(o + 1) * n];
                    row.iter_mut().zip(hc).for_each(|(g, &h)| *g += w * h);
                    dbo[o] += w;
                }
            }
        }
    }
}

/// Units per register block: one AVX-512 vector, two AVX2 vectors.
const LANES: usize = 8;

/// `out_r = init + sum_s coef[r, s] v_s` for every row `r` of `out`
/// (`R x N` row-major), where `v_s` are the rows of `inputs` (`S x N`)
/// and `coef[r, s] = coef[r + s * stride]`: both products of the
/// gradient, vectors over the units. Rows are taken eight (then four,
/// two, one) at a time against one block of [`LANES`] units, whose sums
/// stay in registers while the `S` inputs stream past; each element sums
/// in the order `init, s = 0, 1, ...`, by `M`'s multiply-adds.
#[inline(always)]
fn lane_products<M: MulAdd>(
    out: &mut [f64],
    init: Option<&[f64]>,
    coef: &[f64],
    stride: usize,
    inputs: &[f64],
    n: usize,
) {
    let rows = out.len() / n;
    let mut r0 = 0;
    while r0 < rows {
        let step = match rows - r0 {
            8.. => 8,
            4..=7 => 4,
            2..=3 => 2,
            _ => 1,
        };
        let rows_out = &mut out[r0 * n..(r0 + step) * n];
        let coef = &coef[r0..];
        match step {
            8 => row_block::<M, 8>(rows_out, init, coef, stride, inputs, n),
            4 => row_block::<M, 4>(rows_out, init, coef, stride, inputs, n),
            2 => row_block::<M, 2>(rows_out, init, coef, stride, inputs, n),
            _ => row_block::<M, 1>(rows_out, init, coef, stride, inputs, n),
        }
        r0 += step;
    }
}

/// [`lane_products`] for `R` rows.
#[inline(always)]
fn row_block<M: MulAdd, const R: usize>(
    out: &mut [f64],
    init: Option<&[f64]>,
    coef: &[f64],
    stride: usize,
    inputs: &[f64],
    n: usize,
) {
    let count = inputs.len() / n;
    let coefs = |s: usize| -> &[f64; R] {
        coef[s * stride..s * stride + R]
            .try_into()
            .expect("a block of rows")
    };
    let mut i0 = 0;
    while i0 + LANES <= n {
        let mut acc = [[0.0; LANES]; R];
        if let Some(init) = init {
            acc.iter_mut()
                .for_each(|a| a.copy_from_slice(&init[i0..i0 + LANES]));
        }
        for s in 0..count {
            let v: &[f64; LANES] = inputs[s * n + i0..s * n + i0 + LANES]
                .try_into()
                .expect("a block of lanes");
            let cs = coefs(s);
            for r in 0..R {
                for l in 0..LANES {
                    acc[r][l] = M::fma(cs[r], v[l], acc[r][l]);
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            out[r * n + i0..r * n + i0 + LANES].copy_from_slice(a);
        }
        i0 += LANES;
    }
    for i in i0..n {
        for r in 0..R {
            let mut a = init.map_or(0.0, |init| init[i]);
            for s in 0..count {
                a = M::fma(coefs(s)[r], inputs[s * n + i], a);
            }
            out[r * n + i] = a;
        }
    }
}

/// Rewrites a state of `dims` from the standard layout into the lane
/// layout (`W` transposed, the rest copied).
pub fn to_lanes(dims: Dims, state: &[f64], out: &mut [f64]) {
    let (d, n) = (dims.inputs, dims.hidden);
    for i in 0..n {
        for a in 0..d {
            out[a * n + i] = state[i * d + a];
        }
    }
    out[d * n..].copy_from_slice(&state[d * n..]);
}

/// Rewrites a state from the lane layout back into the standard one.
pub fn from_lanes(dims: Dims, lanes: &[f64], out: &mut [f64]) {
    let (d, n) = (dims.inputs, dims.hidden);
    for i in 0..n {
        for a in 0..d {
            out[i * d + a] = lanes[a * n + i];
        }
    }
    out[d * n..].copy_from_slice(&lanes[d * n..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::smooth::GradientField;
    use crate::network::Params;

    fn numbers(len: usize, seed: u64) -> Vec<f64> {
        use rand_distr::{Distribution, StandardNormal};
        let mut rng = crate::seed::stream(seed, "conditions");
        (0..len).map(|_| StandardNormal.sample(&mut rng)).collect()
    }

    /// The lane-layout field is the standard field, transposed, to
    /// rounding: every activation, both losses, frozen and trained
    /// readout and biases, several sizes.
    #[test]
    fn agrees_with_the_blocked_gradient() {
        let acts = [
            Activation::Tanh,
            Activation::Softplus,
            Activation::Linear,
            Activation::Relu,
            Activation::BoundedRelu { ub: 0.8 },
        ];
        let sizes = [
            (7, 128, 8, 1),
            (3, 5, 4, 2),
            (31, 64, 32, 5),
            (100, 17, 3, 1),
        ];
        for (case, &(d, n, m, k)) in sizes.iter().enumerate() {
            let dims = Dims {
                inputs: d,
                hidden: n,
                outputs: k,
            };
            let scaled = |v: Vec<f64>, s: f64| v.iter().map(|x| x * s).collect();
            let p = Params {
                dims,
                w: scaled(numbers(n * d, 1), 1.0 / (d as f64).sqrt()),
                b: scaled(numbers(n, 2), 0.5),
                j: scaled(numbers(k * n, 3), 1.0 / (n as f64).sqrt()),
                b_out: numbers(k, 4),
            };
            let x = numbers(d * m, 5);
            let y: Vec<f64> = numbers(k * m, 6)
                .iter()
                .map(|v| f64::from(*v > 0.0))
                .collect();
            let xv = MatRef::from_column_major_slice(&x, d, m);
            let yv = MatRef::from_column_major_slice(&y, k, m);
            for (a, act) in acts.iter().enumerate() {
                let loss = if a % 2 == 0 { Loss::Bce } else { Loss::Mse };
                let train = (case + a) % 2 == 1;
                let mut model = Model::new(*act, loss, &p, train);
                model.train_bias = (case + a) % 3 != 0;
                let state = p.to_state(train);
                let mut want = vec![0.0; state.len()];
                GradientField::new(&model, xv, yv).eval(&state, &mut want);

                let mut lanes = vec![0.0; state.len()];
                to_lanes(dims, &state, &mut lanes);
                let mut got = vec![0.0; state.len()];
                ConditionField::new(&model, xv, yv).eval(&lanes, &mut got);
                let mut back = vec![0.0; state.len()];
                from_lanes(dims, &got, &mut back);
                let top = want.iter().fold(0.0f64, |t, v| t.max(v.abs()));
                for (i, (g, w)) in back.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-13 * top.max(1.0),
                        "{act} {loss:?} D{d} N{n} M{m} K{k} [{i}]: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn lane_layout_round_trips() {
        let dims = Dims {
            inputs: 3,
            hidden: 4,
            outputs: 2,
        };
        let state = numbers(3 * 4 + 4 + 8 + 2, 9);
        let (mut lanes, mut back) = (vec![0.0; 26], vec![0.0; 26]);
        to_lanes(dims, &state, &mut lanes);
        assert_eq!(lanes[4], state[1], "W[0, 1] sits in row 1 of W^T");
        from_lanes(dims, &lanes, &mut back);
        assert_eq!(back, state);
    }
}
