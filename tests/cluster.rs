//! Cluster mode on loopback: a head and worker nodes as separate `rllib start` processes, this
//! test process as the driver. Where work lands, resource sums, a node killed (SIGKILL) or
//! frozen (SIGSTOP) and its actor restarted elsewhere within the detection time, a wrong
//! secret refused, garbage on the port survived, 100 MB objects both ways; TLS between nodes
//! (a driver in the clear or with another CA refused); and nodes in network namespaces joined by
//! veth pairs (non-loopback addresses, as root; skipped with a message elsewhere).

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
    tls: Option<ray::cluster::TlsFiles>,
}

fn rllib(session: &Path, args: &[&str], secret: Option<&str>) -> Output {
    rllib_via(&[], session, args, secret)
}

/// `rllib` run through `prefix` (`ip netns exec <ns>`), in the session folder `session`.
fn rllib_via(prefix: &[String], session: &Path, args: &[&str], secret: Option<&str>) -> Output {
    let mut c = match prefix.split_first() {
        None => Command::new(BIN),
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(BIN);
            c
        }
    };
    c.args(args)
        .env("RLLIB_SESSION_DIR", session)
        .env_remove("RLLIB_CLUSTER_SECRET")
        .env_remove("RLLIB_TLS_CERT")
        .env_remove("RLLIB_TLS_KEY")
        .env_remove("RLLIB_TLS_CA");
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

/// Where one node runs: its CPUs, the command it runs under (a network namespace) and the
/// address it listens on.
#[derive(Clone)]
struct Spot {
    cpus: f64,
    prefix: Vec<String>,
    ip: String,
}

impl Spot {
    fn loopback(cpus: f64) -> Self {
        Spot {
            cpus,
            prefix: Vec::new(),
            ip: "127.0.0.1".into(),
        }
    }
}

impl TestCluster {
    /// A head with `head_cpus` CPUs and one worker per entry of `workers` (its CPUs).
    fn start(head_cpus: f64, workers: &[f64]) -> Self {
        let spots: Vec<Spot> = std::iter::once(head_cpus)
            .chain(workers.iter().copied())
            .map(Spot::loopback)
            .collect();
        Self::launch(&spots, None)
    }

    /// The head at `spots[0]`, workers at the others, all with TLS when `certs` is given.
    fn launch(spots: &[Spot], certs: Option<&Certs>) -> Self {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().expect("a temp dir");
        let port = free_port().to_string();
        let head = format!("{}:{port}", spots[0].ip);
        let t = TIMEOUT_S.to_string();
        let tls: Vec<String> = certs.map_or_else(Vec::new, Certs::flags);
        for (i, spot) in spots.iter().enumerate() {
            let cpus = spot.cpus.to_string();
            let mut args: Vec<&str> = if i == 0 {
                vec!["start", "--head", "--port", &port]
            } else {
                vec!["start", "--address", &head]
            };
            args.extend([
                "--node-ip-address",
                &spot.ip,
                "--num-cpus",
                &cpus,
                "--node-timeout-s",
                &t,
            ]);
            args.extend(tls.iter().map(String::as_str));
            let secret = (i > 0).then(|| {
                std::fs::read_to_string(dir.path().join("secret")).expect("the stored secret")
            });
            let out = rllib_via(&spot.prefix, dir.path(), &args, secret.as_deref());
            assert!(
                out.status.success(),
                "node {i}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            if i == 0 {
                let text = String::from_utf8_lossy(&out.stdout).to_string();
                assert!(text.contains("RLLIB_CLUSTER_SECRET="), "{text}");
            }
        }
        let secret = std::fs::read_to_string(dir.path().join("secret")).expect("the stored secret");
        TestCluster {
            _turn: turn,
            dir,
            head,
            secret,
            tls: certs.map(Certs::files),
        }
    }

    fn driver(&self) -> Runtime {
        let mut o = InitOptions::new()
            .address(&self.head)
            .secret(&self.secret)
            .node_timeout(Duration::from_secs_f64(TIMEOUT_S))
            .call_timeout(Duration::from_secs(60));
        if let Some(t) = &self.tls {
            o = o.tls(t.clone());
        }
        ray::init(o).expect("the driver connects")
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
    // More runners than the cluster's CPUs: refused, counting the cluster's CPUs.
    let out = rllib(
        &c.session(),
        &[
            "train",
            "--algo",
            "PPO",
            "--env",
            "CartPole-v1",
            "--address",
            &c.head,
            "--num-env-runners",
            "9",
        ],
        Some(&c.secret),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("need 9 CPUs, but the cluster's live nodes have 4"),
        "{err}"
    );
}

/// The length `ray.len` on node `node` finds in `n` bytes sent from this driver.
fn len_on(rt: &Runtime, node: &str, n: usize) -> u64 {
    rt.remote_task("ray.len")
        .arg(&serde_bytes::ByteBuf::from(vec![7u8; n]))
        .node(node)
        .remote::<u64>()
        .expect("submitted")
        .get_timeout(Duration::from_secs(60))
        .expect("ran")
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
    assert_eq!(len_on(&rt, &worker, 100_000_000), 100_000_000);
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

#[test]
fn objects_stay_on_their_node_and_move_node_to_node() {
    let c = TestCluster::start(0.0, &[1.0, 1.0]);
    let rt = c.driver();
    let workers: Vec<String> = rt
        .nodes()
        .into_iter()
        .filter(|n| !n.is_head)
        .map(|n| n.node_id)
        .collect();
    let (a, b) = (&workers[0], &workers[1]);
    // 100 MB made on worker A stays there ...
    let made = rt
        .remote_task("ray.zeros")
        .arg(&100_000_000u64)
        .node(a)
        .remote_ref::<serde_bytes::ByteBuf>()
        .expect("submitted");
    // ... and worker B, given the reference, fetches it from A (the two had no session).
    let len_on_b = |r: &ray::RemoteRef<serde_bytes::ByteBuf>| -> u64 {
        rt.remote_task("ray.len")
            .arg_ref(r)
            .node(b)
            .remote::<u64>()
            .expect("submitted")
            .get_timeout(Duration::from_secs(60))
            .expect("ran")
    };
    assert_eq!(len_on_b(&made), 100_000_000);
    assert_eq!(made.node_id().as_deref(), Some(a.as_str()));
    // The driver can still get it, as often as it likes.
    let z = made.get_timeout(Duration::from_secs(60)).expect("fetched");
    assert!(z.len() == 100_000_000 && z.iter().all(|&x| x == 0));
    // A 100 MB value put by the driver, read by a task on another node.
    let put = rt
        .put_remote(&serde_bytes::ByteBuf::from(vec![3u8; 100_000_000]))
        .expect("put");
    assert_eq!(len_on_b(&put), 100_000_000);
    // A reference to a failed task fails the task that takes it.
    let failed = rt
        .remote_task("no.such")
        .max_retries(0)
        .remote_ref::<u64>()
        .expect("submitted");
    let err = rt
        .remote_task("ray.len")
        .arg_ref(&failed)
        .remote::<u64>()
        .expect("submitted")
        .get_timeout(Duration::from_secs(30))
        .unwrap_err();
    assert!(err.to_string().contains("no.such"), "{err}");
    // The data port serves a client that proves it knows the secret, and nobody else.
    let data = rt
        .nodes()
        .into_iter()
        .find(|n| n.node_id == *a)
        .expect("worker A")
        .data_address;
    // The answer's length field: u64::MAX for no such object, none when refused.
    let ask = |secret: &str, id: u64| -> Option<u64> {
        use sha2::Digest;
        let mut s = std::net::TcpStream::connect(&data).expect("the data port");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut nonce = [0u8; 32];
        std::io::Read::read_exact(&mut s, &mut nonce).expect("a nonce");
        let mut h = sha2::Sha256::new();
        h.update(secret.as_bytes());
        h.update(nonce);
        let proof: [u8; 32] = h.finalize().into();
        s.write_all(&proof).expect("proof");
        // Object `id` from offset 0, up to 8 bytes.
        let req = [id.to_be_bytes(), 0u64.to_be_bytes(), 8u64.to_be_bytes()].concat();
        let _ = s.write_all(&req);
        let mut len = [0u8; 8];
        std::io::Read::read_exact(&mut s, &mut len).ok()?;
        Some(u64::from_be_bytes(len))
    };
    assert_eq!(ask("not the secret", 1), None, "served without the secret");
    assert_eq!(ask(&c.secret, 999_999), Some(u64::MAX));
    // (Worker A's first object is the 100 MB result it still keeps.)
    assert_eq!(ask(&c.secret, 1), Some(8));
    // The last reference dropped frees the object on its node (seen at the next heartbeat).
    let objects_on = |rt: &Runtime, id: &str| -> u64 {
        rt.nodes()
            .into_iter()
            .find(|n| n.node_id == id)
            .map_or(u64::MAX, |n| n.objects)
    };
    assert_eq!(objects_on(&rt, a), 1);
    drop(made);
    assert!(
        wait_until(Duration::from_secs(5), || objects_on(&rt, a) == 0),
        "{:?}",
        rt.nodes()
    );
    // A driver that goes while it still holds references: the node frees them itself.
    let kept = rt
        .remote_task("ray.zeros")
        .arg(&1_000_000u64)
        .node(a)
        .remote_ref::<serde_bytes::ByteBuf>()
        .expect("submitted");
    assert_eq!(kept.get().expect("made").len(), 1_000_000);
    assert!(wait_until(Duration::from_secs(5), || objects_on(&rt, a) == 1));
    rt.shutdown();
    let rt = c.driver();
    assert!(
        wait_until(Duration::from_secs(10), || objects_on(&rt, a) == 0),
        "{:?}",
        rt.nodes()
    );
    drop(kept);
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
    if sig == "-STOP" {
        // Resumed, the frozen node learns from the head that it was declared dead and exits
        // (its work has moved); it stays dead in the table.
        assert!(
            Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status()
                .expect("kill")
                .success()
        );
        let gone = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
        };
        assert!(
            wait_until(Duration::from_secs(10), gone),
            "the resumed node {pid} still runs"
        );
        let log = std::fs::read_dir(c.session())
            .expect("session")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<String>();
        assert!(log.contains("declared it dead"), "{log}");
        assert!(rt.nodes().iter().any(|n| n.pid == pid && !n.alive));
        assert_eq!(rt.cluster_resources().get(CPU), 2.0);
    }
}

/// The pid of the worker whose CPU a running task holds (as of the last heartbeat).
fn busy_worker(rt: &Runtime, skip: &[u32]) -> u32 {
    let mut pid = None;
    assert!(
        wait_until(Duration::from_secs(5), || {
            pid = rt
                .nodes()
                .into_iter()
                .find(|n| {
                    n.alive
                        && !n.is_head
                        && !skip.contains(&n.pid)
                        && n.available.get(CPU).copied() == Some(0.0)
                })
                .map(|n| n.pid);
            pid.is_some()
        }),
        "no worker shows the task: {:?}",
        rt.nodes()
    );
    pid.expect("a busy worker")
}

#[test]
fn a_task_whose_node_dies_is_retried_within_max_retries() {
    let c = TestCluster::start(0.0, &[1.0, 1.0, 1.0]);
    let rt = c.driver();
    let kill = |pid: u32| {
        assert!(
            Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .expect("kill")
                .success()
        );
    };
    // No retries: the node's death is the task's error.
    let r = rt
        .remote_task("ray.sleep_ms")
        .arg(&5_000u64)
        .max_retries(0)
        .remote::<String>()
        .expect("submitted");
    let first = busy_worker(&rt, &[]);
    kill(first);
    let err = r.get_timeout(Duration::from_secs(30)).unwrap_err();
    assert!(matches!(err, ray::RayError::NodeDied { .. }), "{err}");
    // One retry: it runs again on another node and finishes there.
    let r = rt
        .remote_task("ray.sleep_ms")
        .arg(&1_500u64)
        .max_retries(1)
        .remote::<String>()
        .expect("submitted");
    let second = busy_worker(&rt, &[first]);
    kill(second);
    let ran_on = r.get_timeout(Duration::from_secs(30)).expect("retried");
    let last = rt
        .nodes()
        .into_iter()
        .find(|n| n.alive && !n.is_head)
        .expect("the last worker");
    assert_eq!(ran_on, last.node_id);
}

#[test]
fn a_paused_head_declares_no_node_dead() {
    let c = TestCluster::start(1.0, &[1.0]);
    let pids: Vec<(bool, u32)> = nodes_in(&c.session())
        .into_iter()
        .map(|(_, n)| (n.is_head, n.pid))
        .collect();
    let head = pids.iter().find(|p| p.0).expect("the head").1;
    let signal = |sig: &str| {
        assert!(
            Command::new("kill")
                .args([sig, &head.to_string()])
                .status()
                .expect("kill")
                .success()
        );
    };
    // Stopped for more than twice the node timeout: the workers' silence is the head's.
    signal("-STOP");
    std::thread::sleep(Duration::from_secs_f64(TIMEOUT_S * 2.5));
    signal("-CONT");
    std::thread::sleep(Duration::from_secs_f64(TIMEOUT_S * 1.5));
    let out = rllib(&c.session(), &["status"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.matches("ALIVE").count() == 2,
        "{text}"
    );
    let worker = pids.iter().find(|p| !p.0).expect("a worker").1;
    assert!(std::path::Path::new(&format!("/proc/{worker}")).exists());
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
    // The head offers no CPUs: both runners go to the workers, two CPUs each (room for one
    // rebuilt runner beside the other).
    let c = TestCluster::start(0.0, &[2.0, 2.0]);
    train_on(&c, sig);
}

/// `rllib example run cartpole-ppo --address` on `c` (a 0-CPU head, two 2-CPU workers) for 25
/// iterations, the second runner's node sent `sig` after iteration 3: the run completes with
/// one runner restart and its checkpoint evaluates.
fn train_on(c: &TestCluster, sig: &str) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let out_dir = c.session().join("runs");
    let mut cmd = Command::new(BIN);
    if let Some(t) = &c.tls {
        cmd.env("RLLIB_TLS_CERT", &t.cert)
            .env("RLLIB_TLS_KEY", &t.key)
            .env("RLLIB_TLS_CA", t.ca.as_ref().expect("a CA"));
    }
    let mut child = cmd
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
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .expect("a trial");
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

/// A CA and one node certificate it signed (for the given IPs), made with `openssl`, and a
/// certificate from another CA; `None` (the test says why) where `openssl` is missing.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn make(ips: &[&str]) -> Option<Certs> {
        if Command::new("openssl").arg("version").output().is_err() {
            eprintln!(
                "skipped: the openssl command is not installed (it makes the test certificates)"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("a temp dir");
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let ca = [
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem"],
        ];
        run(&[&ca.concat()[..], &["-days", "30", "-subj", "/CN=test CA"]].concat());
        let sans: Vec<String> = ips.iter().map(|ip| format!("IP:{ip}")).collect();
        std::fs::write(
            dir.path().join("ext.cnf"),
            format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n",
                sans.join(",")
            ),
        )
        .expect("ext.cnf");
        let csr = [
            &["req"][..],
            &ec,
            &["-keyout", "node.key", "-out", "node.csr"],
        ]
        .concat();
        run(&[&csr[..], &["-subj", "/CN=node"]].concat());
        run(&[
            "x509",
            "-req",
            "-in",
            "node.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "node.pem",
            "-days",
            "30",
            "-extfile",
            "ext.cnf",
        ]);
        // A self-signed certificate for the same addresses, from no CA the cluster knows.
        let san = format!("subjectAltName={}", sans.join(","));
        let other = [
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "other.key", "-out", "other.pem"],
        ];
        run(&[
            &other.concat()[..],
            &["-days", "30", "-subj", "/CN=other", "-addext", &san],
        ]
        .concat());
        Some(Certs { dir })
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn flags(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.path("node.pem"),
            "--tls-key".into(),
            self.path("node.key"),
            "--tls-ca".into(),
            self.path("ca.pem"),
        ]
    }

    fn files(&self) -> ray::cluster::TlsFiles {
        ray::cluster::TlsFiles {
            cert: self.path("node.pem").into(),
            key: self.path("node.key").into(),
            ca: Some(self.path("ca.pem").into()),
        }
    }
}

#[test]
fn tls_between_nodes_refuses_plain_and_foreign_peers() {
    let Some(certs) = Certs::make(&["127.0.0.1"]) else {
        return;
    };
    let c = TestCluster::launch(&[Spot::loopback(1.0), Spot::loopback(1.0)], Some(&certs));
    // A driver with the cluster's CA runs work on the worker.
    let rt = c.driver();
    let worker = rt
        .nodes()
        .into_iter()
        .find(|n| !n.is_head)
        .expect("a worker joined over TLS")
        .node_id;
    let r = rt
        .remote_task("ray.node_id")
        .node(&worker)
        .remote::<String>()
        .expect("submitted");
    assert_eq!(r.get_timeout(Duration::from_secs(30)).expect("ran"), worker);
    assert_eq!(len_on(&rt, &worker, 20_000_000), 20_000_000);
    rt.shutdown();
    // `rllib status` on this machine finds the TLS files with the node files.
    let out = rllib(&c.session(), &["status"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("2 node(s)"), "{text}");
    // Elsewhere (no node files), a driver in the clear, or with a certificate of another CA,
    // is refused with a line that says TLS, and within the connect time.
    let elsewhere = tempfile::tempdir().expect("a temp dir");
    let plain = rllib(
        elsewhere.path(),
        &["status", "--address", &c.head, "--token", &c.secret],
        None,
    );
    let err = String::from_utf8_lossy(&plain.stderr);
    assert!(!plain.status.success() && err.contains("TLS"), "{err}");
    // A head still open to drivers while a peer sits on a connection without a handshake.
    let silent = std::net::TcpStream::connect(&c.head).expect("connect");
    // The driver refuses the head (not of its CA); the head refuses a driver whose
    // certificate its CA did not sign (the driver trusts the head's CA).
    for (ca, want) in [
        (None, "TLS handshake failed"),
        (Some(certs.path("ca.pem")), "TLS"),
    ] {
        let mut cmd = Command::new(BIN);
        cmd.args(["status", "--address", &c.head, "--token", &c.secret])
            .env("RLLIB_SESSION_DIR", elsewhere.path())
            .env("RLLIB_TLS_CERT", certs.path("other.pem"))
            .env("RLLIB_TLS_KEY", certs.path("other.key"))
            .env_remove("RLLIB_TLS_CA");
        if let Some(ca) = &ca {
            cmd.env("RLLIB_TLS_CA", ca);
        }
        let foreign = cmd.output().expect("rllib status");
        let err = String::from_utf8_lossy(&foreign.stderr);
        assert!(
            !foreign.status.success() && err.contains(want),
            "{ca:?}: {err}"
        );
    }
    let out = rllib(&c.session(), &["status"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("2 node(s)"), "{text}");
    drop(silent);
    // A node in the clear cannot join.
    let out = rllib(
        elsewhere.path(),
        &["start", "--address", &c.head, "--num-cpus", "1"],
        Some(&c.secret),
    );
    assert!(!out.status.success());
    // Half a TLS configuration, or a file that is no certificate: a one-line error before
    // anything starts.
    let (cert, key, junk) = (
        certs.path("node.pem"),
        certs.path("node.key"),
        certs.path("ext.cnf"),
    );
    for (tls, want) in [
        (vec!["--tls-cert", &cert], "--tls-key"),
        (vec!["--tls-cert", &junk, "--tls-key", &key], "ext.cnf"),
    ] {
        let args = [&["start", "--head", "--port", "0"][..], &tls].concat();
        let out = rllib(elsewhere.path(), &args, None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{err}");
    }
    // Noise on the TLS port fails its handshake; the head keeps serving.
    for junk in [vec![0xffu8; 64], b"GET / HTTP/1.0\r\n\r\n".to_vec()] {
        let mut s = std::net::TcpStream::connect(&c.head).expect("connect");
        let _ = s.write_all(&junk);
    }
    let rt = c.driver();
    assert_eq!(rt.nodes().len(), 2);
}

/// Network namespaces joined by veth pairs on a bridge, one node per namespace, removed on
/// drop. Needs root (CAP_NET_ADMIN).
struct Netns {
    bridge: String,
    names: Vec<String>,
    ips: Vec<String>,
}

impl Netns {
    fn make(n: usize) -> Result<Netns, String> {
        let tag = std::process::id() % 10_000;
        let subnet = format!("10.77.{}", 20 + tag % 200);
        let mut net = Netns {
            bridge: format!("rlt{tag}br"),
            names: Vec::new(),
            ips: Vec::new(),
        };
        let ip = |args: &[&str]| -> Result<(), String> {
            let out = Command::new("ip")
                .args(args)
                .output()
                .map_err(|e| format!("ip: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "ip {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        let br = net.bridge.clone();
        ip(&["link", "add", &br, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{subnet}.1/24"), "dev", &br])?;
        ip(&["link", "set", &br, "up"])?;
        for i in 0..n {
            let ns = format!("rlt{tag}n{i}");
            ip(&["netns", "add", &ns])?;
            net.names.push(ns.clone());
            let (v, p) = (format!("rlt{tag}v{i}"), format!("rlt{tag}p{i}"));
            let addr = format!("{subnet}.{}", i + 2);
            ip(&["link", "add", &v, "type", "veth", "peer", "name", &p])?;
            ip(&["link", "set", &p, "netns", &ns])?;
            ip(&["link", "set", &v, "master", &br])?;
            ip(&["link", "set", &v, "up"])?;
            ip(&["-n", &ns, "addr", "add", &format!("{addr}/24"), "dev", &p])?;
            ip(&["-n", &ns, "link", "set", &p, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            net.ips.push(addr);
        }
        Ok(net)
    }

    fn spot(&self, i: usize, cpus: f64) -> Spot {
        Spot {
            cpus,
            prefix: vec![
                "ip".into(),
                "netns".into(),
                "exec".into(),
                self.names[i].clone(),
            ],
            ip: self.ips[i].clone(),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

#[test]
fn nodes_in_network_namespaces_over_veth_with_tls_survive_a_killed_node() {
    let net = match Netns::make(3) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("skipped: cannot make network namespaces here (needs root): {e}");
            return;
        }
    };
    let ips: Vec<&str> = net.ips.iter().map(String::as_str).collect();
    let Some(certs) = Certs::make(&ips) else {
        return;
    };
    let spots = [net.spot(0, 0.0), net.spot(1, 2.0), net.spot(2, 2.0)];
    let c = TestCluster::launch(&spots, Some(&certs));
    let rt = c.driver();
    let nodes = rt.nodes();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    let mut addrs: Vec<String> = nodes
        .iter()
        .map(|n| n.address.rsplit_once(':').expect("host:port").0.to_string())
        .collect();
    addrs.sort();
    assert_eq!(addrs, net.ips, "{nodes:?}");
    assert_eq!(rt.cluster_resources().get(CPU), 4.0);
    for n in &nodes {
        let r = rt
            .remote_task("ray.node_id")
            .num_cpus(0.0)
            .node(&n.node_id)
            .remote::<String>()
            .expect("submitted");
        assert_eq!(
            r.get_timeout(Duration::from_secs(30)).expect("ran"),
            n.node_id
        );
    }
    rt.shutdown();
    train_on(&c, "-KILL");
    drop(c);
}

/// A search with `--address`: each trial's algorithm runs in an actor on a worker (the head
/// offers no CPUs), its results and checkpoints come back to the trial folders here.
#[test]
fn a_search_runs_its_trials_on_the_cluster_nodes() {
    let c = TestCluster::start(0.0, &[1.0, 1.0]);
    let out_dir = c.session().join("runs");
    std::fs::write(
        c.session().join("grid.yaml"),
        "spread:\n  env: CartPole-v1\n  run: PPO\n  stop:\n    training_iteration: 4\n  checkpoint_freq: 2\n  config:\n    lr: {grid_search: [0.001, 0.0003]}\n    num_env_runners: 1\n    train_batch_size: 400\n    minibatch_size: 100\n    num_epochs: 2\n",
    )
    .expect("the config");
    let out = Command::new(BIN)
        .args(["train", "file"])
        .arg(c.session().join("grid.yaml"))
        .args([
            "--address",
            &c.head,
            "--seed",
            "1",
            "--num-samples",
            "2",
            "--output-dir",
        ])
        .arg(&out_dir)
        .env("RLLIB_SESSION_DIR", c.session())
        .env("RLLIB_CLUSTER_SECRET", &c.secret)
        .output()
        .expect("rllib train");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let workers: Vec<u32> = nodes_in(&c.session())
        .into_iter()
        .map(|(_, n)| n.pid)
        .collect();
    let mut trials = 0;
    let mut pids = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(out_dir.join("spread"))
        .expect("the experiment")
        .flatten()
    {
        let t = e.path();
        if !t.is_dir() {
            continue;
        }
        trials += 1;
        let csv = std::fs::read_to_string(t.join("progress.csv")).expect("progress.csv");
        let header: Vec<&str> = csv.lines().next().expect("header").split(',').collect();
        let col = header
            .iter()
            .position(|h| *h == "pid")
            .expect("a pid column");
        let rows: Vec<&str> = csv.lines().skip(1).collect();
        assert_eq!(rows.len(), 4, "{csv}");
        for r in rows {
            let pid: u32 = r
                .split(',')
                .nth(col)
                .and_then(|p| p.parse().ok())
                .expect("pid");
            assert!(
                workers.contains(&pid),
                "trial ran in {pid}, not on a node {workers:?}"
            );
            pids.insert(pid);
        }
        // The checkpoints the actors wrote on their nodes, here, and loadable.
        for n in ["checkpoint_000002", "checkpoint_000004"] {
            rllib::checkpoint::load(&t.join(n)).expect("a checkpoint from the node");
        }
        assert!(t.join("params.yaml").is_file());
    }
    assert_eq!(trials, 4);
    assert_eq!(pids.len(), 2, "both workers ran trials: {pids:?}");
}
