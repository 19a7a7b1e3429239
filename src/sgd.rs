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

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use faer::MatRef;
use rand::seq::SliceRandom;

use crate::network::{Model, Params, Workspace};
use crate::task::Samples;
use crate::trajectory::{Outcome, Recorder, StopReason, Trajectory};

/// The SGD protocol.
#[derive(Clone, Debug, PartialEq)]
pub struct SgdSettings {
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
    let (d, k) = (samples.dim, samples.outputs);
    let batch = settings.batch.min(n);
    let eta = settings.eta;
    let per_epoch = settings.steps_per_epoch(n);
    let save_steps = settings.save_steps(n);

    let training = (samples.inputs_view(), samples.targets_view());
    let mut recorder = Recorder::new(model, init, conditions, training);
    let mut ws = Workspace::new(model.dims, batch);
    let mut state = init.to_state(model.trains_readout());
    let mut grad = vec![0.0; state.len()];
    let mut order: Vec<usize> = (0..n).collect();
    let (mut xs, mut ys) = (vec![0.0; n * d], vec![0.0; n * k]);

    let mut next_save = save_steps.iter().peekable();
    let mut step = 0u64;
    let mut reason = StopReason::Completed;
    'epochs: for epoch in 0..=settings.epochs {
        if epoch < settings.epochs {
            order.shuffle(rng);
            for (slot, &i) in order.iter().enumerate() {
                xs[slot * d..(slot + 1) * d]
                    .copy_from_slice(&samples.inputs[i * d..(i + 1) * d]);
                ys[slot * k..(slot + 1) * k]
                    .copy_from_slice(&samples.targets[i * k..(i + 1) * k]);
            }
        }
        for b in 0..per_epoch {
            if next_save.peek() == Some(&&step) {
                next_save.next();
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
                        recorder.record(eta * step as f64, Some(step), &state);
                    }
                }
                break 'epochs;
            }

            let lo = b as usize * batch;
            let m = batch.min(n - lo);
            let x = MatRef::from_column_major_slice(&xs[lo * d..(lo + m) * d], d, m);
            let y = MatRef::from_column_major_slice(&ys[lo * k..(lo + m) * k], k, m);
            model.loss_grad(&state, x, y, &mut ws, Some(&mut grad));
            state.iter_mut().zip(&grad).for_each(|(s, g)| *s -= eta * g);
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
