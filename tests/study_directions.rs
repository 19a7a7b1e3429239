//! The directions the reference study reports, checked on the paper-size
//! cube task: `d = 3`, `k = 1`, `c = c_max / 2`, `N = 128`, `D = 100`,
//! frozen readout, BCE, two network seeds, trained to `t = 1000`.
//!
//! Both activations are trained by the gradient flow (ReLU on the
//! event-driven path for kinks) and by SGD; Tanh flow is compared with
//! ReLU flow and Tanh SGD with ReLU SGD.

mod training;

use std::sync::atomic::AtomicBool;

use repflow::flow;
use repflow::flow::smooth::FlowData;
use repflow::geometry::series::{GeometrySeries, measure};
use repflow::plan::{Plan, RunSpec};
use repflow::scenario::{Scenario, Source};

const SCENARIO: &str = r#"
name = "study-directions"
[network]
activations = ["tanh", "relu"]
hidden = 128
[flow]
t_end = 1000.0
saves = 20
[seeds]
networks = [0, 1]
[geometry]
every = 1000
shattering = false
"#;

/// What one trajectory ended with.
#[derive(Debug)]
struct End {
    target_alignment: f64,
    input_alignment: f64,
    parallelism: f64,
    ratios: Vec<f64>,
}

fn end_of(series: &GeometrySeries) -> End {
    let last = series.t.len() - 1;
    let n = series.shape.1;
    let width = series.dichotomies.len();
    End {
        target_alignment: series.target_alignment[last],
        input_alignment: series.input_alignment[last],
        parallelism: series.parallelism_max[last * width],
        ratios: series.intra_inter_ratio[last * n..(last + 1) * n].to_vec(),
    }
}

fn sgd_end(plan: &Plan, spec: &RunSpec) -> End {
    let tr = training::sgd_run(plan, spec, &plan.sgd.as_ref().unwrap().settings);
    let end = *tr.t.last().unwrap();
    assert!(end >= 1000.0, "SGD stopped at t = {end}: {:?}", tr.outcome);
    let settings = plan.geometry.as_ref().unwrap();
    end_of(&measure(&plan.task, &spec.model, &tr, settings))
}

fn flow_end(plan: &Plan, spec: &RunSpec) -> End {
    let fp = plan.flow.as_ref().unwrap();
    let conditions = (plan.task.inputs_view(), plan.task.targets_view());
    let data = FlowData {
        training: conditions,
        conditions,
    };
    let stop = AtomicBool::new(false);
    let tr = flow::integrate(&spec.model, &spec.init, data, &fp.settings, &stop);
    assert_eq!(*tr.t.last().unwrap(), 1000.0, "{:?}", tr.outcome);
    let settings = plan.geometry.as_ref().unwrap();
    end_of(&measure(&plan.task, &spec.model, &tr, settings))
}

/// Seed means of the alignments and PS, and the median ratio over every
/// unit of every seed (units without axes left out).
fn summary(ends: &[End]) -> [f64; 4] {
    let mean =
        |f: &dyn Fn(&End) -> f64| ends.iter().map(f).sum::<f64>() / ends.len() as f64;
    let mut ratios: Vec<f64> = ends
        .iter()
        .flat_map(|e| e.ratios.iter().copied())
        .filter(|r| !r.is_nan())
        .collect();
    ratios.sort_by(f64::total_cmp);
    [
        mean(&|e| e.target_alignment),
        mean(&|e| e.input_alignment),
        mean(&|e| e.parallelism),
        ratios[ratios.len() / 2],
    ]
}

#[test]
fn tanh_mirrors_the_targets_and_relu_keeps_the_inputs() {
    let src = Source {
        file: "study_directions.toml".into(),
        text: SCENARIO.into(),
    };
    let plan = Plan::build(Scenario::parse(&src).unwrap(), src).unwrap();
    let (tanh, relu): (Vec<&RunSpec>, Vec<&RunSpec>) = plan
        .runs
        .iter()
        .partition(|r| r.activation().name() == "tanh");

    let (tanh_flow, tanh_sgd, relu_flow, relu_sgd) = std::thread::scope(|s| {
        let p = &plan;
        let tf: Vec<_> = tanh
            .iter()
            .map(|&r| s.spawn(move || flow_end(p, r)))
            .collect();
        let ts: Vec<_> = tanh
            .iter()
            .map(|&r| s.spawn(move || sgd_end(p, r)))
            .collect();
        let rf: Vec<_> = relu
            .iter()
            .map(|&r| s.spawn(move || flow_end(p, r)))
            .collect();
        let rs: Vec<_> = relu
            .iter()
            .map(|&r| s.spawn(move || sgd_end(p, r)))
            .collect();
        let join = |v: Vec<std::thread::ScopedJoinHandle<'_, End>>| -> Vec<End> {
            v.into_iter().map(|h| h.join().unwrap()).collect()
        };
        (
            summary(&join(tf)),
            summary(&join(ts)),
            summary(&join(rf)),
            summary(&join(rs)),
        )
    });
    eprintln!("            [a_y, a_x, PS, median intra/inter]");
    eprintln!("tanh flow:  {tanh_flow:.3?}");
    eprintln!("relu flow:  {relu_flow:.3?}");
    eprintln!("tanh sgd:   {tanh_sgd:.3?}");
    eprintln!("relu sgd:   {relu_sgd:.3?}");

    for (what, tanh, relu) in
        [("flow", tanh_flow, relu_flow), ("sgd", tanh_sgd, relu_sgd)]
    {
        let [ay, ax, ps, ratio] = tanh;
        let [ry, rx, rps, rratio] = relu;
        assert!(
            ay > ry + 0.1,
            "target alignment: tanh {what} {ay}, relu {ry}"
        );
        assert!(ps > rps + 0.1, "parallelism: tanh {what} {ps}, relu {rps}");
        assert!(
            rx > ax + 0.1,
            "input alignment: relu {rx}, tanh {what} {ax}"
        );
        assert!(
            ratio < 0.25 * rratio,
            "intra/inter: tanh {what} {ratio}, relu {rratio}"
        );
    }
}
