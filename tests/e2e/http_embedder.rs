//! The OpenAI-compatible HTTP embedder behind a SQLite store, through the component: a
//! backfill that meets a transient failure embeds everything, and search uses the vectors.

use std::sync::Arc;
use std::time::Duration;

use vector_service_embed_http::{HttpEmbedder, HttpEmbedderConfig};
use vector_service_runtime::backends::Backends;
use vector_service_sqlite::{SearchMode, SqliteStore};
use vector_service_testkit::embeddings_endpoint::{EmbeddingsEndpoint, Reply};

use crate::support::*;

#[test]
fn a_backfill_through_the_component_embeds_over_http_and_search_uses_it() {
    let server = EmbeddingsEndpoint::start(&[Reply::Status(503, "")]);
    let path = temp_dir("http-embedder").join("tenant.sqlite3");
    let store = Arc::new(
        SqliteStore::open(
            &path,
            Arc::new(HttpEmbedder::new(HttpEmbedderConfig {
                timeout: Duration::from_secs(2),
                backoff: Duration::from_millis(10),
                ..HttpEmbedderConfig::new(&server.url, "test-model")
            })),
        )
        .unwrap()
        .with_search_mode(SearchMode::Vector),
    );
    crate::sqlite_backend::ingest(&store);
    let (service, _) = service(Backends::single(store.clone()));
    let report = service.backfill("s", &backfill(Some(4), &[])).unwrap();
    assert_eq!(report.status, "success", "{report:?}");
    assert_eq!(report.databases.iter().map(|d| d.embedded).sum::<u64>(), 6);
    assert_eq!(
        store.stats().unwrap().embedding_version,
        "openai-compatible:test-model:384-dims"
    );
    let found = service.search("s", &search("upload failed")).unwrap();
    assert!(found.hits.iter().all(|h| h.reason == "cosine similarity"));
    let top: Vec<_> = found
        .hits
        .iter()
        .take(3)
        .filter_map(|h| h.record_id.clone())
        .collect();
    assert!(top.contains(&"e1".to_string()), "{top:?}");
}
