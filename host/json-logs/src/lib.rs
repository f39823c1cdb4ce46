//! The server's logs: one JSON object per line ([`format::JsonLines`]) appended to a bounded
//! buffer that a thread of its own writes out in batches ([`writer::BatchingWriter`]). A crate
//! of its own so that the server and the benchmarks that price a log line use the same stack.

pub mod format;
pub mod writer;

use std::io::Write;

use tracing_subscriber::EnvFilter;

pub use format::JsonLines;
pub use writer::{BatchingWriter, DroppedLines, FlushOnDrop};

/// Install the server's log stack as the process's default subscriber: events `filter` lets
/// through become JSON lines written to `sink` by the writer thread. Keep the returned guard
/// alive until the process ends; dropping it writes what is still waiting.
pub fn install(
    sink: impl Write + Send + 'static,
    filter: EnvFilter,
) -> std::io::Result<(DroppedLines, FlushOnDrop)> {
    let (writer, dropped, flush_on_exit) = BatchingWriter::spawn(sink)?;
    tracing_subscriber::fmt()
        .event_format(JsonLines)
        .with_writer(writer)
        .with_env_filter(filter)
        .init();
    Ok((dropped, flush_on_exit))
}
