//! Per-tenant metering: calls, guest and backend time, instantiations and the memory
//! high-water mark grow with the work done, stay per tenant, and reach Prometheus (labelled
//! `tenant` and `component`) and `GET /v1/usage`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use vector_service_runtime::api::{BackendError, BackendHits};
use vector_service_runtime::backends::Retriever;
use vector_service_runtime::{Plugin, UsageTotals, VectorService, BUILTIN_COMPONENT};

use crate::server::Server;
use crate::support::{
    config, hit, metrics, plugin, search, temp_dir, with_retriever, write_tenants,
};

/// A retriever that takes `delay` to answer one hit.
struct SlowRetriever {
    delay: Duration,
}

impl Retriever for SlowRetriever {
    fn search(&self, _: &str, _: u32, _: &[String]) -> Result<BackendHits, BackendError> {
        std::thread::sleep(self.delay);
        Ok(BackendHits {
            hits: vec![hit("bot", "b1", 0.9, serde_json::json!({"name": "b1"}))],
            confidence: Some(0.9),
        })
    }
}

fn only(usage: Vec<UsageTotals>) -> UsageTotals {
    assert_eq!(usage.len(), 1, "one component: {usage:?}");
    usage.into_iter().next().unwrap()
}

fn short_digest() -> String {
    vector_service_runtime::sha256_hex(BUILTIN_COMPONENT)[..12].to_string()
}

#[test]
fn backend_time_is_told_apart_from_guest_time_and_each_tenant_is_metered_apart() {
    let delay = Duration::from_millis(40);
    let (backends, _) = with_retriever(Arc::new(SlowRetriever { delay }));
    let (a, telemetry) = crate::support::service_with(backends, config("a"));
    let (backends, _) = with_retriever(Arc::new(SlowRetriever { delay }));
    let b = VectorService::new(plugin(), backends, telemetry.clone(), config("b"));

    let zero = only(a.usage());
    assert_eq!((zero.calls, zero.instantiations), (0, 0));
    assert_eq!(zero.component, short_digest());
    for _ in 0..3 {
        a.search("s", &search("renew certificates")).unwrap();
    }
    b.search("s", &search("renew certificates")).unwrap();

    let a_usage = only(a.usage());
    assert_eq!((a_usage.calls, a_usage.instantiations), (3, 3));
    assert!(
        a_usage.backend_seconds >= 3.0 * delay.as_secs_f64(),
        "{a_usage:?}"
    );
    assert!(a_usage.guest_seconds > 0.0, "{a_usage:?}");
    assert!(
        a_usage.guest_seconds < a_usage.backend_seconds,
        "{a_usage:?}"
    );
    assert!(a_usage.memory_high_water_bytes >= 64 * 1024, "{a_usage:?}");
    let b_usage = only(b.usage());
    assert_eq!((b_usage.calls, b_usage.instantiations), (1, 1));

    // The same figures, labelled, in the exposition.
    let exposed = metrics(&telemetry);
    let component = short_digest();
    let with = |tenant| [("tenant", tenant), ("component", component.as_str())];
    assert_eq!(
        exposed.counter("vector_service_tenant_calls_total", &with("a")),
        3.0
    );
    assert_eq!(
        exposed.counter("vector_service_tenant_calls_total", &with("b")),
        1.0
    );
    assert_eq!(
        exposed.counter("vector_service_tenant_instantiations_total", &with("a")),
        3.0
    );
    let backend = exposed.counter("vector_service_tenant_backend_seconds_total", &with("a"));
    assert!(
        (backend - a_usage.backend_seconds).abs() < 1e-9,
        "{backend}"
    );
    assert_eq!(
        exposed.gauge("vector_service_tenant_memory_high_water_bytes", &with("a")),
        a_usage.memory_high_water_bytes as f64
    );
    for family in [
        "vector_service_tenant_calls_total",
        "vector_service_tenant_guest_seconds_total",
        "vector_service_tenant_backend_seconds_total",
        "vector_service_tenant_instantiations_total",
    ] {
        assert_eq!(exposed.family_type(family), Some("counter"), "{family}");
    }
}

#[test]
fn a_reloaded_component_is_metered_under_its_own_digest() {
    let (backends, _) = with_retriever(Arc::new(SlowRetriever {
        delay: Duration::ZERO,
    }));
    let handle = vector_service_runtime::PluginHandle::new(plugin());
    let service = VectorService::new(
        handle.clone(),
        backends,
        vector_service_runtime::Telemetry::new(),
        config("a"),
    );
    service.search("s", &search("q")).unwrap();
    // The same WIT world, other bytes: the misbehaving test guest.
    let other = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/guest/misbehaving/misbehaving.wasm"
    ))
    .unwrap();
    let other = Arc::new(Plugin::from_bytes(&other).unwrap());
    let other_digest = other.short_digest().to_string();
    handle.replace(other);
    let _ = service.search("s", &search("q"));
    let usage = service.usage();
    assert_eq!(usage.len(), 2, "{usage:?}");
    assert_eq!(usage[0].component, short_digest());
    assert_eq!(usage[0].calls, 1);
    assert_eq!(usage[1].component, other_digest);
    assert_eq!(usage[1].calls, 1);
}

#[test]
fn each_tenant_reads_its_own_usage_over_http() {
    let dir = temp_dir("metering-http");
    let tenants = write_tenants(&dir, None, &[("a", "a-key", ""), ("b", "b-key", "")]);
    let server = Server::start(&dir, &["--tenants", tenants.to_str().unwrap()]);
    let body = r#"{"query": "upload failed"}"#;
    for _ in 0..4 {
        assert_eq!(server.post("/v1/search", Some("a-key"), body).0, 200);
    }
    assert_eq!(server.post("/v1/search", Some("b-key"), body).0, 200);

    let usage = |key| {
        let (status, text) = server.get("/v1/usage", Some(key));
        assert_eq!(status, 200, "{text}");
        serde_json::from_str::<Value>(&text).unwrap()
    };
    let a = usage("a-key");
    assert_eq!(a["tenant"], "a");
    assert_eq!(a["calls"], 4);
    assert_eq!(a["instantiations"], 4);
    assert!(a["guest_seconds"].as_f64().unwrap() > 0.0, "{a}");
    assert!(a["backend_seconds"].as_f64().unwrap() > 0.0, "{a}");
    assert!(a["memory_high_water_bytes"].as_u64().unwrap() > 0, "{a}");
    assert_eq!(a["components"][0]["component"], short_digest().as_str());
    assert_eq!(a["components"][0]["calls"], 4);
    let b = usage("b-key");
    assert_eq!(
        (b["tenant"].as_str(), b["calls"].as_u64()),
        (Some("b"), Some(1))
    );
    assert_eq!(server.get("/v1/usage", None).0, 401);
}
