//! The exported error type: classification, messages and mapping from backend errors.

use crate::bindings::vector_service::plugin::telemetry::ErrorKind;
use crate::bindings::vector_service::plugin::types::{BackendError, Error};

/// The metric label of an error.
pub fn kind(error: &Error) -> ErrorKind {
    match error {
        Error::MalformedPrompt(_) => ErrorKind::MalformedPrompt,
        Error::RateLimited(_) => ErrorKind::RateLimited,
        Error::Backend(_) => ErrorKind::Backend,
        Error::LimitExceeded(_) => ErrorKind::LimitExceeded,
        Error::Unavailable(_) => ErrorKind::Unavailable,
    }
}

/// The message every error case carries.
pub fn message(error: &Error) -> &str {
    match error {
        Error::MalformedPrompt(m)
        | Error::RateLimited(m)
        | Error::Backend(m)
        | Error::LimitExceeded(m)
        | Error::Unavailable(m) => m,
    }
}

/// The message of a backend error.
pub fn backend_message(error: &BackendError) -> &str {
    match error {
        BackendError::RateLimited(m) | BackendError::Unavailable(m) | BackendError::Failed(m) => m,
    }
}

/// Whether a backend error asks for a retry: the typed case, or (as the original module
/// detected it) a message that mentions a rate limit or HTTP 429.
pub fn is_rate_limited(error: &BackendError) -> bool {
    if matches!(error, BackendError::RateLimited(_)) {
        return true;
    }
    let message = backend_message(error).to_ascii_lowercase();
    message.contains("rate limit") || message.contains("429")
}

/// A backend error as the caller sees it.
pub fn from_backend(error: BackendError) -> Error {
    if is_rate_limited(&error) {
        return Error::RateLimited(backend_message(&error).to_string());
    }
    match error {
        BackendError::Unavailable(m) => Error::Unavailable(m),
        BackendError::Failed(m) | BackendError::RateLimited(m) => Error::Backend(m),
    }
}

/// A bad-input error.
pub fn malformed(message: impl Into<String>) -> Error {
    Error::MalformedPrompt(message.into())
}
