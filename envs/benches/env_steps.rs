//! Env stepping throughput on one core: a single env and vector envs of CartPole, and one of
//! each registered env, random actions.
//!
//!     cargo bench -p envs --bench env_steps
//!
//! Prints the median of 5 runs of about 0.5 s each, in env steps per second.

use std::hint::black_box;
use std::time::{Duration, Instant};

use envs::{Action, ActionBatch, CartPole, Env, NpRandom, Space, TimeLimit, VectorEnv};

const RUNS: usize = 5;
const RUN_TIME: Duration = Duration::from_millis(500);

/// Runs `chunk` (which steps `steps_per_chunk` env steps) for about `RUN_TIME`, `RUNS` times;
/// returns the median steps per second.
fn measure(steps_per_chunk: u64, mut chunk: impl FnMut()) -> f64 {
    let mut rates: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let mut steps = 0u64;
            while start.elapsed() < RUN_TIME {
                for _ in 0..64 {
                    chunk();
                }
                steps += 64 * steps_per_chunk;
            }
            steps as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[RUNS / 2]
}

fn single_env() -> f64 {
    let mut env = TimeLimit::new(CartPole::new(), 500);
    let mut obs = [0f32; 4];
    env.reset_into(Some(0), &mut obs);
    let mut rng = NpRandom::from_seed(1);
    measure(64, || {
        let bits = rng.next_u64();
        for k in 0..64 {
            let t = env.step_into(Action::Discrete(((bits >> k) & 1) as i64), &mut obs);
            if t.terminated || t.truncated {
                env.reset_into(None, &mut obs);
            }
        }
        black_box(&obs);
    })
}

fn vector_env<E: Env>(mut venv: VectorEnv<E>) -> f64 {
    let n = venv.num_envs();
    venv.reset(Some(0));
    let mut rng = NpRandom::from_seed(1);
    let mut actions = vec![0i64; n];
    measure(n as u64, || {
        for chunk in actions.chunks_mut(64) {
            let bits = rng.next_u64();
            for (k, a) in chunk.iter_mut().enumerate() {
                *a = ((bits >> k) & 1) as i64;
            }
        }
        venv.step(ActionBatch::Discrete(&actions));
        black_box(venv.obs());
    })
}

/// One registered env (with its time limit) stepped through `Box<dyn Env>`, random actions.
fn registered_env(id: &str) -> f64 {
    let mut env = envs::make(id).expect("a registered id");
    let mut obs = vec![0f32; env.observation_space().flat_dim()];
    env.reset_into(Some(0), &mut obs);
    let mut rng = NpRandom::from_seed(1);
    let space = env.action_space().clone();
    let mut value = [0f32; 1];
    measure(64, || {
        for _ in 0..64 {
            let action = match &space {
                Space::Discrete { n, .. } => Action::Discrete(rng.below(*n) as i64),
                Space::Box { low, high, .. } => {
                    value[0] = rng.uniform(f64::from(low[0]), f64::from(high[0])) as f32;
                    Action::Continuous(&value)
                }
            };
            let t = env.step_into(action, &mut obs);
            if t.terminated || t.truncated {
                env.reset_into(None, &mut obs);
            }
        }
        black_box(&obs);
    })
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is accepted and ignored.
    println!("CartPole-v1 env steps per second, one core, random actions (median of {RUNS})");
    println!("{:<44} {:>14}", "case", "steps/s");
    println!("{:<44} {:>14.0}", "single env (step_into)", single_env());
    for n in [1usize, 16, 64, 256] {
        let venv = VectorEnv::new(
            (0..n)
                .map(|_| TimeLimit::new(CartPole::new(), 500))
                .collect(),
        );
        println!(
            "{:<44} {:>14.0}",
            format!("VectorEnv<CartPole>, {n} envs"),
            vector_env(venv)
        );
    }
    let venv = envs::make_vec("CartPole-v1", 64).expect("CartPole-v1 is registered");
    println!(
        "{:<44} {:>14.0}",
        "make_vec (Box<dyn Env>), 64 envs",
        vector_env(venv)
    );
    println!();
    println!("Single registered env (make, Box<dyn Env>), random actions");
    for id in envs::ids() {
        println!("{:<44} {:>14.0}", id, registered_env(&id));
    }
}
