//! An OpenAI-compatible `/v1/embeddings` endpoint as the embedder: what production users run
//! (text-embeddings-inference, vLLM, Ollama, OpenAI itself). Requests are batched, time-boxed
//! and retried with exponential backoff on the failures that pass (connection errors,
//! timeouts, 429, 5xx); anything else fails at once with the server's message.
#![deny(missing_docs)]

use std::time::Duration;

use serde::{Deserialize, Serialize};

use vector_service_runtime::api::BackendError;
use vector_service_runtime::backends::Embedder;
use vector_service_runtime::deadline;

/// How to reach and use the endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpEmbedderConfig {
    /// Base URL up to and including `/v1`; requests go to `{base_url}/embeddings`.
    pub base_url: String,
    /// The `model` field of each request.
    pub model: String,
    /// Sent as `Authorization: Bearer ...` when set.
    pub api_key: Option<String>,
    /// Length of the vectors the model returns; every response is checked against it.
    pub dimensions: usize,
    /// Most texts per request.
    pub batch_size: usize,
    /// Whole-request time limit (connect, send, wait, read).
    pub timeout: Duration,
    /// Retries after the first attempt for failures that pass.
    pub retries: u32,
    /// Wait before the first retry; doubles per retry (a `Retry-After` header wins, capped).
    pub backoff: Duration,
}

impl HttpEmbedderConfig {
    /// Defaults for everything but the endpoint and model.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            dimensions: 384,
            batch_size: 64,
            timeout: Duration::from_secs(30),
            retries: 3,
            backoff: Duration::from_millis(200),
        }
    }
}

/// The longest a `Retry-After` header may make us wait.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

#[derive(Serialize)]
struct EmbeddingsRequest<'a> {
    model: &'a str,
    input: &'a [&'a str],
}

#[derive(Deserialize)]
struct EmbeddingsResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    embedding: Vec<f32>,
    #[serde(default)]
    index: Option<usize>,
}

/// One failed attempt: whether trying again can help, and how long the server asked us to wait.
struct AttemptError {
    error: BackendError,
    transient: bool,
    retry_after: Option<Duration>,
}

/// Embeds through an OpenAI-compatible HTTP endpoint.
pub struct HttpEmbedder {
    config: HttpEmbedderConfig,
    agent: ureq::Agent,
    version: String,
}

impl HttpEmbedder {
    /// An embedder for `config` (no request is made until the first `embed`).
    pub fn new(config: HttpEmbedderConfig) -> Self {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(config.timeout))
                .http_status_as_error(false)
                .build(),
        );
        let version = format!(
            "openai-compatible:{}:{}-dims",
            config.model, config.dimensions
        );
        Self {
            config,
            agent,
            version,
        }
    }

    fn url(&self) -> String {
        format!("{}/embeddings", self.config.base_url.trim_end_matches('/'))
    }

    fn attempt(&self, batch: &[&str]) -> Result<Vec<Vec<f32>>, AttemptError> {
        let url = self.url();
        let span = vector_service_runtime::work_span!(
            "embedder.http",
            "otel.kind" = "client",
            "http.request.method" = "POST",
            "url.full" = %url,
            inputs = batch.len(),
            "http.response.status_code" = tracing::field::Empty,
        );
        let _entered = span.enter();
        let result = self.attempt_in_span(url, batch, &span);
        if let Err(failure) = &result {
            vector_service_runtime::spans::failed(&span, &failure.error);
        }
        result
    }

    fn attempt_in_span(
        &self,
        url: String,
        batch: &[&str],
        span: &tracing::Span,
    ) -> Result<Vec<Vec<f32>>, AttemptError> {
        let mut request = self.agent.post(url);
        if let Some(key) = &self.config.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        // The trace goes on with the endpoint: this request's span is its parent there.
        if let Some(context) = vector_service_trace::current() {
            request = request.header("traceparent", context.traceparent());
            if let Some(state) = &context.state {
                request = request.header("tracestate", &**state);
            }
        }
        // A request made for a call ends at the call's deadline at the latest.
        let timeout = deadline::cap(self.config.timeout);
        if timeout.is_zero() {
            return Err(AttemptError {
                error: BackendError::Unavailable(deadline::DEADLINE_MESSAGE.into()),
                transient: false,
                retry_after: None,
            });
        }
        let request = request.config().timeout_global(Some(timeout)).build();
        let response = request.send_json(EmbeddingsRequest {
            model: &self.config.model,
            input: batch,
        });
        let mut response = match response {
            Ok(response) => response,
            Err(error) => {
                return Err(AttemptError {
                    error: BackendError::Unavailable(format!("embedding endpoint: {error}")),
                    transient: true,
                    retry_after: None,
                })
            }
        };
        let status = response.status().as_u16();
        span.record("http.response.status_code", status);
        if status != 200 {
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok())
                .map(|seconds| Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
            let body = response
                .body_mut()
                .with_config()
                .limit(4096)
                .read_to_string()
                .unwrap_or_default();
            // The body goes to the log only: an endpoint's error text (which may quote a key
            // or an internal address) must not reach the tenant's answer.
            tracing::warn!(status, body = %body.trim(), "the embedding endpoint refused a request");
            let message = format!("embedding endpoint answered {status}");
            return Err(match status {
                429 => AttemptError {
                    error: BackendError::RateLimited(message),
                    transient: true,
                    retry_after,
                },
                500..=599 => AttemptError {
                    error: BackendError::Unavailable(message),
                    transient: true,
                    retry_after,
                },
                _ => AttemptError {
                    error: BackendError::Failed(message),
                    transient: false,
                    retry_after: None,
                },
            });
        }
        let parsed: EmbeddingsResponse =
            response
                .body_mut()
                .read_json()
                .map_err(|error| AttemptError {
                    error: BackendError::Failed(format!(
                        "embedding endpoint sent bad JSON: {error}"
                    )),
                    transient: false,
                    retry_after: None,
                })?;
        self.check(batch.len(), parsed)
            .map_err(|error| AttemptError {
                error,
                transient: false,
                retry_after: None,
            })
    }

    /// Order by `index`, check count and length, L2-normalise.
    fn check(
        &self,
        expected: usize,
        mut parsed: EmbeddingsResponse,
    ) -> Result<Vec<Vec<f32>>, BackendError> {
        if parsed.data.len() != expected {
            return Err(BackendError::Failed(format!(
                "embedding endpoint returned {} vectors for {expected} texts",
                parsed.data.len()
            )));
        }
        parsed
            .data
            .sort_by_key(|item| item.index.unwrap_or(usize::MAX));
        parsed
            .data
            .into_iter()
            .map(|item| {
                let mut vector = item.embedding;
                if vector.len() != self.config.dimensions {
                    return Err(BackendError::Failed(format!(
                        "embedding endpoint returned {}-dimensional vectors, configured {}: set the embedding dimensions to match the model",
                        vector.len(),
                        self.config.dimensions
                    )));
                }
                vector_service_runtime::backends::hashing_embedder::normalise(&mut vector);
                Ok(vector)
            })
            .collect()
    }

    fn embed_batch(&self, batch: &[&str]) -> Result<Vec<Vec<f32>>, BackendError> {
        let mut wait = self.config.backoff;
        let mut attempt = 0;
        loop {
            match self.attempt(batch) {
                Ok(vectors) => return Ok(vectors),
                Err(failed)
                    if failed.transient
                        && attempt < self.config.retries
                        && !deadline::expired() =>
                {
                    attempt += 1;
                    tracing::warn!(error = %failed.error, attempt, "retrying the embedding request");
                    std::thread::sleep(deadline::cap(failed.retry_after.unwrap_or(wait)));
                    wait *= 2;
                }
                Err(failed) => return Err(failed.error),
            }
        }
    }
}

impl Embedder for HttpEmbedder {
    fn version(&self) -> &str {
        &self.version
    }

    fn dimensions(&self) -> usize {
        self.config.dimensions
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, BackendError> {
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.config.batch_size.max(1)) {
            vectors.extend(self.embed_batch(batch)?);
        }
        Ok(vectors)
    }
}
