//! RLlib's `MeanStdFilter`: observations normalised by running mean and standard deviation;
//! and SB3's reward normalisation, [`ReturnStdFilter`].
//!
//! For observations, each env runner keeps the synchronised statistics plus a buffer of what it saw since the
//! last synchronisation. Each iteration the driver merges every runner's buffer into the
//! central statistics and sends those back (RLlib's `FilterManager.synchronize`).

/// Running count, mean and sum of squared deviations (Welford / Chan et al.), per element.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunningStat {
    /// Samples seen.
    pub count: u64,
    /// Their mean.
    pub mean: Vec<f64>,
    /// Sum of squared deviations from the mean.
    pub m2: Vec<f64>,
}

impl RunningStat {
    /// No samples of `dim` elements yet.
    pub fn new(dim: usize) -> Self {
        RunningStat {
            count: 0,
            mean: vec![0.0; dim],
            m2: vec![0.0; dim],
        }
    }

    /// Adds one sample.
    pub fn push(&mut self, x: &[f32]) {
        self.count += 1;
        let n = self.count as f64;
        for ((m, s), &v) in self.mean.iter_mut().zip(&mut self.m2).zip(x) {
            let v = f64::from(v);
            if self.count == 1 {
                *m = v;
            } else {
                let delta = v - *m;
                *m += delta / n;
                *s += delta * delta * (n - 1.0) / n;
            }
        }
    }

    /// Merges another set of statistics into this one (parallel variance formula).
    pub fn merge(&mut self, other: &RunningStat) {
        let (n1, n2) = (self.count as f64, other.count as f64);
        let n = n1 + n2;
        if other.count == 0 {
            return;
        }
        for i in 0..self.mean.len() {
            let delta = self.mean[i] - other.mean[i];
            self.mean[i] = (n1 * self.mean[i] + n2 * other.mean[i]) / n;
            self.m2[i] += other.m2[i] + delta * delta * n1 * n2 / n;
        }
        self.count += other.count;
    }

    /// Standard deviation per element, as RLlib defines it (|mean| with one sample).
    pub fn std(&self, i: usize) -> f64 {
        let var = if self.count > 1 {
            self.m2[i] / (self.count - 1) as f64
        } else {
            self.mean[i] * self.mean[i]
        };
        var.sqrt()
    }
}

/// RLlib's clip of normalised observations.
const CLIP: f64 = 10.0;
/// RLlib's `SMALL_NUMBER`, added to the standard deviation.
const SMALL_NUMBER: f64 = 1e-8;

/// Mean/std normalisation with RLlib's semantics: the statistics include the observation
/// being normalised, and results are clipped to [-10, 10].
#[derive(Debug, Clone, PartialEq)]
pub struct MeanStdFilter {
    /// Statistics used to normalise (synchronised plus local).
    pub running: RunningStat,
    /// What this copy saw since the last synchronisation.
    pub buffer: RunningStat,
}

impl MeanStdFilter {
    /// A filter for observations of `dim` elements.
    pub fn new(dim: usize) -> Self {
        MeanStdFilter {
            running: RunningStat::new(dim),
            buffer: RunningStat::new(dim),
        }
    }

    /// Normalises `x` into `out`; with `update` the sample is added to the statistics first.
    pub fn apply(&mut self, x: &[f32], update: bool, out: &mut [f32]) {
        if update {
            self.running.push(x);
            self.buffer.push(x);
        }
        for (i, (o, &v)) in out.iter_mut().zip(x).enumerate() {
            let z = (f64::from(v) - self.running.mean[i]) / (self.running.std(i) + SMALL_NUMBER);
            *o = z.clamp(-CLIP, CLIP) as f32;
        }
    }

    /// Takes the buffer (what was seen since the last sync), leaving it empty.
    pub fn take_buffer(&mut self) -> RunningStat {
        let dim = self.buffer.mean.len();
        std::mem::replace(&mut self.buffer, RunningStat::new(dim))
    }

    /// Adopts the driver's synchronised statistics and clears the buffer.
    pub fn sync(&mut self, central: &RunningStat) {
        self.running = central.clone();
        self.buffer = RunningStat::new(central.mean.len());
    }
}

/// Stable-Baselines3's reward normalisation (`VecNormalize(norm_reward=True)`, which rl-zoo3's
/// `normalize: true` turns on): each env's discounted return is tracked, and every reward is
/// divided by the running standard deviation of those returns, then clipped to [-10, 10].
/// The mean is not subtracted. One filter scales one env runner's envs, as one `VecNormalize`
/// wraps one process's vector env; its statistics are part of the runner's state.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReturnStdFilter {
    /// The discount of the tracked returns (the run's `gamma`).
    pub gamma: f64,
    /// Each env's discounted return so far; zero again after its episode ends.
    pub returns: Vec<f64>,
    /// Returns seen (SB3's `RunningMeanStd` starts at 1e-4, mean 0, variance 1).
    pub count: f64,
    /// Their mean.
    pub mean: f64,
    /// Their variance (population).
    pub var: f64,
}

impl ReturnStdFilter {
    /// A filter for `num_envs` envs discounting with `gamma`.
    pub fn new(num_envs: usize, gamma: f64) -> Self {
        ReturnStdFilter {
            gamma,
            returns: vec![0.0; num_envs],
            count: 1e-4,
            mean: 0.0,
            var: 1.0,
        }
    }

    /// Scales one vector step's `rewards` into `out`. The statistics take this step's returns
    /// first (all envs as one batch, as SB3); `done(i)` says env `i`'s episode ended with this
    /// step, so its return starts again from zero.
    pub fn apply(&mut self, rewards: &[f32], done: impl Fn(usize) -> bool, out: &mut [f32]) {
        let n = rewards.len();
        if n == 0 {
            return;
        }
        for (g, &r) in self.returns.iter_mut().zip(rewards) {
            *g = *g * self.gamma + f64::from(r);
        }
        let bn = n as f64;
        let bmean = self.returns.iter().sum::<f64>() / bn;
        let bvar = self
            .returns
            .iter()
            .map(|g| (g - bmean).powi(2))
            .sum::<f64>()
            / bn;
        let delta = bmean - self.mean;
        let total = self.count + bn;
        let m2 = self.var * self.count + bvar * bn + delta * delta * self.count * bn / total;
        self.mean += delta * bn / total;
        self.var = m2 / total;
        self.count = total;
        let scale = (self.var + SMALL_NUMBER).sqrt();
        for (i, (o, &r)) in out.iter_mut().zip(rewards).enumerate() {
            *o = (f64::from(r) / scale).clamp(-CLIP, CLIP) as f32;
            if done(i) {
                self.returns[i] = 0.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers come from SB3 2.9.2 itself: its `RunningMeanStd` driven as
    /// `VecNormalize.step_wait` drives it (3 envs, gamma 0.99, these rewards and dones).
    #[test]
    fn return_std_filter_scales_rewards_as_vec_normalize_does() {
        let steps: [([f32; 3], [bool; 3], [f32; 3]); 5] = [
            ([-1.0, -1.0, -1.0], [false; 3], [-10.0, -10.0, -10.0]),
            (
                [-1.0, 0.5, -1.0],
                [false, true, false],
                [-1.795_872_4, 0.897_936_2, -1.795_872_4],
            ),
            (
                [2.0, -1.0, -1.0],
                [false, false, true],
                [2.350_317_7, -1.175_158_9, -1.175_158_9],
            ),
            (
                [-1.0, -1.0, 3.0],
                [true, false, false],
                [-0.705_488_3, -0.705_488_3, 2.116_465],
            ),
            (
                [0.25, -1.0, -1.0],
                [false; 3],
                [0.157_370_37, -0.629_481_5, -0.629_481_5],
            ),
        ];
        let mut f = ReturnStdFilter::new(3, 0.99);
        let mut out = [0f32; 3];
        for (rewards, done, want) in steps {
            f.apply(&rewards, |i| done[i], &mut out);
            for (o, w) in out.iter().zip(want) {
                assert!(
                    (o - w).abs() <= 2e-6 * w.abs().max(1.0),
                    "{out:?} vs {want:?}"
                );
            }
        }
        assert!((f.count - 15.0001).abs() < 1e-9);
        assert!((f.mean - -0.808_041_213_058_579_5).abs() < 1e-12);
        assert!((f.var - 2.523_678_637_217_291).abs() < 1e-12);
        assert_eq!(f.returns[0], 0.25, "env 0 started again after step 4");
    }

    #[test]
    fn push_matches_the_two_pass_formulas() {
        let xs = [[1.0f32, -2.0], [3.0, 0.5], [-4.0, 8.0], [2.5, 2.5]];
        let mut s = RunningStat::new(2);
        xs.iter().for_each(|x| s.push(x));
        for i in 0..2 {
            let v: Vec<f64> = xs.iter().map(|x| f64::from(x[i])).collect();
            let mean = v.iter().sum::<f64>() / 4.0;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 3.0;
            assert!((s.mean[i] - mean).abs() < 1e-12);
            assert!((s.std(i) - var.sqrt()).abs() < 1e-12);
        }
    }

    #[test]
    fn merging_equals_pushing_everything_into_one() {
        let xs: Vec<[f32; 3]> = (0..20)
            .map(|i| [i as f32, (i * i) as f32 * 0.1, -(i as f32).sin()])
            .collect();
        let mut all = RunningStat::new(3);
        let mut a = RunningStat::new(3);
        let mut b = RunningStat::new(3);
        for (k, x) in xs.iter().enumerate() {
            all.push(x);
            if k < 7 { a.push(x) } else { b.push(x) }
        }
        a.merge(&b);
        assert_eq!(a.count, all.count);
        for i in 0..3 {
            assert!((a.mean[i] - all.mean[i]).abs() < 1e-9);
            assert!((a.m2[i] - all.m2[i]).abs() < 1e-7);
        }
    }

    #[test]
    fn filter_normalises_and_clips() {
        let mut f = MeanStdFilter::new(1);
        let mut out = [0.0f32];
        for x in [1.0f32, 2.0, 3.0] {
            f.apply(&[x], true, &mut out);
        }
        // mean 2, std 1: 3 → 1.
        assert!((out[0] - 1.0).abs() < 1e-6);
        f.apply(&[1000.0], false, &mut out);
        assert_eq!(out[0], 10.0);
        assert_eq!(f.take_buffer().count, 3);
        assert_eq!(f.buffer.count, 0);
    }
}
