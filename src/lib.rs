//! A Ray-style runtime embedded in one process: remote tasks and actors that return
//! [`ObjectRef`]s, an object store, and a scheduler that honours resource requests.
//!
//! ```
//! let rt = ray::init(ray::InitOptions::new().num_cpus(2.0)).unwrap();
//! let squares: Vec<_> = (0..4u64)
//!     .map(|x| rt.task(move || x * x).remote().unwrap())
//!     .collect();
//! assert_eq!(ray::get_all(&squares).unwrap(), vec![0, 1, 4, 9]);
//! rt.shutdown();
//! ```

mod actor;
mod alloc;
pub mod cluster;
pub mod dashboard;
mod error;
mod object;
mod remote;
mod resources;
mod runtime;
mod scheduler;
mod spin;
pub mod state;
mod task;
mod workers;

pub use actor::{ActorBuilder, ActorHandle};
pub use alloc::HugePageAlloc;
pub use cluster::{
    NodeInfo, RemoteActor, RemoteActorHandle, RemoteRef, register_actor, register_function,
};
pub use error::{RayError, panic_message};
pub use object::{Dependency, GetFuture, ObjectId, ObjectRef, get_all, wait};
pub use remote::{RemoteActorBuilder, RemoteTaskBuilder};
pub use resources::{
    CPU, GPU, MEMORY, Resources, available_memory, detect_cpus, detect_gpus, detect_memory,
};
pub use runtime::{InitOptions, MAX_DEAD_ACTORS, Runtime, init};
pub use task::{DEFAULT_MAX_RETRIES, TaskArgs, TaskBuilder};
