//! Retriever.search: validation, retries, doubling k, caching and the fallback result.

use serde_json::json;
use std::sync::Arc;
use vector_service_runtime::api::{BackendError, Error};

use vector_service_runtime::backends::memory::MemoryStore;
use vector_service_runtime::backends::{Backends, Retriever as _, SearchMode};
use vector_service_runtime::ServiceError;

use vector_service_testkit::prelude::*;

#[test]
fn blank_query_is_malformed_and_reaches_no_backend() {
    let retriever = ScriptedRetriever::new(vec![]);
    let (backends, _) = with_retriever(retriever.clone());
    let (service, _) = service(backends);
    for query in ["", "   \n\t"] {
        match service.search("s1", &search(query)) {
            Err(ServiceError::Rejected(Error::MalformedPrompt(message))) => {
                assert_eq!(message, "query must be a non-empty string")
            }
            other => panic!("expected malformed-prompt, got {other:?}"),
        }
    }
    assert!(retriever.calls().is_empty());
}

#[test]
fn top_k_zero_asks_for_the_default_as_the_original_did() {
    let retriever =
        ScriptedRetriever::new(vec![hits(vec![hit("bot", "b1", 0.9, json!({}))], None)]);
    let (backends, _) = with_retriever(retriever.clone());
    let (service, _) = service(backends);
    let mut zero_k = search("upload failed");
    zero_k.top_k = Some(0);
    let found = service.search("s1", &zero_k).unwrap();
    assert_eq!(found.hits.len(), 1);
    assert_eq!(retriever.calls()[0].1, 5, "the default top_k");
}

#[test]
fn accepted_hits_carry_record_ids_from_metadata_in_backend_order() {
    let retriever = ScriptedRetriever::new(vec![hits(
        vec![
            hit(
                "bot",
                "backend-1",
                0.9,
                json!({"bid": "B-7", "id": null, "name": "x"}),
            ),
            hit(
                "workflow",
                "backend-2",
                0.8,
                json!({"wid": 42, "record_id": "later"}),
            ),
            hit("error", "backend-3", 0.7, json!({"id": "E-1", "wid": "W"})),
            hit("code", "backend-4", 0.6, json!({"item_id": "I-9"})),
            hit("code", "backend-5", 0.5, json!({})),
            hit("code", "backend-6", 0.4, json!("not an object")),
        ],
        None,
    )]);
    let (backends, _) = with_retriever(retriever.clone());
    let (service, _) = service(backends);
    let response = service
        .search("session-7", &search("upload failed"))
        .unwrap();

    assert_eq!(response.session_id, "session-7");
    assert!(response.fallback.is_none());
    assert!(!response.from_cache);
    let ids: Vec<_> = response
        .hits
        .iter()
        .map(|h| h.record_id.clone().unwrap())
        .collect();
    assert_eq!(ids, ["B-7", "42", "E-1", "I-9", "backend-5", "backend-6"]);
    assert_eq!(response.hits[0].origin_db, "bot");
    assert_eq!(response.hits[0].score, 0.9);
    assert_eq!(response.hits[0].reason, "test");
    let metadata: serde_json::Value = serde_json::from_str(&response.hits[0].metadata).unwrap();
    assert_eq!(metadata["name"], "x");
    assert_eq!(
        response.hits[5].metadata, "{}",
        "non-object metadata reads as empty"
    );
    assert_eq!(
        retriever.calls(),
        vec![("upload failed".to_string(), 5, vec![])]
    );
}

#[test]
fn weak_first_result_is_retried_with_k_doubled() {
    let retriever = ScriptedRetriever::new(vec![
        hits(vec![hit("bot", "b1", 0.05, json!({}))], None),
        hits(
            vec![
                hit("bot", "b1", 0.05, json!({})),
                hit("bot", "b2", 0.6, json!({})),
            ],
            None,
        ),
    ]);
    let (backends, _) = with_retriever(retriever.clone());
    let (service, _) = service(backends);
    let mut request = search("fix failing tests");
    request.top_k = Some(3);
    request.origins = vec!["bot".to_string()];
    let response = service.search("s", &request).unwrap();

    assert_eq!(response.hits.len(), 2);
    assert!(response.fallback.is_none());
    let ks: Vec<u32> = retriever.calls().iter().map(|c| c.1).collect();
    assert_eq!(ks, [3, 6]);
    assert_eq!(retriever.calls()[1].2, ["bot"]);
}

#[test]
fn backend_confidence_overrides_the_best_score() {
    let retriever = ScriptedRetriever::new(vec![
        hits(vec![hit("bot", "b1", 0.9, json!({}))], Some(0.01)),
        hits(vec![hit("bot", "b1", 0.9, json!({}))], Some(0.02)),
    ]);
    let (backends, _) = with_retriever(retriever);
    let (service, _) = service(backends);
    let response = service.search("s", &search("q")).unwrap();

    let fallback = response.fallback.expect("low confidence falls back");
    assert_eq!(fallback.reason, "low confidence");
    assert_eq!(fallback.confidence, 0.02);
}

#[test]
fn nothing_found_gives_the_heuristic_fallback() {
    let retriever = ScriptedRetriever::new(vec![hits(vec![], None), hits(vec![], None)]);
    let (backends, _) = with_retriever(retriever.clone());
    let (service, _) = service(backends);
    let response = service
        .search("s", &search("nothing matches this"))
        .unwrap();

    let fallback = response.fallback.expect("a fallback result");
    assert_eq!(fallback.reason, "no results");
    assert_eq!(fallback.confidence, 0.0);
    assert_eq!(response.hits.len(), 1);
    let heuristic = &response.hits[0];
    assert_eq!(heuristic.origin_db, "heuristic");
    assert_eq!(heuristic.record_id, None);
    assert_eq!(heuristic.score, 0.0);
    assert_eq!(heuristic.metadata, "{}");
    assert_eq!(heuristic.reason, "no results");
    assert_eq!(retriever.calls().len(), 2);
}

#[test]
fn an_earlier_good_result_is_served_from_the_cache_when_later_ones_are_weak() {
    let retriever = ScriptedRetriever::new(vec![
        hits(vec![hit("error", "e1", 0.8, json!({"id": "E1"}))], None),
        hits(vec![], None),
        hits(vec![], None),
    ]);
    let (backends, _) = with_retriever(retriever.clone());
    let (service, _) = service(backends);
    let first = service.search("s", &search("upload failed")).unwrap();
    let second = service.search("s", &search("upload failed")).unwrap();

    assert!(!first.from_cache);
    assert!(second.from_cache);
    assert!(second.fallback.is_none());
    assert_eq!(second.hits, first.hits);
    // Another query has no cached result: it falls back.
    let other = service.search("s", &search("something else")).unwrap();
    assert!(other.fallback.is_some());
}

#[test]
fn a_rate_limited_first_attempt_is_retried_with_the_same_k() {
    let retriever = ScriptedRetriever::new(vec![
        Err(BackendError::Failed("HTTP 429 Too Many Requests".into())),
        hits(vec![hit("bot", "b1", 0.7, json!({}))], None),
    ]);
    let (backends, _) = with_retriever(retriever.clone());
    let (service, _) = service(backends);
    let response = service.search("s", &search("q")).unwrap();

    assert_eq!(response.hits.len(), 1);
    let ks: Vec<u32> = retriever.calls().iter().map(|c| c.1).collect();
    assert_eq!(ks, [5, 5]);
}

#[test]
fn rate_limited_twice_is_a_rate_limited_error() {
    let retriever = ScriptedRetriever::new(vec![
        Err(BackendError::RateLimited("slow down".into())),
        Err(BackendError::Failed("Rate limit exceeded".into())),
    ]);
    let (backends, _) = with_retriever(retriever.clone());
    let (service, _) = service(backends);
    match service.search("s", &search("q")) {
        Err(ServiceError::Rejected(Error::RateLimited(message))) => {
            assert_eq!(message, "Rate limit exceeded")
        }
        other => panic!("expected rate-limited, got {other:?}"),
    }
    assert_eq!(retriever.calls().len(), 2);
}

#[test]
fn other_backend_errors_are_returned_without_retry() {
    let retriever = ScriptedRetriever::new(vec![
        Err(BackendError::Failed("index corrupted".into())),
        Err(BackendError::Unavailable("index offline".into())),
    ]);
    let (backends, _) = with_retriever(retriever.clone());
    let (service, _) = service(backends);
    match service.search("s", &search("q")) {
        Err(ServiceError::Rejected(Error::Backend(message))) => {
            assert_eq!(message, "index corrupted")
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
    assert_eq!(retriever.calls().len(), 1);
    assert!(matches!(
        service.search("s", &search("q")),
        Err(ServiceError::Rejected(Error::Unavailable(m))) if m == "index offline"
    ));
}

#[test]
fn an_empty_session_id_is_replaced_by_a_generated_one() {
    let (service, store, _) = memory_service();
    seed_corpus(&store);
    let first = service.search("", &search("upload failed")).unwrap();
    let second = service.search("  ", &search("upload failed")).unwrap();
    assert_eq!(first.session_id.len(), 36, "a UUID: {}", first.session_id);
    assert_ne!(first.session_id, second.session_id);
}

#[test]
fn the_memory_backend_finds_related_records_after_backfill() {
    let (service, store, _) = memory_service();
    seed_corpus(&store);
    service.backfill("s", &backfill(None, &[])).unwrap();
    let response = service.search("s", &search("upload failed")).unwrap();
    assert!(response.fallback.is_none());
    let ranked: Vec<_> = response
        .hits
        .iter()
        .map(|h| (h.record_id.clone().unwrap(), h.score))
        .collect();
    let mut top: Vec<_> = ranked.iter().take(3).map(|(id, _)| id.as_str()).collect();
    top.sort();
    assert_eq!(
        top,
        ["b1", "e1", "w1"],
        "the three upload records rank first: {ranked:?}"
    );
    let scores: Vec<f64> = response.hits.iter().map(|h| h.score).collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "sorted by score: {scores:?}"
    );
}

#[test]
fn a_call_whose_first_block_is_large_keeps_every_hit_intact() {
    // The query is the first thing lowered into a fresh instance, a large block that grows the
    // memory; the hundreds of small strings lowered after it must each keep their own bytes. A
    // guest allocator that once carved its first blocks from the module's initial pages broke
    // this (docs/decisions/0008-guest-allocator.md).
    let found: Vec<_> = (0..400)
        .map(|n| {
            let note = format!("{n:04}-").repeat(30);
            hit(
                "bot",
                &format!("b{n}"),
                0.9,
                json!({"id": format!("B-{n}"), "note": note}),
            )
        })
        .collect();
    let retriever = ScriptedRetriever::new(vec![hits(found, None)]);
    let (backends, _) = with_retriever(retriever.clone());
    let (service, _) = service(backends);
    let query = vec!["termination"; 450].join(" ");
    let mut request = search(&query);
    request.top_k = Some(400);
    // No session id: nothing small is lowered before the query.
    let response = service.search("", &request).unwrap();

    assert_eq!(response.hits.len(), 400);
    for (n, hit) in response.hits.iter().enumerate() {
        assert_eq!(hit.record_id.as_deref(), Some(format!("B-{n}").as_str()));
        let metadata: serde_json::Value = serde_json::from_str(&hit.metadata).unwrap();
        assert_eq!(metadata["note"], format!("{n:04}-").repeat(30));
    }
    assert_eq!(retriever.calls()[0].0, query);
}

/// The lexical backend's confidence is absolute (its best score over the query's ceiling), so
/// the default threshold tells a match from a query that only shares a common word: the
/// original's low-confidence path runs (k doubled, then the fallback) for the latter alone.
#[test]
fn an_off_topic_query_falls_back_and_an_on_topic_one_does_not() {
    let store = Arc::new(MemoryStore::new().with_search_mode(SearchMode::Lexical));
    seed_corpus(&store);
    let (service, _) = service(Backends::memory(store.clone()));

    let on_topic = service.search("s", &search("upload failed")).unwrap();
    assert!(on_topic.fallback.is_none(), "{on_topic:?}");
    assert!(on_topic
        .hits
        .iter()
        .any(|hit| hit.record_id.as_deref() == Some("e1")));

    // "failed" is in the corpus; nothing else of the query is.
    let found = store
        .search("the sourdough bread failed to rise", 5, &[])
        .unwrap();
    assert!(!found.hits.is_empty());
    assert_eq!(found.hits[0].score, 1.0, "scores stay relative to the best");
    let confidence = found.confidence.expect("the lexical backend says");
    assert!(confidence < 0.1, "{confidence}");
    let off_topic = service
        .search("s", &search("the sourdough bread failed to rise"))
        .unwrap();
    let fallback = off_topic.fallback.expect("a fallback");
    assert_eq!(fallback.reason, "low confidence");
    assert!(
        (fallback.confidence - confidence).abs() < 1e-9,
        "{fallback:?}"
    );
}

/// A query past its bound is cut there rather than refused (the original took any size, and its
/// callers pass whole logs): the backend gets the first 512 words, the answer a warning, and
/// `vector_service_inputs_cut_total` counts it.
#[test]
fn a_query_past_its_bound_is_cut_answered_with_a_warning_and_counted() {
    let retriever =
        ScriptedRetriever::new(vec![hits(vec![hit("error", "e1", 0.9, json!({}))], None)]);
    let (backends, _) = with_retriever(retriever.clone());
    let (service, telemetry) = service(backends);
    let words: Vec<String> = (0..600).map(|i| format!("w{i}")).collect();
    let log = words.join(" ");

    let response = service.search("s", &search(&log)).unwrap();
    assert_eq!(response.hits.len(), 1);
    assert_eq!(response.warnings.len(), 1, "{response:?}");
    assert!(
        response.warnings[0].starts_with("query cut to its first "),
        "{}",
        response.warnings[0]
    );
    let sent = &retriever.calls()[0].0;
    assert_eq!(
        sent,
        &words[..512].join(" "),
        "the first 512 words, nothing after"
    );

    // 16 KiB of one word: cut at the byte bound, on a character boundary.
    let long = "é".repeat(9_000);
    let response = service.search("s", &search(&long)).unwrap();
    assert_eq!(response.warnings.len(), 1);
    let sent = &retriever.calls()[1].0;
    assert_eq!(sent.len(), 16 * 1024);
    assert!(long.starts_with(sent.as_str()));

    // Within the bounds: no warning, not counted.
    let response = service.search("s", &search("upload failed")).unwrap();
    assert!(response.warnings.is_empty());
    let cut = metrics(&telemetry).counter(
        "vector_service_inputs_cut_total",
        &[("function", "Retriever.search")],
    );
    assert_eq!(cut, 2.0);
}
