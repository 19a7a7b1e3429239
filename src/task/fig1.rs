//! The reference study's Fig. 1 task: four conditions with unstructured
//! inputs and binary outputs that split them two against two.
//!
//! Inputs are independent standard Gaussian patterns `x_c ~ N(0, I_D)`
//! (so `E |x_c|^2 = D`), drawn from the stream `task/fig1` of the seed, so
//! that both variants below share their inputs for the same seed.
//!
//! Condition `c` has bits `b_0 = (c >> 1) & 1` and `b_1 = c & 1`. The
//! one-output task (the default) has target `b_0`: conditions 0 and 1 have
//! target 0, conditions 2 and 3 target 1. The two-output task has targets
//! `(b_0, b_1)`, i.e. `(0, 0, 1, 1)` and `(0, 1, 0, 1)` over the four
//! conditions, and records the two bits as its latents.

use hdf5_pure::AttrValue;
use rand_distr::{Distribution, StandardNormal};

use super::Task;
use crate::seed;

/// Which outputs the Fig. 1 task has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fig1Outputs {
    /// One output, `(0, 0, 1, 1)` over the conditions.
    One,
    /// Two outputs, `(0, 0, 1, 1)` and `(0, 1, 0, 1)`.
    Two,
}

/// The parameters of one Fig. 1 task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fig1Spec {
    /// Input dimension `D`.
    pub dim: usize,
    /// Seed of the input patterns.
    pub seed: u64,
    /// One or two outputs.
    pub outputs: Fig1Outputs,
}

/// The one-output four-condition task in dimension `dim`, from the task
/// seed.
pub fn fig1(dim: usize, seed: u64) -> Task {
    fig1_with(Fig1Spec {
        dim,
        seed,
        outputs: Fig1Outputs::One,
    })
}

/// The four-condition task with the outputs the spec asks for.
pub fn fig1_with(spec: Fig1Spec) -> Task {
    let Fig1Spec { dim, seed, outputs } = spec;
    let mut rng = seed::stream(seed, "task/fig1");
    let inputs = (0..4 * dim)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let bits = |c: usize| [((c >> 1) & 1) as i64, (c & 1) as i64];

    let (k, targets, latents) = match outputs {
        Fig1Outputs::One => (1, vec![0.0, 0.0, 1.0, 1.0], None),
        Fig1Outputs::Two => {
            let targets = (0..4).flat_map(|c| bits(c).map(|b| b as f64)).collect();
            let latents = (0..4).flat_map(bits).collect();
            (2, targets, Some((2, latents)))
        }
    };
    let mut task = Task {
        kind: "fig1",
        dim,
        outputs: k,
        inputs,
        targets,
        latents,
        attrs: vec![],
    };

    let c = task.measured_alignment();
    task.attrs = vec![
        ("kind".into(), AttrValue::String("fig1".into())),
        ("P".into(), AttrValue::I64(4)),
        ("D".into(), AttrValue::I64(dim as i64)),
        ("K".into(), AttrValue::I64(k as i64)),
        ("seed".into(), AttrValue::I64(seed as i64)),
        ("alignment".into(), AttrValue::F64(c)),
    ];
    task
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_has_one_output_splitting_two_against_two() {
        let t = fig1(30, 4);
        assert_eq!((t.outputs, t.conditions()), (1, 4));
        assert_eq!(t.targets, vec![0.0, 0.0, 1.0, 1.0]);
        assert!(t.latents.is_none());
    }

    #[test]
    fn two_outputs_are_the_two_bits_over_the_same_inputs() {
        let one = fig1(30, 4);
        let two = fig1_with(Fig1Spec {
            dim: 30,
            seed: 4,
            outputs: Fig1Outputs::Two,
        });
        assert_eq!(two.outputs, 2);
        assert_eq!(two.inputs, one.inputs);
        let first: Vec<f64> = (0..4).map(|c| two.targets[2 * c]).collect();
        let second: Vec<f64> = (0..4).map(|c| two.targets[2 * c + 1]).collect();
        assert_eq!(first, vec![0.0, 0.0, 1.0, 1.0]);
        assert_eq!(second, vec![0.0, 1.0, 0.0, 1.0]);
        let (d, latents) = two.latents.expect("two-output task has latents");
        assert_eq!(d, 2);
        assert_eq!(latents, vec![0, 0, 0, 1, 1, 0, 1, 1]);
    }

    #[test]
    fn the_stored_alignment_is_measured_and_seeds_differ() {
        let two = fig1_with(Fig1Spec {
            dim: 8,
            seed: 1,
            outputs: Fig1Outputs::Two,
        });
        let stored = two.attrs.iter().find(|(n, _)| n == "alignment");
        match stored {
            Some((_, AttrValue::F64(a))) => {
                assert_eq!(*a, two.measured_alignment());
                assert!((0.0..=1.0).contains(a));
            }
            other => panic!("alignment attribute is {other:?}"),
        }
        assert_ne!(fig1(8, 1).inputs, fig1(8, 2).inputs);
    }
}
