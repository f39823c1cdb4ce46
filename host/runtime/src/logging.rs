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
    let function = function_label(event.operation);
    let session_id = event.session_id.as_str();
    let timestamp_ms = unix_ms();
    match event.phase {
        CallPhase::Start => {
            if tracing::enabled!(target: GUEST_TARGET, tracing::Level::INFO) {
                let fields = format!("{{\"timestamp_ms\":{timestamp_ms}}}");
                tracing::info!(target: GUEST_TARGET, tenant, session_id, function, logger = LOGGER, fields, "{function} start");
            }
        }
        CallPhase::End => {
            if tracing::enabled!(target: GUEST_TARGET, tracing::Level::INFO) {
                let fields = format!("{{\"timestamp_ms\":{timestamp_ms}}}");
                tracing::info!(
                    target: GUEST_TARGET,
                    tenant,
                    session_id,
                    function,
                    logger = LOGGER,
                    latency_seconds = event.latency_seconds,
                    result_size = event.result_size,
                    fields,
                    "{function} end"
                );
            }
        }
        CallPhase::Error => {
            if tracing::enabled!(target: GUEST_TARGET, tracing::Level::ERROR) {
                let (kind, error) = match &event.failure {
                    Some(failure) => (error_kind_label(failure.kind), failure.message.as_str()),
                    None => ("unknown", ""),
                };
                let fields =
                    format!("{{\"error_kind\":\"{kind}\",\"timestamp_ms\":{timestamp_ms}}}");
                tracing::error!(
                    target: GUEST_TARGET,
                    tenant,
                    session_id,
                    function,
                    logger = LOGGER,
                    latency_seconds = event.latency_seconds,
                    result_size = 0u32,
                    error,
                    fields,
                    "{function} error"
                );
            }
        }
    }
}

/// Target of every event the component logs.
pub const GUEST_TARGET: &str = "vector_service::guest";

/// Emit one guest log line for `tenant`.
pub fn emit(tenant: &str, level: Level, context: &str, message: &str) {
    let enabled = match level {
        Level::Trace => tracing::enabled!(target: GUEST_TARGET, tracing::Level::TRACE),
        Level::Debug => tracing::enabled!(target: GUEST_TARGET, tracing::Level::DEBUG),
        Level::Info => tracing::enabled!(target: GUEST_TARGET, tracing::Level::INFO),
        Level::Warn => tracing::enabled!(target: GUEST_TARGET, tracing::Level::WARN),
        Level::Error | Level::Critical => {
            tracing::enabled!(target: GUEST_TARGET, tracing::Level::ERROR)
        }
    };
    // Parsing the fields is the expensive part: skip it when nobody listens.
    if !enabled {
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

    macro_rules! event {
        ($level:expr) => {
            tracing::event!(
                target: GUEST_TARGET,
                $level,
                tenant,
                session_id,
                function,
                logger,
                latency_seconds,
                result_size,
                error,
                fields = extra,
                "{message}"
            )
        };
    }
    match level {
        Level::Trace => event!(tracing::Level::TRACE),
        Level::Debug => event!(tracing::Level::DEBUG),
        Level::Info => event!(tracing::Level::INFO),
        Level::Warn => event!(tracing::Level::WARN),
        Level::Error | Level::Critical => event!(tracing::Level::ERROR),
    }
}
