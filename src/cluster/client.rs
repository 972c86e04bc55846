//! A driver's connection to a cluster: the node table (refreshed from the head every
//! heartbeat), placement of tasks and actors by resources, a deadline on every remote call,
//! `NodeDied` for calls on a node that died or hung, task retries and actor restarts on other
//! nodes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ractor::{ActorRef, RpcReplyPort};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

use super::node::{self, NodeState, agent_of, rpc};
use super::objects::Held;
use super::tls::Dialer;
use super::wire::{AgentMsg, NodeInfo, Payload, Request, Response, decode, encode};
use crate::object::{ObjectRef, Orphaned, Promise};
use crate::{RayError, Resources};

pub(crate) type Demand = BTreeMap<String, f64>;

struct NodeView {
    info: NodeInfo,
    dead: watch::Sender<bool>,
    /// Live actors this driver placed there: placement spreads them (fewest first).
    actors: usize,
}

impl NodeView {
    /// Whether this node is live, allowed by `affinity`, and large enough for `demand`.
    fn could_hold(&self, demand: &Demand, affinity: Option<&str>) -> bool {
        self.info.alive
            && !*self.dead.borrow()
            && affinity.is_none_or(|a| a == self.info.node_id)
            && demand
                .iter()
                .all(|(k, x)| *x <= self.info.total.get(k).copied().unwrap_or(0.0) + 1e-9)
    }
}

/// The driver's side of a cluster.
pub(crate) struct Cluster {
    pub(crate) me: Arc<NodeState>,
    head: String,
    nodes: Mutex<BTreeMap<String, NodeView>>,
    actors: Mutex<Vec<Weak<RActor>>>,
    /// One actor placement at a time, so that each sees the ones before it.
    placing: tokio::sync::Mutex<()>,
    /// How this driver opens sessions to nodes (plain or TLS).
    dialer: Dialer,
    pub(crate) executor: tokio::runtime::Handle,
    _server: ActorRef<ractor_cluster::NodeServerMessage>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("head", &self.head).finish()
    }
}

/// Waits until `find` gives a value (a peer's agent showing up after its session
/// authenticates), or `within` passes.
pub(crate) async fn wait_for<T>(
    within: Duration,
    mut find: impl FnMut() -> Option<T>,
) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = find() {
            return Some(v);
        }
        if start.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub(crate) fn head_agent() -> Option<ActorRef<AgentMsg>> {
    ractor::pg::get_members(&node::HEAD.to_string())
        .into_iter()
        .find(|c| !c.get_id().is_local())
        .map(ActorRef::from)
}

/// What a remote task runs with: its argument as bytes, or an object kept somewhere.
pub(crate) enum TaskInput {
    Bytes(Vec<u8>),
    Object(ObjectRef<Held>),
}

/// A remote task as the builder gives it.
pub(crate) struct TaskSpec {
    pub(crate) name: String,
    pub(crate) input: TaskInput,
    pub(crate) demand: Demand,
    pub(crate) max_retries: u32,
    pub(crate) affinity: Option<String>,
}

/// The local address this machine would use to reach `address` (no packet is sent).
fn local_ip_towards(address: &str) -> Option<std::net::IpAddr> {
    use std::net::ToSocketAddrs;
    let target = address.to_socket_addrs().ok()?.next()?;
    let any: std::net::SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = std::net::UdpSocket::bind(any).ok()?;
    s.connect(target).ok()?;
    Some(s.local_addr().ok()?.ip())
}

/// How a call on one node ended, when it did not end with a reply.
enum CallErr {
    /// The node was gone before the request went out.
    Unreachable,
    NodeDied,
    Other(String),
}

impl Cluster {
    pub(crate) async fn connect(
        address: &str,
        secret: &str,
        me: Arc<NodeState>,
        dialer: Dialer,
        tls_acceptor: Option<tokio_rustls::TlsAcceptor>,
        executor: tokio::runtime::Handle,
    ) -> Result<Arc<Self>, RayError> {
        let server = ractor_cluster::NodeServer::new(
            0,
            secret.to_string(),
            me.info.node_id.clone(),
            "localhost".to_string(),
            // Loopback, and nothing connects to a driver: it opens every session itself.
            None,
            Some(ractor_cluster::node::NodeConnectionMode::Isolated),
        )
        .with_listen_addr(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        let (server, _) = ractor::Actor::spawn(None, server, ()).await.map_err(|e| {
            RayError::Cluster(format!("cannot start this driver's node server: {e}"))
        })?;
        let link = node::Link {
            server: server.clone(),
            dialer: dialer.clone(),
            secret: Arc::from(secret),
            pool: Default::default(),
        };
        // The data port, on the address this machine reaches the head from (nodes fetch the
        // driver's large arguments and puts there); without a route, no port.
        match local_ip_towards(address) {
            Some(host) => me
                .open(host, link, tls_acceptor)
                .await
                .map_err(RayError::Cluster)?,
            None => {
                let _ = me.link.set(link);
            }
        }
        ractor::Actor::spawn(None, node::Agent, Arc::clone(&me))
            .await
            .map_err(|e| RayError::Cluster(format!("cannot start this driver's agent: {e}")))?;
        dialer
            .connect(&server, address)
            .await
            .map_err(|e| RayError::Cluster(format!("cannot reach the head at {address}: {e}")))?;
        let within = me.node_timeout.max(Duration::from_secs(5));
        let started = Instant::now();
        let nodes = loop {
            let head = wait_for(within, head_agent).await.ok_or_else(|| {
                RayError::Cluster(format!(
                    "the head at {address} did not let this driver in: wrong cluster secret \
                     (--token / RLLIB_CLUSTER_SECRET), a head that speaks TLS (RLLIB_TLS_CERT, \
                     RLLIB_TLS_KEY, RLLIB_TLS_CA), or not an rllib head"
                ))
            })?;
            match rpc(&head, &Request::Nodes, me.call_timeout).await {
                Ok(Response::Nodes(n)) => break n,
                // The head's agent as an earlier driver of this process saw it, its session
                // closing: look again once the engine has dropped it.
                Err(_) if started.elapsed() < within => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => {
                    return Err(RayError::Cluster(format!(
                        "the head at {address} did not list its nodes: {other:?}"
                    )));
                }
            }
        };
        let head_id = nodes
            .iter()
            .find(|n| n.is_head)
            .map(|n| n.node_id.clone())
            .unwrap_or_default();
        let cluster = Arc::new(Cluster {
            me,
            head: head_id,
            nodes: Mutex::new(BTreeMap::new()),
            actors: Mutex::new(Vec::new()),
            placing: tokio::sync::Mutex::new(()),
            dialer,
            executor,
            _server: server.clone(),
        });
        cluster.update(nodes, &server).await;
        let weak = Arc::downgrade(&cluster);
        tokio::spawn(async move { monitor(weak, server).await });
        Ok(cluster)
    }

    /// Takes the head's table: connects to new nodes, marks dead ones and restarts their
    /// actors elsewhere.
    async fn update(
        &self,
        nodes: Vec<NodeInfo>,
        server: &ActorRef<ractor_cluster::NodeServerMessage>,
    ) {
        let mut newly_dead = Vec::new();
        let mut to_connect = Vec::new();
        {
            let mut table = self.nodes.lock();
            for n in nodes {
                match table.get_mut(&n.node_id) {
                    Some(v) => {
                        let was_dead = *v.dead.borrow();
                        if !was_dead && !n.alive {
                            newly_dead.push(n.node_id.clone());
                            let _ = v.dead.send(true);
                        }
                        // Dead stays dead for this driver (its work has moved), as in Ray.
                        v.info = n;
                        if was_dead {
                            v.info.alive = false;
                        }
                    }
                    None => {
                        if n.alive && !n.is_head {
                            to_connect.push(n.clone());
                        }
                        // A node already dead is listed (as Ray's `nodes()` does), never used.
                        let (dead, _) = watch::channel(!n.alive);
                        table.insert(
                            n.node_id.clone(),
                            NodeView {
                                info: n,
                                dead,
                                actors: 0,
                            },
                        );
                    }
                }
            }
        }
        // All at once: one unreachable node must not hold up the others.
        let within = self.me.node_timeout;
        let joins: Vec<_> = to_connect
            .into_iter()
            .map(|n| {
                let server = server.clone();
                let dialer = self.dialer.clone();
                tokio::spawn(async move {
                    if agent_of(&n.node_id).is_none()
                        && let Err(e) = dialer.connect(&server, &n.address).await
                    {
                        eprintln!(
                            "ray: cannot connect to node {} at {}: {e}",
                            n.node_id, n.address
                        );
                    }
                    let id = n.node_id.clone();
                    if wait_for(within, || agent_of(&id)).await.is_none() {
                        eprintln!(
                            "ray: cannot reach node {} at {}; no work goes there",
                            n.node_id, n.address
                        );
                    }
                })
            })
            .collect();
        for j in joins {
            let _ = j.await;
        }
        for id in newly_dead {
            self.node_died(&id);
        }
    }

    fn node_died(&self, id: &str) {
        let actors: Vec<Arc<RActor>> = {
            let mut a = self.actors.lock();
            a.retain(|w| w.strong_count() > 0);
            a.iter().filter_map(Weak::upgrade).collect()
        };
        for a in actors {
            if a.placed_on().as_deref() == Some(id) {
                let _ = a.queue.send(Queued::Restart(id.to_string()));
            }
        }
    }

    /// Live nodes, as the head last reported them.
    /// The actors this driver placed on the cluster whose handles are still held.
    pub(crate) fn actor_infos(&self) -> Vec<crate::state::ActorInfo> {
        let mut actors = self.actors.lock();
        actors.retain(|a| a.strong_count() > 0);
        actors
            .iter()
            .filter_map(Weak::upgrade)
            .map(|a| a.info())
            .collect()
    }

    pub(crate) fn nodes(&self) -> Vec<NodeInfo> {
        self.nodes.lock().values().map(|v| v.info.clone()).collect()
    }

    pub(crate) fn total(&self, available: bool) -> Resources {
        let mut sum: Demand = BTreeMap::new();
        for v in self.nodes.lock().values() {
            if v.info.alive && !*v.dead.borrow() {
                let src = if available {
                    &v.info.available
                } else {
                    &v.info.total
                };
                for (k, x) in src {
                    *sum.entry(k.clone()).or_insert(0.0) += x;
                }
            }
        }
        let mut r = Resources::new();
        for (k, v) in sum {
            let _ = r.set(&k, v);
        }
        r
    }

    /// Errors unless some live node could ever hold `demand`.
    fn check_feasible(&self, demand: &Demand, affinity: Option<&str>) -> Result<(), RayError> {
        let table = self.nodes.lock();
        let ok = table.values().any(|v| v.could_hold(demand, affinity));
        if ok {
            return Ok(());
        }
        let pinned =
            affinity.map(|a| format!("node {a}: {:?}", table.get(a).map(|v| &v.info.total)));
        drop(table);
        Err(RayError::Infeasible {
            requested: format!("{demand:?}"),
            total: pinned.unwrap_or_else(|| format!("{} (live nodes)", self.total(false))),
        })
    }

    /// Live nodes that could hold `demand`, most free CPU first.
    fn candidates(
        &self,
        demand: &Demand,
        affinity: Option<&str>,
    ) -> Vec<(String, watch::Receiver<bool>)> {
        let table = self.nodes.lock();
        let mut c: Vec<(usize, f64, String, watch::Receiver<bool>)> = table
            .values()
            .filter(|v| v.could_hold(demand, affinity))
            .map(|v| {
                let cpu = v.info.available.get(crate::CPU).copied().unwrap_or(0.0);
                (v.actors, cpu, v.info.node_id.clone(), v.dead.subscribe())
            })
            .collect();
        c.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
        c.into_iter().map(|(_, _, id, d)| (id, d)).collect()
    }

    /// Counts an actor placed on (`+1`) or gone from (`-1`) node `id`.
    fn count_actor(&self, id: &str, placed: bool) {
        if let Some(v) = self.nodes.lock().get_mut(id) {
            v.actors = if placed {
                v.actors + 1
            } else {
                v.actors.saturating_sub(1)
            };
        }
    }

    /// Takes `demand` off this driver's view of node `id` until its next report.
    fn reserve(&self, id: &str, demand: &Demand) {
        if let Some(v) = self.nodes.lock().get_mut(id) {
            for (k, x) in demand {
                if let Some(a) = v.info.available.get_mut(k) {
                    *a = (*a - x).max(0.0);
                }
            }
        }
    }

    /// One request to node `id`, failed with `NodeDied` if the node dies meanwhile.
    async fn call_on(
        &self,
        id: &str,
        mut dead: watch::Receiver<bool>,
        req: &Request,
    ) -> Result<Response, CallErr> {
        let agent = agent_of(id).ok_or(CallErr::Unreachable)?;
        tokio::select! {
            r = rpc(&agent, req, self.me.call_timeout) => r.map_err(|e| {
                if agent_of(id).is_none() { CallErr::NodeDied } else { CallErr::Other(e) }
            }),
            _ = dead.wait_for(|d| *d) => Err(CallErr::NodeDied),
        }
    }

    /// Places `make(node)` on a node that grants `demand`: tries the candidates in order,
    /// waits and tries again while all are busy, until the call deadline.
    async fn place(
        &self,
        demand: &Demand,
        affinity: Option<&str>,
        req: &Request,
    ) -> Result<(String, watch::Receiver<bool>, Response), RayError> {
        let start = Instant::now();
        loop {
            self.check_feasible(demand, affinity)?;
            for (id, dead) in self.candidates(demand, affinity) {
                if matches!(req, Request::SpawnActor { .. }) {
                    // Count the actor against the node now, so that the next placement
                    // before the next heartbeat sees it (spreads runners over nodes).
                    self.reserve(&id, demand);
                }
                match self.call_on(&id, dead.clone(), req).await {
                    Ok(Response::Busy) => continue,
                    Ok(r) => return Ok((id, dead, r)),
                    Err(CallErr::Unreachable) => continue,
                    // A task that may have started there: its caller counts the attempt
                    // against `max_retries`.
                    Err(CallErr::NodeDied) if matches!(req, Request::RunTask { .. }) => {
                        return Ok((id, dead, Response::Failed("its node died".into())));
                    }
                    Err(CallErr::NodeDied) => continue,
                    Err(CallErr::Other(e)) => {
                        return Err(RayError::Cluster(format!("node {id}: {e}")));
                    }
                }
            }
            if start.elapsed() > self.me.call_timeout {
                return Err(RayError::Timeout(self.me.call_timeout));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A result payload as `R`: fetched from its node if stored there, then freed there.
    async fn value<R: DeserializeOwned>(&self, p: Payload) -> Result<R, String> {
        decode(&self.take(p).await?)
    }

    /// A result's bytes, fetched from its node if stored there, then freed there.
    async fn take(&self, p: Payload) -> Result<Vec<u8>, String> {
        let stored = match &p {
            Payload::Stored { owner, id, .. } => Some((owner.clone(), *id)),
            Payload::Inline(_) => None,
        };
        let bytes = node::resolve(p, self.me.link.get(), self.me.call_timeout).await;
        if let Some((owner, id)) = stored
            && let Some(agent) = agent_of(&owner)
        {
            let _ = rpc(&agent, &Request::Free { id }, self.me.call_timeout).await;
        }
        bytes
    }

    /// A task whose result comes back to this driver as soon as it is made.
    pub(crate) fn submit_task<R>(self: &Arc<Self>, task: TaskSpec) -> Result<ObjectRef<R>, RayError>
    where
        R: DeserializeOwned + Send + Sync + 'static,
    {
        self.check_feasible(&task.demand, task.affinity.as_deref())?;
        let (result, promise) = ObjectRef::<R>::pending(Orphaned::Shutdown);
        let me = Arc::clone(self);
        self.executor.spawn(async move {
            let name = task.name.clone();
            // Fetched inside the retry loop: a node that dies before its result is fetched
            // counts as a failed attempt.
            let out = match me.run_spec(task, true).await {
                Ok(p) => me
                    .value::<R>(p)
                    .await
                    .map_err(|message| RayError::TaskFailed {
                        task: name,
                        message,
                        attempts: 1,
                    }),
                Err(e) => Err(e),
            };
            promise.fulfil(out);
        });
        Ok(result)
    }

    /// A task whose result stays on its node until someone gets it.
    pub(crate) fn submit_task_ref(
        self: &Arc<Self>,
        task: TaskSpec,
    ) -> Result<ObjectRef<Held>, RayError> {
        self.check_feasible(&task.demand, task.affinity.as_deref())?;
        let (result, promise) = ObjectRef::<Held>::pending(Orphaned::Shutdown);
        let me = Arc::clone(self);
        self.executor.spawn(async move {
            let out = me.run_spec(task, false).await;
            promise.fulfil(out.map(|p| Held::new(p, Some(&me))));
        });
        Ok(result)
    }

    /// Waits for the argument object if there is one, runs the task, frees what this driver
    /// stored for it.
    async fn run_spec(&self, task: TaskSpec, fetch: bool) -> Result<Payload, RayError> {
        let (args, hold) = match task.input {
            TaskInput::Bytes(b) => (self.me.payload(b), None),
            // Kept alive (not freed on its node) until the task is done.
            TaskInput::Object(o) => {
                let held = o.get_async().await?;
                (held.payload.clone(), Some(held))
            }
        };
        let out = self
            .run_task(
                &task.name,
                &args,
                task.demand,
                task.max_retries,
                task.affinity.as_deref(),
                fetch,
            )
            .await;
        if hold.is_none()
            && let Payload::Stored { id, .. } = args
        {
            self.me.free(id);
        }
        out
    }

    async fn run_task(
        &self,
        name: &str,
        args: &Payload,
        demand: Demand,
        max_retries: u32,
        affinity: Option<&str>,
        fetch: bool,
    ) -> Result<Payload, RayError> {
        let req = Request::RunTask {
            requester: self.me.info.node_id.clone(),
            name: name.to_string(),
            args: args.clone(),
            demand: demand.clone(),
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let retry = attempts <= max_retries;
            let (node, dead, reply) = self.place(&demand, affinity, &req).await?;
            let failure = match reply {
                Response::Value(p) if !fetch => return Ok(p),
                // Brought here now (the payload that returns is inline).
                Response::Value(p) => match self.take(p).await {
                    Ok(b) => return Ok(Payload::Inline(b)),
                    Err(e) => e,
                },
                Response::Failed(e) => e,
                Response::Error(e) => {
                    return Err(RayError::TaskFailed {
                        task: name.to_string(),
                        message: e,
                        attempts,
                    });
                }
                other => format!("unexpected reply {other:?}"),
            };
            if *dead.borrow() || agent_of(&node).is_none() {
                if !retry {
                    return Err(RayError::NodeDied {
                        node,
                        cause: format!("task {name} was running there ({attempts} attempt(s))"),
                    });
                }
                continue;
            }
            if !retry {
                return Err(RayError::TaskFailed {
                    task: name.to_string(),
                    message: failure,
                    attempts,
                });
            }
        }
    }

    pub(crate) fn spawn_actor(
        self: &Arc<Self>,
        type_name: String,
        args: Vec<u8>,
        demand: Demand,
        max_restarts: u32,
        affinity: Option<String>,
    ) -> Result<RemoteActorHandle, RayError> {
        self.check_feasible(&demand, affinity.as_deref())?;
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let (tx, rx) = mpsc::unbounded_channel();
        let actor = Arc::new(RActor {
            cluster: Arc::downgrade(self),
            type_name,
            args: self.me.payload(args),
            demand,
            affinity,
            max_restarts,
            id: NEXT.fetch_add(1, Ordering::Relaxed) << 16 | (std::process::id() as u64 & 0xffff),
            restarts: AtomicU32::new(0),
            placed: Mutex::new(None),
            death: Mutex::new(None),
            queue: tx,
        });
        self.actors.lock().push(Arc::downgrade(&actor));
        let weak = Arc::downgrade(&actor);
        self.executor.spawn(RActor::run(weak, rx));
        // Spawn now, as Ray does, so that placement errors show early.
        let _ = actor.queue.send(Queued::Start);
        Ok(RemoteActorHandle {
            inner: Hosted::Cluster(actor),
        })
    }
}

/// Refreshes the node table from the head every heartbeat.
async fn monitor(cluster: Weak<Cluster>, server: ActorRef<ractor_cluster::NodeServerMessage>) {
    let mut head_lost: Option<Instant> = None;
    loop {
        let Some(c) = cluster.upgrade() else { return };
        let beat = c.me.heartbeat;
        let nodes = match head_agent() {
            Some(h) => match rpc(&h, &Request::Nodes, c.me.node_timeout).await {
                Ok(Response::Nodes(n)) => Some(n),
                _ => None,
            },
            None => None,
        };
        match nodes {
            Some(n) => {
                head_lost = None;
                c.update(n, &server).await;
            }
            None => {
                let since = *head_lost.get_or_insert_with(Instant::now);
                if since.elapsed() > c.me.node_timeout {
                    let head = c.head.clone();
                    let mut dead: Vec<NodeInfo> = c.nodes();
                    for n in &mut dead {
                        if n.node_id == head {
                            n.alive = false;
                        }
                    }
                    c.update(dead, &server).await;
                }
            }
        }
        drop(c);
        tokio::time::sleep(beat).await;
    }
}

/// What runs when an actor call ends: fills the caller's object.
type Done = Box<dyn FnOnce(Result<Payload, RayError>, &Arc<Cluster>) + Send>;

enum Queued {
    Start,
    Call(String, Vec<u8>, Done),
    Restart(String),
}

struct Placement {
    node: String,
    dead: watch::Receiver<bool>,
}

struct RActor {
    cluster: Weak<Cluster>,
    type_name: String,
    args: Payload,
    demand: Demand,
    affinity: Option<String>,
    max_restarts: u32,
    id: u64,
    restarts: AtomicU32,
    placed: Mutex<Option<Placement>>,
    death: Mutex<Option<String>>,
    queue: mpsc::UnboundedSender<Queued>,
}

impl RActor {
    fn placed_on(&self) -> Option<String> {
        self.placed.lock().as_ref().map(|p| p.node.clone())
    }

    /// The actor as the state API lists it.
    fn info(&self) -> crate::state::ActorInfo {
        use crate::state::ActorState;
        let death = self.death.lock().clone();
        let node = self.placed_on();
        crate::state::ActorInfo {
            actor_id: format!("{:016x}", self.id),
            class_name: self.type_name.clone(),
            name: self.type_name.clone(),
            state: match (&death, &node) {
                (Some(_), _) => ActorState::Dead,
                (None, Some(_)) => ActorState::Alive,
                (None, None) => ActorState::PendingCreation,
            },
            node_id: node.unwrap_or_default(),
            num_restarts: self.restarts.load(Ordering::Acquire),
            max_restarts: self.max_restarts,
            resources: self.demand.clone(),
            death_cause: death,
        }
    }

    fn died(&self) -> RayError {
        RayError::ActorDied {
            actor: self.type_name.clone(),
            cause: self
                .death
                .lock()
                .clone()
                .unwrap_or_else(|| "the actor stopped".into()),
        }
    }

    /// Builds the actor on some node (again after a node death, while restarts remain).
    async fn ensure_placed(&self, c: &Arc<Cluster>) -> Result<(), RayError> {
        if let Some(d) = self.death.lock().clone() {
            return Err(RayError::ActorDied {
                actor: self.type_name.clone(),
                cause: d,
            });
        }
        if self.placed.lock().is_some() {
            return Ok(());
        }
        let req = Request::SpawnActor {
            id: self.id,
            type_name: self.type_name.clone(),
            args: self.args.clone(),
            demand: self.demand.clone(),
        };
        let turn = c.placing.lock().await;
        let placed = c.place(&self.demand, self.affinity.as_deref(), &req).await;
        drop(turn);
        match placed {
            Ok((node, dead, Response::Spawned)) => {
                c.count_actor(&node, true);
                *self.placed.lock() = Some(Placement { node, dead });
                Ok(())
            }
            Ok((node, _, other)) => {
                let cause = match other {
                    Response::Failed(e) | Response::Error(e) => e,
                    o => format!("unexpected reply {o:?}"),
                };
                let cause = format!("could not be built on node {node}: {cause}");
                *self.death.lock() = Some(cause.clone());
                Err(RayError::ActorDied {
                    actor: self.type_name.clone(),
                    cause,
                })
            }
            Err(e) => {
                *self.death.lock() = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// The node under the actor died: restart elsewhere while restarts remain.
    fn lost(&self, node: &str) {
        let mut placed = self.placed.lock();
        if placed.as_ref().is_some_and(|p| p.node == node) {
            *placed = None;
            if let Some(c) = self.cluster.upgrade() {
                c.count_actor(node, false);
            }
            let n = self.restarts.fetch_add(1, Ordering::AcqRel) + 1;
            if n > self.max_restarts {
                self.death.lock().get_or_insert_with(|| {
                    format!(
                        "node {node} died and the actor has no restarts left (max_restarts {})",
                        self.max_restarts
                    )
                });
            }
        }
    }

    /// Works through the actor's calls in order; ends when every handle is gone.
    async fn run(weak: Weak<Self>, mut rx: mpsc::UnboundedReceiver<Queued>) {
        while let Some(job) = rx.recv().await {
            let Some(this) = weak.upgrade() else { return };
            let Some(c) = this.cluster.upgrade() else {
                return;
            };
            let self_ = &this;
            match job {
                Queued::Start => {
                    let _ = self_.ensure_placed(&c).await;
                }
                Queued::Restart(node) => {
                    self_.lost(&node);
                    let _ = self_.ensure_placed(&c).await;
                }
                Queued::Call(method, args, done) => {
                    if let Err(e) = self_.ensure_placed(&c).await {
                        done(Err(e), &c);
                        continue;
                    }
                    let Some((node, dead)) = self_
                        .placed
                        .lock()
                        .as_ref()
                        .map(|p| (p.node.clone(), p.dead.clone()))
                    else {
                        done(Err(self_.died()), &c);
                        continue;
                    };
                    let Some(agent) = agent_of(&node) else {
                        self_.lost(&node);
                        done(
                            Err(RayError::NodeDied {
                                node,
                                cause: "its connection closed".into(),
                            }),
                            &c,
                        );
                        continue;
                    };
                    // Sent now, in order; the reply is awaited beside the next calls.
                    let args = c.me.payload(args);
                    // Arguments kept here for the node to fetch are dropped once it answers.
                    let stored = match &args {
                        Payload::Stored { id, .. } => Some(*id),
                        Payload::Inline(_) => None,
                    };
                    let req = Request::CallActor {
                        requester: c.me.info.node_id.clone(),
                        id: self_.id,
                        method,
                        args,
                    };
                    let sent = encode(&req).map_err(RayError::Cluster).and_then(|b| {
                        let (tx, rx) = ractor::concurrency::oneshot();
                        agent
                            .send_message(AgentMsg::Call(b, RpcReplyPort::from(tx)))
                            .map(|()| rx)
                            .map_err(|e| RayError::NodeDied {
                                node: node.clone(),
                                cause: e.to_string(),
                            })
                    });
                    let rx = match sent {
                        Ok(rx) => rx,
                        Err(e) => {
                            if let Some(id) = stored {
                                c.me.free(id);
                            }
                            done(Err(e), &c);
                            continue;
                        }
                    };
                    let me = Arc::clone(self_);
                    let timeout = c.me.call_timeout;
                    tokio::spawn(async move {
                        let mut dead = dead;
                        let out = tokio::select! {
                            r = tokio::time::timeout(timeout, rx) => match r {
                                Err(_) => Err(RayError::Timeout(timeout)),
                                Ok(Err(_)) => Err(RayError::NodeDied { node: node.clone(), cause: "its connection closed".into() }),
                                Ok(Ok(bytes)) => match decode::<Response>(&bytes) {
                                    Ok(Response::Value(p)) => Ok(p),
                                    Ok(Response::Failed(m)) => Err(RayError::ActorTaskFailed { actor: me.type_name.clone(), message: m }),
                                    Ok(other) => Err(RayError::Cluster(format!("unexpected reply {other:?}"))),
                                    Err(e) => Err(RayError::Cluster(e)),
                                },
                            },
                            _ = dead.wait_for(|d| *d) => Err(RayError::NodeDied { node: node.clone(), cause: "it stopped answering heartbeats".into() }),
                        };
                        if matches!(out, Err(RayError::NodeDied { .. })) {
                            let _ = me.queue.send(Queued::Restart(node));
                        }
                        if let Some(id) = stored {
                            c.me.free(id);
                        }
                        done(out, &c);
                    });
                }
            }
        }
    }
}

/// A handle to an actor of a registered type on some node of the cluster (or in this process
/// when the runtime is local). Calls run in the order they were made.
#[derive(Clone)]
pub struct RemoteActorHandle {
    inner: Hosted,
}

type LocalBuild = Arc<dyn Fn() -> Result<Box<dyn super::RemoteActor>, String> + Send + Sync>;

#[derive(Clone)]
enum Hosted {
    Cluster(Arc<RActor>),
    /// In this process: the registered type on a local actor (its state `None` if a rebuild
    /// after a panic failed to construct it).
    Local {
        type_name: String,
        actor: crate::ActorHandle<Option<Box<dyn super::RemoteActor>>>,
        build: LocalBuild,
    },
}

impl std::fmt::Debug for RemoteActorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Hosted::Cluster(a) => f
                .debug_struct("RemoteActorHandle")
                .field("type", &a.type_name)
                .field("node", &a.placed_on())
                .finish(),
            Hosted::Local { type_name, .. } => f
                .debug_struct("RemoteActorHandle")
                .field("type", type_name)
                .field("node", &"local")
                .finish(),
        }
    }
}

impl RemoteActorHandle {
    /// An actor of registered type `type_name` in this process, on `rt`'s scheduler (what
    /// `remote_actor` gives without a cluster: the same program runs locally).
    pub(crate) fn local(
        rt: &crate::Runtime,
        type_name: String,
        args: Vec<u8>,
        demand: &Demand,
        max_restarts: u32,
    ) -> Result<Self, RayError> {
        let failed = |message: String| RayError::ActorDied {
            actor: type_name.clone(),
            cause: message,
        };
        let constructor = super::registry::constructor(&type_name).map_err(failed)?;
        let build: LocalBuild = Arc::new(move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| constructor(&args)))
                .unwrap_or_else(|p| {
                    Err(format!(
                        "constructor panicked: {}",
                        crate::error::panic_message(&*p)
                    ))
                })
        });
        // Built once here, so that a bad argument is this call's error.
        let first = build().map_err(failed)?;
        let first = Mutex::new(Some(first));
        let b2 = Arc::clone(&build);
        let rebuild = move || first.lock().take().or_else(|| b2().ok());
        let mut b = rt
            .actor(rebuild)
            .name(type_name.clone())
            .class_name(type_name.clone())
            .max_restarts(max_restarts);
        for (k, v) in demand {
            b = b.resource(k, *v);
        }
        Ok(RemoteActorHandle {
            inner: Hosted::Local {
                type_name,
                actor: b.spawn()?,
                build,
            },
        })
    }

    /// Calls `method` with `args`; the result is an object of type `R`.
    pub fn call<A: serde::Serialize, R>(
        &self,
        method: &str,
        args: &A,
    ) -> Result<ObjectRef<R>, RayError>
    where
        R: DeserializeOwned + Send + Sync + 'static,
    {
        let bytes = encode(args).map_err(RayError::Cluster)?;
        let (result, promise): (ObjectRef<R>, Promise<R>) = ObjectRef::pending(Orphaned::Shutdown);
        let inner = match &self.inner {
            Hosted::Cluster(a) => a,
            Hosted::Local {
                type_name,
                actor,
                build,
            } => {
                let name = type_name.clone();
                let m = method.to_string();
                let build = Arc::clone(build);
                // As on a node: a method that panics fails, and the state is rebuilt.
                let out = actor.call(move |state| {
                    let Some(a) = state else {
                        return Err(format!("actor {name} could not be rebuilt"));
                    };
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.call(&m, &bytes)))
                        .unwrap_or_else(|p| {
                            *state = build().ok();
                            Err(format!(
                                "method {m} panicked: {}",
                                crate::error::panic_message(&*p)
                            ))
                        })
                });
                let actor = type_name.clone();
                let o = out.clone();
                out.dependency().0.on_ready(Box::new(move || {
                    promise.fulfil(match o.get_arc() {
                        Err(e) => Err(e),
                        Ok(r) => match &*r {
                            Ok(b) => decode::<R>(b).map_err(RayError::Cluster),
                            Err(message) => Err(RayError::ActorTaskFailed {
                                actor,
                                message: message.clone(),
                            }),
                        },
                    });
                }));
                return Ok(result);
            }
        };
        let done = Box::new(move |r: Result<Payload, RayError>, c: &Arc<Cluster>| {
            let c = Arc::clone(c);
            match r {
                Err(e) => promise.fulfil(Err(e)),
                // A small result rides in the reply: decoded here, without another task.
                Ok(Payload::Inline(b)) => {
                    promise.fulfil(decode::<R>(&b).map_err(RayError::Cluster));
                }
                Ok(p) => {
                    c.executor.clone().spawn(async move {
                        promise.fulfil(c.value::<R>(p).await.map_err(RayError::Cluster));
                    });
                }
            }
        });
        inner
            .queue
            .send(Queued::Call(method.to_string(), bytes, done))
            .map_err(|_| inner.died())?;
        Ok(result)
    }

    /// The node the actor lives on now (`None` while it is being placed or restarted);
    /// `"local"` in a runtime without a cluster.
    pub fn node_id(&self) -> Option<String> {
        match &self.inner {
            Hosted::Cluster(a) => a.placed_on(),
            Hosted::Local { actor, .. } => (!actor.is_dead()).then(|| "local".to_string()),
        }
    }

    /// Whether the actor is gone for good (killed, failed to build, or out of restarts).
    pub fn is_dead(&self) -> bool {
        match &self.inner {
            Hosted::Cluster(a) => a.death.lock().is_some(),
            Hosted::Local { actor, .. } => actor.is_dead(),
        }
    }

    /// How many times the actor was restarted (on another node, in a cluster).
    pub fn num_restarts(&self) -> u32 {
        match &self.inner {
            Hosted::Cluster(a) => a.restarts.load(Ordering::Acquire),
            Hosted::Local { actor, .. } => actor.num_restarts(),
        }
    }

    /// Stops the actor and gives its resources back.
    pub fn kill(&self) {
        let inner = match &self.inner {
            Hosted::Cluster(a) => a,
            Hosted::Local { actor, .. } => return actor.kill(),
        };
        *inner.death.lock() = Some("killed".into());
        let placed = inner.placed.lock().take().map(|p| p.node);
        if let (Some(node), Some(c)) = (placed, inner.cluster.upgrade())
            && let Some(agent) = agent_of(&node)
        {
            c.count_actor(&node, false);
            let id = inner.id;
            let t = c.me.call_timeout;
            c.executor.spawn(async move {
                let _ = rpc(&agent, &Request::KillActor { id }, t).await;
            });
        }
    }
}

impl Drop for RActor {
    fn drop(&mut self) {
        if let Some(p) = self.placed.get_mut().take()
            && let (Some(agent), Some(c)) = (agent_of(&p.node), self.cluster.upgrade())
        {
            c.count_actor(&p.node, false);
            let id = self.id;
            let t = c.me.call_timeout;
            c.executor.spawn(async move {
                let _ = rpc(&agent, &Request::KillActor { id }, t).await;
            });
        }
    }
}
