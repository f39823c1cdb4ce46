//! The JSON API: request bodies as the HTTP contract names them, turned into component
//! requests. Every operation runs on the blocking pool, inside the tenant's admission gate.

use std::collections::BTreeMap;

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use vector_service_runtime::api::{
    self, BackfillRequest, BucketRule, ContextRequest, SearchRequest, TrackRequest,
};

use crate::answers::{ContextAnswer, SearchAnswer, TrackAnswer};

/// `POST /v1/search`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    pub query: String,
    pub session_id: Option<String>,
    pub top_k: Option<u32>,
    pub threshold: Option<f64>,
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

/// `POST /v1/context`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextBody {
    pub task: String,
    pub session_id: Option<String>,
    pub top_k: Option<u32>,
    pub max_tokens: Option<u32>,
    /// Score weight per origin database, e.g. `{"bot": 2.0}`.
    #[serde(default)]
    pub db_weights: BTreeMap<String, f64>,
    /// The buckets, in output order; absent or empty: the five defaults.
    #[serde(default)]
    pub buckets: Vec<BucketBody>,
}

/// One bucket of `POST /v1/context`: `{origin, bucket, desc_keys?, label_key?, metric_keys?,
/// inverse_metric?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketBody {
    pub origin: String,
    pub bucket: String,
    #[serde(default = "crate::buckets::default_desc_keys")]
    pub desc_keys: Vec<String>,
    pub label_key: Option<String>,
    #[serde(default)]
    pub metric_keys: Vec<String>,
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

/// `POST /v1/contributors`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContributorsBody {
    pub vector_ids: Vec<String>,
    pub success: bool,
    pub patch_id: String,
    pub session_id: Option<String>,
    pub contribution: Option<f64>,
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

/// `POST /v1/backfill`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillBody {
    pub session_id: Option<String>,
    #[serde(default)]
    pub dbs: Vec<String>,
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

/// Bodies that may carry the caller's session id.
pub trait Session {
    fn session_id(&self) -> String;
}

macro_rules! session {
    ($($body:ty),*) => {$(
        impl Session for $body {
            fn session_id(&self) -> String {
                self.session_id.clone().unwrap_or_default()
            }
        }
    )*};
}
session!(SearchBody, ContextBody, ContributorsBody, BackfillBody);

/// Answers of the component: each names the session id it ran under (the caller's, or the one
/// the component generated), which the request log records, and becomes a JSON body (JSON the
/// contract carries in strings embedded as JSON, `crate::answers`).
pub trait Answer {
    fn session_id(&self) -> &str;
    fn respond(&self) -> Response;
}

macro_rules! answer {
    ($($response:ty => $view:expr),*) => {$(
        impl Answer for $response {
            fn session_id(&self) -> &str {
                &self.session_id
            }
            fn respond(&self) -> Response {
                Json($view(self)).into_response()
            }
        }
    )*};
}
answer!(
    api::SearchResponse => SearchAnswer,
    api::ContextResponse => ContextAnswer,
    api::TrackResponse => TrackAnswer,
    api::BackfillResponse => std::convert::identity
);
