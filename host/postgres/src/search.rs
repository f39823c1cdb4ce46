//! Search: the modes' rankings over `tsvector` and pgvector, and the hits read back.

use pgvector::Vector;
use vector_service_runtime::api::{BackendError, BackendHit, BackendHits};
use vector_service_runtime::backends::ranking::{
    query_words, relative_to_best, search_by_mode, Rankings, SearchMode,
};
use vector_service_runtime::backends::Retriever;

use crate::{PostgresStore, EF_SEARCH};

impl Rankings for PostgresStore {
    fn search_mode(&self) -> SearchMode {
        self.search_mode
    }

    fn lexical_search(
        &self,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Result<BackendHits, BackendError> {
        let _span = vector_service_runtime::work_span!(
            "store.sql",
            "db.system" = "postgresql",
            "db.operation.name" = "lexical search",
            top_k
        )
        .entered();
        // Any of the words (letters and digits only, so no tsquery syntax leaks in).
        let words: Vec<&str> = query_words(query).collect();
        if words.is_empty() {
            return Ok(BackendHits {
                hits: Vec::new(),
                confidence: None,
            });
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
        // ts_rank has no scale that holds across corpora (it knows no document frequencies),
        // so the confidence is left to the guest: the best relative score.
        Ok(BackendHits {
            hits,
            confidence: None,
        })
    }

    fn vector_search(
        &self,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Result<Vec<BackendHit>, BackendError> {
        let _span = vector_service_runtime::work_span!(
            "store.sql",
            "db.system" = "postgresql",
            "db.operation.name" = "vector search",
            top_k
        )
        .entered();
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

pub(crate) fn hit(row: &postgres::Row, reason: &str) -> BackendHit {
    BackendHit::new(
        row.get(0),
        row.get(1),
        row.get(3),
        reason.into(),
        row.get(2),
    )
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
