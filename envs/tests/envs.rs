//! Behaviour of the env API: registry, spaces, seeding, time limits and the vector env.

use envs::{Action, ActionBatch, CartPole, Env, EnvError, NpRandom, Space, TimeLimit, VectorEnv};

fn balance(obs: &[f32]) -> i64 {
    let (x, x_dot, theta, theta_dot) = (obs[0], obs[1], obs[2], obs[3]);
    i64::from(theta + 0.5 * theta_dot + 0.05 * x + 0.1 * x_dot > 0.0)
}

#[test]
fn make_builds_registered_envs_and_names_the_known_ones_otherwise() {
    let env = envs::make("CartPole-v1").unwrap();
    assert_eq!(*env.action_space(), Space::discrete(2));
    match envs::make("CartPole-v0") {
        Err(e @ EnvError::UnknownEnv { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("CartPole-v0") && msg.contains("CartPole-v1"),
                "{msg}"
            );
        }
        Err(e) => panic!("expected UnknownEnv, got {e}"),
        Ok(_) => panic!("expected UnknownEnv, got an env"),
    }
    assert_eq!(envs::reward_threshold("CartPole-v1"), Ok(Some(475.0)));
    assert_eq!(envs::max_episode_steps("CartPole-v1"), Ok(Some(500)));
    assert!(envs::make_vec("CartPole-v1", 0).is_err());
    assert_eq!(envs::make_vec("CartPole-v1", 3).unwrap().num_envs(), 3);
}

#[test]
fn cartpole_spaces_are_gymnasiums() {
    let env = CartPole::new();
    let high = [4.8f32, f32::INFINITY, 0.418_879_03, f32::INFINITY];
    match env.observation_space() {
        Space::Box {
            low,
            high: h,
            shape,
        } => {
            assert_eq!(shape, &vec![4]);
            assert_eq!(h, &high.to_vec());
            assert_eq!(low, &high.iter().map(|v| -v).collect::<Vec<_>>());
        }
        other => panic!("expected a Box, got {other}"),
    }
    assert_eq!(env.observation_space().flat_dim(), 4);
    assert!(env.action_space().contains_discrete(1));
    assert!(!env.action_space().contains_discrete(2));
    assert!(!env.action_space().contains_discrete(-1));
}

fn trajectory(seed: Option<u64>, steps: usize) -> Vec<Vec<f32>> {
    let mut env = envs::make("CartPole-v1").unwrap();
    let mut rng = NpRandom::from_seed(99);
    let (first, _) = env.reset(seed);
    let mut out = vec![first];
    for _ in 0..steps {
        let a = env.action_space().sample_discrete(&mut rng).unwrap();
        let s = env.step(Action::Discrete(a));
        if s.terminated || s.truncated {
            out.push(env.reset(None).0);
        } else {
            out.push(s.obs);
        }
    }
    out
}

#[test]
fn seeding_makes_runs_reproducible() {
    assert_eq!(trajectory(Some(5), 300), trajectory(Some(5), 300));
    assert_ne!(trajectory(Some(5), 300), trajectory(Some(6), 300));
    // Unseeded resets draw fresh start states.
    assert_ne!(trajectory(None, 0), trajectory(None, 0));
    // Reseeding restarts the stream; resetting without a seed continues it.
    let mut env = CartPole::new();
    let a = env.reset(Some(1)).0;
    let b = env.reset(None).0;
    assert_ne!(a, b);
    assert_eq!(env.reset(Some(1)).0, a);
}

#[test]
fn truncation_at_500_sets_both_flags_on_that_step() {
    let mut env = TimeLimit::new(CartPole::new(), 500);
    let (mut obs, _) = env.reset(Some(0));
    for t in 1..=500 {
        if t == 500 {
            // Put the cart at the edge so that the 500th step also terminates.
            env.inner_mut().set_state([2.39, 1.0, 0.0, 0.0]);
        }
        let s = env.step(Action::Discrete(balance(&obs)));
        obs = s.obs.clone();
        if t < 500 {
            assert!(!s.terminated && !s.truncated, "ended early at step {t}");
        } else {
            assert!(s.terminated && s.truncated, "step 500: {s:?}");
            assert_eq!(s.reward, 1.0);
        }
    }
    assert_eq!(env.elapsed_steps(), 500);
    env.reset(None);
    assert_eq!(env.elapsed_steps(), 0);
}

#[test]
fn stepping_past_termination_pays_nothing() {
    let mut env = CartPole::new();
    env.reset(Some(0));
    env.set_state([0.0, 0.0, 0.25, 0.0]);
    let first = env.step(Action::Discrete(1));
    assert!(first.terminated);
    assert_eq!(first.reward, 1.0);
    let after = env.step(Action::Discrete(1));
    assert!(after.terminated);
    assert_eq!(after.reward, 0.0);
}

#[test]
#[should_panic(expected = "call reset before step")]
fn step_before_reset_panics_as_gymnasium_raises() {
    CartPole::new().step(Action::Discrete(0));
}

#[test]
#[should_panic(expected = "not in Discrete(2)")]
fn an_invalid_action_panics_as_gymnasium_asserts() {
    let mut env = CartPole::new();
    env.reset(Some(0));
    env.step(Action::Discrete(2));
}

#[test]
fn the_vector_env_keeps_the_final_observation_of_a_truncated_episode() {
    let n = 3;
    let mut venv = VectorEnv::new(
        (0..n)
            .map(|_| TimeLimit::new(CartPole::new(), 500))
            .collect(),
    );
    let mut single: Vec<_> = (0..n)
        .map(|_| TimeLimit::new(CartPole::new(), 500))
        .collect();
    venv.reset(Some(11));
    for (i, e) in single.iter_mut().enumerate() {
        e.reset(Some(11 + i as u64));
    }
    let mut actions = vec![0i64; n];
    for t in 1..=500 {
        for (a, row) in actions.iter_mut().zip(venv.obs().chunks_exact(4)) {
            *a = balance(row);
        }
        let expected: Vec<_> = single
            .iter_mut()
            .zip(&actions)
            .map(|(e, &a)| e.step(Action::Discrete(a)))
            .collect();
        venv.step(ActionBatch::Discrete(&actions));
        for (i, s) in expected.iter().enumerate() {
            assert_eq!(venv.terminated()[i], s.terminated);
            assert_eq!(venv.truncated()[i], s.truncated);
            if t == 500 {
                assert!(s.truncated, "env {i} should reach the time limit");
                // The final observation is the last one of the episode...
                assert_eq!(&venv.final_obs()[i * 4..][..4], &s.obs[..]);
                // ...and the returned one starts the next episode.
                assert!(venv.obs()[i * 4..][..4].iter().all(|v| v.abs() <= 0.05));
            } else {
                assert_eq!(&venv.obs()[i * 4..][..4], &s.obs[..], "env {i} step {t}");
            }
        }
    }
}

#[test]
fn cartpole_renders_gymnasiums_picture() {
    let mut env = CartPole::new();
    assert!(env.render().is_none(), "nothing to draw before reset");
    env.reset(Some(0));
    env.set_state([0.0, 0.0, 0.0, 0.0]);
    let f = env.render().unwrap();
    assert_eq!((f.width, f.height), (600, 400));
    // The cart is black and centred at x = 300, 100 px above the bottom.
    assert_eq!(f.pixels[300 * 600 + 280], [0, 0, 0]);
    // The upright pole rises above the cart.
    assert_eq!(f.pixels[200 * 600 + 300], [202, 152, 101]);
    env.set_state([1.2, 0.0, 0.0, 0.0]);
    let moved = env.render().unwrap();
    assert_eq!(moved.pixels[300 * 600 + 280], [255, 255, 255]);
    assert_eq!(moved.pixels[300 * 600 + 450], [0, 0, 0]);
}

#[test]
fn a_saved_state_resumes_the_same_trajectory() {
    let mut a = TimeLimit::new(CartPole::new(), 500);
    a.reset(Some(3));
    for _ in 0..10 {
        a.step(Action::Discrete(1));
    }
    let words = a.save_state().unwrap();
    let mut b = TimeLimit::new(CartPole::new(), 500);
    b.load_state(&words).unwrap();
    assert_eq!(b.elapsed_steps(), 10);
    for t in 0..200 {
        let (sa, sb) = (
            a.step(Action::Discrete(t % 2)),
            b.step(Action::Discrete(t % 2)),
        );
        assert_eq!(sa, sb);
        if sa.terminated || sa.truncated {
            // The generator resumed too: the next episode starts alike.
            assert_eq!(a.reset(None), b.reset(None));
        }
    }
    assert!(b.load_state(&words[..3]).is_err());
    // Hand-edited states are refused, and leave the env as it was.
    let mut nan = words.clone();
    nan[2] = f64::NAN.to_bits();
    assert!(b.load_state(&nan).unwrap_err().contains("non-finite"));
    let mut past_limit = words.clone();
    past_limit[0] = 501;
    assert!(
        b.load_state(&past_limit)
            .unwrap_err()
            .contains("limit of 500")
    );
    let mut flags = words;
    flags[1] = 8;
    assert!(b.load_state(&flags).unwrap_err().contains("flags"));
}
