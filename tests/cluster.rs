//! Cluster mode on loopback: a head and worker nodes as separate `rllib start` processes, this
//! test process as the driver. Where work lands, resource sums, a node killed (SIGKILL) or
//! frozen (SIGSTOP) and its actor restarted elsewhere within the detection time, a wrong
//! secret refused, garbage on the port survived, 100 MB objects both ways.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ray::{CPU, InitOptions, Runtime};

const BIN: &str = env!("CARGO_BIN_EXE_rllib");
const TIMEOUT_S: f64 = 1.0;

/// One cluster at a time: a process is one driver (its process groups are global, as Ray's
/// driver is one per process), and the detection-time checks want the CPUs.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A cluster of node processes in a session folder of its own; stopped on drop.
struct TestCluster {
    _turn: std::sync::MutexGuard<'static, ()>,
    dir: tempfile::TempDir,
    head: String,
    secret: String,
}

fn rllib(session: &Path, args: &[&str], secret: Option<&str>) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("RLLIB_SESSION_DIR", session)
        .env_remove("RLLIB_CLUSTER_SECRET");
    if let Some(s) = secret {
        c.env("RLLIB_CLUSTER_SECRET", s);
    }
    c.output().expect("rllib runs")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl TestCluster {
    /// A head with `head_cpus` CPUs and one worker per entry of `workers` (its CPUs).
    fn start(head_cpus: f64, workers: &[f64]) -> Self {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().expect("a temp dir");
        let port = free_port().to_string();
        let t = TIMEOUT_S.to_string();
        let out = rllib(
            dir.path(),
            &[
                "start",
                "--head",
                "--port",
                &port,
                "--num-cpus",
                &head_cpus.to_string(),
                "--node-timeout-s",
                &t,
            ],
            None,
        );
        assert!(
            out.status.success(),
            "head: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(text.contains("RLLIB_CLUSTER_SECRET="), "{text}");
        let secret = std::fs::read_to_string(dir.path().join("secret")).expect("the stored secret");
        let head = format!("127.0.0.1:{port}");
        for &cpus in workers {
            let out = rllib(
                dir.path(),
                &[
                    "start",
                    "--address",
                    &head,
                    "--num-cpus",
                    &cpus.to_string(),
                    "--node-timeout-s",
                    &t,
                ],
                None,
            );
            assert!(
                out.status.success(),
                "worker: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        TestCluster {
            _turn: turn,
            dir,
            head,
            secret,
        }
    }

    fn driver(&self) -> Runtime {
        ray::init(
            InitOptions::new()
                .address(&self.head)
                .secret(&self.secret)
                .node_timeout(Duration::from_secs_f64(TIMEOUT_S))
                .call_timeout(Duration::from_secs(60)),
        )
        .expect("the driver connects")
    }

    fn session(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        // Resume frozen nodes so that SIGTERM can end them.
        for (_, n) in nodes_in(&self.session()) {
            let _ = Command::new("kill")
                .args(["-CONT", &n.pid.to_string()])
                .status();
        }
        let _ = rllib(&self.session(), &["stop", "--grace-period", "2"], None);
    }
}

fn nodes_in(session: &Path) -> Vec<(PathBuf, ray::cluster::session::NodeFile)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(session).expect("session dir").flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("node-") && name.ends_with(".json") {
            let text = std::fs::read_to_string(e.path()).expect("node file");
            out.push((e.path(), serde_json::from_str(&text).expect("a node file")));
        }
    }
    out
}

fn wait_until(within: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ok()
}

#[test]
fn nodes_join_resources_add_up_and_tasks_land_on_every_node() {
    let c = TestCluster::start(1.0, &[2.0, 1.0]);
    let rt = c.driver();
    let nodes = rt.nodes();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    assert!(nodes.iter().all(|n| n.alive));
    assert_eq!(nodes.iter().filter(|n| n.is_head).count(), 1);
    assert_eq!(rt.cluster_resources().get(CPU), 4.0);
    // The session files are owner-only.
    use std::os::unix::fs::PermissionsExt;
    // (the secret, the node files, the node logs that repeat the secret)
    for e in std::fs::read_dir(c.session()).expect("session").flatten() {
        let mode = e.metadata().expect("file").permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "{:?} is open to others: {mode:o}",
            e.path()
        );
    }
    // Pinned to each node, a task reports that node.
    for n in &nodes {
        let r = rt
            .remote_task("ray.node_id")
            .node(&n.node_id)
            .remote::<String>()
            .expect("submitted");
        assert_eq!(
            r.get_timeout(Duration::from_secs(30)).expect("ran"),
            n.node_id
        );
    }
    // Four one-CPU tasks of 300 ms at once fill the four CPUs: every node gets some.
    let refs: Vec<_> = (0..4)
        .map(|_| {
            rt.remote_task("ray.sleep_ms")
                .arg(&300u64)
                .remote::<String>()
                .expect("submitted")
        })
        .collect();
    let mut ran: Vec<String> = refs
        .iter()
        .map(|r| r.get_timeout(Duration::from_secs(30)).expect("ran"))
        .collect();
    ran.sort();
    ran.dedup();
    assert_eq!(ran.len(), 3, "tasks ran on {ran:?}");
    // A request no node can hold is infeasible at once.
    let err = rt
        .remote_task("ray.node_id")
        .num_cpus(3.0)
        .remote::<String>()
        .unwrap_err();
    assert!(matches!(err, ray::RayError::Infeasible { .. }), "{err}");
    // An unknown function is an error value naming it.
    let err = rt
        .remote_task("no.such")
        .remote::<String>()
        .expect("submitted")
        .get()
        .unwrap_err();
    assert!(err.to_string().contains("no.such"), "{err}");
    // `rllib status` sees the same cluster.
    // (Availability is as of the last heartbeat, so it may take one to show the CPUs free.)
    let mut text = String::new();
    let freed = wait_until(Duration::from_secs(5), || {
        let out = rllib(&c.session(), &["status"], None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text = String::from_utf8_lossy(&out.stdout).to_string();
        text.contains("CPU 0/4")
    });
    assert!(
        freed && text.contains("3 node(s)") && text.matches("ALIVE").count() == 3,
        "{text}"
    );
}

#[test]
fn hundred_megabyte_objects_cross_nodes_in_chunks() {
    let c = TestCluster::start(1.0, &[1.0]);
    let rt = c.driver();
    let worker = rt
        .nodes()
        .into_iter()
        .find(|n| !n.is_head)
        .expect("a worker")
        .node_id;
    let big = serde_bytes::ByteBuf::from(vec![7u8; 100_000_000]);
    let n = rt
        .remote_task("ray.len")
        .arg(&big)
        .node(&worker)
        .remote::<u64>()
        .expect("submitted");
    assert_eq!(
        n.get_timeout(Duration::from_secs(60)).expect("ran"),
        100_000_000
    );
    let z = rt
        .remote_task("ray.zeros")
        .arg(&100_000_000u64)
        .node(&worker)
        .remote::<serde_bytes::ByteBuf>()
        .expect("submitted");
    let z = z.get_timeout(Duration::from_secs(60)).expect("ran");
    assert_eq!(z.len(), 100_000_000);
    assert!(z.iter().all(|&b| b == 0));
}

/// Fills the head's one CPU with a pinned probe, then places a probe that can only go to a
/// worker; returns the runtime, the probe, its node's pid and the other worker's id.
fn probe_on_a_worker(
    c: &TestCluster,
) -> (Runtime, ray::RemoteActorHandle, ray::RemoteActorHandle, u32) {
    let rt = c.driver();
    let head = rt
        .nodes()
        .into_iter()
        .find(|n| n.is_head)
        .expect("head")
        .node_id;
    let filler = rt
        .remote_actor(ray::cluster::PROBE)
        .num_cpus(1.0)
        .node(&head)
        .spawn()
        .expect("filler");
    assert_eq!(
        filler
            .call::<_, String>("node_id", &())
            .expect("call")
            .get()
            .expect("ran"),
        head
    );
    let probe = rt
        .remote_actor(ray::cluster::PROBE)
        .num_cpus(1.0)
        .max_restarts(1)
        .spawn()
        .expect("probe");
    let first: String = probe
        .call("node_id", &())
        .expect("call")
        .get_timeout(Duration::from_secs(30))
        .expect("ran");
    assert_ne!(first, head);
    assert_eq!(
        probe
            .call::<_, i64>("incr", &5i64)
            .expect("call")
            .get()
            .expect("ran"),
        5
    );
    let pid = rt
        .nodes()
        .into_iter()
        .find(|n| n.node_id == first)
        .expect("its node")
        .pid;
    (rt, probe, filler, pid)
}

fn restarted_elsewhere(sig: &str) {
    let c = TestCluster::start(1.0, &[1.0, 1.0]);
    let (rt, probe, _filler, pid) = probe_on_a_worker(&c);
    let before = probe.node_id().expect("placed");
    // A call running when the node goes fails with NodeDied, never hangs.
    let pending = probe
        .call::<_, String>("sleep_ms", &5_000u64)
        .expect("call");
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    assert!(
        Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill")
            .success()
    );
    let err = pending.get_timeout(Duration::from_secs(30)).unwrap_err();
    assert!(matches!(err, ray::RayError::NodeDied { .. }), "{err}");
    // Detected and restarted within the detection time plus scheduling slack.
    assert!(
        wait_until(Duration::from_secs(10), || probe
            .node_id()
            .is_some_and(|n| n != before)),
        "the actor was not restarted elsewhere"
    );
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs_f64(TIMEOUT_S * 3.0 + 1.0),
        "restart took {took:?}"
    );
    assert_eq!(probe.num_restarts(), 1);
    // The restarted actor answers (its state is new, as Ray's restarts are).
    assert_eq!(
        probe
            .call::<_, i64>("incr", &1i64)
            .expect("call")
            .get_timeout(Duration::from_secs(30))
            .expect("ran"),
        1
    );
    assert!(
        wait_until(Duration::from_secs(5), || rt
            .nodes()
            .iter()
            .any(|n| n.pid == pid && !n.alive)),
        "{:?}",
        rt.nodes()
    );
    assert_eq!(rt.cluster_resources().get(CPU), 2.0);
}

#[test]
fn a_killed_node_is_detected_and_its_actor_restarts_elsewhere() {
    restarted_elsewhere("-KILL");
}

#[test]
fn a_frozen_node_is_detected_and_its_actor_restarts_elsewhere() {
    restarted_elsewhere("-STOP");
}

#[test]
fn a_wrong_secret_is_refused_and_garbage_does_not_crash_a_node() {
    let c = TestCluster::start(1.0, &[]);
    let out = rllib(&c.session(), &["status", "--token", "not-the-secret"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong cluster secret"), "{err}");
    let out = rllib(
        &c.session(),
        &["start", "--address", &c.head, "--num-cpus", "1"],
        Some("not-the-secret"),
    );
    assert!(!out.status.success(), "a node joined with a wrong secret");
    let r = ray::init(InitOptions::new().address(&c.head).secret("nope"));
    assert!(matches!(r, Err(ray::RayError::Cluster(_))), "{r:?}");
    // Garbage, a huge length prefix and a truncated frame on the port.
    for bytes in [
        vec![0xffu8; 64],
        b"\x00\x00\x00\x08abcdefgh".to_vec(),
        (0..100_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect(),
    ] {
        if let Ok(mut s) = std::net::TcpStream::connect(&c.head) {
            let _ = s.write_all(&bytes);
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let rt = c.driver();
    assert_eq!(rt.nodes().len(), 1);
    let r = rt
        .remote_task("ray.node_id")
        .remote::<String>()
        .expect("submitted");
    assert!(r.get_timeout(Duration::from_secs(30)).is_ok());
}

#[test]
fn start_refuses_bad_flags_with_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (args, needle) in [
        (vec!["start"], "exactly one of --head and --address"),
        (
            vec!["start", "--head", "--address", "1.2.3.4:5"],
            "exactly one of --head and --address",
        ),
        (
            vec!["start", "--head", "--node-ip-address", "nope"],
            "is not an IP address",
        ),
        (
            vec!["start", "--head", "--resources", "[1]"],
            "expected a JSON mapping",
        ),
        (
            vec!["start", "--head", "--node-timeout-s", "0"],
            "expected seconds",
        ),
        (
            vec!["start", "--head", "--num-cpus=-1"],
            "must be finite and >= 0",
        ),
    ] {
        let out = rllib(dir.path(), &args, None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    let out = rllib(dir.path(), &["stop"], None);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("No node was running"));
}

/// `rllib train --address`: env runners on two worker processes, one worker killed mid-run;
/// the run finishes, counts the restart, and its checkpoint evaluates.
#[test]
fn training_on_the_cluster_survives_a_killed_node() {
    train_through_a_lost_node("-KILL");
}

#[test]
fn training_on_the_cluster_survives_a_frozen_node() {
    train_through_a_lost_node("-STOP");
}

fn train_through_a_lost_node(sig: &str) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    // The head offers no CPUs: both runners go to the workers, two CPUs each (room for one
    // rebuilt runner beside the other).
    let c = TestCluster::start(0.0, &[2.0, 2.0]);
    let out_dir = c.session().join("runs");
    let mut child = Command::new(BIN)
        .args([
            "example",
            "run",
            "cartpole-ppo",
            "--address",
            &c.head,
            "--num-env-runners",
            "2",
            "--seed",
            "3",
            "--stop",
            r#"{"training_iteration": 25}"#,
            "--output-dir",
        ])
        .arg(&out_dir)
        .env("RLLIB_SESSION_DIR", c.session())
        .env("RLLIB_CLUSTER_SECRET", &c.secret)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rllib train");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut placed = String::new();
    let mut killed = None;
    for line in stdout.lines() {
        let line = line.expect("a line");
        if line.starts_with("Env runners on the cluster") {
            placed = line.clone();
        }
        // The iteration table: kill the second runner's node after iteration 3.
        let first = line.split_whitespace().next().unwrap_or("");
        if killed.is_none() && first == "3" {
            let node = placed
                .split("EnvRunner-2 on ")
                .nth(1)
                .map(|s| s.trim().to_string())
                .expect("runner 2's node");
            let pid = nodes_in(&c.session())
                .into_iter()
                .find(|(_, n)| n.node_id == node)
                .expect("its node file")
                .1
                .pid;
            assert!(
                Command::new("kill")
                    .args([sig, &pid.to_string()])
                    .status()
                    .expect("kill")
                    .success()
            );
            killed = Some(node);
        }
    }
    let status = child.wait().expect("the run ends");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    assert!(status.success(), "{err}");
    assert!(
        killed.is_some(),
        "the run ended before iteration 3: {placed}"
    );
    // The two runners started on the two workers.
    let nodes: Vec<&str> = placed
        .split(", ")
        .map(|p| p.rsplit(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(nodes.len(), 2, "{placed}");
    assert_ne!(nodes[0], nodes[1], "{placed}");
    assert!(err.contains("EnvRunner-2 failed"), "{err}");
    let trial = std::fs::read_dir(out_dir.join("cartpole-ppo"))
        .expect("the experiment folder")
        .flatten()
        .next()
        .expect("a trial")
        .path();
    let csv = std::fs::read_to_string(trial.join("progress.csv")).expect("progress.csv");
    let header: Vec<&str> = csv.lines().next().expect("header").split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "env_runners/num_env_runner_restarts")
        .expect("the restarts column");
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 25);
    assert_eq!(rows[24].split(',').nth(col), Some("1"), "{csv}");
    // Its checkpoint evaluates as a local run's does.
    let ck = trial.join("checkpoint_000025");
    let out = Command::new(BIN)
        .arg("evaluate")
        .arg(&ck)
        .args(["--episodes", "5"])
        .output()
        .expect("evaluate");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("episode_return_mean"),
        "{text}"
    );
}
