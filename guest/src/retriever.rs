//! Retriever.search: validation, one retry (after a backoff when rate limited, with a doubled
//! `k` when the result is weak), a cached earlier result, else a heuristic fallback.

use crate::bindings::exports::vector_service::plugin::retriever::{
    Fallback, SearchRequest, SearchResponse,
};
use crate::bindings::vector_service::plugin::clock;
use crate::bindings::vector_service::plugin::result_cache;
use crate::bindings::vector_service::plugin::retriever_backend::{self, Answer, BackendHit};
use crate::bindings::vector_service::plugin::telemetry::{self, Operation, Sample};
use crate::bindings::vector_service::plugin::types::{Error, Hit};
use crate::instrument::instrumented;
use crate::{bounds, errors};

const DEFAULT_TOP_K: u32 = 5;
const DEFAULT_SIMILARITY_THRESHOLD: f64 = 0.1;
const ATTEMPTS: u32 = 2;

/// The export: one instrumented `Retriever.search` call.
pub fn search(session_id: String, request: SearchRequest) -> Result<SearchResponse, Error> {
    instrumented(
        Operation::RetrieverSearch,
        session_id,
        |response: &SearchResponse| response.hits.len() as u32,
        |session_id| search_in_session(session_id, &request),
    )
}

/// What the search found before it was shaped into a response.
enum Outcome {
    /// The hits, and the host's handle on them for the cache.
    Accepted(Vec<Hit>, Answer),
    Weak {
        had_hits: bool,
        confidence: f64,
    },
}

fn search_in_session(session_id: &str, request: &SearchRequest) -> Result<SearchResponse, Error> {
    let query = bounds::text("query", &request.query)?;
    if query.warning.is_some() {
        telemetry::observe(Sample::InputCut(Operation::RetrieverSearch));
    }
    let top_k = bounds::top_k(request.top_k, DEFAULT_TOP_K)?;
    bounds::names(
        "origins",
        request.origins.iter().map(String::as_str),
        bounds::MAX_LIST_ENTRIES,
    )?;
    let threshold = request
        .similarity_threshold
        .unwrap_or(DEFAULT_SIMILARITY_THRESHOLD);
    if !threshold.is_finite() {
        return Err(errors::malformed(
            "similarity_threshold must be a finite number",
        ));
    }
    let cache_key = cache_key(query.text, &request.origins);
    let respond = |hits, fallback, from_cache| SearchResponse {
        session_id: session_id.to_string(),
        hits,
        fallback,
        from_cache,
        warnings: query.warning.iter().cloned().collect(),
    };

    match attempt_search(query.text, top_k, threshold, &request.origins)? {
        Outcome::Accepted(hits, answer) => {
            result_cache::put_answer(&cache_key, &answer);
            Ok(respond(hits, None, false))
        }
        Outcome::Weak {
            had_hits,
            confidence,
        } => {
            if let Some(hits) = result_cache::get_hits(&cache_key) {
                return Ok(respond(hits.into_iter().map(to_hit).collect(), None, true));
            }
            let reason = if had_hits {
                "low confidence"
            } else {
                "no results"
            };
            Ok(respond(
                vec![heuristic_hit(reason)],
                Some(Fallback {
                    reason: reason.to_string(),
                    confidence,
                }),
                false,
            ))
        }
    }
}

/// Up to two backend attempts: a rate-limited first attempt is retried after the host's
/// backoff with the same `k`; a weak result (no hits or low confidence) with `k` doubled.
fn attempt_search(
    query: &str,
    top_k: u32,
    threshold: f64,
    origins: &[String],
) -> Result<Outcome, Error> {
    let mut k = top_k;
    let mut outcome = Outcome::Weak {
        had_hits: false,
        confidence: 0.0,
    };
    for attempt in 1..=ATTEMPTS {
        let (found, answer) = match retriever_backend::search(query, k, origins) {
            Ok(found) => found,
            Err(error) if errors::is_rate_limited(&error) && attempt < ATTEMPTS => {
                clock::backoff(attempt);
                continue;
            }
            Err(error) => return Err(errors::from_backend(error)),
        };
        let confidence = found.confidence.unwrap_or_else(|| best_score(&found.hits));
        if !found.hits.is_empty() && confidence >= threshold {
            return Ok(Outcome::Accepted(
                found.hits.into_iter().map(to_hit).collect(),
                answer,
            ));
        }
        outcome = Outcome::Weak {
            had_hits: !found.hits.is_empty(),
            confidence,
        };
        k = k.saturating_mul(2);
    }
    Ok(outcome)
}

fn best_score(hits: &[BackendHit]) -> f64 {
    hits.iter().map(|hit| hit.score).fold(0.0, f64::max)
}

/// A backend hit in the caller's shape: the record id the backend read from the metadata,
/// else the backend's own id.
fn to_hit(hit: BackendHit) -> Hit {
    Hit {
        origin_db: hit.origin_db,
        record_id: Some(hit.record_id.unwrap_or(hit.id)),
        score: hit.score,
        reason: hit.reason,
        metadata: hit.metadata,
    }
}

/// The single entry of a fallback result.
fn heuristic_hit(reason: &str) -> Hit {
    Hit {
        origin_db: "heuristic".to_string(),
        record_id: None,
        score: 0.0,
        reason: reason.to_string(),
        metadata: "{}".to_string(),
    }
}

/// One cache entry per query and origin filter.
fn cache_key(query: &str, origins: &[String]) -> String {
    format!("{query}\u{1f}{}", origins.join(","))
}
