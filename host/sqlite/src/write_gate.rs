//! One writer at a time per store in this process, queued on a condvar.
//!
//! SQLite lets one connection write at a time, and a connection that finds the write lock
//! taken calls its busy handler, which sleeps 1, 2, 3 ... ms between tries. Under steady
//! writes a sleeping writer kept losing the lock to newcomers: /v1/contributors answered at a
//! p50 of 0.5 ms and a p99 of 11 ms (docs/decisions/0007-writer-queue.md). Writers of one store now wait here and
//! are woken as the writer before them finishes; the busy handler is left to writers in other
//! processes.

use std::sync::{Condvar, Mutex, MutexGuard};

use vector_service_runtime::api::BackendError;

use crate::waiting::{wait_counted, wake_one};

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
            turns = wait_counted(
                &self.freed,
                turns,
                |turns| &mut turns.waiting,
                "another write held the store",
            )?;
        }
        turns.taken = true;
        Ok(WriteTurn { gate: self })
    }
}

impl Drop for WriteTurn<'_> {
    fn drop(&mut self) {
        let mut turns = self.gate.turns();
        turns.taken = false;
        wake_one(&self.gate.freed, turns, |turns| turns.waiting);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::waiting::checks;

    #[test]
    fn a_waiting_writer_enters_when_the_one_before_it_is_done() {
        let gate = WriteGate::default();
        let first = gate.enter().unwrap();
        checks::a_waiter_is_served_on_release(
            || gate.enter().map(drop),
            || gate.turns().waiting > 0,
            || drop(first),
        );
        let turns = gate.turns();
        assert!(!turns.taken && turns.waiting == 0);
    }

    #[test]
    fn a_writer_waits_no_longer_than_its_deadline() {
        let gate = WriteGate::default();
        let _first = gate.enter().unwrap();
        checks::a_waiter_gives_up_at_its_deadline(|| gate.enter().map(drop), "another write");
        assert_eq!(gate.turns().waiting, 0);
    }
}
