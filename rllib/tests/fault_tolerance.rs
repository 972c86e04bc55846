//! Env-runner failures: a runner whose env panics is replaced, the iteration completes with
//! the healthy runners' samples, and the restart count is reported.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use algorithms::{AlgorithmConfig, ModelConfig};
use envs::{Action, CartPole, Env, Info, Space, TimeLimit, Transition};
use rllib::algorithm::{Algorithm, TrainError};

/// CartPole that panics on one chosen step, counted over every instance of its id.
struct FailAt {
    inner: TimeLimit<CartPole>,
    steps: Arc<AtomicU64>,
    fail_at: u64,
}

impl Env for FailAt {
    fn observation_space(&self) -> &Space {
        self.inner.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.inner.action_space()
    }
    fn reset_into(&mut self, seed: Option<u64>, obs: &mut [f32]) -> Info {
        self.inner.reset_into(seed, obs)
    }
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Transition {
        if self.steps.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
            panic!("simulated env crash at step {}", self.fail_at);
        }
        self.inner.step_into(action, obs)
    }
}

fn register_failing(id: &str, fail_at: u64) {
    let steps = Arc::new(AtomicU64::new(0));
    envs::register(
        id,
        move || {
            Box::new(FailAt {
                inner: TimeLimit::new(CartPole::new(), 500),
                steps: Arc::clone(&steps),
                fail_at,
            })
        },
        Some(500),
    )
    .unwrap();
}

fn config(env: &str) -> AlgorithmConfig {
    AlgorithmConfig {
        env: env.to_string(),
        num_env_runners: 2,
        train_batch_size: 400,
        model: ModelConfig {
            fcnet_hiddens: vec![8],
            ..Default::default()
        },
        ppo: algorithms::config::PpoConfig {
            minibatch_size: 100,
            num_epochs: 1,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn a_failed_runner_is_replaced_and_the_iteration_completes() {
    // Each runner steps 200 times per iteration; step 500 of all runners together falls in
    // the second iteration.
    register_failing("FailingCartPole-v0", 500);
    let mut algo = Algorithm::new(config("FailingCartPole-v0"), 1).unwrap();
    let r1 = algo.train().unwrap();
    assert_eq!(r1.get("env_runners/num_env_steps_sampled"), Some(400.0));
    assert_eq!(r1.get("env_runners/num_env_runner_restarts"), Some(0.0));
    let r2 = algo.train().unwrap();
    assert_eq!(
        r2.get("env_runners/num_env_steps_sampled"),
        Some(200.0),
        "one runner's samples"
    );
    assert_eq!(r2.get("env_runners/num_env_runner_restarts"), Some(1.0));
    let warnings = algo.take_warnings();
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].contains("simulated env crash at step 500"),
        "{warnings:?}"
    );
    let r3 = algo.train().unwrap();
    assert_eq!(
        r3.get("env_runners/num_env_steps_sampled"),
        Some(400.0),
        "back to full strength"
    );
    assert_eq!(r3.get("num_env_steps_sampled_lifetime"), Some(1000.0));
}

#[test]
fn without_restarts_a_failure_stops_the_run_naming_the_iteration() {
    register_failing("FailingCartPole-v1", 100);
    let cfg = AlgorithmConfig {
        restart_failed_env_runners: false,
        ..config("FailingCartPole-v1")
    };
    let mut algo = Algorithm::new(cfg, 1).unwrap();
    match algo.train() {
        Err(e @ TrainError::Runner { iteration: 1, .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("simulated env crash") && msg.contains("restart_failed_env_runners"),
                "{msg}"
            );
        }
        other => panic!("expected a runner error, got {other:?}"),
    }
}

#[test]
fn restarts_are_bounded() {
    register_failing("FailingCartPole-v2", 100);
    let cfg = AlgorithmConfig {
        max_num_env_runner_restarts: 0,
        ..config("FailingCartPole-v2")
    };
    let mut algo = Algorithm::new(cfg, 1).unwrap();
    let e = algo.train().unwrap_err().to_string();
    assert!(e.contains("after 0 restarts"), "{e}");
}

#[test]
fn a_dead_runner_actor_is_replaced() {
    let mut algo = Algorithm::new(config("CartPole-v1"), 2).unwrap();
    algo.train().unwrap();
    algo.kill_env_runner(2);
    let r = algo.train().unwrap();
    assert_eq!(r.get("env_runners/num_env_steps_sampled"), Some(200.0));
    assert_eq!(r.get("env_runners/num_env_runner_restarts"), Some(1.0));
    assert!(algo.take_warnings()[0].contains("EnvRunner-2"));
    let r = algo.train().unwrap();
    assert_eq!(r.get("env_runners/num_env_steps_sampled"), Some(400.0));
}
