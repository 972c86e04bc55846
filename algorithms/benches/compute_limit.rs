//! The compute limit of a PPO update: its floating-point operations at the machine's measured
//! SGEMM rate on every core, beside the fused learner's measured time for the same update.
//!
//!     cargo bench -p algorithms --bench compute_limit [-- rows epochs minibatch hidden]
//!
//! Defaults are RLlib's PPO defaults on CartPole-v1 (`train_batch_size` 4000, 30 epochs of
//! 128-row minibatches, separate [256, 256] tanh policy and value networks). The SGEMM rate is
//! measured with the learner's own shapes (minibatch × width × width products, the three
//! orientations forward and backward use), one independent product per thread on every
//! core, so it is the most this machine's SGEMM gives those shapes. Prints medians.

use std::time::Instant;

use algorithms::ppo::{ActionSpec, PpoModuleSpec};
use algorithms::{Activation, AlgorithmConfig, Fragment, ModelConfig, PpoLearner, SampleBatch};
use envs::NpRandom;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `c = a · b` (m×k times k×n), `a` and `b` stored transposed when `t.0`, `t.1`: the
/// learner's own SGEMM entry point.
fn gemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32], t: (bool, bool)) {
    algorithms::nn::linalg::gemm(m, k, n, a, t.0, b, t.1, 0.0, c);
}

/// GFLOP/s of SGEMM on `threads` threads at once, each doing `rows`×`width`×`width` products
/// in forward (A·B), weight-gradient (Aᵀ·B) and input-gradient (A·Bᵀ) layouts.
fn gemm_rate(threads: usize, rows: usize, width: usize) -> f64 {
    let reps = 400;
    let run = move || {
        let mut rng = NpRandom::from_seed(1);
        let mut v =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect() };
        let (x, w, dy) = (v(rows * width), v(width * width), v(rows * width));
        let (mut y, mut dw) = (vec![0f32; rows * width], vec![0f32; width * width]);
        let start = Instant::now();
        for _ in 0..reps {
            gemm(rows, width, width, &x, &w, &mut y, (false, false));
            gemm(width, rows, width, &x, &dy, &mut dw, (true, false));
            gemm(rows, width, width, &dy, &w, &mut y, (false, true));
        }
        std::hint::black_box((&y, &dw));
        start.elapsed().as_secs_f64()
    };
    let flops = (reps * 3 * 2 * rows * width * width * threads) as f64;
    let samples: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(run);
                }
            });
            flops / start.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    median(samples)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let arg = |i: usize, d: usize| args.get(i).copied().unwrap_or(d);
    let (rows, epochs, minibatch, hidden) = (arg(0, 4000), arg(1, 30), arg(2, 128), arg(3, 256));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());

    let model = ModelConfig {
        fcnet_hiddens: vec![hidden, hidden],
        fcnet_activation: Activation::Tanh,
        vf_share_layers: false,
        ..Default::default()
    };
    let spec = PpoModuleSpec {
        obs_dim: 4,
        action: ActionSpec::Discrete(2),
        model: model.clone(),
    };
    // Multiply-adds per row of both networks: 4 -> h -> h -> (2 logits | 1 value).
    let macs = (2 * (4 * hidden + hidden * hidden) + hidden * 2 + hidden) as f64;
    // Forward 2 FLOPs per multiply-add; backward twice that (input and weight gradients);
    // the values pass before the epochs is one forward.
    let used_rows = (rows / minibatch) * minibatch;
    let flops = (epochs * used_rows) as f64 * macs * 6.0 + rows as f64 * macs * 2.0;

    let one = gemm_rate(1, minibatch, hidden);
    let all = gemm_rate(threads, minibatch, hidden);

    let mut rng = NpRandom::from_seed(3);
    let mut b = SampleBatch::new(4, 1, 2);
    for _ in 0..rows {
        b.obs.extend((0..4).map(|_| rng.uniform(-1.0, 1.0) as f32));
        let a = rng.below(2) as usize;
        b.actions.push(a as f32);
        b.rewards.push(1.0);
        b.action_logp.push(-std::f32::consts::LN_2);
        b.action_dist_inputs.extend([0.0f32, 0.0]);
    }
    b.fragments.push(Fragment {
        start: 0,
        end: rows,
        terminated: true,
        ..Default::default()
    });
    let cfg = AlgorithmConfig {
        train_batch_size: rows,
        model,
        ppo: algorithms::config::PpoConfig {
            minibatch_size: minibatch,
            num_epochs: epochs,
            ..Default::default()
        },
        ..Default::default()
    };
    let w = spec.init(1);
    let mut learner = PpoLearner::new(cfg, spec, &w, 1).expect("a learner");
    learner.update(&b, 0).expect("an update");
    let update_s = median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(learner.update(&b, 0).expect("an update"));
                t.elapsed().as_secs_f64()
            })
            .collect(),
    );
    let limit_s = flops / (all * 1e9);
    println!(
        "PPO update: {rows} rows, {epochs} epochs of {minibatch}-row minibatches, [{hidden}, {hidden}] tanh, separate value net"
    );
    println!(
        "  FLOPs per update                     {:>10.2} GFLOP",
        flops / 1e9
    );
    println!("  SGEMM rate, 1 thread                 {one:>10.1} GFLOP/s");
    println!("  SGEMM rate, {threads} threads                {all:>10.1} GFLOP/s");
    println!("  compute limit per update             {limit_s:>10.3} s");
    println!("  fused learner, measured per update   {update_s:>10.3} s");
    println!(
        "  ratio to the limit                   {:>10.2}",
        update_s / limit_s
    );
}
