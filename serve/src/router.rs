//! One router per deployment, a task on the server's executor: it owns the deployment's
//! replicas, takes requests from its queue and sends each (or a batch) to the least-loaded
//! replica with room, replaces dead replicas, scales between the autoscaling bounds and swaps
//! replicas on a redeploy without dropping a request.
//!
//! The queue (an [`Inbox`]) is shared with the deployment's handles: a request is pushed
//! there (or answered 503 past the queue's bound) by the caller, and wakes the router only
//! while a replica has room. While every replica is busy, requests gather without a task wake
//! each, and the next `Done` sends them on together.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ray::{ActorHandle, RayError};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::ServeError;
use crate::deployment::{Deployment, Factory, Logic, Options};
use crate::http::{Request, Response};
use crate::metrics::DeploymentStats;

/// How often an autoscaled deployment looks at its load.
const AUTOSCALE_PERIOD: Duration = Duration::from_millis(100);

/// A request waiting for its answer.
pub(crate) struct Job {
    request: Request,
    reply: oneshot::Sender<Result<Response, ServeError>>,
    arrived: Instant,
}

/// A replica that is up.
pub(crate) struct Replica {
    id: u64,
    actor: ActorHandle<Logic>,
    /// Requests it holds (sent, not answered).
    ongoing: usize,
    /// Calls it holds (one per batch).
    calls: usize,
    /// Being retired (downscaled or redeployed): takes no new requests, killed when idle.
    draining: bool,
    /// Restarts counted so far.
    restarts: u32,
}

impl Replica {
    /// Whether it has room for one more call of `n` requests.
    fn takes(&self, options: &Options, n: usize) -> bool {
        let max_calls = if options.batched {
            options.max_concurrent_batches
        } else {
            usize::MAX
        };
        !self.draining && self.ongoing + n <= options.max_ongoing() && self.calls < max_calls
    }

    /// Stops it now.
    pub(crate) fn kill(&self) {
        self.actor.kill();
    }
}

/// A deployment's queue of requests waiting for a replica, shared by its handles and its
/// router.
pub(crate) struct Inbox {
    state: Mutex<InboxState>,
    /// Set by the router while a new request could go at once (a replica has room): a submit
    /// then wakes it. Clear while every replica is busy.
    listening: AtomicBool,
    wake: Notify,
}

struct InboxState {
    jobs: VecDeque<Job>,
    /// `max_queued_requests`.
    limit: usize,
    /// The router has stopped: requests get `Stopped`.
    closed: bool,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Inbox({} queued)", self.len())
    }
}

impl Inbox {
    pub(crate) fn new(limit: usize) -> Inbox {
        Inbox {
            state: Mutex::new(InboxState {
                jobs: VecDeque::new(),
                limit,
                closed: false,
            }),
            listening: AtomicBool::new(true),
            wake: Notify::new(),
        }
    }

    fn len(&self) -> usize {
        self.state.lock().jobs.len()
    }
}

pub(crate) enum Msg {
    Done { replica: u64, n: usize, died: bool },
    Spawned(Result<Replica, String>),
    Redeploy(Deployment, Vec<Replica>),
    Stop(oneshot::Sender<()>),
}

/// A number no other replica of this process has.
pub(crate) fn next_replica_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Starts replica number `id` of a deployment and waits until its constructor has run.
pub(crate) fn spawn_replica(
    rt: &ray::Runtime,
    options: &Options,
    factory: &Factory,
    id: u64,
) -> Result<Replica, String> {
    let f = Arc::clone(factory);
    let actor = rt
        .actor(move || f())
        .num_cpus(options.num_cpus)
        .max_restarts(u32::MAX)
        .name(format!("{}#{id}", options.name))
        .spawn()
        .map_err(|e| e.to_string())?;
    actor
        .call(|_: &mut Logic| ())
        .get()
        .map_err(|e| format!("replica {id} did not start: {e}"))?;
    Ok(Replica {
        id,
        actor,
        ongoing: 0,
        calls: 0,
        draining: false,
        restarts: 0,
    })
}

/// A handle to a deployment: calls it without HTTP (Ray's `DeploymentHandle`), from a
/// replica of another deployment or from anywhere else.
#[derive(Clone, Debug)]
pub struct DeploymentHandle {
    pub(crate) name: Arc<str>,
    pub(crate) tx: mpsc::UnboundedSender<Msg>,
    pub(crate) inbox: Arc<Inbox>,
    pub(crate) stats: Arc<DeploymentStats>,
}

impl DeploymentHandle {
    /// The deployment's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn submit(
        &self,
        request: Request,
    ) -> Result<oneshot::Receiver<Result<Response, ServeError>>, ServeError> {
        let (reply, rx) = oneshot::channel();
        let arrived = Instant::now();
        {
            let mut state = self.inbox.state.lock();
            if state.closed {
                return Err(ServeError::Stopped(self.name.to_string()));
            }
            if state.jobs.len() >= state.limit {
                drop(state);
                self.stats.record(503, arrived.elapsed());
                return Err(ServeError::Overloaded(self.name.to_string()));
            }
            state.jobs.push_back(Job {
                request,
                reply,
                arrived,
            });
            self.stats.queued.store(state.jobs.len(), Ordering::Relaxed);
        }
        // Pairs with the router's store-then-look in `listen`: either it sees this request or
        // this sees it listening.
        if self.inbox.listening.load(Ordering::SeqCst) {
            self.inbox.wake.notify_one();
        }
        Ok(rx)
    }

    /// Sends `request` and waits for the answer (blocking: for replicas and other threads;
    /// async code uses [`call_async`](DeploymentHandle::call_async)).
    pub fn call(&self, request: Request) -> Result<Response, ServeError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(ServeError::Invalid(
                "DeploymentHandle::call blocks its thread; in async code use call_async".into(),
            ));
        }
        let rx = self.submit(request)?;
        rx.blocking_recv()
            .unwrap_or_else(|_| Err(ServeError::Stopped(self.name.to_string())))
    }

    /// Sends `request` and awaits the answer.
    pub async fn call_async(&self, request: Request) -> Result<Response, ServeError> {
        let rx = self.submit(request)?;
        rx.await
            .unwrap_or_else(|_| Err(ServeError::Stopped(self.name.to_string())))
    }
}

pub(crate) struct Router {
    options: Options,
    factory: Factory,
    rt: ray::Runtime,
    replicas: Vec<Replica>,
    inbox: Arc<Inbox>,
    tx: mpsc::UnboundedSender<Msg>,
    stats: Arc<DeploymentStats>,
    /// Replicas being started for the autoscaler or to replace dead ones.
    starting: usize,
    /// Since when the autoscaler has wanted more (or fewer) replicas.
    want_more_since: Option<Instant>,
    want_fewer_since: Option<Instant>,
    stopping: Option<oneshot::Sender<()>>,
}

impl Drop for Router {
    /// However the router ends (stopped, or its executor shut down under it), requests still
    /// queued, and any pushed later, are refused rather than left waiting.
    fn drop(&mut self) {
        let late: Vec<Job> = {
            let mut state = self.inbox.state.lock();
            state.closed = true;
            state.jobs.drain(..).collect()
        };
        for job in late {
            let _ = job
                .reply
                .send(Err(ServeError::Stopped(self.options.name.clone())));
        }
    }
}

impl Router {
    pub(crate) fn new(
        d: Deployment,
        replicas: Vec<Replica>,
        rt: ray::Runtime,
        tx: mpsc::UnboundedSender<Msg>,
        inbox: Arc<Inbox>,
        stats: Arc<DeploymentStats>,
    ) -> Router {
        stats.replicas.store(replicas.len(), Ordering::Relaxed);
        Router {
            options: d.options,
            factory: d.factory,
            rt,
            replicas,
            inbox,
            tx,
            stats,
            starting: 0,
            want_more_since: None,
            want_fewer_since: None,
            stopping: None,
        }
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut tick = tokio::time::interval(AUTOSCALE_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // A deadline already past means the batch waits for a replica with room, which
            // a `Done` message announces: polling a past timer would spin meanwhile.
            let deadline = self.batch_deadline().filter(|d| *d > Instant::now());
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(m) => self.handle(m),
                    None => break,
                },
                () = self.inbox.wake.notified() => {}
                _ = sleep_until(deadline), if deadline.is_some() => {}
                _ = tick.tick(), if self.options.autoscaling.is_some() => self.autoscale(),
            }
            // Take every message already there before dispatching, so batches fill.
            while let Ok(m) = rx.try_recv() {
                self.handle(m);
            }
            let left = self.dispatch();
            self.retire_idle();
            self.listen(left);
            if self.stopping.is_some() && left == 0 && self.ongoing() == 0 {
                break;
            }
        }
        for r in self.replicas.drain(..) {
            r.actor.kill();
        }
        self.stats.replicas.store(0, Ordering::Relaxed);
        if let Some(done) = self.stopping.take() {
            let _ = done.send(());
        }
    }

    fn ongoing(&self) -> usize {
        self.replicas.iter().map(|r| r.ongoing).sum()
    }

    /// Asks to be woken by new requests while one could be sent at once; `left` is what
    /// `dispatch` left in the queue.
    fn listen(&self, left: usize) {
        let room = self.replicas.iter().any(|r| r.takes(&self.options, 1));
        self.inbox.listening.store(room, Ordering::SeqCst);
        // A request pushed since `dispatch` looked, while the flag was still clear.
        if room && self.inbox.len() > left {
            self.inbox.wake.notify_one();
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Done { replica, n, died } => {
                if let Some(i) = self.replicas.iter().position(|r| r.id == replica) {
                    let r = &mut self.replicas[i];
                    r.ongoing = r.ongoing.saturating_sub(n);
                    r.calls = r.calls.saturating_sub(1);
                    let restarts = r.actor.num_restarts();
                    if restarts > r.restarts {
                        self.stats
                            .restarts
                            .fetch_add(u64::from(restarts - r.restarts), Ordering::Relaxed);
                        r.restarts = restarts;
                    }
                    if died || r.actor.is_dead() {
                        // Its restarts ran out or its constructor failed: replace it.
                        let dead = self.replicas.remove(i);
                        if !dead.draining && self.stopping.is_none() {
                            self.start_replica();
                        }
                    }
                }
            }
            Msg::Spawned(result) => {
                self.starting = self.starting.saturating_sub(1);
                match result {
                    Ok(r) if self.stopping.is_none() => self.replicas.push(r),
                    Ok(r) => r.actor.kill(),
                    Err(e) => eprintln!("serve: deployment {:?}: {e}", self.options.name),
                }
            }
            Msg::Redeploy(d, fresh) => {
                for r in &mut self.replicas {
                    r.draining = true;
                }
                self.options = d.options;
                self.factory = d.factory;
                self.inbox.state.lock().limit = self.options.max_queued_requests;
                self.replicas.extend(fresh);
            }
            Msg::Stop(done) => self.stopping = Some(done),
        }
        self.publish();
    }

    fn publish(&self) {
        let live = self.replicas.iter().filter(|r| !r.draining).count();
        self.stats.replicas.store(live, Ordering::Relaxed);
        self.stats.queued.store(self.inbox.len(), Ordering::Relaxed);
        self.stats.ongoing.store(self.ongoing(), Ordering::Relaxed);
    }

    /// Starts one more replica in the background.
    fn start_replica(&mut self) {
        self.starting += 1;
        let id = next_replica_id();
        let (rt, options, factory, tx) = (
            self.rt.clone(),
            self.options.clone(),
            Arc::clone(&self.factory),
            self.tx.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let _ = tx.send(Msg::Spawned(spawn_replica(&rt, &options, &factory, id)));
        });
    }

    /// Requests a replica may take in one call, and whether a smaller batch must wait.
    fn cap(&self) -> usize {
        if self.options.batched {
            self.options
                .max_batch_size
                .min(self.options.max_ongoing())
                .max(1)
        } else {
            1
        }
    }

    /// When a partial batch must go even if it is not full.
    fn batch_deadline(&self) -> Option<Instant> {
        let state = self.inbox.state.lock();
        self.deadline_of(&state.jobs)
    }

    fn deadline_of(&self, jobs: &VecDeque<Job>) -> Option<Instant> {
        let first = jobs.front()?;
        (self.options.batched && jobs.len() < self.cap())
            .then(|| first.arrived + self.options.batch_wait_timeout)
    }

    /// Sends what it can of the queue to replicas with room; returns how many requests it left.
    fn dispatch(&mut self) -> usize {
        let cap = self.cap();
        let mut state = self.inbox.state.lock();
        while !state.jobs.is_empty() {
            let n = state.jobs.len().min(cap);
            if n < cap
                && self.stopping.is_none()
                && self
                    .deadline_of(&state.jobs)
                    .is_some_and(|d| Instant::now() < d)
            {
                break;
            }
            let options = &self.options;
            let Some(r) = self
                .replicas
                .iter_mut()
                .filter(|r| r.takes(options, n))
                .min_by_key(|r| r.ongoing)
            else {
                break;
            };
            r.ongoing += n;
            r.calls += 1;
            let jobs: Vec<Job> = state.jobs.drain(..n).collect();
            let (id, actor, tx, stats) = (
                r.id,
                r.actor.clone(),
                self.tx.clone(),
                Arc::clone(&self.stats),
            );
            let name = self.options.name.clone();
            stats.batches.fetch_add(1, Ordering::Relaxed);
            stats
                .batched_requests
                .fetch_add(n as u64, Ordering::Relaxed);
            tokio::spawn(serve_call(name, id, actor, jobs, tx, stats));
        }
        let left = state.jobs.len();
        drop(state);
        self.publish();
        left
    }

    /// Kills retired replicas that hold no requests.
    fn retire_idle(&mut self) {
        self.replicas.retain(|r| {
            let keep = !(r.draining && r.ongoing == 0);
            if !keep {
                r.actor.kill();
            }
            keep
        });
    }

    /// Ray Serve's rule: replicas wanted = ceil((queued + ongoing) / target), within bounds,
    /// after the load has asked for it for the up- or down-scale delay.
    fn autoscale(&mut self) {
        let Some(a) = self.options.autoscaling.clone() else {
            return;
        };
        if self.stopping.is_some() {
            return;
        }
        let live = self.replicas.iter().filter(|r| !r.draining).count() + self.starting;
        let load = (self.inbox.len() + self.ongoing()) as f64;
        let wanted = ((load / a.target_ongoing_requests).ceil() as usize)
            .clamp(a.min_replicas, a.max_replicas);
        let now = Instant::now();
        if wanted > live {
            self.want_fewer_since = None;
            let since = *self.want_more_since.get_or_insert(now);
            if now - since >= a.upscale_delay {
                for _ in live..wanted {
                    self.start_replica();
                }
                self.want_more_since = None;
            }
        } else if wanted < live {
            self.want_more_since = None;
            let since = *self.want_fewer_since.get_or_insert(now);
            if now - since >= a.downscale_delay {
                // Retire the least-loaded replicas that are up.
                let mut up: Vec<usize> = (0..self.replicas.len())
                    .filter(|&i| !self.replicas[i].draining)
                    .collect();
                up.sort_by_key(|&i| self.replicas[i].ongoing);
                for &i in up.iter().take(live - wanted) {
                    self.replicas[i].draining = true;
                }
                self.want_fewer_since = None;
            }
        } else {
            self.want_more_since = None;
            self.want_fewer_since = None;
        }
        // Floor: replicas lost with nothing starting.
        let live = self.replicas.iter().filter(|r| !r.draining).count() + self.starting;
        for _ in live..a.min_replicas {
            self.start_replica();
        }
        self.publish();
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(d.into()).await;
    }
}

/// Runs one call on a replica and answers its requests.
async fn serve_call(
    name: String,
    replica: u64,
    actor: ActorHandle<Logic>,
    jobs: Vec<Job>,
    tx: mpsc::UnboundedSender<Msg>,
    stats: Arc<DeploymentStats>,
) {
    let n = jobs.len();
    let (requests, waiting): (Vec<Request>, Vec<_>) = jobs
        .into_iter()
        .map(|j| (j.request, (j.reply, j.arrived)))
        .unzip();
    let result = actor
        .call(move |logic: &mut Logic| logic.run(requests))
        .get_async()
        .await;
    let died = matches!(result, Err(RayError::ActorDied { .. }));
    match result {
        Ok(responses) => {
            let now = Instant::now();
            // The result is shared only if someone else holds it: moved out, not copied.
            let responses = Arc::try_unwrap(responses).unwrap_or_else(|shared| (*shared).clone());
            for ((reply, arrived), resp) in waiting.into_iter().zip(responses) {
                stats.record(resp.status, now.saturating_duration_since(arrived));
                let _ = reply.send(Ok(resp));
            }
        }
        Err(e) => {
            let message = match e {
                RayError::ActorTaskFailed { message, .. } => {
                    format!("the replica panicked: {message}")
                }
                other => other.to_string(),
            };
            let now = Instant::now();
            for (reply, arrived) in waiting {
                stats.record(500, now.saturating_duration_since(arrived));
                let _ = reply.send(Err(ServeError::ReplicaFailed {
                    deployment: name.clone(),
                    message: message.clone(),
                }));
            }
        }
    }
    let _ = tx.send(Msg::Done { replica, n, died });
}
