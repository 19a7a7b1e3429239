//! Driving the embedded Runge-Kutta pairs over a stretch of time.
//!
//! [`Integrator::advance`] takes the state from `t0` to `t1` with the
//! chosen pair (Dormand and Prince 1980; Hairer, Nørsett and Wanner,
//! *Solving ODEs I*, II.5 and II.10), calling an observer after every
//! accepted step; the observer can stop the integration at the end of that
//! step, which is how interruption, divergence checks and the kink layer
//! of the ReLU family hook in. [`Integrator::advance_through`] also hands
//! out the state at a list of saved times.
//!
//! Dopri5 runs on our own allocation-free stepper ([`super::dopri5`]),
//! which saves between steps from its continuous extension. Dop853 runs on
//! `ode_solvers` ([`Backend::OdeSolvers`]), which lands on every saved
//! time instead; its Dopri5 stays reachable on that backend as the
//! reference our stepper is tested against.
//!
//! `ode_solvers` keeps every accepted step in memory in their sparse output
//! mode, so a long stretch is cut into chunks of at most
//! [`Integrator::chunk_steps`] attempted steps, each a fresh solver
//! started with the step size the previous chunk ended on; a restart costs
//! one right-hand-side evaluation. The counts come from our own counters,
//! because the crate reports them only when a solve ends normally.
//! Stiffness detection is off: a stiff stretch shows as many small steps
//! and, in the end, as the step budget running out.

use std::cell::Cell;

use ode_solvers::dop_shared::{IntegrationError, OutputType, System};
use ode_solvers::{DVector, Dop853, Dopri5};

use super::dopri5::{self, Controls, Stop, Work};

/// The embedded Runge-Kutta pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Solver {
    /// Dormand-Prince 5(4), 7 stages (6 per step with FSAL).
    Dopri5,
    /// Dormand-Prince 8(5,3), 12 stages per step.
    Dop853,
}

impl Solver {
    /// The name used in scenarios and files.
    pub fn name(&self) -> &'static str {
        match self {
            Solver::Dopri5 => "dopri5",
            Solver::Dop853 => "dop853",
        }
    }
}

/// Who takes the steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Our own stepper, for Dopri5 (Dop853 always runs on `ode_solvers`).
    Own,
    /// The `ode_solvers` crate.
    OdeSolvers,
}

/// A right-hand side `dy/dt = f(y)` that does not depend on `t`.
pub trait VectorField {
    /// Writes `f(y)` into `dy`.
    fn eval(&self, y: &[f64], dy: &mut [f64]);
}

/// Work done by the solver, accumulated over calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SolverStats {
    /// Right-hand-side evaluations.
    pub rhs_evals: u64,
    /// Accepted steps.
    pub accepted: u64,
    /// Rejected steps.
    pub rejected: u64,
}

/// Why [`Integrator::advance`] returned before `t1`.
#[derive(Clone, Debug, PartialEq)]
pub enum Halt {
    /// The observer asked to stop after the step that ended at this time.
    Observer,
    /// The step budget ran out.
    Budget,
    /// The step size underflowed.
    Underflow,
}

/// The result of [`Integrator::advance`]: where the state got to.
#[derive(Clone, Debug, PartialEq)]
pub struct Advanced {
    /// The time reached; the state passed in now holds the state there.
    pub t: f64,
    /// `None` when `t1` was reached.
    pub halt: Option<Halt>,
}

/// Solver settings plus the running counts and step-size memory.
#[derive(Clone, Debug)]
pub struct Integrator {
    /// Which pair.
    pub solver: Solver,
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Attempted steps per solver instance.
    pub chunk_steps: u32,
    /// Attempted steps left in the budget.
    pub steps_left: u64,
    /// The step size to start the next solve with (0: let the solver
    /// choose).
    pub h: f64,
    /// Work done so far.
    pub stats: SolverStats,
    /// Who takes the steps.
    pub backend: Backend,
    /// How many components our own stepper's error norm averages over (0:
    /// the state's length; see [`dopri5::Controls::norm_len`]).
    /// `ode_solvers`' pairs always average over the state.
    pub norm_len: usize,
    own: dopri5::Dopri5,
}

struct Adapter<'a, F: VectorField, O: FnMut(f64, &[f64], &[f64]) -> bool> {
    field: &'a F,
    observer: &'a mut O,
    evals: &'a Cell<u64>,
    accepted: &'a Cell<u64>,
    stopped: &'a Cell<bool>,
}

impl<F: VectorField, O: FnMut(f64, &[f64], &[f64]) -> bool> System<f64, DVector<f64>>
    for Adapter<'_, F, O>
{
    fn system(&self, _t: f64, y: &DVector<f64>, dy: &mut DVector<f64>) {
        self.evals.set(self.evals.get() + 1);
        self.field.eval(y.as_slice(), dy.as_mut_slice());
    }

    fn solout(&mut self, t: f64, y: &DVector<f64>, dy: &DVector<f64>) -> bool {
        self.accepted.set(self.accepted.get() + 1);
        let stop = (self.observer)(t, y.as_slice(), dy.as_slice());
        self.stopped.set(stop);
        stop
    }
}

/// What one solver instance did.
struct Chunk {
    t: f64,
    y: DVector<f64>,
    halt: Option<Halt>,
}

impl Integrator {
    /// An integrator with a budget of `max_steps` attempted steps.
    pub fn new(solver: Solver, rtol: f64, atol: f64, max_steps: u64) -> Self {
        Integrator {
            solver,
            rtol,
            atol,
            chunk_steps: 200,
            steps_left: max_steps,
            h: 0.0,
            stats: SolverStats::default(),
            backend: match solver {
                Solver::Dopri5 => Backend::Own,
                Solver::Dop853 => Backend::OdeSolvers,
            },
            norm_len: 0,
            own: dopri5::Dopri5::default(),
        }
    }

    /// Integrates `y` from `t0` through the increasing `times`, handing
    /// `on_save` the state at each (times at or before `t0` get the state
    /// at `t0`); it returns `true` to stop there. The observer sees every
    /// accepted step as in [`Integrator::advance`]. Our own stepper steps
    /// past the saved times and takes them from its continuous extension;
    /// `ode_solvers` lands on each. The result is where the steps got to.
    pub fn advance_through<F: VectorField>(
        &mut self,
        field: &F,
        t0: f64,
        times: &[f64],
        y: &mut DVector<f64>,
        mut observer: impl FnMut(f64, &[f64], &[f64]) -> bool,
        mut on_save: impl FnMut(f64, &[f64]) -> bool,
    ) -> Advanced {
        let stopped = Advanced {
            t: t0,
            halt: Some(Halt::Observer),
        };
        let ahead = times.partition_point(|&t| t <= t0);
        for _ in &times[..ahead] {
            if on_save(t0, y.as_slice()) {
                return stopped;
            }
        }
        let times = &times[ahead..];
        let Some(&t_end) = times.last() else {
            return Advanced { t: t0, halt: None };
        };
        if !self.on_own_stepper() {
            let mut t = t0;
            for &ts in times {
                let r = self.advance(field, t, ts, y, &mut observer);
                t = r.t;
                if r.halt.is_some() {
                    return r;
                }
                if on_save(t, y.as_slice()) {
                    return Advanced { t, ..stopped };
                }
            }
            return Advanced { t, halt: None };
        }
        let mut next = 0;
        let mut buf = vec![0.0; y.len()];
        self.run_own(field, t0, t_end, y, |s| {
            if observer(s.t, s.y, s.f) {
                return true;
            }
            while let Some(&ts) = times.get(next).filter(|&&ts| ts <= s.t) {
                next += 1;
                let state = if ts >= s.t {
                    s.y
                } else {
                    s.interpolate(ts, &mut buf);
                    &buf[..]
                };
                if on_save(ts, state) {
                    return true;
                }
            }
            false
        })
    }

    /// Integrates `y` from `t0` toward `t1 > t0` on our own Dopri5,
    /// handing every accepted step to `on_step` with its continuous
    /// extension; it returns `true` to stop there.
    ///
    /// # Panics
    /// If the steps are not our own ([`Integrator::on_own_stepper`]).
    pub fn advance_dense<F: VectorField>(
        &mut self,
        field: &F,
        t0: f64,
        t1: f64,
        y: &mut DVector<f64>,
        on_step: impl FnMut(&dopri5::Step<'_>) -> bool,
    ) -> Advanced {
        assert!(
            self.on_own_stepper(),
            "only our own Dopri5 hands out its continuous extension"
        );
        self.run_own(field, t0, t1, y, on_step)
    }

    /// Whether the steps are our own (which has Dopri5 only).
    pub fn on_own_stepper(&self) -> bool {
        self.backend == Backend::Own && self.solver == Solver::Dopri5
    }

    /// Our own stepper from `t0` to `t1`, keeping the counts.
    fn run_own<F: VectorField>(
        &mut self,
        field: &F,
        t0: f64,
        t1: f64,
        y: &mut DVector<f64>,
        on_step: impl FnMut(&dopri5::Step<'_>) -> bool,
    ) -> Advanced {
        let mut ctl = Controls {
            rtol: self.rtol,
            atol: self.atol,
            h: self.h,
            steps_left: self.steps_left,
            norm_len: self.norm_len,
            work: Work::default(),
        };
        let (t, stop) = self
            .own
            .run(field, &mut ctl, t0, t1, y.as_mut_slice(), on_step);
        let work = ctl.work;
        self.h = ctl.h;
        self.steps_left = ctl.steps_left;
        self.stats.rhs_evals += work.evals;
        self.stats.accepted += work.accepted;
        self.stats.rejected += work.rejected;
        let halt = stop.map(|s| match s {
            Stop::Callback => Halt::Observer,
            Stop::Budget => Halt::Budget,
            Stop::Underflow => Halt::Underflow,
        });
        Advanced { t, halt }
    }

    /// Integrates `y` from `t0` to `t1 > t0` in place. The observer sees
    /// `(t, y, f(y))` after every accepted step and returns `true` to stop
    /// there.
    pub fn advance<F: VectorField>(
        &mut self,
        field: &F,
        t0: f64,
        t1: f64,
        y: &mut DVector<f64>,
        mut observer: impl FnMut(f64, &[f64], &[f64]) -> bool,
    ) -> Advanced {
        if self.on_own_stepper() {
            return self.run_own(field, t0, t1, y, |s| observer(s.t, s.y, s.f));
        }
        let mut t = t0;
        while t < t1 {
            if self.steps_left == 0 {
                return Advanced {
                    t,
                    halt: Some(Halt::Budget),
                };
            }
            let n_max = self.steps_left.min(u64::from(self.chunk_steps)) as u32;
            let chunk = self.solve(field, &mut observer, t, t1, y.clone(), n_max);
            t = chunk.t;
            *y = chunk.y;
            if chunk.halt.is_some() {
                return Advanced {
                    t,
                    halt: chunk.halt,
                };
            }
        }
        Advanced { t, halt: None }
    }

    /// One solver instance from `t0` toward `t1`, at most `n_max`
    /// attempted steps.
    fn solve<F, O>(
        &mut self,
        field: &F,
        observer: &mut O,
        t0: f64,
        t1: f64,
        y0: DVector<f64>,
        n_max: u32,
    ) -> Chunk
    where
        F: VectorField,
        O: FnMut(f64, &[f64], &[f64]) -> bool,
    {
        let (evals, accepted, stopped) = (Cell::new(0), Cell::new(0), Cell::new(false));
        let adapter = Adapter {
            field,
            observer,
            evals: &evals,
            accepted: &accepted,
            stopped: &stopped,
        };
        let (rtol, atol, span) = (self.rtol, self.atol, t1 - t0);
        let h0 = self.h.min(span);
        let no_stiffness_test = u32::MAX;
        macro_rules! run {
            ($solver:ident, $beta:expr, $fac_min:expr, $fac_max:expr) => {{
                let mut s = $solver::from_param(
                    adapter,
                    t0,
                    t1,
                    span,
                    y0,
                    rtol,
                    atol,
                    0.9,
                    $beta,
                    $fac_min,
                    $fac_max,
                    span,
                    h0,
                    n_max,
                    no_stiffness_test,
                    OutputType::Sparse,
                );
                let result = s.integrate();
                let (ts, ys) = s.results().get();
                (
                    result,
                    ts.clone(),
                    ys.last().cloned().expect("initial state"),
                )
            }};
        }
        let (result, ts, y) = match self.solver {
            Solver::Dopri5 => run!(Dopri5, 0.04, 0.2, 10.0),
            Solver::Dop853 => run!(Dop853, 0.0, 0.333, 6.0),
        };

        // Attempted steps from the evaluation count: Dopri5 spends 6 per
        // attempt (FSAL), Dop853 11 per attempt and 1 per accepted step,
        // both 1 at the start and 2 more when they choose the first step.
        let startup = 1 + if h0 == 0.0 { 2 } else { 0 };
        let (evals, accepted) = (evals.get(), accepted.get());
        let attempted = match self.solver {
            Solver::Dopri5 => evals.saturating_sub(startup) / 6,
            Solver::Dop853 => evals.saturating_sub(startup + accepted) / 11,
        };
        self.stats.rhs_evals += evals;
        self.stats.accepted += accepted;
        self.stats.rejected += attempted.saturating_sub(accepted);
        self.steps_left = self.steps_left.saturating_sub(attempted.max(1));
        self.h = next_step_size(&ts, t1).unwrap_or(self.h);

        let t = *ts.last().expect("initial time");
        let halt = match result {
            Ok(_) if stopped.get() => Some(Halt::Observer),
            Ok(_) => None,
            Err(IntegrationError::MaxNumStepReached { .. }) => None,
            Err(IntegrationError::StepSizeUnderflow { .. }) => Some(Halt::Underflow),
            Err(IntegrationError::StiffnessDetected { .. }) => {
                unreachable!("stiffness detection is switched off")
            }
        };
        Chunk { t, y, halt }
    }
}

/// The step size to restart with: the last full step of the accepted
/// times `ts` (the very last one may have been cut short to land on
/// `t_end`).
fn next_step_size(ts: &[f64], t_end: f64) -> Option<f64> {
    let n = ts.len();
    if n < 2 {
        return None;
    }
    let last = ts[n - 1] - ts[n - 2];
    let before = (n >= 3).then(|| ts[n - 2] - ts[n - 3]);
    match before {
        Some(b) if ts[n - 1] >= t_end => Some(b.max(last)),
        _ => Some(last),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dy/dt = A y` with a rotation plus decay: known solution.
    struct Spiral;

    impl VectorField for Spiral {
        fn eval(&self, y: &[f64], dy: &mut [f64]) {
            dy[0] = -0.1 * y[0] - y[1];
            dy[1] = y[0] - 0.1 * y[1];
        }
    }

    fn exact(t: f64) -> [f64; 2] {
        let r = (-0.1 * t).exp();
        [r * t.cos(), r * t.sin()]
    }

    #[test]
    fn both_solvers_follow_the_exact_solution_across_chunks() {
        for solver in [Solver::Dopri5, Solver::Dop853] {
            let mut int = Integrator::new(solver, 1e-10, 1e-12, 1_000_000);
            int.chunk_steps = 7;
            let mut y = DVector::from_vec(vec![1.0, 0.0]);
            let mut t = 0.0;
            for t1 in [0.5, 3.0, 10.0, 20.0] {
                let r = int.advance(&Spiral, t, t1, &mut y, |_, _, _| false);
                assert_eq!(r, Advanced { t: t1, halt: None });
                t = t1;
                let e = exact(t1);
                assert!((y[0] - e[0]).abs() < 1e-8, "{solver:?} at {t1}");
                assert!((y[1] - e[1]).abs() < 1e-8, "{solver:?} at {t1}");
            }
            let s = int.stats;
            assert!(s.accepted > 20 && s.rhs_evals > 6 * s.accepted, "{s:?}");
        }
    }

    #[test]
    fn the_observer_stops_at_the_end_of_a_step() {
        let mut int = Integrator::new(Solver::Dopri5, 1e-8, 1e-10, 1000);
        let mut y = DVector::from_vec(vec![1.0, 0.0]);
        let r = int.advance(&Spiral, 0.0, 20.0, &mut y, |_, y, _| y[1] < 0.0);
        assert_eq!(r.halt, Some(Halt::Observer));
        assert!(r.t > std::f64::consts::PI && r.t < 5.0, "{}", r.t);
        assert!(y[1] < 0.0);
    }

    #[test]
    fn the_step_budget_halts_the_integration() {
        let mut int = Integrator::new(Solver::Dopri5, 1e-12, 1e-14, 30);
        int.chunk_steps = 8;
        let mut y = DVector::from_vec(vec![1.0, 0.0]);
        let r = int.advance(&Spiral, 0.0, 1000.0, &mut y, |_, _, _| false);
        assert_eq!(r.halt, Some(Halt::Budget));
        assert!(r.t > 0.0 && r.t < 1000.0);
        assert_eq!(int.steps_left, 0);
        let e = exact(r.t);
        assert!((y[0] - e[0]).abs() < 1e-9);
    }

    /// Our stepper against `ode_solvers`' Dopri5: the same method and
    /// controller, so the same accuracy for about the same work.
    #[test]
    fn our_dopri5_matches_the_crates() {
        let mut ends = Vec::new();
        for backend in [Backend::Own, Backend::OdeSolvers] {
            let mut int = Integrator::new(Solver::Dopri5, 1e-9, 1e-12, 1_000_000);
            int.backend = backend;
            let mut y = DVector::from_vec(vec![1.0, 0.0]);
            let r = int.advance(&Spiral, 0.0, 30.0, &mut y, |_, _, _| false);
            assert_eq!(
                r,
                Advanced {
                    t: 30.0,
                    halt: None
                }
            );
            let e = exact(30.0);
            assert!((y[0] - e[0]).abs() < 1e-8 && (y[1] - e[1]).abs() < 1e-8);
            ends.push((y, int.stats));
        }
        let (own, crate_) = (&ends[0], &ends[1]);
        assert!((&own.0 - &crate_.0).norm() < 1e-9, "{:?}", ends);
        let ratio = own.1.accepted as f64 / crate_.1.accepted as f64;
        assert!((0.9..1.1).contains(&ratio), "{:?}", ends);
    }

    /// Saved states between steps come from the continuous extension, to
    /// the tolerance, and saving more times costs no more steps.
    #[test]
    fn saved_times_come_from_the_continuous_extension() {
        let mut runs = Vec::new();
        for count in [2, 200] {
            let times: Vec<f64> = (0..count)
                .map(|i| 20.0 * i as f64 / (count - 1) as f64)
                .collect();
            let mut int = Integrator::new(Solver::Dopri5, 1e-8, 1e-10, 1_000_000);
            let mut y = DVector::from_vec(vec![1.0, 0.0]);
            let mut saved = Vec::new();
            let r = int.advance_through(
                &Spiral,
                0.0,
                &times,
                &mut y,
                |_, _, _| false,
                |t, y| {
                    saved.push((t, y[0], y[1]));
                    false
                },
            );
            assert_eq!(
                r,
                Advanced {
                    t: 20.0,
                    halt: None
                }
            );
            assert_eq!(saved.len(), count);
            for (t, a, b) in saved {
                let e = exact(t);
                assert!(
                    (a - e[0]).abs() < 2e-7 && (b - e[1]).abs() < 2e-7,
                    "t = {t}"
                );
            }
            runs.push(int.stats);
        }
        assert_eq!(runs[0], runs[1]);
    }

    /// `on_save` stops at its time; the steps got to the end of that step.
    #[test]
    fn a_save_can_stop_the_run() {
        let times = [0.0, 1.0, 2.5, 4.0, 20.0];
        for solver in [Solver::Dopri5, Solver::Dop853] {
            let mut int = Integrator::new(solver, 1e-8, 1e-10, 1_000_000);
            let mut y = DVector::from_vec(vec![1.0, 0.0]);
            let mut seen = Vec::new();
            let r = int.advance_through(
                &Spiral,
                0.0,
                &times,
                &mut y,
                |_, _, _| false,
                |t, _| {
                    seen.push(t);
                    t >= 2.5
                },
            );
            assert_eq!(seen, [0.0, 1.0, 2.5], "{solver:?}");
            assert_eq!(r.halt, Some(Halt::Observer));
            assert!(r.t >= 2.5 && r.t < 20.0, "{solver:?} {}", r.t);
        }
    }
}
