//! The DQN learner (RLlib's `DQNTorchLearner`): one gradient step per replayed minibatch on
//! the TD loss `mean_i w_i · L(Q(s_i, a_i) - y_i)`, with
//! `y = r + γ^n (1 - terminated) Q_target(s', argmax_a Q(s', a))` (double Q) or
//! `max_a Q_target(s', a)`, `L` Huber (δ = 1) or the squared error, gradient clipping and
//! Adam; the target network follows every `target_network_update_freq` sampled env steps
//! (`target ← τ·online + (1 - τ)·target`).

use super::module::{AF, DqnModuleSpec, TARGET, q_values};
use crate::config::{AlgorithmConfig, TdLoss};
use crate::error::LearnerError;
use crate::learner::MinibatchStats;
use crate::metrics::learner as m;
use crate::nn::fused::Threads;
use crate::nn::{Network, Weights, select};
use crate::optim::{Adam, OptimizerState, clip_scale, global_norm};
use crate::replay::ReplayBatch;

/// What one DQN update reports, and the TD errors for the replay priorities.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DqnUpdate {
    /// `(metric, value)` pairs.
    pub metrics: Vec<(&'static str, f64)>,
    /// `|Q(s, a) - y|` per row.
    pub td_errors: Vec<f32>,
}

/// The DQN learner.
pub struct DqnLearner {
    cfg: AlgorithmConfig,
    spec: DqnModuleSpec,
    online: Box<dyn Network>,
    target: Box<dyn Network>,
    adam: Adam,
    threads: Threads,
    last_target_update: u64,
    num_target_updates: u64,
    out: Vec<f32>,
    next_online: Vec<f32>,
    next_target: Vec<f32>,
    d_out: Vec<f32>,
}

impl std::fmt::Debug for DqnLearner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DqnLearner")
            .field("spec", &self.spec)
            .finish()
    }
}

/// Huber (δ = 1) or squared error of `x`, and its derivative.
fn td_loss(kind: TdLoss, x: f32) -> (f32, f32) {
    match kind {
        TdLoss::Huber if x.abs() < 1.0 => (0.5 * x * x, x),
        TdLoss::Huber => (x.abs() - 0.5, x.signum()),
        TdLoss::Mse => (x * x, 2.0 * x),
    }
}

impl DqnLearner {
    /// A learner for `spec` starting from the module's `weights` (online and target).
    pub fn new(
        cfg: AlgorithmConfig,
        spec: DqnModuleSpec,
        weights: &Weights,
    ) -> Result<Self, LearnerError> {
        let (online_w, target_w) = spec.split(weights).map_err(LearnerError::Mismatch)?;
        let threads = Threads::new(cfg.learner_threads())?;
        let net = |w: &Weights| {
            select::network(
                cfg.learner_backend,
                cfg.device,
                spec.net_spec(),
                w,
                &threads,
            )
        };
        let online = net(&online_w)?;
        let target = net(&target_w)?;
        Ok(DqnLearner {
            adam: Adam::new(online_w.tensors.iter().map(|t| t.data.len())),
            online,
            target,
            threads,
            cfg,
            spec,
            last_target_update: 0,
            num_target_updates: 0,
            out: Vec::new(),
            next_online: Vec::new(),
            next_target: Vec::new(),
            d_out: Vec::new(),
        })
    }

    /// The whole module (online, then target).
    pub fn weights(&self) -> Result<Weights, LearnerError> {
        let mut w = self.online.weights()?;
        w.tensors
            .extend(self.target.weights()?.prefixed(TARGET).tensors);
        Ok(w)
    }

    /// What env runners act with: the online network.
    pub fn inference_weights(&self) -> Result<Weights, LearnerError> {
        self.online.weights()
    }

    /// [`inference_weights`](Self::inference_weights) into `out`, reusing its buffers.
    pub fn inference_weights_into(&self, out: &mut Weights) -> Result<(), LearnerError> {
        self.online.weights_into(out)
    }

    /// Adam's state, named after the online network's parameters.
    pub fn optimizer_state(&self) -> Result<OptimizerState, LearnerError> {
        Ok(self.adam.named(&self.online.weights()?))
    }

    /// Restores Adam's state.
    pub fn set_optimizer_state(&mut self, s: &OptimizerState) -> Result<(), LearnerError> {
        let w = self.online.weights()?;
        self.adam.load(&crate::optim::ordered_like(s, &w), &w)
    }

    /// `(env steps at the last target update, target updates so far)`.
    pub fn target_counters(&self) -> (u64, u64) {
        (self.last_target_update, self.num_target_updates)
    }

    /// Restores the target-update counters.
    pub fn set_target_counters(&mut self, (last, n): (u64, u64)) {
        self.last_target_update = last;
        self.num_target_updates = n;
    }

    /// Q-values of `rows` rows from the outputs of all heads (head by head).
    fn q_of(&self, out: &[f32], rows: usize, i: usize, q: &mut [f32]) {
        let n = self.spec.num_actions;
        let adv = &out[i * n..(i + 1) * n];
        let value = self.spec.dueling.then(|| out[rows * n + i]);
        q_values(adv, value, q);
    }

    /// One gradient step on a replayed minibatch; `env_steps` is the run's sampled env
    /// steps (the learning-rate schedule and the target update count in them).
    pub fn update(
        &mut self,
        batch: &ReplayBatch,
        env_steps: u64,
    ) -> Result<DqnUpdate, LearnerError> {
        let result = self.step(batch, env_steps);
        self.online.end_update();
        self.threads.rest();
        result
    }

    fn step(&mut self, batch: &ReplayBatch, env_steps: u64) -> Result<DqnUpdate, LearnerError> {
        let rows = batch.len();
        if rows == 0 {
            return Ok(DqnUpdate::default());
        }
        let c = self.compute(batch)?;
        let cfg = &self.cfg;
        let loss = c.loss;
        if !loss.is_finite() {
            let stats = MinibatchStats {
                total: loss,
                ..Default::default()
            };
            return Err(LearnerError::NonFinite {
                stats,
                explanation: format!(
                    ": DQN's TD loss is {loss} (mean Q {:.3e}); it depends on lr = {:e}, grad_clip = {:?}, gamma = {} and the env's rewards",
                    c.q_mean,
                    cfg.lr_at(env_steps),
                    cfg.grad_clip,
                    cfg.gamma
                ),
            });
        }
        let lr = cfg.lr_at(env_steps);
        let (adam, clip, threads) = (&mut self.adam, cfg.grad_clip, &self.threads);
        let (mut norm, mut stepped) = (0.0, Ok(()));
        self.online.update(&mut |p, g| {
            norm = global_norm(g.iter().map(Vec::as_slice));
            stepped = adam.step_on(threads, p, g, lr, clip_scale(norm, clip));
        })?;
        stepped?;

        // The target follows every `target_network_update_freq` sampled env steps.
        let freq = cfg.off_policy.target_network_update_freq as u64;
        if env_steps.saturating_sub(self.last_target_update) >= freq {
            let online = self.online.weights()?;
            polyak(self.target.as_mut(), &online, cfg.off_policy.tau)?;
            self.last_target_update = env_steps;
            self.num_target_updates += 1;
        }
        let rows_f = rows as f64;
        Ok(DqnUpdate {
            metrics: vec![
                (m::QF_LOSS, loss),
                (m::TOTAL_LOSS, loss),
                (m::QF_MEAN, c.q_mean),
                (m::QF_MAX, c.q_max),
                (m::QF_MIN, c.q_min),
                (
                    m::TD_ERROR_MEAN,
                    c.td.iter().map(|&t| f64::from(t)).sum::<f64>() / rows_f,
                ),
                (m::LEARNING_RATE, lr),
                (m::GRAD_NORM, norm),
                (m::NUM_TARGET_UPDATES, self.num_target_updates as f64),
            ],
            td_errors: c.td,
        })
    }

    /// The TD targets `y` of a minibatch, from the target network (the online one choosing
    /// the action, for double Q).
    pub fn targets(&mut self, batch: &ReplayBatch) -> Result<Vec<f32>, LearnerError> {
        let rows = batch.len();
        let n = self.spec.num_actions;
        let cfg = &self.cfg;
        let gamma = cfg.gamma as f32;
        // Targets, from the target network (and the online one choosing, for double Q).
        let all: Vec<usize> = (0..self.spec.net_spec().heads.len()).collect();
        let mut next_target = std::mem::take(&mut self.next_target);
        self.target
            .infer(&batch.next_obs, rows, &all, &mut next_target)?;
        let mut next_online = std::mem::take(&mut self.next_online);
        if cfg.dqn.double_q {
            self.online
                .infer(&batch.next_obs, rows, &[AF], &mut next_online)?;
        }
        let mut q = vec![0f32; n];
        let mut y = Vec::with_capacity(rows);
        for i in 0..rows {
            self.q_of(&next_target, rows, i, &mut q);
            let best = if cfg.dqn.double_q {
                crate::distributions::argmax(&next_online[i * n..(i + 1) * n]) as usize
            } else {
                crate::distributions::argmax(&q) as usize
            };
            let bootstrap = if batch.terminated[i] { 0.0 } else { q[best] };
            let discount = gamma.powi(batch.n_steps[i] as i32);
            y.push(batch.rewards[i] + discount * bootstrap);
        }
        self.next_target = next_target;
        self.next_online = next_online;
        Ok(y)
    }

    /// The loss of a minibatch, leaving the online network's gradients set; changes no
    /// parameter.
    fn compute(&mut self, batch: &ReplayBatch) -> Result<Computed, LearnerError> {
        let rows = batch.len();
        let n = self.spec.num_actions;
        let y = self.targets(batch)?;
        let cfg = &self.cfg;
        let mut q = vec![0f32; n];
        let mut out = std::mem::take(&mut self.out);
        self.online.forward(&batch.obs, rows, &mut out)?;
        let mut d_out = std::mem::take(&mut self.d_out);
        d_out.clear();
        d_out.resize(out.len(), 0.0);
        let (mut loss, mut q_sum, mut q_max, mut q_min) =
            (0f64, 0f64, f64::NEG_INFINITY, f64::INFINITY);
        let mut td = Vec::with_capacity(rows);
        let inv_b = 1.0 / rows as f32;
        for i in 0..rows {
            self.q_of(&out, rows, i, &mut q);
            let a = batch.actions[i] as usize;
            let delta = q[a] - y[i];
            let (l, dl) = td_loss(cfg.dqn.td_error_loss_fn, delta);
            let w = batch.weights[i];
            loss += f64::from(w * l);
            td.push(delta.abs());
            q_sum += f64::from(q[a]);
            q_max = q_max.max(f64::from(q[a]));
            q_min = q_min.min(f64::from(q[a]));
            let dq = w * dl * inv_b;
            // Q_a = V + A_a - mean(A): dA_j = dq (1[j = a] - 1/n), dV = dq.
            let center = if self.spec.dueling {
                dq / n as f32
            } else {
                0.0
            };
            for j in 0..n {
                d_out[i * n + j] = if j == a { dq } else { 0.0 } - center;
            }
            if self.spec.dueling {
                d_out[rows * n + i] = dq;
            }
        }
        self.online.backward(&d_out, true, None)?;
        self.out = out;
        self.d_out = d_out;
        Ok(Computed {
            loss: loss / rows as f64,
            td,
            q_mean: q_sum / rows as f64,
            q_max,
            q_min,
        })
    }

    /// Q-values of `rows` observations from the online network (for tests).
    pub fn q(&mut self, obs: &[f32], rows: usize) -> Result<Vec<f32>, LearnerError> {
        let all: Vec<usize> = (0..self.spec.net_spec().heads.len()).collect();
        let mut out = Vec::new();
        self.online.infer(obs, rows, &all, &mut out)?;
        let n = self.spec.num_actions;
        let mut q = vec![0f32; rows * n];
        for i in 0..rows {
            let value = self.spec.dueling.then(|| out[rows * n + i]);
            q_values(&out[i * n..(i + 1) * n], value, &mut q[i * n..(i + 1) * n]);
        }
        Ok(q)
    }
}

/// One minibatch's loss (the gradients are left in the network).
struct Computed {
    loss: f64,
    td: Vec<f32>,
    q_mean: f64,
    q_max: f64,
    q_min: f64,
}

/// `target ← τ·online + (1 - τ)·target` (τ = 1: a copy).
pub fn polyak(target: &mut dyn Network, online: &Weights, tau: f64) -> Result<(), LearnerError> {
    if tau >= 1.0 {
        return target.set_weights(online);
    }
    let tau = tau as f32;
    target.update(&mut |p, _| {
        for (t, o) in p.iter_mut().zip(&online.tensors) {
            for (x, &y) in t.iter_mut().zip(&o.data) {
                *x = tau * y + (1.0 - tau) * *x;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use envs::NpRandom;

    use super::*;
    use crate::config::{Activation, Algo, LearnerBackendKind, ModelConfig};

    fn spec() -> DqnModuleSpec {
        DqnModuleSpec {
            obs_dim: 3,
            num_actions: 4,
            model: ModelConfig {
                fcnet_hiddens: vec![12],
                fcnet_activation: Activation::Tanh,
                head_fcnet_hiddens: vec![6],
                head_fcnet_activation: Activation::Tanh,
                ..ModelConfig::default()
            },
            dueling: true,
        }
    }

    fn batch(rows: usize, seed: u64) -> ReplayBatch {
        let mut rng = NpRandom::from_seed(seed);
        let mut v =
            |n: usize, a: f64| -> Vec<f32> { (0..n).map(|_| rng.uniform(-a, a) as f32).collect() };
        let (obs, next_obs, rewards) = (v(rows * 3, 2.0), v(rows * 3, 2.0), v(rows, 1.0));
        ReplayBatch {
            obs,
            actions: (0..rows).map(|i| (i % 4) as f32).collect(),
            rewards,
            next_obs,
            terminated: (0..rows).map(|i| i % 4 == 1).collect(),
            n_steps: (0..rows).map(|i| 1 + (i % 3) as u32).collect(),
            weights: (0..rows).map(|i| 0.25 + (i % 4) as f32 * 0.25).collect(),
            indices: (0..rows as u32).collect(),
        }
    }

    /// Online weights from seed 1, target weights from seed 2.
    fn learner(double_q: bool, loss: TdLoss, backend: LearnerBackendKind) -> DqnLearner {
        let s = spec();
        let (online, _) = s.split(&s.init(1)).unwrap();
        let (target, _) = s.split(&s.init(2)).unwrap();
        let mut w = online;
        w.tensors.extend(target.prefixed(TARGET).tensors);
        let mut cfg = AlgorithmConfig::new(Algo::Dqn);
        cfg.gamma = 0.9;
        cfg.dqn.double_q = double_q;
        cfg.dqn.td_error_loss_fn = loss;
        cfg.learner_backend = backend;
        DqnLearner::new(cfg, s, &w).unwrap()
    }

    /// Q-values of the target network (a learner whose online weights are the target's).
    fn target_q(l: &DqnLearner, obs: &[f32], rows: usize) -> Vec<f32> {
        let w = l.weights().unwrap().part(TARGET);
        let mut whole = w.clone();
        whole.tensors.extend(w.prefixed(TARGET).tensors);
        DqnLearner::new(l.cfg.clone(), spec(), &whole)
            .unwrap()
            .q(obs, rows)
            .unwrap()
    }

    #[test]
    fn td_targets_and_loss_by_hand() {
        let rows = 24;
        let b = batch(rows, 7);
        for double_q in [true, false] {
            let mut l = learner(double_q, TdLoss::Huber, LearnerBackendKind::Fused);
            let y = l.targets(&b).unwrap();
            let q_next = l.q(&b.next_obs, rows).unwrap();
            let q_target = target_q(&l, &b.next_obs, rows);
            for i in 0..rows {
                let row = |q: &[f32]| q[i * 4..(i + 1) * 4].to_vec();
                let chooser = if double_q {
                    row(&q_next)
                } else {
                    row(&q_target)
                };
                let best = (0..4).fold(0, |m, j| if chooser[j] > chooser[m] { j } else { m });
                let boot = if b.terminated[i] {
                    0.0
                } else {
                    row(&q_target)[best]
                };
                let want = b.rewards[i] + 0.9f32.powi(b.n_steps[i] as i32) * boot;
                assert!((y[i] - want).abs() < 1e-5, "row {i}: {} vs {want}", y[i]);
            }
            // The loss: mean of w · Huber(Q(s, a) - y).
            let q = l.q(&b.obs, rows).unwrap();
            let want: f64 = (0..rows)
                .map(|i| {
                    let x = f64::from(q[i * 4 + b.actions[i] as usize] - y[i]);
                    let h = if x.abs() < 1.0 {
                        0.5 * x * x
                    } else {
                        x.abs() - 0.5
                    };
                    f64::from(b.weights[i]) * h
                })
                .sum::<f64>()
                / rows as f64;
            let got = l.compute(&b).unwrap();
            assert!((got.loss - want).abs() < 1e-6, "{} vs {want}", got.loss);
            for i in 0..rows {
                let td = (q[i * 4 + b.actions[i] as usize] - y[i]).abs();
                assert!((got.td[i] - td).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        for (loss, backend) in [
            (TdLoss::Huber, LearnerBackendKind::Fused),
            (TdLoss::Mse, LearnerBackendKind::Candle),
        ] {
            let b = batch(32, 3);
            let mut l = learner(false, loss, backend);
            l.compute(&b).unwrap();
            let grads = l.online.grads().unwrap();
            let w0 = l.online.weights().unwrap();
            let mut rng = NpRandom::from_seed(11);
            for _ in 0..40 {
                let t = rng.below(w0.tensors.len() as u64) as usize;
                let k = rng.below(w0.tensors[t].data.len() as u64) as usize;
                let h = 1e-2f32;
                let mut at = |d: f32| {
                    let mut w = w0.clone();
                    w.tensors[t].data[k] += d;
                    l.online.set_weights(&w).unwrap();
                    l.compute(&b).unwrap().loss
                };
                let fd = (at(h) - at(-h)) / f64::from(2.0 * h);
                let g = f64::from(grads[t][k]);
                assert!(
                    (fd - g).abs() <= 1e-3 + 2e-2 * g.abs(),
                    "{loss:?} {backend:?} {}[{k}]: analytic {g}, finite difference {fd}",
                    w0.tensors[t].name
                );
            }
        }
    }
}
