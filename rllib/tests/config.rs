//! Config aliases and stop criteria: every old name means what RLlib means by it.

use algorithms::{Activation, Device, ObservationFilter};
use rllib::config::{Experiment, StopCriterion};

fn exp(config: &str) -> Experiment {
    let yaml = format!("e:\n  env: CartPole-v1\n  run: PPO\n  config:\n{config}");
    Experiment::from_yaml(&yaml, "test.yaml").unwrap()
}

#[test]
fn old_and_new_key_names_are_both_accepted() {
    let pairs: &[(&str, &str)] = &[
        ("num_workers: 3", "num_env_runners: 3"),
        ("num_rollout_workers: 3", "num_env_runners: 3"),
        ("num_envs_per_worker: 4", "num_envs_per_env_runner: 4"),
        ("sgd_minibatch_size: 64", "minibatch_size: 64"),
        ("num_sgd_iter: 7", "num_epochs: 7"),
        ("lambda_: 0.9", "lambda: 0.9"),
        ("train_batch_size_per_learner: 999", "train_batch_size: 999"),
        ("num_gpus: 0", "num_gpus_per_learner: 0"),
    ];
    for (old, new) in pairs {
        let a = exp(&format!("    {old}\n"));
        let b = exp(&format!("    {new}\n"));
        assert_eq!(a.config, b.config, "{old} vs {new}");
    }
}

#[test]
fn every_documented_key_is_honoured() {
    let e = exp(
        "    num_env_runners: 2\n    num_envs_per_env_runner: 3\n    rollout_fragment_length: 50\n    \
         train_batch_size: 600\n    minibatch_size: 100\n    num_epochs: 4\n    lr: 0.001\n    \
         lr_schedule: [[0, 0.001], [1000, 0.0001]]\n    gamma: 0.95\n    lambda: 0.9\n    clip_param: 0.2\n    \
         vf_clip_param: 5.0\n    vf_loss_coeff: 0.5\n    entropy_coeff: 0.01\n    kl_coeff: 0.3\n    \
         kl_target: 0.02\n    use_kl_loss: false\n    grad_clip: 0.5\n    observation_filter: MeanStdFilter\n    \
         model:\n      fcnet_hiddens: [64, 64]\n      fcnet_activation: relu\n      vf_share_layers: true\n    \
         seed: 9\n    evaluation_interval: 2\n    evaluation_duration: 5\n",
    );
    let c = &e.config;
    assert_eq!((c.num_env_runners, c.num_envs_per_env_runner), (2, 3));
    assert_eq!(c.rollout_fragment_length, Some(50));
    assert_eq!(
        (c.train_batch_size, c.ppo.minibatch_size, c.ppo.num_epochs),
        (600, 100, 4)
    );
    assert_eq!(c.lr, 0.001);
    assert_eq!(c.lr_schedule, Some(vec![(0, 0.001), (1000, 0.0001)]));
    assert_eq!(
        (c.gamma, c.ppo.lambda, c.ppo.clip_param, c.ppo.vf_clip_param),
        (0.95, 0.9, 0.2, 5.0)
    );
    assert_eq!(
        (
            c.ppo.vf_loss_coeff,
            c.ppo.entropy_coeff,
            c.ppo.kl_coeff,
            c.ppo.kl_target
        ),
        (0.5, 0.01, 0.3, 0.02)
    );
    assert!(!c.ppo.use_kl_loss);
    assert_eq!(c.grad_clip, Some(0.5));
    assert_eq!(c.observation_filter, ObservationFilter::MeanStdFilter);
    assert_eq!(c.model.fcnet_hiddens, vec![64, 64]);
    assert_eq!(c.model.fcnet_activation, Activation::Relu);
    assert!(c.model.vf_share_layers);
    assert_eq!(c.seed, Some(9));
    assert_eq!((c.evaluation_interval, c.evaluation_duration), (Some(2), 5));
    assert_eq!(c.device, Device::Cpu);
    assert!(
        exp("    rollout_fragment_length: auto\n")
            .config
            .rollout_fragment_length
            .is_none()
    );
}

#[test]
fn rllib_ppo_defaults_apply_where_the_config_is_silent() {
    let c = Experiment::from_flags("PPO", "CartPole-v1").unwrap().config;
    assert_eq!(
        (
            c.lr,
            c.train_batch_size,
            c.ppo.minibatch_size,
            c.ppo.num_epochs
        ),
        (5e-5, 4000, 128, 30)
    );
    assert_eq!(
        (c.gamma, c.ppo.lambda, c.ppo.clip_param, c.ppo.vf_clip_param),
        (0.99, 1.0, 0.3, 10.0)
    );
    assert_eq!(
        (
            c.ppo.kl_coeff,
            c.ppo.kl_target,
            c.ppo.entropy_coeff,
            c.ppo.vf_loss_coeff
        ),
        (0.2, 0.01, 0.0, 1.0)
    );
    assert_eq!(c.num_env_runners, 2);
    assert_eq!(c.model.fcnet_hiddens, vec![256, 256]);
}

#[test]
fn every_stop_key_maps_to_its_metric() {
    let cases = [
        ("episode_reward_mean", StopCriterion::EpisodeReturnMean(1.0)),
        (
            "sampler_results/episode_reward_mean",
            StopCriterion::EpisodeReturnMean(1.0),
        ),
        (
            "env_runners/episode_return_mean",
            StopCriterion::EpisodeReturnMean(1.0),
        ),
        (
            "evaluation/env_runners/episode_return_mean",
            StopCriterion::EvaluationReturnMean(1.0),
        ),
        ("timesteps_total", StopCriterion::EnvSteps(1)),
        ("num_env_steps_sampled_lifetime", StopCriterion::EnvSteps(1)),
        ("training_iteration", StopCriterion::TrainingIteration(1)),
        ("time_total_s", StopCriterion::TimeTotalS(1.0)),
    ];
    for (key, want) in cases {
        let mut e = Experiment::from_flags("PPO", "CartPole-v1").unwrap();
        e.set_stop_text(&format!("{{\"{key}\": 1}}")).unwrap();
        assert_eq!(e.stop, vec![want], "{key}");
    }
}

#[test]
fn framework_is_accepted_with_one_warning() {
    let e = exp("    framework: tf\n    enable_connectors: True\n");
    assert_eq!(e.warnings.len(), 1);
    assert!(
        e.warnings[0].contains("test.yaml:5") && e.warnings[0].contains("is ignored"),
        "{:?}",
        e.warnings
    );
}

#[test]
fn flags_override_the_file() {
    let mut e = exp("    lr: 0.1\n    num_workers: 1\n");
    e.apply_config_text(r#"{"lr": 0.002, "model": {"fcnet_hiddens": [8]}}"#)
        .unwrap();
    assert_eq!(e.config.lr, 0.002);
    assert_eq!(e.config.num_env_runners, 1);
    assert_eq!(e.config.model.fcnet_hiddens, vec![8]);
    let err = e.apply_config_text("lr: [1]").unwrap_err().to_string();
    assert!(
        err.starts_with("--config:1:5: config.lr: expected a number"),
        "{err}"
    );
}

#[test]
fn yaml_anchors_and_merge_keys_work() {
    let yaml = "e:\n  env: CartPole-v1\n  run: PPO\n  config:\n    <<: &common {lr: 0.001, gamma: 0.9, model: {fcnet_hiddens: [8]}}\n    gamma: 0.95\n";
    let e = Experiment::from_yaml(yaml, "test.yaml").unwrap();
    assert_eq!((e.config.lr, e.config.gamma), (0.001, 0.95));
    assert_eq!(e.config.model.fcnet_hiddens, vec![8]);
}

#[test]
fn a_restore_replays_explicit_keys_on_the_checkpoints_config() {
    let saved = serde_json::json!({
        "env": "CartPole-v1",
        "lr": 0.0003,
        "num_epochs": 6,
        "observation_filter": "MeanStdFilter",
        "model": {"fcnet_hiddens": [32], "fcnet_activation": "linear", "vf_share_layers": true},
        "seed": 7,
    });
    let mut e = Experiment::from_optional_flags(None, None, algorithms::Algo::Ppo).unwrap();
    e.apply_config_text(r#"{"lr": 0.001}"#).unwrap();
    e.restore_from("ck", "PPO", "CartPole-v1", Some("cartpole-ppo"), &saved)
        .unwrap();
    assert_eq!(e.config.lr, 0.001);
    assert_eq!(e.config.ppo.num_epochs, 6);
    assert_eq!(e.config.model.fcnet_hiddens, vec![32]);
    assert_eq!(
        e.config.observation_filter,
        ObservationFilter::MeanStdFilter
    );
    assert_eq!(e.config.seed, Some(7));
    assert_eq!(e.name, "cartpole-ppo");

    let mut e = Experiment::from_optional_flags(None, None, algorithms::Algo::Ppo).unwrap();
    e.apply_config_text(r#"{"model": {"fcnet_activation": "relu"}}"#)
        .unwrap();
    let err = e
        .restore_from("ck", "PPO", "CartPole-v1", None, &saved)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.fcnet_activation is \"linear\", this run's would be \"relu\""),
        "{err}"
    );
    let mut e = Experiment::from_flags("PPO", "CartPole-v1").unwrap();
    e.restore_from("ck", "PPO", "CartPole-v1", None, &saved)
        .unwrap();
    assert_eq!(e.name, "PPO_CartPole-v1", "no recorded name: <algo>_<env>");
}

/// What `params.yaml` and checkpoints write reads back as the same config (a restore depends
/// on it), and every key of the table is either written or one of the ignored ones.
#[test]
fn the_exported_config_reads_back_unchanged() {
    use algorithms::config::{KeyKind, keys};
    use rllib::config::export::config_json;
    let mut e = exp(
        "    num_env_runners: 1\n    num_envs_per_env_runner: 3\n    num_cpus_per_env_runner: 0.5\n    \
         rollout_fragment_length: 50\n    train_batch_size: 600\n    minibatch_size: 100\n    num_epochs: 4\n    \
         lr_schedule: [[0, 0.001], [1000, 0.0001]]\n    gamma: 0.95\n    lambda: 0.9\n    grad_clip: 0.5\n    \
         observation_filter: MeanStdFilter\n    model: {fcnet_hiddens: [64, 64], fcnet_activation: relu}\n    \
         seed: 9\n    evaluation_interval: 2\n    num_cpus_per_learner: 2\n    learner_backend: candle\n    \
         restart_failed_env_runners: false\n    max_num_env_runner_restarts: 3\n",
    );
    let json = config_json(&e.config, 9);
    for k in keys() {
        assert!(
            json.get(k.name()).is_some()
                || matches!(k.kind(), KeyKind::Ignored)
                || !k.applies_to(algorithms::Algo::Ppo),
            "{} is neither exported nor ignored",
            k.name()
        );
    }
    let want = e.config.clone();
    e.config = Default::default();
    e.apply_config_text(&json.to_string()).unwrap();
    assert_eq!(e.config, want);
}

#[test]
fn the_readme_lists_every_key_as_the_key_table_says() {
    let readme = include_str!("../../README.md");
    let start = "<!-- keys:start (generated by `rllib keys`; a test checks it) -->\n";
    let end = "<!-- keys:end -->";
    let from = readme
        .find(start)
        .expect("README has the key list's start marker")
        + start.len();
    let to = from + readme[from..].find(end).expect("README has the end marker");
    assert_eq!(
        &readme[from..to],
        rllib::config::reference::markdown(),
        "README's key list is out of date: put the output of `cargo run -p rllib -- keys` between the markers"
    );
}

#[test]
fn every_example_is_a_file_in_configs_and_parses() {
    let files: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    assert_eq!(files.len(), rllib::examples::EXAMPLES.len(), "{files:?}");
    for e in rllib::examples::EXAMPLES {
        assert!(files.contains(&format!("{}.yaml", e.id)), "{}", e.id);
        let exp = rllib::config::Experiment::from_yaml(e.yaml, &format!("configs/{}.yaml", e.id))
            .unwrap_or_else(|err| panic!("{}: {err}", e.id));
        assert_eq!(exp.name, e.id);
        exp.validate().unwrap();
    }
}
