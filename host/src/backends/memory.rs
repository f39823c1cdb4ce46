//! In-memory implementations of every backend trait, in one store: records with their
//! embeddings (searched by cosine similarity over the hashing embedder), the primary metrics
//! tables and the vector metrics table. For examples, tests and benchmarks; nothing persists.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use super::hashing_embedder;
use super::{
    EmbeddingStore, MetricsDb, PatchOutcomeRow, Record, Retriever, RetrieverStats, VectorMetricsDb,
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
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            tables: RwLock::default(),
            primary_available: AtomicBool::new(true),
        }
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Register an (empty) embeddable database.
    pub fn register_database(&self, db: &str) {
        self.write().databases.entry(db.to_string()).or_default();
    }

    /// Insert or replace a record; a changed text makes its embedding stale.
    pub fn upsert(&self, db: &str, record: Record) {
        let mut tables = self.write();
        let records = tables.databases.entry(db.to_string()).or_default();
        match records.get_mut(&record.id) {
            Some(stored) => stored.record = record,
            None => {
                records.insert(
                    record.id.clone(),
                    StoredRecord {
                        record,
                        embedding: None,
                    },
                );
            }
        }
    }

    /// Mark the primary metrics DB (un)available, as an operator taking it down would.
    pub fn set_primary_available(&self, available: bool) {
        self.primary_available.store(available, Ordering::SeqCst);
    }

    pub fn patch_outcomes(&self) -> Vec<PatchOutcomeRow> {
        self.read().patch_outcomes.clone()
    }

    pub fn retriever_stats(&self) -> BTreeMap<String, RetrieverStats> {
        self.read().retriever_stats.clone()
    }

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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Retriever for MemoryStore {
    fn search(
        &self,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Result<BackendHits, BackendError> {
        let query_vector = hashing_embedder::embed(query);
        let tables = self.read();
        let mut scored: Vec<(f64, &Record)> = tables
            .databases
            .values()
            .flat_map(|records| records.values())
            .filter(|stored| origins.is_empty() || origins.contains(&stored.record.origin_db))
            .filter_map(|stored| {
                let (vector, _) = stored.embedding.as_ref()?;
                Some((
                    hashing_embedder::cosine(&query_vector, vector),
                    &stored.record,
                ))
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
        let hits = scored
            .into_iter()
            .take(top_k as usize)
            .map(|(score, record)| BackendHit {
                origin_db: record.origin_db.clone(),
                id: record.id.clone(),
                score,
                reason: "cosine similarity".to_string(),
                metadata: record.metadata.to_string(),
            })
            .collect();
        Ok(BackendHits {
            hits,
            confidence: None,
        })
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
        let ts_ms = now_ms();
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
