//! In-memory implementations of every backend trait, in one store: records with their
//! embeddings (the hashing embedder's), the primary metrics tables and the vector metrics
//! table. Searches rank by cosine similarity (the default), BM25, or both fused, by exhaustive
//! scans. For examples, tests and benchmarks; nothing persists, and it passes the same
//! conformance suite as the SQL stores.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::ranking::{query_words, relative_to_best, search_by_mode, Rankings, SearchMode};
use super::records::unix_ms;
use super::{
    hashing_embedder, Embedder, EmbeddingStore, HashingEmbedder, MetricsDb, PatchOutcomeRow,
    Record, Retriever, RetrieverStats, Store, StoreStats, VectorMetricsDb,
};
use crate::api::{
    BackendError, BackendHit, BackendHits, EmbedReport, PatchOutcome, Rates, VectorOutcome,
    VectorRef,
};

#[derive(Debug)]
struct StoredRecord {
    record: Record,
    /// The vector and the text it was computed from (a changed text makes it stale).
    embedding: Option<(Vec<f32>, String)>,
}

impl StoredRecord {
    fn is_current(&self) -> bool {
        matches!(&self.embedding, Some((_, text)) if *text == self.record.text)
    }
}

#[derive(Debug, Default)]
struct Tables {
    databases: BTreeMap<String, BTreeMap<String, StoredRecord>>,
    patch_outcomes: Vec<PatchOutcomeRow>,
    retriever_stats: BTreeMap<String, RetrieverStats>,
    vector_outcomes: Vec<VectorOutcome>,
}

/// Every backend in memory. Clone an `Arc<MemoryStore>` into each backend slot.
#[derive(Debug)]
pub struct MemoryStore {
    tables: RwLock<Tables>,
    primary_available: AtomicBool,
    mode: SearchMode,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            tables: RwLock::default(),
            primary_available: AtomicBool::new(true),
            mode: SearchMode::Vector,
        }
    }
}

impl MemoryStore {
    /// An empty store that searches by cosine similarity.
    pub fn new() -> Self {
        Self::default()
    }

    /// Search by `mode` instead.
    pub fn with_search_mode(mut self, mode: SearchMode) -> Self {
        self.mode = mode;
        self
    }

    /// Insert or replace one record (see [`Store::upsert`]); for tests and examples.
    pub fn insert(&self, db: &str, record: Record) {
        self.upsert_one(&mut self.write(), db, record);
    }

    /// Insert or replace; whether the record is new or changed. A changed text makes its
    /// embedding stale.
    fn upsert_one(&self, tables: &mut Tables, db: &str, record: Record) -> bool {
        let records = tables.databases.entry(db.to_string()).or_default();
        match records.get_mut(&record.id) {
            Some(stored) if stored.record == record => false,
            Some(stored) => {
                stored.record = record;
                true
            }
            None => {
                records.insert(
                    record.id.clone(),
                    StoredRecord {
                        record,
                        embedding: None,
                    },
                );
                true
            }
        }
    }

    /// Mark the primary metrics DB (un)available, as an operator taking it down would.
    pub fn set_primary_available(&self, available: bool) {
        self.primary_available.store(available, Ordering::SeqCst);
    }

    /// Wins and regrets per origin, keyed by origin.
    pub fn retriever_stats_by_origin(&self) -> BTreeMap<String, RetrieverStats> {
        self.read().retriever_stats.clone()
    }

    /// Every vector outcome, oldest first.
    pub fn vector_outcomes(&self) -> Vec<VectorOutcome> {
        self.read().vector_outcomes.clone()
    }

    /// How many records of `db` have an up-to-date embedding.
    pub fn embedded_count(&self, db: &str) -> usize {
        self.read().databases.get(db).map_or(0, |records| {
            records.values().filter(|r| r.is_current()).count()
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Tables> {
        self.tables
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Tables> {
        self.tables
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// BM25's usual parameters.
const BM25_K1: f64 = 1.2;
const BM25_B: f64 = 0.75;

/// A record's words, lowercased, as the lexical ranking counts them.
fn words(text: &str) -> Vec<String> {
    query_words(text).map(str::to_lowercase).collect()
}

/// The best `top_k` of `scored` (ties by id), as hits with `reason`.
fn top_hits(mut scored: Vec<(f64, &Record)>, top_k: u32, reason: &str) -> Vec<BackendHit> {
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
    scored
        .into_iter()
        .take(top_k as usize)
        .map(|(score, record)| BackendHit {
            origin_db: record.origin_db.clone(),
            id: record.id.clone(),
            score,
            reason: reason.to_string(),
            metadata: record.metadata.to_string(),
        })
        .collect()
}

impl Tables {
    fn records<'a>(&'a self, origins: &'a [String]) -> impl Iterator<Item = &'a StoredRecord> {
        self.databases
            .values()
            .flat_map(|records| records.values())
            .filter(|stored| origins.is_empty() || origins.contains(&stored.record.origin_db))
    }
}

impl Rankings for MemoryStore {
    fn search_mode(&self) -> SearchMode {
        self.mode
    }

    /// BM25 over every record (all origins count for document frequencies, as in FTS5).
    fn lexical_search(
        &self,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Result<Vec<BackendHit>, BackendError> {
        let mut terms = words(query);
        terms.sort();
        terms.dedup();
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let tables = self.read();
        let documents: Vec<(&Record, Vec<String>)> = tables
            .records(&[])
            .map(|stored| (&stored.record, words(&stored.record.text)))
            .collect();
        let count = documents.len() as f64;
        let average = documents.iter().map(|(_, w)| w.len()).sum::<usize>() as f64 / count.max(1.0);
        let idf: HashMap<&str, f64> = terms
            .iter()
            .map(|term| {
                let with = documents.iter().filter(|(_, w)| w.contains(term)).count() as f64;
                (
                    term.as_str(),
                    ((count - with + 0.5) / (with + 0.5) + 1.0).ln(),
                )
            })
            .collect();
        let scored = documents
            .iter()
            .filter(|(record, _)| origins.is_empty() || origins.contains(&record.origin_db))
            .filter_map(|(record, document)| {
                let length = document.len() as f64 / average.max(1.0);
                let score: f64 = terms
                    .iter()
                    .map(|term| {
                        let frequency = document.iter().filter(|w| *w == term).count() as f64;
                        idf[term.as_str()] * frequency * (BM25_K1 + 1.0)
                            / (frequency + BM25_K1 * (1.0 - BM25_B + BM25_B * length))
                    })
                    .sum();
                (score > 0.0).then_some((score, *record))
            })
            .collect();
        let mut hits = top_hits(scored, top_k, "bm25");
        relative_to_best(&mut hits);
        Ok(hits)
    }

    /// Cosine similarity over every record with an embedding.
    fn vector_search(
        &self,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Result<Vec<BackendHit>, BackendError> {
        let query_vector = hashing_embedder::embed(query);
        let tables = self.read();
        let scored = tables
            .records(origins)
            .filter_map(|stored| {
                let (vector, _) = stored.embedding.as_ref()?;
                Some((
                    hashing_embedder::cosine(&query_vector, vector),
                    &stored.record,
                ))
            })
            .collect();
        Ok(top_hits(scored, top_k, "cosine similarity"))
    }
}

impl Retriever for MemoryStore {
    fn search(
        &self,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Result<BackendHits, BackendError> {
        search_by_mode(self, query, top_k, origins)
    }
}

impl MetricsDb for MemoryStore {
    fn available(&self) -> bool {
        self.primary_available.load(Ordering::SeqCst)
    }

    fn log_patch_outcome(&self, outcome: &PatchOutcome) -> Result<(), BackendError> {
        if !self.available() {
            return Err(BackendError::Unavailable(
                "primary metrics db is down".to_string(),
            ));
        }
        let ts_ms = unix_ms();
        let mut tables = self.write();
        for row in &outcome.contributors {
            tables.patch_outcomes.push(PatchOutcomeRow {
                patch_id: outcome.patch_id.clone(),
                session_id: outcome.session_id.clone(),
                origin_db: row.origin_db.clone(),
                vector_id: row.vector_id.clone(),
                success: outcome.success,
                reverted: outcome.reverted,
                label: outcome.label.clone(),
                roi_tag: outcome.roi_tag.clone(),
                ts_ms,
            });
        }
        for origin in &outcome.credited_origins {
            let stats = tables.retriever_stats.entry(origin.clone()).or_default();
            if outcome.success {
                stats.wins += 1;
            } else {
                stats.regrets += 1;
            }
        }
        Ok(())
    }
}

/// Win and regret rates over a set of outcomes; `None` when there are none.
fn rates<'a>(outcomes: impl Iterator<Item = &'a VectorOutcome>) -> Option<Rates> {
    let (samples, wins, regrets) = outcomes.fold((0u64, 0u64, 0u64), |(n, w, r), o| {
        (n + 1, w + u64::from(o.win), r + u64::from(o.regret))
    });
    super::rates(samples, wins, regrets)
}

impl VectorMetricsDb for MemoryStore {
    fn record_outcomes(&self, outcomes: &[VectorOutcome]) -> Result<(), BackendError> {
        self.write().vector_outcomes.extend_from_slice(outcomes);
        Ok(())
    }

    fn vector_rates(&self, vectors: &[VectorRef]) -> Result<Vec<Option<Rates>>, BackendError> {
        let tables = self.read();
        Ok(vectors
            .iter()
            .map(|vector| {
                rates(
                    tables
                        .vector_outcomes
                        .iter()
                        .filter(|o| o.vector == *vector),
                )
            })
            .collect())
    }

    fn origin_rates(&self, origins: &[String]) -> Result<Vec<Option<Rates>>, BackendError> {
        let tables = self.read();
        Ok(origins
            .iter()
            .map(|origin| {
                rates(
                    tables
                        .vector_outcomes
                        .iter()
                        .filter(|o| o.vector.origin_db == *origin),
                )
            })
            .collect())
    }
}

impl EmbeddingStore for MemoryStore {
    fn databases(&self) -> Result<Vec<String>, BackendError> {
        Ok(self.read().databases.keys().cloned().collect())
    }

    fn pending(
        &self,
        db: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, BackendError> {
        let tables = self.read();
        let records = tables
            .databases
            .get(db)
            .ok_or_else(|| BackendError::Failed(format!("unknown database {db:?}")))?;
        Ok(records
            .values()
            .filter(|stored| after.is_none_or(|after| stored.record.id.as_str() > after))
            .filter(|stored| !stored.is_current())
            .take(limit as usize)
            .map(|stored| stored.record.id.clone())
            .collect())
    }

    fn embed(&self, db: &str, ids: &[String]) -> Result<EmbedReport, BackendError> {
        let mut tables = self.write();
        let records = tables
            .databases
            .get_mut(db)
            .ok_or_else(|| BackendError::Failed(format!("unknown database {db:?}")))?;
        let mut report = EmbedReport {
            embedded: 0,
            skipped: 0,
        };
        for id in ids {
            match records.get_mut(id) {
                Some(stored) if !stored.record.text.trim().is_empty() => {
                    let vector = hashing_embedder::embed(&stored.record.text);
                    stored.embedding = Some((vector, stored.record.text.clone()));
                    report.embedded += 1;
                }
                _ => report.skipped += 1,
            }
        }
        Ok(report)
    }
}

impl Store for MemoryStore {
    fn upsert(&self, db: &str, records: &[Record]) -> Result<usize, BackendError> {
        let mut tables = self.write();
        Ok(records
            .iter()
            .filter(|record| self.upsert_one(&mut tables, db, (*record).clone()))
            .count())
    }

    fn delete(&self, db: &str, ids: &[String]) -> Result<usize, BackendError> {
        let mut tables = self.write();
        let Some(records) = tables.databases.get_mut(db) else {
            return Ok(0);
        };
        Ok(ids
            .iter()
            .filter(|id| records.remove(*id).is_some())
            .count())
    }

    fn register_database(&self, db: &str) -> Result<(), BackendError> {
        self.write().databases.entry(db.to_string()).or_default();
        Ok(())
    }

    fn stats(&self) -> Result<StoreStats, BackendError> {
        let tables = self.read();
        Ok(StoreStats {
            databases: tables
                .databases
                .iter()
                .map(|(name, records)| {
                    let current = records.values().filter(|r| r.is_current()).count();
                    (name.clone(), records.len() as u64, current as u64)
                })
                .collect(),
            patch_outcomes: tables.patch_outcomes.len() as u64,
            vector_outcomes: tables.vector_outcomes.len() as u64,
            embedding_version: HashingEmbedder.version().to_string(),
        })
    }

    fn patch_outcomes(&self) -> Result<Vec<PatchOutcomeRow>, BackendError> {
        Ok(self.read().patch_outcomes.clone())
    }

    fn retriever_stats(&self) -> Result<Vec<(String, RetrieverStats)>, BackendError> {
        Ok(self.read().retriever_stats.clone().into_iter().collect())
    }
}
