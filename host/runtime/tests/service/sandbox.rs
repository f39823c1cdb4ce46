//! The sandbox: a memory cap, an exhausted deadline or the host-call byte cap stops one call
//! with a typed error, is counted, and never poisons the next call.

use std::sync::Arc;
use std::time::Duration;

use vector_service_runtime::api::{BackendError, BackendHits};
use vector_service_runtime::backends::Retriever;
use vector_service_runtime::{SandboxFailure, SandboxLimits, ServiceError};

use vector_service_testkit::prelude::*;

#[test]
fn a_memory_cap_stops_the_call_and_the_next_call_is_served() {
    let (backends, _) = with_retriever(ScriptedRetriever::new(vec![]));
    let limits = SandboxLimits {
        memory_bytes: 4 << 20,
        ..SandboxLimits::default()
    };
    let (service, telemetry) = service_with(backends, limited(limits));
    let huge = "x".repeat(8 << 20);

    match service.search("s", &search(&huge)) {
        Err(ServiceError::Sandbox { reason, .. }) => assert_eq!(reason, SandboxFailure::Memory),
        other => panic!("expected the memory cap to stop the call, got {other:?}"),
    }
    assert!(service.search("s", &search("small")).is_ok());

    // A reused instance is replaced after its trap.
    let mut instance = service.instance().unwrap();
    assert!(matches!(
        instance.search("s", &search(&huge)),
        Err(ServiceError::Sandbox { .. })
    ));
    assert!(instance.search("s", &search("small")).is_ok());
    assert!(instance.search("s", &search("again")).is_ok());

    let metrics = metrics(&telemetry);
    assert_eq!(
        metrics.counter(
            "vector_service_sandbox_failures_total",
            &[("reason", "memory")]
        ),
        2.0
    );
}

/// A retriever that is slow on its first call only (fault handling: a hung backend).
struct SlowOnce(std::sync::atomic::AtomicBool);

impl Retriever for SlowOnce {
    fn search(&self, _: &str, _: u32, _: &[String]) -> Result<BackendHits, BackendError> {
        if !self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(BackendHits {
            hits: vec![hit("bot", "b", 0.9, serde_json::json!({}))],
            confidence: None,
        })
    }
}

#[test]
fn an_exhausted_deadline_stops_the_call_and_the_next_call_is_served() {
    let (backends, _) = with_retriever(Arc::new(SlowOnce(Default::default())));
    let limits = SandboxLimits {
        call_deadline: Duration::from_millis(50),
        ..SandboxLimits::default()
    };
    let (service, telemetry) = service_with(backends, limited(limits));
    match service.search("s", &search("q")) {
        Err(ServiceError::Sandbox { reason, .. }) => assert_eq!(reason, SandboxFailure::Deadline),
        other => panic!("expected the deadline to stop the call, got {other:?}"),
    }
    assert_eq!(service.search("s", &search("q")).unwrap().hits.len(), 1);
    let metrics = metrics(&telemetry);
    assert_eq!(
        metrics.counter(
            "vector_service_sandbox_failures_total",
            &[("reason", "deadline")]
        ),
        1.0
    );
}

#[test]
fn the_host_call_byte_cap_stops_a_call_that_hands_the_host_too_much() {
    let retriever = ScriptedRetriever::new(vec![]);
    let (backends, _) = with_retriever(retriever.clone());
    let limits = SandboxLimits {
        host_call_bytes: 8 << 10,
        ..SandboxLimits::default()
    };
    let (service, telemetry) = service_with(backends, limited(limits));
    // The guest forwards the query to the retriever import: 15 KB of it (within the request
    // bounds of 16 KiB and 512 words) is over an 8 KiB cap.
    let long_query = "wordwordwordwordwordwordword ".repeat(500);
    match service.search("s", &search(&long_query)) {
        Err(ServiceError::Sandbox { reason, detail }) => {
            assert_eq!(reason, SandboxFailure::HostCallBytes);
            assert!(detail.contains("8192 bytes"), "{detail}");
        }
        other => panic!("expected the host-call cap to stop the call, got {other:?}"),
    }
    assert!(
        retriever.calls().is_empty(),
        "the backend never saw the oversized query"
    );
    assert!(service.search("s", &search("short")).is_ok());
    let metrics = metrics(&telemetry);
    assert_eq!(
        metrics.counter(
            "vector_service_sandbox_failures_total",
            &[("reason", "host-call-bytes")]
        ),
        1.0
    );
    assert_eq!(
        metrics.gauge("vector_service_instances_live", &[("tenant", "acme")]),
        0.0
    );
    assert_eq!(
        metrics.histogram_count("vector_service_memory_peak_bytes", &[("tenant", "acme")]),
        2.0
    );
}

#[test]
fn a_pooled_engine_serves_calls_and_refuses_instances_beyond_its_slots() {
    use vector_service_runtime::{
        Allocation, Plugin, SandboxEngine, Telemetry, VectorService, BUILTIN_COMPONENT,
    };
    let engine = SandboxEngine::new(Allocation::Pooling {
        instances: 2,
        memory_bytes: 64 << 20,
    })
    .unwrap();
    assert!(matches!(
        engine.allocation(),
        Allocation::Pooling { instances: 2, .. }
    ));
    let plugin = Plugin::new(engine.engine(), BUILTIN_COMPONENT).unwrap();
    let (backends, _) = with_retriever(ScriptedRetriever::new(vec![]));
    let service = VectorService::new(Arc::new(plugin), backends, Telemetry::new(), config("acme"));
    for _ in 0..10 {
        assert!(
            service.search("s", &search("pooled")).is_ok(),
            "slots are reused"
        );
    }
    let held = [service.instance().unwrap(), service.instance().unwrap()];
    match service.instance() {
        Err(ServiceError::Host(error)) => {
            assert!(format!("{error:#}").contains("limit"), "{error:#}")
        }
        Err(other) => panic!("expected a host error for an exhausted pool, got {other}"),
        Ok(_) => panic!("a third live instance in a pool of two"),
    }
    drop(held);
    assert!(service.search("s", &search("after")).is_ok());
}
