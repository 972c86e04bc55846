//! Objects: the results of tasks and actor calls, and values `put` into the store.
//!
//! In the embedded mode an object is an `Arc` in shared memory: an [`ObjectRef`] holds its
//! slot directly, so `get` never copies or serialises more than `T::clone`. A slot is filled
//! once, by its [`Promise`]; a promise dropped unfilled (its task was cancelled, its actor
//! died, the runtime shut down) fills the slot with the error that explains why.

use std::any::type_name;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::RayError;

/// A process-unique object id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(u64);

impl ObjectId {
    pub(crate) fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ObjectId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({:016x})", self.0)
    }
}

type Callback = Box<dyn FnOnce() + Send>;

enum State<T> {
    Pending {
        wakers: Vec<Waker>,
        callbacks: Vec<Callback>,
    },
    Ready(Result<Arc<T>, RayError>),
}

/// The shared cell behind an object.
pub(crate) struct Slot<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    /// Set once the state is `Ready`: what a waiter looks at before it sleeps on `ready`.
    filled: AtomicBool,
}

impl<T> Slot<T> {
    fn pending() -> Self {
        Slot {
            state: Mutex::new(State::Pending {
                wakers: Vec::new(),
                callbacks: Vec::new(),
            }),
            ready: Condvar::new(),
            filled: AtomicBool::new(false),
        }
    }

    /// Fills the slot; the first value wins, later ones are ignored.
    fn fill(&self, value: Result<Arc<T>, RayError>) {
        let (wakers, callbacks) = {
            let mut state = self.state.lock();
            match &mut *state {
                State::Ready(_) => return,
                State::Pending { wakers, callbacks } => {
                    let taken = (std::mem::take(wakers), std::mem::take(callbacks));
                    *state = State::Ready(value);
                    taken
                }
            }
        };
        self.filled.store(true, Ordering::Release);
        self.ready.notify_all();
        wakers.into_iter().for_each(Waker::wake);
        callbacks.into_iter().for_each(|cb| cb());
    }

    fn result(&self) -> Option<Result<Arc<T>, RayError>> {
        match &*self.state.lock() {
            State::Ready(r) => Some(r.clone()),
            State::Pending { .. } => None,
        }
    }

    fn wait(&self, timeout: Option<Duration>) -> Result<Arc<T>, RayError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        // A short answer (a remote call's reply) is usually here before a sleep would end.
        crate::spin::spin_for(crate::spin::BEFORE_SLEEP, deadline, || {
            self.filled.load(Ordering::Acquire).then_some(())
        });
        let mut state = self.state.lock();
        loop {
            if let State::Ready(r) = &*state {
                return r.clone();
            }
            match deadline {
                None => self.ready.wait(&mut state),
                Some(d) => {
                    if self.ready.wait_until(&mut state, d).timed_out() {
                        if let State::Ready(r) = &*state {
                            return r.clone();
                        }
                        return Err(RayError::Timeout(timeout.unwrap_or_default()));
                    }
                }
            }
        }
    }
}

/// Type-erased view of a slot, for waiting on objects of different types together.
pub(crate) trait Readiness: Send + Sync {
    /// Runs `cb` once the object is ready (at once if it already is).
    fn on_ready(&self, cb: Callback);
}

/// An object a task waits for before it runs (see [`TaskArgs`](crate::TaskArgs)).
pub struct Dependency(pub(crate) Arc<dyn Readiness>);

impl fmt::Debug for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Dependency")
    }
}

impl<T: Send + Sync> Readiness for Slot<T> {
    fn on_ready(&self, cb: Callback) {
        {
            let mut state = self.state.lock();
            if let State::Pending { callbacks, .. } = &mut *state {
                callbacks.push(cb);
                return;
            }
        }
        cb();
    }
}

/// A reference to an object that is, or will be, in the object store.
///
/// Cloning a reference is cheap and every clone reads the same value. References travel
/// freely into tasks, actors and other threads.
pub struct ObjectRef<T> {
    id: ObjectId,
    slot: Arc<Slot<T>>,
}

impl<T> Clone for ObjectRef<T> {
    fn clone(&self) -> Self {
        ObjectRef {
            id: self.id,
            slot: Arc::clone(&self.slot),
        }
    }
}

impl<T> fmt::Debug for ObjectRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectRef<{}>({:016x})", type_name::<T>(), self.id.0)
    }
}

impl<T: Send + Sync + 'static> ObjectRef<T> {
    /// A reference to a value that is already there (what `put` returns).
    pub(crate) fn ready(value: T) -> Self {
        let slot = Slot::pending();
        slot.fill(Ok(Arc::new(value)));
        ObjectRef {
            id: ObjectId::next(),
            slot: Arc::new(slot),
        }
    }

    /// A reference and the promise that fills it.
    pub(crate) fn pending(orphaned: Orphaned) -> (Self, Promise<T>) {
        let slot = Arc::new(Slot::pending());
        let r = ObjectRef {
            id: ObjectId::next(),
            slot: Arc::clone(&slot),
        };
        (
            r,
            Promise {
                slot: Some(slot),
                orphaned,
            },
        )
    }

    /// The object's id.
    pub fn id(&self) -> ObjectId {
        self.id
    }

    /// Whether the object is ready (computed or failed) now.
    pub fn is_ready(&self) -> bool {
        self.slot.result().is_some()
    }

    /// Blocks until the object is ready and returns a shared pointer to it.
    pub fn get_arc(&self) -> Result<Arc<T>, RayError> {
        self.slot.wait(None)
    }

    /// Like [`get_arc`](Self::get_arc), giving up after `timeout` with [`RayError::Timeout`].
    pub fn get_arc_timeout(&self, timeout: Duration) -> Result<Arc<T>, RayError> {
        self.slot.wait(Some(timeout))
    }

    /// Waits for the object without blocking a thread: an `async` `get`.
    pub fn get_async(&self) -> GetFuture<T> {
        GetFuture {
            slot: Arc::clone(&self.slot),
        }
    }

    /// This object as a dependency of a task.
    pub fn dependency(&self) -> Dependency {
        Dependency(Arc::clone(&self.slot) as Arc<dyn Readiness>)
    }
}

impl<T: Clone + Send + Sync + 'static> ObjectRef<T> {
    /// Blocks until the object is ready and returns a copy of it (Ray's `ray.get`).
    pub fn get(&self) -> Result<T, RayError> {
        self.get_arc().map(|v| T::clone(&v))
    }

    /// Like [`get`](Self::get), giving up after `timeout` with [`RayError::Timeout`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, RayError> {
        self.get_arc_timeout(timeout).map(|v| T::clone(&v))
    }
}

/// The future of [`ObjectRef::get_async`]; resolves to a shared pointer to the value.
pub struct GetFuture<T> {
    slot: Arc<Slot<T>>,
}

impl<T> fmt::Debug for GetFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GetFuture")
    }
}

impl<T> Future for GetFuture<T> {
    type Output = Result<Arc<T>, RayError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.slot.state.lock();
        match &mut *state {
            State::Ready(r) => Poll::Ready(r.clone()),
            State::Pending { wakers, .. } => {
                if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

/// What a dropped, unfilled promise reports.
#[derive(Clone)]
pub(crate) enum Orphaned {
    /// The runtime shut down before the work ran.
    Shutdown,
    /// The actor that owned the call died; the closure gives its cause at the time of drop.
    Actor(Arc<dyn Fn() -> RayError + Send + Sync>),
}

/// The write end of an object: filled exactly once, or failed on drop.
pub(crate) struct Promise<T> {
    slot: Option<Arc<Slot<T>>>,
    orphaned: Orphaned,
}

impl<T> Promise<T> {
    pub(crate) fn fulfil(mut self, value: Result<T, RayError>) {
        if let Some(slot) = self.slot.take() {
            slot.fill(value.map(Arc::new));
        }
    }
}

impl<T> Drop for Promise<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            let err = match &self.orphaned {
                Orphaned::Shutdown => RayError::Shutdown,
                Orphaned::Actor(cause) => cause(),
            };
            slot.fill(Err(err));
        }
    }
}

/// Something that can be failed from outside: a running task's result, at shutdown.
pub(crate) trait Abandon: Send + Sync {
    fn abandon(&self, err: RayError);
}

impl<T: Send + Sync> Abandon for Slot<T> {
    fn abandon(&self, err: RayError) {
        self.fill(Err(err));
    }
}

impl<T: Send + Sync + 'static> Promise<T> {
    pub(crate) fn abandoner(&self) -> Option<Arc<dyn Abandon>> {
        self.slot
            .as_ref()
            .map(|s| Arc::clone(s) as Arc<dyn Abandon>)
    }
}

/// Waits until `num_returns` of `refs` are ready or `timeout` passes (Ray's `ray.wait`).
///
/// Returns the ready references (at most `num_returns`, in the order of `refs`) and the rest.
/// A `timeout` of `None` waits as long as it takes; `num_returns` is capped at `refs.len()`.
pub fn wait<T: Send + Sync + 'static>(
    refs: &[ObjectRef<T>],
    num_returns: usize,
    timeout: Option<Duration>,
) -> (Vec<ObjectRef<T>>, Vec<ObjectRef<T>>) {
    let want = num_returns.min(refs.len());
    let counter = Arc::new((Mutex::new(0usize), Condvar::new()));
    for r in refs {
        let c = Arc::clone(&counter);
        r.dependency().0.on_ready(Box::new(move || {
            *c.0.lock() += 1;
            c.1.notify_all();
        }));
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    {
        let mut n = counter.0.lock();
        while *n < want {
            match deadline {
                None => counter.1.wait(&mut n),
                Some(d) => {
                    if counter.1.wait_until(&mut n, d).timed_out() {
                        break;
                    }
                }
            }
        }
    }
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    for r in refs {
        if ready.len() < want && r.is_ready() {
            ready.push(r.clone());
        } else {
            not_ready.push(r.clone());
        }
    }
    (ready, not_ready)
}

/// Gets every object in order; the first error is returned.
pub fn get_all<T: Clone + Send + Sync + 'static>(
    refs: &[ObjectRef<T>],
) -> Result<Vec<T>, RayError> {
    refs.iter().map(ObjectRef::get).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promise_dropped_unfilled_reports_shutdown() {
        let (r, p) = ObjectRef::<u32>::pending(Orphaned::Shutdown);
        drop(p);
        assert_eq!(r.get(), Err(RayError::Shutdown));
    }

    #[test]
    fn first_fill_wins() {
        let (r, p) = ObjectRef::<u32>::pending(Orphaned::Shutdown);
        let ab = p.abandoner().unwrap();
        p.fulfil(Ok(7));
        ab.abandon(RayError::Shutdown);
        assert_eq!(r.get(), Ok(7));
    }

    #[test]
    fn get_timeout_on_pending_object() {
        let (r, _p) = ObjectRef::<u32>::pending(Orphaned::Shutdown);
        let err = r.get_timeout(Duration::from_millis(20)).unwrap_err();
        assert!(err.is_timeout());
    }
}
