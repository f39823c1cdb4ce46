//! The path segments a route names (`{job}`, `{tenant}`, `{db}/{id}`), as an extractor whose
//! rejection is the API's JSON error: axum's own `Path` answers a segment that does not decode
//! (say `%ff`) in plain text.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The route's path segment (or a tuple of its segments), percent-decoded.
pub(super) struct Segment<T = String>(pub(super) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Segment<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(segment)| Self(segment))
            .map_err(|rejection| ApiError::bad_request(format!("path: {}", rejection.body_text())))
    }
}
