//! Tests of the piecewise-smooth flow against a hand-derived sliding
//! solution, against gradient descent extrapolated to zero step, and of
//! its invariants.

use std::sync::atomic::AtomicBool;

use faer::MatRef;
use rand_distr::{Distribution, Normal};

use super::mode::Pair;
use super::*;
use crate::activation::Activation;
use crate::flow::integrator::Solver;
use crate::network::{Dims, Loss, Workspace};
use crate::plan::Plan;
use crate::scenario::{Scenario, Source};
use crate::seed;
use crate::task::Task;
use crate::task::cube::{CubeSpec, Spectrum, cube, max_alignment};
use crate::trajectory::log_spaced_times;

fn settings(rtol: f64, atol: f64, save_times: Vec<f64>) -> FlowSettings {
    FlowSettings {
        solver: Solver::Dop853,
        rtol,
        atol,
        max_steps: 2_000_000,
        save_times,
        reduced: false,
        plain_kinks: false,
        preactivations: false,
    }
}

fn run(
    model: &Model,
    init: &Params,
    x: MatRef<'_, f64>,
    y: MatRef<'_, f64>,
    s: &FlowSettings,
) -> (Trajectory, Diagnostics) {
    let data = FlowData {
        training: (x, y),
        conditions: (x, y),
    };
    run_flow(model, init, data, s, &AtomicBool::new(false))
}

/// The two ways the piecewise flow is integrated.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Path {
    /// In weight space, events landed on ([`run_flow`]).
    Weights,
    /// In pre-activation coordinates, events on the continuous extension
    /// ([`super::dense`]; always Dopri5).
    Preactivations,
}

const PATHS: [Path; 2] = [Path::Weights, Path::Preactivations];

/// The flow of `model` on `path` trained and evaluated on `x`, `y`, with
/// the largest drift of a sliding pair off its kink (none in
/// pre-activation coordinates, where sliding pairs do not move).
fn flow(
    path: Path,
    model: &Model,
    init: &Params,
    x: MatRef<'_, f64>,
    y: MatRef<'_, f64>,
    s: &FlowSettings,
) -> (Trajectory, Diagnostics) {
    match path {
        Path::Weights => run(model, init, x, y, s),
        Path::Preactivations => {
            let mut s = s.clone();
            s.solver = Solver::Dopri5;
            let data = FlowData {
                training: (x, y),
                conditions: (x, y),
            };
            let tr = dense::integrate(model, init, data, &s, &AtomicBool::new(false))
                .expect("few data points");
            (tr, Diagnostics::default())
        }
    }
}

fn count(tr: &Trajectory, name: &str) -> u64 {
    let counts = &tr.outcome.as_ref().unwrap().counts;
    counts.iter().find(|(n, _)| *n == name).unwrap().1
}

/// The two-condition problem of the first test: one bounded-ReLU unit
/// (`ub = 1`), `D = 1`, readout frozen at `J = 1`, `b_out = 0`, MSE.
///
/// Conditions `x_1 = 1`, `y_1 = 2` and `x_2 = -0.8`, `y_2 = -1`, from
/// `u(0) = (0.05, 0.3)`. Write `G` for the Gram matrix of `(x_c, 1)`:
/// `[[2, 0.2], [0.2, 1.64]]`. With `e_c = z_c - y_c` and `s_c = f'(u_c)`,
/// `du/dt = -(1/2) G (s * e)`.
///
/// Phase A (both on the middle piece, `h = u`): `du/dt = -(1/2) G (u - y)`,
/// so `u(t) = y + exp(-G t / 2) (u(0) - y)`; `u_2` falls and reaches the
/// kink 0 at `t_a` (`u_2(t_a) = 0`), with `u_1(t_a)` about 0.68 < 1.
///
/// Phase B (pair 2 held at 0): its coefficient `beta_2 = e_2 alpha_2`
/// must cancel condition 1's push, `G_21 e_1 + G_22 beta_2 = 0`, so
/// `alpha_2 = -e_1 G_12 / (G_22 e_2)` with `e_2 = 0 - y_2 = 1`, which is
/// in `(0, 1)` (sliding, not crossing). Then `du_1/dt = -(1/2) kappa e_1`
/// with `kappa = G_11 - G_12^2 / G_22 = (x_1 - x_2)^2 / (x_2^2 + 1)`:
/// `u_1(t) = 2 - (2 - u_1(t_a)) exp(-kappa (t - t_a) / 2)`, `u_2 = 0`.
///
/// Release: `u_1` reaches the upper kink 1 at
/// `t_r = t_a + (2 / kappa) ln((2 - u_1(t_a)) / (2 - 1))`. There the
/// unit's pairs are re-decided together: pair 1 goes onto the saturated
/// piece (slope 0, its own field no longer pushes it), so nothing drives
/// pair 2 any more, its coefficient drops to 0, the end of its interval,
/// and it leaves the kink. The field vanishes: the state is fixed after.
struct Handmade {
    x: [f64; 2],
    y: [f64; 2],
    u0: [f64; 2],
}

const HAND: Handmade = Handmade {
    x: [1.0, -0.8],
    y: [2.0, -1.0],
    u0: [0.05, 0.3],
};

impl Handmade {
    fn gram(&self) -> [[f64; 2]; 2] {
        let [a, b] = self.x;
        [[a * a + 1.0, a * b + 1.0], [a * b + 1.0, b * b + 1.0]]
    }

    /// `(w, b)` from the pre-activations of the two conditions.
    fn params(&self, u: [f64; 2]) -> (f64, f64) {
        let w = (u[0] - u[1]) / (self.x[0] - self.x[1]);
        (w, u[0] - w * self.x[0])
    }

    /// Phase A: `y + V exp(-Lambda t / 2) V^T (u0 - y)`, from the
    /// eigenvectors of the symmetric 2 x 2 Gram matrix.
    fn phase_a(&self, t: f64) -> [f64; 2] {
        let g = self.gram();
        let (p, q, r) = (g[0][0], g[0][1], g[1][1]);
        let mean = 0.5 * (p + r);
        let rad = (0.25 * (p - r) * (p - r) + q * q).sqrt();
        let mut out = self.y;
        for lam in [mean + rad, mean - rad] {
            let v = [q, lam - p];
            let norm = (v[0] * v[0] + v[1] * v[1]).sqrt();
            let v = [v[0] / norm, v[1] / norm];
            let d = [self.u0[0] - self.y[0], self.u0[1] - self.y[1]];
            let coef = (v[0] * d[0] + v[1] * d[1]) * (-0.5 * lam * t).exp();
            out[0] += coef * v[0];
            out[1] += coef * v[1];
        }
        out
    }

    /// `t_a`, where `u_2` reaches 0, by bisection on the closed form.
    fn arrival(&self) -> f64 {
        let (mut lo, mut hi) = (0.0, 5.0);
        while hi - lo > 1e-15 {
            let mid = 0.5 * (lo + hi);
            if self.phase_a(mid)[1] > 0.0 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    }

    fn kappa(&self) -> f64 {
        let [a, b] = self.x;
        (a - b) * (a - b) / (b * b + 1.0)
    }

    /// Phase B: `u` at `t >= t_a`, until the release.
    fn phase_b(&self, t: f64) -> [f64; 2] {
        let ta = self.arrival();
        let u1a = self.phase_a(ta)[0];
        let y1 = self.y[0];
        [
            y1 - (y1 - u1a) * (-0.5 * self.kappa() * (t - ta)).exp(),
            0.0,
        ]
    }

    fn release(&self) -> f64 {
        let ta = self.arrival();
        let u1a = self.phase_a(ta)[0];
        ta + 2.0 / self.kappa() * ((self.y[0] - u1a) / (self.y[0] - 1.0)).ln()
    }
}

#[test]
fn a_hand_derived_sliding_episode_is_followed_from_arrival_to_release() {
    let h = HAND;
    let (ta, tr) = (h.arrival(), h.release());
    assert!(ta > 0.2 && tr > ta + 0.1 && tr < 2.0, "{ta} {tr}");
    let (w0, b0) = h.params(h.u0);
    let dims = Dims {
        inputs: 1,
        hidden: 1,
        outputs: 1,
    };
    let init = Params {
        dims,
        w: vec![w0],
        b: vec![b0],
        j: vec![1.0],
        b_out: vec![0.0],
    };
    let act = Activation::BoundedRelu { ub: 1.0 };
    let model = Model::new(act, Loss::Mse, &init, false);
    let (x, y) = (h.x, h.y);
    let xm = MatRef::from_column_major_slice(&x, 1, 2);
    let ym = MatRef::from_column_major_slice(&y, 1, 2);
    let times = vec![
        0.0,
        0.5 * ta,
        ta + 0.3 * (tr - ta),
        ta + 0.9 * (tr - ta),
        3.0,
    ];
    for path in PATHS {
        let s = settings(1e-12, 1e-14, times.clone());
        let (tr_, _) = flow(path, &model, &init, xm, ym, &s);
        check_hand_derived(&h, &times, &tr_, path);
    }
}

/// The events and weights of the hand-derived episode against its closed
/// form.
fn check_hand_derived(h: &Handmade, times: &[f64], tr_: &Trajectory, path: Path) {
    let (ta, tr) = (h.arrival(), h.release());
    assert_eq!(
        tr_.outcome.as_ref().unwrap().reason,
        StopReason::Completed,
        "{path:?}"
    );

    // Arrival of condition 1 (index 1) on kink 0, then the release of it
    // and the crossing of condition 0 into saturation at the same time.
    let ev = &tr_.events;
    assert_eq!(ev.len(), 3, "{ev:?}");
    assert_eq!(
        (ev[0].point, ev[0].kink, ev[0].kind),
        (1, 0, EventKind::StartSliding)
    );
    assert!(
        (ev[0].t - ta).abs() < 1e-9,
        "{path:?}: arrival {} vs {ta}",
        ev[0].t
    );
    let at_release: Vec<_> = ev[1..].iter().map(|e| (e.point, e.kink, e.kind)).collect();
    assert!(at_release.contains(&(0, 1, EventKind::CrossUp)), "{ev:?}");
    assert!(
        at_release.contains(&(1, 0, EventKind::LeaveSliding)),
        "{ev:?}"
    );
    for e in &ev[1..] {
        assert!((e.t - tr).abs() < 1e-8, "{path:?}: release {} vs {tr}", e.t);
    }

    // The weights along the way: phase A, along the surface, and frozen
    // at u = (1, 0) after the release.
    let expect = [
        h.phase_a(0.0),
        h.phase_a(times[1]),
        h.phase_b(times[2]),
        h.phase_b(times[3]),
        [1.0, 0.0],
    ];
    for (s, u) in expect.iter().enumerate() {
        let (w, b) = h.params(*u);
        assert!(
            (tr_.w[s] - w).abs() < 1e-8,
            "{path:?}: w at {}: {} vs {w}",
            times[s],
            tr_.w[s]
        );
        assert!(
            (tr_.b[s] - b).abs() < 1e-8,
            "{path:?}: b at {}: {} vs {b}",
            times[s],
            tr_.b[s]
        );
    }
    assert_eq!(tr_.sliding, vec![0, 0, 1, 1, 0], "{path:?}");
    assert_eq!(count(tr_, "sliding_episodes"), 1, "{path:?}");
    assert_eq!(tr_.preactivations, path == Path::Preactivations);
}

/// The paper-size cube net: `d = 3`, `k = 1`, `c = c_max / 2`, `D = 100`,
/// `N = 128`, BCE, readout frozen, `W, b ~ N(0, 1/D)`, `J, b_out ~
/// N(0, 1/N)`.
pub(super) fn paper_net() -> (Task, Params, Model) {
    let task = cube(CubeSpec {
        d: 3,
        k: 1,
        alignment: 0.5 * max_alignment(3, 1),
        dim: 100,
        seed: 0,
        spectrum: Spectrum::Deterministic,
    });
    let dims = Dims {
        inputs: 100,
        hidden: 128,
        outputs: 1,
    };
    let init = random_init(dims, 0);
    let model = Model::new(Activation::Relu, Loss::Bce, &init, false);
    (task, init, model)
}

fn random_init(dims: Dims, seed_value: u64) -> Params {
    let mut rng = seed::stream(seed_value, "init");
    let (d, n, k) = (dims.inputs, dims.hidden, dims.outputs);
    let first = Normal::new(0.0, (1.0 / d as f64).sqrt()).unwrap();
    let second = Normal::new(0.0, (1.0 / n as f64).sqrt()).unwrap();
    let mut draw = |dist: &Normal<f64>, count: usize| -> Vec<f64> {
        (0..count).map(|_| dist.sample(&mut rng)).collect()
    };
    Params {
        dims,
        w: draw(&first, n * d),
        b: draw(&first, n),
        j: draw(&second, k * n),
        b_out: draw(&second, k),
    }
}

/// Full-batch gradient descent to time `t` with step `eta`.
fn gradient_descent(
    model: &Model,
    init: &Params,
    task: &Task,
    eta: f64,
    t: f64,
) -> Vec<f64> {
    let (x, y) = (task.inputs_view(), task.targets_view());
    let mut ws = Workspace::new(model.dims, x.ncols());
    let mut state = init.to_state(model.trains_readout());
    let mut grad = vec![0.0; state.len()];
    let steps = (t / eta).round() as usize;
    assert!((steps as f64 * eta - t).abs() < 1e-9 * t);
    for _ in 0..steps {
        model.loss_grad(&state, x, y, &mut ws, Some(&mut grad));
        state.iter_mut().zip(&grad).for_each(|(s, g)| *s -= eta * g);
    }
    state
}

fn relative_gap(a: &[f64], b: &[f64]) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let size: f64 = b.iter().map(|x| x * x).sum();
    (diff / size).sqrt()
}

/// The flow at `t` against GD at `eta`, `eta/2`, `eta/4`: the gaps shrink
/// about linearly and the Richardson extrapolation `2 GD(eta/4) -
/// GD(eta/2)` agrees with the flow to `tol`. Returns the flow's trajectory.
#[allow(clippy::too_many_arguments)]
fn check_against_gd(
    path: Path,
    task: &Task,
    init: &Params,
    model: &Model,
    t: f64,
    eta: f64,
    tol: f64,
) -> Trajectory {
    let (x, y) = (task.inputs_view(), task.targets_view());
    let s = settings(1e-10, 1e-12, vec![0.0, t]);
    let (flow, _) = flow(path, model, init, x, y, &s);
    assert_eq!(flow.outcome.as_ref().unwrap().reason, StopReason::Completed);
    let mut end = init.clone();
    let last = |all: &[f64], part: &mut Vec<f64>| {
        let len = part.len();
        part.copy_from_slice(&all[all.len() - len..]);
    };
    last(&flow.w, &mut end.w);
    last(&flow.b, &mut end.b);
    if model.trains_readout() {
        last(&flow.j, &mut end.j);
        last(&flow.b_out, &mut end.b_out);
    }
    let theta = end.to_state(model.trains_readout());

    let gd: Vec<Vec<f64>> = [1.0, 0.5, 0.25]
        .iter()
        .map(|f| gradient_descent(model, init, task, eta * f, t))
        .collect();
    let gaps: Vec<f64> = gd.iter().map(|g| relative_gap(g, &theta)).collect();
    eprintln!("{path:?}: GD gaps at eta, eta/2, eta/4: {gaps:?}");
    // GD chatters across the kinks of sliding pairs, so the gap is linear
    // in eta only on average: it falls at every halving, and by more than
    // half over the two.
    assert!(gaps[1] < gaps[0] && gaps[2] < gaps[1], "{gaps:?}");
    assert!(gaps[2] < 0.5 * gaps[0], "{gaps:?}");
    let rich: Vec<f64> = gd[2].iter().zip(&gd[1]).map(|(a, b)| 2.0 * a - b).collect();
    let gap = relative_gap(&rich, &theta);
    eprintln!("{path:?}: Richardson 2 GD(eta/4) - GD(eta/2) against the flow: {gap:e}");
    assert!(gap < tol, "extrapolated gap {gap:e}, GD gaps {gaps:?}");
    flow
}

#[test]
fn a_small_net_with_sliding_agrees_with_extrapolated_gradient_descent() {
    // Four conditions in D = 5, N = 6 units, BCE: small enough that some
    // units hold conditions on the kink for a while.
    let task = cube(CubeSpec {
        d: 2,
        k: 1,
        alignment: 0.5 * max_alignment(2, 1),
        dim: 5,
        seed: 3,
        spectrum: Spectrum::Deterministic,
    });
    let dims = Dims {
        inputs: 5,
        hidden: 6,
        outputs: 1,
    };
    let init = random_init(dims, 7);
    let model = Model::new(Activation::Relu, Loss::Bce, &init, false);
    for path in PATHS {
        let flow = check_against_gd(path, &task, &init, &model, 5.0, 0.002, 1e-4);
        assert!(count(&flow, "sliding_episodes") > 0, "{:?}", flow.events);

        // With the readout trained as well: J's gradient sees only h, which
        // is continuous across the kinks, so the same scheme applies.
        let trained = Model::new(Activation::Relu, Loss::Bce, &init, true);
        let flow = check_against_gd(path, &task, &init, &trained, 5.0, 0.002, 1e-4);
        assert!(count(&flow, "events") > 0);
    }
}

#[test]
fn the_paper_size_cube_net_agrees_with_extrapolated_gradient_descent() {
    let (task, init, model) = paper_net();
    for path in PATHS {
        let flow = check_against_gd(path, &task, &init, &model, 20.0, 0.005, 1e-4);
        let sliding: u32 = flow.sliding[flow.sliding.len() - 128..].iter().sum();
        eprintln!(
            "{path:?}: paper net to t = 20: {} events, {} rhs evals, {sliding} sliding pairs",
            count(&flow, "events"),
            count(&flow, "rhs_evals")
        );
        assert!(count(&flow, "events") > 20 && sliding > 5);
    }
}

#[test]
fn the_same_input_gives_the_same_events_bit_for_bit() {
    let (task, init, model) = paper_net();
    let (x, y) = (task.inputs_view(), task.targets_view());
    let s = settings(1e-8, 1e-10, vec![0.0, 1.0, 5.0]);
    for path in PATHS {
        let (a, _) = flow(path, &model, &init, x, y, &s);
        let (b, _) = flow(path, &model, &init, x, y, &s);
        assert!(!a.events.is_empty());
        assert_eq!(a.events, b.events);
        assert_eq!(a.w, b.w);
        assert_eq!(a.sliding, b.sliding);
    }
}

#[test]
fn sliding_pairs_stay_on_their_kinks_and_the_loss_never_rises_to_t_1000() {
    for path in PATHS {
        sliding_pairs_stay_on_their_kinks(path);
    }
}

fn sliding_pairs_stay_on_their_kinks(path: Path) {
    let (task, init, model) = paper_net();
    let (x, y) = (task.inputs_view(), task.targets_view());
    let atol = 1e-10;
    let times = crate::trajectory::log_spaced_times(1000.0, 60, 4.0);
    let s = settings(1e-8, atol, times.clone());
    let (first, drift) = flow(path, &model, &init, x, y, &s);
    assert_eq!(
        first.outcome.as_ref().unwrap().reason,
        StopReason::Completed,
        "{path:?}"
    );
    assert!(
        drift.max_drift < atol,
        "{path:?}: drift {:e}",
        drift.max_drift
    );

    // The same flow saved at every event time as well: the loss falls.
    let mut at_events: Vec<f64> = first.events.iter().map(|e| e.t).collect();
    at_events.extend(&times);
    at_events.sort_by(f64::total_cmp);
    at_events.dedup();
    let (tr, drift) = flow(path, &model, &init, x, y, &settings(1e-8, atol, at_events));
    assert_eq!(tr.outcome.as_ref().unwrap().reason, StopReason::Completed);
    assert!(
        drift.max_drift < atol,
        "{path:?}: drift {:e}",
        drift.max_drift
    );
    for (s, pair) in tr.loss.windows(2).enumerate() {
        let slack = 1e-9 * pair[0];
        assert!(
            pair[1] <= pair[0] + slack,
            "{path:?}: loss rose at t = {}: {pair:?}",
            tr.t[s + 1]
        );
    }

    // At every saved time of the first run (none of them an event) the
    // units' sliding counts are exactly the pairs whose pre-activation sits
    // on the kink.
    let tr = first;
    let (n, d, p) = (128, 100, task.conditions());
    let mut held = 0;
    for s in 0..tr.len() {
        for i in 0..n {
            let w = &tr.w[(s * n + i) * d..(s * n + i + 1) * d];
            let b = tr.b[s * n + i];
            let on = (0..p)
                .filter(|&c| {
                    let x = &task.inputs[c * d..(c + 1) * d];
                    let u: f64 = w.iter().zip(x).map(|(a, b)| a * b).sum::<f64>() + b;
                    u.abs() < atol
                })
                .count() as u32;
            assert_eq!(
                on,
                tr.sliding[s * n + i],
                "{path:?}: unit {i} at t = {}",
                tr.t[s]
            );
            held += on;
        }
    }
    assert!(held > 0);
    eprintln!(
        "{path:?}: paper net to t = 1000: {} events, {} rhs evals, {} sliding at the end",
        count(&tr, "events"),
        count(&tr, "rhs_evals"),
        tr.sliding[tr.sliding.len() - n..].iter().sum::<u32>()
    );
}

#[test]
fn a_small_step_budget_ends_the_run_with_its_reason_and_last_state() {
    let (task, init, model) = paper_net();
    let (x, y) = (task.inputs_view(), task.targets_view());
    let mut s = settings(1e-8, 1e-10, vec![0.0, 10.0, 1000.0]);
    s.max_steps = 40;
    for path in PATHS {
        let (tr, _) = flow(path, &model, &init, x, y, &s);
        let outcome = tr.outcome.as_ref().unwrap();
        assert_eq!(outcome.reason, StopReason::StepBudget, "{path:?}");
        assert!(outcome.t_reached > 0.0 && outcome.t_reached < 10.0);
        assert_eq!(*tr.t.last().unwrap(), outcome.t_reached);
        assert_eq!(tr.sliding.len(), 128 * tr.len());
    }
}

#[test]
fn a_flow_on_noisy_samples_runs_through_its_events_with_falling_loss() {
    let task = cube(CubeSpec {
        d: 3,
        k: 1,
        alignment: 0.5 * max_alignment(3, 1),
        dim: 20,
        seed: 1,
        spectrum: Spectrum::Deterministic,
    });
    let samples = task.samples(200, 1.0, &mut seed::stream(1, "samples"));
    let dims = Dims {
        inputs: 20,
        hidden: 8,
        outputs: 1,
    };
    let init = random_init(dims, 2);
    let model = Model::new(Activation::Relu, Loss::Bce, &init, false);
    let data = FlowData {
        training: (samples.inputs_view(), samples.targets_view()),
        conditions: (task.inputs_view(), task.targets_view()),
    };
    let times = crate::trajectory::log_spaced_times(20.0, 20, 3.0);
    let s = settings(1e-8, 1e-10, times);
    let (tr, drift) = run_flow(&model, &init, data, &s, &AtomicBool::new(false));
    assert_eq!(tr.outcome.as_ref().unwrap().reason, StopReason::Completed);
    assert!(drift.max_drift < 1e-10, "{:e}", drift.max_drift);
    assert!(count(&tr, "events") > 10, "{:?}", tr.outcome);
    for pair in tr.train_loss.windows(2) {
        assert!(pair[1] <= pair[0] * (1.0 + 1e-9), "{pair:?}");
    }
    eprintln!("noisy samples: {:?}", tr.outcome);
}

/// One ReLU unit in `D = 2` with `w = (0, 1)` and `b = 0`, readout frozen
/// at `J = 1`, MSE, two conditions: `x_0 = (1, 0)` sits exactly on the
/// kink with error `g_0 = 0 - (-1) = 1`, and `x_1 = (-0.5, 1)` is active
/// (`u_1 = 1`) with error `g_1 = 1 - 0.5 = 0.5`.
///
/// Condition 1 pushes `u_0` at `-(g_1 / 2) (x_1 . x_0 + 1) = -0.125` when
/// the bias learns (the `+ 1` is the bias's share), so from below the kink
/// too `u_0` falls: it stays off the kink. With the bias frozen the push is
/// `-(g_1 / 2) x_1 . x_0 = +0.125`, against `0.125 - g_0 |x_0|^2 / 2 =
/// -0.375` from above: it slides, with `alpha_0 = 0.125 * 2 / (g_0 |x_0|^2)
/// = 0.25`.
fn arrival(train_bias: bool) -> (Vec<Pair>, Option<(f64, f64)>) {
    let dims = Dims {
        inputs: 2,
        hidden: 1,
        outputs: 1,
    };
    let init = Params {
        dims,
        w: vec![0.0, 1.0],
        b: vec![0.0],
        j: vec![1.0],
        b_out: vec![0.0],
    };
    let mut model = Model::new(Activation::Relu, Loss::Mse, &init, false);
    model.train_bias = train_bias;
    let (x, y) = ([1.0, 0.0, -0.5, 1.0], [-1.0, 0.5]);
    let xm = MatRef::from_column_major_slice(&x, 2, 2);
    let ym = MatRef::from_column_major_slice(&y, 1, 2);
    let setup = Setup::new(&model, xm, ym, 1e-10);
    let state = init.to_state(false);
    let mut u = vec![0.0; 2];
    setup.pre_activations(&state, &mut u);
    let mut mode = Mode::of(&setup, &u);

    let field = FrozenField::new(&setup, &mode).unwrap();
    let mut f = vec![0.0; state.len()];
    field.eval(&state, &mut f);
    let mut snap = Snapshot::new(&setup, state.len(), &field);
    let mut scratch = vec![0.0; state.len()];
    snap.fill(&setup, &field, (0.0, &state, &f), &mut scratch, &mut 0);
    let mut ws = Workspace::new(dims, 2);
    let point = event::EventPoint::of_snapshot(&setup, &snap, &mut ws);
    event::handle(&setup, &mut mode, &point, &mut Vec::new());

    // What the field of the decided mode does to u_0: its velocity and,
    // when it slides, its release margin.
    let field = FrozenField::new(&setup, &mode).unwrap();
    field.eval(&state, &mut f);
    let mut du = vec![0.0; 2];
    setup.pre_activations(&f, &mut du);
    let sliding = (field.sliding_pairs() == 1).then(|| {
        let mut margin = [0.0];
        field.margins_at(&state, &mut scratch, &mut margin, &mut 0);
        (du[0], margin[0])
    });
    (mode.pairs, sliding)
}

#[test]
fn an_arrival_on_a_kink_is_decided_with_the_bias_push_only_when_the_bias_learns() {
    let (pairs, sliding) = arrival(true);
    assert_eq!(pairs, vec![Pair::Free(0), Pair::Free(1)]);
    assert!(sliding.is_none());

    // Frozen: the decision must see the velocities the frozen field
    // integrates, or the field's coefficient lies outside its interval
    // from the segment's first instant and the release repeats forever.
    let (pairs, sliding) = arrival(false);
    assert_eq!(pairs, vec![Pair::Sliding(0), Pair::Free(1)]);
    let (du0, margin) = sliding.unwrap();
    assert!(du0.abs() < 1e-15, "{du0}");
    assert!((margin - 0.25).abs() < 1e-15, "{margin}");
}

/// The Fig. 1 protocol as `scenarios/ci/fig1.toml` runs it: the
/// four-condition task in `D = 20`, `N = 32` ReLU units, `W ~ U(-1/sqrt(D),
/// 1/sqrt(D))`, hidden biases zero and frozen, balanced frozen readout.
fn fig1_net(seed: u64) -> (Task, Params, Model) {
    let text = format!(
        "[task]\nkind = \"fig1\"\ndim = 20\n\
         [network]\nactivations = [\"relu\"]\nhidden = 32\ntrain_bias = false\n\
         [init]\nscheme = \"fig1\"\n[seeds]\nnetworks = [{seed}]\n"
    );
    let src = Source {
        file: "fig1.toml".into(),
        text,
    };
    let plan = Plan::build(Scenario::parse(&src).unwrap(), src).unwrap();
    let run = plan.runs.into_iter().next().unwrap();
    (plan.task, run.init, run.model)
}

fn assert_loss_never_rises(tr: &Trajectory, what: &str) {
    for (s, pair) in tr.loss.windows(2).enumerate() {
        assert!(
            pair[1] <= pair[0] * (1.0 + 1e-9),
            "{what}: loss rose at t = {}: {pair:?}",
            tr.t[s + 1]
        );
    }
}

#[test]
fn the_fig1_protocol_with_frozen_zero_biases_flows_to_the_end_with_falling_loss() {
    // Before the event decision left frozen biases out of the velocities,
    // seed 0 stopped in a Zeno cascade at t = 0.18 and seed 1 at t = 2.6.
    let atol = 1e-10;
    for (seed, path) in [0, 1].into_iter().flat_map(|s| PATHS.map(|p| (s, p))) {
        let (task, init, model) = fig1_net(seed);
        assert!(!model.train_bias && init.b.iter().all(|&b| b == 0.0));
        let (x, y) = (task.inputs_view(), task.targets_view());
        let times = log_spaced_times(200.0, 30, 4.0);
        let s = settings(1e-8, atol, times.clone());
        let (first, drift) = flow(path, &model, &init, x, y, &s);
        let outcome = first.outcome.as_ref().unwrap();
        assert_eq!(
            outcome.reason,
            StopReason::Completed,
            "seed {seed}, {path:?}"
        );
        assert!(
            drift.max_drift < atol,
            "seed {seed}: drift {:e}",
            drift.max_drift
        );
        assert!(count(&first, "sliding_episodes") > 0, "seed {seed}");
        assert!(
            first.b.iter().all(|&b| b == 0.0),
            "seed {seed}: a bias moved"
        );
        eprintln!("fig1 seed {seed}, {path:?}: {:?}", outcome.counts);

        // Saved at every event as well, in full and reduced coordinates.
        let mut at_events: Vec<f64> = first.events.iter().map(|e| e.t).collect();
        at_events.extend(&times);
        at_events.sort_by(f64::total_cmp);
        at_events.dedup();
        for reduced in [false, true] {
            let mut s = settings(1e-8, atol, at_events.clone());
            s.reduced = reduced;
            s.preactivations = path == Path::Preactivations;
            if s.preactivations {
                s.solver = Solver::Dopri5;
            }
            let data = FlowData {
                training: (x, y),
                conditions: (x, y),
            };
            let tr =
                crate::flow::integrate(&model, &init, data, &s, &AtomicBool::new(false));
            let what = format!("seed {seed}, {path:?}, reduced {reduced}");
            let outcome = tr.outcome.as_ref().unwrap();
            assert_eq!(outcome.reason, StopReason::Completed, "{what}");
            assert_eq!(tr.reduced_rank > 0, reduced, "{what}");
            assert_eq!(tr.preactivations, s.preactivations, "{what}");
            assert!(tr.b.iter().all(|&b| b == 0.0), "{what}: a bias moved");
            assert_loss_never_rises(&tr, &what);
        }
    }
}

#[test]
fn the_fig1_flow_with_frozen_biases_agrees_with_extrapolated_gradient_descent() {
    let (task, init, model) = fig1_net(1);
    for path in PATHS {
        let flow = check_against_gd(path, &task, &init, &model, 5.0, 0.002, 1e-4);
        assert!(count(&flow, "sliding_episodes") > 0, "{:?}", flow.events);
    }
}

/// A network of the study's alignment sweeps as the CLI builds it: the
/// cube with `d` bits and `k` targets at `c = c_fraction c_max`, `D =
/// 100`, 128 ReLU units, network seed `seed`.
pub(super) fn study_net(
    d: usize,
    k: usize,
    c_fraction: f64,
    seed: u64,
) -> (Task, Params, Model) {
    let text = format!(
        "[task]\nkind = \"cube\"\nd = {d}\nk = {k}\nc_fraction = {c_fraction}\n\
         [network]\nactivations = [\"relu\"]\n[seeds]\nnetworks = [{seed}]\n"
    );
    let src = Source {
        file: "study.toml".into(),
        text,
    };
    let plan = Plan::build(Scenario::parse(&src).unwrap(), src).unwrap();
    let run = plan.runs.into_iter().next().unwrap();
    (plan.task, run.init, run.model)
}

#[test]
fn study_nets_whose_pairs_leave_their_kinks_at_rest_flow_on() {
    // Each of these stopped in a Zeno cascade, at the time given: a pair
    // released from sliding sits on its kink with (nearly) zero velocity,
    // which then turns within the step; the exit was placed at the step's
    // start, or the box programme put a barely sliding point on a bound,
    // and the same state was decided the same way a thousand times.
    let cases = [
        (3, 1, 0.9091, 3, 8.46),
        (3, 3, 0.1818, 3, 14.8),
        (3, 3, 0.0909, 9, 5.49),
    ];
    for ((d, k, c, seed, stopped), path) in
        cases.into_iter().flat_map(|c| PATHS.map(|p| (c, p)))
    {
        let (task, init, model) = study_net(d, k, c, seed);
        let (x, y) = (task.inputs_view(), task.targets_view());
        let mut s = settings(1e-8, 1e-10, log_spaced_times(20.0, 10, 3.0));
        s.solver = Solver::Dopri5;
        s.reduced = true;
        s.preactivations = path == Path::Preactivations;
        let data = FlowData {
            training: (x, y),
            conditions: (x, y),
        };
        let tr = crate::flow::integrate(&model, &init, data, &s, &AtomicBool::new(false));
        let what = format!(
            "{path:?}: d = {d}, k = {k}, c = {c} c_max, seed {seed} (stopped at {stopped})"
        );
        let outcome = tr.outcome.as_ref().unwrap();
        assert_eq!(outcome.reason, StopReason::Completed, "{what}");
        assert_loss_never_rises(&tr, &what);
    }
}

/// The relative difference of two trajectories' last weights `W`.
fn last_weights_gap(a: &Trajectory, b: &Trajectory, n: usize, d: usize) -> f64 {
    let last = |tr: &Trajectory| tr.w[tr.w.len() - n * d..].to_vec();
    relative_gap(&last(a), &last(b))
}

#[test]
fn both_coordinate_systems_give_the_same_flow_of_the_paper_net_to_t_1000() {
    let (task, init, model) = paper_net();
    let (x, y) = (task.inputs_view(), task.targets_view());
    let mut s = settings(1e-8, 1e-10, log_spaced_times(1000.0, 30, 4.0));
    s.solver = Solver::Dopri5;
    let (w, _) = flow(Path::Weights, &model, &init, x, y, &s);
    let (u, _) = flow(Path::Preactivations, &model, &init, x, y, &s);
    assert!(!w.preactivations && u.preactivations);

    // The same events, in the same order, at the same times to within
    // what placing a pre-activation within `atol` of its kink allows (a
    // pair crossing at speed `v` is placed to about `atol / v` in time).
    assert!(w.events.len() > 100, "{}", w.events.len());
    assert_eq!(w.events.len(), u.events.len());
    let mut worst: f64 = 0.0;
    for (a, b) in w.events.iter().zip(&u.events) {
        assert_eq!(
            (a.unit, a.point, a.kink, a.kind),
            (b.unit, b.point, b.kink, b.kind)
        );
        worst = worst.max((a.t - b.t).abs() / a.t.max(1.0));
    }
    eprintln!("event times differ by up to {worst:e} (relative)");
    assert!(worst < 1e-5, "{worst:e}");
    assert_eq!(w.sliding, u.sliding);
    let gap = last_weights_gap(&w, &u, 128, 100);
    assert!(gap < 1e-7, "W differs by {gap:e}");
    // Both to their tolerances, which apply to the weights in one and to
    // the pre-activations in the other (measured: up to 1.9e-7 apart).
    for ((a, b), t) in w.loss.iter().zip(&u.loss).zip(&w.t) {
        assert!((a - b).abs() <= 5e-7 * a, "t = {t}: losses {a} and {b}");
    }
    // The work: a fraction of the weight path's evaluations.
    let (ew, eu) = (count(&w, "rhs_evals"), count(&u, "rhs_evals"));
    eprintln!(
        "paper net to t = 1000: {ew} evaluations in weights, {eu} in pre-activations"
    );
    assert!(eu < ew, "{eu} against {ew}");
}

#[test]
fn frozen_biases_on_the_cube_leave_the_inputs_dependent_and_the_weights_are_rebuilt() {
    // The cube's inputs sum to zero, so without the bias's constant input
    // their Gram matrix is singular: the weights come back through the
    // pseudo-inverse, and must match the weight path's.
    let (task, init, mut model) = paper_net();
    model.train_bias = false;
    let (x, y) = (task.inputs_view(), task.targets_view());
    let mut s = settings(1e-8, 1e-10, log_spaced_times(200.0, 20, 4.0));
    s.solver = Solver::Dopri5;
    let (w, _) = flow(Path::Weights, &model, &init, x, y, &s);
    let (u, _) = flow(Path::Preactivations, &model, &init, x, y, &s);
    for tr in [&w, &u] {
        assert_eq!(tr.outcome.as_ref().unwrap().reason, StopReason::Completed);
        assert!(tr.b.chunks(128).all(|b| b == &init.b[..]), "a bias moved");
    }
    assert!(count(&u, "events") > 10);
    let gap = last_weights_gap(&w, &u, 128, 100);
    assert!(gap < 1e-7, "W differs by {gap:e}");
}
