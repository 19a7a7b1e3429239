//! The sliding coefficients of one hidden unit: small dense linear algebra
//! over the Gram matrix of the augmented inputs, `(x_c, 1)` when the hidden
//! biases learn and `x_c` alone when they are frozen (the Fig. 1 protocol):
//! the bias's share of `d u_ci / dt` is there only if the bias moves.
//!
//! For unit `i` with the data points `S` on its kinks, the unknowns are
//! `beta_c = g_ci alpha_c`, where `g_ci = (J^T e_c)_i` and `alpha_c` stands
//! in for `f'(u_ci)`. With `G` the Gram matrix of the augmented inputs over
//! `S` and `v0` the velocities `d u_ci / dt` the rest of the data gives,
//!
//! ```text
//! d u_S / dt = v0 - G beta / M.
//! ```
//!
//! Inside a mode every point of `S` stays on its kink, so `G beta = M v0`
//! (one Cholesky solve). At an event the Filippov conditions are a box
//! constrained convex quadratic programme, `min 1/2 beta^T G beta - M v0^T
//! beta` over `beta_c` between `g_c * left` and `g_c * right`: an interior
//! `beta_c` holds its point on the kink, a `beta_c` at a bound lets it go
//! to the side of that bound's slope. This holds when the product
//! `g_c (right - left)` is positive; points with the opposite sign cannot
//! slide (both sides push them across) and are placed by their velocity.

/// `G = L L^T` in place for a column-major `n x n` symmetric positive
/// definite `a` (the lower triangle is read and overwritten). `false` if
/// a pivot is not positive.
pub(super) fn cholesky(a: &mut [f64], n: usize) -> bool {
    for j in 0..n {
        let mut djj = a[j * n + j];
        for k in 0..j {
            djj -= a[k * n + j] * a[k * n + j];
        }
        if djj <= 0.0 || !djj.is_finite() {
            return false;
        }
        let ljj = djj.sqrt();
        a[j * n + j] = ljj;
        for i in j + 1..n {
            let mut s = a[j * n + i];
            for k in 0..j {
                s -= a[k * n + i] * a[k * n + j];
            }
            a[j * n + i] = s / ljj;
        }
    }
    true
}

/// Solves `L L^T z = rhs` in place, `l` from [`cholesky`].
pub(super) fn cholesky_solve(l: &[f64], n: usize, rhs: &mut [f64]) {
    for i in 0..n {
        let mut s = rhs[i];
        for k in 0..i {
            s -= l[k * n + i] * rhs[k];
        }
        rhs[i] = s / l[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = rhs[i];
        for k in i + 1..n {
            s -= l[i * n + k] * rhs[k];
        }
        rhs[i] = s / l[i * n + i];
    }
}

/// The Gram matrix `x_a . x_b + bias` of the augmented inputs over
/// `points`, column-major, from inputs stored column-major `D x M` in `xs`;
/// `bias` is the bias weight, 1 when the hidden biases learn, 0 when they
/// are frozen.
pub(super) fn augmented_gram(
    xs: &[f64],
    d: usize,
    points: &[usize],
    bias: f64,
) -> Vec<f64> {
    let s = points.len();
    let mut g = vec![0.0; s * s];
    for (a, &ca) in points.iter().enumerate() {
        let xa = &xs[ca * d..(ca + 1) * d];
        for (b, &cb) in points.iter().enumerate().take(a + 1) {
            let xb = &xs[cb * d..(cb + 1) * d];
            let v = dot(xa, xb) + bias;
            g[a * s + b] = v;
            g[b * s + a] = v;
        }
    }
    g
}

/// `sum_k a_k b_k`.
#[inline]
pub(super) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Where a variable of the box programme ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Bound {
    /// Strictly between its bounds.
    Inside,
    /// At its lower bound.
    Lower,
    /// At its upper bound.
    Upper,
}

/// Minimises `1/2 z^T G z - q^T z` over `lo <= z <= hi` for a symmetric
/// positive definite `G` (column-major `n x n`).
///
/// Projected Gauss-Seidel sweeps find the active set; the free variables
/// are then solved for exactly with a Cholesky factorisation and the
/// Karush-Kuhn-Tucker conditions are checked (free variables inside their
/// box, the gradient pointing out of the box at active bounds). If they do
/// not hold yet, more sweeps follow. Returns the bound status of each
/// variable and whether the exact check passed.
pub(super) fn box_qp(
    g: &[f64],
    q: &[f64],
    lo: &[f64],
    hi: &[f64],
    z: &mut [f64],
) -> (Vec<Bound>, bool) {
    let n = q.len();
    for c in 0..n {
        z[c] = 0.0_f64.clamp(lo[c], hi[c]);
    }
    let mut status = vec![Bound::Inside; n];
    for _round in 0..50 {
        gauss_seidel(g, q, lo, hi, z, 200);
        classify(z, lo, hi, &mut status);
        if polish(g, q, lo, hi, z, &status) {
            return (status, true);
        }
    }
    classify(z, lo, hi, &mut status);
    (status, false)
}

/// At most `sweeps` projected Gauss-Seidel sweeps, stopping when no
/// variable moves by more than a few ulps of the largest one.
fn gauss_seidel(
    g: &[f64],
    q: &[f64],
    lo: &[f64],
    hi: &[f64],
    z: &mut [f64],
    sweeps: usize,
) {
    let n = q.len();
    for _ in 0..sweeps {
        let mut moved: f64 = 0.0;
        let mut size: f64 = 0.0;
        for c in 0..n {
            let col = &g[c * n..(c + 1) * n];
            let rest = dot(col, z) - col[c] * z[c];
            let new = ((q[c] - rest) / col[c]).clamp(lo[c], hi[c]);
            moved = moved.max((new - z[c]).abs());
            size = size.max(new.abs());
            z[c] = new;
        }
        if moved <= 4.0 * f64::EPSILON * size {
            break;
        }
    }
}

fn classify(z: &[f64], lo: &[f64], hi: &[f64], status: &mut [Bound]) {
    for c in 0..z.len() {
        let tight = 1e-12 * (hi[c] - lo[c]).abs().max(f64::MIN_POSITIVE);
        status[c] = if z[c] - lo[c] <= tight {
            Bound::Lower
        } else if hi[c] - z[c] <= tight {
            Bound::Upper
        } else {
            Bound::Inside
        };
    }
}

/// Solves exactly for the free variables given the active set `status`
/// and checks optimality; on success `z` holds the exact solution.
fn polish(
    g: &[f64],
    q: &[f64],
    lo: &[f64],
    hi: &[f64],
    z: &mut [f64],
    status: &[Bound],
) -> bool {
    let n = q.len();
    let free: Vec<usize> = (0..n).filter(|&c| status[c] == Bound::Inside).collect();
    let mut trial = z.to_vec();
    for c in 0..n {
        match status[c] {
            Bound::Lower => trial[c] = lo[c],
            Bound::Upper => trial[c] = hi[c],
            Bound::Inside => {}
        }
    }
    let f = free.len();
    if f > 0 {
        let mut gff = vec![0.0; f * f];
        let mut rhs = vec![0.0; f];
        for (a, &ca) in free.iter().enumerate() {
            let mut r = q[ca];
            for c in 0..n {
                if status[c] != Bound::Inside {
                    r -= g[ca * n + c] * trial[c];
                }
            }
            rhs[a] = r;
            for (b, &cb) in free.iter().enumerate() {
                gff[a * f + b] = g[ca * n + cb];
            }
        }
        if !cholesky(&mut gff, f) {
            return false;
        }
        cholesky_solve(&gff, f, &mut rhs);
        for (a, &ca) in free.iter().enumerate() {
            if rhs[a] < lo[ca] || rhs[a] > hi[ca] {
                return false;
            }
            trial[ca] = rhs[a];
        }
    }

    // The gradient G z - q must be >= 0 at lower and <= 0 at upper bounds.
    let scale = q.iter().fold(1e-300_f64, |s, v| s.max(v.abs()));
    for c in 0..n {
        let grad = dot(&g[c * n..(c + 1) * n], &trial) - q[c];
        let ok = match status[c] {
            Bound::Inside => true,
            Bound::Lower => grad >= -1e-12 * scale,
            Bound::Upper => grad <= 1e-12 * scale,
        };
        if !ok {
            return false;
        }
    }
    z.copy_from_slice(&trial);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_a_small_system() {
        let a = [4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let mut l = a;
        assert!(cholesky(&mut l, 3));
        let mut z = [1.0, -2.0, 0.5];
        cholesky_solve(&l, 3, &mut z);
        for r in 0..3 {
            let back: f64 = (0..3).map(|c| a[c * 3 + r] * z[c]).sum();
            assert!((back - [1.0, -2.0, 0.5][r]).abs() < 1e-14);
        }
    }

    /// All 3^n active sets, the one that satisfies the optimality
    /// conditions: a brute-force reference for the box programme.
    fn enumerate(g: &[f64], q: &[f64], lo: &[f64], hi: &[f64]) -> Vec<f64> {
        let n = q.len();
        for code in 0..3usize.pow(n as u32) {
            let status: Vec<Bound> = (0..n)
                .map(|c| match (code / 3usize.pow(c as u32)) % 3 {
                    0 => Bound::Inside,
                    1 => Bound::Lower,
                    _ => Bound::Upper,
                })
                .collect();
            let mut z = vec![0.0; n];
            if polish(g, q, lo, hi, &mut z, &status) {
                return z;
            }
        }
        panic!("no active set is optimal");
    }

    #[test]
    fn the_box_programme_matches_enumeration_of_active_sets() {
        // A positive definite 4 x 4 Gram matrix of (x, 1) vectors, and
        // right-hand sides that make different bounds active.
        let xs = [
            1.0, 0.2, -0.3, 0.5, 1.1, 0.0, -0.7, 0.4, 0.9, 0.3, 0.3, -1.2,
        ];
        let g = augmented_gram(&xs, 3, &[0, 1, 2, 3], 1.0);
        let lo = [0.0, -1.0, 0.0, 0.0];
        let hi = [1.0, 0.0, 2.0, 0.5];
        for q in [
            [1.0, -0.5, 2.0, 0.1],
            [5.0, 5.0, -5.0, 1.0],
            [0.3, 0.2, 0.1, 0.0],
        ] {
            let mut z = [0.0; 4];
            let (_, exact) = box_qp(&g, &q, &lo, &hi, &mut z);
            assert!(exact);
            let want = enumerate(&g, &q, &lo, &hi);
            for c in 0..4 {
                assert!((z[c] - want[c]).abs() < 1e-12, "{q:?}: {z:?} vs {want:?}");
            }
        }
    }
}
