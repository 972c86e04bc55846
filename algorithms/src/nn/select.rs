//! Picks a network backend for a config: the fused CPU path by default on the CPU, candle for
//! CUDA or when asked (`learner_backend`). The trait's module knows neither implementation.

use super::candle::{CandleNet, candle_device};
use super::fused::{FusedNet, Threads};
use super::{NetSpec, Network, Weights};
use crate::config::{Device, LearnerBackendKind};
use crate::error::LearnerError;

/// A network of `spec` with `weights` on the backend that `kind` and `device` ask for.
/// Fused networks share `threads`.
pub fn network(
    kind: LearnerBackendKind,
    device: Device,
    spec: NetSpec,
    weights: &Weights,
    threads: &Threads,
) -> Result<Box<dyn Network>, LearnerError> {
    match (kind, device) {
        (LearnerBackendKind::Candle, _) | (LearnerBackendKind::Auto, Device::Cuda) => Ok(Box::new(
            CandleNet::new(spec, weights, candle_device(device)?)?,
        )),
        (LearnerBackendKind::Fused, Device::Cuda) => Err(LearnerError::Mismatch(
            "learner_backend: fused runs on the CPU only; use candle (or auto) with CUDA".into(),
        )),
        (LearnerBackendKind::Fused | LearnerBackendKind::Auto, Device::Cpu) => {
            Ok(Box::new(FusedNet::new(spec, weights, threads)?))
        }
    }
}
