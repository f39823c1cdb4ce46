//! How searches rank, shared by the SQL backends: the search modes, reciprocal rank fusion for
//! hybrid search, scores relative to the best hit, and query words safe to hand to a
//! full-text engine.

use crate::api::{BackendError, BackendHit, BackendHits};

/// How `search` ranks records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SearchMode {
    /// BM25 over the record text. The default: on BEIR SciFact it scores nDCG@10 0.682
    /// against 0.373 for the hashing embedder (BENCHMARKS.md). Needs no backfill.
    #[default]
    Lexical,
    /// Cosine similarity over the current embeddings (the vector index).
    Vector,
    /// Both, fused by reciprocal rank (RRF, k = 60). Helps with a neural embedder (SciFact
    /// nDCG@10 in BENCHMARKS.md); hurts with the hashing embedder, whose vectors add little
    /// that BM25 does not already know.
    Hybrid,
}

/// RRF's rank offset (the usual 60).
const RRF_K: f64 = 60.0;

/// Fuse rankings by reciprocal rank; scores are relative to the best fused score.
pub fn reciprocal_rank_fusion(rankings: [Vec<BackendHit>; 2], top_k: usize) -> Vec<BackendHit> {
    let mut fused: Vec<(f64, BackendHit)> = Vec::new();
    for ranking in rankings {
        for (rank, hit) in ranking.into_iter().enumerate() {
            let score = 1.0 / (RRF_K + rank as f64 + 1.0);
            match fused
                .iter_mut()
                .find(|(_, seen)| seen.id == hit.id && seen.origin_db == hit.origin_db)
            {
                Some((total, seen)) => {
                    *total += score;
                    seen.reason = "bm25 + cosine (rrf)".into();
                }
                None => fused.push((score, hit)),
            }
        }
    }
    fused.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
    fused.truncate(top_k);
    let best = fused.first().map_or(1.0, |(score, _)| *score);
    fused
        .into_iter()
        .map(|(score, mut hit)| {
            hit.score = score / best;
            hit
        })
        .collect()
}

/// BM25 scores relative to the query's best hit (1.0), in order. Absolute BM25 scores depend
/// on the corpus (on small tables they are tiny whatever the match); relative scores keep the
/// retriever's threshold meaningful everywhere.
pub fn relative_to_best(hits: &mut [BackendHit]) {
    let best = hits.first().map_or(0.0, |hit| hit.score);
    for hit in hits.iter_mut() {
        hit.score = if best > 0.0 {
            (hit.score / best).clamp(0.0, 1.0)
        } else {
            1.0
        };
    }
}

/// The query's words: runs of letters and digits, so no query syntax of any engine leaks in.
pub fn query_words(query: &str) -> impl Iterator<Item = &str> {
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
}

/// The two rankings a SQL backend provides; [`search_by_mode`] combines them.
pub trait Rankings {
    /// How this store ranks searches.
    fn search_mode(&self) -> SearchMode;
    /// BM25-like full-text ranking, scores relative to the best hit, with the store's
    /// confidence in the best when it can tell one that does not depend on the corpus.
    fn lexical_search(
        &self,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Result<BackendHits, BackendError>;
    /// Cosine similarity over the current embeddings.
    fn vector_search(
        &self,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Result<Vec<BackendHit>, BackendError>;
}

/// `retriever-backend.search` for a store with both rankings, by its search mode.
pub fn search_by_mode(
    store: &impl Rankings,
    query: &str,
    top_k: u32,
    origins: &[String],
) -> Result<BackendHits, BackendError> {
    match store.search_mode() {
        SearchMode::Lexical => store.lexical_search(query, top_k, origins),
        // Cosine similarity is absolute already: the guest takes the best as the confidence.
        SearchMode::Vector => Ok(BackendHits {
            hits: store.vector_search(query, top_k, origins)?,
            confidence: None,
        }),
        SearchMode::Hybrid => {
            // Each side looks deeper than top_k so fusion can promote what both agree on.
            let depth = top_k.saturating_mul(4).max(50);
            let lexical = store.lexical_search(query, depth, origins)?;
            let vector = store.vector_search(query, depth, origins)?;
            // Fused scores are ranks; the confidence is the better side's own.
            let best_cosine = vector.first().map(|hit| hit.score);
            let confidence = lexical
                .confidence
                .into_iter()
                .chain(best_cosine)
                .reduce(f64::max);
            Ok(BackendHits {
                hits: reciprocal_rank_fusion([lexical.hits, vector], top_k as usize),
                confidence,
            })
        }
    }
}
