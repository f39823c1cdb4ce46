//! Traces for vector-service: W3C trace context on `tracing` spans ([`TraceLayer`]), and, with
//! the `otlp` feature, their export to an OpenTelemetry collector over OTLP/HTTP
//! ([`otlp::Exporter`]), batched by a thread of its own with a bounded queue.
//!
//! The runtime crate only opens `tracing` spans; a host chooses what receives them. The
//! server installs [`TraceLayer`] always (trace ids for its logs and headers) and records
//! spans only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set.

#![deny(missing_docs)]

pub mod context;
mod ids;
pub mod layer;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod sampler;

pub use context::{SpanId, TraceContext, TraceId};
pub use layer::{SpanKind, SpanRecord, SpanSink, Status, TraceLayer, Value};
pub use sampler::Sampler;

use tracing_subscriber::registry::LookupSpan;

/// Target of the spans that show where a request's time goes (calls, backends, stores): hosts
/// that log at `info` keep them out of their logs with `vector_service::span=off`, so when
/// nothing records them they are never created.
pub const SPAN_TARGET: &str = "vector_service::span";

/// The trace context of `span`, or of its nearest ancestor that has one. None when `span` is
/// disabled or no [`TraceLayer`] is installed over a `tracing_subscriber::Registry`.
pub fn context_of(span: &tracing::Span) -> Option<TraceContext> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let span = registry.span(id)?;
        span.scope()
            .find_map(|s| s.extensions().get::<TraceContext>().cloned())
    })
    .flatten()
}

/// [`context_of`] the current span: what an outgoing request passes on as `traceparent`.
pub fn current() -> Option<TraceContext> {
    context_of(&tracing::Span::current())
}
