//! The process's `tracing` subscriber and trace context: log lines, each request's or
//! command's [`Scope`] (its trace ids in every log line), and spans exported over OTLP when the
//! standard `OTEL_EXPORTER_OTLP_*` variables ask for it (see the README's "Traces"). Without
//! an exporter no span of the service is ever created.

use anyhow::Context as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};
use vector_service_json_logs::{DroppedLines, FlushOnDrop};
use vector_service_trace::otlp::{ExportStats, Exporter, OtlpConfig};
use vector_service_trace::scope::{root_span_of, within};
use vector_service_trace::{scope, Scope, TraceLayer};

/// Keeps the exporter running: dropping it posts the spans still queued (after the command
/// or the server is done).
pub struct Exporting {
    _exporter: Option<Exporter>,
    /// Its counts, for `/metrics`.
    pub stats: Option<ExportStats>,
}

/// The span recorder the environment asks for (None: no exporter), with the sampler set for
/// every scope.
fn trace_layer() -> anyhow::Result<(Option<TraceLayer>, Exporting)> {
    let propagators = std::env::var("OTEL_PROPAGATORS").ok();
    scope::set_propagating(scope::propagation_from(propagators.as_deref())?);
    let config = OtlpConfig::from_env().context("reading the OpenTelemetry variables")?;
    let Some(config) = config else {
        return Ok((
            None,
            Exporting {
                _exporter: None,
                stats: None,
            },
        ));
    };
    let sampler = config.sampler;
    let (exporter, sink, stats) =
        Exporter::start(config).context("starting the span exporter thread")?;
    scope::configure(sampler, true);
    // A request that is not sampled opens no span at all.
    vector_service_runtime::spans::open_only_when(|| {
        scope::with_current(|scope| scope.is_none_or(|scope| scope.context.sampled()))
    });
    Ok((
        Some(TraceLayer::recording(sampler, sink)),
        Exporting {
            _exporter: Some(exporter),
            stats: Some(stats),
        },
    ))
}

/// The spans the recorder sees: the service's own.
fn spans() -> Targets {
    Targets::new().with_target("vector_service", tracing::Level::INFO)
}

/// The server's subscriber: JSON log lines (info and up unless RUST_LOG says otherwise),
/// formatted on the thread that logs and written to stderr in batches by a thread of their
/// own, so a slow stderr never blocks a request (lines past the buffer's bound are dropped and
/// counted, vector_service_log_lines_dropped_total); spans exported when configured.
pub fn install_for_server() -> anyhow::Result<(DroppedLines, FlushOnDrop, Exporting)> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (logs, dropped, flush_on_exit) = vector_service_json_logs::layer(std::io::stderr())
        .context("starting the log writer thread")?;
    let (trace, exporting) = trace_layer()?;
    let filter = vector_service_json_logs::with_work_spans(filter, trace.is_some());
    // One filter for both layers; the spans it lets through reach the log layer too, which
    // writes none of their fields.
    tracing_subscriber::registry()
        .with(logs)
        .with(trace)
        .with(filter)
        .try_init()
        .context("installing the log subscriber")?;
    Ok((dropped, flush_on_exit, exporting))
}

/// A command's subscriber: human-readable logs on stderr when RUST_LOG is set, spans exported
/// when configured.
pub fn install_for_command() -> anyhow::Result<Exporting> {
    let logs = std::env::var_os("RUST_LOG").is_some().then(|| {
        use std::io::IsTerminal as _;
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            // Colour codes only where a person reads them, never into a pipe or a file.
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(vector_service_json_logs::with_work_spans(
                EnvFilter::from_default_env(),
                false,
            ))
    });
    let (trace, exporting) = trace_layer()?;
    if logs.is_some() || trace.is_some() {
        tracing_subscriber::registry()
            .with(logs)
            .with(trace.map(|trace| trace.with_filter(spans())))
            .try_init()
            .context("installing the log subscriber")?;
    }
    Ok(exporting)
}

/// Run command `name` in its scope: under `$TRACEPARENT`'s span when it is set (the variable
/// OpenTelemetry proposes for processes started by a traced one), else a trace of its own;
/// inside its root span when spans are exported.
pub fn in_command_scope<R>(name: &'static str, work: impl FnOnce() -> R) -> R {
    let traceparent = std::env::var("TRACEPARENT").ok();
    let tracestate = std::env::var("TRACESTATE").ok();
    let scope = Scope::for_request(traceparent.as_deref(), tracestate.as_deref());
    within(scope.as_ref(), || {
        let span = root_span_of(scope.as_ref(), || {
            tracing::info_span!(
                target: "vector_service::span",
                "vector_service.command",
                "trace.root" = true,
                command = name,
            )
        });
        span.in_scope(work)
    })
}
