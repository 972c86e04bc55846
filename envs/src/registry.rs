//! The env registry: Gymnasium's `make` and `register`, by id.

use std::sync::{Arc, RwLock};

use crate::{
    Acrobot, CartPole, ContinuousMountainCar, Env, EnvError, MountainCar, Pendulum, TimeLimit,
    VectorEnv,
};

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

/// A built-in env: its id, constructor, Gymnasium's `reward_threshold` and `max_episode_steps`.
fn builtin<E: Env + 'static>(
    id: &str,
    new: fn() -> E,
    reward_threshold: Option<f64>,
    max_episode_steps: u32,
) -> Spec {
    Spec {
        id: id.to_string(),
        make: Arc::new(move || Box::new(TimeLimit::new(new(), max_episode_steps))),
        reward_threshold,
        max_episode_steps: Some(max_episode_steps),
    }
}

fn registry() -> &'static RwLock<Vec<Spec>> {
    static REGISTRY: std::sync::OnceLock<RwLock<Vec<Spec>>> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(|| {
        // As registered in gymnasium/envs/__init__.py (Pendulum-v1 has no threshold there).
        RwLock::new(vec![
            builtin("CartPole-v1", CartPole::new, Some(475.0), 500),
            builtin("Acrobot-v1", Acrobot::new, Some(-100.0), 500),
            builtin("MountainCar-v0", MountainCar::new, Some(-110.0), 200),
            builtin(
                "MountainCarContinuous-v0",
                ContinuousMountainCar::new,
                Some(90.0),
                999,
            ),
            builtin("Pendulum-v1", Pendulum::new, None, 200),
        ])
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
