//! The streaming executor: a dataset's blocks, each computed by its own runtime task (its
//! source read and every row-wise stage fused), at most `window` blocks between being started
//! and being consumed, handed out in order. `take(10)` starts no more blocks than it needs.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::DataError;

/// One block's computation.
pub(crate) type Thunk<T> = Arc<dyn Fn() -> Result<Vec<T>, DataError> + Send + Sync>;

/// The blocks of a dataset in order, computed as runtime tasks with at most `window` of them
/// started and not yet consumed.
pub(crate) struct BlockStream<T> {
    blocks: Vec<Thunk<T>>,
    rt: ray::Runtime,
    window: usize,
    next_submit: usize,
    next_yield: usize,
    ready: BTreeMap<usize, Result<Vec<T>, DataError>>,
    tx: crossbeam_channel::Sender<(usize, Result<Vec<T>, DataError>)>,
    rx: crossbeam_channel::Receiver<(usize, Result<Vec<T>, DataError>)>,
    failed: bool,
}

impl<T: Send + 'static> BlockStream<T> {
    pub(crate) fn new(blocks: Vec<Thunk<T>>, rt: ray::Runtime, window: usize) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        BlockStream {
            blocks,
            rt,
            window: window.max(1),
            next_submit: 0,
            next_yield: 0,
            ready: BTreeMap::new(),
            tx,
            rx,
            failed: false,
        }
    }

    fn submit(&mut self) {
        while self.next_submit < self.blocks.len()
            && self.next_submit - self.next_yield < self.window
        {
            let i = self.next_submit;
            self.next_submit += 1;
            let thunk = Arc::clone(&self.blocks[i]);
            let tx = self.tx.clone();
            let sent = parking_lot::Mutex::new(false);
            let task = self
                .rt
                .task(move || {
                    let mut s = sent.lock();
                    if *s {
                        return;
                    }
                    *s = true;
                    let out = catch_unwind(AssertUnwindSafe(|| thunk())).unwrap_or_else(|p| {
                        Err(DataError::Udf {
                            block: i,
                            message: ray::panic_message(&*p),
                        })
                    });
                    let _ = tx.send((i, out));
                })
                .name(format!("data block {i}"))
                .max_retries(0)
                .remote();
            if let Err(e) = task {
                let _ = self.tx.send((i, Err(DataError::Runtime(e.to_string()))));
            }
        }
    }
}

impl<T: Send + 'static> Iterator for BlockStream<T> {
    type Item = Result<Vec<T>, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.next_yield >= self.blocks.len() {
            return None;
        }
        self.submit();
        loop {
            if let Some(r) = self.ready.remove(&self.next_yield) {
                self.next_yield += 1;
                self.failed = r.is_err();
                return Some(r);
            }
            match self.rx.recv() {
                Ok((i, r)) => {
                    self.ready.insert(i, r);
                }
                Err(_) => return Some(Err(DataError::Runtime("the executor stopped".into()))),
            }
        }
    }
}

/// The rows of a stream of blocks, in order; a failed block is one error row.
pub(crate) fn rows<T: 'static>(
    blocks: impl Iterator<Item = Result<Vec<T>, DataError>>,
) -> impl Iterator<Item = Result<T, DataError>> {
    blocks.flat_map(|b| -> Box<dyn Iterator<Item = Result<T, DataError>>> {
        match b {
            Ok(rows) => Box::new(rows.into_iter().map(Ok)),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    })
}
