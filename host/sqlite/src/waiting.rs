//! Waiting for something a store shares between calls (a connection, the write turn), no
//! longer than the current call's deadline.

use std::sync::{Condvar, MutexGuard};

use vector_service_runtime::api::BackendError;
use vector_service_runtime::deadline;

/// `guard` back after waiting on `condvar`, counted in `waiting(&mut guard)` meanwhile (so that
/// whoever frees the thing notifies only when someone waits), for at most the time left before
/// the current call's deadline (for ever without one). When no time is left it does not wait:
/// the call gets `Unavailable`, saying that `what_held_it` until the deadline.
pub(super) fn wait_counted<'a, T>(
    condvar: &Condvar,
    mut guard: MutexGuard<'a, T>,
    waiting: fn(&mut T) -> &mut usize,
    what_held_it: &str,
) -> Result<MutexGuard<'a, T>, BackendError> {
    let left = deadline::remaining();
    if left.is_some_and(|left| left.is_zero()) {
        return Err(BackendError::Unavailable(format!(
            "sqlite: {what_held_it}: {}",
            deadline::DEADLINE_MESSAGE
        )));
    }
    *waiting(&mut guard) += 1;
    let mut guard = match left {
        None => condvar.wait(guard).unwrap_or_else(|p| p.into_inner()),
        Some(left) => {
            condvar
                .wait_timeout(guard, left)
                .unwrap_or_else(|p| p.into_inner())
                .0
        }
    };
    *waiting(&mut guard) -= 1;
    Ok(guard)
}

/// Unlocks `guard`, then wakes one waiter of `condvar` when `waiting(&guard)` counts one: a
/// notify is a futex call even with nobody waiting, and every call frees what it took.
pub(super) fn wake_one<T>(condvar: &Condvar, guard: MutexGuard<'_, T>, waiting: fn(&T) -> usize) {
    let someone_waits = waiting(&guard) > 0;
    drop(guard);
    if someone_waits {
        condvar.notify_one();
    }
}

/// Checks shared by the tests of the things calls wait for.
#[cfg(test)]
pub(super) mod checks {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use vector_service_runtime::api::BackendError;
    use vector_service_runtime::deadline;

    /// `take`, run on another thread, waits (until `someone_waits`) and gets the thing once
    /// `release` frees it, well before its deadline.
    pub(crate) fn a_waiter_is_served_on_release(
        take: impl Fn() -> Result<(), BackendError> + Sync,
        someone_waits: impl Fn() -> bool,
        release: impl FnOnce(),
    ) {
        let (got, received) = mpsc::channel();
        std::thread::scope(|scope| {
            let take = &take;
            scope.spawn(move || {
                // A deadline, so that a waiter nobody wakes ends the test instead of hanging it.
                let deadline = Instant::now() + Duration::from_secs(10);
                let taken = deadline::within(deadline, take);
                got.send((taken, Instant::now() < deadline)).unwrap();
            });
            while !someone_waits() {
                std::thread::yield_now();
            }
            assert!(
                received.try_recv().is_err(),
                "served while the thing was held"
            );
            release();
            let waited = received.recv().unwrap();
            assert!(
                matches!(waited, (Ok(()), true)),
                "woken before the deadline: {waited:?}"
            );
        });
    }

    /// `take`, with 50 ms left, gives up after them with an `Unavailable` error naming
    /// `what_held_it`.
    pub(crate) fn a_waiter_gives_up_at_its_deadline(
        take: impl FnOnce() -> Result<(), BackendError>,
        what_held_it: &str,
    ) {
        let started = Instant::now();
        let refused = deadline::within(started + Duration::from_millis(50), take);
        assert!(
            matches!(&refused, Err(BackendError::Unavailable(message)) if message.contains(what_held_it)),
            "{refused:?}"
        );
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}
