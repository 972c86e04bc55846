//! PPO's RLModule: a policy head and a value head, on a shared trunk (`vf_share_layers`) or
//! on trunks of their own, as RLlib's torch `PPOTorchRLModule`.
//!
//! Parameters are named and shaped as PyTorch's `nn.Linear` (`weight` is `[out, in]`), so a
//! checkpoint's safetensors load into an equivalent torch module: shared trunk
//! `encoder.{i}.weight|bias`, or separate `pi_encoder.{i}` and `vf_encoder.{i}`; heads
//! `pi.weight|bias` and `vf.weight|bias`; for `Box` actions a free `log_std` (RLlib's
//! `free_log_std`, starting at 0: σ = 1).
//!
//! Initialisation is RLlib's torch `FullyConnectedNetwork`'s: `normc_initializer(1.0)` for
//! hidden layers and `normc_initializer(0.01)` for both heads, zero biases.

use envs::NpRandom;

use crate::config::ModelConfig;
use crate::distributions::{ActionMapping, argmax, sample_categorical, sample_gaussian};
use crate::nn::inference::Mlp;
use crate::nn::{HeadSpec, Init, LayerSpec, NamedTensor, NetSpec, Weights};
use crate::policy::{Actions, Policy};

/// What the policy head parameterises.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionSpec {
    /// A categorical over `n` actions (logits).
    Discrete(usize),
    /// A diagonal Gaussian over `dim` values (the head gives the mean; `log_std` is a free
    /// parameter). The policy acts in [-1, 1]; `low`/`high` are the env's bounds, onto which
    /// actions are mapped (RLlib's `normalize_actions`).
    Box {
        /// Action size.
        dim: usize,
        /// The env's lower bounds.
        low: Vec<f32>,
        /// The env's upper bounds.
        high: Vec<f32>,
    },
}

impl ActionSpec {
    /// Values per row of the policy head's output.
    pub fn head_size(&self) -> usize {
        match self {
            ActionSpec::Discrete(n) => *n,
            ActionSpec::Box { dim, .. } => *dim,
        }
    }

    /// Values per row of `action_dist_inputs`: the logits, or mean and log-std.
    pub fn dist_width(&self) -> usize {
        match self {
            ActionSpec::Discrete(n) => *n,
            ActionSpec::Box { dim, .. } => 2 * dim,
        }
    }

    /// Values per action: 1 (an index) or the Box's size.
    pub fn action_dim(&self) -> usize {
        match self {
            ActionSpec::Discrete(_) => 1,
            ActionSpec::Box { dim, .. } => *dim,
        }
    }
}

/// The shape of a PPO module.
#[derive(Debug, Clone, PartialEq)]
pub struct PpoModuleSpec {
    /// Observation size (flattened).
    pub obs_dim: usize,
    /// The action distribution.
    pub action: ActionSpec,
    /// Hidden layer sizes, activation and sharing.
    pub model: ModelConfig,
}

/// Index of the policy head among the network's heads.
pub const PI: usize = 0;
/// Index of the value head.
pub const VF: usize = 1;
/// The name of the free log-std parameter.
pub const LOG_STD: &str = "log_std";

impl PpoModuleSpec {
    /// The network (without the free log-std).
    pub fn net_spec(&self) -> NetSpec {
        let hiddens = &self.model.fcnet_hiddens;
        let head = |prefix: Option<&str>, out: &str, size: usize| HeadSpec {
            hidden: prefix.map_or_else(Vec::new, |p| NetSpec::hidden_layers(p, hiddens)),
            activation: None,
            out: LayerSpec::new(out, size, 0.01),
        };
        let shared = self.model.vf_share_layers;
        NetSpec {
            input_dim: self.obs_dim,
            activation: self.model.fcnet_activation,
            init: Init::NormC,
            trunk: if shared {
                NetSpec::hidden_layers("encoder", hiddens)
            } else {
                Vec::new()
            },
            heads: vec![
                head(
                    (!shared).then_some("pi_encoder"),
                    "pi",
                    self.action.head_size(),
                ),
                head((!shared).then_some("vf_encoder"), "vf", 1),
            ],
        }
    }

    /// Parameter names and shapes, in order (the network's, then `log_std` for `Box`).
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut s = self.net_spec().parameter_shapes();
        if let ActionSpec::Box { dim, .. } = self.action {
            s.push((LOG_STD.to_string(), vec![dim]));
        }
        s
    }

    /// Freshly initialised weights, drawn from `seed`.
    pub fn init(&self, seed: u64) -> Weights {
        let mut w = self.net_spec().init(seed);
        if let ActionSpec::Box { dim, .. } = self.action {
            w.tensors.push(NamedTensor {
                name: LOG_STD.to_string(),
                shape: vec![dim],
                data: vec![0.0; dim],
            });
        }
        w
    }

    /// Splits a module's weights into the network's and the free log-std (empty for
    /// `Discrete`), checking both against the spec.
    pub fn split(&self, w: &Weights) -> Result<(Weights, Vec<f32>), String> {
        let mut net = w.clone();
        let log_std = match self.action {
            ActionSpec::Discrete(_) => Vec::new(),
            ActionSpec::Box { dim, .. } => {
                let i = net
                    .tensors
                    .iter()
                    .position(|t| t.name == LOG_STD)
                    .ok_or_else(|| format!("missing tensor '{LOG_STD}'"))?;
                let t = net.tensors.remove(i);
                if t.data.len() != dim {
                    return Err(format!(
                        "{LOG_STD}: {} values, expected {dim}",
                        t.data.len()
                    ));
                }
                t.data
            }
        };
        let net = self.net_spec().ordered(&net)?;
        Ok((net, log_std))
    }

    /// Checks that `w` has exactly this spec's parameters.
    pub fn check(&self, w: &Weights) -> Result<(), String> {
        self.split(w).map(|_| ())
    }
}

/// The policy for acting: the distribution inputs of a batch of observations, and actions
/// sampled from them.
#[derive(Debug, Clone)]
pub struct PpoPolicy {
    spec: PpoModuleSpec,
    mlp: Mlp,
    log_std: Vec<f32>,
    mapping: ActionMapping,
}

impl PpoPolicy {
    /// A policy with these weights; errors if they do not fit the spec.
    pub fn new(spec: PpoModuleSpec, weights: &Weights) -> Result<Self, String> {
        let (net, log_std) = spec.split(weights)?;
        Ok(PpoPolicy {
            mlp: Mlp::new(spec.net_spec(), &net)?,
            log_std,
            spec,
            mapping: ActionMapping::Normalize,
        })
    }

    /// How `Box` actions become the env's.
    pub fn with_mapping(mut self, mapping: ActionMapping) -> Self {
        self.mapping = mapping;
        self
    }

    /// The module's shape.
    pub fn spec(&self) -> &PpoModuleSpec {
        &self.spec
    }

    /// Replaces the weights (same spec).
    pub fn set_weights(&mut self, weights: &Weights) -> Result<(), String> {
        let (net, log_std) = self.spec.split(weights)?;
        self.mlp.set_weights(&net)?;
        self.log_std = log_std;
        Ok(())
    }

    /// The distribution inputs (RLlib's `action_dist_inputs`) for `rows` observations:
    /// logits, or mean and log-std, `dist_width` values per row.
    pub fn dist_inputs(&mut self, obs: &[f32], rows: usize, out: &mut [f32]) {
        match &self.spec.action {
            ActionSpec::Discrete(n) => self.mlp.forward(obs, rows, PI, &mut out[..rows * n]),
            ActionSpec::Box { dim, .. } => {
                // The head writes the means into the first half, then they are spread out.
                let d = *dim;
                self.mlp.forward(obs, rows, PI, &mut out[..rows * d]);
                for r in (0..rows).rev() {
                    out.copy_within(r * d..(r + 1) * d, 2 * r * d);
                    out[2 * r * d + d..2 * (r + 1) * d].copy_from_slice(&self.log_std);
                }
            }
        }
    }

    /// Value estimates for `rows` observations.
    pub fn values(&mut self, obs: &[f32], rows: usize, out: &mut [f32]) {
        self.mlp.forward(obs, rows, VF, &mut out[..rows]);
    }
}

impl Policy for PpoPolicy {
    fn action_dim(&self) -> usize {
        self.spec.action.action_dim()
    }

    fn dist_width(&self) -> usize {
        self.spec.action.dist_width()
    }

    fn discrete(&self) -> bool {
        matches!(self.spec.action, ActionSpec::Discrete(_))
    }

    fn explore(
        &mut self,
        obs: &[f32],
        rows: usize,
        _t: u64,
        rng: &mut NpRandom,
        out: &mut Actions,
    ) {
        let (ad, w, discrete) = (self.action_dim(), self.dist_width(), self.discrete());
        out.resize(rows, ad, w, discrete);
        let mut inputs = std::mem::take(&mut out.dist_inputs);
        self.dist_inputs(obs, rows, &mut inputs);
        for i in 0..rows {
            let row = &inputs[i * w..][..w];
            match &self.spec.action {
                ActionSpec::Discrete(_) => {
                    let (a, logp) = sample_categorical(row, rng);
                    out.actions[i] = a as f32;
                    out.env_discrete[i] = i64::from(a);
                    out.logp[i] = logp;
                }
                ActionSpec::Box { dim, low, high } => {
                    let (mean, log_std) = row.split_at(*dim);
                    let a = &mut out.actions[i * dim..][..*dim];
                    out.logp[i] = sample_gaussian(mean, log_std, rng, a);
                    self.mapping
                        .apply(a, low, high, &mut out.env_continuous[i * dim..][..*dim]);
                }
            }
        }
        out.dist_inputs = inputs;
    }

    fn greedy(&mut self, obs: &[f32], rows: usize, out: &mut Actions) {
        let (ad, w, discrete) = (self.action_dim(), self.dist_width(), self.discrete());
        out.resize(rows, ad, w, discrete);
        let mut inputs = std::mem::take(&mut out.dist_inputs);
        self.dist_inputs(obs, rows, &mut inputs);
        for i in 0..rows {
            let row = &inputs[i * w..][..w];
            match &self.spec.action {
                ActionSpec::Discrete(_) => {
                    let a = argmax(row);
                    out.actions[i] = a as f32;
                    out.env_discrete[i] = i64::from(a);
                }
                ActionSpec::Box { dim, low, high } => {
                    let mean = &row[..*dim];
                    out.actions[i * dim..][..*dim].copy_from_slice(mean);
                    self.mapping
                        .apply(mean, low, high, &mut out.env_continuous[i * dim..][..*dim]);
                }
            }
        }
        out.dist_inputs = inputs;
    }

    fn set_weights(&mut self, w: &Weights) -> Result<(), String> {
        PpoPolicy::set_weights(self, w)
    }
}
