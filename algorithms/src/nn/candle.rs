//! The candle backend: the same MLP as [`NetSpec`] describes, with candle's autograd, on the
//! CPU or (with the `cuda` feature) a CUDA GPU. It computes only the network: a loss's
//! gradient w.r.t. the outputs comes from the host (the algorithm's loss, written once), and
//! backward differentiates `Σ outputs · d_out` through the network, whose gradient w.r.t. the
//! parameters and inputs is exactly the loss's.

use std::sync::Arc;

use candle_core::{Device, Tensor, Var};

use super::{NamedTensor, NetSpec, Network, OptimizerStep, RowLoss, Weights};
use crate::config::Activation;
use crate::error::LearnerError;

/// The candle device for a configured one.
pub fn candle_device(device: crate::config::Device) -> Result<Device, LearnerError> {
    match device {
        crate::config::Device::Cpu => Ok(Device::Cpu),
        crate::config::Device::Cuda => Ok(Device::new_cuda(0)?),
    }
}

/// The last training forward pass: its input (a variable, for input gradients) and each
/// head's outputs.
struct Pass {
    input: Var,
    outputs: Vec<Tensor>,
    rows: usize,
}

/// A network on candle.
pub struct CandleNet {
    spec: NetSpec,
    device: Device,
    /// In the order of `spec.parameter_shapes()`.
    vars: Vec<Var>,
    last: Option<Pass>,
    grads: Vec<Vec<f32>>,
}

impl std::fmt::Debug for CandleNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CandleNet")
            .field("device", &self.device)
            .field("spec", &self.spec)
            .finish()
    }
}

impl CandleNet {
    /// A network of `spec` with `weights` on `device`.
    pub fn new(spec: NetSpec, weights: &Weights, device: Device) -> Result<Self, LearnerError> {
        spec.check(weights).map_err(LearnerError::Mismatch)?;
        let vars = weights
            .tensors
            .iter()
            .map(|t| Var::from_slice(&t.data, t.shape.as_slice(), &device))
            .collect::<candle_core::Result<_>>()?;
        let grads = weights
            .tensors
            .iter()
            .map(|t| vec![0.0; t.data.len()])
            .collect();
        Ok(CandleNet {
            spec,
            device,
            vars,
            last: None,
            grads,
        })
    }

    fn linear(&self, x: &Tensor, w: usize, act: Activation) -> candle_core::Result<Tensor> {
        let y = x
            .matmul(&self.vars[w].as_tensor().t()?)?
            .broadcast_add(self.vars[w + 1].as_tensor())?;
        match act {
            Activation::Tanh => y.tanh(),
            Activation::Relu => y.relu(),
            Activation::Linear => Ok(y),
        }
    }

    /// Each selected head's outputs (`rows × size`).
    fn heads(&self, x: &Tensor, which: &[usize]) -> candle_core::Result<Vec<Tensor>> {
        let (trunk, heads) = self.spec.linears();
        let act = self.spec.activation;
        let mut h = x.clone();
        for l in &trunk {
            h = self.linear(&h, l.w, act)?;
        }
        which
            .iter()
            .map(|&i| {
                let layers = &heads[i];
                let head_act = self.spec.head_activation(i);
                let mut y = h.clone();
                for (j, l) in layers.iter().enumerate() {
                    let a = if j + 1 == layers.len() {
                        Activation::Linear
                    } else {
                        head_act
                    };
                    y = self.linear(&y, l.w, a)?;
                }
                Ok(y)
            })
            .collect()
    }

    fn to_host(outputs: &[Tensor], out: &mut Vec<f32>) -> candle_core::Result<()> {
        out.clear();
        for t in outputs {
            out.extend(t.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(())
    }

    fn input(&self, input: &[f32], rows: usize) -> candle_core::Result<Var> {
        Var::from_slice(
            &input[..rows * self.spec.input_dim],
            (rows, self.spec.input_dim),
            &self.device,
        )
    }
}

impl Network for CandleNet {
    fn spec(&self) -> &NetSpec {
        &self.spec
    }

    fn infer(
        &mut self,
        input: &[f32],
        rows: usize,
        heads: &[usize],
        out: &mut Vec<f32>,
    ) -> Result<(), LearnerError> {
        out.clear();
        if rows == 0 {
            return Ok(());
        }
        let x = self.input(input, rows)?;
        let outs = self.heads(x.as_tensor(), heads)?;
        let outs: Vec<Tensor> = outs.iter().map(Tensor::detach).collect();
        Ok(Self::to_host(&outs, out)?)
    }

    fn forward(
        &mut self,
        input: &[f32],
        rows: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), LearnerError> {
        let x = self.input(input, rows)?;
        let all: Vec<usize> = (0..self.spec.heads.len()).collect();
        let outputs = self.heads(x.as_tensor(), &all)?;
        Self::to_host(&outputs, out)?;
        self.last = Some(Pass {
            input: x,
            outputs,
            rows,
        });
        Ok(())
    }

    fn backward(
        &mut self,
        d_out: &[f32],
        params: bool,
        d_input: Option<&mut Vec<f32>>,
    ) -> Result<(), LearnerError> {
        let pass = self
            .last
            .as_ref()
            .ok_or_else(|| LearnerError::Mismatch("backward without a forward pass".into()))?;
        let rows = pass.rows;
        if d_out.len() != rows * self.spec.out_dim() {
            return Err(LearnerError::Mismatch(format!(
                "backward: {} output gradients for {rows} rows of {} outputs",
                d_out.len(),
                self.spec.out_dim()
            )));
        }
        // Σ_h Σ outputs_h · d_out_h, whose gradient is the loss's.
        let mut surrogate: Option<Tensor> = None;
        let mut off = 0;
        for (t, h) in pass.outputs.iter().zip(&self.spec.heads) {
            let n = rows * h.out.size;
            let d = Tensor::from_slice(&d_out[off..off + n], (rows, h.out.size), &self.device)?;
            let term = (t * d)?.sum_all()?;
            surrogate = Some(match surrogate {
                None => term,
                Some(s) => (s + term)?,
            });
            off += n;
        }
        let Some(surrogate) = surrogate else {
            return Ok(());
        };
        let store = surrogate.backward()?;
        if params {
            for (g, v) in self.grads.iter_mut().zip(&self.vars) {
                *g = match store.get(v.as_tensor()) {
                    Some(t) => t.flatten_all()?.to_vec1::<f32>()?,
                    None => vec![0.0; g.len()],
                };
            }
        }
        if let Some(di) = d_input {
            *di = match store.get(pass.input.as_tensor()) {
                Some(t) => t.flatten_all()?.to_vec1::<f32>()?,
                None => vec![0.0; rows * self.spec.input_dim],
            };
        }
        Ok(())
    }

    fn train_rows(
        &mut self,
        input: &[f32],
        rows: usize,
        loss: Arc<dyn RowLoss>,
    ) -> Result<Vec<f64>, LearnerError> {
        let mut out = Vec::new();
        self.forward(input, rows, &mut out)?;
        let mut d_out = vec![0.0; out.len()];
        let mut sums = vec![0.0; loss.num_sums()];
        loss.block(0, rows, &out, &mut d_out, &mut sums);
        self.backward(&d_out, true, None)?;
        Ok(sums)
    }

    fn grads(&self) -> Result<Vec<Vec<f32>>, LearnerError> {
        Ok(self.grads.clone())
    }

    fn update(&mut self, step: &mut OptimizerStep<'_>) -> Result<(), LearnerError> {
        let mut params = self.weights()?.data();
        step(&mut params, &self.grads);
        for (v, p) in self.vars.iter().zip(&params) {
            v.set(&Tensor::from_slice(p, v.as_tensor().shape(), &self.device)?)?;
        }
        Ok(())
    }

    fn weights(&self) -> Result<Weights, LearnerError> {
        let tensors = self
            .spec
            .parameter_shapes()
            .into_iter()
            .zip(&self.vars)
            .map(|((name, shape), v)| {
                Ok(NamedTensor {
                    name,
                    shape,
                    data: v.as_tensor().flatten_all()?.to_vec1::<f32>()?,
                })
            })
            .collect::<Result<_, LearnerError>>()?;
        Ok(Weights { tensors })
    }

    fn set_weights(&mut self, w: &Weights) -> Result<(), LearnerError> {
        self.spec.check(w).map_err(LearnerError::Mismatch)?;
        for (v, t) in self.vars.iter().zip(&w.tensors) {
            v.set(&Tensor::from_slice(
                &t.data,
                t.shape.as_slice(),
                &self.device,
            )?)?;
        }
        Ok(())
    }
}
