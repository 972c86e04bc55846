//! Learner throughput: one PPO `update` (GAE forward + epochs of minibatches + Adam) of the
//! fused CPU backend on a synthetic CartPole-shaped batch, and its parts.
//!
//!     cargo bench -p algorithms --bench learner
//!
//! The shapes are issue 5's throughput configuration: a 64×64 tanh MLP with a separate value
//! net, `train_batch_size` 4096, `minibatch_size` 512, 4 epochs. Prints medians of 15 runs.

use std::time::Instant;

use std::sync::Arc;

use algorithms::nn::Network;
use algorithms::nn::fused::{FusedNet, Threads};
use algorithms::ppo::{ActionSpec, Dist, PpoLoss, PpoModuleSpec};
use algorithms::{Activation, AlgorithmConfig, Fragment, ModelConfig, PpoLearner, SampleBatch};
use envs::NpRandom;

const RUNS: usize = 15;
const ROWS: usize = 4096;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times `f` RUNS times after one warm-up call; returns the median in milliseconds.
fn time_ms(mut f: impl FnMut()) -> f64 {
    f();
    median(
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

/// A batch of CartPole-like rows cut into episodes of 20 to 200 steps.
fn batch(spec: &PpoModuleSpec, rng: &mut NpRandom) -> SampleBatch {
    let mut b = SampleBatch::new(spec.obs_dim, 1, 2);
    let mut start = 0;
    while start < ROWS {
        let end = (start + 20 + rng.below(180) as usize).min(ROWS);
        let cut = end == ROWS;
        b.fragments.push(Fragment {
            start,
            end,
            terminated: !cut,
            bootstrap: cut.then_some(b.bootstrap_obs.len() / spec.obs_dim),
            ..Default::default()
        });
        if cut {
            b.bootstrap_obs
                .extend((0..spec.obs_dim).map(|_| rng.uniform(-0.5, 0.5) as f32));
        }
        start = end;
    }
    for _ in 0..ROWS {
        b.obs
            .extend((0..spec.obs_dim).map(|_| rng.uniform(-1.0, 1.0) as f32));
        let logits = [rng.uniform(0.0, 0.1) as f32, rng.uniform(0.0, 0.1) as f32];
        let a = rng.below(2) as usize;
        b.actions.push(a as f32);
        b.rewards.push(1.0);
        b.action_logp
            .push(logits[a] - algorithms::distributions::log_sum_exp(&logits));
        b.action_dist_inputs.extend(logits);
    }
    b
}

fn main() {
    let model = ModelConfig {
        fcnet_hiddens: vec![64, 64],
        fcnet_activation: Activation::Tanh,
        vf_share_layers: false,
        ..Default::default()
    };
    let spec = PpoModuleSpec {
        obs_dim: 4,
        action: ActionSpec::Discrete(2),
        model: model.clone(),
    };
    let mut rng = NpRandom::from_seed(3);
    let b = batch(&spec, &mut rng);
    println!(
        "{:<52} {:>10}",
        "fused learner, 64x64 tanh, 4096 rows", "median ms"
    );
    for threads in [1usize, 2] {
        let cfg = AlgorithmConfig {
            train_batch_size: ROWS,
            lr: 3e-4,
            num_cpus_per_learner: Some(threads),
            model: model.clone(),
            ppo: algorithms::config::PpoConfig {
                minibatch_size: 512,
                num_epochs: 4,
                ..Default::default()
            },
            ..Default::default()
        };
        let w = spec.init(1);
        let mut learner = PpoLearner::new(cfg.clone(), spec.clone(), &w, 1).expect("learner");
        let update = time_ms(|| {
            std::hint::black_box(learner.update(&b, 0).expect("update"));
        });
        let mut net = FusedNet::new(
            spec.net_spec(),
            &spec.split(&w).expect("weights").0,
            &Threads::new(threads).expect("threads"),
        )
        .expect("network");
        let mut out = Vec::new();
        let values = time_ms(|| {
            net.infer(&b.obs, ROWS, &[1], &mut out).expect("values");
            std::hint::black_box(&out);
        });
        let n = 512;
        let mut loss = PpoLoss::new(Dist::Categorical(2));
        loss.actions = b.actions[..n].to_vec();
        loss.old_logp = b.action_logp[..n].to_vec();
        loss.old_dist_inputs = b.action_dist_inputs[..n * 2].to_vec();
        loss.advantages = b.rewards[..n].to_vec();
        loss.value_targets = vec![0.0; n];
        let loss = Arc::new(loss);
        let minibatch = time_ms(|| {
            std::hint::black_box(
                net.train_rows(&b.obs[..n * 4], n, loss.clone())
                    .expect("minibatch"),
            );
        });
        net.end_update();
        println!("num_cpus_per_learner = {threads}");
        println!(
            "{:<52} {:>10.3}",
            "  update (forward + 32 minibatches)", update
        );
        println!(
            "{:<52} {:>10.3}",
            "  value predictions of 4096 rows (for GAE)", values
        );
        println!(
            "{:<52} {:>10.3}",
            "  one 512-row minibatch (forward, loss, backward)", minibatch
        );
        println!(
            "{:<52} {:>10.0}",
            "  learner-bound env steps/s (4096 / update)",
            ROWS as f64 / (update / 1e3)
        );
    }
}
