//! What the README promises and no other test ran: `info` and `component export`, the data
//! directory's fallbacks, SIGHUP reloading the component, and the HTTP embedder honouring
//! `Retry-After` and reading its key from the environment — each through the real binary.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sha2::Digest as _;

use crate::server::Server;
use crate::support::{temp_dir, write_tenants, Metrics};
use vector_service_testkit::embeddings_endpoint::{EmbeddingsEndpoint as EmbeddingServer, Reply};

fn vector_service() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vector-service"));
    command.env_remove("RUST_LOG");
    command
}

fn stdout_of(command: &mut Command) -> String {
    let output = command.output().expect("the CLI starts");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn info_and_component_export_describe_the_built_in_component() {
    let component = vector_service_runtime::BUILTIN_COMPONENT;
    let digest = sha256_hex(component);
    let info = stdout_of(&mut vector_service());
    assert!(
        info.contains(&format!("component: {} bytes", component.len())),
        "{info}"
    );
    assert!(info.contains(&digest), "{info}");
    assert!(info.contains(vector_service_runtime::WIT_PACKAGE), "{info}");

    let path = temp_dir("promises-export").join("exported.wasm");
    let printed = stdout_of(vector_service().args(["component", "export"]).arg(&path));
    assert_eq!(std::fs::read(&path).unwrap(), component);
    assert!(printed.contains(&format!("sha256: {digest}")), "{printed}");
}

#[test]
fn the_data_directory_falls_back_as_documented() {
    let root = temp_dir("promises-data-dir");
    let records = root.join("records.jsonl");
    std::fs::write(
        &records,
        "{\"db\": \"bots\", \"id\": \"b1\", \"text\": \"a bot\"}\n",
    )
    .unwrap();
    let ingest = |env: &[(&str, &Path)]| {
        let mut command = vector_service();
        command
            .env_remove("VECTOR_SERVICE_DATA_DIR")
            .env_remove("XDG_DATA_HOME")
            .arg("ingest")
            .arg(&records);
        for (name, value) in env {
            command.env(name, value);
        }
        stdout_of(&mut command);
    };
    let explicit = root.join("explicit");
    ingest(&[("VECTOR_SERVICE_DATA_DIR", &explicit), ("HOME", &root)]);
    assert!(explicit.join("default.sqlite3").is_file());
    let xdg = root.join("xdg");
    ingest(&[("XDG_DATA_HOME", &xdg), ("HOME", &root)]);
    assert!(xdg.join("vector-service/default.sqlite3").is_file());
    let home = root.join("home");
    ingest(&[("HOME", &home)]);
    assert!(home
        .join(".local/share/vector-service/default.sqlite3")
        .is_file());
}

#[test]
fn sighup_reloads_the_component_file() {
    let dir = temp_dir("promises-sighup");
    let component = dir.join("plugin.wasm");
    std::fs::write(&component, vector_service_runtime::BUILTIN_COMPONENT).unwrap();
    let tenants = write_tenants(&dir, Some("admin-key"), &[("acme", "acme-key", "")]);
    let server = Server::start(
        &dir,
        &[
            "--tenants",
            tenants.to_str().unwrap(),
            "--component",
            component.to_str().unwrap(),
        ],
    );
    let reloads = || {
        let (_, text) = server.get("/metrics", Some("admin-key"));
        Metrics::parse(text).counter(
            "vector_service_component_reloads_total",
            &[("outcome", "success")],
        )
    };
    assert_eq!(reloads(), 0.0);
    let hangup = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(hangup.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while reloads() < 1.0 {
        assert!(Instant::now() < deadline, "SIGHUP reloaded the component");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, answer, _) = server.post("/v1/search", Some("acme-key"), r#"{"query": "x"}"#);
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn the_http_embedder_honours_retry_after_and_reads_its_key_from_the_environment() {
    let dir = temp_dir("promises-http-embedder");
    let embedder = EmbeddingServer::start(&[Reply::Status(429, "retry-after: 1\r\n")]);
    let records = dir.join("records.jsonl");
    std::fs::write(
        &records,
        "{\"db\": \"bots\", \"id\": \"b1\", \"text\": \"a bot\"}\n",
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let mut command = vector_service();
        command
            .arg("--data-dir")
            .arg(&dir)
            .args(["--embedder", &embedder.url, "--embedding-model", "m"])
            .env("VECTOR_SERVICE_EMBEDDING_API_KEY", "from-the-environment")
            .args(args);
        command
    };
    stdout_of(&mut cli(&["ingest", records.to_str().unwrap()]));
    let started = Instant::now();
    stdout_of(&mut cli(&["backfill"]));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited the 1 s the 429 asked for: {:?}",
        started.elapsed()
    );
    let seen = embedder.authorizations();
    assert_eq!(seen.len(), 2, "the 429, then the retry");
    assert!(seen
        .iter()
        .all(|a| a.as_deref() == Some("Bearer from-the-environment")));
}

/// An example binary `cargo test` built beside this test binary.
fn example(name: &str) -> Command {
    let tests = std::env::current_exe().expect("the test binary's path");
    let profile_dir = tests
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let path = profile_dir.join("examples").join(name);
    assert!(path.is_file(), "{} was not built", path.display());
    let mut command = Command::new(path);
    command.env_remove("RUST_LOG");
    command
}

#[test]
fn both_rust_examples_run_all_their_operations() {
    let embed = stdout_of(&mut example("embed"));
    for expected in [
        "== Retriever.search",
        "== ContextBuilder.build",
        "== PatchLogger.track_contributors",
        "written to the primary metrics db",
        "embedding_backfill_runs_total{status=\"success\",tenant=\"example\"} 1",
    ] {
        assert!(
            embed.contains(expected),
            "embed: no {expected:?} in\n{embed}"
        );
    }
    let component = temp_dir("promises-examples").join("component.wasm");
    std::fs::write(&component, vector_service_runtime::BUILTIN_COMPONENT).unwrap();
    let raw = stdout_of(example("raw_wasmtime").arg(&component));
    for expected in [
        "hit error",
        "tracked: success",
        "calls observed by telemetry: 2",
    ] {
        assert!(
            raw.contains(expected),
            "raw_wasmtime: no {expected:?} in\n{raw}"
        );
    }
}

#[test]
fn the_server_logs_every_request_as_json_with_the_documented_fields() {
    let dir = temp_dir("promises-request-log");
    let log = dir.join("server.log");
    let server = Server::start_logging(&dir, &log);
    let (status, answer, _) = server.post(
        "/v1/search",
        None,
        r#"{"query": "upload failed", "session_id": "log-session-1"}"#,
    );
    assert_eq!(status, 200, "{answer}");
    let (status, _, _) = server.post("/v1/search", None, r#"{"query": ""}"#);
    assert_eq!(status, 400);
    // Lines are written by the server's log thread: wait for both request lines to land.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&log)
        .unwrap()
        .matches("\"target\":\"vector_service::http\"")
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "the request lines were written");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, metrics) = server.get("/metrics", None);
    assert_eq!(
        Metrics::parse(metrics).counter("vector_service_log_lines_dropped_total", &[]),
        0.0,
        "nothing dropped, and the series exists at zero"
    );
    server.kill();
    // Every log line is JSON; the one human notice at start (no tenants file) is not a log line.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with("no tenants file"))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let requests: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| line["target"] == "vector_service::http")
        .collect();
    assert_eq!(requests.len(), 2, "one line per request: {requests:?}");
    let fields = &requests[0]["fields"];
    assert_eq!(fields["message"], "request");
    assert_eq!(fields["tenant"], "default");
    assert_eq!(fields["route"], "search");
    assert_eq!(fields["status"], 200);
    assert_eq!(fields["session_id"], "log-session-1");
    assert!(
        fields["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{fields}"
    );
    assert_eq!(requests[1]["fields"]["status"], 400);
    // The component's own lines carry the tenant and the caller's session id.
    let guest: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| line["target"] == vector_service_runtime::GUEST_TARGET)
        .collect();
    assert!(
        guest
            .iter()
            .any(|line| line["fields"]["session_id"] == "log-session-1"
                && line["fields"]["tenant"] == "default"
                && line["fields"]["message"] == "Retriever.search end"),
        "{guest:?}"
    );
}
