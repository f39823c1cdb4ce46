//! The OTLP trace request (`ExportTraceServiceRequest` of opentelemetry-proto's
//! `collector/trace/v1`) in protobuf's wire format, written by hand: the few messages and
//! fields the exporter sends. The tests decode it with the official definitions.

use crate::layer::{SpanKind, SpanRecord, Status, Value};

/// Resource attributes and the instrumentation scope every batch is sent with.
pub struct Origin {
    /// The resource's attributes (`service.name`, ...).
    pub resource: Vec<(String, String)>,
    /// The instrumentation scope's name.
    pub scope_name: &'static str,
    /// And version.
    pub scope_version: &'static str,
}

/// `ExportTraceServiceRequest { resource_spans: [ResourceSpans { resource, scope_spans:
/// [ScopeSpans { scope, spans }] }] }` for `spans`.
pub fn export_request(origin: &Origin, spans: &[SpanRecord]) -> Vec<u8> {
    let mut out = Writer::default();
    out.message(1, |resource_spans| {
        resource_spans.message(1, |resource| {
            for (key, value) in &origin.resource {
                resource.message(1, |kv| key_value(kv, key, &Value::Str(value.clone())));
            }
        });
        resource_spans.message(2, |scope_spans| {
            scope_spans.message(1, |scope| {
                scope.string(1, origin.scope_name);
                scope.string(2, origin.scope_version);
            });
            for span in spans {
                scope_spans.message(2, |message| self::span(message, span));
            }
        });
    });
    out.bytes
}

/// Span's flags field: the W3C trace flags, and whether the parent is remote (bits 8 and 9,
/// `SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK` and `..._IS_REMOTE_MASK`).
fn span_flags(span: &SpanRecord) -> u32 {
    u32::from(span.context.flags) | 0x100 | if span.parent_is_remote { 0x200 } else { 0 }
}

fn span(out: &mut Writer, span: &SpanRecord) {
    out.bytes_field(1, &span.context.trace_id.0);
    out.bytes_field(2, &span.context.span_id.0);
    if let Some(state) = &span.context.state {
        out.string(3, state);
    }
    if let Some(parent) = &span.parent_span_id {
        out.bytes_field(4, &parent.0);
    }
    out.string(5, span.name);
    out.varint_field(
        6,
        match span.kind {
            SpanKind::Internal => 1,
            SpanKind::Server => 2,
            SpanKind::Client => 3,
        },
    );
    out.fixed64(7, span.start_unix_nanos);
    out.fixed64(8, span.end_unix_nanos);
    for (key, value) in &span.attributes {
        out.message(9, |kv| key_value(kv, key, value));
    }
    if span.dropped_attributes > 0 {
        out.varint_field(10, u64::from(span.dropped_attributes));
    }
    let (code, message) = match &span.status {
        Status::Unset => (0, ""),
        Status::Ok => (1, ""),
        Status::Error(message) => (2, message.as_str()),
    };
    if code != 0 {
        out.message(15, |status| {
            status.string(2, message);
            status.varint_field(3, code);
        });
    }
    out.fixed32(16, span_flags(span));
}

fn key_value(out: &mut Writer, key: &str, value: &Value) {
    out.string(1, key);
    out.message(2, |any| match value {
        Value::Str(text) => any.string_always(1, text),
        Value::Bool(flag) => any.varint_always(2, u64::from(*flag)),
        // int64 is a two's complement varint: a negative one takes ten bytes.
        Value::I64(number) => any.varint_always(3, *number as u64),
        Value::F64(number) => any.fixed64_always(4, number.to_bits()),
    });
}

/// Protobuf's wire format, proto3 style: a scalar at its default value is left out (the
/// `_always` writers are for a oneof, where presence is the point).
#[derive(Default)]
struct Writer {
    bytes: Vec<u8>,
}

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LENGTH_DELIMITED: u64 = 2;
const FIXED32: u64 = 5;

impl Writer {
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.bytes.push((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        self.bytes.push(value as u8);
    }

    fn tag(&mut self, field: u64, wire_type: u64) {
        self.varint(field << 3 | wire_type);
    }

    fn bytes_field(&mut self, field: u64, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.tag(field, LENGTH_DELIMITED);
            self.varint(bytes.len() as u64);
            self.bytes.extend_from_slice(bytes);
        }
    }

    fn string(&mut self, field: u64, text: &str) {
        self.bytes_field(field, text.as_bytes());
    }

    fn string_always(&mut self, field: u64, text: &str) {
        self.tag(field, LENGTH_DELIMITED);
        self.varint(text.len() as u64);
        self.bytes.extend_from_slice(text.as_bytes());
    }

    fn varint_field(&mut self, field: u64, value: u64) {
        if value != 0 {
            self.varint_always(field, value);
        }
    }

    fn varint_always(&mut self, field: u64, value: u64) {
        self.tag(field, VARINT);
        self.varint(value);
    }

    fn fixed64(&mut self, field: u64, value: u64) {
        if value != 0 {
            self.fixed64_always(field, value);
        }
    }

    fn fixed64_always(&mut self, field: u64, value: u64) {
        self.tag(field, FIXED64);
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    fn fixed32(&mut self, field: u64, value: u32) {
        if value != 0 {
            self.tag(field, FIXED32);
            self.bytes.extend_from_slice(&value.to_le_bytes());
        }
    }

    /// A nested message: written after its length, which is known once it is written.
    fn message(&mut self, field: u64, write: impl FnOnce(&mut Writer)) {
        let mut inner = Writer::default();
        write(&mut inner);
        self.tag(field, LENGTH_DELIMITED);
        self.varint(inner.bytes.len() as u64);
        self.bytes.extend_from_slice(&inner.bytes);
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value;
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind as ProtoKind;
    use prost::Message;

    use super::*;
    use crate::context::{SpanId, TraceContext};

    #[test]
    fn the_official_definitions_read_what_is_written() {
        let context = TraceContext::from_headers(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Some("vendor=1"),
        )
        .unwrap();
        let span = SpanRecord {
            context: context.child(),
            parent_span_id: Some(context.span_id),
            parent_is_remote: true,
            name: "http.request",
            target: "t",
            kind: SpanKind::Server,
            start_unix_nanos: 1_700_000_000_000_000_000,
            end_unix_nanos: 1_700_000_000_500_000_000,
            attributes: vec![
                ("http.route", Value::Str("search".into())),
                ("http.response.status_code", Value::I64(-200)),
                ("cache.hit", Value::Bool(true)),
                ("guest.seconds", Value::F64(0.25)),
            ],
            dropped_attributes: 2,
            status: Status::Error("deadline".into()),
        };
        let origin = Origin {
            resource: vec![("service.name".into(), "vs-test".into())],
            scope_name: "vector-service",
            scope_version: "0.1.0",
        };
        let bytes = export_request(&origin, std::slice::from_ref(&span));
        let decoded = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
        let resource_spans = &decoded.resource_spans[0];
        let resource = resource_spans.resource.as_ref().unwrap();
        assert_eq!(resource.attributes[0].key, "service.name");
        let scope_spans = &resource_spans.scope_spans[0];
        assert_eq!(scope_spans.scope.as_ref().unwrap().name, "vector-service");
        let got = &scope_spans.spans[0];
        assert_eq!(got.trace_id, context.trace_id.0);
        assert_eq!(got.parent_span_id, context.span_id.0);
        assert_ne!(got.span_id, SpanId([0; 8]).0);
        assert_eq!(got.trace_state, "vendor=1");
        assert_eq!(got.name, "http.request");
        assert_eq!(got.kind, ProtoKind::Server as i32);
        assert_eq!(got.start_time_unix_nano, span.start_unix_nanos);
        assert_eq!(got.end_time_unix_nano, span.end_unix_nanos);
        assert_eq!(got.dropped_attributes_count, 2);
        assert_eq!(got.flags, 0x301);
        let status = got.status.as_ref().unwrap();
        assert_eq!((status.code, status.message.as_str()), (2, "deadline"));
        let values: Vec<_> = got
            .attributes
            .iter()
            .map(|kv| {
                (
                    kv.key.as_str(),
                    kv.value.as_ref().unwrap().value.clone().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            values,
            [
                ("http.route", any_value::Value::StringValue("search".into())),
                (
                    "http.response.status_code",
                    any_value::Value::IntValue(-200)
                ),
                ("cache.hit", any_value::Value::BoolValue(true)),
                ("guest.seconds", any_value::Value::DoubleValue(0.25)),
            ]
        );
    }
}
