//! A pool of threads that run jobs, kept between jobs: a thread is started only when no idle
//! one is free, so the pool grows to the number of jobs running at once (which resources
//! bound) and a job never waits behind another. Starting a thread per job cost tens of µs here.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

pub(crate) type Job = Box<dyn FnOnce() + Send>;

pub(crate) struct Workers {
    /// Thread names are `<name>-<n>`.
    name: &'static str,
    /// How long an idle thread looks for its next job before it sleeps (see `spin`).
    spin: Duration,
    inner: Mutex<Inner>,
    rx: Receiver<Job>,
}

struct Inner {
    idle: usize,
    spawned: usize,
    /// `None` once closed.
    jobs: Option<Sender<Job>>,
}

impl Workers {
    pub(crate) fn new(name: &'static str, spin: Duration) -> Arc<Self> {
        let (tx, rx) = crossbeam_channel::unbounded();
        Arc::new(Workers {
            name,
            spin,
            inner: Mutex::new(Inner {
                idle: 0,
                spawned: 0,
                jobs: Some(tx),
            }),
            rx,
        })
    }

    /// Runs `job` on an idle thread, or on a new one. Once closed (or when no thread can be
    /// started) the job is dropped, which fails whatever promise it carries.
    pub(crate) fn run(self: &Arc<Self>, job: Job) {
        let mut inner = self.inner.lock();
        let Some(jobs) = inner.jobs.clone() else {
            return;
        };
        if inner.idle > 0 {
            inner.idle -= 1;
            drop(inner);
            // The receiver lives as long as the pool, so this cannot fail.
            let _ = jobs.send(job);
            return;
        }
        inner.spawned += 1;
        let n = inner.spawned;
        drop(inner);
        let (pool, rx, spin) = (Arc::downgrade(self), self.rx.clone(), self.spin);
        let spawned = std::thread::Builder::new()
            .name(format!("{}-{n}", self.name))
            .spawn(move || {
                job();
                while let Some(job) = next(&pool, &rx, spin) {
                    job();
                }
            });
        if let Err(e) = spawned {
            eprintln!("ray: could not start a {} thread: {e}", self.name);
        }
    }

    /// Takes no more jobs; idle threads exit.
    pub(crate) fn close(&self) {
        self.inner.lock().jobs = None;
    }
}

/// An idle thread's next job; `None` once the pool is gone or closed.
fn next(pool: &Weak<Workers>, rx: &Receiver<Job>, spin: Duration) -> Option<Job> {
    pool.upgrade()?.inner.lock().idle += 1;
    crate::spin::recv(rx, spin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_reused_and_grow_only_with_concurrent_jobs() {
        let pool = Workers::new("test-worker", Duration::ZERO);
        let (tx, rx) = crossbeam_channel::unbounded();
        let name = || {
            std::thread::current()
                .name()
                .unwrap_or_default()
                .to_string()
        };
        for _ in 0..20 {
            let tx = tx.clone();
            pool.run(Box::new(move || tx.send(name()).expect("send")));
            rx.recv().expect("ran");
            // Wait until the thread has counted itself idle again.
            while pool.inner.lock().idle == 0 {
                std::thread::yield_now();
            }
        }
        assert_eq!(
            pool.inner.lock().spawned,
            1,
            "one thread ran all 20 in turn"
        );

        // Two jobs at once need two threads.
        let (hold, release) = crossbeam_channel::bounded::<()>(0);
        let r1 = release.clone();
        pool.run(Box::new(move || {
            let _ = r1.recv();
        }));
        let t = tx.clone();
        pool.run(Box::new(move || t.send(name()).expect("send")));
        assert_eq!(rx.recv().expect("ran").as_str(), "test-worker-2");
        hold.send(()).expect("release");

        // Closed: a job is dropped, not run.
        pool.close();
        let t = tx.clone();
        pool.run(Box::new(move || t.send(name()).expect("send")));
        drop(tx);
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    }
}
