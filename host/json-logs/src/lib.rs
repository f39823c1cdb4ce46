//! The server's logs: one JSON object per line ([`format::JsonLines`]) appended to a bounded
//! buffer that a thread of its own writes out in batches ([`writer::BatchingWriter`]). A crate
//! of its own so that the server and the benchmarks that price a log line use the same stack.
//!
//! A line logged inside a request carries its trace's ids (`trace_id`, `span_id`), which a
//! [`vector_service_trace::TraceLayer`] in the same subscriber gives the request's span.

pub mod format;
pub mod writer;

use std::io::Write;

use tracing::Subscriber;
use tracing_subscriber::filter::{Directive, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};
use vector_service_trace::TraceLayer;

pub use format::JsonLines;
pub use writer::{BatchingWriter, DroppedLines, FlushOnDrop};

/// Targets of the spans that carry a trace's ids into log lines: a request's, a job's.
pub const TRACE_ROOT_TARGETS: [&str; 2] = ["vector_service::http", "vector_service::jobs"];

/// The log layer: events `filter` lets through become JSON lines written to `sink` by the
/// writer thread. `filter` never enables the spans of `vector_service::span` (the work spans
/// only a trace exporter records), so logging does not create them. Keep the returned guard
/// alive while it is in use; dropping it writes what is still waiting.
pub fn layer<S>(
    sink: impl Write + Send + 'static,
    filter: EnvFilter,
) -> std::io::Result<(impl Layer<S> + Send + Sync, DroppedLines, FlushOnDrop)>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let (writer, dropped, flush_on_exit) = BatchingWriter::spawn(sink)?;
    let off: Directive = "vector_service::span=off"
        .parse()
        .expect("a valid directive");
    let layer = tracing_subscriber::fmt::layer()
        .event_format(JsonLines)
        .fmt_fields(format::NoSpanFields)
        .with_writer(writer)
        .with_filter(filter.add_directive(off));
    Ok((layer, dropped, flush_on_exit))
}

/// Which spans a [`TraceLayer`] beside the log layer sees: the trace roots only, or every
/// span of the service when `record_work` (an exporter records them).
pub fn trace_filter(record_work: bool) -> Targets {
    if record_work {
        Targets::new().with_target("vector_service", tracing::Level::INFO)
    } else {
        TRACE_ROOT_TARGETS
            .iter()
            .fold(Targets::new(), |targets, target| {
                targets.with_target(*target, tracing::Level::INFO)
            })
    }
}

/// The server's log stack as a subscriber, with trace context but no exporter (what the
/// benchmarks price).
pub fn subscriber(
    sink: impl Write + Send + 'static,
    filter: EnvFilter,
) -> std::io::Result<(impl Subscriber + Send + Sync, DroppedLines, FlushOnDrop)> {
    let (logs, dropped, flush_on_exit) = layer(sink, filter)?;
    let subscriber = tracing_subscriber::registry()
        .with(logs)
        .with(TraceLayer::propagating().with_filter(trace_filter(false)));
    Ok((subscriber, dropped, flush_on_exit))
}

/// [`subscriber`], installed as the process's default (once per process).
pub fn install(
    sink: impl Write + Send + 'static,
    filter: EnvFilter,
) -> std::io::Result<(DroppedLines, FlushOnDrop)> {
    let (subscriber, dropped, flush_on_exit) = self::subscriber(sink, filter)?;
    tracing::subscriber::set_global_default(subscriber).map_err(std::io::Error::other)?;
    Ok((dropped, flush_on_exit))
}
