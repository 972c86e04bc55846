//! Polars DataFrames to tables and back (feature `polars`): values, nulls, chunks as blocks,
//! transformations on the runtime in between, Parquet, typed rows, and clear errors.

use std::sync::Arc;

use data::arrow_array::cast::AsArray;
use data::arrow_array::types::Int64Type;
use data::arrow_array::{
    ArrayRef, BooleanArray, Int64Array, IntervalMonthDayNanoArray, RecordBatch, StringArray,
};
use data::arrow_schema::{DataType, Field, Schema};
use data::polars;
use data::polars::prelude::*;
use data::{DataError, Table};
use serde::{Deserialize, Serialize};

/// Two chunks of every column: ints, floats and strings with nulls, booleans and dates.
fn two_chunk_frame() -> DataFrame {
    let a = df!(
        "id" => &[1i64, 2, 3],
        "score" => &[Some(0.5f64), None, Some(2.5)],
        "name" => &[Some("ant"), Some("bee"), None],
        "ok" => &[true, false, true],
    )
    .unwrap();
    let b = df!(
        "id" => &[4i64, 5],
        "score" => &[Some(-1.0f64), Some(4.0)],
        "name" => &[Some("cat"), Some("a longer name than twelve bytes")],
        "ok" => &[false, false],
    )
    .unwrap();
    let with_days = |mut df: DataFrame, days: &[i32]| {
        let days = Series::new("day".into(), days)
            .cast(&polars::prelude::DataType::Date)
            .unwrap();
        df.with_column(days.into_column()).unwrap();
        df
    };
    let df = with_days(a, &[0, 1, 2])
        .vstack(&with_days(b, &[19000, -1]))
        .unwrap();
    assert_eq!(
        df.first_col_n_chunks(),
        2,
        "the frame under test has two chunks"
    );
    df
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Row {
    id: i64,
    score: Option<f64>,
    name: Option<String>,
    ok: bool,
}

#[test]
fn a_frame_becomes_a_table_block_per_chunk_and_comes_back_equal() {
    let df = two_chunk_frame();
    let table = data::from_polars(&df).unwrap();

    let blocks: Vec<Vec<RecordBatch>> = table.iter_blocks().unwrap().map(Result::unwrap).collect();
    assert_eq!(blocks.len(), 2, "one block per chunk");
    assert_eq!(blocks[0][0].num_rows(), 3);
    assert_eq!(blocks[1][0].num_rows(), 2);

    let schema = table.schema().unwrap();
    let types: Vec<(&str, &DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type()))
        .collect();
    assert_eq!(
        types,
        vec![
            ("id", &DataType::Int64),
            ("score", &DataType::Float64),
            ("name", &DataType::Utf8View),
            ("ok", &DataType::Boolean),
            ("day", &DataType::Date32),
        ]
    );
    assert_eq!(table.count().unwrap(), 5);

    let back = table.to_polars().unwrap();
    assert!(
        back.equals_missing(&df),
        "round trip changed the frame:\n{back}\nvs\n{df}"
    );
    assert_eq!(
        back.first_col_n_chunks(),
        2,
        "each record batch is one chunk"
    );

    // Typed rows through serde, strings read from Polars' views.
    let rows: Vec<Row> = table
        .select_columns(&["id", "score", "name", "ok"])
        .to_rows()
        .take_all()
        .unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(
        rows[1],
        Row {
            id: 2,
            score: None,
            name: Some("bee".into()),
            ok: false
        }
    );
    assert_eq!(
        rows[4].name.as_deref(),
        Some("a longer name than twelve bytes")
    );
}

#[test]
fn runtime_transformations_between_polars_and_polars() {
    let df = two_chunk_frame();
    let out = data::from_polars(&df)
        .unwrap()
        .filter(|b| {
            let ok = b.column_by_name("ok").unwrap().as_boolean().clone();
            Ok(ok)
        })
        .add_column("id2", |b| {
            let id = b.column_by_name("id").unwrap().as_primitive::<Int64Type>();
            Ok(Arc::new(id.iter().map(|v| v.map(|v| v * v)).collect::<Int64Array>()) as ArrayRef)
        })
        .drop_columns(&["day"])
        .to_polars()
        .unwrap();
    let expected = df!(
        "id" => &[1i64, 3],
        "score" => &[Some(0.5f64), Some(2.5)],
        "name" => &[Some("ant"), None],
        "ok" => &[true, true],
        "id2" => &[1i64, 9],
    )
    .unwrap();
    assert!(
        out.equals_missing(&expected),
        "got\n{out}\nexpected\n{expected}"
    );
}

#[test]
fn typed_rows_and_parquet_files_become_frames() {
    let rows: Vec<Row> = (0..1000)
        .map(|i| Row {
            id: i,
            score: (i % 3 != 0).then(|| i as f64 / 4.0),
            name: Some(format!("row {i}")),
            ok: i % 2 == 0,
        })
        .collect();
    let table: Table = data::from_items(rows.clone()).repartition(4).to_table();
    let df = table.to_polars().unwrap();
    assert_eq!(df.height(), 1000);
    assert_eq!(df.first_col_n_chunks(), 4, "four blocks, four chunks");
    let ids: Vec<i64> = df
        .column("id")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert_eq!(ids, (0..1000).collect::<Vec<_>>());
    assert_eq!(df.column("score").unwrap().null_count(), 334);

    let dir = tempfile::tempdir().unwrap();
    table.write_parquet(dir.path()).unwrap();
    let from_files = data::read_parquet(dir.path()).to_polars().unwrap();
    let mut sorted = from_files
        .sort(["id"], SortMultipleOptions::default())
        .unwrap();
    sorted.rechunk_mut();
    assert!(
        sorted.equals_missing(&df),
        "Parquet round trip:\n{sorted}\nvs\n{df}"
    );

    // And back: a frame's rows as typed rows again.
    let again: Vec<Row> = data::from_polars(&df)
        .unwrap()
        .to_rows()
        .take_all()
        .unwrap();
    assert_eq!(again, rows);
}

#[test]
fn empty_tables_and_frames_keep_their_schema() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("x", DataType::Int64, false),
        Field::new("s", DataType::Utf8, true),
    ]));
    let empty = data::from_arrow(vec![RecordBatch::new_empty(Arc::clone(&schema))])
        .unwrap()
        .filter(|b| Ok(BooleanArray::from(vec![false; b.num_rows()])));
    let df = empty.to_polars().unwrap();
    assert_eq!(df.height(), 0);
    assert_eq!(df.get_column_names(), ["x", "s"]);
    assert_eq!(
        df.column("s").unwrap().dtype(),
        &polars::prelude::DataType::String
    );

    let t = data::from_polars(&df).unwrap();
    assert_eq!(t.count().unwrap(), 0);
    assert_eq!(t.schema().unwrap().field(0).name(), "x");
}

#[test]
fn a_column_polars_cannot_hold_is_an_error_naming_it() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new(
            "every",
            DataType::Interval(data::arrow_schema::IntervalUnit::MonthDayNano),
            false,
        ),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["a"])) as ArrayRef,
            Arc::new(IntervalMonthDayNanoArray::from(vec![
                data::arrow_array::types::IntervalMonthDayNano::new(1, 2, 3),
            ])) as ArrayRef,
        ],
    )
    .unwrap();
    let err = data::from_arrow(vec![batch])
        .unwrap()
        .to_polars()
        .unwrap_err();
    match &err {
        DataError::Column { column, message } => {
            assert_eq!(column, "every", "{err}");
            assert!(message.contains("Polars"), "{err}");
        }
        other => panic!("expected a column error, got {other:?}"),
    }
}

/// Every Arrow type either crosses to Polars and back or is an error naming its column: none
/// panics (Polars has no interval type, for instance).
#[test]
fn every_arrow_type_crosses_or_is_a_column_error() {
    use data::arrow_array::builder::{FixedSizeListBuilder, Int32Builder, StringDictionaryBuilder};
    use data::arrow_array::types::Int32Type;
    use data::arrow_array::*;
    let mut dict = StringDictionaryBuilder::<Int32Type>::new();
    dict.append_value("x");
    dict.append_null();
    let mut fsl = FixedSizeListBuilder::new(Int32Builder::new(), 2);
    fsl.values().append_slice(&[1, 2, 3, 4]);
    fsl.append(true);
    fsl.append(true);
    let struct_array = StructArray::from(vec![(
        Arc::new(Field::new("inner", DataType::Int64, false)),
        Arc::new(Int64Array::from(vec![7, 8])) as ArrayRef,
    )]);
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("u8", Arc::new(UInt8Array::from(vec![1, 2]))),
        ("i16", Arc::new(Int16Array::from(vec![Some(-1), None]))),
        ("f32", Arc::new(Float32Array::from(vec![0.5, f32::NAN]))),
        ("utf8", Arc::new(StringArray::from(vec![Some("a"), None]))),
        (
            "large_utf8",
            Arc::new(LargeStringArray::from(vec!["b", "c"])),
        ),
        (
            "binary",
            Arc::new(BinaryArray::from(vec![&b"\x00\x01"[..], b""])),
        ),
        ("dict", Arc::new(dict.finish())),
        ("fixed_list", Arc::new(fsl.finish())),
        (
            "list",
            Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
                Some(vec![Some(1), None]),
                None,
            ])),
        ),
        ("struct", Arc::new(struct_array)),
        (
            "ts_utc",
            Arc::new(TimestampMicrosecondArray::from(vec![0, 1]).with_timezone("UTC")),
        ),
        ("ts", Arc::new(TimestampNanosecondArray::from(vec![0, 1]))),
        ("time", Arc::new(Time64NanosecondArray::from(vec![0, 1]))),
        (
            "duration",
            Arc::new(DurationMillisecondArray::from(vec![5, 6])),
        ),
        (
            "decimal",
            Arc::new(
                Decimal128Array::from(vec![123, 456])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
        ),
        (
            "interval",
            Arc::new(IntervalYearMonthArray::from(vec![1, 2])),
        ),
        ("null", Arc::new(NullArray::new(2))),
        (
            "dict_of_ints",
            Arc::new(
                DictionaryArray::<Int32Type>::try_new(
                    Int32Array::from(vec![0, 0]),
                    Arc::new(Int64Array::from(vec![42])),
                )
                .unwrap(),
            ),
        ),
    ];
    let mut crossed = Vec::new();
    for (name, array) in columns {
        let field = Field::new(name, array.data_type().clone(), true);
        let batch = RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![array]).unwrap();
        let result = data::from_arrow(vec![batch]).unwrap().to_polars();
        match result {
            Ok(df) => {
                assert_eq!(df.height(), 2, "{name}");
                let back = data::from_polars(&df).unwrap().take_all().unwrap();
                assert_eq!(back.num_rows(), 2, "{name}");
                crossed.push(name);
            }
            Err(DataError::Column { column, message }) => {
                assert_eq!(column, name);
                eprintln!("{name}: {message}");
            }
            Err(e) => panic!("{name}: expected a column error, got {e:?}"),
        }
    }
    eprintln!("crossed to Polars and back: {crossed:?}");
    let all = [
        "u8",
        "i16",
        "f32",
        "utf8",
        "large_utf8",
        "binary",
        "dict",
        "fixed_list",
        "list",
        "struct",
        "ts_utc",
        "ts",
        "time",
        "duration",
        "decimal",
        "null",
    ];
    for name in all {
        assert!(
            crossed.contains(&name),
            "{name} should cross; crossed: {crossed:?}"
        );
    }
}

/// Where the values of a frame's one-chunk i64 column `x` live.
fn x_address(df: &DataFrame) -> *const i64 {
    let x = df.column("x").unwrap().i64().unwrap();
    x.cont_slice().unwrap().as_ptr()
}

/// The C data interface shares buffers: a numeric column is the same memory on both sides.
#[test]
fn numeric_columns_cross_without_a_copy() {
    let df = df!("x" => (0..100_000i64).collect::<Vec<_>>()).unwrap();
    let polars_ptr = x_address(&df);
    let batch = data::from_polars(&df).unwrap().take_all().unwrap();
    let arrow_ptr = batch
        .column(0)
        .as_primitive::<Int64Type>()
        .values()
        .as_ptr();
    assert_eq!(polars_ptr, arrow_ptr, "Polars to Arrow copied the column");

    let table = data::from_arrow(vec![batch.clone()]).unwrap();
    let back = table.to_polars().unwrap();
    let back_ptr = x_address(&back);
    assert_eq!(back_ptr, arrow_ptr, "Arrow to Polars copied the column");
}
