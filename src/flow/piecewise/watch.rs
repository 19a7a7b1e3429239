//! Watching a mode for its end: snapshots at step ends and the search for
//! the earliest event between two of them.
//!
//! A free pair's mode ends when `u_ci` leaves its piece (by more than the
//! kink tolerance); a sliding pair's when its coefficient leaves its slope
//! interval. Between two snapshots the first is located with the cubic
//! Hermite interpolant of `u` ([`super::locate`]) and the second with the
//! straight line through the end values of the release margin.

use super::locate::{Hermite, secant};
use super::mode::{FrozenField, Mode, Pair, Setup};

/// The state at one step end and what the events depend on there.
#[derive(Clone, Debug)]
pub(super) struct Snapshot {
    /// Time.
    pub t: f64,
    /// The flow state.
    pub y: Vec<f64>,
    /// Pre-activations, column-major `N x M`.
    pub u: Vec<f64>,
    /// Their time derivatives.
    pub du: Vec<f64>,
    /// Release margins of the sliding pairs (see
    /// [`FrozenField::margins_at`]).
    pub margins: Vec<f64>,
}

impl Snapshot {
    /// An empty snapshot sized for `setup` and `field`.
    pub fn new(setup: &Setup<'_>, state_len: usize, field: &FrozenField<'_, '_>) -> Self {
        Snapshot {
            t: 0.0,
            y: vec![0.0; state_len],
            u: vec![0.0; setup.n * setup.m],
            du: vec![0.0; setup.n * setup.m],
            margins: vec![0.0; field.sliding_pairs()],
        }
    }

    /// Fills the snapshot at `(t, y)` with the field value `f = f(y)`.
    pub fn fill(
        &mut self,
        setup: &Setup<'_>,
        field: &FrozenField<'_, '_>,
        (t, y, f): (f64, &[f64], &[f64]),
        scratch_dy: &mut [f64],
        evals: &mut u64,
    ) {
        self.t = t;
        self.y.copy_from_slice(y);
        setup.pre_activations(y, &mut self.u);
        // The same affine map on the field value gives `dU/dt = dW X + db`.
        setup.pre_activations(f, &mut self.du);
        self.margins.resize(field.sliding_pairs(), 0.0);
        field.margins_at(y, scratch_dy, &mut self.margins, evals);
    }
}

/// Which event function leads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Lead {
    /// Pair index `c * N + i` leaves its piece through kink `kink`.
    Crossing {
        /// The pair.
        pair: usize,
        /// The kink it reaches.
        kink: usize,
    },
    /// Sliding pair number `slot` (in the field's order) is released.
    Release {
        /// Its position in the margins.
        slot: usize,
    },
}

/// The earliest event between snapshots `a` and `b`, as the fraction `s`
/// of the way from `a.t` to `b.t`, or `None` if there is none.
pub(super) fn earliest(
    setup: &Setup<'_>,
    mode: &Mode,
    a: &Snapshot,
    b: &Snapshot,
) -> Option<(f64, Lead)> {
    let h = b.t - a.t;
    let mut best: Option<(f64, Lead)> = None;
    let mut offer = |s: f64, lead: Lead| {
        if best.is_none_or(|(bs, _)| s < bs) {
            best = Some((s, lead));
        }
    };

    for (pair, state) in mode.pairs.iter().enumerate() {
        let Pair::Free(piece) = *state else { continue };
        let (below, above) = setup.piece_bounds(piece as usize);
        let (ua, ub, da, db) = (a.u[pair], b.u[pair], a.du[pair], b.du[pair]);
        if let Some(at) = below {
            let cubic = Hermite::new(ua - at, da, ub - at, db, h);
            if let Some(s) = cubic.first_exit(setup.tol_u) {
                offer(
                    s,
                    Lead::Crossing {
                        pair,
                        kink: piece as usize - 1,
                    },
                );
            }
        }
        if let Some(at) = above {
            let cubic = Hermite::new(at - ua, -da, at - ub, -db, h);
            if let Some(s) = cubic.first_exit(setup.tol_u) {
                offer(
                    s,
                    Lead::Crossing {
                        pair,
                        kink: piece as usize,
                    },
                );
            }
        }
    }

    for slot in 0..b.margins.len() {
        let (ma, mb) = (a.margins[slot], b.margins[slot]);
        if mb < -setup.tol_alpha {
            // Aim past the tolerance, so that a coefficient which starts
            // right at the end of its interval is released inside the
            // step, not at its start.
            let aim = 2.0 * setup.tol_alpha;
            offer(secant(ma + aim, mb + aim), Lead::Release { slot });
        }
    }
    best
}

/// The value of the leading event function at a snapshot: the signed
/// distance of `u` to the kink on the inside of the piece (crossing) or
/// the release margin.
pub(super) fn lead_value(
    setup: &Setup<'_>,
    mode: &Mode,
    lead: Lead,
    snap: &Snapshot,
) -> f64 {
    match lead {
        Lead::Crossing { pair, kink } => {
            let Pair::Free(piece) = mode.pairs[pair] else {
                unreachable!("a crossing leads only for a free pair")
            };
            let at = setup.kinks[kink].at;
            if kink < piece as usize {
                snap.u[pair] - at
            } else {
                at - snap.u[pair]
            }
        }
        Lead::Release { slot } => snap.margins[slot],
    }
}
