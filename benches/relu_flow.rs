//! ReLU flows by the event-driven path, in weight space (`W`, `b`, events
//! landed on) and in pre-activation coordinates (`U = W X + b`, events on
//! the continuous extension), side by side on the same nets and initial
//! weights:
//!
//! - the paper-size net (the built-in default scenario's: cube task `d =
//!   3`, `k = 1`, `c = c_max / 2`, `D = 100`, `N = 128`, BCE, readout
//!   frozen) to `t = 1000` (quick group `relu_flow`);
//! - the study's `d = 5`, `k = 5` net at `c = c_max / 2` to `t = 7900`,
//!   the study files' end time (full group `relu_flow_d5`).
//!
//! Before timing it prints each flow's work, and the plain solver path of
//! the paper-size net under a step budget, which the kinks stall.

use std::hint::black_box;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use repflow::flow::integrator::Solver;
use repflow::flow::smooth::{FlowData, FlowSettings};
use repflow::flow::{self, smooth};
use repflow::plan::Plan;
use repflow::scenario::{Scenario, Source};
use repflow::trajectory::Trajectory;

/// A ReLU net exactly as `repflow run` builds it from `task` (the lines of
/// a `[task]` table; empty for the default scenario's).
fn plan(task: &str) -> Plan {
    let src = Source {
        file: "bench".into(),
        text: format!("[task]\n{task}\n[network]\nactivations = [\"relu\"]\n"),
    };
    Plan::build(Scenario::parse(&src).unwrap(), src).unwrap()
}

/// The paper-size net, to `t = 1000`.
fn paper() -> (Plan, f64) {
    (plan(""), 1000.0)
}

/// The study's `d = 5`, `k = 5` net at half the largest alignment, to the
/// study files' `t = 7900`.
fn d5() -> (Plan, f64) {
    (plan("d = 5\nk = 5\nc_fraction = 0.5"), 7900.0)
}

/// The flow's data: the plan's conditions, trained on and evaluated on.
fn conditions(plan: &Plan) -> FlowData<'_> {
    let (x, y) = (plan.task.inputs_view(), plan.task.targets_view());
    FlowData {
        training: (x, y),
        conditions: (x, y),
    }
}

/// Dopri5 at the default tolerances, saved at five times to `t_end`, in
/// reduced coordinates; in pre-activation coordinates when asked.
fn settings(t_end: f64, max_steps: u64, preactivations: bool) -> FlowSettings {
    FlowSettings {
        solver: Solver::Dopri5,
        rtol: 1e-8,
        atol: 1e-10,
        max_steps,
        save_times: vec![0.0, 1e-3 * t_end, 1e-2 * t_end, 1e-1 * t_end, t_end],
        reduced: true,
        plain_kinks: false,
        preactivations,
    }
}

fn count(tr: &Trajectory, name: &str) -> u64 {
    let outcome = tr.outcome.as_ref().expect("finished");
    outcome
        .counts
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(0, |c| c.1)
}

fn report(label: &str, tr: &Trajectory, seconds: f64) {
    let outcome = tr.outcome.as_ref().expect("finished");
    eprintln!(
        "{label:>28}: {} at t = {:.4}, {} rhs evals, {} events, {:.3} s",
        outcome.reason,
        outcome.t_reached,
        count(tr, "rhs_evals"),
        count(tr, "events"),
        seconds,
    );
}

/// Every flow once, with its work; the plain path with a 20000-step
/// budget.
fn side_by_side() {
    let stop = AtomicBool::new(false);
    for (name, (plan, t_end)) in [("paper net", paper()), ("d = 5, k = 5", d5())] {
        let (model, init, data) =
            (&plan.runs[0].model, &plan.runs[0].init, conditions(&plan));
        if name == "paper net" {
            let clock = Instant::now();
            let mut s = settings(t_end, 20_000, false);
            s.plain_kinks = true;
            let plain = smooth::integrate(model, init, data, &s, &stop);
            report(
                &format!("{name}, plain"),
                &plain,
                clock.elapsed().as_secs_f64(),
            );
        }
        for (preactivations, coords) in [(false, "weights"), (true, "pre-activations")] {
            let clock = Instant::now();
            let s = settings(t_end, 2_000_000, preactivations);
            let tr = flow::integrate(model, init, data, &s, &stop);
            let seconds = clock.elapsed().as_secs_f64();
            report(&format!("{name}, {coords}"), &tr, seconds);
        }
    }
}

/// Both coordinate systems on one net, timed.
fn both(c: &mut Criterion, group: &str, (plan, t_end): (Plan, f64)) {
    let (model, init, data) =
        (&plan.runs[0].model, &plan.runs[0].init, conditions(&plan));
    let stop = AtomicBool::new(false);
    let mut group = c.benchmark_group(group);
    group.sample_size(10);
    for (preactivations, coords) in [(false, "weights"), (true, "preactivations")] {
        let s = settings(t_end, 2_000_000, preactivations);
        group.bench_function(coords, |b| {
            b.iter(|| black_box(flow::integrate(model, init, data, &s, &stop)))
        });
    }
    group.finish();
}

fn quick(c: &mut Criterion) {
    side_by_side();
    both(c, "relu_flow", paper());
}

fn full(c: &mut Criterion) {
    both(c, "relu_flow_d5", d5());
}

criterion_group!(benches, quick, full);
criterion_main!(benches);
