//! Cluster mode: the runtime across processes and machines on ractor_cluster.
//!
//! A node process (`rllib start`) runs a ractor_cluster `NodeServer`, authenticated by the
//! cluster secret, and an agent that runs registered functions and actor types by name. The
//! head node keeps the table of nodes and pings each one every heartbeat; a node that has not
//! answered for `node_timeout` (or whose connection closed) is dead. A driver
//! (`ray::init(InitOptions::new().address(..))`) connects to the head and to every node, and
//! places work by resources; results stay on their node until the driver fetches them, in
//! chunks under the engine's 16 MiB frame limit.

mod builtin;
mod client;
mod data;
mod node;
mod objects;
mod registry;
pub mod session;
mod tls;
mod wire;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub use builtin::{PROBE, Probe, current_node_id};
pub use client::RemoteActorHandle;
pub use registry::{RemoteActor, method, register_actor, register_function, unknown_method};
pub use tls::TlsFiles;
pub use wire::NodeInfo;

pub(crate) use client::{Cluster, TaskInput, TaskSpec};
pub(crate) use node::NodeState;
pub(crate) use objects::Held;
pub use objects::RemoteRef;
pub(crate) use registry::function as registry_function;
pub(crate) use wire::Payload;
pub(crate) use wire::encode;

use crate::{RayError, Resources};

/// Default time between heartbeats.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(500);
/// Default time without an answer after which a node is dead.
pub const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_secs(3);
/// Default deadline of one remote call.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(600);

/// How to start a node (`rllib start`).
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Start the head (`--head`) rather than join one.
    pub head: bool,
    /// The address to listen on and give to others (`--node-ip-address`; loopback by default).
    pub host: IpAddr,
    /// The port to listen on (`--port`; 0 picks a free one).
    pub port: u16,
    /// The head to join (`--address`), for a worker node.
    pub head_address: Option<String>,
    /// The cluster secret.
    pub secret: String,
    /// This node's resources.
    pub resources: Resources,
    /// Time between heartbeats.
    pub heartbeat: Duration,
    /// Time without an answer after which a node is dead.
    pub node_timeout: Duration,
    /// TLS between this node and the others (`--tls-cert`, `--tls-key`, `--tls-ca`).
    pub tls: Option<TlsFiles>,
}

impl NodeOptions {
    /// A head on loopback with the machine's resources.
    pub fn head(port: u16, secret: &str) -> Result<Self, RayError> {
        Ok(NodeOptions {
            head: true,
            host: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            port,
            head_address: None,
            secret: secret.to_string(),
            resources: crate::InitOptions::new().resources()?,
            heartbeat: DEFAULT_HEARTBEAT,
            node_timeout: DEFAULT_NODE_TIMEOUT,
            tls: None,
        })
    }
}

/// A running node; dropping it (or [`NodeHandle::shutdown`]) stops it.
pub struct NodeHandle {
    executor: Option<tokio::runtime::Runtime>,
    info: NodeInfo,
    state: Arc<node::NodeState>,
    fenced: std::sync::mpsc::Receiver<String>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("info", &self.info)
            .finish()
    }
}

impl NodeHandle {
    /// The node as the cluster sees it.
    pub fn info(&self) -> &NodeInfo {
        &self.info
    }

    /// Why the head fenced this node off, once it has: the head declared it dead (it missed
    /// heartbeats, say while stopped) and its work has moved, so the node must stop.
    pub fn fenced(&self) -> Option<String> {
        self.fenced.try_recv().ok()
    }

    /// What a dashboard served by this node shows: the head's table of every node (a
    /// worker shows itself).
    pub fn dashboard_source(&self) -> Arc<dyn crate::dashboard::StateSource> {
        Arc::new(NodeSource(Arc::clone(&self.state)))
    }

    /// Stops the node: its connections close and the cluster marks it dead.
    pub fn shutdown(mut self) {
        if let Some(rt) = self.executor.take() {
            rt.shutdown_background();
        }
    }
}

struct NodeSource(Arc<node::NodeState>);

impl crate::dashboard::StateSource for NodeSource {
    fn nodes(&self) -> Vec<NodeInfo> {
        if self.0.info.is_head {
            self.0.nodes()
        } else {
            vec![self.0.snapshot()]
        }
    }
}

fn to_map(r: &Resources) -> BTreeMap<String, f64> {
    r.iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Starts a node in this process and returns once it is up (and, for a worker, registered
/// with the head).
pub fn start_node(o: NodeOptions) -> Result<NodeHandle, RayError> {
    if o.secret.is_empty() {
        return Err(RayError::Cluster("the cluster secret is empty".into()));
    }
    // One executor thread: it only moves messages (tasks and actors run on threads of their
    // own), and a second one made each message hop between threads, and so between cores,
    // 40 µs more per remote call (112 against 157 µs on loopback, medians).
    let executor = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("ray-node")
        .enable_all()
        .build()
        .map_err(|e| RayError::Startup(e.to_string()))?;
    // Bind first, so that port 0 becomes a real port and a taken port is a clear error.
    let probe = std::net::TcpListener::bind((o.host, o.port))
        .map_err(|e| RayError::Cluster(format!("cannot listen on {}:{}: {e}", o.host, o.port)))?;
    let port = probe
        .local_addr()
        .map_err(|e| RayError::Cluster(e.to_string()))?
        .port();
    drop(probe);
    let address = format!("{}:{port}", o.host);
    let node_id = format!("{}-{port}-{}", o.host, std::process::id());
    builtin::set_node_id(&node_id);
    let info = NodeInfo {
        node_id: node_id.clone(),
        address: address.clone(),
        is_head: o.head,
        alive: true,
        total: to_map(&o.resources),
        available: to_map(&o.resources),
        pid: std::process::id(),
        objects: 0,
        data_address: String::new(),
    };
    let state = NodeState::new(
        info.clone(),
        o.heartbeat,
        o.node_timeout,
        DEFAULT_CALL_TIMEOUT,
        executor.handle().clone(),
    );
    let fenced = state.on_fenced();
    let kept = Arc::clone(&state);
    let acceptor = o.tls.as_ref().map(tls::acceptor).transpose()?;
    let dialer = tls::Dialer::new(o.tls.as_ref())?;
    let o2 = o.clone();
    executor.block_on(async move {
        // With TLS, our own listener does the handshakes (each with a deadline) and hands the
        // sessions to a node server that listens on loopback only.
        let (server_port, server_host) = match acceptor {
            None => (port, o2.host),
            Some(_) => (0, IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
        };
        let server = ractor_cluster::NodeServer::new(
            server_port,
            o2.secret.clone(),
            node_id.clone(),
            o2.host.to_string(),
            None,
            Some(ractor_cluster::node::NodeConnectionMode::Isolated),
        )
        .with_listen_addr(server_host);
        let (server, _) = ractor::Actor::spawn(None, server, ())
            .await
            .map_err(|e| RayError::Cluster(format!("cannot start the node server: {e}")))?;
        if let Some(acceptor) = &acceptor {
            let listener = tokio::net::TcpListener::bind((o2.host, port))
                .await
                .map_err(|e| RayError::Cluster(format!("cannot listen on {address}: {e}")))?;
            tokio::spawn(tls::serve(listener, acceptor.clone(), server.clone()));
        }
        let link = node::Link {
            server: server.clone(),
            dialer: dialer.clone(),
            secret: Arc::from(o2.secret.as_str()),
            pool: Default::default(),
        };
        state
            .open(o2.host, link, acceptor)
            .await
            .map_err(RayError::Cluster)?;
        ractor::Actor::spawn(None, node::Agent, Arc::clone(&state))
            .await
            .map_err(|e| RayError::Cluster(format!("cannot start the node agent: {e}")))?;
        tokio::spawn(Arc::clone(&state).sweep_loop(Duration::from_secs(1)));
        if o2.head {
            tokio::spawn(Arc::clone(&state).heartbeat_loop());
            return Ok(());
        }
        let head_addr = o2
            .head_address
            .clone()
            .ok_or_else(|| RayError::Cluster("a worker node needs the head's --address".into()))?;
        dialer
            .connect(&server, &head_addr)
            .await
            .map_err(|e| RayError::Cluster(format!("cannot reach the head at {head_addr}: {e}")))?;
        let head = client::wait_for(
            Duration::from_secs(5).max(o2.node_timeout),
            client::head_agent,
        )
        .await
        .ok_or_else(|| {
            RayError::Cluster(format!(
                "the head at {head_addr} did not let this node in: wrong cluster secret \
                     (--token / RLLIB_CLUSTER_SECRET), a head that speaks TLS (--tls-cert, \
                     --tls-key, --tls-ca), or not an rllib head"
            ))
        })?;
        match node::rpc(
            &head,
            &wire::Request::Register(state.info.clone()),
            o2.node_timeout,
        )
        .await
        {
            Ok(wire::Response::Registered) => Ok(()),
            other => Err(RayError::Cluster(format!(
                "the head at {head_addr} did not register this node: {other:?}"
            ))),
        }
    })?;
    Ok(NodeHandle {
        executor: Some(executor),
        info,
        state: kept,
        fenced,
    })
}

/// Connects a driver (what `ray::init` does with an address).
pub(crate) fn connect(
    address: &str,
    secret: &str,
    heartbeat: Duration,
    node_timeout: Duration,
    call_timeout: Duration,
    tls: Option<&TlsFiles>,
    executor: &tokio::runtime::Handle,
) -> Result<Arc<Cluster>, RayError> {
    let dialer = tls::Dialer::new(tls)?;
    let acceptor = tls.map(tls::acceptor).transpose()?;
    let info = NodeInfo {
        node_id: format!("driver-{}-{}", std::process::id(), rand_suffix()),
        address: String::new(),
        is_head: false,
        alive: true,
        total: BTreeMap::new(),
        available: BTreeMap::new(),
        pid: std::process::id(),
        objects: 0,
        data_address: String::new(),
    };
    let me = NodeState::new(
        info,
        heartbeat,
        node_timeout,
        call_timeout,
        executor.clone(),
    );
    let addr = address.to_string();
    let secret = secret.to_string();
    let ex = executor.clone();
    // The executor's own threads run the connection; this thread only waits for it.
    let (tx, rx) = std::sync::mpsc::channel();
    executor.spawn(async move {
        let _ = tx.send(Cluster::connect(&addr, &secret, me, dialer, acceptor, ex).await);
    });
    rx.recv()
        .map_err(|_| RayError::Cluster("the connection task stopped".into()))?
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() & 0xffff_ffff
}
