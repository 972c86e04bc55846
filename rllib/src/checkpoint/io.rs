//! Reading and writing a checkpoint's files: safetensors of any dtype, JSON as serde structs
//! with errors naming the field, reads bounded by size.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{CheckpointError, cerr};
use crate::fsio;

/// The largest JSON file read from a checkpoint.
pub(super) const MAX_JSON_BYTES: u64 = 256 << 20;

/// One tensor to write: its name, dtype, shape and little-endian bytes.
pub(super) struct Raw {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl Raw {
    pub fn f32(name: impl Into<String>, shape: Vec<usize>, data: &[f32]) -> Self {
        Raw {
            name: name.into(),
            dtype: Dtype::F32,
            shape,
            bytes: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    pub fn f64(name: impl Into<String>, data: &[f64]) -> Self {
        Raw {
            name: name.into(),
            dtype: Dtype::F64,
            shape: vec![data.len()],
            bytes: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    pub fn u64(name: impl Into<String>, data: &[u64]) -> Self {
        Raw {
            name: name.into(),
            dtype: Dtype::U64,
            shape: vec![data.len()],
            bytes: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    pub fn u32(name: impl Into<String>, data: &[u32]) -> Self {
        Raw {
            name: name.into(),
            dtype: Dtype::U32,
            shape: vec![data.len()],
            bytes: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    pub fn u8(name: impl Into<String>, data: &[u8]) -> Self {
        Raw {
            name: name.into(),
            dtype: Dtype::U8,
            shape: vec![data.len()],
            bytes: data.to_vec(),
        }
    }
}

pub(super) fn write_safetensors(
    path: &Path,
    tensors: &[Raw],
    meta: HashMap<String, String>,
) -> Result<(), CheckpointError> {
    let views = tensors
        .iter()
        .map(|t| {
            TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| cerr(path, e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let out =
        safetensors::tensor::serialize(views, Some(meta)).map_err(|e| cerr(path, e.to_string()))?;
    fs::write(path, out).map_err(|e| cerr(path, e.to_string()))
}

pub(super) fn write_json(path: &Path, v: &impl Serialize) -> Result<(), CheckpointError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| cerr(path, e.to_string()))?;
    fs::write(path, text + "\n").map_err(|e| cerr(path, e.to_string()))
}

pub(super) fn read_value(path: &Path) -> Result<Value, CheckpointError> {
    let bytes = fsio::read_bounded(path, MAX_JSON_BYTES).map_err(|m| cerr(path, m))?;
    serde_json::from_slice(&bytes).map_err(|e| cerr(path, format!("is not valid JSON: {e}")))
}

/// serde's words for a type, in the words of this project's other messages.
fn plain_serde_message(m: &str) -> String {
    if let Some(field) = m
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
    {
        return format!("missing key '{field}'");
    }
    if let Some(field) = m
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
    {
        return format!("unknown key '{}'", crate::config::short(field));
    }
    m.replace("expected u64", "expected a whole number >= 0")
        .replace("expected u32", "expected a whole number below 2^32")
        .replace("expected usize", "expected a whole number >= 0")
        .replace("expected f64", "expected a number")
        .replace("expected f32", "expected a number")
        .replace("expected a boolean", "expected true or false")
}

pub(super) fn from_value<T: DeserializeOwned>(path: &Path, v: Value) -> Result<T, CheckpointError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let field = e.path().to_string();
        let inner = plain_serde_message(&e.inner().to_string());
        if field == "." {
            cerr(path, inner)
        } else {
            cerr(path, format!("'{field}': {inner}"))
        }
    })
}

pub(super) fn read_struct<T: DeserializeOwned>(path: &Path) -> Result<T, CheckpointError> {
    from_value(path, read_value(path)?)
}

/// A safetensors file read whole (at most `limit` bytes), with its metadata.
pub(super) struct TensorFile {
    bytes: Vec<u8>,
    path: std::path::PathBuf,
    pub meta: HashMap<String, String>,
}

impl TensorFile {
    pub fn read(path: &Path, limit: u64) -> Result<Self, CheckpointError> {
        let bytes = fsio::read_bounded(path, limit).map_err(|m| cerr(path, m))?;
        SafeTensors::deserialize(&bytes)
            .map_err(|e| cerr(path, format!("is not a valid safetensors file: {e}")))?;
        let meta = SafeTensors::read_metadata(&bytes)
            .map(|(_, m)| m.metadata().clone().unwrap_or_default())
            .unwrap_or_default();
        Ok(TensorFile {
            bytes,
            path: path.to_path_buf(),
            meta,
        })
    }

    /// Tensor `key` of `dtype` and `shape` (any shape when `None`), as raw bytes.
    fn raw(
        &self,
        key: &str,
        dtype: Dtype,
        shape: Option<&[usize]>,
    ) -> Result<Vec<u8>, CheckpointError> {
        let path = &self.path;
        let st = SafeTensors::deserialize(&self.bytes)
            .map_err(|e| cerr(path, format!("is not a valid safetensors file: {e}")))?;
        let t = st
            .tensor(key)
            .map_err(|_| cerr(path, format!("missing tensor '{key}'")))?;
        if t.dtype() != dtype {
            return Err(cerr(
                path,
                format!("tensor '{key}' is {:?}, expected {dtype:?}", t.dtype()),
            ));
        }
        if let Some(shape) = shape
            && t.shape() != shape
        {
            return Err(cerr(
                path,
                format!(
                    "tensor '{key}' has shape {:?}, expected {shape:?} for this module",
                    t.shape()
                ),
            ));
        }
        Ok(t.data().to_vec())
    }

    /// A finite `f32` tensor of exactly `shape`.
    pub fn f32(&self, key: &str, shape: &[usize]) -> Result<Vec<f32>, CheckpointError> {
        let data: Vec<f32> = self
            .raw(key, Dtype::F32, Some(shape))?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(cerr(
                &self.path,
                format!(
                    "tensor '{key}' holds {} at index {i}; a checkpoint's values must be finite",
                    data[i]
                ),
            ));
        }
        Ok(data)
    }

    /// A one-dimensional tensor of `n` values, converted by `f` from `width`-byte words.
    pub fn words<T>(
        &self,
        key: &str,
        dtype: Dtype,
        n: usize,
        width: usize,
        f: impl Fn(&[u8]) -> T,
    ) -> Result<Vec<T>, CheckpointError> {
        Ok(self
            .raw(key, dtype, Some(&[n]))?
            .chunks_exact(width)
            .map(f)
            .collect())
    }
}
