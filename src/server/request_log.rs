//! One layer counts, times and logs every API request: the handler and the extractors fill
//! in what they learn (tenant, session id) in a [`LogFields`] the layer put in the request,
//! and the layer writes one JSON log line and the HTTP metrics once the response is ready.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

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

/// The layer: `route` is the request's label in metrics and logs.
pub(super) async fn record(
    State((state, route)): State<(Shared, &'static str)>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let fields = LogFields::default();
    request.extensions_mut().insert(fields.clone());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    let (tenant, session_id) =
        fields.with(|f| (f.tenant.take(), std::mem::take(&mut f.session_id)));
    let tenant = tenant.as_deref().unwrap_or(UNAUTHENTICATED);
    state.http.request(tenant, route, status, seconds);
    tracing::info!(
        target: "vector_service::http",
        tenant,
        route,
        status,
        session_id,
        latency_ms = seconds * 1e3,
        "request"
    );
    response
}
