//! Our own Dormand-Prince 5(4) stepper: no allocation per step, and a
//! continuous extension for saving between steps.
//!
//! The pair is that of Dormand and Prince (1980), with local
//! extrapolation and first-same-as-last (six evaluations per attempted
//! step), the PI step-size controller and the fourth-order continuous
//! extension of Hairer, Nørsett and Wanner, *Solving ODEs I*, II.4-II.6
//! (the coefficients of their DOPRI5 code). All the stages and the trial
//! state live in scratch owned here, sized once per dimension, so a step
//! costs six right-hand sides and a few passes over the state and nothing
//! else; `ode_solvers`' generic pair, which [`super::integrator`] keeps for
//! DOP853, allocates a vector for every stage and stores every accepted
//! step, which at the paper size took as long as the right-hand side.

use super::integrator::VectorField;

// The tableau: a[i][j] for stage i + 2; b (the fifth-order weights) is
// the last row (first same as last).
const A21: f64 = 1.0 / 5.0;
const A31: f64 = 3.0 / 40.0;
const A32: f64 = 9.0 / 40.0;
const A41: f64 = 44.0 / 45.0;
const A42: f64 = -56.0 / 15.0;
const A43: f64 = 32.0 / 9.0;
const A51: f64 = 19372.0 / 6561.0;
const A52: f64 = -25360.0 / 2187.0;
const A53: f64 = 64448.0 / 6561.0;
const A54: f64 = -212.0 / 729.0;
const A61: f64 = 9017.0 / 3168.0;
const A62: f64 = -355.0 / 33.0;
const A63: f64 = 46732.0 / 5247.0;
const A64: f64 = 49.0 / 176.0;
const A65: f64 = -5103.0 / 18656.0;
const A71: f64 = 35.0 / 384.0;
const A73: f64 = 500.0 / 1113.0;
const A74: f64 = 125.0 / 192.0;
const A75: f64 = -2187.0 / 6784.0;
const A76: f64 = 11.0 / 84.0;

// The error weights: fifth- minus fourth-order.
const E1: f64 = 71.0 / 57600.0;
const E3: f64 = -71.0 / 16695.0;
const E4: f64 = 71.0 / 1920.0;
const E5: f64 = -17253.0 / 339200.0;
const E6: f64 = 22.0 / 525.0;
const E7: f64 = -1.0 / 40.0;

// The continuous extension's fourth-order term.
const D1: f64 = -12715105075.0 / 11282082432.0;
const D3: f64 = 87487479700.0 / 32700410799.0;
const D4: f64 = -10690763975.0 / 1880347072.0;
const D5: f64 = 701980252875.0 / 199316789632.0;
const D6: f64 = -1453857185.0 / 822651844.0;
const D7: f64 = 69997945.0 / 29380423.0;

// The controller: safety factor, PI exponent and the bounds on the ratio
// of successive step sizes.
const SAFETY: f64 = 0.9;
const BETA: f64 = 0.04;
const EXPO: f64 = 0.2 - BETA * 0.75;
const SHRINK_MAX: f64 = 5.0; // h_new >= h / 5
const GROW_MAX: f64 = 10.0; // h_new <= 10 h

/// The tolerances, the memory that carries from one call to the next,
/// and the work done.
#[derive(Clone, Copy, Debug)]
pub struct Controls {
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// The step size to try first (0: choose one), and on return the one
    /// to continue with.
    pub h: f64,
    /// Attempted steps left in the budget.
    pub steps_left: u64,
    /// How many components the RMS error norm averages over: 0 for the
    /// state's own length, more when the state stands for a longer one
    /// whose other components carry no error (the reduced coordinates of
    /// the weights: see [`super::reduced`]).
    pub norm_len: usize,
    /// The work done, added to by every call.
    pub work: Work,
}

impl Controls {
    /// The number of components the RMS norms of a state of `len`
    /// average over.
    fn norm_len(&self, len: usize) -> usize {
        self.norm_len.max(len).max(1)
    }
}

/// What a call did and where it ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// Right-hand-side evaluations.
    pub evals: u64,
    /// Accepted steps.
    pub accepted: u64,
    /// Rejected steps.
    pub rejected: u64,
}

/// Why [`Dopri5::run`] stopped before `t1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The step callback asked to stop.
    Callback,
    /// The step budget ran out.
    Budget,
    /// The step size fell below the rounding of the time.
    Underflow,
}

/// One accepted step, as the callback sees it: its ends, the field at
/// its end, and the continuous extension over it.
pub struct Step<'a> {
    /// Where the step started.
    pub t_old: f64,
    /// Where it ended.
    pub t: f64,
    /// The state at `t_old`.
    pub y_old: &'a [f64],
    /// The state at `t`.
    pub y: &'a [f64],
    /// The field at `t`.
    pub f: &'a [f64],
    k: &'a [Vec<f64>; 7],
}

impl Step<'_> {
    /// Writes the continuous extension at `t` (within the step) into `out`.
    pub fn interpolate(&self, t: f64, out: &mut [f64]) {
        let h = self.t - self.t_old;
        let theta = ((t - self.t_old) / h).clamp(0.0, 1.0);
        dense(self.k, self.y_old, self.y, h, theta, out);
    }

    /// The time a fraction `theta` of the way through the step.
    pub fn time_at(&self, theta: f64) -> f64 {
        if theta >= 1.0 {
            self.t
        } else {
            self.t_old + theta * (self.t - self.t_old)
        }
    }

    /// The continuous extension of component `i` over the step.
    pub fn curve(&self, i: usize) -> DenseCurve {
        let h = self.t - self.t_old;
        DenseCurve::of(self.k, self.y_old, self.y, h, i)
    }

    /// For each of the first `lo.len()` components, the smallest and
    /// largest of the Bernstein coefficients of its continuous extension
    /// ([`DenseCurve::bernstein`]): bounds of the component over the
    /// step, found for all of them in one vectorised pass.
    pub fn ranges(&self, lo: &mut [f64], hi: &mut [f64]) {
        let h = self.t - self.t_old;
        bernstein_ranges(self.k, self.y_old, self.y, h, lo, hi);
    }
}

/// One component's continuous extension over a step, `y(theta) = y0 +
/// theta (d + (1 - theta) (b + theta (r4 + (1 - theta) r5)))` on `theta`
/// in `[0, 1]`: the cubic Hermite interpolant of the step's ends and
/// slopes plus the fourth-order bubble `theta^2 (1 - theta)^2 r5`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DenseCurve {
    /// `[y0, d, b, r4, r5]`.
    pub c: [f64; 5],
}

impl DenseCurve {
    /// Component `i`'s curve over the step from `y0` to `y1` of size `h`
    /// with stages `k` (Hairer, Nørsett and Wanner's DOPRI5 coefficients).
    #[inline(always)]
    fn of(k: &[Vec<f64>; 7], y0: &[f64], y1: &[f64], h: f64, i: usize) -> Self {
        let [k1, _, k3, k4, k5, k6, k7] = k;
        let diff = y1[i] - y0[i];
        let bspl = h * k1[i] - diff;
        let r4 = diff - h * k7[i] - bspl;
        let r5 = h
            * (D1 * k1[i]
                + D3 * k3[i]
                + D4 * k4[i]
                + D5 * k5[i]
                + D6 * k6[i]
                + D7 * k7[i]);
        DenseCurve {
            c: [y0[i], diff, bspl, r4, r5],
        }
    }

    /// The value at `theta`.
    #[inline(always)]
    pub fn at(&self, theta: f64) -> f64 {
        let [y0, d, b, r4, r5] = self.c;
        let t1 = 1.0 - theta;
        y0 + theta * (d + t1 * (b + theta * (r4 + t1 * r5)))
    }

    /// The curve of `sign (y - offset)`.
    pub fn affine(&self, offset: f64, sign: f64) -> Self {
        let [y0, d, b, r4, r5] = self.c;
        DenseCurve {
            c: [
                sign * (y0 - offset),
                sign * d,
                sign * b,
                sign * r4,
                sign * r5,
            ],
        }
    }

    /// The coefficients in the degree-4 Bernstein basis: the curve lies
    /// between their smallest and largest on `[0, 1]` (the convex hull
    /// property), and equals the first and last at the ends.
    #[inline(always)]
    pub fn bernstein(&self) -> [f64; 5] {
        let [y0, d, b, r4, r5] = self.c;
        [
            y0,
            y0 + 0.25 * (d + b),
            y0 + 0.5 * d + b * (1.0 / 3.0) + (r4 + r5) * (1.0 / 6.0),
            y0 + 0.75 * d + 0.25 * (b + r4),
            y0 + d,
        ]
    }
}

crate::simd_fn! {
    /// [`Step::ranges`] over the first `lo.len()` components.
    fn bernstein_ranges(
        k: &[Vec<f64>; 7],
        y0: &[f64],
        y1: &[f64],
        h: f64,
        lo: &mut [f64],
        hi: &mut [f64],
    ) {
        let n = lo.len();
        let hi = &mut hi[..n];
        for i in 0..n {
            let [b0, b1, b2, b3, b4] = DenseCurve::of(k, y0, y1, h, i).bernstein();
            lo[i] = b0.min(b4).min(b1.min(b2).min(b3));
            hi[i] = b0.max(b4).max(b1.max(b2).max(b3));
        }
    }
}

crate::simd_fn! {
    /// The fourth-order continuous extension at `t_old + theta h` of the
    /// step from `y0` to `y1` with stages `k`.
    fn dense(k: &[Vec<f64>; 7], y0: &[f64], y1: &[f64], h: f64, theta: f64, out: &mut [f64]) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = DenseCurve::of(k, y0, y1, h, i).at(theta);
        }
    }
}

crate::simd_fn! {
    /// The state stage `stage + 1` (2 to 7) is evaluated at, `y + h sum_j
    /// a_j k_j` over the stages before it, into `out`.
    fn stage_state(stage: usize, k: &[Vec<f64>; 7], y: &[f64], h: f64, out: &mut [f64]) {
        let n = y.len();
        let [k1, k2, k3, k4, k5, k6, _] = k;
        let (k1, k2, k3, k4, k5, k6) =
            (&k1[..n], &k2[..n], &k3[..n], &k4[..n], &k5[..n], &k6[..n]);
        let out = &mut out[..n];
        match stage {
            1 => {
                for i in 0..n {
                    out[i] = y[i] + h * A21 * k1[i];
                }
            }
            2 => {
                for i in 0..n {
                    out[i] = y[i] + h * (A31 * k1[i] + A32 * k2[i]);
                }
            }
            3 => {
                for i in 0..n {
                    out[i] = y[i] + h * (A41 * k1[i] + A42 * k2[i] + A43 * k3[i]);
                }
            }
            4 => {
                for i in 0..n {
                    out[i] = y[i]
                        + h * (A51 * k1[i] + A52 * k2[i] + A53 * k3[i] + A54 * k4[i]);
                }
            }
            5 => {
                for i in 0..n {
                    out[i] = y[i]
                        + h * (A61 * k1[i]
                            + A62 * k2[i]
                            + A63 * k3[i]
                            + A64 * k4[i]
                            + A65 * k5[i]);
                }
            }
            _ => {
                for i in 0..n {
                    out[i] = y[i]
                        + h * (A71 * k1[i]
                            + A73 * k3[i]
                            + A74 * k4[i]
                            + A75 * k5[i]
                            + A76 * k6[i]);
                }
            }
        }
    }
}

crate::simd_fn! {
    /// The sum over components of the squared local error estimate of the
    /// step from `y` to `y_new`, each scaled by `atol + rtol max(|y|,
    /// |y_new|)`; the terms go through `q`, then eight running sums (the
    /// two passes vectorise; one pass with the sums in it took the
    /// paper-size flow from 1.6 to 2.0 ms).
    fn error_squares(
        k: &[Vec<f64>; 7],
        y: &[f64],
        y_new: &[f64],
        h: f64,
        atol: f64,
        rtol: f64,
        q: &mut [f64],
    ) -> f64 {
        let n = y.len();
        let [k1, _, k3, k4, k5, k6, k7] = k;
        let (k1, k3, k4, k5, k6, k7) =
            (&k1[..n], &k3[..n], &k4[..n], &k5[..n], &k6[..n], &k7[..n]);
        let (y_new, q) = (&y_new[..n], &mut q[..n]);
        for i in 0..n {
            let e = h
                * (E1 * k1[i] + E3 * k3[i] + E4 * k4[i] + E5 * k5[i] + E6 * k6[i]
                    + E7 * k7[i]);
            let scale = atol + rtol * y[i].abs().max(y_new[i].abs());
            q[i] = (e / scale) * (e / scale);
        }
        let mut lanes = [0.0; 8];
        let chunks = q.chunks_exact(8);
        let tail: f64 = chunks.remainder().iter().sum();
        for c in chunks {
            for l in 0..8 {
                lanes[l] += c[l];
            }
        }
        lanes.iter().sum::<f64>() + tail
    }
}

/// The scratch of the stepper: seven stages, the trial state and the state
/// at the start of the step.
#[derive(Clone, Debug, Default)]
pub struct Dopri5 {
    k: [Vec<f64>; 7],
    y_new: Vec<f64>,
    y_old: Vec<f64>,
    /// The scaled squared error terms of the last step.
    q: Vec<f64>,
}

impl Dopri5 {
    fn fit(&mut self, n: usize) {
        if self.y_new.len() != n {
            self.k.iter_mut().for_each(|k| *k = vec![0.0; n]);
            self.y_new = vec![0.0; n];
            self.y_old = vec![0.0; n];
            self.q = vec![0.0; n];
        }
    }

    /// Integrates `y` in place from `t0` toward `t1 > t0`, calling
    /// `on_step` after every accepted step; it returns `true` to stop
    /// there. Returns the time reached and why it stopped short, if it
    /// did, and adds the work done to `ctl.work`.
    pub fn run<F: VectorField>(
        &mut self,
        field: &F,
        ctl: &mut Controls,
        t0: f64,
        t1: f64,
        y: &mut [f64],
        mut on_step: impl FnMut(&Step<'_>) -> bool,
    ) -> (f64, Option<Stop>) {
        let mut t = t0;
        if t1 <= t0 {
            return (t, None);
        }
        self.fit(y.len());
        field.eval(y, &mut self.k[0]);
        ctl.work.evals += 1;
        let mut h = if ctl.h > 0.0 {
            ctl.h
        } else {
            self.initial_step(field, ctl, y, t1 - t0)
        };
        let mut fac_old: f64 = 1e-4;
        let mut rejected_last = false;
        loop {
            if ctl.steps_left == 0 {
                ctl.h = h;
                return (t, Some(Stop::Budget));
            }
            if 0.1 * h <= f64::EPSILON * t.abs() {
                ctl.h = h;
                return (t, Some(Stop::Underflow));
            }
            // Land on t1 rather than leave a sliver of a step.
            let h_full = h;
            let last = t + 1.01 * h >= t1;
            if last {
                h = t1 - t;
            }
            ctl.steps_left -= 1;
            self.stages(field, y, h);
            ctl.work.evals += 6;
            let err = self.error(ctl, y, h);

            // The PI controller of DOPRI5: shrink by at most 5, grow by at
            // most 10, never grow right after a rejection.
            let fac11 = err.powf(EXPO);
            if err > 1.0 {
                ctl.work.rejected += 1;
                rejected_last = true;
                h /= (fac11 / SAFETY).min(SHRINK_MAX);
                continue;
            }
            let fac =
                (fac11 / fac_old.powf(BETA) / SAFETY).clamp(1.0 / GROW_MAX, SHRINK_MAX);
            let mut h_new = h / fac;
            if rejected_last {
                h_new = h_new.min(h);
            }
            fac_old = err.max(1e-4);
            rejected_last = false;
            ctl.work.accepted += 1;

            let t_old = t;
            t = if last { t1 } else { t + h };
            self.y_old.copy_from_slice(y);
            y.copy_from_slice(&self.y_new);
            let step = Step {
                t_old,
                t,
                y_old: &self.y_old,
                y,
                f: &self.k[6],
                k: &self.k,
            };
            let stop = on_step(&step);
            // First same as last: the field at the end starts the next step.
            self.k.swap(0, 6);
            // After a step cut short to land on t1, carry on with the
            // size the controller had proposed before the cut.
            h = if last { h_new.max(h_full) } else { h_new };
            if stop || last {
                ctl.h = h;
                return (t, stop.then_some(Stop::Callback));
            }
        }
    }

    /// The six new stages of a step of size `h` from `y`, whose field is
    /// in `k[0]`; the fifth-order result goes to `y_new` and its field to
    /// `k[6]`.
    fn stages<F: VectorField>(&mut self, field: &F, y: &[f64], h: f64) {
        for stage in 1..7 {
            stage_state(stage, &self.k, y, h, &mut self.y_new);
            field.eval(&self.y_new, &mut self.k[stage]);
        }
    }

    /// The scaled RMS norm of the local error estimate of the step from
    /// `y` to `y_new`.
    fn error(&mut self, ctl: &Controls, y: &[f64], h: f64) -> f64 {
        let (k, y_new, q) = (&self.k, &self.y_new, &mut self.q);
        let sum = error_squares(k, y, y_new, h, ctl.atol, ctl.rtol, q);
        let err = (sum / ctl.norm_len(y.len()) as f64).sqrt();
        if err.is_nan() { f64::INFINITY } else { err }
    }

    /// Hairer's starting step: an explicit Euler step sized from the
    /// norms of the state and the field, then refined by an estimate of
    /// the second derivative; at most `span`. Uses `k[1]` and `y_new` as
    /// scratch.
    fn initial_step<F: VectorField>(
        &mut self,
        field: &F,
        ctl: &mut Controls,
        y: &[f64],
        span: f64,
    ) -> f64 {
        let n = ctl.norm_len(y.len()) as f64;
        let scale = |i: usize| ctl.atol + ctl.rtol * y[i].abs();
        let rms = |v: &dyn Fn(usize) -> f64| {
            ((0..y.len()).map(|i| v(i) * v(i)).sum::<f64>() / n).sqrt()
        };
        let f0 = &self.k[0];
        let dy = rms(&|i| y[i] / scale(i));
        let df = rms(&|i| f0[i] / scale(i));
        let h0 = if dy < 1e-5 || df < 1e-5 {
            1e-6
        } else {
            0.01 * dy / df
        }
        .min(span);
        for i in 0..y.len() {
            self.y_new[i] = y[i] + h0 * f0[i];
        }
        field.eval(&self.y_new, &mut self.k[1]);
        ctl.work.evals += 1;
        let (f0, f1) = (&self.k[0], &self.k[1]);
        let d2 = rms(&|i| (f1[i] - f0[i]) / scale(i)) / h0;
        let big = df.max(d2);
        let h1 = if big <= 1e-15 {
            (h0 * 1e-3).max(1e-6)
        } else {
            (0.01 / big).powf(0.2)
        };
        (100.0 * h0).min(h1).min(span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dy/dt = A y` for a fixed rotation-and-decay `A`: smooth, with an
    /// exact solution to compare the continuous extension to.
    struct Linear;

    impl VectorField for Linear {
        fn eval(&self, y: &[f64], dy: &mut [f64]) {
            dy[0] = -0.3 * y[0] + 2.0 * y[1];
            dy[1] = -2.0 * y[0] - 0.3 * y[1];
        }
    }

    #[test]
    fn a_components_curve_is_the_continuous_extension_and_its_bernstein_hull_bounds_it() {
        let mut stepper = Dopri5::default();
        let mut ctl = Controls {
            rtol: 1e-6,
            atol: 1e-9,
            h: 0.4,
            steps_left: 1000,
            norm_len: 0,
            work: Work::default(),
        };
        let mut y = vec![1.0, 0.0];
        let mut checked = 0;
        stepper.run(&Linear, &mut ctl, 0.0, 3.0, &mut y, |step| {
            let mut out = [0.0; 2];
            let (mut lo, mut hi) = ([0.0; 2], [0.0; 2]);
            step.ranges(&mut lo, &mut hi);
            for i in 0..2 {
                let curve = step.curve(i);
                let b = curve.bernstein();
                assert_eq!(b[0], step.y_old[i]);
                assert!((b[4] - step.y[i]).abs() <= 1e-15);
                for j in 0..=20 {
                    let theta = f64::from(j) / 20.0;
                    step.interpolate(step.time_at(theta), &mut out);
                    assert!((curve.at(theta) - out[i]).abs() <= 1e-14, "{i} {theta}");
                    assert!(
                        curve.at(theta) >= lo[i] - 1e-15
                            && curve.at(theta) <= hi[i] + 1e-15
                    );
                    let flipped = curve.affine(0.25, -1.0).at(theta);
                    assert!((flipped - (0.25 - curve.at(theta))).abs() <= 1e-14);
                }
            }
            checked += 1;
            false
        });
        assert!(checked > 3);
    }
}
