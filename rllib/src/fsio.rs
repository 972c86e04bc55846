//! File-system helpers: messages that say what is really wrong with a path (a dangling
//! symbolic link, a loop of links) and reads that stop at a size bound.

use std::fs;
use std::io::{self, Read};
use std::path::Path;

/// ELOOP: too many levels of symbolic links (the same number on every Linux architecture;
/// `io::ErrorKind::FilesystemLoop` is not stable yet).
const ELOOP: i32 = 40;

fn is_loop(e: &io::Error) -> bool {
    e.raw_os_error() == Some(ELOOP)
}

/// Why `path` cannot be used, for a path that failed to open: a dangling symbolic link (its
/// own or one of its folders'), a loop of links, or the OS's words.
pub fn describe(path: &Path, e: &io::Error) -> String {
    if is_loop(e) {
        return "is a loop of symbolic links (a link that leads back to itself)".to_string();
    }
    if let Some(why) = dangling(path) {
        return why;
    }
    if e.kind() == io::ErrorKind::NotFound {
        return "does not exist".to_string();
    }
    e.to_string()
}

/// "is a dangling symbolic link to X" when `path` or one of its folders is a link whose
/// target is missing.
pub fn dangling(path: &Path) -> Option<String> {
    for p in path.ancestors().filter(|p| !p.as_os_str().is_empty()) {
        let Ok(meta) = fs::symlink_metadata(p) else {
            continue;
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        match fs::metadata(p) {
            Ok(_) => return None,
            Err(e) if is_loop(&e) => {
                return Some(if p == path {
                    "is a loop of symbolic links (a link that leads back to itself)".to_string()
                } else {
                    format!("{} is a loop of symbolic links", p.display())
                });
            }
            Err(_) => {
                let target = fs::read_link(p)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                return Some(if p == path {
                    format!("is a dangling symbolic link (to {target}, which does not exist)")
                } else {
                    format!(
                        "{} is a dangling symbolic link (to {target}, which does not exist)",
                        p.display()
                    )
                });
            }
        }
    }
    None
}

/// `s` as one safe folder name, as Ray cleans names: characters other than letters, digits
/// and `-_.+=,@` become `_`, and so does a leading `.` (a hidden or relative folder).
pub fn safe_component(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.+=,@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with('.') {
        out.replace_range(..1, "_");
    }
    out
}

/// Reads at most `limit` bytes of a file; a longer file (or an endless one such as
/// `/dev/zero`) is an error that says so.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let file =
        fs::File::open(path).map_err(|e| format!("cannot be read: {}", describe(path, &e)))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read: {}", describe(path, &e)))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "is larger than {} bytes, more than this file can hold",
            limit
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_described_as_links() {
        let d = tempfile::tempdir().unwrap();
        let dangling_link = d.path().join("gone");
        std::os::unix::fs::symlink(d.path().join("nowhere"), &dangling_link).unwrap();
        let e = fs::File::open(&dangling_link).unwrap_err();
        assert!(describe(&dangling_link, &e).contains("dangling symbolic link"));
        let inside = dangling_link.join("file");
        let e = fs::File::open(&inside).unwrap_err();
        assert!(describe(&inside, &e).contains("gone is a dangling symbolic link"));
        let a = d.path().join("a");
        let b = d.path().join("b");
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        let e = fs::File::open(&a).unwrap_err();
        assert!(describe(&a, &e).contains("loop of symbolic links"));
        let missing = d.path().join("missing");
        let e = fs::File::open(&missing).unwrap_err();
        assert_eq!(describe(&missing, &e), "does not exist");
    }

    #[test]
    fn reads_stop_at_the_bound() {
        let e = read_bounded(Path::new("/dev/zero"), 1000).unwrap_err();
        assert!(e.contains("larger than 1000 bytes"), "{e}");
    }
}
