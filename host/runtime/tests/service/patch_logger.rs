//! PatchLogger.track_contributors: origin:id parsing, primary vs fallback destination, no
//! silent loss, ROI tags and status metrics.

use std::sync::Arc;

use vector_service_runtime::api::{
    BackendError, Destination, Error, PatchOutcome, Rates, VectorOutcome, VectorRef,
};
use vector_service_runtime::backends::memory::MemoryStore;
use vector_service_runtime::backends::{Backends, MetricsDb, Store, VectorMetricsDb};
use vector_service_runtime::ServiceError;

use vector_service_testkit::prelude::*;

/// A primary metrics DB that claims to be available but fails every write.
struct BrokenPrimary;

impl MetricsDb for BrokenPrimary {
    fn available(&self) -> bool {
        true
    }
    fn log_patch_outcome(&self, _: &PatchOutcome) -> Result<(), BackendError> {
        Err(BackendError::Failed("disk I/O error".into()))
    }
}

/// A vector metrics DB whose writes fail.
struct BrokenVectorMetrics;

impl VectorMetricsDb for BrokenVectorMetrics {
    fn record_outcomes(&self, _: &[VectorOutcome]) -> Result<(), BackendError> {
        Err(BackendError::Unavailable("connection refused".into()))
    }
    fn vector_rates(&self, v: &[VectorRef]) -> Result<Vec<Option<Rates>>, BackendError> {
        Ok(vec![None; v.len()])
    }
    fn origin_rates(&self, o: &[String]) -> Result<Vec<Option<Rates>>, BackendError> {
        Ok(vec![None; o.len()])
    }
}

fn pairs(store: &MemoryStore) -> Vec<(Option<String>, Option<String>)> {
    store
        .patch_outcomes()
        .unwrap()
        .into_iter()
        .map(|row| (row.origin_db, row.vector_id))
        .collect()
}

fn some(origin: &str, id: &str) -> (Option<String>, Option<String>) {
    (Some(origin.to_string()), Some(id.to_string()))
}

#[test]
fn ids_split_at_the_first_colon_into_primary_rows_and_stats() {
    let (service, store, _) = memory_service();
    let response = service
        .track_contributors(
            "sess",
            &track(&["a:b:c", "x", ":x", "x:", "bot:7"], true, "patch-1"),
        )
        .unwrap();

    assert_eq!(response.written_to, Destination::Primary);
    assert_eq!(response.status, "success");
    assert_eq!(response.rows, 5);
    assert_eq!(response.roi_tag, "success");
    assert!(response.warnings.is_empty());
    assert_eq!(
        pairs(&store),
        vec![
            some("a", "b:c"),
            some("", "x"),
            some("", "x"),
            some("x", ""),
            some("bot", "7")
        ]
    );
    let row = &store.patch_outcomes().unwrap()[0];
    assert_eq!(
        (row.patch_id.as_str(), row.session_id.as_str()),
        ("patch-1", "sess")
    );
    assert!(row.success && !row.reverted);
    assert_eq!(row.label, "positive");
    // Only contributors with an origin are credited in retriever_stats.
    let stats = store.retriever_stats_by_origin();
    assert_eq!(stats.keys().collect::<Vec<_>>(), ["a", "bot", "x"]);
    assert_eq!((stats["bot"].wins, stats["bot"].regrets), (1, 0));
    assert!(store.vector_outcomes().is_empty());
}

#[test]
fn a_failed_patch_is_a_negative_row_and_a_regret() {
    let (service, store, _) = memory_service();
    let response = service
        .track_contributors("s", &track(&["error:e1"], false, "p"))
        .unwrap();
    assert_eq!(response.status, "failure");
    assert_eq!(store.patch_outcomes().unwrap()[0].label, "negative");
    assert_eq!(store.retriever_stats_by_origin()["error"].regrets, 1);
}

#[test]
fn no_contributors_still_records_one_row() {
    let (service, store, _) = memory_service();
    let response = service
        .track_contributors("s", &track(&[], true, "p-empty"))
        .unwrap();
    assert_eq!(response.rows, 1);
    assert_eq!(pairs(&store), vec![(None, None)]);
    assert!(store.retriever_stats_by_origin().is_empty());
}

/// The original recorded the contribution on its default path too; WIT 0.4 carries it in the
/// primary's patch outcome, so it is kept whichever database takes the outcome.
#[test]
fn the_contribution_is_kept_in_the_primary_metrics_db() {
    let (service, store, _) = memory_service();
    let mut request = track(&["bot:b1", "workflow:w1"], true, "p-8");
    request.contribution = Some(0.75);
    let response = service.track_contributors("s-8", &request).unwrap();

    assert_eq!(response.written_to, Destination::Primary);
    let rows = store.patch_outcomes().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|row| row.contribution == 0.75), "{rows:?}");
    assert!(
        store.vector_outcomes().is_empty(),
        "written once, not twice"
    );

    // None given: 0.0, as the original's default.
    service
        .track_contributors("s-8", &track(&["bot:b2"], false, "p-9"))
        .unwrap();
    assert_eq!(store.patch_outcomes().unwrap()[2].contribution, 0.0);
}

#[test]
fn an_unavailable_primary_sends_outcomes_to_the_vector_metrics_db() {
    let (service, store, _) = memory_service();
    store.set_primary_available(false);
    let mut request = track(&["bot:b1", "workflow:w1"], false, "p-9");
    request.contribution = Some(0.75);
    let response = service.track_contributors("s-9", &request).unwrap();

    assert_eq!(response.written_to, Destination::Fallback);
    assert_eq!(response.status, "failure");
    assert!(store.patch_outcomes().unwrap().is_empty());
    let outcomes = store.vector_outcomes();
    assert_eq!(outcomes.len(), 2);
    let first = &outcomes[0];
    assert_eq!(
        first.vector,
        VectorRef {
            origin_db: "bot".into(),
            vector_id: "b1".into()
        }
    );
    assert_eq!(first.session_id, "s-9");
    assert_eq!(first.patch_id, "p-9");
    assert_eq!(first.contribution, 0.75);
    assert!(!first.win && first.regret);
}

#[test]
fn a_failing_primary_falls_back_and_nothing_is_lost() {
    let store = Arc::new(MemoryStore::new());
    let mut backends = Backends::memory(store.clone());
    backends.metrics_db = Arc::new(BrokenPrimary);
    let (service, telemetry) = service(backends);
    let response = service
        .track_contributors("s", &track(&["code:c1"], true, "p"))
        .unwrap();

    assert_eq!(response.written_to, Destination::Fallback);
    assert_eq!(response.status, "success");
    assert_eq!(
        response.warnings,
        ["primary metrics db failed: disk I/O error"]
    );
    assert_eq!(store.vector_outcomes().len(), 1);
    let metrics = metrics(&telemetry);
    assert_eq!(metrics.patch_tracked("success"), 1.0);
    assert_eq!(metrics.patch_tracked("error"), 0.0);
}

#[test]
fn both_databases_failing_is_an_error_for_the_caller() {
    let store = Arc::new(MemoryStore::new());
    let mut backends = Backends::memory(store.clone());
    backends.metrics_db = Arc::new(BrokenPrimary);
    backends.vector_metrics_db = Arc::new(BrokenVectorMetrics);
    let (service, telemetry) = service(backends);
    match service.track_contributors("s", &track(&["code:c1"], true, "p")) {
        Err(ServiceError::Rejected(Error::Backend(message))) => assert_eq!(
            message,
            "primary metrics db failed: disk I/O error; vector metrics db failed: connection refused"
        ),
        other => panic!("expected a backend error, got {other:?}"),
    }
    let metrics = metrics(&telemetry);
    assert_eq!(metrics.patch_tracked("error"), 1.0);
    assert_eq!(metrics.patch_tracked("success"), 0.0);
    assert_eq!(
        metrics.histogram_count(
            "patch_logger_track_contributors_duration_seconds",
            &[("tenant", "acme")]
        ),
        1.0
    );
}

#[test]
fn roi_tags_are_kept_and_unknown_ones_become_success_with_a_warning() {
    let (service, store, _) = memory_service();
    let mut tagged = track(&["bot:1"], true, "p1");
    tagged.roi_tag = Some("high-roi".into());
    assert_eq!(
        service.track_contributors("s", &tagged).unwrap().roi_tag,
        "high-roi"
    );

    let mut unknown = track(&["bot:1"], true, "p2");
    unknown.roi_tag = Some("moonshot".into());
    let response = service.track_contributors("s", &unknown).unwrap();
    assert_eq!(response.roi_tag, "success");
    assert_eq!(response.warnings.len(), 1);
    assert!(response.warnings[0].contains("moonshot"));
    let tags: Vec<_> = store
        .patch_outcomes()
        .unwrap()
        .into_iter()
        .map(|r| r.roi_tag)
        .collect();
    assert_eq!(tags, ["high-roi", "success"]);
}

/// The original's callers send `patch_id=""` for a patch that failed before it had an id
/// (its default), and that failure is recorded, not refused.
#[test]
fn a_blank_patch_id_is_recorded_as_the_original_does() {
    let (service, store, telemetry) = memory_service();
    for patch_id in ["", " "] {
        let response = service
            .track_contributors("s", &track(&["bot:1"], false, patch_id))
            .unwrap();
        assert_eq!(response.written_to, Destination::Primary);
    }
    let rows = store.patch_outcomes().unwrap();
    let ids: Vec<&str> = rows.iter().map(|row| row.patch_id.as_str()).collect();
    assert_eq!(ids, ["", " "]);
    assert!(rows.iter().all(|row| !row.success));
    assert_eq!(metrics(&telemetry).patch_tracked("failure"), 2.0);
}

#[test]
fn bad_input_is_rejected_and_writes_nothing() {
    let (service, store, telemetry) = memory_service();
    let mut nan = track(&["bot:1"], true, "p");
    nan.contribution = Some(f64::NAN);
    let mut long_patch = track(&["bot:1"], true, "p");
    long_patch.patch_id = "p".repeat(257);
    for request in [nan, long_patch] {
        assert!(matches!(
            service.track_contributors("s", &request),
            Err(ServiceError::Rejected(Error::MalformedPrompt(_)))
        ));
    }
    assert!(store.patch_outcomes().unwrap().is_empty() && store.vector_outcomes().is_empty());
    let metrics = metrics(&telemetry);
    assert_eq!(metrics.patch_tracked("error"), 2.0);
}
