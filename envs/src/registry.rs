//! The env registry: Gymnasium's `make`, by id.

use crate::{CartPole, Env, EnvError, TimeLimit, VectorEnv};

/// One registered environment.
struct Spec {
    id: &'static str,
    make: fn() -> Box<dyn Env>,
    /// Gymnasium's `reward_threshold`: the return at which the task counts as solved.
    reward_threshold: Option<f64>,
    max_episode_steps: Option<u32>,
}

const REGISTRY: &[Spec] = &[Spec {
    id: "CartPole-v1",
    make: || Box::new(TimeLimit::new(CartPole::new(), 500)),
    reward_threshold: Some(475.0),
    max_episode_steps: Some(500),
}];

fn spec(id: &str) -> Result<&'static Spec, EnvError> {
    REGISTRY
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| EnvError::UnknownEnv {
            id: id.to_string(),
            known: ids().collect::<Vec<_>>().join(", "),
        })
}

/// The ids `make` knows.
pub fn ids() -> impl Iterator<Item = &'static str> {
    REGISTRY.iter().map(|s| s.id)
}

/// Builds a registered env with its standard wrappers (Gymnasium's `gymnasium.make`).
pub fn make(id: &str) -> Result<Box<dyn Env>, EnvError> {
    Ok((spec(id)?.make)())
}

/// Builds a vector env of `num_envs` copies of a registered env.
pub fn make_vec(id: &str, num_envs: usize) -> Result<VectorEnv<Box<dyn Env>>, EnvError> {
    if num_envs == 0 {
        return Err(EnvError::InvalidArgument(
            "num_envs must be at least 1".to_string(),
        ));
    }
    let spec = spec(id)?;
    Ok(VectorEnv::new(
        (0..num_envs).map(|_| (spec.make)()).collect(),
    ))
}

/// The return at which a registered env counts as solved, if it has one.
pub fn reward_threshold(id: &str) -> Result<Option<f64>, EnvError> {
    Ok(spec(id)?.reward_threshold)
}

/// The step limit of a registered env, if it has one.
pub fn max_episode_steps(id: &str) -> Result<Option<u32>, EnvError> {
    Ok(spec(id)?.max_episode_steps)
}
