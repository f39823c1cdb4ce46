//! The server's logs: one JSON object per line ([`format::JsonLines`]) appended to a bounded
//! buffer that a thread of its own writes out in batches ([`writer::BatchingWriter`]). A crate
//! of its own so that the server and the benchmarks that price a log line use the same stack.

pub mod format;
pub mod writer;

use std::io::Write;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;

pub use format::JsonLines;
pub use writer::{BatchingWriter, DroppedLines, FlushOnDrop};

/// The server's log stack as a subscriber: events `filter` lets through become JSON lines
/// written to `sink` by the writer thread. Keep the returned guard alive while it is in use;
/// dropping it writes what is still waiting.
pub fn subscriber(
    sink: impl Write + Send + 'static,
    filter: EnvFilter,
) -> std::io::Result<(impl Subscriber + Send + Sync, DroppedLines, FlushOnDrop)> {
    let (writer, dropped, flush_on_exit) = BatchingWriter::spawn(sink)?;
    let subscriber = tracing_subscriber::fmt()
        .event_format(JsonLines)
        .with_writer(writer)
        .with_env_filter(filter)
        .finish();
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
