//! Fixtures the checks (and the repository's own tests) build on: the sample corpus and
//! queries, a small corpus across the bucketed origins, records, requests with every option at
//! their default, and temporary directories.

use serde_json::{json, Value};
use vector_service_runtime::api::{
    BackfillRequest, ContextRequest, PatchOutcome, SearchRequest, TrackRequest,
};
use vector_service_runtime::backends::memory::MemoryStore;
use vector_service_runtime::backends::{Record, Store};

/// Records of `(origin, id, text)`, each with `{"name": id}` as metadata.
pub fn records(specs: &[(&str, &str, &str)]) -> Vec<Record> {
    specs
        .iter()
        .map(|(origin, id, text)| record(origin, id, text, json!({"name": id})))
        .collect()
}

/// A successful patch `p-1` with no contributors: a write that moves the store's generation
/// and changes no search hits.
pub fn outcome_without_contributors() -> PatchOutcome {
    PatchOutcome {
        patch_id: "p-1".into(),
        session_id: "s-1".into(),
        success: true,
        reverted: false,
        label: "success".into(),
        roi_tag: "".into(),
        contributors: vec![],
        credited_origins: vec![],
        contribution: 0.0,
    }
}

/// A record of `origin` with `id`, `text` and `metadata`.
pub fn record(origin: &str, id: &str, text: &str, metadata: Value) -> Record {
    Record {
        origin_db: origin.to_string(),
        id: id.to_string(),
        text: text.to_string(),
        metadata,
    }
}

/// The repository's sample corpus (`examples/data/records.jsonl`), upserted into `store`.
pub fn ingest_sample_corpus(store: &dyn Store) -> Vec<(String, Record)> {
    let corpus: Vec<(String, Record)> =
        json_lines(include_str!("../../../examples/data/records.jsonl"))
            .into_iter()
            .map(|value| {
                let db = value["db"].as_str().expect("a db field").to_string();
                (db, serde_json::from_value(value).expect("a record"))
            })
            .collect();
    for (db, record) in &corpus {
        store
            .upsert(db, std::slice::from_ref(record))
            .expect("upsert");
    }
    corpus
}

/// The sample queries (`examples/data/queries.jsonl`).
pub fn sample_queries() -> Vec<String> {
    json_lines(include_str!("../../../examples/data/queries.jsonl"))
        .into_iter()
        .map(|value| value["query"].as_str().expect("a query").to_string())
        .collect()
}

/// Parse JSON lines, skipping blank ones.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

/// A search request for `query` with every option at its default.
pub fn search(query: &str) -> SearchRequest {
    SearchRequest {
        query: query.to_string(),
        top_k: None,
        similarity_threshold: None,
        origins: vec![],
    }
}

/// A context request for `task` with every option at its default.
pub fn context(task: &str) -> ContextRequest {
    ContextRequest {
        task: task.to_string(),
        top_k: None,
        max_tokens: None,
        db_weights: vec![],
        buckets: vec![],
    }
}

/// A track request crediting `vector_ids` (`origin:id`) to `patch_id`.
pub fn track(vector_ids: &[&str], success: bool, patch_id: &str) -> TrackRequest {
    TrackRequest {
        vector_ids: vector_ids.iter().map(|s| s.to_string()).collect(),
        success,
        patch_id: patch_id.to_string(),
        contribution: None,
        roi_tag: None,
    }
}

/// A backfill request (`databases` empty: every database).
pub fn backfill(batch_size: Option<u32>, databases: &[&str]) -> BackfillRequest {
    BackfillRequest {
        batch_size,
        databases: databases.iter().map(|s| s.to_string()).collect(),
    }
}

/// The record ids of a search answer's hits, in order.
pub fn record_ids(found: &serde_json::Value) -> Vec<&str> {
    found["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .filter_map(|hit| hit["record_id"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// A fresh, empty directory under the system temp dir, unique per call.
pub fn temp_dir(label: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir =
        std::env::temp_dir().join(format!("vector-service-{label}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a temp dir");
    dir
}

/// The records of [`seed_corpus`], with their database names.
pub fn corpus_records() -> Vec<(&'static str, Record)> {
    vec![
        (
            "errors",
            record(
                "error",
                "e1",
                "upload failed: connection reset by peer while sending file to storage",
                json!({"message": "Upload failed: connection reset by peer", "frequency": 3}),
            ),
        ),
        (
            "errors",
            record(
                "error",
                "e2",
                "test suite failing on assertion in payment module",
                json!({"message": "Tests failing: assertion error in payment module", "frequency": 9}),
            ),
        ),
        (
            "bots",
            record(
                "bot",
                "b1",
                "upload bot retries failed uploads to storage",
                json!({"name": "upload-retrier", "purpose": "Retries failed uploads", "roi": 2.5}),
            ),
        ),
        (
            "bots",
            record(
                "bot",
                "b2",
                "test fixer bot repairs failing tests",
                json!({"name": "test-fixer", "purpose": "Repairs failing tests", "deploy_count": 4}),
            ),
        ),
        (
            "workflows",
            record(
                "workflow",
                "w1",
                "workflow to resume an upload that failed halfway",
                json!({"title": "Resumable upload", "description": "Resume an upload after a failure", "usage": 12}),
            ),
        ),
        (
            "code",
            record(
                "code",
                "c1",
                "retry upload with exponential backoff on failure",
                json!({"summary": "upload_with_retry(): retries with backoff", "patch_success": 0.8}),
            ),
        ),
    ]
}

/// A small realistic corpus across the bucketed origins.
pub fn seed_corpus(store: &MemoryStore) {
    for (db, record) in corpus_records() {
        store.insert(db, record);
    }
}
