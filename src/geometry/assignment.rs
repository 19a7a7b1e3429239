//! The linear assignment problem, solved exactly by the Hungarian method.
//!
//! Given an `n x m` cost matrix with `n <= m`, find the injective map from
//! rows to columns of least total cost. The solver is the shortest
//! augmenting path form of the Hungarian method with row and column
//! potentials (Kuhn 1955; Munkres 1957; the `O(n^2 m)` formulation of
//! Jonker and Volgenant 1987): each row is added in turn and joined to the
//! current matching along a Dijkstra-like shortest path in reduced costs,
//! which stay non-negative, so the result is an exact optimum. Ties are
//! broken towards the lower column index, which makes the result
//! deterministic.
//!
//! The parallelism score uses it for its minimum-total-distance pairing.

use nalgebra::DMatrix;

/// An optimal assignment of rows to columns.
#[derive(Clone, Debug, PartialEq)]
pub struct Assignment {
    /// `columns[r]` is the column assigned to row `r`.
    pub columns: Vec<usize>,
    /// The total cost of the assignment.
    pub cost: f64,
}

/// The least-cost assignment of the rows of `cost` to distinct columns.
///
/// # Panics
///
/// If `cost` has more rows than columns or holds a non-finite entry.
pub fn hungarian(cost: &DMatrix<f64>) -> Assignment {
    let (n, m) = cost.shape();
    assert!(n <= m, "cannot assign {n} rows to {m} columns");
    assert!(
        cost.iter().all(|c| c.is_finite()),
        "the cost matrix holds a non-finite entry"
    );

    // Index 0 of the column arrays is a virtual column holding the row
    // being inserted; rows and columns are counted from 1 below.
    let mut row_pot = vec![0.0; n + 1];
    let mut col_pot = vec![0.0; m + 1];
    let mut owner = vec![0usize; m + 1];
    let mut came_from = vec![0usize; m + 1];
    for row in 1..=n {
        owner[0] = row;
        let mut col = 0usize;
        let mut slack = vec![f64::INFINITY; m + 1];
        let mut done = vec![false; m + 1];

        // Grow the shortest-path tree until it reaches a free column.
        loop {
            done[col] = true;
            let r = owner[col];
            let mut delta = f64::INFINITY;
            let mut next = 0usize;
            for j in 1..=m {
                if done[j] {
                    continue;
                }
                let reduced = cost[(r - 1, j - 1)] - row_pot[r] - col_pot[j];
                if reduced < slack[j] {
                    slack[j] = reduced;
                    came_from[j] = col;
                }
                if slack[j] < delta {
                    delta = slack[j];
                    next = j;
                }
            }
            for j in 0..=m {
                if done[j] {
                    row_pot[owner[j]] += delta;
                    col_pot[j] -= delta;
                } else {
                    slack[j] -= delta;
                }
            }
            col = next;
            if owner[col] == 0 {
                break;
            }
        }

        // Flip the matching along the path back to the virtual column.
        while col != 0 {
            let prev = came_from[col];
            owner[col] = owner[prev];
            col = prev;
        }
    }

    let mut columns = vec![0usize; n];
    for j in 1..=m {
        if owner[j] != 0 {
            columns[owner[j] - 1] = j - 1;
        }
    }
    let total = columns.iter().enumerate().map(|(r, &c)| cost[(r, c)]).sum();
    Assignment {
        columns,
        cost: total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The least cost over every permutation, for small square matrices.
    fn brute_force(cost: &DMatrix<f64>) -> f64 {
        fn go(cost: &DMatrix<f64>, row: usize, used: &mut Vec<bool>) -> f64 {
            if row == cost.nrows() {
                return 0.0;
            }
            let mut best = f64::INFINITY;
            for c in 0..cost.ncols() {
                if !used[c] {
                    used[c] = true;
                    best = best.min(cost[(row, c)] + go(cost, row + 1, used));
                    used[c] = false;
                }
            }
            best
        }
        go(cost, 0, &mut vec![false; cost.ncols()])
    }

    #[test]
    fn three_by_three_by_hand() {
        // Row 0 -> 1 (1), row 1 -> 0 (2), row 2 -> 2 (2): total 5; the
        // other five permutations cost 6, 6, 7, 9 and 11.
        let cost = DMatrix::from_row_slice(3, 3, &[4., 1., 3., 2., 0., 5., 3., 2., 2.]);
        let a = hungarian(&cost);
        assert_eq!(a.columns, vec![1, 0, 2]);
        assert_eq!(a.cost, 5.0);
    }

    #[test]
    fn four_by_four_by_hand() {
        // 2 + 6 + 1 + 4 = 13 on the anti-greedy permutation (1, 0, 2, 3):
        // the greedy row minima (2, 3, 1, 4) collide in column 2.
        let cost = DMatrix::from_row_slice(
            4,
            4,
            &[
                9., 2., 7., 8., 6., 4., 3., 7., 5., 8., 1., 8., 7., 6., 9., 4.,
            ],
        );
        let a = hungarian(&cost);
        assert_eq!(a.columns, vec![1, 0, 2, 3]);
        assert_eq!(a.cost, 13.0);
        assert_eq!(brute_force(&cost), 13.0);
    }

    #[test]
    fn matches_brute_force_on_seeded_matrices() {
        use rand::RngExt;
        let mut rng = crate::seed::stream(11, "test/hungarian");
        for n in 1..=6 {
            for _ in 0..20 {
                let cost = DMatrix::from_fn(n, n, |_, _| rng.random_range(-3.0..5.0));
                let a = hungarian(&cost);
                let mut seen = a.columns.clone();
                seen.sort_unstable();
                assert_eq!(seen, (0..n).collect::<Vec<_>>());
                assert!((a.cost - brute_force(&cost)).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn rectangular_costs_leave_the_dearest_columns_free() {
        let cost = DMatrix::from_row_slice(2, 3, &[5., 1., 9., 1., 2., 9.]);
        let a = hungarian(&cost);
        assert_eq!(a.columns, vec![1, 0]);
        assert_eq!(a.cost, 2.0);
    }
}
