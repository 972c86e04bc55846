//! A fused CPU learner backend for small MLPs: forward, PPO loss, backward and Adam written
//! out over flat `f32` buffers, with the matrix products done by `matrixmultiply`'s SGEMM.
//!
//! It computes exactly what [`CandleBackend`](crate::candle_backend::CandleBackend) computes
//! (tested to agree on outputs and gradients), without a tensor framework's per-operation
//! overhead, which dominates for networks of this size. Buffers are sized on the first
//! minibatch and reused: the minibatch loop does not allocate.

use crate::config::{Activation, AlgorithmConfig};
use crate::learner::{LearnerBackend, LearnerError, MinibatchData, MinibatchStats, OptimizerState};
use crate::linalg::{gemm, tanh_in_place};
use crate::module::{MlpSpec, NamedTensor, Weights};

/// One linear layer: indices of its weight and bias among the parameters, and its sizes.
#[derive(Debug, Clone, Copy)]
struct Layer {
    w: usize,
    b: usize,
    input: usize,
    output: usize,
}

/// Which parameters form which part of the network.
#[derive(Debug, Clone)]
struct Layout {
    pi_trunk: Vec<Layer>,
    /// Empty when the value head shares the policy's trunk.
    vf_trunk: Vec<Layer>,
    pi: Layer,
    vf: Layer,
}

impl Layout {
    fn new(spec: &MlpSpec) -> Self {
        let shapes = spec.parameter_shapes();
        let find = |name: &str| -> Layer {
            let w = shapes
                .iter()
                .position(|(n, _)| *n == format!("{name}.weight"));
            let b = shapes
                .iter()
                .position(|(n, _)| *n == format!("{name}.bias"));
            match (w, b) {
                (Some(w), Some(b)) => Layer {
                    w,
                    b,
                    input: shapes[w].1[1],
                    output: shapes[w].1[0],
                },
                _ => unreachable!("{name} is a layer of the spec"),
            }
        };
        let n = spec.model.fcnet_hiddens.len();
        let (pi_prefix, vf_prefix) = if spec.model.vf_share_layers {
            ("encoder", None)
        } else {
            ("pi_encoder", Some("vf_encoder"))
        };
        Layout {
            pi_trunk: (0..n).map(|i| find(&format!("{pi_prefix}.{i}"))).collect(),
            vf_trunk: vf_prefix.map_or_else(Vec::new, |p| {
                (0..n).map(|i| find(&format!("{p}.{i}"))).collect()
            }),
            pi: find("pi"),
            vf: find("vf"),
        }
    }
}

/// Activations of one trunk for a batch: `acts[0]` is the input, `acts[l]` layer l's output.
#[derive(Debug, Default)]
struct Trunk {
    acts: Vec<Vec<f32>>,
    /// Gradient buffers, one per activation.
    grads: Vec<Vec<f32>>,
}

/// The fused CPU backend.
#[derive(Debug)]
pub struct FusedBackend {
    cfg: AlgorithmConfig,
    spec: MlpSpec,
    layout: Layout,
    params: Vec<Vec<f32>>,
    grads: Vec<Vec<f32>>,
    exp_avg: Vec<Vec<f32>>,
    exp_avg_sq: Vec<Vec<f32>>,
    step: u64,
    pi_trunk: Trunk,
    vf_trunk: Trunk,
    logits: Vec<f32>,
    values: Vec<f32>,
    d_logits: Vec<f32>,
    d_values: Vec<f32>,
}

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPS: f32 = 1e-8;

fn activate(act: Activation, z: &mut [f32]) {
    match act {
        Activation::Tanh => tanh_in_place(z),
        Activation::Relu => z.iter_mut().for_each(|v| *v = v.max(0.0)),
        Activation::Linear => {}
    }
}

/// Multiplies `d` (gradient w.r.t. a layer's output) by the activation's derivative, given
/// the layer's output `h`.
fn activation_backward(act: Activation, h: &[f32], d: &mut [f32]) {
    match act {
        Activation::Tanh => d.iter_mut().zip(h).for_each(|(g, y)| *g *= 1.0 - y * y),
        Activation::Relu => d.iter_mut().zip(h).for_each(|(g, y)| {
            if *y <= 0.0 {
                *g = 0.0;
            }
        }),
        Activation::Linear => {}
    }
}

impl FusedBackend {
    /// A backend for `spec` starting from `weights`.
    pub fn new(
        cfg: &AlgorithmConfig,
        spec: MlpSpec,
        weights: &Weights,
    ) -> Result<Self, LearnerError> {
        spec.check(weights).map_err(LearnerError::Mismatch)?;
        let params: Vec<Vec<f32>> = weights.tensors.iter().map(|t| t.data.clone()).collect();
        let zeros: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
        Ok(FusedBackend {
            cfg: cfg.clone(),
            layout: Layout::new(&spec),
            spec,
            grads: zeros.clone(),
            exp_avg: zeros.clone(),
            exp_avg_sq: zeros,
            params,
            step: 0,
            pi_trunk: Trunk::default(),
            vf_trunk: Trunk::default(),
            logits: Vec::new(),
            values: Vec::new(),
            d_logits: Vec::new(),
            d_values: Vec::new(),
        })
    }

    fn linear(&self, l: Layer, x: &[f32], rows: usize, out: &mut [f32]) {
        gemm(
            rows,
            l.input,
            l.output,
            x,
            false,
            &self.params[l.w],
            true,
            0.0,
            out,
        );
        let b = &self.params[l.b];
        for row in out[..rows * l.output].chunks_exact_mut(l.output) {
            row.iter_mut().zip(b).for_each(|(o, bb)| *o += bb);
        }
    }

    fn run_trunk(&self, layers: &[Layer], trunk: &mut Trunk, obs: &[f32], rows: usize) {
        let d = self.spec.obs_dim;
        trunk.acts.resize_with(layers.len() + 1, Vec::new);
        trunk.acts[0].clear();
        trunk.acts[0].extend_from_slice(&obs[..rows * d]);
        for (i, &l) in layers.iter().enumerate() {
            let (done, rest) = trunk.acts.split_at_mut(i + 1);
            let out = &mut rest[0];
            out.resize(rows * l.output, 0.0);
            self.linear(l, &done[i], rows, out);
            activate(self.spec.model.fcnet_activation, out);
        }
    }

    /// Forward pass over `rows` observations into `self.logits` and `self.values`.
    fn forward_pass(&mut self, obs: &[f32], rows: usize) {
        let mut pi = std::mem::take(&mut self.pi_trunk);
        let mut vf = std::mem::take(&mut self.vf_trunk);
        self.run_trunk(&self.layout.pi_trunk.clone(), &mut pi, obs, rows);
        let shared = self.layout.vf_trunk.is_empty();
        if !shared {
            self.run_trunk(&self.layout.vf_trunk.clone(), &mut vf, obs, rows);
        }
        let (a, lp, lv) = (self.spec.num_actions, self.layout.pi, self.layout.vf);
        let mut logits = std::mem::take(&mut self.logits);
        let mut values = std::mem::take(&mut self.values);
        logits.resize(rows * a, 0.0);
        values.resize(rows, 0.0);
        let h_pi = pi.acts.last().map_or(&[][..], Vec::as_slice);
        self.linear(lp, h_pi, rows, &mut logits);
        let h_vf = if shared {
            h_pi
        } else {
            vf.acts.last().map_or(&[][..], Vec::as_slice)
        };
        self.linear(lv, h_vf, rows, &mut values);
        self.logits = logits;
        self.values = values;
        self.pi_trunk = pi;
        self.vf_trunk = vf;
    }

    /// Backpropagates `d_out` (gradient w.r.t. the trunk's last activation, in
    /// `trunk.grads[last]`) through `layers`, accumulating parameter gradients.
    fn backward_trunk(&mut self, layers: &[Layer], trunk: &mut Trunk, rows: usize) {
        let act = self.spec.model.fcnet_activation;
        for (i, &l) in layers.iter().enumerate().rev() {
            // d(out of layer i) is trunk.grads[i + 1]; turn it into dZ in place.
            let (lower, upper) = trunk.grads.split_at_mut(i + 1);
            let dz = &mut upper[0];
            activation_backward(act, &trunk.acts[i + 1], dz);
            gemm(
                l.output,
                rows,
                l.input,
                dz,
                true,
                &trunk.acts[i],
                false,
                1.0,
                &mut self.grads[l.w],
            );
            let db = &mut self.grads[l.b];
            for row in dz.chunks_exact(l.output) {
                db.iter_mut().zip(row).for_each(|(g, v)| *g += v);
            }
            if i > 0 {
                let dh = &mut lower[i];
                dh.resize(rows * l.input, 0.0);
                gemm(
                    rows,
                    l.output,
                    l.input,
                    dz,
                    false,
                    &self.params[l.w],
                    false,
                    0.0,
                    dh,
                );
            }
        }
    }

    /// PPO's loss on one minibatch and the gradients of every parameter (in `self.grads`).
    pub fn loss_and_gradients(&mut self, mb: MinibatchData<'_>, kl_coeff: f64) -> MinibatchStats {
        let rows = mb.actions.len();
        let a = self.spec.num_actions;
        self.forward_pass(mb.obs, rows);
        let cfg = &self.cfg;
        let (clip_lo, clip_hi) = ((1.0 - cfg.clip_param) as f32, (1.0 + cfg.clip_param) as f32);
        let inv_b = 1.0 / rows as f32;
        let kl_w = if cfg.use_kl_loss {
            kl_coeff as f32
        } else {
            0.0
        };
        let (ent_c, vf_c, vf_clip) = (
            cfg.entropy_coeff as f32,
            cfg.vf_loss_coeff as f32,
            cfg.vf_clip_param as f32,
        );
        self.d_logits.resize(rows * a, 0.0);
        self.d_values.resize(rows, 0.0);
        let (mut policy, mut vf, mut ent, mut kl) = (0f64, 0f64, 0f64, 0f64);
        let mut p = vec![0f32; a];
        let mut old_p = vec![0f32; a];
        for i in 0..rows {
            let z = &self.logits[i * a..][..a];
            let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let logz = max + z.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
            let oz = &mb.old_logits[i * a..][..a];
            let omax = oz.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let ologz = omax + oz.iter().map(|v| (v - omax).exp()).sum::<f32>().ln();
            let mut h = 0f32;
            let mut k = 0f32;
            for j in 0..a {
                let lp = z[j] - logz;
                p[j] = lp.exp();
                h -= p[j] * lp;
                let olp = oz[j] - ologz;
                old_p[j] = olp.exp();
                k += old_p[j] * (olp - lp);
            }
            let act = mb.actions[i] as usize;
            let logp = z[act] - logz;
            let ratio = (logp - mb.old_logp[i]).exp();
            let adv = mb.advantages[i];
            let clipped = ratio.clamp(clip_lo, clip_hi);
            let (t1, t2) = (adv * ratio, adv * clipped);
            let surrogate = t1.min(t2);
            // d surrogate / d ratio: through the smaller term; the clipped one is flat
            // outside the clip range.
            let through = t1 <= t2 || (ratio > clip_lo && ratio < clip_hi);
            let d_ratio = if through { adv } else { 0.0 };
            let d_logp = -d_ratio * ratio;
            let dz = &mut self.d_logits[i * a..][..a];
            for j in 0..a {
                let lp = z[j] - logz;
                let one_hot = if j == act { 1.0 } else { 0.0 };
                let mut g = d_logp * (one_hot - p[j]);
                // d(-c·H)/dz_j = c·p_j (log p_j + H)
                g += ent_c * p[j] * (lp + h);
                g += kl_w * (p[j] - old_p[j]);
                dz[j] = g * inv_b;
            }
            let err = self.values[i] - mb.value_targets[i];
            let sq = err * err;
            let vf_i = sq.clamp(0.0, vf_clip);
            self.d_values[i] = if sq > 0.0 && sq < vf_clip {
                vf_c * 2.0 * err * inv_b
            } else {
                0.0
            };
            policy -= f64::from(surrogate);
            vf += f64::from(vf_i);
            ent += f64::from(h);
            kl += f64::from(k);
        }
        let n = rows as f64;
        let (policy, vf, ent, kl) = (policy / n, vf / n, ent / n, kl / n);
        let mut total = policy + cfg.vf_loss_coeff * vf - cfg.entropy_coeff * ent;
        if cfg.use_kl_loss {
            total += kl_coeff * kl;
        }

        // Backward: heads, then trunks.
        self.grads.iter_mut().for_each(|g| g.fill(0.0));
        let (lp, lv) = (self.layout.pi, self.layout.vf);
        let shared = self.layout.vf_trunk.is_empty();
        let mut pi = std::mem::take(&mut self.pi_trunk);
        let mut vft = std::mem::take(&mut self.vf_trunk);
        let depth = self.layout.pi_trunk.len();
        pi.grads.resize_with(depth + 1, Vec::new);
        vft.grads
            .resize_with(self.layout.vf_trunk.len() + 1, Vec::new);
        {
            let h_pi = &pi.acts[depth];
            gemm(
                lp.output,
                rows,
                lp.input,
                &self.d_logits,
                true,
                h_pi,
                false,
                0.0,
                &mut self.grads[lp.w],
            );
            let h_vf = if shared { h_pi } else { &vft.acts[depth] };
            gemm(
                lv.output,
                rows,
                lv.input,
                &self.d_values,
                true,
                h_vf,
                false,
                0.0,
                &mut self.grads[lv.w],
            );
        }
        for row in self.d_logits.chunks_exact(a) {
            self.grads[lp.b]
                .iter_mut()
                .zip(row)
                .for_each(|(g, v)| *g += v);
        }
        self.grads[lv.b][0] = self.d_values.iter().sum();
        if depth > 0 {
            let dh = &mut pi.grads[depth];
            dh.resize(rows * lp.input, 0.0);
            gemm(
                rows,
                lp.output,
                lp.input,
                &self.d_logits,
                false,
                &self.params[lp.w],
                false,
                0.0,
                dh,
            );
            let vf_dh = if shared {
                &mut pi.grads[depth]
            } else {
                &mut vft.grads[depth]
            };
            vf_dh.resize(rows * lv.input, 0.0);
            let beta = if shared { 1.0 } else { 0.0 };
            gemm(
                rows,
                lv.output,
                lv.input,
                &self.d_values,
                false,
                &self.params[lv.w],
                false,
                beta,
                vf_dh,
            );
            let layers = self.layout.pi_trunk.clone();
            self.backward_trunk(&layers, &mut pi, rows);
            if !shared {
                let layers = self.layout.vf_trunk.clone();
                self.backward_trunk(&layers, &mut vft, rows);
            }
        }
        self.pi_trunk = pi;
        self.vf_trunk = vft;
        let norm = self
            .grads
            .iter()
            .flatten()
            .map(|g| f64::from(*g) * f64::from(*g))
            .sum::<f64>()
            .sqrt();
        MinibatchStats {
            total,
            policy,
            vf,
            entropy: ent,
            kl,
            grad_norm: norm,
        }
    }

    /// The gradients of the last [`loss_and_gradients`](Self::loss_and_gradients), in the
    /// order of `MlpSpec::parameter_shapes`.
    pub fn gradients(&self) -> &[Vec<f32>] {
        &self.grads
    }

    fn adam_step(&mut self, lr: f64, scale: f32) {
        self.step += 1;
        let bc1 = 1.0 - f64::from(BETA1).powi(self.step as i32);
        let bc2 = 1.0 - f64::from(BETA2).powi(self.step as i32);
        let (bc1, bc2) = (bc1 as f32, bc2 as f32);
        let lr = lr as f32;
        for (((p, g), m), v) in self
            .params
            .iter_mut()
            .zip(&self.grads)
            .zip(&mut self.exp_avg)
            .zip(&mut self.exp_avg_sq)
        {
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                let g = g * scale;
                *m = BETA1 * *m + (1.0 - BETA1) * g;
                *v = BETA2 * *v + (1.0 - BETA2) * g * g;
                *p -= lr * (*m / bc1) / ((*v / bc2).sqrt() + EPS);
            }
        }
    }

    fn named(&self, data: &[Vec<f32>]) -> Vec<NamedTensor> {
        self.spec
            .parameter_shapes()
            .into_iter()
            .zip(data)
            .map(|((name, shape), d)| NamedTensor {
                name,
                shape,
                data: d.clone(),
            })
            .collect()
    }
}

impl LearnerBackend for FusedBackend {
    fn forward(&self, obs: &[f32], rows: usize) -> Result<(Vec<f32>, Vec<f32>), LearnerError> {
        // `forward` takes `&self`; a scratch copy keeps the trait's signature.
        let mut scratch = FusedBackend {
            pi_trunk: Trunk::default(),
            vf_trunk: Trunk::default(),
            logits: Vec::new(),
            values: Vec::new(),
            d_logits: Vec::new(),
            d_values: Vec::new(),
            grads: Vec::new(),
            exp_avg: Vec::new(),
            exp_avg_sq: Vec::new(),
            params: self.params.clone(),
            cfg: self.cfg.clone(),
            spec: self.spec.clone(),
            layout: self.layout.clone(),
            step: self.step,
        };
        scratch.forward_pass(obs, rows);
        Ok((scratch.logits, scratch.values))
    }

    fn train_minibatch(
        &mut self,
        mb: MinibatchData<'_>,
        kl_coeff: f64,
        lr: f64,
    ) -> Result<MinibatchStats, LearnerError> {
        let stats = self.loss_and_gradients(mb, kl_coeff);
        if !stats.total.is_finite() {
            return Err(LearnerError::NonFinite(stats.total));
        }
        let scale = match self.cfg.grad_clip {
            Some(clip) if stats.grad_norm > clip => (clip / (stats.grad_norm + 1e-6)) as f32,
            _ => 1.0,
        };
        self.adam_step(lr, scale);
        Ok(stats)
    }

    fn weights(&self) -> Result<Weights, LearnerError> {
        Ok(Weights {
            tensors: self.named(&self.params),
        })
    }

    fn optimizer_state(&self) -> Result<OptimizerState, LearnerError> {
        Ok(OptimizerState {
            step: self.step,
            exp_avg: self.named(&self.exp_avg),
            exp_avg_sq: self.named(&self.exp_avg_sq),
        })
    }

    fn set_optimizer_state(&mut self, s: &OptimizerState) -> Result<(), LearnerError> {
        for part in [&s.exp_avg, &s.exp_avg_sq] {
            self.spec
                .check(&Weights {
                    tensors: part.clone(),
                })
                .map_err(|e| LearnerError::Mismatch(format!("optimizer state: {e}")))?;
        }
        self.exp_avg = s.exp_avg.iter().map(|t| t.data.clone()).collect();
        self.exp_avg_sq = s.exp_avg_sq.iter().map(|t| t.data.clone()).collect();
        self.step = s.step;
        Ok(())
    }
}
