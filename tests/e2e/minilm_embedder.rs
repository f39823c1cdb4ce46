//! all-MiniLM-L6-v2 behind a SQLite store, through the component: a backfill embeds with the
//! model and search finds by meaning. The model's own tests are in host/embed-minilm.

use std::sync::Arc;

use vector_service_embed_minilm::MiniLmEmbedder;
use vector_service_runtime::backends::Backends;
use vector_service_sqlite::{SearchMode, SqliteStore};

use crate::support::*;

#[test]
fn a_backfill_through_the_component_embeds_with_the_model() {
    let model = MiniLmEmbedder::load(&MiniLmEmbedder::default_dir())
        .expect("all-MiniLM-L6-v2 loads (scripts/fetch-minilm.sh fetches it)");
    let path = temp_dir("minilm").join("tenant.sqlite3");
    let store = Arc::new(
        SqliteStore::open(&path, Arc::new(model))
            .unwrap()
            .with_search_mode(SearchMode::Vector),
    );
    crate::sqlite_backend::ingest(&store);
    let (service, _) = service(Backends::single(store.clone()));
    let report = service.backfill("s", &backfill(Some(4), &[])).unwrap();
    assert_eq!(report.databases.iter().map(|d| d.embedded).sum::<u64>(), 6);
    assert!(store
        .stats()
        .unwrap()
        .embedding_version
        .starts_with("all-MiniLM-L6-v2"));
    let found = service
        .search("s", &search("assertion error in the payments code"))
        .unwrap();
    assert_eq!(
        found.hits[0].record_id.as_deref(),
        Some("e2"),
        "{:?}",
        found.hits
    );
}
