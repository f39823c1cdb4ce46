//! A minimal host: load the vector-service component with backends of its own, run the four
//! operations and print the results and the Prometheus metrics text.
//!
//! ```text
//! cargo run --example embed
//! ```
//!
//! The retriever here is the host's own (a keyword-overlap index over a few documents) to show
//! the seam: anything implementing `backends::Retriever` can serve the component's searches.
//! The metrics databases and the embedding store come from the in-memory backend.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use vector_service_runtime::api::{
    BackendError, BackendHit, BackendHits, BackfillRequest, ContextRequest, Destination,
    SearchRequest, TrackRequest,
};
use vector_service_runtime::backends::memory::MemoryStore;
use vector_service_runtime::backends::Record;
use vector_service_runtime::backends::{Backends, Retriever};
use vector_service_runtime::{Plugin, ServiceConfig, Telemetry, VectorService};

/// The example's own retriever: scores documents by the share of query words they contain.
struct KeywordRetriever {
    documents: Vec<Record>,
}

impl Retriever for KeywordRetriever {
    fn search(
        &self,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Result<BackendHits, BackendError> {
        let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
        let mut hits: Vec<BackendHit> = self
            .documents
            .iter()
            .filter(|doc| origins.is_empty() || origins.contains(&doc.origin_db))
            .map(|doc| {
                let text = doc.text.to_lowercase();
                let matched = words.iter().filter(|w| text.contains(w.as_str())).count();
                BackendHit::from_value(
                    doc.origin_db.clone(),
                    doc.id.clone(),
                    matched as f64 / words.len().max(1) as f64,
                    format!("{matched} of {} query words", words.len()),
                    &doc.metadata,
                )
            })
            .filter(|hit| hit.score > 0.0)
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(top_k as usize);
        Ok(BackendHits {
            hits,
            confidence: None,
        })
    }
}

fn documents() -> Vec<(&'static str, Record)> {
    let record = |origin: &str, id: &str, text: &str, metadata| Record {
        origin_db: origin.into(),
        id: id.into(),
        text: text.into(),
        metadata,
    };
    vec![
        (
            "errors",
            record(
                "error",
                "err-17",
                "upload failed: connection reset by storage gateway",
                json!({"message": "Upload failed: connection reset by storage gateway", "frequency": 4}),
            ),
        ),
        (
            "bots",
            record(
                "bot",
                "bot-3",
                "uploader bot retries failed uploads with backoff",
                json!({"name": "uploader", "purpose": "Retries failed uploads", "roi": 1.8}),
            ),
        ),
        (
            "workflows",
            record(
                "workflow",
                "wf-8",
                "resume a failed upload from its last chunk",
                json!({"title": "Resume upload", "usage": 31}),
            ),
        ),
        (
            "code",
            record(
                "code",
                "code-2",
                "fn upload_with_retry retries a failed upload",
                json!({"summary": "upload_with_retry(): bounded retries", "patch_success": 0.9}),
            ),
        ),
    ]
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();

    let plugin = Arc::new(Plugin::builtin()?);
    println!("component: {} bytes", plugin.component_size());

    let store = Arc::new(MemoryStore::new());
    for (db, record) in documents() {
        store.insert(db, record);
    }
    let mut backends = Backends::memory(store.clone());
    backends.retriever = Arc::new(KeywordRetriever {
        documents: documents().into_iter().map(|(_, record)| record).collect(),
    });
    let telemetry = Telemetry::new();
    let config = ServiceConfig {
        tenant: "example".into(),
        retry_backoff: Duration::from_millis(100),
        ..ServiceConfig::default()
    };
    let service = VectorService::new(plugin, backends, telemetry.clone(), config);
    let session = "example-session";

    let search = service
        .search(
            session,
            &SearchRequest {
                query: "upload failed".into(),
                top_k: Some(3),
                similarity_threshold: None,
                origins: vec![],
            },
        )
        .context("search")?;
    println!("\n== Retriever.search(\"upload failed\")");
    for hit in &search.hits {
        println!(
            "  {:<9} {:<7} score {:.2}  {}",
            hit.origin_db,
            hit.record_id.as_deref().unwrap_or("-"),
            hit.score,
            hit.reason
        );
    }

    let context = service
        .build_context(
            session,
            &ContextRequest {
                task: "upload failed".into(),
                top_k: Some(2),
                max_tokens: None,
                db_weights: vec![],
                buckets: vec![],
            },
        )
        .context("context")?;
    println!(
        "\n== ContextBuilder.build(\"upload failed\")\n  {}",
        context.context
    );

    let tracked = service
        .track_contributors(
            session,
            &TrackRequest {
                vector_ids: vec!["error:err-17".into(), "code:code-2".into()],
                success: true,
                patch_id: "patch-42".into(),
                contribution: Some(0.6),
                roi_tag: Some("high-roi".into()),
            },
        )
        .context("track contributors")?;
    println!(
        "\n== PatchLogger.track_contributors\n  status {} written to the {} metrics db ({} rows, roi {})",
        tracked.status,
        match tracked.written_to {
            Destination::Primary => "primary",
            Destination::Fallback => "vector (fallback)",
        },
        tracked.rows,
        tracked.roi_tag
    );

    let backfill = service
        .backfill(
            session,
            &BackfillRequest {
                batch_size: Some(2),
                databases: vec![],
            },
        )
        .context("backfill")?;
    println!("\n== EmbeddingBackfill.run: {}", backfill.status);
    for db in &backfill.databases {
        println!(
            "  {:<10} embedded {:>3} skipped {:>3} in {} batch(es){}",
            db.name,
            db.embedded,
            db.skipped,
            db.batches,
            db.error
                .as_ref()
                .map(|e| format!("  error: {e}"))
                .unwrap_or_default()
        );
    }

    println!("\n== metrics\n{}", telemetry.render());
    Ok(())
}
