//! PPO's settings and their keys.

use crate::config::Algo;
use crate::config::key::{ConfigValue as V, KeyKind as K, KeySpec};
use crate::key;

const ANY: f64 = f64::INFINITY;

/// PPO's own settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PpoConfig {
    /// Samples per SGD minibatch.
    pub minibatch_size: usize,
    /// Passes over the train batch per iteration.
    pub num_epochs: usize,
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
    /// Reward scaling on the env runners (not RLlib's: SB3's `VecNormalize` reward part).
    #[serde(default)]
    pub reward_filter: RewardFilter,
}

/// Reward preprocessing on env runners, for the learner only: episode returns in the metrics
/// and recorded episodes keep the env's rewards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RewardFilter {
    /// Rewards pass through unchanged.
    #[default]
    NoFilter,
    /// Rewards divided by the running standard deviation of the discounted return, clipped to
    /// [-10, 10] ([`ReturnStdFilter`](crate::ReturnStdFilter), SB3's `norm_reward`).
    ReturnStdFilter,
}

impl RewardFilter {
    /// The name the config uses.
    pub fn name(self) -> &'static str {
        match self {
            RewardFilter::NoFilter => "NoFilter",
            RewardFilter::ReturnStdFilter => "ReturnStdFilter",
        }
    }
}

impl Default for PpoConfig {
    fn default() -> Self {
        PpoConfig {
            minibatch_size: 128,
            num_epochs: 30,
            lambda: 1.0,
            clip_param: 0.3,
            vf_clip_param: 10.0,
            vf_loss_coeff: 1.0,
            entropy_coeff: 0.0,
            kl_coeff: 0.2,
            kl_target: 0.01,
            use_kl_loss: true,
            reward_filter: RewardFilter::NoFilter,
        }
    }
}

/// PPO's keys.
pub static PPO_KEYS: &[KeySpec<PpoConfig>] = &[
    key!(
        "minibatch_size",
        ["sgd_minibatch_size"],
        [Algo::Ppo],
        K::Count {
            min: 1,
            max: u64::MAX
        },
        true,
        "rows per SGD minibatch",
        |c| V::Int(c.minibatch_size as u64),
        |c, v| c.minibatch_size = v.usize()
    ),
    key!(
        "num_epochs",
        ["num_sgd_iter"],
        [Algo::Ppo],
        K::Count {
            min: 1,
            max: u64::MAX
        },
        true,
        "passes over the train batch per iteration",
        |c| V::Int(c.num_epochs as u64),
        |c, v| c.num_epochs = v.usize()
    ),
    key!(
        "lambda",
        ["lambda_"],
        [Algo::Ppo],
        K::Float {
            min: 0.0,
            max: 1.0,
            min_inclusive: true
        },
        true,
        "GAE's λ",
        |c| V::Float(c.lambda),
        |c, v| c.lambda = v.f64()
    ),
    key!(
        "clip_param",
        [],
        [Algo::Ppo],
        K::Float {
            min: 0.0,
            max: ANY,
            min_inclusive: false
        },
        true,
        "clip range of the probability ratio",
        |c| V::Float(c.clip_param),
        |c, v| c.clip_param = v.f64()
    ),
    key!(
        "vf_clip_param",
        [],
        [Algo::Ppo],
        K::Float {
            min: 0.0,
            max: ANY,
            min_inclusive: false
        },
        true,
        "clip of the squared value error",
        |c| V::Float(c.vf_clip_param),
        |c, v| c.vf_clip_param = v.f64()
    ),
    key!(
        "vf_loss_coeff",
        [],
        [Algo::Ppo],
        K::Float {
            min: 0.0,
            max: ANY,
            min_inclusive: true
        },
        true,
        "weight of the value loss",
        |c| V::Float(c.vf_loss_coeff),
        |c, v| c.vf_loss_coeff = v.f64()
    ),
    key!(
        "entropy_coeff",
        [],
        [Algo::Ppo],
        K::Float {
            min: 0.0,
            max: ANY,
            min_inclusive: true
        },
        true,
        "weight of the entropy bonus",
        |c| V::Float(c.entropy_coeff),
        |c, v| c.entropy_coeff = v.f64()
    ),
    key!(
        "kl_coeff",
        [],
        [Algo::Ppo],
        K::Float {
            min: 0.0,
            max: ANY,
            min_inclusive: true
        },
        false,
        "initial KL penalty coefficient (adapted every iteration; a checkpoint carries it)",
        |c| V::Float(c.kl_coeff),
        |c, v| c.kl_coeff = v.f64()
    ),
    key!(
        "kl_target",
        [],
        [Algo::Ppo],
        K::Float {
            min: 0.0,
            max: ANY,
            min_inclusive: false
        },
        true,
        "KL the coefficient adapts towards",
        |c| V::Float(c.kl_target),
        |c, v| c.kl_target = v.f64()
    ),
    key!(
        "use_kl_loss",
        [],
        [Algo::Ppo],
        K::Bool,
        true,
        "whether the KL penalty is part of the loss",
        |c| V::Bool(c.use_kl_loss),
        |c, v| c.use_kl_loss = v.bool()
    ),
    key!(
        "reward_filter",
        [],
        [Algo::Ppo],
        K::Choice(&["NoFilter", "ReturnStdFilter"]),
        true,
        "rewards for the learner divided by the running std of the discounted return, clipped to ±10 (SB3's VecNormalize norm_reward; not an RLlib key)",
        |c| V::Str(c.reward_filter.name().into()),
        |c, v| c.reward_filter = if v.str() == "ReturnStdFilter" {
            RewardFilter::ReturnStdFilter
        } else {
            RewardFilter::NoFilter
        }
    ),
];
