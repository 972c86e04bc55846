//! DQN's and SAC's iteration (RLlib's `DQN.training_step`, repeated until the iteration has
//! sampled `min_sample_timesteps_per_iteration` env steps): sample one fragment per env into
//! the replay buffer, and once `num_steps_sampled_before_learning_starts` steps are in,
//! replay `train_batch_size` n-step transitions into a gradient step and update their
//! priorities. `training_intensity` sets how many of each happen per training step, as
//! RLlib's `calculate_rr_weights` does.

use std::time::Instant;

use algorithms::metrics as m;
use algorithms::metrics::learner as lm;

use super::{Algorithm, TrainError, TrainResult};
use crate::learners::Learner;

/// How many sample calls and how many gradient steps one training step makes: RLlib's
/// `calculate_rr_weights` (the native ratio counts the driver's runner too, `+ 1`, as RLlib's
/// does).
pub fn store_and_train_weights(cfg: &algorithms::AlgorithmConfig) -> (usize, usize) {
    let Some(intensity) = cfg.off_policy.training_intensity else {
        return (1, 1);
    };
    let native = cfg.train_batch_size as f64
        / (cfg.rollout_fragment_length() * cfg.num_envs_per_env_runner * (cfg.num_env_runners + 1))
            as f64;
    let w = intensity / native;
    if w < 1.0 {
        ((1.0 / w).round().max(1.0) as usize, 1)
    } else {
        (1, w.round().max(1.0) as usize)
    }
}

impl Algorithm {
    /// Training steps until enough env steps were sampled; returns (sampling s, learner s,
    /// env steps, episodes).
    pub(super) fn train_off_policy(
        &mut self,
        iteration: u64,
        r: &mut TrainResult,
    ) -> Result<(f64, f64, u64, usize), TrainError> {
        let (store, train) = store_and_train_weights(&self.cfg);
        let steps = self.cfg.rollout_fragment_length();
        let envs = self.cfg.num_envs_per_env_runner;
        let (mut sampling_s, mut learner_s) = (0.0, 0.0);
        let (mut sampled, mut new_episodes, mut updates) = (0u64, 0usize, 0usize);
        let mut sums: Vec<(&'static str, f64)> = Vec::new();
        let learn_err = |source| TrainError::Learner { iteration, source };
        loop {
            for _ in 0..store {
                let t = Instant::now();
                let changed = self.weights_for_runners(iteration)?;
                let outputs = self.runners.sample(
                    &self.runtime,
                    &self.runner_weights,
                    changed,
                    self.filter.as_ref(),
                    steps,
                    iteration,
                    &mut self.restarts,
                    &mut self.warnings,
                )?;
                let buffer = self
                    .replay
                    .as_mut()
                    .expect("an off-policy run has a buffer");
                for (k, o) in outputs.iter().enumerate() {
                    buffer.add(&o.batch, k * envs);
                    sampled += o.batch.len() as u64;
                }
                new_episodes += self.absorb(&outputs);
                sampling_s += t.elapsed().as_secs_f64();
            }
            let ready = self.counters.env_steps
                >= self.cfg.off_policy.num_steps_sampled_before_learning_starts as u64;
            if ready {
                let t = Instant::now();
                for _ in 0..train {
                    let buffer = self
                        .replay
                        .as_mut()
                        .expect("an off-policy run has a buffer");
                    let batch = buffer.sample(
                        self.cfg.train_batch_size,
                        self.cfg.off_policy.n_step,
                        self.cfg.gamma as f32,
                        self.cfg.off_policy.replay.beta,
                    );
                    if batch.is_empty() {
                        continue;
                    }
                    let env_steps = self.counters.env_steps;
                    let (metrics, td) = match &mut self.learner {
                        Learner::Dqn(l) => {
                            let u = l.update(&batch, env_steps).map_err(learn_err)?;
                            (u.metrics, u.td_errors)
                        }
                        Learner::Sac(l) => {
                            let u = l.update(&batch, env_steps).map_err(learn_err)?;
                            (u.metrics, u.td_errors)
                        }
                        Learner::Ppo(_) | Learner::Marwil(_) => {
                            unreachable!("PPO trains on policy, BC and MARWIL offline")
                        }
                    };
                    buffer.update_priorities(&batch.indices, &td);
                    self.runner_weights_stale = true;
                    // Metrics are means over the iteration's gradient steps, counters the last.
                    for (k, v) in metrics {
                        match sums.iter_mut().find(|(n, _)| *n == k) {
                            Some(e) => e.1 += v,
                            None => sums.push((k, v)),
                        }
                    }
                    updates += 1;
                }
                learner_s += t.elapsed().as_secs_f64();
            }
            if sampled >= self.cfg.min_sample_timesteps_per_iteration.max(1) as u64 {
                break;
            }
        }
        for (k, v) in sums {
            let value = if k == lm::NUM_TARGET_UPDATES {
                v
            } else {
                v / updates.max(1) as f64
            };
            r.set(k, value);
        }
        if let Some(last) = r.metrics.get_mut(lm::NUM_TARGET_UPDATES) {
            // The sum over steps of a running count is not a count: report the last one.
            let (_, n) = match &self.learner {
                Learner::Dqn(l) => l.target_counters(),
                Learner::Sac(l) => l.target_counters(),
                Learner::Ppo(_) | Learner::Marwil(_) => (0, 0),
            };
            *last = n as f64;
        }
        r.set(lm::NUM_UPDATES, updates as f64);
        let stored = self.replay.as_ref().map_or(0, |b| b.len());
        r.set(m::REPLAY_BUFFER_SIZE, stored as f64);
        Ok((sampling_s, learner_s, sampled, new_episodes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_intensity_sets_rllibs_weights() {
        let mut c = algorithms::AlgorithmConfig::new(algorithms::Algo::Dqn);
        assert_eq!(store_and_train_weights(&c), (1, 1));
        // Native ratio 32 / (1 × 1 × 1) = 32; intensity 64 → two gradient steps per sample.
        c.off_policy.training_intensity = Some(64.0);
        assert_eq!(store_and_train_weights(&c), (1, 2));
        // Intensity 8 → four sample calls per gradient step.
        c.off_policy.training_intensity = Some(8.0);
        assert_eq!(store_and_train_weights(&c), (4, 1));
    }
}
