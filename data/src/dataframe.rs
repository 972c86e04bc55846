//! Polars interoperability (cargo feature `polars`): a DataFrame's chunks become a table's
//! blocks and a table's record batches become a DataFrame's chunks, through Arrow's C data
//! interface: numeric, boolean and string-view columns cross without a copy of their buffers
//! (Polars' strings arrive as Arrow `Utf8View`, its lists as `LargeList`; Arrow's `Utf8` strings
//! become Polars' string views, which copies them). A type Polars cannot hold is an error naming
//! the column, never a panic.

use std::sync::Arc;

use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema, from_ffi};
use arrow_array::{Array, ArrayRef, NullArray, RecordBatch, RecordBatchOptions, make_array};
use arrow_schema::{Field, Schema};
use polars::prelude::{ArrowField, Column, CompatLevel, DataFrame, IntoColumn, Series};
use polars_arrow::ffi as pl;

use crate::DataError;
use crate::table::{Table, from_arrow};

fn column_err(column: &str, message: impl std::fmt::Display) -> DataError {
    DataError::Column {
        column: column.to_string(),
        message: message.to_string(),
    }
}

/// `f`, with a panic inside Polars (it panics on some types its build does not enable) turned
/// into an error naming the column.
fn guarded<T>(column: &str, f: impl FnOnce() -> Result<T, DataError>) -> Result<T, DataError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        Err(column_err(
            column,
            format!("Polars cannot convert it: {}", ray::panic_message(&*p)),
        ))
    })
}

/// An Arrow (arrow-rs) column as a Polars (polars-arrow) array, sharing its buffers.
fn to_polars_array(
    field: &Field,
    array: &ArrayRef,
) -> Result<(ArrowField, Box<dyn polars_arrow::array::Array>), DataError> {
    let schema = FFI_ArrowSchema::try_from(field).map_err(|e| column_err(field.name(), e))?;
    let array = FFI_ArrowArray::new(&array.to_data());
    // SAFETY: both pairs of types are the `ArrowSchema` and `ArrowArray` structs of Arrow's C
    // data interface, `#[repr(C)]` with the same fields in the same order (transmute checks
    // their sizes); the value moves, so its release callback runs once, from its new owner.
    #[allow(unsafe_code)]
    let (schema, array) = unsafe {
        (
            std::mem::transmute::<FFI_ArrowSchema, pl::ArrowSchema>(schema),
            std::mem::transmute::<FFI_ArrowArray, pl::ArrowArray>(array),
        )
    };
    // SAFETY: the structs were just exported by arrow-rs, which follows the interface.
    #[allow(unsafe_code)]
    let imported = unsafe {
        pl::import_field_from_c(&schema).and_then(|f| {
            let dtype = f.dtype().clone();
            pl::import_array_from_c(array, dtype).map(|a| (f, a))
        })
    };
    imported.map_err(|e| column_err(field.name(), format!("Polars cannot import it: {e}")))
}

/// A Polars (polars-arrow) array as an Arrow (arrow-rs) column, sharing its buffers.
fn from_polars_array(
    field: &ArrowField,
    array: Box<dyn polars_arrow::array::Array>,
) -> Result<(Field, ArrayRef), DataError> {
    if *field.dtype() == polars_arrow::datatypes::ArrowDataType::Null {
        // Polars exports a buffer for a null column, which arrow-rs (rightly) refuses.
        let f = Field::new(field.name.as_str(), arrow_schema::DataType::Null, true);
        return Ok((f, Arc::new(NullArray::new(array.len()))));
    }
    let schema = pl::export_field_to_c(field);
    let array = pl::export_array_to_c(array);
    // SAFETY: as in `to_polars_array`, the other way round.
    #[allow(unsafe_code)]
    let (schema, array) = unsafe {
        (
            std::mem::transmute::<pl::ArrowSchema, FFI_ArrowSchema>(schema),
            std::mem::transmute::<pl::ArrowArray, FFI_ArrowArray>(array),
        )
    };
    let name = field.name.as_str();
    let f = Field::try_from(&schema).map_err(|e| column_err(name, e))?;
    // SAFETY: the structs were just exported by polars-arrow, which follows the interface.
    #[allow(unsafe_code)]
    let data = unsafe { from_ffi(array, &schema) }.map_err(|e| column_err(name, e))?;
    Ok((f, make_array(data)))
}

/// A tabular dataset of a Polars DataFrame (the counterpart of Ray's `from_pandas`,
/// `from_modin` and `from_dask`): each of its chunks, aligned across columns, is one block.
pub fn from_polars(df: &DataFrame) -> Result<Table, DataError> {
    let mut df = df.clone();
    df.align_chunks();
    let mut batches = Vec::new();
    for chunk in df.iter_chunks(CompatLevel::newest(), false) {
        let rows = chunk.height();
        let (schema, arrays) = chunk.into_schema_and_arrays();
        let mut fields = Vec::with_capacity(arrays.len());
        let mut columns = Vec::with_capacity(arrays.len());
        for (field, array) in schema.iter_values().zip(arrays) {
            let (f, a) = guarded(&field.name, || from_polars_array(field, array))?;
            fields.push(f);
            columns.push(a);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let batch =
            RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &options)
                .map_err(|e| DataError::Invalid(format!("from_polars: {e}")))?;
        batches.push(batch);
    }
    from_arrow(batches)
}

impl Table {
    /// A tabular dataset of a Polars DataFrame: see [`from_polars`].
    pub fn from_polars(df: &DataFrame) -> Result<Table, DataError> {
        from_polars(df)
    }

    /// Runs the dataset and returns its rows as one Polars DataFrame, each record batch one
    /// chunk of every column (Ray's `to_pandas`; no rechunking, no copy of the buffers).
    pub fn to_polars(&self) -> Result<DataFrame, DataError> {
        let schema = self.schema()?;
        let mut batches = Vec::new();
        for block in self.iter_blocks()? {
            batches.extend(block?);
        }
        if batches.is_empty() {
            batches.push(RecordBatch::new_empty(Arc::clone(&schema)));
        }
        let height = batches.iter().map(RecordBatch::num_rows).sum();
        let mut columns: Vec<Column> = Vec::with_capacity(schema.fields().len());
        for (i, field) in schema.fields().iter().enumerate() {
            let series = guarded(field.name(), || {
                let mut polars_field = None;
                let mut chunks = Vec::with_capacity(batches.len());
                for b in &batches {
                    let (f, a) = to_polars_array(field, b.column(i))?;
                    polars_field.get_or_insert(f);
                    chunks.push(a);
                }
                let polars_field = polars_field.expect("at least one batch");
                Series::try_from((&polars_field, chunks))
                    .map_err(|e| column_err(field.name(), format!("Polars cannot hold it: {e}")))
            })?;
            columns.push(series.into_column());
        }
        DataFrame::new(height, columns).map_err(|e| DataError::Invalid(format!("to_polars: {e}")))
    }
}
