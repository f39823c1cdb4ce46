//! The component outside our host: Node.js runs it through jco (examples/node-host) with
//! backends written in JavaScript, and must return exactly what the wasmtime host returns for
//! the same inputs and the same backend data.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use serde_json::{json, Value};
use vector_service_runtime::api::{
    BackendError, BackendHit, BackendHits, BackfillRequest, ContextRequest, SearchRequest,
    TrackRequest,
};
use vector_service_runtime::backends::memory::MemoryStore;
use vector_service_runtime::backends::Record;
use vector_service_runtime::backends::{Backends, Retriever};

use crate::support::*;

fn node_host_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/node-host")
}

fn run(command: &mut Command, what: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start ({e}); Node.js 20 and npm are required"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// Install jco (pinned by package-lock.json) unless it is there already.
fn ensure_jco(dir: &Path) -> PathBuf {
    let jco = dir.join("node_modules/.bin/jco");
    if !jco.exists() {
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(dir),
            "npm ci (installing jco)",
        );
    }
    jco
}

/// The fixture's search results, for the Rust side (the JS host answers from the same file).
struct FixtureRetriever(Value);

impl Retriever for FixtureRetriever {
    fn search(
        &self,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Result<BackendHits, BackendError> {
        let hits = self.0["searches"][query]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|hit| {
                origins.is_empty() || origins.iter().any(|o| hit["origin_db"] == o.as_str())
            })
            .take(top_k as usize)
            .map(|hit| {
                BackendHit::from_value(
                    hit["origin_db"].as_str().unwrap().into(),
                    hit["id"].as_str().unwrap().into(),
                    hit["score"].as_f64().unwrap(),
                    hit["reason"].as_str().unwrap().into(),
                    &hit["metadata"],
                )
            })
            .collect();
        Ok(BackendHits {
            hits,
            confidence: None,
        })
    }
}

/// The same calls through wasmtime, in the JS host's output shape.
fn wasmtime_results(fixture: &Value) -> Value {
    let store = Arc::new(MemoryStore::new());
    for doc in fixture["documents"].as_array().unwrap() {
        let record = Record {
            origin_db: doc["origin_db"].as_str().unwrap().into(),
            id: doc["id"].as_str().unwrap().into(),
            text: doc["text"].as_str().unwrap().into(),
            metadata: doc["metadata"].clone(),
        };
        store.insert(doc["db"].as_str().unwrap(), record);
    }
    let mut backends = Backends::memory(store.clone());
    backends.retriever = Arc::new(FixtureRetriever(fixture.clone()));
    let (service, telemetry) = service(backends);
    let calls = &fixture["calls"];
    let session = calls["session_id"].as_str().unwrap();
    let text = |v: &Value| v.as_str().unwrap().to_string();
    let number = |v: &Value| v.as_u64().map(|n| n as u32);

    let backfill = service
        .backfill(
            session,
            &BackfillRequest {
                batch_size: number(&calls["backfill"]["batch_size"]),
                databases: vec![],
            },
        )
        .unwrap();
    let search = service
        .search(
            session,
            &SearchRequest {
                query: text(&calls["search"]["query"]),
                top_k: number(&calls["search"]["top_k"]),
                similarity_threshold: None,
                origins: vec![],
            },
        )
        .unwrap();
    let context = service
        .build_context(
            session,
            &ContextRequest {
                task: text(&calls["context"]["task"]),
                top_k: number(&calls["context"]["top_k"]),
                max_tokens: None,
                db_weights: vec![],
                buckets: vec![],
            },
        )
        .unwrap();
    let track = &calls["track"];
    let tracked = service
        .track_contributors(
            session,
            &TrackRequest {
                vector_ids: track["vector_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(text)
                    .collect(),
                success: track["success"].as_bool().unwrap(),
                patch_id: text(&track["patch_id"]),
                contribution: track["contribution"].as_f64(),
                roi_tag: track["roi_tag"].as_str().map(String::from),
            },
        )
        .unwrap();

    let metrics = metrics(&telemetry);
    let nonzero = |family: &str, label: &str, values: &[(&str, &str)]| -> Value {
        let mut counts = serde_json::Map::new();
        for (value, name) in values {
            let count = metrics.counter(family, &[(label, value)]);
            if count > 0.0 {
                counts.insert(name.to_string(), json!(count as u64));
            }
        }
        Value::Object(counts)
    };
    json!({
        "backfill": {
            "session_id": backfill.session_id, "status": backfill.status,
            "databases": backfill.databases.iter().map(|d| json!({"name": d.name, "embedded": d.embedded, "skipped": d.skipped, "batches": d.batches, "error": d.error})).collect::<Vec<_>>(),
        },
        "search": {
            "session_id": search.session_id,
            "hits": search.hits.iter().map(|h| json!({"origin_db": h.origin_db, "record_id": h.record_id, "score": h.score, "reason": h.reason, "metadata": serde_json::from_str::<Value>(&h.metadata).unwrap()})).collect::<Vec<_>>(),
            "fallback": search.fallback.map(|f| json!({"reason": f.reason, "confidence": f.confidence})),
        },
        "context": {
            "session_id": context.session_id, "context": context.context,
            "entries": context.entries.iter().map(|e| json!({"bucket": e.bucket, "origin_db": e.origin_db, "id": e.id, "score": e.score, "trimmed": e.trimmed, "dropped": e.dropped, "reliability_source": e.reliability_source})).collect::<Vec<_>>(),
        },
        "track": {
            "session_id": tracked.session_id, "status": tracked.status,
            "written_to": serde_json::to_value(tracked.written_to).unwrap().as_str().unwrap().to_lowercase(),
            "rows": tracked.rows, "roi_tag": tracked.roi_tag, "warnings": tracked.warnings,
        },
        "patch_rows": store.patch_outcomes().unwrap().iter().map(|r| json!([r.origin_db, r.vector_id])).collect::<Vec<_>>(),
        "metrics": {
            "vector_service_calls_total": nonzero("vector_service_calls_total", "function", &[
                ("Retriever.search", "retriever-search"),
                ("ContextBuilder.build", "context-builder-build"),
                ("PatchLogger.track_contributors", "patch-logger-track-contributors"),
                ("EmbeddingBackfill.run", "embedding-backfill-run"),
            ]),
            "patch_logger_track_contributors_total": nonzero("patch_logger_track_contributors_total", "status", &[("success", "success"), ("failure", "failure"), ("error", "error")]),
            "embedding_backfill_runs_total": nonzero("embedding_backfill_runs_total", "status", &[("success", "success"), ("failure", "failure")]),
        },
    })
}

#[test]
fn node_through_jco_returns_what_wasmtime_returns() {
    let dir = node_host_dir();
    let jco = ensure_jco(&dir);
    let work = std::env::temp_dir().join(format!("vector-service-node-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let component = work.join("vector-service.wasm");
    std::fs::write(&component, vector_service_runtime::BUILTIN_COMPONENT).unwrap();
    let generated = work.join("generated");
    run(
        Command::new(&jco)
            .arg("transpile")
            .arg(&component)
            .args(["--name", "vector-service", "--instantiation", "async", "-o"])
            .arg(&generated),
        "jco transpile",
    );
    let fixture_path = dir.join("fixture.json");
    let stdout = run(
        Command::new("node")
            .arg(dir.join("host.mjs"))
            .arg(&generated)
            .arg(&fixture_path),
        "node host.mjs",
    );
    let node: Value = serde_json::from_str(&stdout).expect("the node host prints JSON");
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(&fixture_path).unwrap()).unwrap();
    let wasmtime = wasmtime_results(&fixture);

    assert_eq!(
        node["search"]["hits"].as_array().unwrap().len(),
        3,
        "{node:#}"
    );
    assert_eq!(node["track"]["written_to"], "primary");
    for part in [
        "backfill",
        "search",
        "context",
        "track",
        "patch_rows",
        "metrics",
    ] {
        assert_eq!(
            node[part], wasmtime[part],
            "{part} differs between Node (left) and wasmtime (right)"
        );
    }
    std::fs::remove_dir_all(work).ok();
}
