//! `AlgorithmConfig`: every setting of a run, with RLlib's names and PPO's defaults.
//!
//! Parsing (YAML, flags, aliases, error positions) lives in the `rllib` binary; this is the
//! validated result that the algorithm reads.

use std::fmt;

/// Activation of the hidden layers (RLlib's `fcnet_activation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Hidden layer sizes.
    pub fcnet_hiddens: Vec<usize>,
    /// Hidden activation.
    pub fcnet_activation: Activation,
    /// Whether the value head shares the policy's hidden layers.
    pub vf_share_layers: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            fcnet_hiddens: vec![256, 256],
            fcnet_activation: Activation::Tanh,
            vf_share_layers: false,
        }
    }
}

/// Observation preprocessing on env runners (RLlib's `observation_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Every setting of a PPO run. Defaults are RLlib's `PPOConfig()` defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct AlgorithmConfig {
    /// The env id, as registered in `envs`.
    pub env: String,
    /// Env-runner actors; 0 samples in the driver.
    pub num_env_runners: usize,
    /// Envs in each runner's vector env.
    pub num_envs_per_env_runner: usize,
    /// CPUs each env-runner actor requests from the runtime (RLlib's
    /// `num_cpus_per_env_runner`); fractions let several runners share a CPU.
    pub num_cpus_per_env_runner: f64,
    /// Steps per env per sample call; `None` is RLlib's "auto" (batch size / envs).
    pub rollout_fragment_length: Option<usize>,
    /// Env steps per training iteration.
    pub train_batch_size: usize,
    /// Samples per SGD minibatch.
    pub minibatch_size: usize,
    /// Passes over the train batch per iteration.
    pub num_epochs: usize,
    /// Learning rate (used when `lr_schedule` is absent).
    pub lr: f64,
    /// Piecewise-linear `[[timestep, lr], ...]` schedule over sampled env steps.
    pub lr_schedule: Option<Vec<(u64, f64)>>,
    /// Discount factor.
    pub gamma: f64,
    /// GAE(λ) parameter.
    pub lambda: f64,
    /// PPO clip range of the probability ratio.
    pub clip_param: f64,
    /// Clip of the squared value error.
    pub vf_clip_param: f64,
    /// Weight of the value loss.
    pub vf_loss_coeff: f64,
    /// Weight of the entropy bonus.
    pub entropy_coeff: f64,
    /// Initial KL penalty coefficient (adapted each iteration).
    pub kl_coeff: f64,
    /// KL target of the adaptive coefficient.
    pub kl_target: f64,
    /// Whether the KL penalty is part of the loss.
    pub use_kl_loss: bool,
    /// Global gradient-norm clip (`None`: no clipping).
    pub grad_clip: Option<f64>,
    /// Observation preprocessing.
    pub observation_filter: ObservationFilter,
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
    /// Evaluate every this many iterations (`None`: never).
    pub evaluation_interval: Option<usize>,
    /// Episodes per evaluation.
    pub evaluation_duration: usize,
    /// Whether a failed env runner is replaced and the iteration goes on without its samples.
    pub restart_failed_env_runners: bool,
    /// How many replacements a run allows in total.
    pub max_num_env_runner_restarts: usize,
}

impl Default for AlgorithmConfig {
    fn default() -> Self {
        AlgorithmConfig {
            env: "CartPole-v1".to_string(),
            num_env_runners: 2,
            num_envs_per_env_runner: 1,
            num_cpus_per_env_runner: 1.0,
            rollout_fragment_length: None,
            train_batch_size: 4000,
            minibatch_size: 128,
            num_epochs: 30,
            lr: 5e-5,
            lr_schedule: None,
            gamma: 0.99,
            lambda: 1.0,
            clip_param: 0.3,
            vf_clip_param: 10.0,
            vf_loss_coeff: 1.0,
            entropy_coeff: 0.0,
            kl_coeff: 0.2,
            kl_target: 0.01,
            use_kl_loss: true,
            grad_clip: None,
            observation_filter: ObservationFilter::NoFilter,
            model: ModelConfig::default(),
            seed: None,
            device: Device::Cpu,
            num_cpus_per_learner: None,
            learner_backend: LearnerBackendKind::Auto,
            evaluation_interval: None,
            evaluation_duration: 10,
            restart_failed_env_runners: true,
            max_num_env_runner_restarts: 1000,
        }
    }
}

/// The most threads `num_cpus_per_learner: auto` uses.
pub const AUTO_LEARNER_THREADS_MAX: usize = 8;

impl AlgorithmConfig {
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

    /// Steps each env takes per sample call: the configured length, or RLlib's "auto":
    /// the train batch split evenly over every env of every runner, rounded up.
    pub fn rollout_fragment_length(&self) -> usize {
        self.rollout_fragment_length.unwrap_or_else(|| {
            let envs = self.num_env_runners.max(1) * self.num_envs_per_env_runner;
            self.train_batch_size.div_ceil(envs).max(1)
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

/// Interpolates `points` (sorted by step) at `t`; flat outside their range.
fn piecewise_linear(points: &[(u64, f64)], t: u64) -> f64 {
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
}
