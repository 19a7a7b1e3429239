//! The cost of the geometry pass against the flow it measures, at the
//! paper size: cube `d = 3`, `k = 1`, `c = c_max / 2`, `D = 100`,
//! `N = 128`, Tanh, frozen readout, BCE, 60 saved times to `t = 1000`.
//!
//! `flow/tanh_to_1000` integrates the whole flow; the `geometry/*`
//! benches measure one saved time (the last of that flow) with every
//! measure, without shattering dimensionality, and with the alignments
//! alone. Multiply a per-time figure by the saved times measured to
//! compare it with the flow. `d5/*` measure the last saved time of the
//! study's larger cube (`d = k = 5`, `P = 32`, Tanh to `t = 7900`), with
//! every measure and with shattering dimensionality alone, where the
//! classifiers' 320 noisy trials dominate.

use std::hint::black_box;
use std::sync::atomic::AtomicBool;

use criterion::{Criterion, criterion_group, criterion_main};

use repflow::flow;
use repflow::flow::smooth::FlowData;
use repflow::geometry::series::{GeometrySettings, measure};
use repflow::plan::Plan;
use repflow::scenario::{Scenario, Source};
use repflow::trajectory::Trajectory;

fn paper_plan() -> Plan {
    build("[network]\nactivations = [\"tanh\"]\n")
}

fn build(text: &str) -> Plan {
    let src = Source {
        file: "bench".into(),
        text: text.into(),
    };
    Plan::build(Scenario::parse(&src).unwrap(), src).unwrap()
}

/// The study's `d = k = 5` cube at `c = c_max / 2`, Tanh.
const D5: &str = "[task]\nkind = \"cube\"\nd = 5\nk = 5\nspectrum = \"deterministic\"\n\
    dim = 100\n[network]\nactivations = [\"tanh\"]\n[flow]\nt_end = 7900.0\nsaves = 20\n";

fn run_flow(plan: &Plan) -> Trajectory {
    let spec = &plan.runs[0];
    let conditions = (plan.task.inputs_view(), plan.task.targets_view());
    let data = FlowData {
        training: conditions,
        conditions,
    };
    let stop = AtomicBool::new(false);
    let settings = &plan.flow.as_ref().unwrap().settings;
    flow::integrate(&spec.model, &spec.init, data, settings, &stop)
}

/// The trajectory's last saved time alone.
fn last_time(tr: &Trajectory, p: usize) -> Trajectory {
    let r = tr.len() - 1;
    let n = tr.b.len() / tr.len();
    let d = tr.w.len() / tr.b.len();
    Trajectory {
        t: vec![tr.t[r]],
        w: tr.w[r * n * d..(r + 1) * n * d].to_vec(),
        b: tr.b[r * n..(r + 1) * n].to_vec(),
        hidden: tr.hidden[r * p * n..(r + 1) * p * n].to_vec(),
        ..Trajectory::default()
    }
}

fn bench(c: &mut Criterion) {
    let plan = paper_plan();
    let spec = &plan.runs[0];
    let mut g = c.benchmark_group("paper_size");
    g.sample_size(10);
    g.bench_function("flow/tanh_to_1000", |b| {
        b.iter(|| black_box(run_flow(&plan)))
    });

    let one = last_time(&run_flow(&plan), plan.task.conditions());
    let full = GeometrySettings::default();
    let no_sd = GeometrySettings {
        shattering: false,
        ..full.clone()
    };
    let alignment = GeometrySettings {
        abstraction: false,
        shattering: false,
        specialisation: false,
        ..full.clone()
    };
    for (name, settings) in [
        ("geometry/all", &full),
        ("geometry/no_shattering", &no_sd),
        ("geometry/alignment_only", &alignment),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| black_box(measure(&plan.task, &spec.model, &one, settings)))
        });
    }
    g.finish();

    let plan = build(D5);
    let spec = &plan.runs[0];
    let one = last_time(&run_flow(&plan), plan.task.conditions());
    let sd_only = GeometrySettings {
        abstraction: false,
        specialisation: false,
        ..full.clone()
    };
    let mut g = c.benchmark_group("d5");
    g.sample_size(10);
    for (name, settings) in [
        ("geometry/all", &full),
        ("geometry/shattering_only", &sd_only),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| black_box(measure(&plan.task, &spec.model, &one, settings)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
