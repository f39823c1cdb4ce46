//! `wasi:logging` from the component, as `tracing` events with structured fields.
//!
//! The guest sends its fields as a JSON object in the `context` argument; the well-known ones
//! become typed `tracing` fields, and the whole object is kept as `fields` so nothing is lost.
//! Events use the target `vector_service::guest`.

use serde_json::{Map, Value};

use crate::bindings::wasi::logging::logging::Level;

/// Target of every event the component logs.
pub const GUEST_TARGET: &str = "vector_service::guest";

/// Emit one guest log line for `tenant`.
pub fn emit(tenant: &str, level: Level, context: &str, message: &str) {
    let fields = match serde_json::from_str::<Value>(context) {
        Ok(Value::Object(map)) => map,
        // A plain context string is a logger name, as wasi:logging intends.
        _ => Map::from_iter([("logger".to_string(), Value::from(context))]),
    };
    let text = |key: &str| fields.get(key).and_then(Value::as_str).unwrap_or_default();
    let number = |key: &str| fields.get(key).and_then(Value::as_f64);
    let session_id = text("session_id");
    let function = text("function");
    let logger = text("logger");
    let error = text("error");
    let latency_seconds = number("latency_seconds");
    let result_size = number("result_size");
    let all = Value::Object(fields.clone());

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
                fields = %all,
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
