//! Hot loops compiled for the widest vector instructions the processor
//! has.
//!
//! The crate is built for the baseline x86-64 instruction set, two
//! doubles per vector instruction, so that one binary runs anywhere. The
//! loops that dominate a run (the flow's right-hand side on few data
//! points, the Runge-Kutta stage combinations, the SGD step's elementwise
//! passes, `tanh`) are written once as plain Rust and compiled twice more
//! by [`simd_fn!`](crate::simd_fn), for AVX-512 and for AVX2 + FMA; the
//! widest build the processor supports is chosen at run time.
//!
//! Every build runs the same operations in the same order: Rust neither
//! contracts `a * b + c` into a fused multiply-add nor reorders a sum, so
//! the vectoriser only widens elementwise loops. A body that asks for
//! fused multiply-adds (`M::fma`) gets them in both AVX builds, which then
//! agree bit for bit with each other and differ from the baseline build in
//! the last bit or so; every other body gives the same bits on every
//! path.

use std::sync::OnceLock;

/// The vector instruction sets a [`simd_fn!`](crate::simd_fn) function is
/// compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// AVX-512 (foundation) with FMA: eight doubles per instruction.
    Avx512,
    /// AVX2 with FMA: four doubles per instruction.
    Avx2,
    /// The target's baseline (SSE2 on x86-64).
    Baseline,
}

/// The widest [`Level`] this processor supports, detected once.
pub fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(detect)
}

fn detect() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("fma")
        {
            return Level::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            return Level::Avx2;
        }
    }
    Level::Baseline
}

/// Defines a function whose body is compiled for every [`Level`] and
/// dispatched at run time to the widest the processor supports.
///
/// The function takes plain (non-generic) arguments; the body is an
/// `#[inline(always)]` inner function, so the loops of everything it
/// inlines are vectorised for the chosen instruction set too. In the body
/// `M` names how `a * b + c` is evaluated ([`crate::fastmath::MulAdd`]):
/// `M::fma(a, b, c)` is one fused instruction in the AVX builds and a
/// product and a sum in the baseline build.
#[macro_export]
macro_rules! simd_fn {
    ($(#[$doc:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?)
     $(-> $ret:ty)? $body:block) => {
        $(#[$doc])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            // A body without multiply-adds leaves `M` unused.
            #[inline(always)]
            #[allow(clippy::extra_unused_type_parameters)]
            fn body<M: $crate::fastmath::MulAdd>($($arg: $ty),*) $(-> $ret)? $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,fma")]
                fn wide($($arg: $ty),*) $(-> $ret)? {
                    body::<$crate::fastmath::Fused>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn mid($($arg: $ty),*) $(-> $ret)? {
                    body::<$crate::fastmath::Fused>($($arg),*)
                }
                match $crate::simd::level() {
                    // SAFETY: `level` found the instructions `wide` is
                    // compiled for on this processor.
                    $crate::simd::Level::Avx512 => return unsafe { wide($($arg),*) },
                    // SAFETY: as above, for `mid`.
                    $crate::simd::Level::Avx2 => return unsafe { mid($($arg),*) },
                    $crate::simd::Level::Baseline => {}
                }
            }
            body::<$crate::fastmath::Separate>($($arg),*)
        }
    };
}

#[cfg(test)]
mod tests {
    crate::simd_fn! {
        fn scaled_sum(a: &[f64], b: &[f64], s: f64, out: &mut [f64]) {
            for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
                *o = x + s * y;
            }
        }
    }

    #[test]
    fn a_dispatched_function_gives_the_portable_bits() {
        let a: Vec<f64> = (0..37).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..37).map(|i| (i as f64 * 0.91).cos()).collect();
        let mut out = vec![0.0; 37];
        scaled_sum(&a, &b, 1.0 / 3.0, &mut out);
        for i in 0..37 {
            assert_eq!(out[i].to_bits(), (a[i] + (1.0 / 3.0) * b[i]).to_bits());
        }
    }
}
