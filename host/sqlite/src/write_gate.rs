//! One writer at a time per store in this process, queued on a condvar.
//!
//! SQLite lets one connection write at a time, and a connection that finds the write lock
//! taken calls its busy handler, which sleeps 1, 2, 3 ... ms between tries. Under steady
//! writes a sleeping writer kept losing the lock to newcomers: /v1/contributors answered at a
//! p50 of 0.5 ms and a p99 of 11 ms (BENCHMARKS.md). Writers of one store now wait here and
//! are woken as the writer before them finishes; the busy handler is left to writers in other
//! processes.

use std::sync::{Condvar, Mutex, MutexGuard};

use vector_service_runtime::api::BackendError;
use vector_service_runtime::deadline;

#[derive(Default)]
struct Turns {
    taken: bool,
    waiting: usize,
}

/// The store's write turn.
#[derive(Default)]
pub(super) struct WriteGate {
    turns: Mutex<Turns>,
    freed: Condvar,
}

/// The write turn, held until drop.
pub(super) struct WriteTurn<'a> {
    gate: &'a WriteGate,
}

impl WriteGate {
    fn turns(&self) -> MutexGuard<'_, Turns> {
        self.turns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The write turn, once the writer holding it is done, waiting no longer than the current
    /// call's deadline.
    pub(super) fn enter(&self) -> Result<WriteTurn<'_>, BackendError> {
        let mut turns = self.turns();
        while turns.taken {
            turns.waiting += 1;
            let waited = wait_within_deadline(&self.freed, turns);
            let out_of_time = waited.is_err();
            let (Ok(back) | Err(back)) = waited;
            turns = back;
            turns.waiting -= 1;
            if out_of_time {
                return Err(BackendError::Unavailable(format!(
                    "sqlite: another write held the store: {}",
                    deadline::DEADLINE_MESSAGE
                )));
            }
        }
        turns.taken = true;
        Ok(WriteTurn { gate: self })
    }
}

impl Drop for WriteTurn<'_> {
    fn drop(&mut self) {
        let mut turns = self.gate.turns();
        turns.taken = false;
        let someone_waits = turns.waiting > 0;
        drop(turns);
        if someone_waits {
            self.gate.freed.notify_one();
        }
    }
}

/// `guard` back after waiting on `condvar` for at most the time left before the current call's
/// deadline (for ever without one); `Err` with it, without waiting, when no time is left.
pub(super) fn wait_within_deadline<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
) -> Result<MutexGuard<'a, T>, MutexGuard<'a, T>> {
    match deadline::remaining() {
        Some(left) if left.is_zero() => Err(guard),
        None => Ok(condvar.wait(guard).unwrap_or_else(|p| p.into_inner())),
        Some(left) => Ok(condvar
            .wait_timeout(guard, left)
            .unwrap_or_else(|p| p.into_inner())
            .0),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_waiting_writer_enters_when_the_one_before_it_is_done() {
        let gate = WriteGate::default();
        let first = gate.enter().unwrap();
        let (entered, received) = mpsc::channel();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                // A deadline, so that a waiter nobody wakes ends the test instead of hanging it.
                let deadline = Instant::now() + Duration::from_secs(10);
                let turn = deadline::within(deadline, || gate.enter().map(drop));
                entered.send((turn, Instant::now() < deadline)).unwrap();
            });
            while gate.turns().waiting == 0 {
                std::thread::yield_now();
            }
            assert!(
                received.try_recv().is_err(),
                "entered while the first wrote"
            );
            drop(first);
            let waited = received.recv().unwrap();
            assert!(matches!(waited, (Ok(()), true)), "{waited:?}");
        });
        let turns = gate.turns();
        assert!(!turns.taken && turns.waiting == 0);
    }

    #[test]
    fn a_writer_waits_no_longer_than_its_deadline() {
        let gate = WriteGate::default();
        let _first = gate.enter().unwrap();
        let started = Instant::now();
        let refused = deadline::within(started + Duration::from_millis(50), || {
            gate.enter().map(drop)
        });
        assert!(
            matches!(&refused, Err(BackendError::Unavailable(message)) if message.contains("another write")),
            "{refused:?}"
        );
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(gate.turns().waiting, 0);
    }
}
