//! In-memory implementations of every backend trait, in one store: records with their
//! embeddings (the hashing embedder's), the primary metrics tables and the vector metrics
//! table. Searches rank by cosine similarity (the default, an exhaustive scan), BM25 (the same
//! lexical index the SQLite store keeps), or both fused. For examples, tests and benchmarks;
//! nothing persists, and it passes the same conformance suite as the SQL stores.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::lexical_index::LexicalIndex;
use super::ranking::{relative_to_best, search_by_mode, Rankings, SearchMode};
use super::records::unix_ms;
use super::{
    hashing_embedder, ChangeClock, Embedder, EmbeddingStore, HashingEmbedder, MetricsDb,
    PatchOutcomeRow, Record, Retriever, RetrieverStats, Store, StoreStats, VectorMetricsDb,
};
use crate::api::{
    BackendError, BackendHit, BackendHits, EmbedReport, PatchOutcome, Rates, VectorOutcome,
    VectorRef,
};

#[derive(Debug)]
struct StoredRecord {
    /// The record's key in the lexical index.
    key: u64,
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
    /// BM25 over every record's text, kept in step by `upsert_one` and `delete`.
    text_index: LexicalIndex,
    /// Each lexical-index key's database and id.
    keyed: HashMap<u64, (String, String)>,
    next_key: u64,
    patch_outcomes: Vec<PatchOutcomeRow>,
    retriever_stats: BTreeMap<String, RetrieverStats>,
    vector_outcomes: Vec<VectorOutcome>,
    /// Advanced by every write (see [`ChangeClock`]).
    generation: u64,
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
        self.write().upsert_one(db, record);
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

    /// The tables for a write, which advances the generation.
    fn write(&self) -> RwLockWriteGuard<'_, Tables> {
        let mut tables = self
            .tables
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tables.generation += 1;
        tables
    }
}

/// The best `top_k` of `scored` (ties by id), as hits with `reason`.
fn top_hits(mut scored: Vec<(f64, &Record)>, top_k: u32, reason: &str) -> Vec<BackendHit> {
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
    scored
        .into_iter()
        .take(top_k as usize)
        .map(|(score, record)| {
            BackendHit::from_value(
                record.origin_db.clone(),
                record.id.clone(),
                score,
                reason.to_string(),
                &record.metadata,
            )
        })
        .collect()
}

impl Tables {
    /// Insert or replace; whether the record is new or changed. A changed text makes its
    /// embedding stale.
    fn upsert_one(&mut self, db: &str, record: Record) -> bool {
        let records = self.databases.entry(db.to_string()).or_default();
        let key = match records.get_mut(&record.id) {
            Some(stored) if stored.record == record => return false,
            Some(stored) => {
                stored.record = record.clone();
                stored.key
            }
            None => {
                let key = self.next_key;
                self.next_key += 1;
                self.keyed.insert(key, (db.to_string(), record.id.clone()));
                records.insert(
                    record.id.clone(),
                    StoredRecord {
                        key,
                        record: record.clone(),
                        embedding: None,
                    },
                );
                key
            }
        };
        self.text_index
            .upsert(key, &record.id, &record.origin_db, &record.text);
        true
    }

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

    /// BM25 through the lexical index (all origins count for document frequencies).
    fn lexical_search(
        &self,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Result<BackendHits, BackendError> {
        let tables = self.read();
        let found = tables.text_index.search(query, top_k as usize, origins)?;
        let mut hits: Vec<BackendHit> = found
            .hits
            .into_iter()
            .filter_map(|hit| {
                let (db, id) = tables.keyed.get(&hit.key)?;
                let stored = tables.databases.get(db)?.get(id)?;
                Some(BackendHit::from_value(
                    stored.record.origin_db.clone(),
                    stored.record.id.clone(),
                    hit.score,
                    "bm25".into(),
                    &stored.record.metadata,
                ))
            })
            .collect();
        relative_to_best(&mut hits);
        Ok(BackendHits {
            hits,
            confidence: Some(found.confidence),
        })
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
                contribution: outcome.contribution,
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

impl Tables {
    /// Win and regret rates over every tracked outcome whose vector `matches` (by origin and
    /// id), whichever metrics database recorded it; `None` when there are none.
    fn rates(&self, matches: impl Fn(&str, &str) -> bool) -> Option<Rates> {
        let fallback = self
            .vector_outcomes
            .iter()
            .filter(|o| matches(&o.vector.origin_db, &o.vector.vector_id))
            .map(|o| (o.win, o.regret));
        let primary = self
            .patch_outcomes
            .iter()
            .filter(|row| match (&row.origin_db, &row.vector_id) {
                (Some(origin), Some(id)) => matches(origin, id),
                _ => false,
            })
            .map(|row| (row.success, !row.success));
        let (samples, wins, regrets) = fallback
            .chain(primary)
            .fold((0u64, 0u64, 0u64), |(n, w, r), (win, regret)| {
                (n + 1, w + u64::from(win), r + u64::from(regret))
            });
        super::rates(samples, wins, regrets)
    }
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
            .map(|v| tables.rates(|origin, id| origin == v.origin_db && id == v.vector_id))
            .collect())
    }

    fn origin_rates(&self, origins: &[String]) -> Result<Vec<Option<Rates>>, BackendError> {
        let tables = self.read();
        Ok(origins
            .iter()
            .map(|wanted| tables.rates(|origin, _| origin == wanted))
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

impl ChangeClock for MemoryStore {
    fn generation(&self) -> Result<u64, BackendError> {
        Ok(self.read().generation)
    }
}

impl Store for MemoryStore {
    fn upsert(&self, db: &str, records: &[Record]) -> Result<usize, BackendError> {
        let mut tables = self.write();
        Ok(records
            .iter()
            .filter(|record| tables.upsert_one(db, (*record).clone()))
            .count())
    }

    fn record(&self, db: &str, id: &str) -> Result<Option<Record>, BackendError> {
        let tables = self.read();
        Ok(tables
            .databases
            .get(db)
            .and_then(|records| records.get(id))
            .map(|stored| stored.record.clone()))
    }

    fn delete(&self, db: &str, ids: &[String]) -> Result<usize, BackendError> {
        let tables = &mut *self.write();
        let Some(records) = tables.databases.get_mut(db) else {
            return Ok(0);
        };
        let mut deleted = 0;
        for id in ids {
            if let Some(stored) = records.remove(id) {
                tables.text_index.remove(stored.key);
                tables.keyed.remove(&stored.key);
                deleted += 1;
            }
        }
        Ok(deleted)
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
