//! Where datasets come from: `range`, `from_items`, and files (`read_text`,
//! `read_binary_files`: a file, a folder of files, or a `*`/`?` pattern in the last path
//! component), one block per file, read by the block's task.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::exec::Thunk;
use crate::{DataError, Dataset};

/// Rows per block for `n` rows: enough blocks for every CPU a few times over, at most 256 Ki
/// rows each (a few MB), so that streaming memory stays small.
fn rows_per_block(n: usize) -> usize {
    let blocks = 4 * ray::detect_cpus().max(1);
    n.div_ceil(blocks).clamp(1, 1 << 18)
}

/// `0..n` (Ray's `range`).
pub fn range(n: u64) -> Dataset<u64> {
    let per = rows_per_block(n as usize) as u64;
    Dataset::from_thunks(
        "range",
        Arc::new(move || {
            let blocks = n.div_ceil(per);
            Ok((0..blocks)
                .map(|b| {
                    let (lo, hi) = (b * per, ((b + 1) * per).min(n));
                    Arc::new(move || Ok((lo..hi).collect())) as Thunk<u64>
                })
                .collect())
        }),
    )
}

/// A dataset of these rows (Ray's `from_items`).
pub fn from_items<T: Clone + Send + Sync + 'static>(items: Vec<T>) -> Dataset<T> {
    let per = rows_per_block(items.len());
    let blocks: Vec<Vec<T>> = items.chunks(per).map(<[T]>::to_vec).collect();
    Dataset::from_blocks("from_items", Arc::new(blocks))
}

fn io(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Whether `name` matches `pattern` (`*`: any run of characters, `?`: one).
fn matches(pattern: &[char], name: &[char]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some('*'), _) => {
            matches(&pattern[1..], name) || (!name.is_empty() && matches(pattern, &name[1..]))
        }
        (Some('?'), Some(_)) => matches(&pattern[1..], &name[1..]),
        (Some(p), Some(c)) if p == c => matches(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// The files `path` names: itself, a folder's files (sorted, hidden ones skipped), or those
/// matching a pattern in its last component. None is an error naming the path.
pub(crate) fn files(path: &Path) -> Result<Vec<PathBuf>, DataError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut out = Vec::new();
    if name.contains(['*', '?']) {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let pattern: Vec<char> = name.chars().collect();
        for e in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let p = e.map_err(|e| io(dir, e))?.path();
            let n: Vec<char> = p
                .file_name()
                .map(|n| n.to_string_lossy().chars().collect())
                .unwrap_or_default();
            if p.is_file() && matches(&pattern, &n) {
                out.push(p);
            }
        }
    } else if path.is_dir() {
        for e in std::fs::read_dir(path).map_err(|e| io(path, e))? {
            let p = e.map_err(|e| io(path, e))?.path();
            let hidden = p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if p.is_file() && !hidden {
                out.push(p);
            }
        }
    } else if path.is_file() {
        out.push(path.to_path_buf());
    } else {
        return Err(io(path, "no such file or folder"));
    }
    if out.is_empty() {
        return Err(io(path, "no files match"));
    }
    out.sort();
    Ok(out)
}

/// One block per file, made by `read` in the block's task.
pub(crate) fn per_file<T: Send + Sync + 'static>(
    name: &str,
    path: &Path,
    read: impl Fn(&Path) -> Result<Vec<T>, DataError> + Send + Sync + 'static,
) -> Dataset<T> {
    let path = path.to_path_buf();
    let read = Arc::new(read);
    Dataset::from_thunks(
        name,
        Arc::new(move || {
            Ok(files(&path)?
                .into_iter()
                .map(|f| {
                    let read = Arc::clone(&read);
                    Arc::new(move || read(&f)) as Thunk<T>
                })
                .collect())
        }),
    )
}

/// The lines of text files (Ray's `read_text`), without their line ends.
pub fn read_text(path: impl AsRef<Path>) -> Dataset<String> {
    per_file("read_text", path.as_ref(), |f| {
        let text = std::fs::read_to_string(f).map_err(|e| io(f, e))?;
        Ok(text.lines().map(str::to_string).collect())
    })
}

/// Each file as (its path, its bytes) (Ray's `read_binary_files`).
pub fn read_binary_files(path: impl AsRef<Path>) -> Dataset<(PathBuf, Vec<u8>)> {
    per_file("read_binary_files", path.as_ref(), |f| {
        Ok(vec![(
            f.to_path_buf(),
            std::fs::read(f).map_err(|e| io(f, e))?,
        )])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_shells_do() {
        let m = |p: &str, n: &str| {
            matches(
                &p.chars().collect::<Vec<_>>(),
                &n.chars().collect::<Vec<_>>(),
            )
        };
        assert!(m("*.csv", "a.csv") && m("part-?.txt", "part-1.txt") && m("*", ""));
        assert!(!m("*.csv", "a.csv.tmp") && !m("part-?.txt", "part-12.txt"));
    }
}
