//! The SGD step in single precision (`sgd.precision = "f32"`).
//!
//! The same step as [`Model::loss_grad`] followed by the update, on an
//! `f32` copy of the state and of the training set: the two products with
//! the inputs (`u = W x`, and `W -= eta / M delta x^T` accumulated by the
//! product straight into the weights, as the `f64` step does) run through
//! faer's `f32` kernels, which take twice the values per vector
//! instruction, and `tanh` through [`tanh_slice_f32`]. The error signals
//! of the outputs (a few per point) are computed in `f32` too, the BCE
//! sigmoid as `(1 + tanh(z / 2)) / 2` through the same vector `tanh`,
//! the others in `f64` and rounded. Snapshots are taken of the state widened back to `f64`,
//! so everything written and measured is computed by the `f64` code from
//! the `f32` weights.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use crate::activation::Activation;
use crate::fastmath::tanh_slice_f32;
use crate::network::{Dims, Loss, Model, clear_upper_vector_state, readout_back};

/// The network of a [`Model`] in single precision, with its scratch.
pub struct SingleNet {
    dims: Dims,
    activation: Activation,
    loss: Loss,
    train_bias: bool,
    /// `J` `[K, N]` row-major and `b_out`, when frozen.
    frozen_readout: Option<(Vec<f32>, Vec<f32>)>,
    u: Vec<f32>,
    h: Vec<f32>,
    z: Vec<f32>,
    e: Vec<f32>,
    delta: Vec<f32>,
    /// The row sums of `delta`, for the bias.
    bias_sums: Vec<f32>,
    state_len: usize,
}

impl SingleNet {
    /// `model` in `f32`, with scratch for batches of at most `capacity`.
    pub fn new(model: &Model, capacity: usize) -> Self {
        let Dims {
            hidden: n,
            outputs: k,
            ..
        } = model.dims;
        SingleNet {
            dims: model.dims,
            activation: model.activation,
            loss: model.loss,
            train_bias: model.train_bias,
            frozen_readout: model
                .frozen_readout
                .as_ref()
                .map(|(j, b)| (narrow(j), narrow(b))),
            u: vec![0.0; n * capacity],
            h: vec![0.0; n * capacity],
            z: vec![0.0; k * capacity],
            e: vec![0.0; k * capacity],
            delta: vec![0.0; n * capacity],
            bias_sums: vec![0.0; n],
            state_len: model.state_len(),
        }
    }

    /// One SGD step with learning rate `eta` on the batch `x` (`D x M`),
    /// `y` (`K x M`): `state -= eta * grad L(state)`.
    pub fn step(
        &mut self,
        state: &mut [f32],
        x: MatRef<'_, f32>,
        y: MatRef<'_, f32>,
        eta: f32,
    ) {
        let Dims {
            inputs: d,
            hidden: n,
            outputs: k,
        } = self.dims;
        let m = x.ncols();
        assert!(m * n <= self.u.len(), "batch of {m} above the scratch");
        assert_eq!(state.len(), self.state_len, "state length");
        let (w, rest) = state.split_at(n * d);
        let (b, readout) = rest.split_at(n);
        let (j, b_out) = match &self.frozen_readout {
            Some((j, b_out)) => (&j[..], &b_out[..]),
            None => readout.split_at(k * n),
        };

        // Forward: u = W x + b, h = f(u), z = J h + b_out.
        let wv = MatRef::from_column_major_slice(w, d, n).transpose();
        let u = MatMut::from_column_major_slice_mut(&mut self.u[..n * m], n, m);
        matmul(u, Accum::Replace, wv, x, 1.0, Par::Seq);
        for uc in self.u[..n * m].chunks_exact_mut(n) {
            uc.iter_mut().zip(b).for_each(|(u, b)| *u += b);
        }
        let (u, h) = (&self.u[..n * m], &mut self.h[..n * m]);
        match self.activation {
            Activation::Tanh => tanh_slice_f32(u, h),
            Activation::Relu => h.iter_mut().zip(u).for_each(|(h, &u)| *h = u.max(0.0)),
            act => {
                let f = |u: f32| act.value(f64::from(u)) as f32;
                h.iter_mut().zip(u).for_each(|(h, &u)| *h = f(u));
            }
        }
        // z = J h (K x M, column-major) as one product: a dot product per
        // output and sample does not vectorise in f32 (the sum's order is
        // fixed) and cost as much as the two large products at K = 5.
        let jt = MatRef::from_column_major_slice(j, n, k).transpose();
        let hm = MatRef::from_column_major_slice(&self.h[..n * m], n, m);
        let z = MatMut::from_column_major_slice_mut(&mut self.z[..k * m], k, m);
        matmul(z, Accum::Replace, jt, hm, 1.0, Par::Seq);
        clear_upper_vector_state();
        if self.loss == Loss::Bce {
            // e = sigmoid(z) - y with sigmoid(z) = (1 + tanh(z / 2)) / 2,
            // through the vector tanh: a libm exp per output and sample
            // was a twentieth of the step at K = 5.
            for zc in self.z[..k * m].chunks_exact_mut(k) {
                zc.iter_mut()
                    .zip(b_out)
                    .for_each(|(z, b)| *z = 0.5 * (*z + b));
            }
            tanh_slice_f32(&self.z[..k * m], &mut self.e[..k * m]);
            for (ec, col) in self.e[..k * m].chunks_exact_mut(k).zip(0..m) {
                for (o, e) in ec.iter_mut().enumerate() {
                    *e = (0.5 + 0.5 * *e) - y[(o, col)];
                }
            }
        } else {
            for ((zc, ec), col) in self.z[..k * m]
                .chunks_exact_mut(k)
                .zip(self.e[..k * m].chunks_exact_mut(k))
                .zip(0..m)
            {
                for (o, (z, e)) in zc.iter_mut().zip(ec.iter_mut()).enumerate() {
                    *z += b_out[o];
                    *e = self.loss.error(f64::from(*z), f64::from(y[(o, col)])) as f32;
                }
            }
        }

        // Backward: delta = (J^T e) f'(u), and its row sums for the bias.
        let scale = 1.0 / m as f32;
        let gb = &mut self.bias_sums;
        gb.fill(0.0);
        let (u, h, e) = (&self.u[..n * m], &self.h[..n * m], &self.e[..k * m]);
        let delta = &mut self.delta[..n * m];
        backward_columns(self.activation, j, e, u, h, delta, gb);

        // The step, added straight into the state: W -= eta / M delta x^T
        // as the product's accumulation, then the bias and the readout.
        let step = eta * scale;
        let (w, rest) = state.split_at_mut(n * d);
        let (b, readout) = rest.split_at_mut(n);
        let delta = MatRef::from_column_major_slice(&self.delta[..n * m], n, m);
        let wt = MatMut::from_column_major_slice_mut(w, d, n);
        matmul(wt, Accum::Add, x, delta.transpose(), -step, Par::Seq);
        if self.train_bias {
            b.iter_mut()
                .zip(gb.iter())
                .for_each(|(b, g)| *b -= step * g);
        }
        if self.frozen_readout.is_none() {
            // J (K x N, row-major) -= eta / M e h^T; b_out -= eta / M rowsum(e).
            let (j, b_out) = readout.split_at_mut(k * n);
            for col in 0..m {
                let hc = &self.h[col * n..(col + 1) * n];
                for (o, &eo) in self.e[col * k..(col + 1) * k].iter().enumerate() {
                    let g = step * eo;
                    j[o * n..(o + 1) * n]
                        .iter_mut()
                        .zip(hc)
                        .for_each(|(jv, &h)| *jv -= g * h);
                    b_out[o] -= g;
                }
            }
        }
    }
}

crate::simd_fn! {
    /// `delta = (J^T e) f'(u)` column by column (`N` a column), with
    /// `f' = 1 - h^2` for `tanh`, the step for ReLU and the `f64` slope of
    /// any other activation, and the row sums of `delta` added into `sums`.
    fn backward_columns(
        act: Activation,
        j: &[f32],
        e: &[f32],
        u: &[f32],
        h: &[f32],
        delta: &mut [f32],
        sums: &mut [f32],
    ) {
        let n = sums.len();
        let k = j.len() / n;
        for col in 0..delta.len() / n {
            let dc = &mut delta[col * n..(col + 1) * n];
            readout_back(j, &e[col * k..(col + 1) * k], dc);
            let (uc, hc) = (&u[col * n..(col + 1) * n], &h[col * n..(col + 1) * n]);
            match act {
                Activation::Tanh => {
                    for i in 0..n {
                        dc[i] *= 1.0 - hc[i] * hc[i];
                    }
                }
                Activation::Relu => {
                    for i in 0..n {
                        dc[i] *= if uc[i] > 0.0 { 1.0 } else { 0.0 };
                    }
                }
                act => {
                    for i in 0..n {
                        dc[i] *= act.slope_at(f64::from(uc[i]), f64::from(hc[i])) as f32;
                    }
                }
            }
            for i in 0..n {
                sums[i] += dc[i];
            }
        }
    }
}

/// `v` rounded to `f32`.
pub fn narrow(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// `v` widened to `f64` into `out`.
pub fn widen(v: &[f32], out: &mut [f64]) {
    out.iter_mut().zip(v).for_each(|(o, &x)| *o = f64::from(x));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{Loss, Params, Workspace};
    use rand_distr::{Distribution, StandardNormal};

    fn gaussian(len: usize, scale: f64, stream: &str) -> Vec<f64> {
        let mut rng = crate::seed::stream(3, stream);
        (0..len)
            .map(|_| {
                let v: f64 = StandardNormal.sample(&mut rng);
                scale * v
            })
            .collect()
    }

    /// One `f32` step lands where the `f64` step does, to single
    /// precision, for smooth and kinked activations, both losses, frozen
    /// and trained readouts, two outputs.
    #[test]
    fn a_single_precision_step_follows_the_double_precision_step() {
        let dims = Dims {
            inputs: 12,
            hidden: 20,
            outputs: 2,
        };
        let m = 9;
        let init = Params {
            dims,
            w: gaussian(20 * 12, 0.4, "w"),
            b: gaussian(20, 0.2, "b"),
            j: gaussian(2 * 20, 0.5, "j"),
            b_out: gaussian(2, 0.1, "bo"),
        };
        let x = gaussian(12 * m, 1.0, "x");
        let y: Vec<f64> = (0..2 * m).map(|i| (i % 3 == 0) as u8 as f64).collect();
        let acts = [Activation::Tanh, Activation::Relu, Activation::Softplus];
        for act in acts {
            for loss in [Loss::Bce, Loss::Mse] {
                for train in [false, true] {
                    let model = Model::new(act, loss, &init, train);
                    let mut state = init.to_state(train);
                    let mut grad = vec![0.0; state.len()];
                    let mut ws = Workspace::new(dims, m);
                    let (xv, yv) = (
                        MatRef::from_column_major_slice(&x, 12, m),
                        MatRef::from_column_major_slice(&y, 2, m),
                    );
                    model.loss_grad(&state, xv, yv, &mut ws, Some(&mut grad));
                    let eta = 0.5;
                    let mut single = narrow(&state);
                    state.iter_mut().zip(&grad).for_each(|(s, g)| *s -= eta * g);

                    let mut net = SingleNet::new(&model, m);
                    let (x32, y32) = (narrow(&x), narrow(&y));
                    let (xv, yv) = (
                        MatRef::from_column_major_slice(&x32, 12, m),
                        MatRef::from_column_major_slice(&y32, 2, m),
                    );
                    net.step(&mut single, xv, yv, eta as f32);
                    let scale = grad.iter().fold(0.0f64, |a, g| a.max(g.abs()));
                    for (i, (&s, &d)) in single.iter().zip(&state).enumerate() {
                        let tol = 1e-6 * (1.0 + d.abs()) + 1e-5 * eta * scale;
                        assert!(
                            (f64::from(s) - d).abs() < tol,
                            "{act:?} {loss:?} trained {train}: [{i}] {s} against {d}"
                        );
                    }
                }
            }
        }
    }
}
