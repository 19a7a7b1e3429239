//! What happens at an event: every unit with a pair on a kink re-decides
//! all of its pairs on kinks together, and the sliding pairs are put back
//! exactly on their kinks.
//!
//! Re-deciding all of a unit's pairs at once matters: the arrival of one
//! point on a kink changes the sliding coefficients of the others, and a
//! point whose coefficient jumps outside its interval at that instant must
//! leave now; a sign-change test on the coefficients would never see it.
//!
//! The decision must work with exactly the velocities the frozen field of
//! [`super::mode`] integrates, a frozen bias's zero velocity included. If
//! it holds a point whose coefficient the field puts outside its interval,
//! the field's release is found at the first instant of the next segment,
//! re-decided the same way, and time stops (a Zeno cascade).

use super::mode::{Mode, Pair, Setup};
use super::sliding::{Bound, box_qp, cholesky, cholesky_solve, dot};
use super::watch::Snapshot;
use crate::network::Workspace;
use crate::trajectory::{EventKind, KinkEvent};

/// One pair on a kink, being re-decided.
#[derive(Clone, Copy, Debug)]
struct OnKink {
    point: usize,
    kink: usize,
    /// `g_ci = (J^T e_c)_i`.
    g: f64,
    /// Whether it may slide: `g (right - left) > 0`.
    candidate: bool,
}

/// What the decision at an event reads: the time, the pre-activations
/// (column-major `N x M`), the sliding pairs' release margins (in the
/// order of [`super::mode::FrozenField::units`]), the error signals
/// `e = dl/dz` (`[M, K]` row-major) and the readout `J` (`[K, N]`).
pub(super) struct EventPoint<'a> {
    /// The time of the event.
    pub t: f64,
    /// Pre-activations.
    pub u: &'a [f64],
    /// Release margins of the sliding pairs.
    pub margins: &'a [f64],
    /// Error signals.
    pub errors: &'a [f64],
    /// The readout.
    pub readout: &'a [f64],
}

impl<'a> EventPoint<'a> {
    /// The event point of a weight-space snapshot; `ws` receives the
    /// forward pass that gives its error signals.
    pub fn of_snapshot(
        setup: &'a Setup<'_>,
        snap: &'a Snapshot,
        ws: &'a mut Workspace,
    ) -> Self {
        let (m, k) = (setup.m, setup.k);
        setup.model.loss_grad(&snap.y, setup.x, setup.y, ws, None);
        EventPoint {
            t: snap.t,
            u: &snap.u,
            margins: &snap.margins,
            errors: ws.errors(m, k),
            readout: setup.readout(&snap.y),
        }
    }
}

/// Re-decides the mode at the event point `at` and appends the changes
/// to `events`. Returns whether anything changed.
pub(super) fn handle(
    setup: &Setup<'_>,
    mode: &mut Mode,
    at: &EventPoint<'_>,
    events: &mut Vec<KinkEvent>,
) -> bool {
    let (n, m) = (setup.n, setup.m);
    let (e, j) = (at.errors, at.readout);
    let before = events.len();

    let mut flagged = vec![false; n];
    cross_far(setup, mode, at, events, &mut flagged);
    for (pair, state) in mode.pairs.iter().enumerate() {
        let near = match *state {
            Pair::Free(p) => near_kink(setup, p as usize, at.u[pair]).is_some(),
            Pair::Sliding(_) => false,
        };
        flagged[pair % n] |= near;
    }
    flag_released(setup, mode, at, &mut flagged);

    for i in (0..n).filter(|&i| flagged[i]) {
        let g: Vec<f64> = (0..m).map(|c| setup.back_error(j, e, c, i)).collect();
        decide_unit(setup, mode, at, i, &g, events);
    }
    events.len() > before
}

/// The adjacent kink of piece `p` that `u` is within tolerance of.
fn near_kink(setup: &Setup<'_>, p: usize, u: f64) -> Option<usize> {
    let (below, above) = setup.piece_bounds(p);
    if below.is_some_and(|at| (u - at).abs() <= setup.tol_u) {
        return Some(p - 1);
    }
    if above.is_some_and(|at| (u - at).abs() <= setup.tol_u) {
        return Some(p);
    }
    None
}

/// Free pairs found clearly outside their piece (only when location fell
/// back to the bracket's far end) move to the piece they are on.
fn cross_far(
    setup: &Setup<'_>,
    mode: &mut Mode,
    at: &EventPoint<'_>,
    events: &mut Vec<KinkEvent>,
    flagged: &mut [bool],
) {
    let act = setup.model.activation;
    let n = setup.n;
    for (pair, state) in mode.pairs.iter_mut().enumerate() {
        let Pair::Free(p) = *state else { continue };
        let u = at.u[pair];
        let (below, above) = setup.piece_bounds(p as usize);
        let outside = below.is_some_and(|at| u < at - setup.tol_u)
            || above.is_some_and(|at| u > at + setup.tol_u);
        if !outside {
            continue;
        }
        let to = act.piece_of(u) as u8;
        let (lo, hi, kind) = if to > p {
            (p, to, EventKind::CrossUp)
        } else {
            (to, p, EventKind::CrossDown)
        };
        for kink in lo..hi {
            events.push(KinkEvent {
                t: at.t,
                unit: pair % n,
                point: pair / n,
                kink: kink as usize,
                kind,
            });
        }
        *state = Pair::Free(to);
        flagged[pair % n] = true;
    }
}

/// Units with a sliding coefficient outside its interval.
fn flag_released(
    setup: &Setup<'_>,
    mode: &Mode,
    at: &EventPoint<'_>,
    flagged: &mut [bool],
) {
    let counts = mode.sliding_counts(setup.n);
    let mut slot = 0;
    for (flag, &count) in flagged.iter_mut().zip(&counts) {
        let margins = &at.margins[slot..slot + count as usize];
        *flag |= margins.iter().any(|&mg| mg < -setup.tol_alpha);
        slot += count as usize;
    }
}

/// Re-decides every pair of unit `i` on a kink.
fn decide_unit(
    setup: &Setup<'_>,
    mode: &mut Mode,
    at: &EventPoint<'_>,
    i: usize,
    g: &[f64],
    events: &mut Vec<KinkEvent>,
) {
    let (n, m) = (setup.n, setup.m);
    let on = pairs_on_kinks(setup, mode, at, i, g);
    if on.is_empty() {
        return;
    }
    let in_set: Vec<bool> = {
        let mut v = vec![false; m];
        on.iter().for_each(|p| v[p.point] = true);
        v
    };

    // What the pairs off the kinks contribute to w_i, b_i (times -M).
    let mut agg = vec![0.0; setup.d + 1];
    for c in (0..m).filter(|&c| !in_set[c]) {
        let Pair::Free(p) = mode.pairs[c * n + i] else {
            unreachable!("pairs off the kinks are free")
        };
        add_push(setup, &mut agg, g[c] * setup.piece_slopes[p as usize], c);
    }

    let decided = settle(setup, mode, i, &on, &agg);
    for (pk, new) in on.iter().zip(decided) {
        let idx = pk.point * n + i;
        if let Some(kind) = change(mode.pairs[idx], new) {
            events.push(KinkEvent {
                t: at.t,
                unit: i,
                point: pk.point,
                kink: pk.kink,
                kind,
            });
        }
        mode.pairs[idx] = new;
    }
}

/// The pairs of unit `i` on a kink: those sliding and those free within
/// tolerance of a kink of their piece.
fn pairs_on_kinks(
    setup: &Setup<'_>,
    mode: &Mode,
    at: &EventPoint<'_>,
    i: usize,
    g: &[f64],
) -> Vec<OnKink> {
    let n = setup.n;
    (0..setup.m)
        .filter_map(|c| {
            let kink = match mode.pairs[c * n + i] {
                Pair::Sliding(k) => k as usize,
                Pair::Free(p) => near_kink(setup, p as usize, at.u[c * n + i])?,
            };
            let kk = setup.kinks[kink];
            Some(OnKink {
                point: c,
                kink,
                g: g[c],
                candidate: g[c] * (kk.right - kk.left) > 0.0,
            })
        })
        .collect()
}

/// Adds `s` times point `c`'s push on `(w_i, b_i)` to `acc`: `acc[..D]
/// += s x_c`, and `acc[D] += s` only when the biases learn. A frozen bias
/// takes no push, so the velocity `-(x_c . acc[..D] + acc[D]) / M` the
/// decision works with is the one the frozen field integrates.
fn add_push(setup: &Setup<'_>, acc: &mut [f64], s: f64, c: usize) {
    let d = setup.d;
    let x = setup.input(c);
    acc[..d].iter_mut().zip(x).for_each(|(a, x)| *a += s * x);
    acc[d] += s * setup.bias_weight();
}

/// Chooses the new state of each pair on a kink: the sliding candidates by
/// the box programme, the others by the side their velocity points to,
/// repeated until the others' sides agree with the candidates' choice.
fn settle(
    setup: &Setup<'_>,
    mode: &Mode,
    i: usize,
    on: &[OnKink],
    agg: &[f64],
) -> Vec<Pair> {
    let (n, m, d) = (setup.n, setup.m as f64, setup.d);
    let cand: Vec<usize> = (0..on.len()).filter(|&a| on[a].candidate).collect();
    let points: Vec<usize> = cand.iter().map(|&a| on[a].point).collect();
    let gram = setup.gram_block(&points);

    // Non-candidates start on their current piece (below, if sliding).
    let mut side: Vec<usize> = on
        .iter()
        .map(|pk| match mode.pairs[pk.point * n + i] {
            Pair::Free(p) => p as usize,
            Pair::Sliding(k) => k as usize,
        })
        .collect();
    let mut out = vec![Pair::Free(0); on.len()];
    for _round in 0..2 * on.len() + 2 {
        let mut fixed = agg.to_vec();
        for (a, pk) in on.iter().enumerate().filter(|(_, pk)| !pk.candidate) {
            let slope = setup.piece_slopes[side[a]];
            add_push(setup, &mut fixed, pk.g * slope, pk.point);
        }
        // The velocity of u_c from the fixed part: -(x_c . a + a_D) / M.
        let vel = |c: usize, acc: &[f64]| -(dot(&acc[..d], setup.input(c)) + acc[d]) / m;

        let q: Vec<f64> = points.iter().map(|&c| m * vel(c, &fixed)).collect();
        let (lo, hi): (Vec<f64>, Vec<f64>) = cand
            .iter()
            .map(|&a| {
                let kk = setup.kinks[on[a].kink];
                let (x, y) = (on[a].g * kk.left, on[a].g * kk.right);
                (x.min(y), x.max(y))
            })
            .unzip();
        let mut beta = vec![0.0; cand.len()];
        let (status, exact) = box_qp(&gram, &q, &lo, &hi, &mut beta);
        if !exact {
            log::debug!("unit {i}: sliding coefficients from Gauss-Seidel alone");
        }

        let mut with_beta = fixed.clone();
        for (b, &c) in beta.iter().zip(&points) {
            add_push(setup, &mut with_beta, *b, c);
        }
        let mut moved = false;
        for (a, pk) in on.iter().enumerate() {
            if pk.candidate {
                continue;
            }
            let up = vel(pk.point, &with_beta) > 0.0;
            let new = if up { pk.kink + 1 } else { pk.kink };
            moved |= new != side[a];
            side[a] = new;
            out[a] = Pair::Free(new as u8);
        }
        for (b, &a) in cand.iter().enumerate() {
            let kk = setup.kinks[on[a].kink];
            let left_is_low = on[a].g * kk.left <= on[a].g * kk.right;
            let k = on[a].kink;
            out[a] = match (status[b], left_is_low) {
                (Bound::Inside, _) => Pair::Sliding(k as u8),
                (Bound::Lower, true) | (Bound::Upper, false) => Pair::Free(k as u8),
                (Bound::Lower, false) | (Bound::Upper, true) => Pair::Free(k as u8 + 1),
            };
        }
        if !moved {
            break;
        }
    }
    out
}

/// The event a change of state is, if any.
fn change(old: Pair, new: Pair) -> Option<EventKind> {
    match (old, new) {
        (Pair::Free(a), Pair::Free(b)) if b > a => Some(EventKind::CrossUp),
        (Pair::Free(a), Pair::Free(b)) if b < a => Some(EventKind::CrossDown),
        (Pair::Free(_), Pair::Sliding(_)) => Some(EventKind::StartSliding),
        (Pair::Sliding(_), Pair::Free(_)) => Some(EventKind::LeaveSliding),
        _ => None,
    }
}

/// Puts every sliding pair exactly back on its kink with the smallest
/// change of its unit's `(w_i, b_i)`; returns the largest `|u - kink|`
/// found before the correction.
pub(super) fn project(setup: &Setup<'_>, mode: &Mode, state: &mut [f64]) -> f64 {
    let (n, d) = (setup.n, setup.d);
    let mut worst: f64 = 0.0;
    for i in 0..n {
        let on = mode.sliding_of(setup, i);
        if on.is_empty() {
            continue;
        }
        let points: Vec<usize> = on.iter().map(|&(c, _)| c).collect();
        let mut gram = setup.gram_block(&points);
        if !cholesky(&mut gram, points.len()) {
            continue;
        }
        for _pass in 0..2 {
            let (wi, bi) = (&state[i * d..(i + 1) * d], state[n * d + i]);
            let mut r: Vec<f64> = on
                .iter()
                .map(|&(c, k)| dot(wi, setup.input(c)) + bi - setup.kinks[k].at)
                .collect();
            worst = r.iter().fold(worst, |w, v| w.max(v.abs()));
            cholesky_solve(&gram, points.len(), &mut r);
            for (lam, &c) in r.iter().zip(&points) {
                let x = setup.input(c);
                state[i * d..(i + 1) * d]
                    .iter_mut()
                    .zip(x)
                    .for_each(|(w, x)| *w -= lam * x);
                state[n * d + i] -= lam * setup.bias_weight();
            }
        }
    }
    worst
}
