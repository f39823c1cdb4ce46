//! Whether the retriever's confidence tells matches from noise: on-topic queries (each corpus's
//! own labelled queries) against off-topic ones (the other corpus's queries, and questions from
//! everyday life), searched through the product (the built-in component over a real SQLite
//! store, lexical retrieval, the default threshold 0.1 and top_k 5).
//!
//! ```text
//! cargo bench --bench confidence
//! ```
//! Prints, per corpus and query set: how many queries fell back (the low-confidence path: the
//! component retried with k doubled and answered with a fallback) and the confidence's 10th,
//! 50th and 90th percentiles. The sample corpus is in the repository; BEIR SciFact is read from
//! `../shared/data/scifact` when that directory exists.

use std::sync::Arc;

use vector_service_runtime::api::SearchRequest;
use vector_service_runtime::backends::{Backends, HashingEmbedder, Record, Retriever, Store};
use vector_service_runtime::{Plugin, ServiceConfig, Telemetry, VectorService};
use vector_service_sqlite::SqliteStore;

mod support;
use support::corpora::{sample_corpus, scifact, Doc, Query};

/// Questions no corpus here is about.
const EVERYDAY: [&str; 20] = [
    "best recipe for sourdough bread with a crispy crust",
    "how do I change a flat tyre on a bicycle",
    "what time does the football match start tonight",
    "cheap flights from London to Lisbon in May",
    "how to knit a scarf for beginners",
    "lyrics of a famous song about the summer",
    "which houseplants need little sunlight",
    "how long should I boil an egg",
    "tips for learning to play the guitar",
    "when is the best season to visit Japan",
    "how to remove a red wine stain from a carpet",
    "ideas for a birthday party for a seven year old",
    "what is the capital city of Australia",
    "how to train a puppy to sit",
    "rules of chess for castling",
    "how many calories are in a banana",
    "good books to read on holiday",
    "how to paint a bedroom wall",
    "what to pack for a camping weekend",
    "history of the Roman empire in brief",
];

/// A store holding `docs`, in lexical mode (the default), in a fresh temporary file.
fn store(label: &str, docs: &[Doc]) -> Arc<SqliteStore> {
    let path = std::env::temp_dir().join(format!(
        "vector-service-confidence-{label}-{}.sqlite3",
        std::process::id()
    ));
    for suffix in ["", "-wal", "-shm", ".lexical"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let store = SqliteStore::open(&path, Arc::new(HashingEmbedder)).expect("a temporary store");
    let records: Vec<Record> = docs.iter().map(Doc::record).collect();
    for batch in records.chunks(1000) {
        store.upsert("docs", batch).expect("ingest");
    }
    Arc::new(store)
}

/// One row: how many of `queries` fell back, and the confidence's percentiles.
fn measure(
    service: &VectorService,
    store: &SqliteStore,
    corpus: &str,
    set: &str,
    queries: &[String],
) {
    let mut fell_back = 0;
    let mut confidences: Vec<f64> = Vec::new();
    for query in queries {
        let request = SearchRequest {
            query: query.clone(),
            top_k: None,
            similarity_threshold: None,
            origins: vec![],
        };
        let answer = service.search("bench", &request).expect("a search");
        if answer.fallback.is_some() {
            fell_back += 1;
        }
        let found = store
            .search(query, 5, &[])
            .expect("the backend's own answer");
        confidences.push(found.confidence.unwrap_or(0.0));
    }
    confidences.sort_by(f64::total_cmp);
    let at = |q: f64| confidences[((confidences.len() - 1) as f64 * q).round() as usize];
    println!(
        "| {corpus} | {set} | {} | {fell_back} ({:.0}%) | {:.3} | {:.3} | {:.3} |",
        queries.len(),
        100.0 * fell_back as f64 / queries.len() as f64,
        at(0.1),
        at(0.5),
        at(0.9),
    );
}

fn texts(queries: &[Query]) -> Vec<String> {
    queries.iter().map(|query| query.text.clone()).collect()
}

fn main() -> anyhow::Result<()> {
    let root = env!("CARGO_MANIFEST_DIR");
    let plugin = Arc::new(Plugin::builtin()?);
    let service = |store: &Arc<SqliteStore>| {
        VectorService::new(
            plugin.clone(),
            Backends::single(store.clone()),
            Telemetry::new(),
            ServiceConfig::default(),
        )
    };
    let everyday: Vec<String> = EVERYDAY.iter().map(|q| q.to_string()).collect();
    let (sample_docs, sample_queries) = sample_corpus(root)?;
    let scifact_dir = format!("{root}/../shared/data/scifact");
    let scifact = if std::path::Path::new(&scifact_dir).is_dir() {
        Some(scifact(&scifact_dir)?)
    } else {
        println!("SciFact not measured: {scifact_dir} is not there");
        None
    };

    println!("| corpus | queries | n | fell back | confidence p10 | p50 | p90 |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let sample = store("sample", &sample_docs);
    let on_sample = service(&sample);
    measure(
        &on_sample,
        &sample,
        "sample (300)",
        "its own (on topic)",
        &texts(&sample_queries),
    );
    if let Some((_, queries)) = &scifact {
        measure(
            &on_sample,
            &sample,
            "sample (300)",
            "SciFact's (off topic)",
            &texts(queries),
        );
    }
    measure(
        &on_sample,
        &sample,
        "sample (300)",
        "everyday (off topic)",
        &everyday,
    );
    if let Some((docs, queries)) = &scifact {
        let corpus = format!("SciFact ({})", docs.len());
        let scifact_store = store("scifact", docs);
        let on_scifact = service(&scifact_store);
        measure(
            &on_scifact,
            &scifact_store,
            &corpus,
            "its own (on topic)",
            &texts(queries),
        );
        measure(
            &on_scifact,
            &scifact_store,
            &corpus,
            "the sample's (off topic)",
            &texts(&sample_queries),
        );
        measure(
            &on_scifact,
            &scifact_store,
            &corpus,
            "everyday (off topic)",
            &everyday,
        );
    }
    Ok(())
}
