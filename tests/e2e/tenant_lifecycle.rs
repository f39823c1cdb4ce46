//! Tenants change without a restart: a reload re-reads the tenants file (tenants added and
//! removed, keys and limits changed) while another tenant's requests keep succeeding, and a
//! tenant whose store cannot be opened is not ready (503) while the others serve, at start
//! and until a reload opens it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::server::Server;
use crate::support::{temp_dir, write_tenants};
use vector_service_testkit::embeddings_endpoint::{EmbeddingsEndpoint as EmbeddingServer, Reply};

const SEARCH: &str = r#"{"query": "disk quota", "top_k": 3}"#;
const RECORD: &str =
    r#"{"db": "errors", "origin_db": "error", "id": "e1", "text": "disk quota exceeded"}"#;

fn names(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|name| name.as_str().unwrap())
        .collect()
}

#[test]
fn reload_adds_removes_and_rekeys_tenants_and_a_broken_store_fails_only_its_tenant() {
    let dir = temp_dir("tenant-lifecycle");
    // `broken`'s database file is not a database: the server still starts.
    std::fs::write(
        dir.join("broken.sqlite3"),
        b"this is not a SQLite file at all",
    )
    .unwrap();
    let tenants = write_tenants(
        &dir,
        Some("admin-key"),
        &[
            ("stay", "stay-key", ""),
            ("rekeyed", "old-key", ""),
            ("leaving", "leaving-key", ""),
            ("broken", "broken-key", ""),
        ],
    );
    let server = Arc::new(Server::start(
        &dir,
        &["--tenants", tenants.to_str().unwrap()],
    ));
    // A tenant opens on its first request: `broken`'s open fails, and it answers 503.
    let (status, refused, retry_after) = server.post("/v1/search", Some("broken-key"), SEARCH);
    assert_eq!(
        (status, refused["error"]["kind"].as_str()),
        (503, Some("unavailable")),
        "{refused}"
    );
    assert!(retry_after.is_some());
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("could not be opened"),
        "{refused}"
    );

    // `/readyz` is about the server: it serves three tenants, so it stays in rotation; the
    // broken one is counted, and named with why for the admin key only.
    let (status, ready) = server.get("/readyz", None);
    assert_eq!(status, 200, "{ready}");
    assert!(ready.contains(r#""not_ready":1"#), "{ready}");
    assert!(
        !ready.contains("broken"),
        "no tenant named without a key: {ready}"
    );
    let (_, metrics) = server.get("/metrics", Some("admin-key"));
    assert!(
        metrics.contains(r#"vector_service_tenant_ready{tenant="broken"} 0"#),
        "{metrics}"
    );
    let (_, detail) = server.get("/readyz", Some("admin-key"));
    let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(
        detail["not_ready_tenants"][0]["tenant"], "broken",
        "{detail}"
    );
    let reason = detail["not_ready_tenants"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("could not be opened") && !reason.contains(dir.to_str().unwrap()),
        "the reason, without the file's path: {reason}"
    );
    for key in ["stay-key", "old-key", "leaving-key"] {
        assert_eq!(
            server.post("/v1/records", Some(key), RECORD).0,
            200,
            "{key}"
        );
        assert_eq!(server.post("/v1/search", Some(key), SEARCH).0, 200, "{key}");
    }
    // Load on `stay` throughout the reloads below.
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let load = {
        let (server, stop, failed, served) =
            (server.clone(), stop.clone(), failed.clone(), served.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let (status, answer, _) = server.post("/v1/search", Some("stay-key"), SEARCH);
                if status == 200 {
                    served.fetch_add(1, Ordering::SeqCst);
                } else {
                    eprintln!("{status} {answer}");
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };

    // The broken file is repaired (moved aside), `leaving` goes, `new` comes, `rekeyed`
    // gets a new key and `stay` new limits.
    std::fs::remove_file(dir.join("broken.sqlite3")).unwrap();
    write_tenants(
        &dir,
        Some("admin-key"),
        &[
            ("stay", "stay-key", "max_concurrent = 3"),
            ("rekeyed", "new-key-for-rekeyed", ""),
            ("broken", "broken-key", ""),
            ("new", "new-key", ""),
        ],
    );
    let (status, reloaded, _) = server.post("/admin/reload", Some("admin-key"), "");
    assert_eq!(status, 200, "{reloaded}");
    let changes = &reloaded["tenants"]["changes"];
    assert_eq!(names(&changes["added"]), ["new"], "{reloaded}");
    assert_eq!(names(&changes["removed"]), ["leaving"], "{reloaded}");
    assert_eq!(names(&changes["changed"]), ["stay"], "{reloaded}");

    // Keys as the file now says; the repaired tenant serves; the server is ready.
    assert_eq!(server.post("/v1/search", Some("new-key"), SEARCH).0, 200);
    assert_eq!(server.post("/v1/search", Some("broken-key"), SEARCH).0, 200);
    assert_eq!(
        server.post("/v1/search", Some("leaving-key"), SEARCH).0,
        401
    );
    assert_eq!(server.post("/v1/search", Some("old-key"), SEARCH).0, 401);
    let (status, found, _) = server.post("/v1/search", Some("new-key-for-rekeyed"), SEARCH);
    assert_eq!(status, 200, "{found}");
    assert_eq!(
        found["hits"][0]["record_id"], "e1",
        "the same store: {found}"
    );
    let (status, ready) = server.get("/readyz", None);
    assert_eq!(status, 200, "{ready}");
    // New tenants' series exist at zero from the reload on; a removed one's are gone.
    let (_, metrics) = server.get("/metrics", Some("admin-key"));
    assert!(
        !metrics.contains(r#"tenant="leaving""#),
        "the removed tenant's series left: {metrics}"
    );
    for series in [
        r#"embedding_backfill_runs_total{status="failure",tenant="new"} 0"#,
        r#"vector_service_errors_total{function="Retriever.search",kind="backend",tenant="new"} 0"#,
        r#"vector_service_sandbox_failures_total{reason="deadline",tenant="new"} 0"#,
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }

    // A tenants file with an error is refused whole: nothing changes.
    std::fs::write(&tenants, "[[tenant]]\nname = \"Bad Name\"\n").unwrap();
    server.refused_reload("", "nothing changed");
    assert_eq!(server.post("/v1/search", Some("new-key"), SEARCH).0, 200);

    stop.store(true, Ordering::SeqCst);
    load.join().unwrap();
    assert!(served.load(Ordering::SeqCst) > 0, "the load ran");
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "no request of `stay` failed"
    );
}

/// A tenant removed by a reload finishes what it was doing: its backfill job, in flight on a
/// slow embedder when the reload lands, completes and is counted.
#[test]
fn a_removed_tenants_running_backfill_finishes() {
    let dir = temp_dir("tenant-removed");
    let embedder = EmbeddingServer::start(&[Reply::Slow(Duration::from_secs(2))]);
    let tenants = write_tenants(
        &dir,
        Some("admin-key"),
        &[("stay", "stay-key", ""), ("leaving", "leaving-key", "")],
    );
    let server = Server::start_with_globals(
        &dir,
        &[
            "--embedder",
            &embedder.url,
            "--embedding-model",
            "test-model",
        ],
        &["--tenants", tenants.to_str().unwrap()],
    );
    assert_eq!(
        server.post("/v1/records", Some("leaving-key"), RECORD).0,
        200
    );
    let (status, started, _) = server.post("/v1/backfill", Some("leaving-key"), "{}");
    assert_eq!(status, 202, "{started}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while embedder.requests() == 0 {
        assert!(Instant::now() < deadline, "the job reached the embedder");
        std::thread::sleep(Duration::from_millis(10));
    }

    write_tenants(&dir, Some("admin-key"), &[("stay", "stay-key", "")]);
    let (status, reloaded, _) = server.post("/admin/reload", Some("admin-key"), "");
    assert_eq!(status, 200, "{reloaded}");
    assert_eq!(
        names(&reloaded["tenants"]["changes"]["removed"]),
        ["leaving"]
    );
    assert_eq!(
        server.post("/v1/search", Some("leaving-key"), SEARCH).0,
        401
    );

    let finished = r#"embedding_backfill_runs_total{status="success",tenant="leaving"} 1"#;
    loop {
        let (_, metrics) = server.get("/metrics", Some("admin-key"));
        if metrics.lines().any(|line| line == finished) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the removed tenant's job finished: {metrics}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
