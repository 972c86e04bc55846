//! Behaviour of the env API: registry, spaces, seeding, time limits and the vector env.

use envs::{
    Acrobot, Action, ActionBatch, CartPole, ContinuousMountainCar, Env, EnvError, MountainCar,
    NpRandom, Pendulum, Space, TimeLimit, VectorEnv,
};

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

#[test]
fn the_classic_control_envs_are_registered_as_in_gymnasium() {
    let expected = [
        ("Acrobot-v1", Some(-100.0), 500),
        ("MountainCar-v0", Some(-110.0), 200),
        ("MountainCarContinuous-v0", Some(90.0), 999),
        ("Pendulum-v1", None, 200),
    ];
    for (id, threshold, limit) in expected {
        assert_eq!(envs::reward_threshold(id), Ok(threshold), "{id}");
        assert_eq!(envs::max_episode_steps(id), Ok(Some(limit)), "{id}");
        assert!(envs::ids().iter().any(|i| i == id), "{id}");
        assert_eq!(envs::make_vec(id, 2).unwrap().num_envs(), 2);
    }
}

/// A `Box` of float32 bounds `[-high, high]`.
fn symmetric_box(high: &[f32]) -> Space {
    Space::box1d(high.iter().map(|h| -h).collect(), high.to_vec())
}

#[test]
fn classic_control_spaces_are_gymnasiums() {
    // The float32 bounds Gymnasium 1.4 prints for each env's spaces.
    let car_obs = Space::box1d(vec![-1.2, -0.07], vec![0.6, 0.07]);
    let cases = [
        (
            "Acrobot-v1",
            symmetric_box(&[1.0, 1.0, 1.0, 1.0, 12.566_371, 28.274_334]),
            Space::discrete(3),
        ),
        ("MountainCar-v0", car_obs.clone(), Space::discrete(3)),
        (
            "MountainCarContinuous-v0",
            car_obs,
            Space::box1d(vec![-1.0], vec![1.0]),
        ),
        (
            "Pendulum-v1",
            symmetric_box(&[1.0, 1.0, 8.0]),
            Space::box1d(vec![-2.0], vec![2.0]),
        ),
    ];
    for (id, obs, act) in cases {
        let env = envs::make(id).unwrap();
        assert_eq!(*env.observation_space(), obs, "{id}");
        assert_eq!(*env.action_space(), act, "{id}");
    }
    assert_eq!(
        Pendulum::new().action_space().to_string(),
        "Box([-2.0], [2.0], [1], float32)"
    );
    assert_eq!(
        Acrobot::new().observation_space().to_string(),
        "Box([-1.0, -1.0, -1.0, -1.0, -12.566371, -28.274334], \
         [1.0, 1.0, 1.0, 1.0, 12.566371, 28.274334], [6], float32)"
    );
}

#[test]
fn every_env_renders_a_frame_of_gymnasiums_size_with_few_colours() {
    for (id, size) in [
        ("CartPole-v1", (600, 400)),
        ("Acrobot-v1", (500, 500)),
        ("MountainCar-v0", (600, 400)),
        ("MountainCarContinuous-v0", (600, 400)),
        ("Pendulum-v1", (500, 500)),
    ] {
        let mut env = envs::make(id).unwrap();
        assert!(env.render().is_none(), "{id}: nothing to draw before reset");
        let (_, _) = env.reset(Some(0));
        let mut frames = vec![env.render().unwrap()];
        let action = match env.action_space() {
            Space::Discrete { .. } => Action::Discrete(0),
            Space::Box { .. } => Action::Continuous(&[1.5]),
        };
        for _ in 0..30 {
            env.step(action);
        }
        frames.push(env.render().unwrap());
        for f in frames {
            assert_eq!((f.width, f.height), size, "{id}");
            assert_eq!(f.pixels.len(), size.0 * size.1, "{id}");
            // Hard-edged shapes: a handful of colours, far below a GIF palette's 256.
            let colours = f.color_count();
            assert!((3..=8).contains(&colours), "{id}: {colours} colours");
        }
    }
}

#[test]
fn classic_control_pictures_follow_the_state() {
    let teal = [0, 204, 204];
    let mut acrobot = Acrobot::new();
    acrobot.reset(Some(0));
    // Hanging straight down, the links run below the centre; upright, above it.
    acrobot.set_state([0.0, 0.0, 0.0, 0.0]);
    let f = acrobot.render().unwrap();
    assert_eq!(f.pixels[350 * 500 + 250], teal);
    assert_eq!(f.pixels[150 * 500 + 250], [255, 255, 255]);
    acrobot.set_state([std::f64::consts::PI, 0.0, 0.0, 0.0]);
    let f = acrobot.render().unwrap();
    assert_eq!(f.pixels[150 * 500 + 250], teal);

    let red = [204, 77, 77];
    let mut pendulum = Pendulum::new();
    pendulum.reset(Some(0));
    pendulum.set_state([0.0, 0.0]);
    let f = pendulum.render().unwrap();
    assert_eq!(f.pixels[180 * 500 + 250], red, "upright at theta = 0");
    assert_eq!(f.pixels[320 * 500 + 250], [255, 255, 255]);

    let mut car = MountainCar::new();
    car.reset(Some(0));
    car.set_state([-0.5, 0.0]);
    let low = car.render().unwrap();
    car.set_state([0.3, 0.0]);
    let high = car.render().unwrap();
    // The car's black body (20 px tall, unlike the 2 px hill line) sits at
    // x = (position + 1.2) * 600 / 1.8: 233 for -0.5, 500 for 0.3.
    let column_has_car = |f: &envs::RgbFrame, x: usize| {
        (0..380).any(|y| (0..15).all(|dy| f.pixels[(y + dy) * 600 + x] == [0, 0, 0]))
    };
    assert!(column_has_car(&low, 233) && !column_has_car(&low, 500));
    assert!(column_has_car(&high, 500) && !column_has_car(&high, 233));
}

#[test]
fn mountain_cars_reach_the_goal_with_a_bang_bang_policy() {
    let mut car = envs::make("MountainCar-v0").unwrap();
    let (mut obs, _) = car.reset(Some(3));
    let mut steps = 0;
    loop {
        let s = car.step(Action::Discrete(if obs[1] >= 0.0 { 2 } else { 0 }));
        steps += 1;
        assert_eq!(s.reward, -1.0);
        obs = s.obs;
        if s.terminated || s.truncated {
            assert!(s.terminated && obs[0] >= 0.5, "{steps} steps: {obs:?}");
            break;
        }
    }
    let mut car = envs::make("MountainCarContinuous-v0").unwrap();
    let (mut obs, _) = car.reset(Some(3));
    loop {
        let a = if obs[1] >= 0.0 { 1.0 } else { -1.0 };
        let s = car.step(Action::Continuous(&[a]));
        obs = s.obs;
        if s.terminated {
            // 100 for the goal less 0.1 a² for the push.
            assert_eq!(s.reward, 100.0 - 0.1);
            break;
        }
        assert_eq!(s.reward, -0.1);
        assert!(!s.truncated, "the bang-bang policy should reach the goal");
    }
}

#[test]
fn pendulum_never_terminates_and_truncates_at_200() {
    let mut env = envs::make("Pendulum-v1").unwrap();
    env.reset(Some(0));
    for t in 1..=200 {
        let s = env.step(Action::Continuous(&[-7.0]));
        assert!(!s.terminated);
        assert_eq!(s.truncated, t == 200);
        assert!(s.reward <= 0.0 && s.reward >= -16.3, "{}", s.reward);
    }
}

#[test]
#[should_panic(expected = "not in Discrete(3)")]
fn acrobot_refuses_an_invalid_action() {
    let mut env = Acrobot::new();
    env.reset(Some(0));
    env.step(Action::Discrete(3));
}

#[test]
#[should_panic(expected = "not in Discrete(3)")]
fn mountain_car_refuses_an_invalid_action() {
    let mut env = MountainCar::new();
    env.reset(Some(0));
    env.step(Action::Discrete(-1));
}

#[test]
#[should_panic(expected = "not one non-NaN value")]
fn continuous_mountain_car_refuses_two_values() {
    let mut env = ContinuousMountainCar::new();
    env.reset(Some(0));
    env.step(Action::Continuous(&[0.0, 0.0]));
}

#[test]
#[should_panic(expected = "not one non-NaN value")]
fn pendulum_refuses_a_nan_torque() {
    let mut env = Pendulum::new();
    env.reset(Some(0));
    env.step(Action::Continuous(&[f32::NAN]));
}

#[test]
#[should_panic(expected = "call reset before step")]
fn pendulum_step_before_reset_panics() {
    Pendulum::new().step(Action::Continuous(&[0.0]));
}

#[test]
#[should_panic(expected = "non-finite state")]
fn setting_a_non_finite_state_panics() {
    Acrobot::new().set_state([f64::INFINITY, 0.0, 0.0, 0.0]);
}

#[test]
fn frame_rates_are_gymnasiums() {
    // gymnasium/envs/classic_control/*.py: metadata["render_fps"].
    for (id, fps) in [
        ("CartPole-v1", 50),
        ("Acrobot-v1", 15),
        ("MountainCar-v0", 30),
        ("MountainCarContinuous-v0", 30),
        ("Pendulum-v1", 30),
    ] {
        assert_eq!(envs::Env::render_fps(&envs::make(id).unwrap()), fps, "{id}");
    }
}
