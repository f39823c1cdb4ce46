//! The SQLite backend through the real component, on a real database file: backfill, search,
//! context, patch outcomes, durability across reopen, staleness, embedder changes, migrations.

use std::sync::Arc;

use serde_json::json;
use vector_service_runtime::api::{BackendError, Destination};
use vector_service_runtime::backends::{
    Backends, Embedder, EmbeddingStore, HashingEmbedder, Retriever,
};
use vector_service_sqlite::{SearchMode, SqliteError, SqliteStore, SCHEMA_VERSION};

use crate::support::*;

/// A store that searches by embeddings (these tests are about the embedding paths).
pub(crate) fn open(path: &std::path::Path) -> Arc<SqliteStore> {
    let store = SqliteStore::open(path, Arc::new(HashingEmbedder)).expect("the store opens");
    Arc::new(store.with_search_mode(SearchMode::Vector))
}

fn backends(store: &Arc<SqliteStore>) -> Backends {
    Backends::single(store.clone())
}

pub(crate) fn ingest(store: &SqliteStore) {
    for (db, record) in corpus_records() {
        store.upsert(db, &[record]).unwrap();
    }
}

#[test]
fn records_are_backfilled_searched_and_outcomes_persist_across_reopen() {
    let path = temp_dir("sqlite").join("tenant.sqlite3");
    {
        let store = open(&path);
        ingest(&store);
        let (service, _) = service(backends(&store));
        let report = service.backfill("s", &backfill(Some(2), &[])).unwrap();
        let embedded: u64 = report.databases.iter().map(|d| d.embedded).sum();
        assert_eq!(embedded, 6);

        let found = service.search("s", &search("upload failed")).unwrap();
        let mut top: Vec<_> = found
            .hits
            .iter()
            .take(3)
            .map(|h| h.record_id.clone().unwrap())
            .collect();
        top.sort();
        assert_eq!(top, ["b1", "e1", "w1"]);

        let context = service
            .build_context("s", &context("upload failed"))
            .unwrap();
        assert!(
            context.context.starts_with(r#"{"errors":[{"id":"e1""#),
            "{}",
            context.context
        );

        let tracked = service
            .track_contributors("s", &track(&["bot:b1", "error:e1"], true, "p-1"))
            .unwrap();
        assert_eq!(tracked.written_to, Destination::Primary);
    }
    // Everything acknowledged is in the file.
    let store = open(&path);
    let stats = store.stats().unwrap();
    assert_eq!(stats.patch_outcomes, 2);
    assert!(stats
        .databases
        .iter()
        .all(|(_, records, embedded)| records == embedded));
    let rows = store.patch_outcomes().unwrap();
    assert_eq!(
        (rows[0].origin_db.as_deref(), rows[0].vector_id.as_deref()),
        (Some("bot"), Some("b1"))
    );
    let retriever_stats = store.retriever_stats().unwrap();
    assert_eq!(retriever_stats.len(), 2);
    assert!(retriever_stats
        .iter()
        .all(|(_, s)| s.wins == 1 && s.regrets == 0));
    let (service, _) = service(backends(&store));
    assert_eq!(
        service
            .backfill("s", &backfill(None, &[]))
            .unwrap()
            .databases
            .iter()
            .map(|d| d.embedded)
            .sum::<u64>(),
        0
    );
}

#[test]
fn changed_text_and_a_new_embedder_make_embeddings_stale() {
    let path = temp_dir("sqlite").join("tenant.sqlite3");
    let store = open(&path);
    ingest(&store);
    let (service, _) = service(backends(&store));
    service.backfill("s", &backfill(None, &[])).unwrap();

    // Same text again: nothing changes. New text: one record is pending again.
    assert_eq!(store.upsert("bots", &[record("bot", "b1", "upload bot retries failed uploads to storage", json!({"name": "upload-retrier", "purpose": "Retries failed uploads", "roi": 2.5}))]).unwrap(), 0);
    assert_eq!(
        store
            .upsert(
                "bots",
                &[record("bot", "b1", "a rewritten description", json!({}))]
            )
            .unwrap(),
        1
    );
    let again = service.backfill("s", &backfill(None, &["bots"])).unwrap();
    assert_eq!(again.databases[0].embedded, 1);

    // Another embedder version re-embeds everything, and searches only see its vectors.
    struct Renamed;
    impl Embedder for Renamed {
        fn version(&self) -> &str {
            "renamed-v2"
        }
        fn dimensions(&self) -> usize {
            HashingEmbedder.dimensions()
        }
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, BackendError> {
            HashingEmbedder.embed(texts)
        }
    }
    let renamed = Arc::new(
        SqliteStore::open(&path, Arc::new(Renamed))
            .unwrap()
            .with_search_mode(SearchMode::Vector),
    );
    let (renamed_service, _) = crate::support::service(backends(&renamed));
    assert!(renamed_service
        .search("s", &search("upload failed"))
        .unwrap()
        .fallback
        .is_some());
    let report = renamed_service.backfill("s", &backfill(None, &[])).unwrap();
    assert_eq!(report.databases.iter().map(|d| d.embedded).sum::<u64>(), 6);
    assert!(renamed_service
        .search("s", &search("upload failed"))
        .unwrap()
        .fallback
        .is_none());
}

#[test]
fn outcomes_and_rates_in_the_vector_metrics_table() {
    use vector_service_runtime::backends::VectorMetricsDb;
    let store = open(&temp_dir("sqlite").join("tenant.sqlite3"));
    // A primary that is down sends every outcome to the SQLite vector metrics table.
    let primary = Arc::new(vector_service_runtime::backends::memory::MemoryStore::new());
    primary.set_primary_available(false);
    let mut backends = backends(&store);
    backends.metrics_db = primary;
    let (service, _) = service(backends);
    service
        .track_contributors("s", &track(&["bot:b1"], true, "p1"))
        .unwrap();
    service
        .track_contributors("s", &track(&["bot:b1", "bot:b2"], false, "p2"))
        .unwrap();
    let vectors = [vector_service_runtime::api::VectorRef {
        origin_db: "bot".into(),
        vector_id: "b1".into(),
    }];
    let rates = store.vector_rates(&vectors).unwrap()[0].unwrap();
    assert_eq!(
        (rates.win_rate, rates.regret_rate, rates.samples),
        (0.5, 0.5, 2)
    );
    let origin = store.origin_rates(&["bot".into(), "code".into()]).unwrap();
    assert_eq!(origin[0].unwrap().samples, 3);
    assert!(origin[1].is_none());
}

#[test]
fn migrations_are_idempotent_and_a_newer_file_is_refused() {
    let path = temp_dir("sqlite").join("tenant.sqlite3");
    drop(open(&path));
    drop(open(&path));
    let connection = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version as usize, SCHEMA_VERSION);
    connection.pragma_update(None, "user_version", 99).unwrap();
    drop(connection);
    match SqliteStore::open(&path, Arc::new(HashingEmbedder)) {
        Err(SqliteError::TooNew {
            found: 99,
            supported: SCHEMA_VERSION,
            ..
        }) => {}
        Err(other) => panic!("expected TooNew, got {other}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
}

#[test]
fn lexical_search_needs_no_backfill_and_honours_origins() {
    let store = Arc::new(
        SqliteStore::open(
            &temp_dir("sqlite").join("tenant.sqlite3"),
            Arc::new(HashingEmbedder),
        )
        .unwrap(),
    );
    ingest_sample_corpus(store.as_ref());
    let (service, _) = service(backends(&store));
    let found = service
        .search("s", &search("TLS certificate expired"))
        .unwrap();
    assert!(found.fallback.is_none());
    assert!(found
        .hits
        .iter()
        .all(|h| h.reason == "bm25" && h.score > 0.0 && h.score <= 1.0));
    assert!(
        found.hits[0].metadata.contains("TLS") || found.hits[0].metadata.contains("certificate"),
        "{:?}",
        found.hits[0]
    );

    let mut bots_only = search("TLS certificate expired");
    bots_only.origins = vec!["bot".into()];
    let bots = service.search("s", &bots_only).unwrap();
    assert!(!bots.hits.is_empty() && bots.hits.iter().all(|h| h.origin_db == "bot"));
    assert!(
        bots.hits[0].metadata.contains("cert-renewer")
            || bots.hits[0].metadata.contains("cert-expiry-watcher"),
        "{:?}",
        bots.hits[0]
    );

    // Words only, no FTS syntax: punctuation alone finds nothing and quotes cannot inject.
    assert!(service
        .search("s", &search("?!"))
        .unwrap()
        .fallback
        .is_some());
    assert!(service
        .search("s", &search("\"upload\" OR NEAR("))
        .unwrap()
        .fallback
        .is_none());
}

#[test]
fn a_statement_past_the_call_deadline_is_interrupted_and_the_store_serves_on() {
    use std::time::{Duration, Instant};
    use vector_service_runtime::backends::{Record, Retriever};
    use vector_service_runtime::deadline;

    let path = temp_dir("sqlite-deadline").join("tenant.sqlite3");
    let store = SqliteStore::open(&path, Arc::new(HashingEmbedder)).unwrap();
    // Enough matching rows that ranking them takes many thousands of SQLite steps.
    let records: Vec<Record> = (0..5_000)
        .map(|i| {
            record(
                "error",
                &format!("e{i}"),
                &format!("upload failed again {i}"),
                json!({}),
            )
        })
        .collect();
    store.upsert("errors", &records).unwrap();

    let passed = Instant::now() - Duration::from_millis(1);
    let interrupted = deadline::within(passed, || store.search("upload failed", 5, &[]));
    let error = interrupted.expect_err("the statement stops at the deadline");
    assert!(
        format!("{error:?}").contains("interrupt"),
        "SQLite's interrupt: {error:?}"
    );

    // The same connection serves the next call, within a deadline or without one.
    let later = Instant::now() + Duration::from_secs(30);
    let hits = deadline::within(later, || store.search("upload failed", 5, &[])).unwrap();
    assert_eq!(hits.hits.len(), 5);
    assert_eq!(store.search("upload failed", 5, &[]).unwrap().hits.len(), 5);
}

/// The lexical index is a cache of the file: what another process writes (insert, change,
/// move, delete) shows in the next search of a store that already built its index.
#[test]
fn lexical_search_replays_writes_from_another_store_on_the_same_file() {
    replays_writes_from_another_store(true);
}

/// The same with the WAL watch off: every search reads the change clock by its statement.
#[test]
fn without_the_wal_watch_a_search_still_replays_every_write_from_another_store() {
    replays_writes_from_another_store(false);
}

fn replays_writes_from_another_store(wal_watch: bool) {
    let path = temp_dir("sqlite").join("tenant.sqlite3");
    let searcher = SqliteStore::open(&path, Arc::new(HashingEmbedder))
        .unwrap()
        .with_wal_watch(wal_watch);
    let writer = SqliteStore::open(&path, Arc::new(HashingEmbedder)).unwrap();
    let ids = |query: &str, origins: &[String]| -> Vec<String> {
        searcher
            .search(query, 10, origins)
            .unwrap()
            .hits
            .into_iter()
            .map(|hit| hit.id)
            .collect()
    };
    let write = |origin: &str, id: &str, text: &str| {
        writer
            .upsert("bots", &records(&[(origin, id, text)]))
            .unwrap();
    };
    write("bot", "b1", "rotates TLS certificates");
    assert_eq!(ids("certificate", &[]), ["b1"], "built from the file");
    write("bot", "b2", "renews expired certificates nightly");
    assert_eq!(ids("certificates", &[]).len(), 2, "a new record replayed");
    write("bot", "b1", "compresses log archives");
    assert_eq!(ids("certificate", &[]), ["b2"], "a changed text replayed");
    assert_eq!(ids("log archive", &[]), ["b1"]);
    write("error", "b1", "compresses log archives");
    assert_eq!(
        ids("archives", &["error".to_string()]),
        ["b1"],
        "an origin move"
    );
    assert_eq!(writer.delete("bots", &["b2".to_string()]).unwrap(), 1);
    assert!(ids("certificate", &[]).is_empty(), "a deletion replayed");
}

/// A lexical hit's fields come from the copies kept beside the index, replayed with it, and
/// from the file past the copies' budget: stores with every record copied, none, and some
/// answer alike after every kind of write by another store on the same file.
#[test]
fn lexical_hits_from_copies_and_from_the_file_agree_through_writes() {
    let path = temp_dir("sqlite").join("tenant.sqlite3");
    let open = |budget: usize| {
        SqliteStore::open(&path, Arc::new(HashingEmbedder))
            .unwrap()
            .with_hit_copy_budget(budget)
    };
    let searchers = [
        open(vector_service_sqlite::DEFAULT_HIT_COPY_BUDGET),
        open(0),
        open(300),
    ];
    let writer = open(0);
    let write = |origin: &str, id: &str, text: &str, metadata: serde_json::Value| {
        let mut record = records(&[(origin, id, text)]).remove(0);
        record.metadata = metadata;
        writer.upsert("bots", &[record]).unwrap();
    };
    type Shown = (String, String, Option<String>, String);
    let answers = |query: &str| -> Vec<Vec<Shown>> {
        searchers
            .iter()
            .map(|searcher| {
                let found = searcher.search(query, 10, &[]).unwrap().hits;
                found
                    .into_iter()
                    .map(|hit| (hit.origin_db, hit.id, hit.record_id, hit.metadata))
                    .collect()
            })
            .collect()
    };
    let shown_alike = |query: &str| -> Vec<Shown> {
        let mut answers = answers(query);
        let copied = answers.remove(0);
        for (budget, other) in ["0", "300"].iter().zip(answers) {
            assert_eq!(
                other, copied,
                "{query}: a {budget}-byte budget answers alike"
            );
        }
        copied
    };
    for id in ["b1", "b2", "b3", "b4"] {
        write("bot", id, "rotates TLS certificates", json!({"wid": id}));
    }
    let first = shown_alike("certificates");
    assert_eq!(first.len(), 4);
    assert!(first
        .iter()
        .all(|(_, id, record_id, _)| record_id.as_deref() == Some(id.as_str())));

    write(
        "bot",
        "b2",
        "rotates TLS certificates",
        json!({"wid": "w-new", "n": 1}),
    );
    let changed = shown_alike("certificates");
    let b2 = changed
        .iter()
        .find(|shown| shown.1 == "b2")
        .expect("b2 found");
    assert_eq!(
        (b2.2.as_deref(), b2.3.as_str()),
        (Some("w-new"), r#"{"n":1,"wid":"w-new"}"#),
        "a metadata change is replayed into the copy"
    );
    write(
        "error",
        "b3",
        "rotates TLS certificates",
        json!({"wid": "b3"}),
    );
    let moved = shown_alike("certificates");
    assert!(moved
        .iter()
        .any(|shown| (shown.0.as_str(), shown.1.as_str()) == ("error", "b3")));
    assert_eq!(writer.delete("bots", &["b1".to_string()]).unwrap(), 1);
    let left = shown_alike("certificates");
    assert_eq!(left.len(), 3, "a deletion drops the copy");
    assert!(left.iter().all(|shown| shown.1 != "b1"));
}

/// A file written before the lexical index (schema 2, with FTS5 tables and triggers) migrates:
/// FTS5 is dropped and every existing record is found.
#[test]
fn a_schema_2_file_with_fts5_migrates_and_its_records_are_found() {
    let path = temp_dir("sqlite").join("tenant.sqlite3");
    {
        let store = SqliteStore::open(&path, Arc::new(HashingEmbedder)).unwrap();
        ingest_sample_corpus(&store);
    }
    // Put the file back as schema 2 left it: FTS5 kept in step by triggers, no record seq
    // (and none of schema 4's outcome counting).
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute_batch(
            "ALTER TABLE patch_outcomes DROP COLUMN contribution;
             DROP INDEX patch_outcomes_by_vector;
             ALTER TABLE change_clock DROP COLUMN outcomes;
             DROP INDEX records_by_seq;
             ALTER TABLE records DROP COLUMN seq;
             CREATE VIRTUAL TABLE records_fts USING fts5(
                 text, content = 'records', content_rowid = 'rowid', tokenize = 'porter unicode61');
             INSERT INTO records_fts (records_fts) VALUES ('rebuild');
             CREATE TRIGGER records_fts_insert AFTER INSERT ON records BEGIN SELECT 1; END;
             CREATE TRIGGER records_fts_delete AFTER DELETE ON records BEGIN SELECT 1; END;
             CREATE TRIGGER records_fts_update AFTER UPDATE OF text ON records BEGIN SELECT 1; END;
             PRAGMA user_version = 2;",
        )
        .unwrap();
    drop(connection);
    let store = SqliteStore::open(&path, Arc::new(HashingEmbedder)).unwrap();
    let connection = rusqlite::Connection::open(&path).unwrap();
    let fts_tables: i64 = connection
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'records_fts%'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(fts_tables, 0, "FTS5 and its triggers are gone");
    let hits = store
        .search("TLS certificate expired", 5, &[])
        .unwrap()
        .hits;
    assert!(!hits.is_empty() && hits.iter().all(|hit| hit.reason == "bm25"));
    assert!(hits[0].metadata.contains("cert"), "{:?}", hits[0]);
}

/// A database restored from a backup older than its vector index snapshot: the snapshot
/// covers embeddings the database does not have, so it is rebuilt, never trusted.
#[test]
fn a_snapshot_ahead_of_a_restored_database_is_rebuilt() {
    let dir = temp_dir("sqlite-restore");
    let path = dir.join("tenant.sqlite3");
    let backup = dir.join("backup.sqlite3");
    let open = || {
        SqliteStore::open(&path, Arc::new(HashingEmbedder))
            .unwrap()
            .with_search_mode(SearchMode::Vector)
    };
    {
        let store = open();
        store
            .upsert(
                "errors",
                &records(&[("error", "e1", "disk quota exceeded")]),
            )
            .unwrap();
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .execute("VACUUM INTO ?1", [backup.to_str().unwrap()])
            .unwrap();
        // After the backup: embedded, indexed, and the snapshot saved as the store closes.
        store.embed("errors", &["e1".to_string()]).unwrap();
        store.sync_index().unwrap();
        assert_eq!(store.search("disk quota", 5, &[]).unwrap().hits.len(), 1);
    }
    // Restore the database only; the newer snapshot stays beside it.
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    std::fs::copy(&backup, &path).unwrap();
    let store = open();
    assert!(
        store.search("disk quota", 5, &[]).unwrap().hits.is_empty(),
        "the restored database has no embedding, so no vector hit"
    );
}

/// The server runs read calls on its async workers only for a store that answers them in
/// process: SQLite says so once the index its search mode reads is built, and never for
/// vectors from an embedder that waits on a network.
#[test]
fn reads_are_served_in_process_once_the_mode_s_index_is_built() {
    use vector_service_embed_http::{HttpEmbedder, HttpEmbedderConfig};
    use vector_service_runtime::backends::Store as _;

    let dir = temp_dir("in-process");
    let lexical = SqliteStore::open(&dir.join("lexical.sqlite3"), Arc::new(HashingEmbedder))
        .expect("the store opens");
    ingest(&lexical);
    assert!(!lexical.serves_reads_in_process(), "no text index yet");
    lexical.sync_index().unwrap();
    assert!(lexical.serves_reads_in_process(), "text index built");

    let vectors = open(&dir.join("vectors.sqlite3"));
    ingest(&vectors);
    assert!(!vectors.serves_reads_in_process(), "no vector index yet");
    vectors.sync_index().unwrap();
    assert!(vectors.serves_reads_in_process(), "vector index built");

    // Nothing listens there: the embedder is never called, only asked what it is.
    let remote = HttpEmbedder::new(HttpEmbedderConfig::new("http://127.0.0.1:9/v1", "m"));
    let remote = SqliteStore::open(&dir.join("remote.sqlite3"), Arc::new(remote))
        .expect("the store opens")
        .with_search_mode(SearchMode::Hybrid);
    ingest(&remote);
    remote.sync_index().unwrap();
    assert!(
        !remote.serves_reads_in_process(),
        "a query embedding waits on the network"
    );
}

/// A lexical search reads the result cache's generation in the statement it runs anyway (the
/// change clock its index catches up to); a vector search leaves the read to the caller. That
/// the generation and hits agree with their parts is a conformance check
/// (`a_search_reading_the_generation_agrees_with_its_parts`).
#[test]
fn a_lexical_search_reads_the_cache_generation_on_its_way() {
    let path = temp_dir("sqlite-clock").join("tenant.sqlite3");
    let lexical = SqliteStore::open(&path, Arc::new(HashingEmbedder)).expect("the store opens");
    ingest(&lexical);
    let (found, _) = lexical
        .search_reading_generation("upload failed", 5, &[])
        .expect("a lexical store reads the generation")
        .expect("the search");
    assert!(!found.hits.is_empty());
    let vector = open(&path);
    assert!(vector
        .search_reading_generation("upload failed", 5, &[])
        .is_none());
}
