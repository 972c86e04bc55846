//! Metric names, once, as RLlib writes them (`ray.rllib.utils.metrics`): a typo fails to
//! compile instead of logging nothing. Learner metrics are written under
//! [`LEARNER_PREFIX`] (`learners/default_policy/`).

/// Iterations done.
pub const TRAINING_ITERATION: &str = "training_iteration";
/// Mean return of the last `metrics_num_episodes_for_smoothing` episodes.
pub const EPISODE_RETURN_MEAN: &str = "env_runners/episode_return_mean";
/// Lowest return among them.
pub const EPISODE_RETURN_MIN: &str = "env_runners/episode_return_min";
/// Highest return among them.
pub const EPISODE_RETURN_MAX: &str = "env_runners/episode_return_max";
/// Their mean length.
pub const EPISODE_LEN_MEAN: &str = "env_runners/episode_len_mean";
/// Episodes finished this iteration.
pub const NUM_EPISODES: &str = "env_runners/num_episodes";
/// Episodes finished over the run.
pub const NUM_EPISODES_LIFETIME: &str = "env_runners/num_episodes_lifetime";
/// Env steps sampled this iteration.
pub const NUM_ENV_STEPS_SAMPLED: &str = "env_runners/num_env_steps_sampled";
/// Env runners replaced over the run.
pub const NUM_ENV_RUNNER_RESTARTS: &str = "env_runners/num_env_runner_restarts";
/// Env steps sampled over the run.
pub const NUM_ENV_STEPS_SAMPLED_LIFETIME: &str = "num_env_steps_sampled_lifetime";
/// Env steps sampled per second this iteration.
pub const NUM_ENV_STEPS_SAMPLED_LIFETIME_THROUGHPUT: &str =
    "num_env_steps_sampled_lifetime_throughput";
/// Recorded rows an offline algorithm (BC, MARWIL) has learned from.
pub const NUM_ENV_STEPS_TRAINED_LIFETIME: &str = "num_env_steps_trained_lifetime";
/// Mean return of the last evaluation.
pub const EVALUATION_RETURN_MEAN: &str = "evaluation/env_runners/episode_return_mean";
/// Steps in the replay buffer.
pub const REPLAY_BUFFER_SIZE: &str = "replay_buffer/num_env_steps_stored";
/// Seconds spent sampling this iteration.
pub const TIMER_SAMPLING: &str = "timers/env_runner_sampling_timer";
/// Seconds spent in the learner this iteration.
pub const TIMER_LEARNER: &str = "timers/learner_update_timer";
/// Seconds this iteration took.
pub const TIME_THIS_ITER_S: &str = "time_this_iter_s";
/// Seconds of training over the run.
pub const TIME_TOTAL_S: &str = "time_total_s";

/// Where learner metrics go.
pub const LEARNER_PREFIX: &str = "learners/default_policy/";

/// Learner metrics (under [`LEARNER_PREFIX`]).
pub mod learner {
    /// The total loss.
    pub const TOTAL_LOSS: &str = "learners/default_policy/total_loss";
    /// PPO's clipped surrogate, SAC's actor loss.
    pub const POLICY_LOSS: &str = "learners/default_policy/policy_loss";
    /// PPO's value loss.
    pub const VF_LOSS: &str = "learners/default_policy/vf_loss";
    /// Explained variance of PPO's value targets.
    pub const VF_EXPLAINED_VAR: &str = "learners/default_policy/vf_explained_var";
    /// The policy's entropy.
    pub const ENTROPY: &str = "learners/default_policy/entropy";
    /// PPO's KL from the sampling policy.
    pub const MEAN_KL_LOSS: &str = "learners/default_policy/mean_kl_loss";
    /// PPO's adapted KL coefficient.
    pub const CURR_KL_COEFF: &str = "learners/default_policy/curr_kl_coeff";
    /// The learning rate used.
    pub const LEARNING_RATE: &str = "learners/default_policy/default_optimizer_learning_rate";
    /// Global gradient norm before clipping.
    pub const GRAD_NORM: &str = "learners/default_policy/gradients_default_optimizer_global_norm";
    /// DQN's TD loss, SAC's first critic's.
    pub const QF_LOSS: &str = "learners/default_policy/qf_loss";
    /// SAC's second critic's loss.
    pub const QF_TWIN_LOSS: &str = "learners/default_policy/qf_twin_loss";
    /// Mean Q of the batch.
    pub const QF_MEAN: &str = "learners/default_policy/qf_mean";
    /// Largest Q.
    pub const QF_MAX: &str = "learners/default_policy/qf_max";
    /// Smallest Q.
    pub const QF_MIN: &str = "learners/default_policy/qf_min";
    /// Mean absolute TD error.
    pub const TD_ERROR_MEAN: &str = "learners/default_policy/td_error_mean";
    /// Target network updates over the run.
    pub const NUM_TARGET_UPDATES: &str = "learners/default_policy/num_target_updates";
    /// SAC's entropy-weight loss.
    pub const ALPHA_LOSS: &str = "learners/default_policy/alpha_loss";
    /// SAC's entropy weight α.
    pub const ALPHA_VALUE: &str = "learners/default_policy/alpha_value";
    /// SAC's log α.
    pub const LOG_ALPHA_VALUE: &str = "learners/default_policy/log_alpha_value";
    /// SAC's target entropy.
    pub const TARGET_ENTROPY: &str = "learners/default_policy/target_entropy";
    /// SAC's mean log-probability of its resampled actions.
    pub const LOGPS: &str = "learners/default_policy/logps";
    /// MARWIL's moving average of squared advantages.
    pub const MOVING_AVERAGE_SQD_ADV_NORM: &str =
        "learners/default_policy/moving_average_sqd_adv_norm";
    /// Gradient steps this iteration.
    pub const NUM_UPDATES: &str = "learners/default_policy/num_gradient_updates";
}

#[cfg(test)]
mod tests {
    #[test]
    fn learner_metrics_sit_under_the_prefix() {
        use super::learner::*;
        for m in [
            TOTAL_LOSS,
            POLICY_LOSS,
            QF_LOSS,
            GRAD_NORM,
            ALPHA_VALUE,
            NUM_UPDATES,
        ] {
            assert!(m.starts_with(super::LEARNER_PREFIX), "{m}");
        }
    }
}
