//! A deliberately misbehaving component (`tests/misbehaving-guest`, built here with the same
//! toolchain rules as the product's guest) served by the real server: a trap, a runaway loop,
//! a memory hoard and a host-call flood each fail only their own request, with a typed error,
//! and are counted; the next request on the same server is served.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::json;

use crate::server::{error_kind, vector_service_tenant_hash, Server};
use crate::support::{temp_dir, Metrics};

#[path = "../../host/guest_build.rs"]
#[allow(dead_code)]
mod guest_build;

/// The misbehaving component, built once per test run into the shared guest target dir.
fn misbehaving_component() -> &'static Path {
    static COMPONENT: OnceLock<PathBuf> = OnceLock::new();
    COMPONENT.get_or_init(|| {
        let repository = Path::new(env!("CARGO_MANIFEST_DIR"));
        let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let guest_target = scratch
            .parent()
            .expect("target/tmp has a parent")
            .join("guest");
        let toolchain = guest_build::detect_toolchain()
            .unwrap_or_else(|| panic!("{}", guest_build::INSTALL_HINT));
        let component = guest_build::build_component(
            &toolchain,
            &repository.join("tests/misbehaving-guest"),
            &guest_target,
            "misbehaving_guest.wasm",
        )
        .unwrap_or_else(|message| panic!("{message}"));
        let path = scratch.join("misbehaving.wasm");
        std::fs::write(&path, component).expect("writing the misbehaving component");
        path
    })
}

/// One tenant with tight limits, so that each misbehaviour hits its limit quickly.
fn tight_tenant(dir: &Path) -> PathBuf {
    let path = dir.join("tenants.toml");
    let text = format!(
        r#"admin_key_sha256 = "{}"

[[tenant]]
name = "acme"
api_key_sha256 = "{}"
[tenant.limits]
memory_mib = 8
call_deadline_ms = 200
host_call_mib = 4
max_concurrent = 2
"#,
        vector_service_tenant_hash("admin-key"),
        vector_service_tenant_hash("acme-key")
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn each_misbehaviour_fails_only_its_own_request_and_is_counted() {
    let component = misbehaving_component();
    let dir = temp_dir("misbehaving");
    let tenants = tight_tenant(&dir);
    let server = Server::start(
        &dir,
        &[
            "--tenants",
            tenants.to_str().unwrap(),
            "--component",
            component.to_str().unwrap(),
        ],
    );
    let key = Some("acme-key");
    let search = |query: &str| {
        server.post(
            "/v1/search",
            key,
            &json!({"query": query, "session_id": "s-1"}).to_string(),
        )
    };

    let cases = [
        ("trap", 500, "internal", "trap"),
        ("spin", 503, "deadline-exceeded", "deadline"),
        ("hoard", 503, "memory-limit", "memory"),
        ("flood", 503, "host-call-limit", "host-call-bytes"),
    ];
    for (query, status, kind, _) in cases {
        let (got_status, body, _) = search(query);
        assert_eq!(got_status, status, "{query}: {body}");
        assert_eq!(error_kind(&body), kind, "{query}: {body}");
        let (status, body, _) = search("a well-behaved query");
        assert_eq!(status, 200, "after {query}: {body}");
        assert_eq!(body["session_id"], "s-1");
        assert_eq!(body["hits"], json!([]));
    }

    let (status, text) = server.get("/metrics", key);
    assert_eq!(status, 200);
    let metrics = Metrics::parse(text);
    for (query, _, _, reason) in cases {
        let failures = metrics.counter(
            "vector_service_sandbox_failures_total",
            &[("tenant", "acme"), ("reason", reason)],
        );
        assert_eq!(failures, 1.0, "{query} counted once as {reason}");
    }
    assert_eq!(
        metrics.gauge("vector_service_instances_live", &[("tenant", "acme")]),
        0.0,
        "every instance was dropped, the failed ones too"
    );
    // Process-wide figures are for the operator (admin key), not for a tenant.
    assert!(!metrics.text.contains("vector_service_instance_slots"));
    let (_, text) = server.get("/metrics", Some("admin-key"));
    let slots = Metrics::parse(text).gauge("vector_service_instance_slots", &[]);
    assert!(slots >= 4.0, "2 x max_concurrent slots, got {slots}");
    let peaks = metrics.histogram_count("vector_service_memory_peak_bytes", &[("tenant", "acme")]);
    assert_eq!(peaks, 8.0, "one high-water mark per request");
}
