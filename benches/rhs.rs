//! The flow's right-hand side and the SGD step against the matrix products
//! they are made of.
//!
//! `rhs/<size>` is one evaluation of `-grad L` over the `P` conditions;
//! `gemm/<size>` is a plain faer product of the same shape as its largest
//! one (`N x D` by `D x M`), the floor the evaluation cannot beat.
//! `sgd_step` is one mini-batch step of the study's protocol (batch 64,
//! `D = 100`, `N = 128`), `sgd_step_f32` the same in single precision,
//! whose floor is twice `gemm_f32/D100-N128-M64`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use rand_distr::{Distribution, StandardNormal};
use repflow::activation::Activation;
use repflow::flow::conditions::{ConditionField, to_lanes};
use repflow::flow::integrator::VectorField;
use repflow::flow::smooth::GradientField;
use repflow::network::{Dims, Loss, Model, Params, Workspace};
use repflow::seed;
use repflow::sgd::single::{SingleNet, narrow};

fn random(n: usize, s: &str) -> Vec<f64> {
    let mut rng = seed::stream(1, s);
    (0..n).map(|_| StandardNormal.sample(&mut rng)).collect()
}

fn params(dims: Dims) -> Params {
    let Dims {
        inputs: d,
        hidden: n,
        outputs: k,
    } = dims;
    let scale = |v: Vec<f64>, s: f64| v.into_iter().map(|x| x * s).collect();
    Params {
        dims,
        w: scale(random(n * d, "w"), 1.0 / (d as f64).sqrt()),
        b: scale(random(n, "b"), 0.1),
        j: scale(random(k * n, "j"), 1.0 / (n as f64).sqrt()),
        b_out: vec![0.0; k],
    }
}

fn rhs(c: &mut Criterion) {
    let mut group = c.benchmark_group("rhs");
    for (d, n, m) in [
        (7, 128, 8),
        (31, 128, 32),
        (100, 128, 8),
        (100, 128, 64),
        (100, 512, 32),
        (100, 128, 5000),
    ] {
        let dims = Dims {
            inputs: d,
            hidden: n,
            outputs: 1,
        };
        let p = params(dims);
        let x = random(d * m, "x");
        let y: Vec<f64> = (0..m).map(|i| (i % 2) as f64).collect();
        let model = Model::new(Activation::Tanh, Loss::Bce, &p, false);
        let xv = MatRef::from_column_major_slice(&x, d, m);
        let yv = MatRef::from_column_major_slice(&y, 1, m);
        let field = GradientField::new(&model, xv, yv);
        let state = p.to_state(false);
        let mut dy = vec![0.0; state.len()];
        group.bench_function(format!("tanh/D{d}-N{n}-M{m}"), |b| {
            b.iter(|| field.eval(black_box(&state), &mut dy))
        });
        if m <= 64 {
            let lanes_field = ConditionField::new(&model, xv, yv);
            let mut lanes = state.clone();
            to_lanes(dims, &state, &mut lanes);
            group.bench_function(format!("tanh_lanes/D{d}-N{n}-M{m}"), |b| {
                b.iter(|| lanes_field.eval(black_box(&lanes), &mut dy))
            });
        }

        let w = Mat::<f64>::from_fn(n, d, |i, j| p.w[i * d + j]);
        let mut u = Mat::<f64>::zeros(n, m);
        group.bench_function(format!("gemm/D{d}-N{n}-M{m}"), |b| {
            b.iter(|| matmul(u.as_mut(), Accum::Replace, w.as_ref(), xv, 1.0, Par::Seq))
        });
    }
    group.finish();
}

/// The vectorised `tanh` over one SGD step's pre-activations (batch 64,
/// N = 128), against the C library's.
fn tanh_kernel(c: &mut Criterion) {
    let u: Vec<f64> = random(64 * 128, "u").iter().map(|v| 3.0 * v).collect();
    let mut h = vec![0.0; u.len()];
    c.bench_function("tanh_slice/8192", |b| {
        b.iter(|| repflow::fastmath::tanh_slice(&u, &mut h))
    });
    c.bench_function("libm_tanh/8192", |b| {
        b.iter(|| h.iter_mut().zip(&u).for_each(|(h, u)| *h = u.tanh()))
    });
}

fn sgd_step(c: &mut Criterion) {
    // The paper's single output, and the study's K = 5 (every latent bit
    // a target), whose readout product is small but not free.
    for outputs in [1, 5] {
        let dims = Dims {
            inputs: 100,
            hidden: 128,
            outputs,
        };
        let p = params(dims);
        let x = random(100 * 64, "x");
        let y: Vec<f64> = (0..64 * outputs).map(|i| (i % 2) as f64).collect();
        let tag = if outputs == 1 {
            String::new()
        } else {
            format!("_k{outputs}")
        };
        for act in [Activation::Tanh, Activation::Relu] {
            let model = Model::new(act, Loss::Bce, &p, false);
            let mut ws = Workspace::new(dims, 64);
            let mut state = p.to_state(false);
            let xv = MatRef::from_column_major_slice(&x, 100, 64);
            let yv = MatRef::from_column_major_slice(&y, outputs, 64);
            c.bench_function(&format!("sgd_step{tag}/{}", act.name()), |b| {
                b.iter(|| model.sgd_step(&mut state, xv, yv, &mut ws, 1e-6))
            });
            let mut net = SingleNet::new(&model, 64);
            let mut state32 = narrow(&state);
            let (x32, y32) = (narrow(&x), narrow(&y));
            let xv32 = MatRef::from_column_major_slice(&x32, 100, 64);
            let yv32 = MatRef::from_column_major_slice(&y32, outputs, 64);
            c.bench_function(&format!("sgd_step_f32{tag}/{}", act.name()), |b| {
                b.iter(|| net.step(&mut state32, xv32, yv32, 1e-6))
            });
        }
    }
    let p = params(Dims {
        inputs: 100,
        hidden: 128,
        outputs: 1,
    });
    let x = random(100 * 64, "x");
    // The f32 step's floor: its larger product, `N x D` by `D x M`, in
    // f32 (the step has two of that size).
    let w32 = Mat::<f32>::from_fn(128, 100, |i, j| p.w[i * 100 + j] as f32);
    let x32 = narrow(&x);
    let xv32 = MatRef::from_column_major_slice(&x32, 100, 64);
    let mut u32 = Mat::<f32>::zeros(128, 64);
    c.bench_function("gemm_f32/D100-N128-M64", |b| {
        b.iter(|| {
            matmul(
                u32.as_mut(),
                Accum::Replace,
                w32.as_ref(),
                xv32,
                1.0,
                Par::Seq,
            )
        })
    });
}

/// The whole paper-size Tanh flow to t = 1000 at rtol 1e-8, in full
/// weight space and in reduced coordinates.
fn tanh_flow(c: &mut Criterion) {
    use repflow::flow::integrator::Solver;
    use repflow::flow::smooth::{FlowData, FlowSettings};
    use repflow::plan::Plan;
    use repflow::scenario::{Scenario, Source};
    use std::sync::atomic::AtomicBool;

    // The built-in default scenario's net with a Tanh, as `repflow run`
    // builds it.
    let src = Source {
        file: "bench".into(),
        text: "[network]\nactivations = [\"tanh\"]\n".into(),
    };
    let plan = Plan::build(Scenario::parse(&src).unwrap(), src).unwrap();
    let (model, p) = (&plan.runs[0].model, &plan.runs[0].init);
    let cond = (plan.task.inputs_view(), plan.task.targets_view());
    let data = FlowData {
        training: cond,
        conditions: cond,
    };
    let stop = AtomicBool::new(false);
    let mut group = c.benchmark_group("tanh_flow");
    group.sample_size(10);
    for (name, reduced, solver) in [
        ("paper_net_full", false, Solver::Dopri5),
        ("paper_net_reduced", true, Solver::Dopri5),
        ("paper_net_reduced_dop853", true, Solver::Dop853),
    ] {
        let settings = FlowSettings {
            solver,
            rtol: 1e-8,
            atol: 1e-10,
            max_steps: 1_000_000,
            save_times: repflow::trajectory::log_spaced_times(1000.0, 60, 4.0),
            reduced,
            plain_kinks: false,
            preactivations: false,
        };
        group.bench_function(name, |b| {
            b.iter(|| repflow::flow::integrate(model, p, data, &settings, &stop))
        });
    }
    group.finish();
}

criterion_group! {
    name = quick;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1));
    targets = rhs, tanh_kernel, sgd_step, tanh_flow
}
criterion_main!(quick);
