//! Action distributions, as RLlib's torch distributions: categorical (logits), diagonal
//! Gaussian (mean and log-std; PPO on `Box` actions) and squashed Gaussian (tanh of a Gaussian;
//! SAC). Sampling, log-probabilities, entropies and KL divergences, and their gradients with
//! respect to the distribution's inputs, written once for env runners and every learner.

use envs::NpRandom;

/// ½ log(2π).
pub const HALF_LOG_2PI: f32 = 0.918_938_5;

/// The standard normal, from two uniforms (Box-Muller; one draw per call).
pub fn standard_normal(rng: &mut NpRandom) -> f32 {
    crate::nn::standard_normal(rng) as f32
}

/// `log(sum(exp(x)))`, computed stably.
pub fn log_sum_exp(x: &[f32]) -> f32 {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    m + x.iter().map(|v| (v - m).exp()).sum::<f32>().ln()
}

/// Samples an index from categorical logits; returns it and its log-probability.
pub fn sample_categorical(logits: &[f32], rng: &mut NpRandom) -> (u32, f32) {
    let logz = log_sum_exp(logits);
    let u = rng.random() as f32;
    let mut acc = 0.0f32;
    let mut chosen = logits.len() - 1;
    for (i, &l) in logits.iter().enumerate() {
        acc += (l - logz).exp();
        if u < acc {
            chosen = i;
            break;
        }
    }
    (chosen as u32, logits[chosen] - logz)
}

/// The index of the largest value (the greedy action); ties go to the lowest index.
pub fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in x.iter().enumerate() {
        if l > x[best] {
            best = i;
        }
    }
    best as u32
}

/// log N(a; mean, exp(log_std)), summed over the dimensions.
pub fn gaussian_logp(a: &[f32], mean: &[f32], log_std: &[f32]) -> f32 {
    a.iter()
        .zip(mean)
        .zip(log_std)
        .map(|((&a, &m), &ls)| {
            let z = (a - m) * (-ls).exp();
            -0.5 * z * z - ls - HALF_LOG_2PI
        })
        .sum()
}

/// Entropy of a diagonal Gaussian: Σ (log σ + ½ + ½ log 2π).
pub fn gaussian_entropy(log_std: &[f32]) -> f32 {
    log_std.iter().map(|&ls| ls + 0.5 + HALF_LOG_2PI).sum()
}

/// Samples a diagonal Gaussian into `out`; returns the sample's log-probability.
pub fn sample_gaussian(mean: &[f32], log_std: &[f32], rng: &mut NpRandom, out: &mut [f32]) -> f32 {
    for ((o, &m), &ls) in out.iter_mut().zip(mean).zip(log_std) {
        *o = m + ls.exp() * standard_normal(rng);
    }
    gaussian_logp(out, mean, log_std)
}

/// KL(old ‖ new) of two diagonal Gaussians, summed over the dimensions.
pub fn gaussian_kl(old_mean: &[f32], old_log_std: &[f32], mean: &[f32], log_std: &[f32]) -> f32 {
    old_mean
        .iter()
        .zip(old_log_std)
        .zip(mean.iter().zip(log_std))
        .map(|((&om, &ols), (&m, &ls))| {
            let var_ratio = (2.0 * (ols - ls)).exp();
            let d = (om - m) * (-ls).exp();
            ls - ols + 0.5 * (var_ratio + d * d) - 0.5
        })
        .sum()
}

/// How a policy's `Box` action becomes the env's (RLlib's `normalize_actions` and
/// `clip_actions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionMapping {
    /// The policy acts in [-1, 1], mapped onto the bounds and clipped (the default).
    Normalize,
    /// The policy acts in the env's units, clipped to the bounds.
    Clip,
    /// Passed on as is.
    Raw,
}

impl ActionMapping {
    /// From the two config flags (normalising wins, as in RLlib).
    pub fn from_flags(normalize_actions: bool, clip_actions: bool) -> Self {
        match (normalize_actions, clip_actions) {
            (true, _) => ActionMapping::Normalize,
            (false, true) => ActionMapping::Clip,
            (false, false) => ActionMapping::Raw,
        }
    }

    /// The env's action for `a`.
    pub fn apply(self, a: &[f32], low: &[f32], high: &[f32], out: &mut [f32]) {
        match self {
            ActionMapping::Normalize => unsquash(a, low, high, out),
            ActionMapping::Clip => {
                for (((o, &a), &lo), &hi) in out.iter_mut().zip(a).zip(low).zip(high) {
                    *o = a.clamp(lo, hi);
                }
            }
            ActionMapping::Raw => out.copy_from_slice(a),
        }
    }
}

/// The env's action for a policy action in the normalised space [-1, 1]: RLlib's
/// `normalize_actions` (`low + (a + 1)(high - low)/2`, then clipped to the bounds). Infinite
/// bounds leave the value unchanged.
pub fn unsquash(a: &[f32], low: &[f32], high: &[f32], out: &mut [f32]) {
    for (((o, &a), &lo), &hi) in out.iter_mut().zip(a).zip(low).zip(high) {
        *o = if lo.is_finite() && hi.is_finite() {
            (lo + (a + 1.0) * (hi - lo) / 2.0).clamp(lo, hi)
        } else {
            a
        };
    }
}

/// RLlib's bounds on a squashed Gaussian's log-std (`MIN_LOG_NN_OUTPUT`, `MAX_LOG_NN_OUTPUT`).
pub const SQUASHED_LOG_STD: (f32, f32) = (-5.0, 2.0);

/// A squashed Gaussian's action for standard normal `noise` ε:
/// `a = tanh(mean + exp(clamp(log_std)) ε)` in (-1, 1), written to `out`. Returns log π(a)
/// with RLlib's tanh correction (`Σ clamp(log N(u), ±100) - Σ log(1 - tanh(u)² + 1e-6)`).
pub fn squash(mean: &[f32], log_std: &[f32], noise: &[f32], out: &mut [f32]) -> f32 {
    let mut logp = 0f32;
    for (((o, &e), &m), &ls) in out.iter_mut().zip(noise).zip(mean).zip(log_std) {
        let ls = ls.clamp(SQUASHED_LOG_STD.0, SQUASHED_LOG_STD.1);
        let u = m + ls.exp() * e;
        let a = u.tanh();
        *o = a;
        logp += (-0.5 * e * e - ls - HALF_LOG_2PI).clamp(-100.0, 100.0) - (1.0 - a * a + 1e-6).ln();
    }
    logp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_pieces_match_closed_forms() {
        // N(0.5; 0, 1): -0.125 - ½ log 2π.
        let lp = gaussian_logp(&[0.5], &[0.0], &[0.0]);
        assert!((lp - (-0.125 - HALF_LOG_2PI)).abs() < 1e-6);
        // Two dims add; σ = e scales the density by 1/e.
        let lp2 = gaussian_logp(&[0.5, 1.0], &[0.0, 1.0], &[0.0, 1.0]);
        assert!((lp2 - (lp - 1.0 - HALF_LOG_2PI)).abs() < 1e-6);
        assert!((gaussian_entropy(&[0.0]) - 1.418_938_5).abs() < 1e-6);
        assert_eq!(gaussian_kl(&[0.3], &[0.2], &[0.3], &[0.2]), 0.0);
        // KL(N(0,1) ‖ N(1, e^2)) = 1 + (1 + 1)/(2 e^2) - 1/2.
        let k = gaussian_kl(&[0.0], &[0.0], &[1.0], &[1.0]);
        let want = 1.0 + 2.0 / (2.0 * (2.0f32).exp()) - 0.5;
        assert!((k - want).abs() < 1e-6, "{k} vs {want}");
    }

    #[test]
    fn unsquash_maps_the_unit_box_onto_the_bounds() {
        let mut out = [0.0; 3];
        unsquash(
            &[-1.0, 0.0, 3.0],
            &[-2.0, -2.0, -2.0],
            &[2.0, 2.0, 2.0],
            &mut out,
        );
        assert_eq!(out, [-2.0, 0.0, 2.0]);
        unsquash(
            &[5.0],
            &[f32::NEG_INFINITY],
            &[f32::INFINITY],
            &mut out[..1],
        );
        assert_eq!(out[0], 5.0);
    }

    #[test]
    fn samples_follow_their_distribution() {
        let mut rng = NpRandom::from_seed(3);
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            counts[sample_categorical(&[0.0, (2.0f32).ln(), 0.0], &mut rng).0 as usize] += 1;
        }
        assert!(
            (counts[1] as f32 / 30_000.0 - 0.5).abs() < 0.01,
            "{counts:?}"
        );
        let (mut sum, mut sq) = (0.0f64, 0.0f64);
        let mut a = [0.0f32];
        for _ in 0..30_000 {
            sample_gaussian(&[1.0], &[(0.5f32).ln()], &mut rng, &mut a);
            sum += f64::from(a[0]);
            sq += f64::from(a[0]) * f64::from(a[0]);
        }
        let mean = sum / 30_000.0;
        let var = sq / 30_000.0 - mean * mean;
        assert!(
            (mean - 1.0).abs() < 0.01 && (var - 0.25).abs() < 0.01,
            "{mean} {var}"
        );
    }
}
