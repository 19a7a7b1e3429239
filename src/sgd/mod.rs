//! The SGD baseline, on the flow's time axis.
//!
//! Mini-batch SGD with learning rate `eta` on a fixed set of noisy
//! samples, reshuffled every epoch by a seeded generator; a batch as large
//! as the training set is full-batch gradient descent. Step `s` sits at
//! flow time `t = eta * s`, so that its snapshots overlay the flow's.
//!
//! Each step gathers its batch's samples, in the epoch's shuffled order,
//! into one small buffer that stays in cache for the step's two products
//! (and converts them, for an `f32` run): the shuffled samples are no
//! evenly strided view of the training set, which the products need. The
//! last batch of an epoch holds the remainder when the batch size does not
//! divide the training set.

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
    let mut stepper = Stepper::new(model, samples, batch, settings.precision);
    let mut state = init.to_state(model.trains_readout());
    stepper.load(&state);
    let mut order: Vec<usize> = (0..n).collect();

    let mut next_save = save_steps.iter().peekable();
    let mut step = 0u64;
    let mut reason = StopReason::Completed;
    'epochs: for epoch in 0..=settings.epochs {
        if epoch < settings.epochs {
            order.shuffle(rng);
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
            let cols = &order[lo..lo + batch.min(n - lo)];
            // The next batch of this epoch starts loading from memory
            // while this step computes.
            let next = &order[(lo + batch).min(n)..(lo + 2 * batch).min(n)];
            stepper.prefetch(samples, next);
            stepper.step(model, &mut state, samples, cols, eta);
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

/// The state and one batch of samples in the run's precision, and the
/// step on them.
enum Stepper {
    Double {
        ws: Workspace,
        xs: Vec<f64>,
        ys: Vec<f64>,
    },
    Single {
        net: single::SingleNet,
        state: Vec<f32>,
        /// The training samples in `f32`, converted once: a batch is
        /// gathered from half the bytes, without converting.
        inputs: Vec<f32>,
        targets: Vec<f32>,
        xs: Vec<f32>,
        ys: Vec<f32>,
    },
}

impl Stepper {
    fn new(model: &Model, samples: &Samples, batch: usize, precision: Precision) -> Self {
        let Dims {
            inputs: d,
            outputs: k,
            ..
        } = model.dims;
        match precision {
            Precision::Double => Stepper::Double {
                ws: Workspace::new(model.dims, batch),
                xs: vec![0.0; batch * d],
                ys: vec![0.0; batch * k],
            },
            Precision::Single => Stepper::Single {
                net: single::SingleNet::new(model, batch),
                state: vec![0.0; model.state_len()],
                inputs: single::narrow(&samples.inputs),
                targets: single::narrow(&samples.targets),
                xs: vec![0.0; batch * d],
                ys: vec![0.0; batch * k],
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

    /// One step on the samples `cols` (indices into `samples`, in the
    /// order of the batch); the `f64` `state` is the one stepped in double
    /// precision, and untouched in single.
    fn step(
        &mut self,
        model: &Model,
        state: &mut [f64],
        samples: &Samples,
        cols: &[usize],
        eta: f64,
    ) {
        let (d, k) = (samples.dim, samples.outputs);
        let m = cols.len();
        match self {
            Stepper::Double { ws, xs, ys } => {
                gather((&samples.inputs, &samples.targets), (d, k), cols, xs, ys);
                let x = MatRef::from_column_major_slice(&xs[..m * d], d, m);
                let y = MatRef::from_column_major_slice(&ys[..m * k], k, m);
                model.sgd_step(state, x, y, ws, eta);
            }
            Stepper::Single {
                net,
                state,
                inputs,
                targets,
                xs,
                ys,
            } => {
                gather((inputs, targets), (d, k), cols, xs, ys);
                let x = MatRef::from_column_major_slice(&xs[..m * d], d, m);
                let y = MatRef::from_column_major_slice(&ys[..m * k], k, m);
                net.step(state, x, y, eta as f32);
            }
        }
    }

    /// Asks the processor to start loading the inputs of the samples
    /// `cols`, in the precision this stepper gathers them from, into its
    /// second-level cache. The batch's gather reads its rows from all over
    /// a training set of megabytes, one memory latency per row when
    /// nothing is cached: about 11 us of a 90 us step at the study's size.
    fn prefetch(&self, samples: &Samples, cols: &[usize]) {
        match self {
            Stepper::Double { .. } => prefetch_rows(&samples.inputs, samples.dim, cols),
            Stepper::Single { inputs, .. } => prefetch_rows(inputs, samples.dim, cols),
        }
    }
}

/// Prefetches the rows `cols` of the row-major `inputs` of `d` columns
/// into the second-level cache, one hint per cache line.
fn prefetch_rows<T>(inputs: &[T], d: usize, cols: &[usize]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
        let per_line = (64 / std::mem::size_of::<T>().max(1)).max(1);
        for &i in cols {
            for line in inputs[i * d..(i + 1) * d].chunks(per_line) {
                // SAFETY: SSE is part of the x86-64 baseline, and a
                // prefetch only hints at an address inside a live slice;
                // it never faults or changes memory.
                unsafe { _mm_prefetch::<_MM_HINT_T1>(line.as_ptr().cast()) };
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (inputs, d, cols);
}

/// Copies the samples `cols` of the row-major `inputs` and `targets`
/// (`d` and `k` columns) one after another into `xs` and `ys`.
fn gather<T: Copy>(
    (inputs, targets): (&[T], &[T]),
    (d, k): (usize, usize),
    cols: &[usize],
    xs: &mut [T],
    ys: &mut [T],
) {
    let slots = xs.chunks_exact_mut(d).zip(ys.chunks_exact_mut(k));
    for ((xd, yd), &i) in slots.zip(cols) {
        xd.copy_from_slice(&inputs[i * d..(i + 1) * d]);
        yd.copy_from_slice(&targets[i * k..(i + 1) * k]);
    }
}
