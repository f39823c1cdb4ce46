//! The `vector-service` command line end to end: a real process, a real SQLite file, the
//! sample corpus, JSON output, and a backfill killed mid-run that resumes without duplicates.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::temp_dir;
use vector_service_testkit::embeddings_endpoint::{EmbeddingsEndpoint as EmbeddingServer, Reply};

pub(crate) fn cli(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vector-service"));
    command
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("RUST_LOG");
    command
}

pub(crate) fn json(command: &mut Command) -> Value {
    let output = command.arg("--json").output().expect("the CLI starts");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("--json prints JSON")
}

pub(crate) fn sample_corpus() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/records.jsonl")
}

#[test]
fn ingest_backfill_search_context_track_and_stats() {
    let dir = temp_dir("cli");
    let ingested = json(cli(&dir).arg("ingest").arg(sample_corpus()));
    let total: u64 = ingested["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["records"].as_u64().unwrap())
        .sum();
    assert!(total >= 150, "{ingested}");

    let backfill =
        json(cli(&dir).args(["backfill", "--batch-size", "25", "--session-id", "cli-1"]));
    assert_eq!(backfill["status"], "success");
    assert_eq!(backfill["session_id"], "cli-1");
    let embedded: u64 = backfill["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["embedded"].as_u64().unwrap())
        .sum();
    assert_eq!(embedded, total);
    assert_eq!(
        backfill["index_changes"].as_u64(),
        Some(total),
        "{backfill}"
    );
    assert!(dir.join("default.sqlite3.usearch").exists());

    let search = json(cli(&dir).args(["search", "upload failed", "--top-k", "5"]));
    let hits = search["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 5);
    assert!(
        hits.iter()
            .all(|h| h["metadata"].is_object() && h["metadata"].to_string().contains("upload")),
        "{search:#}"
    );
    // Without hit copies every hit is read from the file, and reads the same.
    let uncopied = json(cli(&dir).args([
        "search",
        "upload failed",
        "--top-k",
        "5",
        "--hit-copies-mib",
        "0",
    ]));
    assert_eq!(uncopied["hits"], search["hits"]);
    // Nor does reading the change clock by its statement every time change an answer.
    let unwatched =
        json(cli(&dir).args(["search", "upload failed", "--top-k", "5", "--no-wal-watch"]));
    assert_eq!(unwatched["hits"], search["hits"]);

    let by_vector = json(cli(&dir).args(["search", "upload failed", "--retrieval", "vector"]));
    assert!(by_vector["hits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["reason"] == "cosine similarity"));
    assert!(hits.iter().all(|h| h["reason"] == "bm25"));

    let context = json(cli(&dir).args(["context", "fix failing tests", "--top-k", "2"]));
    assert!(context["context"].is_object(), "{context:#}");
    let text = context["context"].to_string();
    assert!(text.contains("Fix failing tests"), "{text}");
    assert!(
        context["entries"].as_array().unwrap().len() >= 3,
        "{context:#}"
    );

    let tracked = json(cli(&dir).args([
        "track",
        "--patch-id",
        "p-1",
        "bot:bot-005",
        "workflow:wf-008",
    ]));
    assert_eq!(
        (tracked["status"].as_str(), tracked["rows"].as_u64()),
        (Some("success"), Some(2))
    );

    let first_vector_hit = by_vector["hits"][0]["record_id"]
        .as_str()
        .unwrap()
        .to_string();
    let db = match by_vector["hits"][0]["origin_db"].as_str().unwrap() {
        "bot" => "bots",
        "workflow" => "workflows",
        "error" => "errors",
        _ => "code",
    };
    let deleted = json(cli(&dir).args(["delete", "--db", db, &first_vector_hit, "missing"]));
    assert_eq!(
        (deleted["requested"].as_u64(), deleted["deleted"].as_u64()),
        (Some(2), Some(1))
    );
    let after = json(cli(&dir).args(["search", "upload failed", "--retrieval", "vector"]));
    assert!(
        after["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["record_id"] != first_vector_hit.as_str()),
        "{after:#}"
    );

    let stats = json(cli(&dir).arg("stats"));
    assert_eq!(stats["patch_outcomes"], 2);
    assert!(stats["databases"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["records"] == d["embedded"] && d["db"].is_string()));

    let output = cli(&dir)
        .args(["search", " ", "--metrics"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("query must be a non-empty string"),
        "a message, not a Rust debug dump: {stderr}"
    );
    assert!(!stderr.contains("MalformedPrompt"), "{stderr}");
}

/// `--json`: every command prints one JSON object on stdout, failures included.
#[test]
fn every_command_answers_one_json_object_under_json_errors_included() {
    let dir = temp_dir("cli");
    let info = json(cli(&dir).arg("info"));
    assert_eq!(info["sha256"].as_str().map(str::len), Some(64), "{info}");
    let exported = dir.join("exported.wasm");
    let export = json(cli(&dir).args(["component", "export"]).arg(&exported));
    assert_eq!(
        export["bytes"].as_u64(),
        Some(std::fs::metadata(&exported).unwrap().len())
    );
    let ingested = json(cli(&dir).arg("ingest").arg(sample_corpus()));
    assert!(
        ingested["databases"].is_array(),
        "as POST /v1/records answers: {ingested}"
    );
    let context = json(cli(&dir).args(["context", "upload failed", "--bucket", "error=failures"]));
    let buckets: Vec<&String> = context["context"].as_object().unwrap().keys().collect();
    assert_eq!(buckets, ["failures"], "{context}");
    let tracked = json(cli(&dir).args(["track", "--patch-id", "p-1", "bot:bot-001"]));
    assert_eq!(tracked["written_to"], "primary", "{tracked}");
    // --metrics adds the exposition as a field: still one valid JSON object.
    let with_metrics = json(cli(&dir).args(["search", "upload failed", "--metrics"]));
    assert!(
        with_metrics["metrics"]
            .as_str()
            .is_some_and(|text| text.contains("# TYPE vector_service_calls_total counter")),
        "{with_metrics}"
    );

    let output = cli(&dir).args(["search", " ", "--json"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&output.stdout).expect("the error is JSON");
    assert_eq!(error["error"]["kind"], "malformed-prompt", "{error}");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("non-empty"));
    // A usage error is clap's: exit status 2.
    let usage = cli(&dir)
        .args(["search", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn json_arrays_and_csv_ingest_like_json_lines_and_unknown_fields_are_refused() {
    let dir = temp_dir("cli");
    let array = dir.join("records.json");
    std::fs::write(
        &array,
        r#"[{"db": "bots", "id": "b1", "text": "rotates certificates"},
            {"db": "bots", "id": "b2", "metadata": {"name": "Archiver", "purpose": "compresses logs"}}]"#,
    )
    .unwrap();
    let csv = dir.join("records.csv");
    std::fs::write(
        &csv,
        "db,id,text,severity
errors,e1,disk full,3
",
    )
    .unwrap();
    for file in [&array, &csv] {
        json(cli(&dir).arg("ingest").arg(file));
    }
    let stats = json(cli(&dir).arg("stats"));
    let counts: Vec<(String, u64)> = stats["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["db"].as_str().unwrap().to_string(),
                d["records"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [("bots".to_string(), 2), ("errors".to_string(), 1)],
        "{stats}"
    );

    let unknown = dir.join("unknown.jsonl");
    std::fs::write(
        &unknown,
        "{\"db\": \"bots\", \"id\": \"b3\", \"txt\": \"typo\"}\n",
    )
    .unwrap();
    let output = cli(&dir).arg("ingest").arg(&unknown).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown.jsonl:1") && stderr.contains("unknown field \"txt\""),
        "{stderr}"
    );
}

#[test]
fn a_malformed_file_is_rejected_with_its_line_and_nothing_is_written() {
    let dir = temp_dir("cli");
    let file = dir.join("records.jsonl");
    std::fs::write(&file, "{\"db\": \"bots\", \"id\": \"b1\", \"text\": \"ok\"}\n{\"db\": \"bots\", \"text\": \"no id\"}\n").unwrap();
    let output = cli(&dir).arg("ingest").arg(&file).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("records.jsonl:2") && stderr.contains("\"id\""),
        "{stderr}"
    );
    let stats = json(cli(&dir).arg("stats"));
    assert_eq!(stats["databases"].as_array().unwrap().len(), 0);
}

#[test]
fn a_backfill_whose_embedder_is_down_reports_failure_and_exits_non_zero() {
    let dir = temp_dir("cli");
    json(cli(&dir).arg("ingest").arg(sample_corpus()));
    // Nothing listens on port 9 (discard) of loopback: every embedding call is refused.
    let output = cli(&dir)
        .args([
            "--embedder",
            "http://127.0.0.1:9/v1",
            "--embedding-model",
            "m",
        ])
        .args(["backfill", "--json"])
        .output()
        .unwrap();
    assert!(!output.status.success(), "a failed backfill exits non-zero");
    let report: Value = serde_json::from_slice(&output.stdout).expect("the report is JSON");
    assert_eq!(report["status"], "failure", "{report}");
    let databases = report["databases"].as_array().unwrap();
    assert_eq!(databases.len(), 5);
    assert!(
        databases
            .iter()
            .all(|d| d["embedded"] == 0 && d["error"].as_str().is_some_and(|e| !e.is_empty())),
        "{report}"
    );
}

#[test]
fn a_killed_backfill_resumes_without_duplicates_or_half_written_batches() {
    let dir = temp_dir("cli");
    let file = dir.join("many.jsonl");
    let lines: String = (0..3000)
        .map(|i| format!("{{\"db\": \"errors\", \"id\": \"e{i:05}\", \"text\": \"error number {i} while uploading part {} of file {}\"}}\n", i % 17, i % 101))
        .collect();
    std::fs::write(&file, lines).unwrap();
    json(cli(&dir).arg("ingest").arg(&file));

    // The embedder is an HTTP server on loopback that answers five batches and holds the
    // sixth: once its sixth request has arrived, exactly five batches are committed and no
    // other can be, so the kill lands at a known point whatever the machine's speed.
    let mut script = vec![Reply::Embeddings; 5];
    script.push(Reply::Slow(Duration::from_secs(120)));
    let embedder = EmbeddingServer::start(&script);
    let with_embedder = |command: &mut Command| {
        command.args([
            "--embedder",
            &embedder.url,
            "--embedding-model",
            "test-model",
        ]);
    };
    let mut backfill = cli(&dir);
    with_embedder(&mut backfill);
    let mut child = backfill
        .args(["backfill", "--batch-size", "10"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while embedder.requests() < 6 {
        assert!(
            Instant::now() < deadline,
            "the backfill reaches its sixth batch"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let database = rusqlite::Connection::open(dir.join("default.sqlite3")).unwrap();
    let embedded: i64 = database
        .query_row("SELECT COUNT(*) FROM embeddings", [], |row| row.get(0))
        .unwrap();
    assert_eq!(embedded, 50, "five whole batches, nothing of the sixth");

    let mut resume = cli(&dir);
    with_embedder(&mut resume);
    let resumed = json(resume.args(["backfill", "--batch-size", "500"]));
    assert_eq!(resumed["databases"][0]["embedded"].as_u64(), Some(2950));
    let mut stats = cli(&dir);
    with_embedder(&mut stats);
    let stats = json(stats.arg("stats"));
    assert_eq!(
        (
            stats["databases"][0]["records"].as_u64(),
            stats["databases"][0]["embedded"].as_u64()
        ),
        (Some(3000), Some(3000))
    );
}

#[test]
fn csv_rows_become_records_with_typed_metadata() {
    let dir = temp_dir("cli");
    let file = dir.join("bots.csv");
    std::fs::write(&file, "db,id,name,purpose,roi\nbots,b-1,uploader,Retries failed uploads,1.5\nbots,b-2,test-fixer,Repairs failing tests,\n").unwrap();
    let ingested = json(cli(&dir).arg("ingest").arg(&file));
    assert_eq!(ingested["databases"][0]["records"], 2);
    let found = json(cli(&dir).args(["search", "failed uploads", "--top-k", "1"]));
    let hit = &found["hits"][0];
    assert_eq!(hit["record_id"], "b-1");
    assert_eq!(
        hit["metadata"],
        serde_json::json!({"name": "uploader", "purpose": "Retries failed uploads", "roi": 1.5})
    );
}

/// The same commands with `--database`: PostgreSQL (one schema per tenant), and an explicit
/// `sqlite:DIR`; a bad `--database` is refused with the accepted forms.
#[test]
fn the_same_commands_run_on_postgres_and_on_an_explicit_sqlite_dir() {
    let dir = temp_dir("cli-database");
    let sqlite = format!("sqlite:{}", dir.join("tenants").display());
    for database in [
        vector_service_testkit::postgres_server::postgres()
            .url
            .as_str(),
        sqlite.as_str(),
    ] {
        let run = |args: &[&str]| {
            json(
                cli(&dir)
                    .args(["--database", database, "--tenant", "cli_db"])
                    .args(args),
            )
        };
        let ingested = run(&["ingest", sample_corpus().to_str().unwrap()]);
        let total: u64 = ingested["databases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["records"].as_u64().unwrap())
            .sum();
        let backfill = run(&["backfill"]);
        assert_eq!(backfill["status"], "success", "{database}: {backfill}");
        let found = run(&[
            "--retrieval",
            "hybrid",
            "search",
            "upload failed out of memory",
        ]);
        assert!(
            !found["hits"].as_array().unwrap().is_empty(),
            "{database}: {found}"
        );
        let stats = run(&["stats"]);
        let current: u64 = stats["databases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["embedded"].as_u64().unwrap())
            .sum();
        assert_eq!(current, total, "{database}: {stats}");
    }
    assert!(dir.join("tenants/cli_db.sqlite3").is_file());
    let output = cli(&dir)
        .args(["--database", "mysql://nope", "stats"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("sqlite:DIR") && stderr.contains("postgres://"),
        "{stderr}"
    );
}

/// What a command printed: (exit success, stdout, stderr).
fn run(command: &mut Command) -> (bool, String, String) {
    let output = command.output().expect("the CLI starts");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn rough_edges_a_closed_pipe_a_flag_that_does_not_apply_unusual_ids_and_colour() {
    let dir = temp_dir("cli-edges");
    assert!(run(cli(&dir).arg("ingest").arg(sample_corpus())).0);

    // A reader that closes the pipe early (`| head -1`) ends the command quietly, exit 0: the
    // panic came in about half the runs.
    let binary = env!("CARGO_BIN_EXE_vector-service");
    for command in ["stats", "info", "--json search upload"] {
        for _ in 0..6 {
            let (ok, out, err) = run(Command::new("bash").arg("-c").arg(format!(
                "set -o pipefail; '{binary}' --data-dir '{}' {command} | head -c 1",
                dir.display()
            )));
            assert!(ok && !err.contains("panicked"), "{command}: {out} {err}");
        }
    }

    // `--tenant` names a command's tenant; `serve` without a tenants file would silently serve
    // `default` instead.
    let (ok, _, err) =
        run(cli(&dir).args(["--tenant", "acme", "serve", "--listen", "127.0.0.1:0"]));
    assert!(
        !ok && err.contains("--tenant acme does not apply to `serve`"),
        "{err}"
    );

    // Ids the contract takes but a caller may not mean are recorded, with a word about each;
    // a failure's line never says success.
    let (ok, out, err) =
        run(cli(&dir).args(["track", "--patch-id", "p-9", "--failure", "nocolon"]));
    assert!(ok, "{err}");
    assert!(err.contains("\"nocolon\" is not origin:id"), "{err}");
    assert!(
        out.contains("failure recorded") && !out.contains("success"),
        "{out}"
    );
    let (ok, _, err) = run(cli(&dir).args(["track", "--patch-id", "p-10"]));
    assert!(ok && err.contains("no vector ids"), "{err}");

    // An empty answer with a likely cause says it.
    let (ok, _, err) = run(cli(&dir).args(["search", "--origin", "errors", "upload failed"]));
    assert!(ok && err.contains("\"errors\" is a database"), "{err}");
    let (_, _, err) =
        run(cli(&dir).args(["context", "--bucket", "ticket=tickets", "fix failing tests"]));
    assert!(err.contains("no database holds origin \"ticket\""), "{err}");
    let (_, _, err) = run(cli(&dir).args(["--retrieval", "vector", "search", "upload failed"]));
    assert!(err.contains("has a vector from this embedder"), "{err}");

    // Logs into a pipe carry no colour codes.
    let (_, _, err) = run(cli(&dir)
        .env("RUST_LOG", "info")
        .args(["search", "upload failed"]));
    assert!(!err.is_empty() && !err.contains('\u{1b}'), "{err:?}");
}
