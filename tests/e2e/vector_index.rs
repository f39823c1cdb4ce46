//! The vector index beside a SQLite file: built by catching up with the table, snapshotted,
//! replayed after changes from another process, corrupted snapshots rebuilt, deletes and origin
//! moves honoured, and the approximate path agreeing with exact search.

use std::path::Path;
use std::sync::Arc;

use vector_service_runtime::backends::{EmbeddingStore, HashingEmbedder, Record, Retriever};
use vector_service_sqlite::vector_index::{IndexParams, VectorIndex};
use vector_service_sqlite::{SearchMode, SqliteStore};

use crate::sqlite_backend::{ingest, open};
use crate::support::*;

fn embed_everything(store: &SqliteStore) {
    for db in store.databases().unwrap() {
        let ids = store.pending(&db, None, 10_000).unwrap();
        store.embed(&db, &ids).unwrap();
    }
}

fn ids(store: &SqliteStore, query: &str, top_k: u32, origins: &[&str]) -> Vec<String> {
    let origins: Vec<String> = origins.iter().map(|o| o.to_string()).collect();
    store
        .search(query, top_k, &origins)
        .unwrap()
        .hits
        .into_iter()
        .map(|hit| hit.id)
        .collect()
}

#[test]
fn the_snapshot_is_reused_and_only_new_changes_are_replayed() {
    let path = temp_dir("index").join("tenant.sqlite3");
    let first = open(&path);
    ingest(&first);
    embed_everything(&first);
    assert_eq!(first.sync_index().unwrap(), 6, "built from the table");
    assert!(Path::new(&format!("{}.usearch", path.display())).exists());
    let before = ids(&first, "upload failed", 3, &[]);
    drop(first);

    // A second process adds a record; the reopened store loads the snapshot and replays one.
    let writer = SqliteStore::open(&path, Arc::new(HashingEmbedder)).unwrap();
    let extra: Record = serde_json::from_value(serde_json::json!({
        "id": "e9", "origin_db": "error",
        "text": "upload failed again: storage bucket quota exceeded",
        "metadata": {"message": "Upload failed: quota exceeded"}
    }))
    .unwrap();
    writer.upsert("errors", &[extra]).unwrap();
    writer.embed("errors", &["e9".into()]).unwrap();
    drop(writer);

    let reopened = open(&path);
    assert_eq!(reopened.sync_index().unwrap(), 1, "only the new vector");
    let after = ids(&reopened, "upload failed", 4, &[]);
    assert!(after.contains(&"e9".to_string()), "{after:?}");
    assert!(
        before.iter().all(|id| after.contains(id)),
        "{before:?} {after:?}"
    );
    assert_eq!(reopened.sync_index().unwrap(), 0, "nothing left to replay");
}

#[test]
fn deleted_records_and_moved_origins_reach_the_index() {
    let path = temp_dir("index").join("tenant.sqlite3");
    let store = open(&path);
    ingest(&store);
    embed_everything(&store);
    assert!(ids(&store, "upload failed", 6, &[]).contains(&"e1".to_string()));

    // Deleted through another handle: the live index catches up on its next search.
    let other = SqliteStore::open(&path, Arc::new(HashingEmbedder)).unwrap();
    assert_eq!(
        other
            .delete("errors", &["e1".into(), "nope".into()])
            .unwrap(),
        1
    );
    let remaining = ids(&store, "upload failed", 6, &[]);
    assert!(!remaining.contains(&"e1".to_string()), "{remaining:?}");
    assert_eq!(remaining.len(), 5);

    // b1 moves from origin "bot" to "workflow" without a text change: filters follow it.
    let moved: Record = serde_json::from_value(serde_json::json!({
        "id": "b1", "origin_db": "workflow",
        "text": "upload bot retries failed uploads to storage",
        "metadata": {"name": "upload-retrier"}
    }))
    .unwrap();
    other.upsert("bots", &[moved]).unwrap();
    assert!(!ids(&store, "upload", 6, &["bot"]).contains(&"b1".to_string()));
    assert!(ids(&store, "upload", 6, &["workflow"]).contains(&"b1".to_string()));
}

/// A store with the sample records embedded and its snapshot saved; its file and the top 3
/// for "fix failing tests".
fn snapshotted_store() -> (std::path::PathBuf, Vec<String>) {
    let path = temp_dir("index").join("tenant.sqlite3");
    let store = open(&path);
    ingest(&store);
    embed_everything(&store);
    store.sync_index().unwrap();
    let expected = ids(&store, "fix failing tests", 3, &[]);
    (path, expected)
}

#[test]
fn a_corrupt_snapshot_is_rebuilt_from_the_table() {
    let (path, expected) = snapshotted_store();
    std::fs::write(format!("{}.usearch", path.display()), b"not an index").unwrap();

    let reopened = open(&path);
    assert_eq!(reopened.sync_index().unwrap(), 6, "rebuilt in full");
    assert_eq!(ids(&reopened, "fix failing tests", 3, &[]), expected);
}

#[test]
fn a_snapshot_built_with_other_parameters_is_rebuilt() {
    let (path, expected) = snapshotted_store();

    // A valid snapshot, but of another graph: it must not be reused.
    let other = SqliteStore::open(&path, Arc::new(HashingEmbedder))
        .unwrap()
        .with_search_mode(SearchMode::Vector)
        .with_index_params(IndexParams {
            connectivity: 8,
            ..IndexParams::default()
        });
    assert_eq!(other.sync_index().unwrap(), 6, "rebuilt in full");
    assert_eq!(ids(&other, "fix failing tests", 3, &[]), expected);
    drop(other);
    // Its own snapshot is then reused: nothing to replay.
    let again = SqliteStore::open(&path, Arc::new(HashingEmbedder))
        .unwrap()
        .with_search_mode(SearchMode::Vector)
        .with_index_params(IndexParams {
            connectivity: 8,
            ..IndexParams::default()
        });
    assert_eq!(again.sync_index().unwrap(), 0);
}

#[test]
fn the_graph_agrees_with_exact_search_on_the_sample_corpus() {
    let dir = temp_dir("index");
    let exact = SqliteStore::open(&dir.join("exact.sqlite3"), Arc::new(HashingEmbedder))
        .unwrap()
        .with_search_mode(SearchMode::Vector)
        .with_index_params(IndexParams {
            exact_below: usize::MAX,
            ..IndexParams::default()
        });
    let graph = SqliteStore::open(&dir.join("graph.sqlite3"), Arc::new(HashingEmbedder))
        .unwrap()
        .with_search_mode(SearchMode::Vector)
        .with_index_params(IndexParams {
            exact_below: 0,
            ..IndexParams::default()
        });
    for store in [&exact, &graph] {
        ingest_sample_corpus(store);
        embed_everything(store);
    }
    let queries = sample_queries();
    assert!(queries.len() >= 10);
    let (mut found, mut total) = (0, 0);
    for query in &queries {
        let truth = ids(&exact, query, 10, &[]);
        let approximate = ids(&graph, query, 10, &[]);
        total += truth.len();
        found += truth.iter().filter(|id| approximate.contains(id)).count();
    }
    let recall = found as f64 / total as f64;
    assert!(
        recall >= 0.95,
        "recall@10 {recall:.3} over {} queries",
        queries.len()
    );
}

/// Clustered unit vectors (as embeddings of related texts are), from a fixed seed.
fn clustered_vectors(count: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut state = seed;
    let mut next = move || {
        // splitmix64, mapped to [-1, 1)
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f32 / (1u64 << 52) as f32 - 1.0
    };
    let centres: Vec<Vec<f32>> = (0..64)
        .map(|_| (0..dims).map(|_| next()).collect())
        .collect();
    (0..count)
        .map(|i| {
            let mut vector: Vec<f32> = centres[i % centres.len()]
                .iter()
                .map(|c| c + 0.5 * next())
                .collect();
            let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
            vector.iter_mut().for_each(|v| *v /= norm);
            vector
        })
        .collect()
}

/// recall@10 of the graph (never exact) built with `params` against brute force.
fn graph_recall(vectors: &[Vec<f32>], queries: &[Vec<f32>], params: IndexParams) -> f64 {
    let index = VectorIndex::new(
        vectors[0].len(),
        IndexParams {
            exact_below: 0,
            ..params
        },
    )
    .unwrap();
    for (key, vector) in vectors.iter().enumerate() {
        index.upsert(key as u64, vector).unwrap();
    }
    let (mut found, mut total) = (0, 0);
    for query in queries {
        let mut exact: Vec<(f32, u64)> = vectors
            .iter()
            .enumerate()
            .map(|(key, v)| (v.iter().zip(query).map(|(a, b)| a * b).sum(), key as u64))
            .collect();
        exact.sort_by(|a, b| b.0.total_cmp(&a.0));
        let graph: Vec<u64> = index
            .search(query, 10, None)
            .unwrap()
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        total += 10;
        found += exact[..10]
            .iter()
            .filter(|(_, key)| graph.contains(key))
            .count();
    }
    found as f64 / total as f64
}

/// At a size where the graph really is approximate (20,000 vectors, searched through the
/// graph only), the default parameters keep recall@10 at 0.95 or more; a starved graph falls
/// below it, so the threshold measures something.
#[test]
fn the_default_graph_keeps_recall_where_a_starved_one_loses_it() {
    let mut vectors = clustered_vectors(20_100, 32, 7);
    let queries = vectors.split_off(20_000);
    let defaults = graph_recall(&vectors, &queries, IndexParams::default());
    assert!(
        defaults >= 0.95,
        "recall@10 with the defaults: {defaults:.3}"
    );
    let starved = graph_recall(
        &vectors,
        &queries,
        IndexParams {
            connectivity: 2,
            expansion_add: 2,
            expansion_search: 1,
            ..IndexParams::default()
        },
    );
    assert!(
        starved < 0.95 && starved < defaults,
        "a starved graph should lose recall: {starved:.3} vs {defaults:.3}"
    );
}

#[test]
fn hybrid_search_fuses_bm25_and_vectors_by_rank() {
    let store = SqliteStore::open(
        &temp_dir("index").join("hybrid.sqlite3"),
        Arc::new(HashingEmbedder),
    )
    .unwrap()
    .with_search_mode(SearchMode::Hybrid);
    ingest_sample_corpus(&store);
    embed_everything(&store);
    let hits = store.search("upload failed", 10, &[]).unwrap().hits;
    assert_eq!(hits.len(), 10);
    assert_eq!(hits[0].score, 1.0);
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(
        hits.iter().any(|h| h.reason == "bm25 + cosine (rrf)"),
        "records both rankings found are marked: {hits:?}"
    );
    assert!(hits
        .iter()
        .all(|h| h.metadata.to_lowercase().contains("upload")));
    let bots = store
        .search("upload failed", 5, &["bot".into()])
        .unwrap()
        .hits;
    assert!(!bots.is_empty() && bots.iter().all(|h| h.origin_db == "bot"));
}
