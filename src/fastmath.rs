//! Elementwise `tanh` over slices, vectorised.
//!
//! Every right-hand side of a Tanh flow and every SGD step evaluates
//! `tanh` for each (data point, unit) pair, and the C library's scalar
//! `tanh` then costs more than the matrix products around it. This kernel
//! is branch-free so that the compiler vectorises it, and is compiled
//! again for AVX-512 and for AVX2 + FMA, chosen at run time by what the
//! processor has.
//!
//! Method: `tanh(a) = e / (e + 2)` with `e = expm1(2a)` for `a = |x|`,
//! which keeps full relative accuracy near 0; `expm1(y)` by the reduction
//! `y = k ln 2 + r`, `|r| <= ln 2 / 2`, a degree-13 Taylor polynomial for
//! `e^r - 1` (evaluated by Estrin's scheme; the first term left out,
//! `r^14 / 14!`, is below a tenth of a unit in the last place), and
//! `2^k (e^r - 1) + (2^k - 1)`; `|x| > 19.1` gives `+-1`.
//! Accuracy: within a few units in the last place of the C library's
//! `tanh` (tested). The builds for processors with FMA evaluate each
//! `a * b + c` of the polynomial and the reduction as one fused
//! multiply-add, a third fewer operations; the baseline build, where a
//! fused multiply-add would be a library call, rounds the product and the
//! sum apart. The two differ in the last bit or so, as faer's products do
//! between such processors; the AVX-512 and AVX2 builds agree bit for bit.

/// How a kernel evaluates `a * b + c`.
pub trait MulAdd {
    /// `a * b + c` in `f64`.
    fn fma(a: f64, b: f64, c: f64) -> f64;
    /// `a * b + c` in `f32`.
    fn fma32(a: f32, b: f32, c: f32) -> f32;
}

/// One rounding: the builds for processors with FMA.
pub struct Fused;

/// A rounded product, then a rounded sum: the baseline build.
pub struct Separate;

impl MulAdd for Fused {
    #[inline(always)]
    fn fma(a: f64, b: f64, c: f64) -> f64 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    fn fma32(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

impl MulAdd for Separate {
    #[inline(always)]
    fn fma(a: f64, b: f64, c: f64) -> f64 {
        a * b + c
    }
    #[inline(always)]
    fn fma32(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// Defines `$name(src, dst)`: `dst[i] = $scalar(src[i])` over slices of
/// `$t`, compiled three times (AVX-512, AVX2 + FMA with fused
/// multiply-adds, the compiler's baseline without) and dispatched at run
/// time to the widest the processor has.
macro_rules! vectorised_map {
    ($(#[$doc:meta])* $name:ident, $t:ty, $scalar:ident,
     $avx512:ident, $avx2:ident, $portable:ident) => {
        $(#[$doc])*
        pub fn $name(src: &[$t], dst: &mut [$t]) {
            assert_eq!(src.len(), dst.len());
            #[cfg(target_arch = "x86_64")]
            {
                match crate::simd::level() {
                    // SAFETY: the level is what the processor was found
                    // to have, and the kernel needs no more.
                    crate::simd::Level::Avx512 => return unsafe { $avx512(src, dst) },
                    // SAFETY: as above.
                    crate::simd::Level::Avx2 => return unsafe { $avx2(src, dst) },
                    crate::simd::Level::Baseline => {}
                }
            }
            $portable::<Separate>(src, dst);
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,fma")]
        unsafe fn $avx512(src: &[$t], dst: &mut [$t]) {
            $portable::<Fused>(src, dst);
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $avx2(src: &[$t], dst: &mut [$t]) {
            $portable::<Fused>(src, dst);
        }

        #[inline(always)]
        fn $portable<M: MulAdd>(src: &[$t], dst: &mut [$t]) {
            for (d, &x) in dst.iter_mut().zip(src) {
                *d = $scalar::<M>(x);
            }
        }
    };
}

vectorised_map!(
    /// `dst[i] = tanh(src[i])`, vectorised (see the module docs).
    tanh_slice, f64, tanh_with, tanh_slice_avx512, tanh_slice_avx2, tanh_slice_portable
);

vectorised_map!(
    /// `dst[i] = tanh(src[i])` in single precision, vectorised.
    tanh_slice_f32, f32, tanh_f32_with, tanh_slice_f32_avx512, tanh_slice_f32_avx2,
    tanh_slice_f32_portable
);

/// One `tanh`, branch-free (see the module docs), as the baseline build
/// evaluates it.
#[inline(always)]
pub fn tanh(x: f64) -> f64 {
    tanh_with::<Separate>(x)
}

/// One `tanh` with multiply-adds evaluated by `M`.
#[inline(always)]
fn tanh_with<M: MulAdd>(x: f64) -> f64 {
    let a = x.abs();
    let e = expm1_with::<M>(2.0 * if a > 19.1 { 19.1 } else { a });
    let t = e / (e + 2.0);
    if x.is_nan() { x } else { t.copysign(x) }
}

/// The logistic sigmoid `1 / (1 + e^-z)` with multiply-adds evaluated by
/// `M`, branch-free so that it vectorises: with `e = expm1(|z|)` (`|z|`
/// capped at 700, where `e^-z` is below the smallest normal double anyway),
/// `(1 + e) / (2 + e)` for `z >= 0` and `1 / (2 + e)` below, each to a
/// few units in the last place (no cancellation on either side).
#[inline(always)]
pub(crate) fn sigmoid_with<M: MulAdd>(z: f64) -> f64 {
    let a = z.abs();
    let e = expm1_with::<M>(if a > 700.0 { 700.0 } else { a });
    let s = if z >= 0.0 { 1.0 + e } else { 1.0 } / (2.0 + e);
    if z.is_nan() { z } else { s }
}

/// `e^y - 1` for `0 <= y <= 709`: the reduction `y = k ln 2 + r`, `|r| <=
/// ln 2 / 2`, a degree-13 Taylor polynomial for `e^r - 1` by Estrin's
/// scheme, and `2^k (e^r - 1) + (2^k - 1)`.
#[inline(always)]
fn expm1_with<M: MulAdd>(y: f64) -> f64 {
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    // Adding and subtracting 1.5 * 2^52 rounds to the nearest integer.
    const ROUND: f64 = 6_755_399_441_055_744.0;
    const C: [f64; 12] = [
        1.0 / 2.0,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5040.0,
        1.0 / 40_320.0,
        1.0 / 362_880.0,
        1.0 / 3_628_800.0,
        1.0 / 39_916_800.0,
        1.0 / 479_001_600.0,
        1.0 / 6_227_020_800.0,
    ];

    let fma = M::fma;
    let shifted = fma(y, std::f64::consts::LOG2_E, ROUND);
    let k = shifted - ROUND;
    // k * LN2_HI is exact (LN2_HI ends in zero bits), fused or not.
    let r = fma(-k, LN2_LO, fma(-k, LN2_HI, y));
    // Estrin's scheme: the eleventh-degree polynomial in three levels of
    // independent products instead of a chain of eleven.
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let q = |i: usize| fma(C[i + 1], r, C[i]);
    let q4 = |i: usize| fma(q(i + 2), r2, q(i));
    let p = fma(q4(8), r8, fma(q4(4), r4, q4(0)));
    let em1 = fma(r2, p, r);
    // The integer k (0..=1023) sits in the low bits of `shifted`; 2^k from
    // integer arithmetic alone, which vectorises where a float-to-int
    // conversion would not. The shift drops the bits of ROUND.
    let scale = f64::from_bits(shifted.to_bits().wrapping_add(1023) << 52);
    fma(scale, em1, scale - 1.0)
}

/// One single-precision `tanh` by the method of [`tanh`]: the same
/// reduction with `ln 2` split for `f32`, a degree-8 Taylor polynomial for
/// `e^r - 1` (truncation below `2e-8` relative on `|r| <= ln 2 / 2`), and
/// `|x| > 9` giving `+-1` (`tanh 9` rounds to 1 in `f32`).
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    tanh_f32_with::<Separate>(x)
}

/// One single-precision `tanh` with multiply-adds evaluated by `M`.
#[inline(always)]
fn tanh_f32_with<M: MulAdd>(x: f32) -> f32 {
    // ln 2 = LN2_HI + LN2_LO, LN2_HI with nine trailing zero bits so that
    // k * LN2_HI is exact.
    const LN2_HI: f32 = f32::from_bits(0x3f31_7200);
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    const C: [f32; 7] = [
        1.0 / 2.0,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5040.0,
        1.0 / 40_320.0,
    ];

    let fma = M::fma32;
    let a = x.abs();
    let y = 2.0 * if a > 9.0 { 9.0 } else { a };
    let shifted = fma(y, std::f32::consts::LOG2_E, ROUND);
    let k = shifted - ROUND;
    let r = fma(-k, LN2_LO, fma(-k, LN2_HI, y));
    let r2 = r * r;
    let r4 = r2 * r2;
    let q = |i: usize| fma(C[i + 1], r, C[i]);
    let p = fma(fma(C[6], r2, q(4)), r4, fma(q(2), r2, q(0)));
    let em1 = fma(r2, p, r);
    let scale = f32::from_bits(shifted.to_bits().wrapping_add(127) << 23);
    let e = fma(scale, em1, scale - 1.0);
    let t = e / (e + 2.0);
    if x.is_nan() { x } else { t.copysign(x) }
}

/// `a . b` over the common length, with eight running sums so that the
/// compiler vectorises it (a single running sum is a chain of dependent
/// additions).
#[inline(always)]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f64>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tanh_agrees_with_the_c_library_to_a_few_ulp() {
        let xs: Vec<f64> = (-200_000..=200_000)
            .map(|i| i as f64 * 1.1e-4 + 1e-9)
            .collect();
        let (mut fused, mut separate) = (vec![0.0; xs.len()], vec![0.0; xs.len()]);
        tanh_slice_portable::<Fused>(&xs, &mut fused);
        tanh_slice_portable::<Separate>(&xs, &mut separate);
        for ((&x, &f), &s) in xs.iter().zip(&fused).zip(&separate) {
            let libm = x.tanh();
            let ulp = (libm.abs() * f64::EPSILON).max(f64::MIN_POSITIVE);
            assert!(
                (f - libm).abs() <= 3.0 * ulp,
                "{x}: fused {f} against {libm}"
            );
            assert!(
                (s - libm).abs() <= 3.0 * ulp,
                "{x}: separate {s} against {libm}"
            );
        }
    }

    #[test]
    fn single_precision_tanh_is_within_a_few_ulp_of_the_rounded_double() {
        let xs: Vec<f32> = (-100_000..=100_000)
            .map(|i| i as f32 * 1.3e-4 + 1e-7)
            .chain([0.0, -0.0, 1e-30, 8.99, 9.01, 40.0, f32::INFINITY])
            .collect();
        let (mut fused, mut separate) = (vec![0.0; xs.len()], vec![0.0; xs.len()]);
        tanh_slice_f32_portable::<Fused>(&xs, &mut fused);
        tanh_slice_f32_portable::<Separate>(&xs, &mut separate);
        let mut ours = vec![0.0; xs.len()];
        tanh_slice_f32(&xs, &mut ours);
        let want = match crate::simd::level() {
            crate::simd::Level::Baseline => &separate,
            _ => &fused,
        };
        for (i, &x) in xs.iter().enumerate() {
            assert_eq!(
                ours[i].to_bits(),
                want[i].to_bits(),
                "{x}: dispatched kernel"
            );
            let exact = (x as f64).tanh() as f32;
            let ulp = (exact.abs() * f32::EPSILON).max(f32::MIN_POSITIVE);
            for t in [fused[i], separate[i]] {
                assert!((t - exact).abs() <= 3.0 * ulp, "{x}: {t} against {exact}");
            }
        }
        assert!(tanh_f32(f32::NAN).is_nan());
        assert_eq!(tanh_f32(-0.0).to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn the_sigmoid_agrees_with_the_library_formula_to_a_few_ulp() {
        let zs = (-100_000..=100_000)
            .map(|i| i as f64 * 7.3e-3 + 1e-9)
            .chain([0.0, -0.0, 699.0, -699.0, 745.0, -745.0, 1e300, -1e300]);
        for z in zs {
            let want = crate::activation::sigmoid(z);
            let ulp = (want.abs() * f64::EPSILON).max(f64::MIN_POSITIVE);
            for got in [sigmoid_with::<Fused>(z), sigmoid_with::<Separate>(z)] {
                let within = (got - want).abs() <= 4.0 * ulp;
                // Below e^-700 both are denormal or zero.
                assert!(within || want < 1e-300, "{z}: {got} against {want}");
            }
        }
        assert!(sigmoid_with::<Fused>(f64::NAN).is_nan());
    }

    #[test]
    fn tanh_handles_the_extremes() {
        for x in [0.0, -0.0, 1e-300, -1e-300, 19.0, 19.2, 40.0, 1e300, -1e300] {
            assert!((tanh(x) - x.tanh()).abs() <= 2.0 * f64::EPSILON, "{x}");
        }
        assert_eq!(tanh(-0.0).to_bits(), (-0.0f64).to_bits());
        assert!(tanh(f64::NAN).is_nan());
        assert_eq!(tanh(f64::INFINITY), 1.0);
        assert_eq!(tanh(f64::NEG_INFINITY), -1.0);
    }

    #[test]
    fn the_vector_kernels_agree_bit_for_bit_with_the_fused_scalar_kernel() {
        let xs: Vec<f64> = (0..1000).map(|i| (i as f64 - 500.0) * 0.0371).collect();
        let mut portable = vec![0.0; 1000];
        match crate::simd::level() {
            crate::simd::Level::Baseline => {
                tanh_slice_portable::<Separate>(&xs, &mut portable)
            }
            _ => tanh_slice_portable::<Fused>(&xs, &mut portable),
        }
        let same = |v: &[f64]| {
            v.iter()
                .zip(&portable)
                .all(|(x, y)| x.to_bits() == y.to_bits())
        };
        let mut v = vec![0.0; 1000];
        tanh_slice(&xs, &mut v);
        assert!(same(&v), "dispatched kernel");
        #[cfg(target_arch = "x86_64")]
        {
            if crate::simd::level() == crate::simd::Level::Avx512 {
                // SAFETY: detected just above.
                unsafe { tanh_slice_avx512(&xs, &mut v) };
                assert!(same(&v), "AVX-512 kernel");
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: detected just above.
                unsafe { tanh_slice_avx2(&xs, &mut v) };
                assert!(same(&v), "AVX2 kernel");
            }
        }
    }
}
