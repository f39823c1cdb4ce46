//! Request bodies, read only after the request is authenticated: the declared length decides
//! 413 before a byte is read (so `Expect: 100-continue` clients never send it), a JSON content
//! type is required for a non-empty body (a browser cannot send one cross-origin without a
//! preflight this server never grants), and reading is bounded in bytes and in time.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use http_body_util::BodyExt;

use super::error::ApiError;

/// Longest a client may take to send a body once its headers are in.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// After refusing an oversized body, how much of it is read and thrown away, and for how long,
/// so that the client (still writing) reads the 413 instead of a reset connection.
const LINGER_BYTES: usize = 16 << 20;
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_IDLE: Duration = Duration::from_millis(100);

/// Which media types a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    /// `application/json`.
    Json,
    /// `application/json` (one document), JSON lines (`application/x-ndjson`,
    /// `application/jsonl`) or CSV (`text/csv`).
    Records,
}

impl Accepts {
    fn allows(self, media_type: &str) -> bool {
        match self {
            Accepts::Json => media_type == "application/json",
            Accepts::Records => matches!(
                media_type,
                "application/json" | "application/x-ndjson" | "application/jsonl" | "text/csv"
            ),
        }
    }

    fn names(self) -> &'static str {
        match self {
            Accepts::Json => "application/json",
            Accepts::Records => {
                "application/json, application/x-ndjson, application/jsonl or text/csv"
            }
        }
    }
}

/// The body's declared length: `Some(0)` for a request that says it has none.
fn declared_length(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    match headers.get(header::CONTENT_LENGTH) {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| ApiError::bad_request("Content-Length is not a number")),
        None if headers.contains_key(header::TRANSFER_ENCODING) => Ok(None),
        None => Ok(Some(0)),
    }
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("100-continue"))
}

/// The media type of the request, lower case, without parameters.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let media_type = value.split(';').next()?.trim().to_ascii_lowercase();
    Some(media_type)
}

/// Read the whole body, at most `limit` bytes, of a media type `accepts` allows.
pub async fn read(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    accepts: Accepts,
) -> Result<Bytes, ApiError> {
    let declared = declared_length(headers)?;
    if declared == Some(0) {
        return Ok(Bytes::new());
    }
    match media_type(headers) {
        Some(media_type) if accepts.allows(&media_type) => {}
        _ => return Err(ApiError::unsupported_media_type(accepts.names())),
    }
    if declared.is_some_and(|length| length > limit as u64) {
        if !expects_continue(headers) {
            linger(body).await;
        }
        return Err(ApiError::too_large(limit));
    }
    match tokio::time::timeout(BODY_TIMEOUT, collect(body, limit)).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::body_timeout(BODY_TIMEOUT)),
    }
}

async fn collect(mut body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limit {
                linger(body).await;
                return Err(ApiError::too_large(limit));
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(bytes))
}

/// Read and discard what the client is still sending, within [`LINGER_BYTES`] and
/// [`LINGER_TIME`], stopping as soon as it pauses.
async fn linger(mut body: Body) {
    let discard = async {
        let mut discarded = 0;
        while discarded < LINGER_BYTES {
            match tokio::time::timeout(LINGER_IDLE, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    discarded += frame.data_ref().map_or(0, |data| data.len());
                }
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, discard).await;
}
