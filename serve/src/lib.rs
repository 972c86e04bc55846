//! Ray Serve on this project's runtime: HTTP deployments whose replicas are runtime actors.
//!
//! ```no_run
//! use serve::{Deployment, HttpOptions, Request, Response};
//! let server = serve::start(HttpOptions::default())?;          // http://127.0.0.1:8000
//! server.run(Deployment::function("model", |req: Request| {
//!     Response::text(format!("you asked: {}", req.query_param("query").unwrap_or("")))
//! }))?;
//! // curl 'http://127.0.0.1:8000/model?query=hi'
//! server.wait_for_signal();                                   // Ctrl-C / SIGTERM: drain, stop
//! # Ok::<(), serve::ServeError>(())
//! ```
//!
//! A request reaches the deployment whose route prefix is the longest that matches its path;
//! the deployment's router (a task on the server's executor) holds it in a bounded queue
//! until a replica has room (`max_ongoing_requests`), sends it, or a batch of them, to the
//! least-loaded replica as one actor call, and answers 503 when the queue is full. A replica
//! that panics fails the requests of that call with 500 and is rebuilt from its constructor by
//! the runtime. Replicas run on their own threads, never on the executor's.

mod client;
mod deployment;
mod http;
mod metrics;
mod router;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::routing::get;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, oneshot};

pub use axum::http::HeaderMap;
pub use client::{http_request, http_request_with_headers};
pub use deployment::{AutoscalingConfig, BatchHandler, Deployment, Handler};
pub use http::{Request, Response};
use metrics::DeploymentStats;
pub use router::DeploymentHandle;
use router::{Inbox, Msg, Router, next_replica_id, spawn_replica};

/// What can go wrong in Serve.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServeError {
    /// The address could not be listened on.
    #[error("cannot listen on {address}: {message}")]
    Bind {
        /// host:port asked for.
        address: String,
        /// Why.
        message: String,
    },
    /// A bad option or argument.
    #[error("{0}")]
    Invalid(String),
    /// No deployment of this name.
    #[error("no deployment named {0:?}")]
    NoDeployment(String),
    /// The deployment's queue is full (HTTP 503).
    #[error("deployment {0:?} is overloaded: its queue is full")]
    Overloaded(String),
    /// A replica failed the request (HTTP 500).
    #[error("deployment {deployment:?}: {message}")]
    ReplicaFailed {
        /// The deployment.
        deployment: String,
        /// What happened.
        message: String,
    },
    /// The deployment or the server has stopped.
    #[error("deployment {0:?} has stopped")]
    Stopped(String),
    /// A replica could not be started.
    #[error("deployment {deployment:?}: {message}")]
    Replica {
        /// The deployment.
        deployment: String,
        /// Why.
        message: String,
    },
}

impl ServeError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            ServeError::NoDeployment(_) => 404,
            ServeError::Overloaded(_) | ServeError::Stopped(_) => 503,
            ServeError::Invalid(_) => 400,
            _ => 500,
        }
    }
}

/// Where the HTTP proxy listens, and its limits.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// The address to listen on (default 127.0.0.1: this machine only).
    pub host: String,
    /// The port (default 8000; 0 picks a free one, see [`Serve::address`]).
    pub port: u16,
    /// Larger request bodies get 413 (default 1 MiB).
    pub max_body_bytes: usize,
    /// Threads of the HTTP executor (default: the machine's cores).
    pub threads: Option<usize>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            host: "127.0.0.1".into(),
            port: 8000,
            max_body_bytes: 1 << 20,
            threads: None,
        }
    }
}

/// One deployment as the server keeps it.
struct Entry {
    prefix: String,
    handle: DeploymentHandle,
    version: Option<String>,
    router: Option<tokio::task::JoinHandle<()>>,
}

/// What the proxy's handlers share.
struct Shared {
    /// Deployments by name.
    deployments: RwLock<HashMap<String, Entry>>,
    max_body_bytes: usize,
}

impl Shared {
    /// The deployment whose prefix is the longest to match `path`.
    fn route(&self, path: &str) -> Option<DeploymentHandle> {
        let d = self.deployments.read();
        d.values()
            .filter(|e| {
                e.prefix == "/"
                    || path == e.prefix
                    || path
                        .strip_prefix(e.prefix.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .max_by_key(|e| e.prefix.len())
            .map(|e| e.handle.clone())
    }
}

/// A running Serve instance: its HTTP proxy and deployments (Ray's `serve.start`).
#[derive(Clone)]
pub struct Serve {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Serve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Serve({})", self.inner.address)
    }
}

struct Inner {
    shared: Arc<Shared>,
    address: SocketAddr,
    rt: ray::Runtime,
    executor: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// This instance's entry for dashboards on this machine, while it serves.
    announced: Mutex<Option<ray::dashboard::ServeAnnouncement>>,
}

/// Starts Serve's HTTP proxy on a local runtime with this machine's resources.
pub fn start(options: HttpOptions) -> Result<Serve, ServeError> {
    let rt = ray::init(ray::InitOptions::new()).map_err(|e| ServeError::Invalid(e.to_string()))?;
    start_on(rt, options)
}

/// Starts Serve's HTTP proxy; replicas are actors of `rt`.
pub fn start_on(rt: ray::Runtime, options: HttpOptions) -> Result<Serve, ServeError> {
    let address = format!("{}:{}", options.host, options.port);
    let bind_err = |message: String| ServeError::Bind {
        address: address.clone(),
        message,
    };
    let listener = std::net::TcpListener::bind(&address).map_err(|e| bind_err(e.to_string()))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| bind_err(e.to_string()))?;
    let local = listener.local_addr().map_err(|e| bind_err(e.to_string()))?;
    let threads = options.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
    });
    let executor = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("serve-http")
        .enable_all()
        .build()
        .map_err(|e| bind_err(format!("cannot start the HTTP executor: {e}")))?;
    let shared = Arc::new(Shared {
        deployments: RwLock::new(HashMap::new()),
        max_body_bytes: options.max_body_bytes,
    });
    let app = axum::Router::new()
        .route("/-/healthz", get(|| async { "success" }))
        .route("/-/routes", get(routes))
        .route("/-/status", get(status))
        .route("/metrics", get(metrics_text))
        .fallback(proxy)
        .with_state(Arc::clone(&shared));
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let listener = {
        let _enter = executor.enter();
        tokio::net::TcpListener::from_std(listener).map_err(|e| bind_err(e.to_string()))?
    };
    let server = executor.spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await;
        if let Err(e) = served {
            eprintln!("serve: the HTTP server stopped: {e}");
        }
    });
    let handle = executor.handle().clone();
    Ok(Serve {
        inner: Arc::new(Inner {
            shared,
            address: local,
            rt,
            executor: Mutex::new(Some(executor)),
            handle,
            stop: Mutex::new(Some(stop_tx)),
            server: Mutex::new(Some(server)),
            announced: Mutex::new(ray::dashboard::announce_serve(local)),
        }),
    })
}

impl Serve {
    /// The address the proxy listens on.
    pub fn address(&self) -> SocketAddr {
        self.inner.address
    }

    /// Deploys `d` (Ray's `serve.run`) and returns a handle once its replicas are up. A
    /// deployment of the same name is replaced: new replicas start first, then take every new
    /// request while the old ones finish theirs and stop, so no request is dropped.
    pub fn run(&self, d: Deployment) -> Result<DeploymentHandle, ServeError> {
        d.validate()?;
        let name = d.options.name.clone();
        let prefix = d.prefix();
        if let Some(other) = self
            .inner
            .shared
            .deployments
            .read()
            .values()
            .find(|e| e.prefix == prefix && *e.handle.name != *name)
        {
            return Err(ServeError::Invalid(format!(
                "route_prefix {prefix:?} is taken by deployment {:?}",
                other.handle.name
            )));
        }
        let n = d
            .options
            .autoscaling
            .as_ref()
            .map_or(d.options.num_replicas, |a| a.min_replicas);
        let mut replicas = Vec::with_capacity(n);
        for _ in 0..n {
            match spawn_replica(&self.inner.rt, &d.options, &d.factory, next_replica_id()) {
                Ok(r) => replicas.push(r),
                Err(message) => {
                    for r in replicas {
                        r.kill();
                    }

                    return Err(ServeError::Replica {
                        deployment: name,
                        message,
                    });
                }
            }
        }
        let mut deployments = self.inner.shared.deployments.write();
        if let Some(e) = deployments.get_mut(&name) {
            e.prefix = prefix;
            e.version = d.options.version.clone();
            let _ = e.handle.tx.send(Msg::Redeploy(d, replicas));
            return Ok(e.handle.clone());
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(DeploymentStats::default());
        let inbox = Arc::new(Inbox::new(d.options.max_queued_requests));
        let version = d.options.version.clone();
        let router = Router::new(
            d,
            replicas,
            self.inner.rt.clone(),
            tx.clone(),
            Arc::clone(&inbox),
            Arc::clone(&stats),
        );
        let task = self.inner.handle.spawn(router.run(rx));
        let handle = DeploymentHandle {
            name: Arc::from(name.as_str()),
            tx,
            inbox,
            stats,
        };
        deployments.insert(
            name,
            Entry {
                prefix,
                handle: handle.clone(),
                version,
                router: Some(task),
            },
        );
        Ok(handle)
    }

    /// A handle to a running deployment.
    pub fn get_handle(&self, name: &str) -> Result<DeploymentHandle, ServeError> {
        self.inner
            .shared
            .deployments
            .read()
            .get(name)
            .map(|e| e.handle.clone())
            .ok_or_else(|| ServeError::NoDeployment(name.to_string()))
    }

    /// Removes a deployment once its queued and running requests are answered.
    pub fn delete(&self, name: &str) -> Result<(), ServeError> {
        let entry = self
            .inner
            .shared
            .deployments
            .write()
            .remove(name)
            .ok_or_else(|| ServeError::NoDeployment(name.to_string()))?;
        self.stop_router(entry);
        Ok(())
    }

    fn stop_router(&self, mut entry: Entry) {
        let (done, wait) = oneshot::channel();
        if entry.handle.tx.send(Msg::Stop(done)).is_ok() {
            let _ = wait.blocking_recv();
        }
        if let Some(task) = entry.router.take() {
            let _ = self.inner.handle.block_on(task);
        }
    }

    /// Live replicas of a deployment.
    pub fn num_replicas(&self, name: &str) -> Result<usize, ServeError> {
        let h = self.get_handle(name)?;
        Ok(h.stats.replicas.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// The Prometheus text `/metrics` serves.
    pub fn metrics(&self) -> String {
        metrics_of(&self.inner.shared)
    }

    /// Stops taking connections, answers every request already received (within
    /// `drain_timeout`), then stops the deployments and their replicas.
    pub fn shutdown(&self, drain_timeout: Duration) {
        self.inner.announced.lock().take();
        if let Some(stop) = self.inner.stop.lock().take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.inner.server.lock().take() {
            let deadline = Instant::now() + drain_timeout;
            let _ = self
                .inner
                .handle
                .block_on(async { tokio::time::timeout_at(deadline.into(), server).await });
        }
        let entries: Vec<Entry> = self
            .inner
            .shared
            .deployments
            .write()
            .drain()
            .map(|(_, e)| e)
            .collect();
        for e in entries {
            self.stop_router(e);
        }
        if let Some(executor) = self.inner.executor.lock().take() {
            executor.shutdown_timeout(Duration::from_secs(1));
        }
    }

    /// Blocks until SIGINT, SIGTERM or SIGHUP, then [`shutdown`](Serve::shutdown)s with a
    /// 30-second drain; returns the signal's number.
    pub fn wait_for_signal(&self) -> i32 {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let sig = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
            Ok(mut signals) => signals.forever().next().unwrap_or(0),
            Err(e) => {
                eprintln!("serve: cannot install signal handlers ({e}); stopping now");
                0
            }
        };
        self.shutdown(Duration::from_secs(30));
        sig
    }
}

fn metrics_of(shared: &Shared) -> String {
    let d = shared.deployments.read();
    let mut list: Vec<(String, Option<String>, Arc<DeploymentStats>)> = d
        .iter()
        .map(|(n, e)| (n.clone(), e.version.clone(), Arc::clone(&e.handle.stats)))
        .collect();
    list.sort_by(|a, b| a.0.cmp(&b.0));
    drop(d);
    let refs: Vec<(String, Option<String>, &DeploymentStats)> = list
        .iter()
        .map(|(n, v, s)| (n.clone(), v.clone(), s.as_ref()))
        .collect();
    metrics::render(&refs)
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> axum::response::Response {
    let body = metrics_of(&shared);
    axum::response::Response::builder()
        .header("content-type", "text/plain; version=0.0.4")
        .body(Body::from(body))
        .unwrap_or_default()
}

/// Every deployment's state (what `serve status` and the dashboard's Serve page show):
/// replicas, request counts, errors, queue and latency percentiles.
async fn status(State(shared): State<Arc<Shared>>) -> axum::response::Response {
    use std::sync::atomic::Ordering::Relaxed;
    let d = shared.deployments.read();
    let mut list: Vec<serde_json::Value> = d
        .iter()
        .map(|(name, e)| {
            let s = &e.handle.stats;
            let codes = s.codes();
            let count = |lo: u16, hi: u16| -> u64 { codes.range(lo..hi).map(|(_, n)| n).sum() };
            serde_json::json!({
                "name": name,
                "route_prefix": e.prefix,
                "version": e.version,
                "replicas": s.replicas.load(Relaxed),
                "requests_total": count(100, 600),
                "errors_4xx": count(400, 500),
                "errors_5xx": count(500, 600),
                "queued": s.queued.load(Relaxed),
                "ongoing": s.ongoing.load(Relaxed),
                "restarts": s.restarts.load(Relaxed),
                "latency_ms": {
                    "p50": s.latency_quantile_ms(0.5),
                    "p90": s.latency_quantile_ms(0.9),
                    "p99": s.latency_quantile_ms(0.99),
                    "mean": s.latency_mean_ms(),
                },
            })
        })
        .collect();
    drop(d);
    list.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    to_http(Response::json(&serde_json::json!({ "deployments": list })))
}

/// `{route_prefix: deployment}`, as Ray's `/-/routes`.
async fn routes(State(shared): State<Arc<Shared>>) -> axum::response::Response {
    let d = shared.deployments.read();
    let map: std::collections::BTreeMap<&str, &str> = d
        .values()
        .map(|e| (e.prefix.as_str(), &*e.handle.name))
        .collect();
    to_http(Response::json(&map))
}

fn to_http(r: Response) -> axum::response::Response {
    let content_type = if r.content_type == "application/json" {
        axum::http::HeaderValue::from_static("application/json")
    } else {
        match axum::http::HeaderValue::from_str(&r.content_type) {
            Ok(v) => v,
            Err(_) => axum::http::HeaderValue::from_static("application/octet-stream"),
        }
    };
    axum::response::Response::builder()
        .status(r.status)
        .header(axum::http::header::CONTENT_TYPE, content_type)
        .body(Body::from(r.body))
        .unwrap_or_else(|_| {
            let mut resp = axum::response::Response::new(Body::from("bad response"));
            *resp.status_mut() = axum::http::StatusCode::INTERNAL_SERVER_ERROR;
            resp
        })
}

/// Every other path: to the deployment of the longest matching prefix.
async fn proxy(
    State(shared): State<Arc<Shared>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let Some(handle) = shared.route(&path) else {
        return to_http(Response::error(
            404,
            &format!("no deployment at {path}; GET /-/routes lists them"),
        ));
    };
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let limit = shared.max_body_bytes;
    let too_large = || {
        to_http(Response::error(
            413,
            &format!("the body is larger than {limit} bytes"),
        ))
    };
    if declared.is_some_and(|n| n > limit) {
        return too_large();
    }
    let Ok(body) = axum::body::to_bytes(body, limit).await else {
        return too_large();
    };
    let request = Request {
        method: parts.method.as_str().to_string(),
        path,
        query: parts.uri.query().map(http::parse_query).unwrap_or_default(),
        headers: parts.headers,
        body,
    };
    match handle.call_async(request).await {
        Ok(r) => to_http(r),
        Err(e) => to_http(Response::error(e.status(), &e.to_string())),
    }
}
