//! Cross-cutting call instrumentation: session ids, start/end/error logs and call metrics.

use serde_json::{Map, Value};

use crate::bindings::vector_service::plugin::telemetry::{
    self, CallEvent, CallFailure, CallPhase, Operation,
};
use crate::bindings::vector_service::plugin::types::Error;
use crate::bindings::vector_service::plugin::{clock, ids};
use crate::bindings::wasi::logging::logging::{log, Level};
use crate::{bounds, errors};

/// The logger name every event carries (the original module's logger).
const LOGGER: &str = "vector_service";

/// The `Class.method` name the original module logged and labelled metrics with.
pub fn operation_name(operation: Operation) -> &'static str {
    match operation {
        Operation::RetrieverSearch => "Retriever.search",
        Operation::ContextBuilderBuild => "ContextBuilder.build",
        Operation::PatchLoggerTrackContributors => "PatchLogger.track_contributors",
        Operation::EmbeddingBackfillRun => "EmbeddingBackfill.run",
    }
}

/// The caller's session id, or a fresh one from the host when the caller passed none.
fn resolve_session_id(session_id: String) -> String {
    if session_id.trim().is_empty() {
        ids::new_session_id()
    } else {
        session_id
    }
}

/// Seconds elapsed since `started` (a `clock::monotonic_now` reading).
pub fn seconds_since(started: u64) -> f64 {
    clock::monotonic_now().saturating_sub(started) as f64 / 1e9
}

/// One log event of an operation: `fields` become structured fields in the host's logs.
pub fn event(level: Level, operation: Operation, session_id: &str, message: &str, fields: Value) {
    let mut context = Map::new();
    context.insert("logger".into(), LOGGER.into());
    context.insert("function".into(), operation_name(operation).into());
    context.insert("session_id".into(), session_id.into());
    context.insert("timestamp_ms".into(), clock::wall_now_ms().into());
    if let Value::Object(extra) = fields {
        context.extend(extra);
    }
    log(level, &Value::Object(context).to_string(), message);
}

/// One phase of the call, as typed fields: the host logs it and, at the end, records the call
/// metrics (no JSON on the hot path).
fn record_call(
    operation: Operation,
    session_id: &str,
    phase: CallPhase,
    latency_seconds: f64,
    result_size: u32,
    failure: Option<CallFailure>,
) {
    telemetry::record_call(&CallEvent {
        operation,
        session_id: session_id.to_string(),
        phase,
        latency_seconds,
        result_size,
        failure,
    });
}

/// Run `body` as one instrumented call of `operation`: resolve the session id, log start and
/// end (or error) with latency and result size, and record the call metrics.
pub fn instrumented<T>(
    operation: Operation,
    session_id: String,
    result_size: impl FnOnce(&T) -> u32,
    body: impl FnOnce(&str) -> Result<T, Error>,
) -> Result<T, Error> {
    // An oversized session id is refused, and never copied into a log line: the call's logs
    // carry a fresh id instead.
    let bounded = bounds::name("session_id", &session_id);
    let session_id = match bounded {
        Ok(()) => resolve_session_id(session_id),
        Err(_) => ids::new_session_id(),
    };
    let started = clock::monotonic_now();
    record_call(operation, &session_id, CallPhase::Start, 0.0, 0, None);

    let result = bounded.and_then(|()| body(&session_id));
    let latency_seconds = seconds_since(started);
    match &result {
        Ok(value) => {
            let size = result_size(value);
            record_call(
                operation,
                &session_id,
                CallPhase::End,
                latency_seconds,
                size,
                None,
            );
        }
        Err(error) => record_call(
            operation,
            &session_id,
            CallPhase::Error,
            latency_seconds,
            0,
            Some(CallFailure {
                kind: errors::kind(error),
                message: errors::message(error).to_string(),
            }),
        ),
    }
    result
}
