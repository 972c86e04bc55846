//! The PPO learner on candle: GAE, advantage standardisation, epochs of shuffled minibatches
//! of the clipped-surrogate + value + entropy + KL loss, Adam, global-norm gradient clipping,
//! and RLlib's adaptive KL coefficient. The loss reads top to bottom like the paper (and like
//! CleanRL's `ppo.py`); RLlib's names are used for every metric.

use candle_core::{D, Device, Tensor, Var};
use candle_nn::ops::log_softmax;
use envs::NpRandom;

use crate::config::{Activation, AlgorithmConfig};
use crate::gae::{compute_gae, standardize};
use crate::module::{MlpSpec, NamedTensor, Weights};
use crate::sample_batch::SampleBatch;

/// Errors of the learner.
#[derive(Debug, thiserror::Error)]
pub enum LearnerError {
    /// A tensor operation failed (shapes, device).
    #[error("learner: {0}")]
    Candle(#[from] candle_core::Error),
    /// The loss became NaN or infinite.
    #[error("the loss is not finite ({0}); lower lr or set grad_clip")]
    NonFinite(f64),
    /// Weights or optimizer state that do not fit the module.
    #[error("{0}")]
    Mismatch(String),
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

/// PyTorch's `Adam` (β = 0.9, 0.999, ε = 1e-8), which RLlib's torch learner uses.
struct Adam {
    step: u64,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

impl Adam {
    fn new(vars: &[Var]) -> candle_core::Result<Self> {
        let zeros = |v: &Var| v.as_tensor().zeros_like();
        Ok(Adam {
            step: 0,
            m: vars.iter().map(zeros).collect::<candle_core::Result<_>>()?,
            v: vars.iter().map(zeros).collect::<candle_core::Result<_>>()?,
        })
    }

    fn apply(&mut self, vars: &[Var], grads: &[Tensor], lr: f64) -> candle_core::Result<()> {
        self.step += 1;
        let bc1 = 1.0 - BETA1.powi(self.step as i32);
        let bc2 = 1.0 - BETA2.powi(self.step as i32);
        for (i, (var, g)) in vars.iter().zip(grads).enumerate() {
            self.m[i] = ((&self.m[i] * BETA1)? + (g * (1.0 - BETA1))?)?;
            self.v[i] = ((&self.v[i] * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?;
            let denom = ((&self.v[i] / bc2)?.sqrt()? + EPS)?;
            let update = ((&self.m[i] / bc1)? / denom)?;
            var.set(&(var.as_tensor() - (update * lr)?)?)?;
        }
        Ok(())
    }
}

/// The learner's trainable copy of the [`MlpSpec`] network.
struct CandleMlp {
    spec: MlpSpec,
    /// In the order of `spec.parameter_shapes()`.
    vars: Vec<Var>,
}

impl CandleMlp {
    fn new(spec: MlpSpec, w: &Weights, device: &Device) -> Result<Self, LearnerError> {
        spec.check(w).map_err(LearnerError::Mismatch)?;
        let vars = w
            .tensors
            .iter()
            .map(|t| Var::from_slice(&t.data, t.shape.as_slice(), device))
            .collect::<candle_core::Result<_>>()?;
        Ok(CandleMlp { spec, vars })
    }

    fn var(&self, name: &str) -> &Var {
        let i = self
            .spec
            .parameter_shapes()
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| unreachable!("{name} is a parameter of the spec"));
        &self.vars[i]
    }

    fn linear(&self, x: &Tensor, name: &str) -> candle_core::Result<Tensor> {
        let w = self.var(&format!("{name}.weight"));
        let b = self.var(&format!("{name}.bias"));
        x.matmul(&w.as_tensor().t()?)?.broadcast_add(b.as_tensor())
    }

    fn trunk(&self, x: &Tensor, prefix: &str) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for i in 0..self.spec.model.fcnet_hiddens.len() {
            h = self.linear(&h, &format!("{prefix}.{i}"))?;
            h = match self.spec.model.fcnet_activation {
                Activation::Tanh => h.tanh()?,
                Activation::Relu => h.relu()?,
                Activation::Linear => h,
            };
        }
        Ok(h)
    }

    /// RLlib's `forward_train`: logits `[B, A]` and values `[B]`.
    fn forward_train(&self, obs: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        if self.spec.model.vf_share_layers {
            let h = self.trunk(obs, "encoder")?;
            Ok((self.linear(&h, "pi")?, self.linear(&h, "vf")?.squeeze(1)?))
        } else {
            let hp = self.trunk(obs, "pi_encoder")?;
            let hv = self.trunk(obs, "vf_encoder")?;
            Ok((self.linear(&hp, "pi")?, self.linear(&hv, "vf")?.squeeze(1)?))
        }
    }

    fn weights(&self) -> candle_core::Result<Weights> {
        let tensors = self
            .spec
            .parameter_shapes()
            .into_iter()
            .zip(&self.vars)
            .map(|((name, shape), v)| {
                Ok(NamedTensor {
                    name,
                    shape,
                    data: v.as_tensor().flatten_all()?.to_vec1::<f32>()?,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Weights { tensors })
    }
}

/// One minibatch's inputs, on the learner's device.
struct Minibatch {
    obs: Tensor,
    actions: Tensor,
    old_logp: Tensor,
    old_logits: Tensor,
    advantages: Tensor,
    value_targets: Tensor,
}

/// The scalar losses of one minibatch.
struct Losses {
    total: Tensor,
    policy: f64,
    vf: f64,
    entropy: f64,
    kl: f64,
}

/// PPO's loss (RLlib's `PPOTorchLearner.compute_loss_for_module`).
fn ppo_loss(
    module: &CandleMlp,
    mb: &Minibatch,
    cfg: &AlgorithmConfig,
    kl_coeff: f64,
) -> candle_core::Result<Losses> {
    let (logits, values) = module.forward_train(&mb.obs)?;
    let logp_all = log_softmax(&logits, D::Minus1)?;
    let logp = logp_all.gather(&mb.actions, 1)?.squeeze(1)?;

    // Clipped surrogate objective.
    let ratio = (logp - &mb.old_logp)?.exp()?;
    let clipped = ratio.clamp(1.0 - cfg.clip_param, 1.0 + cfg.clip_param)?;
    let surrogate = (&mb.advantages * &ratio)?.minimum(&(&mb.advantages * &clipped)?)?;

    // Entropy of the current policy, and KL from the sampling policy to it.
    let probs = logp_all.exp()?;
    let entropy = (&probs * &logp_all)?.sum(1)?.neg()?;
    let old_logp_all = log_softmax(&mb.old_logits, D::Minus1)?;
    let kl = (old_logp_all.exp()? * (&old_logp_all - &logp_all)?)?.sum(1)?;

    // Squared value error, clipped at vf_clip_param.
    let vf_err = (values - &mb.value_targets)?.sqr()?;
    let vf_clipped = vf_err.clamp(0.0, cfg.vf_clip_param)?;

    let per_sample = ((surrogate.neg()? + (&vf_clipped * cfg.vf_loss_coeff)?)?
        - (&entropy * cfg.entropy_coeff)?)?;
    let mean_kl = kl.mean_all()?;
    let mut total = per_sample.mean_all()?;
    if cfg.use_kl_loss {
        total = (total + (&mean_kl * kl_coeff)?)?;
    }
    Ok(Losses {
        policy: surrogate.neg()?.mean_all()?.to_scalar::<f32>()? as f64,
        vf: vf_clipped.mean_all()?.to_scalar::<f32>()? as f64,
        entropy: entropy.mean_all()?.to_scalar::<f32>()? as f64,
        kl: mean_kl.to_scalar::<f32>()? as f64,
        total,
    })
}

/// The PPO learner.
pub struct PpoLearner {
    cfg: AlgorithmConfig,
    device: Device,
    module: CandleMlp,
    adam: Adam,
    kl_coeff: f64,
    rng: NpRandom,
}

impl std::fmt::Debug for PpoLearner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PpoLearner")
            .field("spec", &self.module.spec)
            .field("kl_coeff", &self.kl_coeff)
            .finish()
    }
}

/// The candle device for a configured one.
pub fn candle_device(device: crate::config::Device) -> Result<Device, LearnerError> {
    match device {
        crate::config::Device::Cpu => Ok(Device::Cpu),
        crate::config::Device::Cuda => Ok(Device::new_cuda(0)?),
    }
}

impl PpoLearner {
    /// A learner for `spec` starting from `weights`; `seed` drives minibatch shuffling.
    pub fn new(
        cfg: AlgorithmConfig,
        spec: MlpSpec,
        weights: &Weights,
        seed: u64,
    ) -> Result<Self, LearnerError> {
        let device = candle_device(cfg.device)?;
        let module = CandleMlp::new(spec, weights, &device)?;
        let adam = Adam::new(&module.vars)?;
        Ok(PpoLearner {
            kl_coeff: cfg.kl_coeff,
            cfg,
            device,
            module,
            adam,
            rng: NpRandom::from_seed(seed),
        })
    }

    /// The current weights.
    pub fn weights(&self) -> Result<Weights, LearnerError> {
        Ok(self.module.weights()?)
    }

    /// The adaptive KL coefficient.
    pub fn kl_coeff(&self) -> f64 {
        self.kl_coeff
    }

    /// Restores the KL coefficient (from a checkpoint).
    pub fn set_kl_coeff(&mut self, k: f64) {
        self.kl_coeff = k;
    }

    /// The shuffling generator's state is not exposed by `rand_pcg`; a checkpoint stores the
    /// seed for the next iteration instead, and this reseeds from it.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = NpRandom::from_seed(seed);
    }

    /// Draws the seed a checkpoint stores for [`reseed`](Self::reseed).
    pub fn next_seed(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Adam's state.
    pub fn optimizer_state(&self) -> Result<OptimizerState, LearnerError> {
        let named = |ts: &[Tensor]| -> candle_core::Result<Vec<NamedTensor>> {
            self.module
                .spec
                .parameter_shapes()
                .into_iter()
                .zip(ts)
                .map(|((name, shape), t)| {
                    Ok(NamedTensor {
                        name,
                        shape,
                        data: t.flatten_all()?.to_vec1::<f32>()?,
                    })
                })
                .collect()
        };
        Ok(OptimizerState {
            step: self.adam.step,
            exp_avg: named(&self.adam.m)?,
            exp_avg_sq: named(&self.adam.v)?,
        })
    }

    /// Restores Adam's state; errors when it does not fit the module.
    pub fn set_optimizer_state(&mut self, s: &OptimizerState) -> Result<(), LearnerError> {
        let spec = &self.module.spec;
        for part in [&s.exp_avg, &s.exp_avg_sq] {
            spec.check(&Weights {
                tensors: part.clone(),
            })
            .map_err(|e| LearnerError::Mismatch(format!("optimizer state: {e}")))?;
        }
        let load = |ts: &[NamedTensor]| -> candle_core::Result<Vec<Tensor>> {
            ts.iter()
                .map(|t| Tensor::from_slice(&t.data, t.shape.as_slice(), &self.device))
                .collect()
        };
        self.adam.m = load(&s.exp_avg)?;
        self.adam.v = load(&s.exp_avg_sq)?;
        self.adam.step = s.step;
        Ok(())
    }

    /// Logits and values of `rows` observations (RLlib's `forward_train`, without gradients).
    pub fn forward(&self, obs: &[f32], rows: usize) -> Result<(Vec<f32>, Vec<f32>), LearnerError> {
        let t = Tensor::from_slice(obs, (rows, self.module.spec.obs_dim), &self.device)?;
        let (logits, values) = self.module.forward_train(&t)?;
        Ok((
            logits.detach().flatten_all()?.to_vec1::<f32>()?,
            values.detach().to_vec1::<f32>()?,
        ))
    }

    /// Values of `rows` observations, without gradients.
    fn values(&self, obs: &[f32], rows: usize) -> candle_core::Result<Vec<f32>> {
        if rows == 0 {
            return Ok(Vec::new());
        }
        let d = self.module.spec.obs_dim;
        let t = Tensor::from_slice(obs, (rows, d), &self.device)?;
        let (_, v) = self.module.forward_train(&t)?;
        v.detach().to_vec1::<f32>()
    }

    /// One training step on a batch: GAE, then `num_epochs` passes of minibatch updates.
    /// `env_steps_lifetime` drives the learning-rate schedule.
    pub fn update(
        &mut self,
        batch: &SampleBatch,
        env_steps_lifetime: u64,
    ) -> Result<LearnerMetrics, LearnerError> {
        let n = batch.len();
        let d = batch.obs_dim;
        let a = batch.num_actions;
        let cfg = self.cfg.clone();
        let lr = cfg.lr_at(env_steps_lifetime);

        let values = self.values(&batch.obs, n)?;
        let boot_rows = batch.bootstrap_obs.len() / d.max(1);
        let boot_values = self.values(&batch.bootstrap_obs, boot_rows)?;
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
        for _ in 0..cfg.num_epochs {
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
                }
                .to_device(&self.module.spec, &self.device)?;
                let losses = ppo_loss(&self.module, &mb, &cfg, self.kl_coeff)?;
                let total = losses.total.to_scalar::<f32>()? as f64;
                if !total.is_finite() {
                    return Err(LearnerError::NonFinite(total));
                }
                let grads_store = losses.total.backward()?;
                let mut grads = Vec::with_capacity(self.module.vars.len());
                for v in &self.module.vars {
                    grads.push(match grads_store.get(v.as_tensor()) {
                        Some(g) => g.clone(),
                        None => v.as_tensor().zeros_like()?,
                    });
                }
                let mut sq = 0.0f64;
                for g in &grads {
                    sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
                }
                let norm = sq.sqrt();
                if let Some(clip) = cfg.grad_clip {
                    if norm > clip {
                        let scale = clip / (norm + 1e-6);
                        for g in &mut grads {
                            *g = (&*g * scale)?;
                        }
                    }
                }
                self.adam.apply(&self.module.vars, &grads, lr)?;

                m.total_loss += total;
                m.policy_loss += losses.policy;
                m.vf_loss += losses.vf;
                m.entropy += losses.entropy;
                m.mean_kl_loss += losses.kl;
                m.gradients_global_norm += norm;
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

impl MinibatchData<'_> {
    fn to_device(self, spec: &MlpSpec, dev: &Device) -> candle_core::Result<Minibatch> {
        let b = self.actions.len();
        Ok(Minibatch {
            obs: Tensor::from_slice(self.obs, (b, spec.obs_dim), dev)?,
            actions: Tensor::from_slice(self.actions, (b, 1), dev)?,
            old_logp: Tensor::from_slice(self.old_logp, b, dev)?,
            old_logits: Tensor::from_slice(self.old_logits, (b, spec.num_actions), dev)?,
            advantages: Tensor::from_slice(self.advantages, b, dev)?,
            value_targets: Tensor::from_slice(self.value_targets, b, dev)?,
        })
    }
}

/// The loss terms of one minibatch and the gradient of each parameter.
#[derive(Debug, Clone)]
pub struct LossReport {
    /// The total loss.
    pub total: f64,
    /// Mean clipped-surrogate loss.
    pub policy: f64,
    /// Mean clipped value loss.
    pub vf: f64,
    /// Mean entropy.
    pub entropy: f64,
    /// Mean KL.
    pub kl: f64,
    /// Gradients, in the order of `MlpSpec::parameter_shapes`, flattened.
    pub grads: Vec<Vec<f32>>,
}

/// PPO's loss and gradients on one minibatch, on the CPU, without updating anything (for
/// checking the loss against a hand computation).
pub fn evaluate_loss(
    cfg: &AlgorithmConfig,
    spec: MlpSpec,
    weights: &Weights,
    kl_coeff: f64,
    data: MinibatchData<'_>,
) -> Result<LossReport, LearnerError> {
    let dev = Device::Cpu;
    let mb = data.to_device(&spec, &dev)?;
    let module = CandleMlp::new(spec, weights, &dev)?;
    let l = ppo_loss(&module, &mb, cfg, kl_coeff)?;
    let grads = l.total.backward()?;
    let grads = module
        .vars
        .iter()
        .map(|v| match grads.get(v.as_tensor()) {
            Some(g) => g.flatten_all()?.to_vec1::<f32>(),
            None => Ok(vec![0.0; v.as_tensor().elem_count()]),
        })
        .collect::<candle_core::Result<_>>()?;
    Ok(LossReport {
        total: l.total.to_scalar::<f32>()? as f64,
        policy: l.policy,
        vf: l.vf,
        entropy: l.entropy,
        kl: l.kl,
        grads,
    })
}
