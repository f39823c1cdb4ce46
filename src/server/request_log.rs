//! One layer counts, times, traces and logs every API request: the handler and the extractors
//! fill in what they learn (tenant, session id) in a [`LogFields`] the layer put in the
//! request, and the layer writes one JSON log line and the HTTP metrics once the response is
//! ready. The request runs in a trace scope that continues the caller's trace (`traceparent`,
//! `tracestate`) or starts one (unless `OTEL_PROPAGATORS=none`): every log line of the request
//! carries its trace ids, and the answer names them in `traceresponse`. When spans are
//! exported and the trace is sampled, it runs in the span `http.request` too.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use vector_service_trace::scope::{root_span_of, within};
use vector_service_trace::{scoped, Scope};

use super::error::ErrorDetail;
use super::metrics::UNAUTHENTICATED;
use super::state::Shared;

/// The component's bound on session ids (`wit/vector-service.wit`): a longer one (which the
/// component refuses) is not copied into the log.
const MAX_LOGGED_SESSION_ID: usize = 256;

#[derive(Default)]
struct Fields {
    tenant: Option<String>,
    session_id: String,
}

/// What the request log line says about a request, filled in while it is handled.
#[derive(Clone, Default)]
pub(super) struct LogFields(Arc<Mutex<Fields>>);

impl LogFields {
    /// The fields of the request `parts` belong to (a detached set outside the layer).
    pub(super) fn of(parts: &Parts) -> Self {
        parts.extensions.get::<Self>().cloned().unwrap_or_default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Fields) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The tenant (or `admin`) the request was authenticated as.
    pub(super) fn tenant(&self, name: &str) {
        self.with(|fields| fields.tenant = Some(name.to_string()));
    }

    /// The request's session id, unless it is over the component's bound.
    pub(super) fn session(&self, session_id: &str) {
        if session_id.len() <= MAX_LOGGED_SESSION_ID {
            self.with(|fields| fields.session_id = session_id.to_string());
        }
    }

    /// The session id recorded so far (empty when none).
    pub(super) fn session_id(&self) -> String {
        self.with(|fields| fields.session_id.clone())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for LogFields {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self::of(parts))
    }
}

/// The request's id: the caller's `X-Request-Id` when it is a plain token of at most 64
/// characters, else one made here (unique in the process, and across restarts by its time).
fn request_id(request: &Request) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static STARTED: LazyLock<u64> =
        LazyLock::new(vector_service_runtime::backends::records::unix_ms);
    let given = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
    match given {
        Some(id) => id.to_string(),
        None => format!("{:x}-{}", *STARTED, NEXT.fetch_add(1, Ordering::Relaxed)),
    }
}

/// The header naming a request in both directions, and in the log.
const REQUEST_ID: &str = "x-request-id";

/// The answer's W3C trace context header (Trace Context Level 2): the trace, and this
/// server's span in it.
const TRACE_RESPONSE: &str = "traceresponse";

/// A request header's value as text, if it is there and text.
fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
}

/// The labels of the logged routes (the `route` label of the request metrics).
pub(super) const ROUTES: [&str; 15] = [
    "search",
    "context",
    "contributors",
    "backfill",
    "backfill-job",
    "backfill-cancel",
    "records",
    "record",
    "usage",
    "reload",
    "tenants",
    "warm",
    "canary",
    "promote",
    "rollback",
];

/// The layer: `route` is the request's label in metrics and logs.
pub(super) async fn record(
    State((state, route)): State<(Shared, &'static str)>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let id = request_id(&request);
    let scope = Scope::for_request(
        header(&request, "traceparent"),
        header(&request, "tracestate"),
    );
    // The request's span, when spans are exported and this trace is sampled; its ids are the
    // scope's.
    let span = root_span_of(scope.as_ref(), || {
        tracing::info_span!(
            target: "vector_service::span",
            "http.request",
            "trace.root" = true,
            "otel.kind" = "server",
            "http.request.method" = %request.method(),
            "http.route" = route,
            "vector_service.request_id" = %id,
            tenant = tracing::field::Empty,
            "session.id" = tracing::field::Empty,
            "http.response.status_code" = tracing::field::Empty,
            "otel.status_code" = tracing::field::Empty,
        )
    });
    let fields = LogFields::default();
    request.extensions_mut().insert(fields.clone());
    let mut response = scoped(scope.clone(), span.clone(), next.run(request)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    if let Some(scope) = &scope {
        if let Ok(value) = HeaderValue::from_str(&scope.context.traceparent()) {
            response.headers_mut().insert(TRACE_RESPONSE, value);
        }
    }
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    let (tenant, session_id) =
        fields.with(|f| (f.tenant.take(), std::mem::take(&mut f.session_id)));
    let tenant = tenant.as_deref().unwrap_or(UNAUTHENTICATED);
    state.http.request(tenant, route, status, seconds);
    if !span.is_disabled() {
        span.record("tenant", tenant);
        span.record("session.id", session_id.as_str());
        span.record("http.response.status_code", status);
        if status >= 500 {
            span.record("otel.status_code", "error");
        }
    }
    // The request's lines carry its trace ids.
    let log = || {
        tracing::info!(
            target: "vector_service::http",
            request_id = %id,
            tenant,
            route,
            status,
            session_id,
            latency_ms = seconds * 1e3,
            "request"
        );
        // What the answer left out (a backend's or the host's own words) goes here only.
        if let Some(ErrorDetail(detail)) = response.extensions().get::<ErrorDetail>() {
            tracing::warn!(
                target: "vector_service::http",
                request_id = %id,
                tenant,
                route,
                status,
                detail = %detail,
                "request failed"
            );
        }
    };
    within(scope.as_ref(), log);
    response
}
