//! The flow against gradient descent and against itself at other
//! tolerances: the numerical claims the rest of repflow rests on.

use std::sync::atomic::AtomicBool;

use repflow::flow;
use repflow::flow::integrator::Solver;
use repflow::flow::smooth::{FlowData, FlowSettings};
use repflow::plan::Plan;
use repflow::scenario::{Scenario, Source};
use repflow::sgd::{self, Precision, SgdSettings};
use repflow::task::Samples;
use repflow::trajectory::{StopReason, Trajectory};

fn plan(text: &str) -> Plan {
    let src = Source {
        file: "test.toml".into(),
        text: text.into(),
    };
    Plan::build(Scenario::parse(&src).unwrap(), src).unwrap()
}

const SMALL_TANH: &str = "[task]\nd = 3\ndim = 12\n[network]\nactivations = [\"tanh\"]\n\
                          hidden = 24\n[init]\nscale = 2.0\n";

/// Dopri5 in full weight space, saving at `times`.
fn dopri5(rtol: f64, atol: f64, times: Vec<f64>) -> FlowSettings {
    FlowSettings {
        solver: Solver::Dopri5,
        rtol,
        atol,
        max_steps: 1_000_000,
        save_times: times,
        reduced: false,
        plain_kinks: false,
        preactivations: false,
    }
}

/// The flow on the noise-free conditions of `plan`'s task.
fn on_conditions(plan: &Plan) -> FlowData<'_> {
    let c = (plan.task.inputs_view(), plan.task.targets_view());
    FlowData {
        training: c,
        conditions: c,
    }
}

fn flow_at(plan: &Plan, times: Vec<f64>, rtol: f64, atol: f64) -> Trajectory {
    let run = &plan.runs[0];
    flow::integrate(
        &run.model,
        &run.init,
        on_conditions(plan),
        &dopri5(rtol, atol, times),
        &AtomicBool::new(false),
    )
}

/// Full-batch gradient descent on the noise-free conditions to time `t`.
fn gd_at(plan: &Plan, eta: f64, t: f64) -> Trajectory {
    let run = &plan.runs[0];
    let task = &plan.task;
    let p = task.conditions();
    let samples = Samples {
        dim: task.dim,
        outputs: task.outputs,
        inputs: task.inputs.clone(),
        targets: task.targets.clone(),
        conditions: (0..p).collect(),
    };
    let steps = (t / eta).round() as u64;
    let settings = SgdSettings {
        precision: Precision::Double,
        eta,
        batch: p,
        epochs: steps,
        save_times: vec![t],
    };
    let c = (task.inputs_view(), task.targets_view());
    let mut rng = repflow::seed::stream(0, "test");
    sgd::train(
        &run.model,
        &run.init,
        &samples,
        c,
        &settings,
        &mut rng,
        &AtomicBool::new(false),
    )
}

fn last_weights(tr: &Trajectory) -> &[f64] {
    let per = tr.w.len() / tr.len();
    &tr.w[tr.w.len() - per..]
}

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

fn norm(a: &[f64]) -> f64 {
    a.iter().map(|x| x * x).sum::<f64>().sqrt()
}

#[test]
fn gradient_descent_approaches_the_tanh_flow_linearly_in_the_learning_rate() {
    let plan = plan(SMALL_TANH);
    let t = 5.0;
    let flow = flow_at(&plan, vec![0.0, t], 1e-11, 1e-13);
    let w = last_weights(&flow);
    let gaps: Vec<f64> = [0.1, 0.05, 0.025]
        .iter()
        .map(|&eta| distance(last_weights(&gd_at(&plan, eta, t)), w))
        .collect();
    assert!(
        gaps[0] > 1e-6,
        "GD should differ visibly from the flow: {gaps:?}"
    );
    for pair in gaps.windows(2) {
        let ratio = pair[0] / pair[1];
        assert!(
            (1.8..2.2).contains(&ratio),
            "gap ratios should be ~2: {gaps:?}"
        );
    }

    // Richardson extrapolation removes the O(eta) term.
    let (g1, g2) = (gd_at(&plan, 0.05, t), gd_at(&plan, 0.025, t));
    let extrapolated: Vec<f64> = last_weights(&g2)
        .iter()
        .zip(last_weights(&g1))
        .map(|(a, b)| 2.0 * a - b)
        .collect();
    let rel = distance(&extrapolated, w) / norm(w);
    assert!(rel < 0.1 * gaps[2] / norm(w), "extrapolation gap {rel}");
}

#[test]
fn a_tight_flow_agrees_with_a_loose_one_to_the_loose_tolerance() {
    let plan = plan(SMALL_TANH);
    let times = vec![0.0, 1.0, 10.0, 100.0];
    let tight = flow_at(&plan, times.clone(), 1e-10, 1e-12);
    let loose = flow_at(&plan, times, 1e-6, 1e-8);
    let rel = distance(&tight.w, &loose.w) / norm(&tight.w);
    assert!(rel < 1e-5, "relative difference {rel}");
    assert!(rel > 0.0, "the loose flow should not be exact");
    let (te, le) = (tight_evals(&tight), tight_evals(&loose));
    assert!(te > 2 * le, "a tighter tolerance costs more: {te} vs {le}");
}

fn tight_evals(tr: &Trajectory) -> u64 {
    let o = tr.outcome.as_ref().unwrap();
    o.counts.iter().find(|(k, _)| *k == "rhs_evals").unwrap().1
}

#[test]
fn the_loss_never_increases_along_smooth_flows() {
    for act in ["tanh", "softplus", "linear"] {
        for readout in [false, true] {
            let text = format!(
                "[task]\nd = 3\ndim = 12\n[network]\nactivations = [\"{act}\"]\nhidden = 24\n\
                 train_readout = {readout}\nloss = \"mse\"\n"
            );
            let plan = plan(&text);
            let times = repflow::trajectory::log_spaced_times(200.0, 40, 4.0);
            let tr = flow_at(&plan, times, 1e-9, 1e-11);
            assert_eq!(tr.outcome.as_ref().unwrap().reason, StopReason::Completed);
            // Once the residuals are at the solver's own accuracy (rtol
            // times the weights, ~1e-9 here), the MSE sits at its noise
            // floor (~1e-18) and may wobble there; allow that, no more.
            for w in tr.loss.windows(2) {
                let slack = w[0] * 1e-12 + 1e-16;
                assert!(
                    w[1] <= w[0] + slack,
                    "{act} readout={readout}: {:?}",
                    tr.loss
                );
            }
            assert!(
                tr.loss.last().unwrap() < &(0.5 * tr.loss[0]),
                "{act} learns"
            );
        }
    }
}

#[test]
fn a_plain_relu_flow_ends_on_its_step_budget_with_a_clear_reason() {
    let plan = plan("[network]\nactivations = [\"relu\"]\n");
    let run = &plan.runs[0];
    let settings = FlowSettings {
        max_steps: 300,
        plain_kinks: true,
        ..dopri5(1e-8, 1e-10, vec![0.0, 1000.0])
    };
    let tr = repflow::flow::smooth::integrate(
        &run.model,
        &run.init,
        on_conditions(&plan),
        &settings,
        &AtomicBool::new(false),
    );
    let o = tr.outcome.unwrap();
    assert_eq!(o.reason, StopReason::StepBudget);
    assert!(o.t_reached > 0.0 && o.t_reached < 1000.0);
    assert_eq!(
        tr.t.last(),
        Some(&o.t_reached),
        "the state reached is saved"
    );
}

#[test]
fn reduced_coordinates_reproduce_the_full_flow() {
    for act in ["tanh", "relu", "bounded_relu"] {
        let text = format!(
            "[task]\nd = 3\ndim = 100\n[network]\nactivations = [\"{act}\"]\nhidden = 48\n"
        );
        let plan = plan(&text);
        let run = &plan.runs[0];
        let data = on_conditions(&plan);
        let mut settings = dopri5(1e-10, 1e-12, vec![0.0, 1.0, 10.0, 100.0]);
        let stop = AtomicBool::new(false);
        let full = flow::integrate(&run.model, &run.init, data, &settings, &stop);
        settings.reduced = true;
        let red = flow::integrate(&run.model, &run.init, data, &settings, &stop);

        assert_eq!(full.reduced_rank, 0);
        assert_eq!(
            red.reduced_rank, 7,
            "{act}: the 8 cube inputs span 7 dimensions"
        );
        assert_eq!(red.w.len(), full.w.len());
        assert!(red.w[..48 * 100] == full.w[..48 * 100], "{act}: same start");
        let l0 = (red.loss[0] - full.loss[0]).abs();
        assert!(l0 < 1e-14, "{act}: the initial loss differs by {l0}");
        let rel = distance(&red.w, &full.w) / norm(&full.w);
        assert!(
            rel < 1e-7,
            "{act}: reduced and full weights differ by {rel}"
        );
        let hid = distance(&red.hidden, &full.hidden) / norm(&full.hidden);
        assert!(hid < 1e-7, "{act}: hidden responses differ by {hid}");
        assert_eq!(red.events.len(), full.events.len(), "{act}: kink events");
        assert!(tight_evals(&red) > 0);
    }
}

#[test]
fn the_reduced_tanh_flow_controls_its_error_as_the_full_flow_does() {
    // The paper-size net (N = 128, D = 100): the reduced state is 128 x 8
    // numbers for 128 x 101 weights. Measured over its own length, its
    // error norm was 3.5 times that of the full flow for the same error
    // in the weights, and it took a fifth more evaluations (563 against
    // 467 at the default tolerances, the medians over ten networks) for
    // about half the error; over the weights' length both take about as
    // many.
    let plan = plan("[network]\nactivations = [\"tanh\"]\n");
    let run = &plan.runs[0];
    let data = on_conditions(&plan);
    let mut settings = dopri5(1e-12, 1e-14, vec![0.0, 1000.0]);
    let stop = AtomicBool::new(false);
    let exact = flow::integrate(&run.model, &run.init, data, &settings, &stop);
    (settings.rtol, settings.atol) = (1e-8, 1e-10);
    let full = flow::integrate(&run.model, &run.init, data, &settings, &stop);
    settings.reduced = true;
    let red = flow::integrate(&run.model, &run.init, data, &settings, &stop);
    assert!(red.reduced_rank > 0, "the reduced path ran");

    let (n_full, n_red) = (tight_evals(&full), tight_evals(&red));
    let ratio = n_red as f64 / n_full as f64;
    assert!(
        (0.85..1.15).contains(&ratio),
        "reduced {n_red} against full {n_full} evaluations"
    );
    // Both land within the tolerance on the displacement of the weights.
    let w_exact = last_weights(&exact);
    let moved = distance(w_exact, &exact.w[..w_exact.len()]);
    for (path, tr) in [("full", &full), ("reduced", &red)] {
        let rel = distance(last_weights(tr), w_exact) / moved;
        assert!(
            rel < 1e-7,
            "{path}: end weights off by {rel} of the displacement"
        );
    }
}
