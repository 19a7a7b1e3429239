//! The reference study's Fig. 1 task: four conditions with unstructured
//! inputs and one binary output that splits them two against two.
//!
//! Inputs are independent standard Gaussian patterns `x_c ~ N(0, I_D)`
//! (so `E |x_c|^2 = D`); conditions 0 and 1 have target 0, conditions 2
//! and 3 have target 1.

use hdf5_pure::AttrValue;
use rand_distr::{Distribution, StandardNormal};

use super::Task;
use crate::seed;

/// The four-condition task in dimension `dim`, from the task seed.
pub fn fig1(dim: usize, seed: u64) -> Task {
    let mut rng = seed::stream(seed, "task/fig1");
    let inputs = (0..4 * dim)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let mut task = Task {
        kind: "fig1",
        dim,
        outputs: 1,
        inputs,
        targets: vec![0.0, 0.0, 1.0, 1.0],
        latents: None,
        attrs: vec![],
    };
    let c = task.measured_alignment();
    task.attrs = vec![
        ("kind".into(), AttrValue::String("fig1".into())),
        ("P".into(), AttrValue::I64(4)),
        ("D".into(), AttrValue::I64(dim as i64)),
        ("K".into(), AttrValue::I64(1)),
        ("seed".into(), AttrValue::I64(seed as i64)),
        ("alignment".into(), AttrValue::F64(c)),
    ];
    task
}
