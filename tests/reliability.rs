//! Reliability of the `rllib` binary: determinism, non-finite losses, Ctrl-C, and checkpoints
//! that survive SIGKILL at any moment.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn rllib() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rllib"))
}

fn run(args: &[&str], cwd: &Path) -> Output {
    rllib()
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the rllib binary runs")
}

fn trial_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|exp| {
            std::fs::read_dir(exp.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|t| t.path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

fn checkpoint_dirs(trial: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(trial)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("checkpoint_"))
        })
        .collect();
    out.sort();
    out
}

/// progress.csv without its time-dependent columns.
fn untimed_progress(trial: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(trial.join("progress.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let keep: Vec<usize> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| !h.starts_with("time") && !h.ends_with("throughput"))
        .map(|(i, _)| i)
        .collect();
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            keep.iter().map(|&i| cells[i].to_string()).collect()
        })
        .collect()
}

/// Same seed, same runner count: same results, also when the learner runs on another number of
/// threads (minibatches of 500 rows are 4 blocks of the fused learner).
#[test]
fn the_same_seed_gives_the_same_progress_on_any_learner_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    for (out, threads) in [("a", "1"), ("b", "3")] {
        let config = format!(
            r#"{{"train_batch_size": 1000, "minibatch_size": 500, "num_epochs": 2, "num_cpus_per_learner": {threads}, "model": {{"fcnet_hiddens": [16]}}}}"#
        );
        let o = run(
            &[
                "train",
                "--seed",
                "7",
                "--num-env-runners",
                "2",
                "--output-dir",
                out,
                "--stop",
                r#"{"training_iteration": 3}"#,
                "--config",
                &config,
            ],
            dir.path(),
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let a = untimed_progress(&trial_dirs(&dir.path().join("a"))[0]);
    let b = untimed_progress(&trial_dirs(&dir.path().join("b"))[0]);
    assert_eq!(a.len(), 3);
    assert_eq!(a, b);
}

#[test]
fn a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    // The learning rate explodes after 8000 env steps: iteration 3 diverges.
    let o = run(
        &[
            "example",
            "run",
            "cartpole-ppo",
            "--seed",
            "1",
            "--checkpoint-freq",
            "1",
            "--output-dir",
            "runs",
            "--stop",
            r#"{"training_iteration": 10}"#,
            "--config",
            r#"{"lr_schedule": [[0, 0.0003], [8000, 0.0003], [8001, 1e30]]}"#,
        ],
        dir.path(),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("iteration 3") && err.contains("not finite"),
        "{err}"
    );
    assert!(err.contains("checkpoint_000002"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let trial = &trial_dirs(&dir.path().join("runs"))[0];
    let ckpts = checkpoint_dirs(trial);
    assert_eq!(
        ckpts.last().unwrap().file_name().unwrap(),
        "checkpoint_000002"
    );
    rllib::checkpoint::load(ckpts.last().unwrap()).unwrap();
}

#[test]
fn ctrl_c_writes_a_final_checkpoint_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let child = rllib()
        .args([
            "example",
            "run",
            "cartpole-ppo",
            "--seed",
            "2",
            "--output-dir",
            "runs",
            "--stop",
            "{}",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let it train a few iterations (it never stops by itself).
    let trial = loop {
        std::thread::sleep(Duration::from_millis(100));
        if let Some(t) = trial_dirs(&dir.path().join("runs")).first() {
            let csv = std::fs::read_to_string(t.join("progress.csv")).unwrap_or_default();
            if csv.lines().count() >= 3 {
                break t.clone();
            }
        }
    };
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let code = out.status.code();
    assert!(code == Some(130) || code == Some(0), "{code:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Stopped: interrupted"));
    let ckpts = checkpoint_dirs(&trial);
    assert_eq!(ckpts.len(), 1);
    let ck = rllib::checkpoint::load(&ckpts[0]).unwrap();
    let rows = std::fs::read_to_string(trial.join("progress.csv"))
        .unwrap()
        .lines()
        .count()
        - 1;
    assert_eq!(
        ck.counters.iteration, rows as u64,
        "the checkpoint is of the last iteration"
    );
}

#[test]
fn sigkill_at_any_moment_leaves_only_loadable_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut loaded = 0;
    // Kill runs at 24 different moments, from start-up to mid-training.
    for k in 0..24u64 {
        let out = format!("runs{k}");
        let mut child = rllib()
            .args([
                "example",
                "run",
                "cartpole-ppo",
                "--seed",
                "3",
                "--checkpoint-freq",
                "1",
                "--output-dir",
                &out,
                "--stop",
                "{}",
                "--config",
                r#"{"train_batch_size": 500, "minibatch_size": 100}"#,
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(5 + k * 17));
        child.kill().unwrap();
        child.wait().unwrap();
        for trial in trial_dirs(&dir.path().join(&out)) {
            for ck in checkpoint_dirs(&trial) {
                if let Err(e) = rllib::checkpoint::load(&ck) {
                    panic!("kill after {} ms left a broken checkpoint: {e}", 5 + k * 17);
                }
                loaded += 1;
            }
        }
    }
    assert!(
        loaded > 24,
        "the kills should land after some checkpoints, loaded {loaded}"
    );
}

#[test]
fn a_second_ctrl_c_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // A heavy config so that an iteration takes a while.
    let child = rllib()
        .args([
            "train",
            "--seed",
            "2",
            "--output-dir",
            "runs",
            "--stop",
            "{}",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let pid = child.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted twice"));
}
