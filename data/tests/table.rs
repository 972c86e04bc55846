//! Tabular datasets: Arrow blocks, serde conversions, Parquet files, and every table
//! transformation against hand-computed results.

use std::sync::Arc;

use data::arrow_array::cast::AsArray;
use data::arrow_array::types::{Float64Type, Int64Type};
use data::arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch};
use data::arrow_schema::{DataType, Field, Schema};
use data::{DataError, Dataset};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Step {
    id: i64,
    name: String,
    reward: Option<f64>,
    obs: Vec<f32>,
    done: bool,
}

fn steps(n: i64) -> Vec<Step> {
    (0..n)
        .map(|i| Step {
            id: i,
            name: format!("s{i}"),
            // Every third reward is null.
            reward: (i % 3 != 0).then_some(i as f64 * 0.5),
            obs: vec![i as f32, -(i as f32)],
            done: i % 4 == 3,
        })
        .collect()
}

/// `n` rows in blocks of `per_block`.
fn table_of(n: i64, per_block: usize) -> data::Table {
    data::from_items(steps(n))
        .repartition(n as usize / per_block)
        .to_table()
}

fn ids(b: &RecordBatch) -> Vec<i64> {
    b.column(b.schema().index_of("id").unwrap())
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

#[test]
fn typed_rows_round_trip_through_arrow_and_parquet_with_nulls_lists_and_strings() {
    let dir = tempfile::tempdir().unwrap();
    let rows = steps(10);
    let t = data::from_items(rows.clone()).repartition(3).to_table();
    let schema = t.schema().unwrap();
    let cols: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(cols, ["id", "name", "reward", "obs", "done"]);
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    assert!(schema.field(2).is_nullable());
    assert_eq!(t.count().unwrap(), 10);
    let nulls = t.take_all().unwrap().column(2).null_count();
    assert_eq!(nulls, 4, "rows 0, 3, 6, 9 have no reward");

    let files = t.write_parquet(dir.path()).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "part-00000.parquet",
            "part-00001.parquet",
            "part-00002.parquet"
        ]
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 3, "no temporary file is left");

    let back = data::read_parquet(dir.path());
    assert_eq!(back.count().unwrap(), 10);
    assert_eq!(back.to_rows::<Step>().take_all().unwrap(), rows);
    // A pattern and a single file read the same rows.
    let first = data::read_parquet(dir.path().join("part-00000*"));
    assert_eq!(first.to_rows::<Step>().take_all().unwrap(), rows[..4]);
    // Typed datasets write Parquet directly.
    let d2 = dir.path().join("typed");
    data::from_items(rows.clone()).write_parquet(&d2).unwrap();
    assert_eq!(
        data::read_parquet(&d2)
            .to_rows::<Step>()
            .take_all()
            .unwrap(),
        rows
    );
}

#[test]
fn empty_tables_and_one_row_blocks() {
    let empty = data::from_items(Vec::<Step>::new()).to_table();
    assert_eq!(empty.count().unwrap(), 0);
    assert_eq!(empty.take(5).unwrap().num_rows(), 0);
    assert_eq!(empty.sum("id").unwrap(), None);
    assert_eq!(empty.iter_batches(4).unwrap().count(), 0);
    let dir = tempfile::tempdir().unwrap();
    assert!(empty.write_parquet(dir.path()).unwrap().is_empty());

    let ones = table_of(5, 1);
    assert_eq!(ones.iter_blocks().unwrap().count(), 5);
    assert_eq!(ids(&ones.take_all().unwrap()), [0, 1, 2, 3, 4]);
    let sizes: Vec<usize> = ones
        .iter_batches(2)
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .collect();
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(ids(&ones.take(3).unwrap()), [0, 1, 2]);
}

#[test]
fn columns_are_added_dropped_and_selected_and_bad_names_are_named() {
    let t = table_of(6, 2);
    let doubled = t.add_column("twice", |b| {
        let id = b.column(0).as_primitive::<Int64Type>();
        Ok(Arc::new(Int64Array::from_iter_values(
            id.values().iter().map(|v| v * 2),
        )) as ArrayRef)
    });
    let b = doubled.take_all().unwrap();
    assert_eq!(b.num_columns(), 6);
    let twice: Vec<i64> = b.column(5).as_primitive::<Int64Type>().values().to_vec();
    assert_eq!(twice, [0, 2, 4, 6, 8, 10]);

    let picked = doubled.select_columns(&["twice", "id"]).take_all().unwrap();
    let names: Vec<String> = picked
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["twice", "id"]);
    let dropped = t.drop_columns(&["obs", "name"]).take_all().unwrap();
    let names: Vec<String> = dropped
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["id", "reward", "done"]);

    let err = t.select_columns(&["id", "rewrd"]).take_all().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::Column { .. }), "{msg}");
    assert!(
        msg.contains("\"rewrd\"") && msg.contains("id, name, reward, obs, done"),
        "{msg}"
    );
    assert!(t.drop_columns(&["nope"]).take(1).is_err());
    assert!(
        t.sum("name")
            .unwrap_err()
            .to_string()
            .contains("not a number")
    );
    // A column of the wrong length from the user's function fails with its block.
    let bad = t.add_column("x", |_| Ok(Arc::new(Int64Array::from(vec![1])) as ArrayRef));
    let msg = bad.take_all().unwrap_err().to_string();
    assert!(
        msg.contains("block 0") && msg.contains("1 values for 2 rows"),
        "{msg}"
    );
}

#[test]
fn map_batches_filter_limit_and_aggregates_match_hand_computed_values() {
    let t = table_of(10, 5);
    // Batches of 2 within blocks of 5: sizes 2, 2, 1 per block.
    let sizes = t
        .map_batches(2, |b| {
            let n = b.num_rows() as i64;
            let col: ArrayRef = Arc::new(Int64Array::from(vec![n; b.num_rows()]));
            let schema = Schema::new(vec![Field::new("n", DataType::Int64, false)]);
            RecordBatch::try_new(Arc::new(schema), vec![col])
        })
        .take_all()
        .unwrap();
    assert_eq!(
        sizes
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec(),
        [2, 2, 2, 2, 1, 2, 2, 2, 2, 1]
    );
    let even = t.filter(|b| {
        let id = b.column(0).as_primitive::<Int64Type>();
        Ok(BooleanArray::from_iter(
            id.iter().map(|v| v.map(|v| v % 2 == 0)),
        ))
    });
    assert_eq!(ids(&even.take_all().unwrap()), [0, 2, 4, 6, 8]);
    assert_eq!(ids(&t.limit(3).take_all().unwrap()), [0, 1, 2]);
    assert_eq!(t.limit(30).count().unwrap(), 10);

    // reward = 0.5 i for i not a multiple of 3: 0.5, 1, 2, 2.5, 3.5, 4 (nulls skipped).
    assert_eq!(t.sum("reward").unwrap(), Some(13.5));
    assert_eq!(t.min("reward").unwrap(), Some(0.5));
    assert_eq!(t.max("reward").unwrap(), Some(4.0));
    assert_eq!(t.mean("reward").unwrap(), Some(2.25));
    // numpy.std([0.5, 1, 2, 2.5, 3.5, 4], ddof=1) = 1.3693063937629153
    let s = t.std("reward", 1).unwrap().unwrap();
    assert!((s - 1.369_306_393_762_915_3).abs() < 1e-12, "{s}");
    assert_eq!(t.sum("id").unwrap(), Some(45.0));
    // A panicking user function fails the dataset with the block and message.
    let boom = t.map_batches(100, |b| {
        if b.num_rows() > 0 && b.column(0).as_primitive::<Int64Type>().value(0) == 5 {
            panic!("bad batch");
        }
        Ok(b)
    });
    let msg = boom.take_all().unwrap_err().to_string();
    assert!(
        msg.contains("block 1") && msg.contains("bad batch"),
        "{msg}"
    );
}

#[test]
fn sort_shuffle_repartition_union_zip_split() {
    let t = table_of(8, 4);
    let desc = t.sort("id", true).take_all().unwrap();
    assert_eq!(ids(&desc), [7, 6, 5, 4, 3, 2, 1, 0]);
    // Nulls sort last whatever the direction.
    let by_reward = t.sort("reward", false).take_all().unwrap();
    assert_eq!(ids(&by_reward), [1, 2, 4, 5, 7, 0, 3, 6]);
    let a = ids(&t.random_shuffle(7).take_all().unwrap());
    assert_eq!(a, ids(&t.random_shuffle(7).take_all().unwrap()));
    assert_ne!(a, (0..8).collect::<Vec<i64>>());
    let mut sorted = a.clone();
    sorted.sort();
    assert_eq!(sorted, (0..8).collect::<Vec<i64>>());
    let parts: Vec<usize> = t
        .repartition(3)
        .iter_blocks()
        .unwrap()
        .map(|b| b.unwrap().iter().map(RecordBatch::num_rows).sum())
        .collect();
    assert_eq!(parts, [3, 3, 2]);
    assert_eq!(
        ids(&t.union(&t.limit(2)).take_all().unwrap()),
        [0, 1, 2, 3, 4, 5, 6, 7, 0, 1]
    );

    let other = data::from_items((0..8).map(|i| Extra { score: i * 10 }).collect()).to_table();
    let z = t.select_columns(&["id"]).zip(&other).take_all().unwrap();
    assert_eq!(z.num_columns(), 2);
    assert_eq!(z.column(1).as_primitive::<Int64Type>().value(7), 70);
    let msg = t.zip(&t.limit(3)).take_all().unwrap_err().to_string();
    assert!(msg.contains("8 rows against 3"), "{msg}");
    assert!(
        t.zip(&t)
            .take_all()
            .unwrap_err()
            .to_string()
            .contains("\"id\"")
    );

    let halves = t.split(2).unwrap();
    assert_eq!(ids(&halves[1].take_all().unwrap()), [4, 5, 6, 7]);
    let (train, test) = t.train_test_split(0.25, None).unwrap();
    assert_eq!(ids(&train.take_all().unwrap()), [0, 1, 2, 3, 4, 5]);
    assert_eq!(ids(&test.take_all().unwrap()), [6, 7]);
    let (train, test) = t.train_test_split(0.25, Some(3)).unwrap();
    assert_eq!(train.count().unwrap() + test.count().unwrap(), 8);
    assert!(t.train_test_split(1.5, None).is_err());
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Extra {
    score: i64,
}

#[test]
fn groupby_counts_sums_and_means_per_key_in_key_order() {
    // done: true for ids 3 and 7 of 0..10.
    let t = table_of(10, 5);
    let c = t.groupby("done").count().take_all().unwrap();
    assert_eq!(c.num_rows(), 2);
    let keys: Vec<bool> = c
        .column(0)
        .as_boolean()
        .iter()
        .map(|v| v.unwrap())
        .collect();
    assert_eq!(keys, [false, true]);
    assert_eq!(
        c.column(1)
            .as_primitive::<data::arrow_array::types::UInt64Type>()
            .values()
            .to_vec(),
        [8, 2]
    );
    let s = t.groupby("done").sum("id").take_all().unwrap();
    assert_eq!(s.schema().field(1).name(), "sum(id)");
    assert_eq!(
        s.column(1).as_primitive::<Float64Type>().values().to_vec(),
        [35.0, 10.0]
    );
    let m = t.groupby("done").mean("reward").take_all().unwrap();
    // false: rewards of 1, 2, 4, 5, 8 (0, 6, 9 null) = 0.5+1+2+2.5+4 = 10 / 5; true: 3 null, 7 -> 3.5
    assert_eq!(
        m.column(1).as_primitive::<Float64Type>().values().to_vec(),
        [2.0, 3.5]
    );
    // Numeric keys order by value, not as text.
    let keyed = data::from_items(
        (0..12)
            .map(|i| Extra {
                score: (i % 11) * 5,
            })
            .collect(),
    )
    .to_table();
    let c = keyed.groupby("score").count().take_all().unwrap();
    let k: Vec<i64> = c.column(0).as_primitive::<Int64Type>().values().to_vec();
    assert_eq!(k, [0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50]);
    let max = t.groupby("done").max("id").take_all().unwrap();
    assert_eq!(
        max.column(1)
            .as_primitive::<Float64Type>()
            .values()
            .to_vec(),
        [9.0, 7.0]
    );
    assert!(t.groupby("nope").count().take_all().is_err());
}

#[test]
fn from_arrow_checks_schemas_and_parquet_files_that_differ_are_named() {
    let mk = |name: &str, v: ArrayRef| {
        let schema = Schema::new(vec![Field::new(name, v.data_type().clone(), false)]);
        RecordBatch::try_new(Arc::new(schema), vec![v]).unwrap()
    };
    let a = mk("x", Arc::new(Int64Array::from(vec![1, 2])));
    let b = mk("x", Arc::new(Float64Array::from(vec![1.5])));
    let msg = data::from_arrow(vec![a.clone(), b.clone()])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("batch 1") && msg.contains("\"x\""), "{msg}");
    let t = data::from_arrow(vec![a.clone(), a.clone()]).unwrap();
    assert_eq!(t.sum("x").unwrap(), Some(6.0));

    let dir = tempfile::tempdir().unwrap();
    data::from_arrow(vec![a])
        .unwrap()
        .write_parquet(dir.path().join("a"))
        .unwrap();
    data::from_arrow(vec![b])
        .unwrap()
        .write_parquet(dir.path().join("b"))
        .unwrap();
    std::fs::rename(
        dir.path().join("b/part-00000.parquet"),
        dir.path().join("a/part-00001.parquet"),
    )
    .unwrap();
    let msg = data::read_parquet(dir.path().join("a"))
        .count()
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("part-00001.parquet") && msg.contains("\"x\" is Float64 here but Int64"),
        "{msg}"
    );
    std::fs::write(dir.path().join("a/part-00002.parquet"), b"not parquet").unwrap();
    std::fs::remove_file(dir.path().join("a/part-00001.parquet")).unwrap();
    let msg = data::read_parquet(dir.path().join("a"))
        .count()
        .unwrap_err()
        .to_string();
    assert!(msg.contains("part-00002.parquet"), "{msg}");
    let msg = data::read_parquet(dir.path().join("missing"))
        .count()
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("missing") && msg.contains("no such file"),
        "{msg}"
    );
    // Rows of the wrong type name the columns.
    let t = table_of(3, 3);
    let msg = t.to_rows::<Extra>().take_all().unwrap_err().to_string();
    assert!(
        msg.contains("score") || msg.contains("columns are: id"),
        "{msg}"
    );
}

/// A Python with pyarrow: `DATA_PYTHON`, else `python3`; `None` when neither has it.
fn python_with_pyarrow() -> Option<String> {
    let py = std::env::var("DATA_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&py)
        .args(["-c", "import pyarrow.parquet, pandas"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(py)
}

#[test]
fn parquet_files_are_read_by_pyarrow_and_pandas() {
    let Some(py) = python_with_pyarrow() else {
        eprintln!(
            "skipped: no Python with pyarrow and pandas (set DATA_PYTHON to one to run this check)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    table_of(10, 5).write_parquet(dir.path()).unwrap();
    let script = r#"
import sys, pyarrow.parquet as pq, pandas as pd
t = pq.read_table(sys.argv[1])
assert t.num_rows == 10, t.num_rows
assert t.column_names == ["id", "name", "reward", "obs", "done"], t.column_names
df = t.to_pandas().sort_values("id")
assert list(df["id"]) == list(range(10))
assert df["reward"].isna().sum() == 4
assert abs(df["reward"].sum() - 13.5) < 1e-12
assert list(df["obs"].iloc[3]) == [3.0, -3.0]
assert list(df["name"])[:2] == ["s0", "s1"]
assert list(df["done"]).count(True) == 2
df2 = pd.read_parquet(sys.argv[1])
assert len(df2) == 10
print("ok")
"#;
    let out = std::process::Command::new(py)
        .args(["-c", script, dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn datasets_convert_to_tables_lazily_and_keep_the_block_bound() {
    // take(3) of a 100-block table computes at most 2 blocks (window 1).
    let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let m = Arc::clone(&made);
    let t = data::range(100_000)
        .repartition(100)
        .map(move |i| {
            if i % 1000 == 0 {
                m.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            Extra { score: i as i64 }
        })
        .to_table()
        .with_window(1);
    let _: Dataset<Extra> = t.to_rows();
    assert_eq!(t.take(3).unwrap().num_rows(), 3);
    assert!(made.load(std::sync::atomic::Ordering::SeqCst) <= 2);
}
