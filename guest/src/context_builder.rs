//! ContextBuilder.build: related errors, bots, workflows, code and discrepancies for a task,
//! scored, bucketed, summarised, fitted to a token budget and rendered as compact JSON, with
//! reliability figures per entry.

use serde::Serialize;
use serde_json::{Map, Number, Value};

use crate::bindings::exports::vector_service::plugin::context_builder::{
    ContextEntry, ContextRequest, ContextResponse,
};
use crate::bindings::exports::vector_service::plugin::retriever::{Hit, SearchRequest};
use crate::bindings::vector_service::plugin::result_cache::{self, CacheKind};
use crate::bindings::vector_service::plugin::telemetry::Operation;
use crate::bindings::vector_service::plugin::types::{BackendError, Error, Rates, VectorRef};
use crate::bindings::vector_service::plugin::vector_metrics_db;
use crate::bindings::wasi::logging::logging::Level;
use crate::instrument::{event, instrumented};
use crate::{bounds, errors, json, retriever};

const DEFAULT_TOP_K: u32 = 5;
const DEFAULT_MAX_TOKENS: u32 = 800;
/// The retriever is asked for this many candidates per kept entry.
const CANDIDATES_PER_ENTRY: u32 = 5;
/// Descriptions are summarised to this many characters ...
const SUMMARY_CHARS: usize = 120;
/// ... and cut to about this many when the token budget is tight.
const TRIMMED_CHARS: usize = 40;
/// Characters per token for the budget estimate.
const CHARS_PER_TOKEN: usize = 4;

/// How hits of one origin database become entries of one bucket.
struct BucketRule {
    origin: &'static str,
    bucket: &'static str,
    desc_keys: &'static [&'static str],
    label_key: Option<&'static str>,
    metric_keys: &'static [&'static str],
    /// Errors rank by rarity: 1 / (1 + frequency).
    inverse_metric: bool,
}

/// The buckets in output order.
const RULES: [BucketRule; 5] = [
    BucketRule {
        origin: "error",
        bucket: "errors",
        desc_keys: &["message", "description"],
        label_key: None,
        metric_keys: &["frequency"],
        inverse_metric: true,
    },
    BucketRule {
        origin: "bot",
        bucket: "bots",
        desc_keys: &["name", "purpose"],
        label_key: Some("name"),
        metric_keys: &["roi", "deploy_count"],
        inverse_metric: false,
    },
    BucketRule {
        origin: "workflow",
        bucket: "workflows",
        desc_keys: &["title", "description"],
        label_key: Some("title"),
        metric_keys: &["roi", "usage", "runs"],
        inverse_metric: false,
    },
    BucketRule {
        origin: "code",
        bucket: "code",
        desc_keys: &["summary", "code"],
        label_key: None,
        metric_keys: &["roi", "patch_success"],
        inverse_metric: false,
    },
    BucketRule {
        origin: "discrepancy",
        bucket: "discrepancies",
        desc_keys: &["message", "description"],
        label_key: None,
        metric_keys: &["roi", "severity", "impact"],
        inverse_metric: false,
    },
];

/// One entry of the compact context, serialised in this field order.
#[derive(Serialize, Clone)]
struct ContextItem {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    desc: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    metric: Option<Number>,
}

/// An entry with the bookkeeping that does not go into the compact JSON.
struct Candidate {
    rule: usize,
    origin_db: String,
    score: f64,
    item: ContextItem,
    trimmed: bool,
    dropped: bool,
}

/// The export: one instrumented `ContextBuilder.build` call.
pub fn build(session_id: String, request: ContextRequest) -> Result<ContextResponse, Error> {
    instrumented(
        Operation::ContextBuilderBuild,
        session_id,
        |response: &ContextResponse| response.context.len() as u32,
        |session_id| build_in_session(session_id, &request),
    )
}

fn build_in_session(session_id: &str, request: &ContextRequest) -> Result<ContextResponse, Error> {
    bounds::text("task", &request.task)?;
    let top_k = bounds::top_k(request.top_k.unwrap_or(DEFAULT_TOP_K))?;
    bounds::names(
        "db_weights",
        request.db_weights.iter().map(|(origin, _)| origin.as_str()),
        bounds::MAX_LIST_ENTRIES,
    )?;
    if let Some((origin, weight)) = request.db_weights.iter().find(|(_, w)| !w.is_finite()) {
        return Err(errors::malformed(format!(
            "db weight of {origin:?} must be a finite number, got {weight}"
        )));
    }
    let max_tokens = request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    let cache_key = cache_key(request, top_k, max_tokens);
    if let Some(mut cached) = result_cache::get(CacheKind::Context, &cache_key)
        .and_then(|text| serde_json::from_str::<ContextResponse>(&text).ok())
    {
        cached.session_id = session_id.to_string();
        cached.from_cache = true;
        return Ok(cached);
    }

    let search = retriever::search(
        session_id.to_string(),
        SearchRequest {
            query: request.task.clone(),
            top_k: Some(top_k.saturating_mul(CANDIDATES_PER_ENTRY)),
            similarity_threshold: None,
            origins: Vec::new(),
        },
    )
    .map_err(|error| match error {
        Error::RateLimited(_) | Error::Backend(_) => error,
        _ => Error::Backend("retriever failure".to_string()),
    })?;
    // A fallback result carries only the heuristic entry: it contributes nothing.
    let hits = if search.fallback.is_some() {
        Vec::new()
    } else {
        search.hits
    };

    let mut candidates = select(hits, &request.db_weights, top_k as usize);
    fit_to_budget(&mut candidates, max_tokens);
    let response = ContextResponse {
        session_id: session_id.to_string(),
        context: render(&candidates),
        entries: describe(session_id, candidates),
        from_cache: false,
    };
    if !response.entries.is_empty() {
        if let Ok(text) = serde_json::to_string(&response) {
            result_cache::put(CacheKind::Context, &cache_key, &text);
        }
    }
    Ok(response)
}

/// Score every hit of a known origin, then keep the `top_k` best per bucket (stable order).
fn select(hits: Vec<Hit>, weights: &[(String, f64)], top_k: usize) -> Vec<Candidate> {
    let mut scored: Vec<Candidate> = hits
        .into_iter()
        .filter_map(|hit| candidate(hit, weights))
        .collect();
    scored.sort_by(|a, b| a.rule.cmp(&b.rule).then(b.score.total_cmp(&a.score)));
    let mut kept = Vec::new();
    let mut per_bucket = vec![0usize; RULES.len()];
    for candidate in scored {
        if per_bucket[candidate.rule] < top_k {
            per_bucket[candidate.rule] += 1;
            kept.push(candidate);
        }
    }
    kept
}

fn candidate(hit: Hit, weights: &[(String, f64)]) -> Option<Candidate> {
    let rule_index = RULES.iter().position(|rule| rule.origin == hit.origin_db)?;
    let rule = &RULES[rule_index];
    let metadata = json::object(&hit.metadata);
    let label = rule
        .label_key
        .and_then(|key| json::first_text(&metadata, &[key]));
    let metric = metric(&metadata, rule);
    let weight = weights
        .iter()
        .find(|(origin, _)| *origin == hit.origin_db)
        .map_or(1.0, |(_, weight)| *weight);
    let score = (hit.score + metric.as_ref().and_then(Number::as_f64).unwrap_or(0.0)) * weight;
    let item = ContextItem {
        id: hit.record_id.unwrap_or_default(),
        name: label.clone().filter(|_| rule.label_key == Some("name")),
        title: label.filter(|_| rule.label_key == Some("title")),
        desc: summarise(&json::first_text(&metadata, rule.desc_keys).unwrap_or_default()),
        metric,
    };
    Some(Candidate {
        rule: rule_index,
        origin_db: hit.origin_db,
        score,
        item,
        trimmed: false,
        dropped: false,
    })
}

/// The first present metric key of the rule; left out when its value is not a number.
fn metric(metadata: &Map<String, Value>, rule: &BucketRule) -> Option<Number> {
    let value = json::first_present(metadata, rule.metric_keys)?.as_number()?;
    if rule.inverse_metric {
        Number::from_f64(1.0 / (1.0 + value.as_f64()?))
    } else {
        Some(value.clone())
    }
}

/// Trimmed, single-line, at most `SUMMARY_CHARS` characters.
fn summarise(text: &str) -> String {
    let flat = text.trim().replace(['\r', '\n'], " ");
    if flat.chars().count() <= SUMMARY_CHARS {
        return flat;
    }
    let head: String = flat.chars().take(SUMMARY_CHARS - 3).collect();
    format!("{head}...")
}

/// Cut at the last word boundary within `TRIMMED_CHARS` characters, with "...".
fn cut_at_word(text: &str) -> Option<String> {
    if text.chars().count() <= TRIMMED_CHARS {
        return None;
    }
    let head: String = text.chars().take(TRIMMED_CHARS).collect();
    let cut = head
        .rfind(' ')
        .filter(|&at| at > 0)
        .map_or(head.as_str(), |at| &head[..at]);
    Some(format!("{}...", cut.trim_end()))
}

fn estimated_tokens(context: &str) -> usize {
    context.len().div_ceil(CHARS_PER_TOKEN)
}

/// Within `max_tokens` (0 = no budget): lowest-scored entries are shortened first, then dropped.
fn fit_to_budget(candidates: &mut [Candidate], max_tokens: u32) {
    if max_tokens == 0 {
        return;
    }
    let budget = max_tokens as usize;
    let mut lowest_first: Vec<usize> = (0..candidates.len()).collect();
    lowest_first.sort_by(|&a, &b| candidates[a].score.total_cmp(&candidates[b].score));
    for &index in &lowest_first {
        if estimated_tokens(&render(candidates)) <= budget {
            return;
        }
        if let Some(short) = cut_at_word(&candidates[index].item.desc) {
            candidates[index].item.desc = short;
            candidates[index].trimmed = true;
        }
    }
    for &index in &lowest_first {
        if estimated_tokens(&render(candidates)) <= budget {
            return;
        }
        candidates[index].dropped = true;
    }
}

/// The compact JSON object: buckets in rule order, empty ones omitted, no spaces.
/// (Written by hand: serde_json's map would sort the bucket keys.)
fn render(candidates: &[Candidate]) -> String {
    let buckets: Vec<String> = RULES
        .iter()
        .enumerate()
        .filter_map(|(rule_index, rule)| {
            let items: Vec<&ContextItem> = candidates
                .iter()
                .filter(|c| c.rule == rule_index && !c.dropped)
                .map(|c| &c.item)
                .collect();
            if items.is_empty() {
                return None;
            }
            let items = serde_json::to_string(&items).ok()?;
            Some(format!("\"{}\":{items}", rule.bucket))
        })
        .collect();
    format!("{{{}}}", buckets.join(","))
}

/// Per-entry details: scores, budget marks and reliability (per vector, else per origin).
fn describe(session_id: &str, candidates: Vec<Candidate>) -> Vec<ContextEntry> {
    let vectors: Vec<VectorRef> = candidates
        .iter()
        .map(|c| VectorRef {
            origin_db: c.origin_db.clone(),
            vector_id: c.item.id.clone(),
        })
        .collect();
    let origins: Vec<String> = candidates.iter().map(|c| c.origin_db.clone()).collect();
    let per_vector = lookup_rates(
        session_id,
        || vector_metrics_db::vector_rates(&vectors),
        vectors.len(),
    );
    let per_origin = lookup_rates(
        session_id,
        || vector_metrics_db::origin_rates(&origins),
        origins.len(),
    );
    candidates
        .into_iter()
        .zip(per_vector.into_iter().zip(per_origin))
        .map(|(c, (vector_rates, origin_rates))| {
            let (reliability, source) = match (vector_rates, origin_rates) {
                (Some(rates), _) => (Some(rates), "vector"),
                (None, Some(rates)) => (Some(rates), "origin"),
                (None, None) => (None, "none"),
            };
            ContextEntry {
                bucket: RULES[c.rule].bucket.to_string(),
                origin_db: c.origin_db,
                id: c.item.id,
                score: c.score,
                trimmed: c.trimmed,
                dropped: c.dropped,
                reliability,
                reliability_source: source.to_string(),
            }
        })
        .collect()
}

/// Reliability is advisory: a failing lookup is logged and leaves the figures empty.
fn lookup_rates(
    session_id: &str,
    lookup: impl FnOnce() -> Result<Vec<Option<Rates>>, BackendError>,
    expected: usize,
) -> Vec<Option<Rates>> {
    if expected == 0 {
        return Vec::new();
    }
    match lookup() {
        Ok(rates) if rates.len() == expected => rates,
        Ok(rates) => {
            warn(
                session_id,
                &format!(
                    "reliability lookup returned {} rows for {expected} entries",
                    rates.len()
                ),
            );
            vec![None; expected]
        }
        Err(error) => {
            warn(
                session_id,
                &format!(
                    "reliability lookup failed: {}",
                    errors::backend_message(&error)
                ),
            );
            vec![None; expected]
        }
    }
}

fn warn(session_id: &str, message: &str) {
    event(
        Level::Warn,
        Operation::ContextBuilderBuild,
        session_id,
        message,
        Value::Null,
    );
}

/// One cache entry per task and every option that changes the result.
fn cache_key(request: &ContextRequest, top_k: u32, max_tokens: u32) -> String {
    serde_json::json!([request.task, top_k, max_tokens, request.db_weights]).to_string()
}
