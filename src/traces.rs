//! The process's `tracing` subscriber: log lines, trace context, and spans exported over
//! OTLP when the standard `OTEL_EXPORTER_OTLP_*` variables ask for it (see the README's
//! "Traces"). Spans are never created unless something records them.

use anyhow::Context as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};
use vector_service_json_logs::{DroppedLines, FlushOnDrop};
use vector_service_trace::otlp::{ExportStats, Exporter, OtlpConfig};
use vector_service_trace::TraceLayer;

/// Keeps the exporter running: dropping it posts the spans still queued (after the command
/// or the server is done).
pub struct Exporting {
    _exporter: Option<Exporter>,
    /// Its counts, for `/metrics`.
    pub stats: Option<ExportStats>,
}

/// The trace layer the environment asks for: recording into an exporter, or context only.
fn trace_layer() -> anyhow::Result<(TraceLayer, Exporting)> {
    let config = OtlpConfig::from_env().context("reading the OpenTelemetry variables")?;
    Ok(match config {
        None => (
            TraceLayer::propagating(),
            Exporting {
                _exporter: None,
                stats: None,
            },
        ),
        Some(config) => {
            let sampler = config.sampler;
            let (exporter, sink, stats) =
                Exporter::start(config).context("starting the span exporter thread")?;
            (
                TraceLayer::recording(sampler, sink),
                Exporting {
                    _exporter: Some(exporter),
                    stats: Some(stats),
                },
            )
        }
    })
}

/// The server's subscriber: JSON log lines (info and up unless RUST_LOG says otherwise),
/// formatted on the thread that logs and written to stderr in batches by a thread of their
/// own, so a slow stderr never blocks a request (lines past the buffer's bound are dropped and
/// counted, vector_service_log_lines_dropped_total); each line of a request carries its trace
/// id; spans exported when configured.
pub fn install_for_server() -> anyhow::Result<(DroppedLines, FlushOnDrop, Exporting)> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (logs, dropped, flush_on_exit) = vector_service_json_logs::layer(std::io::stderr(), filter)
        .context("starting the log writer thread")?;
    let (trace, exporting) = trace_layer()?;
    let record_work = exporting.stats.is_some();
    tracing_subscriber::registry()
        .with(logs)
        .with(trace.with_filter(vector_service_json_logs::trace_filter(record_work)))
        .try_init()
        .context("installing the log subscriber")?;
    Ok((dropped, flush_on_exit, exporting))
}

/// A command's subscriber: human-readable logs on stderr when RUST_LOG is set, spans exported
/// when configured (a command's trace continues the one `$TRACEPARENT` names, if any).
pub fn install_for_command() -> anyhow::Result<Exporting> {
    let logs = std::env::var_os("RUST_LOG").is_some().then(|| {
        use std::io::IsTerminal as _;
        let off = "vector_service::span=off"
            .parse()
            .expect("a valid directive");
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            // Colour codes only where a person reads them, never into a pipe or a file.
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(EnvFilter::from_default_env().add_directive(off))
    });
    let (trace, exporting) = trace_layer()?;
    if logs.is_none() && exporting.stats.is_none() {
        return Ok(exporting);
    }
    let record_work = exporting.stats.is_some();
    tracing_subscriber::registry()
        .with(logs)
        .with(trace.with_filter(vector_service_json_logs::trace_filter(record_work)))
        .try_init()
        .context("installing the log subscriber")?;
    Ok(exporting)
}

/// The span a command runs in: the root of its trace, or a child of `$TRACEPARENT`'s span (the
/// environment variable OpenTelemetry proposes for processes started by a traced one).
pub fn command_span(command: &'static str) -> tracing::Span {
    let traceparent = std::env::var("TRACEPARENT").unwrap_or_default();
    let tracestate = std::env::var("TRACESTATE").unwrap_or_default();
    tracing::info_span!(
        target: "vector_service::jobs",
        "vector_service.command",
        command,
        traceparent = traceparent.as_str(),
        tracestate = tracestate.as_str(),
    )
}
