//! End-to-end tests of the `rllib` binary: train, checkpoint, evaluate, restore, examples,
//! and clear errors for bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rllib(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rllib"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the rllib binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The checkpoint folders under `root`, sorted.
fn checkpoints(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("checkpoint_"))
                {
                    out.push(p);
                } else {
                    stack.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn example_trains_checkpoints_evaluates_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let out = rllib(
        &[
            "example",
            "run",
            "cartpole-ppo",
            "--seed",
            "3",
            "--output-dir",
            "runs",
            "--stop",
            r#"{"env_runners/episode_return_mean": 60, "training_iteration": 30}"#,
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Stopped: env_runners/episode_return_mean"),
        "{text}"
    );
    assert!(
        stderr(&out).contains("framework: tf is ignored"),
        "one warning line for framework"
    );

    let ckpts = checkpoints(&dir.path().join("runs"));
    assert_eq!(ckpts.len(), 1, "{ckpts:?}");
    let ckpt = &ckpts[0];
    let trial = ckpt.parent().unwrap();
    for f in ["params.yaml", "progress.csv", "result.json"] {
        assert!(trial.join(f).is_file(), "{f} missing");
    }
    assert!(std::fs::read_dir(trial).unwrap().flatten().any(|e| {
        e.file_name()
            .to_string_lossy()
            .starts_with("events.out.tfevents.")
    }));
    let csv = std::fs::read_to_string(trial.join("progress.csv")).unwrap();
    let rows = csv.lines().count() - 1;
    assert!(rows >= 1);
    for line in std::fs::read_to_string(trial.join("result.json"))
        .unwrap()
        .lines()
    {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["env_runners"]["episode_return_mean"].is_number() || rows == 1);
    }
    assert!(ckpt.join("metadata.json").is_file());
    assert!(
        ckpt.join("learner_group/learner/rl_module/default_policy/module_state.safetensors")
            .is_file()
    );

    let ck = ckpt.to_str().unwrap();
    let eval = rllib(
        &[
            "evaluate",
            ck,
            "--episodes",
            "5",
            "--algo",
            "PPO",
            "--env",
            "CartPole-v1",
            "--render",
            "ep.gif",
        ],
        dir.path(),
    );
    assert!(eval.status.success(), "{}", stderr(&eval));
    let gif = std::fs::read(dir.path().join("ep.gif")).unwrap();
    assert_eq!(&gif[..6], b"GIF89a");
    let mismatch = bad(&["evaluate", ck, "--env", "MountainCar-v0"], dir.path());
    assert!(mismatch.contains("trained on CartPole-v1"), "{mismatch}");
    let mean: f64 = stdout(&eval)
        .lines()
        .find_map(|l| l.strip_prefix("episode_return_mean: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("evaluate prints the mean return");
    assert!(
        mean > 30.0,
        "greedy return of a policy trained to 60: {mean}"
    );

    // Restoring continues the iteration count and the env-step counter.
    let iters = rows as u64;
    let stop = format!(r#"{{"training_iteration": {}}}"#, iters + 2);
    let resumed = rllib(
        &[
            "example",
            "run",
            "cartpole-ppo",
            "--restore",
            ck,
            "--output-dir",
            "resumed",
            "--stop",
            &stop,
        ],
        dir.path(),
    );
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let trial2 = checkpoints(&dir.path().join("resumed"))[0]
        .parent()
        .unwrap()
        .to_path_buf();
    let csv2 = std::fs::read_to_string(trial2.join("progress.csv")).unwrap();
    let first: Vec<&str> = csv2.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(first[0], (iters + 1).to_string(), "{csv2}");
    let header: Vec<&str> = csv2.lines().next().unwrap().split(',').collect();
    let steps_col = header
        .iter()
        .position(|h| *h == "num_env_steps_sampled_lifetime")
        .unwrap();
    assert_eq!(first[steps_col], ((iters + 1) * 4000).to_string());
}

#[test]
fn examples_are_listed_and_printed() {
    let dir = tempfile::tempdir().unwrap();
    let list = rllib(&["example", "list", "--filter", "cartpole"], dir.path());
    assert!(stdout(&list).contains("cartpole-ppo"));
    let get = rllib(&["example", "get", "cartpole-ppo"], dir.path());
    assert_eq!(stdout(&get), include_str!("../configs/cartpole-ppo.yaml"));
    let bad = rllib(&["example", "get", "cartpole-pp"], dir.path());
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("did you mean 'cartpole-ppo'"),
        "{}",
        stderr(&bad)
    );
}

/// Runs `rllib train file` on `yaml` and returns stderr, checking the failure is clean.
fn bad_file(yaml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exp.yaml"), yaml).unwrap();
    bad(&["train", "file", "exp.yaml"], dir.path())
}

fn bad(args: &[&str], cwd: &Path) -> String {
    let out = rllib(args, cwd);
    let err = stderr(&out);
    assert!(
        !out.status.success(),
        "{args:?} should fail: {}",
        stdout(&out)
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    err
}

const GOOD: &str = "exp:\n  env: CartPole-v1\n  run: PPO\n  stop:\n    training_iteration: 1\n  config:\n    num_sgd_iter: 1\n";

#[test]
fn bad_configs_fail_with_a_clear_message() {
    let e = bad_file(&GOOD.replace("num_sgd_iter: 1", "num_sgd_itr: 1"));
    assert!(
        e.contains("exp.yaml:7:5") && e.contains("did you mean 'num_sgd_iter'"),
        "{e}"
    );
    let e = bad_file(&GOOD.replace("num_sgd_iter: 1", "lr: fast"));
    assert!(
        e.contains("exp.config.lr") && e.contains("expected a number"),
        "{e}"
    );
    let e = bad_file(&GOOD.replace("num_sgd_iter: 1", "gamma: 1.5"));
    assert!(e.contains("gamma") && e.contains("out of range"), "{e}");
    let e = bad_file(&GOOD.replace(
        "num_sgd_iter: 1",
        "train_batch_size: 100\n    minibatch_size: 200",
    ));
    assert!(
        e.contains("minibatch_size") && e.contains("train_batch_size"),
        "{e}"
    );
    let e = bad_file("exp:\n  env: CartPole-v1\n  run: [PPO\n");
    assert!(e.contains("YAML syntax error"), "{e}");
    let e = bad_file("");
    assert!(e.contains("is empty"), "{e}");
    let e = bad_file(&GOOD.replace("CartPole-v1", "CartPole-v9"));
    assert!(
        e.contains("unknown env id 'CartPole-v9'") && e.contains("CartPole-v1"),
        "{e}"
    );
    let e = bad_file(&GOOD.replace("run: PPO", "run: PPOO"));
    assert!(
        e.contains("unknown algorithm 'PPOO'") && e.contains("did you mean 'PPO'"),
        "{e}"
    );
    let e = bad_file(&GOOD.replace("training_iteration", "training_iterations"));
    assert!(
        e.contains("exp.stop.training_iterations") && e.contains("did you mean"),
        "{e}"
    );
    let e = bad_file(&GOOD.replace("num_sgd_iter: 1", "model:\n      fcnet_hiddens: 32"));
    assert!(e.contains("fcnet_hiddens") && e.contains("a list"), "{e}");
    let e = bad_file(&GOOD.replace("num_sgd_iter: 1", "model:\n      fcnet_activation: gelu"));
    assert!(e.contains("unknown activation 'gelu'"), "{e}");
}

#[test]
fn bad_paths_and_flags_fail_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let e = bad(&["train", "file", "missing.yaml"], dir.path());
    assert!(
        e.contains("missing.yaml") && e.contains("cannot be read"),
        "{e}"
    );
    std::fs::create_dir(dir.path().join("folder.yaml")).unwrap();
    let e = bad(&["train", "file", "folder.yaml"], dir.path());
    assert!(e.contains("is a folder"), "{e}");
    let e = bad(&["train", "--stop", "{not json"], dir.path());
    assert!(e.contains("--stop") && e.contains("syntax"), "{e}");
    let e = bad(&["train", "--config", "[1, 2]"], dir.path());
    assert!(
        e.contains("--config") && e.contains("expected a mapping"),
        "{e}"
    );
    let e = bad(&["train", "--config", r#"{"num_epochs": -1}"#], dir.path());
    assert!(e.contains("config.num_epochs") && e.contains(">= 1"), "{e}");
    let e = bad(&["train", "--seed", "abc"], dir.path());
    assert!(e.contains("--seed"), "{e}");
    let e = bad(&["evaluate", "nowhere"], dir.path());
    assert!(e.contains("nowhere") && e.contains("does not exist"), "{e}");
    let e = bad(&["evaluate", "."], dir.path());
    assert!(e.contains("no metadata.json"), "{e}");
    let e = bad(&["train", "--restore", "nowhere"], dir.path());
    assert!(e.contains("nowhere"), "{e}");
}

/// The trial folders under `root/<experiment>/`, with the experiment's folder name.
fn trials(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for exp in std::fs::read_dir(root).into_iter().flatten().flatten() {
        for t in std::fs::read_dir(exp.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            // Beside the trial folders: Tune's experiment files.
            if t.path().is_dir() {
                out.push((exp.file_name().to_string_lossy().into_owned(), t.path()));
            }
        }
    }
    out.sort();
    out
}

fn filter_count(ckpt: &Path) -> u64 {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join("env_runner/state.json")).unwrap())
            .unwrap();
    v["filter"]["count"].as_u64().expect("a filter is saved")
}

/// `--restore` takes the config from the checkpoint (as RLlib's `from_checkpoint`): a plain
/// `rllib train --restore` continues cartpole-ppo's [32] linear MeanStdFilter network, keeps
/// the filter's statistics and the experiment's name; keys that may change mid-run do.
#[test]
fn a_restored_run_takes_its_config_and_state_from_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let first = rllib(
        &[
            "example",
            "run",
            "cartpole-ppo",
            "--seed",
            "5",
            "--output-dir",
            "a",
            "--stop",
            r#"{"training_iteration": 3}"#,
        ],
        d,
    );
    assert!(first.status.success(), "{}", stderr(&first));
    let ck = checkpoints(&d.join("a")).pop().unwrap();
    let count = filter_count(&ck);
    assert!(count >= 12_000, "{count}");

    let resumed = rllib(
        &[
            "train",
            "--restore",
            ck.to_str().unwrap(),
            "--output-dir",
            "b",
            "--stop",
            r#"{"training_iteration": 5}"#,
            "--config",
            r#"{"lr": 0.0005, "num_env_runners": 2}"#,
        ],
        d,
    );
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let (experiment, trial) = trials(&d.join("b")).remove(0);
    assert_eq!(experiment, "cartpole-ppo", "the checkpoint's experiment");
    let params = std::fs::read_to_string(trial.join("params.yaml")).unwrap();
    for line in [
        "fcnet_hiddens: [32]",
        "fcnet_activation: linear",
        "observation_filter: MeanStdFilter",
        "num_epochs: 6",
        "lr: 0.0005",
        "num_env_runners: 2",
    ] {
        assert!(params.contains(line), "{line} missing from:\n{params}");
    }
    let after = checkpoints(&d.join("b")).pop().unwrap();
    assert!(after.ends_with("checkpoint_000005"), "{after:?}");
    // Two more iterations of 4000 steps were added to the restored statistics.
    assert_eq!(filter_count(&after), count + 8000);
    let csv = std::fs::read_to_string(trial.join("progress.csv")).unwrap();
    assert!(csv.lines().nth(1).unwrap().starts_with("4,"), "{csv}");
}

/// Experiment names become one safe folder name inside the output folder.
#[test]
fn experiment_names_stay_inside_the_output_folder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("work");
    std::fs::create_dir(&d).unwrap();
    let body = "  env: CartPole-v1\n  run: ppo\n  stop: {training_iteration: 1}\n  config: {train_batch_size: 100, minibatch_size: 50, model: {fcnet_hiddens: [8]}}\n";
    let cases = [
        ("\"../../escaped\"", "_._.._escaped"),
        ("\"/tmp/absolute\"", "_tmp_absolute"),
        ("\"with/slash\"", "with_slash"),
        ("\u{feff}bom", "bom"),
        ("\"tab\there\"", "tab_here"),
    ];
    for (key, folder) in cases {
        std::fs::write(d.join("exp.yaml"), format!("{key}:\n{body}")).unwrap();
        let out = rllib(&["train", "file", "exp.yaml", "--output-dir", "runs"], &d);
        assert!(out.status.success(), "{key}: {}", stderr(&out));
        assert!(d.join("runs").join(folder).is_dir(), "{key} -> {folder}");
    }
    let mut made: Vec<String> = std::fs::read_dir(d.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    made.sort();
    assert_eq!(
        made,
        [
            "_._.._escaped",
            "_tmp_absolute",
            "bom",
            "tab_here",
            "with_slash"
        ]
    );
    // Nothing was written beside the working folder or at the absolute path.
    let beside: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(beside.len(), 1);
    assert!(!Path::new("/tmp/absolute").exists());
}

/// RLlib's registry takes algorithm names in any case.
#[test]
fn algorithm_names_are_case_insensitive() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = rllib(
        &[
            "train",
            "--algo",
            "ppo",
            "--output-dir",
            "runs",
            "--stop",
            r#"{"training_iteration": 1}"#,
            "--config",
            r#"{"train_batch_size": 100, "minibatch_size": 50, "model": {"fcnet_hiddens": [8]}}"#,
        ],
        d,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Training PPO on CartPole-v1"));
    let ck = checkpoints(&d.join("runs")).pop().unwrap();
    let eval = rllib(
        &[
            "evaluate",
            ck.to_str().unwrap(),
            "--algo",
            "ppo",
            "--episodes",
            "1",
        ],
        d,
    );
    assert!(eval.status.success(), "{}", stderr(&eval));
}

#[test]
fn grid_search_in_a_yaml_runs_one_tune_trial_per_variant() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("grid.yaml"),
        "cartpole-grid:\n  env: CartPole-v1\n  run: PPO\n  stop:\n    training_iteration: 2\n  config:\n    lr: {grid_search: [0.001, 0.0003]}\n    num_env_runners: 1\n    model:\n      fcnet_hiddens: {grid_search: [[32, 32], [64, 64]]}\n",
    )
    .unwrap();
    let o = rllib(
        &[
            "train",
            "file",
            "grid.yaml",
            "--seed",
            "1",
            "--num-samples",
            "2",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("8 trials") && out.contains("Best trial"),
        "{out}"
    );
    let exp = dir.path().join("checkpoints/cartpole-grid");
    let csv = std::fs::read_to_string(exp.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 9, "{csv}");
    // Each trial is a whole RLlib run in its Tune folder, with its variant's config.
    let mut seen = Vec::new();
    for e in std::fs::read_dir(&exp).unwrap().flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        let params = std::fs::read_to_string(p.join("params.yaml")).unwrap();
        let lr = params
            .lines()
            .find(|l| l.starts_with("lr:"))
            .unwrap()
            .to_string();
        let h = params
            .lines()
            .find(|l| l.trim_start().starts_with("fcnet_hiddens:"))
            .unwrap()
            .trim()
            .to_string();
        assert!(p.join("checkpoint_000002").is_dir(), "{}", p.display());
        assert_eq!(
            std::fs::read_to_string(p.join("progress.csv"))
                .unwrap()
                .lines()
                .count(),
            3
        );
        seen.push(format!("{lr} {h}"));
    }
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen,
        [
            "lr: 0.0003 fcnet_hiddens: [32, 32]",
            "lr: 0.0003 fcnet_hiddens: [64, 64]",
            "lr: 0.001 fcnet_hiddens: [32, 32]",
            "lr: 0.001 fcnet_hiddens: [64, 64]",
        ]
    );
    // A value given on the command line replaces the file's search over that key.
    let o = rllib(
        &[
            "train",
            "file",
            "grid.yaml",
            "--config",
            r#"{"lr": 0.01}"#,
            "--stop",
            r#"{"training_iteration": 1}"#,
            "--output-dir",
            "o2",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(": 2 trials"), "{}", stdout(&o));
    for e in std::fs::read_dir(dir.path().join("o2/cartpole-grid"))
        .unwrap()
        .flatten()
    {
        if e.path().is_dir() {
            let params = std::fs::read_to_string(e.path().join("params.yaml")).unwrap();
            assert!(params.lines().any(|l| l == "lr: 0.01"), "{params}");
        }
    }
    // A bad value anywhere in a grid is the usual error, with its line.
    std::fs::write(
        dir.path().join("bad.yaml"),
        "g:\n  env: CartPole-v1\n  run: PPO\n  config:\n    lr: {grid_search: [0.001, -1]}\n",
    )
    .unwrap();
    let o = rllib(&["train", "file", "bad.yaml"], dir.path());
    let err = stderr(&o);
    assert!(
        !o.status.success() && err.contains("bad.yaml:5") && err.contains("lr"),
        "{err}"
    );
    // Scheduler flags are checked before any trial runs.
    let o = rllib(
        &["train", "file", "grid.yaml", "--scheduler", "hyperband"],
        dir.path(),
    );
    assert!(
        !o.status.success() && stderr(&o).contains("fifo, asha or pbt"),
        "{}",
        stderr(&o)
    );
}

/// The PBT example: four trials at once, and every few iterations the worst clones the best's
/// checkpoint and goes on with its config perturbed (recorded in its `pbt_policy.txt` and its
/// `params.yaml`).
#[test]
fn the_pbt_example_exploits_and_explores() {
    let dir = tempfile::tempdir().unwrap();
    let o = rllib(
        &[
            "example",
            "run",
            "cartpole-ppo-pbt",
            "--seed",
            "3",
            "--stop",
            r#"{"training_iteration": 48}"#,
            "--config",
            r#"{"train_batch_size": 1000, "minibatch_size": 250}"#,
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(": 4 trials") && out.contains("Best trial"),
        "{out}"
    );
    let exp = dir.path().join("checkpoints/cartpole-ppo-pbt");
    let mut clones = 0;
    for e in std::fs::read_dir(&exp).unwrap().flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        let Ok(policy) = std::fs::read_to_string(p.join("pbt_policy.txt")) else {
            continue;
        };
        for line in policy.lines() {
            assert!(line.contains(": clone "), "{line}");
            clones += 1;
        }
        // The trial goes on with the last config it was given.
        let last = policy.lines().last().unwrap();
        let new: serde_json::Value =
            serde_json::from_str(last.rsplit(" -> ").next().unwrap()).unwrap();
        let params = std::fs::read_to_string(p.join("params.yaml")).unwrap();
        let lr = params
            .lines()
            .find_map(|l| l.strip_prefix("lr: "))
            .unwrap()
            .parse::<f64>()
            .unwrap();
        assert!(
            (lr - new["lr"].as_f64().unwrap()).abs() < 1e-12,
            "{lr} vs {last}"
        );
    }
    // Twelve perturbation points per trial (iterations 4, 8, ... 48). PBT's choices depend on
    // the order results arrive in: a trial that reports first is compared with the others'
    // older (lower) scores, and a clone is skipped when the best trial has no checkpoint yet
    // (as Ray's). With five points per trial (24 iterations) one run of the whole suite saw no
    // clone at all; with twelve, one of the four trials is the worst at some of them.
    assert!(
        clones >= 1,
        "no trial was perturbed in 48 iterations: {out}"
    );
}

/// Ctrl-C during a search keeps it resumable: the running trial ends its iteration with a
/// checkpoint, the others do not start, and `--resume` finishes every trial, the interrupted
/// one from its checkpoint (no iteration run twice, none lost).
#[test]
fn an_interrupted_search_resumes_with_resume() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("grid.yaml"),
        "resumable:\n  env: CartPole-v1\n  run: PPO\n  stop:\n    training_iteration: 120\n  config:\n    lr: {grid_search: [0.001, 0.0003, 0.0001]}\n    num_env_runners: 1\n    train_batch_size: 400\n    minibatch_size: 100\n    num_epochs: 2\n    model:\n      fcnet_hiddens: [16]\n",
    )
    .unwrap();
    // No seed: each trial draws its own and keeps it through the resume. One CPU per trial:
    // on 2 CPUs the third trial waits for CPUs at the interrupt, and must not start then.
    let args = ["train", "file", "grid.yaml"];
    let child = Command::new(env!("CARGO_BIN_EXE_rllib"))
        .args(args)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let exp = dir.path().join("checkpoints/resumable");
    let rows = |t: &Path| {
        std::fs::read_to_string(t.join("progress.csv"))
            .map(|s| s.lines().count().saturating_sub(1))
            .unwrap_or(0)
    };
    let started = std::time::Instant::now();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(5));
        if trials(dir.path().join("checkpoints").as_path())
            .iter()
            .any(|(_, t)| rows(t) >= 3)
        {
            break;
        }
        assert!(started.elapsed().as_secs() < 60, "no progress");
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(exp.join("experiment_state.json")).unwrap())
            .unwrap();
    assert_eq!(state["finished"], serde_json::json!(false));
    let statuses: Vec<&str> = state["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses
            .iter()
            .all(|s| *s == "PENDING" || *s == "TERMINATED"),
        "{statuses:?}"
    );
    let seed_of = |t: &Path| {
        std::fs::read_to_string(t.join("params.yaml"))
            .ok()
            .and_then(|p| {
                p.lines()
                    .find(|l| l.starts_with("seed:"))
                    .map(str::to_string)
            })
    };
    let seeds: Vec<(PathBuf, Option<String>)> = trials(dir.path().join("checkpoints").as_path())
        .into_iter()
        .map(|(_, t)| {
            let s = seed_of(&t);
            (t, s)
        })
        .collect();
    let o = rllib(&[&args[..], &["--resume"]].concat(), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("Resuming resumable"), "{}", stdout(&o));
    for (t, before) in seeds {
        if before.is_some() {
            assert_eq!(seed_of(&t), before, "{} kept its seed", t.display());
        }
    }
    let all = trials(dir.path().join("checkpoints").as_path());
    assert_eq!(all.len(), 3, "{all:?}");
    for (_, t) in &all {
        let csv = std::fs::read_to_string(t.join("progress.csv")).unwrap();
        let iters: Vec<u64> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(iters, (1..=120).collect::<Vec<u64>>(), "{}", t.display());
    }
    // Nothing left to resume: the finished experiment stays as it is.
    let o = rllib(&[&args[..], &["--resume"]].concat(), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    // No experiment there: a clear error.
    let o = rllib(
        &[
            "train",
            "file",
            "grid.yaml",
            "--resume",
            "--output-dir",
            "elsewhere",
        ],
        dir.path(),
    );
    assert!(
        !o.status.success() && stderr(&o).contains("no experiment to resume"),
        "{}",
        stderr(&o)
    );
}
