//! Small dense-algebra kernels shared by the inference path and the fused learner.
//!
//! Matrix products go to `matrixmultiply`, which picks AVX2/FMA kernels at run time. The
//! element-wise loops here (bias + activation, its derivative, column sums) are plain Rust
//! compiled twice by [`simd_dispatch!`]: for the baseline target and for AVX2 + FMA, chosen at
//! run time. Both builds do the same operations in the same order (LLVM does not fuse a
//! multiply and an add without being asked), so they give identical bits; the AVX2 build just
//! does eight lanes at a time.

use crate::config::Activation;

/// Defines a function whose body is compiled for the baseline target and again with AVX2 and
/// FMA enabled; the second runs when the CPU has them.
macro_rules! simd_dispatch {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $t:ty),* $(,)?) $body:block) => {
        $crate::nn::linalg::simd_dispatch! {
            $(#[$m])* $vis fn $name($($arg: $t),*) -> () $body
        }
    };
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $t:ty),* $(,)?) -> $ret:ty $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $t),*) -> $ret {
            #[inline(always)]
            fn generic($($arg: $t),*) -> $ret $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $t),*) -> $ret {
                    generic($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: `avx2` only needs the CPU features that were just detected.
                    #[allow(unsafe_code)]
                    unsafe {
                        return avx2($($arg),*);
                    }
                }
            }
            generic($($arg),*)
        }
    };
}
pub(crate) use simd_dispatch;

/// Products whose inner dimension is at most this (a head's input gradient: `k` = actions or
/// 1) skip SGEMM, whose packing costs more than the arithmetic there.
const SMALL_K: usize = 2;
/// Likewise products `Aᵀ·B` with at most this many rows (a head's weight gradient). Measured
/// with 128-row blocks of a 64×64 net; other small shapes (a 4-wide input layer, a head's
/// forward pass) were no faster in plain loops than in SGEMM, so they stay there.
const SMALL_M: usize = 8;

/// `C = A·B + beta·C` for row-major matrices, where `A` is `m×k` (stored transposed as `k×m`
/// when `a_t`) and `B` is `k×n` (stored transposed as `n×k` when `b_t`). With `beta == 0`
/// the old contents of `C` are ignored.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    beta: f32,
    c: &mut [f32],
) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "gemm: buffers too small"
    );
    if m == 0 || n == 0 {
        return;
    }
    let c = &mut c[..m * n];
    match (a_t, b_t) {
        (false, false) if k <= SMALL_K => return gemm_small_k(m, k, n, a, b, beta, c),
        (true, false) if m <= SMALL_M => return gemm_t_small_m(m, k, n, a, b, beta, c),
        _ => {}
    }
    let (rsa, csa) = if a_t {
        (1, m as isize)
    } else {
        (k as isize, 1)
    };
    let (rsb, csb) = if b_t {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    // SAFETY: the assert above keeps every element that the strides address inside the
    // slices: A spans m×k, B spans k×n and C spans m×n elements in either layout.
    #[allow(unsafe_code)]
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// `c = beta·c`, where `beta == 0` clears `c` whatever it held.
#[inline(always)]
fn scale(c: &mut [f32], beta: f32) {
    if beta == 0.0 {
        c.fill(0.0);
    } else if beta != 1.0 {
        c.iter_mut().for_each(|v| *v *= beta);
    }
}

/// `y += s·x`.
#[inline(always)]
fn axpy(y: &mut [f32], s: f32, x: &[f32]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += s * x);
}

simd_dispatch! {
    /// `C = A·B + beta·C` for a small `k` (a head's input gradient).
    fn gemm_small_k(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
        for (i, row) in c.chunks_exact_mut(n).take(m).enumerate() {
            scale(row, beta);
            for p in 0..k {
                axpy(row, a[i * k + p], &b[p * n..][..n]);
            }
        }
    }
}

simd_dispatch! {
    /// `C = Aᵀ·B + beta·C` (`A` stored `k×m`) for a small `m` (a head's weight gradient).
    fn gemm_t_small_m(m: usize, k: usize, n: usize, at: &[f32], b: &[f32], beta: f32, c: &mut [f32]) {
        scale(c, beta);
        for r in 0..k {
            let x = &b[r * n..][..n];
            for (o, row) in c.chunks_exact_mut(n).take(m).enumerate() {
                axpy(row, at[r * m + o], x);
            }
        }
    }
}

/// tanh, as a rational minimax approximation on [-7.9, 7.9] (the form Eigen uses for
/// `float`), accurate to a few units in the last place and vectorisable, unlike libm's
/// `tanhf`. Beyond ±7.9 tanh is ±1 in `f32`.
#[inline]
pub fn fast_tanh(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const A1: f32 = 4.893_524_5e-3;
    const A3: f32 = 6.372_619_3e-4;
    const A5: f32 = 1.485_722_4e-5;
    const A7: f32 = 5.122_297e-8;
    const A9: f32 = -8.604_672e-11;
    const A11: f32 = 2.000_188e-13;
    const A13: f32 = -2.760_768_5e-16;
    const B0: f32 = 4.893_525e-3;
    const B2: f32 = 2.268_434_6e-3;
    const B4: f32 = 1.185_347_1e-4;
    const B6: f32 = 1.198_258_4e-6;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let p = ((((((A13 * x2 + A11) * x2 + A9) * x2 + A7) * x2 + A5) * x2 + A3) * x2 + A1) * x;
    let q = ((B6 * x2 + B4) * x2 + B2) * x2 + B0;
    p / q
}

/// `out = act(x·Wᵀ + b)` for `rows` rows: `x` is rows×input and `w` is output×input (torch's
/// `nn.Linear` layout), `b` has `output` values.
pub(crate) fn linear_forward(
    x: &[f32],
    rows: usize,
    w: &[f32],
    b: &[f32],
    act: Activation,
    out: &mut [f32],
) {
    let output = b.len();
    let input = w.len() / output.max(1);
    let out = &mut out[..rows * output];
    gemm(rows, input, output, x, false, w, true, 0.0, out);
    bias_activation(out, b, act);
}

simd_dispatch! {
    /// Adds `bias` to every row of `z` (rows of `bias.len()` values) and applies `act`.
    pub(crate) fn bias_activation(z: &mut [f32], bias: &[f32], act: Activation) {
        let rows = z.chunks_exact_mut(bias.len());
        match act {
            Activation::Tanh => rows.for_each(|r| {
                r.iter_mut().zip(bias).for_each(|(v, b)| *v = fast_tanh(*v + b));
            }),
            Activation::Relu => rows.for_each(|r| {
                r.iter_mut().zip(bias).for_each(|(v, b)| *v = (*v + b).max(0.0));
            }),
            Activation::Linear => rows.for_each(|r| {
                r.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
            }),
        }
    }
}

simd_dispatch! {
    /// Multiplies `d` (gradient w.r.t. a layer's output) by the derivative of `act`, given the
    /// layer's output `h`.
    pub(crate) fn activation_backward(act: Activation, h: &[f32], d: &mut [f32]) {
        match act {
            Activation::Tanh => d.iter_mut().zip(h).for_each(|(g, y)| *g *= 1.0 - y * y),
            Activation::Relu => d.iter_mut().zip(h).for_each(|(g, y)| {
                if *y <= 0.0 {
                    *g = 0.0;
                }
            }),
            Activation::Linear => {}
        }
    }
}

simd_dispatch! {
    /// Adds the column sums of `m` (rows of `acc.len()` values) to `acc`, row by row.
    pub(crate) fn add_column_sums(m: &[f32], acc: &mut [f32]) {
        for row in m.chunks_exact(acc.len()) {
            acc.iter_mut().zip(row).for_each(|(a, v)| *a += v);
        }
    }
}

simd_dispatch! {
    /// `acc += x`, element by element.
    pub(crate) fn add_assign(acc: &mut [f32], x: &[f32]) {
        acc.iter_mut().zip(x).for_each(|(a, v)| *a += v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes the transpose of the `rows×cols` matrix `src` into `dst` (`cols×rows`).
    fn transpose(rows: usize, cols: usize, src: &[f32], dst: &mut Vec<f32>) {
        dst.resize(rows * cols, 0.0);
        for (i, row) in src.chunks_exact(cols).take(rows).enumerate() {
            for (j, v) in row.iter().enumerate() {
                dst[j * rows + i] = *v;
            }
        }
    }

    #[test]
    fn fast_tanh_matches_libm() {
        let mut worst = 0f32;
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4;
            worst = worst.max((fast_tanh(x) - (x as f64).tanh() as f32).abs());
        }
        assert!(worst < 5e-7, "max abs error {worst}");
        assert_eq!(fast_tanh(100.0), 1.0f32.min(fast_tanh(100.0)));
        assert!(fast_tanh(100.0) > 0.999_999);
        assert!(fast_tanh(0.0) == 0.0);
    }

    /// The small-dimension loops against a plain triple loop, on every shape that picks them.
    #[test]
    fn small_gemm_paths_match_the_definition() {
        let mut seed = 1u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for (m, k, n) in [
            (37, 4, 64),
            (37, 64, 2),
            (2, 37, 64),
            (64, 37, 4),
            (13, 1, 9),
            (9, 3, 3),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| next()).collect();
            let b: Vec<f32> = (0..k * n).map(|_| next()).collect();
            let mut at = Vec::new();
            let mut bt = Vec::new();
            transpose(m, k, &a, &mut at);
            transpose(k, n, &b, &mut bt);
            let c0: Vec<f32> = (0..m * n).map(|_| next()).collect();
            for beta in [0.0f32, 1.0, 0.5] {
                let want: Vec<f32> = (0..m * n)
                    .map(|ij| {
                        let (i, j) = (ij / n, ij % n);
                        let s: f64 = (0..k)
                            .map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j]))
                            .sum();
                        (s + f64::from(beta) * f64::from(c0[ij])) as f32
                    })
                    .collect();
                for (aa, a_t) in [(&a, false), (&at, true)] {
                    for (bb, b_t) in [(&b, false), (&bt, true)] {
                        let mut c = c0.clone();
                        if beta == 0.0 {
                            c.fill(f32::NAN);
                        }
                        gemm(m, k, n, aa, a_t, bb, b_t, beta, &mut c);
                        for (x, y) in c.iter().zip(&want) {
                            assert!(
                                (x - y).abs() < 1e-5,
                                "{m}x{k}x{n} a_t {a_t} b_t {b_t} beta {beta}: {x} vs {y}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn gemm_handles_every_transpose() {
        // A = [[1,2,3],[4,5,6]] (2×3), B = [[1,0],[0,1],[1,1]] (3×2): AB = [[4,5],[10,11]].
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let at = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0];
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let bt = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0];
        for (aa, a_t) in [(&a, false), (&at, true)] {
            for (bb, b_t) in [(&b, false), (&bt, true)] {
                let mut c = [1.0f32; 4];
                gemm(2, 3, 2, aa, a_t, bb, b_t, 0.0, &mut c);
                assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
                gemm(2, 3, 2, aa, a_t, bb, b_t, 1.0, &mut c);
                assert_eq!(c, [8.0, 10.0, 20.0, 22.0]);
            }
        }
    }
}
