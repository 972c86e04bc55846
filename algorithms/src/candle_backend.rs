//! The candle backend of the PPO learner: the trainable MLP, PPO's loss with autograd,
//! global gradient-norm clipping and PyTorch's Adam. CPU by default, CUDA with the `cuda`
//! feature.

use candle_core::{D, Device, Tensor, Var};
use candle_nn::ops::log_softmax;

use crate::config::{Activation, AlgorithmConfig};
use crate::learner::{LearnerBackend, LearnerError, MinibatchData, MinibatchStats, OptimizerState};
use crate::module::{MlpSpec, NamedTensor, Weights};

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
        let bc1 = 1.0 - BETA1.powi(self.step.min(1 << 20) as i32);
        let bc2 = 1.0 - BETA2.powi(self.step.min(1 << 20) as i32);
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

fn to_device(
    mb: MinibatchData<'_>,
    spec: &MlpSpec,
    dev: &Device,
) -> candle_core::Result<Minibatch> {
    let b = mb.actions.len();
    Ok(Minibatch {
        obs: Tensor::from_slice(mb.obs, (b, spec.obs_dim), dev)?,
        actions: Tensor::from_slice(mb.actions, (b, 1), dev)?,
        old_logp: Tensor::from_slice(mb.old_logp, b, dev)?,
        old_logits: Tensor::from_slice(mb.old_logits, (b, spec.num_actions), dev)?,
        advantages: Tensor::from_slice(mb.advantages, b, dev)?,
        value_targets: Tensor::from_slice(mb.value_targets, b, dev)?,
    })
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

/// The candle device for a configured one.
pub fn candle_device(device: crate::config::Device) -> Result<Device, LearnerError> {
    match device {
        crate::config::Device::Cpu => Ok(Device::Cpu),
        crate::config::Device::Cuda => Ok(Device::new_cuda(0)?),
    }
}

/// The learner backend on candle.
pub struct CandleBackend {
    cfg: AlgorithmConfig,
    device: Device,
    module: CandleMlp,
    adam: Adam,
}

impl std::fmt::Debug for CandleBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CandleBackend")
            .field("device", &self.device)
            .field("spec", &self.module.spec)
            .finish()
    }
}

impl CandleBackend {
    /// A backend on `cfg.device` for `spec`, starting from `weights`.
    pub fn new(
        cfg: &AlgorithmConfig,
        spec: MlpSpec,
        weights: &Weights,
    ) -> Result<Self, LearnerError> {
        let device = candle_device(cfg.device)?;
        let module = CandleMlp::new(spec, weights, &device)?;
        let adam = Adam::new(&module.vars)?;
        Ok(CandleBackend {
            cfg: cfg.clone(),
            device,
            module,
            adam,
        })
    }

    fn gradients(&self, loss: &Tensor) -> candle_core::Result<Vec<Tensor>> {
        let store = loss.backward()?;
        self.module
            .vars
            .iter()
            .map(|v| match store.get(v.as_tensor()) {
                Some(g) => Ok(g.clone()),
                None => v.as_tensor().zeros_like(),
            })
            .collect()
    }
}

impl LearnerBackend for CandleBackend {
    fn forward(&self, obs: &[f32], rows: usize) -> Result<(Vec<f32>, Vec<f32>), LearnerError> {
        if rows == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        let t = Tensor::from_slice(obs, (rows, self.module.spec.obs_dim), &self.device)?;
        let (logits, values) = self.module.forward_train(&t)?;
        Ok((
            logits.detach().flatten_all()?.to_vec1::<f32>()?,
            values.detach().to_vec1::<f32>()?,
        ))
    }

    fn train_minibatch(
        &mut self,
        data: MinibatchData<'_>,
        kl_coeff: f64,
        lr: f64,
    ) -> Result<MinibatchStats, LearnerError> {
        let mb = to_device(data, &self.module.spec, &self.device)?;
        let losses = ppo_loss(&self.module, &mb, &self.cfg, kl_coeff)?;
        let total = f64::from(losses.total.to_scalar::<f32>()?);
        if !total.is_finite() {
            return Err(LearnerError::NonFinite {
                stats: MinibatchStats {
                    total,
                    policy: losses.policy,
                    vf: losses.vf,
                    entropy: losses.entropy,
                    kl: losses.kl,
                    grad_norm: f64::NAN,
                },
                explanation: String::new(),
            });
        }
        let mut grads = self.gradients(&losses.total)?;
        let mut sq = 0.0f64;
        for g in &grads {
            sq += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
        let norm = sq.sqrt();
        if let Some(clip) = self.cfg.grad_clip
            && norm > clip
        {
            let scale = clip / (norm + 1e-6);
            for g in &mut grads {
                *g = (&*g * scale)?;
            }
        }
        self.adam.apply(&self.module.vars, &grads, lr)?;
        Ok(MinibatchStats {
            total,
            policy: losses.policy,
            vf: losses.vf,
            entropy: losses.entropy,
            kl: losses.kl,
            grad_norm: norm,
        })
    }

    fn weights(&self) -> Result<Weights, LearnerError> {
        Ok(self.module.weights()?)
    }

    fn optimizer_state(&self) -> Result<OptimizerState, LearnerError> {
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

    fn set_optimizer_state(&mut self, s: &OptimizerState) -> Result<(), LearnerError> {
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
    let cpu = AlgorithmConfig {
        device: crate::config::Device::Cpu,
        ..cfg.clone()
    };
    let backend = CandleBackend::new(&cpu, spec, weights)?;
    let mb = to_device(data, &backend.module.spec, &backend.device)?;
    let l = ppo_loss(&backend.module, &mb, cfg, kl_coeff)?;
    let grads = backend
        .gradients(&l.total)?
        .iter()
        .map(|g| g.flatten_all()?.to_vec1::<f32>())
        .collect::<candle_core::Result<_>>()?;
    Ok(LossReport {
        total: f64::from(l.total.to_scalar::<f32>()?),
        policy: l.policy,
        vf: l.vf,
        entropy: l.entropy,
        kl: l.kl,
        grads,
    })
}
