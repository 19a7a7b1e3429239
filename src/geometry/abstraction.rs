//! Abstraction measures of a dichotomy: parallelism score (PS),
//! cross-condition generalisation performance (CCGP) and shattering
//! dimensionality (SD), after Bernardi et al. 2020 ("The geometry of
//! abstraction in the hippocampus and prefrontal cortex", Cell).
//!
//! All act on the row-major `[P, N]` representation `Z` and a dichotomy
//! (see [`super::dichotomy`]).
//!
//! *Parallelism score.* Pair each condition of the negative class with a
//! distinct condition of the positive class; the coding vectors are the
//! differences `z_pos - z_neg`; the score is the mean cosine over the
//! `m (m - 1) / 2` distinct pairs of coding vectors (`m` the class size;
//! a zero coding vector contributes cosine 0). Two pairings are offered:
//! - [`parallelism_max`], the classical definition, maximises the score
//!   over pairings. For `m <= `[`MAX_EXHAUSTIVE_CLASS`] (`P <= 16`) it
//!   tries all `m!` pairings and is exact. Beyond that no exact method is
//!   known to be cheap (the objective is quadratic in the pairing, not a
//!   linear assignment), so it runs a seeded local search: the
//!   minimum-distance pairing and [`RESTARTS`] random pairings, each
//!   improved by swapping partners while any swap raises the score, and
//!   keeps the best. That is a lower bound on the maximum, flagged by
//!   [`Parallelism::exhaustive`] being `false`.
//! - [`parallelism_min_distance`] pairs by the least total Euclidean
//!   distance `sum |z_pos - z_neg|`, solved exactly by the Hungarian
//!   method; it is cheap at any size and equals the maximum whenever the
//!   nearest partners are the parallel ones (for example on a factorised
//!   cube).
//!
//! repflow reports the maximum as "the" PS.
//!
//! *CCGP.* Train the linear classifier of [`super::classifier`] on noisy
//! samples `z_c + sigma xi` (`xi` standard normal in the `N` hidden
//! dimensions) of some conditions and test on samples of the held-out
//! ones. The conditions come in matched pairs (one of each class, partners
//! under a pairing such as the PS one) and are trained on in whole pairs:
//! [`CcgpSplit::Pair`] trains on one matched pair, that is one condition
//! of each class, and tests on all others; [`CcgpSplit::Half`] trains on
//! half the pairs, that is half the conditions of each class, and tests
//! on the rest. The splits are enumerated, or seeded-subsampled when
//! there are more than asked for, and the accuracies averaged.
//!
//! *Shattering dimensionality.* The mean held-out accuracy (train on noisy
//! samples of every condition, test on fresh ones) over all balanced
//! dichotomies when `P <= 8`, or over a seeded random subset of a size the
//! caller states when `P > 8`.

use std::collections::HashSet;

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use nalgebra::DMatrix;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, StandardNormal};

use super::assignment::hungarian;
use super::classifier::{
    C, Gram, LinearSvm, SharedSamples, accuracy_of, decisions, gram_matrix,
};
use super::dichotomy::{balanced_dichotomies, classes, random_balanced_dichotomies};
use crate::fastmath::dot;
use crate::network::clear_upper_vector_state;
use crate::seed;

/// The largest class size for which [`parallelism_max`] is exhaustive.
pub const MAX_EXHAUSTIVE_CLASS: usize = 8;

/// Random starting pairings of the local search beyond that size.
pub const RESTARTS: usize = 32;

/// The largest `P` for which [`shattering_dimensionality`] uses every
/// balanced dichotomy.
pub const MAX_ENUMERATED_SHATTERING: usize = 8;

/// A parallelism score and the pairing that gave it.
#[derive(Clone, Debug, PartialEq)]
pub struct Parallelism {
    /// The mean cosine between coding vectors.
    pub score: f64,
    /// The pairs `(negative condition, positive condition)`, in the order
    /// of the negative class.
    pub pairs: Vec<(usize, usize)>,
    /// Whether the pairing is a proven optimum of its criterion (always
    /// for the minimum-distance pairing; for the maximum only when every
    /// pairing was tried).
    pub exhaustive: bool,
}

/// The parallelism score of the given pairs `(negative, positive)` of
/// conditions of the row-major `[P, N]` representation `z`; `NaN` for
/// fewer than two pairs.
///
/// # Panics
///
/// If `z` is not `p` rows or a condition is out of range.
pub fn parallelism_of_pairs(z: &[f64], p: usize, pairs: &[(usize, usize)]) -> f64 {
    let n = row_len(z, p);
    let units: Vec<Vec<f64>> = pairs
        .iter()
        .map(|&(a, b)| unit_difference(&z[b * n..(b + 1) * n], &z[a * n..(a + 1) * n]))
        .collect();
    let m = units.len();
    if m < 2 {
        return f64::NAN;
    }
    let mut sum = 0.0;
    for i in 0..m {
        for j in i + 1..m {
            sum += dot(&units[i], &units[j]);
        }
    }
    sum / (m * (m - 1) / 2) as f64
}

/// The parallelism score maximised over pairings (see the module doc:
/// exact up to class size [`MAX_EXHAUSTIVE_CLASS`], a seeded local search
/// beyond).
///
/// # Panics
///
/// If `z` is not `p` rows, `labels` is not `p` long, or the dichotomy is
/// not balanced.
pub fn parallelism_max(z: &[f64], p: usize, labels: &[bool], seed: u64) -> Parallelism {
    let coding = Coding::new(z, p, labels);
    let m = coding.m;
    let (perm, exhaustive) = if m <= MAX_EXHAUSTIVE_CLASS {
        (coding.exhaustive_best(), true)
    } else {
        let start = min_distance_pairing(z, p, labels);
        (coding.local_search_best(start, seed), false)
    };
    coding.result(perm, exhaustive)
}

/// The parallelism score of the minimum-total-distance pairing, found by
/// the Hungarian method.
///
/// # Panics
///
/// As [`parallelism_max`].
pub fn parallelism_min_distance(z: &[f64], p: usize, labels: &[bool]) -> Parallelism {
    let (neg, pos) = classes(labels);
    assert_eq!(neg.len(), pos.len(), "the dichotomy is not balanced");
    let perm = min_distance_pairing(z, p, labels);
    let pairs: Vec<(usize, usize)> =
        (0..neg.len()).map(|i| (neg[i], pos[perm[i]])).collect();
    Parallelism {
        score: parallelism_of_pairs(z, p, &pairs),
        pairs,
        exhaustive: true,
    }
}

/// `perm[i]`: the index in the positive class paired with the `i`-th
/// negative condition, by least total distance.
fn min_distance_pairing(z: &[f64], p: usize, labels: &[bool]) -> Vec<usize> {
    let n = row_len(z, p);
    let (neg, pos) = classes(labels);
    let row = |c: usize| &z[c * n..(c + 1) * n];
    let cost = DMatrix::from_fn(neg.len(), pos.len(), |i, k| {
        let (a, b) = (row(neg[i]), row(pos[k]));
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f64>()
            .sqrt()
    });
    hungarian(&cost).columns
}

/// The unit coding vectors of every (negative, positive) pair of one
/// balanced dichotomy, with their cosines tabled when affordable.
struct Coding {
    m: usize,
    /// Hidden units: the length of a coding vector.
    n: usize,
    neg: Vec<usize>,
    pos: Vec<usize>,
    /// `units[(i * m + k) * n..][..n]`: unit `z_pos[k] - z_neg[i]` (or
    /// zero).
    units: Vec<f64>,
    /// `table[((i * m + k) * m + j) * m + l]`: cosine of two coding
    /// vectors, when `m <= TABLE_LIMIT`.
    table: Option<Vec<f64>>,
}

const TABLE_LIMIT: usize = 24;

impl Coding {
    fn new(z: &[f64], p: usize, labels: &[bool]) -> Self {
        let n = row_len(z, p);
        assert_eq!(labels.len(), p, "one label per condition");
        let (neg, pos) = classes(labels);
        assert_eq!(neg.len(), pos.len(), "the dichotomy is not balanced");
        let m = neg.len();
        let row = |c: usize| &z[c * n..(c + 1) * n];
        let mm = m * m;
        let mut units = Vec::with_capacity(mm * n);
        for ik in 0..mm {
            units.extend(unit_difference(row(pos[ik % m]), row(neg[ik / m])));
        }
        // Every cosine at once, as the Gram matrix of the unit vectors
        // (one product instead of mm^2 dot products; at d = 5 the table
        // holds 65,536 of them per dichotomy).
        let table = (m <= TABLE_LIMIT && n > 0).then(|| {
            let mut table = vec![0.0; mm * mm];
            let u = MatRef::from_column_major_slice(&units, n, mm);
            let t = MatMut::from_column_major_slice_mut(&mut table, mm, mm);
            matmul(t, Accum::Replace, u.transpose(), u, 1.0, Par::Seq);
            clear_upper_vector_state();
            table
        });
        Coding {
            m,
            n,
            neg,
            pos,
            units,
            table,
        }
    }

    /// The cosine between coding vectors `(i, k)` and `(j, l)`.
    fn cos(&self, i: usize, k: usize, j: usize, l: usize) -> f64 {
        let (m, n) = (self.m, self.n);
        match &self.table {
            Some(t) => t[((i * m + k) * m + j) * m + l],
            None => {
                let unit = |a: usize| &self.units[a * n..(a + 1) * n];
                dot(unit(i * m + k), unit(j * m + l))
            }
        }
    }

    /// The sum of cosines over distinct pairs for a pairing.
    fn total(&self, perm: &[usize]) -> f64 {
        let mut sum = 0.0;
        for i in 0..self.m {
            for j in i + 1..self.m {
                sum += self.cos(i, perm[i], j, perm[j]);
            }
        }
        sum
    }

    /// The cosines that involve rows `i` or `j` of a pairing.
    fn touching(&self, perm: &[usize], i: usize, j: usize) -> f64 {
        let mut sum = self.cos(i, perm[i], j, perm[j]);
        for b in (0..self.m).filter(|&b| b != i && b != j) {
            sum += self.cos(i, perm[i], b, perm[b]) + self.cos(j, perm[j], b, perm[b]);
        }
        sum
    }

    /// The best pairing over all `m!`, in Heap's order, first one kept
    /// on ties.
    fn exhaustive_best(&self) -> Vec<usize> {
        let m = self.m;
        let mut perm: Vec<usize> = (0..m).collect();
        let mut best = perm.clone();
        let mut best_total = self.total(&perm);
        let mut counter = vec![0usize; m];
        let mut i = 1;
        while i < m {
            if counter[i] < i {
                let swap_with = if i % 2 == 0 { 0 } else { counter[i] };
                perm.swap(swap_with, i);
                let t = self.total(&perm);
                if t > best_total {
                    best_total = t;
                    best.clone_from(&perm);
                }
                counter[i] += 1;
                i = 1;
            } else {
                counter[i] = 0;
                i += 1;
            }
        }
        best
    }

    /// Swaps partners while any swap raises the total, from `start` and
    /// from [`RESTARTS`] seeded random pairings; the best local optimum.
    fn local_search_best(&self, start: Vec<usize>, seed: u64) -> Vec<usize> {
        let mut rng = seed::stream(seed, "geometry/parallelism");
        let mut best = self.improve(start);
        let mut best_total = self.total(&best);
        for _ in 0..RESTARTS {
            let mut perm: Vec<usize> = (0..self.m).collect();
            perm.shuffle(&mut rng);
            let perm = self.improve(perm);
            let t = self.total(&perm);
            if t > best_total {
                best_total = t;
                best = perm;
            }
        }
        best
    }

    fn improve(&self, perm: Vec<usize>) -> Vec<usize> {
        match &self.table {
            Some(table) => self.improve_tabled(table, perm),
            None => self.improve_by_dots(perm),
        }
    }

    /// [`Coding::improve`] with the cosines tabled: the gain of a swap in
    /// a few lookups instead of the `4 (m - 2)` cosines that touch its two
    /// rows.
    ///
    /// `sums[a * m + k]` holds `sum_b cos((a, k), (b, perm[b]))` over every
    /// row `b` of the present pairing. The cosines that involve rows `i`
    /// and `j` are then `sums[i, perm[i]] + sums[j, perm[j]]` less the
    /// terms of `b = i, j`, before and after swapping their partners, and
    /// an accepted swap moves every sum by four rows of the table (the
    /// table's row for coding vector `(b, l)` is contiguous in `(a, k)`).
    /// The sums are made afresh before every sweep, so rounding cannot
    /// pile up over the accepted swaps.
    fn improve_tabled(&self, table: &[f64], mut perm: Vec<usize>) -> Vec<usize> {
        let m = self.m;
        let mm = m * m;
        let t =
            |a: usize, k: usize, b: usize, l: usize| table[((a * m + k) * m + b) * m + l];
        let row = |b: usize, l: usize| &table[(b * m + l) * mm..(b * m + l + 1) * mm];
        let mut sums = vec![0.0; mm];
        let mut improved = true;
        while improved {
            improved = false;
            sums.iter_mut().for_each(|v| *v = 0.0);
            for (b, &l) in perm.iter().enumerate() {
                sums.iter_mut().zip(row(b, l)).for_each(|(s, v)| *s += v);
            }
            for i in 0..m {
                for j in i + 1..m {
                    let (pi, pj) = (perm[i], perm[j]);
                    let before = sums[i * m + pi] + sums[j * m + pj]
                        - t(i, pi, i, pi)
                        - t(j, pj, j, pj)
                        - t(i, pi, j, pj);
                    let after = sums[i * m + pj] + sums[j * m + pi]
                        - t(i, pj, i, pi)
                        - t(i, pj, j, pj)
                        - t(j, pi, j, pj)
                        - t(j, pi, i, pi)
                        + t(i, pj, j, pi);
                    if after > before + 1e-12 {
                        improved = true;
                        let (gone_i, gone_j) = (row(i, pi), row(j, pj));
                        let (new_i, new_j) = (row(i, pj), row(j, pi));
                        for (q, s) in sums.iter_mut().enumerate() {
                            *s += new_i[q] + new_j[q] - gone_i[q] - gone_j[q];
                        }
                        perm.swap(i, j);
                    }
                }
            }
        }
        perm
    }

    /// [`Coding::improve`] with the cosines computed as they are needed.
    fn improve_by_dots(&self, mut perm: Vec<usize>) -> Vec<usize> {
        let mut improved = true;
        while improved {
            improved = false;
            for i in 0..self.m {
                for j in i + 1..self.m {
                    let before = self.touching(&perm, i, j);
                    perm.swap(i, j);
                    if self.touching(&perm, i, j) > before + 1e-12 {
                        improved = true;
                    } else {
                        perm.swap(i, j);
                    }
                }
            }
        }
        perm
    }

    fn result(&self, perm: Vec<usize>, exhaustive: bool) -> Parallelism {
        let m = self.m;
        let score = if m < 2 {
            f64::NAN
        } else {
            self.total(&perm) / (m * (m - 1) / 2) as f64
        };
        let pairs = (0..m).map(|i| (self.neg[i], self.pos[perm[i]])).collect();
        Parallelism {
            score,
            pairs,
            exhaustive,
        }
    }
}

/// How noisy samples of the conditions are drawn for CCGP and SD.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoiseProtocol {
    /// The standard deviation of the isotropic Gaussian noise added to
    /// each hidden response.
    pub sigma: f64,
    /// Training samples per training condition.
    pub train_per_condition: usize,
    /// Test samples per test condition.
    pub test_per_condition: usize,
    /// The seed of the noise (and of any subsampling).
    pub seed: u64,
}

/// Which matched pairs CCGP trains on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CcgpSplit {
    /// One matched pair, that is one condition of each class; test on
    /// all the other paired conditions. `m` splits.
    Pair,
    /// `floor(m / 2)` matched pairs; test on the others.
    /// `binom(m, floor(m / 2))` splits.
    Half,
}

/// A CCGP value and how it was averaged.
#[derive(Clone, Debug, PartialEq)]
pub struct Generalisation {
    /// The mean held-out accuracy over the splits.
    pub accuracy: f64,
    /// How many train/test splits were averaged.
    pub splits: usize,
    /// Whether every split was used (otherwise a seeded subset).
    pub enumerated: bool,
}

/// The minimum-total-distance pairing of a balanced dichotomy, as pairs
/// `(negative, positive)` of conditions: the matched pairs [`ccgp`] uses
/// when the task gives none.
///
/// # Panics
///
/// As [`parallelism_max`].
pub fn min_distance_pairs(z: &[f64], p: usize, labels: &[bool]) -> Vec<(usize, usize)> {
    parallelism_min_distance(z, p, labels).pairs
}

/// Cross-condition generalisation of the dichotomy given by the matched
/// `pairs` (`(negative, positive)` conditions), averaged over at most
/// `max_splits` train/test splits of the kind `split`: one
/// [`CcgpDraw`] of `pairs.len()` pairs, measured once.
///
/// Every split trains and tests on the same noisy trials of its
/// conditions (one training set and one test set drawn per call), so
/// splits differ only in which conditions they hold out.
///
/// Training sets are made of whole matched pairs, so the two classes are
/// trained on conditions that agree on everything but the dichotomy.
/// Training on an unmatched condition of each class lets the other
/// variables into the classifier: on a perfectly factorised 3-cube,
/// averaging over all `m^2` choices of one condition per class gave
/// 0.77 (measured at sigma = 0.1), not 1. Take the pairs from the task's
/// latents, from [`min_distance_pairs`], or from [`parallelism_max`].
///
/// # Panics
///
/// If `z` is not `p` rows, there are fewer than two pairs, a condition is
/// out of range or repeated, or `max_splits` or a sample count is zero.
pub fn ccgp(
    z: &[f64],
    p: usize,
    pairs: &[(usize, usize)],
    split: CcgpSplit,
    noise: &NoiseProtocol,
    max_splits: usize,
) -> Generalisation {
    CcgpDraw::new(z, p, pairs.len(), split, noise, max_splits).generalisation(pairs)
}

/// The noisy trials and the train/test splits of one CCGP measurement
/// of `m` matched pairs: what [`ccgp`] draws before it trains anything.
///
/// Neither depends on which dichotomy is measured, only on `m`, the kind
/// of split, the noise protocol and the representation, so every
/// dichotomy of `m` pairs of one saved time can be measured on one draw,
/// with the same results bit for bit as drawing anew for each (at
/// `d = 5` that is two draws of 2 x 320 noisy responses per saved time
/// instead of ten).
pub struct CcgpDraw {
    m: usize,
    p: usize,
    /// Subsets of `0..m`: the pairs each split trains on.
    splits: Vec<Vec<usize>>,
    enumerated: bool,
    training: Trials,
    /// The Gram matrix of every training trial, that each split's
    /// classifier trains on a block of.
    gram: Vec<f64>,
    testing: Trials,
}

impl CcgpDraw {
    /// Draws the splits and trials for dichotomies of `m` matched pairs
    /// of the row-major `[P, N]` representation `z`.
    ///
    /// # Panics
    ///
    /// If `z` is not `p` rows, `m < 2`, or `max_splits` or a sample count
    /// is zero.
    pub fn new(
        z: &[f64],
        p: usize,
        m: usize,
        split: CcgpSplit,
        noise: &NoiseProtocol,
        max_splits: usize,
    ) -> Self {
        assert!(m >= 2, "{m} pairs leave nothing to hold out");
        assert!(max_splits > 0, "no splits asked for");
        let k = match split {
            CcgpSplit::Pair => 1,
            CcgpSplit::Half => m / 2,
        };
        let mut sampler = Sampler::new(z, p, noise.sigma, noise.seed, "geometry/ccgp");
        let indices: Vec<usize> = (0..m).collect();
        let enumerated = binomial(m, k) <= max_splits as f64;
        let splits = if enumerated {
            combinations(&indices, k)
        } else {
            sample_subsets(m, k, max_splits, &mut sampler.rng)
        };
        let training = sampler.trials(noise.train_per_condition);
        let testing = sampler.trials(noise.test_per_condition);
        let gram = gram_matrix(&training.x, p * noise.train_per_condition);
        CcgpDraw {
            m,
            p,
            splits,
            enumerated,
            training,
            gram,
            testing,
        }
    }

    /// The pairs every dichotomy measured on this draw has.
    pub fn pairs(&self) -> usize {
        self.m
    }

    /// CCGP of the dichotomy given by the matched `pairs`, over this
    /// draw's splits.
    ///
    /// # Panics
    ///
    /// If there are not [`CcgpDraw::pairs`] pairs, or a condition is out
    /// of range or repeated.
    pub fn generalisation(&self, pairs: &[(usize, usize)]) -> Generalisation {
        let p = self.p;
        assert_eq!(pairs.len(), self.m, "the draw is for {} pairs", self.m);
        let mut labels = vec![false; p];
        let mut used = HashSet::new();
        for &(a, b) in pairs {
            assert!(a < p && b < p, "pair ({a}, {b}) is out of {p} conditions");
            assert!(
                used.insert(a) && used.insert(b),
                "a condition is paired twice"
            );
            labels[b] = true;
        }
        let samples = Gram {
            x: &self.training.x,
            k: &self.gram,
        };
        let mut classifiers = Vec::with_capacity(self.splits.len());
        let mut tests = Vec::with_capacity(self.splits.len());
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for set in &self.splits {
            train.clear();
            test.clear();
            for (i, &(a, b)) in pairs.iter().enumerate() {
                let side = if set.contains(&i) {
                    &mut train
                } else {
                    &mut test
                };
                side.extend([a, b]);
            }
            let (rows, y) = self.training.of(&labels, &train);
            classifiers.push(LinearSvm::fit_gram(samples, &rows, &y, C));
            tests.push(self.testing.of(&labels, &test));
        }
        // Every split's classifier on every test trial, in one product.
        let all = self.testing.x.len() / self.testing.n.max(1);
        let values = decisions(&classifiers, &self.testing.x, all);
        let sum: f64 = tests
            .iter()
            .zip(values.chunks_exact(all.max(1)))
            .map(|((rows, y), column)| accuracy_of(column, rows, y))
            .sum();
        Generalisation {
            accuracy: sum / self.splits.len() as f64,
            splits: self.splits.len(),
            enumerated: self.enumerated,
        }
    }
}

/// A shattering-dimensionality value and its parts.
#[derive(Clone, Debug, PartialEq)]
pub struct Shattering {
    /// The mean held-out accuracy over the dichotomies.
    pub mean: f64,
    /// The held-out accuracy of each dichotomy.
    pub accuracies: Vec<f64>,
    /// The dichotomies used, canonical (see [`super::dichotomy`]).
    pub dichotomies: Vec<Vec<bool>>,
}

/// Shattering dimensionality: every balanced dichotomy when
/// `p <= `[`MAX_ENUMERATED_SHATTERING`], otherwise `max_dichotomies`
/// seeded random ones, each classified on the same noisy training and
/// test samples.
///
/// # Panics
///
/// If `z` is not `p` rows, `p` is odd, a sample count is zero, or
/// `max_dichotomies` is zero when `p > 8`.
pub fn shattering_dimensionality(
    z: &[f64],
    p: usize,
    noise: &NoiseProtocol,
    max_dichotomies: usize,
) -> Shattering {
    let dichotomies = if p <= MAX_ENUMERATED_SHATTERING {
        balanced_dichotomies(p)
    } else {
        assert!(max_dichotomies > 0, "no dichotomies asked for at P = {p}");
        random_balanced_dichotomies(p, max_dichotomies, noise.seed)
    };

    // One noisy training set and one test set, shared by every
    // dichotomy: the same trials under different labellings.
    let mut sampler = Sampler::new(z, p, noise.sigma, noise.seed, "geometry/shattering");
    let training = sampler.trials(noise.train_per_condition);
    let testing = sampler.trials(noise.test_per_condition);
    let shared = SharedSamples::new(&training.x, p * noise.train_per_condition, C);
    let all: Vec<usize> = (0..p).collect();
    let classifiers: Vec<LinearSvm> = dichotomies
        .iter()
        .map(|labels| shared.fit(&training.labels(labels)))
        .collect();
    let trials = p * noise.test_per_condition;
    let values = decisions(&classifiers, &testing.x, trials);
    let accuracies: Vec<f64> = dichotomies
        .iter()
        .zip(values.chunks_exact(trials))
        .map(|(labels, column)| {
            let (rows, y) = testing.of(labels, &all);
            accuracy_of(column, &rows, &y)
        })
        .collect();
    Shattering {
        mean: accuracies.iter().sum::<f64>() / accuracies.len() as f64,
        accuracies,
        dichotomies,
    }
}

/// Noisy samples `z_c + sigma xi` of the conditions, from one seeded
/// stream consumed in call order.
struct Sampler<'a> {
    z: &'a [f64],
    p: usize,
    n: usize,
    sigma: f64,
    rng: rand_chacha::ChaCha8Rng,
}

impl<'a> Sampler<'a> {
    fn new(z: &'a [f64], p: usize, sigma: f64, seed: u64, stream: &str) -> Self {
        Sampler {
            z,
            p,
            n: row_len(z, p),
            sigma,
            rng: seed::stream(seed, stream),
        }
    }

    /// `per` noisy trials of every condition.
    fn trials(&mut self, per: usize) -> Trials {
        assert!(per > 0, "no samples per condition");
        let mut x = Vec::with_capacity(self.p * per * self.n);
        for zc in self.z.chunks_exact(self.n) {
            for _ in 0..per {
                x.extend(zc.iter().map(|v| {
                    let xi: f64 = StandardNormal.sample(&mut self.rng);
                    v + self.sigma * xi
                }));
            }
        }
        Trials { x, per, n: self.n }
    }
}

/// The noisy trials of every condition, condition-major: the data every
/// split and every labelling of one measurement draws its samples from,
/// as the trials of a recording are.
struct Trials {
    x: Vec<f64>,
    per: usize,
    n: usize,
}

impl Trials {
    /// The label of every trial, condition by condition.
    fn labels(&self, labels: &[bool]) -> Vec<bool> {
        let p = self.x.len() / (self.per * self.n).max(1);
        (0..p)
            .flat_map(|c| std::iter::repeat_n(labels[c], self.per))
            .collect()
    }

    /// The trials of the listed conditions, in that order, as rows of
    /// `x`, with their labels.
    fn of(&self, labels: &[bool], conditions: &[usize]) -> (Vec<usize>, Vec<bool>) {
        let per = self.per;
        let rows = conditions
            .iter()
            .flat_map(|&c| c * per..(c + 1) * per)
            .collect();
        let y = conditions
            .iter()
            .flat_map(|&c| std::iter::repeat_n(labels[c], per))
            .collect();
        (rows, y)
    }
}

/// `count` distinct sorted `k`-element subsets of `0..m`, drawn by
/// shuffling.
fn sample_subsets(
    m: usize,
    k: usize,
    count: usize,
    rng: &mut impl rand::Rng,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..m).collect();
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        order.shuffle(rng);
        let mut set = order[..k].to_vec();
        set.sort_unstable();
        if seen.insert(set.clone()) {
            out.push(set);
        }
    }
    out
}

/// Every `k`-element subset of `items`, in lexicographic order.
fn combinations(items: &[usize], k: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut idx: Vec<usize> = (0..k).collect();
    loop {
        out.push(idx.iter().map(|&i| items[i]).collect());
        let Some(pos) = (0..k).rev().find(|&i| idx[i] < items.len() - k + i) else {
            return out;
        };
        idx[pos] += 1;
        for i in pos + 1..k {
            idx[i] = idx[i - 1] + 1;
        }
    }
}

fn binomial(n: usize, k: usize) -> f64 {
    (0..k)
        .fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
        .round()
}

fn row_len(z: &[f64], p: usize) -> usize {
    assert!(
        p > 0 && z.len() % p == 0,
        "{} values are not {p} rows",
        z.len()
    );
    z.len() / p
}

fn unit_difference(to: &[f64], from: &[f64]) -> Vec<f64> {
    let d: Vec<f64> = to.iter().zip(from).map(|(a, b)| a - b).collect();
    let norm = dot(&d, &d).sqrt();
    if norm == 0.0 {
        d
    } else {
        d.iter().map(|v| v / norm).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::dichotomy::task_dichotomies;
    use crate::task::cube::Spectrum;
    use crate::task::cube::{CubeSpec, cube, parity_features};

    /// The `2^d` cube vertices `+-1` in their first `f` parity features,
    /// rotated into `n >= f` units by a seeded orthonormal map.
    fn cube_points(d: usize, f: usize, n: usize, seed: u64) -> Vec<f64> {
        let h = parity_features(d);
        let mut rng = crate::seed::stream(seed, "test/cube-points");
        let e = crate::task::orthonormal_embedding(n, f, &mut rng);
        let mut z = Vec::new();
        for row in &h {
            for a in 0..n {
                z.push(
                    (0..f)
                        .map(|i| e[(a, i)] * (2.0 * f64::from(row[i]) - 1.0))
                        .sum(),
                );
            }
        }
        z
    }

    fn latent(d: usize, j: usize) -> Vec<bool> {
        (0..1usize << d).map(|c| (c >> j) & 1 == 1).collect()
    }

    fn gaussian(len: usize, seed: u64) -> Vec<f64> {
        let mut rng = crate::seed::stream(seed, "test/abstraction");
        (0..len).map(|_| StandardNormal.sample(&mut rng)).collect()
    }

    #[test]
    fn a_factorised_cube_is_perfectly_parallel() {
        let z = cube_points(3, 3, 10, 1);
        for j in 0..3 {
            let labels = latent(3, j);
            let max = parallelism_max(&z, 8, &labels, 0);
            let near = parallelism_min_distance(&z, 8, &labels);
            assert!((max.score - 1.0).abs() < 1e-12, "bit {j}: {}", max.score);
            assert!(max.exhaustive);
            assert!((near.score - 1.0).abs() < 1e-12);
            // Each condition is paired with the one across bit j.
            for &(a, b) in &near.pairs {
                assert_eq!(a ^ b, 1 << j);
            }
            assert_eq!(max.pairs, near.pairs);
        }
    }

    #[test]
    fn random_points_are_not_parallel() {
        for seed in 0..10 {
            let z = gaussian(8 * 100, seed);
            for labels in balanced_dichotomies(8).iter().take(5) {
                let max = parallelism_max(&z, 8, labels, 0).score;
                let near = parallelism_min_distance(&z, 8, labels).score;
                assert!(max.abs() < 0.2 && near.abs() < 0.2, "{max} {near}");
                assert!(max >= near - 1e-12);
            }
        }
    }

    #[test]
    fn the_two_pairings_agree_when_translates_are_nearest() {
        // Positive class: the negative class moved by v plus a little
        // noise, listed in another order; the spread of the negative class
        // is much larger than |v|.
        let (m, n) = (6, 12);
        let base = gaussian(m * n, 20);
        let v = gaussian(n, 21);
        let jitter = gaussian(m * n, 22);
        let order = [3, 0, 5, 1, 4, 2];
        let mut z = vec![0.0; 2 * m * n];
        for i in 0..m {
            for a in 0..n {
                z[i * n + a] = 10.0 * base[i * n + a];
                let src = order[i];
                z[(m + i) * n + a] =
                    10.0 * base[src * n + a] + v[a] + 0.05 * jitter[i * n + a];
            }
        }
        let labels: Vec<bool> = (0..2 * m).map(|c| c >= m).collect();
        let max = parallelism_max(&z, 2 * m, &labels, 0);
        let near = parallelism_min_distance(&z, 2 * m, &labels);
        assert_eq!(max.pairs, near.pairs);
        assert_eq!(max.score, near.score);
        assert!(max.score > 0.95);
        for &(a, b) in &near.pairs {
            assert_eq!(order[b - m], a);
        }
    }

    #[test]
    fn the_local_search_finds_the_exhaustive_optimum_on_small_classes() {
        for seed in 0..5 {
            let z = gaussian(16 * 5, 40 + seed);
            let labels: Vec<bool> = (0..16).map(|c| c % 2 == 1).collect();
            let coding = Coding::new(&z, 16, &labels);
            let exact = coding.total(&coding.exhaustive_best());
            let start = min_distance_pairing(&z, 16, &labels);
            let found = coding.total(&coding.local_search_best(start, seed));
            assert!((exact - found).abs() < 1e-12, "{exact} vs {found}");
            let via_pairs = parallelism_of_pairs(
                &z,
                16,
                &coding.result(coding.exhaustive_best(), true).pairs,
            );
            assert!((via_pairs - exact / 28.0).abs() < 1e-12);
        }
    }

    #[test]
    fn the_tabled_search_makes_the_swaps_of_the_search_by_dots() {
        use rand::SeedableRng;
        let labels: Vec<bool> = (0..24).map(|c| c % 2 == 1).collect();
        for seed in 0..4 {
            let z = gaussian(24 * 7, 60 + seed);
            let coding = Coding::new(&z, 24, &labels);
            let table = coding.table.as_deref().expect("m = 12 is tabled");
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            for _ in 0..8 {
                let mut start: Vec<usize> = (0..12).collect();
                start.shuffle(&mut rng);
                let by_dots = coding.improve_by_dots(start.clone());
                assert_eq!(coding.improve_tabled(table, start), by_dots);
                // A local optimum: no single swap raises the total.
                let best = coding.total(&by_dots);
                for i in 0..12 {
                    for j in i + 1..12 {
                        let mut other = by_dots.clone();
                        other.swap(i, j);
                        assert!(coding.total(&other) <= best + 1e-9);
                    }
                }
            }
        }
    }

    #[test]
    fn one_draw_measures_each_dichotomy_as_a_draw_of_its_own() {
        let z = cube_points(4, 4, 6, 9);
        let noise = NoiseProtocol {
            sigma: 1.5,
            ..low_noise()
        };
        for split in [CcgpSplit::Pair, CcgpSplit::Half] {
            let draw = CcgpDraw::new(&z, 16, 8, split, &noise, 12);
            let mut accuracies = Vec::new();
            for j in 0..4 {
                let pairs = min_distance_pairs(&z, 16, &latent(4, j));
                let shared = draw.generalisation(&pairs);
                assert_eq!(shared, ccgp(&z, 16, &pairs, split, &noise, 12));
                accuracies.push(shared.accuracy);
            }
            // The noise is heavy enough that the dichotomies differ.
            assert!(
                accuracies.iter().any(|&a| a != accuracies[0]),
                "{accuracies:?}"
            );
        }
    }

    #[test]
    fn large_cubes_use_the_search_and_still_find_parallelism() {
        let z = cube_points(5, 5, 8, 3);
        let max = parallelism_max(&z, 32, &latent(5, 2), 0);
        assert!(!max.exhaustive);
        assert!((max.score - 1.0).abs() < 1e-12);
    }

    fn low_noise() -> NoiseProtocol {
        NoiseProtocol {
            sigma: 0.1,
            train_per_condition: 10,
            test_per_condition: 10,
            seed: 5,
        }
    }

    #[test]
    fn a_linearly_embedded_cube_generalises_across_conditions() {
        let z = cube_points(3, 3, 10, 2);
        for j in 0..3 {
            for split in [CcgpSplit::Pair, CcgpSplit::Half] {
                let pairs = min_distance_pairs(&z, 8, &latent(3, j));
                let g = ccgp(&z, 8, &pairs, split, &low_noise(), 100);
                assert_eq!(g.accuracy, 1.0, "bit {j} {split:?}");
                assert!(g.enumerated);
                let expect = if split == CcgpSplit::Pair { 4 } else { 6 };
                assert_eq!(g.splits, expect);
            }
        }
    }

    #[test]
    fn ccgp_subsamples_the_splits_when_asked_for_fewer() {
        let z = cube_points(4, 4, 6, 2);
        let pairs = min_distance_pairs(&z, 16, &latent(4, 1));
        let g = ccgp(&z, 16, &pairs, CcgpSplit::Half, &low_noise(), 20);
        assert!(!g.enumerated);
        assert_eq!(g.splits, 20);
        assert_eq!(g.accuracy, 1.0);
    }

    #[test]
    fn a_full_rank_cube_is_shattered() {
        // All seven parity features: eight affinely independent points.
        let z = cube_points(3, 7, 9, 4);
        let sd = shattering_dimensionality(&z, 8, &low_noise(), 0);
        assert_eq!(sd.dichotomies.len(), 35);
        assert_eq!(sd.mean, 1.0);
    }

    #[test]
    fn larger_sets_are_shattered_on_a_stated_number_of_dichotomies() {
        let z = cube_points(4, 15, 15, 6);
        let sd = shattering_dimensionality(&z, 16, &low_noise(), 40);
        assert_eq!(sd.dichotomies.len(), 40);
        assert_eq!(sd.accuracies.len(), 40);
        assert_eq!(sd.mean, 1.0);
    }

    #[test]
    fn parallelism_ignores_translation_scale_and_rotation() {
        let z = gaussian(8 * 6, 70);
        let labels = balanced_dichotomies(8)[11].clone();
        let ps = parallelism_max(&z, 8, &labels, 0).score;
        let q =
            crate::task::orthonormal_embedding(6, 6, &mut crate::seed::stream(1, "q"));
        let mut moved = vec![0.0; 8 * 6];
        for c in 0..8 {
            for a in 0..6 {
                let r: f64 = (0..6).map(|b| q[(a, b)] * z[c * 6 + b]).sum();
                moved[c * 6 + a] = 3.0 * r + 0.5 * a as f64;
            }
        }
        let other = parallelism_max(&moved, 8, &labels, 0).score;
        assert!((ps - other).abs() < 1e-12, "{ps} vs {other}");
    }

    #[test]
    fn a_three_dimensional_cube_cannot_be_shattered() {
        // The parity of all three bits is not linearly separable.
        let z = cube_points(3, 3, 3, 4);
        let sd = shattering_dimensionality(&z, 8, &low_noise(), 0);
        let parity: Vec<bool> = (0..8u32).map(|c| c.count_ones() % 2 == 1).collect();
        let at = sd.dichotomies.iter().position(|l| *l == parity).unwrap();
        assert!(sd.accuracies[at] < 0.75, "{}", sd.accuracies[at]);
        assert!(sd.mean < 1.0);
    }

    #[test]
    fn conditions_that_cannot_be_told_apart_are_at_chance() {
        let z = vec![0.3; 8 * 5];
        let noise = NoiseProtocol {
            sigma: 1.0,
            train_per_condition: 10,
            test_per_condition: 25,
            seed: 9,
        };
        let sd = shattering_dimensionality(&z, 8, &noise, 0).mean;
        assert!((sd - 0.5).abs() < 0.05, "SD {sd}");
        let mut total = 0.0;
        for j in 0..3 {
            for split in [CcgpSplit::Pair, CcgpSplit::Half] {
                let pairs: Vec<(usize, usize)> = (0..8)
                    .filter(|c| c >> j & 1 == 0)
                    .map(|c| (c, c | 1 << j))
                    .collect();
                total += ccgp(&z, 8, &pairs, split, &noise, 100).accuracy;
            }
        }
        let mean = total / 6.0;
        assert!((mean - 0.5).abs() < 0.05, "CCGP {mean}");
    }

    #[test]
    fn the_cube_task_inputs_are_abstract_for_their_latents() {
        // At c = 1 the deterministic spectrum puts all its weight on the
        // three latent features: the inputs are the cube itself.
        let t = cube(CubeSpec {
            d: 3,
            k: 3,
            alignment: 1.0,
            dim: 12,
            seed: 3,
            spectrum: Spectrum::Deterministic,
        });
        for labels in task_dichotomies(&t) {
            let ps = parallelism_max(&t.inputs, 8, &labels, 0).score;
            assert!((ps - 1.0).abs() < 1e-12, "{ps}");
        }
    }
}
