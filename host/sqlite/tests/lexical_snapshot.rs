//! The lexical index's snapshot beside a SQLite file (`<file>.lexical`): written once the index
//! is built and when the store closes, loaded by the next open and brought up to date with
//! what any process wrote since (records added, changed and deleted), and rebuilt from the
//! table when it is damaged or ahead of the database.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vector_service_runtime::backends::{HashingEmbedder, Retriever, Store};
use vector_service_sqlite::SqliteStore;
use vector_service_testkit::fixtures::records;

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, Arc::new(HashingEmbedder)).expect("the store opens")
}

fn snapshot(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.lexical", path.display()))
}

/// Record ids of a lexical search, best first.
fn ids(store: &SqliteStore, query: &str) -> Vec<String> {
    store
        .search(query, 10, &[])
        .unwrap()
        .hits
        .into_iter()
        .map(|hit| hit.id)
        .collect()
}

/// A store whose snapshot was written, with what it answers for `query`.
fn store_with_snapshot(dir: &Path) -> PathBuf {
    let path = dir.join("tenant.sqlite3");
    let store = open(&path);
    let batch = records(&[
        ("error", "e1", "upload failed: disk full"),
        ("error", "e2", "queue stuck after deploy"),
        ("bot", "b1", "a bot that retries failed uploads"),
    ]);
    store.upsert("errors", &batch).unwrap();
    store.sync_index().unwrap();
    assert!(snapshot(&path).exists(), "written once the index is built");
    drop(store);
    path
}

/// Change a record's text behind the change clock's back: an index loaded from the snapshot
/// still has the old text, one rebuilt from the table has the new. Only a test does this.
fn change_text_unseen(path: &Path, id: &str, text: &str) {
    let connection = rusqlite::Connection::open(path).unwrap();
    connection
        .execute(
            "UPDATE records SET text = ?1 WHERE id = ?2",
            rusqlite::params![text, id],
        )
        .unwrap();
}

#[test]
fn a_reopened_store_loads_the_snapshot_and_replays_what_was_written_since() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with_snapshot(dir.path());
    // Another process changes, adds and deletes records through the store.
    let writer = open(&path);
    writer
        .upsert(
            "errors",
            &records(&[
                ("error", "e2", "queue stuck after upgrade"),
                ("error", "e3", "upload quota exceeded"),
            ]),
        )
        .unwrap();
    writer.delete("errors", &["b1".into()]).unwrap();
    drop(writer);
    change_text_unseen(&path, "e1", "certificate expired");

    let reopened = open(&path);
    // e1 still matches "disk": the index came from the snapshot, not from the table.
    assert_eq!(ids(&reopened, "disk full"), ["e1"]);
    assert_eq!(ids(&reopened, "upgrade"), ["e2"], "a change replayed");
    assert_eq!(ids(&reopened, "quota"), ["e3"], "an addition replayed");
    assert!(
        ids(&reopened, "bot retries").is_empty(),
        "a deletion replayed"
    );
}

#[test]
fn changes_made_while_open_are_saved_when_the_store_closes() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with_snapshot(dir.path());
    let store = open(&path);
    store
        .upsert(
            "errors",
            &records(&[("error", "e4", "certificate expired")]),
        )
        .unwrap();
    assert_eq!(ids(&store, "certificate"), ["e4"]);
    drop(store);
    // Hide e4's text from a rebuild: only a snapshot saved at close still finds it.
    change_text_unseen(&path, "e4", "nothing to see");
    assert_eq!(ids(&open(&path), "certificate"), ["e4"]);
}

#[test]
fn a_damaged_snapshot_or_one_ahead_of_the_database_is_rebuilt_from_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with_snapshot(dir.path());
    change_text_unseen(&path, "e1", "certificate expired");
    let good = std::fs::read(snapshot(&path)).unwrap();

    // One byte flipped in the body: the checksum refuses it.
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    std::fs::write(snapshot(&path), &flipped).unwrap();
    assert_eq!(ids(&open(&path), "certificate"), ["e1"], "rebuilt");

    // Cut short.
    std::fs::write(snapshot(&path), &good[..good.len() / 2]).unwrap();
    assert_eq!(ids(&open(&path), "certificate"), ["e1"], "rebuilt");

    // Ahead of the database, as when a database is restored from an older backup and its
    // snapshot is not: the clock is wound back.
    std::fs::write(snapshot(&path), &good).unwrap();
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute("UPDATE change_clock SET seq = 0", [])
        .unwrap();
    drop(connection);
    assert_eq!(ids(&open(&path), "certificate"), ["e1"], "rebuilt");
}
