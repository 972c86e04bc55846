//! A network for acting: plain loops over `f32` and SGEMM, batched over an env runner's envs,
//! no allocation per call. The learner's trainable copy is a [`Network`](super::Network).

use super::linalg::{linear_forward, linear_forward_t, transpose_into, wants_transposed};
use super::{Linear, NetSpec, Weights};
use crate::config::Activation;

/// An inference copy of a [`NetSpec`] network.
#[derive(Debug, Clone)]
pub struct Mlp {
    spec: NetSpec,
    trunk: Vec<Linear>,
    heads: Vec<Vec<Linear>>,
    params: Vec<Vec<f32>>,
    /// Per parameter: the transposed weight of a layer that runs from it (see
    /// [`wants_transposed`]), else empty.
    transposed: Vec<Vec<f32>>,
    scratch: [Vec<f32>; 2],
    trunk_out: Vec<f32>,
}

impl Mlp {
    /// A network of `spec` with `weights`; errors if they do not fit.
    pub fn new(spec: NetSpec, weights: &Weights) -> Result<Self, String> {
        spec.check(weights)?;
        let (trunk, heads) = spec.linears();
        let params = weights.data();
        let mut mlp = Mlp {
            transposed: vec![Vec::new(); params.len()],
            params,
            spec,
            trunk,
            heads,
            scratch: [Vec::new(), Vec::new()],
            trunk_out: Vec::new(),
        };
        mlp.transpose();
        Ok(mlp)
    }

    /// Refreshes the transposed weights from `params`.
    fn transpose(&mut self) {
        for l in self.trunk.iter().chain(self.heads.iter().flatten()) {
            if wants_transposed(l.output) {
                transpose_into(
                    l.output,
                    l.input,
                    &self.params[l.w],
                    &mut self.transposed[l.w],
                );
            }
        }
    }

    /// `out = act(x·Wᵀ + b)` for layer `l`, from whichever copy of its weight is faster.
    fn layer(
        params: &[Vec<f32>],
        transposed: &[Vec<f32>],
        l: Linear,
        x: &[f32],
        rows: usize,
        act: Activation,
        out: &mut [f32],
    ) {
        if wants_transposed(l.output) {
            linear_forward_t(x, rows, &transposed[l.w], &params[l.b], act, out);
        } else {
            linear_forward(x, rows, &params[l.w], &params[l.b], act, out);
        }
    }

    /// The shape.
    pub fn spec(&self) -> &NetSpec {
        &self.spec
    }

    /// Replaces the weights with the tensors of `w` that this network's parameters name (in
    /// any order, others ignored), reusing the buffers: what an env runner does on every
    /// weight sync.
    pub fn load(&mut self, w: &Weights) -> Result<(), String> {
        let shapes = self.spec.parameter_shapes();
        let in_order = w.tensors.len() >= shapes.len()
            && shapes
                .iter()
                .zip(&w.tensors)
                .all(|((n, _), t)| *n == t.name);
        for (i, (name, shape)) in shapes.iter().enumerate() {
            let t = if in_order {
                &w.tensors[i]
            } else {
                w.get(name)
                    .ok_or_else(|| format!("missing tensor '{name}'"))?
            };
            if t.shape != *shape || t.data.len() != self.params[i].len() {
                return Err(format!(
                    "expected {name} of shape {shape:?}, found shape {:?}",
                    t.shape
                ));
            }
        }
        for (i, (name, _)) in shapes.iter().enumerate() {
            let t = if in_order {
                &w.tensors[i]
            } else {
                w.get(name).expect("checked above")
            };
            self.params[i].copy_from_slice(&t.data);
        }
        self.transpose();
        Ok(())
    }

    /// Replaces the weights (same spec), reusing the buffers.
    pub fn set_weights(&mut self, weights: &Weights) -> Result<(), String> {
        self.spec.check(weights)?;
        for (p, t) in self.params.iter_mut().zip(&weights.tensors) {
            p.copy_from_slice(&t.data);
        }
        self.transpose();
        Ok(())
    }

    /// Runs the trunk on `rows` inputs into `trunk_out`.
    fn run_trunk(&mut self, input: &[f32], rows: usize) {
        let act = self.spec.activation;
        let [a, b] = &mut self.scratch;
        self.trunk_out.clear();
        self.trunk_out
            .extend_from_slice(&input[..rows * self.spec.input_dim]);
        for l in &self.trunk {
            b.resize(rows * l.output, 0.0);
            Self::layer(
                &self.params,
                &self.transposed,
                *l,
                &self.trunk_out,
                rows,
                act,
                b,
            );
            std::mem::swap(&mut self.trunk_out, b);
        }
        let _ = a;
    }

    /// Head `head`'s outputs (`rows × size`) for `rows` inputs.
    pub fn forward(&mut self, input: &[f32], rows: usize, head: usize, out: &mut [f32]) {
        self.run_trunk(input, rows);
        self.head(rows, head, out);
    }

    /// Heads `a` and `b` on one trunk pass (for instance a policy's mean and the value).
    pub fn forward2(
        &mut self,
        input: &[f32],
        rows: usize,
        (a, out_a): (usize, &mut [f32]),
        (b, out_b): (usize, &mut [f32]),
    ) {
        self.run_trunk(input, rows);
        self.head(rows, a, out_a);
        self.head(rows, b, out_b);
    }

    fn head(&mut self, rows: usize, head: usize, out: &mut [f32]) {
        let act = self.spec.head_activation(head);
        let layers = &self.heads[head];
        let [a, b] = &mut self.scratch;
        let (hidden, last) = layers.split_at(layers.len() - 1);
        let mut x: &[f32] = &self.trunk_out;
        for l in hidden {
            b.resize(rows * l.output, 0.0);
            Self::layer(&self.params, &self.transposed, *l, x, rows, act, b);
            std::mem::swap(a, b);
            x = a;
        }
        Self::layer(
            &self.params,
            &self.transposed,
            last[0],
            x,
            rows,
            Activation::Linear,
            out,
        );
    }
}
