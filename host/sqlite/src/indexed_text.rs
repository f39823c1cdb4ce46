//! Keeps a [`LexicalIndex`] in step with the SQLite store it caches, through the same change
//! clock as the vector index: every write of a record stamps it with the clock's new `seq`,
//! every deletion leaves a tombstone with its own. The index remembers the `seq` it reflects
//! and, before a search, replays what any process wrote since. It lives in memory and is
//! built from the table on the first lexical search of a process. The same replay keeps the
//! copies of what each record's hit shows ([`HitCopies`]).

use rusqlite::Connection;
use vector_service_runtime::api::BackendError;
use vector_service_runtime::backends::LexicalIndex;

use crate::backend_error;
use crate::hit_copies::HitCopies;
use crate::indexed_vectors::{current_seq, deleted_since};

/// The index, the records' hit copies, and the change-clock `seq` both reflect.
pub(crate) struct IndexedText {
    pub(crate) index: LexicalIndex,
    pub(crate) hits: HitCopies,
    seq: i64,
}

impl IndexedText {
    /// Every record of the store, indexed, and copied up to `hit_copy_budget` bytes.
    pub(crate) fn build(
        connection: &Connection,
        hit_copy_budget: usize,
    ) -> Result<Self, BackendError> {
        let seq = current_seq(connection)?;
        let mut indexed = Self {
            index: LexicalIndex::new(),
            hits: HitCopies::new(hit_copy_budget),
            seq,
        };
        indexed.add_rows(
            connection,
            "SELECT rowid, id, origin_db, text, metadata FROM records",
            None,
        )?;
        Ok(indexed)
    }

    /// Bytes the index and the copies hold in memory.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.index.heap_bytes() + self.hits.bytes()
    }

    /// Whether the index reflects every change up to `newest`.
    pub(crate) fn is_current(&self, newest: i64) -> bool {
        self.seq >= newest
    }

    /// Apply every change written after the `seq` this index reflects. Returns how many.
    pub(crate) fn catch_up(&mut self, connection: &Connection) -> Result<usize, BackendError> {
        let newest = current_seq(connection)?;
        if self.is_current(newest) {
            return Ok(0);
        }
        let removed = deleted_since(connection, self.seq)?;
        for key in &removed {
            self.index.remove(*key);
            self.hits.remove(*key);
        }
        // Removals first: a rowid freed by a deletion may belong to a newer record now.
        let added = self.add_rows(
            connection,
            "SELECT rowid, id, origin_db, text, metadata FROM records WHERE seq > ?1",
            Some(self.seq),
        )?;
        self.seq = newest;
        Ok(removed.len() + added)
    }

    fn add_rows(
        &mut self,
        connection: &Connection,
        sql: &str,
        after: Option<i64>,
    ) -> Result<usize, BackendError> {
        let mut statement = connection.prepare_cached(sql).map_err(backend_error)?;
        let mut rows = match after {
            Some(seq) => statement.query([seq]),
            None => statement.query([]),
        }
        .map_err(backend_error)?;
        let mut added = 0;
        while let Some(row) = rows.next().map_err(backend_error)? {
            let key: i64 = row.get(0).map_err(backend_error)?;
            let id: String = row.get(1).map_err(backend_error)?;
            let origin: String = row.get(2).map_err(backend_error)?;
            let text: String = row.get(3).map_err(backend_error)?;
            let metadata: String = row.get(4).map_err(backend_error)?;
            self.index.upsert(key as u64, &id, &origin, &text);
            self.hits.put(key as u64, origin, id, metadata);
            added += 1;
        }
        Ok(added)
    }
}
