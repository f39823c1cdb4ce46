//! The component's log lines, as `tracing` events with structured fields, target
//! `vector_service::guest`.
//!
//! A call's start, end and error lines arrive typed (`telemetry.record-call`) and are formatted
//! here only when the level is enabled. Other lines come through `wasi:logging` with their
//! fields as a JSON object in the `context` argument; the well-known ones become typed
//! `tracing` fields, and the rest is kept as JSON in `fields` so nothing is lost.

use serde_json::{Map, Value};

use crate::backends::records::unix_ms;
use crate::bindings::vector_service::plugin::telemetry::{CallEvent, CallPhase};
use crate::bindings::wasi::logging::logging::Level;
use crate::telemetry::{error_kind_label, function_label};

/// The logger name of the component's call lines (the original module's logger).
const LOGGER: &str = "vector_service";

/// Emit the log line of one phase of a call for `tenant`, with the fields a guest line has:
/// `session_id`, `function`, `logger`, `latency_seconds` and `result_size` (after the start),
/// `error`, and `fields` holding `timestamp_ms` (and `error_kind` on an error).
pub fn emit_call(tenant: &str, event: &CallEvent) {
    let (level, phase) = match event.phase {
        CallPhase::Start => (tracing::Level::INFO, "start"),
        CallPhase::End => (tracing::Level::INFO, "end"),
        CallPhase::Error => (tracing::Level::ERROR, "error"),
    };
    if !enabled(level) {
        return;
    }
    let function = function_label(event.operation);
    let started = matches!(event.phase, CallPhase::Start);
    let timestamp_ms = unix_ms();
    let (error, fields) = match &event.failure {
        Some(failure) => (
            Some(failure.message.as_str()),
            format!(
                "{{\"error_kind\":\"{}\",\"timestamp_ms\":{timestamp_ms}}}",
                error_kind_label(failure.kind)
            ),
        ),
        None => (None, format!("{{\"timestamp_ms\":{timestamp_ms}}}")),
    };
    GuestLine {
        tenant,
        session_id: &event.session_id,
        function: Some(function),
        logger: Some(LOGGER),
        latency_seconds: (!started).then_some(event.latency_seconds),
        result_size: (!started).then_some(u64::from(event.result_size)),
        error,
        fields: Some(&fields),
    }
    .emit(level, format_args!("{function} {phase}"));
}

/// Target of every event the component logs.
pub const GUEST_TARGET: &str = "vector_service::guest";

/// Whether a guest line at `level` would be written.
fn enabled(level: tracing::Level) -> bool {
    match level {
        tracing::Level::TRACE => tracing::enabled!(target: GUEST_TARGET, tracing::Level::TRACE),
        tracing::Level::DEBUG => tracing::enabled!(target: GUEST_TARGET, tracing::Level::DEBUG),
        tracing::Level::INFO => tracing::enabled!(target: GUEST_TARGET, tracing::Level::INFO),
        tracing::Level::WARN => tracing::enabled!(target: GUEST_TARGET, tracing::Level::WARN),
        tracing::Level::ERROR => tracing::enabled!(target: GUEST_TARGET, tracing::Level::ERROR),
    }
}

/// The fields every guest line has; absent ones are left out of the line.
struct GuestLine<'a> {
    tenant: &'a str,
    session_id: &'a str,
    function: Option<&'a str>,
    logger: Option<&'a str>,
    latency_seconds: Option<f64>,
    result_size: Option<u64>,
    error: Option<&'a str>,
    /// Whatever else the guest sent, as a JSON object.
    fields: Option<&'a str>,
}

impl GuestLine<'_> {
    fn emit(self, level: tracing::Level, message: std::fmt::Arguments<'_>) {
        macro_rules! event {
            ($level:expr) => {
                tracing::event!(
                    target: GUEST_TARGET,
                    $level,
                    tenant = self.tenant,
                    session_id = self.session_id,
                    function = self.function,
                    logger = self.logger,
                    latency_seconds = self.latency_seconds,
                    result_size = self.result_size,
                    error = self.error,
                    fields = self.fields,
                    "{message}"
                )
            };
        }
        match level {
            tracing::Level::TRACE => event!(tracing::Level::TRACE),
            tracing::Level::DEBUG => event!(tracing::Level::DEBUG),
            tracing::Level::INFO => event!(tracing::Level::INFO),
            tracing::Level::WARN => event!(tracing::Level::WARN),
            tracing::Level::ERROR => event!(tracing::Level::ERROR),
        }
    }
}

/// Emit one guest log line for `tenant`.
pub fn emit(tenant: &str, level: Level, context: &str, message: &str) {
    let level = match level {
        Level::Trace => tracing::Level::TRACE,
        Level::Debug => tracing::Level::DEBUG,
        Level::Info => tracing::Level::INFO,
        Level::Warn => tracing::Level::WARN,
        Level::Error | Level::Critical => tracing::Level::ERROR,
    };
    // Parsing the fields is the expensive part: skip it when nobody listens.
    if !enabled(level) {
        return;
    }
    let mut fields = match serde_json::from_str::<Value>(context) {
        Ok(Value::Object(map)) => map,
        // A plain context string is a logger name, as wasi:logging intends.
        _ => Map::from_iter([("logger".to_string(), Value::from(context))]),
    };
    let mut take_text = |key: &str| match fields.remove(key) {
        Some(Value::String(text)) => Some(text),
        Some(other) => Some(other.to_string()),
        None => None,
    };
    let session_id = take_text("session_id").unwrap_or_default();
    let function = take_text("function");
    let logger = take_text("logger");
    let error = take_text("error");
    let latency_seconds = fields.remove("latency_seconds").and_then(|v| v.as_f64());
    let result_size = fields.remove("result_size").and_then(|v| v.as_u64());
    // Whatever else the guest sent (timestamp, database, batch counts, ...), kept verbatim.
    let extra = (!fields.is_empty()).then(|| Value::Object(fields).to_string());
    GuestLine {
        tenant,
        session_id: &session_id,
        function: function.as_deref(),
        logger: logger.as_deref(),
        latency_seconds,
        result_size,
        error: error.as_deref(),
        fields: extra.as_deref(),
    }
    .emit(level, format_args!("{message}"));
}
