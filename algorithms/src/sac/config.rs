//! SAC's settings and their keys (replay and target networks are in
//! [`crate::config::off_policy`], shared with DQN).

use crate::config::Algo;
use crate::config::key::{ConfigValue as V, KeyKind as K, KeySpec};
use crate::key;

/// SAC's own settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SacConfig {
    /// Two Q networks, the smaller estimate used.
    pub twin_q: bool,
    /// The entropy weight α at the start.
    pub initial_alpha: f64,
    /// The entropy α is tuned towards; `None` is "auto": -(action size).
    pub target_entropy: Option<f64>,
    /// The policy's learning rate.
    pub actor_lr: f64,
    /// The Q networks' learning rate.
    pub critic_lr: f64,
    /// α's learning rate.
    pub alpha_lr: f64,
    /// Step-to-step correlation of the Gaussian noise of sampled actions, per env (0:
    /// independent draws, as RLlib's SAC).
    pub exploration_noise_correlation: f64,
}

impl Default for SacConfig {
    fn default() -> Self {
        SacConfig {
            twin_q: true,
            initial_alpha: 1.0,
            target_entropy: None,
            actor_lr: 3e-5,
            critic_lr: 3e-4,
            alpha_lr: 3e-4,
            exploration_noise_correlation: 0.0,
        }
    }
}

/// SAC's keys.
pub static SAC_KEYS: &[KeySpec<SacConfig>] = &[
    key!(
        "twin_q",
        [],
        [Algo::Sac],
        K::Bool,
        false,
        "two Q networks; the smaller estimate is used",
        |c| V::Bool(c.twin_q),
        |c, v| c.twin_q = v.bool()
    ),
    key!(
        "initial_alpha",
        [],
        [Algo::Sac],
        K::Float {
            min: 0.0,
            max: f64::INFINITY,
            min_inclusive: false
        },
        false,
        "the entropy weight α at the start (a checkpoint carries the tuned one)",
        |c| V::Float(c.initial_alpha),
        |c, v| c.initial_alpha = v.f64()
    ),
    key!(
        "target_entropy",
        [],
        [Algo::Sac],
        K::FloatOrAuto {
            min: -1e6,
            max: 1e6
        },
        true,
        "the entropy α is tuned towards (auto: -(action size))",
        |c| c.target_entropy.map_or(V::Str("auto".into()), V::Float),
        |c, v| c.target_entropy = (!v.is_unset()).then(|| v.f64())
    ),
    key!(
        "actor_lr",
        [],
        [Algo::Sac],
        K::Float {
            min: 0.0,
            max: f64::INFINITY,
            min_inclusive: false
        },
        true,
        "the policy's learning rate",
        |c| V::Float(c.actor_lr),
        |c, v| c.actor_lr = v.f64()
    ),
    key!(
        "critic_lr",
        [],
        [Algo::Sac],
        K::Float {
            min: 0.0,
            max: f64::INFINITY,
            min_inclusive: false
        },
        true,
        "the Q networks' learning rate",
        |c| V::Float(c.critic_lr),
        |c, v| c.critic_lr = v.f64()
    ),
    key!(
        "alpha_lr",
        [],
        [Algo::Sac],
        K::Float {
            min: 0.0,
            max: f64::INFINITY,
            min_inclusive: true
        },
        true,
        "α's learning rate (0: α stays at initial_alpha)",
        |c| V::Float(c.alpha_lr),
        |c, v| c.alpha_lr = v.f64()
    ),
    key!(
        "exploration_noise_correlation",
        [],
        [Algo::Sac],
        K::Float {
            min: 0.0,
            max: 0.999,
            min_inclusive: true
        },
        true,
        "correlation ρ of the sampling noise from one step to the next, per env: ε ← ρε + √(1-ρ²)ξ (0: independent, as RLlib's; red noise explores sparse-reward control)",
        |c| V::Float(c.exploration_noise_correlation),
        |c, v| c.exploration_noise_correlation = v.f64()
    ),
];
