//! Waiting briefly before sleeping.
//!
//! A thread that sleeps on a futex or a channel is woken by the one that has its answer. On
//! a virtual machine whose idle cores halt at once (this project's 2-core machines run with
//! `haltpoll.guest_halt_poll_ns=0`), that wake-up costs the waker an interrupt to a halted
//! core and the sleeper its restart: 10-25 µs each, measured, more than a whole call on a
//! local actor. A remote call passes through six such wake-ups. So the threads that wait for
//! a short answer (a caller in `get`, an actor thread between calls) first look for it for a
//! bounded time, yielding their core to anything else that is runnable, and only then sleep.

use std::time::{Duration, Instant};

/// How long a waiter looks for its answer before it sleeps: about two remote round trips on
/// loopback, and nothing beside the milliseconds an env runner's sample takes.
pub(crate) const BEFORE_SLEEP: Duration = Duration::from_micros(200);

/// Polls `ready` until it yields a value, `window` has passed, or `deadline` (if any) is
/// reached, yielding the core between polls. `None`: sleep now.
pub(crate) fn spin_for<T>(
    window: Duration,
    deadline: Option<Instant>,
    mut ready: impl FnMut() -> Option<T>,
) -> Option<T> {
    let start = Instant::now();
    let until = deadline.map_or(start + window, |d| d.min(start + window));
    loop {
        if let Some(v) = ready() {
            return Some(v);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::yield_now();
    }
}

/// The next message on `rx`, looked for for `window` before the thread sleeps on it; `None`
/// once every sender is gone.
pub(crate) fn recv<T>(rx: &crossbeam_channel::Receiver<T>, window: Duration) -> Option<T> {
    spin_for(window, None, || rx.try_recv().ok()).or_else(|| rx.recv().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_up_after_its_window_and_returns_what_comes_within_it() {
        let t = Instant::now();
        assert_eq!(
            spin_for(Duration::from_millis(5), None, || None::<u8>),
            None
        );
        assert!(t.elapsed() >= Duration::from_millis(5));
        let mut polls = 0;
        let got = spin_for(Duration::from_secs(10), None, || {
            polls += 1;
            (polls == 3).then_some(7)
        });
        assert_eq!((got, polls), (Some(7), 3));
        // A deadline before the window ends the wait sooner.
        let t = Instant::now();
        let soon = Some(Instant::now() + Duration::from_millis(2));
        assert_eq!(spin_for(Duration::from_secs(10), soon, || None::<u8>), None);
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
