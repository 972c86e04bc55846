//! CartPole-v1 against trajectories recorded from Gymnasium 1.4 (see
//! `data/gen_cartpole_reference.py`): identical observations, states, rewards and flags.

use envs::{Action, ActionBatch, CartPole, Env, TimeLimit, VectorEnv};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    gymnasium: String,
    episodes: Vec<Episode>,
    vector: Vector,
}

#[derive(Deserialize)]
struct Episode {
    seed: u64,
    reset_obs: Vec<f64>,
    start_state: Option<[f64; 4]>,
    ends_by: String,
    steps: Vec<StepRecord>,
}

#[derive(Deserialize)]
struct StepRecord {
    action: i64,
    obs: Vec<f64>,
    state: [f64; 4],
    reward: f64,
    terminated: bool,
    truncated: bool,
}

#[derive(Deserialize)]
struct Vector {
    num_envs: usize,
    seed: u64,
    reset_obs: Vec<Vec<f64>>,
    steps: Vec<VectorStep>,
}

#[derive(Deserialize)]
struct VectorStep {
    actions: Vec<i64>,
    obs: Vec<Vec<f64>>,
    rewards: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    final_obs: Vec<Option<Vec<f64>>>,
}

fn reference() -> Reference {
    let text = include_str!("data/cartpole_v1_reference.json");
    serde_json::from_str(text).expect("the reference file parses")
}

/// Gymnasium wrote float32 observations widened to float64; narrowing is exact.
fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn cartpole_v1() -> TimeLimit<CartPole> {
    TimeLimit::new(CartPole::new(), 500)
}

#[test]
fn the_reference_covers_every_way_an_episode_ends() {
    let r = reference();
    assert!(r.gymnasium.starts_with("1."), "{}", r.gymnasium);
    for how in ["pole_angle", "cart_position", "truncation"] {
        assert!(
            r.episodes.iter().any(|e| e.ends_by == how),
            "no episode ends by {how}"
        );
    }
}

#[test]
fn episodes_match_gymnasium_bit_for_bit() {
    let r = reference();
    for (n, ep) in r.episodes.iter().enumerate() {
        let mut env = cartpole_v1();
        let (obs, _) = env.reset(Some(ep.seed));
        assert_eq!(
            obs,
            f32s(&ep.reset_obs),
            "episode {n}: reset(seed={})",
            ep.seed
        );
        if let Some(s) = ep.start_state {
            env.inner_mut().set_state(s);
        }
        for (t, s) in ep.steps.iter().enumerate() {
            let step = env.step(Action::Discrete(s.action));
            let ctx = format!("episode {n} (ends by {}), step {t}", ep.ends_by);
            assert_eq!(env.inner().state(), Some(s.state), "{ctx}: state");
            assert_eq!(step.obs, f32s(&s.obs), "{ctx}: obs");
            assert_eq!(step.reward, s.reward, "{ctx}: reward");
            assert_eq!(step.terminated, s.terminated, "{ctx}: terminated");
            assert_eq!(step.truncated, s.truncated, "{ctx}: truncated");
        }
    }
}

#[test]
fn the_vector_env_matches_gymnasium_same_step_autoreset() {
    let r = reference().vector;
    let mut venv = VectorEnv::new((0..r.num_envs).map(|_| cartpole_v1()).collect());
    let obs = venv.reset(Some(r.seed)).to_vec();
    assert_eq!(obs, f32s(&r.reset_obs.concat()));
    let d = venv.obs_dim();
    let mut resets = 0;
    for (t, s) in r.steps.iter().enumerate() {
        venv.step(ActionBatch::Discrete(&s.actions));
        assert_eq!(venv.obs(), &f32s(&s.obs.concat())[..], "step {t}: obs");
        let rewards: Vec<f32> = s.rewards.iter().map(|&x| x as f32).collect();
        assert_eq!(venv.rewards(), &rewards[..], "step {t}: rewards");
        assert_eq!(venv.terminated(), &s.terminated[..], "step {t}: terminated");
        assert_eq!(venv.truncated(), &s.truncated[..], "step {t}: truncated");
        for (i, f) in s.final_obs.iter().enumerate() {
            if let Some(f) = f {
                resets += 1;
                assert_eq!(
                    &venv.final_obs()[i * d..][..d],
                    &f32s(f)[..],
                    "step {t}: final_obs[{i}]"
                );
            }
        }
    }
    assert!(
        resets > 10,
        "the reference should exercise autoreset, saw {resets}"
    );
}
