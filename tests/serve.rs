//! `rllib serve` end to end: a trained cartpole-ppo checkpoint answers over HTTP with the
//! actions `rllib evaluate` takes (same returns on the same seeds), batches of observations
//! answer as single ones do, bad requests get 400/404/405/413/422 with what was expected, and
//! SIGTERM stops it cleanly.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use envs::Action;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_rllib");

fn rllib(args: &[&str], cwd: &Path) -> Output {
    Command::new(BIN)
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

fn number_after(text: &str, prefix: &str) -> f64 {
    let rest = &text[text
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix:?} in {text}"))
        + prefix.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(rest.len());
    rest[..end].parse().unwrap()
}

/// A cartpole-ppo checkpoint trained for a few iterations (returns well short of 500, so
/// that episodes differ).
fn checkpoint(dir: &Path) -> PathBuf {
    let out = rllib(
        &[
            "example",
            "run",
            "cartpole-ppo",
            "--seed",
            "1",
            "--output-dir",
            "runs",
            "--stop",
            r#"{"training_iteration": 2}"#,
        ],
        dir,
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let line = t
        .lines()
        .find_map(|l| l.strip_prefix("Checkpoint: "))
        .expect("a checkpoint");
    dir.join(line)
}

/// A running `rllib serve`, its address, and what it prints.
struct Server {
    child: Child,
    addr: SocketAddr,
    stdout: std::thread::JoinHandle<String>,
}

/// Starts `rllib serve` and returns it once it listens.
fn start(dir: &Path, ck: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg(ck)
        .args(["--port", "0"])
        .args(extra)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a line").unwrap();
    let addr = first
        .split("at http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .parse()
        .unwrap();
    // Keep reading its stdout so that it never blocks on a full pipe.
    let stdout = std::thread::spawn(move || {
        let mut all = first + "\n";
        for l in lines.map_while(Result::ok) {
            all += &l;
            all.push('\n');
        }
        all
    });
    Server {
        child,
        addr,
        stdout,
    }
}

fn post(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    let (code, b) = serve::http_request(addr, "POST", path, body.to_string().as_bytes()).unwrap();
    (code, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

fn stop(server: Server) -> String {
    let Server { child, stdout, .. } = server;
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let out = child.wait_with_output().unwrap();
    let printed = stdout.join().unwrap();
    assert!(out.status.success(), "{printed}{}", text(&out));
    printed + &text(&out)
}

#[test]
fn serve_answers_with_the_actions_evaluate_takes() {
    let dir = tempfile::tempdir().unwrap();
    let ck = checkpoint(dir.path());
    let eval = rllib(
        &[
            "evaluate",
            ck.to_str().unwrap(),
            "--episodes",
            "4",
            "--seed",
            "7",
        ],
        dir.path(),
    );
    let e = text(&eval);
    assert!(eval.status.success(), "{e}");
    let (mean, min, max) = (
        number_after(&e, "episode_return_mean: "),
        number_after(&e, "min: "),
        number_after(&e, "max: "),
    );

    let server = start(dir.path(), &ck, &["--max-batch-size", "16"]);
    let addr = server.addr;
    // The same four episodes, each action asked of the server.
    let mut returns = Vec::new();
    for i in 0..4u64 {
        let mut env = envs::make("CartPole-v1").unwrap();
        let mut obs = vec![0.0f32; 4];
        env.reset_into(Some(7 + i), &mut obs);
        let mut ret = 0.0;
        loop {
            let (code, v) = post(addr, "/", &json!({ "observation": obs }));
            assert_eq!(code, 200, "{v}");
            let a = v["action"].as_i64().expect("a discrete action");
            let t = env.step_into(Action::Discrete(a), &mut obs);
            ret += t.reward;
            if t.terminated || t.truncated {
                break;
            }
        }
        returns.push(ret);
    }
    let got_mean = returns.iter().sum::<f64>() / 4.0;
    let got_min = returns.iter().cloned().fold(f64::INFINITY, f64::min);
    let got_max = returns.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    assert!(
        (got_mean - mean).abs() < 0.01 && got_min == min && got_max == max,
        "served returns {returns:?}; evaluate said mean {mean} min {min} max {max}"
    );
    assert!(got_max > got_min, "the episodes should differ: {returns:?}");

    // Many observations in one request answer as they do one by one; /<experiment> is `/`.
    let rows: Vec<Vec<f32>> = (0..10)
        .map(|i| {
            vec![
                0.01 * i as f32,
                -0.3 + 0.07 * i as f32,
                0.02,
                0.5 - 0.1 * i as f32,
            ]
        })
        .collect();
    let (code, many) = post(addr, "/cartpole-ppo", &json!({ "observations": rows }));
    assert_eq!(code, 200, "{many}");
    for (i, row) in rows.iter().enumerate() {
        let (_, one) = post(addr, "/", &json!({ "observation": row }));
        assert_eq!(many["actions"][i], one["action"], "row {i}");
    }
    // Exploring samples actions from the policy: both actions appear for an uncertain state.
    let uncertain = vec![vec![0.0f32, 0.0, 0.0, 0.0]; 200];
    let (code, sampled) = post(
        addr,
        "/",
        &json!({ "observations": uncertain, "explore": true }),
    );
    assert_eq!(code, 200);
    let acts: Vec<i64> = sampled["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_i64().unwrap())
        .collect();
    assert!(acts.contains(&0) && acts.contains(&1), "{acts:?}");

    // GET describes the policy.
    let (code, body) = serve::http_request(addr, "GET", "/", b"").unwrap();
    assert_eq!(code, 200);
    let d: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (d["algorithm"].as_str(), d["env"].as_str()),
        (Some("PPO"), Some("CartPole-v1"))
    );
    assert_eq!(d["observation_filter"], "MeanStdFilter");
    assert_eq!(d["action_space"], "Discrete(2)");

    let log = stop(server);
    assert!(log.contains("Stopped (signal 15)"), "{log}");
}

#[test]
fn bad_requests_get_the_status_and_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let ck = checkpoint(dir.path());
    let server = start(dir.path(), &ck, &[]);
    let addr = server.addr;
    let raw = |method: &str, path: &str, body: &[u8]| {
        let (code, b) = serve::http_request(addr, method, path, body).unwrap();
        (code, String::from_utf8_lossy(&b).into_owned())
    };
    let cases: Vec<(&[u8], u16, &str)> = vec![
        (b"{\"observation\": [0.1, 0.2", 400, "not valid JSON"),
        (b"[1, 2, 3, 4]", 422, "expected a JSON object"),
        (b"{\"obs\": [1, 2, 3, 4]}", 422, "exactly one of"),
        (b"{\"observation\": [0.1, 0.2]}", 422, "expected 4 numbers"),
        (
            b"{\"observation\": [0.1, 0.2, \"x\", 0.4]}",
            422,
            "observation[2]: expected a number, got a string",
        ),
        (
            b"{\"observation\": [0.1, 1e39, 0.3, 0.4]}",
            422,
            "not a finite 32-bit float",
        ),
        (
            b"{\"observations\": [[0, 0, 0, 0], [0, 0, 0]]}",
            422,
            "observations[1]: expected 4 numbers",
        ),
        (
            b"{\"observations\": 3}",
            422,
            "expected a list of observations",
        ),
        (
            b"{\"observation\": [0, 0, 0, 0], \"explore\": \"yes\"}",
            422,
            "expected true or false",
        ),
    ];
    for (body, code, says) in cases {
        let (got, msg) = raw("POST", "/", body);
        assert_eq!(got, code, "{}: {msg}", String::from_utf8_lossy(body));
        assert!(
            msg.contains(says),
            "{}: {msg}",
            String::from_utf8_lossy(body)
        );
    }
    let (code, msg) = raw("POST", "/", &vec![b' '; 2 << 20]);
    assert_eq!(code, 413, "{msg}");
    let (code, msg) = raw("POST", "/elsewhere", b"{\"observation\": [0, 0, 0, 0]}");
    assert_eq!(code, 404, "{msg}");
    let (code, msg) = raw("PUT", "/", b"{}");
    assert_eq!(code, 405, "{msg}");
    // Still answering after all that.
    let (code, v) = post(addr, "/", &json!({ "observation": [0.0, 0.0, 0.0, 0.0] }));
    assert_eq!(code, 200, "{v}");
    stop(server);

    // Bad flags are errors that name them.
    for (flag, value, says) in [
        ("--num-replicas", "0", "--num-replicas 0"),
        ("--max-batch-size", "0", "--max-batch-size 0"),
        ("--batch-wait-timeout-s", "-1", "--batch-wait-timeout-s -1"),
    ] {
        let out = rllib(
            &["serve", ck.to_str().unwrap(), flag, value, "--port", "0"],
            dir.path(),
        );
        let t = text(&out);
        assert!(
            !out.status.success() && t.contains(says) && !t.contains("panicked"),
            "{t}"
        );
    }
    let out = rllib(
        &["serve", "no/such/checkpoint_000001", "--port", "0"],
        dir.path(),
    );
    let t = text(&out);
    assert!(
        !out.status.success() && t.contains("no/such/checkpoint_000001") && !t.contains("panicked"),
        "{t}"
    );
}
