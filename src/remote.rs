//! Work by name: registered functions and actor types ([`crate::cluster`]), placed on the
//! cluster's nodes when the runtime is connected to one, run in this process otherwise.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Serialize, de::DeserializeOwned};

use crate::cluster::{Held, RemoteActorHandle, RemoteRef, TaskInput, TaskSpec, registry_function};
use crate::object::{ObjectRef, Orphaned};
use crate::{CPU, GPU, RayError, Runtime};

/// A remote task of a registered function (`rt.remote_task("name")`).
#[derive(Debug)]
pub struct RemoteTaskBuilder<'rt> {
    rt: &'rt Runtime,
    name: String,
    args: Result<Vec<u8>, RayError>,
    object: Option<ObjectRef<Held>>,
    demand: BTreeMap<String, f64>,
    max_retries: u32,
    node: Option<String>,
}

/// A remote actor of a registered type (`rt.remote_actor("Type")`).
#[derive(Debug)]
pub struct RemoteActorBuilder<'rt> {
    rt: &'rt Runtime,
    type_name: String,
    args: Result<Vec<u8>, RayError>,
    demand: BTreeMap<String, f64>,
    max_restarts: u32,
    node: Option<String>,
}

fn encode<A: Serialize>(a: &A) -> Result<Vec<u8>, RayError> {
    crate::cluster::encode(a).map_err(RayError::Cluster)
}

fn check(name: &str, amount: f64) -> Result<(), RayError> {
    if !amount.is_finite() || amount < 0.0 {
        return Err(RayError::InvalidResources(format!(
            "{name} = {amount}: amounts must be finite and >= 0"
        )));
    }
    Ok(())
}

macro_rules! resource_setters {
    () => {
        /// CPUs this work holds while it runs (default 1 for tasks, 0 for actors, as Ray).
        pub fn num_cpus(self, n: f64) -> Self {
            self.resource(CPU, n)
        }

        /// GPUs this work holds.
        pub fn num_gpus(self, n: f64) -> Self {
            self.resource(GPU, n)
        }

        /// A custom resource this work holds.
        pub fn resource(mut self, name: &str, amount: f64) -> Self {
            if let Err(e) = check(name, amount) {
                self.args = Err(e);
            } else if amount == 0.0 {
                self.demand.remove(name);
            } else {
                self.demand.insert(name.to_string(), amount);
            }
            self
        }

        /// Runs only on node `node_id` (Ray's `NodeAffinitySchedulingStrategy`, hard).
        pub fn node(mut self, node_id: &str) -> Self {
            self.node = Some(node_id.to_string());
            self
        }
    };
}

impl<'rt> RemoteTaskBuilder<'rt> {
    pub(crate) fn new(rt: &'rt Runtime, name: &str) -> Self {
        RemoteTaskBuilder {
            rt,
            name: name.to_string(),
            args: encode(&()),
            object: None,
            demand: BTreeMap::from([(CPU.to_string(), 1.0)]),
            max_retries: crate::DEFAULT_MAX_RETRIES,
            node: None,
        }
    }

    /// The function's argument (a tuple for several).
    pub fn arg<A: Serialize>(mut self, a: &A) -> Self {
        if self.args.is_ok() {
            self.args = encode(a);
        }
        self.object = None;
        self
    }

    /// The function's argument is the value of `r`, a result kept on a node or a value put
    /// with [`Runtime::put_remote`]: the task waits for it, and the node that runs the task
    /// fetches it from the node that holds it (not through this driver).
    pub fn arg_ref<T>(mut self, r: &RemoteRef<T>) -> Self {
        self.object = Some(r.held.clone());
        self
    }

    /// Attempts after the first when the function fails or its node dies.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    resource_setters!();

    fn spec(self) -> Result<(TaskSpec, &'rt Runtime), RayError> {
        let input = match self.object {
            Some(o) => TaskInput::Object(o),
            None => TaskInput::Bytes(self.args?),
        };
        Ok((
            TaskSpec {
                name: self.name,
                input,
                demand: self.demand,
                max_retries: self.max_retries,
                affinity: self.node,
            },
            self.rt,
        ))
    }

    /// Submits the task; its result comes back to this process as an object of type `R`.
    pub fn remote<R>(self) -> Result<ObjectRef<R>, RayError>
    where
        R: DeserializeOwned + Send + Sync + 'static,
    {
        let (spec, rt) = self.spec()?;
        if let Some(c) = rt.cluster() {
            return c.submit_task(spec);
        }
        let task = spec.name.clone();
        run_local(rt, spec, move |b: Vec<u8>| {
            postcard::from_bytes::<R>(&b).map_err(|e| RayError::TaskFailed {
                task: task.clone(),
                message: format!("cannot decode the result: {e}"),
                attempts: 1,
            })
        })
    }

    /// Submits the task; its result of type `R` stays on the node that made it until it is
    /// fetched ([`RemoteRef::get`]) or handed to another task ([`arg_ref`](Self::arg_ref)),
    /// and is freed there when the last reference goes.
    pub fn remote_ref<R>(self) -> Result<RemoteRef<R>, RayError> {
        let (spec, rt) = self.spec()?;
        if let Some(c) = rt.cluster() {
            return Ok(RemoteRef::new(
                c.submit_task_ref(spec)?,
                Some(Arc::clone(c)),
            ));
        }
        let held = run_local(rt, spec, |b: Vec<u8>| {
            Ok(Held::new(crate::cluster::Payload::Inline(b), None))
        })?;
        Ok(RemoteRef::new(held, None))
    }
}

/// A registered function in this process, on the local scheduler; `finish` turns its bytes
/// into the result.
fn run_local<T: Send + Sync + 'static>(
    rt: &Runtime,
    spec: TaskSpec,
    finish: impl Fn(Vec<u8>) -> Result<T, RayError> + Send + Sync + 'static,
) -> Result<ObjectRef<T>, RayError> {
    let f = registry_function(&spec.name).map_err(|e| RayError::TaskFailed {
        task: spec.name.clone(),
        message: e,
        attempts: 0,
    })?;
    let (result, promise) = ObjectRef::<T>::pending(Orphaned::Shutdown);
    let promise = Arc::new(Mutex::new(Some(promise)));
    let promise2 = Arc::clone(&promise);
    let name = spec.name.clone();
    // The argument as an object the task depends on: it starts (and takes its resources)
    // only once an object argument is ready.
    let input: ObjectRef<Arc<Held>> = match spec.input {
        TaskInput::Bytes(b) => ObjectRef::ready(Arc::new(Held::new(
            crate::cluster::Payload::Inline(b),
            None,
        ))),
        TaskInput::Object(o) => {
            let (r, p) = ObjectRef::pending(Orphaned::Shutdown);
            let o2 = o.clone();
            o.dependency()
                .0
                .on_ready(Box::new(move || p.fulfil(o2.get_arc())));
            r
        }
    };
    let mut t = rt
        .task_with(input, move |held: Arc<Held>| {
            let args = match &held.payload {
                crate::cluster::Payload::Inline(b) => Ok(b.clone()),
                crate::cluster::Payload::Stored { owner, .. } => Err(RayError::Cluster(format!(
                    "the argument is on node {owner}, and this runtime has no cluster"
                ))),
            };
            let out = args.and_then(|a| {
                f(&a).map_err(|message| RayError::TaskFailed {
                    task: name.clone(),
                    message,
                    attempts: 1,
                })
            });
            // A panic is retried by the task; an error value is final.
            if let Some(p) = promise.lock().take() {
                p.fulfil(out.and_then(&finish));
            }
        })
        .name(spec.name)
        .max_retries(spec.max_retries);
    for (k, v) in &spec.demand {
        t = t.resource(k, *v);
    }
    let done = t.remote()?;
    // If every attempt panicked, the task's error is the result.
    let d = done.clone();
    done.dependency().0.on_ready(Box::new(move || {
        if let Err(e) = d.get_arc()
            && let Some(p) = promise2.lock().take()
        {
            p.fulfil(Err(e));
        }
    }));
    Ok(result)
}

impl<'rt> RemoteActorBuilder<'rt> {
    pub(crate) fn new(rt: &'rt Runtime, type_name: &str) -> Self {
        RemoteActorBuilder {
            rt,
            type_name: type_name.to_string(),
            args: encode(&()),
            demand: BTreeMap::new(),
            max_restarts: 0,
            node: None,
        }
    }

    /// The constructor's argument (a tuple for several).
    pub fn args<A: Serialize>(mut self, a: &A) -> Self {
        if self.args.is_ok() {
            self.args = encode(a);
        }
        self
    }

    /// Times the actor is rebuilt on another node after its node dies.
    pub fn max_restarts(mut self, n: u32) -> Self {
        self.max_restarts = n;
        self
    }

    resource_setters!();

    /// Creates the actor on a node that has the resources.
    pub fn spawn(self) -> Result<RemoteActorHandle, RayError> {
        let args = self.args?;
        match self.rt.cluster() {
            Some(c) => c.spawn_actor(
                self.type_name,
                args,
                self.demand,
                self.max_restarts,
                self.node,
            ),
            // In this process: the same registered type, on the local scheduler.
            None => RemoteActorHandle::local(
                self.rt,
                self.type_name,
                args,
                &self.demand,
                self.max_restarts,
            ),
        }
    }
}
