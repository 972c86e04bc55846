//! Tabular datasets: blocks of Arrow record batches (Ray Data's block format), made from
//! typed rows through serde (serde_arrow), from Arrow batches or from Parquet files, and back.
//! Every transformation is lazy and runs per block as a runtime task, as for typed datasets.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, RecordBatch, UInt32Array};
use arrow_schema::{ArrowError, DataType, Field, FieldRef, Schema, SchemaRef};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::exec::Thunk;
use crate::{DataError, Dataset, Moments, Numeric, Plan};

/// Rows per record batch read from a Parquet file (each file is one block of such batches).
const READ_BATCH_ROWS: usize = 64 * 1024;

/// A lazy tabular dataset: blocks of Arrow record batches of one schema.
#[derive(Clone)]
pub struct Table {
    ds: Dataset<RecordBatch>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Table{:?}", self.ds)
    }
}

fn arrow_err(e: impl std::fmt::Display) -> DataError {
    DataError::Invalid(e.to_string())
}

fn io(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// The column names of `schema`, for error messages.
fn names(schema: &Schema) -> String {
    let n: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    n.join(", ")
}

/// The index of column `name`, or an error naming it and the columns there are.
fn column_index(schema: &Schema, name: &str) -> Result<usize, DataError> {
    schema.index_of(name).map_err(|_| DataError::Column {
        column: name.to_string(),
        message: format!("no such column; the columns are: {}", names(schema)),
    })
}

/// Every batch of `batches` as one (the schema of the first; none: an empty batch of `schema`).
fn concat(batches: &[RecordBatch], schema: Option<&SchemaRef>) -> Result<RecordBatch, DataError> {
    match (batches.first(), schema) {
        (Some(b), _) if batches.len() == 1 => Ok(b.clone()),
        (Some(b), _) => {
            arrow_select::concat::concat_batches(&b.schema(), batches).map_err(arrow_err)
        }
        (None, Some(s)) => Ok(RecordBatch::new_empty(Arc::clone(s))),
        (None, None) => Ok(RecordBatch::new_empty(Arc::new(Schema::empty()))),
    }
}

/// `batch` in pieces of at most `size` rows (zero-copy slices).
fn slices(batch: &RecordBatch, size: usize) -> Vec<RecordBatch> {
    let size = size.max(1);
    (0..batch.num_rows())
        .step_by(size)
        .map(|o| batch.slice(o, size.min(batch.num_rows() - o)))
        .collect()
}

/// The rows of `batch` in `n` near-equal batches, in order.
fn split_batch(batch: &RecordBatch, n: usize) -> Vec<RecordBatch> {
    let n = n.max(1);
    let len = batch.num_rows();
    let mut out = Vec::with_capacity(n);
    let mut at = 0;
    for i in 0..n {
        let s = len / n + usize::from(i < len % n);
        out.push(batch.slice(at, s));
        at += s;
    }
    out
}

/// The non-null values of a numeric column (any integer or float type) as f64; another type
/// is an error naming `column`.
pub fn column_f64(a: &dyn Array, column: &str) -> Result<Vec<f64>, DataError> {
    macro_rules! values {
        ($t:ty) => {
            a.as_primitive::<$t>()
                .iter()
                .flatten()
                .map(|v| v.as_f64())
                .collect()
        };
    }
    Ok(match a.data_type() {
        DataType::Int8 => values!(Int8Type),
        DataType::Int16 => values!(Int16Type),
        DataType::Int32 => values!(Int32Type),
        DataType::Int64 => values!(Int64Type),
        DataType::UInt8 => values!(UInt8Type),
        DataType::UInt16 => values!(UInt16Type),
        DataType::UInt32 => values!(UInt32Type),
        DataType::UInt64 => values!(UInt64Type),
        DataType::Float32 => values!(Float32Type),
        DataType::Float64 => values!(Float64Type),
        other => {
            return Err(DataError::Column {
                column: column.to_string(),
                message: format!("is {other}, not a number"),
            });
        }
    })
}

/// Row `i` of `a` as text (for `show` and group keys): numbers, booleans, strings, lists;
/// `null` for nulls.
fn cell(a: &dyn Array, i: usize) -> String {
    if a.is_null(i) {
        return "null".into();
    }
    macro_rules! prim {
        ($t:ty) => {
            a.as_primitive::<$t>().value(i).to_string()
        };
    }
    let list = |values: ArrayRef| -> String {
        let items: Vec<String> = (0..values.len()).map(|j| cell(&values, j)).collect();
        format!("[{}]", items.join(", "))
    };
    match a.data_type() {
        DataType::Boolean => a.as_boolean().value(i).to_string(),
        DataType::Int8 => prim!(Int8Type),
        DataType::Int16 => prim!(Int16Type),
        DataType::Int32 => prim!(Int32Type),
        DataType::Int64 => prim!(Int64Type),
        DataType::UInt8 => prim!(UInt8Type),
        DataType::UInt16 => prim!(UInt16Type),
        DataType::UInt32 => prim!(UInt32Type),
        DataType::UInt64 => prim!(UInt64Type),
        DataType::Float32 => prim!(Float32Type),
        DataType::Float64 => prim!(Float64Type),
        DataType::Utf8 => format!("{:?}", a.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => format!("{:?}", a.as_string::<i64>().value(i)),
        DataType::List(_) => list(a.as_list::<i32>().value(i)),
        DataType::LargeList(_) => list(a.as_list::<i64>().value(i)),
        DataType::FixedSizeList(..) => list(a.as_fixed_size_list().value(i)),
        _ => format!("{:?}", a.slice(i, 1)),
    }
}

/// Whether two schemas hold the same columns (names, types, order); else what differs.
fn schema_difference(a: &Schema, b: &Schema) -> Option<String> {
    for f in a.fields() {
        match b.field_with_name(f.name()) {
            Err(_) => return Some(format!("column {:?} is missing", f.name())),
            Ok(g) if g.data_type() != f.data_type() => {
                return Some(format!(
                    "column {:?} is {} here but {} in the first file",
                    f.name(),
                    g.data_type(),
                    f.data_type()
                ));
            }
            Ok(_) => {}
        }
    }
    for g in b.fields() {
        if a.field_with_name(g.name()).is_err() {
            return Some(format!("column {:?} is not in the first file", g.name()));
        }
    }
    None
}

/// The Arrow schema of a Parquet file, reading only its footer.
fn parquet_schema(path: &Path) -> Result<SchemaRef, DataError> {
    let f = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| io(path, e))?;
    Ok(Arc::clone(b.schema()))
}

/// Reads Parquet files as a tabular dataset (Ray's `read_parquet`): a file, a folder (hidden
/// files skipped) or a `*`/`?` pattern, one block per file read in its own task. Every file
/// must have the first one's columns; a file that differs is an error naming it and the column.
pub fn read_parquet(path: impl AsRef<Path>) -> Table {
    let path = path.as_ref().to_path_buf();
    let plan: Plan<RecordBatch> = Arc::new(move || {
        let files = crate::source::files(&path)?;
        let first = parquet_schema(&files[0])?;
        let mut thunks = Vec::with_capacity(files.len());
        for f in files {
            let s = parquet_schema(&f)?;
            if let Some(d) = schema_difference(&first, &s) {
                return Err(io(&f, format!("schema differs from the first file's: {d}")));
            }
            thunks.push(Arc::new(move || read_parquet_file(&f)) as Thunk<RecordBatch>);
        }
        Ok(thunks)
    });
    Table {
        ds: Dataset::from_thunks("read_parquet", plan),
    }
}

fn read_parquet_file(path: &Path) -> Result<Vec<RecordBatch>, DataError> {
    let f = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| io(path, e))?
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .map_err(|e| io(path, e))?;
    reader.map(|b| b.map_err(|e| io(path, e))).collect()
}

/// A tabular dataset of these record batches, one block each (Ray's `from_arrow`); they must
/// share one schema.
pub fn from_arrow(batches: Vec<RecordBatch>) -> Result<Table, DataError> {
    if let Some(first) = batches.first() {
        for (i, b) in batches.iter().enumerate().skip(1) {
            if let Some(d) = schema_difference(&first.schema(), &b.schema()) {
                return Err(DataError::Invalid(format!(
                    "from_arrow: batch {i}'s schema differs from batch 0's: {d}"
                )));
            }
        }
    }
    let blocks: Vec<Vec<RecordBatch>> = batches.into_iter().map(|b| vec![b]).collect();
    Ok(Table {
        ds: Dataset::from_blocks("from_arrow", Arc::new(blocks)),
    })
}

/// The Arrow fields serde traces for `T` (options: nullable fields, so `Option` works).
fn fields_of<T: DeserializeOwned>() -> Result<Vec<FieldRef>, DataError> {
    use serde_arrow::schema::{SchemaLike, TracingOptions};
    Vec::<FieldRef>::from_type::<T>(TracingOptions::default().allow_null_fields(true)).map_err(
        |e| {
            DataError::Invalid(format!(
                "no Arrow schema for {}: {e}",
                std::any::type_name::<T>()
            ))
        },
    )
}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Dataset<T> {
    /// The rows as a tabular dataset, one record batch per block, columns from `T`'s fields
    /// (through serde: structs of numbers, strings, booleans, options, vectors, nested structs).
    pub fn to_table(&self) -> Table {
        let fields: Arc<Result<Vec<FieldRef>, DataError>> = Arc::new(fields_of::<T>());
        Table {
            ds: self.stage_indexed("to_table", move |i, rows| {
                let fields = fields.as_ref().as_ref().map_err(Clone::clone)?;
                let b =
                    serde_arrow::to_record_batch(fields, &rows).map_err(|e| DataError::Udf {
                        block: i,
                        message: format!("to Arrow: {e}"),
                    })?;
                Ok(vec![b])
            }),
        }
    }

    /// Writes the rows as Parquet files into folder `dir` (see [`Table::write_parquet`]).
    pub fn write_parquet(&self, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, DataError> {
        self.to_table().write_parquet(dir)
    }
}

impl Table {
    fn wrap(ds: Dataset<RecordBatch>) -> Table {
        Table { ds }
    }

    /// A per-block stage on the block's batches as one (`f` gets the block's index), for
    /// stages that re-chunk the rows.
    fn per_block(
        &self,
        name: &str,
        f: impl Fn(usize, RecordBatch) -> Result<Vec<RecordBatch>, DataError> + Send + Sync + 'static,
    ) -> Table {
        Table::wrap(self.ds.stage_indexed(name, move |i, batches| {
            if batches.is_empty() {
                return Ok(batches);
            }
            f(i, concat(&batches, None)?)
        }))
    }

    /// A per-batch stage: `f` on each of a block's batches (`f` gets the block's index), with
    /// no copy of the block into one batch first.
    fn per_batch(
        &self,
        name: &str,
        f: impl Fn(usize, RecordBatch) -> Result<Vec<RecordBatch>, DataError> + Send + Sync + 'static,
    ) -> Table {
        Table::wrap(self.ds.stage_indexed(name, move |i, batches| {
            let mut out = Vec::with_capacity(batches.len());
            for b in batches {
                out.extend(f(i, b)?);
            }
            Ok(out)
        }))
    }

    /// A stage over every row at once (runs the input first), as `blocks` batches.
    fn whole(
        &self,
        name: &str,
        f: impl Fn(RecordBatch, usize) -> Result<Vec<RecordBatch>, DataError> + Send + Sync + 'static,
    ) -> Table {
        Table::wrap(self.ds.all_to_all(name, move |blocks| {
            let k = blocks.len().max(1);
            let batches: Vec<RecordBatch> = blocks.into_iter().flatten().collect();
            if batches.is_empty() {
                return Ok(Vec::new());
            }
            Ok(f(concat(&batches, None)?, k)?
                .into_iter()
                .map(|b| vec![b])
                .collect())
        }))
    }

    /// The rows as typed values through serde (columns matched to fields by name).
    pub fn to_rows<T: DeserializeOwned + Send + Sync + 'static>(&self) -> Dataset<T> {
        self.ds.stage_indexed("to_rows", |i, batches| {
            let mut out = Vec::new();
            for b in &batches {
                let rows: Vec<T> =
                    serde_arrow::from_record_batch(b).map_err(|e| DataError::Udf {
                        block: i,
                        message: format!(
                            "from Arrow to {}: {e} (the columns are: {})",
                            std::any::type_name::<T>(),
                            names(&b.schema())
                        ),
                    })?;
                out.extend(rows);
            }
            Ok(out)
        })
    }

    /// The first block's schema (computes that block only).
    pub fn schema(&self) -> Result<SchemaRef, DataError> {
        match self.ds.iter_blocks()?.next() {
            Some(b) => Ok(b?
                .first()
                .map_or_else(|| Arc::new(Schema::empty()), RecordBatch::schema)),
            None => Ok(Arc::new(Schema::empty())),
        }
    }

    /// How many rows.
    pub fn count(&self) -> Result<usize, DataError> {
        self.ds
            .aggregate(|| 0, |n, b| n + b.num_rows(), |a, b| a + b)
    }

    /// Runs with at most `n` blocks started and not yet consumed.
    pub fn with_window(self, n: usize) -> Table {
        Table::wrap(self.ds.with_window(n))
    }

    /// Batches of up to `batch_size` rows (within a block) through `f`, which may change the
    /// columns (Ray's `map_batches` on Arrow batches). An error of `f` fails the dataset with
    /// the block and message.
    pub fn map_batches(
        &self,
        batch_size: usize,
        f: impl Fn(RecordBatch) -> Result<RecordBatch, ArrowError> + Send + Sync + 'static,
    ) -> Table {
        self.per_block("map_batches", move |i, b| {
            slices(&b, batch_size)
                .into_iter()
                .map(|s| {
                    f(s).map_err(|e| DataError::Udf {
                        block: i,
                        message: e.to_string(),
                    })
                })
                .collect()
        })
    }

    /// The rows where `predicate` (computed per batch, vectorised) is true; nulls drop.
    pub fn filter(
        &self,
        predicate: impl Fn(&RecordBatch) -> Result<BooleanArray, ArrowError> + Send + Sync + 'static,
    ) -> Table {
        self.per_batch("filter", move |i, b| {
            let udf = |e: ArrowError| DataError::Udf {
                block: i,
                message: e.to_string(),
            };
            let mask = predicate(&b).map_err(udf)?;
            Ok(vec![
                arrow_select::filter::filter_record_batch(&b, &mask).map_err(udf)?,
            ])
        })
    }

    /// A column `name` computed from each batch (replaces a column of that name).
    pub fn add_column(
        &self,
        name: &str,
        f: impl Fn(&RecordBatch) -> Result<ArrayRef, ArrowError> + Send + Sync + 'static,
    ) -> Table {
        let name = name.to_string();
        self.per_batch("add_column", move |i, b| {
            let udf = |message: String| DataError::Udf { block: i, message };
            let col = f(&b).map_err(|e| udf(e.to_string()))?;
            if col.len() != b.num_rows() {
                return Err(udf(format!(
                    "add_column {name:?}: {} values for {} rows",
                    col.len(),
                    b.num_rows()
                )));
            }
            let schema = b.schema();
            let mut fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
            let mut cols: Vec<ArrayRef> = b.columns().to_vec();
            let field = Arc::new(Field::new(
                &name,
                col.data_type().clone(),
                col.null_count() > 0,
            ));
            match schema.index_of(&name) {
                Ok(at) => {
                    fields[at] = field;
                    cols[at] = col;
                }
                Err(_) => {
                    fields.push(field);
                    cols.push(col);
                }
            }
            Ok(vec![
                RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
                    .map_err(|e| udf(e.to_string()))?,
            ])
        })
    }

    /// Without these columns (each must exist).
    pub fn drop_columns(&self, columns: &[&str]) -> Table {
        let drop: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        self.per_batch("drop_columns", move |_, b| {
            let schema = b.schema();
            let mut gone = Vec::with_capacity(drop.len());
            for c in &drop {
                gone.push(column_index(&schema, c)?);
            }
            let keep: Vec<usize> = (0..b.num_columns()).filter(|i| !gone.contains(i)).collect();
            Ok(vec![b.project(&keep).map_err(arrow_err)?])
        })
    }

    /// Only these columns, in this order (each must exist).
    pub fn select_columns(&self, columns: &[&str]) -> Table {
        let pick: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        self.per_batch("select_columns", move |_, b| {
            let schema = b.schema();
            let idx: Result<Vec<usize>, DataError> =
                pick.iter().map(|c| column_index(&schema, c)).collect();
            Ok(vec![b.project(&idx?).map_err(arrow_err)?])
        })
    }

    /// The first `n` rows (runs its input only as far as needed).
    pub fn limit(&self, n: usize) -> Table {
        let parent = self.clone();
        let plan: Plan<RecordBatch> = Arc::new(move || {
            let b = Arc::new(parent.take(n)?);
            Ok(vec![
                Arc::new(move || Ok(vec![b.as_ref().clone()])) as Thunk<RecordBatch>
            ])
        });
        let mut d = Dataset::from_thunks("limit", plan);
        d.window = self.ds.window;
        let mut stages = self.ds.stages.clone();
        stages.extend(d.stages);
        d.stages = stages;
        Table::wrap(d)
    }

    /// The rows in `n` blocks of near-equal size, in order.
    pub fn repartition(&self, n: usize) -> Table {
        self.whole("repartition", move |b, _| Ok(split_batch(&b, n)))
    }

    /// The rows in a random order (seeded: the same seed, the same order).
    pub fn random_shuffle(&self, seed: u64) -> Table {
        self.whole("random_shuffle", move |b, k| {
            let mut idx: Vec<u32> = (0..b.num_rows() as u32).collect();
            crate::shuffle(&mut idx, seed);
            let b = arrow_select::take::take_record_batch(&b, &UInt32Array::from(idx))
                .map_err(arrow_err)?;
            Ok(split_batch(&b, k))
        })
    }

    /// The rows sorted by `column` (stable; nulls last).
    pub fn sort(&self, column: &str, descending: bool) -> Table {
        let column = column.to_string();
        self.whole("sort", move |b, k| {
            let c = column_index(&b.schema(), &column)?;
            let opts = arrow_schema::SortOptions {
                descending,
                nulls_first: false,
            };
            let idx =
                arrow_ord::sort::sort_to_indices(b.column(c), Some(opts), None).map_err(|e| {
                    DataError::Column {
                        column: column.clone(),
                        message: e.to_string(),
                    }
                })?;
            let b = arrow_select::take::take_record_batch(&b, &idx).map_err(arrow_err)?;
            Ok(split_batch(&b, k))
        })
    }

    /// This dataset's rows, then `other`'s (the same columns).
    pub fn union(&self, other: &Table) -> Table {
        Table::wrap(self.ds.union(&other.ds))
    }

    /// The columns of both side by side, row by row; both need as many rows and no column name
    /// in common.
    pub fn zip(&self, other: &Table) -> Table {
        let other = other.clone();
        self.whole("zip", move |left, k| {
            let right = other.take_all()?;
            if left.num_rows() != right.num_rows() {
                return Err(DataError::Invalid(format!(
                    "zip: {} rows against {}; both datasets need as many rows",
                    left.num_rows(),
                    right.num_rows()
                )));
            }
            let mut fields: Vec<FieldRef> = left.schema().fields().iter().cloned().collect();
            for f in right.schema().fields() {
                if left.schema().field_with_name(f.name()).is_ok() {
                    return Err(DataError::Column {
                        column: f.name().clone(),
                        message: "zip: the column is in both datasets".into(),
                    });
                }
                fields.push(Arc::clone(f));
            }
            let mut cols = left.columns().to_vec();
            cols.extend(right.columns().iter().cloned());
            let b = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(arrow_err)?;
            Ok(split_batch(&b, k))
        })
    }

    /// Groups the rows by the values of `column` (Ray's `groupby`).
    pub fn groupby(&self, column: &str) -> GroupedTable {
        GroupedTable {
            table: self.clone(),
            key: column.to_string(),
        }
    }

    /// `n` tables of near-equal size, in order.
    pub fn split(&self, n: usize) -> Result<Vec<Table>, DataError> {
        let all = self.take_all()?;
        split_batch(&all, n)
            .into_iter()
            .map(|b| from_arrow(vec![b]))
            .collect()
    }

    /// (train, test): the last `test_fraction` of the rows (after a seeded shuffle when given)
    /// as the test set.
    pub fn train_test_split(
        &self,
        test_fraction: f64,
        shuffle_seed: Option<u64>,
    ) -> Result<(Table, Table), DataError> {
        if !(test_fraction > 0.0 && test_fraction < 1.0) {
            return Err(DataError::Invalid(format!(
                "train_test_split: test_fraction {test_fraction}: expected a number in (0, 1)"
            )));
        }
        let all = match shuffle_seed {
            Some(s) => self.random_shuffle(s).take_all()?,
            None => self.take_all()?,
        };
        let n = all.num_rows();
        let n_test = ((n as f64) * test_fraction).ceil() as usize;
        let n_test = n_test.min(n);
        Ok((
            from_arrow(vec![all.slice(0, n - n_test)])?,
            from_arrow(vec![all.slice(n - n_test, n_test)])?,
        ))
    }

    /// The blocks' batches, in order.
    pub fn iter_blocks(
        &self,
    ) -> Result<impl Iterator<Item = Result<Vec<RecordBatch>, DataError>> + use<>, DataError> {
        self.ds.iter_blocks()
    }

    /// Record batches of exactly `batch_size` rows (the last may be shorter), across blocks.
    pub fn iter_batches(
        &self,
        batch_size: usize,
    ) -> Result<impl Iterator<Item = Result<RecordBatch, DataError>> + use<>, DataError> {
        let size = batch_size.max(1);
        let mut blocks = self.ds.iter_blocks()?;
        let mut buf: Vec<RecordBatch> = Vec::new();
        let mut rows = 0;
        let mut done = false;
        Ok(std::iter::from_fn(move || {
            while !done && rows < size {
                match blocks.next() {
                    Some(Ok(bs)) => {
                        rows += bs.iter().map(RecordBatch::num_rows).sum::<usize>();
                        buf.extend(bs.into_iter().filter(|b| b.num_rows() > 0));
                    }
                    Some(Err(e)) => {
                        done = true;
                        return Some(Err(e));
                    }
                    None => done = true,
                }
            }
            if rows == 0 {
                return None;
            }
            // Take `size` rows off the front, slicing the batch that straddles the cut.
            let mut out = Vec::new();
            let mut need = size.min(rows);
            rows -= need;
            while need > 0 {
                let b = buf.remove(0);
                if b.num_rows() <= need {
                    need -= b.num_rows();
                    out.push(b);
                } else {
                    out.push(b.slice(0, need));
                    buf.insert(0, b.slice(need, b.num_rows() - need));
                    need = 0;
                }
            }
            Some(concat(&out, None))
        }))
    }

    /// The first `n` rows as one batch, computing no more blocks than needed.
    pub fn take(&self, n: usize) -> Result<RecordBatch, DataError> {
        let mut out: Vec<RecordBatch> = Vec::new();
        let mut schema = None;
        let mut have = 0;
        for b in self.ds.iter_blocks()? {
            for batch in b? {
                schema.get_or_insert_with(|| batch.schema());
                if have >= n {
                    break;
                }
                let k = batch.num_rows().min(n - have);
                have += k;
                out.push(batch.slice(0, k));
            }
            if have >= n {
                break;
            }
        }
        concat(&out, schema.as_ref())
    }

    /// Every row as one batch.
    pub fn take_all(&self) -> Result<RecordBatch, DataError> {
        let mut out = Vec::new();
        for b in self.ds.iter_blocks()? {
            out.extend(b?);
        }
        concat(&out, None)
    }

    /// Prints the first `n` rows, one `{column: value, ...}` per line.
    pub fn show(&self, n: usize) -> Result<(), DataError> {
        use std::io::Write;
        let b = self.take(n)?;
        let schema = b.schema();
        let mut out = std::io::stdout().lock();
        for i in 0..b.num_rows() {
            let cells: Vec<String> = schema
                .fields()
                .iter()
                .zip(b.columns())
                .map(|(f, c)| format!("{}: {}", f.name(), cell(c, i)))
                .collect();
            let _ = writeln!(out, "{{{}}}", cells.join(", "));
        }
        Ok(())
    }

    /// The non-null values of numeric `column`, folded per block by `fold` and merged.
    fn fold_column<A: Send + 'static>(
        &self,
        column: &str,
        init: impl Fn() -> A,
        fold: impl Fn(A, f64) -> A,
        merge: impl Fn(A, A) -> A,
    ) -> Result<A, DataError> {
        let mut acc = init();
        for b in self.ds.iter_blocks()? {
            for batch in b? {
                let c = column_index(&batch.schema(), column)?;
                let part = column_f64(batch.column(c), column)?
                    .into_iter()
                    .fold(init(), &fold);
                acc = merge(acc, part);
            }
        }
        Ok(acc)
    }

    /// The sum of numeric `column` (nulls skipped; `None` for no values).
    pub fn sum(&self, column: &str) -> Result<Option<f64>, DataError> {
        let (n, s) = self.fold_column(
            column,
            || (0usize, 0.0),
            |(n, s), x| (n + 1, s + x),
            |a, b| (a.0 + b.0, a.1 + b.1),
        )?;
        Ok((n > 0).then_some(s))
    }

    /// The smallest value of numeric `column`.
    pub fn min(&self, column: &str) -> Result<Option<f64>, DataError> {
        self.fold_column(column, || None, crate::keep_min, crate::pick_min)
    }

    /// The largest value of numeric `column`.
    pub fn max(&self, column: &str) -> Result<Option<f64>, DataError> {
        self.fold_column(column, || None, crate::keep_max, crate::pick_max)
    }

    /// The mean of numeric `column`.
    pub fn mean(&self, column: &str) -> Result<Option<f64>, DataError> {
        let (n, s) = self.fold_column(
            column,
            || (0usize, 0.0),
            |(n, s), x| (n + 1, s + x),
            |a, b| (a.0 + b.0, a.1 + b.1),
        )?;
        Ok((n > 0).then(|| s / n as f64))
    }

    /// The standard deviation of numeric `column` with `ddof`.
    pub fn std(&self, column: &str, ddof: usize) -> Result<Option<f64>, DataError> {
        let m = self.fold_column(column, Moments::default, Moments::push, Moments::merge)?;
        Ok(m.std(ddof))
    }

    /// Computes every block now and keeps them.
    pub fn materialize(&self) -> Result<Table, DataError> {
        Ok(Table::wrap(self.ds.materialize()?))
    }

    /// Per-stage time, rows (batches, for tables), blocks and bytes, as measured so far.
    pub fn stats(&self) -> String {
        self.ds.stats()
    }

    /// Writes the rows as Parquet (snappy) into folder `dir` (made if missing), one
    /// `part-NNNNN.parquet` per block written in the block's task under a hidden temporary
    /// name, synced and renamed into place; returns the files in order. Empty blocks write no
    /// file.
    pub fn write_parquet(&self, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, DataError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let dir = dir.to_path_buf();
        let written = self.ds.stage_indexed("write_parquet", move |i, batches| {
            if batches.is_empty() {
                return Ok(Vec::new());
            }
            let name = format!("part-{i:05}.parquet");
            Ok(vec![write_parquet_file(&dir, &name, &batches)?])
        });
        written.take_all()
    }
}

/// Writes `batches` (of one schema, at least one) as the Parquet file `dir/name`, atomically:
/// a hidden temporary file, synced, then renamed into place.
pub fn write_parquet_file(
    dir: &Path,
    name: &str,
    batches: &[RecordBatch],
) -> Result<PathBuf, DataError> {
    let first = batches
        .first()
        .ok_or_else(|| DataError::Invalid(format!("{name}: no record batch to write")))?;
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    crate::io::write_atomic(dir, name, |f| {
        write_parquet_batches(f, &first.schema(), batches)
    })
}

/// Writes `batches` to `f` as one Parquet file (snappy-compressed).
fn write_parquet_batches(
    f: &mut std::fs::File,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> std::io::Result<()> {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, Arc::clone(schema), Some(props))
        .map_err(std::io::Error::other)?;
    for b in batches {
        w.write(b).map_err(std::io::Error::other)?;
    }
    w.close().map_err(std::io::Error::other)?;
    Ok(())
}

/// A tabular dataset grouped by a column (`table.groupby(column)`).
#[derive(Debug, Clone)]
pub struct GroupedTable {
    table: Table,
    key: String,
}

impl GroupedTable {
    /// `f` on each group's rows as one batch, the groups in key order (keys compared as
    /// numbers for numeric columns, else as text).
    pub fn map_groups(
        &self,
        f: impl Fn(RecordBatch) -> Result<RecordBatch, ArrowError> + Send + Sync + 'static,
    ) -> Table {
        let key = self.key.clone();
        self.table.whole("groupby", move |b, _| {
            let c = column_index(&b.schema(), &key)?;
            let col = b.column(c);
            let numeric = column_f64(col, &key).is_ok();
            // Group row indices by key; order groups numerically or as text.
            let mut groups: HashMap<String, Vec<u32>> = HashMap::new();
            let mut order: BTreeMap<GroupKey, String> = BTreeMap::new();
            for i in 0..b.num_rows() {
                let text = cell(col, i);
                groups.entry(text.clone()).or_default().push(i as u32);
                let k = if numeric && !col.is_null(i) {
                    GroupKey::Number(text.parse::<f64>().unwrap_or(f64::NAN))
                } else {
                    GroupKey::Text(text.clone())
                };
                order.entry(k).or_insert(text);
            }
            let mut out = Vec::with_capacity(groups.len());
            for text in order.values() {
                let idx = UInt32Array::from(groups.remove(text).unwrap_or_default());
                let g = arrow_select::take::take_record_batch(&b, &idx).map_err(arrow_err)?;
                out.push(f(g).map_err(|e| DataError::Udf {
                    block: 0,
                    message: format!("group {text}: {e}"),
                })?);
            }
            Ok(out)
        })
    }

    /// One row per group: the key and `f64` column `name` from `agg` over `column`.
    fn aggregate(&self, column: &str, name: String, agg: fn(&[f64]) -> f64) -> Table {
        let key = self.key.clone();
        let column = column.to_string();
        self.map_groups(move |g| {
            let k = g.column(g.schema().index_of(&key)?).slice(0, 1);
            let v = match g.schema().index_of(&column) {
                Ok(c) => column_f64(g.column(c), &column)
                    .map_err(|e| ArrowError::InvalidArgumentError(e.to_string()))?,
                Err(_) => {
                    return Err(ArrowError::InvalidArgumentError(format!(
                        "column {column:?}: no such column; the columns are: {}",
                        names(&g.schema())
                    )));
                }
            };
            let value: ArrayRef = Arc::new(Float64Array::from(vec![agg(&v)]));
            let schema = Schema::new(vec![
                Field::new(&key, k.data_type().clone(), true),
                Field::new(&name, DataType::Float64, false),
            ]);
            RecordBatch::try_new(Arc::new(schema), vec![k, value])
        })
    }

    /// `key` and `count()`: the rows in each group.
    pub fn count(&self) -> Table {
        let key = self.key.clone();
        self.map_groups(move |g| {
            let k = g.column(g.schema().index_of(&key)?).slice(0, 1);
            let n: ArrayRef = Arc::new(arrow_array::UInt64Array::from(vec![g.num_rows() as u64]));
            let schema = Schema::new(vec![
                Field::new(&key, k.data_type().clone(), true),
                Field::new("count()", DataType::UInt64, false),
            ]);
            RecordBatch::try_new(Arc::new(schema), vec![k, n])
        })
    }

    /// `key` and `sum(column)` per group (nulls skipped).
    pub fn sum(&self, column: &str) -> Table {
        self.aggregate(column, format!("sum({column})"), |v| v.iter().sum())
    }

    /// `key` and `min(column)` per group.
    pub fn min(&self, column: &str) -> Table {
        self.aggregate(column, format!("min({column})"), |v| {
            v.iter().copied().fold(f64::INFINITY, f64::min)
        })
    }

    /// `key` and `max(column)` per group.
    pub fn max(&self, column: &str) -> Table {
        self.aggregate(column, format!("max({column})"), |v| {
            v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        })
    }

    /// `key` and `mean(column)` per group.
    pub fn mean(&self, column: &str) -> Table {
        self.aggregate(column, format!("mean({column})"), |v| {
            v.iter().sum::<f64>() / v.len().max(1) as f64
        })
    }
}

/// A group key's sort order: numbers by value (total order), then text.
#[derive(Debug, Clone)]
enum GroupKey {
    Number(f64),
    Text(String),
}

impl Ord for GroupKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        match (self, other) {
            (GroupKey::Number(a), GroupKey::Number(b)) => a.total_cmp(b),
            (GroupKey::Text(a), GroupKey::Text(b)) => a.cmp(b),
            (GroupKey::Number(_), GroupKey::Text(_)) => Ordering::Less,
            (GroupKey::Text(_), GroupKey::Number(_)) => Ordering::Greater,
        }
    }
}

impl PartialOrd for GroupKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for GroupKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for GroupKey {}
