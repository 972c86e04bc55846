//! The MARWIL learner (BC with `beta = 0`): one gradient step per train batch of recorded
//! rows, on PPO's module and backends.
//!
//! Per row: `A = R - V(s)`; `c² ← c² + rate · (mean(A²) - c²)`; the action weight
//! `w = exp(β · A / (1e-8 + √c²))` (1 for BC). Loss: `-mean(w · log π(a|s)) + vf_coeff ·
//! mean((V(s) - R)²)`, `w` held constant, as RLlib's `MARWILTorchLearner`. The gradient is
//! PPO's surrogate gradient at ratio 1 with the weights as advantages, so the loss code, the
//! clipping and Adam are PPO's.

use super::super::ppo::{ActionSpec, PpoLearner, PpoModuleSpec};
use crate::config::AlgorithmConfig;
use crate::distributions::{gaussian_logp, log_sum_exp};
use crate::error::LearnerError;
use crate::learner::{LearnerMetrics, explained_variance};
use crate::nn::Weights;

/// Recorded rows to learn from: observations, actions (indices as `f32`, or values) and the
/// discounted returns from each row to its episode's end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OfflineBatch {
    /// Observation size.
    pub obs_dim: usize,
    /// `rows × obs_dim` observations.
    pub obs: Vec<f32>,
    /// `rows × action_dim` actions.
    pub actions: Vec<f32>,
    /// One discounted return per row.
    pub returns: Vec<f32>,
}

impl OfflineBatch {
    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.returns.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.returns.is_empty()
    }
}

/// The MARWIL (and BC) learner.
#[derive(Debug)]
pub struct MarwilLearner {
    ppo: PpoLearner,
    /// The moving average of squared advantages, `c²`.
    sqd_adv_norm: f64,
}

impl MarwilLearner {
    /// A learner for `spec` starting from `weights`.
    pub fn new(
        cfg: AlgorithmConfig,
        spec: PpoModuleSpec,
        weights: &Weights,
        seed: u64,
    ) -> Result<Self, LearnerError> {
        Ok(MarwilLearner {
            sqd_adv_norm: cfg.marwil.moving_average_sqd_adv_norm_start,
            ppo: PpoLearner::new(cfg, spec, weights, seed)?,
        })
    }

    /// The PPO learner underneath (weights, optimizer state).
    pub fn ppo(&self) -> &PpoLearner {
        &self.ppo
    }

    /// The PPO learner underneath, to restore its state.
    pub fn ppo_mut(&mut self) -> &mut PpoLearner {
        &mut self.ppo
    }

    /// The moving average of squared advantages.
    pub fn sqd_adv_norm(&self) -> f64 {
        self.sqd_adv_norm
    }

    /// Restores the moving average (from a checkpoint).
    pub fn set_sqd_adv_norm(&mut self, v: f64) {
        self.sqd_adv_norm = v;
    }

    /// One gradient step on `batch`; `rows_trained` (rows learned from before this batch)
    /// drives the learning-rate schedule.
    pub fn update(
        &mut self,
        batch: &OfflineBatch,
        rows_trained: u64,
    ) -> Result<LearnerMetrics, LearnerError> {
        let result = self.run_update(batch, rows_trained);
        self.ppo.end_update();
        result
    }

    fn run_update(
        &mut self,
        batch: &OfflineBatch,
        rows_trained: u64,
    ) -> Result<LearnerMetrics, LearnerError> {
        let rows = batch.len();
        if rows == 0 {
            return Ok(LearnerMetrics::default());
        }
        let cfg = self.ppo.config().clone();
        let (beta, vf_coeff) = (cfg.marwil.beta, cfg.marwil.vf_coeff);
        let lr = cfg.lr_at(rows_trained);
        let spec = self.ppo.spec().clone();
        let (ad, w) = (spec.action.action_dim(), spec.action.dist_width());
        for (what, v) in [("observations", &batch.obs), ("actions", &batch.actions)] {
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(LearnerError::Mismatch(format!(
                    "recorded {what}: value {i} is {}; offline data must be finite",
                    v[i]
                )));
            }
        }
        let (head, values) = self.ppo.forward(&batch.obs, rows)?;
        let log_std = self.ppo.log_std().map(<[f32]>::to_vec);

        // log π(a|s) of every recorded action, and its distribution inputs.
        let mut logp = Vec::with_capacity(rows);
        let mut dist_inputs = Vec::with_capacity(rows * w);
        for r in 0..rows {
            let a = &batch.actions[r * ad..][..ad];
            match (&spec.action, &log_std) {
                (ActionSpec::Discrete(n), _) => {
                    let z = &head[r * n..][..*n];
                    let act = a[0] as usize;
                    if a[0] < 0.0 || act >= *n || a[0].fract() != 0.0 {
                        return Err(LearnerError::Mismatch(format!(
                            "recorded action {} is not one of the {n} discrete actions",
                            a[0]
                        )));
                    }
                    logp.push(z[act] - log_sum_exp(z));
                    dist_inputs.extend_from_slice(z);
                }
                (ActionSpec::Box { dim, .. }, Some(ls)) => {
                    let mean = &head[r * dim..][..*dim];
                    logp.push(gaussian_logp(a, mean, ls));
                    dist_inputs.extend_from_slice(mean);
                    dist_inputs.extend_from_slice(ls);
                }
                (ActionSpec::Box { .. }, None) => {
                    return Err(LearnerError::Mismatch(
                        "a Box policy without log_std".into(),
                    ));
                }
            }
        }

        // Advantages, the moving average of their squares, and the action weights.
        let adv: Vec<f64> = batch
            .returns
            .iter()
            .zip(&values)
            .map(|(&r, &v)| f64::from(r) - f64::from(v))
            .collect();
        let weights: Vec<f32> = if beta == 0.0 {
            vec![1.0; rows]
        } else {
            let mean_sq = adv.iter().map(|a| a * a).sum::<f64>() / rows as f64;
            let rate = cfg.marwil.moving_average_sqd_adv_norm_update_rate;
            self.sqd_adv_norm += rate * (mean_sq - self.sqd_adv_norm);
            let norm = 1e-8 + self.sqd_adv_norm.sqrt();
            adv.iter().map(|a| (beta * a / norm).exp() as f32).collect()
        };
        let policy_loss = -weights
            .iter()
            .zip(&logp)
            .map(|(&w, &l)| f64::from(w) * f64::from(l))
            .sum::<f64>()
            / rows as f64;

        let loss = self.ppo.loss_mut();
        loss.clear_rows();
        loss.clip_param = f32::INFINITY;
        loss.vf_clip_param = f32::INFINITY;
        loss.vf_loss_coeff = vf_coeff as f32;
        loss.entropy_coeff = 0.0;
        loss.kl_coeff = 0.0;
        loss.actions.extend_from_slice(&batch.actions);
        loss.old_logp.extend_from_slice(&logp);
        loss.old_dist_inputs.extend_from_slice(&dist_inputs);
        loss.advantages.extend_from_slice(&weights);
        loss.value_targets.extend_from_slice(&batch.returns);
        let stats = self.ppo.step(&batch.obs, rows, lr, rows_trained, &|| {
            format!("the batch of {rows} recorded rows after {rows_trained} trained")
        })?;
        Ok(LearnerMetrics {
            total_loss: policy_loss + vf_coeff * stats.vf,
            policy_loss,
            vf_loss: stats.vf,
            vf_explained_var: explained_variance(&batch.returns, &values),
            entropy: stats.entropy,
            curr_lr: lr,
            gradients_global_norm: stats.grad_norm,
            num_minibatches: 1,
            ..LearnerMetrics::default()
        })
    }
}
