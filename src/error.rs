//! Errors of the runtime. Failures are values: a panicking task or actor method is reported
//! at `get` as one of these, never as an abort of the caller.

use std::time::Duration;

/// Everything that can go wrong between submitting work and reading its result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RayError {
    /// A task panicked on every allowed attempt; `message` is the last panic's message.
    #[error("task {task} failed after {attempts} attempt(s): {message}")]
    TaskFailed {
        /// The task's name (its function's type name unless one was given).
        task: String,
        /// The panic message of the last attempt.
        message: String,
        /// How many times the task ran.
        attempts: u32,
    },
    /// An actor method panicked. The call fails; the actor restarts or dies per `max_restarts`.
    #[error("actor {actor} method failed: {message}")]
    ActorTaskFailed {
        /// The actor's name.
        actor: String,
        /// The panic message.
        message: String,
    },
    /// The actor is dead (killed, restarts used up, constructor failed or runtime shut down).
    #[error("actor {actor} died: {cause}")]
    ActorDied {
        /// The actor's name.
        actor: String,
        /// Why it died.
        cause: String,
    },
    /// `get` or `wait` gave up before the object was ready.
    #[error("timed out after {0:?} waiting for an object")]
    Timeout(Duration),
    /// A resource request larger than the runtime's total: it could never be scheduled.
    #[error("infeasible resource request {requested}: the runtime has {total} in total")]
    Infeasible {
        /// The request, as `{CPU: 4, GPU: 1}`.
        requested: String,
        /// The runtime's total resources.
        total: String,
    },
    /// A resource request that is malformed (negative or not finite).
    #[error("invalid resource request: {0}")]
    InvalidResources(String),
    /// The runtime was shut down before the work finished.
    #[error("the runtime was shut down before this object was computed")]
    Shutdown,
    /// The node that held the work died or stopped answering heartbeats.
    #[error("node {node} died: {cause}")]
    NodeDied {
        /// The node's id.
        node: String,
        /// What was lost there, or how the death was seen.
        cause: String,
    },
    /// Joining or talking to a cluster failed (unreachable head, wrong secret, bad reply).
    #[error("cluster: {0}")]
    Cluster(String),
    /// The runtime could not start (its async executor or a thread could not be created).
    #[error("the runtime could not start: {0}")]
    Startup(String),
}

impl RayError {
    /// Whether a `get` with a longer timeout could still succeed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RayError::Timeout(_))
    }
}

/// Turns a panic payload into its message, as `std` prints it.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}
