//! What every algorithm's learner shares: the metrics an update reports, one minibatch's
//! loss terms, explained variance, the shuffle, and the explanation of a non-finite loss.

use envs::NpRandom;

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
