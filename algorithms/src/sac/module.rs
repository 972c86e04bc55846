//! SAC's RLModule (RLlib's `DefaultSACTorchRLModule`, continuous actions): a policy network
//! `pi_encoder` → `pi` giving the mean and log-std of a squashed Gaussian over [-1, 1]^d, and
//! one or two Q networks on the observation and action (`qf_encoder` → `qf`, `qf_twin_*`),
//! each with a target copy whose tensors carry the prefix `target.`. Weights are drawn as
//! PyTorch's `nn.Linear` draws them.

use envs::NpRandom;

use crate::config::ModelConfig;
use crate::distributions::{ActionMapping, SQUASHED_LOG_STD, squash, standard_normal};
use crate::nn::inference::Mlp;
use crate::nn::{HeadSpec, Init, LayerSpec, NetSpec, Weights};
use crate::policy::{Actions, Policy};

/// The shape of a SAC module.
#[derive(Debug, Clone, PartialEq)]
pub struct SacModuleSpec {
    /// Observation size (flattened).
    pub obs_dim: usize,
    /// Action size.
    pub action_dim: usize,
    /// The env's lower action bounds.
    pub low: Vec<f32>,
    /// The env's upper action bounds.
    pub high: Vec<f32>,
    /// Hidden layers of every network.
    pub model: ModelConfig,
    /// Whether there is a second Q network.
    pub twin_q: bool,
}

/// The prefix of target networks' tensors.
pub const TARGET: &str = "target";
/// The first Q network's name.
pub const QF: &str = "qf";
/// The second's.
pub const QF_TWIN: &str = "qf_twin";

impl SacModuleSpec {
    /// The policy network: mean and log-std, `2 × action_dim` outputs.
    pub fn pi_spec(&self) -> NetSpec {
        NetSpec {
            input_dim: self.obs_dim,
            activation: self.model.fcnet_activation,
            init: Init::TorchDefault,
            trunk: NetSpec::hidden_layers("pi_encoder", &self.model.fcnet_hiddens),
            heads: vec![HeadSpec {
                hidden: Vec::new(),
                activation: None,
                out: LayerSpec::new("pi", 2 * self.action_dim, 1.0),
            }],
        }
    }

    /// A Q network (`qf` or `qf_twin`) on observation and action.
    pub fn q_spec(&self, name: &str) -> NetSpec {
        NetSpec {
            input_dim: self.obs_dim + self.action_dim,
            activation: self.model.fcnet_activation,
            init: Init::TorchDefault,
            trunk: NetSpec::hidden_layers(&format!("{name}_encoder"), &self.model.fcnet_hiddens),
            heads: vec![HeadSpec {
                hidden: Vec::new(),
                activation: None,
                out: LayerSpec::new(name, 1, 1.0),
            }],
        }
    }

    /// The Q networks' names.
    pub fn q_names(&self) -> Vec<&'static str> {
        if self.twin_q {
            vec![QF, QF_TWIN]
        } else {
            vec![QF]
        }
    }

    /// Fresh weights: pi, the Q networks, then the targets (copies).
    pub fn init(&self, seed: u64) -> Weights {
        let mut w = self.pi_spec().init(seed);
        let mut targets = Vec::new();
        for (i, name) in self.q_names().into_iter().enumerate() {
            let q = self.q_spec(name).init(seed.wrapping_add(1 + i as u64));
            targets.extend(q.prefixed(TARGET).tensors);
            w.tensors.extend(q.tensors);
        }
        w.tensors.extend(targets);
        w
    }

    /// Parameter names and shapes of the whole module.
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut s = self.pi_spec().parameter_shapes();
        let mut t = Vec::new();
        for name in self.q_names() {
            let q = self.q_spec(name).parameter_shapes();
            t.extend(
                q.iter()
                    .map(|(n, sh)| (format!("{TARGET}.{n}"), sh.clone())),
            );
            s.extend(q);
        }
        s.extend(t);
        s
    }
}

/// SAC acting: a squashed Gaussian sample (greedy: `tanh(mean)`), mapped onto the env's
/// bounds.
#[derive(Debug, Clone)]
pub struct SacPolicy {
    mlp: Mlp,
    dim: usize,
    low: Vec<f32>,
    high: Vec<f32>,
    mapping: ActionMapping,
    inputs: Vec<f32>,
    noise: Vec<f32>,
    /// The noise's step-to-step correlation ρ.
    rho: f32,
    /// Each row's (env's) last noise, rows × dim (correlated noise only).
    carried: Vec<f32>,
}

impl SacPolicy {
    /// A policy with the module's weights (the `pi` network's are used).
    pub fn new(
        spec: &SacModuleSpec,
        weights: &Weights,
        mapping: ActionMapping,
    ) -> Result<Self, String> {
        let pi = spec.pi_spec();
        Ok(SacPolicy {
            mlp: Mlp::new(pi.clone(), &pi.ordered(weights)?)?,
            dim: spec.action_dim,
            low: spec.low.clone(),
            high: spec.high.clone(),
            mapping,
            inputs: Vec::new(),
            noise: vec![0.0; spec.action_dim],
            rho: 0.0,
            carried: Vec::new(),
        })
    }

    fn forward(&mut self, obs: &[f32], rows: usize) {
        self.inputs.resize(rows * 2 * self.dim, 0.0);
        self.mlp.forward(obs, rows, 0, &mut self.inputs);
    }
}

impl SacPolicy {
    /// Correlates the sampling noise of each env from step to step by `rho` (see
    /// `exploration_noise_correlation`).
    pub fn with_noise_correlation(mut self, rho: f64) -> Self {
        self.rho = rho as f32;
        self
    }

    /// Row `i`'s action for standard normal `noise` (after [`SacPolicy::forward`]).
    fn act(&self, i: usize, noise: &[f32], out: &mut Actions) {
        let d = self.dim;
        let (mean, log_std) = self.inputs[i * 2 * d..(i + 1) * 2 * d].split_at(d);
        let a = &mut out.actions[i * d..(i + 1) * d];
        out.logp[i] = squash(mean, log_std, noise, a);
        self.mapping.apply(
            a,
            &self.low,
            &self.high,
            &mut out.env_continuous[i * d..(i + 1) * d],
        );
    }
}

impl Policy for SacPolicy {
    fn action_dim(&self) -> usize {
        self.dim
    }

    fn dist_width(&self) -> usize {
        0
    }

    fn discrete(&self) -> bool {
        false
    }

    fn explore(
        &mut self,
        obs: &[f32],
        rows: usize,
        _t: u64,
        rng: &mut NpRandom,
        out: &mut Actions,
    ) {
        let d = self.dim;
        out.resize(rows, d, 0, false);
        self.forward(obs, rows);
        if self.rho > 0.0 && self.carried.len() != rows * d {
            // Each env's noise starts from its stationary distribution, N(0, 1).
            self.carried = (0..rows * d).map(|_| standard_normal(rng)).collect();
            for i in 0..rows {
                self.act(i, &self.carried[i * d..(i + 1) * d], out);
            }
            return;
        }
        for i in 0..rows {
            for j in 0..d {
                let xi = standard_normal(rng);
                self.noise[j] = if self.rho > 0.0 {
                    let c = &mut self.carried[i * d + j];
                    *c = self.rho * *c + (1.0 - self.rho * self.rho).sqrt() * xi;
                    *c
                } else {
                    xi
                };
            }
            let noise = std::mem::take(&mut self.noise);
            self.act(i, &noise, out);
            self.noise = noise;
        }
    }

    fn greedy(&mut self, obs: &[f32], rows: usize, out: &mut Actions) {
        let d = self.dim;
        out.resize(rows, d, 0, false);
        self.forward(obs, rows);
        for i in 0..rows {
            let mean = &self.inputs[i * 2 * d..i * 2 * d + d];
            let a = &mut out.actions[i * d..(i + 1) * d];
            for (x, &m) in a.iter_mut().zip(mean) {
                *x = m.tanh();
            }
            self.mapping.apply(
                a,
                &self.low,
                &self.high,
                &mut out.env_continuous[i * d..(i + 1) * d],
            );
        }
    }

    fn set_weights(&mut self, w: &Weights) -> Result<(), String> {
        self.mlp.load(w)
    }

    fn state(&self) -> Vec<f32> {
        self.carried.clone()
    }

    fn set_state(&mut self, s: &[f32]) -> Result<(), String> {
        if s.iter().any(|v| !v.is_finite()) || !s.len().is_multiple_of(self.dim) {
            return Err(format!(
                "SAC's carried noise must be finite, {} values per env; got {}",
                self.dim,
                s.len()
            ));
        }
        self.carried = s.to_vec();
        Ok(())
    }
}

/// Clamps a raw log-std as RLlib's squashed Gaussian does; the second value says whether
/// the gradient passes (inside the bounds).
pub fn clamp_log_std(ls: f32) -> (f32, bool) {
    let c = ls.clamp(SQUASHED_LOG_STD.0, SQUASHED_LOG_STD.1);
    (c, c == ls)
}
