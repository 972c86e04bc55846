//! Offline RL end to end: `output` records every finished episode of a training run as
//! Parquet, `rllib evaluate --output` records a checkpoint's episodes, BC and MARWIL learn
//! from them through `input` and resume exactly, and bad offline settings are clear errors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use data::arrow_array::RecordBatch;
use data::arrow_array::cast::AsArray;
use data::arrow_array::types::{Float32Type, UInt32Type, UInt64Type};

fn rllib(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rllib"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the rllib binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn number_after(text: &str, prefix: &str) -> Option<f64> {
    let rest = &text[text.find(prefix)? + prefix.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn checkpoint_line(out: &Output) -> PathBuf {
    let t = text(out);
    t.lines()
        .find_map(|l| l.strip_prefix("Checkpoint: "))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no checkpoint line:\n{t}"))
}

/// A failing run: non-zero exit, no panic, and its stderr.
fn bad(args: &[&str], cwd: &Path) -> String {
    let out = rllib(args, cwd);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{args:?} should fail:\n{}",
        text(&out)
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn output_records_every_finished_episode_of_a_training_run_with_raw_observations() {
    let dir = tempfile::tempdir().unwrap();
    // cartpole-ppo has MeanStdFilter, and here a reward filter: the files must hold the raw
    // observations and rewards.
    let out = rllib(
        &[
            "example",
            "run",
            "cartpole-ppo",
            "--seed",
            "3",
            "--output-dir",
            "runs",
            "--config",
            r#"{"output": "episodes", "num_env_runners": 2, "num_envs_per_env_runner": 3, "reward_filter": "ReturnStdFilter"}"#,
            "--stop",
            r#"{"training_iteration": 3}"#,
        ],
        dir.path(),
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let episodes = number_after(&t, "episodes: ").unwrap() as usize;
    let all: RecordBatch = data::read_parquet(dir.path().join("episodes"))
        .take_all()
        .unwrap();
    let ids = all
        .column_by_name("eps_id")
        .unwrap()
        .as_primitive::<UInt64Type>();
    let ts = all
        .column_by_name("t")
        .unwrap()
        .as_primitive::<UInt32Type>();
    let term = all.column_by_name("terminateds").unwrap().as_boolean();
    let trunc = all.column_by_name("truncateds").unwrap().as_boolean();
    let obs = all.column_by_name("obs").unwrap().as_fixed_size_list();
    let rewards = all
        .column_by_name("rewards")
        .unwrap()
        .as_primitive::<Float32Type>();
    let mut by_episode: HashMap<u64, Vec<usize>> = HashMap::new();
    for i in 0..all.num_rows() {
        by_episode.entry(ids.value(i)).or_default().push(i);
    }
    assert_eq!(by_episode.len(), episodes, "every finished episode, once");
    for rows in by_episode.values() {
        let n = rows.len();
        for (k, &i) in rows.iter().enumerate() {
            assert_eq!(ts.value(i) as usize, k, "rows in step order");
            assert_eq!(
                term.value(i) || trunc.value(i),
                k == n - 1,
                "done on the last row only"
            );
            assert_eq!(rewards.value(i), 1.0);
        }
        // CartPole resets to U(-0.05, 0.05)^4: raw, not normalised.
        let first = obs.value(rows[0]);
        let first = first.as_primitive::<Float32Type>();
        assert!(first.values().iter().all(|v| v.abs() <= 0.05), "{first:?}");
    }
}

#[test]
fn bc_and_marwil_learn_from_recorded_episodes_and_resume_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let ppo = rllib(
        &[
            "example",
            "run",
            "cartpole-ppo",
            "--seed",
            "1",
            "--output-dir",
            "runs",
        ],
        dir.path(),
    );
    assert!(ppo.status.success(), "{}", text(&ppo));
    let ck = checkpoint_line(&ppo);
    let rec = rllib(
        &[
            "evaluate",
            ck.to_str().unwrap(),
            "--episodes",
            "20",
            "--explore",
            "--output",
            "eps",
        ],
        dir.path(),
    );
    assert!(rec.status.success(), "{}", text(&rec));
    assert!(text(&rec).contains("Recorded 20 episodes into eps"));

    for algo in ["BC", "MARWIL"] {
        let run = |extra: &[&str], out: &str| {
            let mut args = vec![
                "train",
                "--algo",
                algo,
                "--env",
                "CartPole-v1",
                "--seed",
                "7",
                "--output-dir",
                out,
                "--checkpoint-freq",
                "3",
                "--config",
                r#"{"input": "eps", "train_batch_size": 500, "lr": 0.001, "evaluation_interval": 2, "evaluation_duration": 2, "model": {"fcnet_hiddens": [32]}}"#,
            ];
            args.extend_from_slice(extra);
            rllib(&args, dir.path())
        };
        let full = run(&["--stop", r#"{"training_iteration": 6}"#], "full");
        assert!(full.status.success(), "{algo}: {}", text(&full));
        assert!(text(&full).contains("env steps: 0"), "{}", text(&full));
        let ck3 = checkpoints_named(&dir.path().join("full"), "checkpoint_000003");
        let resumed = run(
            &[
                "--stop",
                r#"{"training_iteration": 6}"#,
                "--restore",
                ck3.to_str().unwrap(),
            ],
            "resumed",
        );
        assert!(resumed.status.success(), "{algo}: {}", text(&resumed));
        let a = losses(&dir.path().join("full"));
        let b = losses(&dir.path().join("resumed"));
        assert_eq!(a.len(), 6, "{a:?}");
        assert_eq!(
            &a[3..],
            &b[..],
            "{algo} resumes with the batches and weights it had"
        );
        std::fs::remove_dir_all(dir.path().join("full")).unwrap();
        std::fs::remove_dir_all(dir.path().join("resumed")).unwrap();
    }
}

/// The checkpoint folder named `name` under `root`.
fn checkpoints_named(root: &Path, name: &str) -> PathBuf {
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == name) {
                    return p;
                }
                stack.push(p);
            }
        }
    }
    panic!("no {name} under {}", root.display())
}

/// Each iteration's (policy loss, vf loss) of the one run under `root`, as written.
fn losses(root: &Path) -> Vec<(String, String)> {
    let ck = checkpoints_named(root, "checkpoint_000006");
    let csv = std::fs::read_to_string(ck.parent().unwrap().join("progress.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (p, v) = (
        col("learners/default_policy/policy_loss"),
        col("learners/default_policy/vf_loss"),
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[p].to_string(), f[v].to_string())
        })
        .collect()
}

#[test]
fn bad_offline_settings_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let e = bad(&["train", "--algo", "BC", "--env", "CartPole-v1"], d);
    assert!(
        e.contains("input") && e.contains("recorded episodes"),
        "{e}"
    );
    let e = bad(
        &[
            "train",
            "--algo",
            "BC",
            "--env",
            "CartPole-v1",
            "--config",
            r#"{"input": "nowhere"}"#,
        ],
        d,
    );
    assert!(
        e.contains("input nowhere") && e.contains("no such file"),
        "{e}"
    );
    let e = bad(
        &[
            "train",
            "--algo",
            "PPO",
            "--env",
            "CartPole-v1",
            "--config",
            r#"{"input": "eps"}"#,
        ],
        d,
    );
    assert!(e.contains("input") && e.contains("BC and MARWIL"), "{e}");
    let e = bad(
        &[
            "train",
            "--algo",
            "MARWIL",
            "--env",
            "CartPole-v1",
            "--config",
            r#"{"input": "eps", "observation_filter": "MeanStdFilter"}"#,
        ],
        d,
    );
    assert!(e.contains("MeanStdFilter") && e.contains("NoFilter"), "{e}");
    let e = bad(
        &[
            "train",
            "--algo",
            "BC",
            "--env",
            "CartPole-v1",
            "--config",
            r#"{"input": "eps"}"#,
            "--stop",
            r#"{"env_runners/episode_return_mean": 400}"#,
        ],
        d,
    );
    assert!(e.contains("can never be met"), "{e}");
    let e = bad(
        &[
            "train",
            "--algo",
            "PPO",
            "--env",
            "CartPole-v1",
            "--config",
            r#"{"output": ""}"#,
        ],
        d,
    );
    assert!(e.contains("output"), "{e}");

    // Files of another env's shape: the column and both sizes are named.
    let t = data::from_items(vec![Row {
        eps_id: 1,
        t: 0,
        obs: vec![0.0; 3],
        actions: 0,
        rewards: 1.0,
    }]);
    t.write_parquet(d.join("three")).unwrap();
    let e = bad(
        &[
            "train",
            "--algo",
            "BC",
            "--env",
            "CartPole-v1",
            "--config",
            r#"{"input": "three"}"#,
        ],
        d,
    );
    assert!(
        e.contains("\"obs\" has 3 values per row") && e.contains("have 4"),
        "{e}"
    );
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Row {
    eps_id: u64,
    t: u32,
    obs: Vec<f32>,
    actions: i64,
    rewards: f32,
}
