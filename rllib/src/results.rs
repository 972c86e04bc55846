//! A run's folder: `params.yaml`, `progress.csv`, `result.json` (one JSON object per line),
//! and TensorBoard scalars (`events.out.tfevents.*`), as Tune writes them.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::algorithm::TrainResult;

/// Appends each iteration's metrics to the run's result files.
pub struct ResultWriter {
    dir: PathBuf,
    csv: BufWriter<File>,
    json: BufWriter<File>,
    tb: BufWriter<File>,
    columns: Option<Vec<String>>,
}

impl std::fmt::Debug for ResultWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultWriter")
            .field("dir", &self.dir)
            .finish()
    }
}

/// `YYYY-MM-DD_HH-MM-SS` in UTC, as Tune names trials (Tune's own).
pub use tune::timestamp;

/// Creates a fresh trial folder `<root>/<experiment>/<algo>_<env>_<timestamp>[_N]`.
pub fn new_trial_dir(
    root: &Path,
    experiment: &str,
    algo: &str,
    env: &str,
) -> std::io::Result<PathBuf> {
    let base = root.join(experiment);
    fs::create_dir_all(&base)?;
    // Env ids may carry a namespace (`ALE/Pong-v5`): one path component, as Ray names trials.
    let stem = crate::fsio::safe_component(&format!("{algo}_{env}_{}", timestamp()));
    for n in 0.. {
        let candidate = if n == 0 {
            base.join(&stem)
        } else {
            base.join(format!("{stem}_{n}"))
        };
        match fs::create_dir(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns")
}

fn open_append(path: &Path) -> std::io::Result<BufWriter<File>> {
    Ok(BufWriter::new(
        OpenOptions::new().create(true).append(true).open(path)?,
    ))
}

impl ResultWriter {
    /// Opens (or continues, on restore) the result files in `dir`.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let host = fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let tb_path = dir.join(format!("events.out.tfevents.{secs}.{host}"));
        let mut tb = open_append(&tb_path)?;
        write_record(&mut tb, &event(secs as f64, 0, Some("brain.Event:2"), &[]))?;
        // A resumed trial appends under the columns it began with.
        let columns = fs::read_to_string(dir.join("progress.csv"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .next()
                    .map(|h| h.split(',').map(str::to_string).collect())
            });
        Ok(ResultWriter {
            csv: open_append(&dir.join("progress.csv"))?,
            json: open_append(&dir.join("result.json"))?,
            tb,
            columns,
            dir: dir.to_path_buf(),
        })
    }

    /// Writes one iteration; files are flushed so that a crash loses nothing already reported.
    pub fn write(&mut self, r: &TrainResult, config: &Value) -> std::io::Result<()> {
        let pairs: Vec<(&str, f64)> = r.metrics.iter().map(|(k, v)| (*k, *v)).collect();
        self.write_pairs(&pairs, config)
    }

    /// Writes one iteration given as (metric, value) pairs, NaN where undefined.
    pub fn write_pairs(&mut self, r: &[(&str, f64)], config: &Value) -> std::io::Result<()> {
        let get = |c: &str| r.iter().find(|(k, _)| *k == c).map(|(_, v)| *v);
        if self.columns.is_none() {
            let cols: Vec<String> = r.iter().map(|(k, _)| k.to_string()).collect();
            if fs::metadata(self.dir.join("progress.csv")).map_or(true, |m| m.len() == 0) {
                writeln!(self.csv, "{}", cols.join(","))?;
            }
            self.columns = Some(cols);
        }
        let cols = self.columns.as_deref().unwrap_or_default();
        let row: Vec<String> = cols
            .iter()
            .map(|c| {
                get(c).map_or(String::new(), |v| {
                    if v.is_nan() {
                        String::new()
                    } else {
                        v.to_string()
                    }
                })
            })
            .collect();
        writeln!(self.csv, "{}", row.join(","))?;
        self.csv.flush()?;

        let mut obj = Map::new();
        for (k, v) in r {
            let value = if !v.is_finite() {
                Value::Null
            } else if v.fract() == 0.0 && v.abs() < 9.0e15 {
                Value::from(*v as i64)
            } else {
                Value::from(*v)
            };
            insert_nested(&mut obj, k, value);
        }
        obj.insert("config".into(), config.clone());
        writeln!(self.json, "{}", Value::Object(obj))?;
        self.json.flush()?;

        let step = get("training_iteration").unwrap_or(0.0) as i64;
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let scalars: Vec<(String, f32)> = r
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(k, v)| (format!("ray/tune/{k}"), *v as f32))
            .collect();
        write_record(&mut self.tb, &event(wall, step, None, &scalars))?;
        self.tb.flush()
    }
}

fn insert_nested(obj: &mut Map<String, Value>, key: &str, v: Value) {
    match key.split_once('/') {
        None => {
            obj.insert(key.to_string(), v);
        }
        Some((head, rest)) => {
            let child = obj
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = child {
                insert_nested(m, rest, v);
            }
        }
    }
}

// TensorBoard's event file: TFRecord framing around `tensorflow.Event` protobufs.

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(field: u64, data: &[u8], out: &mut Vec<u8>) {
    varint(field << 3 | 2, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

/// An `Event { wall_time, step, file_version | summary { value { tag, simple_value } } }`.
fn event(
    wall_time: f64,
    step: i64,
    file_version: Option<&str>,
    scalars: &[(String, f32)],
) -> Vec<u8> {
    let mut e = Vec::new();
    varint(1 << 3 | 1, &mut e);
    e.extend_from_slice(&wall_time.to_le_bytes());
    varint(2 << 3, &mut e);
    varint(step as u64, &mut e);
    if let Some(v) = file_version {
        bytes_field(3, v.as_bytes(), &mut e);
    }
    if !scalars.is_empty() {
        let mut summary = Vec::new();
        for (tag, value) in scalars {
            let mut val = Vec::new();
            bytes_field(1, tag.as_bytes(), &mut val);
            varint(2 << 3 | 5, &mut val);
            val.extend_from_slice(&value.to_le_bytes());
            bytes_field(1, &val, &mut summary);
        }
        bytes_field(5, &summary, &mut e);
    }
    e
}

fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn write_record(w: &mut impl Write, data: &[u8]) -> std::io::Result<()> {
    let len = (data.len() as u64).to_le_bytes();
    w.write_all(&len)?;
    w.write_all(&masked_crc(&len).to_le_bytes())?;
    w.write_all(data)?;
    w.write_all(&masked_crc(data).to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_use_crc32c() {
        // The CRC-32C check value, as TFRecord framing requires.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        let mut buf = Vec::new();
        write_record(&mut buf, b"abc").unwrap();
        assert_eq!(buf.len(), 8 + 4 + 3 + 4);
        assert_eq!(&buf[..8], &3u64.to_le_bytes());
    }

    #[test]
    fn timestamps_look_like_tunes() {
        let t = timestamp();
        assert_eq!(t.len(), 19, "{t}");
        assert_eq!(&t[4..5], "-");
        assert_eq!(&t[10..11], "_");
    }
}
