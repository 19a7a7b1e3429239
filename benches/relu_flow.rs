//! The paper-size ReLU flow (cube task d = 3, k = 1, c = c_max / 2,
//! D = 100, N = 128, BCE, readout frozen) to t = 1000: the event-driven
//! path, in full weight space and in reduced coordinates, timed by
//! criterion, and printed side by side with the plain solver path under a
//! step budget.

use std::hint::black_box;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use rand_distr::{Distribution, Normal};
use repflow::activation::Activation;
use repflow::flow::integrator::Solver;
use repflow::flow::smooth::{FlowData, FlowSettings};
use repflow::flow::{self, piecewise, smooth};
use repflow::network::{Dims, Loss, Model, Params};
use repflow::seed;
use repflow::task::Task;
use repflow::task::cube::{CubeSpec, Spectrum, cube, max_alignment};
use repflow::trajectory::Trajectory;

fn paper_net() -> (Task, Params, Model) {
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
    let mut rng = seed::stream(0, "init");
    let first = Normal::new(0.0, (1.0f64 / 100.0).sqrt()).unwrap();
    let second = Normal::new(0.0, (1.0f64 / 128.0).sqrt()).unwrap();
    let mut draw = |dist: &Normal<f64>, count: usize| -> Vec<f64> {
        (0..count).map(|_| dist.sample(&mut rng)).collect()
    };
    let init = Params {
        dims,
        w: draw(&first, 128 * 100),
        b: draw(&first, 128),
        j: draw(&second, 128),
        b_out: draw(&second, 1),
    };
    let model = Model::new(Activation::Relu, Loss::Bce, &init, false);
    (task, init, model)
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
    let (task, init, model) = paper_net();
    let (x, y) = (task.inputs_view(), task.targets_view());
    let data = FlowData {
        training: (x, y),
        conditions: (x, y),
    };
    let stop = AtomicBool::new(false);

    for solver in [Solver::Dop853, Solver::Dopri5] {
        let clock = Instant::now();
        let s = settings(solver, 20_000, false);
        let plain = smooth::integrate(&model, &init, data, &s, &stop);
        report(
            &format!("plain {}", solver.name()),
            &plain,
            clock.elapsed().as_secs_f64(),
        );

        let clock = Instant::now();
        let s = settings(solver, 2_000_000, false);
        let events = piecewise::integrate(&model, &init, data, &s, &stop);
        let label = format!("events {}", solver.name());
        report(&label, &events, clock.elapsed().as_secs_f64());

        let clock = Instant::now();
        let s = settings(solver, 2_000_000, true);
        let reduced = flow::integrate(&model, &init, data, &s, &stop);
        let label = format!("reduced {}", solver.name());
        report(&label, &reduced, clock.elapsed().as_secs_f64());
    }
}

fn relu_flow(c: &mut Criterion) {
    side_by_side();
    let (task, init, model) = paper_net();
    let (x, y) = (task.inputs_view(), task.targets_view());
    let data = FlowData {
        training: (x, y),
        conditions: (x, y),
    };
    let stop = AtomicBool::new(false);
    let mut group = c.benchmark_group("relu_flow");
    group.sample_size(10);
    for solver in [Solver::Dopri5, Solver::Dop853] {
        let s = settings(solver, 2_000_000, false);
        let name = format!("paper_net_to_t1000_{}", solver.name());
        group.bench_function(name, |b| {
            b.iter(|| black_box(piecewise::integrate(&model, &init, data, &s, &stop)))
        });
        let s = settings(solver, 2_000_000, true);
        let name = format!("paper_net_to_t1000_{}_reduced", solver.name());
        group.bench_function(name, |b| {
            b.iter(|| black_box(flow::integrate(&model, &init, data, &s, &stop)))
        });
    }
    group.finish();
}

criterion_group!(benches, relu_flow);
criterion_main!(benches);
