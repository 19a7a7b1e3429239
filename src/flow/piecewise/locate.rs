//! Where inside one accepted step an event function changes sign.
//!
//! A pre-activation `u(t)` is known at both ends of a step together with
//! its time derivative (from the field values the solver hands over), so
//! its cubic Hermite interpolant (Hairer, Nørsett and Wanner, *Solving
//! ODEs I*, II.6) is third-order accurate inside the step; its roots are
//! found by bracketing with the Illinois variant of regula falsi (Dowell
//! and Jarratt 1971). The cubic only proposes a time: the driver then
//! integrates to that time and checks the true value there.

/// The cubic Hermite interpolant on `s` in `[0, 1]` of a function with
/// values `p0`, `p1` and derivatives (already times the step) `m0`, `m1`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Hermite {
    p0: f64,
    p1: f64,
    m0: f64,
    m1: f64,
}

use crate::flow::dopri5::DenseCurve;

/// Samples of the cubic used to find the first excursion below zero.
const SAMPLES: usize = 16;

impl Hermite {
    /// The interpolant of `phi` over a step of length `h`, from the values
    /// and time derivatives at both ends.
    pub(super) fn new(p0: f64, d0: f64, p1: f64, d1: f64, h: f64) -> Self {
        Hermite {
            p0,
            p1,
            m0: d0 * h,
            m1: d1 * h,
        }
    }

    /// The value at `s`.
    pub(super) fn at(&self, s: f64) -> f64 {
        let s2 = s * s;
        let s3 = s2 * s;
        let h00 = 2.0 * s3 - 3.0 * s2 + 1.0;
        let h10 = s3 - 2.0 * s2 + s;
        let h01 = -2.0 * s3 + 3.0 * s2;
        let h11 = s3 - s2;
        h00 * self.p0 + h10 * self.m0 + h01 * self.p1 + h11 * self.m1
    }

    /// A lower bound of the cubic on `[0, 1]`: the Hermite basis
    /// functions of the slopes never exceed 4/27 in size.
    fn lower_bound(&self) -> f64 {
        self.p0.min(self.p1) - 4.0 / 27.0 * (self.m0.abs() + self.m1.abs())
    }

    /// The earliest `s` in `[0, 1]` where the cubic leaves the region
    /// `phi >= 0` on its way below `-tol`, or `None` if it never drops
    /// below `-tol` (see [`first_exit`]).
    pub(super) fn first_exit(&self, tol: f64) -> Option<f64> {
        if self.lower_bound() >= -tol {
            return None;
        }
        first_exit(|s| self.at(s), tol)
    }
}

/// The earliest `s` in `[0, 1]` where `phi` leaves the region `phi >= 0`
/// on its way below `-tol`, or `None` if it never drops below `-tol` on a
/// grid of [`SAMPLES`] steps.
///
/// The exit is placed where `phi` passes a level between its start and
/// `-tol`: half a tolerance past the kink, or halfway to `-tol` for a
/// start already past it (a pair on its kink counts as on it within
/// `tol`). So the event state is within `tol` of the kink on the side the
/// pair is leaving to, moving that way, and never the step's start unless
/// the pair began outside its tolerance. An exit placed at the exact
/// crossing would put a pair that sits on its kink with (nearly) zero
/// velocity, as a pair does when it is released from sliding, back at the
/// state just decided, to be decided the same way again and again, while
/// its velocity turns within the step.
pub(super) fn first_exit(phi: impl Fn(f64) -> f64, tol: f64) -> Option<f64> {
    let grid = |j: usize| j as f64 / SAMPLES as f64;
    let drop = (1..=SAMPLES).find(|&j| phi(grid(j)) < -tol)?;
    let start = phi(0.0);
    if start < -tol {
        return Some(0.0);
    }
    let level = (-0.5 * tol).min(0.5 * (start - tol));
    let last = (0..drop)
        .rev()
        .find(|&j| phi(grid(j)) >= level)
        .unwrap_or(0);
    Some(illinois(|s| phi(s) - level, grid(last), grid(drop), 1e-15))
}

/// [`first_exit`] on a component's continuous extension over a step,
/// screened first by its Bernstein coefficients (nothing below `-tol`,
/// no exit).
pub(super) fn curve_exit(curve: &DenseCurve, tol: f64) -> Option<f64> {
    if curve.bernstein().iter().all(|&b| b >= -tol) {
        return None;
    }
    first_exit(|s| curve.at(s), tol)
}

/// A root of `f` in `[a, b]` with `f(a) >= 0 > f(b)`, to a bracket width
/// of `tol` (relative to the interval `[0, 1]` it is used on) or an exact
/// zero: the Illinois variant of regula falsi.
pub(super) fn illinois(f: impl Fn(f64) -> f64, mut a: f64, mut b: f64, tol: f64) -> f64 {
    let (mut fa, mut fb) = (f(a), f(b));
    let mut side = 0i8;
    for _ in 0..200 {
        if fa == 0.0 {
            return a;
        }
        let c = if fa != fb {
            (a * fb - b * fa) / (fb - fa)
        } else {
            0.5 * (a + b)
        };
        let c = c.clamp(a, b);
        let fc = f(c);
        if fc >= 0.0 {
            a = c;
            fa = fc;
            if side == 1 {
                fb *= 0.5;
            }
            side = 1;
        } else {
            b = c;
            fb = fc;
            if side == -1 {
                fa *= 0.5;
            }
            side = -1;
        }
        if b - a <= tol {
            break;
        }
    }
    // The crossing lies in [a, b]; `a` is still on the inside.
    if f(b).abs() < f(a).abs() { b } else { a }
}

/// Where the straight line through `(0, f0)` and `(1, f1)` with
/// `f0 >= 0 > f1` crosses zero (an end if the signs do not differ).
pub(super) fn secant(f0: f64, f1: f64) -> f64 {
    if f0 <= 0.0 {
        0.0
    } else if f1 >= 0.0 {
        1.0
    } else {
        (f0 / (f0 - f1)).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cubic_is_reproduced_exactly() {
        // phi(s) = (s - 0.3)(s - 2)(s + 1) is a cubic, so its Hermite data
        // on [0, 1] give it back, and its first exit is at s = 0.3.
        let p = |s: f64| (s - 0.3) * (s - 2.0) * (s + 1.0);
        let dp = |s: f64| 3.0 * s * s - 2.6 * s - 1.7;
        let h = Hermite::new(p(0.0), dp(0.0), p(1.0), dp(1.0), 1.0);
        for s in [0.0, 0.25, 0.7, 1.0] {
            assert!((h.at(s) - p(s)).abs() < 1e-14);
        }
        let s = h.first_exit(1e-12).unwrap();
        assert!((s - 0.3).abs() < 1e-12, "{s}");
    }

    #[test]
    fn a_dip_inside_the_step_is_found() {
        // Positive at both ends, below zero between 0.4 and 0.6.
        let p = |s: f64| (s - 0.4) * (s - 0.6) * 4.0;
        let dp = |s: f64| (2.0 * s - 1.0) * 4.0;
        let h = Hermite::new(p(0.0), dp(0.0), p(1.0), dp(1.0), 1.0);
        let s = h.first_exit(1e-12).unwrap();
        assert!((s - 0.4).abs() < 1e-12, "{s}");
        let away = Hermite::new(1.0, 0.1, 1.2, 0.1, 1.0);
        assert_eq!(away.first_exit(1e-12), None);
    }

    #[test]
    fn a_start_on_the_kink_looks_for_the_later_return() {
        // Starts a hair below zero, rises, and comes back down at 0.8.
        let p = |s: f64| s * (0.8 - s) - 1e-15;
        let dp = |s: f64| 0.8 - 2.0 * s;
        let h = Hermite::new(p(0.0), dp(0.0), p(1.0), dp(1.0), 1.0);
        let s = h.first_exit(1e-12).unwrap();
        assert!((s - 0.8).abs() < 1e-12, "{s}");
    }
}
