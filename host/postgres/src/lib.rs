//! Every backend in PostgreSQL with pgvector, for hosts that share one database: records and
//! their embeddings (a `vector` column with an HNSW index, cosine distance), the primary metrics
//! tables and the vector metrics table.
//!
//! **Tenants are schemas** (`vs_<tenant>`), not a tenant column: the same tables and SQL serve
//! every tenant, PostgreSQL's own privileges can fence a tenant off, a tenant is dropped with one
//! `DROP SCHEMA`, and Citus' schema-based sharding places whole tenants on nodes without a
//! distribution column. Every connection of a store has `search_path` set to its schema.
//!
//! Migrations are versioned per schema and run when a store connects, inside one transaction
//! that holds an advisory lock, so several hosts starting at once apply each migration once.
//! Connections come from a pool; transient failures (connection lost, serialization failure,
//! deadlock, server shutting down) are retried a bounded number of times, and a write is only
//! acknowledged after its transaction committed.
#![deny(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use pgvector::Vector;
use postgres::error::SqlState;
use postgres::{NoTls, Transaction};
use r2d2::{CustomizeConnection, Pool};
use r2d2_postgres::PostgresConnectionManager;

use vector_service_runtime::api::{
    BackendError, BackendHit, BackendHits, EmbedReport, PatchOutcome, Rates, VectorOutcome,
    VectorRef,
};
use vector_service_runtime::backends::embedder::{embed_batch, StoredText};
use vector_service_runtime::backends::ranking::{
    query_words, relative_to_best, search_by_mode, Rankings, SearchMode,
};
use vector_service_runtime::backends::records::{now_ms, text_hash};
use vector_service_runtime::backends::{
    rates, ChangeClock, Embedder, EmbeddingStore, MetricsDb, PatchOutcomeRow, Record, Retriever,
    RetrieverStats, Store, StoreStats, VectorMetricsDb,
};
use vector_service_runtime::deadline;

/// Schema migrations of a tenant schema, applied in order; `schema_migrations` records them.
/// Text keys use the "C" collation so ids sort byte-wise, as in SQLite.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE databases (name text COLLATE "C" PRIMARY KEY);
CREATE TABLE records (
    db text COLLATE "C" NOT NULL REFERENCES databases (name),
    id text COLLATE "C" NOT NULL,
    origin_db text COLLATE "C" NOT NULL,
    text text NOT NULL,
    text_hash bigint NOT NULL,
    metadata text NOT NULL,
    updated_at bigint NOT NULL,
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    PRIMARY KEY (db, id)
);
CREATE INDEX records_tsv ON records USING gin (tsv);
-- Any dimension count: each embedder's dimension gets its own partial HNSW index (see
-- `ensure_vector_index`), since an HNSW index needs a fixed dimension.
CREATE TABLE embeddings (
    db text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    embedding vector NOT NULL,
    dims integer NOT NULL,
    text_hash bigint NOT NULL,
    embedding_version text NOT NULL,
    kind text NOT NULL,
    source_id text NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (db, id),
    FOREIGN KEY (db, id) REFERENCES records (db, id) ON DELETE CASCADE
);
CREATE TABLE patch_outcomes (
    seq bigserial PRIMARY KEY,
    patch_id text NOT NULL,
    session_id text NOT NULL,
    origin_db text,
    vector_id text,
    success boolean NOT NULL,
    reverted boolean NOT NULL,
    label text NOT NULL,
    roi_tag text NOT NULL,
    ts_ms bigint NOT NULL
);
CREATE TABLE retriever_stats (
    origin_db text COLLATE "C" PRIMARY KEY,
    wins bigint NOT NULL DEFAULT 0,
    regrets bigint NOT NULL DEFAULT 0
);
CREATE TABLE vector_outcomes (
    seq bigserial PRIMARY KEY,
    session_id text NOT NULL,
    origin_db text NOT NULL,
    vector_id text NOT NULL,
    contribution double precision NOT NULL,
    win boolean NOT NULL,
    regret boolean NOT NULL,
    patch_id text NOT NULL,
    roi_tag text NOT NULL,
    ts_ms bigint NOT NULL
);
CREATE INDEX vector_outcomes_by_vector ON vector_outcomes (origin_db, vector_id);
"#,
    r#"
-- The result cache's generation (`ChangeClock`): every write an answer depends on advances it
-- as its transaction's last statement, so it becomes visible with the data it counts.
CREATE TABLE change_clock (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    generation bigint NOT NULL
);
INSERT INTO change_clock (generation) VALUES (0);
-- Reliability counts the primary DB's rows too, looked up by vector like `vector_outcomes`.
CREATE INDEX patch_outcomes_by_vector ON patch_outcomes (origin_db, vector_id);
"#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// One advisory lock key for every vector-service migration ("vs-migr" in ASCII).
const MIGRATION_LOCK: i64 = 0x0076_732d_6d69_6772;

/// Attempts of one operation when the failure is transient.
const ATTEMPTS: u32 = 4;

/// First retry delay; doubles per attempt.
const RETRY_BACKOFF: Duration = Duration::from_millis(50);

/// Longest wait for a pooled connection outside a call's deadline.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(10);

/// HNSW search depth (pgvector's `hnsw.ef_search`), as the SQLite backend's index.
const EF_SEARCH: u32 = 96;

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// The URL does not parse as a PostgreSQL connection string.
    #[error("invalid PostgreSQL URL: {0}")]
    Url(postgres::Error),
    /// The tenant name cannot be a schema name.
    #[error("tenant {0:?} cannot name a schema: use letters, digits, '_' and '-' (at most 50)")]
    Tenant(String),
    /// No connection could be made.
    #[error("connecting to PostgreSQL: {0}")]
    Connect(String),
    /// A migration failed (the schema is left at the last good version).
    #[error("migrating schema {schema}: {source}")]
    Migrate {
        /// The tenant schema.
        schema: String,
        /// PostgreSQL's error.
        source: postgres::Error,
    },
    /// The schema was written by a newer vector-service.
    #[error("schema {schema} has version {found}, newer than this build's {supported}")]
    TooNew {
        /// The tenant schema.
        schema: String,
        /// Version in the database.
        found: usize,
        /// Newest version this build knows.
        supported: usize,
    },
}

/// Sets each pooled connection's `search_path` to the tenant schema (then `public`, where the
/// `vector` type lives).
#[derive(Debug)]
struct TenantSchema(String);

impl CustomizeConnection<postgres::Client, postgres::Error> for TenantSchema {
    fn on_acquire(&self, client: &mut postgres::Client) -> Result<(), postgres::Error> {
        client.batch_execute(&format!("SET search_path TO {}, public", self.0))
    }
}

type PgPool = Pool<PostgresConnectionManager<NoTls>>;

/// The connection pool, closed on a thread of its own when the store is dropped: a
/// `postgres::Client` closes its connection by blocking on a runtime of its own, which panics
/// (and, inside a destructor, aborts the process) on a thread already inside a tokio runtime,
/// as an async server's workers and blocking pool are.
struct ClosedApart(Option<PgPool>);

impl std::ops::Deref for ClosedApart {
    type Target = PgPool;

    fn deref(&self) -> &PgPool {
        self.0.as_ref().expect("present until drop")
    }
}

impl Drop for ClosedApart {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            // Joined, so the connections are closed when the store's drop returns.
            let closing = std::thread::Builder::new()
                .name("postgres-close".into())
                .spawn(move || drop(pool));
            if let Ok(closing) = closing {
                let _ = closing.join();
            }
        }
    }
}

/// A PostgreSQL-backed implementation of every backend trait, for one tenant.
pub struct PostgresStore {
    pool: ClosedApart,
    schema: String,
    embedder: Arc<dyn Embedder>,
    search_mode: SearchMode,
}

/// `vs_<tenant>`, quoted; tenants are validated so the name needs no escaping.
fn schema_for(tenant: &str) -> Result<String, PostgresError> {
    let valid = !tenant.is_empty()
        && tenant.len() <= 50
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(PostgresError::Tenant(tenant.to_string()));
    }
    Ok(format!("\"vs_{tenant}\""))
}

/// Whether retrying can help: the connection went away, or PostgreSQL asks for a retry.
fn is_transient(error: &postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match error.code() {
        Some(code) => {
            *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || code.code().starts_with("08")
        }
        // No SQL state: an I/O error on the socket.
        None => true,
    }
}

/// The error typed by whether retrying can help, with the server's own message (postgres'
/// `Display` alone says only "db error").
fn backend_error(error: postgres::Error) -> BackendError {
    let message = format!("postgres: {}", with_causes(&error));
    if is_transient(&error) {
        BackendError::Unavailable(message)
    } else {
        BackendError::Failed(message)
    }
}

/// How one attempt failed: before the commit was sent (safe to retry), or while committing
/// (the outcome is unknown, so it is never retried: retrying could write twice).
enum AttemptError {
    Statement(postgres::Error),
    Commit(postgres::Error),
    Backend(BackendError),
}

impl From<postgres::Error> for AttemptError {
    fn from(error: postgres::Error) -> Self {
        AttemptError::Statement(error)
    }
}

impl From<BackendError> for AttemptError {
    fn from(error: BackendError) -> Self {
        AttemptError::Backend(error)
    }
}

/// An error and every cause under it, on one line.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

fn count(value: i64) -> u64 {
    value.max(0) as u64
}

impl PostgresStore {
    /// Connect to `url` for `tenant`: create the tenant's schema if needed and migrate it.
    /// `pool_size` bounds this store's connections.
    pub fn connect(
        url: &str,
        tenant: &str,
        embedder: Arc<dyn Embedder>,
        pool_size: u32,
    ) -> Result<Self, PostgresError> {
        let schema = schema_for(tenant)?;
        let config: postgres::Config = url.parse().map_err(PostgresError::Url)?;
        // One direct connection first: the pool would only report a timeout, this reports why.
        config
            .connect(NoTls)
            .map_err(|error| PostgresError::Connect(with_causes(&error)))?;
        let manager = PostgresConnectionManager::new(config, NoTls);
        let pool = Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(0))
            // No round trip per checkout: a connection found broken is retried (`transaction`).
            .test_on_check_out(false)
            .connection_timeout(CHECKOUT_TIMEOUT)
            .connection_customizer(Box::new(TenantSchema(schema.clone())))
            .build(manager)
            .map_err(|error| PostgresError::Connect(error.to_string()))?;
        let store = Self {
            pool: ClosedApart(Some(pool)),
            schema,
            embedder,
            search_mode: SearchMode::default(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The same store, ranking searches by `mode`.
    pub fn with_search_mode(mut self, mode: SearchMode) -> Self {
        self.search_mode = mode;
        self
    }

    /// The migration version the tenant's schema is at.
    pub fn schema_version(&self) -> Result<usize, BackendError> {
        self.transaction(|tx| {
            let version: i32 = tx
                .query_one(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                    &[],
                )?
                .get(0);
            Ok(version.max(0) as usize)
        })
    }

    /// The tenant's schema, quoted.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Create the schema and apply missing migrations and this embedder's vector index, all
    /// under one advisory lock so concurrent hosts do it once.
    fn migrate(&self) -> Result<(), PostgresError> {
        let migrate_error = |source| PostgresError::Migrate {
            schema: self.schema.clone(),
            source,
        };
        let mut client = self
            .pool
            .get()
            .map_err(|error| PostgresError::Connect(error.to_string()))?;
        let mut tx = client.transaction().map_err(migrate_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(migrate_error)?;
        tx.batch_execute(&format!(
            "CREATE EXTENSION IF NOT EXISTS vector;
             CREATE SCHEMA IF NOT EXISTS {schema};
             SET LOCAL search_path TO {schema}, public;
             CREATE TABLE IF NOT EXISTS schema_migrations (
                 version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );",
            schema = self.schema
        ))
        .map_err(migrate_error)?;
        let current: i32 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .map_err(migrate_error)?
            .get(0);
        let current = current.max(0) as usize;
        if current > MIGRATIONS.len() {
            return Err(PostgresError::TooNew {
                schema: self.schema.clone(),
                found: current,
                supported: MIGRATIONS.len(),
            });
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(current) {
            let version = (index + 1) as i32;
            tx.batch_execute(migration).map_err(migrate_error)?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[&version],
            )
            .map_err(migrate_error)?;
        }
        let dims = self.embedder.dimensions();
        tx.batch_execute(&format!(
            "CREATE INDEX IF NOT EXISTS embeddings_hnsw_{dims} ON embeddings
             USING hnsw ((embedding::vector({dims})) vector_cosine_ops) WHERE dims = {dims}"
        ))
        .map_err(migrate_error)?;
        tx.commit().map_err(migrate_error)
    }

    /// Run `operation` in a transaction and commit it, retrying transient failures before the
    /// commit up to [`ATTEMPTS`] times.
    fn transaction<T>(
        &self,
        mut operation: impl FnMut(&mut Transaction<'_>) -> Result<T, AttemptError>,
    ) -> Result<T, BackendError> {
        let mut attempt = 1;
        loop {
            let error = match self.attempt(&mut operation) {
                Ok(value) => return Ok(value),
                Err(AttemptError::Backend(error)) => return Err(error),
                Err(AttemptError::Commit(error)) => {
                    return Err(BackendError::Unavailable(format!(
                        "postgres: the commit did not complete, its outcome is unknown: {}",
                        with_causes(&error)
                    )))
                }
                Err(AttemptError::Statement(error)) => error,
            };
            if attempt >= ATTEMPTS || !is_transient(&error) || deadline::expired() {
                return Err(backend_error(error));
            }
            tracing::warn!(schema = %self.schema, attempt, %error, "retrying a transient PostgreSQL failure");
            std::thread::sleep(deadline::cap(RETRY_BACKOFF * 2u32.pow(attempt - 1)));
            attempt += 1;
        }
    }

    /// A pooled connection, waiting no longer than the call's deadline (or the pool's 10 s).
    fn client(
        &self,
    ) -> Result<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>, BackendError> {
        self.pool
            .get_timeout(deadline::cap(CHECKOUT_TIMEOUT))
            .map_err(|error| BackendError::Unavailable(format!("postgres: no connection: {error}")))
    }

    fn attempt<T>(
        &self,
        operation: &mut impl FnMut(&mut Transaction<'_>) -> Result<T, AttemptError>,
    ) -> Result<T, AttemptError> {
        let mut client = self.client().map_err(AttemptError::Backend)?;
        let mut tx = client.transaction()?;
        // The server stops a statement at the call's deadline (the time left when it starts).
        if let Some(left) = deadline::remaining() {
            tx.batch_execute(&format!(
                "SET LOCAL statement_timeout = {}",
                left.as_millis().max(1)
            ))?;
        }
        let value = operation(&mut tx)?;
        tx.commit().map_err(AttemptError::Commit)?;
        Ok(value)
    }
}

impl Rankings for PostgresStore {
    fn search_mode(&self) -> SearchMode {
        self.search_mode
    }

    fn lexical_search(
        &self,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Result<Vec<BackendHit>, BackendError> {
        // Any of the words (letters and digits only, so no tsquery syntax leaks in).
        let words: Vec<&str> = query_words(query).collect();
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let matching = words.join(" | ");
        let limit = i64::from(top_k);
        let mut hits = self.transaction(|tx| {
            let rows = tx.query(
                "SELECT origin_db, id, metadata, ts_rank(tsv, q)::float8
                 FROM records, to_tsquery('english', $1) AS q
                 WHERE tsv @@ q AND (cardinality($2::text[]) = 0 OR origin_db = ANY($2))
                 ORDER BY 4 DESC, id LIMIT $3",
                &[&matching, &origins, &limit],
            )?;
            Ok(rows
                .iter()
                .map(|row| hit(row, "ts_rank"))
                .collect::<Vec<_>>())
        })?;
        relative_to_best(&mut hits);
        Ok(hits)
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
        let dims = self.embedder.dimensions();
        let version = self.embedder.version().to_string();
        let limit = i64::from(top_k);
        let query_vector = Vector::from(query_vector);
        // The cast to vector(dims) matches the partial HNSW index's expression; relaxed
        // iterative scans keep filtered searches from coming back short.
        let sql = format!(
            "SELECT r.origin_db, r.id, r.metadata,
                    (1 - (e.embedding::vector({dims}) <=> $1))::float8 AS similarity
             FROM embeddings e JOIN records r ON r.db = e.db AND r.id = e.id
             WHERE e.dims = {dims} AND e.embedding_version = $2
               AND (cardinality($3::text[]) = 0 OR r.origin_db = ANY($3))
             ORDER BY e.embedding::vector({dims}) <=> $1 LIMIT $4"
        );
        let mut hits = self.transaction(|tx| {
            tx.batch_execute(&format!(
                "SET LOCAL hnsw.ef_search = {EF_SEARCH}; SET LOCAL hnsw.iterative_scan = relaxed_order"
            ))?;
            let rows = tx.query(&sql, &[&query_vector, &version, &origins, &limit])?;
            Ok(rows
                .iter()
                .map(|row| hit(row, "cosine similarity"))
                .collect::<Vec<_>>())
        })?;
        // Relaxed order may return neighbours slightly out of order.
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        Ok(hits)
    }
}

fn hit(row: &postgres::Row, reason: &str) -> BackendHit {
    BackendHit::new(
        row.get(0),
        row.get(1),
        row.get(3),
        reason.into(),
        row.get(2),
    )
}

impl Store for PostgresStore {
    fn health(&self) -> Result<(), BackendError> {
        let mut client = self.client()?;
        client
            .simple_query("SELECT 1")
            .map(drop)
            .map_err(backend_error)
    }

    fn upsert(&self, db: &str, records: &[Record]) -> Result<usize, BackendError> {
        self.transaction(|tx| {
            tx.execute(
                "INSERT INTO databases (name) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&db],
            )?;
            let statement = tx.prepare(
                "INSERT INTO records (db, id, origin_db, text, text_hash, metadata, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (db, id) DO UPDATE SET
                    origin_db = excluded.origin_db, text = excluded.text,
                    text_hash = excluded.text_hash, metadata = excluded.metadata,
                    updated_at = excluded.updated_at
                 WHERE records.text_hash <> excluded.text_hash
                    OR records.metadata <> excluded.metadata
                    OR records.origin_db <> excluded.origin_db",
            )?;
            let now = now_ms();
            let mut changed = 0;
            for record in records {
                changed += tx.execute(
                    &statement,
                    &[
                        &db,
                        &record.id,
                        &record.origin_db,
                        &record.text,
                        &text_hash(&record.text),
                        &record.metadata.to_string(),
                        &now,
                    ],
                )? as usize;
            }
            if changed > 0 {
                advance_generation(tx)?;
            }
            Ok(changed)
        })
    }

    fn delete(&self, db: &str, ids: &[String]) -> Result<usize, BackendError> {
        self.transaction(|tx| {
            let deleted = tx.execute(
                "DELETE FROM records WHERE db = $1 AND id = ANY($2)",
                &[&db, &ids],
            )? as usize;
            if deleted > 0 {
                advance_generation(tx)?;
            }
            Ok(deleted)
        })
    }

    fn register_database(&self, db: &str) -> Result<(), BackendError> {
        self.transaction(|tx| {
            tx.execute(
                "INSERT INTO databases (name) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&db],
            )?;
            Ok(())
        })
    }

    fn stats(&self) -> Result<StoreStats, BackendError> {
        let version = self.embedder.version().to_string();
        self.transaction(|tx| {
            let databases = tx
                .query(
                    "SELECT d.name, COUNT(r.id),
                            COUNT(*) FILTER (WHERE e.embedding_version = $1 AND e.text_hash = r.text_hash)
                     FROM databases d
                     LEFT JOIN records r ON r.db = d.name
                     LEFT JOIN embeddings e ON e.db = r.db AND e.id = r.id
                     GROUP BY d.name ORDER BY d.name",
                    &[&version],
                )?
                .iter()
                .map(|row| (row.get(0), count(row.get(1)), count(row.get(2))))
                .collect();
            let patch_outcomes: i64 = tx
                .query_one("SELECT COUNT(*) FROM patch_outcomes", &[])?
                .get(0);
            let vector_outcomes: i64 = tx
                .query_one("SELECT COUNT(*) FROM vector_outcomes", &[])?
                .get(0);
            Ok(StoreStats {
                databases,
                patch_outcomes: count(patch_outcomes),
                vector_outcomes: count(vector_outcomes),
                embedding_version: version.clone(),
            })
        })
    }

    fn patch_outcomes(&self) -> Result<Vec<PatchOutcomeRow>, BackendError> {
        self.transaction(|tx| {
            Ok(tx
                .query(
                    "SELECT patch_id, session_id, origin_db, vector_id, success, reverted, label, roi_tag, ts_ms
                     FROM patch_outcomes ORDER BY seq",
                    &[],
                )?
                .iter()
                .map(|row| PatchOutcomeRow {
                    patch_id: row.get(0),
                    session_id: row.get(1),
                    origin_db: row.get(2),
                    vector_id: row.get(3),
                    success: row.get(4),
                    reverted: row.get(5),
                    label: row.get(6),
                    roi_tag: row.get(7),
                    ts_ms: count(row.get(8)),
                })
                .collect())
        })
    }

    fn retriever_stats(&self) -> Result<Vec<(String, RetrieverStats)>, BackendError> {
        self.transaction(|tx| {
            Ok(tx
                .query(
                    "SELECT origin_db, wins, regrets FROM retriever_stats ORDER BY origin_db",
                    &[],
                )?
                .iter()
                .map(|row| {
                    (
                        row.get(0),
                        RetrieverStats {
                            wins: count(row.get(1)),
                            regrets: count(row.get(2)),
                        },
                    )
                })
                .collect())
        })
    }
}

impl Retriever for PostgresStore {
    fn search(
        &self,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Result<BackendHits, BackendError> {
        search_by_mode(self, query, top_k, origins)
    }
}

impl MetricsDb for PostgresStore {
    fn available(&self) -> bool {
        self.client()
            .is_ok_and(|mut client| client.simple_query("SELECT 1").is_ok())
    }

    fn log_patch_outcome(&self, outcome: &PatchOutcome) -> Result<(), BackendError> {
        self.transaction(|tx| {
            let ts = now_ms();
            let insert = tx.prepare(
                "INSERT INTO patch_outcomes (patch_id, session_id, origin_db, vector_id, success, reverted, label, roi_tag, ts_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )?;
            for row in &outcome.contributors {
                tx.execute(
                    &insert,
                    &[
                        &outcome.patch_id,
                        &outcome.session_id,
                        &row.origin_db,
                        &row.vector_id,
                        &outcome.success,
                        &outcome.reverted,
                        &outcome.label,
                        &outcome.roi_tag,
                        &ts,
                    ],
                )?;
            }
            let (wins, regrets) = (i64::from(outcome.success), i64::from(!outcome.success));
            for origin in &outcome.credited_origins {
                tx.execute(
                    "INSERT INTO retriever_stats (origin_db, wins, regrets) VALUES ($1, $2, $3)
                     ON CONFLICT (origin_db) DO UPDATE SET
                        wins = retriever_stats.wins + excluded.wins,
                        regrets = retriever_stats.regrets + excluded.regrets",
                    &[origin, &wins, &regrets],
                )?;
            }
            Ok(advance_generation(tx)?)
        })
    }
}

impl ChangeClock for PostgresStore {
    /// One round trip, outside a transaction: a read of one row by its key.
    fn generation(&self) -> Result<u64, BackendError> {
        let mut client = self.client()?;
        let messages = client
            .simple_query("SELECT generation FROM change_clock")
            .map_err(backend_error)?;
        messages
            .iter()
            .find_map(|message| match message {
                postgres::SimpleQueryMessage::Row(row) => row.get(0)?.parse().ok(),
                _ => None,
            })
            .ok_or_else(|| BackendError::Failed("postgres: change_clock has no row".into()))
    }
}

/// Advance the change clock: a write's last statement, so the clock's row lock is held only
/// while the transaction commits.
fn advance_generation(tx: &mut Transaction<'_>) -> Result<(), postgres::Error> {
    tx.execute("UPDATE change_clock SET generation = generation + 1", &[])
        .map(drop)
}

/// Rates from every tracked outcome matching `filter` (a SQL condition on $1, $2), whichever
/// metrics table recorded it: a success is a win, a failure a regret, as in `vector_outcomes`.
fn outcome_rates(
    tx: &mut Transaction<'_>,
    filter: &str,
    a: &str,
    b: Option<&str>,
) -> Result<Option<Rates>, postgres::Error> {
    let row = tx.query_one(
        &format!(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE win), COUNT(*) FILTER (WHERE regret)
             FROM (SELECT win, regret FROM vector_outcomes WHERE {filter}
                   UNION ALL
                   SELECT success, NOT success FROM patch_outcomes WHERE {filter}) AS tracked"
        ),
        &[&a, &b],
    )?;
    Ok(rates(
        count(row.get(0)),
        count(row.get(1)),
        count(row.get(2)),
    ))
}

impl VectorMetricsDb for PostgresStore {
    fn record_outcomes(&self, outcomes: &[VectorOutcome]) -> Result<(), BackendError> {
        self.transaction(|tx| {
            let ts = now_ms();
            let insert = tx.prepare(
                "INSERT INTO vector_outcomes (session_id, origin_db, vector_id, contribution, win, regret, patch_id, roi_tag, ts_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )?;
            for o in outcomes {
                tx.execute(
                    &insert,
                    &[
                        &o.session_id,
                        &o.vector.origin_db,
                        &o.vector.vector_id,
                        &o.contribution,
                        &o.win,
                        &o.regret,
                        &o.patch_id,
                        &o.roi_tag,
                        &ts,
                    ],
                )?;
            }
            Ok(advance_generation(tx)?)
        })
    }

    fn vector_rates(&self, vectors: &[VectorRef]) -> Result<Vec<Option<Rates>>, BackendError> {
        self.transaction(|tx| {
            vectors
                .iter()
                .map(|v| {
                    outcome_rates(
                        tx,
                        "origin_db = $1 AND vector_id = $2",
                        &v.origin_db,
                        Some(&v.vector_id),
                    )
                })
                .collect::<Result<_, _>>()
                .map_err(AttemptError::from)
        })
    }

    fn origin_rates(&self, origins: &[String]) -> Result<Vec<Option<Rates>>, BackendError> {
        self.transaction(|tx| {
            origins
                .iter()
                .map(|origin| {
                    outcome_rates(tx, "origin_db = $1 AND $2::text IS NULL", origin, None)
                })
                .collect::<Result<_, _>>()
                .map_err(AttemptError::from)
        })
    }
}

impl EmbeddingStore for PostgresStore {
    fn databases(&self) -> Result<Vec<String>, BackendError> {
        self.transaction(|tx| {
            Ok(tx
                .query("SELECT name FROM databases ORDER BY name", &[])?
                .iter()
                .map(|row| row.get(0))
                .collect())
        })
    }

    fn pending(
        &self,
        db: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, BackendError> {
        let version = self.embedder.version().to_string();
        let limit = i64::from(limit);
        self.transaction(|tx| {
            if tx
                .query_opt("SELECT 1 FROM databases WHERE name = $1", &[&db])?
                .is_none()
            {
                return Err(BackendError::Failed(format!("unknown database {db:?}")).into());
            }
            Ok(tx
                .query(
                    "SELECT r.id FROM records r
                     LEFT JOIN embeddings e ON e.db = r.db AND e.id = r.id
                     WHERE r.db = $1 AND ($2::text IS NULL OR r.id > $2)
                       AND (e.id IS NULL OR e.text_hash <> r.text_hash OR e.embedding_version <> $3)
                     ORDER BY r.id LIMIT $4",
                    &[&db, &after, &version, &limit],
                )?
                .iter()
                .map(|row| row.get(0))
                .collect())
        })
    }

    fn embed(&self, db: &str, ids: &[String]) -> Result<EmbedReport, BackendError> {
        // Read, embed outside any transaction, then write the whole batch in one.
        let texts: Vec<StoredText> = self.transaction(|tx| {
            Ok(tx
                .query(
                    "SELECT id, text, text_hash FROM records WHERE db = $1 AND id = ANY($2) ORDER BY id",
                    &[&db, &ids],
                )?
                .iter()
                .map(|row| (row.get(0), row.get(1), row.get(2)))
                .collect())
        })?;
        embed_batch(
            self.embedder.as_ref(),
            ids.len(),
            texts,
            |texts, vectors| {
                let version = self.embedder.version().to_string();
                let vectors: Vec<(Vector, i32)> = vectors
                    .into_iter()
                    .map(|vector| {
                        let dims = vector.len() as i32;
                        (Vector::from(vector), dims)
                    })
                    .collect();
                self.transaction(|tx| {
                let created_at = now_ms();
                let upsert = tx.prepare(
                    "INSERT INTO embeddings (db, id, embedding, dims, text_hash, embedding_version, kind, source_id, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, 'text', $2, $7)
                     ON CONFLICT (db, id) DO UPDATE SET
                        embedding = excluded.embedding, dims = excluded.dims,
                        text_hash = excluded.text_hash, embedding_version = excluded.embedding_version,
                        created_at = excluded.created_at",
                )?;
                for ((id, _, hash), (vector, dims)) in texts.iter().zip(&vectors) {
                    tx.execute(&upsert, &[&db, id, vector, dims, hash, &version, &created_at])?;
                }
                Ok(advance_generation(tx)?)
            })
            },
        )
    }
}
