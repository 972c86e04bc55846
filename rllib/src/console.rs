//! Output that never stops a run: a closed pipe (`rllib train | head -1`), a full disk
//! (`>/dev/full`) or a hung-up terminal makes printing fail, never the process.
//!
//! `println!` panics when stdout fails; everything the binary prints goes through here.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

/// Writes one line to stdout; an error is returned to the caller (listing commands stop on
/// it).
pub fn try_line(args: std::fmt::Arguments<'_>) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Writes one line to stdout for a run in progress. After the first failure stdout is left
/// alone, and stderr says once that progress goes on in the result files.
pub fn line(args: std::fmt::Arguments<'_>) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = try_line(args) {
        STDOUT_GONE.store(true, Ordering::Relaxed);
        warn(format_args!(
            "warning: stdout is closed or full ({e}); the run goes on, and its results are written to its folder"
        ));
    }
}

/// Writes one line to stderr, ignoring failure (there is nowhere left to report it).
pub fn warn(args: std::fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args);
    let _ = err.write_all(b"\n");
}

/// Whether stdout failed during this run.
pub fn stdout_gone() -> bool {
    STDOUT_GONE.load(Ordering::Relaxed)
}
