//! The random-kernel family: `P` conditions, balanced random binary
//! targets, and a random centred input kernel of rank `r` moved to a
//! chosen input-target alignment `c`.
//!
//! Targets: each of the `K` outputs labels a uniformly random subset of
//! `floor(P / 2)` conditions with 1 and the rest with 0, independently per
//! output. With `Y_c = H Y` (`H = I - 11^T / P`) the centred target kernel
//! is `T = Y_c Y_c^T`; let `Q` be an orthonormal basis of its range and
//! `k_y = rank T <= K`.
//!
//! Input kernel `K_x = M M^T` with `M = M_perp + w N`, both `P x r`:
//!
//! - `M_perp = (I - Q Q^T) H G` for a standard Gaussian `G`: the random
//!   part, centred and orthogonal to every target direction, of rank `r`
//!   (almost surely) when `r <= P - 1 - k_y`;
//! - `N = Y_c B` with `B` a random `K x r` matrix with orthonormal rows
//!   (so `K <= r`), whence `N N^T = T`: the target part.
//!
//! Because `N^T M_perp = 0` and `T M_perp = 0`, the cross terms drop out:
//! `<K_x, T> = w^2 |T|^2` and
//! `|K_x|^2 = kappa^2 + 2 w^2 |M_perp N^T|^2 + w^4 |T|^2` with
//! `kappa = |M_perp M_perp^T|` (Frobenius norms). The alignment
//! `w^2 |T| / |K_x|` therefore rises monotonically from 0 at `w = 0`
//! towards 1 as `w` grows, and `A(K_x, T) = c` is a quadratic in `u = w^2`,
//! `|T|^2 (1 - c^2) u^2 - 2 c^2 |M_perp N^T|^2 u - c^2 kappa^2 = 0`, whose
//! non-negative root the family takes: any `c` in `[0, 1)` is reached
//! exactly. The range of `M` contains that of `M_perp`, so `K_x` has rank
//! exactly `r` for every `w`.
//!
//! Inputs come from the eigendecomposition `K_x = U L U^T`: with `F` the
//! `P x r` factor `U_r L_r^{1/2}` of the `r` largest eigenpairs,
//! `x_c = sqrt(D) E F_c / rms(F)`, where `E` is a seeded `D x r` matrix
//! with orthonormal columns and `rms(F)^2 = (1 / P) sum_c |F_c|^2`. So the
//! mean of `|x_c|^2` over conditions is exactly `D` (single conditions
//! vary), the inputs are centred, and `X X^T` is proportional to `K_x`.

use hdf5_pure::AttrValue;
use nalgebra::DMatrix;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, StandardNormal};

use super::{Task, orthonormal_embedding};
use crate::seed;

/// Singular values below this fraction of the largest count as zero when
/// finding the rank of the centred targets.
const RANK_TOLERANCE: f64 = 1e-10;

/// The parameters of one random-kernel task.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomKernelSpec {
    /// Number of conditions `P >= 2`.
    pub conditions: usize,
    /// Rank `r` of the input kernel, `K <= r <= P - 1 - rank(T)`.
    pub rank: usize,
    /// Number of balanced binary outputs `K >= 1`.
    pub outputs: usize,
    /// Requested input-target alignment `c` in `[0, 1)`.
    pub alignment: f64,
    /// Input dimension `D >= r`.
    pub dim: usize,
    /// Seed of the targets, the kernel and the embedding.
    pub seed: u64,
}

/// `K` independent balanced labellings of `P` conditions, `[P, K]`
/// row-major: each output gives 1 to a random `floor(P / 2)` conditions.
pub fn balanced_targets(p: usize, k: usize, rng: &mut impl rand::Rng) -> Vec<f64> {
    let mut targets = vec![0.0; p * k];
    let mut order: Vec<usize> = (0..p).collect();
    for o in 0..k {
        order.shuffle(rng);
        for &c in &order[..p / 2] {
            targets[c * k + o] = 1.0;
        }
    }
    targets
}

/// The `P x k_y` orthonormal basis of the range of the centred targets.
fn target_basis(yc: &DMatrix<f64>) -> DMatrix<f64> {
    let svd = yc.clone().svd(true, false);
    let u = svd.u.expect("left singular vectors were asked for");
    let top = svd.singular_values.max();
    let keep: Vec<usize> = (0..svd.singular_values.len())
        .filter(|&i| svd.singular_values[i] > RANK_TOLERANCE * top)
        .collect();
    u.select_columns(&keep)
}

/// The weight `w` of the target part that puts the kernel of
/// `M_perp + w N` at alignment `c` with `T = N N^T` (see the module doc).
fn target_weight(m_perp: &DMatrix<f64>, n: &DMatrix<f64>, c: f64) -> f64 {
    let kappa2 = (m_perp * m_perp.transpose()).norm_squared();
    let cross2 = (m_perp * n.transpose()).norm_squared();
    let tau2 = (n * n.transpose()).norm_squared();
    let c2 = c * c;

    // tau2 (1 - c2) u^2 - 2 c2 cross2 u - c2 kappa2 = 0, u = w^2 >= 0.
    let lead = tau2 * (1.0 - c2);
    let half = c2 * cross2;
    let u = (half + (half * half + lead * c2 * kappa2).sqrt()) / lead;
    u.sqrt()
}

/// Builds the random-kernel task.
///
/// # Panics
///
/// If the spec breaks the bounds documented on [`RandomKernelSpec`].
pub fn random_kernel(spec: RandomKernelSpec) -> Task {
    let RandomKernelSpec {
        conditions: p,
        rank: r,
        outputs: k,
        alignment: c,
        dim,
        seed,
    } = spec;
    assert!(
        p >= 2 && k >= 1,
        "need P >= 2 conditions and K >= 1 outputs"
    );
    assert!((0.0..1.0).contains(&c), "alignment {c} is outside [0, 1)");
    assert!(k <= r && r <= dim, "need K = {k} <= r = {r} <= D = {dim}");

    let mut rng = seed::stream(seed, "task/random_kernel/targets");
    let targets = balanced_targets(p, k, &mut rng);
    let y = DMatrix::from_row_slice(p, k, &targets);
    let centring = DMatrix::identity(p, p) - DMatrix::from_element(p, p, 1.0 / p as f64);
    let yc = &centring * y;
    let q = target_basis(&yc);
    assert!(
        r + q.ncols() < p,
        "rank {r} does not fit beside the {} target directions in the {} \
         centred dimensions of {p} conditions",
        q.ncols(),
        p - 1
    );

    let mut rng = seed::stream(seed, "task/random_kernel/kernel");
    let g = DMatrix::from_fn(p, r, |_, _| StandardNormal.sample(&mut rng));
    let hg = &centring * g;
    let m_perp = &hg - &q * (q.transpose() * &hg);
    let b = orthonormal_embedding(r, k, &mut rng).transpose();
    let n = &yc * b;
    let w = target_weight(&m_perp, &n, c);
    let m = m_perp + n * w;

    let inputs = embed(&(&m * m.transpose()), r, dim, seed);
    let mut task = Task {
        kind: "random_kernel",
        dim,
        outputs: k,
        inputs,
        targets,
        latents: None,
        attrs: vec![],
    };

    let measured = task.measured_alignment();
    task.attrs = vec![
        ("kind".into(), AttrValue::String("random_kernel".into())),
        ("P".into(), AttrValue::I64(p as i64)),
        ("D".into(), AttrValue::I64(dim as i64)),
        ("K".into(), AttrValue::I64(k as i64)),
        ("rank".into(), AttrValue::I64(r as i64)),
        ("target_rank".into(), AttrValue::I64(q.ncols() as i64)),
        ("seed".into(), AttrValue::I64(seed as i64)),
        ("target_weight".into(), AttrValue::F64(w)),
        ("alignment_requested".into(), AttrValue::F64(c)),
        ("alignment".into(), AttrValue::F64(measured)),
    ];
    task
}

/// `[P, D]` row-major inputs from the top `r` eigenpairs of `kernel`,
/// embedded isometrically and scaled to a mean squared norm of `D`.
fn embed(kernel: &DMatrix<f64>, r: usize, dim: usize, seed: u64) -> Vec<f64> {
    let p = kernel.nrows();
    let eig = kernel.clone().symmetric_eigen();
    let mut order: Vec<usize> = (0..p).collect();
    order.sort_by(|&i, &j| eig.eigenvalues[j].total_cmp(&eig.eigenvalues[i]));
    let factor = DMatrix::from_fn(p, r, |c, i| {
        let j = order[i];
        eig.eigenvectors[(c, j)] * eig.eigenvalues[j].max(0.0).sqrt()
    });

    let rms = (factor.norm_squared() / p as f64).sqrt();
    let mut rng = seed::stream(seed, "task/random_kernel/embedding");
    let e = orthonormal_embedding(dim, r, &mut rng);
    let x = factor * e.transpose() * ((dim as f64).sqrt() / rms);
    x.transpose().as_slice().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::kernel::{double_centre, gram};

    fn spec(p: usize, r: usize, k: usize, c: f64, seed: u64) -> RandomKernelSpec {
        RandomKernelSpec {
            conditions: p,
            rank: r,
            outputs: k,
            alignment: c,
            dim: 30,
            seed,
        }
    }

    /// The number of eigenvalues of the centred input kernel above a
    /// relative tolerance.
    fn input_rank(t: &Task) -> usize {
        let k = double_centre(&gram(&t.inputs, t.conditions()));
        let eig = k.symmetric_eigen().eigenvalues;
        let top = eig.max();
        eig.iter().filter(|&&v| v > 1e-9 * top).count()
    }

    #[test]
    fn measured_alignment_equals_the_requested_one() {
        for (p, r, k) in [(4, 1, 1), (8, 3, 1), (8, 2, 2), (12, 5, 3), (17, 10, 2)] {
            for c in [0.0, 0.01, 0.3, 0.7, 0.95, 0.999] {
                for seed in 0..4 {
                    let t = random_kernel(spec(p, r, k, c, seed));
                    let got = t.measured_alignment();
                    assert!(
                        (got - c).abs() < 1e-10,
                        "P={p} r={r} K={k} c={c} seed={seed}: {got}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_input_kernel_has_the_requested_rank() {
        for (p, r, k) in [(4, 1, 1), (8, 3, 1), (8, 5, 2), (12, 5, 3), (17, 10, 2)] {
            for c in [0.0, 0.5, 0.99] {
                let t = random_kernel(spec(p, r, k, c, 3));
                assert_eq!(input_rank(&t), r, "P={p} r={r} K={k} c={c}");
            }
        }
    }

    #[test]
    fn inputs_are_centred_with_mean_squared_norm_d() {
        let t = random_kernel(spec(10, 4, 2, 0.4, 8));
        let (p, d) = (t.conditions(), t.dim);
        let mut mean_norm = 0.0;
        for a in 0..d {
            let sum: f64 = (0..p).map(|c| t.inputs[c * d + a]).sum();
            assert!(sum.abs() < 1e-10, "coordinate {a} sums to {sum}");
        }
        for c in 0..p {
            let n2: f64 = t.inputs[c * d..(c + 1) * d].iter().map(|v| v * v).sum();
            mean_norm += n2 / p as f64;
        }
        assert!(
            (mean_norm - d as f64).abs() < 1e-10,
            "mean |x|^2 = {mean_norm}"
        );
    }

    #[test]
    fn targets_are_balanced_and_depend_on_the_seed() {
        let t = random_kernel(spec(9, 3, 3, 0.2, 1));
        for o in 0..3 {
            let ones: f64 = (0..9).map(|c| t.targets[c * 3 + o]).sum();
            assert_eq!(ones, 4.0, "output {o}");
        }
        assert!(t.targets.iter().all(|&v| v == 0.0 || v == 1.0));
        let other = random_kernel(spec(9, 3, 3, 0.2, 2));
        assert_ne!(t.targets, other.targets);
        assert_ne!(t.inputs, other.inputs);
    }

    #[test]
    #[should_panic(expected = "does not fit beside")]
    fn a_rank_that_crowds_out_the_targets_is_refused() {
        random_kernel(spec(8, 7, 1, 0.3, 0));
    }

    #[test]
    #[should_panic(expected = "outside [0, 1)")]
    fn full_alignment_is_refused() {
        random_kernel(spec(8, 2, 1, 1.0, 0));
    }
}
