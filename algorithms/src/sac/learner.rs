//! The SAC learner (RLlib's `SACTorchLearner`, continuous actions). One gradient step per
//! replayed minibatch, every loss computed from the same (pre-update) parameters:
//!
//! - critics: `y = r + γ^n (1 - terminated)(min_i Q_target_i(s', a') - α log π(a'|s'))` with
//!   `a' ~ π(·|s')`; each `Q_i` minimises `mean(w · Huber(Q_i(s, a) - y))`;
//! - actor: `mean(α log π(ã|s) - min_i Q_i(s, ã))` with the reparameterised `ã = tanh(μ + σε)`,
//!   the gradient reaching the policy through the Q networks' action input;
//! - entropy weight: `-mean(log α · (log π(ã|s) + target_entropy))`;
//!
//! then Adam on each (ε = 1e-7, as RLlib's), and targets `τ·Q + (1 - τ)·Q_target`.

use envs::NpRandom;

use super::module::{SacModuleSpec, TARGET, clamp_log_std};
use crate::config::AlgorithmConfig;
use crate::distributions::{HALF_LOG_2PI, standard_normal};
use crate::dqn::learner::polyak;
use crate::error::LearnerError;
use crate::learner::MinibatchStats;
use crate::metrics::learner as m;
use crate::nn::fused::Threads;
use crate::nn::{Network, Weights, select};
use crate::optim::{Adam, OptimizerState, clip_scale, global_norm, ordered_like, prefixed};
use crate::replay::ReplayBatch;

/// RLlib's ε for SAC's optimizers.
const SAC_EPS: f32 = 1e-7;

/// What one SAC update reports, and the TD errors for the replay priorities.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SacUpdate {
    /// `(metric, value)` pairs.
    pub metrics: Vec<(&'static str, f64)>,
    /// `(|Q_1 - y| + |Q_2 - y|) / 2` per row (`|Q_1 - y|` without twin Q).
    pub td_errors: Vec<f32>,
}

/// One network with its optimizer.
struct Trained {
    net: Box<dyn Network>,
    adam: Adam,
    name: &'static str,
}

/// The SAC learner.
pub struct SacLearner {
    cfg: AlgorithmConfig,
    spec: SacModuleSpec,
    pi: Trained,
    qs: Vec<Trained>,
    targets: Vec<Box<dyn Network>>,
    log_alpha: f32,
    alpha_adam: Adam,
    rng: NpRandom,
    threads: Threads,
    last_target_update: u64,
    num_target_updates: u64,
}

impl std::fmt::Debug for SacLearner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SacLearner")
            .field("spec", &self.spec)
            .finish()
    }
}

/// `(obs_i, a_i)` rows side by side.
fn concat(obs: &[f32], d: usize, actions: &[f32], ad: usize, out: &mut Vec<f32>) {
    out.clear();
    for (o, a) in obs.chunks_exact(d).zip(actions.chunks_exact(ad)) {
        out.extend_from_slice(o);
        out.extend_from_slice(a);
    }
}

/// Huber (δ = 1) of `x` and its derivative.
fn huber(x: f32) -> (f32, f32) {
    if x.abs() < 1.0 {
        (0.5 * x * x, x)
    } else {
        (x.abs() - 0.5, x.signum())
    }
}

impl SacLearner {
    /// A learner for `spec` starting from the module's `weights`; `seed` drives the
    /// reparameterisation noise.
    pub fn new(
        cfg: AlgorithmConfig,
        spec: SacModuleSpec,
        weights: &Weights,
        seed: u64,
    ) -> Result<Self, LearnerError> {
        let threads = Threads::new(cfg.learner_threads())?;
        let make = |net_spec: crate::nn::NetSpec, w: &Weights| {
            let w = net_spec.ordered(w).map_err(LearnerError::Mismatch)?;
            let sizes: Vec<usize> = w.tensors.iter().map(|t| t.data.len()).collect();
            let net = select::network(cfg.learner_backend, cfg.device, net_spec, &w, &threads)?;
            Ok::<_, LearnerError>((net, sizes))
        };
        let (pi, sizes) = make(spec.pi_spec(), weights)?;
        let pi = Trained {
            net: pi,
            adam: Adam::with_eps(sizes, SAC_EPS),
            name: "policy",
        };
        let mut qs = Vec::new();
        let mut targets = Vec::new();
        for name in spec.q_names() {
            let (q, sizes) = make(spec.q_spec(name), weights)?;
            qs.push(Trained {
                net: q,
                adam: Adam::with_eps(sizes, SAC_EPS),
                name,
            });
            targets.push(make(spec.q_spec(name), &weights.part(TARGET))?.0);
        }
        Ok(SacLearner {
            log_alpha: (cfg.sac.initial_alpha as f32).ln(),
            alpha_adam: Adam::with_eps([1], SAC_EPS),
            rng: NpRandom::from_seed(seed),
            pi,
            qs,
            targets,
            threads,
            cfg,
            spec,
            last_target_update: 0,
            num_target_updates: 0,
        })
    }

    /// The entropy α is tuned towards.
    pub fn target_entropy(&self) -> f32 {
        self.cfg
            .sac
            .target_entropy
            .map_or(-(self.spec.action_dim as f32), |t| t as f32)
    }

    /// The whole module: pi, the Q networks, then the targets.
    pub fn weights(&self) -> Result<Weights, LearnerError> {
        let mut w = self.pi.net.weights()?;
        for q in &self.qs {
            w.tensors.extend(q.net.weights()?.tensors);
        }
        for t in &self.targets {
            w.tensors.extend(t.weights()?.prefixed(TARGET).tensors);
        }
        Ok(w)
    }

    /// What env runners act with: the policy network.
    pub fn inference_weights(&self) -> Result<Weights, LearnerError> {
        self.pi.net.weights()
    }

    /// [`inference_weights`](Self::inference_weights) into `out`, reusing its buffers.
    pub fn inference_weights_into(&self, out: &mut Weights) -> Result<(), LearnerError> {
        self.pi.net.weights_into(out)
    }

    /// The optimizers' states, each named `<optimizer>.<parameter>` (RLlib's optimizer names:
    /// `policy`, `qf`, `qf_twin`, `alpha`).
    pub fn optimizer_states(&self) -> Result<Vec<(&'static str, OptimizerState)>, LearnerError> {
        let mut out = vec![(
            "policy",
            prefixed(&self.pi.adam.named(&self.pi.net.weights()?), "policy"),
        )];
        for q in &self.qs {
            out.push((q.name, prefixed(&q.adam.named(&q.net.weights()?), q.name)));
        }
        let alpha = Weights {
            tensors: vec![crate::nn::NamedTensor {
                name: "log_alpha".into(),
                shape: vec![1],
                data: vec![self.log_alpha],
            }],
        };
        out.push(("alpha", prefixed(&self.alpha_adam.named(&alpha), "alpha")));
        Ok(out)
    }

    /// Restores the optimizers from [`optimizer_states`](Self::optimizer_states)' form.
    pub fn set_optimizer_states(
        &mut self,
        states: &[(String, OptimizerState)],
    ) -> Result<(), LearnerError> {
        let find = |name: &str| {
            states
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| s)
                .ok_or_else(|| {
                    LearnerError::Mismatch(format!("optimizer state: no '{name}' optimizer"))
                })
        };
        let unprefix = |s: &OptimizerState, name: &str| {
            let strip = |v: &[crate::nn::NamedTensor]| {
                v.iter()
                    .map(|t| crate::nn::NamedTensor {
                        name: t
                            .name
                            .strip_prefix(&format!("{name}."))
                            .unwrap_or(&t.name)
                            .to_string(),
                        ..t.clone()
                    })
                    .collect()
            };
            OptimizerState {
                step: s.step,
                exp_avg: strip(&s.exp_avg),
                exp_avg_sq: strip(&s.exp_avg_sq),
            }
        };
        for t in std::iter::once(&mut self.pi).chain(self.qs.iter_mut()) {
            let w = t.net.weights()?;
            let s = unprefix(find(t.name)?, t.name);
            t.adam.load(&ordered_like(&s, &w), &w)?;
        }
        let alpha = Weights {
            tensors: vec![crate::nn::NamedTensor {
                name: "log_alpha".into(),
                shape: vec![1],
                data: vec![self.log_alpha],
            }],
        };
        let s = unprefix(find("alpha")?, "alpha");
        self.alpha_adam.load(&s, &alpha)
    }

    /// log α.
    pub fn log_alpha(&self) -> f32 {
        self.log_alpha
    }

    /// Restores log α.
    pub fn set_log_alpha(&mut self, v: f32) {
        self.log_alpha = v;
    }

    /// The noise generator's state.
    pub fn rng_state(&self) -> (u128, u128) {
        self.rng.to_state()
    }

    /// Restores the noise generator.
    pub fn set_rng_state(&mut self, s: (u128, u128)) {
        self.rng = NpRandom::from_state(s.0, s.1);
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

    /// Samples `a ~ π(·|s)` for each row of distribution inputs; returns the actions, their
    /// log-probabilities, the noise, clamped log-stds and clamp masks.
    fn sample(&mut self, inputs: &[f32], rows: usize) -> Sampled {
        let d = self.spec.action_dim;
        let mut s = Sampled {
            actions: vec![0.0; rows * d],
            logp: vec![0.0; rows],
            noise: vec![0.0; rows * d],
            std: vec![0.0; rows * d],
            ls_passes: vec![false; rows * d],
            logn_passes: vec![false; rows * d],
        };
        for i in 0..rows {
            let row = &inputs[i * 2 * d..(i + 1) * 2 * d];
            let mut logp = 0f32;
            for j in 0..d {
                let (ls, passes) = clamp_log_std(row[d + j]);
                let e = standard_normal(&mut self.rng);
                let sd = ls.exp();
                let a = (row[j] + sd * e).tanh();
                let logn = -0.5 * e * e - ls - HALF_LOG_2PI;
                let k = i * d + j;
                s.logn_passes[k] = logn.abs() < 100.0;
                logp += logn.clamp(-100.0, 100.0) - (1.0 - a * a + 1e-6).ln();
                s.actions[k] = a;
                s.noise[k] = e;
                s.std[k] = sd;
                s.ls_passes[k] = passes;
            }
            s.logp[i] = logp;
        }
        s
    }

    /// One gradient step on a replayed minibatch; `env_steps` is the run's sampled env steps.
    pub fn update(
        &mut self,
        batch: &ReplayBatch,
        env_steps: u64,
    ) -> Result<SacUpdate, LearnerError> {
        let result = self.step(batch, env_steps);
        self.pi.net.end_update();
        for q in &mut self.qs {
            q.net.end_update();
        }
        self.threads.rest();
        result
    }

    fn step(&mut self, batch: &ReplayBatch, env_steps: u64) -> Result<SacUpdate, LearnerError> {
        if batch.is_empty() {
            return Ok(SacUpdate::default());
        }
        let c = self.compute(batch)?;
        let total = c.actor_loss + c.critic_losses.iter().sum::<f64>() + c.alpha_loss;
        if !total.is_finite() {
            return Err(LearnerError::NonFinite {
                stats: MinibatchStats {
                    total,
                    policy: c.actor_loss,
                    ..Default::default()
                },
                explanation: format!(
                    ": SAC's losses are actor {}, critics {:?}, alpha {}; they depend on actor_lr = {:e}, critic_lr = {:e}, alpha_lr = {:e}, grad_clip = {:?} and the env's rewards",
                    c.actor_loss,
                    c.critic_losses,
                    c.alpha_loss,
                    self.cfg.sac.actor_lr,
                    self.cfg.sac.critic_lr,
                    self.cfg.sac.alpha_lr,
                    self.cfg.grad_clip
                ),
            });
        }

        // Apply every step, from the gradients of the same parameters.
        let (clip, threads) = (self.cfg.grad_clip, &self.threads);
        let step = |t: &mut Trained, lr: f64| -> Result<f64, LearnerError> {
            let (adam, mut norm, mut stepped) = (&mut t.adam, 0.0, Ok(()));
            t.net.update(&mut |p, g| {
                norm = global_norm(g.iter().map(Vec::as_slice));
                stepped = adam.step_on(threads, p, g, lr, clip_scale(norm, clip));
            })?;
            stepped?;
            Ok(norm)
        };
        let pi_norm = step(&mut self.pi, self.cfg.sac.actor_lr)?;
        for q in &mut self.qs {
            step(q, self.cfg.sac.critic_lr)?;
        }
        let mut la = vec![vec![self.log_alpha]];
        let scale = clip_scale(f64::from(c.alpha_grad.abs()), clip);
        self.alpha_adam
            .step(&mut la, &[vec![c.alpha_grad]], self.cfg.sac.alpha_lr, scale);
        self.log_alpha = la[0][0];

        let freq = self.cfg.off_policy.target_network_update_freq as u64;
        if env_steps.saturating_sub(self.last_target_update) >= freq {
            for (t, q) in self.targets.iter_mut().zip(&self.qs) {
                polyak(t.as_mut(), &q.net.weights()?, self.cfg.off_policy.tau)?;
            }
            self.last_target_update = env_steps;
            self.num_target_updates += 1;
        }
        let n = batch.len() as f64;
        let q_min = &c.q_min;
        let mut metrics = vec![
            (m::POLICY_LOSS, c.actor_loss),
            (m::QF_LOSS, c.critic_losses[0]),
            (m::ALPHA_LOSS, c.alpha_loss),
            (m::ALPHA_VALUE, f64::from(self.log_alpha.exp())),
            (m::LOG_ALPHA_VALUE, f64::from(self.log_alpha)),
            (m::TARGET_ENTROPY, f64::from(self.target_entropy())),
            (m::LOGPS, c.mean_logp),
            (
                m::QF_MEAN,
                q_min.iter().map(|&q| f64::from(q)).sum::<f64>() / n,
            ),
            (
                m::QF_MAX,
                q_min
                    .iter()
                    .fold(f64::NEG_INFINITY, |a, &q| a.max(f64::from(q))),
            ),
            (
                m::QF_MIN,
                q_min
                    .iter()
                    .fold(f64::INFINITY, |a, &q| a.min(f64::from(q))),
            ),
            (
                m::TD_ERROR_MEAN,
                c.td.iter().map(|&t| f64::from(t)).sum::<f64>() / n,
            ),
            (m::TOTAL_LOSS, total),
            (m::GRAD_NORM, pi_norm),
            (m::NUM_TARGET_UPDATES, self.num_target_updates as f64),
        ];
        if let Some(&l) = c.critic_losses.get(1) {
            metrics.push((m::QF_TWIN_LOSS, l));
        }
        Ok(SacUpdate {
            metrics,
            td_errors: c.td,
        })
    }

    /// Every loss of one minibatch, leaving each network's parameter gradients set (the
    /// policy's from the actor loss, each Q network's from its critic loss); changes no
    /// parameter.
    fn compute(&mut self, batch: &ReplayBatch) -> Result<Computed, LearnerError> {
        let rows = batch.len();
        let (od, d) = (self.spec.obs_dim, self.spec.action_dim);
        let gamma = self.cfg.gamma as f32;
        let alpha = self.log_alpha.exp();
        let inv_b = 1.0 / rows as f32;
        let mut x = Vec::new();
        let mut out = Vec::new();

        // Critic targets, from a' ~ π(·|s') and the target networks.
        self.pi.net.infer(&batch.next_obs, rows, &[0], &mut out)?;
        let next = self.sample(&out, rows);
        concat(&batch.next_obs, od, &next.actions, d, &mut x);
        let mut next_q = vec![f32::INFINITY; rows];
        for t in &mut self.targets {
            t.infer(&x, rows, &[0], &mut out)?;
            next_q
                .iter_mut()
                .zip(&out)
                .for_each(|(m, &q)| *m = m.min(q));
        }
        let y: Vec<f32> = (0..rows)
            .map(|i| {
                let boot = if batch.terminated[i] {
                    0.0
                } else {
                    next_q[i] - alpha * next.logp[i]
                };
                batch.rewards[i] + gamma.powi(batch.n_steps[i] as i32) * boot
            })
            .collect();

        // Actor: ã = tanh(μ + σε) from the current policy, valued by the current critics.
        let mut pi_out = Vec::new();
        self.pi.net.forward(&batch.obs, rows, &mut pi_out)?;
        let cur = self.sample(&pi_out, rows);
        concat(&batch.obs, od, &cur.actions, d, &mut x);
        let mut q_cur: Vec<Vec<f32>> = Vec::new();
        for q in &mut self.qs {
            q.net.forward(&x, rows, &mut out)?;
            q_cur.push(out.clone());
        }
        let q_min: Vec<f32> = (0..rows)
            .map(|i| q_cur.iter().map(|q| q[i]).fold(f32::INFINITY, f32::min))
            .collect();
        let actor_loss = (0..rows)
            .map(|i| f64::from(alpha * cur.logp[i] - q_min[i]))
            .sum::<f64>()
            / rows as f64;
        // dL/dã through the smaller Q (the Q networks' own parameters do not move here).
        let mut d_action = vec![0f32; rows * d];
        let mut dx = Vec::new();
        for (k, q) in self.qs.iter_mut().enumerate() {
            let dq: Vec<f32> = (0..rows)
                .map(|i| {
                    if q_cur[k][i] == q_min[i] && (k == 0 || q_cur[0][i] != q_min[i]) {
                        -inv_b
                    } else {
                        0.0
                    }
                })
                .collect();
            q.net.backward(&dq, false, Some(&mut dx))?;
            for i in 0..rows {
                for j in 0..d {
                    d_action[i * d + j] += dx[i * (od + d) + od + j];
                }
            }
        }
        // Chain rule through a = tanh(u), u = μ + σε, log σ clamped, and log π(a).
        let mut d_pi = vec![0f32; rows * 2 * d];
        for i in 0..rows {
            for j in 0..d {
                let k = i * d + j;
                let a = cur.actions[k];
                let da_du = 1.0 - a * a;
                // d(-log(1 - a² + ε))/du
                let dcorr_du = 2.0 * a * da_du / (1.0 - a * a + 1e-6);
                let du = d_action[k] * da_du + inv_b * alpha * dcorr_du;
                let d_mean = du;
                let mut d_ls = du * cur.std[k] * cur.noise[k];
                if cur.logn_passes[k] {
                    // log N = -ε²/2 - log σ - ½ log 2π at fixed ε.
                    d_ls -= inv_b * alpha;
                }
                d_pi[i * 2 * d + j] = d_mean;
                d_pi[i * 2 * d + d + j] = if cur.ls_passes[k] { d_ls } else { 0.0 };
            }
        }
        self.pi.net.backward(&d_pi, true, None)?;
        let target_entropy = self.target_entropy();
        let mean_logp = cur.logp.iter().map(|&l| f64::from(l)).sum::<f64>() / rows as f64;
        let alpha_loss = -f64::from(self.log_alpha) * (mean_logp + f64::from(target_entropy));
        let alpha_grad = -(mean_logp + f64::from(target_entropy)) as f32;

        // Critics on the replayed actions.
        concat(&batch.obs, od, &batch.actions, d, &mut x);
        let mut critic_losses = Vec::new();
        let mut td = vec![0f32; rows];
        let nq = self.qs.len() as f32;
        for q in &mut self.qs {
            q.net.forward(&x, rows, &mut out)?;
            let mut loss = 0f64;
            let mut dq = vec![0f32; rows];
            for i in 0..rows {
                let delta = out[i] - y[i];
                let (l, dl) = huber(delta);
                loss += f64::from(batch.weights[i] * l);
                dq[i] = batch.weights[i] * dl * inv_b;
                td[i] += delta.abs() / nq;
            }
            q.net.backward(&dq, true, None)?;
            critic_losses.push(loss / rows as f64);
        }
        Ok(Computed {
            actor_loss,
            critic_losses,
            alpha_loss,
            alpha_grad,
            mean_logp,
            q_min,
            td,
        })
    }
}

/// One minibatch's losses (gradients are left in the networks).
struct Computed {
    actor_loss: f64,
    critic_losses: Vec<f64>,
    alpha_loss: f64,
    /// d alpha_loss / d log α.
    alpha_grad: f32,
    mean_logp: f64,
    q_min: Vec<f32>,
    td: Vec<f32>,
}

/// Actions sampled from the policy, with what their gradients need.
struct Sampled {
    actions: Vec<f32>,
    logp: Vec<f32>,
    noise: Vec<f32>,
    std: Vec<f32>,
    ls_passes: Vec<bool>,
    logn_passes: Vec<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Activation, Algo, LearnerBackendKind, ModelConfig};

    fn learner(backend: LearnerBackendKind) -> SacLearner {
        let spec = SacModuleSpec {
            obs_dim: 3,
            action_dim: 2,
            low: vec![-2.0, -1.0],
            high: vec![2.0, 1.0],
            model: ModelConfig {
                fcnet_hiddens: vec![10, 10],
                fcnet_activation: Activation::Tanh,
                ..ModelConfig::default()
            },
            twin_q: true,
        };
        let mut cfg = AlgorithmConfig::new(Algo::Sac);
        cfg.learner_backend = backend;
        cfg.gamma = 0.9;
        cfg.sac.initial_alpha = 0.3;
        // Different target weights, so that the critic's targets are not its own values.
        let mut w = spec.init(4);
        let other = spec.init(5);
        for (t, o) in w.tensors.iter_mut().zip(&other.tensors) {
            if t.name.starts_with(TARGET) {
                t.data.clone_from(&o.data);
            }
        }
        SacLearner::new(cfg, spec, &w, 9).unwrap()
    }

    fn batch(rows: usize) -> ReplayBatch {
        let mut rng = NpRandom::from_seed(2);
        let mut v =
            |n: usize, a: f64| -> Vec<f32> { (0..n).map(|_| rng.uniform(-a, a) as f32).collect() };
        let (obs, actions, next_obs, rewards) = (
            v(rows * 3, 1.5),
            v(rows * 2, 0.99),
            v(rows * 3, 1.5),
            v(rows, 1.0),
        );
        ReplayBatch {
            obs,
            actions,
            rewards,
            next_obs,
            terminated: (0..rows).map(|i| i % 5 == 2).collect(),
            n_steps: (0..rows).map(|i| 1 + (i % 2) as u32).collect(),
            weights: vec![1.0; rows],
            indices: (0..rows as u32).collect(),
        }
    }

    /// Central differences of `loss` (computed with the same noise every time) against the
    /// analytic gradients of network `which` (`None`: the policy; `Some(k)`: Q network `k`).
    fn check(
        l: &mut SacLearner,
        b: &ReplayBatch,
        which: Option<usize>,
        loss: fn(&Computed) -> f64,
    ) {
        let noise = l.rng_state();
        l.compute(b).unwrap();
        fn pick(l: &mut SacLearner, which: Option<usize>) -> &mut Box<dyn Network> {
            match which {
                None => &mut l.pi.net,
                Some(k) => &mut l.qs[k].net,
            }
        }
        let grads = pick(l, which).grads().unwrap();
        let w0 = pick(l, which).weights().unwrap();
        let mut rng = NpRandom::from_seed(17);
        for _ in 0..30 {
            let t = rng.below(w0.tensors.len() as u64) as usize;
            let k = rng.below(w0.tensors[t].data.len() as u64) as usize;
            let h = 1e-2f32;
            let mut at = |d: f32| {
                let mut w = w0.clone();
                w.tensors[t].data[k] += d;
                pick(l, which).set_weights(&w).unwrap();
                l.set_rng_state(noise);
                loss(&l.compute(b).unwrap())
            };
            let fd = (at(h) - at(-h)) / f64::from(2.0 * h);
            let g = f64::from(grads[t][k]);
            assert!(
                (fd - g).abs() <= 1e-3 + 3e-2 * g.abs(),
                "{which:?} {}[{k}]: analytic {g}, finite difference {fd}",
                w0.tensors[t].name
            );
        }
        pick(l, which).set_weights(&w0).unwrap();
        l.set_rng_state(noise);
    }

    #[test]
    fn actor_and_critic_gradients_match_finite_differences() {
        for backend in [LearnerBackendKind::Fused, LearnerBackendKind::Candle] {
            let mut l = learner(backend);
            let b = batch(24);
            check(&mut l, &b, None, |c| c.actor_loss);
            check(&mut l, &b, Some(0), |c| c.critic_losses[0]);
            check(&mut l, &b, Some(1), |c| c.critic_losses[1]);
        }
    }

    #[test]
    fn the_entropy_weight_moves_towards_its_target() {
        let mut l = learner(LearnerBackendKind::Fused);
        let b = batch(24);
        let noise = l.rng_state();
        let c = l.compute(&b).unwrap();
        // alpha_loss = -log α (mean log π + H): its derivative in log α.
        let want = -(c.mean_logp + f64::from(l.target_entropy()));
        assert!((f64::from(c.alpha_grad) - want).abs() < 1e-5);
        l.set_rng_state(noise);
        let before = l.log_alpha();
        l.update(&b, 0).unwrap();
        // Adam's first step moves log α by lr against the gradient's sign.
        let moved = f64::from(l.log_alpha() - before);
        assert!(
            (moved + l.cfg.sac.alpha_lr * want.signum()).abs() < 1e-6,
            "{moved}"
        );
    }
}
