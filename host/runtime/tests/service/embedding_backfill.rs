//! EmbeddingBackfill.run: every database in order, batches, one failing database, filters,
//! re-embedding changed records and run metrics.

use std::sync::Arc;

use serde_json::json;
use vector_service_runtime::api::{BackendError, EmbedReport, Error};
use vector_service_runtime::backends::memory::MemoryStore;
use vector_service_runtime::backends::{Backends, EmbeddingStore, Store};
use vector_service_runtime::ServiceError;

use vector_service_testkit::prelude::*;

/// The memory store, except that one database fails (fault handling) or the registry does.
struct FailingDatabase {
    inner: Arc<MemoryStore>,
    failing: &'static str,
    registry_fails: bool,
}

impl EmbeddingStore for FailingDatabase {
    fn databases(&self) -> Result<Vec<String>, BackendError> {
        if self.registry_fails {
            return Err(BackendError::Unavailable("registry offline".into()));
        }
        self.inner.databases()
    }
    fn pending(
        &self,
        db: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, BackendError> {
        self.inner.pending(db, after, limit)
    }
    fn embed(&self, db: &str, ids: &[String]) -> Result<EmbedReport, BackendError> {
        if db == self.failing {
            return Err(BackendError::Failed(format!("embedder crashed on {db}")));
        }
        self.inner.embed(db, ids)
    }
}

fn seeded(counts: &[(&str, &str, usize)]) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    for (db, origin, count) in counts {
        store.register_database(db).unwrap();
        for i in 0..*count {
            store.insert(
                db,
                record(
                    origin,
                    &format!("{origin}-{i:03}"),
                    &format!("{origin} record number {i}"),
                    json!({}),
                ),
            );
        }
    }
    store
}

#[test]
fn every_database_is_backfilled_in_batches_and_one_failure_fails_the_run_but_not_the_others() {
    let store = seeded(&[
        ("bots", "bot", 5),
        ("code", "code", 3),
        ("errors", "error", 4),
        ("workflows", "workflow", 0),
    ]);
    let mut backends = Backends::memory(store.clone());
    backends.embedding_store = Arc::new(FailingDatabase {
        inner: store.clone(),
        failing: "code",
        registry_fails: false,
    });
    let (service, telemetry) = service(backends);

    let (response, events) =
        capture_logs(|| service.backfill("bf-1", &backfill(Some(2), &[])).unwrap());
    // The others were backfilled, but a run with a failed database is a failure.
    assert_eq!(response.status, "failure");
    assert_eq!(response.session_id, "bf-1");
    let summary: Vec<_> = response
        .databases
        .iter()
        .map(|d| (d.name.as_str(), d.embedded, d.batches, d.error.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("bots", 5, 3, None),
            ("code", 0, 0, Some("embedder crashed on code".to_string())),
            ("errors", 4, 2, None),
            ("workflows", 0, 0, None),
        ]
    );
    assert_eq!(store.embedded_count("bots"), 5);
    assert_eq!(store.embedded_count("errors"), 4);
    assert_eq!(store.embedded_count("code"), 0);

    let guest = guest_events(&events);
    let progress: Vec<_> = guest
        .iter()
        .filter(|e| e.message.starts_with("Backfilling"))
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(
        progress,
        [
            "Backfilling bots (1/4)",
            "Backfilling code (2/4)",
            "Backfilling errors (3/4)",
            "Backfilling workflows (4/4)"
        ]
    );
    let failure = guest
        .iter()
        .find(|e| e.message == "Backfill failed for code")
        .expect("the failure is logged");
    assert_eq!(failure.level, tracing::Level::ERROR);
    assert_eq!(failure.field("session_id"), Some("bf-1"));
    assert!(
        guest
            .iter()
            .filter(|e| e.message.starts_with("Backfilled batch"))
            .count()
            >= 5
    );

    let metrics = metrics(&telemetry);
    assert_eq!(
        (
            metrics.backfill_runs("success"),
            metrics.backfill_runs("failure")
        ),
        (0.0, 1.0)
    );
    assert_eq!(
        metrics.histogram_count(
            "embedding_backfill_run_duration_seconds",
            &[("tenant", "acme")]
        ),
        1.0
    );
}

#[test]
fn a_second_run_finds_nothing_and_changed_records_are_embedded_again() {
    let store = seeded(&[("bots", "bot", 3)]);
    let (service, _) = service(Backends::memory(store.clone()));
    let run = || {
        service
            .backfill("s", &backfill(None, &[]))
            .unwrap()
            .databases
            .remove(0)
    };
    assert_eq!(run().embedded, 3);
    assert_eq!(run().embedded, 0);

    store.insert(
        "bots",
        record(
            "bot",
            "bot-001",
            "a completely rewritten description",
            json!({}),
        ),
    );
    assert_eq!(store.embedded_count("bots"), 2);
    let again = run();
    assert_eq!((again.embedded, again.batches), (1, 1));
    assert_eq!(store.embedded_count("bots"), 3);
}

#[test]
fn records_without_text_are_skipped_once_and_the_run_ends() {
    let store = seeded(&[("bots", "bot", 3)]);
    store.insert("bots", record("bot", "bot-000", "  ", json!({})));
    let (service, _) = service(Backends::memory(store.clone()));
    let report = &service
        .backfill("s", &backfill(Some(1), &[]))
        .unwrap()
        .databases[0];
    assert_eq!((report.embedded, report.skipped, report.batches), (2, 1, 3));
}

#[test]
fn a_database_filter_limits_the_run_and_unknown_names_are_rejected() {
    let store = seeded(&[("bots", "bot", 2), ("errors", "error", 2)]);
    let (service, telemetry) = service(Backends::memory(store.clone()));
    let response = service.backfill("s", &backfill(None, &["errors"])).unwrap();
    assert_eq!(response.databases.len(), 1);
    assert_eq!(store.embedded_count("bots"), 0);
    assert_eq!(store.embedded_count("errors"), 2);

    match service.backfill("s", &backfill(None, &["errors", "tickets"])) {
        Err(ServiceError::Rejected(Error::MalformedPrompt(message))) => {
            assert!(message.contains("\"tickets\""), "{message}")
        }
        other => panic!("expected malformed-prompt, got {other:?}"),
    }
    assert!(matches!(
        service.backfill("s", &backfill(Some(0), &[])),
        Err(ServiceError::Rejected(Error::MalformedPrompt(_)))
    ));
    let metrics = metrics(&telemetry);
    assert_eq!(metrics.backfill_runs("success"), 1.0);
    assert_eq!(metrics.backfill_runs("failure"), 2.0);
}

#[test]
fn a_failing_registry_fails_the_run() {
    let store = seeded(&[("bots", "bot", 2)]);
    let mut backends = Backends::memory(store.clone());
    backends.embedding_store = Arc::new(FailingDatabase {
        inner: store,
        failing: "",
        registry_fails: true,
    });
    let (service, telemetry) = service(backends);
    assert!(matches!(
        service.backfill("s", &backfill(None, &[])),
        Err(ServiceError::Rejected(Error::Unavailable(m))) if m == "registry offline"
    ));
    assert_eq!(metrics(&telemetry).backfill_runs("failure"), 1.0);
}
