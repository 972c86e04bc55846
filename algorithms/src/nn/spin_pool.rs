//! Helper threads for the fused learner that run a task on demand and are woken by a
//! counter they spin on, not by the OS. One pool serves every network of a learner (SAC's
//! actor, critics and targets take turns), so helpers never outnumber the learner's CPUs.
//!
//! A PPO update is a few dozen fork-joins of ~0.2 ms each (one per minibatch) with ~30 µs of
//! serial work between them. A pool whose idle threads sleep (rayon's, or a channel) pays a
//! wake-up per fork: measured at 50–100 µs on this project's 2-vCPU VMs (the sleeping vCPU
//! halts and needs an interrupt), a third of the parallel gain. Here idle helpers spin on an
//! atomic counter while an update is running ([`SpinPool::start`] to [`SpinPool::rest`]) and
//! sleep on a condition variable otherwise, so that they never compete with the env runners
//! for cores while those sample.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// A helper spins at most this long for the next job before it sleeps, in case the owner
/// never calls `rest` (an update that stopped on an error).
const MAX_SPIN: Duration = Duration::from_millis(2);

/// A spinning thread offers its core to other runnable threads every this many spins (a
/// microsecond or so): alone on the machine the yield returns at once; when processes share
/// the cores (two trainings, trials side by side) a thread waiting for a descheduled one
/// gives its time slice to it instead of burning it.
const YIELD_EVERY: u32 = 256;

/// A task each helper runs; its argument is the helper's number, 1 to `helpers`.
pub(crate) type Task = Arc<dyn Fn(usize) + Send + Sync>;

#[derive(Default)]
struct State {
    /// Bumped once per job.
    epoch: AtomicU64,
    /// Helpers done with the current job.
    done: AtomicUsize,
    /// Whether idle helpers should spin (between `start` and `rest`).
    busy: AtomicBool,
    /// Helpers asleep on `wake` (or about to be).
    sleeping: AtomicUsize,
    exit: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
    /// The first panic message of the current job.
    failure: Mutex<Option<String>>,
    /// The current job's task (set by `start`).
    task: Mutex<Option<Task>>,
}

/// Helper threads running a fixed task on demand.
pub(crate) struct SpinPool {
    state: Arc<State>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for SpinPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpinPool")
            .field("helpers", &self.threads.len())
            .finish()
    }
}

impl SpinPool {
    /// Starts `helpers` threads named `{name}-1`, `{name}-2`, … that run the task given to
    /// each [`start`](Self::start).
    pub(crate) fn new(helpers: usize, name: &str) -> std::io::Result<Self> {
        let state = Arc::new(State::default());
        let mut threads = Vec::with_capacity(helpers);
        for i in 1..=helpers {
            let mine = Arc::clone(&state);
            let t = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || helper(&mine, i));
            match t {
                Ok(t) => threads.push(t),
                Err(e) => {
                    // Stop the ones already started.
                    drop(SpinPool { state, threads });
                    return Err(e);
                }
            }
        }
        Ok(SpinPool { state, threads })
    }

    /// How many helper threads.
    pub(crate) fn helpers(&self) -> usize {
        self.threads.len()
    }

    /// Hands `task` to every helper; they spin between jobs from now until
    /// [`rest`](Self::rest). (Cloning the `Arc` allocates nothing.)
    pub(crate) fn start(&self, task: &Task) {
        let s = &*self.state;
        *s.task.lock() = Some(Arc::clone(task));
        s.busy.store(true, Ordering::SeqCst);
        s.done.store(0, Ordering::SeqCst);
        s.epoch.fetch_add(1, Ordering::SeqCst);
        if s.sleeping.load(Ordering::SeqCst) > 0 {
            let _g = s.lock.lock();
            s.wake.notify_all();
        }
    }

    /// Waits until every helper has finished the job; the message of a helper's panic, if
    /// one panicked.
    pub(crate) fn wait(&self) -> Result<(), String> {
        let s = &*self.state;
        let mut spins = 0u32;
        while s.done.load(Ordering::Acquire) < self.threads.len() {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(YIELD_EVERY) {
                // A helper that is not running (the machine is oversubscribed) needs this
                // core more than the spin does.
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        // The task may hold state its owner wants back (`Arc::get_mut`).
        s.task.lock().take();
        match s.failure.lock().take() {
            Some(m) => Err(m),
            None => Ok(()),
        }
    }

    /// Lets the helpers sleep until the next job.
    pub(crate) fn rest(&self) {
        self.state.busy.store(false, Ordering::SeqCst);
    }
}

impl Drop for SpinPool {
    fn drop(&mut self) {
        let s = &*self.state;
        s.exit.store(true, Ordering::SeqCst);
        s.epoch.fetch_add(1, Ordering::SeqCst);
        {
            let _g = s.lock.lock();
            s.wake.notify_all();
        }
        for t in self.threads.drain(..) {
            // The helper catches the task's panics, so joining cannot fail but for a bug in
            // the loop below; nothing is left to clean up either way.
            let _ = t.join();
        }
    }
}

fn helper(s: &State, i: usize) {
    // Jobs are numbered from 1: a job started before this thread got here still counts.
    let mut seen = 0;
    loop {
        // Wait for the next job: spin while an update is running, else sleep.
        let idle_since = Instant::now();
        let mut spins = 0u32;
        while s.epoch.load(Ordering::Acquire) == seen {
            spins = spins.wrapping_add(1);
            let spinning = s.busy.load(Ordering::Relaxed)
                && (!spins.is_multiple_of(1024) || idle_since.elapsed() < MAX_SPIN);
            if spinning {
                if spins.is_multiple_of(YIELD_EVERY) {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
                continue;
            }
            let mut g = s.lock.lock();
            s.sleeping.fetch_add(1, Ordering::SeqCst);
            while s.epoch.load(Ordering::SeqCst) == seen {
                s.wake.wait(&mut g);
            }
            s.sleeping.fetch_sub(1, Ordering::SeqCst);
        }
        seen = s.epoch.load(Ordering::Acquire);
        if s.exit.load(Ordering::SeqCst) {
            return;
        }
        let task = s.task.lock().clone();
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if let Some(task) = task {
                task(i);
            }
        }));
        if let Err(p) = run {
            s.failure
                .lock()
                .get_or_insert_with(|| format!("learner thread {i}: {}", panic_text(&*p)));
        }
        s.done.fetch_add(1, Ordering::Release);
    }
}

/// The message of a caught panic.
pub(crate) fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_helper_runs_each_job_once_and_panics_are_reported() {
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        let task: Task = Arc::new(move |i| {
            seen.fetch_add(i, Ordering::SeqCst);
            if seen.load(Ordering::SeqCst) > 1000 {
                panic!("too many");
            }
        });
        let pool = SpinPool::new(3, "test-helper").unwrap();
        for round in 1..=50 {
            pool.start(&task);
            pool.wait().unwrap();
            // Helpers 1 + 2 + 3 each ran once per round.
            assert_eq!(count.load(Ordering::SeqCst), 6 * round);
            if round % 10 == 0 {
                pool.rest();
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        count.store(2000, Ordering::SeqCst);
        pool.start(&task);
        let e = pool.wait().unwrap_err();
        assert!(e.contains("too many"), "{e}");
        // The pool goes on after a failed job.
        count.store(0, Ordering::SeqCst);
        pool.start(&task);
        pool.wait().unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 6);
        pool.rest();
    }
}
