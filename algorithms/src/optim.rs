//! PyTorch's Adam (β = 0.9, 0.999, ε = 1e-8, which RLlib's torch learners use) and global
//! gradient-norm clipping, on the host, once for every backend and algorithm.

use parking_lot::Mutex;

use crate::error::LearnerError;
use crate::nn::fused::Threads;
use crate::nn::linalg::simd_dispatch;
use crate::nn::{NamedTensor, Weights};

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
/// PyTorch's default ε.
pub const EPS: f32 = 1e-8;

/// Adam's state for one set of parameters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Adam {
    /// Steps taken.
    pub step: u64,
    /// First moments, one per parameter tensor.
    pub exp_avg: Vec<Vec<f32>>,
    /// Second moments.
    pub exp_avg_sq: Vec<Vec<f32>>,
    /// ε of the denominator (1e-8, PyTorch's default; RLlib's SAC uses 1e-7).
    pub eps: f32,
}

/// Adam's state with the parameters' names (what a checkpoint stores).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OptimizerState {
    /// Steps taken.
    pub step: u64,
    /// First moments.
    pub exp_avg: Vec<NamedTensor>,
    /// Second moments.
    pub exp_avg_sq: Vec<NamedTensor>,
}

simd_dispatch! {
    /// PyTorch's Adam on one tensor, the gradient first multiplied by `scale` (clipping);
    /// `k` is `[scale, lr, bias correction 1, bias correction 2, ε]`.
    fn adam_update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: [f32; 5]) {
        let [scale, lr, bc1, bc2, eps] = k;
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = g * scale;
            *m = BETA1 * *m + (1.0 - BETA1) * g;
            *v = BETA2 * *v + (1.0 - BETA2) * g * g;
            *p -= lr * (*m / bc1) / ((*v / bc2).sqrt() + eps);
        }
    }
}

simd_dispatch! {
    /// The sum of squares of `x` in `f64`, over eight lanes summed in a fixed order.
    fn sum_of_squares(x: &[f32]) -> f64 {
        let mut acc = [0f64; 8];
        let chunks = x.chunks_exact(8);
        let tail: f64 = chunks.remainder().iter().map(|v| f64::from(*v) * f64::from(*v)).sum();
        for c in chunks {
            acc.iter_mut()
                .zip(c)
                .for_each(|(a, v)| *a += f64::from(*v) * f64::from(*v));
        }
        ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
    }
}

/// The pieces of `tensors` that `runs` names ([`Threads::runs`]), thread by thread, as
/// disjoint mutable slices.
pub(crate) fn cut<'a>(
    tensors: &'a mut [Vec<f32>],
    runs: &[Vec<(usize, std::ops::Range<usize>)>],
) -> Vec<Vec<&'a mut [f32]>> {
    // Every tensor's pieces in order (runs cover each tensor front to back, thread by thread).
    let mut rest: Vec<&'a mut [f32]> = tensors.iter_mut().map(Vec::as_mut_slice).collect();
    runs.iter()
        .map(|run| {
            run.iter()
                .map(|(i, r)| {
                    let (piece, after) = std::mem::take(&mut rest[*i]).split_at_mut(r.len());
                    rest[*i] = after;
                    piece
                })
                .collect()
        })
        .collect()
}

/// The global L2 norm of several gradients.
pub fn global_norm<'a>(grads: impl IntoIterator<Item = &'a [f32]>) -> f64 {
    grads.into_iter().map(sum_of_squares).sum::<f64>().sqrt()
}

/// The factor that clips gradients of global norm `norm` to `clip` (torch's
/// `clip_grad_norm_`: `clip / (norm + 1e-6)` when the norm exceeds it).
pub fn clip_scale(norm: f64, clip: Option<f64>) -> f32 {
    match clip {
        Some(c) if norm > c => (c / (norm + 1e-6)) as f32,
        _ => 1.0,
    }
}

impl Adam {
    /// Zero moments for parameters of these sizes.
    pub fn new(sizes: impl IntoIterator<Item = usize>) -> Self {
        Self::with_eps(sizes, EPS)
    }

    /// Zero moments, with another ε.
    pub fn with_eps(sizes: impl IntoIterator<Item = usize>, eps: f32) -> Self {
        let zeros: Vec<Vec<f32>> = sizes.into_iter().map(|n| vec![0.0; n]).collect();
        Adam {
            step: 0,
            exp_avg: zeros.clone(),
            exp_avg_sq: zeros,
            eps,
        }
    }

    /// One step at learning rate `lr`, gradients scaled by `scale` first.
    pub fn step(&mut self, params: &mut [Vec<f32>], grads: &[Vec<f32>], lr: f64, scale: f32) {
        let k = self.next_step(lr, scale);
        for (((p, g), m), v) in params
            .iter_mut()
            .zip(grads)
            .zip(&mut self.exp_avg)
            .zip(&mut self.exp_avg_sq)
        {
            adam_update(p, g, m, v, k);
        }
    }

    /// [`step`](Self::step) with the elements shared out over the learner's `threads` (see
    /// [`Threads::runs`]). Each element's update is the same arithmetic on any thread, so the
    /// result is the same bits as `step`'s for any number of threads. Errors only if a thread
    /// panicked.
    pub fn step_on(
        &mut self,
        threads: &Threads,
        params: &mut [Vec<f32>],
        grads: &[Vec<f32>],
        lr: f64,
        scale: f32,
    ) -> Result<(), LearnerError> {
        let sizes: Vec<usize> = params.iter().map(Vec::len).collect();
        let runs = threads.runs(&sizes);
        if runs.is_empty() {
            self.step(params, grads, lr, scale);
            return Ok(());
        }
        let k = self.next_step(lr, scale);
        let (p, m, v) = (
            cut(params, &runs),
            cut(&mut self.exp_avg, &runs),
            cut(&mut self.exp_avg_sq, &runs),
        );
        let shares: Vec<_> = p
            .into_iter()
            .zip(m)
            .zip(v)
            .map(|((p, m), v)| Mutex::new((p, m, v)))
            .collect();
        threads.scoped(&|t| {
            let (p, m, v) = &mut *shares[t].lock();
            for ((((i, r), p), m), v) in runs[t].iter().zip(p).zip(m).zip(v) {
                adam_update(p, &grads[*i][r.clone()], m, v, k);
            }
        })
    }

    /// Counts a step; the constants of [`adam_update`] for it.
    fn next_step(&mut self, lr: f64, scale: f32) -> [f32; 5] {
        self.step += 1;
        // Past 2^20 steps both corrections are exactly 1 in f32 (and `as i32` cannot wrap).
        let e = self.step.min(1 << 20) as i32;
        let bc1 = (1.0 - f64::from(BETA1).powi(e)) as f32;
        let bc2 = (1.0 - f64::from(BETA2).powi(e)) as f32;
        [scale, lr as f32, bc1, bc2, self.eps]
    }

    /// The state with the parameters' names (those of `names`, in order).
    pub fn named(&self, names: &Weights) -> OptimizerState {
        let name = |data: &Vec<Vec<f32>>| {
            names
                .tensors
                .iter()
                .zip(data)
                .map(|(t, d)| NamedTensor {
                    name: t.name.clone(),
                    shape: t.shape.clone(),
                    data: d.clone(),
                })
                .collect()
        };
        OptimizerState {
            step: self.step,
            exp_avg: name(&self.exp_avg),
            exp_avg_sq: name(&self.exp_avg_sq),
        }
    }

    /// Restores a named state; its tensors must have the names and shapes of `names`.
    pub fn load(&mut self, s: &OptimizerState, names: &Weights) -> Result<(), LearnerError> {
        let fits = |part: &[NamedTensor]| {
            part.len() == names.tensors.len()
                && part.iter().zip(&names.tensors).all(|(a, b)| {
                    a.name == b.name && a.shape == b.shape && a.data.len() == b.data.len()
                })
        };
        if !fits(&s.exp_avg) || !fits(&s.exp_avg_sq) {
            return Err(LearnerError::Mismatch(
                "optimizer state: its tensors do not match the module's parameters".into(),
            ));
        }
        self.step = s.step;
        self.exp_avg = s.exp_avg.iter().map(|t| t.data.clone()).collect();
        self.exp_avg_sq = s.exp_avg_sq.iter().map(|t| t.data.clone()).collect();
        Ok(())
    }
}

/// `s` with its moments in the order of `names`' tensors, found by name (a file may list
/// them in another order); moments of other names are dropped.
pub fn ordered_like(s: &OptimizerState, names: &Weights) -> OptimizerState {
    let order = |v: &[NamedTensor]| -> Vec<NamedTensor> {
        names
            .tensors
            .iter()
            .filter_map(|t| v.iter().find(|m| m.name == t.name).cloned())
            .collect()
    };
    OptimizerState {
        step: s.step,
        exp_avg: order(&s.exp_avg),
        exp_avg_sq: order(&s.exp_avg_sq),
    }
}

/// Renames an optimizer state's tensors with `prefix.` (several optimizers in one file).
pub fn prefixed(s: &OptimizerState, prefix: &str) -> OptimizerState {
    let p = |v: &[NamedTensor]| {
        v.iter()
            .map(|t| NamedTensor {
                name: format!("{prefix}.{}", t.name),
                ..t.clone()
            })
            .collect()
    };
    OptimizerState {
        step: s.step,
        exp_avg: p(&s.exp_avg),
        exp_avg_sq: p(&s.exp_avg_sq),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::fused::PART;

    /// Adam shared out over 2 and 3 threads gives the bits of the serial step, and the
    /// threads' runs cover every element once, in whole parts but for tensors' ends.
    #[test]
    fn adam_on_threads_matches_the_serial_step_bit_for_bit() {
        let sizes = [3usize, 4096, 64, 1500, 2, 700];
        let mut x = 0.3f32;
        let mut next = move || {
            x = (x * 3.7 + 0.1).fract();
            x - 0.5
        };
        let params: Vec<Vec<f32>> = sizes
            .iter()
            .map(|&n| (0..n).map(|_| next()).collect())
            .collect();
        let grads: Vec<Vec<f32>> = sizes
            .iter()
            .map(|&n| (0..n).map(|_| next()).collect())
            .collect();
        let mut want = params.clone();
        let mut serial = Adam::new(sizes);
        for _ in 0..3 {
            serial.step(&mut want, &grads, 1e-3, 0.7);
        }
        for n in [2, 3] {
            let threads = Threads::new(n).unwrap();
            let runs = threads.runs(&sizes);
            assert_eq!(runs.len(), n);
            let mut seen: Vec<Vec<bool>> = sizes.iter().map(|&s| vec![false; s]).collect();
            let mut at = 0;
            for run in &runs {
                for (i, r) in run {
                    // Runs go front to back through the concatenation.
                    assert_eq!(sizes[..*i].iter().sum::<usize>() + r.start, at);
                    at += r.len();
                    for e in r.clone() {
                        assert!(!seen[*i][e]);
                        seen[*i][e] = true;
                    }
                }
                if let Some((i, r)) = run.last() {
                    let end = sizes[..*i].iter().sum::<usize>() + r.end;
                    let total: usize = sizes.iter().sum();
                    assert!(end % PART == 0 || end == total, "a run ends inside a part");
                }
            }
            assert!(seen.iter().flatten().all(|s| *s));
            let mut got = params.clone();
            let mut adam = Adam::new(sizes);
            for _ in 0..3 {
                adam.step_on(&threads, &mut got, &grads, 1e-3, 0.7).unwrap();
            }
            assert_eq!(got, want, "{n} threads");
            assert_eq!(adam, serial);
        }
        // One thread, or too little to share, runs serially.
        assert!(Threads::new(1).unwrap().runs(&sizes).is_empty());
        assert!(Threads::new(2).unwrap().runs(&[PART]).is_empty());
    }

    #[test]
    fn one_adam_step_moves_by_lr_against_the_gradient_sign() {
        let mut adam = Adam::new([3]);
        let mut p = vec![vec![1.0f32, 1.0, 1.0]];
        adam.step(&mut p, &[vec![0.5, -2.0, 0.0]], 0.1, 1.0);
        // After one step m̂ = g and v̂ = g², so the update is lr · g / (|g| + ε).
        assert!((p[0][0] - 0.9).abs() < 1e-6);
        assert!((p[0][1] - 1.1).abs() < 1e-6);
        assert_eq!(p[0][2], 1.0);
        assert_eq!(adam.step, 1);
    }

    #[test]
    fn clipping_scales_to_the_limit() {
        let g = [vec![3.0f32, 4.0]];
        let n = global_norm(g.iter().map(Vec::as_slice));
        assert!((n - 5.0).abs() < 1e-12);
        assert!((clip_scale(n, Some(1.0)) - 0.2).abs() < 1e-6);
        assert_eq!(clip_scale(n, None), 1.0);
        assert_eq!(clip_scale(n, Some(10.0)), 1.0);
    }
}
