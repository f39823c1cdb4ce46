//! The server as a hostile caller meets it: a generated corpus of bad requests per route, the
//! requests that once took the process down, host work past a call's deadline, slow and idle
//! connections, the connection cap, oversized bodies, web pages reaching the keyless default
//! tenant, a damaged database, kill -9 during writes, and one tenant attacked while another
//! is served. Every case asserts a typed answer and a live server afterwards.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::server::{error_kind, Server};
use crate::support::{temp_dir, write_tenants, Metrics};
use vector_service_testkit::embeddings_endpoint::{EmbeddingsEndpoint as EmbeddingServer, Reply};

fn sample_corpus() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/records.jsonl"),
    )
    .unwrap()
}

/// A server over the sample corpus, hybrid retrieval (the path that once aborted on a huge
/// `top_k`), with `extra` serve arguments.
fn corpus_server(label: &str, extra: &[&str]) -> Server {
    let dir = temp_dir(label);
    let status = Command::new(env!("CARGO_BIN_EXE_vector-service"))
        .arg("--data-dir")
        .arg(&dir)
        .args(["ingest", "examples/data/records.jsonl"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let status = Command::new(env!("CARGO_BIN_EXE_vector-service"))
        .arg("--data-dir")
        .arg(&dir)
        .arg("backfill")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let mut args = vec!["--retrieval", "hybrid"];
    args.extend_from_slice(extra);
    // `--retrieval` is a global flag: it goes before `serve`.
    Server::start_with_globals(&dir, &args[..2], &args[2..])
}

/// The server's memory high-water mark (VmHWM), in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024.0
}

/// A small deterministic generator (xorshift), so a failure names a reproducible case.
struct Generator(u64);

impl Generator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize].clone()
    }
}

/// Values that have broken parsers and backends somewhere: huge and negative numbers, wrong
/// types, long strings, deep nesting, control characters, lone surrogates (as JSON escapes).
fn hostile_values(generator: &mut Generator) -> Vec<String> {
    let words = |n: usize| {
        (0..n)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    vec![
        "4294967295".into(),
        "4294967296".into(),
        "18446744073709551615".into(),
        "-1".into(),
        "0".into(),
        "1001".into(),
        "1e308".into(),
        "-0.0".into(),
        "NaN".into(),
        "Infinity".into(),
        "null".into(),
        "true".into(),
        "\"5\"".into(),
        "[]".into(),
        "{}".into(),
        format!("\"{}\"", "x".repeat(200_000)),
        format!("\"{}\"", words(20_000)),
        format!("\"{}\"", words(513)),
        "\"\\ud800\"".into(),
        "\"\\u0000\\u001f\"".into(),
        format!("{}1{}", "[".repeat(5000), "]".repeat(5000)),
        format!(
            "[{}]",
            (0..20_000)
                .map(|i| format!("\"bot:{i}\""))
                .collect::<Vec<_>>()
                .join(",")
        ),
        format!("{}", generator.next()),
    ]
}

/// Valid bodies per route; each hostile body replaces one field of one of them.
fn routes() -> Vec<(&'static str, Value)> {
    vec![
        (
            "/v1/search",
            json!({"query": "upload failed", "top_k": 5, "threshold": 0.1, "origins": ["error"], "session_id": "s"}),
        ),
        (
            "/v1/context",
            json!({"task": "fix failing tests", "top_k": 2, "max_tokens": 200, "db_weights": {"bot": 2.0}}),
        ),
        (
            "/v1/contributors",
            json!({"vector_ids": ["bot:bot-001"], "success": true, "patch_id": "p", "contribution": 0.5, "roi_tag": "high-roi"}),
        ),
        ("/v1/backfill", json!({"batch_size": 10, "dbs": ["bots"]})),
        (
            "/v1/records",
            json!([{"db": "bots", "origin_db": "bot", "id": "x", "text": "t", "metadata": {}}]),
        ),
    ]
}

/// Statuses a hostile request may get: anything typed, never a 500.
const TYPED: [u16; 9] = [200, 400, 401, 403, 404, 413, 415, 429, 503];

#[test]
fn a_generated_corpus_of_hostile_requests_gets_typed_errors_and_the_server_lives() {
    let server = corpus_server("abuse-corpus", &["--max-body-bytes", "1048576"]);
    let mut generator = Generator(0x5eed_cafe_f00d_d00d);
    let mut sent = 0;
    let mut statuses = std::collections::BTreeMap::new();
    let values = hostile_values(&mut generator);
    for (route, valid) in routes() {
        let fields: Vec<String> = match &valid {
            Value::Object(map) => map.keys().cloned().collect(),
            Value::Array(items) => items[0].as_object().unwrap().keys().cloned().collect(),
            _ => unreachable!(),
        };
        for round in 0..120 {
            let value = generator.pick(&values);
            let field = generator.pick(&fields);
            let text = valid.to_string();
            // Splice the hostile text in as the field's value (keeps it raw: NaN, nesting).
            let body = match round % 6 {
                0 => value.clone(),
                1 => text.replacen('{', &format!("{{\"{field}\": {value}, "), 1),
                2 => format!("{{\"{field}\": {value}}}"),
                3 => text.replacen('{', &format!("{{\"unknown_{round}\": 1, "), 1),
                4 => text[..text.len() / 2].to_string(),
                _ => text.replace(
                    &format!("\"{field}\":"),
                    &format!("\"{field}\": {value}, \"_\":"),
                ),
            };
            let (status, answer, _) = server.post(route, None, &body);
            sent += 1;
            *statuses.entry(status).or_insert(0) += 1;
            assert!(
                TYPED.contains(&status),
                "{route} round {round}: status {status} for {}",
                &body[..body.len().min(200)]
            );
            if status != 200 {
                assert_ne!(
                    error_kind(&answer),
                    "<no error kind>",
                    "{route}: an untyped error: {answer}"
                );
                assert!(
                    !answer.to_string().contains("wasm backtrace"),
                    "no internal traces in answers: {answer}"
                );
            }
        }
    }
    // Invalid UTF-8 and non-JSON bodies, and the requests of the original report.
    for body in [&b"\xff\xfe{"[..], b"not json", b""] {
        let status = server.post_bytes("/v1/search", body, "application/json");
        assert!(TYPED.contains(&status), "{status}");
        sent += 1;
    }
    for top_k in ["4294967295", "30000000", "1001"] {
        let (status, answer, _) = server.post(
            "/v1/search",
            None,
            &format!(r#"{{"query": "upload failed", "top_k": {top_k}}}"#),
        );
        assert_eq!((status, error_kind(&answer)), (400, "malformed-prompt"));
        sent += 1;
    }
    let many_words: Vec<String> = (0..300_000).map(|i| format!("w{i}")).collect();
    let started = Instant::now();
    let (status, _, _) = server.post(
        "/v1/search",
        None,
        &json!({"query": many_words.join(" ")}).to_string(),
    );
    assert_eq!(status, 413, "a 2 MB query is over the body limit here");
    let (status, answer, _) = server.post(
        "/v1/search",
        None,
        &json!({"query": many_words[..600].join(" ")}).to_string(),
    );
    // Past 512 words a query is cut there and answered with a warning, as the original took
    // any size; the body limit still refuses what is too big to read.
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["warnings"][0]
            .as_str()
            .is_some_and(|warning| warning.starts_with("query cut to its first ")),
        "{answer}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused or cut without reading past the bound"
    );
    // 60 distinct large queries (16 KB, 500 words): the cache stays within its byte budget.
    for i in 0..60 {
        let query = format!("{i} {}", "uploadfailedagainandagain ".repeat(500));
        let (status, answer, _) =
            server.post("/v1/search", None, &json!({ "query": query }).to_string());
        assert_eq!(status, 200, "{answer}");
        sent += 1;
    }
    let metrics = Metrics::parse(server.get("/metrics", None).1);
    let cache_bytes = metrics.gauge("vector_service_cache_bytes", &[("tenant", "default")]);
    assert!(
        cache_bytes > 0.0 && cache_bytes <= 16.0 * 1024.0 * 1024.0,
        "{cache_bytes}"
    );

    assert_eq!(server.get("/healthz", None).0, 200);
    let (status, answer, _) = server.post("/v1/search", None, r#"{"query": "upload failed"}"#);
    assert_eq!(status, 200, "{answer}");
    let peak = peak_rss_mib(server.pid());
    eprintln!("{sent} hostile requests: statuses {statuses:?}, server peak RSS {peak:.0} MiB");
    assert!(peak < 512.0, "memory stayed flat: peak {peak:.0} MiB");
}

fn two_tenants(dir: &Path, attacker_limits: &str) -> std::path::PathBuf {
    write_tenants(
        dir,
        None,
        &[
            ("attacker", "attacker-key", attacker_limits),
            ("victim", "victim-key", ""),
        ],
    )
}

#[test]
fn host_work_stops_at_the_tenant_deadline_and_shutdown_does_not_wait_for_it() {
    // Every embedding request (the query's) takes 20 s: far past the tenant's 600 ms.
    let slow = EmbeddingServer::start(&vec![Reply::Slow(Duration::from_secs(20)); 8]);
    let dir = temp_dir("abuse-deadline");
    let tenants = two_tenants(&dir, "call_deadline_ms = 600");
    let server = Server::start_with_globals(
        &dir,
        &slow.vector_search_flags(),
        &["--tenants", tenants.to_str().unwrap()],
    );
    let started = Instant::now();
    let (status, answer, _) = server.post(
        "/v1/search",
        Some("attacker-key"),
        r#"{"query": "upload failed"}"#,
    );
    let elapsed = started.elapsed();
    assert_eq!(
        (status, error_kind(&answer)),
        (503, "deadline-exceeded"),
        "{answer}"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "stopped near the 600 ms deadline, not the embedder's 20 s: {elapsed:?}"
    );
    assert!(!answer.to_string().contains("backtrace"), "{answer}");
    let metrics = Metrics::parse(server.get("/metrics", Some("attacker-key")).1);
    assert_eq!(
        metrics.counter(
            "vector_service_sandbox_failures_total",
            &[("tenant", "attacker"), ("reason", "deadline")]
        ),
        1.0
    );

    // SIGTERM with a slow call in flight: the process exits within the grace period
    // (the largest deadline, 10 s for the victim, + 2 s), not after the embedder's 20 s.
    let in_flight = server.search_in_flight("victim-key", r#"{"query": "slow"}"#);
    std::thread::sleep(Duration::from_millis(300));
    let terminated = Instant::now();
    server.terminate();
    let exited = server.wait_for_exit(Duration::from_secs(20));
    assert!(exited.is_some(), "the server exited");
    assert!(
        terminated.elapsed() < Duration::from_secs(15),
        "drained within the grace period: {:?}",
        terminated.elapsed()
    );
    in_flight.join().unwrap();
}

#[test]
fn an_attacked_tenant_does_not_slow_its_neighbour() {
    let dir = temp_dir("abuse-neighbour");
    let tenants = two_tenants(&dir, "max_concurrent = 2\nqueue_wait_ms = 50");
    let server = Arc::new(Server::start_with_globals(
        &dir,
        &["--retrieval", "hybrid"],
        &["--tenants", tenants.to_str().unwrap()],
    ));
    for key in ["attacker-key", "victim-key"] {
        let (status, _, _) = server.post_lines("/v1/records", Some(key), &sample_corpus());
        assert_eq!(status, 200);
    }
    // The most expensive valid search: 512 distinct words, top_k 1000.
    let heavy = json!({
        "query": (0..512).map(|i| format!("upload{i} failed{i}")).collect::<Vec<_>>().join(" ")
            .split(' ').take(512).collect::<Vec<_>>().join(" "),
        "top_k": 1000
    })
    .to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let attack_statuses = Arc::new(Mutex::new(Vec::new()));
    let attackers: Vec<_> = (0..3)
        .map(|_| {
            let (server, stop, heavy, statuses) = (
                server.clone(),
                stop.clone(),
                heavy.clone(),
                attack_statuses.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let (status, _, _) = server.post("/v1/search", Some("attacker-key"), &heavy);
                    statuses.lock().unwrap().push(status);
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for i in 0..100 {
        let started = Instant::now();
        let (status, answer, _) = server.post(
            "/v1/search",
            Some("victim-key"),
            &json!({"query": format!("upload failed {i}")}).to_string(),
        );
        latencies.push(started.elapsed());
        assert_eq!(status, 200, "{answer}");
    }
    stop.store(true, Ordering::Relaxed);
    attackers.into_iter().for_each(|a| a.join().unwrap());
    latencies.sort();
    let p99 = latencies[98];
    let statuses = attack_statuses.lock().unwrap();
    eprintln!(
        "victim p50 {:?} p99 {p99:?} while the attacker sent {} requests",
        latencies[50],
        statuses.len()
    );
    assert!(
        statuses.iter().all(|s| [200, 503].contains(s)),
        "{statuses:?}"
    );
    assert!(p99 < Duration::from_secs(2), "victim p99 {p99:?}");
}

/// A raw connection to the server.
fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Whether the server closed `stream` (a read ends) within `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(error) => {
                return !matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                )
            }
        }
    }
}

#[test]
fn slow_idle_and_surplus_connections_are_closed_and_counted_and_probes_answer_past_the_cap() {
    let server = Server::start(
        &temp_dir("abuse-connections"),
        &["--header-timeout-ms", "500", "--max-connections", "6"],
    );
    // Slowloris: a header byte every 100 ms would take 4 s; the server hangs up first.
    let mut slow = connect(&server);
    let request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaa\r\n\r\n";
    let started = Instant::now();
    let mut cut = false;
    for byte in request {
        if slow.write_all(&[*byte]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    assert!(
        cut || closed_within(&mut slow, Duration::from_secs(2)),
        "slowloris was cut off"
    );
    assert!(started.elapsed() < Duration::from_secs(4));

    // An idle kept-alive connection is closed after the header timeout.
    let mut idle = connect(&server);
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 12];
    idle.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    assert!(
        closed_within(&mut idle, Duration::from_secs(3)),
        "idle connection closed"
    );

    // The cap: six silent connections fill it. Past it the operator's probes still answer, on
    // a reserve of eight connections (one request each); any other route there is 503. On a
    // server whose header timeout outlasts this part: at 500 ms the held connections could
    // time out while a slow machine is still filling the reserve, and free the room the
    // surplus connection must not find.
    let server = Server::start(
        &temp_dir("abuse-connection-cap"),
        &["--header-timeout-ms", "10000", "--max-connections", "6"],
    );
    let held: Vec<TcpStream> = (0..6).map(|_| connect(&server)).collect();
    std::thread::sleep(Duration::from_millis(100));
    let on_reserve = |request: &[u8]| {
        let mut stream = connect(&server);
        stream.write_all(request).unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).unwrap();
        let closed = closed_within(&mut stream, Duration::from_secs(2));
        (String::from_utf8_lossy(&head).into_owned(), closed)
    };
    assert_eq!(
        on_reserve(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
        ("HTTP/1.1 200".to_string(), true),
        "a probe is answered past the cap, and its connection closed after it"
    );
    assert_eq!(
        on_reserve(b"GET /v1/usage HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").0,
        "HTTP/1.1 503"
    );
    // Eight silent connections fill the reserve too; the next is closed at once and counted.
    let reserve: Vec<TcpStream> = (0..8).map(|_| connect(&server)).collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut surplus = connect(&server);
    assert!(
        closed_within(&mut surplus, Duration::from_millis(400)),
        "over the cap: closed"
    );
    // Once the silent ones hang up, the server answers again.
    drop(held);
    drop(reserve);
    std::thread::sleep(Duration::from_millis(100));
    let (status, text) = server.get("/metrics", None);
    assert_eq!(status, 200);
    let metrics = Metrics::parse(text);
    assert!(metrics.counter("vector_service_connections_refused_total", &[]) >= 1.0);
}

#[test]
fn oversized_bodies_get_413_before_they_are_sent_or_while_they_are() {
    let server = Server::start(&temp_dir("abuse-413"), &["--max-body-bytes", "65536"]);
    let address = server.url.trim_start_matches("http://").to_string();
    // Expect: 100-continue: the answer comes before any of the body is sent.
    let mut stream = connect(&server);
    write!(
        stream,
        "POST /v1/search HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\nExpect: 100-continue\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");
    // A client that sends its whole 1 MiB body anyway reads the 413, not a reset.
    let mut stream = connect(&server);
    write!(
        stream,
        "POST /v1/search HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n"
    )
    .unwrap();
    stream
        .write_all(&vec![b' '; 1 << 20])
        .expect("the whole body is accepted (and thrown away)");
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");
}

#[test]
fn web_pages_cannot_reach_the_keyless_default_tenant() {
    let server = Server::start(&temp_dir("abuse-browser"), &[]);
    // A form post from a page: text/plain, with the page's origin.
    let planted =
        r#"{"db": "bots", "origin_db": "bot", "id": "planted", "text": "planted record"}"#;
    let status = server.post_raw(
        "/v1/records",
        planted.as_bytes(),
        &[
            ("Content-Type", "text/plain"),
            ("Origin", "http://evil.example"),
        ],
    );
    assert_eq!(status, 403);
    let status = server.post_raw(
        "/v1/records",
        planted.as_bytes(),
        &[("Content-Type", "text/plain")],
    );
    assert_eq!(
        status, 415,
        "non-JSON bodies are refused even without an Origin"
    );
    // DNS rebinding: the page's own name as Host.
    let status = server.post_raw(
        "/v1/records",
        planted.as_bytes(),
        &[
            ("Content-Type", "application/json"),
            ("Host", "evil.example:8080"),
        ],
    );
    assert_eq!(status, 403);
    let (status, answer, _) = server.post("/v1/search", None, r#"{"query": "planted"}"#);
    assert_eq!(status, 200);
    assert!(
        answer["fallback"].is_object(),
        "nothing was planted: {answer}"
    );
    // No admin key configured: admin routes are off.
    let (status, answer, _) = server.post("/admin/reload", None, "");
    assert_eq!((status, error_kind(&answer)), (403, "admin-disabled"));
    // The query string is checked after authentication, with a typed error.
    let (status, answer, _) = server.post("/v1/records?db=a&db=b", None, "[]");
    assert_eq!((status, error_kind(&answer)), (400, "bad-request"));
}

/// Overwrite the second half of a SQLite file with garbage, keeping its header.
fn damage(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let half = bytes.len() / 2;
    for (i, byte) in bytes[half..].iter_mut().enumerate() {
        *byte = (i * 7 + 13) as u8;
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_damaged_database_is_not_ready_and_its_backfill_fails() {
    let dir = temp_dir("abuse-damaged");
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_vector-service"))
            .arg("--data-dir")
            .arg(&dir)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
    };
    assert!(cli(&["ingest", "examples/data/records.jsonl"])
        .status
        .success());
    // Checkpoint the WAL into the file so the damage hits real pages.
    let connection = rusqlite::Connection::open(dir.join("default.sqlite3")).unwrap();
    connection
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(connection);
    damage(&dir.join("default.sqlite3"));

    let backfill = cli(&["backfill"]);
    assert!(
        !backfill.status.success(),
        "backfill of a damaged file fails: {}",
        String::from_utf8_lossy(&backfill.stdout)
    );

    let server = Server::start(&dir, &[]);
    // The failure is the store's damage, and is named so.
    let (status, answer, _) = server.post("/v1/search", None, r#"{"query": "upload failed"}"#);
    assert_eq!(
        (status, error_kind(&answer)),
        (503, "store-damaged"),
        "{answer}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ready = server.get("/readyz", None);
    while ready.0 == 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        ready = server.get("/readyz", None);
    }
    assert_eq!(ready.0, 503, "{}", ready.1);
    assert_eq!(server.get("/healthz", None).0, 200);
}

#[test]
fn tenant_names_and_limits_are_checked_before_anything_is_touched() {
    let dir = temp_dir("abuse-names");
    for tenant in ["../../x", "/etc/x", "", "..", "a\nb", "A"] {
        let output = Command::new(env!("CARGO_BIN_EXE_vector-service"))
            .arg("--data-dir")
            .arg(&dir)
            .args(["--tenant", tenant, "stats"])
            .output()
            .unwrap();
        assert!(!output.status.success(), "{tenant:?} refused");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("tenant name"),
            "{tenant:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing was created"
    );
}

/// Acknowledged writes, then kill -9, then count: every acknowledged record is there.
fn acknowledged_writes_survive_kill_9(database: &[&str], label: &str) {
    let dir = temp_dir(label);
    let server = Arc::new(Server::start_with_globals(&dir, database, &[]));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..2)
        .map(|writer| {
            let (server, acknowledged) = (server.clone(), acknowledged.clone());
            std::thread::spawn(move || {
                for batch in 0.. {
                    let records: Vec<Value> = (0..10)
                        .map(|i| json!({"db": "crash", "origin_db": "bot", "id": format!("w{writer}-b{batch}-{i}"), "text": "crash test"}))
                        .collect();
                    let Some(status) =
                        server.try_post("/v1/records", &Value::Array(records.clone()).to_string())
                    else {
                        return;
                    };
                    if status == 200 {
                        acknowledged.lock().unwrap().extend(
                            records.iter().map(|r| r["id"].as_str().unwrap().to_string()),
                        );
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    server.kill();
    writers.into_iter().for_each(|w| w.join().unwrap());
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 20, "some writes were acknowledged");
    // Every acknowledged record is in the store.
    let stored = stored_ids(&dir, database);
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged records missing, e.g. {:?}",
        missing.len(),
        acknowledged.len(),
        missing.first()
    );
    eprintln!(
        "{label}: {} acknowledged records, all stored",
        acknowledged.len()
    );
}

/// Ids of the `crash` database's records, read back from the store itself.
fn stored_ids(dir: &Path, database: &[&str]) -> std::collections::HashSet<String> {
    let select = "SELECT id FROM records WHERE db = 'crash'";
    if database.is_empty() {
        let connection = rusqlite::Connection::open(dir.join("default.sqlite3")).unwrap();
        let mut statement = connection.prepare(select).unwrap();
        let ids = statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        ids
    } else {
        vector_service_testkit::postgres_server::psql(
            &select.replace("records", "vs_default.records"),
        )
        .lines()
        .map(|line| line.trim().to_string())
        .filter(|line| !line.is_empty())
        .collect()
    }
}

#[test]
fn acknowledged_writes_survive_kill_9_on_sqlite() {
    acknowledged_writes_survive_kill_9(&[], "abuse-crash-sqlite");
}

#[test]
fn acknowledged_writes_survive_kill_9_on_postgres() {
    let url = vector_service_testkit::postgres_server::postgres()
        .url
        .clone();
    let database = format!("--database={url}");
    acknowledged_writes_survive_kill_9(&[&database], "abuse-crash-postgres");
}
