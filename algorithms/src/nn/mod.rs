//! Networks, independent of any algorithm: the shape of an MLP with a shared trunk and
//! several heads ([`NetSpec`]), its named parameters ([`Weights`], PyTorch's `nn.Linear`
//! names and shapes), and the [`Network`] trait that a backend implements: inference, a
//! forward pass kept for backward, backward to parameters and inputs, and one fused
//! forward-loss-backward pass for losses computed row by row on the network's outputs.
//!
//! An algorithm writes its loss once, on the network's outputs (a [`RowLoss`], or host code
//! between `forward` and `backward`); a backend supplies only the network's math. The fused
//! CPU backend is in [`fused`], the candle one (CPU or CUDA) in [`candle`]; [`select`] picks
//! one, so that this module knows neither.
//!
//! Outputs are laid out head by head: for `rows` inputs, head `h`'s outputs are the
//! `rows × size_h` values starting at `rows × offset_h` (see [`NetSpec::head_offsets`]).

pub mod candle;
pub mod fused;
pub mod inference;
pub mod linalg;
pub mod select;
pub(crate) mod spin_pool;

use std::sync::Arc;

use envs::NpRandom;

use crate::config::Activation;
use crate::error::LearnerError;

/// One named parameter tensor, row-major.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NamedTensor {
    /// Its name (`encoder.0.weight`).
    pub name: String,
    /// Its shape: `[out, in]` for weights, `[out]` for biases.
    pub shape: Vec<usize>,
    /// Its values.
    pub data: Vec<f32>,
}

/// Named parameters, in a fixed order.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Weights {
    /// The parameters.
    pub tensors: Vec<NamedTensor>,
}

impl Weights {
    /// The tensor of that name.
    pub fn get(&self, name: &str) -> Option<&NamedTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The tensors whose names start with `prefix.`, with the prefix removed (one network of
    /// a module that has several).
    pub fn part(&self, prefix: &str) -> Weights {
        let p = format!("{prefix}.");
        Weights {
            tensors: self
                .tensors
                .iter()
                .filter_map(|t| {
                    t.name.strip_prefix(&p).map(|n| NamedTensor {
                        name: n.to_string(),
                        ..t.clone()
                    })
                })
                .collect(),
        }
    }

    /// These tensors with `prefix.` before each name.
    pub fn prefixed(&self, prefix: &str) -> Weights {
        Weights {
            tensors: self
                .tensors
                .iter()
                .map(|t| NamedTensor {
                    name: format!("{prefix}.{}", t.name),
                    ..t.clone()
                })
                .collect(),
        }
    }

    /// The values of every tensor, in order.
    pub fn data(&self) -> Vec<Vec<f32>> {
        self.tensors.iter().map(|t| t.data.clone()).collect()
    }
}

/// How a network's weights are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// RLlib's `normc_initializer(gain)` per layer (each output row drawn from a standard
    /// normal and scaled to norm `gain`), zero biases: RLlib's PPO networks.
    NormC,
    /// PyTorch's `nn.Linear` default: weights and biases uniform in ±1/√fan_in (DQN, SAC).
    TorchDefault,
}

/// One linear layer of a spec: its parameter name prefix, output size and (for
/// [`Init::NormC`]) gain.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSpec {
    /// `encoder.0`, `pi`, ...
    pub name: String,
    /// Output units.
    pub size: usize,
    /// normc gain.
    pub gain: f32,
}

impl LayerSpec {
    /// A layer.
    pub fn new(name: impl Into<String>, size: usize, gain: f32) -> Self {
        LayerSpec {
            name: name.into(),
            size,
            gain,
        }
    }
}

/// A head: hidden layers (with the network's activation) and a linear output layer, on top of
/// the trunk.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadSpec {
    /// Hidden layers.
    pub hidden: Vec<LayerSpec>,
    /// Their activation (`None`: the network's).
    pub activation: Option<Activation>,
    /// The output layer (no activation).
    pub out: LayerSpec,
}

/// The shape of an MLP: a shared trunk of hidden layers, then heads side by side.
#[derive(Debug, Clone, PartialEq)]
pub struct NetSpec {
    /// Input size.
    pub input_dim: usize,
    /// Activation of every hidden layer.
    pub activation: Activation,
    /// How weights are drawn.
    pub init: Init,
    /// Shared hidden layers (may be empty).
    pub trunk: Vec<LayerSpec>,
    /// The heads (at least one).
    pub heads: Vec<HeadSpec>,
}

/// A linear layer's place among the parameters and its sizes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Linear {
    /// Index of its weight among the parameters.
    pub w: usize,
    /// Index of its bias.
    pub b: usize,
    /// Input size.
    pub input: usize,
    /// Output size.
    pub output: usize,
}

impl NetSpec {
    /// The activation of head `h`'s hidden layers.
    pub fn head_activation(&self, h: usize) -> Activation {
        self.heads[h].activation.unwrap_or(self.activation)
    }

    /// Hidden layers of a trunk with these sizes, named `{prefix}.{i}`, gain 1.
    pub fn hidden_layers(prefix: &str, sizes: &[usize]) -> Vec<LayerSpec> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &s)| LayerSpec::new(format!("{prefix}.{i}"), s, 1.0))
            .collect()
    }

    /// Width of the trunk's output (its input size when it has no layers).
    pub fn trunk_dim(&self) -> usize {
        self.trunk.last().map_or(self.input_dim, |l| l.size)
    }

    /// Output size of each head.
    pub fn head_sizes(&self) -> Vec<usize> {
        self.heads.iter().map(|h| h.out.size).collect()
    }

    /// Offsets of each head's outputs within one row of all outputs (and their total).
    pub fn head_offsets(&self) -> (Vec<usize>, usize) {
        let mut offs = Vec::with_capacity(self.heads.len());
        let mut total = 0;
        for h in &self.heads {
            offs.push(total);
            total += h.out.size;
        }
        (offs, total)
    }

    /// Outputs per input row, over all heads.
    pub fn out_dim(&self) -> usize {
        self.heads.iter().map(|h| h.out.size).sum()
    }

    /// Every linear layer in parameter order (trunk, then each head's hidden layers and
    /// output), with its spec.
    fn layer_list(&self) -> Vec<(&LayerSpec, usize)> {
        let mut out = Vec::new();
        let mut prev = self.input_dim;
        for l in &self.trunk {
            out.push((l, prev));
            prev = l.size;
        }
        let trunk_out = prev;
        for h in &self.heads {
            let mut prev = trunk_out;
            for l in &h.hidden {
                out.push((l, prev));
                prev = l.size;
            }
            out.push((&h.out, prev));
        }
        out
    }

    /// The trunk's layers and each head's (hidden then output), as parameter indices.
    pub fn linears(&self) -> (Vec<Linear>, Vec<Vec<Linear>>) {
        let mut k = 0;
        let mut next = |input: usize, l: &LayerSpec| {
            let lin = Linear {
                w: k,
                b: k + 1,
                input,
                output: l.size,
            };
            k += 2;
            lin
        };
        let mut prev = self.input_dim;
        let trunk: Vec<Linear> = self
            .trunk
            .iter()
            .map(|l| {
                let lin = next(prev, l);
                prev = l.size;
                lin
            })
            .collect();
        let trunk_out = prev;
        let heads = self
            .heads
            .iter()
            .map(|h| {
                let mut prev = trunk_out;
                h.hidden
                    .iter()
                    .chain(std::iter::once(&h.out))
                    .map(|l| {
                        let lin = next(prev, l);
                        prev = l.size;
                        lin
                    })
                    .collect()
            })
            .collect();
        (trunk, heads)
    }

    /// Parameter names and shapes, in order.
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.layer_list()
            .into_iter()
            .flat_map(|(l, input)| {
                [
                    (format!("{}.weight", l.name), vec![l.size, input]),
                    (format!("{}.bias", l.name), vec![l.size]),
                ]
            })
            .collect()
    }

    /// Number of parameters (as a float: specs are checked for size before they are built).
    pub fn num_parameters(&self) -> f64 {
        self.layer_list()
            .iter()
            .map(|(l, input)| (*input as f64 + 1.0) * l.size as f64)
            .sum()
    }

    /// Freshly drawn weights (see [`Init`]), from `seed`.
    pub fn init(&self, seed: u64) -> Weights {
        let mut rng = NpRandom::from_seed(seed);
        let tensors = self
            .layer_list()
            .into_iter()
            .flat_map(|(l, input)| {
                let (w, b) = match self.init {
                    Init::NormC => {
                        let mut w: Vec<f32> = (0..l.size * input)
                            .map(|_| standard_normal(&mut rng) as f32)
                            .collect();
                        for row in w.chunks_exact_mut(input.max(1)) {
                            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                            row.iter_mut().for_each(|v| *v *= l.gain / norm);
                        }
                        (w, vec![0.0; l.size])
                    }
                    Init::TorchDefault => {
                        let bound = 1.0 / (input.max(1) as f64).sqrt();
                        let w = (0..l.size * input)
                            .map(|_| rng.uniform(-bound, bound) as f32)
                            .collect();
                        let b = (0..l.size)
                            .map(|_| rng.uniform(-bound, bound) as f32)
                            .collect();
                        (w, b)
                    }
                };
                [
                    NamedTensor {
                        name: format!("{}.weight", l.name),
                        shape: vec![l.size, input],
                        data: w,
                    },
                    NamedTensor {
                        name: format!("{}.bias", l.name),
                        shape: vec![l.size],
                        data: b,
                    },
                ]
            })
            .collect();
        Weights { tensors }
    }

    /// Checks that `w` has exactly this spec's parameters, in order; the error names the
    /// first mismatch.
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

    /// `w`'s tensors in this spec's order, found by name (a file may store them in another
    /// order).
    pub fn ordered(&self, w: &Weights) -> Result<Weights, String> {
        let tensors = self
            .parameter_shapes()
            .into_iter()
            .map(|(name, _)| {
                w.get(&name)
                    .cloned()
                    .ok_or_else(|| format!("missing tensor '{name}'"))
            })
            .collect::<Result<_, _>>()?;
        let out = Weights { tensors };
        self.check(&out)?;
        Ok(out)
    }
}

/// A standard normal draw (Box-Muller on two uniforms).
pub fn standard_normal(rng: &mut NpRandom) -> f64 {
    let u1 = 1.0 - rng.random();
    let u2 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A loss computed row by row on a network's outputs: for a block of rows it writes the
/// gradient of the loss with respect to those outputs and adds its terms' sums. Used by
/// [`Network::train_rows`], which runs blocks on several threads.
pub trait RowLoss: Send + Sync {
    /// How many sums [`block`](RowLoss::block) adds to (loss terms, and gradients of
    /// parameters that live outside the network, such as PPO's free log-std).
    fn num_sums(&self) -> usize;

    /// Rows `first .. first + rows` of the batch: `out` holds their outputs (head by head,
    /// see the module docs); write `d_out` (same layout) and add to `sums`.
    fn block(&self, first: usize, rows: usize, out: &[f32], d_out: &mut [f32], sums: &mut [f64]);
}

/// An optimizer's step on (parameters, gradients).
pub type OptimizerStep<'a> = dyn FnMut(&mut [Vec<f32>], &[Vec<f32>]) + 'a;

/// A network on some backend. Parameters and gradients are in the order of
/// [`NetSpec::parameter_shapes`]; optimizer steps happen on the host (see
/// [`update`](Network::update)), so that Adam exists once.
pub trait Network: Send + std::fmt::Debug {
    /// The shape.
    fn spec(&self) -> &NetSpec;

    /// Outputs of heads `heads` (in that order, head by head) for `rows` inputs, keeping
    /// nothing for backward.
    fn infer(
        &mut self,
        input: &[f32],
        rows: usize,
        heads: &[usize],
        out: &mut Vec<f32>,
    ) -> Result<(), LearnerError>;

    /// All outputs for `rows` inputs, keeping what [`backward`](Network::backward) needs.
    fn forward(
        &mut self,
        input: &[f32],
        rows: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), LearnerError>;

    /// Backward from `d_out` (the loss's gradient w.r.t. the last forward's outputs): sets
    /// the parameter gradients when `params`, and writes the gradient w.r.t. the inputs into
    /// `d_input` when given.
    fn backward(
        &mut self,
        d_out: &[f32],
        params: bool,
        d_input: Option<&mut Vec<f32>>,
    ) -> Result<(), LearnerError>;

    /// Forward, `loss` on every block of rows, and backward to the parameters, in one pass
    /// (split over threads where the backend has them); returns `loss`'s sums, added up in
    /// block order, so that the result does not depend on the number of threads.
    fn train_rows(
        &mut self,
        input: &[f32],
        rows: usize,
        loss: Arc<dyn RowLoss>,
    ) -> Result<Vec<f64>, LearnerError>;

    /// The gradients of the last backward pass.
    fn grads(&self) -> Result<Vec<Vec<f32>>, LearnerError>;

    /// Applies `step` to (parameters, gradients): an optimizer's update on the host.
    fn update(&mut self, step: &mut OptimizerStep<'_>) -> Result<(), LearnerError>;

    /// The current parameters.
    fn weights(&self) -> Result<Weights, LearnerError>;

    /// The current parameters into `out`, reusing its buffers where it already has this
    /// network's shapes (the weight sync after every off-policy training step).
    fn weights_into(&self, out: &mut Weights) -> Result<(), LearnerError> {
        *out = self.weights()?;
        Ok(())
    }

    /// Replaces the parameters (same spec).
    fn set_weights(&mut self, w: &Weights) -> Result<(), LearnerError>;

    /// Called when a sequence of training steps ends (helper threads may go idle).
    fn end_update(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> NetSpec {
        NetSpec {
            input_dim: 3,
            activation: Activation::Tanh,
            init: Init::NormC,
            trunk: NetSpec::hidden_layers("encoder", &[5]),
            heads: vec![
                HeadSpec {
                    hidden: vec![LayerSpec::new("a.0", 4, 1.0)],
                    activation: None,
                    out: LayerSpec::new("a", 2, 0.01),
                },
                HeadSpec {
                    hidden: vec![],
                    activation: None,
                    out: LayerSpec::new("v", 1, 0.01),
                },
            ],
        }
    }

    #[test]
    fn parameters_are_named_and_ordered_as_torch_modules() {
        let s = spec();
        let names = s.parameter_shapes();
        assert_eq!(
            names,
            [
                ("encoder.0.weight".to_string(), vec![5, 3]),
                ("encoder.0.bias".into(), vec![5]),
                ("a.0.weight".into(), vec![4, 5]),
                ("a.0.bias".into(), vec![4]),
                ("a.weight".into(), vec![2, 4]),
                ("a.bias".into(), vec![2]),
                ("v.weight".into(), vec![1, 5]),
                ("v.bias".into(), vec![1]),
            ]
        );
        assert_eq!(s.num_parameters(), 20.0 + 24.0 + 10.0 + 6.0);
        assert_eq!(s.head_offsets(), (vec![0, 2], 3));
        let (trunk, heads) = s.linears();
        assert_eq!(trunk[0].w, 0);
        assert_eq!(
            heads[0][1],
            Linear {
                w: 4,
                b: 5,
                input: 4,
                output: 2
            }
        );
        assert_eq!(heads[1][0].input, 5);
    }

    #[test]
    fn normc_rows_have_their_gain_and_torch_init_is_bounded() {
        let w = spec().init(1);
        let a = w.get("a.weight").unwrap();
        for row in a.data.chunks(4) {
            let n: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((n - 0.01).abs() < 1e-6);
        }
        let mut t = spec();
        t.init = Init::TorchDefault;
        let w = t.init(2);
        let b = 1.0 / 3f32.sqrt();
        assert!(w.tensors[0].data.iter().all(|v| v.abs() <= b));
        assert!(w.tensors[1].data.iter().any(|v| *v != 0.0));
        let shuffled = Weights {
            tensors: w.tensors.iter().rev().cloned().collect(),
        };
        assert_eq!(t.ordered(&shuffled).unwrap(), w);
        assert_eq!(w.prefixed("q").part("q"), w);
    }
}
