//! BC's and MARWIL's iteration: the next train batch of recorded rows (RLlib's offline
//! data through `iter_batches`), one learner update. No env runner samples; evaluation
//! (`evaluation_interval`) is how the policy is seen to act.

use std::time::Instant;

use algorithms::metrics::{self as metrics, learner as lm};

use super::{Algorithm, TrainError, TrainResult};
use crate::learners::Learner;

impl Algorithm {
    /// Reads the next batch and updates; returns (reading s, learner s, 0 env steps, 0
    /// episodes).
    pub(super) fn train_offline(
        &mut self,
        iteration: u64,
        r: &mut TrainResult,
    ) -> Result<(f64, f64, u64, usize), TrainError> {
        let start = Instant::now();
        let size = self.cfg.train_batch_size;
        let trained = (iteration - 1) * size as u64;
        let input = self.offline.as_mut().ok_or_else(|| {
            TrainError::Setup(format!(
                "{} learns from `input`, which is not set",
                self.cfg.algo
            ))
        })?;
        let batch = input
            .next_batch(size)
            .map_err(|message| TrainError::Runner { iteration, message })?;
        let reading_s = start.elapsed().as_secs_f64();

        let learn_start = Instant::now();
        let Learner::Marwil(learner) = &mut self.learner else {
            unreachable!("an offline run has MARWIL's learner")
        };
        let m = learner
            .update(&batch, trained)
            .map_err(|source| TrainError::Learner { iteration, source })?;
        let learner_s = learn_start.elapsed().as_secs_f64();
        r.set_learner(&m, false);
        r.set(lm::NUM_UPDATES, 1.0);
        r.set(lm::MOVING_AVERAGE_SQD_ADV_NORM, learner.sqd_adv_norm());
        r.set(
            metrics::NUM_ENV_STEPS_TRAINED_LIFETIME,
            (trained + batch.len() as u64) as f64,
        );
        Ok((reading_s, learner_s, 0, 0))
    }
}
