//! A checkpoint round trip: what is loaded acts exactly as the policy in memory.

use algorithms::distributions::argmax;
use algorithms::{AlgorithmConfig, ModelConfig, ObservationFilter, PpoPolicy};
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
    let path = checkpoint::save(&algo, dir.path(), None).unwrap();
    assert!(path.ends_with("checkpoint_000002"));
    let ck = checkpoint::load(&path).unwrap();

    let weights = algo.learner().weights().unwrap();
    assert_eq!(ck.weights, weights);
    assert_eq!(ck.optimizer, algo.learner().optimizer_state().unwrap());
    assert_eq!(ck.filter.as_ref(), algo.filter());
    assert_eq!(ck.counters, algo.counters());
    assert_eq!(
        (ck.algorithm.as_str(), ck.env.as_str()),
        ("PPO", "CartPole-v1")
    );

    let mut live = PpoPolicy::new(algo.spec().clone(), &weights).unwrap();
    let mut loaded = PpoPolicy::new(ck.spec.clone(), &ck.weights).unwrap();
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
    let path = checkpoint::save(&algo, dir.path(), None).unwrap();
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
    let untimed = |r: rllib::algorithm::TrainResult| -> Vec<(String, f64)> {
        r.metrics
            .into_iter()
            .filter(|(k, _)| !k.starts_with("time") && !k.ends_with("throughput"))
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut a = Algorithm::new(cfg.clone(), 4).unwrap();
    let mut b = Algorithm::new(cfg, 4).unwrap();
    for _ in 0..3 {
        let ra = untimed(a.train().unwrap());
        checkpoint::save(&a, dir.path(), None).unwrap();
        let rb = untimed(b.train().unwrap());
        assert_eq!(ra, rb);
    }
}

fn untimed(r: rllib::algorithm::TrainResult) -> Vec<(String, f64)> {
    r.metrics
        .into_iter()
        .filter(|(k, _)| !k.starts_with("time") && !k.ends_with("throughput"))
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
        let path = checkpoint::save(&first, dir.path(), None).unwrap();
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
