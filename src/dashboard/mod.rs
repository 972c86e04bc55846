//! The dashboard (Ray's, at `http://127.0.0.1:8265`): the cluster's nodes, the actors and
//! tasks, every training run under the output folders with its curves, Tune experiments and
//! Serve deployments, in a browser.
//!
//! Read-only: every route is a `GET` (anything else is 405), and nothing it serves changes
//! state. It listens on loopback unless told otherwise; on any other address every request
//! needs the cluster secret (`Authorization: Bearer <secret>`, or `?token=<secret>` once,
//! which sets a cookie for the pages that follow).
//!
//! The JSON routes the pages are built on (all `GET`):
//!
//! | route | what it returns |
//! | --- | --- |
//! | `/api` | this list |
//! | `/api/cluster` | `nodes` (as `ray.nodes()`), `cluster_resources`, `available_resources` |
//! | `/api/actors` | `actors` (as `ray list actors`), `tasks` (counts by state), `failures` |
//! | `/api/runs` | every run under the output folders: `id`, `experiment`, `trial`, `status`, `last` metrics |
//! | `/api/runs/progress?run=ID` | the run's `progress.csv` as `columns` and `data` (a column of numbers or nulls each) |
//! | `/api/runs/detail?run=ID` | the run's config (`params.json`/`params.yaml`) and checkpoints |
//! | `/api/tune` | Tune experiments: trials with their varied parameters, status, metric, the best trial |
//! | `/api/serve` | Serve instances on this machine and their deployments: replicas, requests/s, latency, errors |
//!
//! It runs on a thread of its own with a single-threaded executor, so that training and the
//! runtime's executor never wait for it; a page that is not open costs nothing.

mod runs;
mod serve;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::RayError;
use crate::cluster::NodeInfo;
use crate::state::{ActorInfo, Failure, TaskSummary};

pub use runs::{RETURN_COLUMNS, RunInfo, read_progress, run_folders, scan_runs};
pub use serve::{ServeAnnouncement, announce_serve};

/// Ray's dashboard port.
pub const DEFAULT_PORT: u16 = 8265;

/// What the dashboard shows of the runtime: a driver's [`crate::Runtime`], or a head node.
pub trait StateSource: Send + Sync + 'static {
    /// The nodes (`ray.nodes()`).
    fn nodes(&self) -> Vec<NodeInfo>;
    /// The actors (`ray list actors`).
    fn actors(&self) -> Vec<ActorInfo> {
        Vec::new()
    }
    /// Tasks by state.
    fn tasks(&self) -> TaskSummary {
        TaskSummary::default()
    }
    /// The latest failures.
    fn failures(&self) -> Vec<Failure> {
        Vec::new()
    }
}

/// Where the dashboard listens and what it reads.
#[derive(Debug, Clone)]
pub struct DashboardOptions {
    /// Default 127.0.0.1 (this machine only); any other address needs `secret`.
    pub host: IpAddr,
    /// Default 8265; 0 picks a free port (see [`Dashboard::url`]).
    pub port: u16,
    /// Output folders whose runs the Runs and Tune pages show (default `checkpoints`, the
    /// default output folder of `rllib train`).
    pub runs_dirs: Vec<PathBuf>,
    /// The secret every request must carry when `host` is not loopback.
    pub secret: Option<String>,
    /// Serve instances to show besides those this machine's session folder lists
    /// (`host:port` of their HTTP proxies).
    pub serve_addresses: Vec<String>,
}

impl Default for DashboardOptions {
    fn default() -> Self {
        DashboardOptions {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: DEFAULT_PORT,
            runs_dirs: vec![PathBuf::from("checkpoints")],
            secret: None,
            serve_addresses: Vec::new(),
        }
    }
}

/// A running dashboard; it stops when dropped or [`shutdown`](Dashboard::shutdown).
#[derive(Debug)]
pub struct Dashboard {
    address: SocketAddr,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Dashboard {
    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `http://host:port`, as `ray.init()` prints it.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Stops listening and waits for its thread (idempotent).
    pub fn shutdown(&self) {
        if let Some(stop) = self.stop.lock().take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Ctx {
    source: Arc<dyn StateSource>,
    runs_dirs: Vec<PathBuf>,
    secret: Option<String>,
    serve: serve::Watcher,
}

/// Starts the dashboard on a thread of its own; returns once it listens.
pub fn start(
    source: Arc<dyn StateSource>,
    options: DashboardOptions,
) -> Result<Dashboard, RayError> {
    let addr = SocketAddr::new(options.host, options.port);
    let secret = match (&options.secret, options.host.is_loopback()) {
        (Some(s), _) if !s.is_empty() => Some(s.clone()),
        (_, true) => None,
        (_, false) => {
            return Err(RayError::Startup(format!(
                "the dashboard would listen on {addr}, beyond this machine, without a secret: \
                 give the cluster secret (--token or RLLIB_CLUSTER_SECRET, or start the cluster \
                 with `rllib start --head`), or listen on 127.0.0.1"
            )));
        }
    };
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        RayError::Startup(format!(
            "the dashboard cannot listen on {addr}: {e} (choose another port with \
             --dashboard-port)"
        ))
    })?;
    let address = listener
        .local_addr()
        .map_err(|e| RayError::Startup(format!("dashboard: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| RayError::Startup(format!("dashboard: {e}")))?;
    let executor = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RayError::Startup(format!("dashboard: cannot start its executor: {e}")))?;
    let ctx = Arc::new(Ctx {
        source,
        runs_dirs: options.runs_dirs,
        secret,
        serve: serve::Watcher::new(options.serve_addresses),
    });
    let app = router(ctx);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let listener = {
        let _enter = executor.enter();
        tokio::net::TcpListener::from_std(listener)
            .map_err(|e| RayError::Startup(format!("dashboard: {e}")))?
    };
    let thread = std::thread::Builder::new()
        .name("ray-dashboard".into())
        .spawn(move || {
            executor.block_on(async move {
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await;
                if let Err(e) = served {
                    eprintln!("dashboard: the HTTP server stopped: {e}");
                }
            });
            executor.shutdown_timeout(std::time::Duration::from_secs(1));
        })
        .map_err(|e| RayError::Startup(format!("dashboard: cannot start its thread: {e}")))?;
    Ok(Dashboard {
        address,
        stop: Mutex::new(Some(stop_tx)),
        thread: Mutex::new(Some(thread)),
    })
}

fn router(ctx: Arc<Ctx>) -> axum::Router {
    axum::Router::new()
        .route("/", get(|| async { asset("index.html") }))
        .route("/app.js", get(|| async { asset("app.js") }))
        .route("/style.css", get(|| async { asset("style.css") }))
        .route(
            "/vendor/uPlot.iife.min.js",
            get(|| async { asset("uPlot.iife.min.js") }),
        )
        .route(
            "/vendor/uPlot.min.css",
            get(|| async { asset("uPlot.min.css") }),
        )
        .route("/vendor/LICENSE-uPlot", get(|| async { asset("LICENSE") }))
        .route("/api", get(api_index))
        .route("/api/cluster", get(api_cluster))
        .route("/api/actors", get(api_actors))
        .route("/api/runs", get(api_runs))
        .route("/api/runs/progress", get(api_progress))
        .route("/api/runs/detail", get(api_detail))
        .route("/api/tune", get(api_tune))
        .route("/api/serve", get(api_serve))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such page or route (see /api)") })
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&ctx),
            authenticate,
        ))
        .with_state(ctx)
}

/// The compiled-in pages and the vendored charting library.
fn asset(name: &str) -> Response {
    let (body, kind): (&'static [u8], &'static str) = match name {
        "index.html" => (
            include_bytes!("assets/index.html"),
            "text/html; charset=utf-8",
        ),
        "app.js" => (
            include_bytes!("assets/app.js"),
            "text/javascript; charset=utf-8",
        ),
        "style.css" => (
            include_bytes!("assets/style.css"),
            "text/css; charset=utf-8",
        ),
        "uPlot.iife.min.js" => (
            include_bytes!("assets/vendor/uplot/uPlot.iife.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "uPlot.min.css" => (
            include_bytes!("assets/vendor/uplot/uPlot.min.css"),
            "text/css; charset=utf-8",
        ),
        _ => (
            include_bytes!("assets/vendor/uplot/LICENSE"),
            "text/plain; charset=utf-8",
        ),
    };
    let mut r = Response::new(Body::from(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r
}

fn json_response(v: &Value) -> Response {
    let mut r = Response::new(Body::from(v.to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn error(status: StatusCode, message: &str) -> Response {
    let mut r = json_response(&json!({ "error": message }));
    *r.status_mut() = status;
    r
}

/// Beyond loopback, every request carries the secret: a bearer token, the cookie, or
/// `?token=` (which then sets the cookie, so the page's own requests carry it).
async fn authenticate(
    State(ctx): State<Arc<Ctx>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if req.method() != axum::http::Method::GET && req.method() != axum::http::Method::HEAD {
        let mut r = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "the dashboard is read-only: only GET",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let Some(secret) = ctx.secret.as_deref() else {
        return next.run(req).await;
    };
    let from_query = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    });
    let presented = bearer(req.headers())
        .or_else(|| cookie(req.headers()))
        .or(from_query.clone());
    if !presented.is_some_and(|p| same(p.as_bytes(), secret.as_bytes())) {
        return error(
            StatusCode::UNAUTHORIZED,
            "this dashboard needs the cluster secret: open it with ?token=<secret> or send \
             Authorization: Bearer <secret>",
        );
    }
    let mut r = next.run(req).await;
    if from_query.is_some()
        && let Ok(v) = HeaderValue::from_str(&format!(
            "rllib_dashboard={secret}; HttpOnly; SameSite=Strict; Path=/"
        ))
    {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

fn bearer(h: &HeaderMap) -> Option<String> {
    let v = h.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ").map(|s| s.trim().to_string())
}

fn cookie(h: &HeaderMap) -> Option<String> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix("rllib_dashboard=")
                .map(str::to_string)
        })
}

/// Compares in time that does not depend on where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn api_index() -> Response {
    json_response(&json!({
        "routes": {
            "/api/cluster": "nodes (as ray.nodes()), cluster_resources, available_resources",
            "/api/actors": "actors (as `ray list actors`), tasks (counts by state), failures (latest first)",
            "/api/runs": "every run under the output folders: id, experiment, trial, status, last metrics",
            "/api/runs/progress?run=ID": "the run's progress.csv: columns, and data (one array of numbers or nulls per column)",
            "/api/runs/detail?run=ID": "the run's config and checkpoints",
            "/api/tune": "Tune experiments: trials, varied parameters, status, metric, best trial",
            "/api/serve": "Serve instances and their deployments: replicas, requests/s, latency percentiles, errors",
        }
    }))
}

/// Runs a blocking read off the executor.
async fn blocking<F: FnOnce() -> Response + Send + 'static>(f: F) -> Response {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))
}

async fn api_cluster(State(ctx): State<Arc<Ctx>>) -> Response {
    blocking(move || {
        let nodes = ctx.source.nodes();
        let mut total: BTreeMap<String, f64> = BTreeMap::new();
        let mut available: BTreeMap<String, f64> = BTreeMap::new();
        for n in nodes.iter().filter(|n| n.alive) {
            for (k, v) in &n.total {
                *total.entry(k.clone()).or_default() += v;
            }
            for (k, v) in &n.available {
                *available.entry(k.clone()).or_default() += v;
            }
        }
        json_response(&json!({
            "nodes": nodes,
            "cluster_resources": total,
            "available_resources": available,
        }))
    })
    .await
}

async fn api_actors(State(ctx): State<Arc<Ctx>>) -> Response {
    blocking(move || {
        let mut failures = ctx.source.failures();
        failures.reverse();
        json_response(&json!({
            "actors": ctx.source.actors(),
            "tasks": ctx.source.tasks(),
            "failures": failures,
        }))
    })
    .await
}

async fn api_runs(State(ctx): State<Arc<Ctx>>) -> Response {
    blocking(move || {
        let runs = scan_runs(&ctx.runs_dirs);
        json_response(&json!({
            "roots": ctx.runs_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>(),
            "runs": runs,
        }))
    })
    .await
}

type Params = Query<BTreeMap<String, String>>;

/// The folder of the run a `?run=` names: only ever one the walk found, so no path is taken
/// from a request.
fn find_run(
    ctx: &Ctx,
    q: &BTreeMap<String, String>,
) -> Result<(String, PathBuf), (StatusCode, String)> {
    let Some(id) = q.get("run") else {
        return Err((
            StatusCode::BAD_REQUEST,
            "give the run: ?run=<id from /api/runs>".to_string(),
        ));
    };
    match runs::find_run(&ctx.runs_dirs, id) {
        Some(dir) => Ok((id.clone(), dir)),
        None => Err((
            StatusCode::NOT_FOUND,
            format!("no run {id:?} under the output folders (see /api/runs)"),
        )),
    }
}

async fn api_progress(State(ctx): State<Arc<Ctx>>, Query(q): Params) -> Response {
    blocking(move || match find_run(&ctx, &q) {
        Err((status, message)) => error(status, &message),
        Ok((id, dir)) => match runs::progress(&id, &dir) {
            Ok(v) => json_response(&v),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
        },
    })
    .await
}

async fn api_detail(State(ctx): State<Arc<Ctx>>, Query(q): Params) -> Response {
    blocking(move || match find_run(&ctx, &q) {
        Err((status, message)) => error(status, &message),
        Ok((id, dir)) => json_response(&runs::detail(&id, &dir)),
    })
    .await
}

async fn api_tune(State(ctx): State<Arc<Ctx>>) -> Response {
    blocking(move || json_response(&json!({ "experiments": runs::experiments(&ctx.runs_dirs) })))
        .await
}

async fn api_serve(State(ctx): State<Arc<Ctx>>) -> Response {
    blocking(move || json_response(&json!({ "instances": ctx.serve.poll() }))).await
}

/// A driver's runtime as the dashboard's source; it does not keep the runtime alive.
pub(crate) struct RuntimeSource(pub(crate) std::sync::Weak<crate::runtime::Inner>);

impl StateSource for RuntimeSource {
    fn nodes(&self) -> Vec<NodeInfo> {
        crate::Runtime::upgrade(&self.0).map_or_else(Vec::new, |rt| rt.nodes())
    }
    fn actors(&self) -> Vec<ActorInfo> {
        crate::Runtime::upgrade(&self.0).map_or_else(Vec::new, |rt| rt.list_actors())
    }
    fn tasks(&self) -> TaskSummary {
        crate::Runtime::upgrade(&self.0)
            .map_or_else(TaskSummary::default, |rt| rt.summarize_tasks())
    }
    fn failures(&self) -> Vec<Failure> {
        crate::Runtime::upgrade(&self.0).map_or_else(Vec::new, |rt| rt.recent_failures())
    }
}

/// Every runtime of this process as one source (what `rllib train --dashboard` shows: the
/// runs' runtimes come and go while the dashboard stays). Connected to a cluster, the nodes
/// are the cluster's; otherwise the embedded runtimes are this process as one node `local`:
/// each one's total is the machine's, so the node shows the largest total and the sum of
/// what they hold.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessSource;

impl StateSource for ProcessSource {
    fn nodes(&self) -> Vec<NodeInfo> {
        let mut cluster: BTreeMap<String, NodeInfo> = BTreeMap::new();
        let mut local: Option<NodeInfo> = None;
        for rt in crate::runtime::live_runtimes() {
            if rt.is_cluster() {
                for n in rt.nodes() {
                    cluster.insert(n.node_id.clone(), n);
                }
                continue;
            }
            for n in rt.nodes() {
                let Some(l) = local.as_mut() else {
                    local = Some(n);
                    continue;
                };
                let used_before: BTreeMap<String, f64> = l
                    .total
                    .iter()
                    .map(|(k, t)| (k.clone(), t - l.available.get(k).copied().unwrap_or(0.0)))
                    .collect();
                for (k, t) in &n.total {
                    let e = l.total.entry(k.clone()).or_insert(0.0);
                    *e = e.max(*t);
                }
                let keys: Vec<String> = l.total.keys().cloned().collect();
                for k in keys {
                    let used = used_before.get(&k).copied().unwrap_or(0.0)
                        + n.total.get(&k).copied().unwrap_or(0.0)
                        - n.available.get(&k).copied().unwrap_or(0.0);
                    l.available.insert(k.clone(), (l.total[&k] - used).max(0.0));
                }
            }
        }
        if local.is_none() && cluster.is_empty() {
            // No runtime yet: this process, idle.
            let total: BTreeMap<String, f64> = crate::InitOptions::new()
                .resources()
                .map(|r| r.iter().map(|(k, v)| (k.to_string(), v)).collect())
                .unwrap_or_default();
            local = Some(NodeInfo {
                node_id: "local".to_string(),
                address: String::new(),
                is_head: true,
                alive: true,
                available: total.clone(),
                total,
                pid: std::process::id(),
                objects: 0,
                data_address: String::new(),
            });
        }
        // A driver on a cluster is not one of its nodes (as in Ray): its embedded runtimes
        // (a search's own, say) are left out then.
        if !cluster.is_empty() {
            local = None;
        }
        local.into_iter().chain(cluster.into_values()).collect()
    }

    fn actors(&self) -> Vec<ActorInfo> {
        crate::runtime::live_runtimes()
            .iter()
            .flat_map(crate::Runtime::list_actors)
            .collect()
    }

    fn tasks(&self) -> TaskSummary {
        crate::runtime::live_runtimes()
            .iter()
            .map(crate::Runtime::summarize_tasks)
            .fold(TaskSummary::default(), |a, b| TaskSummary {
                pending: a.pending + b.pending,
                running: a.running + b.running,
                finished: a.finished + b.finished,
                failed: a.failed + b.failed,
            })
    }

    fn failures(&self) -> Vec<Failure> {
        let mut all: Vec<Failure> = crate::runtime::live_runtimes()
            .iter()
            .flat_map(crate::Runtime::recent_failures)
            .collect();
        all.sort_by(|a, b| a.time.total_cmp(&b.time));
        let extra = all.len().saturating_sub(crate::state::MAX_FAILURES);
        all.drain(..extra);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String, Value) {
        let (status, head, body) = serve::http_call(addr, "GET", path, headers).unwrap();
        let v = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        (status, head, v)
    }

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "ray-dash-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn the_runtime_reports_actors_tasks_and_failures() {
        let rt = crate::init(crate::InitOptions::new().num_cpus(2.0)).unwrap();
        let a = rt
            .actor(|| 0u32)
            .num_cpus(1.0)
            .max_restarts(1)
            .name("counter")
            .spawn()
            .unwrap();
        assert_eq!(a.call(|n| *n + 1).get().unwrap(), 1);
        assert!(
            a.call(|_: &mut u32| -> u32 { panic!("bad state") })
                .get()
                .is_err()
        );
        let ok = rt.task(|| 2 + 2).remote().unwrap();
        let bad = rt
            .task(|| -> u32 { panic!("task boom") })
            .name("boom")
            .remote()
            .unwrap();
        assert_eq!(ok.get().unwrap(), 4);
        assert!(bad.get().is_err());
        let actors = rt.list_actors();
        let c = actors.iter().find(|x| x.name == "counter").unwrap();
        assert_eq!(c.class_name, "u32");
        assert_eq!(c.state, crate::state::ActorState::Alive);
        assert_eq!((c.num_restarts, c.max_restarts), (1, 1));
        assert_eq!(c.resources.get("CPU"), Some(&1.0));
        let t = rt.summarize_tasks();
        assert_eq!((t.finished, t.failed, t.running, t.pending), (1, 1, 0, 0));
        let f = rt.recent_failures();
        assert!(
            f.iter()
                .any(|x| x.kind == "actor" && x.message.contains("bad state")),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|x| x.kind == "task" && x.name == "boom" && x.message.contains("task boom")),
            "{f:?}"
        );
        a.kill();
        let dead = rt.list_actors();
        let c = dead.iter().find(|x| x.name == "counter").unwrap();
        assert_eq!(c.state, crate::state::ActorState::Dead);
        assert_eq!(c.death_cause.as_deref(), Some("killed"));
        rt.shutdown();
    }

    #[test]
    fn the_dashboard_serves_pages_and_state_and_refuses_writes() {
        let runs = tempdir("api");
        let trial = runs.join("exp").join("trial_a");
        std::fs::create_dir_all(&trial).unwrap();
        std::fs::write(
            trial.join("progress.csv"),
            "training_iteration,env_runners/episode_return_mean\n1,10.5\n2,20.25\n",
        )
        .unwrap();
        let rt = crate::init(
            crate::InitOptions::new()
                .num_cpus(1.0)
                .dashboard(DashboardOptions {
                    port: 0,
                    runs_dirs: vec![runs.clone()],
                    ..Default::default()
                }),
        )
        .unwrap();
        let _a = rt.actor(|| ()).name("idle").spawn().unwrap();
        let url = rt.dashboard_url().unwrap();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        let addr = url.trim_start_matches("http://").to_string();
        let d = addr.as_str();
        let (status, head, page) = get(d, "/", &[]);
        assert_eq!(status, 200);
        assert!(head.contains("content-type: text/html"));
        assert!(page.as_str().unwrap().contains("rllib dashboard"));
        for asset in [
            "/app.js",
            "/style.css",
            "/vendor/uPlot.iife.min.js",
            "/vendor/LICENSE-uPlot",
        ] {
            assert_eq!(get(d, asset, &[]).0, 200, "{asset}");
        }
        let (_, _, c) = get(d, "/api/cluster", &[]);
        assert_eq!(c["nodes"][0]["node_id"], json!("local"));
        assert_eq!(c["cluster_resources"]["CPU"], json!(1.0));
        let (_, _, a) = get(d, "/api/actors", &[]);
        assert!(
            a["actors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["name"] == json!("idle")),
            "{a}"
        );
        let (_, _, r) = get(d, "/api/runs", &[]);
        assert_eq!(r["runs"][0]["id"], json!("0/exp/trial_a"));
        let (_, _, p) = get(d, "/api/runs/progress?run=0%2Fexp%2Ftrial_a", &[]);
        assert_eq!(
            p["data"]["env_runners/episode_return_mean"],
            json!([10.5, 20.25])
        );
        // Only runs the scan found: no path from the request is ever opened.
        let (status, _, e) = get(d, "/api/runs/detail?run=0/../../etc", &[]);
        assert_eq!(status, 404, "{e}");
        assert_eq!(get(d, "/api/runs/progress", &[]).0, 400);
        assert_eq!(get(d, "/nope", &[]).0, 404);
        for m in ["POST", "PUT", "DELETE"] {
            let (status, head, _) = serve::http_call(&addr, m, "/api/runs", &[]).unwrap();
            assert_eq!(status, 405, "{m}");
            assert!(head.contains("allow: get, head"), "{head}");
        }
        rt.shutdown();
        // The dashboard stops with its runtime.
        assert!(serve::http_call(&addr, "GET", "/api", &[]).is_err());
        std::fs::remove_dir_all(&runs).unwrap();
    }

    #[test]
    fn beyond_loopback_every_request_needs_the_secret() {
        let source: Arc<dyn StateSource> = Arc::new(ProcessSource);
        let open = DashboardOptions {
            host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 0,
            ..Default::default()
        };
        let e = start(Arc::clone(&source), open.clone()).unwrap_err();
        assert!(e.to_string().contains("without a secret"), "{e}");
        let d = start(
            source,
            DashboardOptions {
                secret: Some("s3cret".into()),
                ..open
            },
        )
        .unwrap();
        let a = format!("127.0.0.1:{}", d.address().port());
        let a = a.as_str();
        assert_eq!(get(a, "/api/cluster", &[]).0, 401);
        assert_eq!(get(a, "/", &[]).0, 401);
        assert_eq!(
            get(a, "/api/cluster", &[("Authorization", "Bearer wrong")]).0,
            401
        );
        assert_eq!(
            get(a, "/api/cluster", &[("Authorization", "Bearer s3cret")]).0,
            200
        );
        let (status, head, _) = get(a, "/?token=s3cret", &[]);
        assert_eq!(status, 200);
        assert!(
            head.contains("set-cookie: rllib_dashboard=s3cret"),
            "{head}"
        );
        assert_eq!(
            get(a, "/api/runs", &[("Cookie", "a=b; rllib_dashboard=s3cret")]).0,
            200
        );
        d.shutdown();
    }

    #[test]
    fn a_taken_port_is_a_clear_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let e = start(
            Arc::new(ProcessSource),
            DashboardOptions {
                port,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("cannot listen on 127.0.0.1:"), "{e}");
        assert!(e.to_string().contains("--dashboard-port"), "{e}");
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
