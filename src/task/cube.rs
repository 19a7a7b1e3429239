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
//!
//! The random spectrum at alignment `c` (parameter: the concentration
//! `alpha > 0`; needs `k < P - 1`) starts from a draw `pi_0` of the
//! symmetric Dirichlet distribution `Dir(alpha, ..., alpha)` over the
//! `P - 1` features, made from independent `Gamma(alpha, 1)` draws divided
//! by their sum. It then moves along the segment
//! `pi(s) = (1 - s) pi_0 + s pi_e`, `s` in `[0, 1]`, to an end point `pi_e`
//! on the far side of `c`: if `cos(pi_0, 1_k) > c`, `pi_e` is `pi_0` with
//! its target weights set to zero and renormalised (alignment 0, keeping
//! the draw's weights on the other features); otherwise `pi_e` is uniform
//! on the `k` target features (alignment 1). The alignment along the
//! segment is continuous and `cos(pi(s), 1_k) - c` changes sign between
//! the ends, so bisection on `s` finds a crossing to machine precision.
//! Both ends lie on the simplex, so `pi(s)` does too. A small concentration
//! gives spiky spectra, a large one spectra near uniform.

use hdf5_pure::AttrValue;
use rand_distr::{Distribution, Gamma};

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

/// A random spectrum at alignment `c`: a symmetric Dirichlet draw with
/// the given concentration, moved along a segment until
/// `cos(pi, 1_k) = c` (see the module doc). Returns the spectrum and the
/// segment position `s` it stopped at.
///
/// # Panics
///
/// If `c` is outside `[0, 1]`, `concentration` is not positive and finite,
/// or `k` is not in `1..P - 1`.
pub fn random_spectrum(
    d: usize,
    k: usize,
    c: f64,
    concentration: f64,
    rng: &mut impl rand::Rng,
) -> (Vec<f64>, f64) {
    let f = (1usize << d) - 1;
    assert!(
        (1..f).contains(&k),
        "a random spectrum needs 1 <= k < {f} targets, not {k}"
    );
    assert!((0.0..=1.0).contains(&c), "alignment {c} is outside [0, 1]");
    assert!(
        concentration > 0.0 && concentration.is_finite(),
        "Dirichlet concentration {concentration} must be positive"
    );
    let start = dirichlet(f, concentration, rng);
    let end = if alignment_of(&start, k) > c {
        let rest: f64 = start[k..].iter().sum();
        (0..f)
            .map(|i| if i < k { 0.0 } else { start[i] / rest })
            .collect()
    } else {
        deterministic_spectrum(d, k, 1.0)
    };
    let at = |s: f64| -> Vec<f64> {
        let mix = |(u, e): (&f64, &f64)| (1.0 - s) * u + s * e;
        start.iter().zip(&end).map(mix).collect()
    };
    let gap = |s: f64| alignment_of(&at(s), k) - c;

    // Bisection on the sign change of the gap between the two ends.
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    let (g_lo, g_hi) = (gap(lo), gap(hi));
    let s = if g_lo == 0.0 {
        lo
    } else if g_hi == 0.0 {
        hi
    } else {
        loop {
            let mid = 0.5 * (lo + hi);
            if mid <= lo || mid >= hi {
                break if gap(lo).abs() <= gap(hi).abs() {
                    lo
                } else {
                    hi
                };
            }
            let g = gap(mid);
            if g == 0.0 {
                break mid;
            }
            if (g > 0.0) == (g_lo > 0.0) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
    };
    (at(s), s)
}

/// `cos(pi, 1_k)`: the alignment of a spectrum with the first `k`
/// features.
fn alignment_of(pi: &[f64], k: usize) -> f64 {
    let on_targets: f64 = pi[..k].iter().sum();
    let norm = pi.iter().map(|w| w * w).sum::<f64>().sqrt();
    on_targets / (norm * (k as f64).sqrt())
}

/// A draw of the symmetric Dirichlet distribution over `f` categories,
/// as normalised `Gamma(alpha, 1)` draws; redrawn in the (vanishingly
/// rare) event that every gamma draw underflows to zero.
fn dirichlet(f: usize, alpha: f64, rng: &mut impl rand::Rng) -> Vec<f64> {
    let gamma = Gamma::new(alpha, 1.0).expect("a positive, finite shape");
    loop {
        let g: Vec<f64> = (0..f).map(|_| gamma.sample(rng)).collect();
        let total: f64 = g.iter().sum();
        if total > 0.0 {
            return g.into_iter().map(|x| x / total).collect();
        }
    }
}

/// How the spectrum `pi` over the `P - 1` features is chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Spectrum {
    /// `a` on the target features and `b` on the others.
    Deterministic,
    /// A symmetric Dirichlet draw moved onto the requested alignment.
    Random {
        /// The Dirichlet concentration `alpha > 0`.
        concentration: f64,
    },
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
    /// Seed of the embedding and of a random spectrum.
    pub seed: u64,
    /// How the spectrum is chosen.
    pub spectrum: Spectrum,
}

/// Builds the cube task with the spectrum the spec asks for.
///
/// # Panics
///
/// With a random spectrum, under the conditions of [`random_spectrum`]
/// (in particular `k = P - 1`, where no spectrum has an alignment below
/// `1 / sqrt(P - 1)`).
pub fn cube(spec: CubeSpec) -> Task {
    let CubeSpec {
        d,
        k,
        alignment,
        dim,
        seed,
        spectrum,
    } = spec;
    let p = 1usize << d;
    let f = p - 1;
    let h = parity_features(d);
    let (pi, spectrum_attrs) = match spectrum {
        Spectrum::Deterministic => (
            deterministic_spectrum(d, k, alignment),
            vec![("spectrum".into(), AttrValue::String("deterministic".into()))],
        ),
        Spectrum::Random { concentration } => {
            let mut rng = seed::stream(seed, "task/cube/spectrum");
            let (pi, s) = random_spectrum(d, k, alignment, concentration, &mut rng);
            let attrs: Vec<(String, AttrValue)> = vec![
                ("spectrum".into(), AttrValue::String("random".into())),
                (
                    "spectrum_concentration".into(),
                    AttrValue::F64(concentration),
                ),
                ("spectrum_segment".into(), AttrValue::F64(s)),
            ];
            (pi, attrs)
        }
    };
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
    ];
    task.attrs.extend(spectrum_attrs);
    task.attrs.extend([
        ("spectrum_pi".into(), AttrValue::F64Array(pi)),
        ("alignment_requested".into(), AttrValue::F64(alignment)),
        ("alignment".into(), AttrValue::F64(measured)),
        ("alignment_max".into(), AttrValue::F64(max_alignment(d, k))),
    ]);
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
                    spectrum: Spectrum::Deterministic,
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
            spectrum: Spectrum::Deterministic,
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
            spectrum: Spectrum::Deterministic,
        });
        assert!((t.measured_alignment() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn random_spectra_reach_the_requested_alignment() {
        for (d, k) in [
            (2, 1),
            (2, 2),
            (3, 1),
            (3, 2),
            (3, 3),
            (4, 2),
            (5, 1),
            (5, 5),
        ] {
            let cmax = max_alignment(d, k);
            for frac in [0.0, 0.05, 0.5, 0.93, 1.0, 1.3, 2.0] {
                let c = (frac * cmax).min(1.0);
                for seed in 0..5 {
                    for concentration in [0.3, 1.0, 10.0] {
                        let t = cube(CubeSpec {
                            d,
                            k,
                            alignment: c,
                            dim: 40,
                            seed,
                            spectrum: Spectrum::Random { concentration },
                        });
                        let got = t.measured_alignment();
                        assert!(
                            (got - c).abs() < 1e-12,
                            "d={d} k={k} c={c} seed={seed} alpha={concentration}: {got}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn random_spectra_stay_on_the_simplex_and_differ_by_seed() {
        let draw = |seed| {
            let mut rng = seed::stream(seed, "task/cube/spectrum");
            random_spectrum(4, 2, 0.3, 1.0, &mut rng)
        };
        for seed in 0..20 {
            let (pi, s) = draw(seed);
            assert!((0.0..=1.0).contains(&s), "segment position {s}");
            assert!(pi.iter().all(|&w| w >= 0.0), "negative weight in {pi:?}");
            let total: f64 = pi.iter().sum();
            assert!((total - 1.0).abs() < 1e-14, "weights sum to {total}");
        }
        let (a, b) = (draw(1).0, draw(2).0);
        assert_ne!(a, b);
        assert_ne!(a, deterministic_spectrum(4, 2, 0.3));
    }

    #[test]
    fn a_draw_already_at_the_alignment_does_not_move() {
        // With k = 1 and c = cos(pi_0, 1_1), the segment stops at s = 0.
        let mut rng = seed::stream(9, "task/cube/spectrum");
        let pi0 = dirichlet(7, 1.0, &mut rng);
        let norm: f64 = pi0.iter().map(|w| w * w).sum::<f64>().sqrt();
        let c = pi0[0] / norm;
        let mut rng = seed::stream(9, "task/cube/spectrum");
        let (pi, s) = random_spectrum(3, 1, c, 1.0, &mut rng);
        assert!(s.abs() < 1e-12, "moved to s = {s}");
        for (a, b) in pi.iter().zip(&pi0) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn dirichlet_means_match_a_uniform_simplex_point() {
        let mut rng = seed::stream(3, "test/dirichlet");
        let n = 20_000;
        let mut mean = [0.0; 4];
        for _ in 0..n {
            for (m, w) in mean.iter_mut().zip(dirichlet(4, 0.5, &mut rng)) {
                *m += w / n as f64;
            }
        }
        // Each weight has mean 1/4 and sd sqrt(3/16 / 3) / sqrt(n) < 0.002.
        for m in mean {
            assert!((m - 0.25).abs() < 0.01, "{mean:?}");
        }
    }
}
