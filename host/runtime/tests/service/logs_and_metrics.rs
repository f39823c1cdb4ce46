//! Cross-cutting: start/end/error logs with the session id, and the Prometheus exposition.

use std::collections::BTreeSet;

use vector_service_runtime::api::Error;
use vector_service_runtime::backends::Backends;
use vector_service_runtime::{ServiceError, Telemetry, VectorService};

use vector_service_testkit::prelude::*;

const OPERATIONS: [&str; 4] = [
    "Retriever.search",
    "ContextBuilder.build",
    "PatchLogger.track_contributors",
    "EmbeddingBackfill.run",
];

/// One successful call of each operation, all with `session_id`.
fn call_everything(service: &VectorService, session_id: &str) {
    service.backfill(session_id, &backfill(None, &[])).unwrap();
    service
        .search(session_id, &search("upload failed"))
        .unwrap();
    service
        .build_context(session_id, &context("fix failing tests"))
        .unwrap();
    service
        .track_contributors(session_id, &track(&["bot:b1"], true, "p1"))
        .unwrap();
}

#[test]
fn every_operation_logs_start_and_end_with_session_latency_and_size() {
    let (service, store, _) = memory_service();
    seed_corpus(&store);
    let ((), events) = capture_logs(|| call_everything(&service, "trace-me"));
    let guest = guest_events(&events);

    for operation in OPERATIONS {
        let start = guest
            .iter()
            .find(|e| e.message == format!("{operation} start"))
            .unwrap_or_else(|| panic!("{operation} start is logged"));
        assert_eq!(start.level, tracing::Level::INFO);
        assert_eq!(start.field("session_id"), Some("trace-me"));
        assert_eq!(start.field("tenant"), Some("acme"));
        assert_eq!(start.field("function"), Some(operation));
        assert_eq!(start.field("logger"), Some("vector_service"));
        assert!(start.field("fields").unwrap().contains("timestamp_ms"));

        let end = guest
            .iter()
            .find(|e| e.message == format!("{operation} end"))
            .unwrap_or_else(|| panic!("{operation} end is logged"));
        assert_eq!(end.field("session_id"), Some("trace-me"));
        let latency: f64 = end.field("latency_seconds").unwrap().parse().unwrap();
        assert!((0.0..10.0).contains(&latency));
        assert!(end.field("result_size").is_some());
    }
    // Every line the component logged carries the session id.
    assert!(guest
        .iter()
        .all(|e| e.field("session_id") == Some("trace-me")));
}

#[test]
fn errors_are_logged_with_the_generated_session_id() {
    let (service, _, _) = memory_service();
    let (result, events) = capture_logs(|| service.search("", &search(" ")));
    assert!(matches!(
        result,
        Err(ServiceError::Rejected(Error::MalformedPrompt(_)))
    ));
    let guest = guest_events(&events);
    let start = guest
        .iter()
        .find(|e| e.message == "Retriever.search start")
        .unwrap();
    let error = guest
        .iter()
        .find(|e| e.message == "Retriever.search error")
        .unwrap();
    let generated = start.field("session_id").unwrap();
    assert_eq!(generated.len(), 36);
    assert_eq!(error.field("session_id"), Some(generated));
    assert_eq!(error.level, tracing::Level::ERROR);
    assert_eq!(error.field("result_size"), Some("0"));
    assert_eq!(
        error.field("error"),
        Some("query must be a non-empty string")
    );
    assert!(error.field("latency_seconds").is_some());
}

#[test]
fn the_exposition_has_the_named_families_with_types_labels_and_values() {
    let (service, store, telemetry) = memory_service();
    seed_corpus(&store);
    call_everything(&service, "m1");
    let _ = service.search("m1", &search(""));
    let metrics = metrics(&telemetry);

    let types = [
        ("vector_service_calls_total", "counter"),
        ("vector_service_latency_seconds", "histogram"),
        ("vector_service_result_size", "histogram"),
        ("vector_service_errors_total", "counter"),
        ("patch_logger_track_contributors_total", "counter"),
        (
            "patch_logger_track_contributors_duration_seconds",
            "histogram",
        ),
        ("embedding_backfill_runs_total", "counter"),
        ("embedding_backfill_run_duration_seconds", "histogram"),
    ];
    for (family, kind) in types {
        assert_eq!(metrics.family_type(family), Some(kind), "{family}");
    }

    // The context builder searches too: two Retriever.search calls plus the failed one.
    let calls = |function: &str| {
        metrics.counter(
            "vector_service_calls_total",
            &[("tenant", "acme"), ("function", function)],
        )
    };
    assert_eq!(calls("Retriever.search"), 3.0);
    assert_eq!(calls("ContextBuilder.build"), 1.0);
    assert_eq!(calls("PatchLogger.track_contributors"), 1.0);
    assert_eq!(calls("EmbeddingBackfill.run"), 1.0);
    assert_eq!(
        metrics.histogram_count(
            "vector_service_latency_seconds",
            &[("function", "ContextBuilder.build")]
        ),
        1.0
    );
    assert_eq!(
        metrics.counter(
            "vector_service_errors_total",
            &[
                ("function", "Retriever.search"),
                ("kind", "malformed-prompt")
            ]
        ),
        1.0
    );
    assert_eq!(metrics.patch_tracked("success"), 1.0);
    assert_eq!(metrics.patch_tracked("failure"), 0.0);
    assert_eq!(metrics.backfill_runs("success"), 1.0);

    // Labels are bounded: tenant plus the family's own; never a session id. The pool's size is
    // the one process-wide series (all tenants share the pool).
    let mut label_names = BTreeSet::new();
    for sample in &metrics.scrape.samples {
        label_names.extend(sample.labels.keys().cloned());
        if sample.metric == "vector_service_instance_slots" {
            assert!(sample.labels.is_empty());
            continue;
        }
        assert_eq!(
            sample.labels.get("tenant"),
            Some("acme"),
            "{}",
            sample.metric
        );
        // The metering families' component: the digest of the bytes that ran, bounded by the
        // components an operator loads.
        if let Some(component) = sample.labels.get("component") {
            let builtin =
                vector_service_runtime::sha256_hex(vector_service_runtime::BUILTIN_COMPONENT);
            assert_eq!(component, &builtin[..12], "{}", sample.metric);
        }
    }
    let allowed: BTreeSet<String> = [
        "tenant",
        "function",
        "status",
        "kind",
        "reason",
        "component",
    ]
    .map(String::from)
    .into();
    assert!(label_names.is_subset(&allowed), "{label_names:?}");
    assert!(
        !metrics.text.contains("m1"),
        "session ids never reach metrics"
    );
}

#[test]
fn tenants_sharing_a_registry_get_separate_series() {
    let telemetry = Telemetry::new();
    let store = std::sync::Arc::new(vector_service_runtime::backends::memory::MemoryStore::new());
    let tenant = |name: &str| {
        VectorService::new(
            plugin(),
            Backends::memory(store.clone()),
            telemetry.clone(),
            config(name),
        )
    };
    let (red, blue) = (tenant("red"), tenant("blue"));
    red.search("s", &search("a")).unwrap();
    red.search("s", &search("b")).unwrap();
    blue.search("s", &search("c")).unwrap();
    let metrics = metrics(&telemetry);
    let calls = |tenant: &str| {
        metrics.counter(
            "vector_service_calls_total",
            &[("tenant", tenant), ("function", "Retriever.search")],
        )
    };
    assert_eq!((calls("red"), calls("blue")), (2.0, 1.0));
    // Series exist from the start, at zero.
    let backfills = metrics.counter(
        "embedding_backfill_runs_total",
        &[("tenant", "blue"), ("status", "failure")],
    );
    assert_eq!(backfills, 0.0);
    assert_eq!(metrics.label_sets("vector_service_calls_total").len(), 8);
}
