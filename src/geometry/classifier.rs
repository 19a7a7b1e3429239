//! The deterministic linear classifier behind CCGP and shattering
//! dimensionality.
//!
//! An L2-regularised linear support vector machine with the squared hinge
//! loss and a bias, in the primal
//!
//! `min_{w, b} |w|^2 / 2 + b^2 / 2 + C sum_i max(0, 1 - s_i (w . x_i + b))^2`
//!
//! with labels `s_i = +-1`. The bias is an extra feature fixed at 1, so it
//! is regularised like the weights (as in LIBLINEAR with `-B 1`). The
//! problem is solved by dual coordinate descent (Hsieh, Chang, Lin, Keerthi
//! and Sundararajan 2008, "A dual coordinate descent method for large-scale
//! linear SVM", ICML), with their shrinking of the samples that sit at
//! zero: the dual variables are updated one at a time in a deterministic
//! order, never shuffled, so the same data give the same classifier bit
//! for bit. The loop stops when the spread of the
//! projected gradient falls below [`TOLERANCE`] or after [`MAX_EPOCHS`]
//! sweeps; [`LinearSvm::converged`] says which.
//!
//! Why not a crate: linfa-svm (0.8) solves the hinge loss by SMO through a
//! kernel layer and brings in ndarray and the linfa stack; this problem is
//! small (a few hundred samples of at most a few hundred features) and the
//! solver is forty lines.

use crate::fastmath::dot;

/// The regularisation constant the geometry measures use.
pub const C: f64 = 1.0;

/// Stopping threshold on the spread of the projected dual gradient.
/// LIBLINEAR's default for its dual solvers is 0.1; ten times tighter,
/// the held-out accuracies of the paper-size geometry pass (3 seeds x 2
/// activations x 20 saved times) came out identical for SD and within one
/// or two test samples of a 1e-4 solve for single CCGP splits (seed means
/// within 1e-3), at half the cost of the whole pass.
pub const TOLERANCE: f64 = 1e-2;

/// The most sweeps over the samples.
pub const MAX_EPOCHS: usize = 2000;

/// A trained linear classifier `x -> w . x + b > 0`.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearSvm {
    /// The weights `w`, one per feature.
    pub weights: Vec<f64>,
    /// The bias `b`.
    pub bias: f64,
    /// How many sweeps over the samples the solver made.
    pub epochs: usize,
    /// Whether the projected-gradient criterion was met.
    pub converged: bool,
}

impl LinearSvm {
    /// Trains on the row-major `[M, F]` samples `x` with labels `labels`
    /// (`true` is the positive class) and regularisation constant `c`.
    ///
    /// # Panics
    ///
    /// If there are no samples, `x` is not `M` rows, or `c <= 0`.
    pub fn fit(x: &[f64], labels: &[bool], c: f64) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the features the function is compiled for were
                // just detected on this processor.
                return unsafe { Self::fit_avx2(x, labels, c) };
            }
        }
        Self::fit_portable(x, labels, c)
    }

    /// [`LinearSvm::fit`] compiled for AVX2: the same operations in the
    /// same order, so the same bits, on wider vectors.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn fit_avx2(x: &[f64], labels: &[bool], c: f64) -> Self {
        Self::fit_portable(x, labels, c)
    }

    #[inline(always)]
    fn fit_portable(x: &[f64], labels: &[bool], c: f64) -> Self {
        let m = labels.len();
        assert!(m > 0, "no samples to train on");
        assert!(x.len() % m == 0, "{} values are not {m} rows", x.len());
        assert!(c > 0.0, "regularisation constant {c} is not positive");
        let f = x.len() / m;
        let sign = |i: usize| if labels[i] { 1.0 } else { -1.0 };

        // Diagonal of the dual Hessian: |x_i|^2 + 1 (bias) + 1 / (2C).
        let diag_shift = 1.0 / (2.0 * c);
        let q: Vec<f64> = (0..m)
            .map(|i| {
                let row = &x[i * f..(i + 1) * f];
                dot(row, row) + 1.0 + diag_shift
            })
            .collect();

        let mut alpha = vec![0.0; m];
        let mut w = vec![0.0; f];
        let mut b = 0.0;
        let mut epochs = 0;
        let mut converged = false;
        // Shrinking (Hsieh et al. 2008, section 3.2, as in LIBLINEAR): a
        // sample at alpha = 0 whose gradient exceeds the largest projected
        // gradient of the previous sweep is left out of the sweeps that
        // follow; when the rest meet the criterion, every sample is put
        // back and checked once more, so the stopping rule is unchanged.
        let mut active: Vec<usize> = (0..m).collect();
        let mut n_active = m;
        // The dual has no upper bound (squared hinge), so only the largest
        // projected gradient takes part.
        let mut pg_max_old = f64::INFINITY;
        while epochs < MAX_EPOCHS {
            epochs += 1;
            let (mut pg_max, mut pg_min) = (f64::NEG_INFINITY, f64::INFINITY);
            let mut s_idx = 0;
            while s_idx < n_active {
                let i = active[s_idx];
                let row = &x[i * f..(i + 1) * f];
                let s = sign(i);
                let margin = dot(&w, row) + b;
                let g = s * margin - 1.0 + diag_shift * alpha[i];
                let pg = if alpha[i] == 0.0 {
                    if g > pg_max_old {
                        n_active -= 1;
                        active.swap(s_idx, n_active);
                        continue;
                    }
                    g.min(0.0)
                } else {
                    g
                };
                s_idx += 1;
                pg_max = pg_max.max(pg);
                pg_min = pg_min.min(pg);
                if pg == 0.0 {
                    continue;
                }
                let old = alpha[i];
                alpha[i] = (old - g / q[i]).max(0.0);
                let step = (alpha[i] - old) * s;
                w.iter_mut().zip(row).for_each(|(wj, xj)| *wj += step * xj);
                b += step;
            }
            if pg_max - pg_min < TOLERANCE {
                if n_active == m {
                    converged = true;
                    break;
                }
                n_active = m;
                pg_max_old = f64::INFINITY;
                continue;
            }
            pg_max_old = if pg_max <= 0.0 { f64::INFINITY } else { pg_max };
        }
        LinearSvm {
            weights: w,
            bias: b,
            epochs,
            converged,
        }
    }

    /// The decision value `w . x + b` of one sample.
    pub fn decision(&self, row: &[f64]) -> f64 {
        assert_eq!(row.len(), self.weights.len(), "feature count");
        dot(&self.weights, row) + self.bias
    }

    /// The predicted class of one sample: `w . x + b > 0`.
    pub fn predict(&self, row: &[f64]) -> bool {
        self.decision(row) > 0.0
    }

    /// The fraction of the row-major samples `x` whose predicted class is
    /// their label.
    ///
    /// # Panics
    ///
    /// If there are no samples or `x` is not one row per label.
    pub fn accuracy(&self, x: &[f64], labels: &[bool]) -> f64 {
        let f = self.weights.len();
        assert!(!labels.is_empty(), "no samples to test on");
        assert_eq!(x.len(), labels.len() * f, "samples and labels");
        let hits = labels
            .iter()
            .enumerate()
            .filter(|&(i, &l)| self.predict(&x[i * f..(i + 1) * f]) == l)
            .count();
        hits as f64 / labels.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, StandardNormal};

    fn gaussian(rows: usize, cols: usize, seed: u64) -> Vec<f64> {
        let mut rng = crate::seed::stream(seed, "test/svm");
        (0..rows * cols)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect()
    }

    #[test]
    fn the_vector_build_gives_the_portable_bits() {
        let (m, f) = (120, 37);
        let x = gaussian(m, f, 5);
        let labels: Vec<bool> = (0..m)
            .map(|i| x[i * f] + 0.3 * x[i * f + 1] > 0.0)
            .collect();
        let portable = LinearSvm::fit_portable(&x, &labels, C);
        let dispatched = LinearSvm::fit(&x, &labels, C);
        assert_eq!(portable.epochs, dispatched.epochs);
        assert_eq!(portable.bias.to_bits(), dispatched.bias.to_bits());
        let same = portable.weights.iter().zip(&dispatched.weights);
        assert!(same.into_iter().all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn separable_data_are_classified_perfectly() {
        // Two clouds at +-3 along a direction, unit noise in 10 dims.
        let (m, f) = (200, 10);
        let mut x = gaussian(m, f, 1);
        let labels: Vec<bool> = (0..m).map(|i| i % 2 == 0).collect();
        for i in 0..m {
            x[i * f + 3] += if labels[i] { 6.0 } else { -6.0 };
            x[i * f] += 1.5;
        }
        let svm = LinearSvm::fit(&x, &labels, C);
        assert!(svm.converged, "{} epochs", svm.epochs);
        assert_eq!(svm.accuracy(&x, &labels), 1.0);

        let mut test = gaussian(m, f, 2);
        for i in 0..m {
            test[i * f + 3] += if labels[i] { 6.0 } else { -6.0 };
            test[i * f] += 1.5;
        }
        assert_eq!(svm.accuracy(&test, &labels), 1.0);
    }

    /// Asserts the primal optimality condition
    /// grad = (w, b) - 2C sum_i s_i max(0, 1 - s_i f_i) (x_i, 1) = 0
    /// over every sample, shrunk away during the sweeps or not.
    fn assert_primal_optimal(x: &[f64], labels: &[bool], f: usize) {
        let m = labels.len();
        let svm = LinearSvm::fit(x, labels, C);
        assert!(svm.converged);
        let mut grad: Vec<f64> = svm.weights.clone();
        grad.push(svm.bias);
        for i in 0..m {
            let row = &x[i * f..(i + 1) * f];
            let s = if labels[i] { 1.0 } else { -1.0 };
            let slack = (1.0 - s * svm.decision(row)).max(0.0);
            for j in 0..f {
                grad[j] -= 2.0 * C * s * slack * row[j];
            }
            grad[f] -= 2.0 * C * s * slack;
        }
        // The primal gradient is sum_i 2C g_i s_i (x_i, 1) over the dual
        // gradients g_i, which the stopping rule bounds by TOLERANCE.
        let norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
        let rows: f64 = (0..m)
            .map(|i| {
                (x[i * f..(i + 1) * f].iter().map(|v| v * v).sum::<f64>() + 1.0).sqrt()
            })
            .sum();
        let bound = 2.0 * C * TOLERANCE * rows;
        assert!(norm < bound, "primal gradient {norm} above {bound}");
        assert!(
            norm < 0.05 * bound,
            "primal gradient {norm}: far below {bound} in practice"
        );
    }

    #[test]
    fn the_solution_satisfies_the_primal_optimality_condition() {
        let (m, f) = (60, 4);
        let x = gaussian(m, f, 5);
        let labels: Vec<bool> = (0..m)
            .map(|i| x[i * f] + 0.3 * x[i * f + 1] > 0.2)
            .collect();
        assert_primal_optimal(&x, &labels, f);
    }

    #[test]
    fn shrinking_keeps_the_solution_optimal_over_all_samples() {
        // Most samples lie far outside the margin, so they sit at alpha = 0
        // with a large gradient and are shrunk away; a few overlap.
        let (m, f) = (400, 6);
        let mut x = gaussian(m, f, 11);
        let labels: Vec<bool> = (0..m).map(|i| x[i * f + 1] > 0.0).collect();
        for i in 0..m {
            if i % 10 != 0 {
                x[i * f] += if labels[i] { 8.0 } else { -8.0 };
            }
        }
        assert_primal_optimal(&x, &labels, f);
    }

    #[test]
    fn shuffled_labels_are_at_chance_on_held_out_samples() {
        let (m, f) = (100, 20);
        let mut total = 0.0;
        let reps = 40;
        for r in 0..reps {
            let x = gaussian(m, f, 100 + r);
            let coin = gaussian(2 * m, 1, 500 + r);
            let train: Vec<bool> = coin[..m].iter().map(|v| *v > 0.0).collect();
            let test_labels: Vec<bool> = coin[m..].iter().map(|v| *v > 0.0).collect();
            let svm = LinearSvm::fit(&x, &train, C);
            let test = gaussian(m, f, 900 + r);
            total += svm.accuracy(&test, &test_labels);
        }
        let mean = total / reps as f64;
        assert!((mean - 0.5).abs() < 0.03, "mean held-out accuracy {mean}");
    }

    #[test]
    fn the_bias_separates_classes_far_from_the_origin() {
        // One feature, classes at 9 and 11: no line through the origin
        // separates them.
        let noise = gaussian(200, 1, 12);
        let labels: Vec<bool> = (0..200).map(|i| i % 2 == 1).collect();
        let x: Vec<f64> = (0..200)
            .map(|i| if labels[i] { 11.0 } else { 9.0 } + 0.2 * noise[i])
            .collect();
        let svm = LinearSvm::fit(&x, &labels, C);
        assert_eq!(svm.accuracy(&x, &labels), 1.0);
        let threshold = -svm.bias / svm.weights[0];
        assert!((threshold - 10.0).abs() < 0.5, "threshold {threshold}");
    }

    #[test]
    fn training_is_deterministic() {
        let x = gaussian(50, 6, 9);
        let labels: Vec<bool> = (0..50).map(|i| x[i * 6 + 2] > 0.0).collect();
        assert_eq!(
            LinearSvm::fit(&x, &labels, C),
            LinearSvm::fit(&x, &labels, C)
        );
    }
}
