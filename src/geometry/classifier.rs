//! The deterministic linear classifier behind CCGP and shattering
//! dimensionality.
//!
//! An L2-regularised linear support vector machine with the squared hinge
//! loss and a bias, in the primal
//!
//! `min_{w, b} |w|^2 / 2 + b^2 / 2 + C sum_i max(0, 1 - s_i (w . x_i + b))^2`
//!
//! with labels `s_i = +-1`. The bias is an extra feature fixed at 1, so it
//! is regularised like the weights (as in LIBLINEAR with `-B 1`). Two
//! solvers, both deterministic (the same data give the same classifier
//! bit for bit):
//!
//! - [`LinearSvm::fit`], dual coordinate descent (Hsieh, Chang, Lin,
//!   Keerthi and Sundararajan 2008, "A dual coordinate descent method for
//!   large-scale linear SVM", ICML), with their shrinking of the samples
//!   that sit at zero: the dual variables are updated one at a time in a
//!   deterministic order, never shuffled. The loop stops when the spread
//!   of the projected gradient falls below [`TOLERANCE`] or after
//!   [`MAX_EPOCHS`] sweeps; [`LinearSvm::converged`] says which.
//!   [`LinearSvm::fit_gram`] runs the same descent on a block of a Gram
//!   matrix, keeping every margin (in `f32`) instead of the weights, so
//!   that no update waits on a dot product; CCGP trains its classifiers, a few
//!   dozen sweeps each, on ever different blocks of the Gram matrix of
//!   one set of trials, and uses it. At `d = 5`, CCGP at one saved time
//!   (five dichotomies, both kinds of split, trials and Gram matrices
//!   drawn once) takes 6.9 ms after Tanh and 11.2 ms after ReLU, where
//!   the descent on the features with trials drawn per dichotomy took
//!   13.1 and 24.9 ms.
//! - [`SharedSamples::fit`], the finite Newton method on the same
//!   problem, exact to rounding, for many labellings of the same samples
//!   (shattering dimensionality). On the hidden responses at `d = 5` late
//!   in training (tight clusters of ten trials around 32 conditions),
//!   coordinate descent took a few hundred sweeps (up to 857), the Newton
//!   method about ten steps: SD at one saved time 59 ms before, 14 ms now
//!   (`cargo bench --bench geometry -- d5`).
//!
//! Why not a crate: linfa-svm (0.8) solves the hinge loss by SMO through a
//! kernel layer and brings in ndarray and the linfa stack; this problem is
//! small (a few hundred samples of at most a few hundred features).

use std::cell::OnceCell;

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

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
        let m = labels.len();
        assert!(m > 0, "no samples to train on");
        assert!(x.len() % m == 0, "{} values are not {m} rows", x.len());
        let rows: Vec<usize> = (0..m).collect();
        Self::fit_rows(x, x.len() / m, &rows, labels, c)
    }

    /// [`LinearSvm::fit`] on the rows `rows` of the row-major samples `x`
    /// of `f` features, with `labels[i]` the label of row `rows[i]`: the
    /// same classifier, bit for bit, as fitting a copy of those rows.
    ///
    /// # Panics
    ///
    /// If there are no rows, a row is out of range, there is not one label
    /// per row, or `c <= 0`.
    pub fn fit_rows(
        x: &[f64],
        f: usize,
        rows: &[usize],
        labels: &[bool],
        c: f64,
    ) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the features the function is compiled for were
                // just detected on this processor.
                return unsafe { Self::fit_avx2(RowSamples { x, f, rows }, labels, c) };
            }
        }
        Self::fit_features::<PortableDot>(RowSamples { x, f, rows }, labels, c)
    }

    /// [`LinearSvm::fit_rows`] compiled for AVX2: the same operations in
    /// the same order, so the same bits, on wider vectors.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn fit_avx2(samples: RowSamples<'_>, labels: &[bool], c: f64) -> Self {
        Self::fit_features::<Avx2Dot>(samples, labels, c)
    }

    /// The descent with the weights kept and each margin a dot product,
    /// taken by `D`.
    #[inline(always)]
    fn fit_features<D: ChainDot>(
        samples: RowSamples<'_>,
        labels: &[bool],
        c: f64,
    ) -> Self {
        let sq_norms: Vec<f64> = (0..samples.rows.len())
            .map(|i| {
                let row = samples.row(i);
                dot(row, row) + 1.0
            })
            .collect();
        let mut margins = FeatureMargins::<D> {
            samples,
            w: vec![0.0; samples.f],
            b: 0.0,
            dot: std::marker::PhantomData,
        };
        let (_, epochs, converged) = descend(&sq_norms, labels, c, &mut margins);
        LinearSvm {
            weights: margins.w,
            bias: margins.b,
            epochs,
            converged,
        }
    }

    /// The classifier of [`LinearSvm::fit_rows`], by the same descent on
    /// the Gram matrix of the samples instead of their features: each
    /// margin is read from a vector of all of them, and an update moves
    /// that vector by one row of the rows' Gram block, so no step waits on
    /// a dot product. The same iterates up to the rounding of the margins,
    /// which are kept in `f32` by updates, not recomputed (see
    /// `GramMargins`); worth it when many fits share one Gram matrix, as
    /// CCGP's splits do, and the rows are few or the features many.
    ///
    /// # Panics
    ///
    /// As [`LinearSvm::fit_rows`], or if `samples` is not one Gram row per
    /// sample.
    pub fn fit_gram(samples: Gram<'_>, rows: &[usize], labels: &[bool], c: f64) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the features the function is compiled for were
                // just detected on this processor.
                return unsafe { Self::fit_gram_avx2(samples, rows, labels, c) };
            }
        }
        Self::fit_gram_body(samples, rows, labels, c)
    }

    /// [`LinearSvm::fit_gram`] compiled for AVX2: the same operations in
    /// the same order, so the same bits, on wider vectors.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn fit_gram_avx2(
        samples: Gram<'_>,
        rows: &[usize],
        labels: &[bool],
        c: f64,
    ) -> Self {
        Self::fit_gram_body(samples, rows, labels, c)
    }

    #[inline(always)]
    fn fit_gram_body(samples: Gram<'_>, rows: &[usize], labels: &[bool], c: f64) -> Self {
        let Gram { x, k } = samples;
        let m = rows.len();
        let all = (k.len() as f64).sqrt() as usize;
        assert_eq!(all * all, k.len(), "the Gram matrix is not square");
        assert!(m > 0, "no samples to train on");
        assert!(x.len() % all == 0, "{} values are not {all} rows", x.len());
        let f = x.len() / all;
        let sq_norms: Vec<f64> = rows.iter().map(|&r| k[r * all + r]).collect();
        let mut margins = GramMargins {
            block: gram_block(k, all, rows),
            out: vec![0.0; m],
        };
        let (alpha, epochs, converged) = descend(&sq_norms, labels, c, &mut margins);
        let mut weights = vec![0.0; f];
        let mut bias = 0.0;
        for (i, &a) in alpha.iter().enumerate() {
            if a != 0.0 {
                let step = if labels[i] { a } else { -a };
                let row = &x[rows[i] * f..(rows[i] + 1) * f];
                weights
                    .iter_mut()
                    .zip(row)
                    .for_each(|(w, x)| *w += step * x);
                bias += step;
            }
        }
        LinearSvm {
            weights,
            bias,
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
        let rows: Vec<usize> = (0..labels.len()).collect();
        self.accuracy_rows(x, &rows, labels)
    }

    /// The fraction of the rows `rows` of the row-major samples `x` whose
    /// predicted class is their label (`labels[i]` that of row `rows[i]`).
    ///
    /// # Panics
    ///
    /// If there are no rows, a row is out of range or there is not one
    /// label per row.
    pub fn accuracy_rows(&self, x: &[f64], rows: &[usize], labels: &[bool]) -> f64 {
        let f = self.weights.len();
        assert!(!rows.is_empty(), "no samples to test on");
        assert_eq!(rows.len(), labels.len(), "one label per row");
        let hits = rows
            .iter()
            .zip(labels)
            .filter(|&(&r, &l)| self.predict(&x[r * f..(r + 1) * f]) == l)
            .count();
        hits as f64 / rows.len() as f64
    }
}

/// The decision values `w . x + b` of every classifier on every row of
/// the row-major samples `x` (`m` rows), as one product: column `j` of
/// the column-major `m x classifiers.len()` result is classifier `j`'s.
/// Many classifiers tested on the same samples (CCGP's splits, SD's
/// dichotomies) take a fraction of the time of a dot product each.
///
/// # Panics
///
/// If the classifiers differ in their feature count or `x` is not `m`
/// rows of it.
pub fn decisions(classifiers: &[LinearSvm], x: &[f64], m: usize) -> Vec<f64> {
    let count = classifiers.len();
    let f = classifiers.first().map_or(0, |c| c.weights.len());
    assert!(
        classifiers.iter().all(|c| c.weights.len() == f),
        "classifiers of different feature counts"
    );
    assert_eq!(x.len(), m * f, "samples are not {m} rows of {f}");
    let mut out = vec![0.0; m * count];
    for (col, c) in out.chunks_exact_mut(m.max(1)).zip(classifiers) {
        col.iter_mut().for_each(|v| *v = c.bias);
    }
    if f > 0 && m > 0 && count > 0 {
        let weights: Vec<f64> = classifiers
            .iter()
            .flat_map(|c| c.weights.iter().copied())
            .collect();
        let xs = MatRef::from_column_major_slice(x, f, m).transpose();
        let w = MatRef::from_column_major_slice(&weights, f, count);
        let d = MatMut::from_column_major_slice_mut(&mut out, m, count);
        matmul(d, Accum::Add, xs, w, 1.0, Par::Seq);
    }
    out
}

/// The fraction of the rows `rows` whose decision value in `decisions`
/// (one per row of the samples, as a column of [`decisions`]) gives its
/// label (`labels[i]` that of row `rows[i]`).
pub fn accuracy_of(decisions: &[f64], rows: &[usize], labels: &[bool]) -> f64 {
    assert!(!rows.is_empty(), "no samples to test on");
    assert_eq!(rows.len(), labels.len(), "one label per row");
    let hits = rows
        .iter()
        .zip(labels)
        .filter(|&(&r, &l)| (decisions[r] > 0.0) == l)
        .count();
    hits as f64 / rows.len() as f64
}

/// Row-major samples `x` and their Gram matrix `k`, `K_ij = x_i . x_j + 1`
/// (row-major, one row and column per sample): what
/// [`LinearSvm::fit_gram`] trains on.
#[derive(Clone, Copy, Debug)]
pub struct Gram<'a> {
    /// The samples, row-major.
    pub x: &'a [f64],
    /// Their Gram matrix, with the bias's 1 added.
    pub k: &'a [f64],
}

/// `K_ij = x_i . x_j + 1` of the `m` row-major samples `x`, row-major:
/// one triangle by `faer`, mirrored (exactly symmetric, at half the cost
/// of the full product).
pub fn gram_matrix(x: &[f64], m: usize) -> Vec<f64> {
    use faer::linalg::matmul::triangular::{BlockStructure, matmul as triangular};
    assert!(
        m > 0 && x.len() % m == 0,
        "{} values are not {m} rows",
        x.len()
    );
    let f = x.len() / m;
    let mut gram = vec![0.0; m * m];
    if f > 0 {
        let xt = MatRef::from_column_major_slice(x, f, m);
        let k = MatMut::from_column_major_slice_mut(&mut gram, m, m);
        triangular(
            k,
            BlockStructure::TriangularLower,
            Accum::Replace,
            xt.transpose(),
            BlockStructure::Rectangular,
            xt,
            BlockStructure::Rectangular,
            1.0,
            Par::Seq,
        );
    }
    // The lower triangle of the column-major product is the upper one of
    // the row-major result.
    for i in 0..m {
        for j in 0..i {
            gram[i * m + j] = gram[j * m + i];
        }
    }
    gram.iter_mut().for_each(|v| *v += 1.0);
    gram
}

/// The block of the row-major `all x all` matrix `k` on `rows` (rows and
/// columns), in `f32`, gathered entry by entry: CCGP's rows come in runs
/// of ten trials, and a copy call per run cost more than the copying.
#[inline(always)]
fn gram_block(k: &[f64], all: usize, rows: &[usize]) -> Vec<f32> {
    let m = rows.len();
    let mut block = vec![0.0; m * m];
    for (to, &r) in block.chunks_exact_mut(m.max(1)).zip(rows) {
        let from = &k[r * all..(r + 1) * all];
        for (t, &c) in to.iter_mut().zip(rows) {
            *t = from[c] as f32;
        }
    }
    block
}

/// Where the coordinate descent of [`descend`] reads the margins
/// `w . x_i + b` of its samples and how an update `(w, b) += step (x_i,
/// 1)` moves them.
trait Margins {
    fn margin(&self, i: usize) -> f64;
    fn add(&mut self, i: usize, step: f64);
}

/// The weights themselves: a margin is a dot product with a sample.
struct FeatureMargins<'a, D> {
    samples: RowSamples<'a>,
    w: Vec<f64>,
    b: f64,
    dot: std::marker::PhantomData<D>,
}

/// The rows `rows` of the row-major samples `x` of `f` features.
#[derive(Clone, Copy)]
struct RowSamples<'a> {
    x: &'a [f64],
    f: usize,
    rows: &'a [usize],
}

impl RowSamples<'_> {
    /// The `i`-th picked row.
    #[inline(always)]
    fn row(&self, i: usize) -> &[f64] {
        let r = self.rows[i];
        &self.x[r * self.f..(r + 1) * self.f]
    }
}

impl<D: ChainDot> Margins for FeatureMargins<'_, D> {
    #[inline(always)]
    fn margin(&self, i: usize) -> f64 {
        // SAFETY: `D` is the portable product, or was picked by the
        // dispatch in `fit_rows` after detecting its instructions.
        (unsafe { D::dot(&self.w, self.samples.row(i)) }) + self.b
    }

    #[inline(always)]
    fn add(&mut self, i: usize, step: f64) {
        let row = self.samples.row(i);
        self.w
            .iter_mut()
            .zip(row)
            .for_each(|(wj, xj)| *wj += step * xj);
        self.b += step;
    }
}

/// Every margin at once, moved by rows of the samples' Gram block, both
/// in `f32`. Moving every margin is a load and a store of each at every
/// update; in `f32` a vector holds twice as many. The margins only steer
/// the descent (which coordinate moves how far, and when it stops, at a
/// spread of [`TOLERANCE`]): their relative rounding of about 1e-7 per
/// update stays far below it, and the classifier itself is summed in
/// `f64` from the dual variables.
struct GramMargins {
    block: Vec<f32>,
    out: Vec<f32>,
}

impl Margins for GramMargins {
    #[inline(always)]
    fn margin(&self, i: usize) -> f64 {
        f64::from(self.out[i])
    }

    #[inline(always)]
    fn add(&mut self, i: usize, step: f64) {
        let m = self.out.len();
        let row = &self.block[i * m..(i + 1) * m];
        let step = step as f32;
        self.out
            .iter_mut()
            .zip(row)
            .for_each(|(o, k)| *o += step * k);
    }
}

/// Dual coordinate descent (see the module doc) on the samples whose
/// squared norms with the bias, `|x_i|^2 + 1`, are `sq_norms`, reading and
/// moving their margins through `margins`: the dual variables, the
/// sweeps made, and whether the criterion was met.
#[inline(always)]
fn descend(
    sq_norms: &[f64],
    labels: &[bool],
    c: f64,
    margins: &mut impl Margins,
) -> (Vec<f64>, usize, bool) {
    let m = sq_norms.len();
    assert!(m > 0, "no samples to train on");
    assert_eq!(labels.len(), m, "one label per row");
    assert!(c > 0.0, "regularisation constant {c} is not positive");
    let sign = |i: usize| if labels[i] { 1.0 } else { -1.0 };
    // The reciprocal diagonal of the dual Hessian, 1 / (|x_i|^2 + 1 +
    // 1 / (2C)): a multiply in the update, off the division's latency
    // that every next update waited on.
    let diag_shift = 1.0 / (2.0 * c);
    let inv_q: Vec<f64> = sq_norms.iter().map(|q| 1.0 / (q + diag_shift)).collect();

    let mut alpha = vec![0.0; m];
    let mut epochs = 0;
    let mut converged = false;
    // Shrinking (Hsieh et al. 2008, section 3.2, as in LIBLINEAR): a
    // sample at alpha = 0 whose gradient exceeds the largest projected
    // gradient of the previous sweep is left out of the sweeps that
    // follow; when the rest meet the criterion, every sample is put back
    // and checked once more, so the stopping rule is unchanged.
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
            let s = sign(i);
            let g = s * margins.margin(i) - 1.0 + diag_shift * alpha[i];
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
            alpha[i] = (old - g * inv_q[i]).max(0.0);
            margins.add(i, (alpha[i] - old) * s);
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
    (alpha, epochs, converged)
}

/// How coordinate descent takes the dot product of the weights and a
/// sample: `a . b` over the common length with 32 running sums (lane `l`
/// sums the products at positions `l mod 32`, each a multiply and then
/// an add), added pairwise at the end, `acc[l] += acc[l + w]` for
/// `w = 16, 8, 4, 2, 1`. Every implementation gives those bits.
///
/// Coordinate descent waits on this product at every update: over 128
/// features, the eight sums of [`dot`] are chains of 16 dependent
/// additions and a sequential total of 8; these are chains of 4 and a
/// tree of depth 5.
trait ChainDot {
    /// # Safety
    ///
    /// The implementation's instructions must be available on this
    /// processor.
    unsafe fn dot(a: &[f64], b: &[f64]) -> f64;
}

/// [`ChainDot`] in plain Rust.
struct PortableDot;

impl ChainDot for PortableDot {
    #[inline(always)]
    unsafe fn dot(a: &[f64], b: &[f64]) -> f64 {
        let n = a.len().min(b.len());
        let whole = n / 32 * 32;
        let mut acc = [0.0; 32];
        for (x, y) in a[..whole].chunks_exact(32).zip(b[..whole].chunks_exact(32)) {
            for l in 0..32 {
                acc[l] += x[l] * y[l];
            }
        }
        finish_chain_dot(acc, &a[whole..n], &b[whole..n])
    }
}

/// Adds the products of the last `< 32` positions into their lanes, then
/// the lanes pairwise.
#[inline(always)]
fn finish_chain_dot(mut acc: [f64; 32], a: &[f64], b: &[f64]) -> f64 {
    for (l, (x, y)) in a.iter().zip(b).enumerate() {
        acc[l] += x * y;
    }
    let mut width = 16;
    while width > 0 {
        for l in 0..width {
            acc[l] += acc[l + width];
        }
        width /= 2;
    }
    acc[0]
}

/// [`ChainDot`] in AVX2 registers: eight of four lanes, the pairwise
/// total in registers too. (The compiler's own vectors for the portable
/// loop were two lanes wide, with sums spilled to the stack.)
#[cfg(target_arch = "x86_64")]
struct Avx2Dot;

#[cfg(target_arch = "x86_64")]
impl ChainDot for Avx2Dot {
    #[inline(always)]
    unsafe fn dot(a: &[f64], b: &[f64]) -> f64 {
        // SAFETY: the caller has AVX2.
        unsafe { chain_dot_avx2(a, b) }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn chain_dot_avx2(a: &[f64], b: &[f64]) -> f64 {
    use std::arch::x86_64::{
        __m256d, _mm_add_pd, _mm_add_sd, _mm_cvtsd_f64, _mm_unpackhi_pd, _mm256_add_pd,
        _mm256_castpd256_pd128, _mm256_extractf128_pd, _mm256_loadu_pd, _mm256_mul_pd,
        _mm256_setzero_pd, _mm256_storeu_pd,
    };
    let n = a.len().min(b.len());
    let whole = n / 32 * 32;
    // v[j] holds lanes 4j..4j + 4.
    let mut v: [__m256d; 8] = [_mm256_setzero_pd(); 8];
    for i in (0..whole).step_by(32) {
        for (j, vj) in v.iter_mut().enumerate() {
            // SAFETY: i + 4j + 4 <= whole <= both lengths.
            let (x, y) = unsafe {
                (
                    _mm256_loadu_pd(a.as_ptr().add(i + 4 * j)),
                    _mm256_loadu_pd(b.as_ptr().add(i + 4 * j)),
                )
            };
            *vj = _mm256_add_pd(*vj, _mm256_mul_pd(x, y));
        }
    }
    if whole < n {
        let mut acc = [0.0; 32];
        for (j, vj) in v.iter().enumerate() {
            // SAFETY: 4j + 4 <= 32, inside `acc`.
            unsafe { _mm256_storeu_pd(acc.as_mut_ptr().add(4 * j), *vj) };
        }
        return finish_chain_dot(acc, &a[whole..n], &b[whole..n]);
    }
    for j in 0..4 {
        v[j] = _mm256_add_pd(v[j], v[j + 4]);
    }
    for j in 0..2 {
        v[j] = _mm256_add_pd(v[j], v[j + 2]);
    }
    let four = _mm256_add_pd(v[0], v[1]);
    let two = _mm_add_pd(
        _mm256_castpd256_pd128(four),
        _mm256_extractf128_pd::<1>(four),
    );
    _mm_cvtsd_f64(_mm_add_sd(two, _mm_unpackhi_pd(two, two)))
}

/// The most Newton steps [`SharedSamples::fit`] takes before it hands the
/// problem to the coordinate descent of [`LinearSvm::fit`]; the steps
/// needed are about ten (each changes the set of samples inside the
/// margin, and there are finitely many), so this bound is reached only
/// when rounding makes a sample at the margin flicker in and out.
pub const MAX_NEWTON_STEPS: usize = 60;

/// Samples that many classifiers are trained on, under different
/// labellings: their Gram matrix, computed once.
///
/// [`SharedSamples::fit`] solves the problem of [`LinearSvm::fit`]
/// exactly, by the finite Newton method in the span of the samples
/// (Keerthi and DeCoste 2005, "A modified finite Newton method for fast
/// solution of large scale linear SVMs", JMLR 6; Chapelle 2007, "Training
/// a support vector machine in the primal", Neural Computation 19). With
/// `x~ = (x, 1)` and `(w, b) = sum_i beta_i x~_i`, the objective is
/// piecewise quadratic in `beta`, one piece per set `S` of samples inside
/// the margin (`s_i (w . x_i + b) < 1`). Its minimiser on a piece solves
///
/// `(K_SS + I / 2C) beta_S = s_S`, `beta = 0` off `S`,
///
/// with `K = X~ X~^T` the Gram matrix. Each step solves that system, then
/// searches exactly along the step for the minimum of the true objective
/// (piecewise quadratic along a line too), and the fit stops when the
/// samples inside the margin are those the step was solved on: that point
/// is the minimiser, up to rounding.
///
/// The first step has every sample inside; it is solved in the features,
/// `(I + 2C X~^T X~) (w, b) = 2C X~^T s`, whose factor every labelling
/// shares. The later ones keep the Cholesky factor of `K_SS + I / 2C` from
/// step to step and only take out and put in the samples that crossed
/// the margin, which after the first few steps are a handful. The
/// conditioning that makes coordinate descent crawl on tight clusters of
/// samples (hundreds of sweeps on the hidden responses at `d = 5`) does
/// not slow it.
pub struct SharedSamples<'a> {
    x: &'a [f64],
    m: usize,
    f: usize,
    /// `K_ij = x_i . x_j + 1`, row-major `m x m`.
    gram: Vec<f64>,
    /// The regularisation constant of every fit.
    c: f64,
    /// The Cholesky factor of `I + 2C X~^T X~` over every sample, made by
    /// the first fit.
    whole: OnceCell<Option<faer::Mat<f64>>>,
}

impl<'a> SharedSamples<'a> {
    /// The row-major `[m, F]` samples `x`, to be fitted with
    /// regularisation constant `c`.
    ///
    /// # Panics
    ///
    /// If `m` is zero, `x` is not `m` rows or `c <= 0`.
    pub fn new(x: &'a [f64], m: usize, c: f64) -> Self {
        assert!(m > 0, "no samples to train on");
        assert!(x.len() % m == 0, "{} values are not {m} rows", x.len());
        assert!(c > 0.0, "regularisation constant {c} is not positive");
        let f = x.len() / m;
        let gram = gram_matrix(x, m);
        SharedSamples {
            x,
            m,
            f,
            gram,
            c,
            whole: OnceCell::new(),
        }
    }

    /// Trains on every sample with labels `labels` (`true` the positive
    /// class): the classifier [`LinearSvm::fit`] approximates, to
    /// rounding. Falls back to [`LinearSvm::fit`] after
    /// [`MAX_NEWTON_STEPS`]; `epochs` counts the Newton steps.
    ///
    /// # Panics
    ///
    /// If there is not one label per sample.
    pub fn fit(&self, labels: &[bool]) -> LinearSvm {
        let (m, c) = (self.m, self.c);
        assert_eq!(m, labels.len(), "one label per sample");
        let sign: Vec<f64> = labels.iter().map(|&l| if l { 1.0 } else { -1.0 }).collect();

        // beta, the outputs o = K beta, and the factor of the margin set the
        // last step was solved on.
        let mut beta = vec![0.0; m];
        let mut out = vec![0.0; m];
        let mut factor = MarginFactor::new(1.0 / (2.0 * c));
        let mut solved_on: Option<Vec<usize>> = None;
        let (mut target, mut dir) = (vec![0.0; m], vec![0.0; m]);
        for step in 1..=MAX_NEWTON_STEPS {
            let inside: Vec<usize> = (0..m).filter(|&i| sign[i] * out[i] < 1.0).collect();
            if solved_on.as_ref() == Some(&inside) {
                return self.classifier(&beta, step - 1);
            }
            // The minimiser of the piece, and the outputs' rate along the
            // step to it.
            target.iter_mut().for_each(|t| *t = 0.0);
            let e = if inside.len() == m && self.f < m {
                let Some(reached) = self.features_minimum(&sign) else {
                    break;
                };
                for i in 0..m {
                    target[i] = 2.0 * c * (sign[i] - reached[i]);
                }
                reached
                    .iter()
                    .zip(&out)
                    .map(|(r, o)| r - o)
                    .collect::<Vec<_>>()
            } else {
                if !factor.fit_to(&inside, &self.gram, m) {
                    break;
                }
                factor.solve(&sign, &mut target);
                // K d = K target - o, with target on the margin set only.
                let mut e = vec![0.0; m];
                for &i in &factor.members {
                    axpy(target[i], &self.gram[i * m..(i + 1) * m], &mut e);
                }
                e.iter_mut().zip(&out).for_each(|(e, o)| *e -= o);
                e
            };
            for i in 0..m {
                dir[i] = target[i] - beta[i];
            }
            if dir.iter().all(|&d| d == 0.0) {
                return self.classifier(&beta, step);
            }
            let t = line_minimum(&beta, &dir, &out, &e, &sign, c);
            if !t.is_finite() {
                break;
            }
            for i in 0..m {
                beta[i] += t * dir[i];
                out[i] += t * e[i];
            }
            solved_on = Some(inside);
        }
        // Rounding kept the margin set flickering: coordinate descent.
        LinearSvm::fit(self.x, labels, c)
    }

    /// The outputs `X~ (w, b)` of the minimiser of the piece with every
    /// sample inside the margin, solved in the features with the shared
    /// factor.
    fn features_minimum(&self, sign: &[f64]) -> Option<Vec<f64>> {
        let (x, f, m, c) = (self.x, self.f, self.m, self.c);
        let l = self.whole.get_or_init(|| self.factor_features()).as_ref()?;
        // rhs = 2C X~^T s, one product for the weights and a sum for the
        // bias; then the outputs X~ (w, b), one product.
        let xt = MatRef::from_column_major_slice(x, f, m);
        let s = MatRef::from_column_major_slice(sign, m, 1);
        let mut rhs = faer::Mat::<f64>::zeros(f + 1, 1);
        matmul(
            rhs.as_mut().subrows_mut(0, f),
            Accum::Replace,
            xt,
            s,
            2.0 * c,
            Par::Seq,
        );
        rhs[(f, 0)] = 2.0 * c * sign.iter().sum::<f64>();
        cholesky_solve(l.as_ref(), rhs.as_mut());
        let b = rhs[(f, 0)];
        let mut reached = vec![b; m];
        let w = rhs.as_ref().subrows(0, f);
        let out = MatMut::from_column_major_slice_mut(&mut reached, m, 1);
        matmul(out, Accum::Add, xt.transpose(), w, 1.0, Par::Seq);
        Some(reached)
    }

    /// The Cholesky factor of `I + 2C X~^T X~` over every sample.
    fn factor_features(&self) -> Option<faer::Mat<f64>> {
        let (x, f, c) = (self.x, self.f, self.c);
        let a = faer::Mat::from_fn(
            self.m,
            f + 1,
            |i, j| if j < f { x[i * f + j] } else { 1.0 },
        );
        let mut h = faer::Mat::<f64>::identity(f + 1, f + 1);
        matmul(
            h.as_mut(),
            Accum::Add,
            a.transpose(),
            a.as_ref(),
            2.0 * c,
            Par::Seq,
        );
        cholesky(h.as_mut()).then_some(h)
    }

    /// `(w, b) = sum_i beta_i (x_i, 1)`.
    fn classifier(&self, beta: &[f64], steps: usize) -> LinearSvm {
        let f = self.f;
        let mut weights = vec![0.0; f];
        let mut bias = 0.0;
        for (i, &bi) in beta.iter().enumerate() {
            if bi != 0.0 {
                let row = &self.x[i * f..(i + 1) * f];
                weights.iter_mut().zip(row).for_each(|(w, x)| *w += bi * x);
                bias += bi;
            }
        }
        LinearSvm {
            weights,
            bias,
            epochs: steps,
            converged: true,
        }
    }
}

/// The Cholesky factor `L` of `K_SS + ridge I` over a set `S` of samples
/// kept in the order they joined it, column by column (column `j` holds
/// `L[j.., j]`), so that samples can leave and join without refactoring
/// and every triangular solve runs down contiguous columns.
struct MarginFactor {
    ridge: f64,
    members: Vec<usize>,
    cols: Vec<Vec<f64>>,
}

impl MarginFactor {
    fn new(ridge: f64) -> Self {
        MarginFactor {
            ridge,
            members: Vec::new(),
            cols: Vec::new(),
        }
    }

    /// Makes the factor that of the samples `inside` (sorted) over the
    /// row-major `m x m` Gram matrix `k`: the samples that left are taken
    /// out, the ones that came are put in (all anew when half or more
    /// left).
    /// `false` if the matrix is not numerically positive definite.
    fn fit_to(&mut self, inside: &[usize], k: &[f64], m: usize) -> bool {
        let mut wanted = vec![false; m];
        inside.iter().for_each(|&i| wanted[i] = true);
        let leaving = self.members.iter().filter(|&&i| !wanted[i]).count();
        if 2 * leaving >= self.members.len() {
            return self.factor(inside, k, m);
        }
        for p in (0..self.members.len()).rev() {
            if !wanted[self.members[p]] {
                self.remove(p);
            }
        }
        let mut have = vec![false; m];
        self.members.iter().for_each(|&i| have[i] = true);
        let coming: Vec<usize> = inside.iter().copied().filter(|&i| !have[i]).collect();
        self.push(&coming, k, m)
    }

    /// Factors `K_SS + ridge I` over the samples `inside` anew (blocked, by
    /// `faer`).
    fn factor(&mut self, inside: &[usize], k: &[f64], m: usize) -> bool {
        let n = inside.len();
        let mut a = faer::Mat::from_fn(n, n, |p, q| {
            let g = k[inside[p] * m + inside[q]];
            if p == q { g + self.ridge } else { g }
        });
        self.members = inside.to_vec();
        self.cols.clear();
        if !cholesky(a.as_mut()) {
            self.members.clear();
            return false;
        }
        self.cols = (0..n).map(|j| column(&a.col_as_slice(j)[j..])).collect();
        true
    }

    /// Puts the samples `coming` in, over the row-major `m x m` Gram matrix
    /// `k`: their rows of `L` below the present block solve `L Y = K_S,new`
    /// (all of them in one pass down the columns of `L`, so that their
    /// chains of updates overlap), and the block they make among
    /// themselves is the factor of `K_new,new + ridge I - Y^T Y`.
    fn push(&mut self, coming: &[usize], k: &[f64], m: usize) -> bool {
        let (n, q) = (self.members.len(), coming.len());
        if q == 0 {
            return true;
        }
        // y[r * n..][..n]: the new row of sample coming[r], left of the
        // new block.
        let mut y: Vec<f64> = coming
            .iter()
            .flat_map(|&i| self.members.iter().map(move |&s| k[i * m + s]))
            .collect();
        forward(&self.cols, n, &mut y);
        let mut block = faer::Mat::from_fn(q, q, |r, t| {
            let (i, j) = (coming[r], coming[t]);
            let yy = dot(&y[r * n..(r + 1) * n], &y[t * n..(t + 1) * n]);
            k[i * m + j] - yy + if r == t { self.ridge } else { 0.0 }
        });
        if !cholesky(block.as_mut()) {
            return false;
        }
        for (j, col) in self.cols.iter_mut().enumerate() {
            col.extend((0..q).map(|r| y[r * n + j]));
        }
        self.cols
            .extend((0..q).map(|r| column(&block.col_as_slice(r)[r..])));
        self.members.extend_from_slice(coming);
        true
    }

    /// Takes the sample at position `p` out: its row goes, its column
    /// `v` (below the diagonal) goes, and the trailing block `T` becomes
    /// the factor of `T T^T + v v^T`.
    fn remove(&mut self, p: usize) {
        self.members.remove(p);
        for (j, c) in self.cols[..p].iter_mut().enumerate() {
            c.remove(p - j);
        }
        let mut v = self.cols.remove(p);
        v.remove(0);
        rank_one_update(&mut self.cols[p..], &mut v);
    }

    /// `beta_S = (K_SS + ridge I)^-1 s_S` into `beta` (which is zero off
    /// the members).
    fn solve(&self, sign: &[f64], beta: &mut [f64]) {
        let n = self.members.len();
        let mut y: Vec<f64> = self.members.iter().map(|&i| sign[i]).collect();
        forward(&self.cols, n, &mut y);
        for j in (0..n).rev() {
            let c = &self.cols[j];
            y[j] = (y[j] - dot(&c[1..], &y[j + 1..])) / c[0];
        }
        for (p, &i) in self.members.iter().enumerate() {
            beta[i] = y[p];
        }
    }
}

/// A column of `L` with room for the samples that join later.
fn column(values: &[f64]) -> Vec<f64> {
    let mut c = Vec::with_capacity(values.len() + 64);
    c.extend_from_slice(values);
    c
}

crate::simd_fn! {
    /// Solves `L y_r = b_r` in place for every `n`-long right-hand side in
    /// `y` (one after another) and the lower-triangular `L` stored by
    /// columns, column by column of `L` for all of them, each column's
    /// update one pass down it.
    fn forward(cols: &[Vec<f64>], n: usize, y: &mut [f64]) {
        let q = y.len() / n.max(1);
        for j in 0..n {
            let c = &cols[j];
            let (diag, below) = (c[0], &c[1..n - j]);
            for r in 0..q {
                let yr = &mut y[r * n..(r + 1) * n];
                let yj = yr[j] / diag;
                yr[j] = yj;
                let rest = &mut yr[j + 1..];
                for i in 0..rest.len() {
                    rest[i] -= yj * below[i];
                }
            }
        }
    }
}

crate::simd_fn! {
    /// `T T^T + v v^T = T' T'^T` for the lower-triangular `T` stored by
    /// columns: one rotation per column folds `v` in (`v` is spent).
    fn rank_one_update(cols: &mut [Vec<f64>], v: &mut [f64]) {
        for j in 0..v.len() {
            let c = &mut cols[j];
            let ljj = c[0];
            let h = (ljj * ljj + v[j] * v[j]).sqrt();
            let (cos, sin) = (h / ljj, v[j] / ljj);
            let inv_cos = 1.0 / cos;
            c[0] = h;
            let rest = &mut v[j + 1..];
            let below = &mut c[1..rest.len() + 1];
            for i in 0..rest.len() {
                let lij = (below[i] + sin * rest[i]) * inv_cos;
                below[i] = lij;
                rest[i] = cos * rest[i] - sin * lij;
            }
        }
    }
}

crate::simd_fn! {
    /// `y += a x`.
    fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
        let x = &x[..y.len()];
        for i in 0..y.len() {
            y[i] += a * x[i];
        }
    }
}

/// `A = L L^T` in place for a symmetric positive definite `A` (its lower
/// triangle becomes `L`), on this thread; `false` if `A` is not
/// numerically positive definite.
fn cholesky(mut a: faer::MatMut<'_, f64>) -> bool {
    use faer::dyn_stack::{MemBuffer, MemStack};
    use faer::linalg::cholesky::llt::factor;
    let n = a.nrows();
    let mut buf = MemBuffer::new(factor::cholesky_in_place_scratch::<f64>(
        n,
        Par::Seq,
        Default::default(),
    ));
    let stack = MemStack::new(&mut buf);
    factor::cholesky_in_place(
        a.as_mut(),
        Default::default(),
        Par::Seq,
        stack,
        Default::default(),
    )
    .is_ok()
}

/// Solves `L L^T z = rhs` in place, `L` the lower triangle of `l`.
fn cholesky_solve(l: faer::MatRef<'_, f64>, mut rhs: faer::MatMut<'_, f64>) {
    use faer::linalg::triangular_solve as tri;
    tri::solve_lower_triangular_in_place(l, rhs.as_mut(), Par::Seq);
    tri::solve_upper_triangular_in_place(l.transpose(), rhs.as_mut(), Par::Seq);
}

/// The step `t >= 0` that minimises the primal objective along `beta + t
/// dir`, given the outputs `out = K beta` and their rate `e = K dir`:
///
/// `phi(t) = (beta + t d)^T K (beta + t d) / 2 + C sum_i max(0, a_i - t c_i)^2`
///
/// with `a_i = 1 - s_i o_i` and `c_i = s_i e_i`. `phi'` is continuous,
/// piecewise linear and nondecreasing; its pieces break where a sample
/// crosses the margin. Newton's method on `phi'` from `t = 1` (a Newton
/// step's length, most often the answer) lands on the root in one step
/// when it lies on the same piece, and keeps a bracket around it
/// (bisecting when Newton would leave it); a root still some pieces away
/// after [`NEWTON_TRIES`] is found by sweeping the breakpoints inside the
/// bracket in order.
fn line_minimum(
    beta: &[f64],
    dir: &[f64],
    out: &[f64],
    e: &[f64],
    sign: &[f64],
    c: f64,
) -> f64 {
    let m = beta.len();
    let bk: f64 = (0..m).map(|i| beta[i] * e[i]).sum();
    let dk: f64 = (0..m).map(|i| dir[i] * e[i]).sum();
    let a: Vec<f64> = (0..m).map(|i| 1.0 - sign[i] * out[i]).collect();
    let rate: Vec<f64> = (0..m).map(|i| sign[i] * e[i]).collect();
    // phi'(t) and phi'' on the piece just after t.
    let slope = |t: f64| {
        let (g, h) = margin_slope(&a, &rate, t, 2.0 * c);
        (bk + t * dk + g, dk + h)
    };
    let (mut lo, mut hi) = (0.0, f64::INFINITY);
    let mut t = 1.0;
    for _ in 0..NEWTON_TRIES {
        let (g, h) = slope(t);
        if g == 0.0 {
            return t;
        }
        if g > 0.0 {
            hi = t;
        } else {
            lo = t;
        }
        let newton = if h > 0.0 { t - g / h } else { f64::NAN };
        let next = if newton > lo && newton < hi {
            newton
        } else if hi.is_finite() {
            0.5 * (lo + hi)
        } else {
            2.0 * t
        };
        if (next - t).abs() <= 1e-15 * t.max(1.0) {
            return next;
        }
        t = next;
    }
    // Still pieces away: sweep the breakpoints inside the bracket in order
    // from its low end.
    let (mut g, mut h) = slope(lo);
    let mut breaks: Vec<(f64, usize)> = (0..m)
        .filter_map(|i| {
            let at = a[i] / rate[i];
            (rate[i] != 0.0 && at > lo && at < hi).then_some((at, i))
        })
        .collect();
    breaks.sort_unstable_by(|p, q| p.0.total_cmp(&q.0));
    let mut from = lo;
    for (at, i) in breaks {
        // phi'(t) = g + h (t - from) on this piece.
        if h > 0.0 && from - g / h <= at {
            return (from - g / h).max(from);
        }
        g += h * (at - from);
        // Sample i crosses the margin at t = at: in if c_i < 0, out if not.
        let ci = rate[i];
        h += if ci < 0.0 {
            2.0 * c * ci * ci
        } else {
            -2.0 * c * ci * ci
        };
        from = at;
    }
    if h > 0.0 {
        (from - g / h).max(from)
    } else {
        f64::NAN
    }
}

crate::simd_fn! {
    /// The loss's share of `phi'(t)` and `phi''` just after `t`: the sums
    /// over the samples inside the margin there (`a_i - t c_i > 0`, or `= 0`
    /// and entering) of `-w c_i (a_i - t c_i)` and `w c_i^2`, in eight
    /// running sums each.
    fn margin_slope(a: &[f64], rate: &[f64], t: f64, w: f64) -> (f64, f64) {
        const L: usize = 8;
        let n = a.len();
        let rate = &rate[..n];
        let (mut g, mut h) = ([0.0; L], [0.0; L]);
        let mut i = 0;
        while i + L <= n {
            // The lanes' weights first, then each sum in a loop of its
            // own: with both sums in one loop the compiler paired them in
            // two-lane registers instead of filling eight-lane ones.
            let (mut wc, mut at) = ([0.0; L], [0.0; L]);
            for l in 0..L {
                (wc[l], at[l]) = margin_weight(a[i + l], rate[i + l], t, w);
            }
            for l in 0..L {
                g[l] += -(wc[l] * at[l]);
            }
            for l in 0..L {
                h[l] += wc[l] * rate[i + l];
            }
            i += L;
        }
        let (mut gt, mut ht) = (0.0, 0.0);
        for j in i..n {
            let (dg, dh) = margin_term(a[j], rate[j], t, w);
            gt += dg;
            ht += dh;
        }
        (g.iter().sum::<f64>() + gt, h.iter().sum::<f64>() + ht)
    }
}

/// One sample's terms of [`margin_slope`], without branches (the
/// conditions combined with `&` and `|`, not their short-circuit forms,
/// so that the eight lanes compile to vector compares and selects; with
/// the short-circuit forms the compiler split them into two-lane code
/// with spills, some 20 cycles a sample).
#[inline(always)]
fn margin_term(a: f64, c: f64, t: f64, w: f64) -> (f64, f64) {
    let (wc, at) = margin_weight(a, c, t, w);
    (-(wc * at), wc * c)
}

/// `(w c, a - t c)` for a sample inside the margin just after `t`, and
/// `(0, a - t c)` for one outside.
#[inline(always)]
fn margin_weight(a: f64, c: f64, t: f64, w: f64) -> (f64, f64) {
    let at = a - t * c;
    let inside = (at > 0.0) | ((at == 0.0) & (c < 0.0));
    (if inside { w * c } else { 0.0 }, at)
}

/// Newton iterations [`line_minimum`] tries before it sweeps.
const NEWTON_TRIES: usize = 3;

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
        let rows: Vec<usize> = (0..m).collect();
        let samples = RowSamples {
            x: &x,
            f,
            rows: &rows,
        };
        let portable = LinearSvm::fit_features::<PortableDot>(samples, &labels, C);
        let dispatched = LinearSvm::fit(&x, &labels, C);
        assert_same_bits(&portable, &dispatched);
    }

    fn assert_same_bits(a: &LinearSvm, b: &LinearSvm) {
        assert_eq!(a.epochs, b.epochs);
        assert_eq!(a.bias.to_bits(), b.bias.to_bits());
        let same = a.weights.iter().zip(&b.weights);
        assert!(same.into_iter().all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn the_descent_on_the_gram_matrix_lands_where_the_descent_on_the_features_does() {
        let (m, f) = (150, 24);
        let x = gaussian(m, f, 12);
        let k = gram_matrix(&x, m);
        for i in 0..m {
            for j in 0..m {
                assert_eq!(k[i * m + j], k[j * m + i]);
            }
            assert!(
                (k[i * m + i]
                    - dot(&x[i * f..(i + 1) * f], &x[i * f..(i + 1) * f])
                    - 1.0)
                    .abs()
                    < 1e-12
            );
        }
        // Runs of consecutive rows and single ones, out of order.
        let rows: Vec<usize> = (40..90).chain([7, 3, 120]).chain(100..118).collect();
        let labels: Vec<bool> = rows
            .iter()
            .map(|&r| x[r * f] + 0.5 * x[r * f + 3] > 0.2)
            .collect();
        let by_features = LinearSvm::fit_rows(&x, f, &rows, &labels, C);
        let by_gram = LinearSvm::fit_gram(Gram { x: &x, k: &k }, &rows, &labels, C);
        assert!(by_gram.converged && by_features.converged);
        // The same descent, its margins rounded to f32 on the Gram side:
        // both meet the stopping rule's bound on the primal gradient, and
        // land within the tolerance's reach of each other.
        let copy: Vec<f64> = rows
            .iter()
            .flat_map(|&r| x[r * f..(r + 1) * f].iter().copied())
            .collect();
        for svm in [&by_gram, &by_features] {
            let (norm, bound) = primal_gradient(svm, &copy, &labels, f);
            assert!(norm <= bound, "{norm} above {bound}");
        }
        let apart: f64 = by_gram
            .weights
            .iter()
            .zip(&by_features.weights)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt();
        let size = dot(&by_features.weights, &by_features.weights).sqrt();
        assert!(apart < 1e-2 * size, "{apart} apart at |w| = {size}");
        assert!(by_gram.epochs.abs_diff(by_features.epochs) <= 2);
    }

    #[test]
    fn the_chain_dot_products_agree_bit_for_bit() {
        let a = gaussian(1, 300, 21);
        let b = gaussian(1, 300, 22);
        for n in [0, 5, 32, 37, 64, 128, 131, 300] {
            // SAFETY: the portable product needs nothing.
            let portable = unsafe { PortableDot::dot(&a[..n], &b[..n]) };
            let plain = dot(&a[..n], &b[..n]);
            assert!((portable - plain).abs() < 1e-12 * (1.0 + plain.abs()));
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 was just detected.
                let wide = unsafe { Avx2Dot::dot(&a[..n], &b[..n]) };
                assert_eq!(wide.to_bits(), portable.to_bits(), "n = {n}");
            }
        }
    }

    #[test]
    fn one_product_gives_every_classifiers_decisions() {
        let (m, f) = (70, 9);
        let x = gaussian(m, f, 31);
        let classifiers: Vec<LinearSvm> = (0..4)
            .map(|j| {
                let labels: Vec<bool> =
                    (0..m).map(|i| x[i * f + j] > 0.1 * j as f64).collect();
                LinearSvm::fit(&x, &labels, C)
            })
            .collect();
        let values = decisions(&classifiers, &x, m);
        let rows: Vec<usize> = (0..m).step_by(3).collect();
        for (c, column) in classifiers.iter().zip(values.chunks_exact(m)) {
            for i in 0..m {
                let one = c.decision(&x[i * f..(i + 1) * f]);
                assert!((column[i] - one).abs() < 1e-12 * (1.0 + one.abs()));
            }
            let labels: Vec<bool> = rows.iter().map(|&r| x[r * f + 1] > 0.0).collect();
            assert_eq!(
                accuracy_of(column, &rows, &labels),
                c.accuracy_rows(&x, &rows, &labels)
            );
        }
    }

    #[test]
    fn fitting_picked_rows_is_fitting_a_copy_of_them() {
        let (m, f) = (90, 11);
        let x = gaussian(m, f, 8);
        let rows: Vec<usize> = (0..m).filter(|i| i % 3 != 1).rev().collect();
        let labels: Vec<bool> = rows
            .iter()
            .map(|&r| x[r * f] - x[r * f + 2] > 0.1)
            .collect();
        let copy: Vec<f64> = rows
            .iter()
            .flat_map(|&r| x[r * f..(r + 1) * f].iter().copied())
            .collect();
        let picked = LinearSvm::fit_rows(&x, f, &rows, &labels, C);
        let copied = LinearSvm::fit(&copy, &labels, C);
        assert_same_bits(&picked, &copied);
        assert_eq!(
            picked.accuracy_rows(&x, &rows, &labels),
            copied.accuracy(&copy, &labels)
        );
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

    /// The primal gradient
    /// `(w, b) - 2C sum_i s_i max(0, 1 - s_i f_i) (x_i, 1)` of `svm` over
    /// every sample, and the bound the coordinate descent's stopping rule
    /// puts on its norm.
    fn primal_gradient(
        svm: &LinearSvm,
        x: &[f64],
        labels: &[bool],
        f: usize,
    ) -> (f64, f64) {
        let m = labels.len();
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
        (norm, 2.0 * C * TOLERANCE * rows)
    }

    /// Asserts that coordinate descent meets its stopping bound on the
    /// primal gradient over every sample, shrunk away during the sweeps
    /// or not, and that the Newton method on the same samples meets the
    /// optimality condition to rounding.
    fn assert_primal_optimal(x: &[f64], labels: &[bool], f: usize) {
        let svm = LinearSvm::fit(x, labels, C);
        assert!(svm.converged);
        let (norm, bound) = primal_gradient(&svm, x, labels, f);
        assert!(norm < bound, "primal gradient {norm} above {bound}");
        assert!(
            norm < 0.05 * bound,
            "primal gradient {norm}: far below {bound} in practice"
        );
        let exact = SharedSamples::new(x, labels.len(), C).fit(labels);
        let (norm, bound) = primal_gradient(&exact, x, labels, f);
        assert!(exact.converged);
        assert!(norm < 1e-9 * bound, "Newton: primal gradient {norm}");
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

    /// Tight clusters of trials around the corners of a cube, as the
    /// hidden responses late in training are, labelled by a random
    /// balanced dichotomy of the corners.
    fn clustered(
        corners: usize,
        per: usize,
        f: usize,
        seed: u64,
    ) -> (Vec<f64>, Vec<bool>) {
        let centres = gaussian(corners, f, seed);
        let noise = gaussian(corners * per, f, seed + 1);
        let coin = gaussian(corners, 1, seed + 2);
        let mut order: Vec<usize> = (0..corners).collect();
        order.sort_by(|&a, &b| coin[a].total_cmp(&coin[b]));
        let mut positive = vec![false; corners];
        order[..corners / 2]
            .iter()
            .for_each(|&c| positive[c] = true);
        let mut x = Vec::with_capacity(corners * per * f);
        let mut labels = Vec::with_capacity(corners * per);
        for c in 0..corners {
            for t in 0..per {
                let row = c * per + t;
                x.extend((0..f).map(|j| {
                    3.0 * centres[c * f + j].signum() + 0.5 * noise[row * f + j]
                }));
                labels.push(positive[c]);
            }
        }
        (x, labels)
    }

    #[test]
    fn newton_solves_clustered_samples_exactly_in_a_few_steps() {
        for seed in [1, 7, 13] {
            let (f, m) = (40, 320);
            let (x, labels) = clustered(32, 10, f, seed);
            let shared = SharedSamples::new(&x, m, C);
            let exact = shared.fit(&labels);
            assert!(exact.converged);
            assert!(exact.epochs <= 30, "{} Newton steps", exact.epochs);
            let (norm, bound) = primal_gradient(&exact, &x, &labels, f);
            assert!(
                norm < 1e-9 * bound,
                "primal gradient {norm} against {bound}"
            );

            // Coordinate descent reaches the same classifier, to its
            // tolerance, with the same training accuracy.
            let descent = LinearSvm::fit(&x, &labels, C);
            let (wn, wd) = (&exact.weights, &descent.weights);
            let diff: f64 = wn
                .iter()
                .zip(wd)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                .sqrt();
            let size: f64 = wn.iter().map(|a| a * a).sum::<f64>().sqrt();
            assert!(diff < 0.05 * size, "weights {diff} apart, of {size}");
            assert_eq!(exact.accuracy(&x, &labels), descent.accuracy(&x, &labels));
        }
    }

    #[test]
    fn every_labelling_of_shared_samples_is_fitted_as_if_alone() {
        // The factor the first fit makes is shared; it must not carry one
        // labelling's state into the next.
        let (f, m) = (12, 160);
        let (x, _) = clustered(16, 10, f, 3);
        let shared = SharedSamples::new(&x, m, C);
        for seed in 0..4 {
            let coin = gaussian(m, 1, 40 + seed);
            let labels: Vec<bool> = coin.iter().map(|v| *v > 0.0).collect();
            assert_eq!(
                shared.fit(&labels),
                SharedSamples::new(&x, m, C).fit(&labels)
            );
        }
    }

    #[test]
    fn newton_handles_labels_that_leave_most_samples_inside_the_margin() {
        // Shuffled labels on few features: nothing separates them.
        let (m, f) = (150, 5);
        let x = gaussian(m, f, 21);
        let coin = gaussian(m, 1, 22);
        let labels: Vec<bool> = coin.iter().map(|v| *v > 0.0).collect();
        let exact = SharedSamples::new(&x, m, C).fit(&labels);
        assert!(exact.converged);
        let (norm, bound) = primal_gradient(&exact, &x, &labels, f);
        assert!(
            norm < 1e-9 * bound,
            "primal gradient {norm} against {bound}"
        );
        let inside = (0..m)
            .filter(|&i| {
                let s = if labels[i] { 1.0 } else { -1.0 };
                s * exact.decision(&x[i * f..(i + 1) * f]) < 1.0
            })
            .count();
        assert!(inside > m / 2, "{inside} of {m} inside the margin");
    }

    #[test]
    fn the_margin_factor_follows_samples_in_and_out() {
        let (m, f) = (30, 4);
        let x = gaussian(m, f, 8);
        let k = SharedSamples::new(&x, m, C).gram;
        let ridge = 0.5;
        let mut factor = MarginFactor::new(ridge);
        let sets: [&[usize]; 4] = [
            &[0, 3, 4, 7, 9, 12, 20],
            &[3, 4, 5, 9, 12, 13, 20, 25],
            &[1, 2, 3, 4, 5, 6, 9, 12, 13, 20, 25, 29],
            &[2, 5, 6, 13],
        ];
        for set in sets {
            assert!(factor.fit_to(set, &k, m));
            let mut members = factor.members.clone();
            members.sort_unstable();
            assert_eq!(members, set);
            // L L^T is K_SS + ridge I in the factor's own order.
            let n = factor.members.len();
            let l = |i: usize, j: usize| if i >= j { factor.cols[j][i - j] } else { 0.0 };
            for i in 0..n {
                for j in 0..n {
                    let llt: f64 = (0..n).map(|q| l(i, q) * l(j, q)).sum();
                    let (a, b) = (factor.members[i], factor.members[j]);
                    let want = k[a * m + b] + if i == j { ridge } else { 0.0 };
                    assert!(
                        (llt - want).abs() < 1e-10 * want.abs().max(1.0),
                        "({i}, {j})"
                    );
                }
            }
        }
    }

    #[test]
    fn the_line_search_finds_the_minimum_along_the_step() {
        let (m, f) = (40, 3);
        let x = gaussian(m, f, 31);
        let k = SharedSamples::new(&x, m, C).gram;
        let sign: Vec<f64> = gaussian(m, 1, 32).iter().map(|v| v.signum()).collect();
        let beta = gaussian(m, 1, 33)
            .iter()
            .map(|v| 0.05 * v)
            .collect::<Vec<_>>();
        let dir = gaussian(m, 1, 34)
            .iter()
            .map(|v| 0.05 * v)
            .collect::<Vec<_>>();
        let times = |v: &[f64]| -> Vec<f64> {
            (0..m)
                .map(|i| (0..m).map(|j| k[i * m + j] * v[j]).sum())
                .collect()
        };
        let (out, e) = (times(&beta), times(&dir));
        let phi = |t: f64| {
            let b: Vec<f64> = (0..m).map(|i| beta[i] + t * dir[i]).collect();
            let o = times(&b);
            let quad: f64 = (0..m).map(|i| b[i] * o[i]).sum::<f64>() / 2.0;
            let loss: f64 = (0..m)
                .map(|i| (1.0 - sign[i] * o[i]).max(0.0).powi(2))
                .sum();
            quad + C * loss
        };
        let t = line_minimum(&beta, &dir, &out, &e, &sign, C);
        assert!(t >= 0.0);
        for probe in [0.0, 0.5 * t, 0.99 * t, 1.01 * t, 2.0 * t + 0.1] {
            assert!(phi(t) <= phi(probe) + 1e-12, "phi({t}) above phi({probe})");
        }
    }
}
