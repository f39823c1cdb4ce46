//! all-MiniLM-L6-v2 through candle. Its files are fetched by scripts/fetch-minilm.sh, which
//! scripts/test.sh runs; without them the tests fail (they never skip silently).

use std::sync::Arc;

use vector_service_embed_minilm::MiniLmEmbedder;
use vector_service_runtime::backends::{Backends, Embedder};
use vector_service_sqlite::{SearchMode, SqliteStore};

use crate::support::*;

fn model() -> MiniLmEmbedder {
    let dir = MiniLmEmbedder::default_dir();
    assert!(
        dir.join("model.safetensors").is_file(),
        "all-MiniLM-L6-v2 is not in {} (run scripts/fetch-minilm.sh)",
        dir.display()
    );
    MiniLmEmbedder::load(&dir).expect("the model loads")
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn matches_the_reference_output_and_batches_like_single_texts() {
    let model = model();
    let texts = [
        "This is an example sentence",
        "upload failed: connection reset by peer while sending file to storage",
        "",
    ];
    let batch = model.embed(&texts).unwrap();
    // sentence-transformers' published output for the first sentence.
    let reference = [0.0677, 0.0635, 0.0487, 0.0793, 0.0374];
    for (got, want) in batch[0].iter().zip(reference) {
        assert!((got - want).abs() < 1e-3, "{:?}", &batch[0][..5]);
    }
    for (text, batched) in texts.iter().zip(&batch) {
        assert_eq!(batched.len(), 384);
        assert!((dot(batched, batched) - 1.0).abs() < 1e-4, "unit length");
        let alone = &model.embed(&[text]).unwrap()[0];
        assert!(dot(alone, batched) > 0.9999, "padding changed {text:?}");
    }
}

#[test]
fn paraphrases_are_closer_than_unrelated_text() {
    let model = model();
    let v = model
        .embed(&[
            "the file upload failed",
            "could not transfer the document to storage",
            "quarterly revenue grew by ten percent",
        ])
        .unwrap();
    assert!(
        dot(&v[0], &v[1]) > dot(&v[0], &v[2]) + 0.1,
        "{} {}",
        dot(&v[0], &v[1]),
        dot(&v[0], &v[2])
    );
}

#[test]
fn a_backfill_through_the_component_embeds_with_the_model() {
    let model = model();
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
