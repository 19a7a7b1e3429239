//! A whole sweep through the runner, as `repflow run` drives it: the
//! study's alignment protocol at the paper size (cube `d = 3`, `k = 1`,
//! `D = 100`, `N = 128`), two alignments x Tanh and ReLU x two seeds,
//! the flow to `t = 1000` with 20 saved times and the geometry pass at
//! every one of them, written to one HDF5 file. Timed on one worker
//! thread and on two, the machine's cores, to show what the pool gains.
//!
//! The SGD baseline is left out here: its cost per network is the steps
//! times `sgd_step` of the `rhs` bench.

use std::sync::atomic::AtomicBool;

use criterion::{Criterion, criterion_group, criterion_main};

use repflow::run::RunOptions;
use repflow::scenario::Source;
use repflow::sweep::Study;
use repflow::sweep::run::{empty_results, execute};

const SWEEP: &str = r#"
name = "bench-sweep"
[task]
d = 3
k = 1
dim = 100
[network]
activations = ["tanh", "relu"]
hidden = 128
[flow]
t_end = 1000.0
saves = 20
[sgd]
enabled = false
[geometry]
every = 1
[seeds]
networks = [0, 1]
[sweep]
"task.c_fraction" = [0.5, 1.0]
"#;

fn sweep(c: &mut Criterion) {
    let study = Study::parse(Source {
        file: "bench".into(),
        text: SWEEP.into(),
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep.h5");
    let stop = AtomicBool::new(false);
    let mut group = c.benchmark_group("sweep");
    group.sample_size(10);
    for threads in [1, 2] {
        let opts = RunOptions {
            threads,
            force: true,
            ..RunOptions::default()
        };
        group.bench_function(format!("alignment_8_networks/j{threads}"), |b| {
            b.iter(|| execute(&study, &out, &opts, &stop, empty_results(&study)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, sweep);
criterion_main!(benches);
