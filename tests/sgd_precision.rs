//! `sgd.precision = "f32"` against the default `f64`: from the same
//! weights and batches, the end-of-training figures of every seed differ
//! by far less than the seeds differ among themselves, which is the
//! condition under which single precision may stand in for double.

mod training;

use repflow::geometry::series::{GeometrySettings, measure};
use repflow::plan::{Plan, RunSpec};
use repflow::scenario::{Scenario, Source};
use repflow::sgd::Precision;

const SCENARIO: &str = r#"
name = "precision"
[task]
d = 3
dim = 40
[network]
activations = ["tanh", "relu"]
hidden = 64
[flow]
enabled = false
t_end = 100.0
saves = 4
[sgd]
samples = 1000
batch = 64
[seeds]
networks = [0, 1, 2, 3, 4, 5]
"#;

/// Final training loss and target alignment of one SGD run.
fn end(plan: &Plan, spec: &RunSpec, precision: Precision) -> [f64; 2] {
    let mut settings = plan.sgd.as_ref().unwrap().settings.clone();
    settings.precision = precision;
    let tr = training::sgd_run(plan, spec, &settings);
    assert!(*tr.t.last().unwrap() >= 100.0, "{:?}", tr.outcome);
    let geometry = GeometrySettings {
        every: 1000,
        abstraction: false,
        shattering: false,
        specialisation: false,
        ..GeometrySettings::default()
    };
    let g = measure(&plan.task, &spec.model, &tr, &geometry);
    [
        *tr.train_loss.last().unwrap(),
        *g.target_alignment.last().unwrap(),
    ]
}

#[test]
fn single_precision_sgd_stays_within_the_seed_to_seed_spread() {
    let src = Source {
        file: "precision.toml".into(),
        text: SCENARIO.into(),
    };
    let plan = Plan::build(Scenario::parse(&src).unwrap(), src).unwrap();
    for act in ["tanh", "relu"] {
        let specs: Vec<&RunSpec> = plan
            .runs
            .iter()
            .filter(|r| r.name.starts_with(act))
            .collect();
        let double: Vec<[f64; 2]> = specs
            .iter()
            .map(|s| end(&plan, s, Precision::Double))
            .collect();
        let single: Vec<[f64; 2]> = specs
            .iter()
            .map(|s| end(&plan, s, Precision::Single))
            .collect();
        for (f, figure) in ["training loss", "target alignment"].iter().enumerate() {
            let of = |v: &[[f64; 2]]| v.iter().map(|e| e[f]).collect::<Vec<_>>();
            let (d, s) = (of(&double), of(&single));
            let spread = d.iter().cloned().fold(f64::MIN, f64::max)
                - d.iter().cloned().fold(f64::MAX, f64::min);
            let worst = d
                .iter()
                .zip(&s)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            eprintln!(
                "{act} {figure}: f32 within {worst:.2e}, seeds spread {spread:.2e}"
            );
            assert!(spread > 0.0, "{act} {figure}: the seeds agree exactly");
            assert!(
                worst < 0.01 * spread,
                "{act} {figure}: f32 differs by {worst}, the seeds spread over {spread} \
                 (f64 {d:?}, f32 {s:?})"
            );
        }
    }
}
