//! The store conformance suite (`vector-service-testkit`) on SQLite: a real file per store.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use vector_service_runtime::backends::{Embedder, HashingEmbedder, SearchMode, Store};
use vector_service_sqlite::SqliteStore;
use vector_service_testkit::{conformance_suite, StoreFactory};

/// A new SQLite file per store, in a directory removed with the factory.
struct Sqlite {
    dir: tempfile::TempDir,
    next: AtomicUsize,
}

impl Sqlite {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
            next: AtomicUsize::new(0),
        }
    }
}

impl StoreFactory for Sqlite {
    fn fresh(&self, mode: SearchMode) -> Arc<dyn Store> {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let embedder: Arc<dyn Embedder> = Arc::new(HashingEmbedder);
        let path = self.dir.path().join(format!("tenant-{n}.sqlite3"));
        Arc::new(
            SqliteStore::open(&path, embedder)
                .expect("the SQLite store opens")
                .with_search_mode(mode),
        )
    }
}

conformance_suite!(Sqlite::new());
