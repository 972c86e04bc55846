//! The catalogue of bad input: configs, flags, files and checkpoints, as a hostile or careless
//! user gives them. Every case must end with a non-zero exit, no panic or backtrace, exactly
//! one error line naming the file, key or path and what was expected, no value echoed at
//! length, and (for configs) no run folder made.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs the binary; a case that has not failed within a minute is a failure (bad input must
/// be refused at once, never start a run that goes on).
fn rllib(args: &[&str], cwd: &Path) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rllib"))
        .args(args)
        .current_dir(cwd)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the rllib binary runs");
    let started = std::time::Instant::now();
    while child
        .try_wait()
        .expect("the child can be waited for")
        .is_none()
    {
        if started.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            panic!("rllib {args:?} still runs after a minute");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let o = child.wait_with_output().expect("the child's output");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs a case and checks the failure is clean, short, and mentions every `needles`.
fn check(name: &str, args: &[&str], cwd: &Path, needles: &[&str]) {
    let (ok, err) = rllib(args, cwd);
    assert!(!ok, "{name}: should fail");
    assert!(
        !err.contains("panicked")
            && !err.contains("RUST_BACKTRACE")
            && !err.contains("stack backtrace")
            && !err.contains("memory allocation"),
        "{name}: {err}"
    );
    let errors = err.lines().filter(|l| l.starts_with("error:")).count();
    assert_eq!(errors, 1, "{name}: one error line expected: {err}");
    assert!(
        err.len() < 2500,
        "{name}: message too long ({} bytes)",
        err.len()
    );
    for n in needles {
        assert!(err.contains(n), "{name}: expected {n:?} in: {err}");
    }
}

/// A config case: also checks that no run folder was made under `runs`.
fn check_config(name: &str, args: &[&str], cwd: &Path, needles: &[&str]) {
    let mut all = args.to_vec();
    all.extend(["--output-dir", "runs"]);
    check(name, &all, cwd, needles);
    assert!(
        !cwd.join("runs").exists(),
        "{name}: a run folder was made before the error"
    );
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
            &["exp.yaml:8:5", "minibatch_size", "train_batch_size 200"],
        ),
        (
            "unknown filter",
            "    observation_filter: Foo\n",
            &["observation_filter", "MeanStdFilter or NoFilter"],
        ),
        (
            "unknown reward filter",
            "    reward_filter: VecNormalize\n",
            &[
                "exp.yaml:8:20",
                "reward_filter",
                "NoFilter or ReturnStdFilter",
            ],
        ),
        (
            "schedule not a list",
            "    lr_schedule: 5\n",
            &["lr_schedule", "[timestep, value] pairs"],
        ),
        (
            "empty schedule",
            "    lr_schedule: []\n",
            &["exp.yaml:8:18", "lr_schedule", "is empty"],
        ),
        (
            "reversed schedule",
            "    lr_schedule: [[100, 0.1], [0, 0.2]]\n",
            &["exp.yaml:8:32", "timestep 0 comes after 100"],
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
        (
            "a huge number is not echoed in full",
            "    entropy_coeff: -1e300\n",
            &["entropy_coeff", "-1e300 is out of range", ">= 0"],
        ),
        (
            "env in config is checked where it is",
            "    env: CartPole-v2\n",
            &[
                "exp.yaml:8:10",
                "unknown env id 'CartPole-v2'",
                "did you mean 'CartPole-v1'",
            ],
        ),
        (
            "duplicate key",
            "    lr: 0.1\n    lr: 0.2\n",
            &[
                "exp.yaml:9:5",
                "duplicate key 'lr'",
                "first at line 8, column 5",
            ],
        ),
        (
            "old and new name of one key",
            "    num_sgd_iter: 2\n    num_epochs: 3\n",
            &[
                "exp.yaml:9:5",
                "config.num_epochs",
                "same setting as 'num_sgd_iter' at line 8",
            ],
        ),
        (
            "a merge key of a scalar",
            "    <<: 5\n",
            &["exp.yaml:8:9", "merge key (<<) takes a mapping"],
        ),
        (
            "fractional CPUs below the runtime's unit",
            "    num_cpus_per_env_runner: 0\n",
            &["num_cpus_per_env_runner", ">= 0.0001"],
        ),
    ];
    for (name, extra, needles) in cases {
        std::fs::write(dir.path().join("exp.yaml"), format!("{BASE}{extra}")).unwrap();
        check_config(name, &["train", "file", "exp.yaml"], dir.path(), needles);
    }
    // Keys of one algorithm in another's run, and the off-policy keys' ranges.
    let algo_cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "a DQN key in a PPO run",
            "PPO",
            "    dueling: false\n",
            &[
                "exp.yaml:8:5",
                "config.dueling",
                "a key of DQN; this run is PPO",
            ],
        ),
        (
            "a PPO key in a DQN run",
            "DQN",
            "    num_epochs: 3\n",
            &["config.num_epochs", "a key of PPO; this run is DQN"],
        ),
        (
            "lr in a SAC run",
            "SAC",
            "    lr: 0.001\n",
            &[
                "config.lr",
                "a key of PPO, DQN, BC and MARWIL; this run is SAC",
                "actor_lr",
            ],
        ),
        (
            "an off-policy key in a PPO run",
            "PPO",
            "    n_step: 3\n",
            &["config.n_step", "a key of DQN and SAC"],
        ),
        (
            "a PPO-only model key in a DQN run",
            "DQN",
            "    model:\n      vf_share_layers: true\n",
            &["config.model.vf_share_layers", "a key of PPO"],
        ),
        (
            "a PPO reward filter in a SAC run",
            "SAC",
            "    reward_filter: ReturnStdFilter\n",
            &["config.reward_filter", "a key of PPO; this run is SAC"],
        ),
        (
            "an empty n-step range",
            "DQN",
            "    n_step: [5, 2]\n",
            &["config.n_step", "[5, 2] is empty", "lo < hi"],
        ),
        (
            "a replay buffer of no capacity",
            "DQN",
            "    replay_buffer_config:\n      capacity: 0\n",
            &["replay_buffer_config.capacity", ">= 1"],
        ),
        (
            "an unknown replay buffer key",
            "SAC",
            "    replay_buffer_config:\n      capacty: 10\n",
            &["replay_buffer_config.capacty", "did you mean 'capacity'"],
        ),
        (
            "an unknown replay buffer type",
            "DQN",
            "    replay_buffer_config:\n      type: FancyBuffer\n",
            &[
                "unknown type 'FancyBuffer'",
                "PrioritizedEpisodeReplayBuffer",
            ],
        ),
        (
            "a beta above 1",
            "DQN",
            "    replay_buffer_config:\n      beta: 2\n",
            &["replay_buffer_config.beta", "<= 1"],
        ),
        (
            "an epsilon schedule that starts late",
            "DQN",
            "    epsilon: [[100, 1.0], [1000, 0.1]]\n",
            &["config.epsilon", "starting at timestep 0"],
        ),
        (
            "an epsilon above 1",
            "DQN",
            "    epsilon: [[0, 1.5]]\n",
            &["config.epsilon", "values from 0 to 1"],
        ),
        (
            "a target entropy that is not a number",
            "SAC",
            "    target_entropy: lots\n",
            &["config.target_entropy", "\"auto\""],
        ),
        ("a tau of 0", "SAC", "    tau: 0\n", &["config.tau", "> 0"]),
        (
            "an unknown TD loss",
            "DQN",
            "    td_error_loss_fn: l1\n",
            &["unknown td error loss fn 'l1'", "huber or mse"],
        ),
    ];
    for (name, algo, extra, needles) in algo_cases {
        let text = BASE.replace("run: PPO", &format!("run: {algo}"));
        std::fs::write(dir.path().join("exp.yaml"), format!("{text}{extra}")).unwrap();
        check_config(name, &["train", "file", "exp.yaml"], dir.path(), needles);
    }
    let long_value = format!("{BASE}    lr_schedule: \"{}\"\n", "x".repeat(600_000));
    let long_key = format!("{BASE}    {}: 1\n", "k".repeat(1000));
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9u8 {
        let refs = vec![format!("*{}", (b'a' + i - 1) as char); 10].join(", ");
        let name = (b'a' + i) as char;
        bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    let deep = format!(
        "exp:\n  env: CartPole-v1\n  run: PPO\n  config:\n    lr: {}1{}\n",
        "[".repeat(100),
        "]".repeat(100)
    );
    let files: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("empty file", b"".to_vec(), &["exp.yaml", "is empty"]),
        (
            "YAML syntax error",
            b"exp:\n  env: [CartPole\n".to_vec(),
            &["exp.yaml:", "YAML syntax error"],
        ),
        (
            "not a mapping",
            b"- a\n- b\n".to_vec(),
            &["exp.yaml:1:1", "expected a mapping"],
        ),
        (
            "two experiments",
            b"a:\n  run: PPO\nb:\n  run: PPO\n".to_vec(),
            &["exp.yaml:3:1", "more than one experiment"],
        ),
        (
            "a second document",
            b"exp:\n  env: CartPole-v1\n  run: PPO\n---\nexp2:\n  env: CartPole-v1\n  run: PPO\n"
                .to_vec(),
            &["exp.yaml:4:1", "second YAML document", "first starts at line 1"],
        ),
        (
            "missing run",
            b"exp:\n  env: CartPole-v1\n".to_vec(),
            &["exp.yaml:1:1", "missing `run"],
        ),
        (
            "missing env",
            b"exp:\n  run: PPO\n".to_vec(),
            &["exp.yaml:1:1", "missing `env"],
        ),
        (
            "env given twice, differently",
            b"exp:\n  env: CartPole-v1\n  run: PPO\n  config:\n    env: Acrobot-v1\n".to_vec(),
            &["exp.yaml:5:10", "exp.yaml:2:8", "differs from", "give the env once"],
        ),
        (
            "unknown env",
            b"exp:\n  env: Pong-v5\n  run: PPO\n  stop: {training_iteration: 1}\n".to_vec(),
            &["exp.yaml:2:8", "unknown env id 'Pong-v5'", "CartPole-v1"],
        ),
        (
            "unknown env close to a known one",
            b"exp:\n  env: CartPole-v2\n  run: PPO\n".to_vec(),
            &["exp.yaml:2:8", "did you mean 'CartPole-v1'"],
        ),
        (
            "unknown algorithm",
            b"exp:\n  env: CartPole-v1\n  run: IMPALA\n".to_vec(),
            &["exp.yaml:3:8", "unknown algorithm 'IMPALA'", "PPO, DQN, SAC, BC, MARWIL"],
        ),
        (
            "unknown stop key",
            b"exp:\n  env: CartPole-v1\n  run: PPO\n  stop: {episode_reward_meen: 1}\n".to_vec(),
            &[
                "stop.episode_reward_meen",
                "did you mean 'episode_reward_mean'",
            ],
        ),
        (
            "stop value not a number",
            b"exp:\n  env: CartPole-v1\n  run: PPO\n  stop: {timesteps_total: lots}\n".to_vec(),
            &["stop.timesteps_total", "expected a number"],
        ),
        (
            "fractional iteration count",
            b"exp:\n  env: CartPole-v1\n  run: PPO\n  stop: {training_iteration: 1.5}\n".to_vec(),
            &["stop.training_iteration", "whole number", "1.5"],
        ),
        (
            "fractional step count",
            b"exp:\n  env: CartPole-v1\n  run: PPO\n  stop: {timesteps_total: 100.5}\n".to_vec(),
            &["stop.timesteps_total", "whole number"],
        ),
        (
            "infinite threshold",
            b"exp:\n  env: CartPole-v1\n  run: PPO\n  stop: {episode_reward_mean: .inf}\n".to_vec(),
            &["stop.episode_reward_mean", "never be met"],
        ),
        (
            "evaluation stop without evaluation",
            b"exp:\n  env: CartPole-v1\n  run: PPO\n  stop: {evaluation/env_runners/episode_return_mean: 100}\n"
                .to_vec(),
            &[
                "exp.yaml:4:10",
                "can never be met",
                "evaluation_interval",
            ],
        ),
        (
            "unknown experiment key",
            b"exp:\n  env: CartPole-v1\n  run: PPO\n  num_sample: 4\n".to_vec(),
            &["exp.num_sample", "unknown key", "num_samples"],
        ),
        (
            "not UTF-8",
            b"exp:\n  env: \xff\xfe\n".to_vec(),
            &["exp.yaml", "not UTF-8"],
        ),
        (
            "empty experiment name",
            b"\"\":\n  env: CartPole-v1\n  run: PPO\n".to_vec(),
            &["exp.yaml:1:1", "experiment name is empty"],
        ),
        (
            "experiment named '.'",
            b"\".\":\n  env: CartPole-v1\n  run: PPO\n".to_vec(),
            &["exp.yaml:1:1", "not a usable experiment name"],
        ),
        (
            "experiment named '..'",
            b"\"..\":\n  env: CartPole-v1\n  run: PPO\n".to_vec(),
            &["exp.yaml:1:1", "not a usable experiment name"],
        ),
        (
            "a long value is cut",
            long_value.into_bytes(),
            &["lr_schedule", "… (600000 bytes)"],
        ),
        (
            "a long key is cut",
            long_key.into_bytes(),
            &["unknown key", "… ("],
        ),
        (
            "alias bomb",
            bomb.into_bytes(),
            &["exp.yaml:", "more than 100000 nodes"],
        ),
        (
            "deep nesting",
            deep.into_bytes(),
            &["exp.yaml:", "nesting deeper than 64 levels"],
        ),
        (
            "a file over the size bound",
            vec![b'#'; (1 << 20) + 1],
            &["exp.yaml", "larger than 1 MiB"],
        ),
    ];
    for (name, text, needles) in &files {
        std::fs::write(dir.path().join("exp.yaml"), text).unwrap();
        check_config(name, &["train", "file", "exp.yaml"], dir.path(), needles);
    }
    check(
        "missing file",
        &["train", "file", "nope.yaml"],
        dir.path(),
        &["nope.yaml", "cannot be read", "does not exist"],
    );
    std::fs::create_dir(dir.path().join("afolder")).unwrap();
    check(
        "a folder",
        &["train", "file", "afolder"],
        dir.path(),
        &["afolder", "is a folder"],
    );
    check_config(
        "an endless file",
        &["train", "file", "/dev/zero"],
        dir.path(),
        &["/dev/zero", "larger than 1 MiB"],
    );
    let d = dir.path();
    std::os::unix::fs::symlink(d.join("nowhere.yaml"), d.join("dangling.yaml")).unwrap();
    std::os::unix::fs::symlink(d.join("loop2.yaml"), d.join("loop1.yaml")).unwrap();
    std::os::unix::fs::symlink(d.join("loop1.yaml"), d.join("loop2.yaml")).unwrap();
    check(
        "dangling link",
        &["train", "file", "dangling.yaml"],
        d,
        &["dangling.yaml", "dangling symbolic link", "nowhere.yaml"],
    );
    check(
        "link loop",
        &["train", "file", "loop1.yaml"],
        d,
        &["loop1.yaml", "loop of symbolic links"],
    );
}

/// Configs this machine cannot run: more CPUs than it has, more memory than is available.
/// Each is refused before a thread is started or a folder made.
#[test]
fn configs_beyond_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stop = r#"{"training_iteration": 2}"#;
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "a train batch of 10^12 rows",
            r#"{"train_batch_size": 1000000000000}"#,
            &[
                "needs about",
                "available",
                "train_batch_size: 1000000000000",
            ],
        ),
        (
            "a rollout fragment of 10^12 steps",
            r#"{"rollout_fragment_length": 1000000000000}"#,
            &["needs about", "rollout_fragment_length: 1000000000000"],
        ),
        (
            "a minibatch of 10^12 rows",
            r#"{"train_batch_size": 1000000000000, "minibatch_size": 1000000000000}"#,
            &["needs about", "minibatch_size: 1000000000000"],
        ),
        (
            "two 100,000-wide layers",
            r#"{"model": {"fcnet_hiddens": [100000, 100000]}}"#,
            &["needs about", "model.fcnet_hiddens: [100000, 100000]"],
        ),
        (
            "a billion envs per runner",
            r#"{"num_envs_per_env_runner": 1000000000}"#,
            &["needs about", "num_envs_per_env_runner: 1000000000"],
        ),
        (
            "100,000 learner threads",
            r#"{"num_cpus_per_learner": 100000}"#,
            &["num_cpus_per_learner: 100000", "this machine has", "CPUs"],
        ),
        (
            "1,000 learner threads",
            r#"{"num_cpus_per_learner": 1000}"#,
            &["num_cpus_per_learner: 1000", "auto"],
        ),
        (
            "10,000 env runners",
            r#"{"num_env_runners": 10000}"#,
            &[
                "num_env_runners: 10000",
                "need 10000 CPUs",
                "this machine has",
            ],
        ),
        (
            "env runners that each want many CPUs",
            r#"{"num_env_runners": 2, "num_cpus_per_env_runner": 1000}"#,
            &["num_cpus_per_env_runner: 1000", "need 2000 CPUs"],
        ),
    ];
    for (name, config, needles) in cases {
        check_config(
            name,
            &["train", "--stop", stop, "--config", config],
            d,
            needles,
        );
    }
    check_config(
        "10,000 env runners by flag",
        &["train", "--stop", stop, "--num-env-runners", "10000"],
        d,
        &["num_env_runners: 10000", "need 10000 CPUs"],
    );
}

#[test]
fn bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    check_config(
        "SAC on a discrete env",
        &["train", "--algo", "SAC", "--env", "CartPole-v1"],
        d,
        &[
            "SAC here needs a Box action space",
            "CartPole-v1 has Discrete(2)",
        ],
    );
    check_config(
        "DQN on a continuous env",
        &["train", "--algo", "DQN", "--env", "Pendulum-v1"],
        d,
        &["DQN needs a Discrete action space", "Pendulum-v1 has Box"],
    );
    check_config(
        "a noise correlation of 1.5",
        &[
            "train",
            "--algo",
            "SAC",
            "--env",
            "Pendulum-v1",
            "--config",
            r#"{"exploration_noise_correlation": 1.5}"#,
        ],
        d,
        &["config.exploration_noise_correlation", "<= 0.999"],
    );
    check_config(
        "malformed --stop",
        &["train", "--stop", "{oops"],
        d,
        &["--stop", "YAML syntax error"],
    );
    check_config(
        "--stop not a mapping",
        &["train", "--stop", "5"],
        d,
        &["--stop", "expected a mapping"],
    );
    check_config(
        "--stop fractional iterations",
        &["train", "--stop", r#"{"training_iteration": 1.5}"#],
        d,
        &["--stop", "stop.training_iteration", "whole number"],
    );
    check_config(
        "--stop that can never fire",
        &[
            "train",
            "--stop",
            r#"{"evaluation/env_runners/episode_return_mean": 400}"#,
        ],
        d,
        &["--stop:1:2", "can never be met", "evaluation_interval"],
    );
    check_config(
        "malformed --config",
        &["train", "--config", "{\"lr\": }"],
        d,
        &["--config"],
    );
    check_config(
        "--config bad value",
        &["train", "--config", "{\"gamma\": \"high\"}"],
        d,
        &["config.gamma", "expected a number"],
    );
    check_config(
        "--config reversed schedule points at the key",
        &[
            "train",
            "--config",
            r#"{"lr_schedule": [[100, 0.1], [0, 0.2]]}"#,
        ],
        d,
        &[
            "--config:1:31",
            "config.lr_schedule",
            "timestep 0 comes after 100",
        ],
    );
    check_config(
        "--config minibatch larger than the flag's batch",
        &[
            "train",
            "--config",
            r#"{"train_batch_size": 100, "minibatch_size": 200}"#,
        ],
        d,
        &["--config:1:27", "minibatch_size", "train_batch_size 100"],
    );
    check_config(
        "--config duplicate key",
        &["train", "--config", r#"{"lr": 0.1, "lr": 0.2}"#],
        d,
        &["--config:1:13", "duplicate key 'lr'"],
    );
    check_config(
        "--config alias bomb",
        &[
            "train",
            "--config",
            "{a: &a [1,1,1,1,1,1,1,1,1,1], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], e: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]}",
        ],
        d,
        &["--config", "more than 100000 nodes"],
    );
    check_config(
        "--seed not a number",
        &["train", "--seed", "abc"],
        d,
        &["--seed", "abc"],
    );
    check_config(
        "negative runners",
        &["train", "--num-env-runners", "-1"],
        d,
        &["--num-env-runners"],
    );
    check_config(
        "unknown device",
        &["train", "--device", "tpu"],
        d,
        &["--device", "tpu"],
    );
    check_config(
        "cuda without the feature",
        &["train", "--device", "cuda"],
        d,
        &["--features cuda"],
    );
    check_config(
        "unknown algorithm flag",
        &["train", "--algo", "PPG"],
        d,
        &["unknown algorithm 'PPG'", "did you mean 'PPO'"],
    );
    check_config(
        "unknown env flag",
        &["train", "--env", "CartPole-v2"],
        d,
        &["--env", "unknown env id 'CartPole-v2'"],
    );
    check(
        "unknown example",
        &["example", "run", "cartpole-pg"],
        d,
        &["unknown example 'cartpole-pg'", "cartpole-dqn"],
    );
    check(
        "zero episodes",
        &["evaluate", ".", "--episodes", "0"],
        d,
        &["--episodes 0", "at least 1"],
    );
    std::os::unix::fs::symlink(d.join("gone"), d.join("out")).unwrap();
    check(
        "output folder is a dangling link",
        &[
            "train",
            "--output-dir",
            "out",
            "--stop",
            r#"{"training_iteration": 1}"#,
            "--config",
            r#"{"train_batch_size": 100, "minibatch_size": 50}"#,
        ],
        d,
        &[
            "out",
            "cannot create the run folder",
            "dangling symbolic link",
        ],
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

/// A one-iteration cartpole-ppo checkpoint (MeanStdFilter, [32] linear) under `d/runs`.
fn good_checkpoint(d: &Path) -> PathBuf {
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
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The run's folder (beside it: Tune's experiment files).
    std::fs::read_dir(d.join("runs/cartpole-ppo"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .unwrap()
        .join("checkpoint_000001")
}

const WEIGHTS: &str = "learner_group/learner/rl_module/default_policy/module_state.safetensors";
const OPTIMIZER: &str = "learner_group/learner/optimizer.safetensors";

/// Overwrites the first value of a safetensors file's first tensor.
fn poison_first_value(path: &Path, value: f32) {
    let mut b = std::fs::read(path).unwrap();
    let header = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    b[8 + header..8 + header + 4].copy_from_slice(&value.to_le_bytes());
    std::fs::write(path, b).unwrap();
}

/// Sets the first `exp_avg_sq.*` value of the optimizer file.
fn poison_second_moment(c: &Path, value: f32) {
    let p = c.join(OPTIMIZER);
    let mut b = std::fs::read(&p).unwrap();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&b[8..8 + n]).unwrap();
    let (_, t) = header
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.starts_with("exp_avg_sq."))
        .unwrap();
    let start = t["data_offsets"][0].as_u64().unwrap() as usize;
    b[8 + n + start..8 + n + start + 4].copy_from_slice(&value.to_le_bytes());
    std::fs::write(p, b).unwrap();
}

fn edit_json(c: &Path, file: &str, f: impl FnOnce(&mut serde_json::Value)) {
    let p = c.join(file);
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(p, v.to_string()).unwrap();
}

fn edit_meta(c: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    edit_json(c, "metadata.json", f);
}

#[test]
fn bad_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = good_checkpoint(d);
    assert!(rllib(&["evaluate", good.to_str().unwrap(), "--episodes", "1"], d).0);

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
                "'training_iteration'",
                "expected a whole number >= 0",
            ],
        ),
        (
            "an iteration counter at 2^64-1",
            |c| edit_meta(c, |m| m["training_iteration"] = u64::MAX.into()),
            &[
                "metadata.json",
                "'training_iteration' is 18446744073709551615",
                "2^53",
            ],
        ),
        (
            "negative wall time",
            |c| edit_meta(c, |m| m["time_total_s"] = (-5.0).into()),
            &["metadata.json", "'time_total_s' is -5", ">= 0"],
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
            "a module for another observation size",
            |c| edit_meta(c, |m| m["module_spec"]["obs_dim"] = 5.into()),
            &["module_state.safetensors", "expected [32, 5]"],
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
                let p = c.join(WEIGHTS);
                let b = std::fs::read(&p).unwrap();
                std::fs::write(&p, &b[..b.len() - 9]).unwrap();
            },
            &["module_state.safetensors", "not a valid safetensors"],
        ),
        (
            "NaN weights",
            |c| poison_first_value(&c.join(WEIGHTS), f32::NAN),
            &["module_state.safetensors", "holds NaN at index 0", "finite"],
        ),
        (
            "infinite weights",
            |c| poison_first_value(&c.join(WEIGHTS), f32::INFINITY),
            &["module_state.safetensors", "holds inf"],
        ),
        (
            "NaN in Adam's first moments",
            |c| poison_first_value(&c.join(OPTIMIZER), f32::NAN),
            &["optimizer.safetensors", "holds NaN"],
        ),
        (
            "a negative second moment",
            |c| poison_second_moment(c, -1.0),
            &["optimizer.safetensors", "exp_avg_sq", "negative"],
        ),
        (
            "an endless weights file",
            |c| {
                std::fs::remove_file(c.join(WEIGHTS)).unwrap();
                std::os::unix::fs::symlink("/dev/zero", c.join(WEIGHTS)).unwrap();
            },
            &["module_state.safetensors", "is larger than"],
        ),
        (
            "missing weights",
            |c| std::fs::remove_file(c.join(WEIGHTS)).unwrap(),
            &[
                "module_state.safetensors",
                "cannot be read",
                "does not exist",
            ],
        ),
        (
            "weights behind a dangling link",
            |c| {
                std::fs::remove_file(c.join(WEIGHTS)).unwrap();
                std::os::unix::fs::symlink("/nonexistent/w.safetensors", c.join(WEIGHTS)).unwrap();
            },
            &["module_state.safetensors", "dangling symbolic link"],
        ),
        (
            "missing optimizer",
            |c| std::fs::remove_file(c.join(OPTIMIZER)).unwrap(),
            &["optimizer.safetensors", "cannot be read"],
        ),
        (
            "negative KL coefficient",
            |c| {
                edit_json(c, "learner_group/learner/state.json", |v| {
                    v["kl_coeff"] = (-1.0).into()
                })
            },
            &["state.json", "'kl_coeff' is -1", ">= 0"],
        ),
        (
            "a generator state that is not hexadecimal",
            |c| {
                edit_json(c, "learner_group/learner/state.json", |v| {
                    v["shuffle_rng"]["state"] = "zz".into()
                })
            },
            &["state.json", "'shuffle_rng.state'", "hexadecimal"],
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
        (
            "a negative variance sum",
            |c| {
                edit_json(c, "env_runner/state.json", |v| {
                    v["filter"]["m2"][2] = (-3.0).into()
                })
            },
            &["state.json", "'filter.m2' holds -3 at index 2", ">= 0"],
        ),
        (
            "no filter under a MeanStdFilter config",
            |c| {
                edit_json(c, "env_runner/state.json", |v| {
                    v["filter"] = serde_json::Value::Null
                })
            },
            &["state.json", "'filter' is null", "MeanStdFilter"],
        ),
        (
            "a filter count at 2^64-1",
            |c| {
                edit_json(c, "env_runner/state.json", |v| {
                    v["filter"]["count"] = u64::MAX.into()
                })
            },
            &["state.json", "'filter.count'", "2^53"],
        ),
        (
            "an episode window longer than RLlib's",
            |c| {
                edit_json(c, "env_runner/state.json", |v| {
                    v["episode_window"] = serde_json::json!(vec![(10.0, 10); 101])
                })
            },
            &["state.json", "'episode_window' holds 101 episodes"],
        ),
        (
            "a NaN observation in a runner's state",
            |c| {
                edit_json(c, "env_runner/state.json", |v| {
                    v["runners"][0]["obs_bits"][0] = f32::NAN.to_bits().into()
                })
            },
            &["state.json", "'runners[0].obs_bits'", "non-finite"],
        ),
        (
            "an unknown key in the runner state",
            |c| edit_json(c, "env_runner/state.json", |v| v["filtre"] = 1.into()),
            &["state.json", "unknown key 'filtre'"],
        ),
    ];
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
    std::os::unix::fs::symlink(d.join("gone"), d.join("ckpt-link")).unwrap();
    check(
        "a checkpoint behind a dangling link",
        &["evaluate", "ckpt-link"],
        d,
        &["ckpt-link", "dangling symbolic link"],
    );
    std::os::unix::fs::symlink(d.join("loopy-b"), d.join("loopy-a")).unwrap();
    std::os::unix::fs::symlink(d.join("loopy-a"), d.join("loopy-b")).unwrap();
    check(
        "a checkpoint link loop",
        &["evaluate", "loopy-a", "--episodes", "1"],
        d,
        &["loopy-a", "loop of symbolic links"],
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
        &[
            "--config:1:2",
            "config.model",
            "cannot change when restoring",
            "model.fcnet_hiddens is [32], this run's would be [8]",
            "lr",
        ],
    );
    check(
        "restore without the filter",
        &[
            "train",
            "--restore",
            g,
            "--config",
            r#"{"observation_filter": "NoFilter"}"#,
            "--output-dir",
            "r2",
        ],
        d,
        &["config.observation_filter", "cannot change when restoring"],
    );
    check(
        "restore with another initial KL coefficient",
        &[
            "train",
            "--restore",
            g,
            "--config",
            r#"{"kl_coeff": 0.5}"#,
            "--output-dir",
            "r2",
        ],
        d,
        &["config.kl_coeff", "cannot change when restoring"],
    );
    let nan_env = d.join("nan-env/checkpoint_000001");
    copy_dir(&good, &nan_env);
    edit_json(&nan_env, "env_runner/state.json", |v| {
        v["runners"][0]["envs"][0][2] = f64::NAN.to_bits().into()
    });
    check(
        "restore of a runner whose env state is not finite",
        &[
            "train",
            "--restore",
            nan_env.to_str().unwrap(),
            "--output-dir",
            "r3",
        ],
        d,
        &["'runners[0]'", "CartPole-v1: a non-finite physical state"],
    );
    assert!(!d.join("r3").exists(), "refused before a folder is made");
    check(
        "evaluate with the wrong algo",
        &["evaluate", g, "--algo", "APPO"],
        d,
        &["--algo APPO", "the checkpoint is PPO"],
    );
    check(
        "render into a missing folder",
        &["evaluate", g, "--render", "no/such/dir/ep.gif"],
        d,
        &["--render no/such/dir/ep.gif", "cannot be written"],
    );
}
