//! The local scheduler: a queue of resource leases and a pool of worker threads.
//!
//! A lease is granted when its resource demand fits in what is available; it holds those
//! resources until its [`LeaseGuard`] drops. Tasks run on worker threads (never on the async
//! executor): the pool grows to the number of tasks running at once, which resources bound.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::object::Abandon;
use crate::workers::Workers;
use crate::{RayError, Resources};

/// What to do once a lease's resources are granted.
pub(crate) enum Grant {
    /// Run this on a worker thread; the lease ends when it returns.
    Task(Box<dyn FnOnce(LeaseGuard) + Send>),
    /// Hand the lease to its owner (an actor keeps it for life). Runs on the granting thread,
    /// so it must be quick.
    Hand(Box<dyn FnOnce(LeaseGuard) + Send>),
}

pub(crate) struct Lease {
    pub(crate) demand: Resources,
    pub(crate) grant: Grant,
}

struct Inner {
    available: Resources,
    queue: VecDeque<Lease>,
    running: HashMap<u64, Arc<dyn Abandon>>,
    shutdown: bool,
}

/// Hands out resources and runs tasks.
pub(crate) struct Scheduler {
    total: Resources,
    inner: Mutex<Inner>,
    /// Task threads. An idle one sleeps at once, as before the pool was a type of its own:
    /// the look before sleeping was measured on remote calls only.
    workers: Arc<Workers>,
    next_task: AtomicU64,
    /// Task counts and failures, for the state API and the dashboard.
    pub(crate) state: crate::state::StateTable,
}

/// Resources held by a running task or a live actor; dropping it gives them back.
pub(crate) struct LeaseGuard {
    sched: Arc<Scheduler>,
    demand: Resources,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.sched.inner.lock().available.add(&self.demand);
        self.sched.dispatch();
    }
}

impl Scheduler {
    pub(crate) fn new(total: Resources) -> Arc<Self> {
        Arc::new(Scheduler {
            inner: Mutex::new(Inner {
                available: total.clone(),
                queue: VecDeque::new(),
                running: HashMap::new(),
                shutdown: false,
            }),
            total,
            workers: Workers::new("ray-worker", std::time::Duration::ZERO),
            next_task: AtomicU64::new(1),
            state: crate::state::StateTable::default(),
        })
    }

    pub(crate) fn total(&self) -> &Resources {
        &self.total
    }

    pub(crate) fn available(&self) -> Resources {
        self.inner.lock().available.clone()
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.inner.lock().shutdown
    }

    /// Errors when `demand` could never be granted, even on an idle runtime.
    pub(crate) fn check_feasible(&self, demand: &Resources) -> Result<(), RayError> {
        if self.total.contains(demand) {
            Ok(())
        } else {
            Err(RayError::Infeasible {
                requested: demand.to_string(),
                total: self.total.to_string(),
            })
        }
    }

    /// Queues a lease; it is granted as soon as its resources are free. After shutdown the
    /// lease is dropped, which fails whatever promise it carries.
    pub(crate) fn submit(self: &Arc<Self>, lease: Lease) {
        {
            let mut inner = self.inner.lock();
            if inner.shutdown {
                return;
            }
            inner.queue.push_back(lease);
        }
        self.dispatch();
    }

    /// Grants every queued lease that fits, oldest first; a large request does not hold
    /// back smaller ones behind it.
    fn dispatch(self: &Arc<Self>) {
        let mut granted = Vec::new();
        {
            let mut inner = self.inner.lock();
            if inner.shutdown {
                return;
            }
            let mut i = 0;
            while i < inner.queue.len() {
                if inner.available.contains(&inner.queue[i].demand) {
                    if let Some(lease) = inner.queue.remove(i) {
                        inner.available.subtract(&lease.demand);
                        granted.push(lease);
                    }
                } else {
                    i += 1;
                }
            }
        }
        for lease in granted {
            let guard = LeaseGuard {
                sched: Arc::clone(self),
                demand: lease.demand,
            };
            match lease.grant {
                Grant::Hand(f) => f(guard),
                Grant::Task(f) => self.workers.run(Box::new(move || f(guard))),
            }
        }
    }

    /// Registers a running task's result so that shutdown can fail it; returns its key.
    pub(crate) fn track_running(&self, result: Arc<dyn Abandon>) -> u64 {
        let id = self.next_task.fetch_add(1, Ordering::Relaxed);
        self.inner.lock().running.insert(id, result);
        id
    }

    pub(crate) fn untrack_running(&self, id: u64) {
        self.inner.lock().running.remove(&id);
    }

    /// Stops granting leases, fails queued and running work, and lets idle workers exit.
    /// Running task bodies cannot be interrupted: they finish on their own threads and
    /// their results are discarded.
    pub(crate) fn shutdown(&self) {
        let (queue, running) = {
            let mut inner = self.inner.lock();
            inner.shutdown = true;
            (
                std::mem::take(&mut inner.queue),
                std::mem::take(&mut inner.running),
            )
        };
        self.workers.close();
        drop(queue);
        for r in running.into_values() {
            r.abandon(RayError::Shutdown);
        }
    }
}
