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
/// Projected Gauss-Seidel sweeps give a first guess of which bounds are
/// active; the primal active-set method (Nocedal and Wright, *Numerical
/// Optimization*, 2nd ed., 16.5) then finishes exactly: it solves for the
/// free variables with a Cholesky factorisation, steps toward that
/// solution until a bound blocks (which joins the active set), and at the
/// minimum over the free variables releases the active bound whose
/// multiplier has the wrong sign, until none has. Every iterate stays
/// feasible and the objective never rises, so it ends in finitely many
/// steps on a nondegenerate problem.
///
/// The multipliers are judged against the rounding of the gradient
/// `G z - q` itself, not against a fixed threshold: when a unit's pairs
/// barely move (`q` of order 1e-13, as for a unit that has all but
/// stopped), the solution is just as tiny, and a fixed threshold would put
/// a variable that should be inside its box on a bound, so that the pair
/// leaves the kink to the side its velocity does not point to and the
/// flow finds it on the kink again at once.
///
/// Returns the bound status of each variable and whether the optimality
/// conditions were met; if not (a singular block, or the iteration cap),
/// `z` and the status are the Gauss-Seidel ones.
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
    gauss_seidel(g, q, lo, hi, z, 200);
    let mut status: Vec<Bound> = (0..n)
        .map(|c| {
            if z[c] <= lo[c] {
                Bound::Lower
            } else if z[c] >= hi[c] {
                Bound::Upper
            } else {
                Bound::Inside
            }
        })
        .collect();
    let guess = z.to_vec();
    if active_set(g, q, lo, hi, z, &mut status) {
        return (status, true);
    }
    z.copy_from_slice(&guess);
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

/// The primal active-set iteration of [`box_qp`] from the feasible `z`
/// with the bounds marked in `status` active (and `z` exactly on them).
/// Returns whether it reached the optimum.
fn active_set(
    g: &[f64],
    q: &[f64],
    lo: &[f64],
    hi: &[f64],
    z: &mut [f64],
    status: &mut [Bound],
) -> bool {
    let n = q.len();
    for c in 0..n {
        match status[c] {
            Bound::Lower => z[c] = lo[c],
            Bound::Upper => z[c] = hi[c],
            Bound::Inside => {}
        }
    }
    let mut target = vec![0.0; n];
    for _ in 0..10 * n + 20 {
        if !free_minimum(g, q, z, status, &mut target) {
            return false;
        }

        // Step toward the minimum over the free variables, stopping at
        // the first bound in the way.
        let mut step = 1.0;
        let mut blocking = None;
        for c in (0..n).filter(|&c| status[c] == Bound::Inside) {
            let p = target[c] - z[c];
            let (room, bound) = if p < 0.0 {
                (lo[c] - z[c], Bound::Lower)
            } else if p > 0.0 {
                (hi[c] - z[c], Bound::Upper)
            } else {
                continue;
            };
            let ratio = (room / p).max(0.0);
            if ratio < step {
                step = ratio;
                blocking = Some((c, bound));
            }
        }
        for c in (0..n).filter(|&c| status[c] == Bound::Inside) {
            z[c] = if step == 1.0 {
                target[c]
            } else {
                z[c] + step * (target[c] - z[c])
            };
        }
        if let Some((c, bound)) = blocking {
            status[c] = bound;
            z[c] = if bound == Bound::Lower { lo[c] } else { hi[c] };
            continue;
        }

        // At the minimum over the free variables: release the active
        // bound whose multiplier points most clearly into the box.
        let mut worst: Option<(usize, f64)> = None;
        for c in (0..n).filter(|&c| status[c] != Bound::Inside) {
            let col = &g[c * n..(c + 1) * n];
            let grad = dot(col, z) - q[c];
            let size: f64 = col.iter().zip(&*z).map(|(a, b)| (a * b).abs()).sum();
            let noise = 64.0 * f64::EPSILON * (size + q[c].abs());
            let wrong = match status[c] {
                Bound::Lower => -grad,
                Bound::Upper => grad,
                Bound::Inside => unreachable!("only active bounds are judged"),
            };
            let ratio = wrong / noise.max(f64::MIN_POSITIVE);
            if ratio > 1.0 && worst.is_none_or(|(_, w)| ratio > w) {
                worst = Some((c, ratio));
            }
        }
        match worst {
            Some((c, _)) => status[c] = Bound::Inside,
            None => return true,
        }
    }
    false
}

/// The minimiser over the free (inside) variables with the others held at
/// their values in `z`, into `target` (the held ones copied). `false` if
/// the free block is not positive definite.
fn free_minimum(
    g: &[f64],
    q: &[f64],
    z: &[f64],
    status: &[Bound],
    target: &mut [f64],
) -> bool {
    let n = q.len();
    let free: Vec<usize> = (0..n).filter(|&c| status[c] == Bound::Inside).collect();
    target.copy_from_slice(z);
    let f = free.len();
    if f == 0 {
        return true;
    }
    let mut gff = vec![0.0; f * f];
    let mut rhs = vec![0.0; f];
    for (a, &ca) in free.iter().enumerate() {
        let mut r = q[ca];
        for c in (0..n).filter(|&c| status[c] != Bound::Inside) {
            r -= g[ca * n + c] * z[c];
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
        target[ca] = rhs[a];
    }
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
            let held: Vec<f64> = (0..n)
                .map(|c| match status[c] {
                    Bound::Lower => lo[c],
                    Bound::Upper => hi[c],
                    Bound::Inside => 0.0,
                })
                .collect();
            let mut z = vec![0.0; n];
            assert!(free_minimum(g, q, &held, &status, &mut z));
            let inside = (0..n)
                .all(|c| status[c] != Bound::Inside || (lo[c]..=hi[c]).contains(&z[c]));
            let signs = (0..n).all(|c| {
                let grad = dot(&g[c * n..(c + 1) * n], &z) - q[c];
                match status[c] {
                    Bound::Inside => true,
                    Bound::Lower => grad >= -1e-12,
                    Bound::Upper => grad <= 1e-12,
                }
            });
            if inside && signs {
                return z;
            }
        }
        panic!("no active set is optimal");
    }

    #[test]
    fn a_unit_that_has_all_but_stopped_keeps_its_tiny_solution_inside() {
        // Three points of a unit on its kink whose velocities are of order
        // 1e-13 (met in a study run): the solution is of order 1e-15 and
        // two of the three must stay inside their boxes, not on a bound.
        let g = [
            101.0,
            -44.908962151509655,
            -0.6364151393961373,
            -44.908962151509655,
            101.0,
            -44.90896215150964,
            -0.6364151393961373,
            -44.90896215150964,
            101.0,
        ];
        let q = [
            3.524434312381912e-13,
            -2.4165465418963673e-11,
            3.524434312381505e-13,
        ];
        let lo = [0.0; 3];
        let hi = [
            0.039091459912750884,
            0.014724966830470206,
            0.010091250410788167,
        ];
        let mut z = [0.0; 3];
        let (status, exact) = box_qp(&g, &q, &lo, &hi, &mut z);
        assert!(exact);
        assert_eq!(status, vec![Bound::Inside, Bound::Lower, Bound::Inside]);
        let want = enumerate(&g, &q, &lo, &hi);
        for c in 0..3 {
            assert!(
                (z[c] - want[c]).abs() <= 1e-12 * want[c].abs().max(1e-300),
                "{z:?} {want:?}"
            );
        }
        assert!(z[0] > 0.0 && z[2] > 0.0);
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
