//! The JSON API: request bodies as the HTTP contract names them, turned into component
//! requests. Every operation runs inside the tenant's admission gate: reads on the async workers
//! when the store answers them in process, everything else on the blocking pool.

use std::collections::BTreeMap;

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vector_service_runtime::api::{
    self, BackfillRequest, BucketRule, ContextRequest, SearchRequest, TrackRequest,
};

use vector_service_runtime::bounds::request::{MAX_BATCH_SIZE, MAX_LIST_ENTRIES, MAX_NAME_BYTES};

use crate::answers::{BackfillAnswer, ContextAnswer, SearchAnswer, TrackAnswer};

/// `POST /v1/search`: `Retriever.search`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"query": "upload failed", "top_k": 3, "session_id": "s-42"}))]
pub struct SearchBody {
    /// What to look for; not blank. Past 16 KiB or 512 words it is cut there, and the answer's
    /// `warnings` say so.
    pub query: String,
    /// Carried into every log line of the call; generated (and returned) when absent.
    pub session_id: Option<String>,
    /// Hits wanted, at most 1,000 (default 5, also for 0); doubled on the second attempt.
    pub top_k: Option<u32>,
    /// The confidence below which an attempt does not count (default 0.1).
    pub threshold: Option<f64>,
    /// Only these origin databases (default: all).
    #[serde(default)]
    pub origins: Vec<String>,
}

impl From<SearchBody> for SearchRequest {
    fn from(body: SearchBody) -> Self {
        SearchRequest {
            query: body.query,
            top_k: body.top_k,
            similarity_threshold: body.threshold,
            origins: body.origins,
        }
    }
}

/// `POST /v1/context`: `ContextBuilder.build`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"task": "fix failing tests", "top_k": 2, "db_weights": {"bot": 2.0}}))]
pub struct ContextBody {
    /// The task to build a context for; not blank. Past 16 KiB or 512 words it is cut there,
    /// and the answer's `warnings` say so.
    pub task: String,
    /// Carried into every log line of the call; generated (and returned) when absent.
    pub session_id: Option<String>,
    /// Entries per bucket, at most 1,000 (default 5, also for 0).
    pub top_k: Option<u32>,
    /// The context's token budget (default 800): lowest-scored entries are trimmed first.
    pub max_tokens: Option<u32>,
    /// Score weight per origin database, e.g. `{"bot": 2.0}`.
    #[serde(default)]
    pub db_weights: BTreeMap<String, f64>,
    /// The buckets, in output order; absent or empty: the five defaults.
    #[serde(default)]
    pub buckets: Vec<BucketBody>,
}

/// One bucket of `POST /v1/context`: which origin's hits it holds and how an entry reads.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BucketBody {
    /// The origin database whose hits go here.
    pub origin: String,
    /// The bucket's key in the context.
    pub bucket: String,
    /// Metadata keys whose first non-empty value is the entry's `desc` (default:
    /// `description, message, summary, title, name, text`).
    #[serde(default = "crate::buckets::default_desc_keys")]
    pub desc_keys: Vec<String>,
    /// A metadata key copied into the entry under its own name.
    pub label_key: Option<String>,
    /// Metadata keys whose first number is the entry's `metric`.
    #[serde(default)]
    pub metric_keys: Vec<String>,
    /// The metric is `1 / (1 + value)` (for counts of bad things).
    #[serde(default)]
    pub inverse_metric: bool,
}

impl From<ContextBody> for ContextRequest {
    fn from(body: ContextBody) -> Self {
        ContextRequest {
            task: body.task,
            top_k: body.top_k,
            max_tokens: body.max_tokens,
            db_weights: body.db_weights.into_iter().collect(),
            buckets: body
                .buckets
                .into_iter()
                .map(|b| BucketRule {
                    origin: b.origin,
                    bucket: b.bucket,
                    desc_keys: b.desc_keys,
                    label_key: b.label_key,
                    metric_keys: b.metric_keys,
                    inverse_metric: b.inverse_metric,
                })
                .collect(),
        }
    }
}

/// `POST /v1/contributors`: `PatchLogger.track_contributors`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"vector_ids": ["bot:bot-005", "workflow:wf-008"], "success": true, "patch_id": "p-2", "roi_tag": "high-roi"}))]
pub struct ContributorsBody {
    /// `origin:id`, split at the first colon; at most 1,000.
    pub vector_ids: Vec<String>,
    /// Whether the patch succeeded.
    pub success: bool,
    /// The patch's id, recorded as given (empty too: a patch that failed before it had one).
    pub patch_id: String,
    /// Carried into every log line of the call; generated (and returned) when absent.
    pub session_id: Option<String>,
    /// Recorded with each vector when the primary metrics database is down (default 0.0).
    pub contribution: Option<f64>,
    /// `success` (default), `high-roi`, `low-roi`, `bug-introduced`, `needs-review` or `blocked`;
    /// anything else is recorded as `success` with a warning.
    pub roi_tag: Option<String>,
}

impl From<ContributorsBody> for TrackRequest {
    fn from(body: ContributorsBody) -> Self {
        TrackRequest {
            vector_ids: body.vector_ids,
            success: body.success,
            patch_id: body.patch_id,
            contribution: body.contribution,
            roi_tag: body.roi_tag,
        }
    }
}

/// `POST /v1/backfill`: `EmbeddingBackfill.run`, as a job.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"dbs": ["bot"], "batch_size": 100}))]
pub struct BackfillBody {
    /// Carried into every log line of the run.
    pub session_id: Option<String>,
    /// Only these databases (default: every embeddable one).
    #[serde(default)]
    pub dbs: Vec<String>,
    /// Records embedded per batch (and per transaction), 1 to 1,000 (default 100).
    pub batch_size: Option<u32>,
}

impl From<BackfillBody> for BackfillRequest {
    fn from(body: BackfillBody) -> Self {
        BackfillRequest {
            batch_size: body.batch_size,
            databases: body.dbs,
        }
    }
}

/// Bodies that may carry the caller's session id, checked before any work starts.
pub trait Session {
    /// Whether the operation writes to the tenant's store (refused up front when the store
    /// has a lasting fault).
    const WRITES: bool = false;

    fn session(&self) -> Option<&str>;

    fn session_id(&self) -> String {
        self.session().unwrap_or_default().to_string()
    }

    /// Why the body is refused before any work starts, if it is: the session id goes into
    /// logs and job records, so it is bounded here for every route (the component bounds it
    /// too, but only once a call runs).
    fn refused(&self) -> Option<String> {
        session_refused(self.session())
    }
}

fn session_refused(session: Option<&str>) -> Option<String> {
    let session = session?;
    (session.len() > MAX_NAME_BYTES).then(|| {
        format!(
            "session_id is {} bytes; at most {MAX_NAME_BYTES} are accepted",
            session.len()
        )
    })
}

macro_rules! session {
    ($($body:ty),*) => {$(
        impl Session for $body {
            fn session(&self) -> Option<&str> {
                self.session_id.as_deref()
            }
        }
    )*};
}
session!(SearchBody, ContextBody);

impl Session for ContributorsBody {
    const WRITES: bool = true;

    fn session(&self) -> Option<&str> {
        self.session_id.as_deref()
    }
}

impl Session for BackfillBody {
    const WRITES: bool = true;

    fn session(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// A job answers 202 before the component sees its parameters: out-of-range ones are
    /// refused here instead of failing the job later.
    fn refused(&self) -> Option<String> {
        if let Some(size) = self
            .batch_size
            .filter(|size| !(1..=MAX_BATCH_SIZE).contains(size))
        {
            return Some(format!(
                "batch_size is {size}; it must be 1 to {MAX_BATCH_SIZE}"
            ));
        }
        if self.dbs.len() > MAX_LIST_ENTRIES {
            return Some(format!(
                "{} databases named; at most {MAX_LIST_ENTRIES} are accepted",
                self.dbs.len()
            ));
        }
        if let Some(db) = self
            .dbs
            .iter()
            .find(|db| db.trim().is_empty() || db.len() > MAX_NAME_BYTES)
        {
            return Some(format!(
                "database name of {} bytes: each must be non-blank and at most {MAX_NAME_BYTES} bytes",
                db.len()
            ));
        }
        session_refused(self.session())
    }
}

/// Answers of the component: each names the session id it ran under (the caller's, or the one
/// the component generated), which the request log records, and becomes a JSON body (JSON the
/// contract carries in strings embedded as JSON, `crate::answers`).
pub trait Answer {
    fn session_id(&self) -> &str;
    fn respond(&self) -> Response;
}

macro_rules! answer {
    ($($response:ty => $view:expr, $size:expr);*) => {$(
        impl Answer for $response {
            fn session_id(&self) -> &str {
                &self.session_id
            }
            fn respond(&self) -> Response {
                let view = $view(self);
                json_response(&view, $size(&view))
            }
        }
    )*};
}
answer!(
    api::SearchResponse => SearchAnswer::of, SearchAnswer::json_size;
    api::ContextResponse => ContextAnswer::of, ContextAnswer::json_size;
    api::TrackResponse => TrackAnswer::of, |_: &TrackAnswer| SMALL_ANSWER_BYTES;
    api::BackfillResponse => BackfillAnswer::of, |_: &BackfillAnswer| SMALL_ANSWER_BYTES
);

/// Room reserved for an answer without a size estimate (a track's is about 110 bytes).
const SMALL_ANSWER_BYTES: usize = 256;

/// `value` as a JSON body, written into `capacity` bytes reserved up front: axum's `Json`
/// starts at 128 and grows by doubling, which copied a search's answer about five times.
fn json_response(value: &impl Serialize, capacity: usize) -> Response {
    let mut body = Vec::with_capacity(capacity);
    match serde_json::to_writer(&mut body, value) {
        Ok(()) => (
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body,
        )
            .into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}
