//! Traces: a search followed from the HTTP layer through the sandbox to the store and the
//! embedder, as an OpenTelemetry collector receives it (decoded with the official protobuf
//! definitions), its trace id in the log lines, and an exporter that is down costing requests
//! nothing.

use std::collections::HashMap;
use std::time::Duration;

use vector_service_testkit::embeddings_endpoint::EmbeddingsEndpoint;
use vector_service_testkit::otlp_collector::{OtlpCollector, Received};

use crate::server::{sample_corpus, Server};
use crate::support::*;

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const SEARCH: &str = r#"{"query": "upload service timeout", "top_k": 3}"#;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// A server over the sample corpus, embedded, with spans exported to `collector`.
fn traced_server(
    name: &str,
    embedder: &EmbeddingsEndpoint,
    env: &[(&str, &str)],
) -> (Server, std::path::PathBuf) {
    let dir = temp_dir(name);
    let log = dir.join("server.log");
    let globals = [
        "--retrieval",
        "hybrid",
        "--embedder",
        &embedder.url,
        "--embedding-model",
        "m",
    ];
    let server = Server::start_with_env(&dir.join("data"), &globals, &log, env);
    let (status, _, _) = server.post_lines("/v1/records", None, &sample_corpus());
    assert_eq!(status, 200);
    let job = server.run_backfill(None, "{}");
    assert_eq!(job["status"], "succeeded", "{job}");
    (server, log)
}

/// `trace` as a text waterfall, children under their parents by start: what the README's
/// picture of a search is (`cargo test --test e2e traces -- --nocapture` prints it).
fn render(trace: &[Received], root: &Received) -> String {
    const WIDTH: u64 = 40;
    let start = root.span.start_time_unix_nano;
    let total = (root.span.end_time_unix_nano - start).max(1);
    let mut out = String::new();
    let mut stack = vec![(root, 0usize)];
    while let Some((span, depth)) = stack.pop() {
        let from = (span.span.start_time_unix_nano - start) * WIDTH / total;
        let to = ((span.span.end_time_unix_nano - start) * WIDTH)
            .div_ceil(total)
            .max(from + 1);
        out += &format!(
            "{:<28} {}{}{} {:>8.3} ms\n",
            format!("{}{}", "  ".repeat(depth), span.span.name),
            " ".repeat(from as usize),
            "█".repeat((to - from) as usize),
            " ".repeat((WIDTH - to.min(WIDTH)) as usize),
            (span.span.end_time_unix_nano - span.span.start_time_unix_nano) as f64 / 1e6
        );
        let mut children: Vec<&Received> = trace
            .iter()
            .filter(|r| r.span.parent_span_id == span.span.span_id)
            .collect();
        children.sort_by_key(|r| std::cmp::Reverse(r.span.start_time_unix_nano));
        stack.extend(children.into_iter().map(|c| (c, depth + 1)));
    }
    out
}

/// The one span named `name` of `trace`.
fn one<'a>(trace: &'a [Received], name: &str) -> &'a Received {
    let found: Vec<_> = trace.iter().filter(|r| r.span.name == name).collect();
    assert_eq!(
        found.len(),
        1,
        "{name} in {:?}",
        trace.iter().map(|r| &r.span.name).collect::<Vec<_>>()
    );
    found[0]
}

#[test]
fn a_search_is_one_trace_from_the_http_layer_through_the_sandbox_to_the_store_and_embedder() {
    let collector = OtlpCollector::start();
    let embedder = EmbeddingsEndpoint::start(&[]);
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.as_str()),
        ("OTEL_SERVICE_NAME", "vs-traces-test"),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
    ];
    let (server, log) = traced_server("traces-tree", &embedder, &env);
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let (status, headers) = server.post_with_headers(
        "/v1/search",
        SEARCH,
        &[("traceparent", &caller), ("tracestate", "vendor=opaque")],
    );
    assert_eq!(status, 200);

    let trace = collector.wait_for_trace(&unhex(CALLER_TRACE), Duration::from_secs(20), |spans| {
        ["http.request", "embedder.http", "vector_service.call"]
            .iter()
            .all(|name| spans.iter().any(|r| r.span.name == *name))
    });
    let id_of = |r: &Received| hex(&r.span.span_id);
    let parent_of = |r: &Received| hex(&r.span.parent_span_id);
    let names: HashMap<String, String> = trace
        .iter()
        .map(|r| (id_of(r), r.span.name.clone()))
        .collect();
    let parent_name = |r: &Received| names.get(&parent_of(r)).cloned().unwrap_or_default();

    // The server's span continues the caller's: its parent is the caller's span, remote.
    let request = one(&trace, "http.request");
    println!("{}", render(&trace, request));
    assert_eq!(parent_of(request), CALLER_SPAN);
    assert_eq!(request.span.kind, 2, "server");
    assert_eq!(request.span.flags & 0x3ff, 0x301, "sampled, parent remote");
    assert_eq!(request.span.trace_state, "vendor=opaque");
    assert_eq!(request.attribute("http.route").as_deref(), Some("search"));
    assert_eq!(
        request.attribute("http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(request.attribute("tenant").as_deref(), Some("default"));
    assert_eq!(
        request.resource_attribute("service.name").as_deref(),
        Some("vs-traces-test")
    );
    // The answer names the trace and the server's span.
    let response = headers.get("traceresponse").unwrap().to_str().unwrap();
    assert_eq!(response, format!("00-{CALLER_TRACE}-{}-01", id_of(request)));

    // Admission and the sandboxed call under the request; the backends under the call.
    assert_eq!(parent_name(one(&trace, "admission")), "http.request");
    let call = one(&trace, "vector_service.call");
    assert_eq!(parent_name(call), "http.request");
    assert_eq!(
        call.attribute("operation").as_deref(),
        Some("Retriever.search")
    );
    assert_eq!(call.attribute("outcome").as_deref(), Some("ok"));
    assert_eq!(call.attribute("instance.fresh").as_deref(), Some("true"));
    assert_eq!(
        call.attribute("component.digest").map(|d| d.len()),
        Some(12)
    );
    assert!(
        call.attribute("guest.seconds")
            .unwrap()
            .parse::<f64>()
            .unwrap()
            > 0.0
    );
    assert!(
        call.attribute("memory.peak_bytes")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    let retriever = one(&trace, "retriever.search");
    assert_eq!(parent_name(retriever), "vector_service.call");
    assert_eq!(
        parent_name(one(&trace, "store.lexical")),
        "retriever.search"
    );
    let vector = one(&trace, "store.vector");
    assert_eq!(parent_name(vector), "retriever.search");
    assert_eq!(vector.attribute("db.system").as_deref(), Some("sqlite"));
    assert_eq!(
        parent_name(one(&trace, "result_cache.put")),
        "vector_service.call"
    );
    // The embedder's request is a client span under the vector search, and the endpoint got
    // the trace with that span as its parent.
    let embed = one(&trace, "embedder.http");
    assert_eq!(parent_name(embed), "store.vector");
    assert_eq!(embed.span.kind, 3, "client");
    assert_eq!(
        embed.attribute("http.response.status_code").as_deref(),
        Some("200")
    );
    assert!(embedder
        .traceparents()
        .contains(&Some(format!("00-{CALLER_TRACE}-{}-01", id_of(embed)))));
    for span in &trace {
        assert!(span.span.end_time_unix_nano >= span.span.start_time_unix_nano);
        assert!(
            span.span.start_time_unix_nano >= request.span.start_time_unix_nano,
            "{}",
            span.span.name
        );
    }
    assert!(collector
        .content_types()
        .iter()
        .all(|t| t == "application/x-protobuf"));

    // Every log line of the request carries the trace id beside its session id.
    let lines = std::fs::read_to_string(&log).unwrap();
    let traced: Vec<serde_json::Value> = lines
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|line: &serde_json::Value| line["fields"]["trace_id"] == CALLER_TRACE)
        .collect();
    let messages: Vec<&str> = traced
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
    assert_eq!(
        messages,
        ["Retriever.search start", "Retriever.search end", "request"],
        "{lines}"
    );
    assert!(traced.iter().all(|l| l["fields"]["session_id"]
        .as_str()
        .is_some_and(|s| !s.is_empty())));

    // The backfill job was a trace of its own, a span per batch's embedding beneath it.
    let spans = collector.spans();
    let job = spans
        .iter()
        .find(|r| r.span.name == "backfill.job")
        .expect("the job's span");
    let batches: Vec<_> = spans
        .iter()
        .filter(|r| r.span.trace_id == job.span.trace_id && r.span.name == "embedding_store.embed")
        .collect();
    assert!(!batches.is_empty());
    assert!(batches.iter().all(|b| b.attribute("records").is_some()));
}

#[test]
fn sampling_follows_the_callers_decision_and_the_configured_ratio() {
    let collector = OtlpCollector::start();
    let embedder = EmbeddingsEndpoint::start(&[]);
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.as_str()),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
    ];
    let (server, _) = traced_server("traces-sampling", &embedder, &env);
    // A trace started here at ratio 0 is not sampled, and says so onward.
    let (_, headers) = server.post_with_headers("/v1/search", SEARCH, &[]);
    let own = headers
        .get("traceresponse")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(own.ends_with("-00"), "{own}");
    let own_trace = unhex(&own[3..35]);
    // A caller that sampled its trace has it recorded here too; one that did not, not.
    let unsampled = format!("00-{}-{CALLER_SPAN}-00", "a".repeat(32));
    server.post_with_headers("/v1/search", SEARCH, &[("traceparent", &unsampled)]);
    let sampled = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    server.post_with_headers("/v1/search", SEARCH, &[("traceparent", &sampled)]);
    collector.wait_for_trace(&unhex(CALLER_TRACE), Duration::from_secs(20), |spans| {
        spans.iter().any(|r| r.span.name == "http.request")
    });
    let spans = collector.spans();
    assert!(spans.iter().all(|r| r.span.trace_id != own_trace));
    assert!(spans
        .iter()
        .all(|r| r.span.trace_id != unhex(&"a".repeat(32))));
}

#[test]
fn an_exporter_that_is_down_costs_requests_nothing_and_its_drops_are_counted() {
    let embedder = EmbeddingsEndpoint::start(&[]);
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
        ("OTEL_BSP_SCHEDULE_DELAY", "20"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "16"),
    ];
    let (server, _) = traced_server("traces-down", &embedder, &env);
    for _ in 0..100 {
        let (status, _, _) = server.post("/v1/search", None, SEARCH);
        assert_eq!(status, 200);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = Metrics::parse(server.get("/metrics", None).1);
        let dropped = |reason| {
            metrics.counter(
                "vector_service_trace_spans_dropped_total",
                &[("reason", reason)],
            )
        };
        let (failed, full) = (dropped("export_failed"), dropped("queue_full"));
        if failed > 0.0 && full > 0.0 {
            assert_eq!(
                metrics.counter("vector_service_trace_spans_exported_total", &[]),
                0.0
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "dropped: export_failed {failed}, queue_full {full}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_command_exports_its_spans_under_the_trace_its_caller_names() {
    let collector = OtlpCollector::start();
    let data = temp_dir("traces-cli");
    crate::cli::json(
        crate::cli::cli(&data)
            .arg("ingest")
            .arg(crate::cli::sample_corpus()),
    );
    let answer = crate::cli::json(
        crate::cli::cli(&data)
            .args(["search", "upload service timeout"])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint)
            .env("TRACEPARENT", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01")),
    );
    assert!(
        answer["hits"]
            .as_array()
            .is_some_and(|hits| !hits.is_empty()),
        "{answer}"
    );
    // The command has exited: what it exported is all there is.
    let trace: Vec<Received> = collector
        .spans()
        .into_iter()
        .filter(|r| r.span.trace_id == unhex(CALLER_TRACE))
        .collect();
    let command = one(&trace, "vector_service.command");
    assert_eq!(hex(&command.span.parent_span_id), CALLER_SPAN);
    assert_eq!(command.attribute("command").as_deref(), Some("search"));
    let call = one(&trace, "vector_service.call");
    assert_eq!(call.span.parent_span_id, command.span.span_id);
    let retriever = one(&trace, "retriever.search");
    assert_eq!(retriever.span.parent_span_id, call.span.span_id);
}

#[test]
fn otel_propagators_none_turns_the_trace_context_off_and_an_unknown_one_is_refused() {
    let dir = temp_dir("traces-none");
    let log = dir.join("server.log");
    let server = Server::start_with_env(
        &dir.join("data"),
        &[],
        &log,
        &[("OTEL_PROPAGATORS", "none")],
    );
    let (status, _, _) = server.post_lines("/v1/records", None, &sample_corpus());
    assert_eq!(status, 200);
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let (status, headers) =
        server.post_with_headers("/v1/search", SEARCH, &[("traceparent", &caller)]);
    assert_eq!(status, 200);
    assert!(headers.get("traceresponse").is_none());
    // Once the search's request line is written, no line has trace ids.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let lines = std::fs::read_to_string(&log).unwrap();
        if lines.contains(r#""route":"search""#) {
            break lines;
        }
        assert!(std::time::Instant::now() < deadline, "{lines}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!lines.contains("trace_id"), "{lines}");

    let refused = std::process::Command::new(server_binary())
        .args(["--data-dir"])
        .arg(dir.join("other"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("OTEL_PROPAGATORS", "b3")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("OTEL_PROPAGATORS=\"b3\""), "{said}");
}
