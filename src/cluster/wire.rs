//! What crosses the network between nodes and drivers: one ractor message carrying bytes, and
//! the serde types those bytes encode. A payload that fails to decode is an error value, never
//! a panic (ractor_cluster's `from_bytes` cannot fail, so it only ever sees `Vec<u8>`).

use std::collections::BTreeMap;

use ractor::RpcReplyPort;
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// The one message type of a node agent: a request and the port for its reply, both bytes.
#[derive(RactorClusterMessage)]
pub(crate) enum AgentMsg {
    #[rpc]
    Call(Vec<u8>, RpcReplyPort<Vec<u8>>),
}

/// The largest piece of an object sent in one message; ractor_cluster refuses frames over
/// 16 MiB, so bigger objects travel in chunks of this size.
pub(crate) const CHUNK: usize = 4 << 20;

/// Results up to this size ride in the reply itself instead of being fetched.
pub(crate) const INLINE_MAX: usize = 256 << 10;

/// A node as `rllib status` and [`Runtime::nodes`](crate::Runtime::nodes) show it (Ray's
/// `ray.nodes()`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Unique name of the node (host, port and process id).
    pub node_id: String,
    /// The address other processes connect to, `host:port`.
    pub address: String,
    /// Whether this node is the head.
    pub is_head: bool,
    /// Whether the node answered its heartbeats within the detection time.
    pub alive: bool,
    /// The node's resources.
    pub total: BTreeMap<String, f64>,
    /// Resources not held by running tasks and live actors.
    pub available: BTreeMap<String, f64>,
    /// The node process's id on its machine.
    pub pid: u32,
    /// Objects the node keeps (results not yet fetched or freed, stored arguments).
    #[serde(default)]
    pub objects: u64,
    /// Its data port (`host:port`), where other nodes and drivers read its objects.
    #[serde(default)]
    pub data_address: String,
}

/// An argument or result: in the message, or stored on `owner` and fetched in chunks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Payload {
    // Bytes as one block (serde's default is a sequence of numbers, element by element).
    Inline(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Kept on node `owner`, which listens at `address` (empty for a driver: nodes reach a
    /// driver through the session it opened to them).
    Stored {
        owner: String,
        address: String,
        /// The holder's data port (empty: fetch through the session).
        data: String,
        id: u64,
        size: u64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Request {
    /// Liveness and current availability.
    Ping,
    /// A worker node announcing itself to the head.
    Register(NodeInfo),
    /// The head's table of nodes.
    Nodes,
    RunTask {
        /// The driver that asked: results kept for it are freed when it goes.
        requester: String,
        name: String,
        args: Payload,
        demand: BTreeMap<String, f64>,
    },
    SpawnActor {
        id: u64,
        type_name: String,
        args: Payload,
        demand: BTreeMap<String, f64>,
    },
    CallActor {
        requester: String,
        id: u64,
        method: String,
        args: Payload,
    },
    KillActor {
        id: u64,
    },
    Fetch {
        id: u64,
        offset: u64,
    },
    Free {
        id: u64,
    },
    /// From the head to a node it has declared dead and that answers again (resumed after
    /// SIGSTOP, or back from a partition): its work has moved, so it must stop (as Ray's
    /// raylet exits once the GCS marks it dead).
    Fenced {
        reason: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Response {
    Pong(NodeInfo),
    Registered,
    Nodes(Vec<NodeInfo>),
    /// A task's or method's result.
    Value(Payload),
    /// A user function failed (panicked or returned an error).
    Failed(String),
    /// The node cannot grant the resources now; try another or later.
    Busy,
    Spawned,
    Chunk(#[serde(with = "serde_bytes")] Vec<u8>),
    Done,
    /// The request was malformed or named something this node does not have.
    Error(String),
}

/// Serde to bytes (postcard: compact, and it never panics on bad input).
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    postcard::to_allocvec(value).map_err(|e| format!("cannot encode a value: {e}"))
}

/// Bytes to serde, or an error that says what was expected.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| {
        format!(
            "cannot decode {} bytes as {}: {e}",
            bytes.len(),
            std::any::type_name::<T>()
        )
    })
}
