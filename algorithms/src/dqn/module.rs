//! DQN's RLModule (RLlib's `DefaultDQNTorchRLModule`): an encoder (`fcnet_hiddens`), then an
//! advantage stream `af` (`head_fcnet_hiddens`, then one output per action) and, when
//! dueling, a value stream `vf` (one output); Q = V + A - mean(A), or Q = A without dueling.
//! The target network is a copy whose tensors carry the prefix `target.`. Weights are drawn
//! as PyTorch's `nn.Linear` draws them (RLlib's new stack uses its default initialisers).

use envs::NpRandom;

use crate::config::{ModelConfig, piecewise_linear};
use crate::distributions::argmax;
use crate::nn::inference::Mlp;
use crate::nn::{HeadSpec, Init, LayerSpec, NetSpec, Weights};
use crate::policy::{Actions, Policy};

/// The shape of a DQN module.
#[derive(Debug, Clone, PartialEq)]
pub struct DqnModuleSpec {
    /// Observation size (flattened).
    pub obs_dim: usize,
    /// Discrete actions.
    pub num_actions: usize,
    /// Encoder and head layers.
    pub model: ModelConfig,
    /// Whether the module has a value stream.
    pub dueling: bool,
}

/// Index of the advantage (or Q) head.
pub const AF: usize = 0;
/// Index of the value head (dueling only).
pub const VF: usize = 1;
/// The prefix of the target network's tensors.
pub const TARGET: &str = "target";

impl DqnModuleSpec {
    /// The online (and target) network.
    pub fn net_spec(&self) -> NetSpec {
        let m = &self.model;
        let head = |name: &str, size: usize| HeadSpec {
            hidden: NetSpec::hidden_layers(name, &m.head_fcnet_hiddens),
            activation: Some(m.head_fcnet_activation),
            out: LayerSpec::new(name, size, 1.0),
        };
        let mut heads = vec![head("af", self.num_actions)];
        if self.dueling {
            heads.push(head("vf", 1));
        }
        NetSpec {
            input_dim: self.obs_dim,
            activation: m.fcnet_activation,
            init: Init::TorchDefault,
            trunk: NetSpec::hidden_layers("encoder", &m.fcnet_hiddens),
            heads,
        }
    }

    /// Fresh weights: the online network's, then the target's (a copy, as RLlib makes it).
    pub fn init(&self, seed: u64) -> Weights {
        let online = self.net_spec().init(seed);
        let mut w = online.clone();
        w.tensors.extend(online.prefixed(TARGET).tensors);
        w
    }

    /// Parameter names and shapes of the whole module (online, then target).
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let online = self.net_spec().parameter_shapes();
        let target = online
            .iter()
            .map(|(n, s)| (format!("{TARGET}.{n}"), s.clone()));
        online.clone().into_iter().chain(target).collect()
    }

    /// The module's weights split into the online and the target network's, checked.
    pub fn split(&self, w: &Weights) -> Result<(Weights, Weights), String> {
        let spec = self.net_spec();
        let target = spec.ordered(&w.part(TARGET))?;
        let online = spec.ordered(w)?;
        Ok((online, target))
    }
}

/// Q-values from advantage and value outputs of one row: `V + A - mean(A)`, or `A`.
pub fn q_values(advantages: &[f32], value: Option<f32>, out: &mut [f32]) {
    match value {
        None => out.copy_from_slice(advantages),
        Some(v) => {
            let mean = advantages.iter().sum::<f32>() / advantages.len() as f32;
            for (o, &a) in out.iter_mut().zip(advantages) {
                *o = v + a - mean;
            }
        }
    }
}

/// DQN acting: ε-greedy over Q (the argmax of Q is the argmax of A).
#[derive(Debug, Clone)]
pub struct DqnPolicy {
    mlp: Mlp,
    num_actions: usize,
    epsilon: Vec<(u64, f64)>,
    adv: Vec<f32>,
}

impl DqnPolicy {
    /// A policy with the online network's weights, exploring by `epsilon`.
    pub fn new(
        spec: &DqnModuleSpec,
        online: &Weights,
        epsilon: Vec<(u64, f64)>,
    ) -> Result<Self, String> {
        Ok(DqnPolicy {
            mlp: Mlp::new(spec.net_spec(), &spec.net_spec().ordered(online)?)?,
            num_actions: spec.num_actions,
            epsilon,
            adv: Vec::new(),
        })
    }

    /// ε after `t` sampled env steps.
    pub fn epsilon(&self, t: u64) -> f64 {
        piecewise_linear(&self.epsilon, t)
    }
}

impl Policy for DqnPolicy {
    fn action_dim(&self) -> usize {
        1
    }

    fn dist_width(&self) -> usize {
        0
    }

    fn discrete(&self) -> bool {
        true
    }

    fn explore(&mut self, obs: &[f32], rows: usize, t: u64, rng: &mut NpRandom, out: &mut Actions) {
        self.greedy(obs, rows, out);
        let eps = self.epsilon(t);
        for i in 0..rows {
            // RLlib draws the coin per row, then a uniform action among all.
            if rng.random() < eps {
                let a = rng.below(self.num_actions as u64) as i64;
                out.env_discrete[i] = a;
                out.actions[i] = a as f32;
            }
        }
    }

    fn greedy(&mut self, obs: &[f32], rows: usize, out: &mut Actions) {
        out.resize(rows, 1, 0, true);
        let n = self.num_actions;
        self.adv.resize(rows * n, 0.0);
        self.mlp.forward(obs, rows, AF, &mut self.adv);
        for i in 0..rows {
            let a = argmax(&self.adv[i * n..(i + 1) * n]);
            out.env_discrete[i] = i64::from(a);
            out.actions[i] = a as f32;
        }
    }

    fn set_weights(&mut self, w: &Weights) -> Result<(), String> {
        self.mlp.load(w)
    }
}
