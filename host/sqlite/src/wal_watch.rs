//! Whether the file has changed since the change clock was last read, answered without a
//! statement.
//!
//! Reading the clock is a statement, and every statement in WAL mode takes and drops a read
//! lock in the `-shm` file: `fcntl` system calls under a SQLite mutex that the server's worker
//! threads contend for (docs/decisions/0003-wal-watch.md). Every commit, by any connection of any
//! process, rewrites the WAL-index header at the start of that file (its frame count, checksums
//! and change counter), and SQLite's own readers compare that header to tell whether the file
//! changed (`walIndexTryHdr`; the format is sqlite.org/walformat.html). This module reads the
//! header the same way, through a read-only mapping of its own. While the header is the one
//! seen before the last clock read, no commit has happened since, and that read still holds.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{fence, Ordering};
use std::sync::Mutex;

use memmap2::{Mmap, MmapOptions};
use rusqlite::Connection;

/// The two copies of the WAL-index header (`WalIndexHdr`, 48 bytes each) that begin the file.
const HEADER_BYTES: usize = 48;

/// Byte offset of `isInit` in the header: 0 until a connection first initialised it.
const IS_INIT: usize = 12;

/// One copy of the header, as words.
type Header = [u64; HEADER_BYTES / 8];

/// A mapping of the `-shm` file's first page and the clock last read under a header.
pub(super) struct WalWatch<T> {
    mapping: Mmap,
    /// A connection that has the WAL open for as long as the mapping lives. An open WAL
    /// connection holds a shared lock on the database file, which stops another process from
    /// deleting the `-shm` file (on its last close) or truncating it (on its first open), so the
    /// mapping never goes stale or out of bounds. (In a mutex only to be shared between
    /// threads; it runs nothing after `open`.)
    _keeper: Mutex<Connection>,
    known: Mutex<Option<(Header, T)>>,
}

impl<T: Copy> WalWatch<T> {
    /// Watch the WAL of the database `keeper` has open; `None` when it has none (not in WAL
    /// mode, a memory database) or it cannot be mapped: the caller then reads every time.
    pub(super) fn open(keeper: Connection) -> Option<Self> {
        // A read opens the WAL and its index (and initialises the index if it is new).
        keeper
            .query_row("SELECT 1 FROM sqlite_master LIMIT 1", [], |_| Ok(()))
            .ok();
        let journal: String = keeper
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .ok()?;
        if !journal.eq_ignore_ascii_case("wal") {
            return None;
        }
        // SQLite names the index after the database's full path as it resolved it.
        let database = keeper.path().filter(|path| !path.is_empty())?;
        let file = File::open(Path::new(&format!("{database}-shm"))).ok()?;
        if file.metadata().ok()?.len() < (2 * HEADER_BYTES) as u64 {
            return None;
        }
        // SAFETY: the file is only read through `read_header`'s volatile loads, and `_keeper`
        // keeps it from shrinking below the mapped length while the mapping lives.
        let mapping = unsafe { MmapOptions::new().len(2 * HEADER_BYTES).map(&file) }.ok()?;
        let watch = Self {
            mapping,
            _keeper: Mutex::new(keeper),
            known: Mutex::new(None),
        };
        watch.header()?;
        Some(watch)
    }

    /// The header now, read as SQLite's readers read it: the first copy, then the second
    /// (writers write them in the other order); `None` when the copies differ (a commit is
    /// writing them) or the index is not initialised.
    fn header(&self) -> Option<Header> {
        let first = self.read_header(0);
        fence(Ordering::SeqCst);
        let second = self.read_header(HEADER_BYTES);
        let initialised = first[IS_INIT / 8].to_ne_bytes()[IS_INIT % 8] != 0;
        (first == second && initialised).then_some(first)
    }

    fn read_header(&self, offset: usize) -> Header {
        let words = self.mapping.as_ptr().wrapping_add(offset).cast::<u64>();
        // SAFETY: both copies lie inside the mapping, which is page-aligned, so every word is
        // aligned; other processes write this memory, so each load is volatile.
        std::array::from_fn(|word| unsafe { words.add(word).read_volatile() })
    }

    /// The value `read` gives now: the one it gave last if no commit has happened since, else
    /// a fresh one, remembered with the header seen before it was read.
    pub(super) fn current<E>(&self, read: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let Some(header) = self.header() else {
            return read();
        };
        if let Some((seen, value)) = *self.lock() {
            if seen == header {
                return Ok(value);
            }
        }
        // Read after the header: the value reflects at least every commit the header does. If
        // a commit lands in between, the header changes, and this pair never matches again.
        let value = read()?;
        *self.lock() = Some((header, value));
        Ok(value)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Header, T)>> {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn database(dir: &Path, journal: &str) -> (Connection, std::path::PathBuf) {
        let path = dir.join("watched.sqlite3");
        let connection = Connection::open(&path).unwrap();
        connection
            .pragma_update(None, "journal_mode", journal)
            .unwrap();
        connection
            .execute_batch("CREATE TABLE t (x INTEGER)")
            .unwrap();
        (connection, path)
    }

    /// A WAL file in a fresh directory, a connection that writes to it, and a watch on it.
    fn watched() -> (
        tempfile::TempDir,
        Connection,
        std::path::PathBuf,
        WalWatch<u32>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (writer, path) = database(dir.path(), "WAL");
        let watch = WalWatch::open(Connection::open(&path).unwrap()).unwrap();
        (dir, writer, path, watch)
    }

    fn counted_reads(watch: &WalWatch<u32>, reads: &Cell<u32>) -> u32 {
        watch
            .current(|| {
                reads.set(reads.get() + 1);
                Ok::<_, ()>(reads.get())
            })
            .unwrap()
    }

    #[test]
    fn commits_change_the_header_and_reads_do_not() {
        let (_dir, writer, _path, watch) = watched();
        let before = watch.header().unwrap();
        let count: i64 = writer
            .query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count, 0);
        assert_eq!(watch.header(), Some(before), "a read is not a commit");

        writer.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let after_insert = watch.header().unwrap();
        assert_ne!(after_insert, before);

        // A transaction that rolls back commits nothing.
        writer
            .execute_batch("BEGIN; INSERT INTO t VALUES (2); ROLLBACK;")
            .unwrap();
        assert_eq!(watch.header(), Some(after_insert));
    }

    #[test]
    fn the_value_is_read_again_only_after_a_commit() {
        let (_dir, writer, _path, watch) = watched();
        let reads = Cell::new(0);
        assert_eq!(counted_reads(&watch, &reads), 1);
        assert_eq!(
            counted_reads(&watch, &reads),
            1,
            "nothing committed: no read"
        );

        writer.execute("INSERT INTO t VALUES (1)", []).unwrap();
        assert_eq!(counted_reads(&watch, &reads), 2);
        assert_eq!(counted_reads(&watch, &reads), 2);

        // A checkpoint that empties the WAL, then a commit that starts it over: still seen.
        writer
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        writer.execute("INSERT INTO t VALUES (2)", []).unwrap();
        assert_eq!(counted_reads(&watch, &reads), 3);
    }

    #[test]
    fn the_index_outlives_every_other_connection() {
        let (dir, writer, path, watch) = watched();
        let reads = Cell::new(0);
        assert_eq!(counted_reads(&watch, &reads), 1);
        // The last connection to close deletes the WAL and its index, unless another holds
        // them open: the watch's own connection does.
        writer.execute("INSERT INTO t VALUES (1)", []).unwrap();
        drop(writer);
        let shm = dir.path().join("watched.sqlite3-shm");
        assert!(shm.exists(), "the index was deleted under the mapping");

        let later = Connection::open(&path).unwrap();
        later.execute("INSERT INTO t VALUES (2)", []).unwrap();
        assert_eq!(counted_reads(&watch, &reads), 2, "a later commit is seen");
    }

    #[test]
    fn a_failed_read_is_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let (_writer, path) = database(dir.path(), "WAL");
        let watch = WalWatch::<u32>::open(Connection::open(&path).unwrap()).unwrap();
        assert_eq!(watch.current(|| Err::<u32, _>("busy")), Err("busy"));
        assert_eq!(watch.current(|| Ok::<_, ()>(7)), Ok(7));
    }

    #[test]
    fn a_database_not_in_wal_mode_is_not_watched() {
        let dir = tempfile::tempdir().unwrap();
        let (_writer, path) = database(dir.path(), "DELETE");
        assert!(WalWatch::<u32>::open(Connection::open(&path).unwrap()).is_none());
        let memory = Connection::open_in_memory().unwrap();
        assert!(WalWatch::<u32>::open(memory).is_none());
    }
}
