//! Keeps a [`VectorIndex`] in step with the SQLite store it caches.
//!
//! The database is the truth. Every change to the vectors bumps a counter in the same
//! transaction (`change_clock.seq`): embeddings carry the `seq` that wrote them and deleted
//! records leave a tombstone with theirs. A snapshot file records the `seq` it covers, so
//! opening replays only what changed since (from this or any other process); a snapshot of
//! another embedder, other parameters, or none at all is rebuilt from the table.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use crate::backend_error;
use crate::vector_index::{IndexError, IndexParams, VectorIndex};
use vector_service_runtime::api::BackendError;

/// What a snapshot was built from; a mismatch with the running store means "rebuild".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SnapshotHeader {
    embedding_version: String,
    dimensions: usize,
    connectivity: usize,
    expansion_add: usize,
    quantization: String,
    seq: i64,
}

/// The loaded index, the `seq` it reflects, and each key's origin (for filtered search).
pub(super) struct IndexedVectors {
    pub(super) index: VectorIndex,
    pub(super) origins: HashMap<u64, String>,
    seq: i64,
    saved_seq: i64,
    header: SnapshotHeader,
    snapshot: PathBuf,
}

impl IndexedVectors {
    /// Bytes the index and its origins map hold in memory; the origins' names are counted
    /// at a typical length (database names are short) rather than walked.
    pub(super) fn heap_bytes(&self) -> usize {
        const PER_ORIGIN: usize = std::mem::size_of::<(u64, String)>() + 8 + 16;
        self.index.memory_bytes() + self.origins.len() * PER_ORIGIN
    }
}

fn index_error(error: IndexError) -> BackendError {
    BackendError::Failed(error.to_string())
}

fn header_path(snapshot: &Path) -> PathBuf {
    snapshot.with_extension("usearch.json")
}

/// The store's change counter: the newest `seq` written.
/// Read before every search, so its statement stays prepared.
pub(super) fn current_seq(connection: &Connection) -> Result<i64, BackendError> {
    connection
        .prepare_cached("SELECT seq FROM change_clock")
        .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
        .map_err(backend_error)
}

/// Keys (rowids) of the records deleted after `seq`: what an index that reflects `seq`
/// must drop.
pub(super) fn deleted_since(connection: &Connection, seq: i64) -> Result<Vec<u64>, BackendError> {
    connection
        .prepare_cached("SELECT key FROM index_tombstones WHERE seq > ?1")
        .and_then(|mut tombstones| {
            tombstones
                .query_map([seq], |row| row.get::<_, i64>(0).map(|key| key as u64))
                .and_then(Iterator::collect)
        })
        .map_err(backend_error)
}

/// Advance the change counter inside `tx` and return the new value.
pub(super) fn next_seq(tx: &rusqlite::Transaction<'_>) -> Result<i64, BackendError> {
    tx.query_row(
        "UPDATE change_clock SET seq = seq + 1 RETURNING seq",
        [],
        |row| row.get(0),
    )
    .map_err(backend_error)
}

impl IndexedVectors {
    /// Load the snapshot at `snapshot` if it matches, else start empty (call
    /// [`IndexedVectors::catch_up`] next).
    pub(super) fn open(
        connection: &Connection,
        snapshot: PathBuf,
        embedding_version: &str,
        dimensions: usize,
        params: IndexParams,
    ) -> Result<Self, BackendError> {
        let wanted = SnapshotHeader {
            embedding_version: embedding_version.to_string(),
            dimensions,
            connectivity: params.connectivity,
            expansion_add: params.expansion_add,
            quantization: format!("{:?}", params.quantization),
            seq: 0,
        };
        let found: Option<SnapshotHeader> = std::fs::read(header_path(&snapshot))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        // A snapshot ahead of the database (the file was restored from an older backup and
        // the snapshot was not) covers writes the database does not have: rebuild.
        let newest = current_seq(connection)?;
        let restored = found
            .filter(|header| SnapshotHeader { seq: 0, ..header.clone() } == wanted)
            .filter(|header| header.seq <= newest)
            .and_then(|header| {
                match VectorIndex::restore(&snapshot, dimensions, params) {
                    Ok(index) => Some((index, header.seq)),
                    Err(error) => {
                        tracing::warn!(%error, snapshot = %snapshot.display(), "rebuilding the vector index");
                        None
                    }
                }
            });
        let (index, seq) = match restored {
            Some(restored) => restored,
            None => (
                VectorIndex::new(dimensions, params).map_err(index_error)?,
                0,
            ),
        };
        let mut indexed = Self {
            index,
            origins: HashMap::new(),
            seq,
            saved_seq: seq,
            header: wanted,
            snapshot,
        };
        indexed.load_origins(connection)?;
        Ok(indexed)
    }

    fn load_origins(&mut self, connection: &Connection) -> Result<(), BackendError> {
        let mut statement = connection
            .prepare(
                "SELECT r.rowid, r.origin_db FROM embeddings e
                 JOIN records r ON r.db = e.db AND r.id = e.id
                 WHERE e.embedding_version = ?1 AND e.seq <= ?2",
            )
            .map_err(backend_error)?;
        let rows = statement
            .query_map(params![self.header.embedding_version, self.seq], |row| {
                Ok((row.get::<_, i64>(0)? as u64, row.get::<_, String>(1)?))
            })
            .map_err(backend_error)?;
        for row in rows {
            let (key, origin) = row.map_err(backend_error)?;
            self.origins.insert(key, origin);
        }
        Ok(())
    }

    /// Apply every change written after the `seq` this index reflects. Returns how many.
    pub(super) fn catch_up(&mut self, connection: &Connection) -> Result<usize, BackendError> {
        let newest = current_seq(connection)?;
        if newest <= self.seq {
            return Ok(0);
        }
        let mut applied = 0;
        for key in deleted_since(connection, self.seq)? {
            self.index.remove(key).map_err(index_error)?;
            self.origins.remove(&key);
            applied += 1;
        }
        let mut changed = connection
            .prepare_cached(
                "SELECT r.rowid, r.origin_db, e.vector FROM embeddings e
                 JOIN records r ON r.db = e.db AND r.id = e.id
                 WHERE e.seq > ?1 AND e.seq <= ?2 AND e.embedding_version = ?3",
            )
            .map_err(backend_error)?;
        let rows = changed
            .query_map(
                params![self.seq, newest, self.header.embedding_version],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)? as u64,
                        row.get::<_, String>(1)?,
                        row.get::<_, Vec<u8>>(2)?,
                    ))
                },
            )
            .map_err(backend_error)?;
        let rows: Vec<_> = rows
            .collect::<rusqlite::Result<_>>()
            .map_err(backend_error)?;
        self.insert_in_parallel(&rows)?;
        applied += rows.len();
        for (key, origin, _) in rows {
            self.origins.insert(key, origin);
        }
        self.seq = newest;
        Ok(applied)
    }

    /// Graph insertion dominates a rebuild; usearch's inserts are thread-safe, so large
    /// catch-ups use every core.
    fn insert_in_parallel(&self, rows: &[(u64, String, Vec<u8>)]) -> Result<(), BackendError> {
        self.index.reserve(rows.len()).map_err(index_error)?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = rows.len().div_ceil(threads).max(256);
        std::thread::scope(|scope| {
            let workers: Vec<_> = rows
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter().try_for_each(|(key, _, blob)| {
                            self.index
                                .upsert(*key, &crate::embeddings::blob_to_vector(blob))
                                .map_err(index_error)
                        })
                    })
                })
                .collect();
            workers.into_iter().try_for_each(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|_| Err(BackendError::Failed("index insert panicked".into())))
            })
        })
    }

    /// Write a snapshot if the index changed since the last one (index first, then header).
    pub(super) fn save_if_changed(&mut self) -> Result<bool, BackendError> {
        if self.seq == self.saved_seq {
            return Ok(false);
        }
        self.index.save(&self.snapshot).map_err(index_error)?;
        let header = SnapshotHeader {
            seq: self.seq,
            ..self.header.clone()
        };
        let bytes = serde_json::to_vec(&header).map_err(|e| BackendError::Failed(e.to_string()))?;
        let path = header_path(&self.snapshot);
        let partial = path.with_extension("partial");
        std::fs::write(&partial, bytes)
            .and_then(|()| std::fs::rename(&partial, &path))
            .map_err(|e| {
                tracing::warn!(error = %e, path = %path.display(), "the vector index header was not written");
                BackendError::Failed(format!("writing the vector index header: {e}"))
            })?;
        self.saved_seq = self.seq;
        Ok(true)
    }
}
