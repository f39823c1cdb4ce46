//! Answers as people and HTTP clients read them, one type per answer: what the server and the
//! CLI's `--json` write, and what the OpenAPI document (`/openapi.json`) describes, so the two
//! cannot drift. The component's contract carries some JSON inside strings (a hit's `metadata`,
//! the compact `context`) so that any host can pass it on untouched; here it is embedded as
//! JSON, not quoted again. Enum values are written in the contract's own spelling (`primary`,
//! not Rust's `Primary`).

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use utoipa::ToSchema;
use vector_service_runtime::api::{
    BackfillResponse, ContextEntry, ContextResponse, DatabaseReport, Destination, Fallback, Hit,
    Rates, SearchResponse, TrackResponse,
};

/// A string that holds JSON, written as that JSON; as a plain string when it does not parse
/// (a component is not trusted to keep its word).
pub struct EmbeddedJson<'a>(&'a str);

impl Serialize for EmbeddedJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match serde_json::from_str::<&RawValue>(self.0) {
            Ok(raw) => raw.serialize(serializer),
            Err(_) => self.0.serialize(serializer),
        }
    }
}

/// One hit of a search.
#[derive(Serialize, ToSchema)]
#[schema(as = Hit)]
pub struct HitAnswer<'a> {
    /// The database the record came from (`bot`, `workflow`, `error`, `code`, ...).
    origin_db: &'a str,
    /// The record's id: the first of the metadata keys `id`, `wid`, `bid`, `record_id`,
    /// `info_id`, `item_id` present, else the backend's id.
    record_id: Option<&'a str>,
    score: f64,
    /// Why it matched (`bm25`, `vector`, `hybrid`, `heuristic`, ...).
    reason: &'a str,
    /// The record's metadata as stored.
    #[schema(value_type = Object)]
    metadata: EmbeddedJson<'a>,
}

/// Why a search had no confident answer (`Retriever.search`'s `FallbackResult`).
#[derive(Serialize, ToSchema)]
#[schema(as = Fallback)]
pub struct FallbackAnswer<'a> {
    /// `no results` or `low confidence`.
    reason: &'a str,
    /// The last attempt's confidence.
    confidence: f64,
}

/// `Retriever.search`'s answer.
#[derive(Serialize, ToSchema)]
#[schema(as = SearchAnswer)]
pub struct SearchAnswer<'a> {
    /// The caller's session id, or the one generated for a call that sent none.
    session_id: &'a str,
    hits: Vec<HitAnswer<'a>>,
    /// Present when no attempt was confident: `hits` then holds one heuristic entry.
    fallback: Option<FallbackAnswer<'a>>,
    /// The hits are an earlier answer to the same query (later attempts found nothing).
    from_cache: bool,
    /// How the request was read, when the caller should know (a query cut at its bound, 16 KiB
    /// or 512 words); absent otherwise.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
}

impl<'a> SearchAnswer<'a> {
    /// The answer to `response`.
    pub fn of(response: &'a SearchResponse) -> Self {
        Self {
            session_id: &response.session_id,
            hits: response.hits.iter().map(HitAnswer::of).collect(),
            fallback: response.fallback.as_ref().map(FallbackAnswer::of),
            from_cache: response.from_cache,
            warnings: &response.warnings,
        }
    }

    /// About how many bytes its JSON takes: its text, and room for the keys and numbers.
    pub fn json_size(&self) -> usize {
        let hits: usize = self
            .hits
            .iter()
            .map(|hit| {
                hit.origin_db.len()
                    + hit.record_id.map_or(0, str::len)
                    + hit.reason.len()
                    + hit.metadata.0.len()
                    + FIELDS_BYTES
            })
            .sum();
        self.session_id.len() + hits + warnings_size(self.warnings) + FIELDS_BYTES
    }
}

/// Bytes of an answer's warnings with their quotes and commas.
fn warnings_size(warnings: &[String]) -> usize {
    warnings.iter().map(|warning| warning.len() + 3).sum()
}

/// Bytes of an answer's or a hit's keys, punctuation and numbers, for [`SearchAnswer::json_size`]
/// and [`ContextAnswer::json_size`]: a hit's come to 76 with a 17-digit score.
const FIELDS_BYTES: usize = 96;

impl<'a> HitAnswer<'a> {
    fn of(hit: &'a Hit) -> Self {
        Self {
            origin_db: &hit.origin_db,
            record_id: hit.record_id.as_deref(),
            score: hit.score,
            reason: &hit.reason,
            metadata: EmbeddedJson(&hit.metadata),
        }
    }
}

impl<'a> FallbackAnswer<'a> {
    fn of(fallback: &'a Fallback) -> Self {
        Self {
            reason: &fallback.reason,
            confidence: fallback.confidence,
        }
    }
}

/// Win and regret rates, in `[0, 1]`.
#[derive(Serialize, ToSchema)]
#[schema(as = Rates)]
pub struct RatesAnswer {
    win_rate: f64,
    regret_rate: f64,
    /// How many tracked outcomes the rates come from.
    samples: u64,
}

/// One entry of a built context, with its reliability.
#[derive(Serialize, ToSchema)]
#[schema(as = ContextEntry)]
pub struct ContextEntryAnswer<'a> {
    bucket: &'a str,
    origin_db: &'a str,
    id: &'a str,
    score: f64,
    /// Its description was shortened to fit `max_tokens`.
    trimmed: bool,
    /// It was left out of `context` to fit `max_tokens`.
    dropped: bool,
    reliability: Option<RatesAnswer>,
    /// `vector` (this record's outcomes), `origin` (its database's) or `none`.
    reliability_source: &'a str,
}

/// `ContextBuilder.build`'s answer.
#[derive(Serialize, ToSchema)]
#[schema(as = ContextAnswer)]
pub struct ContextAnswer<'a> {
    session_id: &'a str,
    /// The compact context: one key per non-empty bucket, in bucket order, each a list of
    /// `{id, name|title?, desc, metric?}`.
    #[schema(value_type = Object)]
    context: EmbeddedJson<'a>,
    entries: Vec<ContextEntryAnswer<'a>>,
    from_cache: bool,
    /// As the search answer's (a task cut at its bound); absent otherwise.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
}

impl<'a> ContextAnswer<'a> {
    /// The answer to `response`.
    pub fn of(response: &'a ContextResponse) -> Self {
        Self {
            session_id: &response.session_id,
            context: EmbeddedJson(&response.context),
            entries: response
                .entries
                .iter()
                .map(ContextEntryAnswer::of)
                .collect(),
            from_cache: response.from_cache,
            warnings: &response.warnings,
        }
    }

    /// About how many bytes its JSON takes: its text, and room for the keys and numbers.
    pub fn json_size(&self) -> usize {
        let entries: usize = self
            .entries
            .iter()
            .map(|entry| {
                entry.bucket.len()
                    + entry.origin_db.len()
                    + entry.id.len()
                    + entry.reliability_source.len()
                    + 2 * FIELDS_BYTES
            })
            .sum();
        self.session_id.len()
            + self.context.0.len()
            + entries
            + warnings_size(self.warnings)
            + FIELDS_BYTES
    }
}

impl<'a> ContextEntryAnswer<'a> {
    fn of(entry: &'a ContextEntry) -> Self {
        Self {
            bucket: &entry.bucket,
            origin_db: &entry.origin_db,
            id: &entry.id,
            score: entry.score,
            trimmed: entry.trimmed,
            dropped: entry.dropped,
            reliability: entry.reliability.map(RatesAnswer::of),
            reliability_source: &entry.reliability_source,
        }
    }
}

impl RatesAnswer {
    fn of(rates: Rates) -> Self {
        Self {
            win_rate: rates.win_rate,
            regret_rate: rates.regret_rate,
            samples: rates.samples,
        }
    }
}

/// Where tracked outcomes were written.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WrittenTo {
    /// The primary metrics database.
    Primary,
    /// The vector metrics database, because the primary one failed.
    Fallback,
}

/// `PatchLogger.track_contributors`' answer.
#[derive(Serialize, ToSchema)]
#[schema(as = TrackAnswer)]
pub struct TrackAnswer<'a> {
    session_id: &'a str,
    /// `success` or `failure`, as the patch went.
    status: &'a str,
    written_to: WrittenTo,
    /// Rows written.
    rows: u32,
    /// The ROI tag recorded (an unknown tag is recorded as `success`, with a warning).
    roi_tag: &'a str,
    warnings: &'a [String],
}

impl<'a> TrackAnswer<'a> {
    /// The answer to `response`.
    pub fn of(response: &'a TrackResponse) -> Self {
        Self {
            session_id: &response.session_id,
            status: &response.status,
            written_to: match response.written_to {
                Destination::Primary => WrittenTo::Primary,
                Destination::Fallback => WrittenTo::Fallback,
            },
            rows: response.rows,
            roi_tag: &response.roi_tag,
            warnings: &response.warnings,
        }
    }
}

/// One database of a backfill.
#[derive(Serialize, ToSchema)]
#[schema(as = DatabaseReport)]
pub struct DatabaseReportAnswer<'a> {
    name: &'a str,
    /// Records embedded in this run.
    embedded: u64,
    /// Records left out (nothing to embed).
    skipped: u64,
    batches: u32,
    /// Why this database could not be backfilled; the others still were.
    error: Option<&'a str>,
}

/// `EmbeddingBackfill.run`'s answer.
#[derive(Serialize, ToSchema)]
#[schema(as = BackfillAnswer)]
pub struct BackfillAnswer<'a> {
    session_id: &'a str,
    /// `success`, or `failure` when any database failed.
    status: &'a str,
    databases: Vec<DatabaseReportAnswer<'a>>,
}

impl<'a> BackfillAnswer<'a> {
    /// The answer to `response`.
    pub fn of(response: &'a BackfillResponse) -> Self {
        Self {
            session_id: &response.session_id,
            status: &response.status,
            databases: response
                .databases
                .iter()
                .map(DatabaseReportAnswer::of)
                .collect(),
        }
    }
}

impl<'a> DatabaseReportAnswer<'a> {
    fn of(report: &'a DatabaseReport) -> Self {
        Self {
            name: &report.name,
            embedded: report.embedded,
            skipped: report.skipped,
            batches: report.batches,
            error: report.error.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hit(metadata: &str) -> Hit {
        Hit {
            origin_db: "bot".into(),
            record_id: Some("b1".into()),
            score: 0.5,
            reason: "bm25".into(),
            metadata: metadata.into(),
        }
    }

    #[test]
    fn metadata_and_context_are_embedded_as_json_and_other_text_stays_a_string() {
        let response = SearchResponse {
            session_id: "s".into(),
            hits: vec![
                hit(r#"{"name":"cert-renewer","tags":[1,2]}"#),
                hit("not json"),
            ],
            fallback: None,
            from_cache: false,
            warnings: vec![],
        };
        let value = serde_json::to_value(SearchAnswer::of(&response)).unwrap();
        assert_eq!(
            value,
            json!({"session_id": "s", "fallback": null, "from_cache": false, "hits": [
                {"origin_db": "bot", "record_id": "b1", "score": 0.5, "reason": "bm25",
                 "metadata": {"name": "cert-renewer", "tags": [1, 2]}},
                {"origin_db": "bot", "record_id": "b1", "score": 0.5, "reason": "bm25",
                 "metadata": "not json"}]})
        );
        let context = ContextResponse {
            session_id: "s".into(),
            context: r#"{"bots":[{"id":"b1"}]}"#.into(),
            entries: Vec::new(),
            from_cache: true,
            warnings: vec![],
        };
        let value = serde_json::to_value(ContextAnswer::of(&context)).unwrap();
        assert_eq!(value["context"], json!({"bots": [{"id": "b1"}]}));
        assert_eq!(value["from_cache"], json!(true));
    }

    /// `answer`'s JSON takes at most `estimate` bytes.
    fn fits(answer: &impl Serialize, estimate: usize) {
        let written = serde_json::to_vec(answer).unwrap().len();
        assert!(written <= estimate, "{written} > {estimate}");
    }

    #[test]
    fn the_size_estimates_hold_the_json_they_estimate() {
        let search = SearchResponse {
            session_id: "a-session-id-of-some-length".into(),
            hits: (0..5)
                .map(|i| Hit {
                    score: 0.123_456_789_012_345_67 / f64::from(i + 1),
                    ..hit(r#"{"name":"cert-renewer","description":"renews certificates"}"#)
                })
                .collect(),
            fallback: None,
            from_cache: false,
            warnings: vec![],
        };
        let answer = SearchAnswer::of(&search);
        fits(&answer, answer.json_size());

        let context = ContextResponse {
            session_id: "s".into(),
            context: r#"{"bots":[{"id":"b1","desc":"renews certificates"}]}"#.into(),
            entries: vec![ContextEntry {
                bucket: "bots".into(),
                origin_db: "bot".into(),
                id: "b1".into(),
                score: 0.123_456_789_012_345_67,
                trimmed: false,
                dropped: false,
                reliability: Some(Rates {
                    win_rate: 0.333_333_333_333_333_3,
                    regret_rate: 0.666_666_666_666_666_6,
                    samples: 1_000_000,
                }),
                reliability_source: "vector".into(),
            }],
            from_cache: false,
            warnings: vec![],
        };
        let answer = ContextAnswer::of(&context);
        fits(&answer, answer.json_size());
    }

    #[test]
    fn written_to_is_spelled_as_the_wit_spells_it() {
        let response = TrackResponse {
            session_id: "s".into(),
            status: "success".into(),
            written_to: Destination::Fallback,
            rows: 1,
            roi_tag: "success".into(),
            warnings: Vec::new(),
        };
        let value = serde_json::to_value(TrackAnswer::of(&response)).unwrap();
        assert_eq!(value["written_to"], json!("fallback"));
    }
}
