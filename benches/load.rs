//! The server under load, route by route, on loopback: the release server with the sample
//! corpus loaded for each tenant, and a lean load generator (one thread, an async HTTP/1.1
//! client with keep-alive connections) so the client is not the bottleneck; its own CPU per
//! request is printed too. For one tenant, in one run: `GET /healthz` (the HTTP floor),
//! `POST /v1/search`, `POST /v1/contributors`, and the search's backend called directly in
//! this process on the same file. The service's own share of a search is
//! `search - healthz - direct backend`. Then `/v1/search` for 10 tenants.
//!
//! ```text
//! cargo bench --bench load
//! LOAD_SECONDS=10 LOAD_CONNECTIONS=8 cargo bench --bench load
//! VECTOR_SERVICE_BINARY=path/to/vector-service cargo bench --bench load   # another build
//! LOAD_COMPONENT=guest/floor/floor.wasm cargo bench --bench load   # another component
//! ```
//! With the floor component (`guest/floor/`: a search that only passes the backend's
//! hits through, and no other operation), the own share is the server's floor for a sandboxed
//! search; its contributors row then counts every request as an error.
//! Last, `/v1/search` on servers that export their spans over OTLP to a collector in this
//! process, at sampling ratios 1.0 and 0.01, beside one that exports none, in
//! `LOAD_TRACING_ROUNDS` alternating rounds (default 1; 0 leaves them out).
//! Client and server share the machine's 2 cores, so req/s is a floor for a server with the
//! machine to itself ("server-only req/s" divides the cores by the server's CPU per request).
//! Figures go to BENCHMARKS.md.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use vector_service_runtime::backends::{ChangeClock as _, HashingEmbedder, Retriever as _};
use vector_service_sqlite::SqliteStore;

mod support;
use support::{cpu_seconds, env_number, rss_kib, server_binary};

use vector_service_testkit::otlp_collector::OtlpCollector;
use vector_service_testkit::server_process::ServerProcess;
use vector_service_testkit::tenants_file::api_key_hash as hash;

/// The server over `dir` for `tenants` tenants; with `logs`, its JSON logs (info) go to
/// `dir/server.log` as an operator's would go to a file, else only warnings, nowhere.
fn start(dir: &Path, tenants: usize, logs: bool) -> ServerProcess {
    start_with_env(dir, tenants, logs, &[])
}

/// [`start`] with these environment variables (`OTEL_*`) too.
fn start_with_env(dir: &Path, tenants: usize, logs: bool, env: &[(&str, &str)]) -> ServerProcess {
    let file = dir.join("tenants.toml");
    let entries: String = (0..tenants)
        .map(|t| {
            format!(
                "[[tenant]]\nname = \"t{t}\"\napi_key_sha256 = \"{}\"\n[tenant.limits]\nmax_concurrent = 8\n",
                hash(&format!("key-{t}"))
            )
        })
        .collect();
    std::fs::write(&file, entries).expect("tenants file");
    let log = dir.join("server.log");
    let component = std::env::var_os("LOAD_COMPONENT");
    let mut serve_args = vec!["--tenants".as_ref(), file.as_os_str()];
    if let Some(component) = &component {
        serve_args.extend(["--component".as_ref(), component.as_os_str()]);
    }
    ServerProcess::start_with_env(
        server_binary(),
        dir,
        &[],
        &serve_args,
        logs.then_some(log.as_path()),
        env,
    )
}

/// `/v1/search` with tracing off and exporting at ratios 1.0 and 0.01 (a fresh server each,
/// logs on as in the first rows), `rounds` times in turn; the spans the collector received.
fn tracing_rows(search: &Route, connections: u64, seconds: u64, rounds: u64) {
    let collector = OtlpCollector::start();
    let dir = std::env::temp_dir().join(format!("vs-load-{}-tracing", std::process::id()));
    for round in 0..rounds {
        for ratio in [None, Some("1.0"), Some("0.01")] {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("a temp dir");
            let env = ratio.map(|ratio| {
                [
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.as_str()),
                    ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", ratio),
                ]
            });
            let server = start_with_env(&dir, 1, true, env.as_ref().map_or(&[][..], |e| &e[..]));
            ingest(&server, 1);
            let address = server.url.trim_start_matches("http://").to_string();
            let measured = load(&address, search, 1, connections, seconds, server.child.id());
            let label = match ratio {
                None => format!("POST /v1/search, tracing off (round {})", round + 1),
                Some(ratio) => format!(
                    "POST /v1/search, spans exported at ratio {ratio} (round {})",
                    round + 1
                ),
            };
            row(&label, 1, &measured);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!();
    println!(
        "spans the collector received in all: {}",
        collector.spans().len()
    );
}

/// One route's load: a request template and a body per request number.
struct Route {
    label: &'static str,
    path: &'static str,
    body: fn(u64) -> Option<String>,
}

const QUERIES: [&str; 4] = [
    "upload failed",
    "fix failing tests",
    "disk is full",
    "queue is stuck",
];

fn search_body(i: u64) -> Option<String> {
    Some(format!(
        r#"{{"query": "{}", "top_k": 5, "session_id": "load-{i}"}}"#,
        QUERIES[i as usize % QUERIES.len()]
    ))
}

fn contributors_body(i: u64) -> Option<String> {
    Some(format!(
        r#"{{"vector_ids": ["bot:b-1", "error:e-2"], "success": {}, "patch_id": "p-{i}", "session_id": "load-{i}"}}"#,
        i.is_multiple_of(2)
    ))
}

/// What a run measured.
struct Measured {
    requests: u64,
    errors: u64,
    seconds: f64,
    latencies: Vec<Duration>,
    server_cpu: f64,
    client_cpu: f64,
}

impl Measured {
    fn quantile_ms(&self, q: f64) -> f64 {
        self.latencies[((self.latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3
    }

    fn server_us(&self) -> f64 {
        self.server_cpu / self.requests as f64 * 1e6
    }
}

/// Read one HTTP/1.1 response (Content-Length framed) from `stream`; its status.
async fn read_response(stream: &mut tokio::net::TcpStream, buffer: &mut Vec<u8>) -> Option<u16> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buffer[..end]).ok()?;
            let status = head.get(9..12)?.parse().ok()?;
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            let total = end + 4 + length;
            while buffer.len() < total {
                let mut chunk = [0u8; 16384];
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buffer.extend_from_slice(&chunk[..n]);
            }
            buffer.drain(..total);
            return Some(status);
        }
        let mut chunk = [0u8; 16384];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// `connections` keep-alive connections on one thread, each sending its next request as soon
/// as the last answer arrived, for `seconds`.
fn load(
    address: &str,
    route: &Route,
    tenants: u64,
    connections: u64,
    seconds: u64,
    server: u32,
) -> Measured {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (server_before, client_before) = (cpu_seconds(server), cpu_seconds(std::process::id()));
    let started = Instant::now();
    let results = runtime.block_on(async {
        let tasks: Vec<_> = (0..connections)
            .map(|c| {
                let (address, key) = (address.to_string(), format!("key-{}", c % tenants));
                let (path, body) = (route.path, route.body);
                tokio::spawn(async move {
                    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
                    stream.set_nodelay(true).expect("nodelay");
                    let mut buffer = Vec::new();
                    let (mut latencies, mut errors) = (Vec::new(), 0u64);
                    let mut i = c;
                    while Instant::now() < deadline {
                        let request = match body(i) {
                            Some(body) => format!(
                                "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            ),
                            None => format!("GET {path} HTTP/1.1\r\nHost: {address}\r\n\r\n"),
                        };
                        let sent = Instant::now();
                        stream.write_all(request.as_bytes()).await.expect("send");
                        match read_response(&mut stream, &mut buffer).await {
                            Some(200) => {}
                            Some(_) => errors += 1,
                            None => panic!("the server closed the connection"),
                        }
                        latencies.push(sent.elapsed());
                        i += connections;
                    }
                    (latencies, errors)
                })
            })
            .collect();
        let mut all = (Vec::new(), 0);
        for task in tasks {
            let (mut latencies, errors) = task.await.expect("a connection task");
            all.0.append(&mut latencies);
            all.1 += errors;
        }
        all
    });
    let seconds = started.elapsed().as_secs_f64();
    let (mut latencies, errors) = results;
    latencies.sort();
    Measured {
        requests: latencies.len() as u64,
        errors,
        seconds,
        latencies,
        server_cpu: cpu_seconds(server) - server_before,
        client_cpu: cpu_seconds(std::process::id()) - client_before,
    }
}

fn ingest(server: &ServerProcess, tenants: usize) {
    let corpus = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/records.jsonl"),
    )
    .expect("the sample corpus");
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    for t in 0..tenants {
        let status = agent
            .post(format!("{}/v1/records", server.url))
            .header("Authorization", format!("Bearer key-{t}"))
            .header("Content-Type", "application/x-ndjson")
            .send(&corpus)
            .expect("ingest")
            .status();
        assert_eq!(status.as_u16(), 200);
    }
}

/// CPU per call of `call` (given the call's number), run in this process for `seconds`.
fn in_process_us(seconds: u64, mut call: impl FnMut(u64)) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let before = cpu_seconds(std::process::id());
    let mut calls = 0u64;
    while Instant::now() < deadline {
        call(calls);
        calls += 1;
    }
    (cpu_seconds(std::process::id()) - before) / calls as f64 * 1e6
}

/// The search's backend called directly, in this process, on the tenant's file; the read of
/// the store's generation that the result cache needs once per call; and the search that
/// reads that generation on its way, as the server's lexical searches do: CPU per call.
fn direct_us(file: &Path, seconds: u64) -> (f64, f64, f64) {
    let store = Arc::new(SqliteStore::open(file, Arc::new(HashingEmbedder)).expect("the store"));
    let search = in_process_us(seconds, |n| {
        let hits = store
            .search(QUERIES[n as usize % QUERIES.len()], 5, &[])
            .expect("a direct search");
        std::hint::black_box(hits);
    });
    let generation = in_process_us(seconds, |_| {
        std::hint::black_box(store.generation().expect("the generation"));
    });
    let search_reading_generation = in_process_us(seconds, |n| {
        let found = store
            .search_reading_generation(QUERIES[n as usize % QUERIES.len()], 5, &[])
            .expect("a lexical store")
            .expect("a direct search");
        std::hint::black_box(found);
    });
    (search, generation, search_reading_generation)
}

fn row(label: &str, tenants: usize, m: &Measured) {
    println!(
        "| {label} | {tenants} | {:.0} | {:.2} | {:.2} | {} | {:.1} | {:.0} | {:.1} |",
        m.requests as f64 / m.seconds,
        m.quantile_ms(0.5),
        m.quantile_ms(0.99),
        m.errors,
        m.server_us(),
        available_cores() as f64 / (m.server_cpu / m.requests as f64),
        m.client_cpu / m.requests as f64 * 1e6,
    );
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn main() {
    let seconds = env_number("LOAD_SECONDS", 5);
    let connections = env_number("LOAD_CONNECTIONS", 8);
    let routes = [
        Route {
            label: "GET /healthz",
            path: "/healthz",
            body: |_| None,
        },
        Route {
            label: "POST /v1/search",
            path: "/v1/search",
            body: search_body,
        },
        Route {
            label: "POST /v1/contributors",
            path: "/v1/contributors",
            body: contributors_body,
        },
    ];
    println!("{seconds} s per row, {connections} keep-alive connections from one client thread, sample corpus per tenant, JSON logs (info) to a file unless marked");
    println!("| route | tenants | req/s | p50 ms | p99 ms | errors | server CPU µs/req | server-only req/s | client CPU µs/req |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let dir = std::env::temp_dir().join(format!("vs-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let server = start(&dir, 1, true);
    ingest(&server, 1);
    std::thread::sleep(Duration::from_millis(300));
    let idle = rss_kib(server.child.id());
    let address = server.url.trim_start_matches("http://").to_string();
    let mut per_route = Vec::new();
    for route in &routes {
        let measured = load(&address, route, 1, connections, seconds, server.child.id());
        row(route.label, 1, &measured);
        per_route.push(measured.server_us());
    }
    let loaded = rss_kib(server.child.id());
    drop(server);
    let log_lines =
        std::fs::read_to_string(dir.join("server.log")).map_or(0, |text| text.lines().count());
    // The same search with the logs off: the difference is what logging costs a request.
    let quiet_dir = dir.join("quiet");
    std::fs::create_dir_all(&quiet_dir).expect("a temp dir");
    let quiet = start(&quiet_dir, 1, false);
    ingest(&quiet, 1);
    let quiet_address = quiet.url.trim_start_matches("http://").to_string();
    let measured = load(
        &quiet_address,
        &routes[1],
        1,
        connections,
        seconds,
        quiet.child.id(),
    );
    row("POST /v1/search, logs off (warn)", 1, &measured);
    let logs_off = measured.server_us();
    drop(quiet);
    let (direct, generation, reading) = direct_us(&dir.join("t0.sqlite3"), seconds);
    println!(
        "| search backend called directly (in process) | - | - | - | - | - | {direct:.1} | - | - |"
    );
    println!(
        "| the store's generation read alone (in process; what the cache needs once per call) | - | - | - | - | - | {generation:.2} | - | - |"
    );
    println!(
        "| the search reading the generation on its way (in process; the server's lexical search with the cache on) | - | - | - | - | - | {reading:.1} | - | - |"
    );
    println!();
    println!(
        "service's own share of a search: {:.1} - {:.1} (healthz) - {direct:.1} (backend) = {:.1} µs of server CPU; contributors: {:.1} - {:.1} = {:.1} µs over the HTTP floor",
        per_route[1],
        per_route[0],
        per_route[1] - per_route[0] - direct,
        per_route[2],
        per_route[0],
        per_route[2] - per_route[0],
    );
    println!(
        "logging: {:.1} µs of server CPU per search (info logs to a file minus logs off); {log_lines} JSON lines written in all",
        per_route[1] - logs_off
    );
    println!(
        "server RSS: idle {:.1} MiB, after the runs {:.1} MiB",
        idle as f64 / 1024.0,
        loaded as f64 / 1024.0
    );
    let _ = std::fs::remove_dir_all(&dir);

    println!();
    let tenants = 10;
    let dir = std::env::temp_dir().join(format!("vs-load-{}-{tenants}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let server = start(&dir, tenants, true);
    ingest(&server, tenants);
    let address = server.url.trim_start_matches("http://").to_string();
    // Connection c is tenant c % 10's client.
    let measured = load(
        &address,
        &routes[1],
        tenants as u64,
        connections.max(10),
        seconds,
        server.child.id(),
    );
    row(routes[1].label, tenants, &measured);
    drop(server);
    let _ = std::fs::remove_dir_all(dir);

    let rounds = env_number("LOAD_TRACING_ROUNDS", 1);
    if rounds > 0 {
        println!();
        println!("| route | tenants | req/s | p50 ms | p99 ms | errors | server CPU µs/req | server-only req/s | client CPU µs/req |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        tracing_rows(&routes[1], connections, seconds, rounds);
    }
}
