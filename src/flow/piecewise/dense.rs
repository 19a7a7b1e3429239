//! The ReLU family's flow in pre-activation coordinates
//! ([`super::preact`]), with its events located on the solver's
//! continuous extension.
//!
//! The mode's field is integrated by our own Dopri5. After every accepted
//! step each free pair's pre-activation is bounded over the step by the
//! Bernstein coefficients of its continuous extension, a quartic per
//! component; a pair whose bounds reach past a kink by more than `atol`
//! has its first exit found on that quartic ([`super::locate`]). A sliding
//! pair's release margin at the step's end comes with the field's last
//! stage; one that has turned negative is followed back along the
//! continuous extension by regula falsi, each trial costing only the
//! sliding units' share of a field evaluation. The state at the earliest
//! event is read off the continuous extension, whose error is of the
//! order of the step's local error, and the integration restarts there
//! in the re-decided mode ([`super::event`]), with the sliding pairs put
//! exactly on their kinks.
//!
//! So an event costs the step that finds it and the restart's one
//! evaluation, where the weight-space path of [`super`] lands on the
//! event by integrating up to it again (two landings, a dozen
//! evaluations, per event).

use std::cell::{Cell, RefCell};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use ode_solvers::DVector;

use super::event::{self, EventPoint};
use super::locate::{curve_exit, illinois};
use super::mode::{Mode, Setup};
use super::preact::{Coordinates, HeldUnits, PreactField};
use super::watch::Lead;
use super::{Seen, ZenoWatch, event_counts, shortest};
use crate::flow::dopri5::Step;
use crate::flow::integrator::Integrator;
use crate::flow::smooth::{FlowData, FlowSettings};
use crate::network::{Model, Params};
use crate::trajectory::{KinkEvent, Outcome, Recorder, StopReason, Trajectory};

/// Integrates the piecewise-smooth flow of `model` from `init` in
/// pre-activation coordinates and saves it at `settings.save_times`, as
/// [`super::integrate`] does in weight space; `None` when the data set is
/// too large for these coordinates ([`super::preact::MAX_POINTS`]).
///
/// # Panics
/// If the solver is not our own Dopri5, or the activation has no kinks.
pub fn integrate(
    model: &Model,
    init: &Params,
    data: FlowData<'_>,
    settings: &FlowSettings,
    interrupt: &AtomicBool,
) -> Option<Trajectory> {
    assert!(
        !model.activation.is_smooth(),
        "{} has no kinks",
        model.activation
    );
    let clock = Instant::now();
    let (x, y) = data.training;
    let setup = Setup::new(model, x, y, settings.atol);
    let coords = Coordinates::new(&setup, init)?;
    let mut saver = Saver {
        recorder: Recorder::new(model, init, data.conditions, data.training),
        times: &settings.save_times,
        next: 0,
        last_t: f64::NEG_INFINITY,
        standard: vec![0.0; model.state_len()],
    };
    let mut run = Run::new(&setup, &coords, settings, interrupt);

    let mut reason = StopReason::Completed;
    while let Some(ts) = saver.pending() {
        if ts <= run.t {
            if !saver.save(&run, ts, run.y.as_slice()).is_finite() {
                reason = StopReason::Diverged;
                break;
            }
            continue;
        }
        if let Err(stop) = run.segment(&mut saver) {
            if saver.last_t < run.t {
                saver.save(&run, run.t, run.y.as_slice());
            }
            reason = stop;
            break;
        }
    }

    let counts = run.counts();
    let mut recorder = saver.recorder;
    recorder.trajectory.events = std::mem::take(&mut run.events);
    recorder.trajectory.preactivations = true;
    Some(recorder.finish(Outcome {
        reason,
        t_reached: run.t,
        counts,
        seconds: clock.elapsed().as_secs_f64(),
    }))
}

/// The saved times still to come and what records them.
struct Saver<'r, 'm> {
    recorder: Recorder<'m>,
    times: &'r [f64],
    next: usize,
    last_t: f64,
    /// The standard-layout state handed to the recorder.
    standard: Vec<f64>,
}

impl Saver<'_, '_> {
    /// The next saved time, if any.
    fn pending(&self) -> Option<f64> {
        self.times.get(self.next).copied()
    }

    /// Records the pre-activation state `y` at `t` with the mode's
    /// sliding counts and moves on to the next saved time; returns the
    /// loss.
    fn save(&mut self, run: &Run<'_, '_>, t: f64, y: &[f64]) -> f64 {
        self.save_in(run.setup, run.coords, &run.mode, t, y)
    }

    fn save_in(
        &mut self,
        setup: &Setup<'_>,
        coords: &Coordinates,
        mode: &Mode,
        t: f64,
        y: &[f64],
    ) -> f64 {
        coords.to_standard(y, &mut self.standard);
        let loss = self.recorder.record(t, None, &self.standard);
        let counts = mode.sliding_counts(setup.n);
        self.recorder.trajectory.sliding.extend(counts);
        self.next += 1;
        self.last_t = t;
        loss
    }
}

/// The running state of one integration.
struct Run<'s, 'a> {
    setup: &'s Setup<'a>,
    coords: &'s Coordinates,
    interrupt: &'s AtomicBool,
    int: Integrator,
    y: DVector<f64>,
    t: f64,
    mode: Mode,
    events: Vec<KinkEvent>,
    probes: u64,
    segments: u64,
    zeno: ZenoWatch,
    /// The sliding sets of the mode.
    held: HeldUnits,
    /// Whether `held` is up to date with `mode`.
    held_current: bool,
}

impl<'s, 'a> Run<'s, 'a> {
    fn new(
        setup: &'s Setup<'a>,
        coords: &'s Coordinates,
        settings: &FlowSettings,
        interrupt: &'s AtomicBool,
    ) -> Self {
        let y = DVector::from_vec(coords.initial_state());
        let mut u = vec![0.0; setup.n * setup.m];
        coords.by_point(y.as_slice(), &mut u);
        let mode = Mode::of(setup, &u);
        let int = Integrator::new(
            settings.solver,
            settings.rtol,
            settings.atol,
            settings.max_steps,
        );
        assert!(
            int.on_own_stepper(),
            "pre-activation flows need our own Dopri5"
        );
        Run {
            setup,
            coords,
            interrupt,
            int,
            y,
            t: 0.0,
            mode,
            events: Vec::new(),
            probes: 0,
            segments: 0,
            zeno: ZenoWatch::new(),
            held: HeldUnits::new(setup.n),
            held_current: false,
        }
    }

    /// The named counts of the outcome.
    fn counts(&self) -> Vec<(&'static str, u64)> {
        let own = ("probes", self.probes);
        event_counts(self.int.stats, 0, &self.events, self.segments, own)
    }

    /// Integrates in the current mode toward the last saved time, saving
    /// on the way, until the first event, and handles that event.
    fn segment(&mut self, saver: &mut Saver<'_, '_>) -> Result<(), StopReason> {
        let (setup, coords) = (self.setup, self.coords);
        let t_end = *saver.times.last().expect("a run has saved times");
        if t_end - self.t < shortest(self.t) {
            // Too short a stretch for a step; the state moves by less than
            // the rounding of the time.
            self.t = t_end;
            return Ok(());
        }
        if !self.held_current {
            self.hold_sets()?;
        }
        self.held_current = false;
        let field = PreactField::new(setup, coords, &self.mode, &self.held);
        self.segments += 1;

        let nm = setup.n * setup.m;
        let (mut lo, mut hi) = (vec![0.0; nm], vec![0.0; nm]);
        let mut buf = vec![0.0; self.y.len()];
        let mut at_event = vec![0.0; self.y.len()];
        let mut prev_margins: Option<Vec<f64>> = None;
        let mut end_margins = Vec::new();
        let mut seen = Seen::Nothing;
        let (mode, interrupt) = (&self.mode, self.interrupt);
        let probes = &mut self.probes;
        let observer = |step: &Step<'_>| {
            if let Some(stop) = Seen::before_events(step.y, step.f, interrupt) {
                seen = stop;
                return true;
            }
            field.last_margins(&mut end_margins);
            let mut best = earliest_crossing(setup, &field, step, &mut lo, &mut hi);
            let prev = prev_margins.as_deref();
            if let Some(r) =
                earliest_release(setup, &field, step, prev, &end_margins, probes)
            {
                if best.is_none_or(|(s, _)| r.0 < s) {
                    best = Some(r);
                }
            }

            let t_stop = best.map_or(step.t, |(s, _)| step.time_at(s));
            while let Some(ts) = saver.pending().filter(|&ts| ts <= t_stop) {
                let state = if ts >= step.t {
                    step.y
                } else {
                    step.interpolate(ts, &mut buf);
                    &buf[..]
                };
                if !saver.save_in(setup, coords, mode, ts, state).is_finite() {
                    seen = Seen::Diverged;
                    return true;
                }
            }
            match best {
                Some((s, _)) => {
                    if s >= 1.0 {
                        at_event.copy_from_slice(step.y);
                    } else {
                        step.interpolate(t_stop, &mut at_event);
                    }
                    seen = Seen::Event(t_stop);
                    true
                }
                None => {
                    let prev = prev_margins.get_or_insert_with(Vec::new);
                    std::mem::swap(prev, &mut end_margins);
                    false
                }
            }
        };
        let r = self
            .int
            .advance_dense(&field, self.t, t_end, &mut self.y, observer);
        self.t = r.t;
        let Some(t) = seen.ending(r.halt)? else {
            return Ok(());
        };
        self.t = t;
        self.y.as_mut_slice().copy_from_slice(&at_event);
        let mut margins = vec![0.0; field.sliding_pairs()];
        let mut errors = vec![0.0; setup.m * setup.k];
        field.margins_and_errors(self.y.as_slice(), &mut margins, &mut errors);
        self.probes += 1;
        drop(field);
        self.apply(&margins, &errors)
    }

    /// Brings the held sets up to the current mode.
    fn hold_sets(&mut self) -> Result<(), StopReason> {
        if self.held.update(self.setup, self.coords, &self.mode) {
            self.held_current = true;
            return Ok(());
        }
        Err(StopReason::Failed(format!(
            "the inputs held on one unit's kinks became linearly dependent at t = {}",
            self.t
        )))
    }

    /// Re-decides the mode at the event state and puts the sliding pairs
    /// exactly on their kinks.
    fn apply(&mut self, margins: &[f64], errors: &[f64]) -> Result<(), StopReason> {
        let (setup, coords) = (self.setup, self.coords);

        let y = self.y.as_slice();
        let mut u = vec![0.0; setup.n * setup.m];
        coords.by_point(y, &mut u);
        let point = EventPoint {
            t: self.t,
            u: &u,
            margins,
            errors,
            readout: coords.readout(y).0,
        };
        event::handle(setup, &mut self.mode, &point, &mut self.events);
        self.hold_sets()?;
        coords.hold_on_kinks(setup, &self.held, self.y.as_mut_slice());
        self.zeno.note(self.t)
    }
}

/// The earliest crossing of a kink by a free pair within the step, as the
/// fraction of the step, or `None`. `lo` and `hi` are scratch for the
/// bounds of every pre-activation over the step; only the pairs whose
/// bounds reach a kink of their piece by more than the tolerance have
/// their continuous extension searched.
fn earliest_crossing(
    setup: &Setup<'_>,
    field: &PreactField<'_, '_>,
    step: &Step<'_>,
    lo: &mut [f64],
    hi: &mut [f64],
) -> Option<(f64, Lead)> {
    step.ranges(lo, hi);
    let tol = setup.tol_u;
    let (n, m) = (setup.n, setup.m);
    let mut best: Option<(f64, Lead)> = None;
    for at in reaching(lo, hi, &field.below, &field.above, tol) {
        let (i, c) = (at / m, at % m);
        let pair = c * n + i;
        let exits = [
            (lo[at] < field.below[at] - tol).then(|| (field.below[at], 1.0)),
            (hi[at] > field.above[at] + tol).then(|| (field.above[at], -1.0)),
        ];
        for (kink_at, sign) in exits.into_iter().flatten() {
            let curve = step.curve(at).affine(kink_at, sign);
            if let Some(s) = curve_exit(&curve, tol) {
                if best.is_none_or(|(b, _)| s < b) {
                    let kink = setup
                        .kinks
                        .iter()
                        .position(|k| k.at == kink_at)
                        .expect("a piece is bounded by kinks");
                    best = Some((s, Lead::Crossing { pair, kink }));
                }
            }
        }
    }
    best
}

/// The state indices whose bounds `[lo, hi]` over the step reach past a
/// bounding kink by more than `tol`, found eight at a time.
fn reaching<'v>(
    lo: &'v [f64],
    hi: &'v [f64],
    below: &'v [f64],
    above: &'v [f64],
    tol: f64,
) -> impl Iterator<Item = usize> + 'v {
    let out = move |s: usize| lo[s] < below[s] - tol || hi[s] > above[s] + tol;
    (0..lo.len().div_ceil(8)).flat_map(move |ch| {
        let range = ch * 8..(ch * 8 + 8).min(lo.len());
        let any = range.clone().fold(false, |a, s| a | out(s));
        range.filter(move |&s| any && out(s))
    })
}

/// The earliest release of a sliding pair within the step, as the
/// fraction of the step, or `None`: a margin below `-tol_alpha` at the
/// step's end is followed back along the continuous extension to where it
/// passes `-2 tol_alpha` (past the tolerance, so that a coefficient that
/// starts right at the end of its interval is released inside the step).
/// `prev` holds the margins at the step's start when known (not on a
/// segment's first step); every trial state counts as a probe.
fn earliest_release(
    setup: &Setup<'_>,
    field: &PreactField<'_, '_>,
    step: &Step<'_>,
    prev: Option<&[f64]>,
    end: &[f64],
    probes: &mut u64,
) -> Option<(f64, Lead)> {
    if end.iter().all(|&m| m >= -setup.tol_alpha) {
        return None;
    }
    let aim = 2.0 * setup.tol_alpha;
    let trials = Cell::new(0u64);
    let scratch = RefCell::new((
        vec![0.0; step.y.len()],
        vec![0.0; end.len()],
        vec![0.0; setup.m * setup.k],
    ));
    let margin_at = |slot: usize, s: f64| {
        let mut guard = scratch.borrow_mut();
        let (y, margins, errors) = &mut *guard;
        step.interpolate(step.time_at(s), y);
        field.margins_and_errors(y, margins, errors);
        trials.set(trials.get() + 1);
        margins[slot]
    };

    let mut best: Option<(f64, Lead)> = None;
    for slot in (0..end.len()).filter(|&slot| end[slot] < -setup.tol_alpha) {
        let s = if end[slot] + aim >= 0.0 {
            1.0
        } else {
            let start = prev.map_or_else(|| margin_at(slot, 0.0), |p| p[slot]);
            if start + aim <= 0.0 {
                0.0
            } else {
                illinois(|s| margin_at(slot, s) + aim, 0.0, 1.0, 1e-12)
            }
        };
        if best.is_none_or(|(b, _)| s < b) {
            best = Some((s, Lead::Release { slot }));
        }
    }
    *probes += trials.get();
    best
}
