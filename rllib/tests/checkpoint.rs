//! A checkpoint round trip: what is loaded acts exactly as the policy in memory.

use algorithms::distributions::argmax;
use algorithms::{Algo, AlgorithmConfig, ModelConfig, ModuleSpec, ObservationFilter, PpoPolicy};
use envs::NpRandom;
use rllib::algorithm::Algorithm;
use rllib::checkpoint;

#[test]
fn a_loaded_checkpoint_chooses_the_same_actions() {
    let cfg = AlgorithmConfig {
        num_env_runners: 1,
        train_batch_size: 400,
        lr: 3e-4,
        observation_filter: ObservationFilter::MeanStdFilter,
        model: ModelConfig {
            fcnet_hiddens: vec![16, 16],
            ..Default::default()
        },
        ppo: algorithms::config::PpoConfig {
            minibatch_size: 100,
            num_epochs: 2,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut algo = Algorithm::new(cfg, 11).unwrap();
    algo.train().unwrap();
    algo.train().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = algo.save(dir.path(), None).unwrap();
    assert!(path.ends_with("checkpoint_000002"));
    let ck = checkpoint::load(&path).unwrap();

    let weights = algo.learner().weights().unwrap();
    assert_eq!(ck.weights(), &weights);
    assert_eq!(ck.state, algo.get_state().unwrap());
    assert_eq!(ck.filter(), algo.filter());
    assert_eq!(ck.counters(), algo.counters());
    assert_eq!(
        (ck.algorithm.as_str(), ck.env.as_str()),
        ("PPO", "CartPole-v1")
    );

    let ppo = |s: &ModuleSpec| match s {
        ModuleSpec::Ppo(p) => p.clone(),
        other => panic!("not PPO: {other:?}"),
    };
    let mut live = PpoPolicy::new(ppo(algo.spec()), &weights).unwrap();
    let mut loaded = PpoPolicy::new(ppo(&ck.spec), ck.weights()).unwrap();
    let mut rng = NpRandom::from_seed(5);
    let (mut a, mut b) = (vec![0.0f32; 2], vec![0.0f32; 2]);
    for _ in 0..1000 {
        let obs: Vec<f32> = (0..4).map(|_| rng.uniform(-3.0, 3.0) as f32).collect();
        live.dist_inputs(&obs, 1, &mut a);
        loaded.dist_inputs(&obs, 1, &mut b);
        assert_eq!(a, b);
        assert_eq!(argmax(&a), argmax(&b));
    }
    // No temporary folder is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn damaged_checkpoints_are_refused_with_the_path() {
    let cfg = AlgorithmConfig {
        num_env_runners: 0,
        train_batch_size: 200,
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
    };
    let mut algo = Algorithm::new(cfg, 1).unwrap();
    algo.train().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = algo.save(dir.path(), None).unwrap();
    let weights =
        path.join("learner_group/learner/rl_module/default_policy/module_state.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let e = checkpoint::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("module_state.safetensors") && e.contains("not a valid safetensors"),
        "{e}"
    );

    std::fs::write(path.join("metadata.json"), "{\"format_version\": 99}").unwrap();
    let e = checkpoint::load(&path).unwrap_err().to_string();
    assert!(e.contains("format_version 99 is newer"), "{e}");
    std::fs::write(path.join("metadata.json"), "not json").unwrap();
    let e = checkpoint::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("metadata.json") && e.contains("not valid JSON"),
        "{e}"
    );
}

#[test]
fn saving_a_checkpoint_does_not_change_the_run() {
    let cfg = AlgorithmConfig {
        num_env_runners: 1,
        train_batch_size: 300,
        model: ModelConfig {
            fcnet_hiddens: vec![8],
            ..Default::default()
        },
        ppo: algorithms::config::PpoConfig {
            minibatch_size: 64,
            num_epochs: 2,
            ..Default::default()
        },
        ..Default::default()
    };
    let untimed = |r: rllib::algorithm::TrainResult| -> Vec<(String, Option<f64>)> {
        r.metrics
            .into_iter()
            .filter(|(k, _)| !k.starts_with("time") && !k.ends_with("throughput"))
            .map(|(k, v)| (k.to_string(), (!v.is_nan()).then_some(v)))
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut a = Algorithm::new(cfg.clone(), 4).unwrap();
    let mut b = Algorithm::new(cfg, 4).unwrap();
    for _ in 0..3 {
        let ra = untimed(a.train().unwrap());
        a.save(dir.path(), None).unwrap();
        let rb = untimed(b.train().unwrap());
        assert_eq!(ra, rb);
    }
}

fn untimed(r: rllib::algorithm::TrainResult) -> Vec<(String, Option<f64>)> {
    r.metrics
        .into_iter()
        .filter(|(k, _)| !k.starts_with("time") && !k.ends_with("throughput"))
        .map(|(k, v)| (k.to_string(), (!v.is_nan()).then_some(v)))
        .collect()
}

#[test]
fn a_restored_run_continues_as_if_never_stopped() {
    for runners in [0, 2] {
        let cfg = AlgorithmConfig {
            num_env_runners: runners,
            num_envs_per_env_runner: 2,
            // 50 steps per env per iteration: most episodes span iterations.
            train_batch_size: 200,
            lr: 1e-3,
            observation_filter: ObservationFilter::MeanStdFilter,
            model: ModelConfig {
                fcnet_hiddens: vec![16],
                ..Default::default()
            },
            ppo: algorithms::config::PpoConfig {
                minibatch_size: 64,
                num_epochs: 2,
                // Its returns and statistics are part of each runner's state.
                reward_filter: algorithms::ppo::RewardFilter::ReturnStdFilter,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut whole = Algorithm::new(cfg.clone(), 9).unwrap();
        let expected: Vec<_> = (0..6).map(|_| untimed(whole.train().unwrap())).collect();

        let dir = tempfile::tempdir().unwrap();
        let mut first = Algorithm::new(cfg.clone(), 9).unwrap();
        for want in &expected[..3] {
            assert_eq!(&untimed(first.train().unwrap()), want);
        }
        let path = first.save(dir.path(), None).unwrap();
        drop(first);
        let ck = checkpoint::load(&path).unwrap();
        let mut resumed = Algorithm::new(cfg, 9).unwrap();
        assert_eq!(resumed.restore(&ck).unwrap(), None, "runner states apply");
        for want in &expected[3..] {
            assert_eq!(
                &untimed(resumed.train().unwrap()),
                want,
                "{runners} runners"
            );
        }
    }
}

/// A small off-policy config: learning starts inside the first iterations, a target update
/// and (for SAC) PER and n-step fall inside the resumed half.
fn off_policy_config(algo: Algo, env: &str, runners: usize) -> AlgorithmConfig {
    let mut c = AlgorithmConfig::new(algo);
    c.env = env.to_string();
    c.num_env_runners = runners;
    c.num_envs_per_env_runner = 2;
    c.rollout_fragment_length = Some(8);
    c.train_batch_size = 16;
    c.min_sample_timesteps_per_iteration = 48;
    c.model.fcnet_hiddens = vec![16];
    c.off_policy.num_steps_sampled_before_learning_starts = 60;
    c.off_policy.target_network_update_freq = 40;
    c.off_policy.replay.capacity = 500;
    if algo == Algo::Sac {
        c.off_policy.replay.prioritized = true;
        c.off_policy.n_step = (2, 3);
        // The runners' correlated noise is part of their state.
        c.sac.exploration_noise_correlation = 0.8;
    } else {
        c.dqn.epsilon = vec![(0, 1.0), (200, 0.05)];
    }
    c
}

#[test]
fn off_policy_runs_resume_exactly_with_their_replay_buffer() {
    for (algo, env) in [(Algo::Dqn, "CartPole-v1"), (Algo::Sac, "Pendulum-v1")] {
        for runners in [0, 2] {
            let cfg = off_policy_config(algo, env, runners);
            let mut whole = Algorithm::new(cfg.clone(), 21).unwrap();
            let expected: Vec<_> = (0..8).map(|_| untimed(whole.train().unwrap())).collect();
            assert!(
                expected[7]
                    .iter()
                    .any(|(k, v)| k.contains("learner") && v.is_some()),
                "{algo:?} learned nothing in 8 iterations: {:?}",
                expected[7]
            );

            let dir = tempfile::tempdir().unwrap();
            let mut first = Algorithm::new(cfg.clone(), 21).unwrap();
            for want in &expected[..4] {
                assert_eq!(&untimed(first.train().unwrap()), want);
            }
            let path = first.save(dir.path(), None).unwrap();
            assert!(path.join("replay_buffer/buffer.safetensors").is_file());
            drop(first);
            let ck = checkpoint::load(&path).unwrap();
            assert!(ck.state.replay.as_ref().is_some_and(|r| r.size > 0));
            let mut resumed = Algorithm::new(cfg.clone(), 21).unwrap();
            assert_eq!(resumed.restore(&ck).unwrap(), None, "runner states apply");
            for (i, want) in expected[4..].iter().enumerate() {
                assert_eq!(
                    &untimed(resumed.train().unwrap()),
                    want,
                    "{algo:?}, {runners} runners, iteration {}",
                    i + 5
                );
            }
        }
    }
}

#[test]
fn without_its_buffer_a_restored_off_policy_run_says_so() {
    let mut cfg = off_policy_config(Algo::Dqn, "CartPole-v1", 0);
    cfg.off_policy.store_buffer_in_checkpoints = false;
    let mut a = Algorithm::new(cfg.clone(), 3).unwrap();
    a.train().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = a.save(dir.path(), None).unwrap();
    assert!(!path.join("replay_buffer").exists());
    let ck = checkpoint::load(&path).unwrap();
    let mut b = Algorithm::new(cfg, 3).unwrap();
    let note = b.restore(&ck).unwrap().unwrap_or_default();
    assert!(note.contains("no replay buffer"), "{note}");
}

#[test]
fn a_damaged_replay_buffer_is_refused_with_the_file() {
    let cfg = off_policy_config(Algo::Dqn, "CartPole-v1", 0);
    let mut a = Algorithm::new(cfg, 3).unwrap();
    a.train().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = a.save(dir.path(), None).unwrap();
    let state = path.join("replay_buffer/state.json");
    let text = std::fs::read_to_string(&state).unwrap();
    std::fs::write(
        &state,
        text.replace("\"capacity\": 500", "\"capacity\": 400"),
    )
    .unwrap();
    let e = checkpoint::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("buffer.safetensors") && e.contains("shape"),
        "{e}"
    );
    std::fs::write(&state, text.replace("\"size\": ", "\"size\": 9999")).unwrap();
    let e = checkpoint::load(&path).unwrap_err().to_string();
    assert!(e.contains("state.json") && e.contains("'size'"), "{e}");
}
