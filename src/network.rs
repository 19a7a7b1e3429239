//! The one-hidden-layer network: parameters, loss and gradient.
//!
//! `u = W x + b`, `h = f(u)`, `z = J h + b_out`, with the loss averaged
//! over the data points and summed over the outputs (see the crate docs
//! for the formulas). The parameters of one network live in one flat
//! vector, the *state*, laid out exactly as the HDF5 file stores them
//! (row-major):
//!
//! | slice | shape | element `[r, c]` at |
//! |---|---|---|
//! | `W` | `[N, D]` | `r * D + c` |
//! | `b` | `[N]` | |
//! | `J` | `[K, N]` (only when the readout is trained) | `r * N + c` |
//! | `b_out` | `[K]` (only when the readout is trained) | |
//!
//! Row-major `W` is column-major `W^T`, so the products below run on
//! zero-copy faer views of the state. Data are column-major `D x M`
//! (inputs) and `K x M` (targets): one column per condition or sample,
//! which is again the row-major `[M, D]` layout of the file.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use crate::activation::{Activation, sigmoid, softplus};
use crate::fastmath::dot;

/// The loss function and its output nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Binary cross-entropy on sigmoid outputs; targets in {0, 1}.
    Bce,
    /// Half squared error on linear outputs.
    Mse,
}

impl Loss {
    /// The name used in scenarios and files.
    pub fn name(&self) -> &'static str {
        match self {
            Loss::Bce => "bce",
            Loss::Mse => "mse",
        }
    }

    /// The loss of one output `z` against its target `y`.
    #[inline]
    pub fn value(&self, z: f64, y: f64) -> f64 {
        match self {
            Loss::Bce => softplus(z) - y * z,
            Loss::Mse => 0.5 * (z - y) * (z - y),
        }
    }

    /// `dl/dz`: the error signal `e`.
    #[inline]
    pub fn error(&self, z: f64, y: f64) -> f64 {
        match self {
            Loss::Bce => sigmoid(z) - y,
            Loss::Mse => z - y,
        }
    }

    /// The class an output predicts, for accuracy on binary targets:
    /// `z > 0` for BCE (probability above one half), `z > 1/2` for MSE.
    #[inline]
    pub fn predicts_one(&self, z: f64) -> bool {
        match self {
            Loss::Bce => z > 0.0,
            Loss::Mse => z > 0.5,
        }
    }
}

/// The sizes of a network: `D` inputs, `N` hidden units, `K` outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Input dimension `D`.
    pub inputs: usize,
    /// Hidden units `N`.
    pub hidden: usize,
    /// Outputs `K`.
    pub outputs: usize,
}

/// All parameters of one network, each row-major as in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// The sizes.
    pub dims: Dims,
    /// `W`, `[N, D]` row-major.
    pub w: Vec<f64>,
    /// `b`, `[N]`.
    pub b: Vec<f64>,
    /// `J`, `[K, N]` row-major.
    pub j: Vec<f64>,
    /// `b_out`, `[K]`.
    pub b_out: Vec<f64>,
}

impl Params {
    /// All-zero parameters of the given sizes.
    pub fn zeros(dims: Dims) -> Self {
        let Dims {
            inputs: d,
            hidden: n,
            outputs: k,
        } = dims;
        Params {
            dims,
            w: vec![0.0; n * d],
            b: vec![0.0; n],
            j: vec![0.0; k * n],
            b_out: vec![0.0; k],
        }
    }

    /// The flow state: `W` and `b`, then `J` and `b_out` when trained.
    pub fn to_state(&self, train_readout: bool) -> Vec<f64> {
        let mut s = Vec::with_capacity(state_len(self.dims, train_readout));
        s.extend_from_slice(&self.w);
        s.extend_from_slice(&self.b);
        if train_readout {
            s.extend_from_slice(&self.j);
            s.extend_from_slice(&self.b_out);
        }
        s
    }

    /// Overwrites the trained parameters from a flow state.
    pub fn set_state(&mut self, state: &[f64], train_readout: bool) {
        let Dims {
            inputs: d,
            hidden: n,
            outputs: k,
        } = self.dims;
        assert_eq!(state.len(), state_len(self.dims, train_readout));
        self.w.copy_from_slice(&state[..n * d]);
        self.b.copy_from_slice(&state[n * d..n * d + n]);
        if train_readout {
            let o = n * d + n;
            self.j.copy_from_slice(&state[o..o + k * n]);
            self.b_out.copy_from_slice(&state[o + k * n..]);
        }
    }
}

/// The length of the flow state for these sizes.
pub fn state_len(dims: Dims, train_readout: bool) -> usize {
    let Dims {
        inputs: d,
        hidden: n,
        outputs: k,
    } = dims;
    n * d + n + if train_readout { k * n + k } else { 0 }
}

/// Scratch space for [`Model::loss_grad`], sized for up to `capacity`
/// data points; reused across calls so that no call allocates.
#[derive(Clone, Debug)]
pub struct Workspace {
    capacity: usize,
    u: Vec<f64>,
    h: Vec<f64>,
    z: Vec<f64>,
    e: Vec<f64>,
    delta: Vec<f64>,
    /// The row sums of `delta` (the bias gradient before scaling).
    delta_sums: Vec<f64>,
}

impl Workspace {
    /// Scratch for at most `capacity` data points.
    pub fn new(dims: Dims, capacity: usize) -> Self {
        let (n, k) = (dims.hidden, dims.outputs);
        Workspace {
            capacity,
            u: vec![0.0; n * capacity],
            h: vec![0.0; n * capacity],
            z: vec![0.0; k * capacity],
            e: vec![0.0; k * capacity],
            delta: vec![0.0; n * capacity],
            delta_sums: vec![0.0; n],
        }
    }

    /// The pre-activations of the last call, column-major `N x M`
    /// (row-major `[M, N]`).
    pub fn pre_activations(&self, m: usize, n: usize) -> &[f64] {
        &self.u[..n * m]
    }

    /// The hidden responses of the last call, row-major `[M, N]`.
    pub fn hidden(&self, m: usize, n: usize) -> &[f64] {
        &self.h[..n * m]
    }

    /// The outputs of the last call, row-major `[M, K]`.
    pub fn outputs(&self, m: usize, k: usize) -> &[f64] {
        &self.z[..k * m]
    }

    /// The error signals `e = dl/dz` of the last call that computed a
    /// loss, row-major `[M, K]`.
    pub fn errors(&self, m: usize, k: usize) -> &[f64] {
        &self.e[..k * m]
    }
}

/// What the loss and gradient depend on besides the state.
#[derive(Clone, Debug)]
pub struct Model {
    /// The sizes.
    pub dims: Dims,
    /// The hidden nonlinearity.
    pub activation: Activation,
    /// The loss.
    pub loss: Loss,
    /// The readout used when it is frozen: `J` `[K, N]` row-major and
    /// `b_out`; `None` when the readout is part of the state.
    pub frozen_readout: Option<(Vec<f64>, Vec<f64>)>,
    /// Whether the hidden biases `b` learn; when not, their gradient is
    /// reported as zero and they keep their initial values.
    pub train_bias: bool,
}

impl Model {
    /// A model whose readout is trained when `train_readout`, and frozen
    /// at the values in `init` otherwise.
    pub fn new(activation: Activation, loss: Loss, init: &Params, train: bool) -> Self {
        Model {
            dims: init.dims,
            activation,
            loss,
            frozen_readout: (!train).then(|| (init.j.clone(), init.b_out.clone())),
            train_bias: true,
        }
    }

    /// Whether `J` and `b_out` are part of the state.
    pub fn trains_readout(&self) -> bool {
        self.frozen_readout.is_none()
    }

    /// The length of this model's state.
    pub fn state_len(&self) -> usize {
        state_len(self.dims, self.trains_readout())
    }

    /// The forward pass only: fills the workspace's `u`, `h` and `z` for
    /// the inputs `x` (`D x M`) and returns nothing else.
    pub fn forward(&self, state: &[f64], x: MatRef<'_, f64>, ws: &mut Workspace) {
        let Dims {
            inputs: d,
            hidden: n,
            outputs: k,
        } = self.dims;
        let m = x.ncols();
        assert!(
            m <= ws.capacity,
            "workspace holds {} points, not {m}",
            ws.capacity
        );
        assert_eq!(x.nrows(), d);

        let (w, b, j, b_out) = self.split(state);
        let u = MatMut::from_column_major_slice_mut(&mut ws.u[..n * m], n, m);
        matmul(u, Accum::Replace, w, x, 1.0, Par::Seq);
        clear_upper_vector_state();
        // One pass per point, on a column that stays in the first-level
        // cache: the bias, the activation, and z = J h + b_out as K dot
        // products of length N (too small for a blocked product to pay
        // for its packing).
        let (u, h, z) = (&mut ws.u[..n * m], &mut ws.h[..n * m], &mut ws.z[..k * m]);
        forward_columns(self.activation, b, j, b_out, u, h, z);
    }

    /// The mean loss over the `M` columns of `x` (`D x M`) and `y`
    /// (`K x M`); when `grad` is given, also `dL/dstate` into it.
    pub fn loss_grad(
        &self,
        state: &[f64],
        x: MatRef<'_, f64>,
        y: MatRef<'_, f64>,
        ws: &mut Workspace,
        grad: Option<&mut [f64]>,
    ) -> f64 {
        self.loss_grad_with(state, x, y, ws, grad, None)
    }

    /// As [`Model::loss_grad`], but with `f'(u)` of every (data point,
    /// unit) pair frozen at `slopes[c * N + i]` instead of read off the
    /// activation: the gradient of one derivative pattern of a
    /// piecewise-linear activation.
    pub fn loss_grad_frozen(
        &self,
        state: &[f64],
        x: MatRef<'_, f64>,
        y: MatRef<'_, f64>,
        ws: &mut Workspace,
        grad: &mut [f64],
        slopes: &[f64],
    ) -> f64 {
        assert_eq!(slopes.len(), self.dims.hidden * x.ncols(), "slope pattern");
        self.loss_grad_with(state, x, y, ws, Some(grad), Some(slopes))
    }

    /// One SGD step in place, `state -= eta * dL/dstate` on the batch
    /// `x` (`D x M`), `y` (`K x M`), returning the batch's mean loss
    /// before the step. The same arithmetic as [`Model::loss_grad`]
    /// followed by the update, but the gradient's products add straight
    /// into the state: no gradient buffer is written and read back.
    pub fn sgd_step(
        &self,
        state: &mut [f64],
        x: MatRef<'_, f64>,
        y: MatRef<'_, f64>,
        ws: &mut Workspace,
        eta: f64,
    ) -> f64 {
        let loss = self.loss_with_deltas(state, x, y, ws, None);
        self.write_gradient(state, x, ws, -eta / x.ncols() as f64, Accum::Add);
        loss
    }

    fn loss_grad_with(
        &self,
        state: &[f64],
        x: MatRef<'_, f64>,
        y: MatRef<'_, f64>,
        ws: &mut Workspace,
        grad: Option<&mut [f64]>,
        slopes: Option<&[f64]>,
    ) -> f64 {
        let Some(grad) = grad else {
            return self.mean_loss(state, x, y, ws);
        };
        assert_eq!(grad.len(), state.len());
        let loss = self.loss_with_deltas(state, x, y, ws, slopes);
        self.write_gradient(grad, x, ws, 1.0 / x.ncols() as f64, Accum::Replace);
        loss
    }

    /// The summed loss over the `M` columns of `x` (`D x M`) and `y`
    /// (`K x M`), added up column by column in order; the forward pass
    /// only (no error signals). Summed over consecutive blocks of columns
    /// in order, it is the sum over all of them, bit for bit, on a
    /// workspace of the block's size.
    pub fn loss_sum(
        &self,
        state: &[f64],
        x: MatRef<'_, f64>,
        y: MatRef<'_, f64>,
        ws: &mut Workspace,
        mut sum: f64,
    ) -> f64 {
        let k = self.dims.outputs;
        self.forward(state, x, ws);
        for col in 0..x.ncols() {
            for o in 0..k {
                sum += self.loss.value(ws.z[col * k + o], y[(o, col)]);
            }
        }
        sum
    }

    /// The forward pass and the mean loss, with the error signals
    /// `e = dl/dz` in the workspace.
    fn mean_loss(
        &self,
        state: &[f64],
        x: MatRef<'_, f64>,
        y: MatRef<'_, f64>,
        ws: &mut Workspace,
    ) -> f64 {
        let k = self.dims.outputs;
        let m = x.ncols();
        self.forward(state, x, ws);
        let mut loss = 0.0;
        for col in 0..m {
            for o in 0..k {
                let (z, t) = (ws.z[col * k + o], y[(o, col)]);
                loss += self.loss.value(z, t);
                ws.e[col * k + o] = self.loss.error(z, t);
            }
        }
        loss * (1.0 / m as f64)
    }

    /// [`Model::mean_loss`], then `delta = (J^T e) * f'(u)` (`N x M`, one
    /// column per point) and its row sums in the same pass.
    fn loss_with_deltas(
        &self,
        state: &[f64],
        x: MatRef<'_, f64>,
        y: MatRef<'_, f64>,
        ws: &mut Workspace,
        slopes: Option<&[f64]>,
    ) -> f64 {
        let (n, k) = (self.dims.hidden, self.dims.outputs);
        let m = x.ncols();
        let loss = self.mean_loss(state, x, y, ws);
        let (_, _, j, _) = self.split(state);
        let (u, h, e) = (&ws.u[..n * m], &ws.h[..n * m], &ws.e[..k * m]);
        let (delta, sums) = (&mut ws.delta[..n * m], &mut ws.delta_sums);
        backward_columns(self.activation, j, u, h, e, slopes, delta, sums);
        loss
    }

    /// `out = alpha * dL/dstate * M` (`Accum::Replace`) or `out += ...`
    /// (`Accum::Add`) from the deltas and errors in the workspace: the
    /// gradient when `out` is a buffer and `alpha = 1 / M`, an SGD step
    /// when `out` is the state and `alpha = -eta / M`. Parameters that do
    /// not learn get zero in a gradient and are left alone by a step.
    fn write_gradient(
        &self,
        out: &mut [f64],
        x: MatRef<'_, f64>,
        ws: &Workspace,
        alpha: f64,
        accum: Accum,
    ) {
        let Dims {
            inputs: d,
            hidden: n,
            outputs: k,
        } = self.dims;
        let m = x.ncols();
        let replace = accum == Accum::Replace;
        let (gw, rest) = out.split_at_mut(n * d);
        let (gb, gread) = rest.split_at_mut(n);

        // dW^T (D x N) = x delta^T / M
        let delta = MatRef::from_column_major_slice(&ws.delta[..n * m], n, m);
        let gwt = MatMut::from_column_major_slice_mut(gw, d, n);
        matmul(gwt, accum, x, delta.transpose(), alpha, Par::Seq);
        clear_upper_vector_state();

        let sums = ws.delta_sums.iter();
        match (self.train_bias, replace) {
            (true, true) => gb.iter_mut().zip(sums).for_each(|(g, &s)| *g = alpha * s),
            (true, false) => gb.iter_mut().zip(sums).for_each(|(g, &s)| *g += alpha * s),
            (false, true) => gb.fill(0.0),
            (false, false) => {}
        }

        if self.trains_readout() {
            // dJ^T (N x K) = h e^T / M; db_out = rowsum(e) / M
            let (gj, gbo) = gread.split_at_mut(k * n);
            let h = MatRef::from_column_major_slice(&ws.h[..n * m], n, m);
            let e = MatRef::from_column_major_slice(&ws.e[..k * m], k, m);
            let gjt = MatMut::from_column_major_slice_mut(gj, n, k);
            matmul(gjt, accum, h, e.transpose(), alpha, Par::Seq);
            for (o, g) in gbo.iter_mut().enumerate() {
                let sum: f64 = ws.e[..k * m].iter().skip(o).step_by(k).sum();
                *g = if replace {
                    alpha * sum
                } else {
                    *g + alpha * sum
                };
            }
        }
    }

    /// Views of `W` (`N x D`), `b`, `J` (row-major `[K, N]`) and `b_out`.
    fn split<'a>(
        &'a self,
        state: &'a [f64],
    ) -> (MatRef<'a, f64>, &'a [f64], &'a [f64], &'a [f64]) {
        let Dims {
            inputs: d,
            hidden: n,
            outputs: k,
        } = self.dims;
        assert_eq!(state.len(), self.state_len(), "state length");
        let w = MatRef::from_column_major_slice(&state[..n * d], d, n).transpose();
        let b = &state[n * d..n * d + n];
        let (jflat, b_out) = match &self.frozen_readout {
            Some((j, b_out)) => (&j[..], &b_out[..]),
            None => {
                let o = n * d + n;
                (&state[o..o + k * n], &state[o + k * n..])
            }
        };
        (w, b, jflat, b_out)
    }
}

crate::simd_fn! {
    /// Per point `c` (the columns of `u`, `h`: `N` each; of `z`: `K`):
    /// `u_c += b`, `h_c = f(u_c)`, `z_c = J h_c + b_out`, as `K` dot
    /// products of length `N` (too small for a blocked product to pay for
    /// its packing), on a column that stays in the first-level cache.
    fn forward_columns(
        act: Activation,
        b: &[f64],
        j: &[f64],
        b_out: &[f64],
        u: &mut [f64],
        h: &mut [f64],
        z: &mut [f64],
    ) {
        let (n, k) = (b.len(), b_out.len());
        for c in 0..u.len() / n {
            let uc = &mut u[c * n..(c + 1) * n];
            for i in 0..n {
                uc[i] += b[i];
            }
            let hc = &mut h[c * n..(c + 1) * n];
            act.apply(uc, hc);
            for o in 0..k {
                z[c * k + o] = dot(&j[o * n..(o + 1) * n], hc) + b_out[o];
            }
        }
    }
}

crate::simd_fn! {
    /// Per point `c`: `delta_c = (J^T e_c) f'(u_c)` (or the frozen
    /// `slopes_c` in place of `f'`), and `sums` the sum of the `delta_c`.
    #[allow(clippy::too_many_arguments)]
    fn backward_columns(
        act: Activation,
        j: &[f64],
        u: &[f64],
        h: &[f64],
        e: &[f64],
        slopes: Option<&[f64]>,
        delta: &mut [f64],
        sums: &mut [f64],
    ) {
        let n = sums.len();
        let k = j.len() / n;
        sums.fill(0.0);
        for c in 0..u.len() / n {
            let dc = &mut delta[c * n..(c + 1) * n];
            readout_back(j, &e[c * k..(c + 1) * k], dc);
            match slopes {
                Some(s) => {
                    let sc = &s[c * n..(c + 1) * n];
                    for i in 0..n {
                        dc[i] *= sc[i];
                    }
                }
                None => act.scale_by_slope(&u[c * n..(c + 1) * n], &h[c * n..(c + 1) * n], dc),
            }
            for i in 0..n {
                sums[i] += dc[i];
            }
        }
    }
}

/// `dc = J^T e_c` for one point: the error signals `e_c` (`K`) of its
/// outputs sent back through the readout `J` (`[K, N]` row-major) to its
/// `N` hidden units. Shared by the `f64` and `f32` steps.
#[inline(always)]
pub(crate) fn readout_back<T>(j: &[T], ec: &[T], dc: &mut [T])
where
    T: Copy + std::ops::Mul<Output = T> + std::ops::AddAssign,
{
    let n = dc.len();
    dc.iter_mut().zip(j).for_each(|(dl, &jv)| *dl = jv * ec[0]);
    for (jo, &eo) in j.chunks_exact(n).zip(ec).skip(1) {
        dc.iter_mut().zip(jo).for_each(|(dl, &jv)| *dl += jv * eo);
    }
}

/// Clears the upper halves of the vector registers after faer's wide
/// (AVX-512) kernels. Without it, the scalar libm calls that follow
/// (`tanh`, `exp`) pay for the dirty upper state on some processors: on
/// the development machine a Tanh SGD run took ten times as long.
#[inline]
pub(crate) fn clear_upper_vector_state() {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the instruction exists when AVX is available, which
            // was just checked; it only zeroes upper register halves,
            // which no live Rust value occupies between calls.
            unsafe { zero_upper() }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn zero_upper() {
    std::arch::x86_64::_mm256_zeroupper();
}

/// The fraction of (data point, output) pairs whose predicted class
/// matches a binary target, from outputs `z` laid out as `K x M`.
pub fn accuracy(loss: Loss, z: &[f64], y: MatRef<'_, f64>) -> f64 {
    let (k, m) = (y.nrows(), y.ncols());
    let mut hits = 0usize;
    for col in 0..m {
        for o in 0..k {
            hits += usize::from(loss.predicts_one(z[col * k + o]) == (y[(o, col)] > 0.5));
        }
    }
    hits as f64 / (k * m) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn activations() -> impl Strategy<Value = Activation> {
        prop_oneof![
            Just(Activation::Tanh),
            Just(Activation::Relu),
            Just(Activation::BoundedRelu { ub: 0.7 }),
            Just(Activation::ShiftedRelu { shift: 0.3 }),
            Just(Activation::LeakyRelu { leak: 0.2 }),
            Just(Activation::Softplus),
            Just(Activation::HardTanh),
            Just(Activation::Linear),
        ]
    }

    /// A random small network and data set from a flat list of numbers.
    fn case(dims: Dims, m: usize, numbers: &[f64]) -> (Params, Vec<f64>, Vec<f64>) {
        let mut it = numbers.iter().copied().cycle();
        let mut next = |n: usize| (0..n).map(|_| it.next().unwrap()).collect::<Vec<_>>();
        let p = Params {
            dims,
            w: next(dims.hidden * dims.inputs),
            b: next(dims.hidden),
            j: next(dims.outputs * dims.hidden),
            b_out: next(dims.outputs),
        };
        let x = next(dims.inputs * m);
        let y = next(dims.outputs * m)
            .iter()
            .map(|v| f64::from(*v > 0.0))
            .collect();
        (p, x, y)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn gradient_matches_central_differences(
            act in activations(),
            mse in any::<bool>(),
            train in any::<bool>(),
            d in 1usize..4, n in 1usize..5, k in 1usize..3, m in 1usize..5,
            numbers in prop::collection::vec(-1.5f64..1.5, 64),
        ) {
            let dims = Dims { inputs: d, hidden: n, outputs: k };
            let loss = if mse { Loss::Mse } else { Loss::Bce };
            let (p, x, y) = case(dims, m, &numbers);
            let model = Model::new(act, loss, &p, train);
            let xv = MatRef::from_column_major_slice(&x, d, m);
            let yv = MatRef::from_column_major_slice(&y, k, m);
            let mut ws = Workspace::new(dims, m);
            let state = p.to_state(train);
            let mut grad = vec![0.0; state.len()];
            model.loss_grad(&state, xv, yv, &mut ws, Some(&mut grad));

            let h = 1e-6;
            for i in 0..state.len() {
                let mut sp = state.clone();
                let mut sm = state.clone();
                sp[i] += h;
                sm[i] -= h;
                // A kink inside the difference stencil makes the
                // difference quotient meaningless there: skip it.
                let crosses = |s: &[f64], t: &[f64]| {
                    let mut wa = Workspace::new(dims, m);
                    let mut wb = Workspace::new(dims, m);
                    model.forward(s, xv, &mut wa);
                    model.forward(t, xv, &mut wb);
                    let (ua, ub) = (wa.pre_activations(m, n), wb.pre_activations(m, n));
                    act.kinks().iter().any(|kink| ua.iter().zip(ub).any(|(a, b)| {
                        (a - kink.at) * (b - kink.at) <= 0.0
                    }))
                };
                if crosses(&sp, &sm) {
                    continue;
                }
                let fp = model.loss_grad(&sp, xv, yv, &mut ws, None);
                let fm = model.loss_grad(&sm, xv, yv, &mut ws, None);
                let fd = (fp - fm) / (2.0 * h);
                prop_assert!((fd - grad[i]).abs() < 1e-6 * (1.0 + fd.abs()),
                    "{act} {loss:?} train={train} i={i}: fd {fd} vs {}", grad[i]);
            }
        }

        #[test]
        fn sgd_step_is_the_gradient_step(
            act in activations(),
            mse in any::<bool>(),
            train in any::<bool>(),
            train_bias in any::<bool>(),
            d in 1usize..6, n in 1usize..9, k in 1usize..3, m in 1usize..7,
            numbers in prop::collection::vec(-1.5f64..1.5, 96),
        ) {
            let dims = Dims { inputs: d, hidden: n, outputs: k };
            let loss = if mse { Loss::Mse } else { Loss::Bce };
            let (p, x, y) = case(dims, m, &numbers);
            let mut model = Model::new(act, loss, &p, train);
            model.train_bias = train_bias;
            let xv = MatRef::from_column_major_slice(&x, d, m);
            let yv = MatRef::from_column_major_slice(&y, k, m);
            let mut ws = Workspace::new(dims, m);
            let mut state = p.to_state(train);
            let mut grad = vec![0.0; state.len()];
            let before = model.loss_grad(&state, xv, yv, &mut ws, Some(&mut grad));
            let eta = 0.3;
            let want: Vec<f64> = state.iter().zip(&grad).map(|(s, g)| s - eta * g).collect();
            let loss = model.sgd_step(&mut state, xv, yv, &mut ws, eta);
            prop_assert_eq!(loss, before);
            for (i, (a, b)) in state.iter().zip(&want).enumerate() {
                prop_assert!((a - b).abs() <= 1e-14 * (1.0 + b.abs()),
                    "{} {:?} i={}: stepped {} vs {}", act, loss, i, a, b);
            }
            if !train_bias {
                prop_assert_eq!(&state[n * d..n * d + n], &p.b[..]);
            }
        }
    }

    #[test]
    fn state_round_trips_through_params() {
        let dims = Dims {
            inputs: 3,
            hidden: 2,
            outputs: 2,
        };
        let (p, _, _) = case(dims, 1, &[0.1, -0.4, 0.9, 0.3, -0.7]);
        for train in [false, true] {
            let mut q = Params::zeros(dims);
            q.j.clone_from(&p.j);
            q.b_out.clone_from(&p.b_out);
            q.set_state(&p.to_state(train), train);
            assert_eq!(p, q);
        }
    }

    #[test]
    fn accuracy_counts_matching_signs() {
        let y = [1.0, 0.0, 1.0, 0.0];
        let yv = MatRef::from_column_major_slice(&y, 1, 4);
        assert_eq!(accuracy(Loss::Bce, &[2.0, -1.0, -0.5, -3.0], yv), 0.75);
        assert_eq!(accuracy(Loss::Mse, &[0.9, 0.1, 0.6, 0.7], yv), 0.75);
    }
}
