//! Env runners on other nodes of a cluster (`rllib train --address`): the `EnvRunner` as a
//! registered actor type of this binary, so that every node started with `rllib start` can
//! host one. Weights go out with a sample call only when they changed (or the runner was
//! rebuilt), one batch comes back.

use algorithms::{AlgorithmConfig, ModuleSpec, RunningStat, Weights};
use ray::cluster::{RemoteActor, method, unknown_method};
use serde::{Deserialize, Serialize};

use crate::env_runner::{EnvRunner, RunnerState, SampleOutput};

/// The registered name of the env-runner actor type.
pub const ENV_RUNNER: &str = "rllib.EnvRunner";

/// What a remote env runner is built from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunnerArgs {
    /// The run's config.
    pub cfg: AlgorithmConfig,
    /// The weights to start acting with.
    pub weights: Weights,
    /// The run's seed.
    pub seed: u64,
    /// The runner's index (1-based, as RLlib numbers remote runners).
    pub worker_index: usize,
}

/// One sample call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SampleArgs {
    /// New weights (with the filter), when they changed since the runner last got some.
    pub weights: Option<Weights>,
    /// The driver's merged filter.
    pub filter: Option<RunningStat>,
    /// Steps per env.
    pub steps: usize,
}

/// A runner's state to restore, with the weights and filter to act with.
pub type SetStateArgs = (RunnerState, Weights, Option<RunningStat>);

struct Hosted(Box<EnvRunner>);

impl RemoteActor for Hosted {
    fn call(&mut self, name: &str, args: &[u8]) -> Result<Vec<u8>, String> {
        let r = &mut self.0;
        match name {
            "num_envs" => method(args, |()| r.num_envs()),
            "sample" => method(args, |a: SampleArgs| -> Result<SampleOutput, String> {
                match &a.weights {
                    Some(w) => r.sync(w, a.filter.as_ref())?,
                    None => r.sync_filter(a.filter.as_ref()),
                }
                Ok(r.sample(a.steps))
            }),
            "state" => method(args, |()| r.state()),
            "finish_output" => method(args, |()| r.finish_output()),
            "set_state" => method(args, |(s, w, f): SetStateArgs| {
                r.set_state(&s).and_then(|()| r.sync(&w, f.as_ref()))
            }),
            _ => Err(unknown_method(ENV_RUNNER, name)),
        }
    }
}

/// Builds a runner on this node: the module spec comes from the env's spaces, as the
/// driver's does.
fn build(a: RunnerArgs) -> Result<Hosted, String> {
    let probe = envs::make(&a.cfg.env).map_err(|e| e.to_string())?;
    let spec = ModuleSpec::for_env(&a.cfg, probe.observation_space(), probe.action_space())?;
    EnvRunner::new(&a.cfg, &spec, &a.weights, a.seed, a.worker_index).map(|r| Hosted(Box::new(r)))
}

/// Registers this binary's actor types (call at start-up, before a node or driver starts).
pub fn register() {
    ray::register_actor(ENV_RUNNER, build);
}
