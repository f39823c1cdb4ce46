//! The connections of one SQLite file, opened on demand up to a bound and checked out under
//! the current call's deadline (see [`vector_service_runtime::deadline`]).
//!
//! Several connections let a tenant's searches run side by side (WAL readers do not block each
//! other) instead of queueing behind one slow statement. Every connection interrupts its
//! statement once the deadline of the call it works for passes, and waits for a write lock no
//! longer than that deadline (or 5 s without one).

use std::cell::Cell;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;

use vector_service_runtime::api::BackendError;
use vector_service_runtime::deadline;

/// VM instructions between two deadline checks of a running statement (a check is a clock
/// read: about 20 ns).
const PROGRESS_OPS: i32 = 1_000;

/// Busy retries before a locked database is reported busy: about 5 s of waiting.
const BUSY_RETRIES: i32 = 250;

thread_local! {
    /// Set by [`note_error`] when SQLite reports a damaged file; taken by the checked-out
    /// connection the error came from when it returns to its pool.
    static DAMAGE_SEEN: Cell<bool> = const { Cell::new(false) };
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

/// Every SQLite error of a store passes here (through `backend_error`): damage is remembered
/// for the connection in use, whose pool then reports the store unhealthy for good.
pub(super) fn note_error(error: &rusqlite::Error) {
    if is_damage(error) {
        DAMAGE_SEEN.with(|seen| seen.set(true));
    }
}

/// Idle connections and how many exist.
struct Slots {
    idle: Vec<Connection>,
    open: usize,
}

/// Up to `max` connections to `path`.
pub(super) struct ConnectionPool {
    path: PathBuf,
    max: usize,
    slots: Mutex<Slots>,
    returned: Condvar,
    damaged: AtomicBool,
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
            }),
            returned: Condvar::new(),
            damaged: AtomicBool::new(false),
        }
    }

    /// Room for `max` connections from now on.
    pub(super) fn set_max(&mut self, max: usize) {
        self.max = max.max(1);
    }

    /// Whether any statement of this store found the file damaged.
    pub(super) fn damaged(&self) -> bool {
        self.damaged.load(Ordering::Relaxed)
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
                DAMAGE_SEEN.with(|seen| seen.set(false));
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
            slots = match deadline::remaining() {
                None => self.returned.wait(slots).unwrap_or_else(|p| p.into_inner()),
                Some(left) if left.is_zero() => {
                    return Err(BackendError::Unavailable(format!(
                        "sqlite: every connection stayed busy: {}",
                        deadline::DEADLINE_MESSAGE
                    )))
                }
                Some(left) => {
                    self.returned
                        .wait_timeout(slots, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }

    fn open_one(&self) -> rusqlite::Result<Pooled<'_>> {
        DAMAGE_SEEN.with(|seen| seen.set(false));
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

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if DAMAGE_SEEN.with(Cell::take) {
            self.pool.damaged.store(true, Ordering::Relaxed);
        }
        if let Some(connection) = self.connection.take() {
            self.pool.slots().idle.push(connection);
            self.pool.returned.notify_one();
        }
    }
}
