//! Traces for vector-service: each request's or job's place in its trace ([`Scope`], held by
//! the thread that works for it, read by log lines and outgoing requests), a `tracing` layer
//! that gives spans their trace context and records the sampled ones ([`TraceLayer`]), and,
//! with the `otlp` feature, their export to an OpenTelemetry collector over OTLP/HTTP
//! ([`otlp::Exporter`]), batched by a thread of its own behind a bounded queue.
//!
//! The runtime crate only opens `tracing` spans; a host chooses what receives them. The
//! server keeps a scope per request always (its ids cost no span), and creates spans only when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set (docs/decisions/0017-traces.md).

#![deny(missing_docs)]

pub mod context;
mod ids;
pub mod layer;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod sampler;
pub mod scope;

pub use context::{SpanId, TraceContext, TraceId};
pub use layer::{SpanKind, SpanRecord, SpanSink, Status, TraceLayer, Value};
pub use sampler::Sampler;
pub use scope::{current_scope, propagate, propagate_blocking, scoped, Scope};

use tracing_subscriber::registry::LookupSpan;

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

/// What an outgoing request passes on as `traceparent`: the current span's context when it
/// is recorded, else the scope's this thread works for.
pub fn current() -> Option<TraceContext> {
    context_of(&tracing::Span::current()).or_else(|| current_scope().map(|scope| scope.context))
}
