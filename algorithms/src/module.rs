//! The RLModule: an MLP with a policy head (logits of a categorical distribution) and a
//! value head, optionally on a shared trunk (`vf_share_layers`).
//!
//! Parameters are named and shaped as PyTorch's `nn.Linear` (`weight` is `[out, in]`), so a
//! checkpoint's safetensors load into an equivalent torch module:
//! shared trunk `encoder.{i}.weight|bias`, or separate `pi_encoder.{i}` and `vf_encoder.{i}`;
//! heads `pi.weight|bias` (`[num_actions, hidden]`) and `vf.weight|bias` (`[1, hidden]`).
//!
//! Initialisation is RLlib's torch `FullyConnectedNetwork`'s: `normc_initializer(1.0)` for
//! hidden layers and `normc_initializer(0.01)` for both heads (each output row drawn from a
//! standard normal and scaled to that norm), zero biases.
//!
//! [`MlpPolicy`] is the inference side (env runners, evaluation): plain loops over `f32`,
//! batched over a runner's envs, no allocation per call. The learner's copy of the same
//! network is in [`crate::learner`].

use envs::NpRandom;

use crate::config::{Activation, ModelConfig};
use crate::linalg::linear_forward;

/// The shape of the network.
#[derive(Debug, Clone, PartialEq)]
pub struct MlpSpec {
    /// Observation size.
    pub obs_dim: usize,
    /// Number of discrete actions.
    pub num_actions: usize,
    /// Hidden layer sizes, activation and sharing.
    pub model: ModelConfig,
}

/// One named parameter tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Its name (see the module docs).
    pub name: String,
    /// Its shape: `[out, in]` for weights, `[out]` for biases.
    pub shape: Vec<usize>,
    /// Its values.
    pub data: Vec<f32>,
}

/// Every parameter of a module, in a fixed order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Weights {
    /// The parameters.
    pub tensors: Vec<NamedTensor>,
}

impl Weights {
    /// The tensor of that name.
    pub fn get(&self, name: &str) -> Option<&NamedTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// One linear layer: (name prefix, in, out).
fn layers(spec: &MlpSpec) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let trunk = |prefix: &str, out: &mut Vec<(String, usize, usize)>| {
        let mut prev = spec.obs_dim;
        for (i, &h) in spec.model.fcnet_hiddens.iter().enumerate() {
            out.push((format!("{prefix}.{i}"), prev, h));
            prev = h;
        }
        prev
    };
    if spec.model.vf_share_layers {
        let last = trunk("encoder", &mut out);
        out.push(("pi".to_string(), last, spec.num_actions));
        out.push(("vf".to_string(), last, 1));
    } else {
        let last = trunk("pi_encoder", &mut out);
        trunk("vf_encoder", &mut out);
        out.push(("pi".to_string(), last, spec.num_actions));
        out.push(("vf".to_string(), last, 1));
    }
    out
}

impl MlpSpec {
    /// Parameter names and shapes, in order.
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<usize>)> {
        layers(self)
            .into_iter()
            .flat_map(|(name, i, o)| {
                [
                    (format!("{name}.weight"), vec![o, i]),
                    (format!("{name}.bias"), vec![o]),
                ]
            })
            .collect()
    }

    /// Freshly initialised weights (see the module docs), drawn from `seed`.
    pub fn init(&self, seed: u64) -> Weights {
        let mut rng = NpRandom::from_seed(seed);
        let tensors = layers(self)
            .into_iter()
            .flat_map(|(name, i, o)| {
                let gain = if name == "pi" || name == "vf" {
                    0.01
                } else {
                    1.0
                };
                let mut w: Vec<f32> = (0..o * i)
                    .map(|_| standard_normal(&mut rng) as f32)
                    .collect();
                for row in w.chunks_exact_mut(i) {
                    let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                    row.iter_mut().for_each(|v| *v *= gain / norm);
                }
                [
                    NamedTensor {
                        name: format!("{name}.weight"),
                        shape: vec![o, i],
                        data: w,
                    },
                    NamedTensor {
                        name: format!("{name}.bias"),
                        shape: vec![o],
                        data: vec![0.0; o],
                    },
                ]
            })
            .collect();
        Weights { tensors }
    }

    /// Checks that `w` has exactly this spec's parameters; the error names the first mismatch.
    pub fn check(&self, w: &Weights) -> Result<(), String> {
        let want = self.parameter_shapes();
        if want.len() != w.tensors.len() {
            return Err(format!(
                "expected {} parameter tensors, found {}",
                want.len(),
                w.tensors.len()
            ));
        }
        for ((name, shape), t) in want.iter().zip(&w.tensors) {
            if *name != t.name || *shape != t.shape {
                return Err(format!(
                    "expected {name} of shape {shape:?}, found {} of shape {:?}",
                    t.name, t.shape
                ));
            }
            if t.data.len() != shape.iter().product::<usize>() {
                return Err(format!(
                    "{name}: {} values for shape {shape:?}",
                    t.data.len()
                ));
            }
        }
        Ok(())
    }
}

/// A standard normal draw (Box-Muller on two uniforms).
fn standard_normal(rng: &mut NpRandom) -> f64 {
    let u1 = 1.0 - rng.random();
    let u2 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

struct Dense {
    w: Vec<f32>,
    b: Vec<f32>,
    output: usize,
}

impl Dense {
    fn from(w: &Weights, name: &str) -> Self {
        let weight = w.get(&format!("{name}.weight"));
        let bias = w.get(&format!("{name}.bias"));
        let (weight, bias) = match (weight, bias) {
            (Some(a), Some(b)) => (a, b),
            _ => unreachable!("checked by MlpSpec::check"),
        };
        Dense {
            w: weight.data.clone(),
            b: bias.data.clone(),
            output: weight.shape[0],
        }
    }

    /// `out[r] = act(W x[r] + b)` for each of `rows` rows, as one matrix product.
    fn forward(&self, x: &[f32], rows: usize, act: Activation, out: &mut [f32]) {
        linear_forward(x, rows, &self.w, &self.b, act, out);
    }
}

/// The policy for acting: computes logits (and values) for a batch of observations.
pub struct MlpPolicy {
    spec: MlpSpec,
    pi_trunk: Vec<Dense>,
    vf_trunk: Vec<Dense>,
    pi: Dense,
    vf: Dense,
    scratch: [Vec<f32>; 2],
}

impl std::fmt::Debug for MlpPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlpPolicy")
            .field("spec", &self.spec)
            .finish()
    }
}

impl MlpPolicy {
    /// A policy with these weights; errors if they do not fit the spec.
    pub fn new(spec: MlpSpec, weights: &Weights) -> Result<Self, String> {
        spec.check(weights)?;
        let n = spec.model.fcnet_hiddens.len();
        let (pi_prefix, vf_prefix) = if spec.model.vf_share_layers {
            ("encoder", None)
        } else {
            ("pi_encoder", Some("vf_encoder"))
        };
        let pi_trunk = (0..n)
            .map(|i| Dense::from(weights, &format!("{pi_prefix}.{i}")))
            .collect();
        let vf_trunk = match vf_prefix {
            Some(p) => (0..n)
                .map(|i| Dense::from(weights, &format!("{p}.{i}")))
                .collect(),
            None => Vec::new(),
        };
        Ok(MlpPolicy {
            pi: Dense::from(weights, "pi"),
            vf: Dense::from(weights, "vf"),
            pi_trunk,
            vf_trunk,
            spec,
            scratch: [Vec::new(), Vec::new()],
        })
    }

    /// The network's shape.
    pub fn spec(&self) -> &MlpSpec {
        &self.spec
    }

    /// Replaces the weights (same spec).
    pub fn set_weights(&mut self, weights: &Weights) -> Result<(), String> {
        *self = MlpPolicy::new(self.spec.clone(), weights)?;
        Ok(())
    }

    /// Runs `trunk` on `obs`; the result is in `scratch[0]`, `width` values per row.
    fn trunk(&mut self, which_vf: bool, obs: &[f32], rows: usize) -> usize {
        let act = self.spec.model.fcnet_activation;
        let trunk = if which_vf {
            &self.vf_trunk
        } else {
            &self.pi_trunk
        };
        let [a, b] = &mut self.scratch;
        a.clear();
        a.extend_from_slice(&obs[..rows * self.spec.obs_dim]);
        let mut width = self.spec.obs_dim;
        for layer in trunk {
            b.resize(rows * layer.output, 0.0);
            layer.forward(a, rows, act, b);
            std::mem::swap(a, b);
            width = layer.output;
        }
        width
    }

    /// Logits for `rows` observations (RLlib's `forward_inference`/`forward_exploration`:
    /// the caller takes the argmax or samples).
    pub fn forward_inference(&mut self, obs: &[f32], rows: usize, logits: &mut [f32]) {
        self.trunk(false, obs, rows);
        self.pi
            .forward(&self.scratch[0], rows, Activation::Linear, logits);
    }

    /// Value estimates for `rows` observations.
    pub fn values(&mut self, obs: &[f32], rows: usize, values: &mut [f32]) {
        let shared = self.spec.model.vf_share_layers;
        self.trunk(!shared, obs, rows);
        self.vf
            .forward(&self.scratch[0], rows, Activation::Linear, values);
    }
}

/// Samples an action from categorical logits; returns it and its log-probability.
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

/// The most likely action (deterministic evaluation); ties go to the lowest index.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// `log(sum(exp(x)))`, computed stably.
pub fn log_sum_exp(x: &[f32]) -> f32 {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    m + x.iter().map(|v| (v - m).exp()).sum::<f32>().ln()
}
