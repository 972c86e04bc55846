//! A deployment: what its replicas run (a function, a handler struct, or a batch handler) and
//! how many run, where requests wait, how they are batched (Ray Serve's `@serve.deployment`
//! and `@serve.batch` options, under their names).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::ServeError;
use crate::http::{Request, Response};

/// A handler struct, one per replica (Ray's class deployment): `call` runs one request at a
/// time on the replica's own thread.
pub trait Handler: 'static {
    /// Answers one request.
    fn call(&mut self, request: Request) -> Response;
}

/// A batch handler (Ray's `@serve.batch`): gets the requests that arrived together, at most
/// `max_batch_size` of them, and returns one response per request, in order.
pub trait BatchHandler: 'static {
    /// Answers a batch of requests.
    fn call_batch(&mut self, requests: Vec<Request>) -> Vec<Response>;
}

/// The state of one replica: a handler built on the replica's thread.
pub(crate) enum Logic {
    One(Box<dyn Handler>),
    Batch(Box<dyn BatchHandler>),
}

impl Logic {
    /// Answers `requests` (one, unless batched); a wrong number of responses fails them all.
    pub(crate) fn run(&mut self, requests: Vec<Request>) -> Vec<Response> {
        match self {
            Logic::One(h) => requests.into_iter().map(|r| h.call(r)).collect(),
            Logic::Batch(h) => {
                let n = requests.len();
                let out = h.call_batch(requests);
                if out.len() == n {
                    out
                } else {
                    let msg = format!(
                        "the batch handler returned {} responses for {n} requests",
                        out.len()
                    );
                    vec![Response::error(500, &msg); n]
                }
            }
        }
    }
}

/// Builds a replica's state (run again when the replica restarts).
pub(crate) type Factory = Arc<dyn Fn() -> Logic + Send + Sync>;

/// Autoscaling between `min_replicas` and `max_replicas` on the requests waiting and running
/// (Ray Serve's `autoscaling_config`, its names and meaning).
#[derive(Debug, Clone, PartialEq)]
pub struct AutoscalingConfig {
    /// Never fewer replicas.
    pub min_replicas: usize,
    /// Never more replicas.
    pub max_replicas: usize,
    /// Requests (queued and running) per replica the autoscaler aims at.
    pub target_ongoing_requests: f64,
    /// How long more replicas must be wanted before one is added.
    pub upscale_delay: Duration,
    /// How long fewer replicas must be wanted before one is removed.
    pub downscale_delay: Duration,
}

impl Default for AutoscalingConfig {
    fn default() -> Self {
        AutoscalingConfig {
            min_replicas: 1,
            max_replicas: 1,
            target_ongoing_requests: 2.0,
            upscale_delay: Duration::from_secs(30),
            downscale_delay: Duration::from_secs(600),
        }
    }
}

impl Options {
    /// Requests a replica may hold: as set, else 5 (Ray's default), or for a batched
    /// deployment `max_batch_size × max_concurrent_batches`.
    pub(crate) fn max_ongoing(&self) -> usize {
        self.max_ongoing_requests.unwrap_or(if self.batched {
            self.max_batch_size
                .saturating_mul(self.max_concurrent_batches)
        } else {
            5
        })
    }
}

/// Everything about a deployment but its code.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Options {
    pub name: String,
    pub route_prefix: Option<String>,
    pub version: Option<String>,
    pub num_replicas: usize,
    pub autoscaling: Option<AutoscalingConfig>,
    /// Set by the user; else 5, or a batched replica's batches' worth.
    pub max_ongoing_requests: Option<usize>,
    pub max_queued_requests: usize,
    pub batched: bool,
    pub max_batch_size: usize,
    pub batch_wait_timeout: Duration,
    pub max_concurrent_batches: usize,
    pub num_cpus: f64,
}

/// A deployment to give to [`Serve::run`](crate::Serve::run).
#[derive(Clone)]
pub struct Deployment {
    pub(crate) options: Options,
    pub(crate) factory: Factory,
}

impl fmt::Debug for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deployment")
            .field("options", &self.options)
            .finish()
    }
}

impl Deployment {
    fn with(name: &str, batched: bool, factory: Factory) -> Deployment {
        Deployment {
            options: Options {
                name: name.to_string(),
                route_prefix: None,
                version: None,
                num_replicas: 1,
                autoscaling: None,
                max_ongoing_requests: None,
                max_queued_requests: 1024,
                batched,
                max_batch_size: 10,
                batch_wait_timeout: Duration::from_millis(10),
                max_concurrent_batches: 1,
                num_cpus: 1.0,
            },
            factory,
        }
    }

    /// A deployment of a function (Ray's function deployment).
    pub fn function<F>(name: &str, f: F) -> Deployment
    where
        F: Fn(Request) -> Response + Clone + Send + Sync + 'static,
    {
        struct FnHandler<F>(F);
        impl<F: Fn(Request) -> Response + 'static> Handler for FnHandler<F> {
            fn call(&mut self, request: Request) -> Response {
                (self.0)(request)
            }
        }
        Deployment::with(
            name,
            false,
            Arc::new(move || Logic::One(Box::new(FnHandler(f.clone())))),
        )
    }

    /// A deployment of a handler struct (Ray's class deployment): `constructor` builds one per
    /// replica, on the replica's thread, and again when the replica restarts.
    pub fn new<H, F>(name: &str, constructor: F) -> Deployment
    where
        H: Handler,
        F: Fn() -> H + Send + Sync + 'static,
    {
        Deployment::with(
            name,
            false,
            Arc::new(move || Logic::One(Box::new(constructor()))),
        )
    }

    /// A deployment of a batch handler (Ray's `@serve.batch`); see
    /// [`max_batch_size`](Deployment::max_batch_size) and
    /// [`batch_wait_timeout_s`](Deployment::batch_wait_timeout_s).
    pub fn batched<H, F>(name: &str, constructor: F) -> Deployment
    where
        H: BatchHandler,
        F: Fn() -> H + Send + Sync + 'static,
    {
        Deployment::with(
            name,
            true,
            Arc::new(move || Logic::Batch(Box::new(constructor()))),
        )
    }

    /// The deployment's name.
    pub fn name(&self) -> &str {
        &self.options.name
    }

    /// Where it answers over HTTP (default `/<name>`; `/` catches every path no other prefix
    /// takes).
    pub fn route_prefix(mut self, prefix: &str) -> Self {
        self.options.route_prefix = Some(prefix.to_string());
        self
    }

    /// A version label, shown by `/metrics` (`serve_deployment_info`). Running a deployment
    /// again replaces its replicas whatever the version.
    pub fn version(mut self, version: &str) -> Self {
        self.options.version = Some(version.to_string());
        self
    }

    /// A fixed number of replicas (default 1).
    pub fn num_replicas(mut self, n: usize) -> Self {
        self.options.num_replicas = n;
        self.options.autoscaling = None;
        self
    }

    /// Autoscaling instead of a fixed number of replicas.
    pub fn autoscaling(mut self, config: AutoscalingConfig) -> Self {
        self.options.autoscaling = Some(config);
        self
    }

    /// Requests a replica holds at once, running or waiting in its mailbox (default 5, Ray's;
    /// a batched deployment's default is `max_batch_size × max_concurrent_batches`).
    pub fn max_ongoing_requests(mut self, n: usize) -> Self {
        self.options.max_ongoing_requests = Some(n);
        self
    }

    /// Requests that may wait for a replica beyond those; the next gets 503 (default 1024).
    pub fn max_queued_requests(mut self, n: usize) -> Self {
        self.options.max_queued_requests = n;
        self
    }

    /// At most this many requests per batch (default 10, Ray's).
    pub fn max_batch_size(mut self, n: usize) -> Self {
        self.options.max_batch_size = n;
        self
    }

    /// How long the first request of a batch waits for more (default 0.01 s, Ray's).
    pub fn batch_wait_timeout_s(mut self, s: f64) -> Self {
        self.options.batch_wait_timeout = Duration::from_secs_f64(s.max(0.0));
        self
    }

    /// Batches a replica holds at once, running or next in its mailbox (default 1, Ray's): while
    /// they run, new requests wait in the deployment's queue and form the next batch.
    pub fn max_concurrent_batches(mut self, n: usize) -> Self {
        self.options.max_concurrent_batches = n;
        self
    }

    /// CPUs each replica holds (default 1, Ray's `ray_actor_options`).
    pub fn num_cpus(mut self, n: f64) -> Self {
        self.options.num_cpus = n;
        self
    }

    /// The route prefix in effect.
    pub(crate) fn prefix(&self) -> String {
        self.options
            .route_prefix
            .clone()
            .unwrap_or_else(|| format!("/{}", self.options.name))
    }

    /// Checks the options; the error names the option and what it takes.
    pub(crate) fn validate(&self) -> Result<(), ServeError> {
        let o = &self.options;
        let bad = |m: String| Err(ServeError::Invalid(format!("deployment {:?}: {m}", o.name)));
        if o.name.is_empty() || o.name.contains('/') {
            return bad("the name must be non-empty and hold no '/'".into());
        }
        let prefix = self.prefix();
        if !prefix.starts_with('/') || (prefix.len() > 1 && prefix.ends_with('/')) {
            return bad(format!(
                "route_prefix {prefix:?}: expected '/' or a path like '/model' (no trailing '/')"
            ));
        }
        if o.autoscaling.is_none() && o.num_replicas == 0 {
            return bad("num_replicas must be at least 1".into());
        }
        if let Some(a) = &o.autoscaling
            && (a.min_replicas == 0
                || a.max_replicas < a.min_replicas
                || a.target_ongoing_requests.is_nan()
                || a.target_ongoing_requests <= 0.0)
        {
            return bad(format!(
                "autoscaling: expected 1 <= min_replicas <= max_replicas and target_ongoing_requests > 0, got {a:?}"
            ));
        }
        if o.max_ongoing_requests == Some(0) {
            return bad("max_ongoing_requests must be at least 1".into());
        }
        if o.batched && (o.max_batch_size == 0 || o.max_concurrent_batches == 0) {
            return bad("max_batch_size and max_concurrent_batches must be at least 1".into());
        }
        if !(o.num_cpus >= 0.0 && o.num_cpus.is_finite()) {
            return bad(format!("num_cpus {}: expected a number >= 0", o.num_cpus));
        }
        Ok(())
    }
}
