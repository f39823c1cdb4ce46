//! ContextBuilder.build: buckets, order, weights, metrics, summaries, compact JSON, budget,
//! reliability and caching.

use std::sync::Arc;

use serde_json::json;
use vector_service_runtime::api::{BackendError, Error};
use vector_service_runtime::backends::memory::MemoryStore;
use vector_service_runtime::backends::{Backends, Record, SearchMode};
use vector_service_runtime::{ServiceError, VectorService};

use vector_service_testkit::prelude::*;

const LONG: &str =
    "Discrepancy between the invoice totals reported by billing and the ledger entries \
written by the nightly reconciliation job for March";

fn mixed_hits() -> Vec<vector_service_runtime::api::BackendHit> {
    vec![
        hit(
            "error",
            "e1",
            0.5,
            json!({"message": "Upload failed:\nconnection reset  ", "frequency": 3}),
        ),
        hit(
            "error",
            "e2",
            0.6,
            json!({"message": "", "description": "Tests failing", "frequency": "often"}),
        ),
        hit(
            "bot",
            "b1",
            0.4,
            json!({"name": "upload-retrier", "purpose": "Retries", "roi": 2.5}),
        ),
        hit(
            "bot",
            "b2",
            0.9,
            json!({"purpose": "Repairs tests", "deploy_count": 4}),
        ),
        hit(
            "workflow",
            "w1",
            0.3,
            json!({"wid": 100, "title": "Resumable upload", "roi": null, "usage": 12}),
        ),
        hit(
            "code",
            "c1",
            0.2,
            json!({"code": "fn retry() {}\n", "patch_success": 0.8}),
        ),
        hit(
            "discrepancy",
            "d1",
            0.3,
            json!({"message": LONG, "severity": 2}),
        ),
        hit(
            "ticket",
            "t1",
            0.99,
            json!({"message": "unknown origins are dropped"}),
        ),
    ]
}

#[test]
fn hits_become_compact_json_in_bucket_order_with_summaries_and_metrics() {
    let retriever = ScriptedRetriever::new(vec![hits(mixed_hits(), None)]);
    let (backends, _) = with_retriever(retriever.clone());
    let (service, _) = service(backends);
    let mut request = context("upload keeps failing");
    request.db_weights = vec![("code".to_string(), 2.0)];
    let response = service.build_context("ctx-1", &request).unwrap();

    let summary = format!("{}...", &LONG[..117]);
    let expected = format!(
        concat!(
            r#"{{"errors":[{{"id":"e1","desc":"Upload failed: connection reset","metric":0.25}},{{"id":"e2","desc":"Tests failing"}}],"#,
            r#""bots":[{{"id":"b2","desc":"Repairs tests","metric":4.0}},{{"id":"b1","name":"upload-retrier","desc":"upload-retrier","metric":2.5}}],"#,
            r#""workflows":[{{"id":100,"title":"Resumable upload","desc":"Resumable upload","metric":12.0}}],"#,
            r#""code":[{{"id":"c1","desc":"fn retry() {{}}","metric":0.8}}],"#,
            r#""discrepancies":[{{"id":"d1","desc":"{}","metric":2.0}}]}}"#
        ),
        summary
    );
    // As the original: an id the metadata gives as a number stays one, and a metric is a
    // float (`4.0` where the record said `4`).
    assert_eq!(response.context, expected);
    assert_eq!(response.session_id, "ctx-1");
    // The retriever is asked for top_k * 5 candidates of the buckets' origins, with the same
    // session's query (the 8 hits it gave are fewer than asked for: no bucket needs more).
    let origins = ["error", "bot", "workflow", "code", "discrepancy"].map(String::from);
    assert_eq!(
        retriever.calls(),
        vec![("upload keeps failing".to_string(), 25, origins.to_vec())]
    );

    let scores: Vec<(String, f64)> = response
        .entries
        .iter()
        .map(|e| (e.id.clone(), e.score))
        .collect();
    let expected_scores = [
        ("e1", 0.75),
        ("e2", 0.6),
        ("b2", 4.9),
        ("b1", 2.9),
        ("100", 12.3),
        ("c1", 2.0),
        ("d1", 2.3),
    ];
    for ((id, score), (want_id, want)) in scores.iter().zip(expected_scores) {
        assert_eq!(id, want_id);
        assert!((score - want).abs() < 1e-9, "{id}: {score} != {want}");
    }
    assert_eq!(response.entries[0].bucket, "errors");
    assert!(response.entries.iter().all(|e| !e.trimmed && !e.dropped));
}

#[test]
fn each_bucket_keeps_its_top_k_by_score() {
    let many: Vec<_> = (0..8)
        .map(|i| {
            hit(
                "error",
                &format!("e{i}"),
                0.2 + f64::from(i) * 0.1,
                json!({"message": format!("error {i}")}),
            )
        })
        .collect();
    let retriever = ScriptedRetriever::new(vec![hits(many, None)]);
    let (backends, _) = with_retriever(retriever.clone());
    let (service, _) = service(backends);
    let mut request = context("errors");
    request.top_k = Some(2);
    let response = service.build_context("s", &request).unwrap();

    assert_eq!(
        response.context,
        r#"{"errors":[{"id":"e7","desc":"error 7"},{"id":"e6","desc":"error 6"}]}"#
    );
    assert_eq!(retriever.calls()[0].1, 10);
}

#[test]
fn a_fallback_search_result_gives_an_empty_context() {
    let retriever = ScriptedRetriever::new(vec![hits(vec![], None), hits(vec![], None)]);
    let (backends, _) = with_retriever(retriever);
    let (service, _) = service(backends);
    let response = service
        .build_context("s", &context("nothing relevant"))
        .unwrap();
    assert_eq!(response.context, "{}");
    assert!(response.entries.is_empty());
}

#[test]
fn blank_task_is_malformed() {
    let (service, _, _) = memory_service();
    assert!(matches!(
        service.build_context("s", &context(" ")),
        Err(ServiceError::Rejected(Error::MalformedPrompt(m))) if m == "task must be a non-empty string"
    ));
}

#[test]
fn retriever_errors_pass_through_or_become_retriever_failure() {
    let cases = [
        (
            vec![
                Err(BackendError::RateLimited("429".into())),
                Err(BackendError::RateLimited("429".into())),
            ],
            Error::RateLimited("429".into()),
        ),
        (
            vec![Err(BackendError::Failed("disk full".into()))],
            Error::Backend("disk full".into()),
        ),
        (
            vec![Err(BackendError::Unavailable("down".into()))],
            Error::Backend("retriever failure".into()),
        ),
    ];
    for (script, expected) in cases {
        let (backends, _) = with_retriever(ScriptedRetriever::new(script));
        let (service, _) = service(backends);
        match service.build_context("s", &context("task")) {
            Err(ServiceError::Rejected(error)) => assert_eq!(error, expected),
            other => panic!("expected {expected:?}, got {other:?}"),
        }
    }
}

#[test]
fn the_token_budget_trims_then_drops_the_lowest_scored_entries() {
    let long = |i: u32| {
        format!("Entry {i} describes a rather long sequence of events that led to the failure of the upload service")
    };
    let many: Vec<_> = (0..6)
        .map(|i| {
            hit(
                "error",
                &format!("e{i}"),
                0.2 + f64::from(i) * 0.1,
                json!({"message": long(i)}),
            )
        })
        .collect();
    let retriever = ScriptedRetriever::new(vec![hits(many.clone(), None), hits(many, None)]);
    let (backends, _) = with_retriever(retriever);
    let (service, _) = service(backends);

    let mut unlimited = context("budget");
    unlimited.top_k = Some(6);
    unlimited.max_tokens = Some(0);
    let full = service.build_context("s", &unlimited).unwrap();
    assert!(full.entries.iter().all(|e| !e.trimmed && !e.dropped));

    let mut request = unlimited.clone();
    request.max_tokens = Some(60);
    let tight = service.build_context("s", &request).unwrap();
    assert!(
        tight.context.len().div_ceil(4) <= 60,
        "{} bytes",
        tight.context.len()
    );
    assert!(tight.context.len() < full.context.len());
    // Lowest scores suffer first: the best entry is intact, the worst is dropped.
    let best = tight.entries.iter().find(|e| e.id == "e5").unwrap();
    let worst = tight.entries.iter().find(|e| e.id == "e0").unwrap();
    assert!(!best.dropped);
    assert!(worst.dropped && worst.trimmed);
    assert!(!tight.context.contains("\"e0\""));
    let parsed: serde_json::Value = serde_json::from_str(&tight.context).unwrap();
    let kept = parsed["errors"].as_array().unwrap();
    assert!(
        kept.iter()
            .any(|e| e["desc"].as_str().unwrap().ends_with("...")),
        "{}",
        tight.context
    );
}

#[test]
fn entries_carry_vector_or_origin_reliability() {
    let (service, store, _) = memory_service();
    seed_corpus(&store);
    service.backfill("s", &backfill(None, &[])).unwrap();
    // Outcomes land in the vector metrics DB while the primary is down.
    store.set_primary_available(false);
    service
        .track_contributors("s", &track(&["bot:b1"], true, "p1"))
        .unwrap();
    service
        .track_contributors("s", &track(&["bot:b1"], false, "p2"))
        .unwrap();
    service
        .track_contributors("s", &track(&["error:e-old"], true, "p3"))
        .unwrap();

    let response = service
        .build_context("s", &context("upload failed"))
        .unwrap();
    let by_id = |id: &str| {
        response
            .entries
            .iter()
            .find(|e| e.id == id)
            .unwrap_or_else(|| panic!("{id} in {:?}", response.entries))
    };
    let bot = by_id("b1");
    assert_eq!(bot.reliability_source, "vector");
    let rates = bot.reliability.unwrap();
    assert_eq!(
        (rates.win_rate, rates.regret_rate, rates.samples),
        (0.5, 0.5, 2)
    );
    let error = by_id("e1");
    assert_eq!(error.reliability_source, "origin");
    assert_eq!(error.reliability.unwrap().win_rate, 1.0);
    let workflow = by_id("w1");
    assert_eq!(workflow.reliability_source, "none");
    assert!(workflow.reliability.is_none());
}

#[test]
fn a_built_context_is_cached_per_task_and_options() {
    let retriever = ScriptedRetriever::new(vec![hits(mixed_hits(), None)]);
    let (backends, _) = with_retriever(retriever.clone());
    let (service, _) = service(backends);
    let first = service.build_context("first", &context("upload")).unwrap();
    let second = service.build_context("second", &context("upload")).unwrap();
    assert!(!first.from_cache);
    assert!(second.from_cache);
    assert_eq!(second.session_id, "second");
    assert_eq!(second.context, first.context);
    assert_eq!(retriever.calls().len(), 1);

    // Different options are a different entry.
    retriever.push(hits(mixed_hits(), None));
    let mut other = context("upload");
    other.top_k = Some(1);
    let third = service.build_context("third", &other).unwrap();
    assert!(!third.from_cache);
    assert_eq!(retriever.calls().len(), 2);
}

/// A store that ranks by BM25, holding `records` (database, record).
fn lexical_service(records: Vec<(&str, Record)>) -> (VectorService, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new().with_search_mode(SearchMode::Lexical));
    for (db, record) in records {
        store.insert(db, record);
    }
    (service(Backends::memory(store.clone())).0, store)
}

/// An error record whose message is its text.
fn error_record(id: &str, text: &str) -> (&'static str, Record) {
    (
        "errors",
        record("error", id, text, json!({ "message": text })),
    )
}

#[test]
fn a_bucket_crowded_out_of_the_first_search_is_filled_from_its_own_origin() {
    // Thirty errors match "upload" better than the two bots do: the first search (top_k * 5
    // = 10 hits) holds errors only.
    let mut records: Vec<_> = (0..30)
        .map(|i| {
            (
                "errors",
                record(
                    "error",
                    &format!("e{i:02}"),
                    "upload upload failed",
                    json!({"message": "upload failed"}),
                ),
            )
        })
        .collect();
    for id in ["b1", "b2"] {
        records.push((
            "bots",
            record(
                "bot",
                id,
                // Both query words, so its own origin's search is confident.
                "a bot that retries every failed upload of the day",
                json!({"name": id}),
            ),
        ));
    }
    let (service, _) = lexical_service(records);
    let mut request = context("upload failed");
    request.top_k = Some(2);
    let response = service.build_context("s", &request).unwrap();
    let count = |bucket: &str| {
        response
            .entries
            .iter()
            .filter(|e| e.bucket == bucket)
            .count()
    };
    assert_eq!(
        (count("errors"), count("bots")),
        (2, 2),
        "{}",
        response.context
    );
}

#[test]
fn custom_buckets_replace_the_defaults_in_their_order_with_their_keys() {
    let (service, _) = lexical_service(vec![
        (
            "tickets",
            record(
                "ticket",
                "t1",
                "upload stalls at 99%",
                json!({"subject": "Upload stalls", "body": "at 99%", "priority": 3}),
            ),
        ),
        error_record("e1", "upload failed"),
    ]);
    let mut request = context("upload");
    request.buckets = vec![vector_service_runtime::api::BucketRule {
        origin: "ticket".into(),
        bucket: "tickets".into(),
        desc_keys: vec!["body".into()],
        label_key: Some("subject".into()),
        metric_keys: vec!["priority".into()],
        inverse_metric: false,
    }];
    let response = service.build_context("s", &request).unwrap();
    assert_eq!(
        response.context,
        r#"{"tickets":[{"id":"t1","subject":"Upload stalls","desc":"at 99%","metric":3.0}]}"#,
        "only the requested bucket, the error left out"
    );
    assert_eq!(response.entries[0].bucket, "tickets");

    // Two buckets for one origin are refused.
    request.buckets.push(request.buckets[0].clone());
    assert!(matches!(
        service.build_context("s", &request),
        Err(ServiceError::Rejected(Error::MalformedPrompt(m))) if m.contains("two buckets")
    ));
}

#[test]
fn a_kept_instance_reads_the_generation_afresh_for_every_call() {
    let (service, store) = lexical_service(vec![error_record("e1", "upload failed")]);
    let mut instance = service.instance().unwrap();
    let request = context("upload failed");
    assert!(!instance.build_context("s", &request).unwrap().from_cache);
    assert!(instance.build_context("s", &request).unwrap().from_cache);
    let (db, record) = error_record("e2", "upload failed again");
    store.insert(db, record);
    let after = instance.build_context("s", &request).unwrap();
    assert!(
        !after.from_cache,
        "a write between calls on one instance is seen"
    );
    assert_eq!(after.entries.len(), 2);
}
