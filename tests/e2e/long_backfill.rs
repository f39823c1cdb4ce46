//! Long work through the sandbox: a backfill that takes many deadlines' worth of time finishes
//! in one run (each batch bounded, not the run), an interrupted run leaves whole batches and
//! the next finishes, and the server runs backfills as jobs. The embedder is a local
//! OpenAI-compatible endpoint scripted to be slow (a test double: these tests are about time).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::server::Server;
use crate::support::{temp_dir, write_tenants, Metrics};
use vector_service_testkit::embeddings_endpoint::{EmbeddingsEndpoint as EmbeddingServer, Reply};

/// `count` records in the `errors` database, as JSON lines.
fn corpus(dir: &Path, count: usize) -> std::path::PathBuf {
    let path = dir.join("records.jsonl");
    let lines: String = (0..count)
        .map(|i| {
            json!({"db": "errors", "id": format!("e-{i:04}"), "text": format!("upload {i} failed")})
                .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(&path, lines).unwrap();
    path
}

/// The CLI over `data_dir` with the slow endpoint as its embedder.
fn cli(data_dir: &Path, embedder: &EmbeddingServer) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vector-service"));
    command
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--embedder", &embedder.url, "--embedding-model", "m"])
        .env_remove("RUST_LOG");
    command
}

/// `vector-service ingest FILE`, which must succeed.
fn ingest(data_dir: &Path, embedder: &EmbeddingServer, records: &Path) {
    let output = cli(data_dir, embedder)
        .arg("ingest")
        .arg(records)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Current embeddings in the tenant's file, read from SQLite itself.
fn embedded(data_dir: &Path) -> i64 {
    let connection = rusqlite::Connection::open(data_dir.join("default.sqlite3")).unwrap();
    connection
        .query_row("SELECT COUNT(*) FROM embeddings", [], |row| row.get(0))
        .unwrap()
}

#[test]
fn a_backfill_many_batch_deadlines_long_finishes_in_one_cli_run() {
    let dir = temp_dir("long-backfill-cli");
    // Ten batches of 20, each embedding call 400 ms: 4 s in all, four times the 1 s batch
    // deadline (and the old whole-call deadline would have been the limit).
    let embedder = EmbeddingServer::start(&vec![Reply::Slow(Duration::from_millis(400)); 10]);
    let records = corpus(&dir, 200);
    ingest(&dir, &embedder, &records);
    let started = Instant::now();
    let output = cli(&dir, &embedder)
        .args([
            "--json",
            "backfill",
            "--batch-size",
            "20",
            "--batch-deadline-secs",
            "1",
        ])
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["status"], "success");
    assert_eq!(report["databases"][0]["embedded"], 200);
    assert_eq!(report["databases"][0]["batches"], 10);
    assert!(
        elapsed > Duration::from_secs(3),
        "it really took long: {elapsed:?}"
    );
    assert_eq!(embedded(&dir), 200);

    // One batch over its deadline still stops the run (the bound is per batch), with the
    // batches before it committed; the next run finishes.
    std::fs::remove_file(dir.join("default.sqlite3")).unwrap();
    let _ = std::fs::remove_file(dir.join("default.sqlite3-wal"));
    let _ = std::fs::remove_file(dir.join("default.sqlite3-shm"));
    let embedder =
        EmbeddingServer::start(&[Reply::Embeddings, Reply::Slow(Duration::from_secs(5))]);
    ingest(&dir, &embedder, &records);
    let output = cli(&dir, &embedder)
        .args([
            "backfill",
            "--batch-size",
            "20",
            "--batch-deadline-secs",
            "1",
        ])
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "the slow batch is over its deadline"
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("deadline"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(embedded(&dir), 20, "the first batch stayed committed");
    let output = cli(&dir, &embedder)
        .args(["backfill", "--batch-size", "20"])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(embedded(&dir), 200);
}

#[test]
fn an_interrupted_backfill_leaves_whole_batches_and_the_next_run_finishes() {
    let dir = temp_dir("long-backfill-interrupt");
    let embedder = EmbeddingServer::start(&vec![Reply::Slow(Duration::from_millis(150)); 30]);
    let records = corpus(&dir, 300);
    ingest(&dir, &embedder, &records);
    let mut child = cli(&dir, &embedder)
        .args(["backfill", "--batch-size", "10"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Interrupt once the embedder has received five batches (a sync point, not a sleep).
    let deadline = Instant::now() + Duration::from_secs(60);
    while embedder.requests() < 5 {
        assert!(Instant::now() < deadline, "the backfill started");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SIGTERM, not SIGINT: the CLI handles neither (both end it alike), and a test run started
    // in the background by a shell without job control inherits SIGINT ignored, which would
    // test the launcher instead of the backfill.
    let interrupted = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let status = child.wait().unwrap();
    assert!(!status.success(), "the signal ended the run");
    let done = embedded(&dir);
    assert!(
        done % 10 == 0 && (30..300).contains(&done),
        "whole batches only, some of them: {done}"
    );
    // The next run embeds only what is left, and finishes.
    let before = embedder.requests();
    let output = cli(&dir, &embedder)
        .args(["--json", "backfill", "--batch-size", "10"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["databases"][0]["embedded"], 300 - done);
    assert_eq!(embedded(&dir), 300);
    assert_eq!(embedder.requests() - before, ((300 - done) / 10) as usize);
}

#[test]
fn the_server_runs_backfills_as_jobs() {
    let dir = temp_dir("long-backfill-jobs");
    let embedder = EmbeddingServer::start(&vec![Reply::Slow(Duration::from_millis(150)); 1000]);
    let tenants = write_tenants(
        &dir,
        None,
        &[
            (
                "acme",
                "acme-key",
                "call_deadline_ms = 500\nbackfill_batch_deadline_ms = 5000",
            ),
            ("globex", "globex-key", ""),
        ],
    );
    let globals = [
        "--embedder",
        embedder.url.as_str(),
        "--embedding-model",
        "m",
    ];
    let server =
        Server::start_with_globals(&dir, &globals, &["--tenants", tenants.to_str().unwrap()]);
    let records: String = std::fs::read_to_string(corpus(&dir, 200)).unwrap();
    let acme = Some("acme-key");
    assert_eq!(server.post_lines("/v1/records", acme, &records).0, 200);

    // 20 batches of 10 at 150 ms: 3 s, six times acme's 500 ms call deadline.
    let (status, job, _) = server.post("/v1/backfill", acme, r#"{"batch_size": 10}"#);
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["status"], "running");
    let id = job["job"].as_str().unwrap().to_string();
    let (status, conflict, _) = server.post("/v1/backfill", acme, "{}");
    assert_eq!(
        (status, conflict["error"]["kind"].as_str()),
        (409, Some("conflict"))
    );
    assert_eq!(
        server
            .get(&format!("/v1/backfill/{id}"), Some("globex-key"))
            .0,
        404,
        "another tenant cannot see the job"
    );
    assert_eq!(server.get("/v1/backfill/bf-nope", acme).0, 404);
    let finished = server.wait_for_job(acme, &id);
    assert_eq!(finished["status"], "succeeded", "{finished}");
    assert_eq!(finished["records_done"], 200);
    assert_eq!(finished["result"]["databases"][0]["embedded"], 200);
    let (_, text) = server.get("/metrics", acme);
    let in_flight =
        Metrics::parse(text).gauge("vector_service_calls_in_flight", &[("tenant", "acme")]);
    assert_eq!(in_flight, 0.0, "the job's call slot is free again");

    // A cancelled job stops at a batch boundary; the next one does the rest.
    assert_eq!(
        server
            .post_lines("/v1/records", acme, &records.replace("e-", "f-"))
            .0,
        200
    );
    let (status, job, _) = server.post("/v1/backfill", acme, r#"{"batch_size": 10}"#);
    assert_eq!(status, 202, "{job}");
    let id = job["job"].as_str().unwrap().to_string();
    let start = embedder.requests();
    let deadline = Instant::now() + Duration::from_secs(60);
    while embedder.requests() < start + 3 {
        assert!(Instant::now() < deadline, "the job runs");
        std::thread::sleep(Duration::from_millis(5));
    }
    let deleted = server.delete(&format!("/v1/backfill/{id}"), acme);
    assert_eq!(deleted.0, 202, "{}", deleted.1);
    let cancelled = server.wait_for_job(acme, &id);
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["error"]["kind"], "cancelled");
    let done = cancelled["records_done"].as_u64().unwrap();
    assert!(done.is_multiple_of(10) && done < 200, "{cancelled}");
    let rest = server.run_backfill(acme, r#"{"batch_size": 10}"#);
    assert_eq!(rest["status"], "succeeded", "{rest}");
    assert_eq!(rest["records_done"].as_u64().unwrap(), 200 - done, "{rest}");
}
