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

/// Products with at most this many rows of `C` (an env runner's few envs, a head's weight
/// gradient) skip SGEMM, whose packing of `B` costs more than the arithmetic there.
const SMALL_M: usize = 8;
/// Likewise products with at most this many columns of `C` (an output layer's forward
/// pass, an input layer's weight gradient).
const SMALL_N: usize = 4;

/// `C = A·B + beta·C` for row-major matrices, where `A` is `m×k` (stored transposed as `k×m`
/// when `a_t`) and `B` is `k×n` (stored transposed as `n×k` when `b_t`). With `beta == 0`
/// the old contents of `C` are ignored.
///
/// Small shapes (see [`SMALL_M`], [`SMALL_N`]) run on this module's own
/// kernels, which read the operands where they lie; the rest on `matrixmultiply`'s SGEMM,
/// whose packed kernels win from a few dozen rows on. Measured per shape with
/// `cargo bench -p algorithms --bench gemm_shapes`.
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
    // A's strides (row, column) when it is read in place.
    let sa = if a_t { (1, m) } else { (k, 1) };
    match (a_t, b_t) {
        (_, false) if m <= SMALL_M => gemm_tiled(m, k, n, a, sa, b, beta, c, false),
        // Cᵀ = Bᵀ·A: A (stored k×m) is read row-major, B through strides.
        (true, false) if n <= SMALL_N => gemm_tiled(n, k, m, b, (1, n), a, beta, c, true),
        (false, true) if n <= SMALL_N => gemm_dot(m, k, n, a, b, beta, c),
        _ => sgemm(m, k, n, a, a_t, b, b_t, beta, c),
    }
}

/// [`gemm`] on `matrixmultiply`'s SGEMM whatever the shape (what `gemm` does for shapes
/// that are not small; `cargo bench -p algorithms --bench gemm_shapes` compares the two).
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
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
        "sgemm: buffers too small"
    );
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

/// Rows and columns of the register tile of [`gemm_tiled`]: `MR × NR` sums stay in registers
/// (eight 8-lane registers with AVX2) while the inner dimension runs.
const MR: usize = 4;
const NR: usize = 16;

simd_dispatch! {
    /// `C = A·B + beta·C` for `B` stored row-major (`k×n`) and `A` read through strides
    /// `sa` (`A[i][p]` at `i·sa.0 + p·sa.1`), packing nothing: each `MR × NR` tile of `C` is
    /// summed in registers over `p` in order, one fused multiply-add per term. With `c_t`,
    /// `C` is stored transposed (`n×m`).
    #[allow(clippy::too_many_arguments)]
    fn gemm_tiled(
        m: usize,
        k: usize,
        n: usize,
        a: &[f32],
        sa: (usize, usize),
        b: &[f32],
        beta: f32,
        c: &mut [f32],
        c_t: bool,
    ) {
        if c_t {
            tiles::<true>(m, k, n, a, sa, b, beta, c);
        } else {
            tiles::<false>(m, k, n, a, sa, b, beta, c);
        }
    }
}

/// [`gemm_tiled`] for `C` stored transposed (`T`) or not.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tiles<const T: bool>(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    sa: (usize, usize),
    b: &[f32],
    beta: f32,
    c: &mut [f32],
) {
    let mut i = 0;
    while i + MR <= m {
        row_tiles::<MR, T>(i, m, k, n, a, sa, b, beta, c);
        i += MR;
    }
    match m - i {
        1 => row_tiles::<1, T>(i, m, k, n, a, sa, b, beta, c),
        2 => row_tiles::<2, T>(i, m, k, n, a, sa, b, beta, c),
        3 => row_tiles::<3, T>(i, m, k, n, a, sa, b, beta, c),
        _ => {}
    }
}

/// Rows `i0..i0 + R` of [`gemm_tiled`]'s `C` (`m×n`): full `R × NR` tiles, then the last
/// columns.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn row_tiles<const R: usize, const T: bool>(
    i0: usize,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    sa: (usize, usize),
    b: &[f32],
    beta: f32,
    c: &mut [f32],
) {
    let mut j0 = 0;
    while j0 + NR <= n {
        let mut acc = [[0f32; NR]; R];
        for p in 0..k {
            let brow: &[f32; NR] = b[p * n + j0..][..NR].try_into().expect("NR values");
            for (r, acc) in acc.iter_mut().enumerate() {
                let av = a[(i0 + r) * sa.0 + p * sa.1];
                acc.iter_mut()
                    .zip(brow)
                    .for_each(|(s, bv)| *s = av.mul_add(*bv, *s));
            }
        }
        store_tile::<R, T>(&acc, i0, j0, m, n, beta, c);
        j0 += NR;
    }
    if j0 < n {
        let w = n - j0;
        let mut acc = [[0f32; NR]; R];
        for p in 0..k {
            let brow = &b[p * n + j0..][..w];
            for (r, acc) in acc.iter_mut().enumerate() {
                let av = a[(i0 + r) * sa.0 + p * sa.1];
                acc.iter_mut()
                    .zip(brow)
                    .for_each(|(s, bv)| *s = av.mul_add(*bv, *s));
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (j, s) in acc[..w].iter().enumerate() {
                let at = if T {
                    (j0 + j) * m + i0 + r
                } else {
                    (i0 + r) * n + j0 + j
                };
                c[at] = combine(*s, c[at], beta);
            }
        }
    }
}

/// Writes a full tile of sums at rows `i0..`, columns `j0..` of `C` (`m×n`, stored
/// transposed when `T`).
#[inline(always)]
fn store_tile<const R: usize, const T: bool>(
    acc: &[[f32; NR]; R],
    i0: usize,
    j0: usize,
    m: usize,
    n: usize,
    beta: f32,
    c: &mut [f32],
) {
    for (r, acc) in acc.iter().enumerate() {
        if T {
            for (j, s) in acc.iter().enumerate() {
                let at = (j0 + j) * m + i0 + r;
                c[at] = combine(*s, c[at], beta);
            }
        } else {
            let row = &mut c[(i0 + r) * n + j0..][..NR];
            row.iter_mut()
                .zip(acc)
                .for_each(|(c, s)| *c = combine(*s, *c, beta));
        }
    }
}

/// `sum + beta·old`, where `beta == 0` ignores `old` (which may be anything, NaN included).
#[inline(always)]
fn combine(sum: f32, old: f32, beta: f32) -> f32 {
    if beta == 0.0 {
        sum
    } else {
        beta.mul_add(old, sum)
    }
}

simd_dispatch! {
    /// `C = A·Bᵀ + beta·C` (`B` stored `n×k`) as dot products of rows, four columns at a
    /// time, for a small `n` (an output layer's forward pass).
    fn gemm_dot(m: usize, k: usize, n: usize, a: &[f32], bt: &[f32], beta: f32, c: &mut [f32]) {
        for (x, row) in a.chunks_exact(k).zip(c.chunks_exact_mut(n)).take(m) {
            let mut j = 0;
            while j + 4 <= n {
                dots::<4>(x, &bt[j * k..], &mut row[j..j + 4], beta);
                j += 4;
            }
            match n - j {
                1 => dots::<1>(x, &bt[j * k..], &mut row[j..], beta),
                2 => dots::<2>(x, &bt[j * k..], &mut row[j..], beta),
                3 => dots::<3>(x, &bt[j * k..], &mut row[j..], beta),
                _ => {}
            }
        }
    }
}

/// `c[j] = x · y_j + beta·c[j]` for the `J` rows `y_j` of `ys` (each `x.len()` long), each
/// over eight lanes of fused multiply-adds whose lanes are summed in a fixed order.
#[inline(always)]
fn dots<const J: usize>(x: &[f32], ys: &[f32], c: &mut [f32], beta: f32) {
    let k = x.len();
    let mut acc = [[0f32; 8]; J];
    let full = k - k % 8;
    for p in (0..full).step_by(8) {
        let xs: &[f32; 8] = x[p..p + 8].try_into().expect("8 values");
        for (j, acc) in acc.iter_mut().enumerate() {
            let y: &[f32; 8] = ys[j * k + p..][..8].try_into().expect("8 values");
            for ((s, a), b) in acc.iter_mut().zip(xs).zip(y) {
                *s = a.mul_add(*b, *s);
            }
        }
    }
    for (j, (acc, c)) in acc.iter().zip(c.iter_mut()).enumerate() {
        let tail = x[full..]
            .iter()
            .zip(&ys[j * k + full..(j + 1) * k])
            .fold(0f32, |t, (a, b)| a.mul_add(*b, t));
        let sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        *c = combine(sum + tail, *c, beta);
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

/// Whether a layer of `output` units runs faster in [`linear_forward_t`] from its weight
/// transposed than in [`linear_forward`] (true unless it is a narrow output layer, which
/// takes dot products).
pub(crate) fn wants_transposed(output: usize) -> bool {
    output > SMALL_N
}

/// [`linear_forward`] with the weight stored transposed (`wt` is input×output), which needs
/// no packing: what acting on a few envs at a time wants.
pub(crate) fn linear_forward_t(
    x: &[f32],
    rows: usize,
    wt: &[f32],
    b: &[f32],
    act: Activation,
    out: &mut [f32],
) {
    let output = b.len();
    let input = wt.len() / output.max(1);
    let out = &mut out[..rows * output];
    gemm(rows, input, output, x, false, wt, false, 0.0, out);
    bias_activation(out, b, act);
}

/// Writes the transpose of the `rows×cols` matrix `src` into `dst` (`cols×rows`).
///
/// An env runner does this for its hidden layers on every weight sync, which for DQN and SAC
/// comes after every training step (a few env steps and their gradient steps). Element by element, each write lands a row of `dst`
/// past the last (1 KB for a 256×256 weight); here 8×8 tiles go through AVX2 registers,
/// eight columns of `src` at a time, so that the writes run along eight rows of `dst`
/// (`cargo bench -p algorithms --bench gemm_shapes` times both). Either way the values are
/// only moved, so the result is the same.
pub fn transpose_into(rows: usize, cols: usize, src: &[f32], dst: &mut Vec<f32>) {
    assert!(src.len() >= rows * cols, "transpose: source too small");
    dst.resize(rows * cols, 0.0);
    // The rows and columns that whole 8×8 tiles covered.
    #[cfg(target_arch = "x86_64")]
    let (rt, ct) = if std::arch::is_x86_feature_detected!("avx2") {
        transpose_tiles_avx2(rows, cols, src, dst);
        (rows / 8 * 8, cols / 8 * 8)
    } else {
        (0, 0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (rt, ct) = (0, 0);
    // What the tiles left: the last `cols % 8` columns of their rows, then the last rows.
    for i in 0..rows {
        let from = if i < rt { ct } else { 0 };
        for j in from..cols {
            dst[j * rows + i] = src[i * cols + j];
        }
    }
}

/// [`transpose_into`]'s whole 8×8 tiles: rows `0..rows / 8 * 8`, columns `0..cols / 8 * 8`.
#[cfg(target_arch = "x86_64")]
fn transpose_tiles_avx2(rows: usize, cols: usize, src: &[f32], dst: &mut [f32]) {
    #[target_feature(enable = "avx2")]
    // SAFETY (of the body): every load reads 8 floats at `(ib + r) * cols + jb` with
    // `ib + r < rows / 8 * 8 <= rows` and `jb + 8 <= cols / 8 * 8 <= cols`, so inside
    // `src[..rows * cols]`; every store writes 8 floats at `(jb + c) * rows + ib` with
    // `jb + c < cols` and `ib + 8 <= rows`, so inside `dst[..rows * cols]`. The caller checks
    // both lengths. Unaligned loads and stores are used throughout.
    #[allow(unsafe_code)]
    unsafe fn tiles(rows: usize, cols: usize, src: &[f32], dst: &mut [f32]) {
        use std::arch::x86_64::*;
        let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr());
        for jb in (0..cols / 8 * 8).step_by(8) {
            for ib in (0..rows / 8 * 8).step_by(8) {
                // SAFETY: see the function's comment.
                unsafe {
                    // Macros rather than closures, which would not inherit AVX2.
                    macro_rules! r {
                        ($k:expr) => {
                            _mm256_loadu_ps(sp.add((ib + $k) * cols + jb))
                        };
                    }
                    macro_rules! w {
                        ($c:expr, $v:expr) => {
                            _mm256_storeu_ps(dp.add((jb + $c) * rows + ib), $v)
                        };
                    }
                    let (r0, r1, r2, r3) = (r!(0), r!(1), r!(2), r!(3));
                    let (r4, r5, r6, r7) = (r!(4), r!(5), r!(6), r!(7));
                    // Pairs of rows interleaved, then quadruples, then the 128-bit halves.
                    let (t0, t1) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
                    let (t2, t3) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
                    let (t4, t5) = (_mm256_unpacklo_ps(r4, r5), _mm256_unpackhi_ps(r4, r5));
                    let (t6, t7) = (_mm256_unpacklo_ps(r6, r7), _mm256_unpackhi_ps(r6, r7));
                    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                    w!(0, _mm256_permute2f128_ps::<0x20>(u0, u4));
                    w!(1, _mm256_permute2f128_ps::<0x20>(u1, u5));
                    w!(2, _mm256_permute2f128_ps::<0x20>(u2, u6));
                    w!(3, _mm256_permute2f128_ps::<0x20>(u3, u7));
                    w!(4, _mm256_permute2f128_ps::<0x31>(u0, u4));
                    w!(5, _mm256_permute2f128_ps::<0x31>(u1, u5));
                    w!(6, _mm256_permute2f128_ps::<0x31>(u2, u6));
                    w!(7, _mm256_permute2f128_ps::<0x31>(u3, u7));
                }
            }
        }
    }
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols);
    // SAFETY: the caller detected AVX2; the bounds are checked just above.
    #[allow(unsafe_code)]
    unsafe {
        tiles(rows, cols, src, dst)
    }
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
            (6, 33, 40),
            (3, 17, 5),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| next()).collect();
            let b: Vec<f32> = (0..k * n).map(|_| next()).collect();
            let mut at = Vec::new();
            let mut bt = Vec::new();
            transpose_into(m, k, &a, &mut at);
            transpose_into(k, n, &b, &mut bt);
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

    /// The tiled transpose against the definition, on shapes with and without whole tiles.
    #[test]
    fn transpose_matches_the_definition() {
        for (rows, cols) in [
            (256, 256),
            (64, 64),
            (8, 8),
            (17, 40),
            (40, 17),
            (3, 5),
            (1, 9),
            (0, 4),
        ] {
            let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let mut dst = vec![f32::NAN; 3];
            transpose_into(rows, cols, &src, &mut dst);
            assert_eq!(dst.len(), rows * cols);
            for i in 0..rows {
                for j in 0..cols {
                    assert_eq!(
                        dst[j * rows + i],
                        src[i * cols + j],
                        "{rows}x{cols} at {i},{j}"
                    );
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
