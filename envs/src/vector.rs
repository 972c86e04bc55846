//! A vector env: N copies of an env stepped in one call, into contiguous buffers.
//!
//! Autoreset follows Gymnasium's `AutoresetMode.SAME_STEP`: when a sub-env's episode ends on
//! a step, it is reset within that same step. The returned observation row is then the first
//! observation of the next episode, and the last observation of the finished episode is kept
//! in [`VectorEnv::final_obs`] (Gymnasium's `info["final_obs"]`), where a learner bootstraps
//! the value of a truncated episode from it. Rewards and flags of that step belong to the
//! finished episode.

use crate::{Action, Env, Space};

/// The actions of all sub-envs for one step.
#[derive(Debug, Clone, Copy)]
pub enum ActionBatch<'a> {
    /// One discrete action per sub-env.
    Discrete(&'a [i64]),
    /// `num_envs × action_dim` values, row-major.
    Continuous(&'a [f32]),
}

/// N environments stepped together. The buffers are allocated once and reused every step.
#[derive(Debug)]
pub struct VectorEnv<E> {
    envs: Vec<E>,
    obs_dim: usize,
    obs: Vec<f32>,
    final_obs: Vec<f32>,
    rewards: Vec<f32>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
}

impl<E: Env> VectorEnv<E> {
    /// A vector env over `envs` (at least one; all with the same spaces).
    ///
    /// # Panics
    /// If `envs` is empty or the spaces differ.
    pub fn new(envs: Vec<E>) -> Self {
        assert!(!envs.is_empty(), "a vector env needs at least one env");
        let obs_space = envs[0].observation_space().clone();
        assert!(
            envs.iter().all(|e| *e.observation_space() == obs_space
                && e.action_space() == envs[0].action_space()),
            "every env of a vector env must have the same spaces"
        );
        let n = envs.len();
        let obs_dim = obs_space.flat_dim();
        VectorEnv {
            envs,
            obs_dim,
            obs: vec![0.0; n * obs_dim],
            final_obs: vec![0.0; n * obs_dim],
            rewards: vec![0.0; n],
            terminated: vec![false; n],
            truncated: vec![false; n],
        }
    }

    /// How many sub-envs.
    pub fn num_envs(&self) -> usize {
        self.envs.len()
    }

    /// Values per observation row.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// One sub-env's observation space.
    pub fn single_observation_space(&self) -> &Space {
        self.envs[0].observation_space()
    }

    /// One sub-env's action space.
    pub fn single_action_space(&self) -> &Space {
        self.envs[0].action_space()
    }

    /// Resets every sub-env; with a seed, sub-env `i` gets `seed + i` (Gymnasium's rule).
    /// Returns the observations, `num_envs × obs_dim`.
    pub fn reset(&mut self, seed: Option<u64>) -> &[f32] {
        for (i, (env, row)) in self
            .envs
            .iter_mut()
            .zip(self.obs.chunks_exact_mut(self.obs_dim))
            .enumerate()
        {
            env.reset_into(seed.map(|s| s.wrapping_add(i as u64)), row);
        }
        self.terminated.fill(false);
        self.truncated.fill(false);
        self.rewards.fill(0.0);
        &self.obs
    }

    /// Steps every sub-env once, resetting those whose episode ends (see the module docs).
    ///
    /// # Panics
    /// If the batch has the wrong length or kind for the action space.
    pub fn step(&mut self, actions: ActionBatch<'_>) {
        let n = self.envs.len();
        match actions {
            ActionBatch::Discrete(a) => {
                assert_eq!(a.len(), n, "one discrete action per env");
                self.step_each(|i| Action::Discrete(a[i]));
            }
            ActionBatch::Continuous(a) => {
                assert_eq!(a.len() % n, 0, "num_envs × action_dim continuous actions");
                let dim = a.len() / n;
                self.step_each(|i| Action::Continuous(&a[i * dim..][..dim]));
            }
        }
    }

    #[inline]
    fn step_each<'a>(&mut self, action: impl Fn(usize) -> Action<'a>) {
        let d = self.obs_dim;
        let rows = self
            .envs
            .iter_mut()
            .zip(self.obs.chunks_exact_mut(d))
            .zip(self.final_obs.chunks_exact_mut(d))
            .zip(self.rewards.iter_mut())
            .zip(self.terminated.iter_mut().zip(self.truncated.iter_mut()));
        for (i, ((((env, row), final_row), reward), (terminated, truncated))) in rows.enumerate() {
            let t = env.step_into(action(i), row);
            *reward = t.reward as f32;
            *terminated = t.terminated;
            *truncated = t.truncated;
            if t.terminated || t.truncated {
                final_row.copy_from_slice(row);
                env.reset_into(None, row);
            }
        }
    }

    /// The current observations, `num_envs × obs_dim`, row-major.
    pub fn obs(&self) -> &[f32] {
        &self.obs
    }

    /// Rewards of the last step.
    pub fn rewards(&self) -> &[f32] {
        &self.rewards
    }

    /// `terminated` flags of the last step.
    pub fn terminated(&self) -> &[bool] {
        &self.terminated
    }

    /// `truncated` flags of the last step.
    pub fn truncated(&self) -> &[bool] {
        &self.truncated
    }

    /// Last observations of the episodes that ended on the last step; row `i` is meaningful
    /// only where `terminated[i] || truncated[i]`.
    pub fn final_obs(&self) -> &[f32] {
        &self.final_obs
    }

    /// Every sub-env's saved state and the current observations, if every sub-env can save.
    pub fn save_state(&self) -> Option<(Vec<Vec<u64>>, Vec<f32>)> {
        let envs = self
            .envs
            .iter()
            .map(Env::save_state)
            .collect::<Option<Vec<_>>>()?;
        Some((envs, self.obs.clone()))
    }

    /// Resumes what [`save_state`](Self::save_state) returned.
    pub fn load_state(&mut self, envs: &[Vec<u64>], obs: &[f32]) -> Result<(), String> {
        if envs.len() != self.envs.len() || obs.len() != self.obs.len() {
            return Err(format!(
                "a state of {} envs and {} observation values does not fit {} envs of {} values",
                envs.len(),
                obs.len(),
                self.envs.len(),
                self.obs_dim
            ));
        }
        for (e, w) in self.envs.iter_mut().zip(envs) {
            e.load_state(w)?;
        }
        self.obs.copy_from_slice(obs);
        Ok(())
    }

    /// The sub-envs, to read or set their state.
    pub fn envs_mut(&mut self) -> &mut [E] {
        &mut self.envs
    }
}
