//! Reliability of the `rllib` binary: determinism, non-finite losses, stop signals (SIGINT,
//! SIGTERM, SIGHUP), a closed or full stdout, a full disk, and checkpoints that survive
//! SIGKILL at any moment.

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
        // Clocks, rates and the process id differ from run to run.
        .filter(|(_, h)| !h.starts_with("time") && !h.ends_with("throughput") && *h != &"pid")
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
    for (out, threads) in [("a", "1"), ("b", "2")] {
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
    // The message says which term and what feeds it: here the scheduled learning rate.
    assert!(
        err.contains("epoch ") && err.contains("minibatch ") && err.contains("policy_loss"),
        "{err}"
    );
    assert!(
        err.contains("lr = 1e30 (from lr_schedule at 12000 env steps)"),
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

/// Sends `signal` to a run that never stops by itself, once it has trained a few iterations;
/// the run must finish its iteration, write a final checkpoint of it and exit with `code`.
fn stop_with_signal(signal: &str, code: i32) {
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
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(code), "{signal}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Stopped: interrupted"),
        "{signal}: {stdout}"
    );
    let ckpts = checkpoint_dirs(&trial);
    assert_eq!(ckpts.len(), 1, "{signal}");
    let ck = rllib::checkpoint::load(&ckpts[0]).unwrap();
    let rows = std::fs::read_to_string(trial.join("progress.csv"))
        .unwrap()
        .lines()
        .count()
        - 1;
    assert_eq!(
        ck.counters().iteration,
        rows as u64,
        "{signal}: the checkpoint is of the last iteration"
    );
}

#[test]
fn ctrl_c_writes_a_final_checkpoint_and_exits_cleanly() {
    stop_with_signal("-INT", 130);
}

/// Batch schedulers and containers stop jobs with SIGTERM; a closed terminal sends SIGHUP.
#[test]
fn sigterm_and_sighup_stop_a_run_as_ctrl_c_does() {
    stop_with_signal("-TERM", 143);
    stop_with_signal("-HUP", 129);
}

const SHORT_RUN: [&str; 9] = [
    "train",
    "--seed",
    "4",
    "--output-dir",
    "runs",
    "--stop",
    r#"{"training_iteration": 3}"#,
    "--config",
    r#"{"train_batch_size": 400, "minibatch_size": 100, "num_epochs": 2, "model": {"fcnet_hiddens": [16]}}"#,
];

/// Checks a finished SHORT_RUN: every iteration written and a final checkpoint.
fn assert_short_run_complete(root: &Path) {
    let trial = &trial_dirs(&root.join("runs"))[0];
    let rows = std::fs::read_to_string(trial.join("progress.csv"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(rows, 4, "a header and 3 iterations");
    let ckpts = checkpoint_dirs(trial);
    assert_eq!(
        ckpts.last().unwrap().file_name().unwrap(),
        "checkpoint_000003"
    );
}

/// `rllib train ... | head -1`: the reader goes away after one line; the run goes on.
#[test]
fn a_closed_stdout_never_stops_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = rllib()
        .args(SHORT_RUN)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let stdout = child.stdout.take().unwrap();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut first).unwrap();
    assert!(first.starts_with("Training PPO"), "{first}");
    // The reader (and with it the pipe's read end) is gone here.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_short_run_complete(dir.path());
}

/// `rllib train ... > /dev/full`: every write to stdout fails; the run goes on.
#[test]
fn a_full_stdout_never_stops_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = rllib()
        .args(SHORT_RUN)
        .current_dir(dir.path())
        .stdout(full)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        !err.contains("panicked") && err.contains("stdout is closed or full"),
        "{err}"
    );
    assert_short_run_complete(dir.path());
}

/// Listing commands end quietly when their reader goes away, and fail with one line when
/// stdout is full.
#[test]
fn listing_commands_survive_a_closed_or_full_stdout() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["envs"][..],
        &["example", "list"],
        &["example", "get", "cartpole-ppo"],
    ] {
        let mut child = rllib()
            .args(args)
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");

        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = rllib()
            .args(args)
            .current_dir(dir.path())
            .stdout(full)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            err.starts_with("error: cannot write to stdout") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

/// A checkpoint write that fails (here: a file-size limit, as a full disk would) ends the run
/// with the reason, keeps the results already written and leaves no hidden temporary folder.
#[test]
fn a_failed_checkpoint_write_leaves_no_temporary_folder() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_rllib");
    // Ignoring SIGXFSZ makes writes past the limit fail with EFBIG instead of killing the
    // process; the [256, 256] network's weights (about 540 kB) exceed 200 blocks.
    let script = format!(
        "trap '' XFSZ; ulimit -f 200; exec {bin} train --seed 1 --output-dir runs --checkpoint-freq 1 --stop '{{\"training_iteration\": 2}}' --config '{{\"train_batch_size\": 200, \"minibatch_size\": 100, \"num_epochs\": 1}}'"
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot write a checkpoint") && err.contains("File too large"),
        "{err}"
    );
    let trial = &trial_dirs(&dir.path().join("runs"))[0];
    let names: Vec<String> = std::fs::read_dir(trial)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with('.') || n.starts_with("checkpoint_")),
        "{names:?}"
    );
    let rows = std::fs::read_to_string(trial.join("progress.csv"))
        .unwrap()
        .lines()
        .count();
    assert_eq!(rows, 2, "the first iteration's results are kept");
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
