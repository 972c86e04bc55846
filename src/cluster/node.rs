//! A node: a ractor_cluster `NodeServer` (TCP, cookie authentication with the cluster secret)
//! and one agent actor that runs registered functions and hosts registered actor types on
//! threads of its own, holds the objects they produced, and grants resources. The head node
//! also keeps the table of nodes and detects dead or hung ones by heartbeats of ours (the
//! engine has none).

use std::collections::{BTreeMap, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::registry::{self, RemoteActor};
use super::wire::{
    AgentMsg, CHUNK, INLINE_MAX, NodeInfo, Payload, Request, Response, decode, encode,
};
use crate::error::panic_message;

/// Process group every agent joins.
pub(crate) const AGENTS: &str = "rllib-agents";
/// Process group of the head's agent.
pub(crate) const HEAD: &str = "rllib-head";

/// The process group of one node's agent.
pub(crate) fn node_group(id: &str) -> String {
    format!("rllib-node:{id}")
}

/// The agent of node `id`, if its session is up.
pub(crate) fn agent_of(id: &str) -> Option<ActorRef<AgentMsg>> {
    ractor::pg::get_members(&node_group(id))
        .into_iter()
        .next()
        .map(ActorRef::from)
}

/// One request to an agent and its decoded reply, within `timeout`.
pub(crate) async fn rpc(
    agent: &ActorRef<AgentMsg>,
    req: &Request,
    timeout: Duration,
) -> Result<Response, String> {
    let bytes = encode(req)?;
    let (tx, rx) = ractor::concurrency::oneshot();
    agent
        .send_message(AgentMsg::Call(bytes, RpcReplyPort::from(tx)))
        .map_err(|e| format!("the node is unreachable: {e}"))?;
    match tokio::time::timeout(timeout, rx).await {
        Err(_) => Err(format!("no reply within {timeout:?}")),
        Ok(Err(_)) => Err("the connection closed before the reply".to_string()),
        Ok(Ok(reply)) => decode(&reply),
    }
}

/// How a process opens sessions to other nodes: its node server and dialer (plain or TLS).
pub(crate) struct Link {
    pub(crate) server: ActorRef<ractor_cluster::NodeServerMessage>,
    pub(crate) dialer: super::tls::Dialer,
    /// The cluster secret, which data ports ask for.
    pub(crate) secret: Arc<str>,
    /// Connections to other data ports kept between fetches.
    pub(crate) pool: super::data::Pool,
}

/// The agent of node `owner`, connecting to it at `address` first if this process has no
/// session to it (objects move node to node, not through the driver).
async fn reach(
    owner: &str,
    address: &str,
    link: Option<&Link>,
    timeout: Duration,
) -> Result<ActorRef<AgentMsg>, String> {
    if let Some(a) = agent_of(owner) {
        return Ok(a);
    }
    let gone = || format!("node {owner} holding the object is gone");
    let link = link.filter(|_| !address.is_empty()).ok_or_else(gone)?;
    link.dialer
        .connect(&link.server, address)
        .await
        .map_err(|e| format!("cannot reach node {owner} at {address} for an object: {e}"))?;
    super::client::wait_for(timeout.min(Duration::from_secs(10)), || agent_of(owner))
        .await
        .ok_or_else(gone)
}

/// Reads a stored object from node `owner`: from its data port in one stream, else through
/// the session chunk by chunk.
pub(crate) async fn fetch(
    owner: &str,
    address: &str,
    data: &str,
    id: u64,
    size: u64,
    link: Option<&Link>,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    if let Some(l) = link
        && !data.is_empty()
    {
        match super::data::fetch(data, id, size, &l.secret, &l.dialer, &l.pool, timeout).await {
            Ok(b) => return Ok(b),
            // The session may still get there (a data port this process cannot route to).
            Err(e) if agent_of(owner).is_none() && address.is_empty() => return Err(e),
            Err(_) => {}
        }
    }
    let agent = reach(owner, address, link, timeout).await?;
    let size =
        usize::try_from(size).map_err(|_| format!("object {id} is too large: {size} bytes"))?;
    let mut out = vec![0u8; size];
    // Several chunks in flight at once, so that the link never waits for a round trip.
    const IN_FLIGHT: usize = 4;
    let offsets: Vec<usize> = (0..size).step_by(CHUNK).collect();
    let mut running = tokio::task::JoinSet::new();
    let mut next = 0;
    loop {
        while running.len() < IN_FLIGHT && next < offsets.len() {
            let (agent, offset) = (agent.clone(), offsets[next]);
            running.spawn(async move {
                let r = rpc(
                    &agent,
                    &Request::Fetch {
                        id,
                        offset: offset as u64,
                    },
                    timeout,
                )
                .await;
                (offset, r)
            });
            next += 1;
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        let (offset, r) = done.map_err(|e| format!("a fetch task failed: {e}"))?;
        match r? {
            Response::Chunk(c) if c.len() == (size - offset).min(CHUNK) => {
                out[offset..offset + c.len()].copy_from_slice(&c)
            }
            Response::Chunk(c) => {
                return Err(format!(
                    "object {id} on {owner}: {} bytes at {offset}, expected {}",
                    c.len(),
                    (size - offset).min(CHUNK)
                ));
            }
            Response::Error(e) => return Err(e),
            other => return Err(format!("unexpected reply to a fetch: {other:?}")),
        }
    }
    Ok(out)
}

pub(crate) async fn resolve(
    p: Payload,
    link: Option<&Link>,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    match p {
        Payload::Inline(b) => Ok(b),
        Payload::Stored {
            owner,
            address,
            data,
            id,
            size,
        } => fetch(&owner, &address, &data, id, size, link, timeout).await,
    }
}

type Demand = BTreeMap<String, f64>;

/// An object's bytes and the driver they are kept for (`None`: this process's own).
type Kept = (Arc<Vec<u8>>, Option<String>);

struct ActorSlot {
    /// Calls: the requesting driver, the method, its arguments, where the reply goes.
    jobs: crossbeam_channel::Sender<(String, String, Payload, RpcReplyPort<Vec<u8>>)>,
    demand: Demand,
}

struct Peer {
    info: NodeInfo,
    last_seen: Instant,
    gone: bool,
    /// Declared dead: stays dead, whatever it answers later.
    dead: bool,
}

impl Peer {
    /// Whether it is alive now; once not, never again. `head_late`: the head itself has not
    /// run its heartbeat for a while (paused, swapped out), so silence proves nothing yet.
    fn check(&mut self, timeout: Duration, head_late: bool) -> bool {
        if self.gone || (!head_late && self.last_seen.elapsed() > timeout) {
            self.dead = true;
        }
        !self.dead
    }
}

/// Everything a node's agent and its worker threads share.
pub(crate) struct NodeState {
    pub(crate) info: NodeInfo,
    available: Mutex<Demand>,
    /// Objects kept here, with the driver they are kept for (none: this process's own).
    objects: Mutex<HashMap<u64, Kept>>,
    next_object: AtomicU64,
    actors: Mutex<HashMap<u64, ActorSlot>>,
    peers: Mutex<BTreeMap<String, Peer>>,
    /// This process's node server and dialer, to reach nodes holding objects.
    pub(crate) link: std::sync::OnceLock<Link>,
    /// This process's data port, `host:port`.
    pub(crate) data: std::sync::OnceLock<String>,
    /// When the heartbeat loop last ran.
    last_beat: Mutex<Instant>,
    /// Fenced off by the head: grants nothing more.
    fenced_off: std::sync::atomic::AtomicBool,
    /// Set when the head has fenced this node off (see [`Request::Fenced`]).
    fenced: Mutex<Option<std::sync::mpsc::Sender<String>>>,
    pub(crate) heartbeat: Duration,
    pub(crate) node_timeout: Duration,
    pub(crate) call_timeout: Duration,
    executor: tokio::runtime::Handle,
    /// The threads tasks run on, kept between tasks; an idle one looks for the next task
    /// before it sleeps, as an actor's thread does between calls.
    tasks: Arc<crate::workers::Workers>,
}

fn fits(demand: &Demand, have: &Demand) -> bool {
    demand
        .iter()
        .all(|(k, v)| *v <= have.get(k).copied().unwrap_or(0.0) + 1e-9)
}

impl NodeState {
    pub(crate) fn new(
        info: NodeInfo,
        heartbeat: Duration,
        node_timeout: Duration,
        call_timeout: Duration,
        executor: tokio::runtime::Handle,
    ) -> Arc<Self> {
        Arc::new(NodeState {
            available: Mutex::new(info.total.clone()),
            info,
            objects: Mutex::new(HashMap::new()),
            next_object: AtomicU64::new(1),
            actors: Mutex::new(HashMap::new()),
            peers: Mutex::new(BTreeMap::new()),
            fenced: Mutex::new(None),
            last_beat: Mutex::new(Instant::now()),
            fenced_off: std::sync::atomic::AtomicBool::new(false),
            link: std::sync::OnceLock::new(),
            data: std::sync::OnceLock::new(),
            heartbeat,
            node_timeout,
            call_timeout,
            executor,
            tasks: crate::workers::Workers::new("ray-task", crate::spin::BEFORE_SLEEP),
        })
    }

    pub(crate) fn snapshot(&self) -> NodeInfo {
        let mut i = self.info.clone();
        i.available = self.available.lock().clone();
        i.objects = self.num_objects() as u64;
        i.data_address = self.data.get().cloned().unwrap_or_default();
        i
    }

    fn grant(&self, demand: &Demand) -> bool {
        if self.fenced_off.load(Ordering::Acquire) {
            return false;
        }
        let mut a = self.available.lock();
        if !fits(demand, &a) {
            return false;
        }
        for (k, v) in demand {
            *a.entry(k.clone()).or_insert(0.0) -= v;
        }
        true
    }

    fn release(&self, demand: &Demand) {
        let mut a = self.available.lock();
        for (k, v) in demand {
            let total = self.info.total.get(k).copied().unwrap_or(0.0);
            let e = a.entry(k.clone()).or_insert(0.0);
            *e = (*e + v).min(total);
        }
    }

    /// Keeps `bytes` here and describes them, or puts small ones in the reply itself.
    pub(crate) fn payload(&self, bytes: Vec<u8>) -> Payload {
        self.payload_for(bytes, None)
    }

    /// As [`payload`](Self::payload), kept for driver `requester`: freed when it goes.
    fn payload_for(&self, bytes: Vec<u8>, requester: Option<String>) -> Payload {
        if bytes.len() <= INLINE_MAX {
            return Payload::Inline(bytes);
        }
        let id = self.next_object.fetch_add(1, Ordering::Relaxed);
        let size = bytes.len() as u64;
        self.objects.lock().insert(id, (Arc::new(bytes), requester));
        Payload::Stored {
            owner: self.info.node_id.clone(),
            address: self.info.address.clone(),
            data: self.data.get().cloned().unwrap_or_default(),
            id,
            size,
        }
    }

    /// Opens this process's data port on `host` (serving its objects to holders of
    /// `secret`, over TLS when `tls` is given) and records how it reaches other nodes.
    pub(crate) async fn open(
        self: &Arc<Self>,
        host: std::net::IpAddr,
        link: Link,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Result<(), String> {
        let (listener, data_addr) = super::data::bind(host).await?;
        let _ = self.data.set(data_addr);
        tokio::spawn(super::data::serve(
            listener,
            Arc::clone(self),
            Arc::clone(&link.secret),
            tls,
        ));
        let _ = self.link.set(link);
        Ok(())
    }

    /// A kept object's bytes.
    pub(crate) fn object(&self, id: u64) -> Option<Arc<Vec<u8>>> {
        self.objects.lock().get(&id).map(|(o, _)| Arc::clone(o))
    }

    pub(crate) fn free(&self, id: u64) {
        self.objects.lock().remove(&id);
    }

    /// Frees, every `every`, the objects kept for drivers whose session has closed (a driver
    /// that crashed or shut down before its references were dropped).
    pub(crate) async fn sweep_loop(self: Arc<Self>, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            let owners: Vec<String> = {
                let objects = self.objects.lock();
                let mut o: Vec<String> = objects.values().filter_map(|(_, r)| r.clone()).collect();
                o.sort();
                o.dedup();
                o
            };
            let gone: Vec<String> = owners
                .into_iter()
                .filter(|d| agent_of(d).is_none())
                .collect();
            if !gone.is_empty() {
                self.objects
                    .lock()
                    .retain(|_, (_, r)| r.as_ref().is_none_or(|d| !gone.contains(d)));
            }
        }
    }

    /// How many objects this node keeps (for tests and `rllib status`).
    pub(crate) fn num_objects(&self) -> usize {
        self.objects.lock().len()
    }

    fn resolve_blocking(&self, p: Payload) -> Result<Vec<u8>, String> {
        let t = self.call_timeout;
        self.executor.block_on(resolve(p, self.link.get(), t))
    }

    /// The head's table: itself, then every registered node.
    pub(crate) fn nodes(&self) -> Vec<NodeInfo> {
        let mut out = vec![self.snapshot()];
        let head_late = self.head_late();
        let mut peers = self.peers.lock();
        for p in peers.values_mut() {
            let mut i = p.info.clone();
            i.alive = p.check(self.node_timeout, head_late);
            out.push(i);
        }
        out
    }

    /// Whether the head's own heartbeat loop is overdue (this process was not running).
    fn head_late(&self) -> bool {
        self.last_beat.lock().elapsed() > self.heartbeat * 3
    }

    /// Where a fencing from the head is reported (the node process then exits).
    pub(crate) fn on_fenced(&self) -> std::sync::mpsc::Receiver<String> {
        let (tx, rx) = std::sync::mpsc::channel();
        *self.fenced.lock() = Some(tx);
        rx
    }

    fn handle(self: &Arc<Self>, req: Request, reply: RpcReplyPort<Vec<u8>>) {
        let answer = |reply: RpcReplyPort<Vec<u8>>, r: Response| {
            if let Ok(b) = encode(&r) {
                let _ = reply.send(b);
            }
        };
        match req {
            Request::Ping => answer(reply, Response::Pong(self.snapshot())),
            Request::Register(info) if self.info.is_head => {
                self.peers.lock().insert(
                    info.node_id.clone(),
                    Peer {
                        info,
                        last_seen: Instant::now(),
                        gone: false,
                        dead: false,
                    },
                );
                answer(reply, Response::Registered)
            }
            Request::Nodes if self.info.is_head => answer(reply, Response::Nodes(self.nodes())),
            Request::Register(_) | Request::Nodes => {
                answer(reply, Response::Error("this node is not the head".into()))
            }
            Request::RunTask {
                requester,
                name,
                args,
                demand,
            } => {
                let f = match registry::function(&name) {
                    Ok(f) => f,
                    Err(e) => return answer(reply, Response::Error(e)),
                };
                if !self.grant(&demand) {
                    return answer(reply, Response::Busy);
                }
                let me = Arc::clone(self);
                self.tasks.run(Box::new(move || {
                    let out = me.resolve_blocking(args).and_then(|a| {
                        catch_unwind(AssertUnwindSafe(|| f(&a)))
                            .unwrap_or_else(|p| Err(panic_message(&*p)))
                    });
                    me.release(&demand);
                    let r = match out {
                        Ok(b) => Response::Value(me.payload_for(b, Some(requester))),
                        Err(e) => Response::Failed(e),
                    };
                    answer(reply, r)
                }));
            }
            Request::SpawnActor {
                id,
                type_name,
                args,
                demand,
            } => {
                if !self.grant(&demand) {
                    return answer(reply, Response::Busy);
                }
                let me = Arc::clone(self);
                let (tx, rx) = crossbeam_channel::unbounded();
                let spawned = std::thread::Builder::new()
                    .name(format!("ray-actor-{type_name}"))
                    .spawn(move || {
                        let args = match me.resolve_blocking(args) {
                            Ok(a) => a,
                            Err(e) => {
                                me.release(&demand);
                                return answer(reply, Response::Failed(e));
                            }
                        };
                        let build = || {
                            catch_unwind(AssertUnwindSafe(|| {
                                registry::construct(&type_name, &args)
                            }))
                            .unwrap_or_else(|p| {
                                Err(format!("constructor panicked: {}", panic_message(&*p)))
                            })
                        };
                        let mut actor: Box<dyn RemoteActor> = match build() {
                            Ok(a) => a,
                            Err(e) => {
                                me.release(&demand);
                                return answer(reply, Response::Failed(e));
                            }
                        };
                        me.actors.lock().insert(id, ActorSlot { jobs: tx, demand });
                        answer(reply, Response::Spawned);
                        // The next call of a caller that makes many is looked for before
                        // the thread sleeps (see `spin`).
                        while let Some((requester, method, args, reply)) =
                            crate::spin::recv(&rx, crate::spin::BEFORE_SLEEP)
                        {
                            let out = me.resolve_blocking(args).and_then(|a| {
                                catch_unwind(AssertUnwindSafe(|| actor.call(&method, &a)))
                                    .unwrap_or_else(|p| {
                                        // A panic leaves the state suspect: rebuild it.
                                        if let Ok(a) = build() {
                                            actor = a;
                                        }
                                        Err(format!(
                                            "method {method} panicked: {}",
                                            panic_message(&*p)
                                        ))
                                    })
                            });
                            answer(
                                reply,
                                match out {
                                    Ok(b) => Response::Value(me.payload_for(b, Some(requester))),
                                    Err(e) => Response::Failed(e),
                                },
                            );
                        }
                    });
                if let Err(e) = spawned {
                    eprintln!("ray node: cannot start an actor thread: {e}");
                }
            }
            Request::CallActor {
                requester,
                id,
                method,
                args,
            } => {
                let actors = self.actors.lock();
                match actors.get(&id) {
                    Some(slot) => {
                        if let Err(e) = slot.jobs.send((requester, method, args, reply)) {
                            let (_, _, _, reply) = e.into_inner();
                            answer(reply, Response::Error(format!("actor {id} has stopped")));
                        }
                    }
                    None => answer(
                        reply,
                        Response::Error(format!("no actor {id} lives on this node")),
                    ),
                }
            }
            Request::KillActor { id } => {
                if let Some(slot) = self.actors.lock().remove(&id) {
                    self.release(&slot.demand);
                }
                answer(reply, Response::Done)
            }
            Request::Fetch { id, offset } => {
                let obj = self.objects.lock().get(&id).map(|(o, _)| Arc::clone(o));
                let r = match obj {
                    None => {
                        Response::Error(format!("no object {id} on node {}", self.info.node_id))
                    }
                    Some(o) => {
                        let start = (offset as usize).min(o.len());
                        let end = (start + CHUNK).min(o.len());
                        Response::Chunk(o[start..end].to_vec())
                    }
                };
                answer(reply, r)
            }
            Request::Free { id } => {
                self.free(id);
                answer(reply, Response::Done)
            }
            Request::Fenced { reason } => {
                eprintln!("ray: {reason}");
                self.fenced_off.store(true, Ordering::Release);
                // Nothing it runs may go on: free its resources and stop taking work.
                self.actors.lock().clear();
                *self.available.lock() = Demand::new();
                if let Some(tx) = self.fenced.lock().take() {
                    let _ = tx.send(reason);
                }
                answer(reply, Response::Done)
            }
        }
    }

    /// The head's heartbeat: ping every registered node; a node whose session closed, or
    /// that has not answered for `node_timeout`, is dead.
    pub(crate) async fn heartbeat_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.heartbeat).await;
            {
                let mut beat = self.last_beat.lock();
                if beat.elapsed() > self.heartbeat * 3 {
                    // This process was not running (stopped, swapped out): the nodes' silence
                    // meanwhile is ours, so they get a fresh allowance.
                    for p in self.peers.lock().values_mut() {
                        p.last_seen = Instant::now();
                    }
                }
                *beat = Instant::now();
            }
            let ids: Vec<String> = self.peers.lock().keys().cloned().collect();
            for id in ids {
                let me = Arc::clone(&self);
                tokio::spawn(async move {
                    let Some(agent) = agent_of(&id) else {
                        if let Some(p) = me.peers.lock().get_mut(&id) {
                            p.gone = true;
                        }
                        return;
                    };
                    if let Ok(Response::Pong(info)) =
                        rpc(&agent, &Request::Ping, me.node_timeout).await
                    {
                        let timeout = me.node_timeout;
                        let head_late = me.head_late();
                        let was_dead = match me.peers.lock().get_mut(&id) {
                            None => false,
                            Some(p) => {
                                let alive = p.check(timeout, head_late);
                                if alive {
                                    p.info = info;
                                    p.last_seen = Instant::now();
                                }
                                !alive
                            }
                        };
                        if was_dead {
                            let reason = format!(
                                "node {id} answered again after the head declared it dead (no \
                                 heartbeat for {:.1} s); its work has moved elsewhere, so it stops. \
                                 Start it again with `rllib start --address`.",
                                timeout.as_secs_f64()
                            );
                            let _ = rpc(&agent, &Request::Fenced { reason }, timeout).await;
                        }
                    }
                });
            }
        }
    }
}

/// The agent actor: decodes each request and hands it to the node state.
pub(crate) struct Agent;

impl Actor for Agent {
    type Msg = AgentMsg;
    type State = Arc<NodeState>;
    type Arguments = Arc<NodeState>;

    async fn pre_start(
        &self,
        myself: ActorRef<AgentMsg>,
        state: Arc<NodeState>,
    ) -> Result<Arc<NodeState>, ActorProcessingErr> {
        let mut groups = vec![AGENTS.to_string(), node_group(&state.info.node_id)];
        if state.info.is_head {
            groups.push(HEAD.to_string());
        }
        for g in groups {
            ractor::pg::join(g, vec![myself.get_cell()]);
        }
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<AgentMsg>,
        msg: AgentMsg,
        state: &mut Arc<NodeState>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AgentMsg::Call(bytes, reply) => match decode::<Request>(&bytes) {
                Ok(req) => state.handle(req, reply),
                Err(e) => {
                    if let Ok(b) = encode(&Response::Error(format!("bad request: {e}"))) {
                        let _ = reply.send(b);
                    }
                }
            },
        }
        Ok(())
    }
}
