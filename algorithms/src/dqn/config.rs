//! DQN's settings and their keys (replay and target networks are in
//! [`crate::config::off_policy`], shared with SAC).

use crate::config::Algo;
use crate::config::key::{ConfigValue as V, KeyKind as K, KeySpec};
use crate::key;

/// DQN's own settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DqnConfig {
    /// Double Q-learning: the online network picks the next action, the target values it.
    pub double_q: bool,
    /// Dueling heads: Q = V + A - mean(A).
    pub dueling: bool,
    /// Piecewise-linear ε of ε-greedy exploration over sampled env steps.
    pub epsilon: Vec<(u64, f64)>,
    /// The TD loss: Huber (δ = 1) or squared error.
    pub td_error_loss_fn: TdLoss,
}

/// DQN's loss on the TD error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TdLoss {
    /// `0.5 x²` within ±1, `|x| - 0.5` beyond (torch's `HuberLoss`).
    Huber,
    /// `x²` (torch's `MSELoss`).
    Mse,
}

impl Default for DqnConfig {
    fn default() -> Self {
        DqnConfig {
            double_q: true,
            dueling: true,
            epsilon: vec![(0, 1.0), (10_000, 0.05)],
            td_error_loss_fn: TdLoss::Huber,
        }
    }
}

/// DQN's keys.
pub static DQN_KEYS: &[KeySpec<DqnConfig>] = &[
    key!(
        "double_q",
        [],
        [Algo::Dqn],
        K::Bool,
        true,
        "double Q-learning: the online network picks the next action, the target values it",
        |c| V::Bool(c.double_q),
        |c, v| c.double_q = v.bool()
    ),
    key!(
        "dueling",
        [],
        [Algo::Dqn],
        K::Bool,
        false,
        "dueling heads: Q = V + A - mean(A)",
        |c| V::Bool(c.dueling),
        |c, v| c.dueling = v.bool()
    ),
    key!(
        "epsilon",
        [],
        [Algo::Dqn],
        K::Schedule,
        true,
        "ε-greedy exploration, piecewise linear over sampled env steps",
        |c| V::from_schedule(&Some(c.epsilon.clone())),
        |c, v| c.epsilon = v.schedule().unwrap_or_default()
    ),
    key!(
        "td_error_loss_fn",
        [],
        [Algo::Dqn],
        K::Choice(&["huber", "mse"]),
        true,
        "loss on the TD error",
        |c| V::Str(
            match c.td_error_loss_fn {
                TdLoss::Huber => "huber",
                TdLoss::Mse => "mse",
            }
            .into()
        ),
        |c, v| c.td_error_loss_fn = if v.str() == "mse" {
            TdLoss::Mse
        } else {
            TdLoss::Huber
        }
    ),
];
