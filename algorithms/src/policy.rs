//! What an env runner asks of an algorithm's module: actions for a batch of observations,
//! exploring (RLlib's `forward_exploration` + sampling) or greedy (`forward_inference`), and
//! what to record with them. Each algorithm implements it for its module ([`crate::ppo`]'s
//! policy samples its distribution, DQN's is ε-greedy over Q, SAC's samples a squashed
//! Gaussian); the env runner knows none of them.

use envs::NpRandom;

use crate::nn::Weights;

/// The actions of one batch of observations, and what the learner needs recorded.
#[derive(Debug, Clone, Default)]
pub struct Actions {
    /// Actions as the module produced them (rows × `action_dim`; a discrete action as its
    /// index): what the sample batch records.
    pub actions: Vec<f32>,
    /// Discrete actions for the env, one per row.
    pub env_discrete: Vec<i64>,
    /// `Box` actions for the env (mapped onto its bounds), rows × `action_dim`.
    pub env_continuous: Vec<f32>,
    /// Log-probabilities of the actions under the sampling policy (PPO).
    pub logp: Vec<f32>,
    /// The distribution inputs (PPO's KL term), rows × `dist_width`.
    pub dist_inputs: Vec<f32>,
}

/// A module acting in env runners and evaluation.
pub trait Policy: Send {
    /// Values per action (1 for a discrete action).
    fn action_dim(&self) -> usize;
    /// Values per row of recorded distribution inputs (0 when none are recorded).
    fn dist_width(&self) -> usize;
    /// Whether actions are discrete.
    fn discrete(&self) -> bool;
    /// Exploring actions for `rows` observations; `t` is the run's sampled env steps (for
    /// schedules such as DQN's ε).
    fn explore(&mut self, obs: &[f32], rows: usize, t: u64, rng: &mut NpRandom, out: &mut Actions);
    /// Greedy actions (evaluation).
    fn greedy(&mut self, obs: &[f32], rows: usize, out: &mut Actions);
    /// Takes the learner's new inference weights.
    fn set_weights(&mut self, w: &Weights) -> Result<(), String>;
    /// What the policy carries from one call to the next (SAC's correlated noise), for
    /// checkpoints; empty for most.
    fn state(&self) -> Vec<f32> {
        Vec::new()
    }
    /// Resumes [`state`](Policy::state)'s output; errors name what does not fit.
    fn set_state(&mut self, s: &[f32]) -> Result<(), String> {
        if s.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "this policy keeps no state, but {} values were given",
                s.len()
            ))
        }
    }
}

impl Actions {
    /// Sizes the buffers for `rows` rows (no allocation once they are large enough).
    pub fn resize(&mut self, rows: usize, action_dim: usize, dist_width: usize, discrete: bool) {
        self.actions.resize(rows * action_dim, 0.0);
        self.logp.resize(rows, 0.0);
        self.dist_inputs.resize(rows * dist_width, 0.0);
        if discrete {
            self.env_discrete.resize(rows, 0);
        } else {
            self.env_continuous.resize(rows * action_dim, 0.0);
        }
    }
}
