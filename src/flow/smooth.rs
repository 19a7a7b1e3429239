//! The gradient flow on the plain solver path.
//!
//! The right-hand side is `-grad L` over a fixed data set: the `P`
//! noise-free condition means (the population flow of the study) or a
//! fixed set of noisy samples (the empirical loss SGD sees). It is exact
//! and of the solver's full order when the activation is smooth. For a
//! piecewise-linear activation the right-hand side jumps on the kinks, and
//! this path is only bounded, by the step budget, never trusted to be fast.
//!
//! With Dopri5 the solver steps past the saved times and takes the saved
//! states from its fourth-order continuous extension, whose error is of
//! the size of the local error the tolerances allow; Dop853 lands on each
//! saved time. A run that halts early saves the state it reached as its
//! last snapshot.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use faer::MatRef;
use ode_solvers::DVector;

use super::conditions::{self, ConditionField};
use super::integrator::{Halt, Integrator, Solver, VectorField};
use crate::network::{Model, Params, Workspace};
use crate::trajectory::{Outcome, Recorder, StopReason, Trajectory};

/// How to integrate a flow and where to save it.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowSettings {
    /// The Runge-Kutta pair.
    pub solver: Solver,
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Budget of attempted steps for the whole run.
    pub max_steps: u64,
    /// Increasing saved times; the last is the end time.
    pub save_times: Vec<f64>,
    /// Integrate in the reduced coordinates of the span of the inputs
    /// when that is exact (see [`super::reduced`]).
    pub reduced: bool,
    /// Step over the kinks of piecewise-linear activations on this plain
    /// path instead of locating them (for comparison only).
    pub plain_kinks: bool,
    /// Integrate a piecewise-linear flow on few data points in their
    /// pre-activation coordinates (with Dopri5; see
    /// [`super::piecewise`]) instead of in weight space.
    pub preactivations: bool,
}

/// `-grad L(theta)` over a fixed data set, with scratch reused by every
/// evaluation.
pub struct GradientField<'a> {
    model: &'a Model,
    x: MatRef<'a, f64>,
    y: MatRef<'a, f64>,
    ws: RefCell<Workspace>,
}

impl<'a> GradientField<'a> {
    /// The field over inputs `x` (`D x M`) and targets `y` (`K x M`).
    pub fn new(model: &'a Model, x: MatRef<'a, f64>, y: MatRef<'a, f64>) -> Self {
        let ws = RefCell::new(Workspace::new(model.dims, x.ncols()));
        GradientField { model, x, y, ws }
    }
}

impl VectorField for GradientField<'_> {
    fn eval(&self, state: &[f64], dy: &mut [f64]) {
        let mut ws = self.ws.borrow_mut();
        self.model
            .loss_grad(state, self.x, self.y, &mut ws, Some(dy));
        dy.iter_mut().for_each(|v| *v = -*v);
    }
}

/// The data a flow run sees: what it trains on, and the noise-free
/// conditions it is evaluated on.
#[derive(Clone, Copy)]
pub struct FlowData<'a> {
    /// Inputs `D x M` and targets `K x M` the loss is averaged over.
    pub training: (MatRef<'a, f64>, MatRef<'a, f64>),
    /// The condition means, `D x P` and `K x P`.
    pub conditions: (MatRef<'a, f64>, MatRef<'a, f64>),
}

/// Integrates the flow of `model` from `init` and saves it; on few data
/// points with the field of [`super::conditions`], in its lane layout.
pub fn integrate(
    model: &Model,
    init: &Params,
    data: FlowData<'_>,
    settings: &FlowSettings,
    interrupt: &AtomicBool,
) -> Trajectory {
    integrate_standing_for(model, init, data, settings, interrupt, 0)
}

/// [`integrate`] for a state that stands for one of `full_len`
/// components whose others carry no error (the reduced coordinates of
/// the weights): the step-size control measures the error as the RMS
/// over all `full_len`, as the integration of the full state would (0:
/// over the state itself).
pub fn integrate_standing_for(
    model: &Model,
    init: &Params,
    data: FlowData<'_>,
    settings: &FlowSettings,
    interrupt: &AtomicBool,
    full_len: usize,
) -> Trajectory {
    let (x, y) = data.training;
    if conditions::suits(model, x.ncols()) {
        let field = ConditionField::new(model, x, y);
        integrate_with(
            (&field, Layout::Lanes),
            model,
            init,
            data,
            settings,
            interrupt,
            full_len,
        )
    } else {
        let field = GradientField::new(model, x, y);
        integrate_with(
            (&field, Layout::Standard),
            model,
            init,
            data,
            settings,
            interrupt,
            full_len,
        )
    }
}

/// How a field lays out the state it integrates.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// As [`crate::network`] does.
    Standard,
    /// With `W` transposed ([`super::conditions`]).
    Lanes,
}

/// The flow on `field`, whose state is laid out as `layout`.
fn integrate_with<F: VectorField>(
    (field, layout): (&F, Layout),
    model: &Model,
    init: &Params,
    data: FlowData<'_>,
    settings: &FlowSettings,
    interrupt: &AtomicBool,
    full_len: usize,
) -> Trajectory {
    let clock = Instant::now();
    let mut recorder = Recorder::new(model, init, data.conditions, data.training);
    let mut int = Integrator::new(
        settings.solver,
        settings.rtol,
        settings.atol,
        settings.max_steps,
    );
    int.norm_len = full_len;
    let standard = init.to_state(model.trains_readout());
    let mut y = DVector::from_vec(standard.clone());
    let mut buf = standard;
    if layout == Layout::Lanes {
        conditions::to_lanes(model.dims, &buf, y.as_mut_slice());
    }
    let mut record = |t: f64, state: &[f64]| match layout {
        Layout::Standard => recorder.record(t, None, state),
        Layout::Lanes => {
            conditions::from_lanes(model.dims, state, &mut buf);
            recorder.record(t, None, &buf)
        }
    };

    let mut reason = StopReason::Completed;
    let (mut diverged, mut loss_diverged) = (false, false);
    let mut t_saved = f64::NEG_INFINITY;
    let observer = |_t: f64, _y: &[f64], dy: &[f64]| {
        diverged = !dy.iter().all(|v| v.is_finite());
        diverged || interrupt.load(Ordering::Relaxed)
    };
    let on_save = |t: f64, y: &[f64]| {
        t_saved = t;
        loss_diverged = !record(t, y).is_finite();
        loss_diverged
    };
    let r =
        int.advance_through(field, 0.0, &settings.save_times, &mut y, observer, on_save);
    if let Some(halt) = r.halt {
        reason = match halt {
            Halt::Observer if loss_diverged => StopReason::Diverged,
            Halt::Budget => StopReason::StepBudget,
            Halt::Underflow => StopReason::StepSizeUnderflow,
            Halt::Observer if diverged => StopReason::Diverged,
            Halt::Observer => StopReason::Interrupted,
        };
        if !loss_diverged && r.t > t_saved {
            record(r.t, y.as_slice());
        }
    }
    let t = if loss_diverged { t_saved } else { r.t };

    let s = int.stats;
    recorder.finish(Outcome {
        reason,
        t_reached: t,
        counts: vec![
            ("rhs_evals", s.rhs_evals),
            ("accepted_steps", s.accepted),
            ("rejected_steps", s.rejected),
        ],
        seconds: clock.elapsed().as_secs_f64(),
    })
}
