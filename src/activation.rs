//! Hidden-unit nonlinearities and their description as piecewise maps.
//!
//! Every activation knows its value `f(u)` and its derivative `f'(u)`.
//! The piecewise-linear ones also declare their kinks: the points where
//! `f'` jumps, with the derivative on each side. The flow code for the
//! ReLU family is written once over that description, so adding an
//! activation here is all it takes to integrate it.
//!
//! Convention at a kink: the derivative reported by [`Activation::slope`]
//! at exactly the kink is the smaller of the two one-sided derivatives.
//! For ReLU this is the usual `f'(0) = 0`.

use std::fmt;

/// A point where a piecewise-linear activation's derivative jumps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Kink {
    /// The pre-activation value at which the derivative jumps.
    pub at: f64,
    /// `f'` just below `at`.
    pub left: f64,
    /// `f'` just above `at`.
    pub right: f64,
}

impl Kink {
    /// The smaller and the larger one-sided derivative.
    pub fn slope_range(&self) -> (f64, f64) {
        (self.left.min(self.right), self.left.max(self.right))
    }
}

/// A hidden-unit nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// `tanh(u)`: smooth, odd, saturating on both sides.
    Tanh,
    /// `max(u, 0)`: one kink at 0.
    Relu,
    /// `min(max(u, 0), ub)`: kinks at 0 and at `ub > 0`.
    BoundedRelu {
        /// The upper bound, where the unit saturates.
        ub: f64,
    },
    /// `max(u + shift, 0)`: one kink at `-shift`.
    ShiftedRelu {
        /// How far the kink moves to the left.
        shift: f64,
    },
    /// `u` for `u > 0`, `leak * u` otherwise: one kink at 0.
    LeakyRelu {
        /// The slope below the kink, in `[0, 1)`.
        leak: f64,
    },
    /// `ln(1 + e^u)`: the smooth relative of ReLU.
    Softplus,
    /// `max(-1, min(u, 1))`: kinks at -1 and 1.
    HardTanh,
    /// `u`: the linear network.
    Linear,
}

impl Activation {
    /// The short name used in scenario files, run names and HDF5 attributes.
    pub fn name(&self) -> &'static str {
        match self {
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
            Activation::BoundedRelu { .. } => "bounded_relu",
            Activation::ShiftedRelu { .. } => "shifted_relu",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Softplus => "softplus",
            Activation::HardTanh => "hard_tanh",
            Activation::Linear => "linear",
        }
    }

    /// Every name [`Activation::name`] can return, for error messages.
    pub const NAMES: [&'static str; 8] = [
        "tanh",
        "relu",
        "bounded_relu",
        "shifted_relu",
        "leaky_relu",
        "softplus",
        "hard_tanh",
        "linear",
    ];

    /// The parameter of the activation, if it has one, as `(key, value)`.
    pub fn parameter(&self) -> Option<(&'static str, f64)> {
        match *self {
            Activation::BoundedRelu { ub } => Some(("ub", ub)),
            Activation::ShiftedRelu { shift } => Some(("shift", shift)),
            Activation::LeakyRelu { leak } => Some(("leak", leak)),
            _ => None,
        }
    }

    /// `f(u)`.
    #[inline]
    pub fn value(&self, u: f64) -> f64 {
        match *self {
            Activation::Tanh => crate::fastmath::tanh(u),
            Activation::Relu => u.max(0.0),
            Activation::BoundedRelu { ub } => u.max(0.0).min(ub),
            Activation::ShiftedRelu { shift } => (u + shift).max(0.0),
            Activation::LeakyRelu { leak } => {
                if u > 0.0 {
                    u
                } else {
                    leak * u
                }
            }
            Activation::Softplus => softplus(u),
            Activation::HardTanh => u.clamp(-1.0, 1.0),
            Activation::Linear => u,
        }
    }

    /// `h[i] = f(u[i])` over a slice: one loop per activation, so that
    /// each is compiled (and vectorised) for its own formula.
    #[inline(always)]
    pub fn apply(&self, u: &[f64], h: &mut [f64]) {
        assert_eq!(u.len(), h.len());
        match *self {
            Activation::Tanh => crate::fastmath::tanh_slice(u, h),
            Activation::Relu => h.iter_mut().zip(u).for_each(|(h, &u)| *h = u.max(0.0)),
            _ => h.iter_mut().zip(u).for_each(|(h, &u)| *h = self.value(u)),
        }
    }

    /// `d[i] *= f'(u[i])` over a slice, given also `h = f(u)` (see
    /// [`Activation::slope_at`]).
    #[inline(always)]
    pub fn scale_by_slope(&self, u: &[f64], h: &[f64], d: &mut [f64]) {
        assert!(u.len() == d.len() && h.len() == d.len());
        match *self {
            Activation::Tanh => d.iter_mut().zip(h).for_each(|(d, &h)| *d *= 1.0 - h * h),
            Activation::Relu => {
                d.iter_mut().zip(u).for_each(|(d, &u)| *d *= step(u > 0.0));
            }
            _ => {
                for (d, (&u, &h)) in d.iter_mut().zip(u.iter().zip(h)) {
                    *d *= self.slope_at(u, h);
                }
            }
        }
    }

    /// `f'(u)`, with the smaller one-sided derivative at a kink.
    #[inline]
    pub fn slope(&self, u: f64) -> f64 {
        match *self {
            Activation::Tanh => {
                let t = crate::fastmath::tanh(u);
                1.0 - t * t
            }
            Activation::Relu => step(u > 0.0),
            Activation::BoundedRelu { ub } => step(u > 0.0 && u < ub),
            Activation::ShiftedRelu { shift } => step(u + shift > 0.0),
            Activation::LeakyRelu { leak } => {
                if u > 0.0 {
                    1.0
                } else {
                    leak
                }
            }
            Activation::Softplus => sigmoid(u),
            Activation::HardTanh => step(u > -1.0 && u < 1.0),
            Activation::Linear => 1.0,
        }
    }

    /// `f'(u)` given also `h = f(u)`, which spares tanh a second
    /// evaluation (`f' = 1 - h^2`).
    #[inline]
    pub fn slope_at(&self, u: f64, h: f64) -> f64 {
        match self {
            Activation::Tanh => 1.0 - h * h,
            _ => self.slope(u),
        }
    }

    /// The kinks, in increasing order; empty for a smooth activation.
    pub fn kinks(&self) -> Vec<Kink> {
        let kink = |at, left, right| Kink { at, left, right };
        match *self {
            Activation::Relu => vec![kink(0.0, 0.0, 1.0)],
            Activation::BoundedRelu { ub } => {
                vec![kink(0.0, 0.0, 1.0), kink(ub, 1.0, 0.0)]
            }
            Activation::ShiftedRelu { shift } => vec![kink(-shift, 0.0, 1.0)],
            Activation::LeakyRelu { leak } => vec![kink(0.0, leak, 1.0)],
            Activation::HardTanh => {
                vec![kink(-1.0, 0.0, 1.0), kink(1.0, 1.0, 0.0)]
            }
            Activation::Tanh | Activation::Softplus | Activation::Linear => vec![],
        }
    }

    /// Whether the flow's right-hand side is smooth (no kinks).
    pub fn is_smooth(&self) -> bool {
        self.kinks().is_empty()
    }

    /// The derivative on the open piece with index `piece`, where piece
    /// `p` lies between kink `p - 1` and kink `p` (piece 0 is below the
    /// first kink). Only meaningful for piecewise-linear activations.
    pub fn piece_slope(&self, piece: usize) -> f64 {
        let kinks = self.kinks();
        if piece == 0 {
            kinks.first().map_or(1.0, |k| k.left)
        } else {
            kinks[piece - 1].right
        }
    }

    /// The index of the open piece that contains `u` (see
    /// [`Activation::piece_slope`]); a point exactly on a kink counts as
    /// the piece below it.
    pub fn piece_of(&self, u: f64) -> usize {
        self.kinks().iter().take_while(|k| u > k.at).count()
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.parameter() {
            Some((key, value)) => write!(f, "{}({key}={value})", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

#[inline]
fn step(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

/// `ln(1 + e^u)`, accurate for large `|u|`.
#[inline]
pub fn softplus(u: f64) -> f64 {
    u.max(0.0) + (-u.abs()).exp().ln_1p()
}

/// `1 / (1 + e^-u)`, without overflow.
#[inline]
pub fn sigmoid(u: f64) -> f64 {
    if u >= 0.0 {
        1.0 / (1.0 + (-u).exp())
    } else {
        let e = u.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Activation; 8] = [
        Activation::Tanh,
        Activation::Relu,
        Activation::BoundedRelu { ub: 1.5 },
        Activation::ShiftedRelu { shift: 0.5 },
        Activation::LeakyRelu { leak: 0.1 },
        Activation::Softplus,
        Activation::HardTanh,
        Activation::Linear,
    ];

    #[test]
    fn slope_matches_central_difference_away_from_kinks() {
        let h = 1e-6;
        for act in ALL {
            for i in 0..81 {
                let u = -4.0 + 0.1 * i as f64 + 0.0123;
                if act.kinks().iter().any(|k| (u - k.at).abs() < 1e-3) {
                    continue;
                }
                let fd = (act.value(u + h) - act.value(u - h)) / (2.0 * h);
                assert!((fd - act.slope(u)).abs() < 1e-7, "{act} at {u}");
            }
        }
    }

    #[test]
    fn kinks_describe_the_one_sided_slopes() {
        for act in ALL {
            for (p, k) in act.kinks().iter().enumerate() {
                assert_eq!(act.slope(k.at - 1e-9), k.left, "{act}");
                assert_eq!(act.slope(k.at + 1e-9), k.right, "{act}");
                assert_eq!(act.piece_slope(p), k.left);
                assert_eq!(act.piece_slope(p + 1), k.right);
                assert_eq!(act.slope(k.at), k.left.min(k.right));
            }
        }
    }

    #[test]
    fn slope_at_agrees_with_slope() {
        for act in ALL {
            for i in 0..40 {
                let u = -3.0 + 0.15 * i as f64 + 0.01;
                let (a, b) = (act.slope_at(u, act.value(u)), act.slope(u));
                assert!((a - b).abs() < 1e-15, "{act} at {u}");
            }
        }
    }

    #[test]
    fn pieces_are_counted_from_below() {
        let act = Activation::BoundedRelu { ub: 2.0 };
        assert_eq!(act.piece_of(-1.0), 0);
        assert_eq!(act.piece_of(0.0), 0);
        assert_eq!(act.piece_of(1.0), 1);
        assert_eq!(act.piece_of(3.0), 2);
    }

    #[test]
    fn softplus_and_sigmoid_are_stable_for_large_arguments() {
        assert_eq!(softplus(800.0), 800.0);
        assert!(softplus(-800.0) >= 0.0);
        assert_eq!(sigmoid(-800.0), 0.0);
        assert_eq!(sigmoid(800.0), 1.0);
    }
}
