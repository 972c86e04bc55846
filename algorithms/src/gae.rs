//! Generalised advantage estimation (Schulman et al., 2016) over episode fragments.

use crate::sample_batch::Fragment;

/// Advantages and value targets for every row.
///
/// `values[t]` is V(obs_t); `bootstrap_values[b]` is V of bootstrap observation `b`. A
/// fragment that ends in a terminal state bootstraps from 0; one cut by truncation or by the
/// end of sampling bootstraps from its bootstrap observation's value.
pub fn compute_gae(
    fragments: &[Fragment],
    rewards: &[f32],
    values: &[f32],
    bootstrap_values: &[f32],
    gamma: f32,
    lambda: f32,
) -> (Vec<f32>, Vec<f32>) {
    let mut advantages = vec![0.0f32; rewards.len()];
    for f in fragments {
        let mut next_value = match (f.terminated, f.bootstrap) {
            (true, _) | (false, None) => 0.0,
            (false, Some(b)) => bootstrap_values[b],
        };
        let mut gae = 0.0f32;
        for t in (f.start..f.end).rev() {
            let delta = rewards[t] + gamma * next_value - values[t];
            gae = delta + gamma * lambda * gae;
            advantages[t] = gae;
            next_value = values[t];
        }
    }
    let targets = advantages.iter().zip(values).map(|(a, v)| a + v).collect();
    (advantages, targets)
}

/// Standardises in place: zero mean, unit standard deviation (floored at 1e-4, as RLlib).
pub fn standardize(x: &mut [f32]) {
    if x.is_empty() {
        return;
    }
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = x
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    let std = var.sqrt().max(1e-4);
    for v in x {
        *v = ((f64::from(*v) - mean) / std) as f32;
    }
}
