//! Parquet write and read of one ~1 GB file (Arrow bytes, uncompressed) through `data`
//! against the `parquet` crate driven directly, in the same run (issue: ours at >= 50 % of
//! the raw speed). The same record batch, the same writer properties (snappy), one file each,
//! the same read batch size (64 Ki rows); each measure 3 times, raw and ours alternating, the
//! medians in MB/s of the Arrow bytes. `cargo bench -p data --bench parquet`;
//! `DATA_BENCH_PARQUET_MB` sets the size (default 1000).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use data::arrow_array::{
    Array, ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Int32Array, Int64Array,
    RecordBatch, StringArray, make_array,
};
use data::arrow_schema::{DataType, Field, Schema};
use data::parquet::arrow::ArrowWriter;
use data::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use data::parquet::basic::Compression;
use data::parquet::file::properties::WriterProperties;

/// Rows per batch when reading, as `data::read_parquet` reads.
const READ_BATCH_ROWS: usize = 64 * 1024;
const REPS: usize = 3;

/// The bytes of `a`'s buffers (values, offsets, validity, children): its uncompressed size.
fn arrow_bytes(a: &dyn Array) -> usize {
    let d = a.to_data();
    let own: usize = d.buffers().iter().map(|b| b.len()).sum::<usize>()
        + d.nulls().map_or(0, |n| n.buffer().len());
    own + d
        .child_data()
        .iter()
        .map(|c| arrow_bytes(&make_array(c.clone())))
        .sum::<usize>()
}

/// Bytes per row of [`batch`]'s columns (an estimate to size it; the exact size is measured).
const ROW_BYTES: usize = 8 + 16 + 4 + 4 + 4 + 11;

/// An RL experience table of `rows` rows: id i64, obs FixedSizeList<f32, 4>, action i32,
/// reward f32, done bool, env (a short string of a few values).
fn batch(rows: usize) -> RecordBatch {
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let unit = |x: u64| (x >> 40) as f32 / (1u64 << 24) as f32;
    let id = Int64Array::from_iter_values(0..rows as i64);
    let obs_values =
        Float32Array::from_iter_values((0..rows * 4).map(|_| unit(next()) * 2.0 - 1.0));
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let obs = FixedSizeListArray::new(Arc::clone(&item), 4, Arc::new(obs_values), None);
    let action = Int32Array::from_iter_values((0..rows).map(|_| (next() % 4) as i32));
    let reward = Float32Array::from_iter_values((0..rows).map(|_| unit(next())));
    let done = BooleanArray::from_iter((0..rows).map(|i| Some(i % 200 == 199)));
    let envs = ["CartPole-v1", "Pendulum-v1", "Acrobot-v1", "MountainCar"];
    let env = StringArray::from_iter_values((0..rows).map(|i| envs[(i / 200) % envs.len()]));
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("obs", DataType::FixedSizeList(item, 4), false),
        Field::new("action", DataType::Int32, false),
        Field::new("reward", DataType::Float32, false),
        Field::new("done", DataType::Boolean, false),
        Field::new("env", DataType::Utf8, false),
    ]);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(id),
        Arc::new(obs),
        Arc::new(action),
        Arc::new(reward),
        Arc::new(done),
        Arc::new(env),
    ];
    RecordBatch::try_new(Arc::new(schema), cols).expect("the columns fit the schema")
}

/// The writer properties `data::Table::write_parquet` uses: defaults and snappy.
fn props() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build()
}

/// The `parquet` crate alone: the batch to `path`; (seconds to write and close, seconds more
/// to fsync, as `data` does).
fn raw_write(b: &RecordBatch, path: &Path) -> (f64, f64) {
    let t = Instant::now();
    let f = File::create(path).expect("create");
    let mut w = ArrowWriter::try_new(f, b.schema(), Some(props())).expect("writer");
    w.write(b).expect("write");
    let f = w.into_inner().expect("close");
    let write = t.elapsed().as_secs_f64();
    let t = Instant::now();
    f.sync_all().expect("fsync");
    (write, t.elapsed().as_secs_f64())
}

/// The `parquet` crate alone: every batch of `path` read (dropped as read, or kept); (rows,
/// seconds).
fn raw_read(path: &Path, keep: bool) -> (usize, f64) {
    let t = Instant::now();
    let f = File::open(path).expect("open");
    let r = ParquetRecordBatchReaderBuilder::try_new(f)
        .expect("footer")
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .expect("reader");
    let mut rows = 0;
    let mut kept = Vec::new();
    for b in r {
        let b = b.expect("batch");
        rows += b.num_rows();
        if keep {
            kept.push(b);
        }
    }
    drop(kept);
    (rows, t.elapsed().as_secs_f64())
}

fn secs<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed().as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mb: usize = std::env::var("DATA_BENCH_PARQUET_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let (b, gen_s) = secs(|| batch(mb * 1_000_000 / ROW_BYTES));
    let rows = b.num_rows();
    let bytes: usize = b.columns().iter().map(|c| arrow_bytes(c.as_ref())).sum();
    let mbytes = bytes as f64 / 1e6;
    println!(
        "table: {rows} rows, {mbytes:.1} MB of Arrow (id i64, obs FixedSizeList<f32, 4>, \
         action i32, reward f32, done bool, env utf8), built in {gen_s:.1} s"
    );

    let tmp = tempfile::Builder::new()
        .prefix("data-bench-parquet-")
        .tempdir_in("/tmp")
        .expect("a temporary folder");
    let raw_file = tmp.path().join("raw.parquet");
    let ours_dir = tmp.path().join("ours");
    // One block holding the whole batch, so that ours writes one file as raw does.
    let table = data::from_arrow(vec![b.clone()]).expect("one block");
    // Start the runtime before timing anything.
    assert_eq!(data::range(8).count().expect("warm-up"), 8);

    let mut m: [Vec<f64>; 7] = Default::default();
    let (mut raw_size, mut ours_size) = (0, 0);
    for rep in 0..REPS {
        let _ = std::fs::remove_file(&raw_file);
        let _ = std::fs::remove_dir_all(&ours_dir);
        let raw = |m: &mut [Vec<f64>; 7]| {
            let (w, sync) = raw_write(&b, &raw_file);
            m[0].push(w);
            m[1].push(w + sync);
        };
        let ours = |m: &mut [Vec<f64>; 7]| {
            let (files, s) = secs(|| table.write_parquet(&ours_dir).expect("ours writes"));
            assert_eq!(files.len(), 1);
            m[2].push(s);
        };
        if rep % 2 == 0 {
            raw(&mut m);
            ours(&mut m);
        } else {
            ours(&mut m);
            raw(&mut m);
        }
        raw_size = std::fs::metadata(&raw_file).expect("raw file").len();
        let ours_file = ours_dir.join("part-00000.parquet");
        ours_size = std::fs::metadata(&ours_file).expect("ours' file").len();

        // Every read is of ours' file, in page cache after the writes.
        let read_raw = |m: &mut [Vec<f64>; 7]| {
            let (n, s) = raw_read(&ours_file, false);
            assert_eq!(n, rows);
            m[3].push(s);
        };
        let read_ours = |m: &mut [Vec<f64>; 7]| {
            let (n, s) = secs(|| data::read_parquet(&ours_dir).count().expect("count"));
            assert_eq!(n, rows);
            m[4].push(s);
            let (n, s) = secs(|| {
                let mut n = 0;
                for blk in data::read_parquet(&ours_dir).iter_blocks().expect("plan") {
                    n += blk
                        .expect("block")
                        .iter()
                        .map(RecordBatch::num_rows)
                        .sum::<usize>();
                }
                n
            });
            assert_eq!(n, rows);
            m[5].push(s);
        };
        if rep % 2 == 0 {
            read_raw(&mut m);
            read_ours(&mut m);
        } else {
            read_ours(&mut m);
            read_raw(&mut m);
        }
        let (n, s) = raw_read(&ours_file, true);
        assert_eq!(n, rows);
        m[6].push(s);
    }
    drop(tmp);

    let rate: Vec<f64> = m.into_iter().map(|v| mbytes / median(v)).collect();
    println!(
        "files: raw {:.1} MB, ours {:.1} MB (snappy); {} CPUs; medians of {REPS}, MB/s of Arrow bytes",
        raw_size as f64 / 1e6,
        ours_size as f64 / 1e6,
        ray::detect_cpus(),
    );
    println!();
    println!(
        "| Parquet, one file of {mbytes:.0} MB | raw `parquet` MB/s | ours MB/s | ours/raw | goal |"
    );
    println!("|---|---:|---:|---:|---:|");
    let row = |what: &str, raw: f64, ours: f64, goal: &str| {
        println!(
            "| {what} | {raw:.0} | {ours:.0} | {:.2} | {goal} |",
            ours / raw
        );
    };
    row(
        "write (`write_parquet`; raw: no fsync)",
        rate[0],
        rate[2],
        ">= 0.50",
    );
    row("write, raw with fsync as ours does", rate[1], rate[2], "");
    row(
        "read (`read_parquet(..).count()`)",
        rate[3],
        rate[4],
        ">= 0.50",
    );
    row(
        "read (`iter_blocks()` in full)",
        rate[3],
        rate[5],
        ">= 0.50",
    );
    row(
        "read, raw keeping every batch as ours does",
        rate[6],
        rate[4],
        "",
    );
}
