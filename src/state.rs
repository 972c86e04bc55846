//! What the runtime is doing, as Ray's state API (`ray.util.state`) reports it: the actors,
//! the tasks by state, and the most recent failures. The dashboard reads it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;

/// How many failures [`crate::Runtime::recent_failures`] keeps.
pub const MAX_FAILURES: usize = 100;

/// An actor's life stage (Ray's `ActorState`, without the ones a local runtime never has).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActorState {
    /// Waiting for its resources, or for its constructor to run.
    PendingCreation,
    /// Running calls.
    Alive,
    /// It will run no other call (killed, out of restarts, or the runtime shut down).
    Dead,
}

/// One actor, as `ray list actors` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ActorInfo {
    /// Unique within this process.
    pub actor_id: String,
    /// The Rust type of its state (local actors) or its registered type name (cluster ones).
    pub class_name: String,
    /// Its name (given, or `<class>#<n>`).
    pub name: String,
    pub state: ActorState,
    /// The node it runs on (`local` in an embedded runtime; empty while not yet placed).
    pub node_id: String,
    pub num_restarts: u32,
    pub max_restarts: u32,
    /// What it holds for its life (`CPU`, `GPU`, custom).
    pub resources: BTreeMap<String, f64>,
    /// Why it died, once it has.
    pub death_cause: Option<String>,
}

/// Tasks by state, as `ray summary tasks` counts them (this process's, since it started).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TaskSummary {
    /// Submitted and not yet running: waiting for their arguments or their resources.
    pub pending: u64,
    pub running: u64,
    pub finished: u64,
    /// Failed for good (every retry used).
    pub failed: u64,
}

/// A task or actor call that failed.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// Seconds since the Unix epoch.
    pub time: f64,
    /// `task` or `actor`.
    pub kind: &'static str,
    /// The task's or actor's name.
    pub name: String,
    pub message: String,
}

/// The counters and the failure log; lives in the scheduler, which every task and actor
/// already shares.
#[derive(Debug, Default)]
pub(crate) struct StateTable {
    submitted: AtomicU64,
    started: AtomicU64,
    finished: AtomicU64,
    failed: AtomicU64,
    failures: Mutex<VecDeque<Failure>>,
}

impl StateTable {
    pub(crate) fn task_submitted(&self) {
        self.submitted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn task_started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }

    /// A task ended; `failure` is its final error's message.
    pub(crate) fn task_ended(&self, name: &str, failure: Option<String>) {
        match failure {
            None => self.finished.fetch_add(1, Ordering::Relaxed),
            Some(message) => {
                self.failure("task", name, message);
                self.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }

    /// Records a failure (the oldest goes once [`MAX_FAILURES`] are kept).
    pub(crate) fn failure(&self, kind: &'static str, name: &str, message: String) {
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut log = self.failures.lock();
        if log.len() == MAX_FAILURES {
            log.pop_front();
        }
        log.push_back(Failure {
            time,
            kind,
            name: name.to_string(),
            message,
        });
    }

    pub(crate) fn summary(&self) -> TaskSummary {
        // Read the later stages first, so that no count goes below zero while tasks move.
        let finished = self.finished.load(Ordering::Acquire);
        let failed = self.failed.load(Ordering::Acquire);
        let started = self.started.load(Ordering::Acquire);
        let submitted = self.submitted.load(Ordering::Acquire);
        TaskSummary {
            pending: submitted.saturating_sub(started),
            running: started.saturating_sub(finished + failed),
            finished,
            failed,
        }
    }

    pub(crate) fn failures(&self) -> Vec<Failure> {
        self.failures.lock().iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_move_through_the_states() {
        let t = StateTable::default();
        t.task_submitted();
        t.task_submitted();
        t.task_started();
        assert_eq!(
            t.summary(),
            TaskSummary {
                pending: 1,
                running: 1,
                finished: 0,
                failed: 0
            }
        );
        t.task_ended("f", Some("boom".into()));
        t.task_started();
        t.task_ended("g", None);
        assert_eq!(
            t.summary(),
            TaskSummary {
                pending: 0,
                running: 0,
                finished: 1,
                failed: 1
            }
        );
        let f = t.failures();
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].kind, f[0].name.as_str()), ("task", "f"));
        assert_eq!(f[0].message, "boom");
    }

    #[test]
    fn the_failure_log_keeps_the_latest() {
        let t = StateTable::default();
        for i in 0..MAX_FAILURES + 5 {
            t.failure("actor", "a", format!("{i}"));
        }
        let f = t.failures();
        assert_eq!(f.len(), MAX_FAILURES);
        assert_eq!(f[0].message, "5");
        assert_eq!(f[MAX_FAILURES - 1].message, format!("{}", MAX_FAILURES + 4));
    }
}
