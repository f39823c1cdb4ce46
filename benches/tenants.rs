//! Many tenants on one server: what a start costs, what the tenants cost at rest and in use,
//! and how fast a tenant that is not open answers its first search. The release server over
//! generated SQLite stores (one template per size, copied per tenant):
//!
//! - `TENANTS` (10,000) tenants of the sample corpus (300 records);
//! - `MEDIUM` (100) tenants of 10,000 records and `LARGE` (3) of 100,000 (the corpus's
//!   records, numbered);
//!
//! under a memory budget of `BUDGET_MIB` (1,024). It measures the time to the listening line,
//! `/healthz` and `/readyz`; memory, threads and descriptors idle; every small tenant searched
//! once from 4 client threads (latency, errors, the largest RSS seen, what closed); the first
//! search of each medium and large tenant, one at a time (each opens it); and the search rate
//! of one open tenant from 4 client threads (a blocking client: a floor, not the load bench's
//! figure).
//!
//! Then the PostgreSQL row: `PG_TENANTS` (10,000) tenants served by `PG_HOSTS` (3) server
//! processes with a pool of `PG_POOL` (16) connections each, against one PostgreSQL with its
//! default `max_connections = 100`. Each tenant writes one record through one host and finds
//! it through the next (each host migrates the tenant's schema at its first use); it counts
//! errors and wrong answers, and samples the connections PostgreSQL holds every 100 ms.
//!
//! ```text
//! cargo bench --bench tenants
//! TENANTS=2000 MEDIUM=10 LARGE=1 PG_TENANTS=1000 cargo bench --bench tenants
//! TENANTS=0 cargo bench --bench tenants      # the PostgreSQL row only
//! PG_TENANTS=0 cargo bench --bench tenants   # the SQLite rows only
//! ```
//! Figures go to BENCHMARKS.md, "Tenants".

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vector_service_runtime::backends::{HashingEmbedder, Record, Store as _};
use vector_service_sqlite::SqliteStore;
use vector_service_testkit::postgres_server;

mod support;
use support::{descriptors, env_number, rss_kib, server_binary, status_number};

use vector_service_testkit::server_process::ServerProcess;
use vector_service_testkit::tenants_file::api_key_hash as hash;

const CORPUS: &str = include_str!("../examples/data/records.jsonl");
const ADMIN_KEY: &str = "bench-admin";

/// The sample corpus as (database, record).
fn corpus() -> Vec<(String, Record)> {
    CORPUS
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).expect("a corpus line");
            let text = |key: &str| value[key].as_str().unwrap_or_default().to_string();
            let record = Record {
                origin_db: text("origin_db"),
                id: text("id"),
                text: text("text"),
                metadata: value["metadata"].clone(),
            };
            (text("db"), record)
        })
        .collect()
}

/// A store of `count` records at `path`: the corpus's, numbered past its 300.
fn template(path: &Path, count: usize) {
    let corpus = corpus();
    let store = SqliteStore::open(path, Arc::new(HashingEmbedder)).expect("a template store");
    let mut by_db: std::collections::BTreeMap<String, Vec<Record>> = Default::default();
    for n in 0..count {
        let (db, base) = &corpus[n % corpus.len()];
        let mut record = base.clone();
        if n >= corpus.len() {
            record.id = format!("{}-{n}", base.id);
            record.text = format!("{} (case {n})", base.text);
        }
        by_db.entry(db.clone()).or_default().push(record);
    }
    for (db, records) in by_db {
        for chunk in records.chunks(5_000) {
            store.upsert(&db, chunk).expect("template records");
        }
    }
    // As an ingest through the server leaves it: the indexes built and snapshotted.
    store.sync_index().expect("the template's indexes");
}

/// The files a store keeps beside its database: copied with it.
const SNAPSHOTS: [&str; 3] = [".lexical", ".usearch", ".usearch.json"];

/// `count` tenants named `{prefix}{i}`, each a copy of a `records`-record template, with
/// its index snapshots when `snapshots`.
fn tenants(dir: &Path, prefix: &str, count: usize, records: usize, snapshots: bool) -> Vec<String> {
    if count == 0 {
        return Vec::new();
    }
    let template_path = dir.join(format!("template-{prefix}.db"));
    template(&template_path, records);
    let size = |suffix: &str| {
        std::fs::metadata(format!("{}{suffix}", template_path.display()))
            .map_or(0.0, |metadata| metadata.len() as f64 / f64::from(1 << 20))
    };
    eprintln!(
        "a store of {records} records: database {:.1} MiB, lexical snapshot {:.1} MiB",
        size(""),
        size(".lexical")
    );
    (0..count)
        .map(|i| {
            let name = format!("{prefix}{i}");
            let copy = dir.join(format!("{name}.sqlite3"));
            std::fs::copy(&template_path, &copy).expect("a tenant's copy");
            for suffix in SNAPSHOTS.iter().filter(|_| snapshots) {
                let from = PathBuf::from(format!("{}{suffix}", template_path.display()));
                if from.exists() {
                    std::fs::copy(&from, format!("{}{suffix}", copy.display()))
                        .expect("a tenant's snapshot");
                }
            }
            name
        })
        .collect()
}

fn key(name: &str) -> String {
    format!("key-{name}")
}

fn tenants_file(dir: &Path, names: &[String]) -> PathBuf {
    let mut text = format!("admin_key_sha256 = \"{}\"\n", hash(ADMIN_KEY));
    for name in names {
        text += &format!(
            "[[tenant]]\nname = \"{name}\"\napi_key_sha256 = \"{}\"\n",
            hash(&key(name))
        );
    }
    let path = dir.join("tenants.toml");
    std::fs::write(&path, text).expect("the tenants file");
    path
}

fn client() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build(),
    )
}

/// One search as `name`: its status and latency.
fn search(agent: &ureq::Agent, url: &str, name: &str) -> (u16, Duration) {
    let started = Instant::now();
    let status = agent
        .post(format!("{url}/v1/search"))
        .header("Authorization", &format!("Bearer {}", key(name)))
        .header("Content-Type", "application/json")
        .send(r#"{"query": "upload service out of memory", "top_k": 3}"#)
        .map_or(0, |mut response| {
            let _ = response.body_mut().read_to_string();
            response.status().as_u16()
        });
    (status, started.elapsed())
}

fn get(agent: &ureq::Agent, url: &str, path: &str, key: Option<&str>) -> (u16, String) {
    let mut request = agent.get(format!("{url}{path}"));
    if let Some(key) = key {
        request = request.header("Authorization", &format!("Bearer {key}"));
    }
    request.call().map_or((0, String::new()), |mut response| {
        // The admin's /metrics carries every tenant's series: tens of MiB with 10,000.
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .unwrap_or_default();
        (response.status().as_u16(), body)
    })
}

/// A sample of a metric family's value from the admin's `/metrics`.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[at].as_secs_f64() * 1e3
}

/// Search each of `names` once from `threads` client threads; latencies (sorted) and errors.
fn search_each(url: &str, names: &[String], threads: usize) -> (Vec<Duration>, usize) {
    let next = AtomicUsize::new(0);
    let errors = AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::with_capacity(names.len()));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let agent = client();
                let mut own = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(name) = names.get(i) else { break };
                    let (status, took) = search(&agent, url, name);
                    if status != 200 {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    own.push(took);
                }
                latencies.lock().unwrap().extend(own);
            });
        }
    });
    let mut latencies = latencies.into_inner().unwrap();
    latencies.sort();
    (latencies, errors.into_inner())
}

/// The largest RSS of `pid` while `work` runs, sampled every 50 ms.
fn peak_rss_during<T>(pid: u32, work: impl FnOnce() -> T) -> (T, u64) {
    let done = AtomicBool::new(false);
    let peak = AtomicU64::new(0);
    let result = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let result = work();
        done.store(true, Ordering::Relaxed);
        result
    });
    (result, peak.into_inner())
}

fn main() {
    let small = env_number("TENANTS", 10_000) as usize;
    if small > 0 {
        sqlite_tenants(small);
    }
    let pg_tenants = env_number("PG_TENANTS", 10_000) as usize;
    if pg_tenants > 0 {
        if postgres_server::available() {
            postgres_hosts(pg_tenants);
        } else {
            println!(
                "PostgreSQL row skipped: no PostgreSQL binaries (bash scripts/fetch-pgserver.sh)"
            );
        }
    }
}

/// The SQLite rows: start, memory, first searches and one hot tenant.
fn sqlite_tenants(small: usize) {
    let medium = env_number("MEDIUM", 100) as usize;
    let large = env_number("LARGE", 3) as usize;
    let budget_mib = env_number("BUDGET_MIB", 1024);
    let scratch = tempfile::Builder::new()
        .prefix("vs-tenants-")
        .tempdir()
        .expect("a scratch dir");
    let dir = scratch.path();
    let generating = Instant::now();
    let small_names = tenants(dir, "s", small, 300, true);
    let medium_names = tenants(dir, "m", medium, 10_000, true);
    let large_names = tenants(dir, "l", large, 100_000, true);
    // Stores with no snapshot beside them: the first open builds the lexical index.
    let unindexed = env_number("UNINDEXED", 3) as usize;
    let unindexed_medium = tenants(dir, "um", unindexed, 10_000, false);
    let unindexed_large = tenants(dir, "ul", unindexed, 100_000, false);
    let all: Vec<String> = [
        &small_names,
        &medium_names,
        &large_names,
        &unindexed_medium,
        &unindexed_large,
    ]
    .into_iter()
    .flatten()
    .cloned()
    .collect();
    let file = tenants_file(dir, &all);
    eprintln!(
        "generated {} tenants' stores in {:.1} s",
        all.len(),
        generating.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let budget = budget_mib.to_string();
    let server = ServerProcess::start_with_globals(
        server_binary(),
        dir,
        &[],
        &[
            "--tenants".as_ref(),
            file.as_os_str(),
            "--memory-budget-mib".as_ref(),
            budget.as_ref(),
        ],
        None,
    );
    let listening = started.elapsed();
    let (url, pid) = (server.url.clone(), server.child.id());
    let agent = client();
    let healthz = loop {
        if get(&agent, &url, "/healthz", None).0 == 200 {
            break started.elapsed();
        }
    };
    let readyz = loop {
        if get(&agent, &url, "/readyz", None).0 == 200 {
            break started.elapsed();
        }
    };
    std::thread::sleep(Duration::from_secs(2));
    let idle = (
        rss_kib(pid),
        status_number(pid, "Threads"),
        descriptors(pid),
    );

    let ((latencies, errors), peak) = peak_rss_during(pid, || search_each(&url, &small_names, 4));
    let after = (
        rss_kib(pid),
        status_number(pid, "Threads"),
        descriptors(pid),
    );
    let scraping = Instant::now();
    let (_, metrics) = get(&agent, &url, "/metrics", Some(ADMIN_KEY));
    let scrape = (scraping.elapsed(), metrics.len());

    println!(
        "{} tenants ({small} of 300 records, {medium} of 10,000, {large} of 100,000), memory budget {budget_mib} MiB, release server, default descriptor limit",
        all.len()
    );
    println!();
    println!("| start | ms |");
    println!("|---|---:|");
    println!("| listening line | {:.0} |", listening.as_secs_f64() * 1e3);
    println!("| /healthz 200 | {:.0} |", healthz.as_secs_f64() * 1e3);
    println!("| /readyz 200 | {:.0} |", readyz.as_secs_f64() * 1e3);
    println!();
    println!("| state | RSS MiB | threads | descriptors |");
    println!("|---|---:|---:|---:|");
    println!(
        "| idle after start | {:.1} | {} | {} |",
        idle.0 as f64 / 1024.0,
        idle.1,
        idle.2
    );
    println!(
        "| every small tenant searched once: peak | {:.1} | | |",
        peak as f64 / 1024.0
    );
    println!(
        "| after | {:.1} | {} | {} |",
        after.0 as f64 / 1024.0,
        after.1,
        after.2
    );
    println!();
    println!(
        "every small tenant searched once (4 client threads): {} searches, {errors} errors, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; open at the end {}, budget used {:.1} MiB, closed for the budget {}, for the open cap {}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
        metric(&metrics, "vector_service_tenants_open"),
        metric(&metrics, "vector_service_memory_budget_used_bytes") / (1 << 20) as f64,
        metric(
            &metrics,
            r#"vector_service_tenant_evictions_total{reason="budget"}"#
        ),
        metric(
            &metrics,
            r#"vector_service_tenant_evictions_total{reason="open-cap"}"#
        ),
    );
    println!(
        "the admin's /metrics after that: {:.1} MiB in {:.0} ms",
        scrape.1 as f64 / (1 << 20) as f64,
        scrape.0.as_secs_f64() * 1e3
    );
    println!();
    println!("| first search of a tenant not open | tenants | p50 ms | p99 ms | max ms | errors |");
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |label: &str, cold: &[Duration], errors: usize| {
        println!(
            "| {label} | {} | {:.1} | {:.1} | {:.1} | {errors} |",
            cold.len(),
            percentile(cold, 0.5),
            percentile(cold, 0.99),
            percentile(cold, 1.0),
        );
    };
    // The small tenants' searches above were each a first search (4 at a time); the others
    // one at a time.
    row("300 records (4 at a time)", &latencies, errors);
    for (label, names) in [
        ("10,000 records", &medium_names),
        ("100,000 records", &large_names),
        ("10,000 records, no snapshot", &unindexed_medium),
        ("100,000 records, no snapshot", &unindexed_large),
    ] {
        if !names.is_empty() {
            let (cold, errors) = search_each(&url, names, 1);
            row(label, &cold, errors);
        }
    }
    // One tenant open and searched again and again.
    let hot = &small_names[0];
    search(&agent, &url, hot);
    let seconds = env_number("HOT_SECONDS", 5);
    let count = AtomicUsize::new(0);
    let until = Instant::now() + Duration::from_secs(seconds);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let agent = client();
                while Instant::now() < until {
                    if search(&agent, &url, hot).0 == 200 {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    println!();
    println!(
        "one open tenant searched from 4 blocking client threads for {seconds} s: {:.0} req/s",
        count.into_inner() as f64 / seconds as f64
    );
    reloads(&agent, &url, dir, &all);
    drop(server);
}

/// One tenant added to the file and reloaded, then removed and reloaded: how long each
/// reload takes at this tenant count, and that the open tenants stay open.
fn reloads(agent: &ureq::Agent, url: &str, dir: &Path, names: &[String]) {
    let open = || {
        metric(
            &get(agent, url, "/metrics", Some(ADMIN_KEY)).1,
            "vector_service_tenants_open",
        )
    };
    let reload = || {
        let started = Instant::now();
        let answer = agent
            .post(format!("{url}/admin/reload"))
            .header("Authorization", &format!("Bearer {ADMIN_KEY}"))
            .send_empty()
            .map_or_else(
                |error| error.to_string(),
                |mut response| response.body_mut().read_to_string().unwrap_or_default(),
            );
        (started.elapsed(), answer)
    };
    let before = open();
    let mut more = names.to_vec();
    more.push("added".into());
    tenants_file(dir, &more);
    let (added, answer) = reload();
    assert!(answer.contains(r#""added":["added"]"#), "{answer}");
    tenants_file(dir, names);
    let (removed, answer) = reload();
    assert!(answer.contains(r#""removed":["added"]"#), "{answer}");
    println!();
    println!(
        "reload with {} tenants: one added {:.0} ms, one removed {:.0} ms; tenants open before {before}, after {}",
        names.len(),
        added.as_secs_f64() * 1e3,
        removed.as_secs_f64() * 1e3,
        open()
    );
}

/// One request as `name`: its status, answer and latency.
fn call(
    agent: &ureq::Agent,
    url: &str,
    path: &str,
    name: &str,
    body: &str,
) -> (u16, String, Duration) {
    let started = Instant::now();
    let (status, answer) = agent
        .post(format!("{url}{path}"))
        .header("Authorization", &format!("Bearer {}", key(name)))
        .header("Content-Type", "application/json")
        .send(body)
        .map_or((0, String::new()), |mut response| {
            let answer = response.body_mut().read_to_string().unwrap_or_default();
            (response.status().as_u16(), answer)
        });
    (status, answer, started.elapsed())
}

/// The PostgreSQL row: `count` tenants over `PG_HOSTS` hosts sharing one PostgreSQL.
fn postgres_hosts(count: usize) {
    let hosts = env_number("PG_HOSTS", 3) as usize;
    let pool = env_number("PG_POOL", 16);
    let max_connections = 100;
    let database = postgres_server::start_with_max_connections(max_connections);
    let scratch = tempfile::Builder::new()
        .prefix("vs-pg-tenants-")
        .tempdir()
        .expect("a scratch dir");
    let names: Vec<String> = (0..count).map(|i| format!("p{i}")).collect();
    let file = tenants_file(scratch.path(), &names);
    let pool_arg = pool.to_string();
    let servers: Vec<ServerProcess> = (0..hosts)
        .map(|host| {
            // Each host its own data directory: nothing of a tenant's is kept on a host.
            let dir = scratch.path().join(format!("host-{host}"));
            std::fs::create_dir_all(&dir).expect("a host directory");
            ServerProcess::start_with_globals(
                server_binary(),
                &dir,
                &["--database".as_ref(), database.url.as_ref()],
                &[
                    "--tenants".as_ref(),
                    file.as_os_str(),
                    "--postgres-pool-size".as_ref(),
                    pool_arg.as_ref(),
                ],
                None,
            )
        })
        .collect();
    let urls: Vec<String> = servers.iter().map(|server| server.url.clone()).collect();
    let held = || -> usize {
        database
            .psql(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
            )
            .trim()
            .parse()
            .unwrap_or(0)
    };
    let done = AtomicBool::new(false);
    let next = AtomicUsize::new(0);
    let wrong = AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::with_capacity(count));
    let started = Instant::now();
    let most_held = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut most = 0;
            while !done.load(Ordering::SeqCst) {
                most = most.max(held());
                std::thread::sleep(Duration::from_millis(100));
            }
            most
        });
        let clients: Vec<_> = (0..6)
            .map(|_| {
                scope.spawn(|| {
                    let agent = client();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(name) = names.get(i) else { break };
                        let record = format!(
                            r#"{{"db": "errors", "origin_db": "error", "id": "{name}-1", "text": "a record only {name} has"}}"#
                        );
                        let writer = &urls[i % hosts];
                        let reader = &urls[(i + 1) % hosts];
                        let (status, _, _) = call(&agent, writer, "/v1/records", name, &record);
                        let query = format!(r#"{{"query": "record only {name} has", "top_k": 3}}"#);
                        let (found, answer, took) = call(&agent, reader, "/v1/search", name, &query);
                        let hits: serde_json::Value =
                            serde_json::from_str(&answer).unwrap_or_default();
                        let ids: Vec<&str> = hits["hits"]
                            .as_array()
                            .map(|hits| hits.iter().filter_map(|hit| hit["record_id"].as_str()).collect())
                            .unwrap_or_default();
                        if status != 200 || found != 200 || ids != [format!("{name}-1")] {
                            wrong.fetch_add(1, Ordering::Relaxed);
                        }
                        latencies.lock().unwrap().push(took);
                    }
                })
            })
            .collect();
        for client in clients {
            client.join().expect("a client thread");
        }
        done.store(true, Ordering::SeqCst);
        watcher.join().expect("the watcher")
    });
    let elapsed = started.elapsed();
    let mut latencies = latencies.into_inner().unwrap();
    latencies.sort();
    println!();
    println!(
        "{count} tenants on PostgreSQL (max_connections = {max_connections}) served by {hosts} hosts with a pool of {pool} each; each tenant writes one record through one host and searches it through the next (6 client threads)"
    );
    println!();
    println!("| tenants | hosts | pool per host | wall s | errors or wrong answers | search p50 ms | search p99 ms | most connections held |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {count} | {hosts} | {pool} | {:.1} | {} | {:.1} | {:.1} | {most_held} (cap {}) |",
        elapsed.as_secs_f64(),
        wrong.into_inner(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        hosts as u64 * pool,
    );
    for (host, server) in servers.iter().enumerate() {
        let pid = server.child.id();
        println!(
            "host {host}: RSS {:.1} MiB, {} threads, {} descriptors",
            rss_kib(pid) as f64 / 1024.0,
            status_number(pid, "Threads"),
            descriptors(pid)
        );
    }
}
