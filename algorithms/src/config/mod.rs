//! `AlgorithmConfig`: every setting of a run, with RLlib's names and each algorithm's
//! defaults: common settings (env runners, training, learners, evaluation, fault tolerance)
//! and a section per algorithm. Every key is declared once in a table ([`key`]; the common
//! ones in [`common`], off-policy ones in [`off_policy`], each algorithm's in its folder),
//! which drives parsing, validation, export, suggestions and the README's list.
//!
//! Parsing (YAML, flags, aliases, error positions) lives in the `rllib` binary; this is the
//! validated result that the algorithm reads.

pub mod common;
pub mod key;
pub mod off_policy;

pub use key::{ConfigValue, Key, KeyKind, KeySpec};
pub use off_policy::{OffPolicyConfig, ReplayConfig};

pub use crate::dqn::config::{DqnConfig, TdLoss};
pub use crate::marwil::config::MarwilConfig;
pub use crate::ppo::config::PpoConfig;
pub use crate::sac::config::SacConfig;

use std::fmt;

/// Activation of the hidden layers (RLlib's `fcnet_activation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    /// `tanh`, RLlib's default.
    Tanh,
    /// `relu`.
    Relu,
    /// `linear`: no activation.
    Linear,
}

impl Activation {
    /// RLlib's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
            Activation::Linear => "linear",
        }
    }

    /// Parses RLlib's names (`None` is accepted for linear, as RLlib does).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "tanh" => Some(Activation::Tanh),
            "relu" => Some(Activation::Relu),
            "linear" | "None" | "none" => Some(Activation::Linear),
            _ => None,
        }
    }
}

/// The network (RLlib's `model` dict, fully-connected part).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelConfig {
    /// Hidden layer sizes of the encoder.
    pub fcnet_hiddens: Vec<usize>,
    /// Their activation.
    pub fcnet_activation: Activation,
    /// Whether PPO's value head shares the policy's hidden layers.
    pub vf_share_layers: bool,
    /// Hidden layers of each head on top of the encoder (DQN's advantage and value streams).
    pub head_fcnet_hiddens: Vec<usize>,
    /// Their activation.
    pub head_fcnet_activation: Activation,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            fcnet_hiddens: vec![256, 256],
            fcnet_activation: Activation::Tanh,
            vf_share_layers: false,
            head_fcnet_hiddens: Vec::new(),
            head_fcnet_activation: Activation::Relu,
        }
    }
}

/// The algorithms this build runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Algo {
    /// Proximal policy optimisation.
    Ppo,
    /// Deep Q-learning (double, dueling, n-step, prioritised replay).
    Dqn,
    /// Soft actor-critic.
    Sac,
    /// Behaviour cloning from recorded episodes.
    Bc,
    /// Monotonic advantage re-weighted imitation learning from recorded episodes.
    Marwil,
}

impl Algo {
    /// Every algorithm.
    pub const ALL: [Algo; 5] = [Algo::Ppo, Algo::Dqn, Algo::Sac, Algo::Bc, Algo::Marwil];

    /// RLlib's name (`PPO`).
    pub fn name(self) -> &'static str {
        match self {
            Algo::Ppo => "PPO",
            Algo::Dqn => "DQN",
            Algo::Sac => "SAC",
            Algo::Bc => "BC",
            Algo::Marwil => "MARWIL",
        }
    }

    /// The algorithm of that name, in any case (RLlib's registry takes `ppo`).
    pub fn parse(name: &str) -> Option<Algo> {
        Algo::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Algo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Observation preprocessing on env runners (RLlib's `observation_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ObservationFilter {
    /// Observations pass through unchanged.
    NoFilter,
    /// Running mean/std normalisation, synchronised across env runners each iteration.
    MeanStdFilter,
}

impl ObservationFilter {
    /// RLlib's name for it.
    pub fn name(self) -> &'static str {
        match self {
            ObservationFilter::NoFilter => "NoFilter",
            ObservationFilter::MeanStdFilter => "MeanStdFilter",
        }
    }
}

/// Where the learner computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Device {
    /// The CPU.
    Cpu,
    /// The first CUDA GPU (needs the `cuda` feature).
    Cuda,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
        })
    }
}

/// Which implementation runs the learner's tensor work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LearnerBackendKind {
    /// The fused CPU path on the CPU, candle on CUDA.
    Auto,
    /// The fused CPU path (CPU only).
    Fused,
    /// candle, the general path (CPU or CUDA).
    Candle,
}

impl LearnerBackendKind {
    /// The config name.
    pub fn name(self) -> &'static str {
        match self {
            LearnerBackendKind::Auto => "auto",
            LearnerBackendKind::Fused => "fused",
            LearnerBackendKind::Candle => "candle",
        }
    }
}

/// Every setting of a run. [`AlgorithmConfig::new`] gives an algorithm's RLlib defaults;
/// `Default` is PPO's.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlgorithmConfig {
    /// The algorithm.
    pub algo: Algo,
    /// The env id, as registered in `envs`.
    pub env: String,
    /// Env-runner actors; 0 samples in the driver.
    pub num_env_runners: usize,
    /// Envs in each runner's vector env.
    pub num_envs_per_env_runner: usize,
    /// CPUs each env-runner actor requests from the runtime (RLlib's
    /// `num_cpus_per_env_runner`); fractions let several runners share a CPU.
    pub num_cpus_per_env_runner: f64,
    /// Steps per env per sample call; `None` is RLlib's "auto" (PPO: batch size / envs;
    /// DQN and SAC: the n-step length).
    pub rollout_fragment_length: Option<usize>,
    /// Observation preprocessing.
    pub observation_filter: ObservationFilter,
    /// Whether `Box` actions are produced in [-1, 1] and mapped onto the env's bounds
    /// (RLlib's `normalize_actions`).
    pub normalize_actions: bool,
    /// Whether `Box` actions are clipped to the env's bounds (when not normalised).
    pub clip_actions: bool,
    /// Env steps per PPO iteration; rows per DQN/SAC gradient step.
    pub train_batch_size: usize,
    /// Learning rate (used when `lr_schedule` is absent; SAC has one per optimizer).
    pub lr: f64,
    /// Piecewise-linear `[[timestep, lr], ...]` schedule over sampled env steps.
    pub lr_schedule: Option<Vec<(u64, f64)>>,
    /// Discount factor.
    pub gamma: f64,
    /// Global gradient-norm clip (`None`: no clipping).
    pub grad_clip: Option<f64>,
    /// The network.
    pub model: ModelConfig,
    /// Seed of everything random (`None`: drawn from the OS).
    pub seed: Option<u64>,
    /// Where the learner runs.
    pub device: Device,
    /// Threads the learner may use (`num_cpus_per_learner`; the fused CPU path shares each
    /// minibatch's row blocks out over them). `None` is RLlib's `"auto"`: the machine's
    /// logical CPUs, at most [`AUTO_LEARNER_THREADS_MAX`]. Results do not depend on it.
    pub num_cpus_per_learner: Option<usize>,
    /// Which learner implementation (`learner_backend`; not an RLlib key).
    pub learner_backend: LearnerBackendKind,
    /// Episodes `env_runners/episode_return_mean` averages over.
    pub metrics_num_episodes_for_smoothing: usize,
    /// Env steps an iteration samples at least (DQN and SAC repeat their training step).
    pub min_sample_timesteps_per_iteration: usize,
    /// Evaluate every this many iterations (`None`: never).
    pub evaluation_interval: Option<usize>,
    /// Episodes per evaluation.
    pub evaluation_duration: usize,
    /// Whether a failed env runner is replaced and the iteration goes on without its samples.
    pub restart_failed_env_runners: bool,
    /// How many replacements a run allows in total.
    pub max_num_env_runner_restarts: usize,
    /// PPO's settings.
    pub ppo: PpoConfig,
    /// Replay and target networks (DQN, SAC).
    pub off_policy: OffPolicyConfig,
    /// DQN's settings.
    pub dqn: DqnConfig,
    /// SAC's settings.
    pub sac: SacConfig,
    /// MARWIL's settings (BC's are MARWIL's with `beta = 0`).
    pub marwil: MarwilConfig,
    /// Recorded episodes to learn from (BC, MARWIL): a folder, file or `*` pattern of
    /// Parquet files (RLlib's `input`; `None` or `sampler`: the env runners).
    pub input: Option<String>,
    /// A folder the env runners write every finished episode into, as Parquet (RLlib's
    /// `output`; `None`: nothing is written).
    pub output: Option<String>,
}

impl Default for AlgorithmConfig {
    fn default() -> Self {
        AlgorithmConfig::new(Algo::Ppo)
    }
}

/// The most threads `num_cpus_per_learner: auto` uses.
pub const AUTO_LEARNER_THREADS_MAX: usize = 8;

impl AlgorithmConfig {
    /// RLlib's defaults for `algo` (its `PPOConfig()`, `DQNConfig()`, `SACConfig()`).
    pub fn new(algo: Algo) -> Self {
        let mut c = AlgorithmConfig {
            algo,
            env: "CartPole-v1".to_string(),
            num_env_runners: 2,
            num_envs_per_env_runner: 1,
            num_cpus_per_env_runner: 1.0,
            rollout_fragment_length: None,
            observation_filter: ObservationFilter::NoFilter,
            normalize_actions: true,
            clip_actions: false,
            train_batch_size: 4000,
            lr: 5e-5,
            lr_schedule: None,
            gamma: 0.99,
            grad_clip: None,
            model: ModelConfig::default(),
            seed: None,
            device: Device::Cpu,
            num_cpus_per_learner: None,
            learner_backend: LearnerBackendKind::Auto,
            metrics_num_episodes_for_smoothing: 100,
            min_sample_timesteps_per_iteration: 0,
            evaluation_interval: None,
            evaluation_duration: 10,
            restart_failed_env_runners: true,
            max_num_env_runner_restarts: 1000,
            ppo: PpoConfig::default(),
            off_policy: OffPolicyConfig::for_algo(algo),
            dqn: DqnConfig::default(),
            sac: SacConfig::default(),
            marwil: MarwilConfig::default(),
            input: None,
            output: None,
        };
        match algo {
            Algo::Ppo => {}
            Algo::Dqn => {
                c.num_env_runners = 0;
                c.train_batch_size = 32;
                c.lr = 5e-4;
                c.grad_clip = Some(40.0);
                c.min_sample_timesteps_per_iteration = 1000;
            }
            Algo::Sac => {
                c.num_env_runners = 0;
                c.train_batch_size = 256;
                c.min_sample_timesteps_per_iteration = 100;
            }
            Algo::Bc | Algo::Marwil => {
                // RLlib's MARWILConfig: learners read recorded data; no env runners sample.
                c.num_env_runners = 0;
                c.train_batch_size = 2000;
                c.lr = 1e-4;
                if algo == Algo::Bc {
                    c.marwil = MarwilConfig::bc();
                }
            }
        }
        c
    }

    /// Threads of the learner: `num_cpus_per_learner`, or for `auto` the logical CPUs this
    /// process may use, at most [`AUTO_LEARNER_THREADS_MAX`]. The learner runs while the env
    /// runners wait for new weights, so it borrows their cores rather than competing.
    pub fn learner_threads(&self) -> usize {
        self.num_cpus_per_learner
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map_or(1, usize::from)
                    .min(AUTO_LEARNER_THREADS_MAX)
            })
            .max(1)
    }

    /// Steps each env takes per sample call: the configured length, or RLlib's "auto": for
    /// PPO the train batch split evenly over every env of every runner, rounded up; for DQN
    /// and SAC the (longest) n-step length.
    pub fn rollout_fragment_length(&self) -> usize {
        self.rollout_fragment_length
            .unwrap_or_else(|| match self.algo {
                Algo::Ppo | Algo::Bc | Algo::Marwil => {
                    let envs = self.num_env_runners.max(1) * self.num_envs_per_env_runner;
                    self.train_batch_size.div_ceil(envs).max(1)
                }
                Algo::Dqn | Algo::Sac => self.off_policy.n_step.1.max(1),
            })
    }

    /// The learning rate after `env_steps` sampled env steps.
    pub fn lr_at(&self, env_steps: u64) -> f64 {
        match &self.lr_schedule {
            None => self.lr,
            Some(points) => piecewise_linear(points, env_steps),
        }
    }
}

/// Every key, common ones first, then off-policy ones, then each algorithm's.
pub fn keys() -> Vec<Key> {
    common::COMMON_KEYS
        .iter()
        .map(Key::Common)
        .chain(off_policy::OFF_POLICY_KEYS.iter().map(Key::OffPolicy))
        .chain(crate::ppo::config::PPO_KEYS.iter().map(Key::Ppo))
        .chain(crate::dqn::config::DQN_KEYS.iter().map(Key::Dqn))
        .chain(crate::sac::config::SAC_KEYS.iter().map(Key::Sac))
        .chain(crate::marwil::config::MARWIL_KEYS.iter().map(Key::Common))
        .collect()
}

/// The key that `name` (an RLlib name or an old alias) stands for, at the top level.
pub fn lookup(name: &str) -> Option<Key> {
    keys().into_iter().find(|k| k.is(name))
}

/// Interpolates `points` (sorted by step) at `t`; flat outside their range.
pub fn piecewise_linear(points: &[(u64, f64)], t: u64) -> f64 {
    let Some(&(t0, v0)) = points.first() else {
        return 0.0;
    };
    if t <= t0 {
        return v0;
    }
    for w in points.windows(2) {
        let ((a, va), (b, vb)) = (w[0], w[1]);
        if t <= b {
            let frac = (t - a) as f64 / (b - a).max(1) as f64;
            return va + frac * (vb - va);
        }
    }
    points.last().map_or(v0, |p| p.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_fragment_length_splits_the_batch() {
        let mut c = AlgorithmConfig {
            num_env_runners: 2,
            num_envs_per_env_runner: 3,
            train_batch_size: 4000,
            ..Default::default()
        };
        assert_eq!(c.rollout_fragment_length(), 667);
        c.num_env_runners = 0;
        c.num_envs_per_env_runner = 1;
        assert_eq!(c.rollout_fragment_length(), 4000);
        c.rollout_fragment_length = Some(50);
        assert_eq!(c.rollout_fragment_length(), 50);
        let mut d = AlgorithmConfig::new(Algo::Dqn);
        assert_eq!(d.rollout_fragment_length(), 1);
        d.off_policy.n_step = (2, 5);
        assert_eq!(d.rollout_fragment_length(), 5);
    }

    #[test]
    fn lr_schedule_interpolates() {
        let c = AlgorithmConfig {
            lr_schedule: Some(vec![(0, 1e-3), (1000, 1e-4)]),
            ..Default::default()
        };
        assert_eq!(c.lr_at(0), 1e-3);
        assert!((c.lr_at(500) - 5.5e-4).abs() < 1e-12);
        assert_eq!(c.lr_at(5000), 1e-4);
    }

    #[test]
    fn each_algorithm_starts_from_rllibs_defaults() {
        let d = AlgorithmConfig::new(Algo::Dqn);
        assert_eq!(
            (d.train_batch_size, d.lr, d.grad_clip),
            (32, 5e-4, Some(40.0))
        );
        assert_eq!(d.off_policy.replay.capacity, 50_000);
        let s = AlgorithmConfig::new(Algo::Sac);
        assert_eq!((s.train_batch_size, s.sac.actor_lr), (256, 3e-5));
        assert_eq!(s.off_policy.tau, 0.005);
        assert_eq!(Algo::parse("sac"), Some(Algo::Sac));
    }
}
