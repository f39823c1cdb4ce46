//! ContextBuilder.build: related errors, bots, workflows, code and discrepancies for a task,
//! scored, bucketed, summarised, fitted to a token budget and rendered as compact JSON, with
//! reliability figures per entry.

use serde::Serialize;
use serde_json::{Map, Number, Value};

use crate::bindings::exports::vector_service::plugin::context_builder::{
    BucketRule, ContextEntry, ContextRequest, ContextResponse,
};
use crate::bindings::exports::vector_service::plugin::retriever::{Hit, SearchRequest};
use crate::bindings::vector_service::plugin::result_cache;
use crate::bindings::vector_service::plugin::telemetry::{self, Operation, Sample};
use crate::bindings::vector_service::plugin::types::{BackendError, Error, Rates, VectorRef};
use crate::bindings::vector_service::plugin::vector_metrics_db;
use crate::bindings::wasi::logging::logging::Level;
use crate::instrument::{event, instrumented};
use crate::{bounds, errors, json, retriever};

const DEFAULT_TOP_K: u32 = 5;

/// Where a record's own id is in its metadata, first present wins (as the backends' record id).
const RECORD_ID_KEYS: [&str; 6] = ["id", "wid", "bid", "record_id", "info_id", "item_id"];
const DEFAULT_MAX_TOKENS: u32 = 800;
/// The retriever is asked for this many candidates per kept entry.
const CANDIDATES_PER_ENTRY: u32 = 5;
/// Descriptions are summarised to this many characters ...
const SUMMARY_CHARS: usize = 120;
/// ... and cut to about this many when the token budget is tight.
const TRIMMED_CHARS: usize = 40;
/// Characters per token for the budget estimate.
const CHARS_PER_TOKEN: usize = 4;

/// (origin, bucket, desc keys, label key, metric keys, inverse metric).
type DefaultRule = (
    &'static str,
    &'static str,
    &'static [&'static str],
    Option<&'static str>,
    &'static [&'static str],
    bool,
);

/// The default buckets, in output order.
const DEFAULT_RULES: [DefaultRule; 5] = [
    (
        "error",
        "errors",
        &["message", "description"],
        None,
        &["frequency"],
        true,
    ),
    (
        "bot",
        "bots",
        &["name", "purpose"],
        Some("name"),
        &["roi", "deploy_count"],
        false,
    ),
    (
        "workflow",
        "workflows",
        &["title", "description"],
        Some("title"),
        &["roi", "usage", "runs"],
        false,
    ),
    (
        "code",
        "code",
        &["summary", "code"],
        None,
        &["roi", "patch_success"],
        false,
    ),
    (
        "discrepancy",
        "discrepancies",
        &["message", "description"],
        None,
        &["roi", "severity", "impact"],
        false,
    ),
];

/// A bucket rule as the builder reads it, borrowed from the defaults or from the request.
struct Rule<'a> {
    origin: &'a str,
    bucket: &'a str,
    desc_keys: Vec<&'a str>,
    label_key: Option<&'a str>,
    metric_keys: Vec<&'a str>,
    inverse_metric: bool,
}

impl<'a> Rule<'a> {
    fn given(rule: &'a BucketRule) -> Self {
        Self {
            origin: &rule.origin,
            bucket: &rule.bucket,
            desc_keys: rule.desc_keys.iter().map(String::as_str).collect(),
            label_key: rule.label_key.as_deref(),
            metric_keys: rule.metric_keys.iter().map(String::as_str).collect(),
            inverse_metric: rule.inverse_metric,
        }
    }
}

/// The request's buckets (or the defaults), checked: bounded, one per origin.
fn rules(request: &ContextRequest) -> Result<Vec<Rule<'_>>, Error> {
    if request.buckets.is_empty() {
        return Ok(DEFAULT_RULES
            .iter()
            .map(|&(origin, bucket, desc, label, metric, inverse)| Rule {
                origin,
                bucket,
                desc_keys: desc.to_vec(),
                label_key: label,
                metric_keys: metric.to_vec(),
                inverse_metric: inverse,
            })
            .collect());
    }
    bounds::names(
        "buckets",
        request.buckets.iter().map(|rule| rule.origin.as_str()),
        bounds::MAX_LIST_ENTRIES,
    )?;
    let rules: Vec<Rule<'_>> = request.buckets.iter().map(Rule::given).collect();
    for (index, rule) in rules.iter().enumerate() {
        bounds::name("bucket", rule.bucket)?;
        let keys = rule
            .desc_keys
            .iter()
            .chain(&rule.metric_keys)
            .chain(&rule.label_key);
        bounds::names(
            "bucket keys",
            keys.copied().collect::<Vec<_>>().into_iter(),
            bounds::MAX_LIST_ENTRIES,
        )?;
        if rule.origin.trim().is_empty() || rule.bucket.trim().is_empty() {
            return Err(errors::malformed("a bucket needs an origin and a name"));
        }
        if rules[..index]
            .iter()
            .any(|earlier| earlier.origin == rule.origin)
        {
            return Err(errors::malformed(format!(
                "origin {:?} has two buckets",
                rule.origin
            )));
        }
    }
    Ok(rules)
}

/// One entry of the compact context: `id`, the label under its own key, `desc`, `metric`.
#[derive(Clone)]
struct ContextItem {
    /// As the record's metadata gives it (a number stays a number, as in the original).
    id: Value,
    label: Option<(String, String)>,
    desc: String,
    metric: Option<Number>,
}

impl ContextItem {
    /// The id as text, as the contract's entries and the metrics databases key it.
    fn id_text(&self) -> String {
        json::scalar_text(&self.id).unwrap_or_default()
    }
}

impl Serialize for ContextItem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &self.id)?;
        if let Some((key, value)) = &self.label {
            map.serialize_entry(key, value)?;
        }
        map.serialize_entry("desc", &self.desc)?;
        if let Some(metric) = &self.metric {
            map.serialize_entry("metric", metric)?;
        }
        map.end()
    }
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
    let task = bounds::text("task", &request.task)?;
    if task.warning.is_some() {
        telemetry::observe(Sample::InputCut(Operation::ContextBuilderBuild));
    }
    let warnings: Vec<String> = task.warning.iter().cloned().collect();
    let top_k = bounds::top_k(request.top_k, DEFAULT_TOP_K)?;
    bounds::names(
        "db_weights",
        request.db_weights.iter().map(|(origin, _)| origin.as_str()),
        bounds::MAX_LIST_ENTRIES,
    )?;
    if let Some((origin, weight)) = request.db_weights.iter().find(|(_, w)| !w.is_finite()) {
        // Spelled by hand: formatting an f64 would link 16 KB of float printing.
        let got = match *weight {
            w if w.is_nan() => "NaN",
            w if w > 0.0 => "inf",
            _ => "-inf",
        };
        return Err(errors::malformed(format!(
            "db weight of {origin:?} must be a finite number, got {got}"
        )));
    }
    let rules = rules(request)?;
    let max_tokens = request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    let cache_key = cache_key(request, task.text, top_k, max_tokens);
    if let Some(mut cached) = result_cache::get_context(&cache_key)
        .and_then(|text| serde_json::from_str::<ContextResponse>(&text).ok())
    {
        cached.session_id = session_id.to_string();
        cached.from_cache = true;
        cached.warnings = warnings;
        return Ok(cached);
    }

    let origins: Vec<String> = rules.iter().map(|rule| rule.origin.to_string()).collect();
    // Candidates are asked of `Retriever.search`, which takes at most `MAX_TOP_K` itself: a
    // request's valid `top_k` must never ask it for more.
    let wanted = top_k
        .saturating_mul(CANDIDATES_PER_ENTRY)
        .min(bounds::MAX_TOP_K);
    let mut hits = related(session_id, task.text, wanted, origins)?;
    // A bucket short of `top_k` while the search was cut at `wanted` may have more matches
    // that other buckets' hits crowded out: that origin's own best `top_k` replace its hits.
    if hits.len() >= wanted as usize {
        for rule in &rules {
            let found = hits
                .iter()
                .filter(|hit| hit.origin_db == rule.origin)
                .count();
            if found < top_k as usize {
                let origin = vec![rule.origin.to_string()];
                let more = related(session_id, task.text, top_k, origin)?;
                hits.retain(|hit| hit.origin_db != rule.origin);
                hits.extend(more);
            }
        }
    }

    let mut candidates = select(&rules, hits, &request.db_weights, top_k as usize);
    fit_to_budget(&rules, &mut candidates, max_tokens);
    let response = ContextResponse {
        session_id: session_id.to_string(),
        context: render(&rules, &candidates),
        entries: describe(&rules, session_id, candidates),
        from_cache: false,
        warnings,
    };
    if !response.entries.is_empty() {
        if let Ok(text) = serde_json::to_string(&response) {
            result_cache::put_context(&cache_key, &text);
        }
    }
    Ok(response)
}

/// Up to `top_k` hits for the task from `origins`, through `Retriever.search` (so with its
/// retries and confidence threshold); a fallback result contributes nothing.
fn related(
    session_id: &str,
    task: &str,
    top_k: u32,
    origins: Vec<String>,
) -> Result<Vec<Hit>, Error> {
    let search = retriever::search(
        session_id.to_string(),
        SearchRequest {
            query: task.to_string(),
            top_k: Some(top_k),
            similarity_threshold: None,
            origins,
        },
    )
    .map_err(|error| match error {
        Error::RateLimited(_) | Error::Backend(_) => error,
        _ => Error::Backend("retriever failure".to_string()),
    })?;
    Ok(if search.fallback.is_some() {
        Vec::new()
    } else {
        search.hits
    })
}

/// Score every hit of an origin with a bucket, then keep the `top_k` best per bucket (stable
/// order).
fn select(
    rules: &[Rule<'_>],
    hits: Vec<Hit>,
    weights: &[(String, f64)],
    top_k: usize,
) -> Vec<Candidate> {
    let mut scored: Vec<Candidate> = hits
        .into_iter()
        .filter_map(|hit| candidate(rules, hit, weights))
        .collect();
    scored.sort_by(|a, b| a.rule.cmp(&b.rule).then(b.score.total_cmp(&a.score)));
    let mut kept = Vec::new();
    let mut per_bucket = vec![0usize; rules.len()];
    for candidate in scored {
        if per_bucket[candidate.rule] < top_k {
            per_bucket[candidate.rule] += 1;
            kept.push(candidate);
        }
    }
    kept
}

fn candidate(rules: &[Rule<'_>], hit: Hit, weights: &[(String, f64)]) -> Option<Candidate> {
    let rule_index = rules.iter().position(|rule| rule.origin == hit.origin_db)?;
    let rule = &rules[rule_index];
    let metadata = json::object(&hit.metadata);
    let label = rule
        .label_key
        .and_then(|key| json::first_text(&metadata, &[key]).map(|text| (key.to_string(), text)));
    let metric = metric(&metadata, rule);
    let weight = weights
        .iter()
        .find(|(origin, _)| *origin == hit.origin_db)
        .map_or(1.0, |(_, weight)| *weight);
    let score = (hit.score + metric.as_ref().and_then(Number::as_f64).unwrap_or(0.0)) * weight;
    let id = json::first_present(&metadata, &RECORD_ID_KEYS)
        .filter(|value| value.is_number() || value.is_string() || value.is_boolean())
        .cloned()
        .unwrap_or_else(|| Value::String(hit.record_id.unwrap_or_default()));
    let item = ContextItem {
        id,
        label,
        desc: summarise(&json::first_text(&metadata, &rule.desc_keys).unwrap_or_default()),
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

/// The first present metric key of the rule, as a float (the original's `10.0` for `10`);
/// left out when its value is not a number.
fn metric(metadata: &Map<String, Value>, rule: &Rule<'_>) -> Option<Number> {
    let value = json::first_present(metadata, &rule.metric_keys)?.as_f64()?;
    if rule.inverse_metric {
        Number::from_f64(1.0 / (1.0 + value))
    } else {
        Number::from_f64(value)
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
fn fit_to_budget(rules: &[Rule<'_>], candidates: &mut [Candidate], max_tokens: u32) {
    if max_tokens == 0 {
        return;
    }
    let budget = max_tokens as usize;
    let mut lowest_first: Vec<usize> = (0..candidates.len()).collect();
    lowest_first.sort_by(|&a, &b| candidates[a].score.total_cmp(&candidates[b].score));
    for &index in &lowest_first {
        if estimated_tokens(&render(rules, candidates)) <= budget {
            return;
        }
        if let Some(short) = cut_at_word(&candidates[index].item.desc) {
            candidates[index].item.desc = short;
            candidates[index].trimmed = true;
        }
    }
    for &index in &lowest_first {
        if estimated_tokens(&render(rules, candidates)) <= budget {
            return;
        }
        candidates[index].dropped = true;
    }
}

/// The compact JSON object: buckets in rule order, empty ones omitted, no spaces.
/// (Written by hand: serde_json's map would sort the bucket keys.)
fn render(rules: &[Rule<'_>], candidates: &[Candidate]) -> String {
    let buckets: Vec<String> = rules
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
            let key = serde_json::to_string(rule.bucket).ok()?;
            Some(format!("{key}:{items}"))
        })
        .collect();
    format!("{{{}}}", buckets.join(","))
}

/// Per-entry details: scores, budget marks and reliability (per vector, else per origin).
fn describe(rules: &[Rule<'_>], session_id: &str, candidates: Vec<Candidate>) -> Vec<ContextEntry> {
    let vectors: Vec<VectorRef> = candidates
        .iter()
        .map(|c| VectorRef {
            origin_db: c.origin_db.clone(),
            vector_id: c.item.id_text(),
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
                bucket: rules[c.rule].bucket.to_string(),
                origin_db: c.origin_db,
                id: c.item.id_text(),
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
fn cache_key(request: &ContextRequest, task: &str, top_k: u32, max_tokens: u32) -> String {
    let buckets: Vec<_> = request
        .buckets
        .iter()
        .map(|rule| {
            (
                &rule.origin,
                &rule.bucket,
                &rule.desc_keys,
                &rule.label_key,
                &rule.metric_keys,
                rule.inverse_metric,
            )
        })
        .collect();
    let key = (task, top_k, max_tokens, &request.db_weights, buckets);
    serde_json::to_string(&key).unwrap_or_default()
}
