//! The server's logs: one JSON object per line ([`format::JsonLines`]) appended to a bounded
//! buffer that a thread of its own writes out in batches ([`writer::BatchingWriter`]). A crate
//! of its own so that the server and the benchmarks that price a log line use the same stack.
//!
//! A line logged while a thread works for a request, a job or a command carries its trace's ids
//! (`trace_id`, `span_id`), from the thread's [`vector_service_trace::Scope`].

pub mod format;
pub mod writer;

use std::io::Write;

use tracing::Subscriber;
use tracing_subscriber::filter::Directive;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};

pub use format::JsonLines;
pub use writer::{BatchingWriter, DroppedLines, FlushOnDrop};

/// The log layer: the events the subscriber's filter lets through become JSON lines written
/// to `sink` by the writer thread. Keep the returned guard alive while it is in use; dropping
/// it writes what is still waiting.
pub fn layer<S>(
    sink: impl Write + Send + 'static,
) -> std::io::Result<(impl Layer<S> + Send + Sync, DroppedLines, FlushOnDrop)>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let (writer, dropped, flush_on_exit) = BatchingWriter::spawn(sink)?;
    let layer = tracing_subscriber::fmt::layer()
        .event_format(JsonLines)
        .fmt_fields(format::NoSpanFields)
        .with_writer(writer);
    Ok((layer, dropped, flush_on_exit))
}

/// `filter` (from `RUST_LOG`) as the subscriber's one filter, with the work spans
/// (`vector_service::span`) on when they are exported and off otherwise, whatever it says:
/// one filter for every layer costs an event less than a filter per layer (BENCHMARKS.md,
/// "Traces"), and with the spans off their callsites are disabled and create no span.
pub fn with_work_spans(filter: EnvFilter, exported: bool) -> EnvFilter {
    let directive = if exported {
        "vector_service::span=info"
    } else {
        "vector_service::span=off"
    };
    filter.add_directive(directive.parse::<Directive>().expect("a valid directive"))
}

/// The server's log stack as a subscriber, exporting no spans (what the benchmarks price).
pub fn subscriber(
    sink: impl Write + Send + 'static,
    filter: EnvFilter,
) -> std::io::Result<(impl Subscriber + Send + Sync, DroppedLines, FlushOnDrop)> {
    let (logs, dropped, flush_on_exit) = layer(sink)?;
    let subscriber = tracing_subscriber::registry()
        .with(logs)
        .with(with_work_spans(filter, false));
    Ok((subscriber, dropped, flush_on_exit))
}
