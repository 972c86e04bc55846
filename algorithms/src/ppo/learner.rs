//! The PPO learner: GAE, advantage standardisation, epochs of shuffled minibatches, and
//! RLlib's adaptive KL coefficient. It reads top to bottom like the paper (and like CleanRL's
//! `ppo.py`); RLlib's names are used for every metric.
//!
//! The loss is [`PpoLoss`], written once; the network runs on whichever backend
//! [`select::network`] picks; Adam and gradient clipping are [`crate::optim`]'s.

use std::sync::Arc;

use envs::NpRandom;

use super::loss::{Dist, PpoLoss, sums};
use super::module::{ActionSpec, LOG_STD, PpoModuleSpec, VF};
use crate::config::AlgorithmConfig;
use crate::error::LearnerError;
use crate::gae::{compute_gae, standardize};
use crate::learner::{LearnerMetrics, MinibatchStats, explained_variance, shuffle};
use crate::nn::fused::Threads;
use crate::nn::{NamedTensor, Network, Weights, select};
use crate::optim::{Adam, OptimizerState, clip_scale, global_norm};

use crate::sample_batch::SampleBatch;

/// The PPO learner.
pub struct PpoLearner {
    cfg: AlgorithmConfig,
    spec: PpoModuleSpec,
    net: Box<dyn Network>,
    adam: Adam,
    /// The free log-std (`Box` actions) and its Adam state.
    log_std: Option<(Vec<f32>, Adam)>,
    loss: Arc<PpoLoss>,
    kl_coeff: f64,
    rng: NpRandom,
    values: Vec<f32>,
    boot_values: Vec<f32>,
    threads: Threads,
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
        spec: PpoModuleSpec,
        weights: &Weights,
        seed: u64,
    ) -> Result<Self, LearnerError> {
        let (net_w, log_std) = spec.split(weights).map_err(LearnerError::Mismatch)?;
        let threads = Threads::new(cfg.learner_threads())?;
        let net = select::network(
            cfg.learner_backend,
            cfg.device,
            spec.net_spec(),
            &net_w,
            &threads,
        )?;
        let adam = Adam::new(net_w.tensors.iter().map(|t| t.data.len()));
        let dist = match &spec.action {
            ActionSpec::Discrete(n) => Dist::Categorical(*n),
            ActionSpec::Box { dim, .. } => Dist::Gaussian {
                dim: *dim,
                log_std: log_std.clone(),
            },
        };
        let log_std = match spec.action {
            ActionSpec::Discrete(_) => None,
            ActionSpec::Box { dim, .. } => Some((log_std, Adam::new([dim]))),
        };
        Ok(PpoLearner {
            kl_coeff: cfg.ppo.kl_coeff,
            loss: Arc::new(PpoLoss::new(dist)),
            cfg,
            spec,
            net,
            adam,
            log_std,
            rng: NpRandom::from_seed(seed),
            values: Vec::new(),
            boot_values: Vec::new(),
            threads,
        })
    }

    /// The module's shape.
    pub fn spec(&self) -> &PpoModuleSpec {
        &self.spec
    }

    /// The current weights (the network's, then `log_std` for `Box` actions).
    pub fn weights(&self) -> Result<Weights, LearnerError> {
        let mut w = self.net.weights()?;
        if let Some((ls, _)) = &self.log_std {
            w.tensors.push(NamedTensor {
                name: LOG_STD.to_string(),
                shape: vec![ls.len()],
                data: ls.clone(),
            });
        }
        Ok(w)
    }

    /// The config it learns with.
    pub fn config(&self) -> &AlgorithmConfig {
        &self.cfg
    }

    /// The free log-std (`Box` actions).
    pub fn log_std(&self) -> Option<&[f32]> {
        self.log_std.as_ref().map(|(ls, _)| ls.as_slice())
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

    /// Adam's state, named after the parameters (the free log-std's last).
    pub fn optimizer_state(&self) -> Result<OptimizerState, LearnerError> {
        let mut s = self.adam.named(&self.net.weights()?);
        if let Some((ls, adam)) = &self.log_std {
            let t = NamedTensor {
                name: LOG_STD.to_string(),
                shape: vec![ls.len()],
                data: Vec::new(),
            };
            s.exp_avg.push(NamedTensor {
                data: adam.exp_avg[0].clone(),
                ..t.clone()
            });
            s.exp_avg_sq.push(NamedTensor {
                data: adam.exp_avg_sq[0].clone(),
                ..t
            });
        }
        Ok(s)
    }

    /// Restores Adam's state.
    pub fn set_optimizer_state(&mut self, s: &OptimizerState) -> Result<(), LearnerError> {
        let w = self.net.weights()?;
        let mut s = s.clone();
        if let Some((ls, adam)) = &mut self.log_std {
            let take = |v: &mut Vec<NamedTensor>| -> Result<Vec<f32>, LearnerError> {
                let i = v.iter().position(|t| t.name == LOG_STD).ok_or_else(|| {
                    LearnerError::Mismatch("optimizer state: no log_std moments".into())
                })?;
                Ok(v.remove(i).data)
            };
            let (m, v) = (take(&mut s.exp_avg)?, take(&mut s.exp_avg_sq)?);
            if m.len() != ls.len() || v.len() != ls.len() {
                return Err(LearnerError::Mismatch(
                    "optimizer state: log_std moments of the wrong size".into(),
                ));
            }
            adam.step = s.step;
            adam.exp_avg = vec![m];
            adam.exp_avg_sq = vec![v];
        }
        self.adam.load(&crate::optim::ordered_like(&s, &w), &w)
    }

    /// Logits (or means) and values of `rows` observations (RLlib's `forward_train`,
    /// without gradients), head by head.
    pub fn forward(
        &mut self,
        obs: &[f32],
        rows: usize,
    ) -> Result<(Vec<f32>, Vec<f32>), LearnerError> {
        let mut out = Vec::new();
        self.net.infer(obs, rows, &[0, 1], &mut out)?;
        let values = out.split_off(rows * self.spec.action.head_size());
        Ok((out, values))
    }

    /// One training step on a batch: GAE, then `num_epochs` passes of minibatch updates.
    /// `env_steps_lifetime` drives the learning-rate schedule.
    pub fn update(
        &mut self,
        batch: &SampleBatch,
        env_steps_lifetime: u64,
    ) -> Result<LearnerMetrics, LearnerError> {
        let result = self.run_update(batch, env_steps_lifetime);
        self.end_update();
        result
    }

    fn run_update(
        &mut self,
        batch: &SampleBatch,
        env_steps_lifetime: u64,
    ) -> Result<LearnerMetrics, LearnerError> {
        let n = batch.len();
        let d = batch.obs_dim;
        let (ad, w) = (self.spec.action.action_dim(), self.spec.action.dist_width());
        let cfg = self.cfg.clone();
        let lr = cfg.lr_at(env_steps_lifetime);
        batch.check_finite()?;

        let mut values = std::mem::take(&mut self.values);
        self.net.infer(&batch.obs, n, &[VF], &mut values)?;
        let boot_rows = batch.bootstrap_obs.len() / d.max(1);
        let mut boot_values = std::mem::take(&mut self.boot_values);
        self.net
            .infer(&batch.bootstrap_obs, boot_rows, &[VF], &mut boot_values)?;
        let (mut advantages, value_targets) = compute_gae(
            &batch.fragments,
            &batch.rewards,
            &values,
            &boot_values,
            cfg.gamma as f32,
            cfg.ppo.lambda as f32,
        );
        let explained_var = explained_variance(&value_targets, &values);
        self.values = values;
        self.boot_values = boot_values;
        standardize(&mut advantages);

        let mb_size = cfg.ppo.minibatch_size.min(n).max(1);
        let per_epoch = n.div_ceil(mb_size);
        let mut m = LearnerMetrics {
            vf_explained_var: explained_var,
            curr_lr: lr,
            ..Default::default()
        };
        let mut order: Vec<usize> = (0..n).collect();
        let mut obs = vec![0f32; mb_size * d];
        for epoch in 0..cfg.ppo.num_epochs {
            shuffle(&mut order, &mut self.rng);
            for k in 0..per_epoch {
                {
                    let kl_coeff = if cfg.ppo.use_kl_loss {
                        self.kl_coeff as f32
                    } else {
                        0.0
                    };
                    let loss = self.loss_mut();
                    loss.clip_param = cfg.ppo.clip_param as f32;
                    loss.vf_clip_param = cfg.ppo.vf_clip_param as f32;
                    loss.vf_loss_coeff = cfg.ppo.vf_loss_coeff as f32;
                    loss.entropy_coeff = cfg.ppo.entropy_coeff as f32;
                    loss.kl_coeff = kl_coeff;
                    loss.clear_rows();
                    // Minibatches keep their size: the last one of an epoch wraps to the start.
                    for j in 0..mb_size {
                        let r = order[(k * mb_size + j) % n];
                        obs[j * d..][..d].copy_from_slice(&batch.obs[r * d..][..d]);
                        loss.actions
                            .extend_from_slice(&batch.actions[r * ad..][..ad]);
                        loss.old_dist_inputs
                            .extend_from_slice(&batch.action_dist_inputs[r * w..][..w]);
                        loss.old_logp.push(batch.action_logp[r]);
                        loss.advantages.push(advantages[r]);
                        loss.value_targets.push(value_targets[r]);
                    }
                }
                let at = || {
                    format!(
                        "epoch {} of {}, minibatch {} of {per_epoch}",
                        epoch + 1,
                        cfg.ppo.num_epochs,
                        k + 1
                    )
                };
                let stats = self.step(&obs, mb_size, lr, env_steps_lifetime, &at)?;
                m.total_loss += stats.total;
                m.policy_loss += stats.policy;
                m.vf_loss += stats.vf;
                m.entropy += stats.entropy;
                m.mean_kl_loss += stats.kl;
                m.gradients_global_norm += stats.grad_norm;
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
        if cfg.ppo.use_kl_loss {
            if m.mean_kl_loss > 2.0 * cfg.ppo.kl_target {
                self.kl_coeff *= 1.5;
            } else if m.mean_kl_loss < 0.5 * cfg.ppo.kl_target {
                self.kl_coeff *= 0.5;
            }
        }
        m.curr_kl_coeff = self.kl_coeff;
        Ok(m)
    }

    /// The loss of the next minibatch, to fill in (the free log-std is kept current).
    pub(crate) fn loss_mut(&mut self) -> &mut PpoLoss {
        let loss = Arc::make_mut(&mut self.loss);
        if let (Dist::Gaussian { log_std, .. }, Some((ls, _))) = (&mut loss.dist, &self.log_std) {
            log_std.clone_from(ls);
        }
        loss
    }

    /// One gradient step on `rows` observations with the loss as filled in: the gradients of
    /// the loss, clipped by their global norm over every parameter (the free log-std's
    /// included), then Adam at `lr`. A non-finite loss fails before anything changes, saying
    /// where (`at`) and which settings feed it.
    pub(crate) fn step(
        &mut self,
        obs: &[f32],
        rows: usize,
        lr: f64,
        env_steps_lifetime: u64,
        at: &dyn Fn() -> String,
    ) -> Result<MinibatchStats, LearnerError> {
        let s = self.net.train_rows(obs, rows, self.loss.clone())?;
        let terms = self.loss.terms(&s);
        let log_std_grad: Vec<f32> = s[sums::LOG_STD..].iter().map(|&g| g as f32).collect();
        let mut stats = MinibatchStats {
            total: terms.total,
            policy: terms.policy,
            vf: terms.vf,
            entropy: terms.entropy,
            kl: terms.kl,
            grad_norm: f64::NAN,
        };
        if !stats.total.is_finite() {
            return Err(LearnerError::NonFinite {
                explanation: explain_non_finite(
                    &stats,
                    &self.cfg,
                    self.kl_coeff,
                    lr,
                    env_steps_lifetime,
                    &at(),
                ),
                stats,
            });
        }
        let (adam, clip, threads) = (&mut self.adam, self.cfg.grad_clip, &self.threads);
        let mut scale = 1.0;
        let mut stepped = Ok(());
        self.net.update(&mut |p, g| {
            stats.grad_norm = global_norm(
                g.iter()
                    .map(Vec::as_slice)
                    .chain(std::iter::once(log_std_grad.as_slice())),
            );
            scale = clip_scale(stats.grad_norm, clip);
            stepped = adam.step_on(threads, p, g, lr, scale);
        })?;
        stepped?;
        if let Some((ls, adam)) = &mut self.log_std {
            adam.step(std::slice::from_mut(ls), &[log_std_grad], lr, scale);
        }
        Ok(stats)
    }

    /// Ends an update: the backend's per-update work, and the learner threads rest.
    pub(crate) fn end_update(&mut self) {
        self.net.end_update();
        self.threads.rest();
    }

    /// PPO's loss terms and gradients on one minibatch, without updating anything (for
    /// checking the loss against a hand computation and backends against each other). The
    /// gradients are the network's, then the free log-std's.
    pub fn evaluate_loss(
        &mut self,
        obs: &[f32],
        loss: PpoLoss,
    ) -> Result<(super::loss::Terms, Vec<Vec<f32>>), LearnerError> {
        let rows = loss.rows();
        let loss = Arc::new(loss);
        let s = self.net.train_rows(obs, rows, loss.clone())?;
        self.net.end_update();
        self.threads.rest();
        let mut grads = self.net.grads()?;
        if matches!(loss.dist, Dist::Gaussian { .. }) {
            grads.push(s[sums::LOG_STD..].iter().map(|&g| g as f32).collect());
        }
        Ok((loss.terms(&s), grads))
    }
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
            cfg.ppo.vf_loss_coeff, cfg.ppo.entropy_coeff, cfg.ppo.kl_coeff
        )
    } else {
        bad.iter()
            .map(|term| match *term {
                "policy_loss" => format!(
                    "policy_loss depends on clip_param = {} and the advantages (gamma = {}, lambda = {}, the env's rewards)",
                    cfg.ppo.clip_param, cfg.gamma, cfg.ppo.lambda
                ),
                "vf_loss" => format!(
                    "vf_loss depends on vf_clip_param = {}, vf_loss_coeff = {} and the value targets (gamma = {}, lambda = {}, the env's rewards)",
                    cfg.ppo.vf_clip_param, cfg.ppo.vf_loss_coeff, cfg.gamma, cfg.ppo.lambda
                ),
                "entropy" => format!(
                    "entropy depends on the policy's logits (entropy_coeff = {})",
                    cfg.ppo.entropy_coeff
                ),
                _ => format!(
                    "mean_kl_loss depends on the KL coefficient (now {kl_coeff:e}, adapted from kl_coeff = {} towards kl_target = {})",
                    cfg.ppo.kl_coeff, cfg.ppo.kl_target
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
