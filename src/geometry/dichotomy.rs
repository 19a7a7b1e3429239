//! Dichotomies: class labellings of the `P` conditions.
//!
//! A dichotomy is a `Vec<bool>` with one entry per condition; `true` marks
//! the positive class. It is *balanced* when both classes hold `P / 2`
//! conditions. A dichotomy and its complement split the conditions the
//! same way, so the lists below hold each split once, in the canonical
//! form where condition 0 is in the negative class. There are
//! `binom(P, P/2) / 2` balanced splits: 3 for `P = 4`, 35 for `P = 8`,
//! 6435 for `P = 16` (Bernardi et al. 2020, "The geometry of abstraction
//! in the hippocampus and prefrontal cortex", Cell, count the same way).

use std::collections::HashSet;

use rand::seq::SliceRandom;

use crate::seed;
use crate::task::Task;

/// The largest `P` for which [`balanced_dichotomies`] enumerates.
pub const MAX_ENUMERATED_CONDITIONS: usize = 24;

/// Whether both classes hold the same number of conditions.
pub fn is_balanced(labels: &[bool]) -> bool {
    2 * labels.iter().filter(|&&l| l).count() == labels.len()
}

/// The conditions of the negative and of the positive class, in order.
pub fn classes(labels: &[bool]) -> (Vec<usize>, Vec<usize>) {
    let neg = (0..labels.len()).filter(|&c| !labels[c]).collect();
    let pos = (0..labels.len()).filter(|&c| labels[c]).collect();
    (neg, pos)
}

/// The canonical form of a dichotomy: complemented if condition 0 is in
/// the positive class.
pub fn canonical(labels: &[bool]) -> Vec<bool> {
    let flip = labels.first().copied().unwrap_or(false);
    labels.iter().map(|&l| l != flip).collect()
}

/// Every balanced dichotomy of `p` conditions, each split once in
/// canonical form, in increasing order of the positive class read as a
/// bit mask.
///
/// # Panics
///
/// If `p` is odd, zero, or above [`MAX_ENUMERATED_CONDITIONS`].
pub fn balanced_dichotomies(p: usize) -> Vec<Vec<bool>> {
    assert!(p > 0 && p % 2 == 0, "{p} conditions cannot be split evenly");
    assert!(
        p <= MAX_ENUMERATED_CONDITIONS,
        "{p} conditions have too many dichotomies to enumerate; sample them"
    );
    (0u64..1 << p)
        .filter(|mask| mask & 1 == 0 && mask.count_ones() as usize == p / 2)
        .map(|mask| from_mask(mask, p))
        .collect()
}

/// `count` distinct balanced dichotomies of `p` conditions drawn uniformly
/// from the seeded stream, in canonical form and in the order drawn; all
/// of them (as [`balanced_dichotomies`]) when there are no more than
/// `count`.
///
/// # Panics
///
/// If `p` is odd, zero or above 64.
pub fn random_balanced_dichotomies(p: usize, count: usize, seed: u64) -> Vec<Vec<bool>> {
    assert!(p > 0 && p % 2 == 0, "{p} conditions cannot be split evenly");
    assert!(p <= 64, "{p} conditions do not fit a 64-bit mask");
    if p <= MAX_ENUMERATED_CONDITIONS && split_count(p) <= count as f64 {
        return balanced_dichotomies(p);
    }

    let mut rng = seed::stream(seed, "geometry/dichotomies");
    let mut order: Vec<usize> = (0..p).collect();
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        order.shuffle(&mut rng);
        let mut mask = order[..p / 2].iter().fold(0u64, |m, &c| m | 1 << c);
        if mask & 1 == 1 {
            mask = !mask & (u64::MAX >> (64 - p));
        }
        if seen.insert(mask) {
            out.push(from_mask(mask, p));
        }
    }
    out
}

/// The dichotomies the task itself defines: one per target output
/// (`y > 1/2`) and one per latent bit, canonical, without repeats, targets
/// first. Not all of them need be balanced.
pub fn task_dichotomies(task: &Task) -> Vec<Vec<bool>> {
    let p = task.conditions();
    let k = task.outputs;
    let mut out: Vec<Vec<bool>> = Vec::new();
    let mut push = |labels: Vec<bool>| {
        let labels = canonical(&labels);
        if !out.contains(&labels) {
            out.push(labels);
        }
    };
    for o in 0..k {
        push((0..p).map(|c| task.targets[c * k + o] > 0.5).collect());
    }
    if let Some((d, bits)) = &task.latents {
        for j in 0..*d {
            push((0..p).map(|c| bits[c * d + j] != 0).collect());
        }
    }
    out
}

/// `binom(p, p/2) / 2` as a float, exact for the sizes used here.
fn split_count(p: usize) -> f64 {
    let half = p / 2;
    let binom = (0..half).fold(1.0, |acc, i| acc * (p - i) as f64 / (i + 1) as f64);
    (binom / 2.0).round()
}

fn from_mask(mask: u64, p: usize) -> Vec<bool> {
    (0..p).map(|c| mask >> c & 1 == 1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::cube::Spectrum;
    use crate::task::cube::{CubeSpec, cube};

    #[test]
    fn balanced_dichotomies_are_counted_once_per_split() {
        for (p, count) in [(2, 1), (4, 3), (6, 10), (8, 35), (10, 126)] {
            let all = balanced_dichotomies(p);
            assert_eq!(all.len(), count, "P = {p}");
            assert!(all.iter().all(|l| is_balanced(l) && !l[0]));
            let distinct: HashSet<_> = all.iter().collect();
            assert_eq!(distinct.len(), count);
            assert_eq!(split_count(p), count as f64);
        }
    }

    #[test]
    fn random_dichotomies_are_distinct_balanced_and_seeded() {
        let a = random_balanced_dichotomies(16, 50, 3);
        let b = random_balanced_dichotomies(16, 50, 3);
        let c = random_balanced_dichotomies(16, 50, 4);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 50);
        assert!(a.iter().all(|l| is_balanced(l) && !l[0]));
        let distinct: HashSet<_> = a.iter().collect();
        assert_eq!(distinct.len(), 50);
        assert_eq!(
            random_balanced_dichotomies(8, 35, 0),
            balanced_dichotomies(8)
        );
    }

    #[test]
    fn the_cube_task_defines_its_latent_dichotomies() {
        let t = cube(CubeSpec {
            d: 3,
            k: 1,
            alignment: 0.3,
            dim: 10,
            seed: 1,
            spectrum: Spectrum::Deterministic,
        });
        let ds = task_dichotomies(&t);
        // The target is the first latent bit: three distinct splits.
        assert_eq!(ds.len(), 3);
        for (j, labels) in ds.iter().enumerate() {
            let expect: Vec<bool> = (0..8).map(|c| (c >> j) & 1 == 1).collect();
            assert_eq!(labels, &expect);
        }
    }

    #[test]
    fn classes_and_canonical_form() {
        let l = [true, false, true, false];
        assert_eq!(classes(&l), (vec![1, 3], vec![0, 2]));
        assert_eq!(canonical(&l), vec![false, true, false, true]);
        assert!(is_balanced(&l));
        assert!(!is_balanced(&[true, true, false]));
    }
}
