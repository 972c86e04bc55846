//! Objects that stay where they were made: a task's result kept on its node, or a value the
//! driver put, until someone gets it. Another task that takes it as an argument fetches it
//! from that node directly (node to node, not through the driver); the last reference dropped
//! frees it there. Ray's `ObjectRef` in a cluster.

use std::marker::PhantomData;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Serialize, de::DeserializeOwned};

use super::client::Cluster;
use super::node::{agent_of, resolve, rpc};
use super::wire::{Payload, Request, decode, encode};
use crate::RayError;
use crate::object::ObjectRef;

/// Where an object's bytes are: in the reference itself (small ones) or on a node. Frees the
/// stored bytes when the last reference goes.
pub(crate) struct Held {
    pub(crate) payload: Payload,
    cluster: Weak<Cluster>,
}

impl Held {
    pub(crate) fn new(payload: Payload, cluster: Option<&Arc<Cluster>>) -> Self {
        Held {
            payload,
            cluster: cluster.map_or_else(Weak::new, Arc::downgrade),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let Payload::Stored { owner, id, .. } = &self.payload else {
            return;
        };
        let Some(c) = self.cluster.upgrade() else {
            return;
        };
        if *owner == c.me.info.node_id {
            c.me.free(*id);
        } else if let Some(agent) = agent_of(owner) {
            let (id, t) = (*id, c.me.call_timeout);
            c.executor.spawn(async move {
                let _ = rpc(&agent, &Request::Free { id }, t).await;
            });
        }
    }
}

/// A value of type `T` kept where it was made (a node's result, or the driver's
/// [`put_remote`](crate::Runtime::put_remote)); [`get`](RemoteRef::get) fetches it, and
/// [`arg_ref`](crate::RemoteTaskBuilder::arg_ref) hands it to another task, which fetches it
/// from its node directly.
pub struct RemoteRef<T> {
    pub(crate) held: ObjectRef<Held>,
    pub(crate) cluster: Option<Arc<Cluster>>,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for RemoteRef<T> {
    fn clone(&self) -> Self {
        RemoteRef {
            held: self.held.clone(),
            cluster: self.cluster.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for RemoteRef<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteRef")
            .field("node", &self.node_id())
            .finish()
    }
}

impl<T> RemoteRef<T> {
    pub(crate) fn new(held: ObjectRef<Held>, cluster: Option<Arc<Cluster>>) -> Self {
        RemoteRef {
            held,
            cluster,
            _t: PhantomData,
        }
    }

    /// A value put by this process: kept here (nodes fetch it from this driver) when large.
    pub(crate) fn put(value: &T, cluster: Option<&Arc<Cluster>>) -> Result<Self, RayError>
    where
        T: Serialize,
    {
        let bytes = encode(value).map_err(RayError::Cluster)?;
        let payload = match cluster {
            Some(c) => c.me.payload(bytes),
            None => Payload::Inline(bytes),
        };
        Ok(RemoteRef::new(
            ObjectRef::ready(Held::new(payload, cluster)),
            cluster.cloned(),
        ))
    }

    /// The node that holds the value, once it exists (`None` while its task runs, and for
    /// values small enough to travel inside the reference).
    pub fn node_id(&self) -> Option<String> {
        match self.held.get_arc_timeout(Duration::ZERO) {
            Ok(h) => match &h.payload {
                Payload::Stored { owner, .. } => Some(owner.clone()),
                Payload::Inline(_) => None,
            },
            Err(_) => None,
        }
    }
}

impl<T: DeserializeOwned> RemoteRef<T> {
    /// Waits for the value and fetches it (it stays where it is for other readers).
    pub fn get(&self) -> Result<T, RayError> {
        self.fetch(None)
    }

    /// As [`get`](RemoteRef::get), giving up with [`RayError::Timeout`] after `timeout`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, RayError> {
        self.fetch(Some(timeout))
    }

    fn fetch(&self, timeout: Option<Duration>) -> Result<T, RayError> {
        let start = std::time::Instant::now();
        let held = match timeout {
            None => self.held.get_arc()?,
            Some(t) => self.held.get_arc_timeout(t)?,
        };
        let bytes = match (&held.payload, &self.cluster) {
            (Payload::Inline(b), _) => b.clone(),
            (p, Some(c)) => {
                let (tx, rx) = std::sync::mpsc::channel();
                let (p, me) = (p.clone(), Arc::clone(&c.me));
                // What is left of the caller's time after waiting for the value.
                let t = timeout.map_or(me.call_timeout, |t| {
                    t.saturating_sub(start.elapsed())
                        .max(Duration::from_millis(1))
                });
                // On the executor; this thread waits (it must not be one of the executor's).
                c.executor.spawn(async move {
                    let _ = tx.send(resolve(p, me.link.get(), t).await);
                });
                rx.recv()
                    .map_err(|_| RayError::Cluster("the runtime shut down".into()))?
                    .map_err(RayError::Cluster)?
            }
            (Payload::Stored { owner, .. }, None) => {
                return Err(RayError::Cluster(format!(
                    "the object is on node {owner}, and this runtime has no cluster"
                )));
            }
        };
        decode(&bytes).map_err(RayError::Cluster)
    }
}
