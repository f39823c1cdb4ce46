//! Every backend in one SQLite file (WAL): records and their embeddings, the primary metrics
//! tables and the vector metrics table. A tenant's data is its own file.
//!
//! Search is lexical (BM25 over an in-memory inverted index, the `indexed_text` module) by
//! default, or by vector similarity through a [`VectorIndex`](vector_index::VectorIndex) kept
//! beside the file as a snapshot (the `indexed_vectors` module). Both are caches replayed from
//! the table's change clock. Each `embed` call commits its batch in one transaction, so a
//! backfill killed half-way resumes where it stopped, with nothing duplicated or half-written.
//!
//! The file map: `schema` (migrations in `migrations/*.sql`), `error`, the store itself here,
//! `search`, `outcomes`, `embeddings`, `clock`; the caches (`indexed_text`, `hit_copies`,
//! `indexed_vectors`, `vector_index`, `wal_watch`) and the concurrency (`pool`, `write_gate`,
//! `waiting`) apart.
#![deny(missing_docs)]

mod clock;
mod embeddings;
mod error;
mod hit_copies;
mod indexed_text;
mod indexed_vectors;
mod outcomes;
mod pool;
mod schema;
mod search;
pub mod vector_index;
mod waiting;
mod wal_watch;
mod write_gate;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rusqlite::{params, Connection};

use crate::clock::{current_clock, Clock};
use crate::error::backend_error;
pub use crate::error::SqliteError;
pub use crate::hit_copies::DEFAULT_HIT_COPY_BUDGET;
use crate::indexed_text::IndexedText;
use crate::indexed_vectors::{current_seq, next_seq, IndexedVectors};
use crate::pool::{configure, ConnectionPool, Pooled, Writer};
use crate::schema::migrate;
pub use crate::schema::SCHEMA_VERSION;
use crate::vector_index::IndexParams;
use crate::wal_watch::WalWatch;
use vector_service_runtime::api::{BackendError, BackendHit, BackendHits};
use vector_service_runtime::backends::ranking::relative_to_best;
pub use vector_service_runtime::backends::ranking::SearchMode;
pub use vector_service_runtime::backends::records::StoreStats;
use vector_service_runtime::backends::records::{now_ms, text_hash};
use vector_service_runtime::backends::{
    Embedder, LexicalAnswer, PatchOutcomeRow, Record, RetrieverStats, Store, StoreFault,
};
use vector_service_runtime::deadline;

/// A SQLite-backed implementation of every backend trait.
pub struct SqliteStore {
    connections: ConnectionPool,
    embedder: Arc<dyn Embedder>,
    search_mode: SearchMode,
    /// Loaded on the first vector search (or [`SqliteStore::sync_index`]), then kept current.
    index: Mutex<Option<IndexedVectors>>,
    index_snapshot: PathBuf,
    index_params: IndexParams,
    /// Loaded or built on the first lexical search (or [`Store::sync_index`]), then kept
    /// current.
    text_index: RwLock<Option<IndexedText>>,
    text_snapshot: PathBuf,
    /// Bytes of records' hit fields the text index keeps copies of.
    hit_copy_budget: usize,
    /// The change clock as last read, kept while no commit has happened since (`None`: the
    /// file's WAL index cannot be watched, and every read runs its statement).
    clock_watch: Option<WalWatch<Clock>>,
    /// The indexes' bytes as last counted, answered while another call holds them.
    index_bytes: AtomicUsize,
    /// The database file's size as of the last [`Store::sync_index`]: what a connection's
    /// page cache can hold of it.
    file_bytes: AtomicUsize,
}

/// What SQLite holds per open connection besides its page cache: its lookaside buffers,
/// the parsed schema and prepared statements (measured with heaptrack: 159 MB of SQLite heap
/// for 300 open 172 KB stores of two connections each; docs/decisions/0013-residency.md).
const CONNECTION_BYTES: usize = 192 << 10;

/// The most a connection's page cache holds: SQLite's default `cache_size` of -2000 (KiB).
const PAGE_CACHE_BYTES: usize = 2000 << 10;

/// Connections a store opens at most unless told otherwise ([`SqliteStore::with_connections`]).
pub const DEFAULT_CONNECTIONS: usize = 4;

/// A non-negative integer column (SQLite integers are signed).
fn unsigned(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<u64> {
    row.get::<_, i64>(index).map(|value| value.max(0) as u64)
}

impl SqliteStore {
    /// Open (creating if needed) the store at `path`, in WAL mode, migrated to the newest schema.
    pub fn open(path: &Path, embedder: Arc<dyn Embedder>) -> Result<Self, SqliteError> {
        let open_error = |source| SqliteError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut connection = Connection::open(path).map_err(open_error)?;
        configure(&mut connection).map_err(open_error)?;
        migrate(&mut connection, path)?;
        let clock_watch = Connection::open(path).ok().and_then(WalWatch::open);
        Ok(Self {
            connections: ConnectionPool::new(path, connection, DEFAULT_CONNECTIONS),
            embedder,
            search_mode: SearchMode::default(),
            index: Mutex::new(None),
            index_snapshot: PathBuf::from(format!("{}.usearch", path.display())),
            index_params: IndexParams::default(),
            text_index: RwLock::new(None),
            text_snapshot: indexed_text::snapshot_path(path),
            hit_copy_budget: DEFAULT_HIT_COPY_BUDGET,
            clock_watch,
            index_bytes: AtomicUsize::new(0),
            file_bytes: AtomicUsize::new(0),
        })
    }

    /// The same store with up to `connections` open connections (one call uses one at a time).
    pub fn with_connections(mut self, connections: usize) -> Self {
        self.connections.set_max(connections);
        self
    }

    /// The same store, ranking searches by `mode`.
    pub fn with_search_mode(mut self, mode: SearchMode) -> Self {
        self.search_mode = mode;
        self
    }

    /// The same store, keeping copies of at most `bytes` of its records' hit fields (origin,
    /// ids, metadata) beside the text index, so that a lexical search of those records reads
    /// nothing back from the file. Records past the budget are read from the file.
    pub fn with_hit_copy_budget(mut self, bytes: usize) -> Self {
        self.hit_copy_budget = bytes;
        self
    }

    /// The same store with the WAL watch on (the default) or off. The watch reuses the change
    /// clock's last read while no commit has happened, read from the WAL-index header without a
    /// statement, for one more connection per store; off, every read runs the clock's statement
    /// (docs/decisions/0003-wal-watch.md).
    pub fn with_wal_watch(mut self, on: bool) -> Self {
        if !on {
            self.clock_watch = None;
        }
        self
    }

    /// The same store with other vector index parameters (a snapshot built with different
    /// ones is rebuilt on load).
    pub fn with_index_params(mut self, params: IndexParams) -> Self {
        self.index_params = params;
        self
    }

    /// Load the index if needed and apply changes made since (by this or another process).
    fn current_index(&self, index: &mut Option<IndexedVectors>) -> Result<usize, BackendError> {
        let connection = self.connection()?;
        if index.is_none() {
            *index = Some(IndexedVectors::open(
                &connection,
                self.index_snapshot.clone(),
                self.embedder.version(),
                self.embedder.dimensions(),
                self.index_params,
            )?);
        }
        match index.as_mut() {
            Some(indexed) => indexed.catch_up(&connection),
            None => Ok(0),
        }
    }

    fn connection(&self) -> Result<Pooled<'_>, BackendError> {
        self.connections.get()
    }

    /// A connection for a write transaction, in this store's queue of writers.
    fn writer(&self) -> Result<Writer<'_>, BackendError> {
        self.connections.writer()
    }

    /// The change clock now: read on `connection` only when a commit has happened since the
    /// last read (or the file cannot be watched).
    fn clock(&self, connection: &Connection) -> Result<Clock, BackendError> {
        self.watched_clock(|| current_clock(connection))
    }

    /// The clock the watch keeps, or `read`'s when a commit has happened since (or the file
    /// cannot be watched); `read` may check out a connection, which the watch then spares.
    fn watched_clock(
        &self,
        read: impl FnOnce() -> Result<Clock, BackendError>,
    ) -> Result<Clock, BackendError> {
        match &self.clock_watch {
            Some(watch) => watch.current(read),
            None => read(),
        }
    }

    /// The text index, brought up to `newest` (built on first use) if it is behind.
    fn current_text_index(
        &self,
        connection: &Connection,
        newest: i64,
    ) -> Result<std::sync::RwLockReadGuard<'_, Option<IndexedText>>, BackendError> {
        {
            let index = deadline::read(&self.text_index)?;
            if index.as_ref().is_some_and(|text| text.is_current(newest)) {
                return Ok(index);
            }
        }
        {
            let mut index = deadline::write(&self.text_index)?;
            match index.as_mut() {
                Some(text) => {
                    text.catch_up(connection)?;
                }
                None => {
                    *index = Some(IndexedText::open(
                        connection,
                        &self.text_snapshot,
                        self.hit_copy_budget,
                    )?)
                }
            }
        }
        deadline::read(&self.text_index)
    }

    /// BM25 hits from the in-process index, once it reflects every change up to `newest`: from
    /// its copies of the records, and from the file for records past the copies' budget; with
    /// the index's confidence in the best.
    fn lexical_search_at(
        &self,
        connection: &Connection,
        newest: i64,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Result<BackendHits, BackendError> {
        const REASON: &str = "bm25";
        let _span =
            vector_service_runtime::work_span!("store.lexical", "db.system" = "sqlite", top_k)
                .entered();
        let index = self.current_text_index(connection, newest)?;
        let Some(text) = index.as_ref() else {
            return Ok(BackendHits {
                hits: Vec::new(),
                confidence: Some(0.0),
            });
        };
        let LexicalAnswer {
            hits: scored,
            confidence,
        } = text.index.search(query, top_k as usize, origins)?;
        let mut found: Vec<Option<BackendHit>> = scored
            .iter()
            .map(|hit| text.hits.hit(hit.key, hit.score, REASON))
            .collect();
        drop(index);
        let uncopied: Vec<u64> = scored
            .iter()
            .zip(&found)
            .filter(|(_, copy)| copy.is_none())
            .map(|(hit, _)| hit.key)
            .collect();
        if !uncopied.is_empty() {
            let mut read = Self::read_hits(connection, &uncopied, REASON)?;
            for (slot, hit) in found.iter_mut().zip(&scored) {
                if slot.is_none() {
                    *slot = read.remove(&hit.key).map(|read| BackendHit {
                        score: hit.score,
                        ..read
                    });
                }
            }
        }
        let mut hits: Vec<BackendHit> = found.into_iter().flatten().collect();
        relative_to_best(&mut hits);
        Ok(BackendHits {
            hits,
            confidence: Some(confidence),
        })
    }

    /// The records under the keys (rowids) of `scored`, in its order, as hits with its
    /// scores; rows deleted since the index caught up are skipped.
    fn hits_for_keys(
        connection: &Connection,
        scored: &[(u64, f64)],
        reason: &str,
    ) -> Result<Vec<BackendHit>, BackendError> {
        let keys: Vec<u64> = scored.iter().map(|(key, _)| *key).collect();
        let mut read = Self::read_hits(connection, &keys, reason)?;
        Ok(scored
            .iter()
            .filter_map(|(key, score)| {
                read.remove(key).map(|hit| BackendHit {
                    score: *score,
                    ..hit
                })
            })
            .collect())
    }

    /// The records under `keys` (rowids) as hits scored 0, in one statement; keys whose rows
    /// are gone are absent.
    fn read_hits(
        connection: &Connection,
        keys: &[u64],
        reason: &str,
    ) -> Result<HashMap<u64, BackendHit>, BackendError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let keys = serde_json::to_string(keys).map_err(|e| BackendError::Failed(e.to_string()))?;
        let mut statement = connection
            .prepare_cached(
                "SELECT rowid, origin_db, id, metadata FROM records
                 WHERE rowid IN (SELECT value FROM json_each(?1))",
            )
            .map_err(backend_error)?;
        statement
            .query_map([keys], |row| {
                let hit =
                    BackendHit::new(row.get(1)?, row.get(2)?, 0.0, reason.into(), row.get(3)?);
                Ok((row.get::<_, i64>(0)? as u64, hit))
            })
            .and_then(Iterator::collect)
            .map_err(backend_error)
    }
}

impl Store for SqliteStore {
    /// Unhealthy for good once a statement found the file damaged; else one cheap read, and
    /// after a write met a full disk, one write that changes nothing, to see it go through.
    fn health(&self) -> Result<(), BackendError> {
        if self.connections.damaged() {
            return Err(BackendError::Failed(
                "sqlite: the database file is damaged".into(),
            ));
        }
        if self.connections.full() {
            self.writer()?
                .execute("UPDATE change_clock SET seq = seq", [])
                .map_err(backend_error)?;
            self.connections.room_again();
        }
        let connection = self.connection()?;
        current_seq(&connection).map(drop)
    }

    fn fault(&self) -> Option<StoreFault> {
        if self.connections.damaged() {
            Some(StoreFault::Damaged)
        } else if self.connections.full() {
            Some(StoreFault::Full)
        } else {
            None
        }
    }

    /// SQLite's `quick_check`: every page read once, the first problem reported.
    fn check_integrity(&self) -> Result<(), BackendError> {
        let connection = self.connection()?;
        let verdict: String = connection
            .query_row("PRAGMA quick_check(1)", [], |row| row.get(0))
            .map_err(backend_error)?;
        if verdict == "ok" {
            return Ok(());
        }
        drop(connection);
        self.connections.mark_damaged();
        Err(BackendError::Failed(format!(
            "sqlite: the database file is damaged: {verdict}"
        )))
    }

    /// Yes once the indexes its search mode reads are built (a search then only catches
    /// them up with what was written since) and, for vectors, its embedder is in process.
    /// An index being caught up by another call right now reads as no.
    fn serves_reads_in_process(&self) -> bool {
        let text_built = || {
            self.text_index
                .try_read()
                .is_ok_and(|index| index.is_some())
        };
        let vectors_built = || {
            self.embedder.embeds_in_microseconds()
                && self.index.try_lock().is_ok_and(|index| index.is_some())
        };
        match self.search_mode {
            SearchMode::Lexical => text_built(),
            SearchMode::Vector => vectors_built(),
            SearchMode::Hybrid => text_built() && vectors_built(),
        }
    }

    /// The text index and hit copies, and the vector index, as counted now (while a call
    /// holds one of them, building or catching it up, its count from the last time); and
    /// SQLite's own memory, estimated per open connection: a fixed share and a page cache of
    /// up to the file's size.
    fn resident_bytes(&self) -> usize {
        let page_cache = self
            .file_bytes
            .load(Ordering::Relaxed)
            .min(PAGE_CACHE_BYTES);
        let watch = usize::from(self.clock_watch.is_some());
        let sqlite = self.connections.open_count() * (CONNECTION_BYTES + page_cache)
            + watch * CONNECTION_BYTES;
        let text = self
            .text_index
            .try_read()
            .ok()
            .map(|index| index.as_ref().map_or(0, IndexedText::heap_bytes));
        let vectors = self
            .index
            .try_lock()
            .ok()
            .map(|index| index.as_ref().map_or(0, IndexedVectors::heap_bytes));
        let indexes = match text.zip(vectors) {
            Some((text, vectors)) => {
                self.index_bytes.store(text + vectors, Ordering::Relaxed);
                text + vectors
            }
            None => self.index_bytes.load(Ordering::Relaxed),
        };
        sqlite + indexes
    }

    /// Each connection's database file and write-ahead log (the change watch's too), and the
    /// file's shared memory, which SQLite opens once per process.
    fn descriptors(&self) -> usize {
        let watch = usize::from(self.clock_watch.is_some());
        2 * (self.connections.open_count() + watch) + 1
    }

    /// The database file, its write-ahead log and the indexes' snapshots, by their sizes.
    fn storage_bytes(&self) -> Result<u64, BackendError> {
        let path = self.connections.path();
        let files = [
            path.to_path_buf(),
            PathBuf::from(format!("{}-wal", path.display())),
            self.index_snapshot.clone(),
            self.text_snapshot.clone(),
        ];
        Ok(files
            .iter()
            .filter_map(|file| std::fs::metadata(file).ok())
            .map(|metadata| metadata.len())
            .sum())
    }

    fn sync_index(&self) -> Result<usize, BackendError> {
        if let Ok(metadata) = std::fs::metadata(self.connections.path()) {
            self.file_bytes
                .store(metadata.len() as usize, Ordering::Relaxed);
        }
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let applied = self.current_index(&mut index)?;
        if let Some(indexed) = index.as_mut() {
            indexed.save_if_changed()?;
        }
        drop(index);
        let connection = self.connection()?;
        drop(self.current_text_index(&connection, current_seq(&connection)?)?);
        drop(connection);
        if let Some(text) = deadline::write(&self.text_index)?.as_mut() {
            text.save_if_unsaved(&self.text_snapshot)?;
        }
        Ok(applied)
    }

    fn record(&self, db: &str, id: &str) -> Result<Option<Record>, BackendError> {
        use rusqlite::OptionalExtension as _;
        let connection = self.connection()?;
        let row = connection
            .prepare_cached(
                "SELECT origin_db, text, metadata FROM records WHERE db = ?1 AND id = ?2",
            )
            .and_then(|mut statement| {
                statement
                    .query_row(params![db, id], |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, String>(2)?,
                        ))
                    })
                    .optional()
            })
            .map_err(backend_error)?;
        row.map(|(origin_db, text, metadata)| {
            Ok(Record {
                origin_db,
                id: id.to_string(),
                text,
                metadata: serde_json::from_str(&metadata).map_err(|e| {
                    BackendError::Failed(format!("record {db}/{id}: metadata: {e}"))
                })?,
            })
        })
        .transpose()
    }

    fn delete(&self, db: &str, ids: &[String]) -> Result<usize, BackendError> {
        let mut connection = self.writer()?;
        let tx = connection.transaction().map_err(backend_error)?;
        let mut deleted = 0;
        for id in ids {
            deleted += tx
                .execute(
                    "DELETE FROM records WHERE db = ?1 AND id = ?2",
                    params![db, id],
                )
                .map_err(backend_error)?;
        }
        tx.commit().map_err(backend_error)?;
        Ok(deleted)
    }

    fn register_database(&self, db: &str) -> Result<(), BackendError> {
        self.writer()?
            .execute("INSERT OR IGNORE INTO databases (name) VALUES (?1)", [db])
            .map(drop)
            .map_err(backend_error)
    }

    fn upsert(&self, db: &str, records: &[Record]) -> Result<usize, BackendError> {
        let mut connection = self.writer()?;
        let tx = connection.transaction().map_err(backend_error)?;
        tx.execute("INSERT OR IGNORE INTO databases (name) VALUES (?1)", [db])
            .map_err(backend_error)?;
        let seq = next_seq(&tx)?;
        let mut changed = 0;
        {
            let mut statement = tx
                .prepare_cached(
                    "INSERT INTO records (db, id, origin_db, text, text_hash, metadata, updated_at, seq)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (db, id) DO UPDATE SET
                        origin_db = excluded.origin_db, text = excluded.text,
                        text_hash = excluded.text_hash, metadata = excluded.metadata,
                        updated_at = excluded.updated_at, seq = excluded.seq
                     WHERE records.text_hash != excluded.text_hash
                        OR records.metadata != excluded.metadata
                        OR records.origin_db != excluded.origin_db",
                )
                .map_err(backend_error)?;
            for record in records {
                changed += statement
                    .execute(params![
                        db,
                        record.id,
                        record.origin_db,
                        record.text,
                        text_hash(&record.text),
                        record.metadata.to_string(),
                        now_ms(),
                        seq
                    ])
                    .map_err(backend_error)?;
            }
        }
        tx.commit().map_err(backend_error)?;
        Ok(changed)
    }

    fn stats(&self) -> Result<StoreStats, BackendError> {
        let connection = self.connection()?;
        let version = self.embedder.version();
        let mut statement = connection
            .prepare(
                "SELECT d.name, COUNT(r.id),
                        COUNT(CASE WHEN e.embedding_version = ?1 AND e.text_hash = r.text_hash THEN 1 END)
                 FROM databases d
                 LEFT JOIN records r ON r.db = d.name
                 LEFT JOIN embeddings e ON e.db = r.db AND e.id = r.id
                 GROUP BY d.name ORDER BY d.name",
            )
            .map_err(backend_error)?;
        let databases = statement
            .query_map([version], |row| {
                Ok((row.get(0)?, unsigned(row, 1)?, unsigned(row, 2)?))
            })
            .and_then(Iterator::collect)
            .map_err(backend_error)?;
        let count = |table: &str| -> Result<u64, BackendError> {
            connection
                .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
                    unsigned(row, 0)
                })
                .map_err(backend_error)
        };
        Ok(StoreStats {
            databases,
            patch_outcomes: count("patch_outcomes")?,
            vector_outcomes: count("vector_outcomes")?,
            embedding_version: version.to_string(),
        })
    }

    fn patch_outcomes(&self) -> Result<Vec<PatchOutcomeRow>, BackendError> {
        let connection = self.connection()?;
        let mut statement = connection
            .prepare(
                "SELECT patch_id, session_id, origin_db, vector_id, success, reverted, label, roi_tag, ts_ms, contribution
                 FROM patch_outcomes ORDER BY rowid",
            )
            .map_err(backend_error)?;
        statement
            .query_map([], |row| {
                Ok(PatchOutcomeRow {
                    patch_id: row.get(0)?,
                    session_id: row.get(1)?,
                    origin_db: row.get(2)?,
                    vector_id: row.get(3)?,
                    success: row.get(4)?,
                    reverted: row.get(5)?,
                    label: row.get(6)?,
                    roi_tag: row.get(7)?,
                    ts_ms: unsigned(row, 8)?,
                    contribution: row.get(9)?,
                })
            })
            .and_then(Iterator::collect)
            .map_err(backend_error)
    }

    fn retriever_stats(&self) -> Result<Vec<(String, RetrieverStats)>, BackendError> {
        let connection = self.connection()?;
        let mut statement = connection
            .prepare("SELECT origin_db, wins, regrets FROM retriever_stats ORDER BY origin_db")
            .map_err(backend_error)?;
        statement
            .query_map([], |row| {
                Ok((
                    row.get(0)?,
                    RetrieverStats {
                        wins: unsigned(row, 1)?,
                        regrets: unsigned(row, 2)?,
                    },
                ))
            })
            .and_then(Iterator::collect)
            .map_err(backend_error)
    }
}

impl Drop for SqliteStore {
    /// Snapshot the indexes on the way out so the next process replays nothing.
    fn drop(&mut self) {
        if let Some(indexed) = self.index.get_mut().ok().and_then(Option::as_mut) {
            if let Err(error) = indexed.save_if_changed() {
                tracing::warn!(%error, "the vector index snapshot was not saved");
            }
        }
        if let Some(text) = self.text_index.get_mut().ok().and_then(Option::as_mut) {
            if let Err(error) = text.save_if_changed(&self.text_snapshot) {
                tracing::warn!(%error, "the lexical index snapshot was not saved");
            }
        }
    }
}
