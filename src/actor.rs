//! Actors: state that lives on its own thread, driven by method calls that run one at a
//! time in the order a caller submitted them.
//!
//! Each actor is a dedicated OS thread that owns the state and runs the methods, fed by a
//! channel that is its mailbox (one caller's calls run in the order it made them), paired
//! with a ractor actor that holds its lifecycle: its resources, its place in the runtime's
//! actor list, kill and shutdown. CPU-bound methods never block the async executor, and a
//! call goes straight to the thread, with no hop through the executor. A method that panics
//! fails its own call; the thread then rebuilds the state from the constructor while
//! restarts remain (`max_restarts`), and the actor dies after that: later calls fail with
//! [`RayError::ActorDied`].

use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use parking_lot::Mutex;
use ractor::{ActorProcessingErr, ActorRef, ActorRuntime};
use tokio::sync::oneshot;

use crate::error::panic_message;
use crate::object::{Abandon, ObjectRef, Orphaned};
use crate::scheduler::{Grant, Lease, LeaseGuard, Scheduler};
use crate::{CPU, GPU, MEMORY, RayError, Resources, Runtime};

type Factory<A> = Arc<dyn Fn() -> A + Send + Sync>;
/// A method call, wrapped so that it fills its own result; `Err` carries a panic message.
type Method<A> = Box<dyn FnOnce(&mut A) -> Result<(), String> + Send>;

/// Identity and fate of an actor, shared by its handles and its process.
pub(crate) struct ActorShared {
    id: u64,
    name: String,
    class: String,
    demand: Resources,
    max_restarts: u32,
    restarts: AtomicU32,
    /// Its constructor has run (it is no longer pending).
    started: AtomicBool,
    death: Mutex<Option<String>>,
    /// The result of the call running now, failed if the actor dies under it.
    running: Mutex<Option<Arc<dyn Abandon>>>,
    /// Where its failures are logged.
    sched: Arc<Scheduler>,
}

impl ActorShared {
    fn died(&self) -> RayError {
        RayError::ActorDied {
            actor: self.name.clone(),
            cause: self
                .death
                .lock()
                .clone()
                .unwrap_or_else(|| "the actor stopped".to_string()),
        }
    }

    pub(crate) fn mark_dead(&self, cause: &str) {
        self.death.lock().get_or_insert_with(|| cause.to_string());
    }

    fn is_dead(&self) -> bool {
        self.death.lock().is_some()
    }

    /// The actor as the state API lists it.
    pub(crate) fn info(&self) -> crate::state::ActorInfo {
        use crate::state::ActorState;
        let death = self.death.lock().clone();
        crate::state::ActorInfo {
            actor_id: format!("{:016x}", self.id),
            class_name: self.class.clone(),
            name: self.name.clone(),
            state: if death.is_some() {
                ActorState::Dead
            } else if self.started.load(Ordering::Acquire) {
                ActorState::Alive
            } else {
                ActorState::PendingCreation
            },
            node_id: "local".to_string(),
            num_restarts: self.restarts.load(Ordering::Acquire),
            max_restarts: self.max_restarts,
            resources: self
                .demand
                .iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            death_cause: death,
        }
    }

    fn failed(&self, message: &str) {
        self.sched
            .state
            .failure("actor", &self.name, message.to_string());
    }
}

/// Work for an actor's thread.
enum Exec<A> {
    /// Run one method; the abandoner fails its result if the actor dies under it.
    Run(Method<A>, Option<Arc<dyn Abandon>>),
    /// The lifecycle side stopped (kill, death or shutdown): exit.
    Stop,
}

/// Builds the state, or says why the constructor failed.
fn construct<A>(factory: &Factory<A>) -> Result<A, String> {
    catch_unwind(AssertUnwindSafe(|| factory()))
        .map_err(|p| format!("constructor panicked: {}", panic_message(&*p)))
}

/// What an actor's thread runs with.
struct ThreadArgs<A> {
    factory: Factory<A>,
    jobs: crossbeam_channel::Receiver<Exec<A>>,
    shared: Arc<ActorShared>,
    /// Stops the lifecycle side (freeing the resources) when the actor dies here.
    myself: ActorRef<Lifecycle>,
    /// The first construction's outcome.
    built: oneshot::Sender<Result<(), String>>,
}

/// The thread that owns an actor's state: builds it, runs the calls in mailbox order,
/// rebuilds it after a panic while restarts remain. Returning drops the mailbox's receiving
/// end, which fails every call still queued and every later one.
fn actor_thread<A: 'static>(args: ThreadArgs<A>) {
    let ThreadArgs {
        factory,
        jobs,
        shared,
        myself,
        built,
    } = args;
    let mut state = match construct(&factory) {
        Ok(a) => a,
        Err(cause) => {
            shared.failed(&cause);
            shared.mark_dead(&cause);
            let _ = built.send(Err(cause));
            return;
        }
    };
    let _ = built.send(Ok(()));
    for job in &jobs {
        let Exec::Run(method, abandon) = job else {
            break;
        };
        if shared.is_dead() {
            break;
        }
        *shared.running.lock() = abandon;
        let outcome = method(&mut state);
        shared.running.lock().take();
        let Err(panic) = outcome else {
            continue;
        };
        // The method panicked: its state may be broken, so rebuild it or die.
        shared.failed(&panic);
        let used = shared.restarts.load(Ordering::Acquire);
        if used < shared.max_restarts {
            shared.restarts.store(used + 1, Ordering::Release);
            match construct(&factory) {
                Ok(a) => state = a,
                Err(cause) => {
                    shared.failed(&cause);
                    shared.mark_dead(&format!("restart failed: {cause}"));
                    break;
                }
            }
        } else {
            shared.mark_dead(&format!(
                "a method panicked with no restarts left (max_restarts = {}): {panic}",
                shared.max_restarts
            ));
            break;
        }
    }
    drop(jobs);
    myself.stop(None);
}

/// The lifecycle side takes no messages: calls go to the thread's mailbox directly.
pub(crate) enum Lifecycle {}

// Local only: never serialised (ractor's `cluster` feature asks every message to say so).
impl ractor::Message for Lifecycle {}

pub(crate) struct StartArgs<A> {
    factory: Factory<A>,
    jobs: crossbeam_channel::Receiver<Exec<A>>,
    /// Also how the start reaches the actor's shared state.
    stopper: Stopper<A>,
    lease: oneshot::Receiver<LeaseGuard>,
}

/// Held by the lifecycle side from the moment it starts: however that side ends (killed,
/// dead, the runtime shut down, even while it is still starting: a kill then drops its start
/// with this in it), the actor's running call fails now, its queued calls fail, and its
/// thread exits once the running method returns.
struct Stopper<A> {
    stop: crossbeam_channel::Sender<Exec<A>>,
    shared: Arc<ActorShared>,
}

impl<A> Drop for Stopper<A> {
    fn drop(&mut self) {
        self.shared.mark_dead("the actor stopped");
        if let Some(call) = self.shared.running.lock().take() {
            call.abandon(self.shared.died());
        }
        let _ = self.stop.send(Exec::Stop);
    }
}

pub(crate) struct ActorState<A> {
    // Dropped first: the thread is told to stop before the resources go back.
    _stopper: Stopper<A>,
    // Held for the actor's life; dropping the state gives the resources back.
    _lease: LeaseGuard,
}

/// The ractor side of an actor: its resources and lifecycle.
pub(crate) struct ActorProcess<A>(PhantomData<fn() -> A>);

impl<A: 'static> ractor::Actor for ActorProcess<A> {
    type Msg = Lifecycle;
    type State = ActorState<A>;
    type Arguments = StartArgs<A>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: StartArgs<A>,
    ) -> Result<ActorState<A>, ActorProcessingErr> {
        let lease = match args.lease.await {
            Ok(l) => l,
            Err(_) => {
                args.stopper
                    .shared
                    .mark_dead("the runtime shut down before the actor started");
                return Err("no resources granted".into());
            }
        };
        let (built, was_built) = oneshot::channel();
        let thread = ThreadArgs {
            factory: Arc::clone(&args.factory),
            jobs: args.jobs,
            shared: Arc::clone(&args.stopper.shared),
            myself,
            built,
        };
        let spawned = std::thread::Builder::new()
            .name(format!("ray-actor-{}", args.stopper.shared.name))
            .spawn(move || actor_thread(thread));
        if let Err(e) = spawned {
            args.stopper
                .shared
                .mark_dead(&format!("could not start its thread: {e}"));
            return Err(e.into());
        }
        match was_built.await {
            Ok(Ok(())) => {}
            Ok(Err(cause)) => return Err(cause.into()),
            Err(_) => {
                args.stopper.shared.mark_dead("the actor thread exited");
                return Err("the actor thread exited".into());
            }
        }
        args.stopper.shared.started.store(true, Ordering::Release);
        Ok(ActorState {
            _stopper: args.stopper,
            _lease: lease,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Lifecycle,
        _state: &mut ActorState<A>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {}
    }
}

/// A handle to an actor: clone it, send it into tasks and other actors, call its methods.
pub struct ActorHandle<A> {
    shared: Arc<ActorShared>,
    actor: ActorRef<Lifecycle>,
    /// The thread's mailbox.
    jobs: crossbeam_channel::Sender<Exec<A>>,
}

impl<A> Clone for ActorHandle<A> {
    fn clone(&self) -> Self {
        ActorHandle {
            shared: Arc::clone(&self.shared),
            actor: self.actor.clone(),
            jobs: self.jobs.clone(),
        }
    }
}

impl<A> fmt::Debug for ActorHandle<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorHandle({})", self.shared.name)
    }
}

impl<A: 'static> ActorHandle<A> {
    /// Calls a method: `f` runs on the actor's thread with its state, after every call this
    /// caller submitted before it. Returns a reference to the result at once.
    pub fn call<R, F>(&self, f: F) -> ObjectRef<R>
    where
        F: FnOnce(&mut A) -> R + Send + 'static,
        R: Send + Sync + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let (result, promise) =
            ObjectRef::pending(Orphaned::Actor(Arc::new(move || shared.died())));
        let actor = self.shared.name.clone();
        let abandon = promise.abandoner();
        let method: Method<A> =
            Box::new(
                move |state: &mut A| match catch_unwind(AssertUnwindSafe(|| f(state))) {
                    Ok(v) => {
                        promise.fulfil(Ok(v));
                        Ok(())
                    }
                    Err(p) => {
                        let message = panic_message(&*p);
                        promise.fulfil(Err(RayError::ActorTaskFailed {
                            actor,
                            message: message.clone(),
                        }));
                        Err(message)
                    }
                },
            );
        // A dead actor's mailbox refuses the call (its thread has exited); dropping the call
        // fails its result, as does the thread when it finds the actor dead.
        let _ = self.jobs.send(Exec::Run(method, abandon));
        result
    }

    /// Kills the actor now: queued calls fail with [`RayError::ActorDied`] and it is not
    /// restarted. A method already running finishes on its thread, unobserved.
    pub fn kill(&self) {
        self.shared.mark_dead("killed");
        self.actor.kill();
    }

    /// The actor's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// How many times the actor has been rebuilt after a failure.
    pub fn num_restarts(&self) -> u32 {
        self.shared.restarts.load(Ordering::Acquire)
    }

    /// Whether the actor is dead (it will not run another call).
    pub fn is_dead(&self) -> bool {
        self.shared.is_dead()
    }
}

/// An actor being configured; [`spawn`](ActorBuilder::spawn) starts it.
#[must_use = "an actor starts only once `.spawn()` is called"]
pub struct ActorBuilder<'rt, A> {
    rt: &'rt Runtime,
    factory: Factory<A>,
    demand: Resources,
    invalid: Option<RayError>,
    max_restarts: u32,
    name: Option<String>,
    class: Option<String>,
}

impl<A> fmt::Debug for ActorBuilder<'_, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActorBuilder")
            .field("name", &self.name)
            .field("resources", &self.demand)
            .field("max_restarts", &self.max_restarts)
            .finish()
    }
}

impl<'rt, A: 'static> ActorBuilder<'rt, A> {
    pub(crate) fn new(rt: &'rt Runtime, factory: Factory<A>) -> Self {
        ActorBuilder {
            rt,
            factory,
            demand: Resources::new(),
            invalid: None,
            max_restarts: 0,
            name: None,
            class: None,
        }
    }

    /// CPUs the actor holds for its whole life (default 0, as Ray's actors once placed).
    pub fn num_cpus(self, n: f64) -> Self {
        self.resource(CPU, n)
    }

    /// GPUs the actor holds for its whole life.
    pub fn num_gpus(self, n: f64) -> Self {
        self.resource(GPU, n)
    }

    /// Bytes of memory the actor reserves for its whole life.
    pub fn memory(self, bytes: u64) -> Self {
        self.resource(MEMORY, bytes as f64)
    }

    /// An amount of any resource, built-in or custom.
    pub fn resource(mut self, name: &str, amount: f64) -> Self {
        if let Err(e) = self.demand.set(name, amount) {
            self.invalid.get_or_insert(e);
        }
        self
    }

    /// How many times the actor is rebuilt after a method panics (default 0).
    pub fn max_restarts(mut self, n: u32) -> Self {
        self.max_restarts = n;
        self
    }

    /// A name for errors, logs and its thread.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The class the state API reports (default: the state's type name).
    pub(crate) fn class_name(mut self, class: impl Into<String>) -> Self {
        self.class = Some(class.into());
        self
    }

    /// Starts the actor and returns its handle at once; calls queue until its resources are
    /// granted and its constructor has run. Errors now when the resources can never fit.
    pub fn spawn(self) -> Result<ActorHandle<A>, RayError> {
        if let Some(e) = self.invalid {
            return Err(e);
        }
        let sched = self.rt.scheduler();
        if sched.is_shut_down() {
            return Err(RayError::Shutdown);
        }
        sched.check_feasible(&self.demand)?;
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // `my::Policy<f32>` is a `Policy`.
        let full = std::any::type_name::<A>();
        let short = full[..full.find('<').unwrap_or(full.len())]
            .rsplit("::")
            .next()
            .unwrap_or("Actor");
        let class = self.class.unwrap_or_else(|| short.to_string());
        let shared = Arc::new(ActorShared {
            id: n,
            name: self.name.unwrap_or_else(|| format!("{short}#{n}")),
            class,
            demand: self.demand.clone(),
            max_restarts: self.max_restarts,
            restarts: AtomicU32::new(0),
            started: AtomicBool::new(false),
            death: Mutex::new(None),
            running: Mutex::new(None),
            sched: Arc::clone(sched),
        });
        let (lease_tx, lease_rx) = oneshot::channel();
        // Calls queue here until the resources are granted and the constructor has run.
        let (jobs, mailbox) = crossbeam_channel::unbounded();
        let args = StartArgs {
            factory: self.factory,
            jobs: mailbox,
            stopper: Stopper {
                stop: jobs.clone(),
                shared: Arc::clone(&shared),
            },
            lease: lease_rx,
        };
        let (actor, _started) = {
            let _enter = self.rt.executor().enter();
            ActorRuntime::spawn_instant(None, ActorProcess::<A>(PhantomData), args)
                .map_err(|e| RayError::Startup(e.to_string()))?
        };
        self.rt
            .register_actor(Arc::clone(&shared), actor.get_cell());
        sched.submit(Lease {
            demand: self.demand,
            grant: Grant::Hand(Box::new(move |guard| {
                // If the actor is already gone the guard drops here and frees the resources.
                let _ = lease_tx.send(guard);
            })),
        });
        Ok(ActorHandle {
            shared,
            actor,
            jobs,
        })
    }
}
