//! Remote tasks: a function, its resource needs and its arguments, run on a worker thread
//! once its `ObjectRef` arguments are ready and its resources are free.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::panic_message;
use crate::object::{Dependency, ObjectRef, Orphaned};
use crate::scheduler::{Grant, Lease};
use crate::{CPU, GPU, MEMORY, RayError, Resources, Runtime};

/// Arguments of a task that may be objects still being computed: the task runs once every
/// one of them is ready, and receives their values.
///
/// Implemented for `()`, `ObjectRef<T>`, `Vec<ObjectRef<T>>` and tuples of up to four of these.
pub trait TaskArgs: Send + Sync + 'static {
    /// The values the task function receives.
    type Values;
    /// The objects that must be ready first.
    fn dependencies(&self, out: &mut Vec<Dependency>);
    /// The values, once every dependency is ready; the first failed one is the error.
    fn resolve(&self) -> Result<Self::Values, RayError>;
}

impl TaskArgs for () {
    type Values = ();
    fn dependencies(&self, _: &mut Vec<Dependency>) {}
    fn resolve(&self) -> Result<(), RayError> {
        Ok(())
    }
}

impl<T: Clone + Send + Sync + 'static> TaskArgs for ObjectRef<T> {
    type Values = T;
    fn dependencies(&self, out: &mut Vec<Dependency>) {
        out.push(self.dependency());
    }
    fn resolve(&self) -> Result<T, RayError> {
        self.get()
    }
}

impl<T: Clone + Send + Sync + 'static> TaskArgs for Vec<ObjectRef<T>> {
    type Values = Vec<T>;
    fn dependencies(&self, out: &mut Vec<Dependency>) {
        out.extend(self.iter().map(ObjectRef::dependency));
    }
    fn resolve(&self) -> Result<Vec<T>, RayError> {
        self.iter().map(ObjectRef::get).collect()
    }
}

macro_rules! tuple_args {
    ($($name:ident),+) => {
        impl<$($name: TaskArgs),+> TaskArgs for ($($name,)+) {
            type Values = ($($name::Values,)+);
            #[allow(non_snake_case)]
            fn dependencies(&self, out: &mut Vec<Dependency>) {
                let ($($name,)+) = self;
                $($name.dependencies(out);)+
            }
            #[allow(non_snake_case)]
            fn resolve(&self) -> Result<Self::Values, RayError> {
                let ($($name,)+) = self;
                Ok(($($name.resolve()?,)+))
            }
        }
    };
}
tuple_args!(A);
tuple_args!(A, B);
tuple_args!(A, B, C);
tuple_args!(A, B, C, D);

/// Ray's default number of retries of a task whose worker failed.
pub const DEFAULT_MAX_RETRIES: u32 = 3;

/// A task being configured; [`remote`](TaskBuilder::remote) submits it.
#[must_use = "a task runs only once `.remote()` submits it"]
pub struct TaskBuilder<'rt, A, F> {
    rt: &'rt Runtime,
    args: A,
    f: F,
    demand: Resources,
    invalid: Option<RayError>,
    max_retries: u32,
    name: Option<String>,
}

impl<A, F> std::fmt::Debug for TaskBuilder<'_, A, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskBuilder")
            .field("name", &self.name)
            .field("resources", &self.demand)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

impl<'rt, A, F, R> TaskBuilder<'rt, A, F>
where
    A: TaskArgs,
    F: Fn(A::Values) -> R + Send + Sync + 'static,
    R: Send + Sync + 'static,
{
    pub(crate) fn new(rt: &'rt Runtime, args: A, f: F) -> Self {
        let mut demand = Resources::new();
        // One CPU per task unless told otherwise, as in Ray.
        let invalid = demand.set(CPU, 1.0).err();
        TaskBuilder {
            rt,
            args,
            f,
            demand,
            invalid,
            max_retries: DEFAULT_MAX_RETRIES,
            name: None,
        }
    }

    /// CPUs the task holds while it runs (default 1; 0 is allowed).
    pub fn num_cpus(self, n: f64) -> Self {
        self.resource(CPU, n)
    }

    /// GPUs the task holds while it runs (default 0).
    pub fn num_gpus(self, n: f64) -> Self {
        self.resource(GPU, n)
    }

    /// Bytes of memory the task reserves while it runs.
    pub fn memory(self, bytes: u64) -> Self {
        self.resource(MEMORY, bytes as f64)
    }

    /// An amount of any resource, built-in or custom.
    pub fn resource(mut self, name: &str, amount: f64) -> Self {
        if let Err(e) = self.demand.set(name, amount) {
            self.invalid.get_or_insert(e);
        }
        self
    }

    /// How many times a failed (panicked) task runs again before its error is final.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// A name for errors and logs (default: the function's type name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Submits the task and returns a reference to its result at once.
    ///
    /// Errors now, rather than hanging later, when the resource request can never fit.
    pub fn remote(self) -> Result<ObjectRef<R>, RayError> {
        if let Some(e) = self.invalid {
            return Err(e);
        }
        let sched = self.rt.scheduler();
        if sched.is_shut_down() {
            return Err(RayError::Shutdown);
        }
        sched.check_feasible(&self.demand)?;

        let name = self
            .name
            .unwrap_or_else(|| std::any::type_name::<F>().to_string());
        let (result, promise) = ObjectRef::<R>::pending(Orphaned::Shutdown);
        let mut deps = Vec::new();
        self.args.dependencies(&mut deps);
        let args = self.args;
        let f = self.f;
        let max_retries = self.max_retries;
        let run_sched = Arc::clone(sched);
        let run = move |lease| {
            run_sched.state.task_started();
            let tracked = promise.abandoner().map(|a| run_sched.track_running(a));
            let mut attempts = 0;
            let outcome = loop {
                // Values are read again for each attempt: the function owns what it gets.
                let values = match args.resolve() {
                    Ok(v) => v,
                    Err(e) => break Err(e),
                };
                attempts += 1;
                match catch_unwind(AssertUnwindSafe(|| f(values))) {
                    Ok(r) => break Ok(r),
                    Err(p) if attempts > max_retries => {
                        break Err(RayError::TaskFailed {
                            task: name.clone(),
                            message: panic_message(&*p),
                            attempts,
                        });
                    }
                    Err(_) => {}
                }
            };
            // Release the resources before publishing, so a caller that sees the result
            // also sees them available again.
            drop(lease);
            if let Some(id) = tracked {
                run_sched.untrack_running(id);
            }
            run_sched
                .state
                .task_ended(&name, outcome.as_ref().err().map(ToString::to_string));
            promise.fulfil(outcome);
        };
        let lease = Lease {
            demand: self.demand,
            grant: Grant::Task(Box::new(run)),
        };
        // The task is queued only once its arguments exist; until then it holds no resources.
        let sched = Arc::clone(sched);
        sched.state.task_submitted();
        submit_when_ready(deps, move || sched.submit(lease));
        Ok(result)
    }
}

/// Runs `submit` once every dependency is ready (at once when there are none).
fn submit_when_ready(deps: Vec<Dependency>, submit: impl FnOnce() + Send + 'static) {
    if deps.is_empty() {
        submit();
        return;
    }
    let remaining = Arc::new(AtomicUsize::new(deps.len()));
    let submit = Arc::new(parking_lot::Mutex::new(Some(submit)));
    for d in deps {
        let remaining = Arc::clone(&remaining);
        let submit = Arc::clone(&submit);
        d.0.on_ready(Box::new(move || {
            if remaining.fetch_sub(1, Ordering::AcqRel) == 1
                && let Some(s) = submit.lock().take()
            {
                s();
            }
        }));
    }
}
