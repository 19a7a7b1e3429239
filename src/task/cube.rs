//! The cube (parity) family: `d` binary latent variables, `P = 2^d`
//! conditions, inputs with a chosen input-target alignment `c`.
//!
//! Condition `c` has latent bits `b_j = (c >> j) & 1`. For every non-empty
//! subset `S` of the variables, ordered by size and then lexicographically,
//! the parity feature is `H_cS = (sum of b_j, j in S) mod 2`; the first `d`
//! features are the variables themselves. `A = 2H - 1` has orthogonal,
//! centred columns with `A^T A = P I`. The targets are the first `k`
//! features (`k = 1`, `k = d` are the low-dimensional cases, `k = P - 1`
//! takes every parity).
//!
//! Inputs: for a spectrum `pi` on the simplex over the `P - 1` features,
//! `m_c = A_c * sqrt(pi)` (elementwise) and `x_c = sqrt(D) E m_c` with `E`
//! a seeded `D x (P - 1)` matrix with orthonormal columns. Then
//! `|x_c|^2 = D` and the centred kernel alignment of the input and target
//! kernels is `cos(pi, 1_k)`. The deterministic spectrum puts `a` on the
//! `k` target features and `b` on the others, with
//! `b / a = sqrt(k (1 - c^2) / ((P - 1 - k) c^2))` and
//! `k a + (P - 1 - k) b = 1`, so that `cos(pi, 1_k) = c` for any
//! `c` in `[0, c_max]`, `c_max = sqrt(k / (P - 1))` (uniform `pi`).

use hdf5_pure::AttrValue;

use super::{Task, orthonormal_embedding};
use crate::seed;

/// The non-empty subsets of `0..d`, by size and then lexicographically.
pub fn subsets(d: usize) -> Vec<Vec<usize>> {
    let mut all: Vec<Vec<usize>> = (1u32..(1 << d))
        .map(|mask| (0..d).filter(|j| mask & (1 << j) != 0).collect())
        .collect();
    all.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    all
}

/// The `[P, P - 1]` row-major parity features `H` in {0, 1}.
pub fn parity_features(d: usize) -> Vec<Vec<u8>> {
    let sets = subsets(d);
    (0..1usize << d)
        .map(|c| {
            sets.iter()
                .map(|s| (s.iter().map(|&j| (c >> j) & 1).sum::<usize>() % 2) as u8)
                .collect()
        })
        .collect()
}

/// The largest alignment the family reaches, `sqrt(k / (P - 1))`.
pub fn max_alignment(d: usize, k: usize) -> f64 {
    (k as f64 / ((1usize << d) - 1) as f64).sqrt()
}

/// The deterministic spectrum over the `P - 1` features for alignment `c`.
pub fn deterministic_spectrum(d: usize, k: usize, c: f64) -> Vec<f64> {
    let f = (1usize << d) - 1;
    let rest = f - k;
    let (a, b) = if rest == 0 {
        (1.0 / k as f64, 0.0)
    } else if c <= 0.0 {
        (0.0, 1.0 / rest as f64)
    } else {
        let ratio = (k as f64 * (1.0 - c * c) / (rest as f64 * c * c)).sqrt();
        let a = 1.0 / (k as f64 + rest as f64 * ratio);
        (a, a * ratio)
    };
    (0..f).map(|i| if i < k { a } else { b }).collect()
}

/// The parameters of one cube task.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CubeSpec {
    /// Number of latent bits `d`.
    pub d: usize,
    /// Number of targets `k`, the first `k` features.
    pub k: usize,
    /// Requested input-target alignment `c`.
    pub alignment: f64,
    /// Input dimension `D >= P - 1`.
    pub dim: usize,
    /// Seed of the embedding.
    pub seed: u64,
}

/// Builds the cube task with the deterministic spectrum.
pub fn cube(spec: CubeSpec) -> Task {
    let CubeSpec {
        d,
        k,
        alignment,
        dim,
        seed,
    } = spec;
    let p = 1usize << d;
    let f = p - 1;
    let h = parity_features(d);
    let pi = deterministic_spectrum(d, k, alignment);
    let mut rng = seed::stream(seed, "task/cube/embedding");
    let e = orthonormal_embedding(dim, f, &mut rng);

    let scale = (dim as f64).sqrt();
    let mut inputs = vec![0.0; p * dim];
    for (c, row) in h.iter().enumerate() {
        let m: Vec<f64> = row
            .iter()
            .zip(&pi)
            .map(|(&bit, &w)| (2.0 * f64::from(bit) - 1.0) * w.sqrt())
            .collect();
        for a in 0..dim {
            let v: f64 = (0..f).map(|i| e[(a, i)] * m[i]).sum();
            inputs[c * dim + a] = scale * v;
        }
    }
    let targets = h
        .iter()
        .flat_map(|row| row[..k].iter().map(|&v| f64::from(v)))
        .collect();
    let latents = h
        .iter()
        .flat_map(|row| row[..d].iter().map(|&v| i64::from(v)))
        .collect();

    let mut task = Task {
        kind: "cube",
        dim,
        outputs: k,
        inputs,
        targets,
        latents: Some((d, latents)),
        attrs: vec![],
    };
    let measured = task.measured_alignment();
    task.attrs = vec![
        ("kind".into(), AttrValue::String("cube".into())),
        ("d".into(), AttrValue::I64(d as i64)),
        ("k".into(), AttrValue::I64(k as i64)),
        ("P".into(), AttrValue::I64(p as i64)),
        ("D".into(), AttrValue::I64(dim as i64)),
        ("K".into(), AttrValue::I64(k as i64)),
        ("seed".into(), AttrValue::I64(seed as i64)),
        ("spectrum".into(), AttrValue::String("deterministic".into())),
        ("spectrum_pi".into(), AttrValue::F64Array(pi)),
        ("alignment_requested".into(), AttrValue::F64(alignment)),
        ("alignment".into(), AttrValue::F64(measured)),
        ("alignment_max".into(), AttrValue::F64(max_alignment(d, k))),
    ];
    task
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_come_by_size_then_lexicographically() {
        let s = subsets(3);
        let expect: Vec<Vec<usize>> = vec![
            vec![0],
            vec![1],
            vec![2],
            vec![0, 1],
            vec![0, 2],
            vec![1, 2],
            vec![0, 1, 2],
        ];
        assert_eq!(s, expect);
    }

    #[test]
    fn features_are_orthogonal_and_centred() {
        for d in 2..=5 {
            let h = parity_features(d);
            let f = h[0].len();
            let a = |c: usize, i: usize| 2.0 * f64::from(h[c][i]) - 1.0;
            for i in 0..f {
                let mean: f64 = (0..h.len()).map(|c| a(c, i)).sum();
                assert_eq!(mean, 0.0, "feature {i} of d = {d} is not centred");
                for j in 0..f {
                    let dot: f64 = (0..h.len()).map(|c| a(c, i) * a(c, j)).sum();
                    let expect = if i == j { h.len() as f64 } else { 0.0 };
                    assert_eq!(dot, expect, "features {i}, {j} of d = {d}");
                }
            }
        }
    }

    #[test]
    fn measured_alignment_equals_the_requested_one() {
        for (d, k) in [(2, 1), (3, 1), (3, 3), (4, 2), (5, 1), (5, 5)] {
            let cmax = max_alignment(d, k);
            for frac in [0.0, 0.1, 0.5, 0.93, 1.0] {
                let c = frac * cmax;
                let t = cube(CubeSpec {
                    d,
                    k,
                    alignment: c,
                    dim: 40,
                    seed: 7,
                });
                let got = t.measured_alignment();
                assert!((got - c).abs() < 1e-12, "d={d} k={k} c={c}: {got}");
            }
        }
    }

    #[test]
    fn inputs_have_squared_norm_d() {
        let t = cube(CubeSpec {
            d: 3,
            k: 1,
            alignment: 0.2,
            dim: 100,
            seed: 1,
        });
        for c in 0..8 {
            let n2: f64 = t.inputs[c * 100..(c + 1) * 100].iter().map(|v| v * v).sum();
            assert!((n2 - 100.0).abs() < 1e-10);
        }
    }

    #[test]
    fn all_parities_as_targets_force_full_alignment() {
        let t = cube(CubeSpec {
            d: 2,
            k: 3,
            alignment: 1.0,
            dim: 5,
            seed: 0,
        });
        assert!((t.measured_alignment() - 1.0).abs() < 1e-12);
    }
}
