//! [`TraceLayer`]: a `tracing` layer that gives every span it sees a [`TraceContext`], and,
//! when it has a [`SpanSink`], hands each sampled span to it as a [`SpanRecord`] when the span
//! closes. A span's place: a scope's root span (field [`ROOT_FIELD`]) takes the thread's
//! [`Scope`](crate::Scope) as it is; any other span goes under its parent span, else under the
//! thread's scope, else under the caller named by its `traceparent` field, else starts a trace.
//!
//! Fields with a meaning here: `trace.root`, `traceparent` and `tracestate` (a caller's
//! headers), `otel.kind` (`server`, `client`; else internal), `otel.status_code` (`ok`,
//! `error`) and `otel.status_message`. Every other field is an attribute.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::context::{SpanId, TraceContext, SAMPLED};
use crate::sampler::{Root, Sampler};
use crate::scope::{self, ROOT_FIELD};

/// At most this many attributes per span; later ones are counted as dropped.
pub const MAX_ATTRIBUTES: usize = 32;
/// A string attribute or status message is kept up to this many bytes.
pub const MAX_VALUE_BYTES: usize = 1024;

/// An attribute's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Text (at most [`MAX_VALUE_BYTES`]).
    Str(String),
    /// A flag.
    Bool(bool),
    /// A whole number.
    I64(i64),
    /// A number with a fraction.
    F64(f64),
}

/// OpenTelemetry's span kinds that the service uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SpanKind {
    /// Work inside the process.
    #[default]
    Internal,
    /// A request served (`otel.kind = "server"`).
    Server,
    /// A request made to another service (`otel.kind = "client"`).
    Client,
}

/// A span's status, as OpenTelemetry has it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Status {
    /// Nothing said.
    #[default]
    Unset,
    /// Said to have succeeded.
    Ok,
    /// Failed, with why.
    Error(String),
}

/// One finished, sampled span.
#[derive(Clone, Debug)]
pub struct SpanRecord {
    /// The span's ids and its trace's flags and state.
    pub context: TraceContext,
    /// The span's parent in this process or its caller's span; None for a trace's root.
    pub parent_span_id: Option<SpanId>,
    /// Whether the parent is the caller's span (from `traceparent`).
    pub parent_is_remote: bool,
    /// The span's name (its `tracing` name).
    pub name: &'static str,
    /// Its `tracing` target.
    pub target: &'static str,
    /// Server, client or internal.
    pub kind: SpanKind,
    /// When it opened, in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// When it closed, likewise.
    pub end_unix_nanos: u64,
    /// Its fields, at most [`MAX_ATTRIBUTES`].
    pub attributes: Vec<(&'static str, Value)>,
    /// Fields past [`MAX_ATTRIBUTES`].
    pub dropped_attributes: u32,
    /// How it ended.
    pub status: Status,
}

/// Where finished spans go. `finished` runs on the thread that closed the span (a request's):
/// it must not block.
pub trait SpanSink: Send + Sync + 'static {
    /// Take a span that has closed.
    fn finished(&self, span: SpanRecord);
}

/// The layer (see the module's doc).
pub struct TraceLayer {
    sampler: Sampler,
    sink: Option<Arc<dyn SpanSink>>,
}

impl TraceLayer {
    /// Trace context on spans only (for a host that hands a caller's `traceparent` to its
    /// spans as a field): the caller's decision passed on, nothing recorded.
    pub fn propagating() -> Self {
        Self {
            sampler: Sampler::ParentBased(Root::AlwaysOff),
            sink: None,
        }
    }

    /// Trace context, and the spans `sampler` samples handed to `sink`.
    pub fn recording(sampler: Sampler, sink: Arc<dyn SpanSink>) -> Self {
        Self {
            sampler,
            sink: Some(sink),
        }
    }
}

/// A span being recorded, kept in the span's extensions until it closes, with a status
/// message that may come before or after its status code.
struct Recording(SpanRecord, Option<String>);

impl<S> Layer<S> for TraceLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::new(self.sink.is_some());
        attrs.record(&mut fields);
        let root_of = fields.root.then(scope::current_scope).flatten();
        let (context, parent_span_id, parent_is_remote, sampled) = match root_of {
            // A scope's root span: its ids and decision are the scope's.
            Some(scope) => {
                let sampled = scope.context.sampled();
                (
                    scope.context,
                    scope.parent_span_id,
                    scope.parent_is_remote,
                    sampled,
                )
            }
            None => {
                let parent = span
                    .parent()
                    .and_then(|parent| parent.extensions().get::<TraceContext>().cloned())
                    .or_else(|| scope::current_scope().map(|scope| scope.context));
                let remote = match (&parent, &fields.traceparent) {
                    (None, Some(header)) => {
                        TraceContext::from_headers(header, fields.tracestate.as_deref()).ok()
                    }
                    _ => None,
                };
                let under = parent.as_ref().or(remote.as_ref());
                let mut context = match under {
                    Some(up) => up.child(),
                    None => TraceContext::new_root(false),
                };
                let sampled = self.sampler.sample(under, context.trace_id);
                context.flags = (context.flags & !SAMPLED) | if sampled { SAMPLED } else { 0 };
                let parent_is_remote = parent.is_none() && remote.is_some();
                (
                    context,
                    under.map(|up| up.span_id),
                    parent_is_remote,
                    sampled,
                )
            }
        };
        let mut extensions = span.extensions_mut();
        if sampled && self.sink.is_some() {
            let metadata = attrs.metadata();
            let Fields {
                kind,
                status,
                status_message,
                attributes,
                dropped,
                ..
            } = fields;
            extensions.insert(Recording(
                SpanRecord {
                    context: context.clone(),
                    parent_span_id,
                    parent_is_remote,
                    name: metadata.name(),
                    target: metadata.target(),
                    kind,
                    start_unix_nanos: unix_nanos(),
                    end_unix_nanos: 0,
                    attributes,
                    dropped_attributes: dropped,
                    status,
                },
                status_message,
            ));
        }
        extensions.insert(context);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        let Some(Recording(record, message)) = extensions.get_mut::<Recording>() else {
            return;
        };
        let mut fields = Fields::new(true);
        values.record(&mut fields);
        if fields.kind != SpanKind::Internal {
            record.kind = fields.kind;
        }
        if fields.status != Status::Unset {
            record.status = fields.status;
        }
        if fields.status_message.is_some() {
            *message = fields.status_message;
        }
        for (name, value) in fields.attributes {
            match record.attributes.iter().position(|(n, _)| *n == name) {
                Some(at) => record.attributes[at].1 = value,
                None if record.attributes.len() < MAX_ATTRIBUTES => {
                    record.attributes.push((name, value))
                }
                None => record.dropped_attributes += 1,
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let (Some(sink), Some(span)) = (&self.sink, ctx.span(&id)) else {
            return;
        };
        let recording = span.extensions_mut().remove::<Recording>();
        if let Some(Recording(mut record, message)) = recording {
            if let (Status::Error(text), Some(message)) = (&mut record.status, message) {
                if text.is_empty() {
                    *text = message;
                }
            }
            record.end_unix_nanos = unix_nanos().max(record.start_unix_nanos);
            sink.finished(record);
        }
    }
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A span's fields, sorted into what this layer reads and the attributes.
struct Fields {
    /// Whether attributes are kept (only a recording layer needs them).
    keep: bool,
    /// The span is its scope's root ([`ROOT_FIELD`]).
    root: bool,
    traceparent: Option<String>,
    tracestate: Option<String>,
    kind: SpanKind,
    status: Status,
    status_message: Option<String>,
    attributes: Vec<(&'static str, Value)>,
    dropped: u32,
}

impl Fields {
    fn new(keep: bool) -> Self {
        Self {
            keep,
            root: false,
            traceparent: None,
            tracestate: None,
            kind: SpanKind::Internal,
            status: Status::Unset,
            status_message: None,
            attributes: Vec::new(),
            dropped: 0,
        }
    }

    fn attribute(&mut self, field: &Field, value: Value) {
        if !self.keep {
            return;
        }
        if self.attributes.len() < MAX_ATTRIBUTES {
            self.attributes.push((field.name(), value));
        } else {
            self.dropped += 1;
        }
    }
}

fn bounded(text: &str) -> String {
    let mut end = text.len().min(MAX_VALUE_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "traceparent" => self.traceparent = Some(bounded(value)),
            "tracestate" => self.tracestate = Some(bounded(value)),
            "otel.kind" => {
                self.kind = match value {
                    "server" => SpanKind::Server,
                    "client" => SpanKind::Client,
                    _ => SpanKind::Internal,
                }
            }
            "otel.status_code" => {
                self.status = match value {
                    "ok" | "OK" => Status::Ok,
                    "error" | "ERROR" => {
                        Status::Error(self.status_message.take().unwrap_or_default())
                    }
                    _ => Status::Unset,
                }
            }
            "otel.status_message" => match &mut self.status {
                Status::Error(message) => *message = bounded(value),
                _ => self.status_message = Some(bounded(value)),
            },
            _ => self.attribute(field, Value::Str(bounded(value))),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let read_here = matches!(
            field.name(),
            "traceparent" | "tracestate" | "otel.kind" | "otel.status_code" | "otel.status_message"
        );
        if self.keep || read_here {
            self.record_str(field, &format!("{value:?}"));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.attribute(field, Value::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.attribute(field, Value::I64(i64::try_from(value).unwrap_or(i64::MAX)));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.attribute(field, Value::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == ROOT_FIELD {
            self.root = value;
        } else {
            self.attribute(field, Value::Bool(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::context_of;

    #[derive(Default)]
    struct Collected(Mutex<Vec<SpanRecord>>);

    impl SpanSink for Collected {
        fn finished(&self, span: SpanRecord) {
            self.0.lock().unwrap().push(span);
        }
    }

    fn recorded(sampler: Sampler, work: impl FnOnce()) -> Vec<SpanRecord> {
        let sink = Arc::new(Collected::default());
        let subscriber =
            tracing_subscriber::registry().with(TraceLayer::recording(sampler, sink.clone()));
        tracing::subscriber::with_default(subscriber, work);
        let spans = sink.0.lock().unwrap().clone();
        spans
    }

    const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn spans_form_a_tree_under_the_callers_span() {
        let spans = recorded(Sampler::default(), || {
            let request = tracing::info_span!(
                "http.request",
                traceparent = CALLER,
                "otel.kind" = "server",
                "http.response.status_code" = tracing::field::Empty
            );
            let context = context_of(&request).unwrap();
            assert_eq!(
                context.trace_id.to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736"
            );
            request.in_scope(|| {
                let call = tracing::info_span!(
                    "call",
                    operation = "search",
                    fresh = true,
                    "otel.status_code" = tracing::field::Empty,
                    "otel.status_message" = tracing::field::Empty
                );
                call.in_scope(|| {
                    assert_eq!(crate::current().unwrap().trace_id, context.trace_id);
                });
                call.record("otel.status_code", "error");
                call.record("otel.status_message", "deadline");
            });
            request.record("http.response.status_code", 200);
        });
        let [call, request] = spans.as_slice() else {
            panic!("{spans:?}")
        };
        assert_eq!(
            request.parent_span_id.unwrap().to_string(),
            "00f067aa0ba902b7"
        );
        assert!(request.parent_is_remote);
        assert_eq!(request.kind, SpanKind::Server);
        assert_eq!(
            request.attributes,
            [("http.response.status_code", Value::I64(200))]
        );
        assert_eq!(call.parent_span_id, Some(request.context.span_id));
        assert!(!call.parent_is_remote);
        assert_eq!(call.context.trace_id, request.context.trace_id);
        assert_eq!(call.status, Status::Error("deadline".into()));
        assert_eq!(
            call.attributes,
            [
                ("operation", Value::Str("search".into())),
                ("fresh", Value::Bool(true))
            ]
        );
        assert!(call.start_unix_nanos <= call.end_unix_nanos);
    }

    #[test]
    fn an_unsampled_trace_is_not_recorded_but_keeps_its_ids() {
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let spans = recorded(Sampler::default(), || {
            let request = tracing::info_span!("http.request", traceparent = unsampled);
            let context = context_of(&request).unwrap();
            assert!(!context.sampled());
            assert_eq!(
                context.trace_id.to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736"
            );
        });
        assert!(spans.is_empty());
        // A malformed header starts a trace of its own.
        let spans = recorded(Sampler::default(), || {
            let _span = tracing::info_span!("http.request", traceparent = "garbage");
        });
        assert_eq!(spans[0].parent_span_id, None);
    }

    #[test]
    fn attributes_past_the_bound_are_counted_not_kept() {
        let long = "x".repeat(MAX_VALUE_BYTES + 10);
        let spans = recorded(Sampler::AlwaysOn, || {
            let span = tracing::info_span!("s", a = long.as_str());
            for _ in 0..MAX_ATTRIBUTES + 3 {
                span.record("a", 1);
            }
        });
        assert_eq!(spans[0].attributes.len(), 1);
        let propagating = tracing_subscriber::registry().with(TraceLayer::propagating());
        tracing::subscriber::with_default(propagating, || {
            let span = tracing::info_span!("root");
            assert!(!context_of(&span).unwrap().sampled());
        });
        let Value::Str(kept) = &recorded(Sampler::AlwaysOn, || {
            let _s = tracing::info_span!("s", a = long.as_str());
        })[0]
            .attributes[0]
            .1
        else {
            panic!()
        };
        assert_eq!(kept.len(), MAX_VALUE_BYTES);
    }
}
