//! Ray Data on this project's runtime: a [`Dataset<T>`] is a lazy list of blocks, each block
//! computed by one runtime task (its source read and every row-wise stage after it fused, as
//! Ray fuses operators), streamed to the consumer with a bound on blocks in flight, so a
//! dataset larger than memory flows through `map -> filter -> ...` in bounded memory and
//! `take(10)` computes no more blocks than it needs. Stages that need every row (sort,
//! shuffle, group-by, repartition, limit) run their input first.
//!
//! ```no_run
//! // The Ray tutorial's pipeline (the cubes reach 10^24: u128, never a silent overflow).
//! let ds = data::range(10_000).map(|x| x as u128 * x as u128).filter(|x| x % 2 == 0);
//! let pipe = ds.window(4).map(|x| x).filter(|x| x % 2 == 0).flat_map(|x| [x, x * x * x]);
//! println!("{:?}", pipe.take(10)?);
//! # Ok::<(), data::DataError>(())
//! ```

#[cfg(feature = "polars")]
mod dataframe;
mod exec;
mod io;
mod pipeline;
mod source;
mod table;

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

#[cfg(feature = "polars")]
pub use dataframe::from_polars;
use exec::{BlockStream, Thunk};
pub use io::{read_csv, read_json};
pub use pipeline::DatasetPipeline;
pub use source::{from_items, range, read_binary_files, read_text};
pub use table::{GroupedTable, Table, column_f64, from_arrow, read_parquet, write_parquet_file};
// The Arrow and Parquet crates tables are made of, so users name the same versions.
pub use {arrow_array, arrow_schema, parquet};
/// The Polars crates DataFrames are made of (feature `polars`).
#[cfg(feature = "polars")]
pub use {polars, polars_arrow};

/// What can go wrong in a dataset.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DataError {
    /// A user function panicked (or failed) on a row of this block.
    #[error("block {block}: {message}")]
    Udf {
        /// The block's index in its dataset.
        block: usize,
        /// The panic's message.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What happened.
        message: String,
    },
    /// A column that is missing or of the wrong type.
    #[error("column {column:?}: {message}")]
    Column {
        /// The column's name.
        column: String,
        /// What is wrong with it.
        message: String,
    },
    /// Datasets that cannot be combined (`zip` of different lengths), bad arguments.
    #[error("{0}")]
    Invalid(String),
    /// The runtime refused the work.
    #[error("runtime: {0}")]
    Runtime(String),
}

/// The runtime datasets run on: the one given to [`set_runtime`], else a local one with this
/// machine's CPUs, made on first use.
pub fn runtime() -> ray::Runtime {
    RUNTIME
        .get_or_init(|| ray::init(ray::InitOptions::new()).expect("a local runtime starts"))
        .clone()
}

static RUNTIME: OnceLock<ray::Runtime> = OnceLock::new();

/// Runs datasets on `rt` (call before the first dataset runs; `false` if one already did).
pub fn set_runtime(rt: ray::Runtime) -> bool {
    RUNTIME.set(rt).is_ok()
}

/// Time, rows and blocks through one stage.
#[derive(Debug, Default)]
struct StageStats {
    name: String,
    nanos: AtomicU64,
    rows_in: AtomicU64,
    rows_out: AtomicU64,
    blocks: AtomicU64,
    bytes_out: AtomicU64,
}

pub(crate) type Plan<T> = Arc<dyn Fn() -> Result<Vec<Thunk<T>>, DataError> + Send + Sync>;

/// A lazy dataset of `T` rows in blocks.
pub struct Dataset<T> {
    plan: Plan<T>,
    stages: Vec<Arc<StageStats>>,
    /// Blocks started and not yet consumed, at most.
    window: usize,
}

impl<T> Clone for Dataset<T> {
    fn clone(&self) -> Self {
        Dataset {
            plan: Arc::clone(&self.plan),
            stages: self.stages.clone(),
            window: self.window,
        }
    }
}

impl<T> std::fmt::Debug for Dataset<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.stages.iter().map(|s| s.name.as_str()).collect();
        write!(f, "Dataset({})", names.join(" -> "))
    }
}

fn default_window() -> usize {
    (2 * ray::detect_cpus()).max(2)
}

impl<T: Send + Sync + 'static> Dataset<T> {
    /// A dataset of these blocks (each computed when the dataset runs), named `name` in stats.
    pub(crate) fn from_thunks(name: &str, plan: Plan<T>) -> Self {
        Dataset {
            plan,
            stages: vec![Arc::new(StageStats {
                name: name.to_string(),
                ..StageStats::default()
            })],
            window: default_window(),
        }
    }

    /// A dataset of blocks already in memory.
    pub(crate) fn from_blocks(name: &str, blocks: Arc<Vec<Vec<T>>>) -> Self
    where
        T: Clone,
    {
        Dataset::from_thunks(name, Arc::new(move || Ok(in_memory(&blocks))))
    }

    /// A row-wise stage: `f` turns each block into the next stage's block, fused into the
    /// block's task.
    fn stage<U: Send + Sync + 'static>(
        &self,
        name: &str,
        f: impl Fn(Vec<T>) -> Vec<U> + Send + Sync + 'static,
    ) -> Dataset<U> {
        self.stage_indexed(name, move |_, rows| Ok(f(rows)))
    }

    /// A row-wise stage that knows the block's index and may fail.
    pub(crate) fn stage_indexed<U: Send + Sync + 'static>(
        &self,
        name: &str,
        f: impl Fn(usize, Vec<T>) -> Result<Vec<U>, DataError> + Send + Sync + 'static,
    ) -> Dataset<U> {
        let stats = Arc::new(StageStats {
            name: name.to_string(),
            ..StageStats::default()
        });
        let s2 = Arc::clone(&stats);
        let f = Arc::new(f);
        let parent = Arc::clone(&self.plan);
        let plan: Plan<U> = Arc::new(move || {
            Ok(parent()?
                .into_iter()
                .enumerate()
                .map(|(i, th)| {
                    let (f, s) = (Arc::clone(&f), Arc::clone(&s2));
                    Arc::new(move || {
                        let rows = th()?;
                        let t = Instant::now();
                        let n_in = rows.len() as u64;
                        let out = f(i, rows)?;
                        s.nanos
                            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                        s.rows_in.fetch_add(n_in, Ordering::Relaxed);
                        s.rows_out.fetch_add(out.len() as u64, Ordering::Relaxed);
                        s.bytes_out.fetch_add(
                            (out.len() * std::mem::size_of::<U>()) as u64,
                            Ordering::Relaxed,
                        );
                        s.blocks.fetch_add(1, Ordering::Relaxed);
                        Ok(out)
                    }) as Thunk<U>
                })
                .collect())
        });
        let mut stages = self.stages.clone();
        stages.push(stats);
        Dataset {
            plan,
            stages,
            window: self.window,
        }
    }

    /// Each row through `f` (`ds.map(fn)`).
    pub fn map<U: Send + Sync + 'static>(
        &self,
        f: impl Fn(T) -> U + Send + Sync + 'static,
    ) -> Dataset<U> {
        self.stage("map", move |rows| rows.into_iter().map(&f).collect())
    }

    /// The rows `f` keeps.
    pub fn filter(&self, f: impl Fn(&T) -> bool + Send + Sync + 'static) -> Dataset<T> {
        self.stage("filter", move |rows| {
            rows.into_iter().filter(|r| f(r)).collect()
        })
    }

    /// Each row to any number of rows.
    pub fn flat_map<U: Send + Sync + 'static, I: IntoIterator<Item = U>>(
        &self,
        f: impl Fn(T) -> I + Send + Sync + 'static,
    ) -> Dataset<U> {
        self.stage("flat_map", move |rows| {
            rows.into_iter().flat_map(&f).collect()
        })
    }

    /// Batches of up to `batch_size` rows (within a block) through `f`.
    pub fn map_batches<U: Send + Sync + 'static>(
        &self,
        batch_size: usize,
        f: impl Fn(Vec<T>) -> Vec<U> + Send + Sync + 'static,
    ) -> Dataset<U> {
        let size = batch_size.max(1);
        self.stage("map_batches", move |rows| {
            let mut out = Vec::new();
            let mut rest = rows;
            while !rest.is_empty() {
                let tail = rest.split_off(size.min(rest.len()));
                out.extend(f(rest));
                rest = tail;
            }
            out
        })
    }

    /// Runs with at most `n` blocks started and not yet consumed (default: twice the CPUs).
    pub fn with_window(mut self, n: usize) -> Self {
        self.window = n.max(1);
        self
    }

    /// The blocks, in order, as they are computed.
    pub fn iter_blocks(
        &self,
    ) -> Result<impl Iterator<Item = Result<Vec<T>, DataError>> + use<T>, DataError> {
        let blocks = (self.plan)()?;
        Ok(BlockStream::new(blocks, runtime(), self.window))
    }

    /// The rows, in order.
    pub fn iter_rows(
        &self,
    ) -> Result<impl Iterator<Item = Result<T, DataError>> + use<T>, DataError> {
        Ok(exec::rows(self.iter_blocks()?))
    }

    /// Batches of exactly `batch_size` rows (the last may be shorter), across blocks.
    pub fn iter_batches(
        &self,
        batch_size: usize,
    ) -> Result<impl Iterator<Item = Result<Vec<T>, DataError>> + use<T>, DataError> {
        let size = batch_size.max(1);
        let mut blocks = self.iter_blocks()?;
        let mut buf: Vec<T> = Vec::new();
        let mut done = false;
        Ok(std::iter::from_fn(move || {
            while !done && buf.len() < size {
                match blocks.next() {
                    Some(Ok(rows)) => buf.extend(rows),
                    Some(Err(e)) => {
                        done = true;
                        return Some(Err(e));
                    }
                    None => done = true,
                }
            }
            if buf.is_empty() {
                return None;
            }
            let rest = buf.split_off(size.min(buf.len()));
            Some(Ok(std::mem::replace(&mut buf, rest)))
        }))
    }

    /// The first `n` rows, computing no more blocks than needed.
    pub fn take(&self, n: usize) -> Result<Vec<T>, DataError> {
        let mut out = Vec::with_capacity(n.min(1 << 16));
        if n == 0 {
            return Ok(out);
        }
        for b in self.iter_blocks()? {
            let rows = b?;
            let need = n - out.len();
            out.extend(rows.into_iter().take(need));
            if out.len() >= n {
                break;
            }
        }
        Ok(out)
    }

    /// Every row.
    pub fn take_all(&self) -> Result<Vec<T>, DataError> {
        let mut out = Vec::new();
        for b in self.iter_blocks()? {
            out.extend(b?);
        }
        Ok(out)
    }

    /// Prints the first `n` rows, one per line.
    pub fn show(&self, n: usize) -> Result<(), DataError>
    where
        T: std::fmt::Debug,
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for r in self.take(n)? {
            let _ = writeln!(out, "{r:?}");
        }
        Ok(())
    }

    /// How many rows.
    pub fn count(&self) -> Result<usize, DataError> {
        let mut n = 0;
        for b in self.iter_blocks()? {
            n += b?.len();
        }
        Ok(n)
    }

    /// Folds every row: `init` per block, `fold` over its rows, `merge` of the blocks'.
    pub fn aggregate<A: Send + 'static>(
        &self,
        init: impl Fn() -> A,
        fold: impl Fn(A, &T) -> A,
        merge: impl Fn(A, A) -> A,
    ) -> Result<A, DataError> {
        let mut acc = init();
        for b in self.iter_blocks()? {
            let part = b?.iter().fold(init(), &fold);
            acc = merge(acc, part);
        }
        Ok(acc)
    }

    /// Computes every block now and keeps them (Ray's `materialize`).
    pub fn materialize(&self) -> Result<Dataset<T>, DataError>
    where
        T: Clone,
    {
        let blocks: Result<Vec<Vec<T>>, DataError> = self.iter_blocks()?.collect();
        let mut d = Dataset::from_blocks("materialized", Arc::new(blocks?));
        d.stages = self.stages.clone();
        Ok(d)
    }

    /// Per stage: time spent in it (summed over blocks), rows in and out, blocks and bytes out
    /// (of the row type's size), as measured by the runs so far.
    pub fn stats(&self) -> String {
        let mut lines = Vec::new();
        for s in &self.stages {
            lines.push(format!(
                "{:<12} {:>10.3} ms {:>12} rows in {:>12} rows out {:>6} blocks {:>12} bytes",
                s.name,
                s.nanos.load(Ordering::Relaxed) as f64 / 1e6,
                s.rows_in.load(Ordering::Relaxed),
                s.rows_out.load(Ordering::Relaxed),
                s.blocks.load(Ordering::Relaxed),
                s.bytes_out.load(Ordering::Relaxed),
            ));
        }
        lines.join("\n")
    }

    /// Runs this dataset first, then makes `f`'s blocks of its rows (a stage over all rows).
    fn all_to_all<U: Send + Sync + Clone + 'static>(
        &self,
        name: &str,
        f: impl Fn(Vec<Vec<T>>) -> Result<Vec<Vec<U>>, DataError> + Send + Sync + 'static,
    ) -> Dataset<U> {
        let parent = self.clone();
        let plan: Plan<U> = Arc::new(move || {
            let blocks: Result<Vec<Vec<T>>, DataError> = parent.iter_blocks()?.collect();
            Ok(in_memory(&Arc::new(f(blocks?)?)))
        });
        let mut d = Dataset::from_thunks(name, plan);
        let mut stages = self.stages.clone();
        stages.extend(d.stages);
        d.stages = stages;
        d.window = self.window;
        d
    }

    /// The first `n` rows (runs its input only as far as needed).
    pub fn limit(&self, n: usize) -> Dataset<T>
    where
        T: Clone,
    {
        let parent = self.clone();
        let plan: Plan<T> = Arc::new(move || {
            let rows = Arc::new(parent.take(n)?);
            Ok(vec![Arc::new(move || Ok(rows.as_ref().clone())) as Thunk<T>])
        });
        let mut d = Dataset::from_thunks("limit", plan);
        let mut stages = self.stages.clone();
        stages.extend(d.stages);
        d.stages = stages;
        d
    }

    /// The rows in `n` blocks of near-equal size, in order.
    pub fn repartition(&self, n: usize) -> Dataset<T>
    where
        T: Clone,
    {
        let n = n.max(1);
        self.all_to_all("repartition", move |blocks| {
            Ok(split_even(blocks.into_iter().flatten().collect(), n))
        })
    }

    /// The rows in a random order (seeded: the same seed, the same order).
    pub fn random_shuffle(&self, seed: u64) -> Dataset<T>
    where
        T: Clone,
    {
        self.all_to_all("random_shuffle", move |blocks| {
            let k = blocks.len().max(1);
            let mut rows: Vec<T> = blocks.into_iter().flatten().collect();
            shuffle(&mut rows, seed);
            Ok(split_even(rows, k))
        })
    }

    /// The rows sorted by `key` (stable).
    pub fn sort_by_key<K: Ord>(&self, key: impl Fn(&T) -> K + Send + Sync + 'static) -> Dataset<T>
    where
        T: Clone,
    {
        self.all_to_all("sort", move |blocks| {
            let k = blocks.len().max(1);
            let mut rows: Vec<T> = blocks.into_iter().flatten().collect();
            rows.sort_by_key(|r| key(r));
            Ok(split_even(rows, k))
        })
    }

    /// This dataset's rows, then `other`'s.
    pub fn union(&self, other: &Dataset<T>) -> Dataset<T> {
        let (a, b) = (Arc::clone(&self.plan), Arc::clone(&other.plan));
        let plan: Plan<T> = Arc::new(move || {
            let mut blocks = a()?;
            blocks.extend(b()?);
            Ok(blocks)
        });
        let mut d = Dataset::from_thunks("union", plan);
        let mut stages = self.stages.clone();
        stages.extend(other.stages.iter().cloned());
        stages.extend(d.stages);
        d.stages = stages;
        d.window = self.window;
        d
    }

    /// Row `i` of this dataset with row `i` of `other`; both must have as many rows.
    pub fn zip<U: Send + Sync + Clone + 'static>(&self, other: &Dataset<U>) -> Dataset<(T, U)>
    where
        T: Clone,
    {
        let other = other.clone();
        self.all_to_all("zip", move |blocks| {
            let k = blocks.len().max(1);
            let left: Vec<T> = blocks.into_iter().flatten().collect();
            let right = other.take_all()?;
            if left.len() != right.len() {
                return Err(DataError::Invalid(format!(
                    "zip: {} rows against {}; both datasets need as many rows",
                    left.len(),
                    right.len()
                )));
            }
            Ok(split_even(left.into_iter().zip(right).collect(), k))
        })
    }

    /// Groups the rows by `key` (Ray's `groupby`).
    pub fn groupby<K: Hash + Eq + Ord + Clone + Send + Sync + 'static>(
        &self,
        key: impl Fn(&T) -> K + Send + Sync + 'static,
    ) -> Grouped<T, K>
    where
        T: Clone,
    {
        Grouped {
            ds: self.clone(),
            key: Arc::new(key),
        }
    }

    /// `n` datasets of near-equal size, in order (Ray's `split`).
    pub fn split(&self, n: usize) -> Result<Vec<Dataset<T>>, DataError>
    where
        T: Clone,
    {
        let rows = self.take_all()?;
        Ok(split_even(rows, n.max(1))
            .into_iter()
            .map(|part| Dataset::from_blocks("split", Arc::new(vec![part])))
            .collect())
    }

    /// (train, test): the last `test_fraction` of the rows (after a seeded shuffle when
    /// `shuffle` is given) as the test set.
    pub fn train_test_split(
        &self,
        test_fraction: f64,
        shuffle_seed: Option<u64>,
    ) -> Result<(Dataset<T>, Dataset<T>), DataError>
    where
        T: Clone,
    {
        if !(test_fraction > 0.0 && test_fraction < 1.0) {
            return Err(DataError::Invalid(format!(
                "train_test_split: test_fraction {test_fraction}: expected a number in (0, 1)"
            )));
        }
        let mut rows = self.take_all()?;
        if let Some(seed) = shuffle_seed {
            shuffle(&mut rows, seed);
        }
        let n_test = ((rows.len() as f64) * test_fraction).ceil() as usize;
        let test = rows.split_off(rows.len() - n_test.min(rows.len()));
        Ok((
            Dataset::from_blocks("train", Arc::new(vec![rows])),
            Dataset::from_blocks("test", Arc::new(vec![test])),
        ))
    }

    /// The rows' pipeline of concurrent stages (Ray's `window()`): the stages after it run at
    /// once, each on its own worker, windows of `blocks_per_window` blocks flowing through.
    pub fn window(&self, blocks_per_window: usize) -> DatasetPipeline<T> {
        DatasetPipeline::new(self.clone(), blocks_per_window)
    }
}

/// A number a dataset can sum and average (as f64, as Ray's aggregations return floats).
pub trait Numeric: Copy {
    /// The value as f64 (rounded for 64-bit and wider integers beyond 2^53).
    fn as_f64(self) -> f64;
}

macro_rules! numeric {
    ($($t:ty),*) => {$(
        impl Numeric for $t {
            fn as_f64(self) -> f64 {
                self as f64
            }
        }
    )*};
}
numeric!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64
);

/// Sums and statistics of numeric rows.
impl<T: Numeric + Send + Sync + 'static> Dataset<T> {
    /// (rows, their sum as f64).
    fn count_sum(&self) -> Result<(usize, f64), DataError> {
        self.aggregate(
            || (0usize, 0.0),
            |(n, s), x| (n + 1, s + x.as_f64()),
            |a, b| (a.0 + b.0, a.1 + b.1),
        )
    }

    /// The sum, as f64 (`None` for no rows).
    pub fn sum(&self) -> Result<Option<f64>, DataError> {
        let (n, s) = self.count_sum()?;
        Ok((n > 0).then_some(s))
    }

    /// The smallest row.
    pub fn min(&self) -> Result<Option<f64>, DataError> {
        self.aggregate(|| None, |m, x| keep_min(m, x.as_f64()), pick_min)
    }

    /// The largest row.
    pub fn max(&self) -> Result<Option<f64>, DataError> {
        self.aggregate(|| None, |m, x| keep_max(m, x.as_f64()), pick_max)
    }

    /// The mean.
    pub fn mean(&self) -> Result<Option<f64>, DataError> {
        let (n, s) = self.count_sum()?;
        Ok((n > 0).then(|| s / n as f64))
    }

    /// The standard deviation with `ddof` (Ray's default 1), merged per block (Chan et al.).
    pub fn std(&self, ddof: usize) -> Result<Option<f64>, DataError> {
        let m = self.aggregate(Moments::default, |m, x| m.push(x.as_f64()), Moments::merge)?;
        Ok(m.std(ddof))
    }
}

/// Count, mean and sum of squared deviations of a stream of numbers (Welford), mergeable
/// across blocks (Chan et al.).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Moments {
    n: usize,
    mean: f64,
    m2: f64,
}

impl Moments {
    pub(crate) fn push(self, x: f64) -> Moments {
        let n = self.n + 1;
        let d = x - self.mean;
        let mean = self.mean + d / n as f64;
        Moments {
            n,
            mean,
            m2: self.m2 + d * (x - mean),
        }
    }

    pub(crate) fn merge(a: Moments, b: Moments) -> Moments {
        if a.n == 0 {
            return b;
        }
        if b.n == 0 {
            return a;
        }
        let n = a.n + b.n;
        let d = b.mean - a.mean;
        Moments {
            n,
            mean: a.mean + d * b.n as f64 / n as f64,
            m2: a.m2 + b.m2 + d * d * (a.n * b.n) as f64 / n as f64,
        }
    }

    pub(crate) fn std(self, ddof: usize) -> Option<f64> {
        (self.n > ddof).then(|| (self.m2 / (self.n - ddof) as f64).sqrt())
    }
}

/// The smaller of a running minimum and a value.
pub(crate) fn keep_min(m: Option<f64>, x: f64) -> Option<f64> {
    Some(m.map_or(x, |m| m.min(x)))
}

/// The larger of a running maximum and a value.
pub(crate) fn keep_max(m: Option<f64>, x: f64) -> Option<f64> {
    Some(m.map_or(x, |m| m.max(x)))
}

/// The smaller of two running minima.
pub(crate) fn pick_min(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match b {
        Some(b) => keep_min(a, b),
        None => a,
    }
}

/// The larger of two running maxima.
pub(crate) fn pick_max(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match b {
        Some(b) => keep_max(a, b),
        None => a,
    }
}

/// A dataset grouped by a key (`ds.groupby(key)`).
pub struct Grouped<T, K> {
    ds: Dataset<T>,
    key: Arc<dyn Fn(&T) -> K + Send + Sync>,
}

impl<T, K> std::fmt::Debug for Grouped<T, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Grouped({:?})", self.ds)
    }
}

impl<T: Clone + Send + Sync + 'static, K: Hash + Eq + Ord + Clone + Send + Sync + 'static>
    Grouped<T, K>
{
    /// `f(key, rows)` per group, the groups in key order.
    pub fn map_groups<U: Clone + Send + Sync + 'static>(
        &self,
        f: impl Fn(&K, Vec<T>) -> Vec<U> + Send + Sync + 'static,
    ) -> Dataset<U> {
        let key = Arc::clone(&self.key);
        self.ds.all_to_all("groupby", move |blocks| {
            let mut groups: HashMap<K, Vec<T>> = HashMap::new();
            for r in blocks.into_iter().flatten() {
                groups.entry(key(&r)).or_default().push(r);
            }
            let mut keys: Vec<K> = groups.keys().cloned().collect();
            keys.sort();
            Ok(keys
                .into_iter()
                .map(|k| {
                    let rows = groups.remove(&k).unwrap_or_default();
                    f(&k, rows)
                })
                .collect())
        })
    }

    /// (key, rows in the group), in key order.
    pub fn count(&self) -> Dataset<(K, usize)> {
        self.map_groups(|k, rows| vec![(k.clone(), rows.len())])
    }

    /// (key, sum of `value` over the group).
    pub fn sum(&self, value: impl Fn(&T) -> f64 + Send + Sync + 'static) -> Dataset<(K, f64)> {
        self.map_groups(move |k, rows| vec![(k.clone(), rows.iter().map(&value).sum())])
    }

    /// (key, smallest `value` in the group).
    pub fn min(&self, value: impl Fn(&T) -> f64 + Send + Sync + 'static) -> Dataset<(K, f64)> {
        self.map_groups(move |k, rows| {
            vec![(
                k.clone(),
                rows.iter().map(&value).fold(f64::INFINITY, f64::min),
            )]
        })
    }

    /// (key, largest `value` in the group).
    pub fn max(&self, value: impl Fn(&T) -> f64 + Send + Sync + 'static) -> Dataset<(K, f64)> {
        self.map_groups(move |k, rows| {
            vec![(
                k.clone(),
                rows.iter().map(&value).fold(f64::NEG_INFINITY, f64::max),
            )]
        })
    }

    /// (key, mean of `value` over the group).
    pub fn mean(&self, value: impl Fn(&T) -> f64 + Send + Sync + 'static) -> Dataset<(K, f64)> {
        self.map_groups(move |k, rows| {
            let n = rows.len().max(1) as f64;
            vec![(k.clone(), rows.iter().map(&value).sum::<f64>() / n)]
        })
    }
}

/// One thunk per block held in memory (each hands out a copy of its block).
fn in_memory<T: Clone + Send + Sync + 'static>(blocks: &Arc<Vec<Vec<T>>>) -> Vec<Thunk<T>> {
    (0..blocks.len())
        .map(|i| {
            let b = Arc::clone(blocks);
            Arc::new(move || Ok(b[i].clone())) as Thunk<T>
        })
        .collect()
}

/// `rows` in `n` near-equal parts, in order (no empty part unless there are fewer rows).
fn split_even<T>(mut rows: Vec<T>, n: usize) -> Vec<Vec<T>> {
    let n = n.max(1);
    let len = rows.len();
    let mut parts = Vec::with_capacity(n);
    let mut sizes: Vec<usize> = (0..n).map(|i| len / n + usize::from(i < len % n)).collect();
    sizes.reverse();
    for s in sizes {
        let tail = rows.split_off(rows.len() - s);
        parts.push(tail);
    }
    parts.reverse();
    parts
}

/// Fisher–Yates with SplitMix64 (the same order for the same seed on every platform).
pub(crate) fn shuffle<T>(rows: &mut [T], seed: u64) {
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in (1..rows.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        rows.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_even_keeps_order_and_sizes() {
        let parts = split_even((0..10).collect::<Vec<i32>>(), 3);
        assert_eq!(parts, vec![vec![0, 1, 2, 3], vec![4, 5, 6], vec![7, 8, 9]]);
        assert_eq!(
            split_even(Vec::<i32>::new(), 2),
            vec![Vec::<i32>::new(), vec![]]
        );
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let mut a: Vec<u32> = (0..100).collect();
        let mut b = a.clone();
        shuffle(&mut a, 7);
        shuffle(&mut b, 7);
        assert_eq!(a, b);
        assert_ne!(a, (0..100).collect::<Vec<u32>>());
        a.sort();
        assert_eq!(a, (0..100).collect::<Vec<u32>>());
    }
}
