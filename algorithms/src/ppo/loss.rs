//! PPO's loss (RLlib's `PPOTorchLearner.compute_loss_for_module`), written once for every
//! backend: the clipped surrogate, the clipped squared value error, the entropy bonus and the
//! KL penalty, with their gradients with respect to the network's outputs (policy head,
//! value head) and the free log-std.
//!
//! Per row: `L = -min(r·A, clip(r, 1 - ε, 1 + ε)·A) + c_vf·min((V - V_target)², vf_clip)
//! - c_H·H + β·KL(π_old ‖ π)`, averaged over the minibatch.

use crate::distributions::{HALF_LOG_2PI, log_sum_exp};
use crate::nn::RowLoss;

/// Index of each sum a [`PpoLoss`] adds to.
pub mod sums {
    /// Σ -surrogate.
    pub const POLICY: usize = 0;
    /// Σ clipped squared value error.
    pub const VF: usize = 1;
    /// Σ entropy.
    pub const ENTROPY: usize = 2;
    /// Σ KL(old ‖ new).
    pub const KL: usize = 3;
    /// First of the free log-std's gradient sums (one per action dimension).
    pub const LOG_STD: usize = 4;
}

/// The distribution the policy head parameterises.
#[derive(Debug, Clone, PartialEq)]
pub enum Dist {
    /// Categorical over this many actions.
    Categorical(usize),
    /// Diagonal Gaussian of this size; the head gives the mean, `log_std` is free.
    Gaussian {
        /// Action size.
        dim: usize,
        /// The current log-std.
        log_std: Vec<f32>,
    },
}

/// One minibatch's inputs to the loss, and the coefficients.
#[derive(Debug, Clone, PartialEq)]
pub struct PpoLoss {
    /// The distribution.
    pub dist: Dist,
    /// Actions taken: indices (as `f32`) or values, `action_dim` per row.
    pub actions: Vec<f32>,
    /// Their log-probabilities under the sampling policy.
    pub old_logp: Vec<f32>,
    /// The sampling policy's distribution inputs (logits, or mean and log-std).
    pub old_dist_inputs: Vec<f32>,
    /// Standardised advantages.
    pub advantages: Vec<f32>,
    /// Value targets.
    pub value_targets: Vec<f32>,
    /// PPO's clip range ε.
    pub clip_param: f32,
    /// Clip of the squared value error.
    pub vf_clip_param: f32,
    /// Weight of the value loss.
    pub vf_loss_coeff: f32,
    /// Weight of the entropy bonus.
    pub entropy_coeff: f32,
    /// Weight of the KL penalty (0 without `use_kl_loss`).
    pub kl_coeff: f32,
}

/// The loss terms of a minibatch (means over its rows).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Terms {
    /// Mean -surrogate.
    pub policy: f64,
    /// Mean clipped value loss.
    pub vf: f64,
    /// Mean entropy.
    pub entropy: f64,
    /// Mean KL.
    pub kl: f64,
    /// The weighted total.
    pub total: f64,
}

impl PpoLoss {
    /// An empty loss for a distribution.
    pub fn new(dist: Dist) -> Self {
        PpoLoss {
            dist,
            actions: Vec::new(),
            old_logp: Vec::new(),
            old_dist_inputs: Vec::new(),
            advantages: Vec::new(),
            value_targets: Vec::new(),
            clip_param: 0.3,
            vf_clip_param: 10.0,
            vf_loss_coeff: 1.0,
            entropy_coeff: 0.0,
            kl_coeff: 0.0,
        }
    }

    /// Empties the per-row inputs (keeping their capacity).
    pub fn clear_rows(&mut self) {
        for v in [
            &mut self.actions,
            &mut self.old_logp,
            &mut self.old_dist_inputs,
            &mut self.advantages,
            &mut self.value_targets,
        ] {
            v.clear();
        }
    }

    /// Rows in the minibatch.
    pub fn rows(&self) -> usize {
        self.advantages.len()
    }

    /// The mean terms from a minibatch's sums (as [`RowLoss::block`] adds them up).
    pub fn terms(&self, sums: &[f64]) -> Terms {
        let n = self.rows().max(1) as f64;
        let (policy, vf, entropy, kl) = (
            sums[sums::POLICY] / n,
            sums[sums::VF] / n,
            sums[sums::ENTROPY] / n,
            sums[sums::KL] / n,
        );
        let total = policy + f64::from(self.vf_loss_coeff) * vf
            - f64::from(self.entropy_coeff) * entropy
            + f64::from(self.kl_coeff) * kl;
        Terms {
            policy,
            vf,
            entropy,
            kl,
            total,
        }
    }

    /// The surrogate's gradient w.r.t. the log-probability of row `i`, and the surrogate.
    fn surrogate(&self, i: usize, logp: f32) -> (f32, f32) {
        let ratio = (logp - self.old_logp[i]).exp();
        let adv = self.advantages[i];
        let (lo, hi) = (1.0 - self.clip_param, 1.0 + self.clip_param);
        let clipped = ratio.clamp(lo, hi);
        let (t1, t2) = (adv * ratio, adv * clipped);
        // d surrogate / d ratio: through the smaller term; the clipped one is flat outside the
        // clip range.
        let through = t1 <= t2 || (ratio > lo && ratio < hi);
        let d_ratio = if through { adv } else { 0.0 };
        (-d_ratio * ratio, t1.min(t2))
    }
}

impl RowLoss for PpoLoss {
    fn num_sums(&self) -> usize {
        match &self.dist {
            Dist::Categorical(_) => sums::LOG_STD,
            Dist::Gaussian { dim, .. } => sums::LOG_STD + dim,
        }
    }

    fn block(&self, first: usize, rows: usize, out: &[f32], d_out: &mut [f32], s: &mut [f64]) {
        let inv_b = 1.0 / self.rows() as f32;
        let (ent_c, vf_c, vf_clip, kl_w) = (
            self.entropy_coeff,
            self.vf_loss_coeff,
            self.vf_clip_param,
            self.kl_coeff,
        );
        let width = match &self.dist {
            Dist::Categorical(n) => *n,
            Dist::Gaussian { dim, .. } => *dim,
        };
        let (head, values) = out.split_at(rows * width);
        let (d_head, d_values) = d_out.split_at_mut(rows * width);
        match &self.dist {
            Dist::Categorical(a) => {
                let a = *a;
                // Softmax rows of up to 16 actions live on the stack.
                assert!(a <= 16, "PPO's loss supports at most 16 discrete actions");
                let (mut p, mut old_p) = ([0f32; 16], [0f32; 16]);
                for r in 0..rows {
                    let i = first + r;
                    let z = &head[r * a..][..a];
                    let logz = log_sum_exp(z);
                    let oz = &self.old_dist_inputs[i * a..][..a];
                    let ologz = log_sum_exp(oz);
                    let (mut h, mut k) = (0f32, 0f32);
                    for j in 0..a {
                        let lp = z[j] - logz;
                        p[j] = lp.exp();
                        h -= p[j] * lp;
                        let olp = oz[j] - ologz;
                        old_p[j] = olp.exp();
                        k += old_p[j] * (olp - lp);
                    }
                    let act = self.actions[i] as usize;
                    let (d_logp, surrogate) = self.surrogate(i, z[act] - logz);
                    let dz = &mut d_head[r * a..][..a];
                    for j in 0..a {
                        let lp = z[j] - logz;
                        let one_hot = if j == act { 1.0 } else { 0.0 };
                        let mut g = d_logp * (one_hot - p[j]);
                        // d(-c·H)/dz_j = c·p_j (log p_j + H)
                        g += ent_c * p[j] * (lp + h);
                        g += kl_w * (p[j] - old_p[j]);
                        dz[j] = g * inv_b;
                    }
                    s[sums::POLICY] -= f64::from(surrogate);
                    s[sums::ENTROPY] += f64::from(h);
                    s[sums::KL] += f64::from(k);
                }
            }
            Dist::Gaussian { dim, log_std } => {
                let d = *dim;
                let h: f32 = log_std.iter().map(|&ls| ls + 0.5 + HALF_LOG_2PI).sum();
                for r in 0..rows {
                    let i = first + r;
                    let mean = &head[r * d..][..d];
                    let a = &self.actions[i * d..][..d];
                    let old = &self.old_dist_inputs[i * 2 * d..][..2 * d];
                    let (old_mean, old_ls) = old.split_at(d);
                    let mut logp = 0f32;
                    let mut k = 0f32;
                    for j in 0..d {
                        let inv_std = (-log_std[j]).exp();
                        let z = (a[j] - mean[j]) * inv_std;
                        logp += -0.5 * z * z - log_std[j] - HALF_LOG_2PI;
                        let var_ratio = (2.0 * (old_ls[j] - log_std[j])).exp();
                        let dm = (old_mean[j] - mean[j]) * inv_std;
                        k += log_std[j] - old_ls[j] + 0.5 * (var_ratio + dm * dm) - 0.5;
                    }
                    let (d_logp, surrogate) = self.surrogate(i, logp);
                    let dm_out = &mut d_head[r * d..][..d];
                    for j in 0..d {
                        let inv_var = (-2.0 * log_std[j]).exp();
                        let diff = a[j] - mean[j];
                        // d logp/dμ = (a - μ)/σ²; d KL/dμ = (μ - μ_old)/σ².
                        let g_mean =
                            d_logp * diff * inv_var + kl_w * (mean[j] - old_mean[j]) * inv_var;
                        dm_out[j] = g_mean * inv_b;
                        // d logp/d log σ = (a - μ)²/σ² - 1; d H/d log σ = 1;
                        // d KL/d log σ = 1 - (σ_old² + (μ_old - μ)²)/σ².
                        let z2 = diff * diff * inv_var;
                        let dm_old = old_mean[j] - mean[j];
                        let kl_ls = 1.0 - ((2.0 * old_ls[j]).exp() + dm_old * dm_old) * inv_var;
                        let g_ls = d_logp * (z2 - 1.0) - ent_c + kl_w * kl_ls;
                        s[sums::LOG_STD + j] += f64::from(g_ls * inv_b);
                    }
                    s[sums::POLICY] -= f64::from(surrogate);
                    s[sums::ENTROPY] += f64::from(h);
                    s[sums::KL] += f64::from(k);
                }
            }
        }
        for r in 0..rows {
            let i = first + r;
            let err = values[r] - self.value_targets[i];
            let sq = err * err;
            s[sums::VF] += f64::from(sq.clamp(0.0, vf_clip));
            d_values[r] = if sq > 0.0 && sq < vf_clip {
                vf_c * 2.0 * err * inv_b
            } else {
                0.0
            };
        }
    }
}
