//! The runtime handle: start, submit work, inspect resources, shut down.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use ractor::ActorCell;

use std::time::Duration;

use crate::actor::{ActorBuilder, ActorShared};
use crate::cluster::{Cluster, NodeInfo};
use crate::object::ObjectRef;
use crate::remote::{RemoteActorBuilder, RemoteTaskBuilder};
use crate::resources::{detect_cpus, detect_gpus, detect_memory};
use crate::scheduler::Scheduler;
use crate::task::{TaskArgs, TaskBuilder};
use crate::{CPU, GPU, MEMORY, RayError, Resources};

/// Every runtime this process started, for a dashboard that shows the whole process.
static RUNTIMES: Mutex<Vec<std::sync::Weak<Inner>>> = Mutex::new(Vec::new());

/// The runtimes of this process that are running.
pub(crate) fn live_runtimes() -> Vec<Runtime> {
    let mut all = RUNTIMES.lock();
    all.retain(|w| w.strong_count() > 0);
    all.iter()
        .filter_map(std::sync::Weak::upgrade)
        .map(|inner| Runtime { inner })
        .filter(|rt| !rt.is_shut_down())
        .collect()
}

/// How many stopped actors [`Runtime::list_actors`] still reports.
pub const MAX_DEAD_ACTORS: usize = 1000;

/// How to start a runtime; anything left unset is detected (like `ray.init()`'s arguments).
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    num_cpus: Option<f64>,
    num_gpus: Option<f64>,
    memory: Option<u64>,
    custom: Vec<(String, f64)>,
    address: Option<String>,
    secret: Option<String>,
    node_timeout: Option<Duration>,
    call_timeout: Option<Duration>,
    tls: Option<crate::cluster::TlsFiles>,
    dashboard: Option<crate::dashboard::DashboardOptions>,
}

impl InitOptions {
    /// Detect everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Logical CPUs to schedule (default: the CPUs this process may use).
    pub fn num_cpus(mut self, n: f64) -> Self {
        self.num_cpus = Some(n);
        self
    }

    /// GPUs to schedule (default: the NVIDIA GPUs the driver shows).
    pub fn num_gpus(mut self, n: f64) -> Self {
        self.num_gpus = Some(n);
        self
    }

    /// Bytes of memory to schedule (default: physical memory).
    pub fn memory(mut self, bytes: u64) -> Self {
        self.memory = Some(bytes);
        self
    }

    /// A custom resource, as `resources={"custom": 2}` in Ray.
    pub fn resource(mut self, name: impl Into<String>, amount: f64) -> Self {
        self.custom.push((name.into(), amount));
        self
    }

    /// Connects to a cluster (Ray's `ray.init(address=...)`): `host:port` of its head, or
    /// `"auto"` for the head of a node started on this machine. Named work
    /// ([`Runtime::remote_task`], [`Runtime::remote_actor`]) then runs on its nodes.
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    /// The cluster secret (default: `$RLLIB_CLUSTER_SECRET`, else the one stored on this
    /// machine by `rllib start`).
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// How long a node may not answer before it counts as dead (default 3 s).
    pub fn node_timeout(mut self, t: Duration) -> Self {
        self.node_timeout = Some(t);
        self
    }

    /// TLS to the cluster's nodes (default: `$RLLIB_TLS_CERT`/`$RLLIB_TLS_KEY`/`$RLLIB_TLS_CA`,
    /// else the files of the node started on this machine for the same head, else none).
    pub fn tls(mut self, files: crate::cluster::TlsFiles) -> Self {
        self.tls = Some(files);
        self
    }

    /// The deadline of every remote call (default 600 s).
    pub fn call_timeout(mut self, t: Duration) -> Self {
        self.call_timeout = Some(t);
        self
    }

    /// Serves the dashboard (Ray's `include_dashboard=True`) on 127.0.0.1:8265, showing this
    /// runtime and the runs under `checkpoints`; see [`Runtime::dashboard_url`].
    pub fn include_dashboard(mut self, yes: bool) -> Self {
        self.dashboard = yes.then(|| self.dashboard.take().unwrap_or_default());
        self
    }

    /// The dashboard with these settings (address, output folders, secret).
    pub fn dashboard(mut self, options: crate::dashboard::DashboardOptions) -> Self {
        self.dashboard = Some(options);
        self
    }

    /// The resources these options give this process (detected where unset).
    pub fn resources(&self) -> Result<Resources, RayError> {
        self.total()
    }

    fn total(&self) -> Result<Resources, RayError> {
        let mut r = Resources::new();
        r.set(CPU, self.num_cpus.unwrap_or(detect_cpus() as f64))?;
        r.set(GPU, self.num_gpus.unwrap_or(detect_gpus() as f64))?;
        if let Some(m) = self.memory.or_else(detect_memory) {
            r.set(MEMORY, m as f64)?;
        }
        for (k, v) in &self.custom {
            r.set(k, *v)?;
        }
        Ok(r)
    }
}

pub(crate) struct Inner {
    sched: Arc<Scheduler>,
    executor: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    actors: Mutex<Vec<(Arc<ActorShared>, ActorCell)>>,
    /// Actors that stopped, newest last (at most [`MAX_DEAD_ACTORS`]), for the state API.
    dead_actors: Mutex<std::collections::VecDeque<crate::state::ActorInfo>>,
    shut_down: AtomicBool,
    cluster: Option<Arc<Cluster>>,
    dashboard: Mutex<Option<crate::dashboard::Dashboard>>,
}

impl Inner {
    fn shutdown(&self) {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(d) = self.dashboard.lock().take() {
            d.shutdown();
        }
        self.sched.shutdown();
        for (shared, cell) in std::mem::take(&mut *self.actors.lock()) {
            shared.mark_dead("the runtime shut down");
            cell.kill();
        }
        if let Some(rt) = self.executor.lock().take() {
            // Never waits for work in flight: a shutdown must not hang.
            rt.shutdown_background();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A running runtime. Clones share it; it shuts down when [`shutdown`](Runtime::shutdown)
/// is called or the last clone drops.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("resources", self.inner.sched.total())
            .finish()
    }
}

/// Starts a runtime in this process (Ray's `ray.init`).
pub fn init(options: InitOptions) -> Result<Runtime, RayError> {
    let total = options.total()?;
    // The executor only moves messages; compute runs on threads of our own.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(1)
        .thread_name("ray-executor")
        .enable_time();
    if options.address.is_some() {
        // Sockets only in cluster mode: the embedded runtime listens on nothing.
        builder.enable_io();
    }
    let executor = builder
        .build()
        .map_err(|e| RayError::Startup(e.to_string()))?;
    let handle = executor.handle().clone();
    let cluster = match &options.address {
        None => None,
        Some(a) => {
            let address = if a == "auto" {
                crate::cluster::session::auto_address().map_err(RayError::Cluster)?
            } else {
                a.clone()
            };
            let secret = match &options.secret {
                Some(s) => s.clone(),
                None => crate::cluster::session::load_secret().map_err(RayError::Cluster)?,
            };
            let tls = match &options.tls {
                Some(t) => Some(t.clone()),
                None => match crate::cluster::TlsFiles::from_env().map_err(RayError::Cluster)? {
                    Some(t) => Some(t),
                    None => crate::cluster::session::tls_for(&address),
                },
            };
            let node_timeout = options
                .node_timeout
                .unwrap_or(crate::cluster::DEFAULT_NODE_TIMEOUT);
            Some(crate::cluster::connect(
                &address,
                &secret,
                (node_timeout / 6).max(Duration::from_millis(20)),
                node_timeout,
                options
                    .call_timeout
                    .unwrap_or(crate::cluster::DEFAULT_CALL_TIMEOUT),
                tls.as_ref(),
                &handle,
            )?)
        }
    };
    let rt = Runtime {
        inner: Arc::new(Inner {
            sched: Scheduler::new(total),
            executor: Mutex::new(Some(executor)),
            handle,
            actors: Mutex::new(Vec::new()),
            dead_actors: Mutex::new(std::collections::VecDeque::new()),
            shut_down: AtomicBool::new(false),
            cluster,
            dashboard: Mutex::new(None),
        }),
    };
    {
        let mut all = RUNTIMES.lock();
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&rt.inner));
    }
    if let Some(mut d) = options.dashboard.clone() {
        if d.secret.is_none() && !d.host.is_loopback() {
            d.secret = options
                .secret
                .clone()
                .or_else(|| crate::cluster::session::load_secret().ok());
        }
        let source = Arc::new(crate::dashboard::RuntimeSource(Arc::downgrade(&rt.inner)));
        let dashboard = crate::dashboard::start(source, d)?;
        // As `ray.init()` says it.
        eprintln!("View the dashboard at {}", dashboard.url());
        *rt.inner.dashboard.lock() = Some(dashboard);
    }
    Ok(rt)
}

impl Runtime {
    /// Puts a value in the object store (Ray's `ray.put`).
    pub fn put<T: Send + Sync + 'static>(&self, value: T) -> ObjectRef<T> {
        ObjectRef::ready(value)
    }

    /// Puts `value` where tasks on other nodes can fetch it (Ray's `ray.put` in a cluster):
    /// kept in this driver and served to the nodes in chunks when large, in the reference
    /// itself when small. Hand it to a task with
    /// [`RemoteTaskBuilder::arg_ref`](crate::RemoteTaskBuilder::arg_ref).
    pub fn put_remote<T: serde::Serialize>(
        &self,
        value: &T,
    ) -> Result<crate::RemoteRef<T>, RayError> {
        crate::RemoteRef::put(value, self.inner.cluster.as_ref())
    }

    /// A task with no object arguments: `rt.task(|| 2 + 2).remote()`.
    #[allow(clippy::type_complexity)]
    pub fn task<R, F>(
        &self,
        f: F,
    ) -> TaskBuilder<'_, (), impl Fn(()) -> R + Send + Sync + 'static + use<R, F>>
    where
        F: Fn() -> R + Send + Sync + 'static,
        R: Send + Sync + 'static,
    {
        TaskBuilder::new(self, (), move |()| f())
    }

    /// A task whose arguments are objects: it runs once they are all ready, with their values.
    pub fn task_with<A, R, F>(&self, args: A, f: F) -> TaskBuilder<'_, A, F>
    where
        A: TaskArgs,
        F: Fn(A::Values) -> R + Send + Sync + 'static,
        R: Send + Sync + 'static,
    {
        TaskBuilder::new(self, args, f)
    }

    /// An actor built by `constructor` on its own thread (run again on each restart).
    pub fn actor<A, F>(&self, constructor: F) -> ActorBuilder<'_, A>
    where
        A: 'static,
        F: Fn() -> A + Send + Sync + 'static,
    {
        ActorBuilder::new(self, Arc::new(constructor))
    }

    /// An actor whose state starts as `value`; each restart starts from a fresh clone of it.
    pub fn actor_from<A>(&self, value: A) -> ActorBuilder<'_, A>
    where
        A: Clone + Send + Sync + 'static,
    {
        self.actor(move || value.clone())
    }

    /// Total resources (Ray's `ray.cluster_resources()`): of every live node when connected
    /// to a cluster, of this process otherwise.
    pub fn cluster_resources(&self) -> Resources {
        match &self.inner.cluster {
            Some(c) => c.total(false),
            None => self.inner.sched.total().clone(),
        }
    }

    /// Resources not held by running tasks or live actors (`ray.available_resources()`), as
    /// the nodes last reported them when connected to a cluster.
    pub fn available_resources(&self) -> Resources {
        match &self.inner.cluster {
            Some(c) => c.total(true),
            None => self.inner.sched.available(),
        }
    }

    /// The nodes (Ray's `ray.nodes()`): the cluster's, or this process as one node.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        match &self.inner.cluster {
            Some(c) => c.nodes(),
            None => {
                let total: std::collections::BTreeMap<String, f64> = self
                    .inner
                    .sched
                    .total()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                let available = self
                    .inner
                    .sched
                    .available()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                vec![NodeInfo {
                    node_id: "local".to_string(),
                    address: String::new(),
                    is_head: true,
                    alive: true,
                    total,
                    available,
                    pid: std::process::id(),
                    objects: 0,
                    data_address: String::new(),
                }]
            }
        }
    }

    /// The dashboard's address when it was included (`http://127.0.0.1:8265`).
    pub fn dashboard_url(&self) -> Option<String> {
        self.inner.dashboard.lock().as_ref().map(|d| d.url())
    }

    pub(crate) fn upgrade(inner: &std::sync::Weak<Inner>) -> Option<Runtime> {
        inner.upgrade().map(|inner| Runtime { inner })
    }

    /// Whether this runtime is connected to a cluster.
    pub fn is_cluster(&self) -> bool {
        self.inner.cluster.is_some()
    }

    /// A task of the function registered as `name` ([`crate::register_function`]): on the
    /// cluster's nodes when connected, in this process otherwise.
    pub fn remote_task(&self, name: &str) -> RemoteTaskBuilder<'_> {
        RemoteTaskBuilder::new(self, name)
    }

    /// An actor of the type registered as `type_name` ([`crate::register_actor`]): on one of
    /// the cluster's nodes when connected, in this process otherwise.
    pub fn remote_actor(&self, type_name: &str) -> RemoteActorBuilder<'_> {
        RemoteActorBuilder::new(self, type_name)
    }

    pub(crate) fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.inner.cluster.as_ref()
    }

    /// Shuts down: queued and running work fails with [`RayError::Shutdown`], actors die,
    /// and nothing waits for a running task to finish. Idempotent.
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }

    /// Whether [`shutdown`](Runtime::shutdown) was called.
    pub fn is_shut_down(&self) -> bool {
        self.inner.shut_down.load(Ordering::Acquire)
    }

    pub(crate) fn scheduler(&self) -> &Arc<Scheduler> {
        &self.inner.sched
    }

    pub(crate) fn executor(&self) -> &tokio::runtime::Handle {
        &self.inner.handle
    }

    pub(crate) fn register_actor(&self, shared: Arc<ActorShared>, cell: ActorCell) {
        let mut actors = self.inner.actors.lock();
        let mut dead = self.inner.dead_actors.lock();
        actors.retain(|(a, c)| {
            let live = c.get_status() != ractor::ActorStatus::Stopped;
            if !live {
                if dead.len() == MAX_DEAD_ACTORS {
                    dead.pop_front();
                }
                dead.push_back(a.info());
            }
            live
        });
        actors.push((shared, cell));
    }

    /// Every actor of this runtime, live ones and the latest that died (Ray's `ray list
    /// actors`); with a cluster, also the actors this driver placed on its nodes.
    pub fn list_actors(&self) -> Vec<crate::state::ActorInfo> {
        let mut out: Vec<_> = self.inner.dead_actors.lock().iter().cloned().collect();
        out.extend(self.inner.actors.lock().iter().map(|(a, _)| a.info()));
        if let Some(c) = &self.inner.cluster {
            out.extend(c.actor_infos());
        }
        out
    }

    /// This process's tasks by state since the runtime started (Ray's `ray summary tasks`).
    pub fn summarize_tasks(&self) -> crate::state::TaskSummary {
        self.inner.sched.state.summary()
    }

    /// The latest failed tasks and actor calls, oldest first (at most
    /// [`MAX_FAILURES`](crate::state::MAX_FAILURES)).
    pub fn recent_failures(&self) -> Vec<crate::state::Failure> {
        self.inner.sched.state.failures()
    }
}
