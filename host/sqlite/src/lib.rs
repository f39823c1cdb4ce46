//! Every backend in one SQLite file (WAL): records and their embeddings, the primary metrics
//! tables and the vector metrics table. A tenant's data is its own file.
//!
//! Search is lexical (BM25 over an in-memory inverted index, the `lexical` module) by default,
//! or by vector similarity through a [`VectorIndex`](vector_index::VectorIndex) kept beside the file as a snapshot
//! (the `index` module). Both are caches replayed from the table's change clock. Each `embed`
//! call commits its batch in one transaction, so a backfill killed half-way resumes where it
//! stopped, with nothing duplicated or half-written.
#![deny(missing_docs)]

mod hit_copies;
mod index;
mod lexical;
mod pool;
pub mod vector_index;
mod waiting;
mod wal_watch;
mod write_gate;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rusqlite::{params, Connection, OptionalExtension, Transaction};

pub use crate::hit_copies::DEFAULT_HIT_COPY_BUDGET;
use crate::index::{current_seq, next_seq, IndexedVectors};
use crate::lexical::IndexedText;
use crate::pool::{configure, is_damage, note_error, ConnectionPool, Pooled, Writer};
use crate::vector_index::IndexParams;
use crate::wal_watch::WalWatch;
use vector_service_runtime::api::{
    BackendError, BackendHit, BackendHits, EmbedReport, PatchOutcome, Rates, VectorOutcome,
    VectorRef,
};
use vector_service_runtime::backends::embedder::{embed_batch, StoredText};
pub use vector_service_runtime::backends::ranking::SearchMode;
use vector_service_runtime::backends::ranking::{relative_to_best, search_by_mode, Rankings};
pub use vector_service_runtime::backends::records::StoreStats;
use vector_service_runtime::backends::records::{now_ms, text_hash};
use vector_service_runtime::backends::{
    rates, ChangeClock, Embedder, EmbeddingStore, MetricsDb, PatchOutcomeRow, Record, Retriever,
    RetrieverStats, Store, StoreFault, VectorMetricsDb,
};
use vector_service_runtime::deadline;

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE databases (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE records (
    db TEXT NOT NULL REFERENCES databases(name),
    id TEXT NOT NULL,
    origin_db TEXT NOT NULL,
    text TEXT NOT NULL,
    text_hash INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (db, id)
);
-- BM25 over record text (SQLite's FTS5, Porter stemming), kept in step by triggers.
CREATE VIRTUAL TABLE records_fts USING fts5(
    text, content = 'records', content_rowid = 'rowid', tokenize = 'porter unicode61'
);
CREATE TRIGGER records_fts_insert AFTER INSERT ON records BEGIN
    INSERT INTO records_fts (rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TRIGGER records_fts_delete AFTER DELETE ON records BEGIN
    INSERT INTO records_fts (records_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
END;
CREATE TRIGGER records_fts_update AFTER UPDATE OF text ON records BEGIN
    INSERT INTO records_fts (records_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
    INSERT INTO records_fts (rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TABLE embeddings (
    db TEXT NOT NULL,
    id TEXT NOT NULL,
    vector BLOB NOT NULL,
    text_hash INTEGER NOT NULL,
    embedding_version TEXT NOT NULL,
    kind TEXT NOT NULL,
    source_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (db, id),
    FOREIGN KEY (db, id) REFERENCES records(db, id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE TABLE patch_outcomes (
    patch_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    origin_db TEXT,
    vector_id TEXT,
    success INTEGER NOT NULL,
    reverted INTEGER NOT NULL,
    label TEXT NOT NULL,
    roi_tag TEXT NOT NULL,
    ts_ms INTEGER NOT NULL
);
CREATE TABLE retriever_stats (
    origin_db TEXT PRIMARY KEY,
    wins INTEGER NOT NULL DEFAULT 0,
    regrets INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE vector_outcomes (
    session_id TEXT NOT NULL,
    origin_db TEXT NOT NULL,
    vector_id TEXT NOT NULL,
    contribution REAL NOT NULL,
    win INTEGER NOT NULL,
    regret INTEGER NOT NULL,
    patch_id TEXT NOT NULL,
    roi_tag TEXT NOT NULL,
    ts_ms INTEGER NOT NULL
);
CREATE INDEX vector_outcomes_by_vector ON vector_outcomes(origin_db, vector_id);
"#,
    r#"
-- Change tracking for the vector index snapshot: every embedding write and record deletion
-- takes the next `seq`, so an index that reflects `seq` N replays exactly what followed.
CREATE TABLE change_clock (only INTEGER PRIMARY KEY CHECK (only = 1), seq INTEGER NOT NULL);
INSERT INTO change_clock VALUES (1, 0);
ALTER TABLE embeddings ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX embeddings_by_seq ON embeddings(seq);
CREATE TABLE index_tombstones (key INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TRIGGER records_tombstone AFTER DELETE ON records BEGIN
    UPDATE change_clock SET seq = seq + 1;
    INSERT OR REPLACE INTO index_tombstones (key, seq) SELECT old.rowid, seq FROM change_clock;
END;
-- A record moved to another origin is replayed so filtered searches see the move.
CREATE TRIGGER records_origin_moved AFTER UPDATE OF origin_db ON records
WHEN old.origin_db != new.origin_db BEGIN
    UPDATE change_clock SET seq = seq + 1;
    UPDATE embeddings SET seq = (SELECT seq FROM change_clock) WHERE db = new.db AND id = new.id;
END;
"#,
    r#"
-- Lexical search moves to an in-memory index replayed from the change clock (lexical.rs):
-- each record write stamps the record with its `seq`. FTS5 no longer ranks anything.
ALTER TABLE records ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX records_by_seq ON records(seq);
DROP TRIGGER records_fts_insert;
DROP TRIGGER records_fts_delete;
DROP TRIGGER records_fts_update;
DROP TABLE records_fts;
"#,
    r#"
-- The result cache's generation is `seq + outcomes` (lib.rs, `ChangeClock`): outcomes change
-- reliability figures but not the indexes, so they count apart from `seq`. Reliability counts
-- the primary DB's rows too, looked up by vector like `vector_outcomes`.
ALTER TABLE change_clock ADD COLUMN outcomes INTEGER NOT NULL DEFAULT 0;
CREATE INDEX patch_outcomes_by_vector ON patch_outcomes(origin_db, vector_id);
"#,
];

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SqliteError {
    /// The file could not be opened or configured.
    #[error("opening {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A schema migration failed (the file is left at the last good version).
    #[error("migrating {path} to schema version {version}: {source}")]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// The version that failed.
        version: usize,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The file was written by a newer vector-service.
    #[error("{path} has schema version {found}, newer than this build's {supported}")]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Version in the file.
        found: usize,
        /// Newest version this build knows.
        supported: usize,
    },
}

/// A SQLite-backed implementation of every backend trait.
pub struct SqliteStore {
    connections: ConnectionPool,
    embedder: Arc<dyn Embedder>,
    search_mode: SearchMode,
    /// Loaded on the first vector search (or [`SqliteStore::sync_index`]), then kept current.
    index: Mutex<Option<IndexedVectors>>,
    index_snapshot: PathBuf,
    index_params: IndexParams,
    /// Built on the first lexical search (or [`Store::sync_index`]), then kept current.
    text_index: RwLock<Option<IndexedText>>,
    /// Bytes of records' hit fields the text index keeps copies of.
    hit_copy_budget: usize,
    /// The change clock as last read, kept while no commit has happened since (`None`: the
    /// file's WAL index cannot be watched, and every read runs its statement).
    clock_watch: Option<WalWatch<Clock>>,
}

/// Connections a store opens at most unless told otherwise ([`SqliteStore::with_connections`]).
pub const DEFAULT_CONNECTIONS: usize = 4;

/// SQLite errors as the component sees them: a busy or locked database is retryable.
pub(crate) fn backend_error(error: rusqlite::Error) -> BackendError {
    note_error(&error);
    if is_damage(&error) {
        return BackendError::Failed(format!("sqlite: the database file is damaged: {error}"));
    }
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            BackendError::Unavailable(format!("sqlite: {error}"))
        }
        _ => BackendError::Failed(format!("sqlite: {error}")),
    }
}

/// A non-negative integer column (SQLite integers are signed).
fn unsigned(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<u64> {
    row.get::<_, i64>(index).map(|value| value.max(0) as u64)
}

fn vector_to_blob(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn blob_to_vector(blob: &[u8]) -> Vec<f32> {
    blob.chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
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
            hit_copy_budget: DEFAULT_HIT_COPY_BUDGET,
            clock_watch,
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
                None => *index = Some(IndexedText::build(connection, self.hit_copy_budget)?),
            }
        }
        deadline::read(&self.text_index)
    }

    /// BM25 hits from the in-process index, once it reflects every change up to `newest`: from
    /// its copies of the records, and from the file for records past the copies' budget.
    fn lexical_search_at(
        &self,
        connection: &Connection,
        newest: i64,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Result<Vec<BackendHit>, BackendError> {
        const REASON: &str = "bm25";
        let index = self.current_text_index(connection, newest)?;
        let Some(text) = index.as_ref() else {
            return Ok(Vec::new());
        };
        let scored = text.index.search(query, top_k as usize, origins)?;
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
        Ok(hits)
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

    fn sync_index(&self) -> Result<usize, BackendError> {
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let applied = self.current_index(&mut index)?;
        if let Some(indexed) = index.as_mut() {
            indexed.save_if_changed()?;
        }
        drop(index);
        let connection = self.connection()?;
        drop(self.current_text_index(&connection, current_seq(&connection)?)?);
        Ok(applied)
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
                "SELECT patch_id, session_id, origin_db, vector_id, success, reverted, label, roi_tag, ts_ms
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

fn migrate(connection: &mut Connection, path: &Path) -> Result<(), SqliteError> {
    let open_error = |source| SqliteError::Open {
        path: path.to_path_buf(),
        source,
    };
    let current = connection
        .pragma_query_value(None, "user_version", |row| unsigned(row, 0))
        .map_err(open_error)? as usize;
    if current > MIGRATIONS.len() {
        return Err(SqliteError::TooNew {
            path: path.to_path_buf(),
            found: current,
            supported: MIGRATIONS.len(),
        });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = index + 1;
        let migrate_error = |source| SqliteError::Migrate {
            path: path.to_path_buf(),
            version,
            source,
        };
        let tx = connection.transaction().map_err(migrate_error)?;
        tx.execute_batch(migration).map_err(migrate_error)?;
        tx.pragma_update(None, "user_version", version as i64)
            .map_err(migrate_error)?;
        tx.commit().map_err(migrate_error)?;
    }
    Ok(())
}

/// Rates from every tracked outcome matching `filter` (a SQL condition on ?1, ?2), whichever
/// metrics table recorded it: a success is a win, a failure a regret, as in `vector_outcomes`.
fn outcome_rates(
    tx: &Transaction<'_>,
    filter: &str,
    a: &str,
    b: Option<&str>,
) -> rusqlite::Result<Option<Rates>> {
    let (samples, wins, regrets): (u64, u64, u64) = tx
        .prepare_cached(&format!(
            "SELECT COUNT(*), COALESCE(SUM(win), 0), COALESCE(SUM(regret), 0) FROM (
             SELECT win, regret FROM vector_outcomes WHERE {filter}
             UNION ALL
             SELECT success, 1 - success FROM patch_outcomes WHERE {filter})"
        ))?
        .query_row(params![a, b], |row| {
            Ok((unsigned(row, 0)?, unsigned(row, 1)?, unsigned(row, 2)?))
        })?;
    Ok(rates(samples, wins, regrets))
}

/// Count an outcome write in the change clock's `outcomes` (see migration 4).
fn count_outcome_write(tx: &Transaction<'_>) -> Result<(), BackendError> {
    tx.prepare_cached("UPDATE change_clock SET outcomes = outcomes + 1")
        .and_then(|mut statement| statement.execute([]))
        .map(drop)
        .map_err(backend_error)
}

impl Retriever for SqliteStore {
    fn search(
        &self,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Result<BackendHits, BackendError> {
        search_by_mode(self, query, top_k, origins)
    }

    /// Lexical search reads the change clock first anyway (to catch its index up): that one
    /// read also gives the generation. The other modes read it apart.
    fn search_reading_generation(
        &self,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Option<Result<(BackendHits, u64), BackendError>> {
        (self.search_mode == SearchMode::Lexical).then(|| {
            let connection = self.connection()?;
            let clock = self.clock(&connection)?;
            let hits = self.lexical_search_at(&connection, clock.seq, query, top_k, origins)?;
            let found = BackendHits {
                hits,
                confidence: None,
            };
            Ok((found, clock.generation))
        })
    }
}

/// The change clock as one read: the `seq` the indexes catch up to, and the result cache's
/// generation (`seq + outcomes`).
#[derive(Clone, Copy)]
struct Clock {
    seq: i64,
    generation: u64,
}

fn current_clock(connection: &Connection) -> Result<Clock, BackendError> {
    connection
        .prepare_cached("SELECT seq, seq + outcomes FROM change_clock")
        .and_then(|mut statement| {
            statement.query_row([], |row| {
                Ok(Clock {
                    seq: row.get(0)?,
                    generation: unsigned(row, 1)?,
                })
            })
        })
        .map_err(backend_error)
}

impl Rankings for SqliteStore {
    fn search_mode(&self) -> SearchMode {
        self.search_mode
    }

    fn lexical_search(
        &self,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Result<Vec<BackendHit>, BackendError> {
        let connection = self.connection()?;
        self.lexical_search_at(
            &connection,
            self.clock(&connection)?.seq,
            query,
            top_k,
            origins,
        )
    }

    fn vector_search(
        &self,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Result<Vec<BackendHit>, BackendError> {
        let query_vector = self
            .embedder
            .embed(&[query])?
            .pop()
            .ok_or_else(|| BackendError::Failed("the embedder returned no vector".into()))?;
        let mut index = deadline::lock(&self.index)?;
        self.current_index(&mut index)?;
        let Some(indexed) = index.as_ref() else {
            return Ok(Vec::new());
        };
        let keep = |key: u64| {
            indexed
                .origins
                .get(&key)
                .is_some_and(|origin| origins.contains(origin))
        };
        let nearest = indexed
            .index
            .search(
                &query_vector,
                top_k as usize,
                (!origins.is_empty()).then_some(&keep as &dyn Fn(u64) -> bool),
            )
            .map_err(|e| BackendError::Failed(e.to_string()))?;
        let scored: Vec<(u64, f64)> = nearest
            .into_iter()
            .map(|(key, similarity)| (key, f64::from(similarity)))
            .collect();
        drop(index);
        let connection = self.connection()?;
        Self::hits_for_keys(&connection, &scored, "cosine similarity")
    }
}

impl Drop for SqliteStore {
    /// Snapshot the index on the way out so the next process replays nothing.
    fn drop(&mut self) {
        if let Some(indexed) = self.index.get_mut().ok().and_then(Option::as_mut) {
            if let Err(error) = indexed.save_if_changed() {
                tracing::warn!(%error, "the vector index snapshot was not saved");
            }
        }
    }
}

impl ChangeClock for SqliteStore {
    fn generation(&self) -> Result<u64, BackendError> {
        self.watched_clock(|| {
            self.connection()
                .and_then(|connection| current_clock(&connection))
        })
        .map(|clock| clock.generation)
    }
}

impl MetricsDb for SqliteStore {
    fn available(&self) -> bool {
        true
    }

    fn log_patch_outcome(&self, outcome: &PatchOutcome) -> Result<(), BackendError> {
        let mut connection = self.writer()?;
        let tx = connection.transaction().map_err(backend_error)?;
        let ts = now_ms();
        {
            // Prepared once per connection, not per row: compiling the statement cost more
            // than running it (docs/benchmarks-log.md, "/v1/contributors: statements compiled per row").
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO patch_outcomes (patch_id, session_id, origin_db, vector_id, success, reverted, label, roi_tag, ts_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(backend_error)?;
            for row in &outcome.contributors {
                insert
                    .execute(params![
                        outcome.patch_id,
                        outcome.session_id,
                        row.origin_db,
                        row.vector_id,
                        outcome.success,
                        outcome.reverted,
                        outcome.label,
                        outcome.roi_tag,
                        ts
                    ])
                    .map_err(backend_error)?;
            }
            let mut credit = tx
                .prepare_cached(
                    "INSERT INTO retriever_stats (origin_db, wins, regrets) VALUES (?1, ?2, ?3)
                     ON CONFLICT (origin_db) DO UPDATE SET wins = wins + excluded.wins, regrets = regrets + excluded.regrets",
                )
                .map_err(backend_error)?;
            for origin in &outcome.credited_origins {
                credit
                    .execute(params![
                        origin,
                        i64::from(outcome.success),
                        i64::from(!outcome.success)
                    ])
                    .map_err(backend_error)?;
            }
        }
        count_outcome_write(&tx)?;
        tx.commit().map_err(backend_error)
    }
}

impl VectorMetricsDb for SqliteStore {
    fn record_outcomes(&self, outcomes: &[VectorOutcome]) -> Result<(), BackendError> {
        let mut connection = self.writer()?;
        let tx = connection.transaction().map_err(backend_error)?;
        let ts = now_ms();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO vector_outcomes (session_id, origin_db, vector_id, contribution, win, regret, patch_id, roi_tag, ts_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(backend_error)?;
            for o in outcomes {
                insert
                    .execute(params![
                        o.session_id,
                        o.vector.origin_db,
                        o.vector.vector_id,
                        o.contribution,
                        o.win,
                        o.regret,
                        o.patch_id,
                        o.roi_tag,
                        ts
                    ])
                    .map_err(backend_error)?;
            }
        }
        count_outcome_write(&tx)?;
        tx.commit().map_err(backend_error)
    }

    fn vector_rates(&self, vectors: &[VectorRef]) -> Result<Vec<Option<Rates>>, BackendError> {
        let mut connection = self.connection()?;
        let tx = connection.transaction().map_err(backend_error)?;
        vectors
            .iter()
            .map(|v| {
                outcome_rates(
                    &tx,
                    "origin_db = ?1 AND vector_id = ?2",
                    &v.origin_db,
                    Some(&v.vector_id),
                )
            })
            .collect::<rusqlite::Result<_>>()
            .map_err(backend_error)
    }

    fn origin_rates(&self, origins: &[String]) -> Result<Vec<Option<Rates>>, BackendError> {
        let mut connection = self.connection()?;
        let tx = connection.transaction().map_err(backend_error)?;
        origins
            .iter()
            .map(|origin| outcome_rates(&tx, "origin_db = ?1 AND ?2 IS NULL", origin, None))
            .collect::<rusqlite::Result<_>>()
            .map_err(backend_error)
    }
}

impl EmbeddingStore for SqliteStore {
    fn databases(&self) -> Result<Vec<String>, BackendError> {
        let connection = self.connection()?;
        let mut statement = connection
            .prepare_cached("SELECT name FROM databases ORDER BY name")
            .map_err(backend_error)?;
        statement
            .query_map([], |row| row.get(0))
            .and_then(Iterator::collect)
            .map_err(backend_error)
    }

    fn pending(
        &self,
        db: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, BackendError> {
        let connection = self.connection()?;
        let known: Option<String> = connection
            .query_row("SELECT name FROM databases WHERE name = ?1", [db], |row| {
                row.get(0)
            })
            .optional()
            .map_err(backend_error)?;
        if known.is_none() {
            return Err(BackendError::Failed(format!("unknown database {db:?}")));
        }
        let mut statement = connection
            .prepare_cached(
                "SELECT r.id FROM records r
                 LEFT JOIN embeddings e ON e.db = r.db AND e.id = r.id
                 WHERE r.db = ?1 AND (?2 IS NULL OR r.id > ?2)
                   AND (e.id IS NULL OR e.text_hash != r.text_hash OR e.embedding_version != ?3)
                 ORDER BY r.id LIMIT ?4",
            )
            .map_err(backend_error)?;
        statement
            .query_map(params![db, after, self.embedder.version(), limit], |row| {
                row.get(0)
            })
            .and_then(Iterator::collect)
            .map_err(backend_error)
    }

    fn embed(&self, db: &str, ids: &[String]) -> Result<EmbedReport, BackendError> {
        // Read, embed outside the lock, then write the whole batch in one transaction.
        let mut texts: Vec<StoredText> = Vec::with_capacity(ids.len());
        {
            let connection = self.connection()?;
            let mut statement = connection
                .prepare_cached("SELECT text, text_hash FROM records WHERE db = ?1 AND id = ?2")
                .map_err(backend_error)?;
            for id in ids {
                let row: Option<(String, i64)> = statement
                    .query_row(params![db, id], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
                    .map_err(backend_error)?;
                if let Some((text, hash)) = row {
                    texts.push((id.clone(), text, hash));
                }
            }
        }
        embed_batch(
            self.embedder.as_ref(),
            ids.len(),
            texts,
            |texts, vectors| {
                let mut connection = self.writer()?;
                let tx = connection.transaction().map_err(backend_error)?;
                let created_at = now_ms();
                let seq = next_seq(&tx)?;
                {
                    let mut store = tx
                        .prepare_cached(
                            "INSERT OR REPLACE INTO embeddings (db, id, vector, text_hash, embedding_version, kind, source_id, created_at, seq)
                             VALUES (?1, ?2, ?3, ?4, ?5, 'text', ?2, ?6, ?7)",
                        )
                        .map_err(backend_error)?;
                    for ((id, _, hash), vector) in texts.iter().zip(&vectors) {
                        store
                            .execute(params![
                                db,
                                id,
                                vector_to_blob(vector),
                                hash,
                                self.embedder.version(),
                                created_at,
                                seq
                            ])
                            .map_err(backend_error)?;
                    }
                }
                tx.commit().map_err(backend_error)
            },
        )
    }
}
