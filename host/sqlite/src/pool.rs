//! The connections of one SQLite file, opened on demand up to a bound and checked out under
//! the current call's deadline (see [`vector_service_runtime::deadline`]).
//!
//! Several connections let a tenant's searches run side by side (WAL readers do not block each
//! other) instead of queueing behind one slow statement. Every connection interrupts its
//! statement once the deadline of the call it works for passes, and waits for a write lock no
//! longer than that deadline (or 5 s without one). A write first takes the store's write turn
//! ([`WriteGate`]), so that SQLite's lock is contended only by other processes.

use std::cell::Cell;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;

use vector_service_runtime::api::BackendError;
use vector_service_runtime::deadline;

use crate::waiting::{wait_counted, wake_one};
use crate::write_gate::{WriteGate, WriteTurn};

/// VM instructions between two deadline checks of a running statement (a check is a clock
/// read: about 20 ns).
const PROGRESS_OPS: i32 = 1_000;

/// Busy retries before a locked database is reported busy: about 5 s of waiting.
const BUSY_RETRIES: i32 = 250;

thread_local! {
    /// Set by [`note_error`] when SQLite reports a damaged file or a full disk; taken by the
    /// checked-out connection the error came from when it returns to its pool.
    static FAULT_SEEN: Cell<Seen> = const { Cell::new(Seen { damage: false, full: false }) };
}

/// The lasting faults one checkout's statements met.
#[derive(Clone, Copy, Default)]
struct Seen {
    damage: bool,
    full: bool,
}

/// Whether `error` says the file itself is damaged (not a busy lock or a bad statement). Text
/// that is not UTF-8 counts: every text this store writes comes from a Rust `String`, so
/// such bytes were not written by it (damaged pages often read as garbage, not as corrupt).
pub(super) fn is_damage(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::Utf8Error(..))
        || matches!(
            error.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
        )
}

/// Whether `error` says the disk (or the file's size limit) is full.
pub(super) fn is_full(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
}

/// Every SQLite error of a store passes here (through `backend_error`): damage and a full disk
/// are remembered for the connection in use, whose pool then reports them as the store's fault
/// (damage for good, a full disk until a write gets through again).
pub(super) fn note_error(error: &rusqlite::Error) {
    let (damage, full) = (is_damage(error), is_full(error));
    if damage || full {
        FAULT_SEEN.with(|seen| {
            let before = seen.get();
            seen.set(Seen {
                damage: before.damage || damage,
                full: before.full || full,
            });
        });
    }
}

fn forget_seen() {
    FAULT_SEEN.with(|seen| seen.set(Seen::default()));
}

/// Idle connections, how many exist, and how many calls wait for one.
struct Slots {
    idle: Vec<Connection>,
    open: usize,
    /// A returned connection wakes a waiter only when there is one: a condvar's notify is a
    /// futex syscall even with nobody waiting, and every backend call returns a connection.
    waiting: usize,
}

/// Up to `max` connections to `path`.
pub(super) struct ConnectionPool {
    path: PathBuf,
    max: usize,
    slots: Mutex<Slots>,
    returned: Condvar,
    damaged: AtomicBool,
    /// A write met a full disk, and none got through since.
    full: AtomicBool,
    write_gate: WriteGate,
}

/// A checked-out connection that holds the store's write turn: what a write transaction runs
/// on. The connection goes back to the pool before the next writer enters.
pub(super) struct Writer<'a> {
    connection: Pooled<'a>,
    _turn: WriteTurn<'a>,
}

/// A checked-out connection; back to the pool on drop.
pub(super) struct Pooled<'a> {
    pool: &'a ConnectionPool,
    connection: Option<Connection>,
}

/// Settings every connection of a store gets: WAL, foreign keys, the deadline hooks.
pub(super) fn configure(connection: &mut Connection) -> rusqlite::Result<()> {
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    // Room for every statement variant (search limits x filter shapes) plus the rest.
    connection.set_prepared_statement_cache_capacity(64);
    connection.progress_handler(PROGRESS_OPS, Some(deadline::expired))?;
    connection.busy_handler(Some(|retries: i32| {
        if retries >= BUSY_RETRIES || deadline::expired() {
            return false;
        }
        let wait = Duration::from_millis((retries as u64 + 1).min(20));
        std::thread::sleep(deadline::cap(wait));
        true
    }))
}

impl ConnectionPool {
    /// A pool over `first` (already configured and migrated) and up to `max - 1` more.
    pub(super) fn new(path: &Path, first: Connection, max: usize) -> Self {
        Self {
            path: path.to_path_buf(),
            max: max.max(1),
            slots: Mutex::new(Slots {
                idle: vec![first],
                open: 1,
                waiting: 0,
            }),
            returned: Condvar::new(),
            damaged: AtomicBool::new(false),
            full: AtomicBool::new(false),
            write_gate: WriteGate::default(),
        }
    }

    /// Connections open now (checked out or idle).
    pub(super) fn open_count(&self) -> usize {
        self.slots().open
    }

    /// The database file's path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Room for `max` connections from now on.
    pub(super) fn set_max(&mut self, max: usize) {
        self.max = max.max(1);
    }

    /// Whether any statement of this store found the file damaged.
    pub(super) fn damaged(&self) -> bool {
        self.damaged.load(Ordering::Relaxed)
    }

    /// Mark the file damaged for good (an integrity check found it so).
    pub(super) fn mark_damaged(&self) {
        self.damaged.store(true, Ordering::Relaxed);
    }

    /// Whether the last write met a full disk.
    pub(super) fn full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    /// A write got through: the disk has room again.
    pub(super) fn room_again(&self) {
        self.full.store(false, Ordering::Relaxed);
    }

    fn slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle connection, a new one if the pool has room, or the first one returned before
    /// the current call's deadline.
    pub(super) fn get(&self) -> Result<Pooled<'_>, BackendError> {
        let mut slots = self.slots();
        loop {
            if let Some(connection) = slots.idle.pop() {
                forget_seen();
                return Ok(Pooled {
                    pool: self,
                    connection: Some(connection),
                });
            }
            if slots.open < self.max {
                slots.open += 1;
                drop(slots);
                return self.open_one().map_err(|error| {
                    self.slots().open -= 1;
                    if is_damage(&error) {
                        self.damaged.store(true, Ordering::Relaxed);
                    }
                    crate::backend_error(error)
                });
            }
            slots = wait_counted(
                &self.returned,
                slots,
                |slots| &mut slots.waiting,
                "every connection stayed busy",
            )?;
        }
    }

    /// A connection for a write transaction, once this store's writer before it is done (see
    /// [`WriteGate`]), waiting no longer than the current call's deadline. The turn is taken
    /// first, so a waiting writer holds no connection that readers could use.
    pub(super) fn writer(&self) -> Result<Writer<'_>, BackendError> {
        // Writing into a damaged file can only spread the damage.
        if self.damaged() {
            return Err(BackendError::Failed(
                "sqlite: the database file is damaged; writes are refused until it is restored"
                    .into(),
            ));
        }
        let turn = self.write_gate.enter()?;
        Ok(Writer {
            connection: self.get()?,
            _turn: turn,
        })
    }

    fn open_one(&self) -> rusqlite::Result<Pooled<'_>> {
        forget_seen();
        let mut connection = Connection::open(&self.path)?;
        configure(&mut connection)?;
        Ok(Pooled {
            pool: self,
            connection: Some(connection),
        })
    }
}

impl Deref for Pooled<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.connection.as_ref().expect("present until drop")
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.connection.as_mut().expect("present until drop")
    }
}

impl Deref for Writer<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.connection
    }
}

impl DerefMut for Writer<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.connection
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let seen = FAULT_SEEN.with(Cell::take);
        if seen.damage {
            self.pool.damaged.store(true, Ordering::Relaxed);
        }
        if seen.full {
            self.pool.full.store(true, Ordering::Relaxed);
        }
        if let Some(connection) = self.connection.take() {
            let mut slots = self.pool.slots();
            slots.idle.push(connection);
            wake_one(&self.pool.returned, slots, |slots| slots.waiting);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::waiting::checks;

    /// A pool of at most one connection, over a new file in a directory removed with it.
    fn pool_of_one() -> (ConnectionPool, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pool.sqlite3");
        let mut first = Connection::open(&path).unwrap();
        configure(&mut first).unwrap();
        (ConnectionPool::new(&path, first, 1), dir)
    }

    #[test]
    fn a_call_waiting_for_the_only_connection_gets_it_when_it_returns() {
        let (pool, _scratch) = pool_of_one();
        let held = pool.get().unwrap();
        // The other call waits: the pool has no room and nothing idle.
        checks::a_waiter_is_served_on_release(
            || pool.get().map(drop),
            || pool.slots().waiting > 0,
            || drop(held),
        );
        let slots = pool.slots();
        assert_eq!((slots.waiting, slots.idle.len(), slots.open), (0, 1, 1));
    }

    #[test]
    fn a_call_waits_no_longer_than_its_deadline() {
        let (pool, _scratch) = pool_of_one();
        let _held = pool.get().unwrap();
        checks::a_waiter_gives_up_at_its_deadline(|| pool.get().map(drop), "stayed busy");
        assert_eq!(pool.slots().waiting, 0);
    }
}
