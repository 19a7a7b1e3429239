//! Saved trajectories and how a run ended.
//!
//! Both the gradient flow and the SGD baseline record the same thing at
//! each saved time: the parameters, the loss and accuracy on the
//! noise-free conditions, the loss on the data the run trains on, and the
//! hidden responses to the condition inputs. How the run ended is a value,
//! [`Outcome`], stored with its counts.

use std::fmt;

use faer::MatRef;

use crate::network::{Model, Params, Workspace, accuracy};

/// Why a flow or an SGD run stopped.
#[derive(Clone, Debug, PartialEq)]
pub enum StopReason {
    /// It reached its end time (flow) or its last step (SGD).
    Completed,
    /// The step budget (`flow.max_steps`) ran out first.
    StepBudget,
    /// The adaptive step size fell below what the time can resolve.
    StepSizeUnderflow,
    /// The loss or the weights stopped being finite.
    Diverged,
    /// The user interrupted the run (Ctrl-C).
    Interrupted,
    /// Something else went wrong; the message says what.
    Failed(String),
}

impl StopReason {
    /// The short name stored in the file's `stop_reason` attribute.
    pub fn name(&self) -> &'static str {
        match self {
            StopReason::Completed => "completed",
            StopReason::StepBudget => "step_budget",
            StopReason::StepSizeUnderflow => "step_size_underflow",
            StopReason::Diverged => "diverged",
            StopReason::Interrupted => "interrupted",
            StopReason::Failed(_) => "failed",
        }
    }

    /// Parses a name written by [`StopReason::name`].
    pub fn from_name(name: &str, message: &str) -> Option<Self> {
        Some(match name {
            "completed" => StopReason::Completed,
            "step_budget" => StopReason::StepBudget,
            "step_size_underflow" => StopReason::StepSizeUnderflow,
            "diverged" => StopReason::Diverged,
            "interrupted" => StopReason::Interrupted,
            "failed" => StopReason::Failed(message.to_string()),
            _ => return None,
        })
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Failed(msg) => write!(f, "failed: {msg}"),
            other => f.write_str(other.name()),
        }
    }
}

/// What happened at a kink event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The pre-activation crossed the kink upward.
    CrossUp,
    /// The pre-activation crossed the kink downward.
    CrossDown,
    /// The pre-activation arrived on the kink and stays there (sliding).
    StartSliding,
    /// The pre-activation left the kink it slid on.
    LeaveSliding,
}

impl EventKind {
    /// The code stored in `flow/events/kind`: 0 cross up, 1 cross down,
    /// 2 start sliding, 3 leave sliding.
    pub fn code(&self) -> i64 {
        match self {
            EventKind::CrossUp => 0,
            EventKind::CrossDown => 1,
            EventKind::StartSliding => 2,
            EventKind::LeaveSliding => 3,
        }
    }
}

/// One kink event of a piecewise-smooth flow.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KinkEvent {
    /// Flow time of the event.
    pub t: f64,
    /// Hidden unit `i`.
    pub unit: usize,
    /// Data point `c` (condition or sample).
    pub point: usize,
    /// Which kink of the activation (index into its kink list).
    pub kink: usize,
    /// What happened.
    pub kind: EventKind,
}

/// How a run ended: the reason, the time reached and the work done.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Why it stopped.
    pub reason: StopReason,
    /// The last time it reached (flow time; `eta * step` for SGD).
    pub t_reached: f64,
    /// Named counters (right-hand-side evaluations, steps, ...), in the
    /// order they are stored.
    pub counts: Vec<(&'static str, u64)>,
    /// Wall-clock seconds spent.
    pub seconds: f64,
}

/// The trajectory of one flow or SGD run at its saved times.
#[derive(Clone, Debug, Default)]
pub struct Trajectory {
    /// Saved times.
    pub t: Vec<f64>,
    /// SGD step of each saved time (empty for a flow).
    pub step: Vec<u64>,
    /// `[T, N, D]` input weights.
    pub w: Vec<f64>,
    /// `[T, N]` hidden biases.
    pub b: Vec<f64>,
    /// `[T, K, N]` readout weights, when trained.
    pub j: Vec<f64>,
    /// `[T, K]` readout biases, when trained.
    pub b_out: Vec<f64>,
    /// `[T]` mean loss on the noise-free conditions.
    pub loss: Vec<f64>,
    /// `[T]` mean loss on the data the run trains on.
    pub train_loss: Vec<f64>,
    /// `[T]` accuracy on the noise-free conditions.
    pub accuracy: Vec<f64>,
    /// `[T, P, N]` hidden responses to the noise-free inputs.
    pub hidden: Vec<f64>,
    /// `[T, N]` number of data points each unit slides on at each saved
    /// time (piecewise-smooth flows only; empty otherwise).
    pub sliding: Vec<u32>,
    /// The kink events of a piecewise-smooth flow, in time order.
    pub events: Vec<KinkEvent>,
    /// How it ended; `None` while it runs.
    pub outcome: Option<Outcome>,
    /// The rank of the reduced coordinates the flow ran in; 0 when it
    /// ran in the full weight space.
    pub reduced_rank: usize,
    /// Whether the flow ran in pre-activation coordinates (see
    /// [`crate::flow::piecewise`]).
    pub preactivations: bool,
    /// The saved times, as rows of `t`, that `w`, `b`, `j` and `b_out`
    /// hold, in order, once [`Trajectory::keep_weights_at`] has thinned
    /// them; empty while they hold every saved time.
    pub weight_rows: Vec<usize>,
}

impl Trajectory {
    /// The number of saved times.
    pub fn len(&self) -> usize {
        self.t.len()
    }

    /// The rows of `t` that the weights hold: every saved time, or those
    /// they were thinned to.
    pub fn weight_rows(&self) -> Vec<usize> {
        if self.weight_rows.is_empty() {
            (0..self.len()).collect()
        } else {
            self.weight_rows.clone()
        }
    }

    /// Drops the weights (`w`, `b`, `j`, `b_out`) of every saved time but
    /// `rows` (increasing), which stay, in order. What a file with
    /// `output.ends_only` keeps, done once the geometry is measured: a
    /// study of 240 networks with 100 saves each otherwise held 5 GB of
    /// weights it would never write.
    ///
    /// # Panics
    ///
    /// If the weights are thinned already or a row is out of range.
    pub fn keep_weights_at(&mut self, rows: &[usize]) {
        assert!(
            self.weight_rows.is_empty(),
            "the weights are thinned already"
        );
        let t = self.len();
        assert!(rows.iter().all(|&r| r < t), "rows out of {t} saved times");
        assert!(rows.windows(2).all(|w| w[0] < w[1]), "rows not increasing");
        for v in [&mut self.w, &mut self.b, &mut self.j, &mut self.b_out] {
            if v.is_empty() || t == 0 {
                continue;
            }
            let per = v.len() / t;
            let kept: Vec<f64> = rows
                .iter()
                .flat_map(|&r| v[r * per..(r + 1) * per].iter().copied())
                .collect();
            *v = kept;
        }
        self.weight_rows = rows.to_vec();
    }

    /// Whether nothing was saved.
    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }
}

/// The training samples [`Recorder::record`] evaluates at a time: the
/// pre-activations and responses of a block stay in the second-level
/// cache (5000 samples at once were 10 MB of them, written and read back
/// from memory at every saved time of an SGD run).
const TRAINING_BLOCK: usize = 256;

/// Records snapshots of a state into a [`Trajectory`].
pub struct Recorder<'a> {
    model: &'a Model,
    params: Params,
    conditions: (MatRef<'a, f64>, MatRef<'a, f64>),
    training: (MatRef<'a, f64>, MatRef<'a, f64>),
    ws_conditions: Workspace,
    ws_training: Workspace,
    /// What has been recorded so far.
    pub trajectory: Trajectory,
}

impl<'a> Recorder<'a> {
    /// A recorder for `model`, evaluating on the noise-free `conditions`
    /// (`D x P` inputs, `K x P` targets) and on the `training` data.
    pub fn new(
        model: &'a Model,
        init: &Params,
        conditions: (MatRef<'a, f64>, MatRef<'a, f64>),
        training: (MatRef<'a, f64>, MatRef<'a, f64>),
    ) -> Self {
        let dims = model.dims;
        Recorder {
            model,
            params: init.clone(),
            conditions,
            training,
            ws_conditions: Workspace::new(dims, conditions.0.ncols()),
            ws_training: Workspace::new(dims, training.0.ncols().min(TRAINING_BLOCK)),
            trajectory: Trajectory::default(),
        }
    }

    /// Saves `state` at time `t` (and SGD `step`, if any). Returns the
    /// loss on the conditions.
    pub fn record(&mut self, t: f64, step: Option<u64>, state: &[f64]) -> f64 {
        let model = self.model;
        let (n, k) = (model.dims.hidden, model.dims.outputs);
        let p = self.conditions.0.ncols();
        let tr = &mut self.trajectory;

        let (x, y) = self.conditions;
        let loss = model.loss_grad(state, x, y, &mut self.ws_conditions, None);
        let acc = accuracy(model.loss, self.ws_conditions.outputs(p, k), y);
        let (xt, yt) = self.training;
        let train_loss = if xt.ncols() == p && std::ptr::eq(xt.as_ptr(), x.as_ptr()) {
            loss
        } else {
            let m = xt.ncols();
            let mut sum = 0.0;
            for at in (0..m).step_by(TRAINING_BLOCK) {
                let cols = TRAINING_BLOCK.min(m - at);
                let (xb, yb) = (xt.subcols(at, cols), yt.subcols(at, cols));
                sum = model.loss_sum(state, xb, yb, &mut self.ws_training, sum);
            }
            sum * (1.0 / m as f64)
        };

        self.params.set_state(state, model.trains_readout());
        tr.t.push(t);
        if let Some(s) = step {
            tr.step.push(s);
        }
        tr.w.extend_from_slice(&self.params.w);
        tr.b.extend_from_slice(&self.params.b);
        if model.trains_readout() {
            tr.j.extend_from_slice(&self.params.j);
            tr.b_out.extend_from_slice(&self.params.b_out);
        }
        tr.loss.push(loss);
        tr.train_loss.push(train_loss);
        tr.accuracy.push(acc);
        tr.hidden.extend_from_slice(self.ws_conditions.hidden(p, n));
        loss
    }

    /// Closes the trajectory with its outcome and returns it.
    pub fn finish(mut self, outcome: Outcome) -> Trajectory {
        self.trajectory.outcome = Some(outcome);
        self.trajectory
    }
}

/// The default saved times: `t = 0`, then `count - 1` log-spaced times
/// from `t_end / 10^decades` to `t_end`.
pub fn log_spaced_times(t_end: f64, count: usize, decades: f64) -> Vec<f64> {
    assert!(count >= 2 && t_end > 0.0);
    let first = t_end * 10f64.powf(-decades);
    let m = count - 1;
    let mut times = vec![0.0];
    times.extend((0..m).map(|i| {
        if i + 1 == m {
            t_end
        } else {
            first * (t_end / first).powf(i as f64 / (m - 1).max(1) as f64)
        }
    }));
    times.dedup();
    times
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinned_weights_keep_their_rows_in_order() {
        let (t, n, d) = (5, 2, 3);
        let mut tr = Trajectory {
            t: (0..t).map(f64::from).collect(),
            w: (0..t * n * d).map(f64::from).collect(),
            b: (0..t * n).map(|v| -f64::from(v)).collect(),
            ..Trajectory::default()
        };
        assert_eq!(tr.weight_rows(), vec![0, 1, 2, 3, 4]);
        tr.keep_weights_at(&[0, 4]);
        assert_eq!(tr.weight_rows(), vec![0, 4]);
        let row = |r: i32| (r * 6..(r + 1) * 6).map(f64::from);
        assert_eq!(tr.w, row(0).chain(row(4)).collect::<Vec<_>>());
        assert_eq!(tr.b, vec![0.0, -1.0, -8.0, -9.0]);
        assert!(tr.j.is_empty() && tr.b_out.is_empty());
        // The saved times themselves stay.
        assert_eq!(tr.len(), 5);
    }

    #[test]
    fn log_spaced_times_start_at_zero_and_end_at_t_end() {
        let t = log_spaced_times(1000.0, 5, 3.0);
        assert_eq!(t.len(), 5);
        assert_eq!(t[0], 0.0);
        assert!((t[1] - 1.0).abs() < 1e-12);
        assert!((t[2] - 10.0).abs() < 1e-9);
        assert_eq!(*t.last().unwrap(), 1000.0);
    }

    #[test]
    fn stop_reasons_round_trip_through_their_names() {
        for r in [
            StopReason::Completed,
            StopReason::StepBudget,
            StopReason::StepSizeUnderflow,
            StopReason::Diverged,
            StopReason::Interrupted,
            StopReason::Failed("disk full".into()),
        ] {
            assert_eq!(
                StopReason::from_name(r.name(), "disk full"),
                Some(r.clone())
            );
        }
    }
}
