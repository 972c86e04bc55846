//! Actors: state that lives on its own thread, driven by method calls that run one at a
//! time in the order a caller submitted them.
//!
//! Each actor is a ractor actor (its mailbox, ordering and lifecycle) paired with a dedicated
//! OS thread that owns the state and runs the methods, so CPU-bound methods never block the
//! async executor. A method that panics fails its own call; the actor is then rebuilt from
//! its constructor while restarts remain (`max_restarts`), and dies after that: later calls
//! fail with [`RayError::ActorDied`].

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
    /// Build (or rebuild) the state from the constructor.
    Build(oneshot::Sender<Result<(), String>>),
    /// Run one method.
    Run(Method<A>, oneshot::Sender<Result<(), String>>),
}

/// The thread that owns an actor's state.
fn actor_thread<A: 'static>(factory: Factory<A>, jobs: crossbeam_channel::Receiver<Exec<A>>) {
    let mut state: Option<A> = None;
    for job in jobs {
        match job {
            Exec::Build(done) => {
                state = None;
                let built = catch_unwind(AssertUnwindSafe(|| factory()));
                let _ = done.send(match built {
                    Ok(a) => {
                        state = Some(a);
                        Ok(())
                    }
                    Err(p) => Err(format!("constructor panicked: {}", panic_message(&*p))),
                });
            }
            Exec::Run(method, done) => {
                let out = match state.as_mut() {
                    Some(a) => method(a),
                    None => Err("the actor has no state".to_string()),
                };
                let _ = done.send(out);
            }
        }
    }
}

/// The message an actor's mailbox carries: the method, and its result's slot so that a kill
/// can fail a call that is running.
pub(crate) struct Call<A>(Method<A>, Option<Arc<dyn Abandon>>);

// Local only: never serialised (ractor's `cluster` feature asks every message to say so).
impl<A: 'static> ractor::Message for Call<A> {}

pub(crate) struct StartArgs<A> {
    factory: Factory<A>,
    lease: oneshot::Receiver<LeaseGuard>,
    shared: Arc<ActorShared>,
    max_restarts: u32,
}

pub(crate) struct ActorState<A> {
    jobs: crossbeam_channel::Sender<Exec<A>>,
    shared: Arc<ActorShared>,
    max_restarts: u32,
    /// The result of the call running now, failed if the actor dies under it.
    running: Option<Arc<dyn Abandon>>,
    // Held for the actor's life; dropping the state gives the resources back.
    _lease: LeaseGuard,
}

impl<A> Drop for ActorState<A> {
    fn drop(&mut self) {
        if let Some(call) = self.running.take() {
            call.abandon(self.shared.died());
        }
    }
}

async fn build<A>(jobs: &crossbeam_channel::Sender<Exec<A>>) -> Result<(), String> {
    let (tx, rx) = oneshot::channel();
    jobs.send(Exec::Build(tx))
        .map_err(|_| "the actor thread exited".to_string())?;
    rx.await
        .unwrap_or_else(|_| Err("the actor thread exited".to_string()))
}

/// The ractor side of an actor: mailbox, ordering, restarts.
pub(crate) struct ActorProcess<A>(PhantomData<fn() -> A>);

impl<A: 'static> ractor::Actor for ActorProcess<A> {
    type Msg = Call<A>;
    type State = ActorState<A>;
    type Arguments = StartArgs<A>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: StartArgs<A>,
    ) -> Result<ActorState<A>, ActorProcessingErr> {
        let lease = match args.lease.await {
            Ok(l) => l,
            Err(_) => {
                args.shared
                    .mark_dead("the runtime shut down before the actor started");
                return Err("no resources granted".into());
            }
        };
        let (jobs, rx) = crossbeam_channel::unbounded();
        let factory = Arc::clone(&args.factory);
        let spawned = std::thread::Builder::new()
            .name(format!("ray-actor-{}", args.shared.name))
            .spawn(move || actor_thread(factory, rx));
        if let Err(e) = spawned {
            args.shared
                .mark_dead(&format!("could not start its thread: {e}"));
            return Err(e.into());
        }
        if let Err(cause) = build(&jobs).await {
            args.shared.failed(&cause);
            args.shared.mark_dead(&cause);
            return Err(cause.into());
        }
        args.shared.started.store(true, Ordering::Release);
        Ok(ActorState {
            jobs,
            shared: args.shared,
            max_restarts: args.max_restarts,
            running: None,
            _lease: lease,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        Call(method, result): Call<A>,
        state: &mut ActorState<A>,
    ) -> Result<(), ActorProcessingErr> {
        let (tx, rx) = oneshot::channel();
        if state.jobs.send(Exec::Run(method, tx)).is_err() {
            state.shared.mark_dead("the actor thread exited");
            myself.stop(None);
            return Ok(());
        }
        state.running = result;
        let outcome = rx.await;
        state.running = None;
        let Ok(Err(panic)) = outcome else {
            return Ok(());
        };
        // The method panicked: its state may be broken, so rebuild it or die.
        state.shared.failed(&panic);
        let used = state.shared.restarts.load(Ordering::Acquire);
        if used < state.max_restarts {
            state.shared.restarts.store(used + 1, Ordering::Release);
            if let Err(cause) = build(&state.jobs).await {
                state.shared.failed(&cause);
                state.shared.mark_dead(&format!("restart failed: {cause}"));
                myself.stop(None);
            }
        } else {
            state.shared.mark_dead(&format!(
                "a method panicked with no restarts left (max_restarts = {}): {panic}",
                state.max_restarts
            ));
            myself.stop(None);
        }
        Ok(())
    }
}

/// A handle to an actor: clone it, send it into tasks and other actors, call its methods.
pub struct ActorHandle<A> {
    shared: Arc<ActorShared>,
    actor: ActorRef<Call<A>>,
}

impl<A> Clone for ActorHandle<A> {
    fn clone(&self) -> Self {
        ActorHandle {
            shared: Arc::clone(&self.shared),
            actor: self.actor.clone(),
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
        // A dead actor's mailbox refuses the call; dropping it fails its result.
        let _ = self.actor.send_message(Call(method, abandon));
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
        self.shared.death.lock().is_some()
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
            sched: Arc::clone(sched),
        });
        let (lease_tx, lease_rx) = oneshot::channel();
        let args = StartArgs {
            factory: self.factory,
            lease: lease_rx,
            shared: Arc::clone(&shared),
            max_restarts: self.max_restarts,
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
        Ok(ActorHandle { shared, actor })
    }
}
