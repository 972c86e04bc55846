//! Functions and an actor type every binary has: they let `rllib status`, the cluster tests
//! and `bench/cluster.sh` check where work runs and how fast values move, with nothing of the
//! caller's own registered.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::registry::{Function, RemoteActor, method, typed, unknown_method};

static NODE_ID: OnceLock<String> = OnceLock::new();

/// Sets the id [`current_node_id`] reports (once, when a node starts in this process).
pub(crate) fn set_node_id(id: &str) {
    let _ = NODE_ID.set(id.to_string());
}

/// The id of the node this code runs on (`"driver"` outside a node process).
pub fn current_node_id() -> String {
    NODE_ID
        .get()
        .cloned()
        .unwrap_or_else(|| "driver".to_string())
}

/// Name of the built-in probe actor type: `node_id`, `incr` (adds to a counter, returns it),
/// `sleep_ms`, `pid`.
pub const PROBE: &str = "ray.Probe";

/// State of the built-in probe actor: a counter.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Probe {
    /// The counter `incr` adds to.
    pub count: i64,
}

impl RemoteActor for Probe {
    fn call(&mut self, name: &str, args: &[u8]) -> Result<Vec<u8>, String> {
        match name {
            "node_id" => method(args, |()| current_node_id()),
            "pid" => method(args, |()| std::process::id()),
            "incr" => method(args, |n: i64| {
                self.count += n;
                self.count
            }),
            "sleep_ms" => method(args, |ms: u64| {
                std::thread::sleep(std::time::Duration::from_millis(ms));
                current_node_id()
            }),
            _ => Err(unknown_method(PROBE, name)),
        }
    }
}

/// The built-in functions: `ray.node_id` (where it ran), `ray.sleep_ms` (sleeps, returns the
/// node id), `ray.echo` (bytes back), `ray.len` (length of bytes), `ray.zeros` (n zero bytes).
pub(crate) fn register(add: &mut dyn FnMut(&str, Function)) {
    add("ray.node_id", typed(|()| current_node_id()));
    add(
        "ray.sleep_ms",
        typed(|ms: u64| {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            current_node_id()
        }),
    );
    add("ray.echo", typed(|b: serde_bytes::ByteBuf| b));
    add("ray.len", typed(|b: serde_bytes::ByteBuf| b.len() as u64));
    add(
        "ray.zeros",
        // At most 1 GiB: a request for more gets 1 GiB, not an abort.
        typed(|n: u64| serde_bytes::ByteBuf::from(vec![0u8; n.min(1 << 30) as usize])),
    );
}
