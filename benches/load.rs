//! `POST /v1/search` under load: the release server on loopback, the sample corpus loaded for
//! each tenant, closed-loop clients with keep-alive (one per thread), for 1 and 10 tenants.
//! Prints req/s, p50/p99 latency, the server's CPU time per request (and what the server could
//! answer with every core to itself), its idle RSS and RSS under load.
//!
//! ```text
//! cargo bench --bench load
//! LOAD_SECONDS=10 LOAD_CLIENTS=8 cargo bench --bench load
//! ```
//! Client and server share the machine's cores, so the figures are a floor for a server with
//! the machine to itself. Figures go to BENCHMARKS.md.

use std::path::Path;
use std::time::{Duration, Instant};

use sha2::Digest as _;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn hash(key: &str) -> String {
    sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time (user + system) the process has used, from `/proc/PID/stat` (clock ticks of 10 ms).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

#[path = "../tests/e2e/server_process.rs"]
mod server_process;
use server_process::ServerProcess;

fn start(dir: &Path, tenants: usize) -> ServerProcess {
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
    ServerProcess::start_with_globals(dir, &[], &["--tenants".as_ref(), file.as_os_str()], None)
}

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    )
}

fn run(tenants: usize, clients: usize, seconds: u64) {
    let dir = std::env::temp_dir().join(format!("vs-load-{}-{tenants}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let server = start(&dir, tenants);
    let corpus = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/records.jsonl"),
    )
    .expect("the sample corpus");
    let setup = agent();
    for t in 0..tenants {
        let status = setup
            .post(format!("{}/v1/records", server.url))
            .header("Authorization", format!("Bearer key-{t}"))
            .header("Content-Type", "application/x-ndjson")
            .send(&corpus)
            .expect("ingest")
            .status();
        assert_eq!(status.as_u16(), 200);
    }
    std::thread::sleep(Duration::from_millis(300));
    let idle = rss_kib(server.child.id());
    let queries = [
        "upload failed",
        "fix failing tests",
        "disk is full",
        "queue is stuck",
    ];
    let cpu_before = cpu_seconds(server.child.id());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..clients)
        .map(|c| {
            let url = format!("{}/v1/search", server.url);
            std::thread::spawn(move || {
                let agent = agent();
                let key = format!("Bearer key-{}", c % tenants);
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                let mut i = c;
                while Instant::now() < deadline {
                    // Distinct session ids and rotating queries; the result cache still
                    // answers repeats, as it would for real repeated queries.
                    let body = format!(
                        r#"{{"query": "{}", "top_k": 5, "session_id": "load-{c}-{i}"}}"#,
                        queries[i % queries.len()]
                    );
                    let started = Instant::now();
                    let ok = agent
                        .post(&url)
                        .header("Authorization", &key)
                        .header("Content-Type", "application/json")
                        .send(body.as_str())
                        .map(|mut r| {
                            let _ = r.body_mut().read_to_vec();
                            r.status().as_u16() == 200
                        })
                        .unwrap_or(false);
                    latencies.push(started.elapsed());
                    if !ok {
                        errors += 1;
                    }
                    i += clients;
                }
                (latencies, errors)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds) / 2);
    let loaded = rss_kib(server.child.id());
    let mut latencies = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (mut l, e) = worker.join().expect("a client thread");
        latencies.append(&mut l);
        errors += e;
    }
    let server_cpu = cpu_seconds(server.child.id()) - cpu_before;
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    let requests = latencies.len() as f64;
    let cpu_per_request = server_cpu / requests;
    println!(
        "| {tenants} | {clients} | {:.0} | {:.2} | {:.2} | {errors} | {:.0} | {:.0} | {:.1} | {:.1} |",
        requests / seconds as f64,
        at(0.5),
        at(0.99),
        cpu_per_request * 1e6,
        // What the server alone could answer with the machine's cores to itself.
        available_cores() as f64 / cpu_per_request,
        idle as f64 / 1024.0,
        loaded as f64 / 1024.0
    );
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn main() {
    let seconds = env_number("LOAD_SECONDS", 5);
    let clients = env_number("LOAD_CLIENTS", 4) as usize;
    println!("POST /v1/search, sample corpus per tenant, {seconds} s per row, keep-alive clients");
    println!(
        "| tenants | clients | req/s | p50 ms | p99 ms | errors | server CPU µs/req | server-only req/s | idle RSS MiB | loaded RSS MiB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for tenants in [1, 10] {
        run(tenants, clients.max(tenants.min(10)), seconds);
    }
}
