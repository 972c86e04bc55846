//! Settings of the off-policy algorithms (DQN, SAC): the replay buffer, n-step returns,
//! target networks and how much to train per sampled step. RLlib declares these on both
//! `DQNConfig` and `SACConfig`; here they are one section both read.

use super::Algo;
use super::key::{ConfigValue as V, KeyKind as K, KeySpec};
use crate::key;

/// The replay buffer (RLlib's `replay_buffer_config`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReplayConfig {
    /// Proportional prioritised replay (RLlib's `PrioritizedEpisodeReplayBuffer`), else
    /// uniform (`EpisodeReplayBuffer`).
    pub prioritized: bool,
    /// Transitions kept.
    pub capacity: usize,
    /// Priority exponent α (0: uniform).
    pub alpha: f64,
    /// Importance-weight exponent β (0: no correction).
    pub beta: f64,
}

/// Replay, n-step and target-network settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OffPolicyConfig {
    /// Steps summed into one return, `(lo, hi)`: `lo == hi` for a fixed n, else n is drawn
    /// per sample from `lo..hi` (upper bound excluded, as RLlib draws it).
    pub n_step: (usize, usize),
    /// The replay buffer.
    pub replay: ReplayConfig,
    /// Target update: `target ← τ·online + (1 - τ)·target` (1: a copy).
    pub tau: f64,
    /// Env steps between target updates (0: after every gradient step).
    pub target_network_update_freq: usize,
    /// Env steps sampled before the first gradient step.
    pub num_steps_sampled_before_learning_starts: usize,
    /// Replayed rows per sampled env step (`None`: one gradient step per sample call).
    pub training_intensity: Option<f64>,
    /// Whether checkpoints carry the replay buffer (so a restored run continues exactly).
    pub store_buffer_in_checkpoints: bool,
}

impl OffPolicyConfig {
    /// RLlib's defaults for `algo` (DQN's for PPO, which does not read them).
    pub fn for_algo(algo: Algo) -> Self {
        let dqn = OffPolicyConfig {
            n_step: (1, 1),
            replay: ReplayConfig {
                prioritized: true,
                capacity: 50_000,
                alpha: 0.6,
                beta: 0.4,
            },
            tau: 1.0,
            target_network_update_freq: 500,
            num_steps_sampled_before_learning_starts: 1000,
            training_intensity: None,
            // RLlib's default is false; here a checkpoint resumes exactly by default, at the
            // cost of its size (capacity × a transition).
            store_buffer_in_checkpoints: true,
        };
        match algo {
            Algo::Ppo | Algo::Dqn | Algo::Bc | Algo::Marwil => dqn,
            Algo::Sac => OffPolicyConfig {
                replay: ReplayConfig {
                    capacity: 1_000_000,
                    ..dqn.replay
                },
                tau: 0.005,
                target_network_update_freq: 0,
                num_steps_sampled_before_learning_starts: 1500,
                ..dqn
            },
        }
    }
}

/// RLlib's buffer types; the prioritised ones sample by priority.
const BUFFERS: &[&str] = &[
    "PrioritizedEpisodeReplayBuffer",
    "EpisodeReplayBuffer",
    "MultiAgentPrioritizedReplayBuffer",
    "MultiAgentReplayBuffer",
    "PrioritizedReplayBuffer",
    "ReplayBuffer",
];

/// The `replay_buffer_config` section.
pub static REPLAY_KEYS: &[KeySpec<OffPolicyConfig>] = &[
    key!(
        "type",
        [],
        [],
        K::Choice(BUFFERS),
        true,
        "prioritised (proportional) or uniform replay",
        |c| V::Str(
            if c.replay.prioritized {
                BUFFERS[0]
            } else {
                BUFFERS[1]
            }
            .into()
        ),
        |c, v| c.replay.prioritized = v.str().contains("Prioritized")
    ),
    key!(
        "capacity",
        [],
        [],
        K::Count {
            min: 1,
            max: u64::MAX
        },
        true,
        "transitions kept",
        |c| V::Int(c.replay.capacity as u64),
        |c, v| c.replay.capacity = v.usize()
    ),
    key!(
        "alpha",
        [],
        [],
        K::Float {
            min: 0.0,
            max: f64::INFINITY,
            min_inclusive: true
        },
        true,
        "priority exponent (0: uniform)",
        |c| V::Float(c.replay.alpha),
        |c, v| c.replay.alpha = v.f64()
    ),
    key!(
        "beta",
        [],
        [],
        K::Float {
            min: 0.0,
            max: 1.0,
            min_inclusive: true
        },
        true,
        "importance-weight exponent (0: no correction)",
        |c| V::Float(c.replay.beta),
        |c, v| c.replay.beta = v.f64()
    ),
];

/// Keys of DQN and SAC.
pub static OFF_POLICY_KEYS: &[KeySpec<OffPolicyConfig>] = &[
    key!(
        "n_step",
        [],
        [Algo::Dqn, Algo::Sac],
        K::CountOrRange { min: 1 },
        true,
        "steps per return; [lo, hi]: drawn per sample from lo..hi-1",
        |c| if c.n_step.0 == c.n_step.1 {
            V::Int(c.n_step.0 as u64)
        } else {
            V::List(vec![V::Int(c.n_step.0 as u64), V::Int(c.n_step.1 as u64)])
        },
        |c, v| c.n_step = match v.items() {
            [lo, hi] => (lo.usize(), hi.usize()),
            _ => (v.usize(), v.usize()),
        }
    ),
    key!(section "replay_buffer_config", [], [Algo::Dqn, Algo::Sac], true, "the replay buffer", REPLAY_KEYS),
    key!(
        "tau",
        [],
        [Algo::Dqn, Algo::Sac],
        K::Float {
            min: 0.0,
            max: 1.0,
            min_inclusive: false
        },
        true,
        "target update weight (1: copy)",
        |c| V::Float(c.tau),
        |c, v| c.tau = v.f64()
    ),
    key!(
        "target_network_update_freq",
        [],
        [Algo::Dqn, Algo::Sac],
        K::Count {
            min: 0,
            max: u64::MAX
        },
        true,
        "env steps between target updates (0: every gradient step)",
        |c| V::Int(c.target_network_update_freq as u64),
        |c, v| c.target_network_update_freq = v.usize()
    ),
    key!(
        "num_steps_sampled_before_learning_starts",
        [],
        [Algo::Dqn, Algo::Sac],
        K::Count {
            min: 0,
            max: u64::MAX
        },
        true,
        "env steps sampled before the first gradient step",
        |c| V::Int(c.num_steps_sampled_before_learning_starts as u64),
        |c, v| c.num_steps_sampled_before_learning_starts = v.usize()
    ),
    key!(
        "training_intensity",
        [],
        [Algo::Dqn, Algo::Sac],
        K::FloatOrNull {
            min: 0.0,
            max: f64::INFINITY,
            min_inclusive: false
        },
        true,
        "replayed rows per sampled env step (null: one gradient step per sample call)",
        |c| V::from_option(c.training_intensity),
        |c, v| c.training_intensity = (!v.is_unset()).then(|| v.f64())
    ),
    key!(
        "store_buffer_in_checkpoints",
        [],
        [Algo::Dqn, Algo::Sac],
        K::Bool,
        true,
        "checkpoints carry the replay buffer, so that a restored run continues exactly",
        |c| V::Bool(c.store_buffer_in_checkpoints),
        |c, v| c.store_buffer_in_checkpoints = v.bool()
    ),
];

#[cfg(test)]
mod tests {
    #[test]
    fn off_policy_keys_belong_to_dqn_and_sac() {
        for k in super::OFF_POLICY_KEYS {
            assert!(
                k.algos == [super::Algo::Dqn, super::Algo::Sac],
                "{}",
                k.name
            );
        }
    }
}
