//! The backends the component's imports are served by. Each is a narrow trait so that storage
//! can be swapped without the WIT layer knowing which database is underneath: the in-memory
//! store and the hashing embedder live here; SQLite (`vector-service-sqlite`), PostgreSQL
//! (`vector-service-postgres`) and the HTTP and MiniLM embedders are crates of their own that
//! implement these traits.

use std::sync::Arc;

pub mod backend_hit;
pub mod byte_codec;
pub mod embedder;
pub mod hashing_embedder;
pub mod lexical_index;
pub mod memory;
pub mod ranking;
pub mod records;

pub use embedder::{Embedder, HashingEmbedder};
pub use lexical_index::{LexicalAnswer, LexicalHit, LexicalIndex};
pub(crate) use ranking::query_words;
pub use ranking::SearchMode;
pub use records::{rates, PatchOutcomeRow, Record, RetrieverStats, StoreStats};

use crate::api::{
    BackendError, BackendHits, EmbedReport, PatchOutcome, Rates, VectorOutcome, VectorRef,
};

/// `retriever-backend`: nearest records for a query.
pub trait Retriever: Send + Sync {
    /// Top `top_k` hits for `query`, restricted to `origins` unless that is empty.
    fn search(
        &self,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Result<BackendHits, BackendError>;

    /// For a store that is also the tenant's [`ChangeClock`]: [`search`](Self::search), and
    /// the clock's generation read before any of the data, in a statement the search runs
    /// anyway (the result cache needs one per call; this saves the statement of its own).
    /// `None`, having done nothing, from a store that cannot (the default): the caller then
    /// reads the clock itself first.
    fn search_reading_generation(
        &self,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Option<Result<(BackendHits, u64), BackendError>> {
        let _ = (query, top_k, origins);
        None
    }
}

/// `metrics-db`: the primary metrics database.
pub trait MetricsDb: Send + Sync {
    /// Whether writes can go here now; when false the component uses the vector metrics DB.
    fn available(&self) -> bool;
    /// Write one patch outcome atomically: every contributor row and retriever statistic, or nothing.
    fn log_patch_outcome(&self, outcome: &PatchOutcome) -> Result<(), BackendError>;
}

/// `vector-metrics-db`: per-vector outcomes and reliability rates.
pub trait VectorMetricsDb: Send + Sync {
    /// Record every outcome atomically.
    fn record_outcomes(&self, outcomes: &[VectorOutcome]) -> Result<(), BackendError>;
    /// Rates per vector, in the order asked. A store that is also the primary metrics DB
    /// counts the outcomes recorded there too: each outcome lives in exactly one of the two.
    fn vector_rates(&self, vectors: &[VectorRef]) -> Result<Vec<Option<Rates>>, BackendError>;
    /// Rates per origin database, in the order asked (counted as `vector_rates` counts).
    fn origin_rates(&self, origins: &[String]) -> Result<Vec<Option<Rates>>, BackendError>;
}

/// `embedding-store`: embeddable databases and their missing embeddings.
pub trait EmbeddingStore: Send + Sync {
    /// Every embeddable database, in a stable order.
    fn databases(&self) -> Result<Vec<String>, BackendError>;
    /// Up to `limit` ids (ascending, after `after`) of records lacking an up-to-date embedding.
    fn pending(
        &self,
        db: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, BackendError>;
    /// Embed and store the given records atomically.
    fn embed(&self, db: &str, ids: &[String]) -> Result<EmbedReport, BackendError>;
}

/// What lets the result cache stay coherent: a number that changes whenever anything an answer
/// depends on is written (records, embeddings, outcomes in either metrics database), by this
/// process or by any other sharing the store. Cached answers carry the generation they were
/// computed at and are not returned once it moved.
pub trait ChangeClock: Send + Sync {
    /// The current generation; reading it must cost little and not grow with the data, since
    /// every cached lookup reads it once.
    fn generation(&self) -> Result<u64, BackendError>;
}

/// A lasting fault of a store: what it found about its own files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFault {
    /// The file is damaged: reads may be wrong, writes are refused, until it is restored.
    Damaged,
    /// The disk was full at the last write: reads work, writes fail until there is room.
    Full,
}

impl StoreFault {
    /// The fault's stable name (`store-damaged`, `storage-full`): error kinds and metric labels.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Damaged => "store-damaged",
            Self::Full => "storage-full",
        }
    }
}

impl std::fmt::Display for StoreFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Damaged => "its database file is damaged: writes are refused until it is restored from a backup",
            Self::Full => "the disk under its store is full: writes fail until there is room",
        })
    }
}

/// A tenant's whole store (SQLite file or PostgreSQL schema): every import's backend plus what
/// the CLI and the server do around calls (ingest, delete, counts, reading outcomes back).
pub trait Store: Retriever + MetricsDb + VectorMetricsDb + EmbeddingStore + ChangeClock {
    /// Insert or replace records of `db` in one transaction; returns how many were new or
    /// changed. A changed text makes the record's embedding stale.
    fn upsert(&self, db: &str, records: &[Record]) -> Result<usize, BackendError>;
    /// Delete records of `db` (their embeddings go with them); returns how many existed.
    fn delete(&self, db: &str, ids: &[String]) -> Result<usize, BackendError>;
    /// The record `id` of `db`, if there is one: one lookup by key, whatever the store holds.
    fn record(&self, db: &str, id: &str) -> Result<Option<Record>, BackendError>;
    /// Register an (empty) embeddable database.
    fn register_database(&self, db: &str) -> Result<(), BackendError>;
    /// Record, embedding and outcome counts.
    fn stats(&self) -> Result<StoreStats, BackendError>;
    /// Every `patch_outcomes` row, oldest first.
    fn patch_outcomes(&self) -> Result<Vec<PatchOutcomeRow>, BackendError>;
    /// Wins and regrets per origin, by origin.
    fn retriever_stats(&self) -> Result<Vec<(String, RetrieverStats)>, BackendError>;
    /// Whether the store can serve now, by a probe whose cost does not grow with the data
    /// (readiness checks call it periodically).
    fn health(&self) -> Result<(), BackendError> {
        Ok(())
    }
    /// A lasting fault the store found by itself (a statement that met a damaged file or a
    /// full disk, or [`Store::check_integrity`]): read from a flag, no I/O, so a server can
    /// report it the moment it is found. A damaged store refuses writes.
    fn fault(&self) -> Option<StoreFault> {
        None
    }
    /// Check the whole store for damage, marking it damaged ([`Store::fault`]) when it is:
    /// costs a read of everything, so it runs where that is paid anyway (a store's open, a
    /// command-line run), never per request.
    fn check_integrity(&self) -> Result<(), BackendError> {
        Ok(())
    }
    /// Whether a search or a rates read answers now from process memory and local files
    /// alone, in bounded time: no network, no model to run, no index to build first. The
    /// server then runs such calls on its async workers instead of handing them to its
    /// blocking pool. A store that cannot tell says no (the default).
    fn serves_reads_in_process(&self) -> bool {
        false
    }
    /// Bytes the store takes in its database now (its files, or its schema's tables and
    /// indexes), for a storage quota; one cheap look (file sizes, one catalog query), not a
    /// walk of the data. Stores with nothing on disk say 0.
    fn storage_bytes(&self) -> Result<u64, BackendError> {
        Ok(0)
    }
    /// Bytes the store holds in this process (indexes, copies of records; not the database's
    /// own page cache), read from counters without I/O or waiting: a server that keeps many
    /// stores open charges it to its memory budget. Stores that hold nothing say 0.
    fn resident_bytes(&self) -> usize {
        0
    }
    /// Descriptors the store holds open now (its files, connections of its own), from
    /// counters: a server keeping many stores open holds their sum under its descriptor
    /// limit. Stores holding none of their own (in memory, or over a pool shared by many
    /// stores) say 0.
    fn descriptors(&self) -> usize {
        0
    }
    /// Bring indexes kept outside the database (vector, lexical) up to date; returns the
    /// vector index changes applied. Stores whose database maintains its own indexes have
    /// nothing to do.
    fn sync_index(&self) -> Result<usize, BackendError> {
        Ok(0)
    }
}

/// One implementation per import; usually several slots share one store.
#[derive(Clone)]
pub struct Backends {
    /// Serves `retriever-backend`.
    pub retriever: Arc<dyn Retriever>,
    /// Serves `metrics-db`.
    pub metrics_db: Arc<dyn MetricsDb>,
    /// Serves `vector-metrics-db`.
    pub vector_metrics_db: Arc<dyn VectorMetricsDb>,
    /// Serves `embedding-store`.
    pub embedding_store: Arc<dyn EmbeddingStore>,
    /// Tells cached answers from stale ones; it must cover every slot above. `None` (backends
    /// assembled by hand that cannot tell) leaves the cache with its expiry alone.
    pub change_clock: Option<Arc<dyn ChangeClock>>,
}

impl Backends {
    /// Whether `retriever` is the change clock itself (one store serving both), so that its
    /// [`Retriever::search_reading_generation`] reads the generation the cache checks.
    pub(crate) fn retriever_is_change_clock(&self) -> bool {
        self.change_clock.as_ref().is_some_and(|clock| {
            std::ptr::addr_eq(Arc::as_ptr(clock), Arc::as_ptr(&self.retriever))
        })
    }

    /// Every slot served by one in-memory store.
    pub fn memory(store: Arc<memory::MemoryStore>) -> Self {
        Self::single(store)
    }

    /// Every slot served by one store that implements them all (memory, SQLite, ...).
    pub fn single<S>(store: Arc<S>) -> Self
    where
        S: Retriever + MetricsDb + VectorMetricsDb + EmbeddingStore + ChangeClock + 'static,
    {
        Self {
            retriever: store.clone(),
            metrics_db: store.clone(),
            vector_metrics_db: store.clone(),
            embedding_store: store.clone(),
            change_clock: Some(store),
        }
    }

    /// Every slot served by one tenant store of either kind.
    pub fn store(store: Arc<dyn Store>) -> Self {
        Self {
            retriever: store.clone(),
            metrics_db: store.clone(),
            vector_metrics_db: store.clone(),
            embedding_store: store.clone(),
            change_clock: Some(store),
        }
    }
}
