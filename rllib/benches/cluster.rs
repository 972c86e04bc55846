//! Cluster mode on loopback, with node processes started by this binary's `rllib start`:
//! remote call round trip (beside a local actor's, the floor it adds the network to), object
//! throughput beside a raw TCP copy measured in the same run, and env-runner sampling on 2
//! node processes vs 1.
//!
//!     cargo bench -p rllib --bench cluster        (bench/cluster.sh prints the table)
//!
//! Prints medians.

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use rllib::env_runner::SampleOutput;
use rllib::remote_runner::{ENV_RUNNER, RunnerArgs, SampleArgs};

const BIN: &str = env!("CARGO_BIN_EXE_rllib");

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn rllib(session: &std::path::Path, args: &[&str]) {
    let out = Command::new(BIN)
        .args(args)
        .env("RLLIB_SESSION_DIR", session)
        .env_remove("RLLIB_CLUSTER_SECRET")
        .output()
        .expect("rllib runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// MB/s of a plain TCP copy of `bytes` over loopback (one write side, one read side).
fn raw_tcp(bytes: usize) -> f64 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let addr = l.local_addr().expect("addr");
    let reader = std::thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept");
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0;
        while n < bytes {
            n += s.read(&mut buf).expect("read");
        }
    });
    let data = vec![1u8; bytes];
    let t = Instant::now();
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.write_all(&data).expect("write");
    reader.join().expect("reader");
    bytes as f64 / 1e6 / t.elapsed().as_secs_f64()
}

/// Median round trip, in µs, of sequential calls on an actor of a local runtime.
fn local_actor_rtt() -> f64 {
    let rt = ray::init(ray::InitOptions::new()).expect("local runtime");
    let counter = rt.actor(|| 0i64).spawn().expect("actor");
    let mut rtt = Vec::new();
    for i in 0..3000 {
        let t = Instant::now();
        let n = counter
            .call(|n: &mut i64| {
                *n += 1;
                *n
            })
            .get()
            .expect("ran");
        if i >= 200 {
            rtt.push(t.elapsed().as_secs_f64() * 1e6);
        }
        assert_eq!(n, i + 1);
    }
    rt.shutdown();
    median(rtt)
}

/// The driver allocates as the `rllib` binary (its nodes) does.
#[global_allocator]
static ALLOC: ray::HugePageAlloc = ray::HugePageAlloc;

fn main() {
    let local = local_actor_rtt();
    let dir = std::env::temp_dir().join(format!("rllib-cluster-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("session dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port()
        .to_string();
    let head = format!("127.0.0.1:{port}");
    rllib(
        &dir,
        &["start", "--head", "--port", &port, "--num-cpus", "0"],
    );
    rllib(&dir, &["start", "--address", &head, "--num-cpus", "1"]);
    rllib(&dir, &["start", "--address", &head, "--num-cpus", "1"]);
    let secret = std::fs::read_to_string(dir.join("secret")).expect("secret");
    let rt = ray::init(ray::InitOptions::new().address(&head).secret(&secret)).expect("driver");
    let workers: Vec<String> = rt
        .nodes()
        .into_iter()
        .filter(|n| !n.is_head)
        .map(|n| n.node_id)
        .collect();
    let get = Duration::from_secs(120);

    // Round trip: sequential calls on an actor on a worker node.
    let probe = rt
        .remote_actor(ray::cluster::PROBE)
        .node(&workers[0])
        .spawn()
        .expect("probe");
    let mut rtt = Vec::new();
    for i in 0..3000 {
        let t = Instant::now();
        let r: i64 = probe
            .call("incr", &1i64)
            .expect("call")
            .get_timeout(get)
            .expect("ran");
        if i >= 200 {
            rtt.push(t.elapsed().as_secs_f64() * 1e6);
        }
        assert_eq!(r, i + 1);
    }
    let mut task_rtt = Vec::new();
    for _ in 0..300 {
        let t = Instant::now();
        rt.remote_task("ray.node_id")
            .node(&workers[0])
            .remote::<String>()
            .expect("task")
            .get_timeout(get)
            .expect("ran");
        task_rtt.push(t.elapsed().as_secs_f64() * 1e6);
    }
    println!(
        "actor call round trip, us (median of 2800)      {:>10.1}",
        median(rtt)
    );
    println!(
        "  the same on a local actor, us (median of 2800) {:>9.1}",
        local
    );
    println!(
        "task round trip, us (median of 300)            {:>10.1}",
        median(task_rtt)
    );

    // Objects: driver -> node (argument) and node -> driver (result), beside raw TCP.
    for (size, reps) in [(1usize << 20, 30), (100_000_000usize, 8)] {
        let raw = median((0..reps).map(|_| raw_tcp(size)).collect());
        let arg = serde_bytes::ByteBuf::from(vec![3u8; size]);
        let up = median(
            (0..reps)
                .map(|_| {
                    let t = Instant::now();
                    let n: u64 = rt
                        .remote_task("ray.len")
                        .arg(&arg)
                        .node(&workers[0])
                        .remote()
                        .expect("task")
                        .get_timeout(get)
                        .expect("ran");
                    assert_eq!(n as usize, size);
                    size as f64 / 1e6 / t.elapsed().as_secs_f64()
                })
                .collect(),
        );
        let down = median(
            (0..reps)
                .map(|_| {
                    let t = Instant::now();
                    let b: serde_bytes::ByteBuf = rt
                        .remote_task("ray.zeros")
                        .arg(&(size as u64))
                        .node(&workers[0])
                        .remote()
                        .expect("task")
                        .get_timeout(get)
                        .expect("ran");
                    assert_eq!(b.len(), size);
                    size as f64 / 1e6 / t.elapsed().as_secs_f64()
                })
                .collect(),
        );
        let mb = size as f64 / 1e6;
        println!(
            "{mb:>6.1} MB: raw TCP {raw:>8.0} MB/s, to a node {up:>8.0} MB/s ({:.0}%), from a node {down:>8.0} MB/s ({:.0}%)",
            100.0 * up / raw,
            100.0 * down / raw
        );
    }

    // Sampling: one env runner on one node, then one on each of two nodes at once.
    let model = algorithms::ModelConfig {
        fcnet_hiddens: vec![64, 64],
        fcnet_activation: algorithms::Activation::Tanh,
        vf_share_layers: false,
        ..Default::default()
    };
    let cfg = algorithms::AlgorithmConfig {
        num_envs_per_env_runner: 32,
        model,
        ..Default::default()
    };
    let probe_env = envs::make("CartPole-v1").expect("env");
    let spec = algorithms::ModuleSpec::for_env(
        &cfg,
        probe_env.observation_space(),
        probe_env.action_space(),
    )
    .expect("spec");
    let weights = spec.init(1);
    let runners: Vec<_> = workers
        .iter()
        .enumerate()
        .map(|(i, n)| {
            rt.remote_actor(ENV_RUNNER)
                .args(&RunnerArgs {
                    cfg: cfg.clone(),
                    weights: weights.clone(),
                    seed: 1,
                    worker_index: i + 1,
                })
                .num_cpus(1.0)
                .node(n)
                .spawn()
                .expect("runner")
        })
        .collect();
    let steps = 2048usize;
    let sample = |group: &[ray::RemoteActorHandle]| {
        let t = Instant::now();
        let refs: Vec<_> = group
            .iter()
            .map(|r| {
                r.call::<_, Result<SampleOutput, String>>(
                    "sample",
                    &SampleArgs {
                        weights: None,
                        filter: None,
                        steps,
                    },
                )
                .expect("call")
            })
            .collect();
        let n: usize = refs
            .into_iter()
            .map(|r| {
                r.get_timeout(get)
                    .expect("ran")
                    .expect("sampled")
                    .batch
                    .len()
            })
            .sum();
        n as f64 / t.elapsed().as_secs_f64()
    };
    sample(&runners);
    let (mut one, mut two) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        one.push(sample(&runners[..1]));
        two.push(sample(&runners));
    }
    let (one, two) = (median(one), median(two));
    println!("sampling, 1 runner on 1 node, env steps/s      {one:>10.0}");
    println!("sampling, 2 runners on 2 nodes, env steps/s    {two:>10.0}");
    println!(
        "speed-up from 1 to 2 nodes                     {:>10.2}",
        two / one
    );

    drop(runners);
    drop(probe);
    rt.shutdown();
    rllib(&dir, &["stop", "--grace-period", "2"]);
    let _ = std::fs::remove_dir_all(&dir);
}
