//! The result cache never answers from before a write: through the release binary, writes by
//! the server itself (`/v1/records`, `/v1/contributors`) and by another process on the same
//! file (`vector-service delete`) each make the next search and context current.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::server::Server;
use crate::support::temp_dir;

fn context(server: &Server, task: &str) -> Value {
    let body = format!(r#"{{"task": "{task}", "top_k": 5}}"#);
    let (status, answer, _) = server.post("/v1/context", None, &body);
    assert_eq!(status, 200, "{answer}");
    answer
}

fn search(server: &Server, query: &str) -> Value {
    let body = format!(r#"{{"query": "{query}", "top_k": 5, "threshold": 0.0}}"#);
    let (status, answer, _) = server.post("/v1/search", None, &body);
    assert_eq!(status, 200, "{answer}");
    answer
}

fn ids(entries: &Value) -> Vec<&str> {
    let mut ids: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids
}

fn hit_ids(found: &Value) -> Vec<&str> {
    let mut ids: Vec<&str> = found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|hit| hit["record_id"].as_str())
        .collect();
    ids.sort();
    ids
}

fn delete_with_the_cli(data_dir: &Path, db: &str, id: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_vector-service"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["delete", "--db", db, id])
        .env_remove("RUST_LOG")
        .output()
        .expect("the CLI runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn no_answer_is_served_from_before_a_write_by_this_server_or_another_process() {
    let dir = temp_dir("coherence");
    let server = Server::start(&dir, &[]);
    let ingest = |line: &str| {
        let (status, answer, _) = server.post("/v1/records", None, line);
        assert_eq!(status, 200, "{answer}");
    };
    ingest(
        r#"{"db": "errors", "origin_db": "error", "id": "e1", "text": "disk quota exceeded on upload", "metadata": {"message": "disk quota exceeded"}}"#,
    );

    // The cache works: the same task twice, the second from the cache.
    let first = context(&server, "disk quota");
    assert_eq!(
        (ids(&first["entries"]), &first["from_cache"]),
        (vec!["e1"], &Value::Bool(false))
    );
    let again = context(&server, "disk quota");
    assert_eq!(again["from_cache"], true, "{again}");

    // A record written through the server is in the next context.
    ingest(
        r#"{"db": "errors", "origin_db": "error", "id": "e2", "text": "disk quota warning ignored", "metadata": {"message": "quota warning"}}"#,
    );
    let after_ingest = context(&server, "disk quota");
    assert_eq!(after_ingest["from_cache"], false, "{after_ingest}");
    assert_eq!(ids(&after_ingest["entries"]), ["e1", "e2"]);
    assert_eq!(hit_ids(&search(&server, "disk quota")), ["e1", "e2"]);

    // An outcome tracked through the server shows in the next context's reliability.
    let (status, tracked, _) = server.post(
        "/v1/contributors",
        None,
        r#"{"vector_ids": ["error:e2"], "success": true, "patch_id": "p-1"}"#,
    );
    assert_eq!(
        (status, tracked["written_to"].as_str()),
        (200, Some("primary")),
        "{tracked}"
    );
    let after_track = context(&server, "disk quota");
    assert_eq!(after_track["from_cache"], false, "{after_track}");
    let e2 = after_track["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["id"] == "e2")
        .expect("e2 is in the context");
    assert_eq!(
        (
            e2["reliability"]["samples"].as_u64(),
            e2["reliability_source"].as_str()
        ),
        (Some(1), Some("vector")),
        "an outcome in the primary metrics DB counts: {e2}"
    );

    // Another process deletes e1 from the same file: neither the context nor a search (whose
    // weak results fall back to a cached earlier answer) shows it again.
    delete_with_the_cli(&dir, "errors", "e1");
    let after_delete = context(&server, "disk quota");
    assert_eq!(ids(&after_delete["entries"]), ["e2"], "{after_delete}");
    assert_eq!(hit_ids(&search(&server, "disk quota")), ["e2"]);
    delete_with_the_cli(&dir, "errors", "e2");
    let emptied = search(&server, "disk quota");
    assert_eq!(
        (hit_ids(&emptied), &emptied["from_cache"]),
        (Vec::<&str>::new(), &Value::Bool(false)),
        "{emptied}"
    );
    assert_eq!(
        context(&server, "disk quota")["entries"],
        Value::Array(vec![])
    );
}

/// A backfill whose embedder is down is a failed job, a `failure` result and a failure in the
/// metrics: through the release binary, as a cron job or an alert would see it.
#[test]
fn a_backfill_with_its_embedder_down_is_a_failure_everywhere_it_is_reported() {
    let dir = temp_dir("coherence-backfill");
    // Nothing listens on port 9 of loopback.
    let server = Server::start_with_globals(
        &dir,
        &[
            "--embedder",
            "http://127.0.0.1:9/v1",
            "--embedding-model",
            "m",
        ],
        &[],
    );
    let (status, _, _) = server.post(
        "/v1/records",
        None,
        r#"{"db": "errors", "origin_db": "error", "id": "e1", "text": "disk quota exceeded"}"#,
    );
    assert_eq!(status, 200);
    let job = server.run_backfill(None, "{}");
    assert_eq!(
        (job["status"].as_str(), job["result"]["status"].as_str()),
        (Some("failed"), Some("failure")),
        "{job}"
    );
    assert!(job["result"]["databases"][0]["error"].is_string(), "{job}");
    let (_, metrics) = server.get("/metrics", None);
    for (series, value) in [
        (
            r#"embedding_backfill_runs_total{status="failure",tenant="default"}"#,
            "1",
        ),
        (
            r#"embedding_backfill_runs_total{status="success",tenant="default"}"#,
            "0",
        ),
    ] {
        assert!(
            metrics
                .lines()
                .any(|line| line == format!("{series} {value}")),
            "{series} {value} in {metrics}"
        );
    }
}
