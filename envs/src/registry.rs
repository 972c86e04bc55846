//! The env registry: Gymnasium's `make` and `register`, by id.

use std::sync::{Arc, RwLock};

use crate::{CartPole, Env, EnvError, TimeLimit, VectorEnv};

/// Builds one env.
pub type EnvMaker = Arc<dyn Fn() -> Box<dyn Env> + Send + Sync>;

/// One registered environment.
#[derive(Clone)]
struct Spec {
    id: String,
    make: EnvMaker,
    /// Gymnasium's `reward_threshold`: the return at which the task counts as solved.
    reward_threshold: Option<f64>,
    max_episode_steps: Option<u32>,
}

fn registry() -> &'static RwLock<Vec<Spec>> {
    static REGISTRY: std::sync::OnceLock<RwLock<Vec<Spec>>> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(|| {
        RwLock::new(vec![Spec {
            id: "CartPole-v1".to_string(),
            make: Arc::new(|| Box::new(TimeLimit::new(CartPole::new(), 500))),
            reward_threshold: Some(475.0),
            max_episode_steps: Some(500),
        }])
    })
}

fn read() -> std::sync::RwLockReadGuard<'static, Vec<Spec>> {
    // A panic while holding the lock cannot leave the list half-written (pushes are atomic).
    registry().read().unwrap_or_else(|e| e.into_inner())
}

fn spec(id: &str) -> Result<Spec, EnvError> {
    let specs = read();
    specs
        .iter()
        .find(|s| s.id == id)
        .cloned()
        .ok_or_else(|| EnvError::UnknownEnv {
            id: id.to_string(),
            known: specs
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Registers an env under `id` (Gymnasium's `register`); an id can be registered once.
pub fn register(
    id: &str,
    make: impl Fn() -> Box<dyn Env> + Send + Sync + 'static,
    max_episode_steps: Option<u32>,
) -> Result<(), EnvError> {
    let mut specs = registry().write().unwrap_or_else(|e| e.into_inner());
    if specs.iter().any(|s| s.id == id) {
        return Err(EnvError::InvalidArgument(format!(
            "env id '{id}' is already registered"
        )));
    }
    specs.push(Spec {
        id: id.to_string(),
        make: Arc::new(make),
        reward_threshold: None,
        max_episode_steps,
    });
    Ok(())
}

/// The ids `make` knows.
pub fn ids() -> Vec<String> {
    read().iter().map(|s| s.id.clone()).collect()
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
