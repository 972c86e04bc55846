//! Python's and NumPy 2's float arithmetic where it is not the obvious Rust one, so that the
//! classic-control envs compute bit for bit what Gymnasium computes:
//!
//! - NumPy's float32 `np.sin`/`np.cos` are its own FMA polynomial, not the C library's
//!   `sinf`/`cosf` (about one result in ten differs in the last bit);
//! - `x ** 2` on a NumPy or Python float scalar calls the C library's `pow`, which is not always
//!   `x * x` (about one result in a thousand differs);
//! - Python's `%` takes the sign of the divisor;
//! - under NumPy 2's promotion rules (NEP 50) an `np.float32` combined with a Python float
//!   stays float32, combined with an `np.float64` becomes float64: [`Np`] follows them.
//!
//! Float64 `np.sin`/`np.cos` and `math.cos` are the C library's, as are Rust's `f64::sin` and
//! `f64::cos`, so they need nothing here.

use std::hint::black_box;

/// NumPy's float32 `np.sin`: its `simd_sincos_f32` (Cody-Waite reduction and a polynomial,
/// with fused multiply-adds), as built for x86-64 with FMA3 and for AArch64.
pub(crate) fn np_sin_f32(x: f32) -> f32 {
    np_sincos_f32(x, false)
}

/// NumPy's float32 `np.cos`; see [`np_sin_f32`].
pub(crate) fn np_cos_f32(x: f32) -> f32 {
    np_sincos_f32(x, true)
}

/// The constants of `loops_trigonometric.dispatch.cpp` (NumPy 2.4), given there as hex floats.
mod sincos {
    /// `0x1.45f306p-1`, 2/π.
    pub const TWO_OVER_PI: f32 = f32::from_bits(0x3f22_f983);
    /// `-0x1.921fb0p+00`, `-0x1.5110b4p-22`, `-0x1.846988p-48`: -π/2 in three parts.
    pub const PIO2_HIGH: f32 = f32::from_bits(0xbfc9_0fd8);
    pub const PIO2_MED: f32 = f32::from_bits(0xb4a8_885a);
    pub const PIO2_LOW: f32 = f32::from_bits(0xa7c2_34c4);
    /// `0x1.8p+23`: adding and subtracting it rounds to an integer.
    pub const RINT_MAGIC: f32 = 12_582_912.0;
    /// Cosine polynomial, `x^8` down to `x^0`.
    pub const COS: [f32; 5] = [
        f32::from_bits(0x37cc_730b),
        f32::from_bits(0xbab6_036e),
        f32::from_bits(0x3d2a_aa9e),
        -0.5,
        1.0,
    ];
    /// Sine polynomial, `x^9` down to `x^3`.
    pub const SIN: [f32; 4] = [
        f32::from_bits(0x363e_9dde),
        f32::from_bits(0xb950_35dd),
        f32::from_bits(0x3c08_88cd),
        f32::from_bits(0xbe2a_aaab),
    ];
    /// Beyond these magnitudes NumPy calls the C library instead (spelled as NumPy spells
    /// them; the float32 values are what count).
    #[allow(clippy::excessive_precision)]
    pub const MAX_SIN: f32 = 117_435.992;
    #[allow(clippy::excessive_precision)]
    pub const MAX_COS: f32 = 71_476.062_5;
}

fn np_sincos_f32(x: f32, cos: bool) -> f32 {
    use sincos::*;
    if x.is_nan() {
        return f32::NAN;
    }
    let max = if cos { MAX_COS } else { MAX_SIN };
    if x.abs() > max {
        // NumPy's fallback for large (and infinite) arguments: the C library's sinf/cosf.
        return if cos { x.cos() } else { x.sin() };
    }
    let quadrant = (x * TWO_OVER_PI + RINT_MAGIC) - RINT_MAGIC;
    let mut r = quadrant.mul_add(PIO2_HIGH, x);
    r = quadrant.mul_add(PIO2_MED, r);
    r = quadrant.mul_add(PIO2_LOW, r);
    let r2 = r * r;
    let c = COS[1..].iter().fold(COS[0], |acc, &k| acc.mul_add(r2, k));
    let mut s = SIN[1..].iter().fold(SIN[0], |acc, &k| acc.mul_add(r2, k));
    s = s.mul_add(r2, 0.0);
    s = s.mul_add(r, r);
    // `quadrant` holds an integer of magnitude below 2^17 here.
    let q = quadrant as i32 + i32::from(cos);
    let v = if q & 1 == 0 { s } else { c };
    // NumPy negates by subtracting from +0.0 (so a zero result comes out as +0.0).
    if q & 2 == 2 { 0.0 - v } else { v }
}

/// `x ** 2` for a float64 scalar (NumPy's scalar power and Python's `float.__pow__` both call
/// the C library's `pow`). The exponent is hidden from the optimiser, which would otherwise
/// rewrite `pow(x, 2.0)` as `x * x`.
#[inline]
pub(crate) fn pow2(x: f64) -> f64 {
    x.powf(black_box(2.0))
}

/// `x ** 2` for an `np.float32` scalar: the C library's `powf`; see [`pow2`].
#[inline]
pub(crate) fn pow2_f32(x: f32) -> f32 {
    x.powf(black_box(2.0))
}

/// Python's (and NumPy's) float `a % b`: the C `fmod`, moved into the divisor's sign.
pub(crate) fn py_mod(a: f64, b: f64) -> f64 {
    let m = a % b;
    if m != 0.0 {
        if (b < 0.0) != (m < 0.0) { m + b } else { m }
    } else {
        0.0f64.copysign(b)
    }
}

/// A float scalar as NumPy 2 types it (NEP 50): a Python float (or int) is "weak" and takes the
/// other operand's precision; `np.float32` with `np.float64` is float64.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Np {
    /// A Python `float` (or `int`): float64, but weak.
    Py(f64),
    /// An `np.float64`.
    F64(f64),
    /// An `np.float32`.
    F32(f32),
}

impl Np {
    /// The value as a double (Python's `float(x)`, exact).
    #[inline]
    pub(crate) fn to_f64(self) -> f64 {
        match self {
            Np::Py(v) | Np::F64(v) => v,
            Np::F32(v) => f64::from(v),
        }
    }

    /// The value as a float32 (`np.array([x], dtype=np.float32)`, rounded to nearest).
    #[inline]
    pub(crate) fn to_f32(self) -> f32 {
        match self {
            Np::Py(v) | Np::F64(v) => v as f32,
            Np::F32(v) => v,
        }
    }

    /// Applies a binary operator with NEP 50 promotion: float32 when one side is float32 and
    /// the other float32 or weak (the weak one rounded to float32 first), else float64.
    #[inline]
    fn promote(
        self,
        other: Np,
        f64_op: impl Fn(f64, f64) -> f64,
        f32_op: impl Fn(f32, f32) -> f32,
    ) -> Np {
        match (self, other) {
            (Np::F32(a), Np::F32(b)) => Np::F32(f32_op(a, b)),
            (Np::F32(a), Np::Py(b)) => Np::F32(f32_op(a, b as f32)),
            (Np::Py(a), Np::F32(b)) => Np::F32(f32_op(a as f32, b)),
            (Np::Py(a), Np::Py(b)) => Np::Py(f64_op(a, b)),
            (a, b) => Np::F64(f64_op(a.to_f64(), b.to_f64())),
        }
    }

    /// Compares with NEP 50 promotion (an `np.float32` against a Python float compares in
    /// float32: `np.float32(0.07) > 0.07` is false).
    #[inline]
    fn compare(
        self,
        other: Np,
        f64_cmp: fn(&f64, &f64) -> bool,
        f32_cmp: fn(&f32, &f32) -> bool,
    ) -> bool {
        match (self, other) {
            (Np::F32(a), Np::F32(b)) => f32_cmp(&a, &b),
            (Np::F32(a), Np::Py(b)) => f32_cmp(&a, &(b as f32)),
            (Np::Py(a), Np::F32(b)) => f32_cmp(&(a as f32), &b),
            (a, b) => f64_cmp(&a.to_f64(), &b.to_f64()),
        }
    }

    /// `self > other`.
    pub(crate) fn gt(self, other: Np) -> bool {
        self.compare(other, f64::gt, f32::gt)
    }

    /// `self < other`.
    pub(crate) fn lt(self, other: Np) -> bool {
        self.compare(other, f64::lt, f32::lt)
    }

    /// `self >= other`.
    pub(crate) fn ge(self, other: Np) -> bool {
        self.compare(other, f64::ge, f32::ge)
    }

    /// `self == other`.
    pub(crate) fn equals(self, other: Np) -> bool {
        self.compare(other, f64::eq, f32::eq)
    }

    /// Python's `max(self, other)`: the first argument unless the second is greater.
    pub(crate) fn py_max(self, other: Np) -> Np {
        if other.gt(self) { other } else { self }
    }

    /// Python's `min(self, other)`: the first argument unless the second is less.
    pub(crate) fn py_min(self, other: Np) -> Np {
        if other.lt(self) { other } else { self }
    }
}

impl std::ops::Add for Np {
    type Output = Np;
    #[inline]
    fn add(self, o: Np) -> Np {
        self.promote(o, |a, b| a + b, |a, b| a + b)
    }
}

impl std::ops::Sub for Np {
    type Output = Np;
    #[inline]
    fn sub(self, o: Np) -> Np {
        self.promote(o, |a, b| a - b, |a, b| a - b)
    }
}

impl std::ops::Mul for Np {
    type Output = Np;
    #[inline]
    fn mul(self, o: Np) -> Np {
        self.promote(o, |a, b| a * b, |a, b| a * b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_modulo_takes_the_divisor_sign() {
        // Python: -7.5 % 6.283185307179586, 7.5 % -2.0, -0.0 % 2.0, 4.0 % 2.0
        assert_eq!(py_mod(-7.5, std::f64::consts::TAU), 5.066_370_614_359_172_5);
        assert_eq!(py_mod(7.5, -2.0), -0.5);
        assert!(py_mod(-0.0, 2.0).is_sign_positive());
        assert!(py_mod(4.0, -2.0).is_sign_negative());
    }

    #[test]
    fn nep50_keeps_float32_against_python_floats() {
        let x = Np::F32(0.3);
        // np.float32(0.3) * 0.0015 is float32(0.0015) * float32(0.3) in float32.
        assert_eq!(x * Np::Py(0.0015), Np::F32(0.3f32 * 0.0015f32));
        assert_eq!(x + Np::F64(1.0), Np::F64(f64::from(0.3f32) + 1.0));
        assert!(!Np::F32(0.07).gt(Np::Py(0.07)));
        assert!(Np::F64(f64::from(0.07f32)).gt(Np::Py(0.07)));
        assert!(Np::F32(-1.2).equals(Np::Py(-1.2)));
        assert_eq!(Np::F32(3.0).py_min(Np::Py(1.0)), Np::Py(1.0));
        assert_eq!(Np::F32(-1.0).py_max(Np::Py(-1.0)), Np::F32(-1.0));
    }

    /// Tables recorded from NumPy by `tests/data/gen_classic_reference.py`.
    #[derive(serde::Deserialize)]
    struct NumpyMath {
        float32_cos_sin: Vec<[f64; 3]>,
        float64_pow2: Vec<[f64; 2]>,
        float32_pow2: Vec<[f64; 2]>,
    }

    fn numpy_math() -> NumpyMath {
        serde_json::from_str(include_str!("../tests/data/numpy_math_reference.json"))
            .expect("the NumPy table parses")
    }

    #[test]
    fn float32_sin_and_cos_are_numpys_bit_for_bit() {
        let t = numpy_math().float32_cos_sin;
        let mut differs_from_libm = 0;
        for &[x, cos, sin] in &t {
            let x = x as f32;
            assert_eq!(
                np_cos_f32(x).to_bits(),
                (cos as f32).to_bits(),
                "np.cos({x:e})"
            );
            assert_eq!(
                np_sin_f32(x).to_bits(),
                (sin as f32).to_bits(),
                "np.sin({x:e})"
            );
            differs_from_libm += usize::from(x.cos() != cos as f32 || x.sin() != sin as f32);
        }
        // The table is worth keeping only while NumPy's results are not the C library's.
        assert!(differs_from_libm > 50, "{differs_from_libm} of {}", t.len());
    }

    #[test]
    fn squares_are_the_c_librarys_pow_not_a_product() {
        let t = numpy_math();
        for &[x, sq] in &t.float64_pow2 {
            assert_ne!(x * x, sq, "the table lists only values where pow differs");
            assert_eq!(pow2(x).to_bits(), sq.to_bits(), "np.float64({x}) ** 2");
        }
        for &[x, sq] in &t.float32_pow2 {
            let x = x as f32;
            assert_eq!(
                pow2_f32(x).to_bits(),
                (sq as f32).to_bits(),
                "np.float32({x}) ** 2"
            );
        }
    }
}
