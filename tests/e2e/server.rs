//! `vector-service serve` as a real process on a loopback port, driven by a real HTTP client:
//! every route and error status, two tenants isolated from each other, limits (429, 503),
//! the exposition checked by promtool, and component reloads under load (a file that is not a
//! component, and a valid component of another world, are both refused).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{api_key_hash, server_binary, temp_dir};
use vector_service_testkit::server_process::ServerProcess;

fn os_args<'a>(args: &[&'a str]) -> Vec<&'a std::ffi::OsStr> {
    args.iter().map(|arg| std::ffi::OsStr::new(*arg)).collect()
}

/// Send a request without a body, with an optional bearer key: (status, body text).
fn answer(
    mut request: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
    key: Option<&str>,
) -> (u16, String) {
    if let Some(key) = key {
        request = request.header("Authorization", format!("Bearer {key}"));
    }
    let mut response = request.call().expect("the server answers");
    (
        response.status().as_u16(),
        response.body_mut().read_to_string().unwrap(),
    )
}

/// A running server and a client for it.
pub(crate) struct Server {
    _process: Mutex<ServerProcess>,
    pub(crate) url: String,
    agent: ureq::Agent,
}

impl Server {
    pub(crate) fn start(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_with_globals(data_dir, &[], extra)
    }

    /// [`Server::start`] with global flags before `serve` (`--retrieval`, `--database`, ...).
    pub(crate) fn start_with_globals(data_dir: &Path, globals: &[&str], extra: &[&str]) -> Self {
        Self::spawn(data_dir, globals, extra, None)
    }

    /// [`Server::start`] writing its JSON logs (info and up) to `log`.
    pub(crate) fn start_logging(data_dir: &Path, log: &Path) -> Self {
        Self::spawn(data_dir, &[], &[], Some(log))
    }

    /// [`Server::start`] under a descriptor limit of `limit` (soft and hard).
    pub(crate) fn start_under_descriptor_limit(
        data_dir: &Path,
        extra: &[&str],
        limit: u64,
    ) -> Self {
        Self::spawn_limited(data_dir, &[], extra, None, Some(limit))
    }

    /// [`Server::start_with_globals`] with environment variables set (`OTEL_*`), logging to
    /// `log`.
    pub(crate) fn start_with_env(
        data_dir: &Path,
        globals: &[&str],
        log: &Path,
        env: &[(&str, &str)],
    ) -> Self {
        Self::over(ServerProcess::start_with_env(
            server_binary(),
            data_dir,
            &os_args(globals),
            &[],
            Some(log),
            env,
        ))
    }

    fn spawn(data_dir: &Path, globals: &[&str], extra: &[&str], log: Option<&Path>) -> Self {
        Self::spawn_limited(data_dir, globals, extra, log, None)
    }

    fn spawn_limited(
        data_dir: &Path,
        globals: &[&str],
        extra: &[&str],
        log: Option<&Path>,
        descriptors: Option<u64>,
    ) -> Self {
        let process = ServerProcess::start_limited(
            server_binary(),
            data_dir,
            &os_args(globals),
            &os_args(extra),
            log,
            descriptors,
        );
        Self::over(process)
    }

    /// A client for `process`.
    fn over(process: ServerProcess) -> Self {
        let url = process.url.clone();
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(60)))
                .build(),
        );
        Self {
            _process: Mutex::new(process),
            url,
            agent,
        }
    }

    /// Start a backfill job (202) and wait for it to end; the job as `GET /v1/backfill/{id}`
    /// last showed it.
    pub(crate) fn run_backfill(&self, key: Option<&str>, body: &str) -> Value {
        let (status, started, _) = self.post("/v1/backfill", key, body);
        assert_eq!(status, 202, "{started}");
        self.wait_for_job(key, started["job"].as_str().unwrap())
    }

    /// Poll a backfill job until it has ended (at most two minutes).
    pub(crate) fn wait_for_job(&self, key: Option<&str>, job: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let (status, text) = self.get(&format!("/v1/backfill/{job}"), key);
            assert_eq!(status, 200, "{text}");
            let view: Value = serde_json::from_str(&text).unwrap();
            let state = view["status"].as_str().unwrap_or_default();
            if !matches!(state, "running" | "cancelling") {
                return view;
            }
            assert!(std::time::Instant::now() < deadline, "job still {view}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// POST JSON `body` with the given headers: the status and the answer's headers.
    pub(crate) fn post_with_headers(
        &self,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> (u16, ureq::http::HeaderMap) {
        let mut request = self
            .agent
            .post(format!("{}{path}", self.url))
            .header("Content-Type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send(body).expect("the server answers");
        (response.status().as_u16(), response.headers().clone())
    }

    /// POST raw bytes with the given headers; the status.
    pub(crate) fn post_raw(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> u16 {
        let mut request = self.agent.post(format!("{}{path}", self.url));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
            .send(body)
            .expect("the server answers")
            .status()
            .as_u16()
    }

    /// POST raw bytes as `content_type`; the status.
    pub(crate) fn post_bytes(&self, path: &str, body: &[u8], content_type: &str) -> u16 {
        self.post_raw(path, body, &[("Content-Type", content_type)])
    }

    /// POST JSON text without a key; `None` when the server is gone.
    pub(crate) fn try_post(&self, path: &str, body: &str) -> Option<u16> {
        self.agent
            .post(format!("{}{path}", self.url))
            .header("Content-Type", "application/json")
            .send(body)
            .ok()
            .map(|response| response.status().as_u16())
    }

    /// kill -9.
    pub(crate) fn kill(&self) {
        let mut process = self._process.lock().unwrap();
        let _ = process.child.kill();
        let _ = process.child.wait();
    }

    /// Wait up to `limit` for the process to exit by itself.
    pub(crate) fn wait_for_exit(&self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        let mut process = self._process.lock().unwrap();
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = process.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// POST `body` (JSON text) to `path` with an optional bearer key: (status, JSON, Retry-After).
    pub(crate) fn post(
        &self,
        path: &str,
        key: Option<&str>,
        body: &str,
    ) -> (u16, Value, Option<String>) {
        self.post_as(path, key, body, "application/json")
    }

    /// [`Server::post`] of JSON lines (`application/x-ndjson`).
    pub(crate) fn post_lines(
        &self,
        path: &str,
        key: Option<&str>,
        body: &str,
    ) -> (u16, Value, Option<String>) {
        self.post_as(path, key, body, "application/x-ndjson")
    }

    fn post_as(
        &self,
        path: &str,
        key: Option<&str>,
        body: &str,
        content_type: &str,
    ) -> (u16, Value, Option<String>) {
        let mut request = self.agent.post(format!("{}{path}", self.url));
        if let Some(key) = key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let mut response = request
            .header("Content-Type", content_type)
            .send(body)
            .expect("the server answers");
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let text = response.body_mut().read_to_string().unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (response.status().as_u16(), value, retry_after)
    }

    /// POST a body announced as `length` bytes but stop writing after `sent` bytes, then read
    /// the answer. (Writing all of an oversized body races the server, which answers 413 as
    /// soon as the limit is passed and closes: the client then fails with a broken pipe.)
    fn post_oversized_body(&self, path: &str, length: usize, sent: usize) -> (u16, Value) {
        use std::io::{Read, Write};
        let address = self.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).expect("connecting");
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        )
        .expect("writing the headers");
        stream
            .write_all(&vec![b'x'; sent])
            .expect("writing the start of the body");
        // Read the head, then exactly Content-Length bytes (the connection may stay open).
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        while !answer.ends_with(b"\r\n\r\n") {
            stream
                .read_exact(&mut byte)
                .expect("reading the answer's head");
            answer.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {head:?}"));
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse().ok())
            .expect("a Content-Length in the answer");
        let mut body = vec![0u8; length];
        stream
            .read_exact(&mut body)
            .expect("reading the answer's body");
        let body = String::from_utf8_lossy(&body);
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body.into())),
        )
    }

    /// `POST /admin/reload` with `body`, which must be refused (400) with a message that
    /// contains `expected`.
    pub(crate) fn refused_reload(&self, body: &str, expected: &str) {
        let (status, refused, _) = self.post("/admin/reload", Some("admin-key"), body);
        assert_eq!(status, 400, "{refused}");
        let message = refused["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{refused}");
    }

    /// A search sent from another thread with `key`, its answer ignored: a call in flight
    /// while the test does something else (join it to wait for the answer).
    pub(crate) fn search_in_flight(
        &self,
        key: &str,
        body: &'static str,
    ) -> std::thread::JoinHandle<()> {
        let (url, key) = (self.url.clone(), key.to_string());
        std::thread::spawn(move || {
            let agent = ureq::Agent::new_with_config(
                ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build(),
            );
            let _ = agent
                .post(format!("{url}/v1/search"))
                .header("Authorization", format!("Bearer {key}"))
                .header("Content-Type", "application/json")
                .send(body);
        })
    }

    /// Send the server SIGTERM.
    pub(crate) fn terminate(&self) {
        assert!(Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap()
            .success());
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self._process.lock().unwrap().child.id()
    }

    pub(crate) fn delete(&self, path: &str, key: Option<&str>) -> (u16, String) {
        answer(self.agent.delete(format!("{}{path}", self.url)), key)
    }

    pub(crate) fn get(&self, path: &str, key: Option<&str>) -> (u16, String) {
        answer(self.agent.get(format!("{}{path}", self.url)), key)
    }
}

pub(crate) fn sample_corpus() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/records.jsonl"),
    )
    .unwrap()
}

/// A tool unpacked by scripts/fetch-prometheus.sh (which scripts/test.sh runs): a test that
/// needs it fails without it, it never skips.
fn prometheus_tool(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/tools/prometheus/usr/bin")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing (run scripts/fetch-prometheus.sh)",
        path.display()
    );
    path
}

/// A 400 `bad-request` whose message says `words`.
fn assert_bad_request_saying(status: u16, refused: &Value, words: &str) {
    assert_eq!(
        (status, error_kind(refused)),
        (400, "bad-request"),
        "{refused}"
    );
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(words), "{refused}");
}

pub(crate) fn error_kind(value: &Value) -> &str {
    value["error"]["kind"].as_str().unwrap_or("<no error kind>")
}

#[test]
fn every_route_and_error_status_on_the_default_tenant() {
    let server = Server::start(&temp_dir("server"), &["--max-body-bytes", "200000"]);
    assert_eq!(server.get("/healthz", None).0, 200);
    assert_eq!(server.get("/readyz", None).0, 200);

    let (status, ingested, _) = server.post_lines("/v1/records", None, &sample_corpus());
    assert_eq!(status, 200, "{ingested}");
    let total: u64 = ingested["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["records"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 300);
    // A JSON array with ?db= works too; a bad record refuses the whole body, naming it.
    let (status, _, _) = server.post(
        "/v1/records?db=bots",
        None,
        r#"[{"id": "bot-900", "text": "uploads checker bot"}]"#,
    );
    assert_eq!(status, 200);
    let (status, refused, _) = server.post_lines(
        "/v1/records",
        None,
        "{\"db\": \"bots\", \"id\": \"bot-901\", \"text\": \"fine\"}\n{\"db\": \"bots\", \"text\": \"no id\"}\n",
    );
    assert_bad_request_saying(status, &refused, "request body:2");
    // `application/json` is one document laid out any way (the README's Quickstart body); JSON
    // lines sent as `application/json` are refused, with how to send them.
    let (status, answer, _) = server.post(
        "/v1/records",
        None,
        "{\n  \"db\": \"bots\",\n  \"id\": \"bot-904\",\n  \"text\": \"pretty printed\"\n}\n",
    );
    assert_eq!(status, 200, "{answer}");
    let (status, refused, _) = server.post(
        "/v1/records",
        None,
        "{\"db\": \"bots\", \"id\": \"a\", \"text\": \"t\"}\n{\"db\": \"bots\", \"id\": \"b\", \"text\": \"t\"}\n",
    );
    assert_bad_request_saying(status, &refused, "application/x-ndjson");
    // CSV as `text/csv`, as the CLI reads a .csv file; an unknown field is refused, named.
    let status = server.post_bytes(
        "/v1/records?db=bots",
        b"id,text,name\nbot-902,uploads retry bot,Retrier\n",
        "text/csv",
    );
    assert_eq!(status, 200);
    let (status, refused, _) = server.post(
        "/v1/records",
        None,
        r#"{"db": "bots", "id": "bot-903", "text": "fine", "colour": "red"}"#,
    );
    assert_eq!((status, error_kind(&refused)), (400, "bad-request"));
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"colour\""),
        "{refused}"
    );

    let job = server.run_backfill(None, r#"{"session_id": "s-1", "batch_size": 50}"#);
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["status"], "success", "{job}");
    assert_eq!(job["result"]["session_id"], "s-1");
    let reported: u64 = job["result"]["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["embedded"].as_u64().unwrap() + d["skipped"].as_u64().unwrap())
        .sum();
    assert!(reported >= total, "{job}");
    assert_eq!(
        job["records_done"], reported,
        "progress counts every batch: {job}"
    );

    let (status, found, _) = server.post(
        "/v1/search",
        None,
        r#"{"query": "upload failed", "top_k": 3, "origins": ["error"]}"#,
    );
    assert_eq!(status, 200, "{found}");
    let hits = found["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 3);
    assert!(hits.iter().all(|h| h["origin_db"] == "error"));
    assert!(
        hits.iter().all(|h| h["metadata"].is_object()),
        "metadata is a JSON object, not a string holding JSON: {found}"
    );
    assert!(
        !found["session_id"].as_str().unwrap().is_empty(),
        "generated"
    );

    let (status, context, _) = server.post(
        "/v1/context",
        None,
        r#"{"task": "fix failing tests", "top_k": 2, "db_weights": {"workflow": 2.0}}"#,
    );
    assert_eq!(status, 200, "{context}");
    assert!(context["context"].is_object(), "{context}");
    assert!(context["context"].to_string().contains("Fix failing tests"));
    // Buckets of the caller's choosing: only the origins asked for, under their names.
    let (status, context, _) = server.post(
        "/v1/context",
        None,
        r#"{"task": "upload failed", "top_k": 2, "buckets": [{"origin": "error", "bucket": "failures", "label_key": "severity"}]}"#,
    );
    assert_eq!(status, 200, "{context}");
    let buckets: Vec<&String> = context["context"].as_object().unwrap().keys().collect();
    assert_eq!(buckets, ["failures"], "{context}");
    assert_eq!(context["context"]["failures"].as_array().unwrap().len(), 2);
    assert!(
        context["context"]["failures"][0]["severity"].is_string(),
        "{context}"
    );

    let (status, tracked, _) = server.post(
        "/v1/contributors",
        None,
        r#"{"vector_ids": ["bot:bot-005", "workflow:wf-008"], "success": true, "patch_id": "p-1"}"#,
    );
    assert_eq!(status, 200, "{tracked}");
    assert_eq!(
        (tracked["status"].as_str(), tracked["rows"].as_u64()),
        (Some("success"), Some(2))
    );

    // Every error status the contract names, each with a JSON body.
    let long_patch = format!(
        r#"{{"vector_ids": [], "success": true, "patch_id": "{}"}}"#,
        "p".repeat(257)
    );
    for (path, body, status, kind) in [
        ("/v1/search", "{not json", 400, "bad-request"),
        (
            "/v1/search",
            r#"{"query": "x", "colour": 1}"#,
            400,
            "bad-request",
        ),
        ("/v1/search", r#"{"query": "  "}"#, 400, "malformed-prompt"),
        (
            "/v1/contributors",
            long_patch.as_str(),
            400,
            "malformed-prompt",
        ),
        ("/v1/nowhere", "{}", 404, "not-found"),
    ] {
        let (got, value, _) = server.post(path, None, body);
        assert_eq!(
            (got, error_kind(&value)),
            (status, kind),
            "{path} {body}: {value}"
        );
    }
    let (status, value) = server.post_oversized_body("/v1/search", 300_000, 200_100);
    assert_eq!((status, error_kind(&value)), (413, "too-large"));
    let (status, body) = server.get("/v1/search", None);
    assert_eq!(status, 405, "{body}");

    // The exposition parses, passes promtool, and counts what happened.
    let (status, text) = server.get("/metrics", None);
    assert_eq!(status, 200);
    let metrics = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let count = |route: &str, code: &str| -> f64 {
        metrics
            .samples
            .iter()
            .filter(|s| s.metric == "vector_service_http_requests_total")
            .filter(|s| {
                s.labels.get("route") == Some(route) && s.labels.get("status") == Some(code)
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert_eq!(count("search", "200"), 1.0);
    assert_eq!(count("search", "400"), 3.0);
    assert_eq!(count("search", "413"), 1.0);
    assert_eq!(count("records", "400"), 3.0);
    assert!(!text.contains("s-1"), "session ids never become labels");
    let promtool = prometheus_tool("promtool");
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = check.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn tenants_file(dir: &Path) -> PathBuf {
    let hash = api_key_hash;
    let path = dir.join("tenants.toml");
    std::fs::write(
        &path,
        format!(
            r#"admin_key_sha256 = "{}"

[[tenant]]
name = "acme"
api_key_sha256 = "{}"
[tenant.limits]
max_concurrent = 1
queue_wait_ms = 1

[[tenant]]
name = "globex"
api_key_sha256 = "{}"
[tenant.limits]
requests_per_second = 2.0

[[tenant]]
name = "unlimited"
api_key_sha256 = "{}"
"#,
            hash("admin-key"),
            hash("acme-key"),
            hash("globex-key"),
            hash("unlimited-key")
        ),
    )
    .unwrap();
    path
}

#[test]
fn tenants_are_authenticated_isolated_and_limited() {
    let dir = temp_dir("server-tenants");
    let tenants = tenants_file(&dir);
    let server = Server::start(&dir, &["--tenants", tenants.to_str().unwrap()]);

    // No key and a wrong key get the same answer.
    let (none, a, _) = server.post("/v1/search", None, r#"{"query": "x"}"#);
    let (wrong, b, _) = server.post("/v1/search", Some("guess"), r#"{"query": "x"}"#);
    assert_eq!((none, wrong), (401, 401));
    assert_eq!(a, b);

    // acme's records are invisible to globex, in search and in metrics.
    let (status, _, _) = server.post_lines("/v1/records", Some("acme-key"), &sample_corpus());
    assert_eq!(status, 200);
    let (_, acme, _) = server.post(
        "/v1/search",
        Some("acme-key"),
        r#"{"query": "upload failed"}"#,
    );
    assert!(!acme["hits"].as_array().unwrap().is_empty());
    let (status, globex, _) = server.post(
        "/v1/search",
        Some("globex-key"),
        r#"{"query": "upload failed"}"#,
    );
    assert_eq!(status, 200);
    assert!(
        globex["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["record_id"].is_null()),
        "only the no-results fallback: {globex}"
    );
    assert!(dir.join("acme.sqlite3").exists() && dir.join("globex.sqlite3").exists());

    let (_, globex_metrics) = server.get("/metrics", Some("globex-key"));
    assert!(globex_metrics.contains("tenant=\"globex\""));
    assert!(
        !globex_metrics.contains("tenant=\"acme\""),
        "{globex_metrics}"
    );
    let (_, all) = server.get("/metrics", Some("admin-key"));
    assert!(all.contains("tenant=\"acme\"") && all.contains("tenant=\"globex\""));
    assert_eq!(server.get("/metrics", None).0, 401);
    assert_eq!(
        server.post("/admin/reload", Some("acme-key"), "").0,
        401,
        "tenants cannot reload"
    );

    // globex: 2 requests a second, burst 2; the third at once is 429 with Retry-After.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, _, retry) = server.post("/v1/search", Some("globex-key"), r#"{"query": "x"}"#);
        if status == 429 {
            assert!(retry.is_some());
        }
        statuses.push(status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");

    // acme: one call at a time with no queue. A backfill job holds that slot from its 202
    // until it ends, so a search meanwhile is 503, whatever the timing: batches of one over
    // 20,000 records keep the job running for seconds, and it is cancelled once seen.
    let many: String = (0..20_000)
        .map(|i| format!("{{\"db\": \"errors\", \"id\": \"bulk-{i}\", \"text\": \"bulk error {i} while uploading part {}\"}}\n", i % 97))
        .collect();
    assert_eq!(
        server.post_lines("/v1/records", Some("acme-key"), &many).0,
        200
    );
    let (status, started, _) =
        server.post("/v1/backfill", Some("acme-key"), r#"{"batch_size": 1}"#);
    assert_eq!(status, 202, "{started}");
    let job = started["job"].as_str().unwrap().to_string();
    let (status, value, retry) =
        server.post("/v1/search", Some("acme-key"), r#"{"query": "upload"}"#);
    assert_eq!(
        (status, error_kind(&value), retry.as_deref()),
        (503, "overloaded", Some("1")),
        "a search while the backfill holds acme's only slot: {value}"
    );
    let (status, cancelled) = server.delete(&format!("/v1/backfill/{job}"), Some("acme-key"));
    assert_eq!(status, 202, "{cancelled}");
    let ended = server.wait_for_job(Some("acme-key"), &job);
    assert_eq!(ended["status"], "cancelled", "{ended}");
    // Cancelling an ended job changes nothing, and says so.
    let (status, again) = server.delete(&format!("/v1/backfill/{job}"), Some("acme-key"));
    assert_eq!(status, 409, "{again}");
    let (status, _, _) = server.post("/v1/search", Some("acme-key"), r#"{"query": "upload"}"#);
    assert_eq!(status, 200, "served again once the slot is free");
}

#[test]
fn reloads_under_load_fail_no_request_and_a_bad_component_is_refused() {
    let dir = temp_dir("server-reload");
    let component = dir.join("vector-service.wasm");
    std::fs::write(&component, vector_service_runtime::BUILTIN_COMPONENT).unwrap();
    // Admin routes need an admin key (they are off in the keyless default mode).
    let tenants = tenants_file(&dir);
    let server = Arc::new(Server::start(
        &dir,
        &[
            "--component",
            component.to_str().unwrap(),
            "--tenants",
            tenants.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        server
            .post_lines("/v1/records", Some("unlimited-key"), &sample_corpus())
            .0,
        200
    );

    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let (server, stop, served, failed) =
                (server.clone(), stop.clone(), served.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let (status, _, _) = server.post(
                        "/v1/search",
                        Some("unlimited-key"),
                        r#"{"query": "upload failed"}"#,
                    );
                    let counter = if status == 200 { &served } else { &failed };
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for _ in 0..3 {
        let (status, answer, _) = server.post("/admin/reload", Some("admin-key"), "");
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["status"], "reloaded");
        assert_eq!(
            answer["compiled"], false,
            "the same bytes are not compiled again"
        );
    }
    // Other bytes (the same component with a custom section appended) are compiled and swapped.
    let other = dir.join("other.wasm");
    let mut bytes = vector_service_runtime::BUILTIN_COMPONENT.to_vec();
    bytes.extend_from_slice(&[0, 6, 5, b'x', b'-', b'v', b's', b'2']);
    std::fs::write(&other, &bytes).unwrap();
    let (status, answer, _) = server.post(
        "/admin/reload",
        Some("admin-key"),
        &json!({"component": other}).to_string(),
    );
    assert_eq!(
        (status, &answer["compiled"]),
        (200, &json!(true)),
        "{answer}"
    );
    // Not a component: refused, and the old one keeps serving.
    let junk = dir.join("junk.wasm");
    std::fs::write(&junk, b"\0asm\x01\0\0\0 definitely not a component").unwrap();
    let (status, refused, _) = server.post(
        "/admin/reload",
        Some("admin-key"),
        &json!({"component": junk}).to_string(),
    );
    assert_eq!(status, 400, "{refused}");
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap()
        .contains("old one keeps serving"));
    // A valid component, but of another world (it imports what we do not provide): refused
    // for what it is, and the old one keeps serving.
    let stranger = dir.join("another-world.wasm");
    std::fs::write(&stranger, component_of_another_world()).unwrap();
    let (status, refused, _) = server.post(
        "/admin/reload",
        Some("admin-key"),
        &json!({"component": stranger}).to_string(),
    );
    assert_eq!(status, 400, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("does not match the vector-service world")
            && message.contains("old one keeps serving"),
        "{message}"
    );
    stop.store(true, Ordering::SeqCst);
    for thread in load {
        thread.join().unwrap();
    }
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    assert!(served.load(Ordering::SeqCst) > 0);
    let (_, text) = server.get("/metrics", Some("admin-key"));
    assert!(
        text.contains("vector_service_component_reloads_total{outcome=\"success\"} 4"),
        "{text}"
    );
    assert!(text.contains("vector_service_component_reloads_total{outcome=\"refused\"} 2"));
}

/// A valid component whose world is not ours: it imports `ping`, which no vector-service host
/// provides, and exports `greet` instead of the four interfaces (built here with
/// wit-component from a two-line WIT).
fn component_of_another_world() -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    let package = resolve
        .push_source(
            "other.wit",
            "package test:other;\nworld other { import ping: func(); export greet: func() -> string; }",
        )
        .unwrap();
    let world = resolve.select_world(&[package], Some("other")).unwrap();
    let mut module = wit_component::dummy_module(
        &resolve,
        world,
        wit_parser::ManglingAndAbi::Legacy(wit_parser::LiftLowerAbi::Sync),
    );
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )
    .unwrap();
    wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|encoder| encoder.validate(true).encode())
        .unwrap()
}

/// A real Prometheus (Debian's 2.42, unpacked by scripts/fetch-prometheus.sh) scrapes the
/// server on loopback, and a series the server exported is queried back from it.
#[test]
fn a_real_prometheus_scrapes_the_server_and_answers_a_query() {
    let bin = prometheus_tool("prometheus");
    let dir = temp_dir("server-prometheus");
    let server = Server::start(&dir, &[]);
    assert_eq!(
        server
            .post("/v1/search", None, r#"{"query": "upload failed"}"#)
            .0,
        200
    );

    let target = server.url.trim_start_matches("http://").to_string();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: vector-service\n    static_configs:\n      - targets: ['{target}']\n"),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut prometheus = Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let query = format!(
        "http://127.0.0.1:{port}/api/v1/query?query=vector_service_http_requests_total%7Broute%3D%22search%22%7D"
    );
    let mut answer = Value::Null;
    for _ in 0..60 {
        std::thread::sleep(Duration::from_millis(500));
        let Ok(mut response) = server.agent.get(&query).call() else {
            continue;
        };
        answer = serde_json::from_str(&response.body_mut().read_to_string().unwrap())
            .unwrap_or_default();
        if answer["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            break;
        }
    }
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    let result = &answer["data"]["result"][0];
    assert_eq!(result["metric"]["tenant"], "default", "{answer}");
    assert_eq!(result["metric"]["job"], "vector-service");
    assert_eq!(result["value"][1], "1", "{answer}");
}

/// `GET /v1/records/{db}/{id}` reads one record by its key, as written, for its own tenant only:
/// what the Python client's retriever helpers (`error_frequency`, ...) read their metric from.
#[test]
fn a_record_is_read_by_database_and_id_for_its_tenant_only() {
    let dir = temp_dir("server-record");
    let tenants = tenants_file(&dir);
    let server = Server::start(&dir, &["--tenants", tenants.to_str().unwrap()]);
    let (status, _, _) = server.post_lines("/v1/records", Some("acme-key"), &sample_corpus());
    assert_eq!(status, 200);

    let (status, text) = server.get("/v1/records/errors/err-002", Some("acme-key"));
    assert_eq!(status, 200, "{text}");
    let record: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (&record["db"], &record["origin_db"], &record["id"]),
        (&json!("errors"), &json!("error"), &json!("err-002"))
    );
    assert_eq!(record["metadata"]["frequency"], json!(35));
    assert!(record["text"]
        .as_str()
        .unwrap()
        .starts_with("upload service: timeout"));

    // Another database, an unknown id, another tenant: not found; a key past its bound: 400.
    for (path, key) in [
        ("/v1/records/bots/err-002", "acme-key"),
        ("/v1/records/errors/err-999", "acme-key"),
        ("/v1/records/errors/err-002", "globex-key"),
    ] {
        let (status, text) = server.get(path, Some(key));
        let error: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (status, error_kind(&error)),
            (404, "not-found"),
            "{path}: {text}"
        );
    }
    let long = format!("/v1/records/errors/{}", "x".repeat(300));
    let (status, text) = server.get(&long, Some("acme-key"));
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (status, error_kind(&error)),
        (400, "malformed-prompt"),
        "{text}"
    );
    let (status, _) = server.get("/v1/records/errors/err-002", None);
    assert_eq!(status, 401);
}
