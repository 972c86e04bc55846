//! Typed rows to and from files through serde: JSON lines and CSV (with a header row). Reads
//! are one block per file (a file, a folder or a pattern, as `read_text`); writes are one file
//! per block, `part-NNNNN.<ext>`, each written under a hidden temporary name and renamed into
//! place, so a crash leaves no half-written file under its final name. Errors name the file
//! and line (and the column for CSV).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{DataError, Dataset};

fn io(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// JSON lines (one object per line, blank lines skipped) as rows of `T` (Ray's `read_json`).
pub fn read_json<T: DeserializeOwned + Send + Sync + 'static>(
    path: impl AsRef<Path>,
) -> Dataset<T> {
    crate::source::per_file("read_json", path.as_ref(), |f| {
        let text = std::fs::read_to_string(f).map_err(|e| io(f, e))?;
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| io(f, format!("line {}: {e}", i + 1)))
            })
            .collect()
    })
}

/// CSV with a header row as rows of `T`, columns matched to fields by name (Ray's
/// `read_csv`); a missing column or a value of the wrong type is an error naming the file,
/// line and column.
pub fn read_csv<T: DeserializeOwned + Send + Sync + 'static>(path: impl AsRef<Path>) -> Dataset<T> {
    crate::source::per_file("read_csv", path.as_ref(), |f| {
        let mut r = csv::Reader::from_path(f).map_err(|e| io(f, e))?;
        let headers = r.headers().map_err(|e| io(f, e))?.clone();
        r.deserialize()
            .map(|row: Result<T, csv::Error>| {
                row.map_err(|e| {
                    let at = e
                        .position()
                        .map_or(String::new(), |p| format!("line {}: ", p.line()));
                    let column = match e.kind() {
                        csv::ErrorKind::Deserialize { err, .. } => err
                            .field()
                            .and_then(|i| headers.get(i as usize))
                            .map_or(String::new(), |c| format!("column {c:?}: ")),
                        _ => String::new(),
                    };
                    io(f, format!("{at}{column}{e}"))
                })
            })
            .collect()
    })
}

/// Writes `bytes` as `dir/name` through a hidden temporary file renamed into place.
pub(crate) fn write_atomic(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<PathBuf, DataError> {
    let dest = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let done = std::fs::File::create(&tmp)
        .and_then(|mut f| {
            write(&mut f)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, &dest));
    match done {
        Ok(()) => Ok(dest),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(io(&dest, e))
        }
    }
}

impl<T: Send + Sync + 'static> Dataset<T> {
    /// Writes the rows as JSON lines into folder `dir` (made if missing), one
    /// `part-NNNNN.json` per block, each block in its own task; returns the files in order.
    pub fn write_json(&self, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, DataError>
    where
        T: Serialize,
    {
        self.write_parts(dir.as_ref(), "write_json", "json", |f, rows| {
            let mut w = std::io::BufWriter::new(f);
            for r in rows {
                serde_json::to_writer(&mut w, r).map_err(std::io::Error::other)?;
                w.write_all(b"\n")?;
            }
            w.flush()
        })
    }

    /// Writes the rows as CSV with a header row into folder `dir`, one `part-NNNNN.csv` per
    /// block; returns the files in order.
    pub fn write_csv(&self, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, DataError>
    where
        T: Serialize,
    {
        self.write_parts(dir.as_ref(), "write_csv", "csv", |f, rows| {
            let mut w = csv::Writer::from_writer(f);
            for r in rows {
                w.serialize(r).map_err(std::io::Error::other)?;
            }
            w.flush()
        })
    }

    fn write_parts(
        &self,
        dir: &Path,
        stage: &str,
        ext: &'static str,
        write: impl Fn(&mut std::fs::File, &[T]) -> std::io::Result<()> + Send + Sync + 'static,
    ) -> Result<Vec<PathBuf>, DataError> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let dir = dir.to_path_buf();
        let written = self.stage_indexed(stage, move |i, rows| {
            let name = format!("part-{i:05}.{ext}");
            Ok(vec![write_atomic(&dir, &name, |f| write(f, &rows))?])
        });
        written.take_all()
    }
}
