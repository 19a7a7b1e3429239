//! The nudged XOR family: two latent bits, target their XOR, and a nudge
//! `eps >= 0` that adds a linearly separable component to the inputs.
//!
//! Condition `c` in `0..4` has bits `b_1 = c & 1` and `b_2 = (c >> 1) & 1`
//! (the cube's convention, `b_j = (c >> (j - 1)) & 1`), target
//! `y = xor(b_1, b_2)` and input
//!
//! `x_c = (2 b_1 - 1) mu_1 + (2 b_2 - 1) mu_2 + eps (2 y - 1) mu_3`,
//!
//! where `mu_i = s e_i`, the `e_i` are the seeded orthonormal columns of a
//! `D x 3` matrix and `s = sqrt(D / (2 + eps^2))`. So `|x_c|^2 = D`
//! exactly for every condition and every `eps`. At `eps = 0` the two
//! classes have the same mean (zero), so no affine readout separates them
//! and the input-target alignment is 0; for `eps > 0` the readout along
//! `mu_3` separates them with margin `eps s`, and the alignment is
//! `eps^2 / sqrt(2 + eps^4)`.

use hdf5_pure::AttrValue;

use super::{Task, orthonormal_embedding};
use crate::seed;

/// The parameters of one nudged XOR task.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct XorSpec {
    /// The nudge `eps >= 0` along the XOR direction.
    pub eps: f64,
    /// Input dimension `D >= 3`.
    pub dim: usize,
    /// Seed of the embedding.
    pub seed: u64,
}

/// The input-target alignment of the nudged XOR at nudge `eps`,
/// `eps^2 / sqrt(2 + eps^4)`.
pub fn xor_alignment(eps: f64) -> f64 {
    eps * eps / (2.0 + eps.powi(4)).sqrt()
}

/// Builds the nudged XOR task.
///
/// # Panics
///
/// If `eps` is negative or not finite, or `D < 3`.
pub fn xor(spec: XorSpec) -> Task {
    let XorSpec { eps, dim, seed } = spec;
    assert!(eps >= 0.0 && eps.is_finite(), "nudge {eps} must be >= 0");
    assert!(dim >= 3, "the nudged XOR needs D >= 3, not {dim}");
    let mut rng = seed::stream(seed, "task/xor/embedding");
    let e = orthonormal_embedding(dim, 3, &mut rng);
    let scale = (dim as f64 / (2.0 + eps * eps)).sqrt();
    let sign = |bit: usize| 2.0 * bit as f64 - 1.0;

    let mut inputs = Vec::with_capacity(4 * dim);
    let mut targets = Vec::with_capacity(4);
    let mut latents = Vec::with_capacity(8);
    for c in 0..4 {
        let (b1, b2) = (c & 1, (c >> 1) & 1);
        let y = b1 ^ b2;
        let coef = [sign(b1), sign(b2), eps * sign(y)];
        for a in 0..dim {
            let v: f64 = (0..3).map(|i| coef[i] * e[(a, i)]).sum();
            inputs.push(scale * v);
        }
        targets.push(y as f64);
        latents.extend([b1 as i64, b2 as i64]);
    }
    let mut task = Task {
        kind: "xor",
        dim,
        outputs: 1,
        inputs,
        targets,
        latents: Some((2, latents)),
        attrs: vec![],
    };

    let measured = task.measured_alignment();
    task.attrs = vec![
        ("kind".into(), AttrValue::String("xor".into())),
        ("P".into(), AttrValue::I64(4)),
        ("D".into(), AttrValue::I64(dim as i64)),
        ("K".into(), AttrValue::I64(1)),
        ("seed".into(), AttrValue::I64(seed as i64)),
        ("eps".into(), AttrValue::F64(eps)),
        (
            "alignment_requested".into(),
            AttrValue::F64(xor_alignment(eps)),
        ),
        ("alignment".into(), AttrValue::F64(measured)),
    ];
    task
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(eps: f64) -> Task {
        xor(XorSpec {
            eps,
            dim: 20,
            seed: 5,
        })
    }

    /// The mean input of the conditions with target `y`.
    fn class_mean(t: &Task, y: f64) -> Vec<f64> {
        let d = t.dim;
        let mut mean = vec![0.0; d];
        for c in (0..4).filter(|&c| t.targets[c] == y) {
            let x = &t.inputs[c * d..(c + 1) * d];
            for (m, v) in mean.iter_mut().zip(x) {
                *m += v / 2.0;
            }
        }
        mean
    }

    /// The margin of the readout `w . x` (no bias), normalised by `|w|`:
    /// the smallest signed distance of a condition to the hyperplane.
    fn margin(t: &Task, w: &[f64]) -> f64 {
        let norm = w.iter().map(|v| v * v).sum::<f64>().sqrt();
        (0..4)
            .map(|c| {
                let x = &t.inputs[c * t.dim..(c + 1) * t.dim];
                let z: f64 = x.iter().zip(w).map(|(a, b)| a * b).sum();
                (2.0 * t.targets[c] - 1.0) * z / norm
            })
            .fold(f64::INFINITY, f64::min)
    }

    #[test]
    fn targets_are_the_xor_of_the_latent_bits() {
        let t = task(0.3);
        let (d, bits) = t.latents.clone().expect("xor has latents");
        assert_eq!(d, 2);
        for c in 0..4 {
            let y = (bits[2 * c] ^ bits[2 * c + 1]) as f64;
            assert_eq!(t.targets[c], y, "condition {c}");
        }
        assert_eq!(t.targets, vec![0.0, 1.0, 1.0, 0.0]);
    }

    #[test]
    fn pure_xor_is_not_linearly_separable() {
        let t = task(0.0);
        // Equal class means: any affine readout positive on both class-1
        // conditions and negative on both class-0 ones would average to
        // a positive and a negative value at the same point.
        let (m0, m1) = (class_mean(&t, 0.0), class_mean(&t, 1.0));
        for (a, b) in m0.iter().zip(&m1) {
            assert!((a - b).abs() < 1e-12);
        }
        assert!(t.measured_alignment().abs() < 1e-12);
    }

    #[test]
    fn a_nudge_makes_xor_linearly_separable() {
        for eps in [0.05, 0.5, 1.0, 3.0] {
            let t = task(eps);
            let w: Vec<f64> = (0..t.dim)
                .map(|a| class_mean(&t, 1.0)[a] - class_mean(&t, 0.0)[a])
                .collect();
            let expect = eps * (t.dim as f64 / (2.0 + eps * eps)).sqrt();
            let got = margin(&t, &w);
            assert!(got > 0.0, "eps = {eps}: margin {got}");
            assert!(
                (got - expect).abs() < 1e-10,
                "eps = {eps}: {got} vs {expect}"
            );
        }
    }

    #[test]
    fn alignment_follows_the_closed_form() {
        for eps in [0.0, 0.1, 0.7, 1.0, 2.5] {
            let t = task(eps);
            let got = t.measured_alignment();
            assert!(
                (got - xor_alignment(eps)).abs() < 1e-12,
                "eps = {eps}: {got}"
            );
        }
        assert!(xor_alignment(0.1) < xor_alignment(1.0));
    }

    #[test]
    fn inputs_have_squared_norm_d() {
        for eps in [0.0, 0.4, 2.0] {
            let t = task(eps);
            for c in 0..4 {
                let x = &t.inputs[c * t.dim..(c + 1) * t.dim];
                let n2: f64 = x.iter().map(|v| v * v).sum();
                assert!((n2 - t.dim as f64).abs() < 1e-10, "eps={eps} c={c}: {n2}");
            }
        }
    }
}
