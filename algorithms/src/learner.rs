//! The PPO learner: GAE, advantage standardisation, epochs of shuffled minibatches, and
//! RLlib's adaptive KL coefficient. It reads top to bottom like the paper (and like CleanRL's
//! `ppo.py`); RLlib's names are used for every metric.
//!
//! The tensor work (the network, the loss, gradients, the optimizer) sits behind
//! [`LearnerBackend`], so another backend (a fused CPU path, tch) can replace candle without
//! touching the algorithm. [`CandleBackend`](crate::candle_backend::CandleBackend) is the
//! general one, on the CPU or CUDA.

use envs::NpRandom;

use crate::candle_backend::CandleBackend;
use crate::config::{AlgorithmConfig, Device, LearnerBackendKind};
use crate::fused::FusedBackend;
use crate::gae::{compute_gae, standardize};
use crate::module::{MlpSpec, NamedTensor, Weights};
use crate::sample_batch::SampleBatch;

/// Errors of the learner.
#[derive(Debug, thiserror::Error)]
pub enum LearnerError {
    /// A tensor operation failed (shapes, device).
    #[error("learner: {0}")]
    Candle(#[from] candle_core::Error),
    /// The loss became NaN or infinite: the terms of the minibatch, and (filled in by
    /// [`PpoLearner`]) which term it was and the configured values that feed it.
    #[error("the loss is not finite{explanation}")]
    NonFinite {
        /// The minibatch's loss terms.
        stats: MinibatchStats,
        /// Where it happened and what feeds the term, from the learner.
        explanation: String,
    },
    /// The batch holds a non-finite reward or observation (the env produced it).
    #[error("{0}")]
    NonFiniteInput(String),
    /// Weights or optimizer state that do not fit the module.
    #[error("{0}")]
    Mismatch(String),
    /// The learner's threads could not be started, or one of them failed (panicked).
    #[error("learner threads: {0}")]
    Threads(String),
}

/// What one `update` reports (averaged over its minibatches), with RLlib's names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LearnerMetrics {
    /// Mean total loss.
    pub total_loss: f64,
    /// Mean clipped-surrogate loss.
    pub policy_loss: f64,
    /// Mean clipped value loss.
    pub vf_loss: f64,
    /// Explained variance of the value targets by the value predictions.
    pub vf_explained_var: f64,
    /// Mean entropy of the current policy.
    pub entropy: f64,
    /// Mean KL(sampling policy ‖ current policy).
    pub mean_kl_loss: f64,
    /// KL coefficient after this update's adaptation.
    pub curr_kl_coeff: f64,
    /// Learning rate used.
    pub curr_lr: f64,
    /// Mean global gradient norm before clipping.
    pub gradients_global_norm: f64,
    /// Minibatch updates applied.
    pub num_minibatches: usize,
}

/// Adam's state, in the order of the module's parameters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OptimizerState {
    /// Steps taken.
    pub step: u64,
    /// First moments.
    pub exp_avg: Vec<NamedTensor>,
    /// Second moments.
    pub exp_avg_sq: Vec<NamedTensor>,
}

/// What one minibatch update reports.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MinibatchStats {
    /// Total loss.
    pub total: f64,
    /// Clipped-surrogate loss.
    pub policy: f64,
    /// Clipped value loss.
    pub vf: f64,
    /// Entropy.
    pub entropy: f64,
    /// KL from the sampling policy.
    pub kl: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// One minibatch on the host, column by column.
#[derive(Debug, Clone, Copy)]
pub struct MinibatchData<'a> {
    /// Observations, rows × obs_dim.
    pub obs: &'a [f32],
    /// Actions taken.
    pub actions: &'a [u32],
    /// Their log-probabilities under the sampling policy.
    pub old_logp: &'a [f32],
    /// The sampling policy's logits, rows × num_actions.
    pub old_logits: &'a [f32],
    /// Standardised advantages.
    pub advantages: &'a [f32],
    /// Value targets.
    pub value_targets: &'a [f32],
}

/// The tensor side of a PPO learner: a network, its loss, gradients and optimizer.
pub trait LearnerBackend: Send {
    /// Logits (rows × num_actions) and values (rows) of `rows` observations, without gradients.
    fn forward(&self, obs: &[f32], rows: usize) -> Result<(Vec<f32>, Vec<f32>), LearnerError>;
    /// Value predictions of `rows` observations, without gradients (what GAE needs).
    fn values(&mut self, obs: &[f32], rows: usize) -> Result<Vec<f32>, LearnerError> {
        Ok(self.forward(obs, rows)?.1)
    }
    /// Called when an update's minibatches are done (threads may go idle until the next).
    fn end_update(&mut self) {}
    /// PPO's loss on one minibatch, its gradients (clipped by global norm when configured)
    /// and one optimizer step at learning rate `lr`.
    fn train_minibatch(
        &mut self,
        mb: MinibatchData<'_>,
        kl_coeff: f64,
        lr: f64,
    ) -> Result<MinibatchStats, LearnerError>;
    /// The current weights.
    fn weights(&self) -> Result<Weights, LearnerError>;
    /// The optimizer's state.
    fn optimizer_state(&self) -> Result<OptimizerState, LearnerError>;
    /// Restores the optimizer's state; errors when it does not fit the module.
    fn set_optimizer_state(&mut self, s: &OptimizerState) -> Result<(), LearnerError>;
}

/// The PPO learner.
pub struct PpoLearner {
    cfg: AlgorithmConfig,
    spec: MlpSpec,
    backend: Box<dyn LearnerBackend>,
    kl_coeff: f64,
    rng: NpRandom,
}

impl std::fmt::Debug for PpoLearner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PpoLearner")
            .field("spec", &self.spec)
            .field("kl_coeff", &self.kl_coeff)
            .finish()
    }
}

impl PpoLearner {
    /// A learner for `spec` starting from `weights`, on the backend the config asks for
    /// (`auto`: the fused CPU path on the CPU, candle on CUDA); `seed` drives minibatch
    /// shuffling.
    pub fn new(
        cfg: AlgorithmConfig,
        spec: MlpSpec,
        weights: &Weights,
        seed: u64,
    ) -> Result<Self, LearnerError> {
        let backend: Box<dyn LearnerBackend> = match (cfg.learner_backend, cfg.device) {
            (LearnerBackendKind::Candle, _) | (LearnerBackendKind::Auto, Device::Cuda) => {
                Box::new(CandleBackend::new(&cfg, spec.clone(), weights)?)
            }
            (LearnerBackendKind::Fused, Device::Cuda) => {
                return Err(LearnerError::Mismatch(
                    "learner_backend: fused runs on the CPU only; use candle (or auto) with CUDA"
                        .into(),
                ));
            }
            (LearnerBackendKind::Fused | LearnerBackendKind::Auto, Device::Cpu) => {
                Box::new(FusedBackend::new(&cfg, spec.clone(), weights)?)
            }
        };
        Ok(Self::with_backend(cfg, spec, backend, seed))
    }

    /// A learner on any backend.
    pub fn with_backend(
        cfg: AlgorithmConfig,
        spec: MlpSpec,
        backend: Box<dyn LearnerBackend>,
        seed: u64,
    ) -> Self {
        PpoLearner {
            kl_coeff: cfg.kl_coeff,
            cfg,
            spec,
            backend,
            rng: NpRandom::from_seed(seed),
        }
    }

    /// The current weights.
    pub fn weights(&self) -> Result<Weights, LearnerError> {
        self.backend.weights()
    }

    /// The adaptive KL coefficient.
    pub fn kl_coeff(&self) -> f64 {
        self.kl_coeff
    }

    /// Restores the KL coefficient (from a checkpoint).
    pub fn set_kl_coeff(&mut self, k: f64) {
        self.kl_coeff = k;
    }

    /// The state of the minibatch-shuffling generator, for checkpoints.
    pub fn rng_state(&self) -> (u128, u128) {
        self.rng.to_state()
    }

    /// Resumes minibatch shuffling from a checkpoint's generator state.
    pub fn set_rng_state(&mut self, state: (u128, u128)) {
        self.rng = NpRandom::from_state(state.0, state.1);
    }

    /// The optimizer's state.
    pub fn optimizer_state(&self) -> Result<OptimizerState, LearnerError> {
        self.backend.optimizer_state()
    }

    /// Restores the optimizer's state.
    pub fn set_optimizer_state(&mut self, s: &OptimizerState) -> Result<(), LearnerError> {
        self.backend.set_optimizer_state(s)
    }

    /// Logits and values of `rows` observations (RLlib's `forward_train`, without gradients).
    pub fn forward(&self, obs: &[f32], rows: usize) -> Result<(Vec<f32>, Vec<f32>), LearnerError> {
        self.backend.forward(obs, rows)
    }

    /// One training step on a batch: GAE, then `num_epochs` passes of minibatch updates.
    /// `env_steps_lifetime` drives the learning-rate schedule.
    pub fn update(
        &mut self,
        batch: &SampleBatch,
        env_steps_lifetime: u64,
    ) -> Result<LearnerMetrics, LearnerError> {
        let result = self.run_update(batch, env_steps_lifetime);
        self.backend.end_update();
        result
    }

    fn run_update(
        &mut self,
        batch: &SampleBatch,
        env_steps_lifetime: u64,
    ) -> Result<LearnerMetrics, LearnerError> {
        let n = batch.len();
        let d = batch.obs_dim;
        let a = batch.num_actions;
        let cfg = self.cfg.clone();
        let lr = cfg.lr_at(env_steps_lifetime);
        check_inputs(batch)?;

        let values = self.backend.values(&batch.obs, n)?;
        let boot_rows = batch.bootstrap_obs.len() / d.max(1);
        let boot_values = self.backend.values(&batch.bootstrap_obs, boot_rows)?;
        let (mut advantages, value_targets) = compute_gae(
            &batch.fragments,
            &batch.rewards,
            &values,
            &boot_values,
            cfg.gamma as f32,
            cfg.lambda as f32,
        );
        let explained_var = explained_variance(&value_targets, &values);
        standardize(&mut advantages);

        let mb_size = cfg.minibatch_size.min(n).max(1);
        let per_epoch = n.div_ceil(mb_size);
        let mut m = LearnerMetrics {
            vf_explained_var: explained_var,
            curr_lr: lr,
            ..Default::default()
        };
        let mut order: Vec<usize> = (0..n).collect();
        let mut idx = vec![0usize; mb_size];
        let (mut obs, mut act, mut logp, mut logits, mut adv, mut tgt) = (
            vec![0f32; mb_size * d],
            vec![0u32; mb_size],
            vec![0f32; mb_size],
            vec![0f32; mb_size * a],
            vec![0f32; mb_size],
            vec![0f32; mb_size],
        );
        for epoch in 0..cfg.num_epochs {
            shuffle(&mut order, &mut self.rng);
            for k in 0..per_epoch {
                // Minibatches keep their size: the last one of an epoch wraps to the start.
                for (j, slot) in idx.iter_mut().enumerate() {
                    *slot = order[(k * mb_size + j) % n];
                }
                for (j, &r) in idx.iter().enumerate() {
                    obs[j * d..][..d].copy_from_slice(&batch.obs[r * d..][..d]);
                    logits[j * a..][..a].copy_from_slice(&batch.action_dist_inputs[r * a..][..a]);
                    act[j] = batch.actions[r];
                    logp[j] = batch.action_logp[r];
                    adv[j] = advantages[r];
                    tgt[j] = value_targets[r];
                }
                let mb = MinibatchData {
                    obs: &obs,
                    actions: &act,
                    old_logp: &logp,
                    old_logits: &logits,
                    advantages: &adv,
                    value_targets: &tgt,
                };
                let s = match self.backend.train_minibatch(mb, self.kl_coeff, lr) {
                    Err(LearnerError::NonFinite { stats, .. }) => {
                        let at = format!(
                            "epoch {} of {}, minibatch {} of {per_epoch}",
                            epoch + 1,
                            cfg.num_epochs,
                            k + 1
                        );
                        return Err(LearnerError::NonFinite {
                            explanation: explain_non_finite(
                                &stats,
                                &cfg,
                                self.kl_coeff,
                                lr,
                                env_steps_lifetime,
                                &at,
                            ),
                            stats,
                        });
                    }
                    other => other?,
                };
                m.total_loss += s.total;
                m.policy_loss += s.policy;
                m.vf_loss += s.vf;
                m.entropy += s.entropy;
                m.mean_kl_loss += s.kl;
                m.gradients_global_norm += s.grad_norm;
                m.num_minibatches += 1;
            }
        }
        let k = m.num_minibatches.max(1) as f64;
        m.total_loss /= k;
        m.policy_loss /= k;
        m.vf_loss /= k;
        m.entropy /= k;
        m.mean_kl_loss /= k;
        m.gradients_global_norm /= k;

        // RLlib's adaptive KL coefficient, from this iteration's mean KL.
        if cfg.use_kl_loss {
            if m.mean_kl_loss > 2.0 * cfg.kl_target {
                self.kl_coeff *= 1.5;
            } else if m.mean_kl_loss < 0.5 * cfg.kl_target {
                self.kl_coeff *= 0.5;
            }
        }
        m.curr_kl_coeff = self.kl_coeff;
        Ok(m)
    }
}

/// Errors when the env handed the learner a non-finite reward or observation.
fn check_inputs(batch: &SampleBatch) -> Result<(), LearnerError> {
    if let Some(i) = batch.rewards.iter().position(|r| !r.is_finite()) {
        return Err(LearnerError::NonFiniteInput(format!(
            "the env returned a non-finite reward ({}) at row {i} of the batch",
            batch.rewards[i]
        )));
    }
    if let Some(i) = batch.obs.iter().position(|o| !o.is_finite()) {
        return Err(LearnerError::NonFiniteInput(format!(
            "the env returned a non-finite observation ({}) at row {} of the batch",
            batch.obs[i],
            i / batch.obs_dim.max(1)
        )));
    }
    Ok(())
}

/// Says which loss term went non-finite and which configured values feed it.
fn explain_non_finite(
    s: &MinibatchStats,
    cfg: &AlgorithmConfig,
    kl_coeff: f64,
    lr: f64,
    env_steps: u64,
    at: &str,
) -> String {
    let terms = [
        ("policy_loss", s.policy),
        ("vf_loss", s.vf),
        ("entropy", s.entropy),
        ("mean_kl_loss", s.kl),
    ];
    let listed = terms
        .iter()
        .map(|(n, v)| format!("{n} = {v:.4e}"))
        .collect::<Vec<_>>()
        .join(", ");
    let lr_from = if cfg.lr_schedule.is_some() {
        format!("lr = {lr:e} (from lr_schedule at {env_steps} env steps)")
    } else {
        format!("lr = {lr:e}")
    };
    let clip = cfg
        .grad_clip
        .map_or("grad_clip is not set".to_string(), |g| {
            format!("grad_clip = {g}")
        });
    let bad: Vec<&str> = terms
        .iter()
        .filter(|(_, v)| !v.is_finite())
        .map(|(n, _)| *n)
        .collect();
    let why = if bad.len() == terms.len()
        || (bad.contains(&"entropy") && bad.contains(&"policy_loss"))
    {
        format!(
            "The network's outputs are not finite, so its weights diverged in an earlier step: they are driven by {lr_from}, and {clip}; lower lr or set grad_clip"
        )
    } else if bad.is_empty() {
        format!(
            "each term is finite but their weighted sum overflows: vf_loss_coeff = {}, entropy_coeff = {}, kl_coeff = {kl_coeff:e} (adapted from {})",
            cfg.vf_loss_coeff, cfg.entropy_coeff, cfg.kl_coeff
        )
    } else {
        bad.iter()
            .map(|term| match *term {
                "policy_loss" => format!(
                    "policy_loss depends on clip_param = {} and the advantages (gamma = {}, lambda = {}, the env's rewards)",
                    cfg.clip_param, cfg.gamma, cfg.lambda
                ),
                "vf_loss" => format!(
                    "vf_loss depends on vf_clip_param = {}, vf_loss_coeff = {} and the value targets (gamma = {}, lambda = {}, the env's rewards)",
                    cfg.vf_clip_param, cfg.vf_loss_coeff, cfg.gamma, cfg.lambda
                ),
                "entropy" => format!(
                    "entropy depends on the policy's logits (entropy_coeff = {})",
                    cfg.entropy_coeff
                ),
                _ => format!(
                    "mean_kl_loss depends on the KL coefficient (now {kl_coeff:e}, adapted from kl_coeff = {} towards kl_target = {})",
                    cfg.kl_coeff, cfg.kl_target
                ),
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let which = if bad.is_empty() {
        String::new()
    } else {
        format!("Non-finite: {}. ", bad.join(", "))
    };
    format!(" in {at}: {listed}. {which}{why}")
}

/// Fisher-Yates shuffle driven by our generator (reproducible across platforms).
fn shuffle(v: &mut [usize], rng: &mut NpRandom) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// 1 - Var(targets - predictions) / Var(targets), RLlib's `explained_variance` (floored at -1).
pub fn explained_variance(targets: &[f32], predictions: &[f32]) -> f64 {
    let n = targets.len() as f64;
    if targets.is_empty() {
        return 0.0;
    }
    let var = |xs: &mut dyn Iterator<Item = f64>| {
        let v: Vec<f64> = xs.collect();
        let mean = v.iter().sum::<f64>() / n;
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n
    };
    let vt = var(&mut targets.iter().map(|&t| f64::from(t)));
    let vd = var(&mut targets
        .iter()
        .zip(predictions)
        .map(|(&t, &p)| f64::from(t) - f64::from(p)));
    if vt == 0.0 {
        return -1.0;
    }
    (1.0 - vd / vt).max(-1.0)
}
