//! Every backend in PostgreSQL with pgvector, for hosts that share one database: records and
//! their embeddings (a `vector` column with an HNSW index, cosine distance), the primary metrics
//! tables and the vector metrics table.
//!
//! **Tenants are schemas** (`vs_<tenant>`), not a tenant column: the same tables and SQL serve
//! every tenant, PostgreSQL's own privileges can fence a tenant off, a tenant is dropped with one
//! `DROP SCHEMA`, and Citus' schema-based sharding places whole tenants on nodes without a
//! distribution column. Every connection of a store has `search_path` set to its schema.
//!
//! Migrations are versioned per schema and run when a store first opens in a process, inside one
//! transaction that holds the schema's advisory lock, so several hosts starting at once apply
//! each migration once. Connections come from a [`PostgresPool`], one per host shared by every
//! tenant (each transaction sets its schema); transient failures (connection lost,
//! serialization failure, deadlock, server shutting down) are retried a bounded number of
//! times, and a write is only acknowledged after its transaction committed.
//!
//! The file map is the SQLite store's: `schema` (migrations in `migrations/*.sql`), `error`, the
//! store itself here, `search`, `outcomes`, `embeddings`, `clock`; and the shared connection `pool`.
#![deny(missing_docs)]

mod clock;
mod embeddings;
mod error;
mod outcomes;
mod pool;
mod schema;
mod search;

use std::sync::Arc;
use std::time::Duration;

use postgres::{NoTls, Transaction};
use r2d2_postgres::PostgresConnectionManager;

use vector_service_runtime::api::BackendError;
use vector_service_runtime::backends::ranking::SearchMode;
use vector_service_runtime::backends::records::{now_ms, text_hash};
use vector_service_runtime::backends::{
    Embedder, PatchOutcomeRow, Record, RetrieverStats, Store, StoreStats,
};
use vector_service_runtime::deadline;

use crate::clock::advance_generation;
pub use crate::error::PostgresError;
use crate::error::{backend_error, is_transient, with_causes, AttemptError};
pub use crate::pool::{PoolState, PostgresPool};
pub use crate::schema::SCHEMA_VERSION;
use crate::schema::{EXTENSION_LOCK, MIGRATIONS, MIGRATION_LOCK_CLASS};

/// Attempts of one operation when the failure is transient.
const ATTEMPTS: u32 = 4;

/// First retry delay; doubles per attempt.
const RETRY_BACKOFF: Duration = Duration::from_millis(50);

/// Longest wait for a pooled connection outside a call's deadline.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(10);

/// HNSW search depth (pgvector's `hnsw.ef_search`), as the SQLite backend's index.
const EF_SEARCH: u32 = 96;

/// A PostgreSQL-backed implementation of every backend trait, for one tenant.
pub struct PostgresStore {
    pool: Arc<PostgresPool>,
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

fn count(value: i64) -> u64 {
    value.max(0) as u64
}

impl PostgresStore {
    /// Connect to `url` for `tenant` with a pool of its own of at most `pool_size`
    /// connections: for a command or a test. A host serving many tenants shares one
    /// [`PostgresPool`] between them with [`PostgresStore::open`].
    pub fn connect(
        url: &str,
        tenant: &str,
        embedder: Arc<dyn Embedder>,
        pool_size: u32,
    ) -> Result<Self, PostgresError> {
        let config: postgres::Config = url.parse().map_err(PostgresError::Url)?;
        // One direct connection first: the pool would only report a timeout, this reports why.
        config
            .connect(NoTls)
            .map_err(|error| PostgresError::Connect(with_causes(&error)))?;
        let pool = PostgresPool::new(url, pool_size, CHECKOUT_TIMEOUT)?;
        Self::open(&Arc::new(pool), tenant, embedder)
    }

    /// The store of `tenant` over a shared `pool`: creates the tenant's schema and migrates it
    /// the first time this process opens it; afterwards no round trip at all.
    pub fn open(
        pool: &Arc<PostgresPool>,
        tenant: &str,
        embedder: Arc<dyn Embedder>,
    ) -> Result<Self, PostgresError> {
        let store = Self {
            pool: pool.clone(),
            schema: schema_for(tenant)?,
            embedder,
            search_mode: SearchMode::default(),
        };
        let dims = store.embedder.dimensions();
        if pool.needs_migration(&store.schema, dims) {
            pool.ensure_extension(|| store.create_extension())?;
            store.migrate()?;
            pool.mark_migrated(&store.schema, dims);
        }
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

    /// A connection for opening a store, with the pool's reason when none can be made.
    fn open_client(
        &self,
    ) -> Result<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>, PostgresError> {
        self.pool
            .connections()
            .get()
            .map_err(|error| PostgresError::Connect(error.to_string()))
    }

    /// A migration's failure, naming this store's schema.
    fn migrate_error(&self) -> impl Fn(postgres::Error) -> PostgresError + Copy + '_ {
        |source| PostgresError::Migrate {
            schema: self.schema.clone(),
            source,
        }
    }

    /// `CREATE EXTENSION vector` under the database-wide lock, as two hosts creating it at
    /// once would collide.
    fn create_extension(&self) -> Result<(), PostgresError> {
        let migrate_error = self.migrate_error();
        let mut client = self.open_client()?;
        let mut tx = client.transaction().map_err(migrate_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&EXTENSION_LOCK])
            .map_err(migrate_error)?;
        tx.batch_execute("CREATE EXTENSION IF NOT EXISTS vector")
            .map_err(migrate_error)?;
        tx.commit().map_err(migrate_error)
    }

    /// Create the schema and apply missing migrations and this embedder's vector index, all
    /// under the schema's advisory lock so concurrent hosts do it once, while other schemas
    /// migrate beside it.
    fn migrate(&self) -> Result<(), PostgresError> {
        let migrate_error = self.migrate_error();
        let mut client = self.open_client()?;
        let mut tx = client.transaction().map_err(migrate_error)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&MIGRATION_LOCK_CLASS, &self.schema],
        )
        .map_err(migrate_error)?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
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
            .connections()
            .get_timeout(deadline::cap(CHECKOUT_TIMEOUT))
            .map_err(|error| BackendError::Unavailable(format!("postgres: no connection: {error}")))
    }

    fn attempt<T>(
        &self,
        operation: &mut impl FnMut(&mut Transaction<'_>) -> Result<T, AttemptError>,
    ) -> Result<T, AttemptError> {
        let mut client = self.client().map_err(AttemptError::Backend)?;
        let mut tx = client.transaction()?;
        // The connection is the pool's, not the tenant's: the transaction names its schema,
        // and the server stops a statement at the call's deadline (the time left when it
        // starts), in one round trip.
        let mut setup = format!("SET LOCAL search_path TO {}, public", self.schema);
        if let Some(left) = deadline::remaining() {
            setup.push_str(&format!(
                "; SET LOCAL statement_timeout = {}",
                left.as_millis().max(1)
            ));
        }
        tx.batch_execute(&setup)?;
        let value = operation(&mut tx)?;
        tx.commit().map_err(AttemptError::Commit)?;
        Ok(value)
    }
}

impl Store for PostgresStore {
    fn health(&self) -> Result<(), BackendError> {
        let mut client = self.client()?;
        client
            .simple_query("SELECT 1")
            .map(drop)
            .map_err(backend_error)
    }

    /// The schema's tables with their indexes and TOAST, from the catalog's sizes.
    fn storage_bytes(&self) -> Result<u64, BackendError> {
        let mut client = self.client()?;
        let row = client
            .query_one(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
                 FROM pg_class c
                 WHERE c.relnamespace = to_regnamespace($1) AND c.relkind IN ('r', 'm')",
                &[&self.schema],
            )
            .map_err(backend_error)?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
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

    fn record(&self, db: &str, id: &str) -> Result<Option<Record>, BackendError> {
        let row = self.transaction(|tx| {
            Ok(tx.query_opt(
                "SELECT origin_db, text, metadata FROM records WHERE db = $1 AND id = $2",
                &[&db, &id],
            )?)
        })?;
        row.map(|row| {
            let metadata: String = row.get(2);
            Ok(Record {
                origin_db: row.get(0),
                id: id.to_string(),
                text: row.get(1),
                metadata: serde_json::from_str(&metadata).map_err(|e| {
                    BackendError::Failed(format!("record {db}/{id}: metadata: {e}"))
                })?,
            })
        })
        .transpose()
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
                    "SELECT patch_id, session_id, origin_db, vector_id, success, reverted, label, roi_tag, ts_ms, contribution
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
                    contribution: row.get(9),
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
