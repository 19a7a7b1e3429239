//! Tasks: the conditions' noise-free inputs and targets, and noisy samples.
//!
//! A task holds `P` conditions with inputs `x_c` in `R^D` and binary
//! targets `y_c` in `{0, 1}^K`, both row-major (`[P, D]` and `[P, K]`),
//! which is column-major `D x P` and `K x P`: one column per condition, as
//! [`crate::network`] takes them. Each family lives in its own file:
//! [`cube`] (parity features, deterministic or random spectrum), [`fig1`]
//! (four Gaussian patterns, one or two outputs), [`random_kernel`] (a
//! random rank-`r` kernel at a chosen alignment), [`xor`] (the nudged XOR)
//! and [`file`](mod@file) (inputs and targets read from HDF5 or CSV).
//!
//! Input norms, by family: `|x_c|^2 = D` for every condition of the cube
//! and the nudged XOR; the mean over conditions of `|x_c|^2` is exactly
//! `D` for the random kernel and `D` in expectation for Fig. 1; a file
//! task keeps the norms the file holds.

pub mod cube;
pub mod fig1;
pub mod file;
pub mod random_kernel;
pub mod xor;

use faer::MatRef;
use hdf5_pure::AttrValue;
use nalgebra::DMatrix;
use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};

use crate::geometry::kernel::{cka, gram};

/// A task: conditions, their inputs and targets, and what defines them.
#[derive(Clone, Debug)]
pub struct Task {
    /// The family, as named in scenario files (`cube`, `fig1`, ...).
    pub kind: &'static str,
    /// Input dimension `D`.
    pub dim: usize,
    /// Number of outputs `K`.
    pub outputs: usize,
    /// `[P, D]` row-major noise-free inputs.
    pub inputs: Vec<f64>,
    /// `[P, K]` row-major targets in {0, 1}.
    pub targets: Vec<f64>,
    /// `[P, d]` latent bits, for families that have them.
    pub latents: Option<(usize, Vec<i64>)>,
    /// The family's parameters, stored as attributes of `/task`.
    pub attrs: Vec<(String, AttrValue)>,
}

impl Task {
    /// The number of conditions `P`.
    pub fn conditions(&self) -> usize {
        self.inputs.len() / self.dim
    }

    /// The inputs as a `D x P` view, one column per condition.
    pub fn inputs_view(&self) -> MatRef<'_, f64> {
        MatRef::from_column_major_slice(&self.inputs, self.dim, self.conditions())
    }

    /// The targets as a `K x P` view, one column per condition.
    pub fn targets_view(&self) -> MatRef<'_, f64> {
        MatRef::from_column_major_slice(&self.targets, self.outputs, self.conditions())
    }

    /// The centred kernel alignment of the input and target kernels,
    /// measured from the data (not copied from the request).
    pub fn measured_alignment(&self) -> f64 {
        let p = self.conditions();
        cka(&gram(&self.inputs, p), &gram(&self.targets, p))
    }

    /// `n` noisy samples `x = x_c + sigma * xi` of conditions drawn
    /// uniformly, as `D x n` inputs, `K x n` targets and the condition of
    /// each sample.
    pub fn samples(&self, n: usize, sigma: f64, rng: &mut impl rand::Rng) -> Samples {
        let (p, d, k) = (self.conditions(), self.dim, self.outputs);
        let mut inputs = Vec::with_capacity(n * d);
        let mut targets = Vec::with_capacity(n * k);
        let mut conditions = Vec::with_capacity(n);
        for _ in 0..n {
            let c = rng.random_range(0..p);
            conditions.push(c);
            for a in 0..d {
                let xi: f64 = StandardNormal.sample(rng);
                inputs.push(self.inputs[c * d + a] + sigma * xi);
            }
            targets.extend_from_slice(&self.targets[c * k..(c + 1) * k]);
        }
        Samples {
            dim: d,
            outputs: k,
            inputs,
            targets,
            conditions,
        }
    }
}

/// A fixed set of noisy samples of a task's conditions.
#[derive(Clone, Debug)]
pub struct Samples {
    /// Input dimension `D`.
    pub dim: usize,
    /// Number of outputs `K`.
    pub outputs: usize,
    /// `[n, D]` row-major inputs (column-major `D x n`).
    pub inputs: Vec<f64>,
    /// `[n, K]` row-major targets.
    pub targets: Vec<f64>,
    /// The condition each sample was drawn from.
    pub conditions: Vec<usize>,
}

impl Samples {
    /// The number of samples.
    pub fn len(&self) -> usize {
        self.conditions.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty()
    }

    /// The inputs as a `D x n` view.
    pub fn inputs_view(&self) -> MatRef<'_, f64> {
        MatRef::from_column_major_slice(&self.inputs, self.dim, self.len())
    }

    /// The targets as a `K x n` view.
    pub fn targets_view(&self) -> MatRef<'_, f64> {
        MatRef::from_column_major_slice(&self.targets, self.outputs, self.len())
    }
}

/// `D x r` with orthonormal columns, from the QR factorisation of a
/// Gaussian matrix: a uniformly random isometric embedding of `R^r`.
pub fn orthonormal_embedding(
    d: usize,
    r: usize,
    rng: &mut impl rand::Rng,
) -> DMatrix<f64> {
    assert!(r <= d, "cannot embed {r} dimensions in {d}");
    let g = DMatrix::from_fn(d, r, |_, _| StandardNormal.sample(rng));
    g.qr().q()
}

#[cfg(test)]
mod tests {
    use super::cube::{CubeSpec, Spectrum, cube};
    use super::fig1::{Fig1Outputs, Fig1Spec, fig1_with};
    use super::random_kernel::{RandomKernelSpec, random_kernel};
    use super::xor::{XorSpec, xor};
    use super::*;

    /// `|x_c|^2` for every condition.
    fn squared_norms(t: &Task) -> Vec<f64> {
        t.inputs
            .chunks(t.dim)
            .map(|x| x.iter().map(|v| v * v).sum())
            .collect()
    }

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    #[test]
    fn cube_and_xor_inputs_all_have_squared_norm_d() {
        let mut tasks = vec![];
        for spectrum in [
            Spectrum::Deterministic,
            Spectrum::Random { concentration: 0.5 },
        ] {
            tasks.push(cube(CubeSpec {
                d: 4,
                k: 2,
                alignment: 0.2,
                dim: 50,
                seed: 3,
                spectrum,
            }));
        }
        for eps in [0.0, 0.8] {
            tasks.push(xor(XorSpec {
                eps,
                dim: 50,
                seed: 3,
            }));
        }
        for t in &tasks {
            for (c, n2) in squared_norms(t).into_iter().enumerate() {
                assert!((n2 - 50.0).abs() < 1e-10, "{} condition {c}: {n2}", t.kind);
            }
        }
    }

    #[test]
    fn random_kernel_inputs_have_mean_squared_norm_d() {
        let t = random_kernel(RandomKernelSpec {
            conditions: 12,
            rank: 4,
            outputs: 2,
            alignment: 0.6,
            dim: 50,
            seed: 3,
        });
        let norms = squared_norms(&t);
        assert!((mean(&norms) - 50.0).abs() < 1e-10, "{norms:?}");
        // Single conditions vary: the family fixes only the mean.
        assert!(norms.iter().any(|n2| (n2 - 50.0).abs() > 1e-3), "{norms:?}");
    }

    #[test]
    fn fig1_inputs_have_squared_norm_d_in_expectation() {
        // |x_c|^2 / D has sd sqrt(2 / D); the mean of four, sqrt(2 / 4D).
        let dim = 20_000;
        for seed in 0..3 {
            for outputs in [Fig1Outputs::One, Fig1Outputs::Two] {
                let t = fig1_with(Fig1Spec { dim, seed, outputs });
                let ratio = mean(&squared_norms(&t)) / dim as f64;
                assert!((ratio - 1.0).abs() < 0.025, "seed {seed}: {ratio}");
            }
        }
    }

    #[test]
    fn file_inputs_keep_the_norms_the_file_holds() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("norms.csv");
        std::fs::write(&path, "x0, x1, y0\n3, 4, 1\n0, 0.5, 0\n").unwrap();
        let t = file::from_csv(&path).unwrap();
        assert_eq!(squared_norms(&t), vec![25.0, 0.25]);
    }

    #[test]
    fn seeded_families_reproduce_themselves() {
        let build = |seed| {
            vec![
                cube(CubeSpec {
                    d: 3,
                    k: 1,
                    alignment: 0.3,
                    dim: 10,
                    seed,
                    spectrum: Spectrum::Random { concentration: 1.0 },
                }),
                fig1_with(Fig1Spec {
                    dim: 10,
                    seed,
                    outputs: Fig1Outputs::Two,
                }),
                random_kernel(RandomKernelSpec {
                    conditions: 8,
                    rank: 3,
                    outputs: 1,
                    alignment: 0.3,
                    dim: 10,
                    seed,
                }),
                xor(XorSpec {
                    eps: 0.5,
                    dim: 10,
                    seed,
                }),
            ]
        };
        for ((a, b), c) in build(11).iter().zip(build(11)).zip(build(12)) {
            assert_eq!(
                (&a.inputs, &a.targets),
                (&b.inputs, &b.targets),
                "{}",
                a.kind
            );
            assert_ne!(a.inputs, c.inputs, "{} ignores its seed", a.kind);
        }
    }
}
