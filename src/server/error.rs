//! Every error the API returns: JSON `{"error": {"kind", "message"}}` with the status that
//! tells a client what to do (fix the request, authenticate, slow down, retry later).

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use vector_service_runtime::backends::StoreFault;
use vector_service_runtime::ServiceError;

use crate::failure::Failure;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable kind.
    pub kind: &'static str,
    /// For humans.
    pub message: String,
    /// Seconds for `Retry-After` (429 and 503).
    pub retry_after: Option<u64>,
    /// What went wrong in full, for the log only (the request log writes it beside the
    /// request's id): the body says what went wrong without it.
    pub detail: Option<String>,
}

/// An error's detail, carried from the answer to the request log.
#[derive(Clone)]
pub struct ErrorDetail(pub String);

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            retry_after: None,
            detail: None,
        }
    }

    /// The same error with `detail` for the log.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// 400: the request cannot be used as sent.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", message)
    }

    /// 400: a field past the contract's bounds, as the component names it.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed-prompt", message)
    }

    /// 401, saying nothing about which part was wrong.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid `Authorization: Bearer <key>` is required",
        )
    }

    /// 404.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "no such route")
    }

    /// 404 for a thing the route names (a job) that the tenant does not have.
    pub fn not_found_thing(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", message)
    }

    /// 405.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "this route does not take that method",
        )
    }

    /// 413.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!("the request body exceeds {limit} bytes"),
        )
    }

    /// 415: a body that is not of a media type the route takes.
    pub fn unsupported_media_type(accepted: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!("the body must be sent with Content-Type {accepted}"),
        )
    }

    /// 408: the body did not arrive in time.
    pub fn body_timeout(limit: Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            format!("the body did not arrive within {} s", limit.as_secs()),
        )
    }

    /// 403: the request may not be made from where it comes from (a browser page, a name
    /// that is not this machine's), or the route is switched off.
    pub fn forbidden(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, kind, message)
    }

    /// 429 from the tenant's request rate.
    pub fn rate_limited(wait: Duration) -> Self {
        Self {
            retry_after: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "the tenant's request rate is exceeded",
            )
        }
    }

    /// 503: every slot of the tenant stayed busy for the queue wait.
    pub fn overloaded() -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "all of the tenant's call slots are busy",
            )
        }
    }

    /// 503: the tenant cannot serve now (its store could not be opened).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(5),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
        }
    }

    /// 409: the tenant already runs a backfill.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 502: a backend (the tenant's store) failed.
    pub fn backend(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "backend", message)
    }

    /// A write refused, or failed, for the store's lasting fault: 503 `store-damaged` (no
    /// retry helps until an operator restores the file) or 507 `storage-full` (retry once there
    /// is room).
    pub fn store_fault(tenant: &str, fault: StoreFault) -> Self {
        let message = format!("tenant {tenant:?}: {fault}");
        match fault {
            StoreFault::Damaged => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, fault.kind(), message)
            }
            StoreFault::Full => Self {
                retry_after: Some(30),
                ..Self::new(StatusCode::INSUFFICIENT_STORAGE, fault.kind(), message)
            },
        }
    }

    /// 507 `quota-exceeded`: the write would take the tenant's database past its storage
    /// quota; nothing was written, reads go on.
    pub fn quota_exceeded(tenant: &str, used: u64, adding: u64, quota: u64) -> Self {
        let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
        Self::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "quota-exceeded",
            format!(
                "tenant {tenant:?}: its database takes {:.1} MiB of its {:.0} MiB storage quota, and this write brings {:.1} MiB more: nothing was written; delete records or ask the operator for a larger storage_mib",
                mib(used),
                mib(quota),
                mib(adding)
            ),
        )
    }

    /// 500: a bug, ours or the component's.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

/// A failure of the server's own work, told as a sentence (500 `internal`).
impl From<String> for ApiError {
    fn from(message: String) -> Self {
        ApiError::internal(message)
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        let Failure { kind, message } = Failure::of_service(&error);
        let status = match kind {
            "malformed-prompt" => StatusCode::BAD_REQUEST,
            "rate-limited" => StatusCode::TOO_MANY_REQUESTS,
            "backend" => StatusCode::BAD_GATEWAY,
            "limit-exceeded" => StatusCode::PAYLOAD_TOO_LARGE,
            "internal" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        let retry_after = matches!(kind, "rate-limited" | "unavailable").then_some(1);
        // The sandbox's detail (a wasm backtrace) and a host failure's chain go to the log;
        // callers get the reason.
        let (message, detail) = match &error {
            ServiceError::Host(error) => (
                "the host could not run the call".to_string(),
                Some(format!("{error:#}")),
            ),
            _ => (message, None),
        };
        Self {
            retry_after,
            detail,
            ..Self::new(status, kind, message)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Failure::new(self.kind, self.message).body();
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(detail) = self.detail {
            response.extensions_mut().insert(ErrorDetail(detail));
        }
        response
    }
}
