//! The catalogue of bad input: configs, flags and checkpoints. Every case must end with a
//! non-zero exit, no panic or backtrace, and one message naming the file, key or path and
//! what was expected.

use std::path::Path;
use std::process::Command;

fn rllib(args: &[&str], cwd: &Path) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_rllib"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the rllib binary runs");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs a case and checks the failure is clean and mentions every `needles`.
fn check(name: &str, args: &[&str], cwd: &Path, needles: &[&str]) {
    let (ok, err) = rllib(args, cwd);
    assert!(!ok, "{name}: should fail");
    assert!(
        !err.contains("panicked")
            && !err.contains("RUST_BACKTRACE")
            && !err.contains("stack backtrace"),
        "{name}: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "{name}: expected {n:?} in: {err}");
    }
}

const BASE: &str = "exp:\n  env: CartPole-v1\n  run: PPO\n  stop:\n    training_iteration: 1\n  config:\n    train_batch_size: 200\n";

#[test]
fn bad_config_files() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "unknown key",
            "    minibatch_sise: 64\n",
            &[
                "exp.yaml:8:5",
                "minibatch_sise",
                "did you mean 'minibatch_size'",
            ],
        ),
        (
            "wrong type",
            "    lr: fast\n",
            &["exp.yaml:8:9", "config.lr", "expected a number"],
        ),
        (
            "negative lr",
            "    lr: -0.1\n",
            &["config.lr", "out of range", "> 0"],
        ),
        (
            "gamma above 1",
            "    gamma: 1.5\n",
            &["config.gamma", "<= 1"],
        ),
        (
            "fractional count",
            "    num_env_runners: 1.5\n",
            &["num_env_runners", "whole number"],
        ),
        (
            "zero epochs",
            "    num_epochs: 0\n",
            &["num_epochs", ">= 1"],
        ),
        (
            "bad bool",
            "    use_kl_loss: maybe\n",
            &["use_kl_loss", "true or false"],
        ),
        (
            "minibatch larger than batch",
            "    minibatch_size: 500\n",
            &["minibatch_size", "train_batch_size 200"],
        ),
        (
            "unknown filter",
            "    observation_filter: Foo\n",
            &["observation_filter", "MeanStdFilter or NoFilter"],
        ),
        (
            "schedule not a list",
            "    lr_schedule: 5\n",
            &["lr_schedule", "[timestep, lr] pairs"],
        ),
        (
            "hiddens not a list",
            "    model:\n      fcnet_hiddens: 32\n",
            &["fcnet_hiddens", "a list"],
        ),
        (
            "unknown activation",
            "    model:\n      fcnet_activation: gelu\n",
            &["gelu", "tanh, relu or linear"],
        ),
        (
            "unknown model key",
            "    model:\n      conv_filters: []\n",
            &["model.conv_filters", "unknown key"],
        ),
        (
            "fragment length",
            "    rollout_fragment_length: -3\n",
            &["rollout_fragment_length", "\"auto\""],
        ),
    ];
    for (name, extra, needles) in cases {
        std::fs::write(dir.path().join("exp.yaml"), format!("{BASE}{extra}")).unwrap();
        check(name, &["train", "file", "exp.yaml"], dir.path(), needles);
    }
    let files: &[(&str, &[u8], &[&str])] = &[
        ("empty file", b"", &["exp.yaml", "is empty"]),
        (
            "YAML syntax error",
            b"exp:\n  env: [CartPole\n",
            &["exp.yaml:", "YAML syntax error"],
        ),
        (
            "not a mapping",
            b"- a\n- b\n",
            &["exp.yaml:1:1", "expected a mapping"],
        ),
        (
            "two experiments",
            b"a:\n  run: PPO\nb:\n  run: PPO\n",
            &["exp.yaml:3:1", "more than one experiment"],
        ),
        (
            "missing run",
            b"exp:\n  env: CartPole-v1\n",
            &["exp", "missing `run"],
        ),
        (
            "unknown env",
            b"exp:\n  env: Pong-v5\n  run: PPO\n  stop: {training_iteration: 1}\n",
            &["unknown env id 'Pong-v5'", "CartPole-v1"],
        ),
        (
            "unknown algorithm",
            b"exp:\n  env: CartPole-v1\n  run: DQN\n",
            &["exp.yaml:3:8", "unknown algorithm 'DQN'", "PPO"],
        ),
        (
            "unknown stop key",
            b"exp:\n  env: CartPole-v1\n  run: PPO\n  stop: {episode_reward_meen: 1}\n",
            &[
                "stop.episode_reward_meen",
                "did you mean 'episode_reward_mean'",
            ],
        ),
        (
            "stop value not a number",
            b"exp:\n  env: CartPole-v1\n  run: PPO\n  stop: {timesteps_total: lots}\n",
            &["stop.timesteps_total", "expected a number"],
        ),
        (
            "unknown experiment key",
            b"exp:\n  env: CartPole-v1\n  run: PPO\n  num_samples: 4\n",
            &["exp.num_samples", "unknown key"],
        ),
        (
            "not UTF-8",
            b"exp:\n  env: \xff\xfe\n",
            &["exp.yaml", "not UTF-8"],
        ),
    ];
    for (name, text, needles) in files {
        std::fs::write(dir.path().join("exp.yaml"), text).unwrap();
        check(name, &["train", "file", "exp.yaml"], dir.path(), needles);
    }
    check(
        "missing file",
        &["train", "file", "nope.yaml"],
        dir.path(),
        &["nope.yaml", "cannot be read"],
    );
    std::fs::create_dir(dir.path().join("afolder")).unwrap();
    check(
        "a folder",
        &["train", "file", "afolder"],
        dir.path(),
        &["afolder", "is a folder"],
    );
}

#[test]
fn bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    check(
        "malformed --stop",
        &["train", "--stop", "{oops"],
        d,
        &["--stop", "YAML syntax error"],
    );
    check(
        "--stop not a mapping",
        &["train", "--stop", "5"],
        d,
        &["--stop", "expected a mapping"],
    );
    check(
        "malformed --config",
        &["train", "--config", "{\"lr\": }"],
        d,
        &["--config"],
    );
    check(
        "--config bad value",
        &["train", "--config", "{\"gamma\": \"high\"}"],
        d,
        &["config.gamma", "expected a number"],
    );
    check(
        "--seed not a number",
        &["train", "--seed", "abc"],
        d,
        &["--seed", "abc"],
    );
    check(
        "negative runners",
        &["train", "--num-env-runners", "-1"],
        d,
        &["--num-env-runners"],
    );
    check(
        "unknown device",
        &["train", "--device", "tpu"],
        d,
        &["--device", "tpu"],
    );
    check(
        "cuda without the feature",
        &["train", "--device", "cuda"],
        d,
        &["--features cuda"],
    );
    check(
        "unknown algorithm flag",
        &["train", "--algo", "PPG"],
        d,
        &["unknown algorithm 'PPG'", "did you mean 'PPO'"],
    );
    check(
        "unknown env flag",
        &["train", "--env", "CartPole-v2"],
        d,
        &["unknown env id 'CartPole-v2'"],
    );
    check(
        "unknown example",
        &["example", "run", "cartpole-dqn"],
        d,
        &["unknown example 'cartpole-dqn'"],
    );
    check(
        "zero episodes",
        &["evaluate", ".", "--episodes", "0"],
        d,
        &["--episodes 0", "at least 1"],
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn bad_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = Command::new(env!("CARGO_BIN_EXE_rllib"))
        .args([
            "example",
            "run",
            "cartpole-ppo",
            "--seed",
            "1",
            "--output-dir",
            "runs",
            "--stop",
            r#"{"training_iteration": 1}"#,
            "--config",
            r#"{"train_batch_size": 200, "minibatch_size": 50}"#,
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(o.status.success());
    let good = std::fs::read_dir(d.join("runs/cartpole-ppo"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
        .join("checkpoint_000001");
    assert!(rllib(&["evaluate", good.to_str().unwrap(), "--episodes", "1"], d).0);

    let weights = "learner_group/learner/rl_module/default_policy/module_state.safetensors";
    type Damage = fn(&Path);
    let cases: &[(&str, Damage, &[&str])] = &[
        (
            "missing metadata",
            |c| std::fs::remove_file(c.join("metadata.json")).unwrap(),
            &["no metadata.json"],
        ),
        (
            "garbled metadata",
            |c| std::fs::write(c.join("metadata.json"), "{not json").unwrap(),
            &["metadata.json", "not valid JSON"],
        ),
        (
            "metadata without env",
            |c| {
                edit_meta(c, |m| {
                    m.as_object_mut().unwrap().remove("env");
                })
            },
            &["metadata.json", "missing key 'env'"],
        ),
        (
            "metadata wrong type",
            |c| edit_meta(c, |m| m["training_iteration"] = "x".into()),
            &[
                "metadata.json",
                "'training_iteration' must be a whole number",
            ],
        ),
        (
            "newer format",
            |c| edit_meta(c, |m| m["format_version"] = 7.into()),
            &["format_version 7 is newer"],
        ),
        (
            "other spaces",
            |c| {
                edit_meta(c, |m| {
                    m["observation_space"] = "Box([0.0], [1.0], [1], float32)".into()
                })
            },
            &["trained on spaces", "CartPole-v1 has"],
        ),
        (
            "mismatched weights",
            |c| {
                edit_meta(c, |m| {
                    m["module_spec"]["fcnet_hiddens"] = serde_json::json!([64])
                })
            },
            &["module_state.safetensors", "expected [64, 4]"],
        ),
        (
            "truncated weights",
            |c| {
                let p = c.join(
                    "learner_group/learner/rl_module/default_policy/module_state.safetensors",
                );
                let b = std::fs::read(&p).unwrap();
                std::fs::write(&p, &b[..b.len() - 9]).unwrap();
            },
            &["module_state.safetensors", "not a valid safetensors"],
        ),
        (
            "missing weights",
            |c| {
                std::fs::remove_file(c.join(
                    "learner_group/learner/rl_module/default_policy/module_state.safetensors",
                ))
                .unwrap()
            },
            &["module_state.safetensors", "cannot be read"],
        ),
        (
            "missing optimizer",
            |c| {
                std::fs::remove_file(c.join("learner_group/learner/optimizer.safetensors")).unwrap()
            },
            &["optimizer.safetensors", "cannot be read"],
        ),
        (
            "missing runner state",
            |c| std::fs::remove_file(c.join("env_runner/state.json")).unwrap(),
            &["env_runner/state.json", "cannot be read"],
        ),
        (
            "bad filter state",
            |c| {
                std::fs::write(
                    c.join("env_runner/state.json"),
                    r#"{"filter": {"count": 3, "mean": [1], "m2": [1]}}"#,
                )
                .unwrap()
            },
            &["state.json", "filter statistics have 1 values, expected 4"],
        ),
    ];
    let _ = weights;
    for (i, (name, damage, needles)) in cases.iter().enumerate() {
        let c = d.join(format!("damaged{i}/checkpoint_000001"));
        copy_dir(&good, &c);
        damage(&c);
        check(name, &["evaluate", c.to_str().unwrap()], d, needles);
    }
    std::fs::write(d.join("afile"), "x").unwrap();
    check(
        "a file, not a folder",
        &["evaluate", "afile"],
        d,
        &["afile", "is not a folder"],
    );
    check(
        "missing folder",
        &["evaluate", "nowhere"],
        d,
        &["nowhere", "does not exist"],
    );
    let g = good.to_str().unwrap();
    check(
        "restore into another module",
        &[
            "example",
            "run",
            "cartpole-ppo",
            "--restore",
            g,
            "--config",
            r#"{"model": {"fcnet_hiddens": [8]}}"#,
            "--output-dir",
            "r2",
        ],
        d,
        &["module", "differs"],
    );
    check(
        "evaluate with the wrong algo",
        &["evaluate", g, "--algo", "APPO"],
        d,
        &["--algo APPO", "the checkpoint is PPO"],
    );
}

fn edit_meta(c: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = c.join("metadata.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(p, v.to_string()).unwrap();
}
