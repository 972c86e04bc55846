//! PPO's iteration: one sample call on every runner (the train batch), one learner update.

use std::time::Instant;

use algorithms::SampleBatch;

use super::{Algorithm, TrainError, TrainResult};
use crate::learners::Learner;

impl Algorithm {
    /// Samples the train batch and updates; returns (sampling s, learner s, env steps,
    /// episodes).
    pub(super) fn train_on_policy(
        &mut self,
        iteration: u64,
        r: &mut TrainResult,
    ) -> Result<(f64, f64, u64, usize), TrainError> {
        let start = Instant::now();
        let changed = self.weights_for_runners(iteration)?;
        let steps = self.cfg.rollout_fragment_length();
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
        let sampling_s = start.elapsed().as_secs_f64();
        let mut batch = SampleBatch::new(
            self.spec.obs_dim(),
            self.spec.action_dim(),
            self.spec.dist_width(),
        );
        for o in &outputs {
            batch.append(&o.batch);
        }
        let new_episodes = self.absorb(&outputs);
        let sampled = batch.len() as u64;

        let learn_start = Instant::now();
        self.runner_weights_stale = true;
        let Learner::Ppo(learner) = &mut self.learner else {
            unreachable!("an on-policy run has PPO's learner")
        };
        let m = learner
            .update(&batch, self.counters.env_steps)
            .map_err(|source| TrainError::Learner { iteration, source })?;
        let learner_s = learn_start.elapsed().as_secs_f64();
        r.set_learner(&m, true);
        Ok((sampling_s, learner_s, sampled, new_episodes))
    }
}
