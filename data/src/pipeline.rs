//! `window()`: a dataset's rows through stages that run at once, each on a worker of its own,
//! windows of blocks flowing from one to the next through bounded queues (Ray's
//! `DatasetPipeline`; its streaming executor does the same today). While the third stage
//! works on window k, the second works on window k + 1 and the source reads ahead.

use std::sync::Arc;

use crossbeam_channel::Receiver;

use crate::{DataError, Dataset};

type Window<T> = Result<Vec<T>, DataError>;
type Start<T> = Arc<dyn Fn(&ray::Runtime) -> Result<Receiver<Window<T>>, DataError> + Send + Sync>;

/// Windows in flight between two stages, at most.
const DEPTH: usize = 2;

/// A pipeline of concurrent stages over a dataset (`ds.window(n)`).
pub struct DatasetPipeline<T> {
    /// Starts every stage up to this one and returns its output queue.
    start: Start<T>,
    stages: Vec<String>,
}

impl<T> std::fmt::Debug for DatasetPipeline<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatasetPipeline({})", self.stages.join(" | "))
    }
}

impl<T: Send + Sync + 'static> DatasetPipeline<T> {
    pub(crate) fn new(source: Dataset<T>, blocks_per_window: usize) -> Self {
        let per = blocks_per_window.max(1);
        let name = format!("{source:?}");
        let start: Start<T> = Arc::new(move |rt: &ray::Runtime| {
            let (tx, rx) = crossbeam_channel::bounded::<Window<T>>(DEPTH);
            let source = source.clone().with_window(per);
            spawn(rt, "window source", move || {
                let blocks = match source.iter_blocks() {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let (mut window, mut n) = (Vec::new(), 0);
                for b in blocks {
                    match b {
                        Ok(rows) => window.extend(rows),
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                    n += 1;
                    // A send fails once the consumer has what it wants: stop reading.
                    if n == per && tx.send(Ok(std::mem::take(&mut window))).is_err() {
                        return;
                    }
                    n %= per;
                }
                if !window.is_empty() {
                    let _ = tx.send(Ok(window));
                }
            })?;
            Ok(rx)
        });
        DatasetPipeline {
            start,
            stages: vec![name],
        }
    }

    /// A stage turning each window into the next stage's, on a worker of its own.
    fn then<U: Send + Sync + 'static>(
        &self,
        name: &str,
        f: impl Fn(Vec<T>) -> Vec<U> + Send + Sync + 'static,
    ) -> DatasetPipeline<U> {
        let prev = Arc::clone(&self.start);
        let f = Arc::new(f);
        let label = format!("window stage {name}");
        let start: Start<U> = Arc::new(move |rt: &ray::Runtime| {
            let input = prev(rt)?;
            let (tx, rx) = crossbeam_channel::bounded::<Window<U>>(DEPTH);
            let f = Arc::clone(&f);
            spawn(rt, &label, move || {
                for (k, w) in input.iter().enumerate() {
                    let out = w.and_then(|rows| {
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(rows))).map_err(
                            |p| DataError::Udf {
                                block: k,
                                message: ray::panic_message(&*p),
                            },
                        )
                    });
                    let failed = out.is_err();
                    if tx.send(out).is_err() || failed {
                        return;
                    }
                }
            })?;
            Ok(rx)
        });
        let mut stages = self.stages.clone();
        stages.push(name.to_string());
        DatasetPipeline { start, stages }
    }

    /// A stage mapping each row.
    pub fn map<U: Send + Sync + 'static>(
        &self,
        f: impl Fn(T) -> U + Send + Sync + 'static,
    ) -> DatasetPipeline<U> {
        self.then("map", move |rows| rows.into_iter().map(&f).collect())
    }

    /// A stage keeping the rows `f` accepts.
    pub fn filter(&self, f: impl Fn(&T) -> bool + Send + Sync + 'static) -> DatasetPipeline<T> {
        self.then("filter", move |rows| {
            rows.into_iter().filter(|r| f(r)).collect()
        })
    }

    /// A stage turning each row into any number of rows.
    pub fn flat_map<U: Send + Sync + 'static, I: IntoIterator<Item = U>>(
        &self,
        f: impl Fn(T) -> I + Send + Sync + 'static,
    ) -> DatasetPipeline<U> {
        self.then("flat_map", move |rows| {
            rows.into_iter().flat_map(&f).collect()
        })
    }

    /// Starts the stages; the rows come out in order. Dropping the iterator stops them.
    pub fn iter_rows(&self) -> Result<impl Iterator<Item = Result<T, DataError>>, DataError> {
        let rx = (self.start)(&crate::runtime())?;
        Ok(crate::exec::rows(rx.into_iter()))
    }

    /// The first `n` rows; the stages stop once they are out.
    pub fn take(&self, n: usize) -> Result<Vec<T>, DataError> {
        let mut out = Vec::with_capacity(n.min(1 << 16));
        if n == 0 {
            return Ok(out);
        }
        for r in self.iter_rows()? {
            out.push(r?);
            if out.len() == n {
                break;
            }
        }
        Ok(out)
    }

    /// Every row.
    pub fn take_all(&self) -> Result<Vec<T>, DataError> {
        self.iter_rows()?.collect()
    }
}

/// A long-running stage: a runtime task that holds no CPU (it waits on its queues most of the
/// time; the blocks' tasks hold the CPUs).
fn spawn(
    rt: &ray::Runtime,
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> Result<(), DataError> {
    let f = parking_lot::Mutex::new(Some(f));
    rt.task(move || {
        if let Some(f) = f.lock().take() {
            f();
        }
    })
    .name(name.to_string())
    .resource(ray::CPU, 0.0)
    .max_retries(0)
    .remote()
    .map(|_| ())
    .map_err(|e| DataError::Runtime(e.to_string()))
}
