//! The paper-size ReLU flow (cube task d = 3, k = 1, c = c_max / 2,
//! D = 100, N = 128, BCE, readout frozen; the built-in default scenario's
//! net and initial weights) to t = 1000: the event-driven
//! path, in full weight space and in reduced coordinates, timed by
//! criterion, and printed side by side with the plain solver path under a
//! step budget.

use std::hint::black_box;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use repflow::flow::integrator::Solver;
use repflow::flow::smooth::{FlowData, FlowSettings};
use repflow::flow::{self, piecewise, smooth};
use repflow::plan::Plan;
use repflow::scenario::{Scenario, Source};
use repflow::trajectory::Trajectory;

/// The built-in default scenario's net with a ReLU: the paper-size net
/// exactly as `repflow run` builds it.
fn paper_plan() -> Plan {
    let src = Source {
        file: "bench".into(),
        text: "[network]\nactivations = [\"relu\"]\n".into(),
    };
    Plan::build(Scenario::parse(&src).unwrap(), src).unwrap()
}

/// The flow's data: the plan's conditions, trained on and evaluated on.
fn conditions(plan: &Plan) -> FlowData<'_> {
    let (x, y) = (plan.task.inputs_view(), plan.task.targets_view());
    FlowData {
        training: (x, y),
        conditions: (x, y),
    }
}

fn settings(solver: Solver, max_steps: u64, reduced: bool) -> FlowSettings {
    FlowSettings {
        solver,
        rtol: 1e-8,
        atol: 1e-10,
        max_steps,
        save_times: vec![0.0, 1.0, 10.0, 100.0, 1000.0],
        reduced,
        plain_kinks: false,
        preactivations: false,
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
        "{label:>16}: {} at t = {:.4}, {} rhs evals, {} events, {:.3} s",
        outcome.reason,
        outcome.t_reached,
        count(tr, "rhs_evals"),
        count(tr, "events"),
        seconds,
    );
}

/// The plain path with a 20000-step budget against the event-driven one.
fn side_by_side() {
    let plan = paper_plan();
    let (model, init, data) =
        (&plan.runs[0].model, &plan.runs[0].init, conditions(&plan));
    let stop = AtomicBool::new(false);

    for solver in [Solver::Dop853, Solver::Dopri5] {
        let clock = Instant::now();
        let s = settings(solver, 20_000, false);
        let plain = smooth::integrate(model, init, data, &s, &stop);
        report(
            &format!("plain {}", solver.name()),
            &plain,
            clock.elapsed().as_secs_f64(),
        );

        let clock = Instant::now();
        let s = settings(solver, 2_000_000, false);
        let events = piecewise::integrate(model, init, data, &s, &stop);
        let label = format!("events {}", solver.name());
        report(&label, &events, clock.elapsed().as_secs_f64());

        let clock = Instant::now();
        let s = settings(solver, 2_000_000, true);
        let reduced = flow::integrate(model, init, data, &s, &stop);
        let label = format!("reduced {}", solver.name());
        report(&label, &reduced, clock.elapsed().as_secs_f64());
    }
}

fn relu_flow(c: &mut Criterion) {
    side_by_side();
    let plan = paper_plan();
    let (model, init, data) =
        (&plan.runs[0].model, &plan.runs[0].init, conditions(&plan));
    let stop = AtomicBool::new(false);
    let mut group = c.benchmark_group("relu_flow");
    group.sample_size(10);
    for solver in [Solver::Dopri5, Solver::Dop853] {
        let s = settings(solver, 2_000_000, false);
        let name = format!("paper_net_to_t1000_{}", solver.name());
        group.bench_function(name, |b| {
            b.iter(|| black_box(piecewise::integrate(model, init, data, &s, &stop)))
        });
        let s = settings(solver, 2_000_000, true);
        let name = format!("paper_net_to_t1000_{}_reduced", solver.name());
        group.bench_function(name, |b| {
            b.iter(|| black_box(flow::integrate(model, init, data, &s, &stop)))
        });
    }
    group.finish();
}

criterion_group!(benches, relu_flow);
criterion_main!(benches);
