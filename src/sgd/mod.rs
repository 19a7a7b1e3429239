//! The SGD baseline, on the flow's time axis.
//!
//! Mini-batch SGD with learning rate `eta` on a fixed set of noisy
//! samples, reshuffled every epoch by a seeded generator; a batch as large
//! as the training set is full-batch gradient descent. Step `s` sits at
//! flow time `t = eta * s`, so that its snapshots overlay the flow's.
//!
//! Each epoch the samples are copied once into shuffled order, so every
//! batch is a contiguous block of columns and is passed to the gradient
//! as a view, without gathering. The last batch of an epoch holds the
//! remainder when the batch size does not divide the training set.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use faer::MatRef;
use rand::seq::SliceRandom;

use crate::network::{Dims, Model, Params, Workspace};
use crate::task::Samples;
use crate::trajectory::{Outcome, Recorder, StopReason, Trajectory};

pub mod single;

/// The floating-point precision of the SGD steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// Every step in `f64`.
    #[default]
    Double,
    /// Every step in `f32` ([`single`]); snapshots widened to `f64`.
    Single,
}

/// The SGD protocol.
#[derive(Clone, Debug, PartialEq)]
pub struct SgdSettings {
    /// The precision of the steps.
    pub precision: Precision,
    /// Learning rate `eta`.
    pub eta: f64,
    /// Batch size; the training-set size gives full-batch GD.
    pub batch: usize,
    /// Number of passes over the training set.
    pub epochs: u64,
    /// Flow times at which to save; each maps to the nearest step.
    pub save_times: Vec<f64>,
}

impl SgdSettings {
    /// Steps in one epoch over `n` samples.
    pub fn steps_per_epoch(&self, n: usize) -> u64 {
        n.div_ceil(self.batch) as u64
    }

    /// The steps at which snapshots are taken: the nearest step to each
    /// saved time, within the run, and the last step.
    pub fn save_steps(&self, n: usize) -> Vec<u64> {
        let total = self.epochs * self.steps_per_epoch(n);
        let mut steps: Vec<u64> = self
            .save_times
            .iter()
            .map(|t| ((t / self.eta).round() as u64).min(total))
            .collect();
        steps.push(total);
        steps.sort_unstable();
        steps.dedup();
        steps
    }
}

/// Trains `model` from `init` on `samples` and saves snapshots; `rng`
/// orders the batches.
pub fn train(
    model: &Model,
    init: &Params,
    samples: &Samples,
    conditions: (MatRef<'_, f64>, MatRef<'_, f64>),
    settings: &SgdSettings,
    rng: &mut impl rand::Rng,
    interrupt: &AtomicBool,
) -> Trajectory {
    let clock = Instant::now();
    let n = samples.len();
    let batch = settings.batch.min(n);
    let eta = settings.eta;
    let per_epoch = settings.steps_per_epoch(n);
    let save_steps = settings.save_steps(n);

    let training = (samples.inputs_view(), samples.targets_view());
    let mut recorder = Recorder::new(model, init, conditions, training);
    let mut stepper = Stepper::new(model, batch, settings.precision, n);
    let mut state = init.to_state(model.trains_readout());
    stepper.load(&state);
    let mut order: Vec<usize> = (0..n).collect();

    let mut next_save = save_steps.iter().peekable();
    let mut step = 0u64;
    let mut reason = StopReason::Completed;
    'epochs: for epoch in 0..=settings.epochs {
        if epoch < settings.epochs {
            order.shuffle(rng);
            stepper.shuffle(samples, &order);
        }
        for b in 0..per_epoch {
            if next_save.peek() == Some(&&step) {
                next_save.next();
                stepper.store(&mut state);
                let loss = recorder.record(eta * step as f64, Some(step), &state);
                if !loss.is_finite() {
                    reason = StopReason::Diverged;
                    break 'epochs;
                }
            }
            if epoch == settings.epochs || interrupt.load(Ordering::Relaxed) {
                if epoch < settings.epochs {
                    reason = StopReason::Interrupted;
                    if recorder.trajectory.step.last() != Some(&step) {
                        stepper.store(&mut state);
                        recorder.record(eta * step as f64, Some(step), &state);
                    }
                }
                break 'epochs;
            }

            let lo = b as usize * batch;
            stepper.step(model, &mut state, lo..lo + batch.min(n - lo), eta);
            step += 1;
        }
    }

    recorder.finish(Outcome {
        reason,
        t_reached: eta * step as f64,
        counts: vec![
            ("steps", step),
            ("epochs", step / per_epoch.max(1)),
            ("samples", n as u64),
            ("batch", batch as u64),
        ],
        seconds: clock.elapsed().as_secs_f64(),
    })
}

/// The state and the shuffled training set in the run's precision, and
/// the step on them.
enum Stepper {
    Double {
        ws: Workspace,
        grad: Vec<f64>,
        xs: Vec<f64>,
        ys: Vec<f64>,
    },
    Single {
        net: single::SingleNet,
        state: Vec<f32>,
        xs: Vec<f32>,
        ys: Vec<f32>,
    },
}

impl Stepper {
    fn new(model: &Model, batch: usize, precision: Precision, n: usize) -> Self {
        let Dims {
            inputs: d,
            outputs: k,
            ..
        } = model.dims;
        match precision {
            Precision::Double => Stepper::Double {
                ws: Workspace::new(model.dims, batch),
                grad: vec![0.0; model.state_len()],
                xs: vec![0.0; n * d],
                ys: vec![0.0; n * k],
            },
            Precision::Single => Stepper::Single {
                net: single::SingleNet::new(model, batch),
                state: vec![0.0; model.state_len()],
                xs: vec![0.0; n * d],
                ys: vec![0.0; n * k],
            },
        }
    }

    /// Starts from `state`.
    fn load(&mut self, state: &[f64]) {
        if let Stepper::Single { state: s, .. } = self {
            *s = single::narrow(state);
        }
    }

    /// Writes the current state into `state` (`f64`).
    fn store(&self, state: &mut [f64]) {
        if let Stepper::Single { state: s, .. } = self {
            single::widen(s, state);
        }
    }

    /// Copies the samples into the epoch's shuffled order, so that every
    /// batch is a contiguous block of columns.
    fn shuffle(&mut self, samples: &Samples, order: &[usize]) {
        let (d, k) = (samples.dim, samples.outputs);
        let gather = |slot: usize, i: usize| {
            (
                &samples.inputs[i * d..(i + 1) * d],
                &samples.targets[i * k..(i + 1) * k],
                slot,
            )
        };
        for (slot, &i) in order.iter().enumerate() {
            let (x, y, s) = gather(slot, i);
            match self {
                Stepper::Double { xs, ys, .. } => {
                    xs[s * d..(s + 1) * d].copy_from_slice(x);
                    ys[s * k..(s + 1) * k].copy_from_slice(y);
                }
                Stepper::Single { xs, ys, .. } => {
                    let to = xs[s * d..(s + 1) * d].iter_mut().zip(x);
                    to.for_each(|(a, &b)| *a = b as f32);
                    let to = ys[s * k..(s + 1) * k].iter_mut().zip(y);
                    to.for_each(|(a, &b)| *a = b as f32);
                }
            }
        }
    }

    /// One step on the shuffled samples `cols`; the `f64` `state` is the
    /// one stepped in double precision, and untouched in single.
    fn step(&mut self, model: &Model, state: &mut [f64], cols: Range<usize>, eta: f64) {
        let Dims {
            inputs: d,
            outputs: k,
            ..
        } = model.dims;
        let m = cols.len();
        let (xr, yr) = (cols.start * d..cols.end * d, cols.start * k..cols.end * k);
        match self {
            Stepper::Double { ws, grad, xs, ys } => {
                let x = MatRef::from_column_major_slice(&xs[xr], d, m);
                let y = MatRef::from_column_major_slice(&ys[yr], k, m);
                model.loss_grad(state, x, y, ws, Some(grad));
                state
                    .iter_mut()
                    .zip(grad.iter())
                    .for_each(|(s, g)| *s -= eta * g);
            }
            Stepper::Single { net, state, xs, ys } => {
                let x = MatRef::from_column_major_slice(&xs[xr], d, m);
                let y = MatRef::from_column_major_slice(&ys[yr], k, m);
                net.step(state, x, y, eta as f32);
            }
        }
    }
}
