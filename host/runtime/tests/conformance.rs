//! The store conformance suite (`vector-service-testkit`) on the in-memory store.

use std::sync::Arc;

use vector_service_runtime::backends::memory::MemoryStore;
use vector_service_runtime::backends::{SearchMode, Store};
use vector_service_testkit::{conformance_suite, StoreFactory};

/// A new in-memory store.
struct Memory;

impl StoreFactory for Memory {
    fn fresh(&self, mode: SearchMode) -> Arc<dyn Store> {
        Arc::new(MemoryStore::new().with_search_mode(mode))
    }

    fn on_disk(&self) -> bool {
        false
    }
}

conformance_suite!(Memory);
