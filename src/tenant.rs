//! Opening a tenant's store from the global flags: where the data lives, which embedder makes
//! its vectors, how search ranks; and the component over that store for the CLI.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use vector_service_embed_http::{HttpEmbedder, HttpEmbedderConfig};
use vector_service_postgres::{PostgresPool, PostgresStore};
use vector_service_runtime::backends::{
    Backends, Embedder, EmbeddingStore, HashingEmbedder, SearchMode, Store, StoreFault,
};
use vector_service_runtime::{Plugin, ServiceConfig, Telemetry, VectorService};
use vector_service_sqlite::SqliteStore;

use crate::cli::{DatabaseSpec, EmbedderSpec, Global};
use crate::failure::{CommandFailed, Failure};

/// The embedder named by `--embedder`.
fn embedder(global: &Global) -> anyhow::Result<Arc<dyn Embedder>> {
    match &global.embedder {
        EmbedderSpec::Hashing => Ok(Arc::new(HashingEmbedder)),
        EmbedderSpec::Http(url) => {
            let model = global
                .embedding_model
                .clone()
                .context("an HTTP embedder needs --embedding-model")?;
            let config = HttpEmbedderConfig {
                api_key: std::env::var("VECTOR_SERVICE_EMBEDDING_API_KEY").ok(),
                dimensions: global.embedding_dimensions,
                ..HttpEmbedderConfig::new(url, model)
            };
            Ok(Arc::new(HttpEmbedder::new(config)))
        }
        EmbedderSpec::MiniLm(dir) => minilm(dir.as_deref()),
    }
}

#[cfg(feature = "neural")]
fn minilm(dir: Option<&Path>) -> anyhow::Result<Arc<dyn Embedder>> {
    use vector_service_embed_minilm::MiniLmEmbedder;
    let dir = dir.map_or_else(MiniLmEmbedder::default_dir, Path::to_path_buf);
    Ok(Arc::new(MiniLmEmbedder::load(&dir)?))
}

#[cfg(not(feature = "neural"))]
fn minilm(_dir: Option<&Path>) -> anyhow::Result<Arc<dyn Embedder>> {
    anyhow::bail!("this build has no neural embedder: rebuild with the `neural` feature")
}

/// `--data-dir`, else $VECTOR_SERVICE_DATA_DIR, else $XDG_DATA_HOME/vector-service, else
/// ~/.local/share/vector-service.
pub fn data_dir(global: &Global) -> PathBuf {
    if let Some(dir) = &global.data_dir {
        return dir.clone();
    }
    if let Some(dir) = std::env::var_os("VECTOR_SERVICE_DATA_DIR") {
        return dir.into();
    }
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data_home.join("vector-service")
}

/// The database `--database` names, else SQLite files in the data directory.
fn database(global: &Global) -> DatabaseSpec {
    global
        .database
        .clone()
        .unwrap_or_else(|| DatabaseSpec::Sqlite(data_dir(global)))
}

/// `tenant`'s SQLite file in `dir`, with the configured embedder and retrieval;
/// `connections` bounds its connections.
fn open_sqlite(
    global: &Global,
    dir: &Path,
    tenant: &str,
    connections: u32,
) -> anyhow::Result<Arc<dyn Store>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{tenant}.sqlite3"));
    Ok(Arc::new(
        SqliteStore::open(&path, embedder(global)?)?
            .with_connections(connections as usize)
            .with_search_mode(SearchMode::from(global.retrieval))
            .with_hit_copy_budget((global.hit_copies_mib as usize) << 20)
            .with_wal_watch(!global.no_wal_watch),
    ))
}

/// The store of `tenant` with the configured embedder and retrieval, for one command;
/// `connections` bounds its connections.
pub fn open_store(
    global: &Global,
    tenant: &str,
    connections: u32,
) -> anyhow::Result<Arc<dyn Store>> {
    match database(global) {
        DatabaseSpec::Sqlite(dir) => open_sqlite(global, &dir, tenant, connections),
        DatabaseSpec::Postgres(url) => Ok(Arc::new(
            PostgresStore::connect(&url, tenant, embedder(global)?, connections)?
                .with_search_mode(SearchMode::from(global.retrieval)),
        )),
    }
}

/// How a server opens its tenants' stores: a SQLite file each, or a schema each in one
/// PostgreSQL database over one pool the whole server shares, so the connections a host holds
/// do not grow with its tenants.
pub struct ServerStores {
    global: Global,
    backing: Backing,
}

enum Backing {
    Sqlite(PathBuf),
    Postgres(Arc<PostgresPool>),
}

/// Longest wait for a shared pool's connection when opening a tenant.
const POOL_CHECKOUT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl ServerStores {
    /// The server's stores; with PostgreSQL, a pool of at most `postgres_pool_size`
    /// connections, none made until a tenant needs one.
    pub fn new(global: &Global, postgres_pool_size: u32) -> anyhow::Result<Self> {
        let backing = match database(global) {
            DatabaseSpec::Sqlite(dir) => Backing::Sqlite(dir),
            DatabaseSpec::Postgres(url) => Backing::Postgres(Arc::new(PostgresPool::new(
                &url,
                postgres_pool_size,
                POOL_CHECKOUT_TIMEOUT,
            )?)),
        };
        Ok(Self {
            global: global.clone(),
            backing,
        })
    }

    /// `tenant`'s store; `connections` bounds a SQLite store's own connections.
    pub fn open(&self, tenant: &str, connections: u32) -> anyhow::Result<Arc<dyn Store>> {
        match &self.backing {
            Backing::Sqlite(dir) => open_sqlite(&self.global, dir, tenant, connections),
            Backing::Postgres(pool) => Ok(Arc::new(
                PostgresStore::open(pool, tenant, embedder(&self.global)?)?
                    .with_search_mode(SearchMode::from(self.global.retrieval)),
            )),
        }
    }
}

/// The tenant's store, and what is needed to run the component over it.
pub struct Tenant {
    /// Its database.
    pub store: Arc<dyn Store>,
    plugin: Arc<Plugin>,
    /// Its metrics (printed by `--metrics`).
    pub telemetry: Telemetry,
    config: ServiceConfig,
}

impl Tenant {
    /// The tenant named by `--tenant`, with the built-in component.
    pub fn open(global: &Global) -> anyhow::Result<Self> {
        let store = open_store(global, &global.tenant, 2)?;
        // A command reads or writes what may be anywhere in the file: a damaged one is refused
        // whole, with the same kind the server answers, rather than half read or written into.
        if let Err(error) = store.check_integrity() {
            let fault = store.fault().unwrap_or(StoreFault::Damaged);
            return Err(CommandFailed {
                failure: Failure::new(fault.kind(), format!("{fault} ({error})")),
                answer: None,
            }
            .into());
        }
        Ok(Self {
            store,
            plugin: Arc::new(Plugin::builtin()?),
            telemetry: Telemetry::new(),
            config: ServiceConfig {
                tenant: global.tenant.clone(),
                ..ServiceConfig::default()
            },
        })
    }

    /// The component over the tenant's store, optionally with another embedding store in front.
    pub fn service(&self, embedding_store: Option<Arc<dyn EmbeddingStore>>) -> VectorService {
        let mut backends = Backends::store(self.store.clone());
        if let Some(embedding_store) = embedding_store {
            backends.embedding_store = embedding_store;
        }
        VectorService::new(
            self.plugin.clone(),
            backends,
            self.telemetry.clone(),
            self.config.clone(),
        )
    }

    /// Records without a current embedding (what a backfill has to do).
    pub fn pending_records(&self, databases: &[String]) -> anyhow::Result<u64> {
        let stats = self.store.stats()?;
        Ok(stats
            .databases
            .iter()
            .filter(|(db, _, _)| databases.is_empty() || databases.contains(db))
            .map(|(_, records, embedded)| records.saturating_sub(*embedded))
            .sum())
    }
}
