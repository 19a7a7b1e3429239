//! The gradient flow of the ReLU family as a piecewise-smooth system.
//!
//! For a piecewise-linear activation the right-hand side `-grad L` jumps
//! on the surfaces `u_ci = kink` (one per data point `c`, hidden unit `i`
//! and kink). It is integrated event by event, on one of two paths that
//! share the modes, the event decisions and the sliding programme: in
//! weight space ([`integrate`], below), and on few data points in
//! pre-activation coordinates ([`integrate_preactivations`]; see
//! `preact.rs` and `dense.rs`), where the kinks are coordinate planes and
//! events are found on the solver's continuous extension. A *mode* freezes,
//! for every pair `(c, i)`, the piece `u_ci` lies on or the kink it is held
//! on; inside a mode the field is smooth and Dopri5 or Dop853 keep their
//! full order ([`mode`]). In weight space, after every accepted step the pre-activations
//! and the sliding coefficients are checked ([`watch`]); the earliest
//! change is located with cubic Hermite interpolation and Illinois root
//! finding and then reached exactly by integrating from the step's start
//! to that time, repeated on the shrinking bracket until the pre-activation
//! is within `atol` of its kink ([`locate`]). There all the pairs of each
//! affected unit that sit on a kink are re-decided together ([`event`]).
//!
//! Sliding follows Filippov (1988): on a kink `f'(u_ci)` is replaced by a
//! coefficient `alpha_c` between the two one-sided slopes, chosen so that
//! the points held on the kink stay there. Units decouple, and for unit
//! `i` this is a linear complementarity problem over the Gram matrix of
//! the augmented inputs `(x_c, 1)` of its points on kinks, solved as a box
//! constrained quadratic programme by projected Gauss-Seidel followed by an
//! exact solve on the active set ([`sliding`]); see Dieci and Lopez
//! (2009, 2011) for sliding on several surfaces at once. With the hidden
//! biases frozen (the Fig. 1 protocol) only `w_i` moves, and the augmented
//! inputs are the `x_c` alone. A trained readout changes nothing here: the
//! gradient of `J` and `b_out` depends on `h`, which is continuous across
//! kinks. Inside a mode the sliding pre-activations are linear invariants
//! of the frozen field, which Runge-Kutta methods keep to rounding; at
//! every segment start and saved time they are projected back onto their
//! kinks by the smallest change of `(w_i, b_i)` (of `w_i` when `b_i` is
//! frozen).
//!
//! Work: in weight space each located event costs about two landings
//! (short solves from the step start), and these dominate the
//! right-hand-side count of a run with many events; the outcome counts
//! them as `landings`. A saved time less than about 1e3 ulps after the
//! current time is taken as reached.
//!
//! Accuracy: between events, the solver's tolerances; events are placed to
//! `|u - kink| <= atol` (crossings) or to `1e-10` of the slope interval
//! (releases, where the field is continuous, so a time error enters the
//! state only to second order). Assumptions: the augmented inputs of the
//! points one unit holds on its kinks are linearly independent (at most
//! `D + 1` of them in general position, `D` with frozen biases), and no
//! point reaches a kink exactly tangentially. References: A. F. Filippov,
//! *Differential Equations with Discontinuous Righthand Sides*, Kluwer
//! 1988; L. Dieci and L. Lopez, "Sliding motion in Filippov differential
//! systems", J. Comput. Appl. Math. 2009, and "Sliding motion on
//! discontinuity surfaces of high co-dimension", BIT 2011; E. Hairer, S. P.
//! Nørsett and G. Wanner, *Solving Ordinary Differential Equations I*, II.6
//! (dense output).

mod dense;
mod event;
mod locate;
mod mode;
mod preact;
mod sliding;
mod watch;

pub use dense::integrate as integrate_preactivations;
pub use preact::MAX_POINTS as MAX_PREACTIVATION_POINTS;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ode_solvers::DVector;

use self::event::EventPoint;
use self::mode::{FrozenField, Mode, Setup};
use self::watch::{Lead, Snapshot, earliest, lead_value};
use super::integrator::{Halt, Integrator, SolverStats, VectorField};
use super::smooth::{FlowData, FlowSettings};
use crate::network::{Model, Params, Workspace};
use crate::trajectory::{
    EventKind, KinkEvent, Outcome, Recorder, StopReason, Trajectory,
};

/// Events in a row without time moving on before the run is declared a
/// Zeno cascade.
const ZENO_EVENTS: u32 = 1000;

/// Landings per event location before the bracket's far end is taken.
const MAX_LANDINGS: usize = 80;

/// How far past the end of its interval (relative) a released coefficient
/// may be when its event is accepted.
const RELEASE_WINDOW: f64 = 1e-10;

/// Integrates the piecewise-smooth flow of `model` from `init` and saves
/// it at `settings.save_times`, exactly as [`super::smooth::integrate`]
/// does, with the kink events and the per-unit sliding counts recorded.
///
/// # Panics
/// If the activation has no kinks (use the smooth path).
pub fn integrate(
    model: &Model,
    init: &Params,
    data: FlowData<'_>,
    settings: &FlowSettings,
    interrupt: &AtomicBool,
) -> Trajectory {
    run_flow(model, init, data, settings, interrupt).0
}

/// What the tests look at besides the trajectory.
#[derive(Clone, Copy, Debug, Default)]
struct Diagnostics {
    /// The largest `|u - kink|` of a sliding pair found before it was
    /// projected back onto its kink.
    max_drift: f64,
}

fn run_flow(
    model: &Model,
    init: &Params,
    data: FlowData<'_>,
    settings: &FlowSettings,
    interrupt: &AtomicBool,
) -> (Trajectory, Diagnostics) {
    assert!(
        !model.activation.is_smooth(),
        "{} has no kinks: integrate it with flow::smooth",
        model.activation
    );
    let clock = Instant::now();
    let (x, y) = data.training;
    let setup = Setup::new(model, x, y, settings.atol);
    let mut recorder = Recorder::new(model, init, data.conditions, data.training);
    let mut run = Run::new(&setup, settings, init, interrupt);

    let mut reason = StopReason::Completed;
    'saves: for &t_save in &settings.save_times {
        while run.t < t_save {
            if let Err(stop) = run.segment(t_save) {
                reason = stop;
                run.save(&mut recorder);
                break 'saves;
            }
        }
        let loss = run.save(&mut recorder);
        if !loss.is_finite() {
            reason = StopReason::Diverged;
            break;
        }
    }

    let counts = run.counts();
    recorder.trajectory.events = std::mem::take(&mut run.events);
    let trajectory = recorder.finish(Outcome {
        reason,
        t_reached: run.t,
        counts,
        seconds: clock.elapsed().as_secs_f64(),
    });
    (trajectory, run.diagnostics)
}

/// The running state of one integration.
struct Run<'s, 'a> {
    setup: &'s Setup<'a>,
    interrupt: &'s AtomicBool,
    int: Integrator,
    state: DVector<f64>,
    t: f64,
    mode: Mode,
    events: Vec<KinkEvent>,
    extra_evals: u64,
    segments: u64,
    landings: u64,
    zeno: ZenoWatch,
    diagnostics: Diagnostics,
}

/// Why a segment's steps were stopped by its observer: an event (what
/// each path needs to locate or apply it), a non-finite state, or an
/// interruption.
enum Seen<E> {
    Nothing,
    Event(E),
    Diverged,
    Interrupted,
}

impl<E> Seen<E> {
    /// What an accepted step at `(y, f)` shows before any event is looked
    /// for: a non-finite state or field, or an interruption.
    fn before_events(y: &[f64], f: &[f64], interrupt: &AtomicBool) -> Option<Self> {
        if !f.iter().chain(y).all(|v| v.is_finite()) {
            return Some(Seen::Diverged);
        }
        interrupt
            .load(Ordering::Relaxed)
            .then_some(Seen::Interrupted)
    }

    /// How a segment's integration ended: at its end (`None`), at an event
    /// (`Some`), or with the reason the run stops.
    fn ending(self, halt: Option<Halt>) -> Result<Option<E>, StopReason> {
        match (halt, self) {
            (None, _) => Ok(None),
            (Some(Halt::Budget), _) => Err(StopReason::StepBudget),
            (Some(Halt::Underflow), _) => Err(StopReason::StepSizeUnderflow),
            (Some(Halt::Observer), Seen::Diverged) => Err(StopReason::Diverged),
            (Some(Halt::Observer), Seen::Event(e)) => Ok(Some(e)),
            (Some(Halt::Observer), _) => Err(StopReason::Interrupted),
        }
    }
}

/// Events in a row without time moving on, against a Zeno cascade.
#[derive(Clone, Copy, Debug)]
struct ZenoWatch {
    last_event_at: f64,
    same_time: u32,
}

impl ZenoWatch {
    fn new() -> Self {
        ZenoWatch {
            last_event_at: f64::NEG_INFINITY,
            same_time: 0,
        }
    }

    /// Notes an event at `t`: an error once [`ZENO_EVENTS`] come in a row
    /// without time moving on.
    fn note(&mut self, t: f64) -> Result<(), StopReason> {
        let progressed = t > self.last_event_at;
        self.last_event_at = t;
        self.same_time = if progressed { 0 } else { self.same_time + 1 };
        if self.same_time >= ZENO_EVENTS {
            return Err(StopReason::Failed(format!(
                "Zeno cascade: {ZENO_EVENTS} events without time moving on at t = {t}"
            )));
        }
        Ok(())
    }
}

/// The named counts of an event-driven run's outcome: the solver's work
/// (with `extra_evals` evaluations made outside its steps), the events,
/// segments and sliding episodes, and the path's own count last.
fn event_counts(
    stats: SolverStats,
    extra_evals: u64,
    events: &[KinkEvent],
    segments: u64,
    own: (&'static str, u64),
) -> Vec<(&'static str, u64)> {
    let episodes = events
        .iter()
        .filter(|e| e.kind == EventKind::StartSliding)
        .count() as u64;
    vec![
        ("rhs_evals", stats.rhs_evals + extra_evals),
        ("accepted_steps", stats.accepted),
        ("rejected_steps", stats.rejected),
        ("events", events.len() as u64),
        ("segments", segments),
        ("sliding_episodes", episodes),
        own,
    ]
}

impl<'s, 'a> Run<'s, 'a> {
    fn new(
        setup: &'s Setup<'a>,
        settings: &FlowSettings,
        init: &Params,
        interrupt: &'s AtomicBool,
    ) -> Self {
        let trains = setup.model.trains_readout();
        let state = DVector::from_vec(init.to_state(trains));
        let mut u = vec![0.0; setup.n * setup.m];
        setup.pre_activations(state.as_slice(), &mut u);
        let int = Integrator::new(
            settings.solver,
            settings.rtol,
            settings.atol,
            settings.max_steps,
        );
        Run {
            setup,
            interrupt,
            int,
            state,
            t: 0.0,
            mode: Mode::of(setup, &u),
            events: Vec::new(),
            extra_evals: 0,
            segments: 0,
            landings: 0,
            zeno: ZenoWatch::new(),
            diagnostics: Diagnostics::default(),
        }
    }

    /// Puts the sliding pairs back on their kinks, noting the drift.
    fn project(&mut self) {
        let drift = event::project(self.setup, &self.mode, self.state.as_mut_slice());
        let d = &mut self.diagnostics.max_drift;
        *d = d.max(drift);
    }

    /// Saves the current state with the sliding counts; returns the loss.
    fn save(&mut self, recorder: &mut Recorder<'_>) -> f64 {
        self.project();
        let loss = recorder.record(self.t, None, self.state.as_slice());
        let counts = self.mode.sliding_counts(self.setup.n);
        recorder.trajectory.sliding.extend(counts);
        loss
    }

    /// The named counts of the outcome.
    fn counts(&self) -> Vec<(&'static str, u64)> {
        let (stats, extra) = (self.int.stats, self.extra_evals);
        let own = ("landings", self.landings);
        event_counts(stats, extra, &self.events, self.segments, own)
    }

    /// Integrates in the current mode until `t_end` or the first event,
    /// and handles that event.
    fn segment(&mut self, t_end: f64) -> Result<(), StopReason> {
        let setup = self.setup;
        if t_end - self.t < shortest(self.t) {
            // Too short a stretch for a step; the state moves by less than
            // the rounding of the time.
            self.t = t_end;
            return Ok(());
        }
        self.project();
        let field = FrozenField::new(setup, &self.mode).ok_or_else(|| {
            StopReason::Failed(format!(
                "the inputs held on one unit's kinks became linearly dependent at t = {}",
                self.t
            ))
        })?;
        self.segments += 1;

        let len = self.state.len();
        let mut dy = vec![0.0; len];
        field.eval(self.state.as_slice(), &mut dy);
        self.extra_evals += 1;
        let mut prev = Snapshot::new(setup, len, &field);
        let mut scratch = vec![0.0; len];
        let start = (self.t, self.state.as_slice(), &dy[..]);
        prev.fill(setup, &field, start, &mut scratch, &mut self.extra_evals);
        let mut cur = prev.clone();

        let mut seen = Seen::Nothing;
        let (mode, interrupt) = (&self.mode, self.interrupt);
        let extra = &mut self.extra_evals;
        let observer = |t: f64, y: &[f64], f: &[f64]| {
            if let Some(stop) = Seen::before_events(y, f, interrupt) {
                seen = stop;
                return true;
            }
            cur.fill(setup, &field, (t, y, f), &mut scratch, extra);
            if let Some((s, lead)) = earliest(setup, mode, &prev, &cur) {
                seen = Seen::Event((s, lead));
                return true;
            }
            std::mem::swap(&mut prev, &mut cur);
            false
        };
        let h_before = self.int.h;
        let r = self
            .int
            .advance(&field, self.t, t_end, &mut self.state, observer);
        self.t = r.t;
        let Some((s, lead)) = seen.ending(r.halt)? else {
            return Ok(());
        };
        let at = self.locate(&field, prev, cur, s, lead)?;
        self.int.h = h_before;
        self.apply(at)
    }

    /// Narrows the bracket `[a, b]` around the earliest event, landing on
    /// trial times by integrating from the bracket's left end, and returns
    /// the snapshot at the event.
    fn locate(
        &mut self,
        field: &FrozenField<'_, '_>,
        mut a: Snapshot,
        mut b: Snapshot,
        mut s: f64,
        mut lead: Lead,
    ) -> Result<Snapshot, StopReason> {
        let setup = self.setup;
        let tol_t = 4.0 * f64::EPSILON * b.t.abs().max(1.0);
        let mut e = a.clone();
        let mut scratch = vec![0.0; a.y.len()];
        let mut bisect = false;
        for _ in 0..MAX_LANDINGS {
            if s <= 0.0 {
                return Ok(a);
            }
            let width = b.t - a.t;
            if width <= tol_t {
                return Ok(b);
            }
            let frac = if bisect { 0.5 } else { s };
            let t_e = (a.t + frac * width).max(a.t + shortest(a.t));
            if t_e >= b.t {
                return Ok(b);
            }
            self.land(field, &a, t_e, &mut e, &mut scratch)?;

            let inside = earliest(setup, &self.mode, &a, &e);
            let value = lead_value(setup, &self.mode, lead, &e);
            match inside {
                Some((s2, lead2)) => {
                    let v2 = lead_value(setup, &self.mode, lead2, &e);
                    let accept =
                        matches!(lead2, Lead::Release { .. }) && v2 >= -RELEASE_WINDOW;
                    if accept && earliest_is_only_release(setup, &self.mode, &a, &e) {
                        return Ok(e);
                    }
                    std::mem::swap(&mut b, &mut e);
                    (s, lead) = (s2, lead2);
                }
                None => {
                    let crossing = matches!(lead, Lead::Crossing { .. });
                    if crossing && value.abs() <= setup.tol_u {
                        return Ok(e);
                    }
                    std::mem::swap(&mut a, &mut e);
                    match earliest(setup, &self.mode, &a, &b) {
                        Some((s2, lead2)) => (s, lead) = (s2, lead2),
                        None => return Ok(b),
                    }
                }
            }
            bisect = !bisect && (b.t - a.t) > 0.5 * width;
        }
        Ok(b)
    }

    /// Integrates from snapshot `a` to `t_e` and fills `e` there.
    fn land(
        &mut self,
        field: &FrozenField<'_, '_>,
        a: &Snapshot,
        t_e: f64,
        e: &mut Snapshot,
        scratch: &mut [f64],
    ) -> Result<(), StopReason> {
        self.landings += 1;
        let mut y = DVector::from_column_slice(&a.y);
        let mut last_f = vec![0.0; a.y.len()];
        let observer = |_t: f64, _y: &[f64], f: &[f64]| {
            last_f.copy_from_slice(f);
            false
        };
        let r = self.int.advance(field, a.t, t_e, &mut y, observer);
        match r.halt {
            None => {}
            Some(Halt::Budget) => return Err(StopReason::StepBudget),
            Some(Halt::Underflow) => return Err(StopReason::StepSizeUnderflow),
            Some(Halt::Observer) => unreachable!("the landing observer never stops"),
        }
        let at = (t_e, y.as_slice(), &last_f[..]);
        e.fill(self.setup, field, at, scratch, &mut self.extra_evals);
        if y.iter().all(|v| v.is_finite()) {
            Ok(())
        } else {
            Err(StopReason::Diverged)
        }
    }

    /// Takes the state to the event snapshot and switches the mode there.
    fn apply(&mut self, at: Snapshot) -> Result<(), StopReason> {
        self.t = at.t;
        self.state.as_mut_slice().copy_from_slice(&at.y);
        let mut ws = Workspace::new(self.setup.model.dims, self.setup.m);
        let point = EventPoint::of_snapshot(self.setup, &at, &mut ws);
        event::handle(self.setup, &mut self.mode, &point, &mut self.events);
        self.zeno.note(at.t)
    }
}

/// The shortest stretch of time worth a solver step at time `t`: the
/// solvers declare a step size underflow a little below it.
fn shortest(t: f64) -> f64 {
    1e3 * f64::EPSILON * t.abs().max(1.0)
}

/// Whether every event function triggered between `a` and `e` is a
/// release within [`RELEASE_WINDOW`] (so no crossing came first).
fn earliest_is_only_release(
    setup: &Setup<'_>,
    mode: &Mode,
    a: &Snapshot,
    e: &Snapshot,
) -> bool {
    let crossing_first = {
        let mut only_crossings = e.clone();
        only_crossings.margins.iter_mut().for_each(|m| *m = 1.0);
        earliest(setup, mode, a, &only_crossings).is_some()
    };
    !crossing_first && e.margins.iter().all(|&m| m >= -RELEASE_WINDOW)
}
