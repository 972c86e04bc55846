//! `rllib start`, `rllib stop` and `rllib status`: Ray's cluster commands on this binary's
//! runtime. `start` returns once its node is up and leaves it running in the background (a
//! child `rllib start --block` in a process group of its own, its output in the session
//! folder); `stop` stops the nodes started on this machine; `status` lists nodes and
//! resources.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ray::cluster::{self, NodeOptions, session};

/// What `rllib start` was given.
#[derive(Debug, Clone, Default)]
pub struct StartArgs {
    /// Start the head.
    pub head: bool,
    /// The head to join.
    pub address: Option<String>,
    /// Port to listen on (head default 6379, worker default a free one).
    pub port: Option<u16>,
    /// Address to listen on and advertise (default 127.0.0.1).
    pub node_ip_address: Option<String>,
    /// CPUs of this node (default: detected).
    pub num_cpus: Option<f64>,
    /// GPUs of this node (default: detected).
    pub num_gpus: Option<f64>,
    /// Custom resources, a JSON mapping.
    pub resources: Option<String>,
    /// The cluster secret.
    pub token: Option<String>,
    /// Stay in the foreground.
    pub block: bool,
    /// Seconds without heartbeats before a node is dead.
    pub node_timeout_s: Option<f64>,
    /// This node's TLS certificate (PEM).
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// The CA that signs the nodes' certificates (default: the certificate itself).
    pub tls_ca: Option<PathBuf>,
    /// Serve the dashboard from this node.
    pub include_dashboard: bool,
    /// The dashboard's address (default 127.0.0.1).
    pub dashboard_host: Option<String>,
    /// The dashboard's port (default 8265); implies `include_dashboard`.
    pub dashboard_port: Option<u16>,
    /// The output folder whose runs the dashboard shows (default `checkpoints` here).
    pub dashboard_runs_dir: Option<PathBuf>,
}

/// The dashboard's settings from the flags, checked; `None` when it is not wanted.
fn dashboard_options(a: &StartArgs) -> Result<Option<ray::dashboard::DashboardOptions>, String> {
    if !a.include_dashboard
        && a.dashboard_port.is_none()
        && a.dashboard_host.is_none()
        && a.dashboard_runs_dir.is_none()
    {
        return Ok(None);
    }
    let mut o = ray::dashboard::DashboardOptions::default();
    if let Some(p) = a.dashboard_port {
        o.port = p;
    }
    if let Some(h) = &a.dashboard_host {
        o.host = h.parse().map_err(|_| {
            format!(
                "--dashboard-host {h:?} is not an IP address (expected e.g. 127.0.0.1 or 0.0.0.0)"
            )
        })?;
    }
    let runs = a
        .dashboard_runs_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("checkpoints"));
    // The node runs in the background: the folder is the one meant here and now.
    o.runs_dirs = vec![std::path::absolute(&runs).unwrap_or(runs)];
    Ok(Some(o))
}

/// The TLS files of `--tls-cert/--tls-key/--tls-ca`, else of `$RLLIB_TLS_*`, checked.
fn tls_files(a: &StartArgs) -> Result<Option<cluster::TlsFiles>, String> {
    let t = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => Some(cluster::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            ca: a.tls_ca.clone(),
        }),
        (None, None) if a.tls_ca.is_some() => {
            return Err("--tls-ca needs --tls-cert and --tls-key too".into());
        }
        (None, None) => cluster::TlsFiles::from_env()?,
        _ => return Err("TLS needs both --tls-cert <PEM> and --tls-key <PEM>".into()),
    };
    match t {
        None => Ok(None),
        Some(t) => {
            let t = t.absolute()?;
            t.check()?;
            Ok(Some(t))
        }
    }
}

fn options(a: &StartArgs, secret: &str) -> Result<NodeOptions, String> {
    if a.head == a.address.is_some() {
        return Err(
            "rllib start needs exactly one of --head and --address <head host:port>".into(),
        );
    }
    let host: IpAddr = match &a.node_ip_address {
        None => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        Some(s) => s.parse().map_err(|_| {
            format!("--node-ip-address {s:?} is not an IP address (expected e.g. 10.0.0.1)")
        })?,
    };
    let mut init = ray::InitOptions::new();
    if let Some(n) = a.num_cpus {
        init = init.num_cpus(n);
    }
    if let Some(n) = a.num_gpus {
        init = init.num_gpus(n);
    }
    if let Some(text) = &a.resources {
        let m: BTreeMap<String, f64> = serde_json::from_str(text).map_err(|e| {
            format!("--resources {text:?}: expected a JSON mapping of names to amounts such as '{{\"custom\": 2}}': {e}")
        })?;
        for (k, v) in m {
            init = init.resource(k, v);
        }
    }
    let node_timeout = match a.node_timeout_s {
        None => cluster::DEFAULT_NODE_TIMEOUT,
        Some(s) if s.is_finite() && (0.05..=3600.0).contains(&s) => Duration::from_secs_f64(s),
        Some(s) => {
            return Err(format!(
                "--node-timeout-s {s}: expected seconds in [0.05, 3600]"
            ));
        }
    };
    let tls = tls_files(a)?;
    Ok(NodeOptions {
        tls,
        head: a.head,
        host,
        port: a.port.unwrap_or(if a.head { 6379 } else { 0 }),
        head_address: a.address.clone(),
        secret: secret.to_string(),
        resources: init.resources().map_err(|e| e.to_string())?,
        heartbeat: (node_timeout / 6).max(Duration::from_millis(20)),
        node_timeout,
    })
}

fn secret_for(a: &StartArgs) -> Result<String, String> {
    if let Some(t) = &a.token {
        return Ok(t.clone());
    }
    if let Ok(s) = std::env::var(session::SECRET_ENV)
        && !s.is_empty()
    {
        return Ok(s);
    }
    if a.head {
        session::new_secret()
    } else {
        session::load_secret()
    }
}

/// `rllib start`: checks the flags, then starts the node in a background child (or here with
/// `--block`) and prints how to join it.
pub fn start(a: &StartArgs, say: &dyn Fn(String)) -> Result<(), String> {
    // The flags first: a bad one is reported before a secret is looked for or made.
    options(a, "")?;
    dashboard_options(a)?;
    let secret = secret_for(a)?;
    let o = options(a, &secret)?;
    if a.block {
        return run_node(o, dashboard_options(a)?, say);
    }
    let dir = session::dir()?;
    let log = dir.join(format!("node-{}-{}.log", o.port, std::process::id()));
    // Owner-only: the head's log repeats the secret.
    use std::os::unix::fs::OpenOptionsExt;
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&log)
        .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|x| x != "--token")
        .collect();
    // The secret goes through the environment, never the command line (`ps` shows that).
    if let Some(i) = std::env::args().skip(1).position(|x| x == "--token") {
        let t = std::env::args().nth(i + 2).unwrap_or_default();
        args.retain(|x| *x != t);
    }
    args.push("--block".into());
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(exe)
        .args(&args)
        .env(session::SECRET_ENV, &secret)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the node process: {e}"))?;
    let pid = child.id();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            return Err(format!(
                "the node exited ({status}): {last} (log: {})",
                log.display()
            ));
        }
        if let Some((_, n)) = session::nodes()?.into_iter().find(|(_, n)| n.pid == pid) {
            print_started(&n, &secret, a.head, say);
            say(format!(
                "Its output goes to {}; stop it with `rllib stop`.",
                log.display()
            ));
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(30) {
            return Err(format!(
                "the node did not come up within 30 s (log: {})",
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn print_started(n: &session::NodeFile, secret: &str, head: bool, say: &dyn Fn(String)) {
    if head {
        say(format!(
            "Started the head node {} at {} (pid {}).",
            n.node_id, n.address, n.pid
        ));
        say("To add a node on another machine, run there:".into());
        let tls = if n.tls.is_some() {
            " --tls-cert <its cert> --tls-key <its key> --tls-ca <the CA>"
        } else {
            ""
        };
        say(format!(
            "  RLLIB_CLUSTER_SECRET={secret} rllib start --address {} --node-ip-address <that machine's IP>{tls}",
            n.address
        ));
        if n.tls.is_some() {
            say("Nodes and drivers speak TLS: a driver elsewhere sets RLLIB_TLS_CERT, RLLIB_TLS_KEY and RLLIB_TLS_CA.".into());
        }
        say("To connect a driver: rllib status --address <head>, or InitOptions::new().address(\"auto\") on this machine.".into());
        say(format!(
            "The secret is stored owner-only in {}.",
            session::dir()
                .map(|d| d.join("secret").display().to_string())
                .unwrap_or_default()
        ));
    } else {
        say(format!(
            "Started node {} at {} (pid {}), joined the head at {}.",
            n.node_id, n.address, n.pid, n.head_address
        ));
    }
    if let Some(url) = &n.dashboard {
        let loopback = url
            .trim_start_matches("http://")
            .rsplit_once(':')
            .and_then(|(h, _)| h.trim_matches(['[', ']']).parse::<std::net::IpAddr>().ok())
            .is_some_and(|h| h.is_loopback());
        if loopback {
            say(format!("View the dashboard at {url}"));
        } else {
            say(format!("View the dashboard at {url}/?token={secret}"));
        }
    }
}

fn run_node(
    o: NodeOptions,
    dashboard: Option<ray::dashboard::DashboardOptions>,
    say: &dyn Fn(String),
) -> Result<(), String> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let head = o.head;
    let tls = o.tls.clone();
    let secret = o.secret.clone();
    let head_address = o.head_address.clone();
    let node = cluster::start_node(o).map_err(|e| e.to_string())?;
    let info = node.info().clone();
    if head {
        session::save_secret(&secret)?;
    }
    let dashboard = match dashboard {
        None => None,
        Some(mut d) => {
            if !d.host.is_loopback() {
                d.secret = Some(secret.clone());
            }
            let started = ray::dashboard::start(node.dashboard_source(), d);
            match started {
                Ok(d) => Some(d),
                Err(e) => {
                    node.shutdown();
                    return Err(e.to_string());
                }
            }
        }
    };
    let file = session::NodeFile {
        dashboard: dashboard.as_ref().map(|d| d.url()),
        node_id: info.node_id.clone(),
        address: info.address.clone(),
        head_address: head_address.unwrap_or_else(|| info.address.clone()),
        pid: info.pid,
        is_head: head,
        tls: tls.clone(),
    };
    let path = session::save_node(&file)?;
    print_started(&file, &secret, head, say);
    let outcome = loop {
        if let Some(sig) = signals.pending().next() {
            break Ok(sig);
        }
        if let Some(reason) = node.fenced() {
            break Err(reason);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = std::fs::remove_file(&path);
    node.shutdown();
    match outcome {
        Ok(sig) => {
            say(format!("Node {} stopped (signal {sig}).", info.node_id));
            Ok(())
        }
        Err(reason) => Err(reason),
    }
}

fn alive(pid: u32) -> bool {
    // A zombie (exited, not yet reaped) counts as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// `rllib stop`: SIGTERM to every node started on this machine, SIGKILL after `grace`.
pub fn stop(grace: Duration, say: &dyn Fn(String)) -> Result<usize, String> {
    let nodes = session::nodes()?;
    let mut stopped = 0;
    for (path, n) in nodes {
        if alive(n.pid) {
            signal(n.pid, "-TERM");
            let start = Instant::now();
            while alive(n.pid) && start.elapsed() < grace {
                std::thread::sleep(Duration::from_millis(20));
            }
            if alive(n.pid) {
                signal(n.pid, "-KILL");
            }
            say(format!("Stopped node {} (pid {}).", n.node_id, n.pid));
            stopped += 1;
        }
        let _ = std::fs::remove_file(&path);
    }
    if stopped == 0 {
        say("No node was running on this machine.".into());
    }
    Ok(stopped)
}

/// `CPU 1/4`, `memory 0.5/23.5 GiB`: one resource, used of total.
fn used_of(key: &str, used: f64, total: f64) -> String {
    if key == ray::MEMORY {
        let gib = (1u64 << 30) as f64;
        format!("{key} {:.1}/{:.1} GiB", used / gib, total / gib)
    } else {
        format!("{key} {used}/{total}")
    }
}

/// `rllib status`: the nodes and resources (used / total) of the cluster at `address`
/// (default: the one started on this machine).
pub fn status(
    address: Option<&str>,
    token: Option<&str>,
    say: &dyn Fn(String),
) -> Result<(), String> {
    let mut o = ray::InitOptions::new()
        .address(address.unwrap_or("auto"))
        .num_cpus(0.0);
    if let Some(t) = token {
        o = o.secret(t);
    }
    let rt = ray::init(o).map_err(|e| e.to_string())?;
    let nodes = rt.nodes();
    say(format!("{} node(s):", nodes.len()));
    let mut keys: Vec<String> = nodes.iter().flat_map(|n| n.total.keys().cloned()).collect();
    keys.sort();
    keys.dedup();
    for n in &nodes {
        let res: Vec<String> = keys
            .iter()
            .map(|k| {
                let total = n.total.get(k).copied().unwrap_or(0.0);
                used_of(k, total - n.available.get(k).copied().unwrap_or(0.0), total)
            })
            .collect();
        say(format!(
            "  {} {:<24} {:<5}  pid {:<8} {}",
            if n.is_head { "head" } else { "node" },
            n.address,
            if n.alive { "ALIVE" } else { "DEAD" },
            n.pid,
            res.join(", ")
        ));
    }
    let total = rt.cluster_resources();
    let avail = rt.available_resources();
    let parts: Vec<String> = total
        .iter()
        .map(|(k, v)| used_of(k, v - avail.get(k), v))
        .collect();
    say(format!(
        "Resources (used/total, live nodes): {}",
        parts.join(", ")
    ));
    rt.shutdown();
    Ok(())
}

/// The log folder of nodes started here (for messages).
pub fn session_dir() -> Option<PathBuf> {
    session::dir().ok()
}
