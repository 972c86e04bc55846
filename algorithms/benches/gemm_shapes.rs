//! The learner's and the env runners' matrix products, shape by shape: `matrixmultiply`'s
//! SGEMM alone (`linalg::sgemm`) beside `linalg::gemm`, which sends small shapes to this crate's own
//! kernels (see its doc). The shapes are those of a 64×64 net acting on 4 envs (m = 4) and
//! learning on 64-row blocks, and of a [256, 256] net's 64-row blocks. Prints medians of 7
//! timings of repeated calls. Then the transpose an env runner makes of its hidden layers'
//! weights on every weight sync, element by element beside `linalg::transpose_into`.
//!
//!     cargo bench -p algorithms --bench gemm_shapes

use std::time::Instant;

use algorithms::nn::linalg::{gemm, sgemm, transpose_into};

/// Median microseconds per call of `f`.
fn time_us(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / reps as f64
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[3]
}

fn main() {
    // (m, k, n, A stored transposed, B stored transposed, what it is)
    let shapes = [
        (
            4,
            4,
            64,
            false,
            false,
            "act, 4 envs: input layer (transposed weight)",
        ),
        (
            4,
            64,
            64,
            false,
            false,
            "act, 4 envs: hidden layer (transposed weight)",
        ),
        (4, 64, 2, false, true, "act, 4 envs: output layer"),
        (
            64,
            4,
            64,
            false,
            true,
            "learn, 64 rows: input layer forward",
        ),
        (
            64,
            64,
            64,
            false,
            true,
            "learn, 64 rows: hidden layer forward",
        ),
        (
            64,
            64,
            2,
            false,
            true,
            "learn, 64 rows: output layer forward",
        ),
        (
            2,
            64,
            64,
            true,
            false,
            "learn: output layer weight gradient",
        ),
        (
            64,
            64,
            64,
            true,
            false,
            "learn: hidden layer weight gradient",
        ),
        (64, 64, 4, true, false, "learn: input layer weight gradient"),
        (
            64,
            2,
            64,
            false,
            false,
            "learn: output layer input gradient",
        ),
        (
            64,
            64,
            64,
            false,
            false,
            "learn: hidden layer input gradient",
        ),
        (
            64,
            256,
            256,
            false,
            true,
            "learn [256, 256]: hidden layer forward",
        ),
        (
            64,
            256,
            256,
            false,
            false,
            "learn [256, 256]: hidden layer input gradient",
        ),
        (
            256,
            64,
            256,
            true,
            false,
            "learn [256, 256]: hidden weight gradient",
        ),
        (
            64,
            256,
            2,
            false,
            true,
            "learn [256, 256]: output layer forward",
        ),
    ];
    println!(
        "| m×k×n | Aᵀ | Bᵀ | what | SGEMM µs | gemm µs | speed-up |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    for (m, k, n, a_t, b_t, what) in shapes {
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.1)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.1)
            .collect();
        let (mut c1, mut c2) = (vec![0f32; m * n], vec![0f32; m * n]);
        let reps = (4_000_000 / (m * k * n)).max(20);
        let t1 = time_us(reps, || {
            sgemm(m, k, n, &a, a_t, &b, b_t, 0.0, &mut c1);
            std::hint::black_box(&c1);
        });
        let t2 = time_us(reps, || {
            gemm(m, k, n, &a, a_t, &b, b_t, 0.0, &mut c2);
            std::hint::black_box(&c2);
        });
        let worst = c1
            .iter()
            .zip(&c2)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-3, "{m}x{k}x{n}: results differ by {worst}");
        println!(
            "| {m}×{k}×{n} | {a_t} | {b_t} | {what} | {t1:.3} | {t2:.3} | {:.2}× |",
            t1 / t2
        );
    }

    // An env runner transposes its hidden layers' weights on every weight sync.
    println!(
        "\n| weight | what | element by element µs | transpose_into µs | speed-up |\n| --- | --- | --- | --- | --- |"
    );
    for (rows, cols, what) in [
        (64, 64, "64×64 hidden layer"),
        (256, 256, "[256, 256] hidden layer"),
        (256, 4, "input layer, 4 observations"),
    ] {
        let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
        let (mut d1, mut d2) = (vec![0f32; rows * cols], Vec::new());
        let reps = (2_000_000 / (rows * cols)).max(20);
        let t1 = time_us(reps, || {
            for (i, row) in src.chunks_exact(cols).enumerate() {
                for (j, v) in row.iter().enumerate() {
                    d1[j * rows + i] = *v;
                }
            }
            std::hint::black_box(&d1);
        });
        let t2 = time_us(reps, || {
            transpose_into(rows, cols, &src, &mut d2);
            std::hint::black_box(&d2);
        });
        assert_eq!(d1, d2, "{rows}x{cols}: the transposes differ");
        println!(
            "| {rows}×{cols} | {what} | {t1:.3} | {t2:.3} | {:.2}× |",
            t1 / t2
        );
    }
}
