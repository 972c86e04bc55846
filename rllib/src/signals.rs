//! Stopping a run from outside: SIGINT (Ctrl-C), SIGTERM (batch schedulers, containers,
//! `kill`) and SIGHUP (a closed terminal) all ask the run to finish its iteration, write a
//! final checkpoint and exit with 128 + the signal's number; the same signal twice exits at
//! once.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::console;

/// The signals that stop a run.
pub const STOP_SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// A signal's name.
pub fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// Set once a stop signal has arrived.
#[derive(Debug, Clone)]
pub struct StopRequest {
    signal: Arc<AtomicI32>,
}

impl StopRequest {
    /// Starts listening for [`STOP_SIGNALS`] on a thread of its own.
    pub fn install() -> Result<Self, String> {
        let signal = Arc::new(AtomicI32::new(0));
        let mut signals =
            Signals::new(STOP_SIGNALS).map_err(|e| format!("cannot handle signals: {e}"))?;
        let seen = Arc::clone(&signal);
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if seen.swap(sig, Ordering::SeqCst) != 0 {
                        let what = if sig == SIGINT {
                            "interrupted twice".to_string()
                        } else {
                            format!("{} after a stop request", name(sig))
                        };
                        console::warn(format_args!("\n{what}: exiting now"));
                        std::process::exit(128 + sig);
                    }
                    console::warn(format_args!(
                        "\ninterrupted ({}): finishing this iteration and writing a checkpoint (again to quit now)",
                        name(sig)
                    ));
                }
            })
            .map_err(|e| format!("cannot start the signal thread: {e}"))?;
        Ok(StopRequest { signal })
    }

    /// The signal that asked the run to stop, if one did.
    pub fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }
}
