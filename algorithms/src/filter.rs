//! RLlib's `MeanStdFilter`: observations normalised by running mean and standard deviation.
//!
//! Each env runner keeps the synchronised statistics plus a buffer of what it saw since the
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

#[cfg(test)]
mod tests {
    use super::*;

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
