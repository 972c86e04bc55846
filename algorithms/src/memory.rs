//! How much memory a PPO run needs, estimated from its config before anything is allocated,
//! so that an absurd config (a train batch of 10^12 rows, a 100,000-wide layer, a billion envs)
//! is refused with the keys that drive it instead of aborting on a failed allocation.
//!
//! The estimate counts the large buffers: sample batches (on the runners, in the driver and in
//! the learner), the learner's per-block and values-pass workspaces, the network with its
//! gradients and Adam moments and the runners' copies, and the envs. It leaves out what is
//! small and fixed (code, the runtime, a few MB).

use crate::config::{AlgorithmConfig, LearnerBackendKind};
use crate::nn::fused::BLOCK_ROWS;
use crate::rl_module::ModuleSpec;

/// One part of the estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryPart {
    /// What it is ("sample batches").
    pub what: &'static str,
    /// Bytes (a float: an absurd config must not overflow the arithmetic).
    pub bytes: f64,
    /// The config keys that make it large, with their values (`train_batch_size: 4000`).
    pub keys: Vec<String>,
}

/// The estimate: its parts, largest first.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryEstimate {
    /// The parts, largest first.
    pub parts: Vec<MemoryPart>,
}

impl MemoryEstimate {
    /// Bytes in all.
    pub fn total(&self) -> f64 {
        self.parts.iter().map(|p| p.bytes).sum()
    }

    /// "sample batches 40 TB (train_batch_size: 1e12), ..." for the parts that matter.
    pub fn describe(&self, parts: usize) -> String {
        self.parts
            .iter()
            .take(parts)
            .map(|p| {
                format!(
                    "{} {} ({})",
                    p.what,
                    human_bytes(p.bytes),
                    p.keys.join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Bytes for people: "6.4 MB", "40.0 TB".
pub fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} {}", UNITS[0])
    } else if v >= 1000.0 {
        format!("{v:.1e} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

const F32: f64 = 4.0;

/// The estimate for `cfg` with a network of `spec`, the learner on `learner_threads` threads.
pub fn estimate(
    cfg: &AlgorithmConfig,
    spec: &ModuleSpec,
    learner_threads: usize,
) -> MemoryEstimate {
    let f = |n: usize| n as f64;
    let model = spec.model();
    let (d, a) = (
        f(spec.obs_dim()),
        f(spec.dist_width().max(spec.action_dim())),
    );
    let hidden: f64 = model
        .fcnet_hiddens
        .iter()
        .chain(&model.head_fcnet_hiddens)
        .map(|&h| f(h))
        .sum();
    let trunks = if model.vf_share_layers { 1.0 } else { 2.0 };
    // Parameters, computed in floats so that a 10^6-wide layer cannot overflow (a shape's
    // product is never formed in integers).
    let params: f64 = spec
        .parameter_shapes()
        .iter()
        .map(|(_, s)| s.iter().map(|&x| f(x)).product::<f64>())
        .sum();

    let runners = f(cfg.num_env_runners.max(1));
    let envs = f(cfg.num_envs_per_env_runner);
    let rows = runners * envs * f(cfg.rollout_fragment_length());
    let mb = f(cfg.ppo.minibatch_size).min(rows.max(1.0));
    // A sample row: observation, logits, action, reward, log-probability; held by the runner
    // while sampling, in the batch it returns, and in the driver's merged batch; the learner
    // adds values, advantages, targets and the shuffled order.
    let row = F32 * (d + a + 3.0);
    let batches = rows * (3.0 * row + 3.0 * F32 + 8.0);

    // The learner: each 128-row block of a minibatch has its own workspace (activations and
    // their gradients for every trunk, and a full set of parameter gradients); the values
    // pass holds every row's activations.
    let blocks = (mb / f(BLOCK_ROWS)).ceil().max(f(learner_threads.max(1)));
    let block_ws = F32
        * (params + f(BLOCK_ROWS) * trunks * 2.0 * (d + hidden) + f(BLOCK_ROWS) * 2.0 * (a + 1.0));
    let mut learner =
        blocks * block_ws + F32 * rows * (d + hidden + 1.0) + F32 * mb * (d + a + 5.0) * 2.0;
    if cfg.learner_backend == LearnerBackendKind::Candle {
        // candle keeps every intermediate of a minibatch for the backward pass.
        learner += F32 * mb * trunks * 6.0 * (d + hidden + a);
    }

    // The network: the learner's parameters, gradients and Adam moments, the weights sent to
    // the runners, and each runner's inference copy.
    let network = F32 * params * (4.0 + 2.0 + runners);
    // Each runner's thread and actor (about 55 kB each, measured with 400 runners), each env
    // with its observation buffers (a few hundred bytes for a classic-control env), and the
    // runner's inference activations for it.
    let env_bytes =
        runners * 65_536.0 + runners * envs * (256.0 + 4.0 * F32 * d + F32 * (a + 2.0 * hidden));

    // The replay buffer: per slot an observation and the next, an action, a reward, flags,
    // episode id, step, link and priority; and the sum tree.
    let replay = match spec {
        ModuleSpec::Dqn(_) | ModuleSpec::Sac(_) => {
            let cap = f(cfg.off_policy.replay.capacity);
            cap * (F32 * (2.0 * d + f(spec.action_dim()) + 1.0) + 1.0 + 8.0 + 4.0 + 4.0 + 8.0)
                + 2.0 * 16.0 * cap.log2().ceil().exp2()
        }
        ModuleSpec::Ppo(_) | ModuleSpec::Bc(_) | ModuleSpec::Marwil(_) => 0.0,
    };
    let hiddens = format!("model.fcnet_hiddens: {:?}", model.fcnet_hiddens);
    let mut parts = vec![
        MemoryPart {
            what: "sample batches",
            bytes: batches,
            keys: vec![
                format!("train_batch_size: {}", cfg.train_batch_size),
                format!(
                    "rollout_fragment_length: {}",
                    cfg.rollout_fragment_length
                        .map_or("auto".to_string(), |n| n.to_string())
                ),
                format!("num_envs_per_env_runner: {}", cfg.num_envs_per_env_runner),
                format!("num_env_runners: {}", cfg.num_env_runners),
            ],
        },
        MemoryPart {
            what: "learner workspaces",
            bytes: learner,
            keys: vec![
                format!("train_batch_size: {}", cfg.train_batch_size),
                format!("minibatch_size: {}", cfg.ppo.minibatch_size),
                hiddens.clone(),
            ],
        },
        MemoryPart {
            what: "network, optimizer and copies",
            bytes: network,
            keys: vec![hiddens, format!("num_env_runners: {}", cfg.num_env_runners)],
        },
        MemoryPart {
            what: "env runners, envs and inference buffers",
            bytes: env_bytes,
            keys: vec![
                format!("num_envs_per_env_runner: {}", cfg.num_envs_per_env_runner),
                format!("num_env_runners: {}", cfg.num_env_runners),
            ],
        },
    ];
    if replay > 0.0 {
        parts.push(MemoryPart {
            what: "replay buffer",
            bytes: replay,
            keys: vec![format!(
                "replay_buffer_config.capacity: {}",
                cfg.off_policy.replay.capacity
            )],
        });
    }
    parts.sort_by(|x, y| y.bytes.total_cmp(&x.bytes));
    MemoryEstimate { parts }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;

    fn spec(hiddens: Vec<usize>) -> ModuleSpec {
        ModuleSpec::Ppo(crate::ppo::PpoModuleSpec {
            obs_dim: 4,
            action: crate::ppo::ActionSpec::Discrete(2),
            model: ModelConfig {
                fcnet_hiddens: hiddens,
                ..Default::default()
            },
        })
    }

    #[test]
    fn rllib_defaults_need_a_few_megabytes() {
        let cfg = AlgorithmConfig::default();
        let e = estimate(&cfg, &spec(vec![256, 256]), 2);
        assert!(e.total() > 1e6 && e.total() < 50e6, "{}", e.describe(4));
    }

    #[test]
    fn absurd_sizes_are_named() {
        let cfg = AlgorithmConfig {
            train_batch_size: 1_000_000_000_000,
            ..Default::default()
        };
        let e = estimate(&cfg, &spec(vec![64]), 2);
        assert!(e.total() > 1e13);
        assert_eq!(e.parts[0].what, "learner workspaces");
        assert!(e.describe(2).contains("train_batch_size: 1000000000000"));
        let sac = AlgorithmConfig::new(crate::config::Algo::Sac);
        let s = ModuleSpec::Sac(crate::sac::SacModuleSpec {
            obs_dim: 3,
            action_dim: 1,
            low: vec![-2.0],
            high: vec![2.0],
            model: ModelConfig::default(),
            twin_q: true,
        });
        let e = estimate(&sac, &s, 2);
        assert_eq!(e.parts[0].what, "replay buffer", "{}", e.describe(3));
        let e = estimate(
            &AlgorithmConfig::default(),
            &spec(vec![100_000, 100_000]),
            2,
        );
        assert!(e.total() > 100e9);
        assert!(
            e.describe(1)
                .contains("model.fcnet_hiddens: [100000, 100000]")
        );
        assert_eq!(human_bytes(6.4e6), "6.4 MB");
        assert_eq!(human_bytes(4.0e16), "40.0 PB");
    }
}
