//! Everything a run carries across a checkpoint, as plain structs: each part produces its
//! state (`get_state`) and takes one back (`set_state`), as RLlib's `Checkpointable`s do;
//! `checkpoint` writes these to files and reads them back, knowing no algorithm.

use algorithms::Weights;
use algorithms::filter::RunningStat;
use algorithms::optim::OptimizerState;
use algorithms::replay::ReplayState;

use crate::env_runner::{EpisodeStat, RunnerState};

/// Counters that a checkpoint carries and a restore continues.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Counters {
    /// Iterations done.
    pub iteration: u64,
    /// Env steps sampled over the run's life.
    pub env_steps: u64,
    /// Episodes finished over the run's life.
    pub episodes: u64,
    /// Seconds spent in `train()` over the run's life.
    pub time_total_s: f64,
}

/// A learner's state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LearnerState {
    /// The whole module (targets included).
    pub weights: Weights,
    /// Each optimizer's state by its name (`default_optimizer`; SAC's `policy`, `qf`,
    /// `qf_twin`, `alpha`).
    pub optimizers: Vec<(String, OptimizerState)>,
    /// PPO's adapted KL coefficient.
    pub kl_coeff: Option<f64>,
    /// The learner's generator (PPO's minibatch shuffling, SAC's noise).
    pub rng: Option<(u128, u128)>,
    /// SAC's log α.
    pub log_alpha: Option<f32>,
    /// DQN's and SAC's `(env steps at the last target update, target updates)`.
    pub target_counters: Option<(u64, u64)>,
    /// MARWIL's (and BC's) moving average of squared advantages.
    pub sqd_adv_norm: Option<f64>,
}

/// Everything of a run that a checkpoint holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlgorithmState {
    /// Counters.
    pub counters: Counters,
    /// The synchronised `MeanStdFilter` statistics.
    pub filter: Option<RunningStat>,
    /// The finished episodes `episode_return_mean` averages.
    pub episode_window: Vec<EpisodeStat>,
    /// Env runners replaced so far.
    pub num_env_runner_restarts: u64,
    /// Each env runner's state, if its env can save its state.
    pub runners: Option<Vec<RunnerState>>,
    /// The learner.
    pub learner: LearnerState,
    /// The replay buffer (DQN, SAC, with `store_buffer_in_checkpoints`).
    pub replay: Option<ReplayState>,
}
