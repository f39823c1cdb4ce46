//! An OpenTelemetry collector's OTLP/HTTP trace receiver on loopback: it decodes each export
//! with the official protobuf definitions (`opentelemetry-proto`) and keeps the spans, for
//! tests that assert what a server exported.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use crate::loopback_http::read_request;

/// One received span with its resource's attributes.
#[derive(Clone, Debug)]
pub struct Received {
    /// The span, as decoded.
    pub span: Span,
    /// Its resource's attributes (`service.name`, ...).
    pub resource: Vec<KeyValue>,
}

impl Received {
    /// The span's attribute `key` as text (numbers and booleans written out).
    pub fn attribute(&self, key: &str) -> Option<String> {
        value_of(&self.span.attributes, key)
    }

    /// The resource's attribute `key`.
    pub fn resource_attribute(&self, key: &str) -> Option<String> {
        value_of(&self.resource, key)
    }
}

fn value_of(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    Some(match value.value.as_ref()? {
        any_value::Value::StringValue(text) => text.clone(),
        any_value::Value::BoolValue(flag) => flag.to_string(),
        any_value::Value::IntValue(number) => number.to_string(),
        any_value::Value::DoubleValue(number) => number.to_string(),
        other => format!("{other:?}"),
    })
}

/// The receiver, serving until the test process ends.
pub struct OtlpCollector {
    /// Its base URL, for `OTEL_EXPORTER_OTLP_ENDPOINT` (`http://127.0.0.1:PORT`).
    pub endpoint: String,
    spans: Arc<Mutex<Vec<Received>>>,
    content_types: Arc<Mutex<Vec<String>>>,
}

impl OtlpCollector {
    /// A receiver on a free loopback port, answering every export with 200.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let spans = Arc::new(Mutex::new(Vec::new()));
        let content_types = Arc::new(Mutex::new(Vec::new()));
        let (kept, types) = (spans.clone(), content_types.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (kept, types) = (kept.clone(), types.clone());
                std::thread::spawn(move || serve(stream, &kept, &types));
            }
        });
        Self {
            endpoint,
            spans,
            content_types,
        }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }

    /// The `Content-Type` of every export received so far.
    pub fn content_types(&self) -> Vec<String> {
        self.content_types.lock().unwrap().clone()
    }

    /// The spans of trace `trace_id` once `done` holds for them (polled; panics after
    /// `timeout`, naming what arrived).
    pub fn wait_for_trace(
        &self,
        trace_id: &[u8],
        timeout: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let until = Instant::now() + timeout;
        loop {
            let trace: Vec<Received> = self
                .spans()
                .into_iter()
                .filter(|r| r.span.trace_id == trace_id)
                .collect();
            if done(&trace) {
                return trace;
            }
            assert!(
                Instant::now() < until,
                "the trace did not arrive whole: {:?}",
                trace.iter().map(|r| &r.span.name).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn serve(stream: TcpStream, kept: &Mutex<Vec<Received>>, types: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    while let Some(received) = read_request(&mut reader) {
        if let Some(content_type) = received.header("content-type") {
            types.lock().unwrap().push(content_type.to_string());
        }
        let request = ExportTraceServiceRequest::decode(received.body.as_slice())
            .expect("an OTLP trace export in protobuf");
        let mut kept = kept.lock().unwrap();
        for resource_spans in request.resource_spans {
            let resource = resource_spans
                .resource
                .map(|r| r.attributes)
                .unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    kept.push(Received {
                        span,
                        resource: resource.clone(),
                    });
                }
            }
        }
        drop(kept);
        let answer =
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if stream.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}
