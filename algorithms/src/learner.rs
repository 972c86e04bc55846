//! What every algorithm's learner shares: the metrics an update reports, one minibatch's
//! loss terms, explained variance, the shuffle, and the explanation of a non-finite loss.

use envs::NpRandom;

use crate::config::AlgorithmConfig;

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

/// Says which loss term went non-finite and which configured values feed it.
pub(crate) fn explain_non_finite(
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
pub(crate) fn shuffle(v: &mut [usize], rng: &mut NpRandom) {
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
