//! What the component costs: one search through the component against the same backend called
//! directly, on a warm instance and with a fresh instance per call. Backends: five fixed hits
//! (the component's own cost), the in-memory index at two sizes, and the sample corpus in a
//! SQLite file (its BM25 index, the embedded default).
//!
//! ```text
//! cargo bench --bench overhead
//! OVERHEAD_COMPONENT=other.wasm cargo bench --bench overhead   # another build of the guest
//! OVERHEAD_ONLY_FIXED=1 cargo bench --bench overhead   # only the fixed-hits table (profiling)
//! OVERHEAD_ONLY_LOGS=1 cargo bench --bench overhead    # only the logs table
//! OVERHEAD_ONLY_FLOOR=1 cargo bench --bench overhead   # only the floor table
//! ```
//! Prints one table per corpus size: ns per call for each path and its difference from the
//! direct call; then what metering adds, what the server's JSON logs add to a search, and the
//! floor: the product component next to one that only passes the backend's hits through
//! (`guest/floor/`), so that what the wrapper logic costs is told apart from what the
//! canonical ABI and wasmtime cost.
//! Figures go to BENCHMARKS.md.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use vector_service_runtime::api::{
    BackendError, BackendHit, BackendHits, SearchRequest, SearchResponse,
};
use vector_service_runtime::backends::memory::MemoryStore;
use vector_service_runtime::backends::Record;
use vector_service_runtime::backends::{
    Backends, EmbeddingStore, HashingEmbedder, Retriever, Store,
};
use vector_service_runtime::linker::TenantContext;
use vector_service_runtime::{
    Allocation, Plugin, SandboxEngine, ServiceConfig, Telemetry, VectorService, BUILTIN_COMPONENT,
};
use vector_service_sqlite::SqliteStore;

const QUERIES: [&str; 4] = [
    "upload failed",
    "fix failing tests",
    "payment timeout",
    "retry storage write",
];
const MEASURE_FOR: Duration = Duration::from_secs(2);
/// The floor component (`guest/floor/`, built by `scripts/build-component.sh`).
static FLOOR_COMPONENT: &[u8] = include_bytes!("../guest/floor/floor.wasm");
const WORDS: [&str; 12] = [
    "upload", "storage", "timeout", "payment", "retry", "test", "deploy", "queue", "cache",
    "index", "worker", "network",
];

fn corpus(records: usize) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    let origins = [
        ("bots", "bot"),
        ("workflows", "workflow"),
        ("errors", "error"),
        ("code", "code"),
    ];
    for i in 0..records {
        let (db, origin) = origins[i % origins.len()];
        let text = format!(
            "{} {} failed in {} after {} retries",
            WORDS[i % WORDS.len()],
            WORDS[(i / 3) % WORDS.len()],
            WORDS[(i / 7) % WORDS.len()],
            i % 5
        );
        store.insert(
            db,
            Record {
                origin_db: origin.into(),
                id: format!("{origin}-{i}"),
                text,
                metadata: json!({"name": format!("record {i}"), "roi": i % 10}),
            },
        );
    }
    for db in store.databases().expect("memory registry") {
        let ids = store.pending(&db, None, u32::MAX).expect("pending ids");
        store.embed(&db, &ids).expect("embedding");
    }
    store
}

/// A backend with no search cost: five fixed hits with metadata.
struct FixedHits;

impl Retriever for FixedHits {
    fn search(&self, _: &str, top_k: u32, _: &[String]) -> Result<BackendHits, BackendError> {
        let hits = (0..top_k.min(5))
            .map(|i| {
                BackendHit::new(
                    "bot".into(),
                    format!("bot-{i}"),
                    0.9 - f64::from(i) * 0.1,
                    "fixed".into(),
                    json!({"name": format!("bot {i}"), "roi": i}).to_string(),
                )
            })
            .collect();
        Ok(BackendHits {
            hits,
            confidence: None,
        })
    }
}

/// The sample corpus (`examples/data/records.jsonl`) in a fresh SQLite file under `dir`.
fn sample_corpus_in_sqlite(dir: &std::path::Path) -> anyhow::Result<Arc<SqliteStore>> {
    let path = dir.join("bench.sqlite3");
    let store = SqliteStore::open(&path, Arc::new(HashingEmbedder))?;
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/records.jsonl"),
    )?;
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line)?;
        let db = value["db"].as_str().unwrap_or("records").to_string();
        let record: Record = serde_json::from_value(value)?;
        store.upsert(&db, &[record])?;
    }
    Ok(Arc::new(store))
}

/// Mean ns per call of `call`, run for `MEASURE_FOR` after a short warm-up. The row's name goes
/// to stderr as it starts, so a profiler can attach to one row (`perf record -p`).
fn ns_per_call(row: &str, mut call: impl FnMut(usize)) -> f64 {
    eprintln!("measuring: {row}");
    for i in 0..50 {
        call(i);
    }
    let started = Instant::now();
    let mut calls = 0usize;
    while started.elapsed() < MEASURE_FOR {
        for _ in 0..16 {
            call(calls);
            calls += 1;
        }
    }
    started.elapsed().as_nanos() as f64 / calls as f64
}

/// Every service of the bench runs as tenant `bench`.
fn bench_config() -> ServiceConfig {
    ServiceConfig {
        tenant: "bench".into(),
        ..ServiceConfig::default()
    }
}

fn request(i: usize) -> SearchRequest {
    SearchRequest {
        query: QUERIES[i % QUERIES.len()].into(),
        top_k: Some(5),
        similarity_threshold: Some(0.0),
        origins: vec![],
    }
}

fn main() -> anyhow::Result<()> {
    // Another build of the guest (e.g. another opt-level) to compare against the built-in one.
    let component = match std::env::var_os("OVERHEAD_COMPONENT") {
        Some(path) => std::fs::read(&path)?,
        None => BUILTIN_COMPONENT.to_vec(),
    };
    let compile_started = Instant::now();
    let plugin = Arc::new(Plugin::new(SandboxEngine::shared()?.engine(), &component)?);
    println!(
        "component: {} bytes, compiled in {:.0} ms",
        plugin.component_size(),
        compile_started.elapsed().as_secs_f64() * 1e3
    );

    let pooled_engine = SandboxEngine::new(Allocation::Pooling {
        instances: 16,
        memory_bytes: 64 << 20,
    })?;
    let pooled_plugin = Arc::new(Plugin::new(pooled_engine.engine(), &component)?);
    println!("pooled engine: {:?}", pooled_engine.allocation());

    // 0 records: a backend that returns five fixed hits, so the table shows the component's
    // own cost; then the in-memory index at two sizes; then SQLite (usize::MAX marks it).
    // Removed when `main` returns.
    let scratch = tempfile::Builder::new().prefix("vs-overhead-").tempdir()?;
    let sqlite = sample_corpus_in_sqlite(scratch.path())?;
    let only_fixed = std::env::var_os("OVERHEAD_ONLY_FIXED").is_some();
    let only_logs = std::env::var_os("OVERHEAD_ONLY_LOGS").is_some();
    let only_floor = std::env::var_os("OVERHEAD_ONLY_FLOOR").is_some();
    if only_floor {
        return floor(&component);
    }
    let corpora: &[usize] = match (only_fixed, only_logs) {
        (_, true) => &[],
        (true, false) => &[0],
        (false, false) => &[0, 100, 1_000, usize::MAX],
    };
    for &records in corpora {
        let store = corpus(records.min(1_000));
        let retriever: Arc<dyn Retriever> = match records {
            0 => Arc::new(FixedHits),
            usize::MAX => sqlite.clone(),
            _ => store.clone(),
        };
        let mut backends = Backends::memory(store);
        backends.retriever = retriever.clone();
        let config = bench_config();
        let pooled = VectorService::new(
            pooled_plugin.clone(),
            backends.clone(),
            Telemetry::new(),
            config.clone(),
        );
        let service = VectorService::new(plugin.clone(), backends, Telemetry::new(), config);
        let mut warm = service.instance()?;

        let direct = ns_per_call("direct", |i| {
            black_box(
                retriever
                    .search(QUERIES[i % QUERIES.len()], 5, &[])
                    .expect("direct search"),
            );
        });
        let warm_ns = ns_per_call("warm", |i| {
            black_box(warm.search("bench", &request(i)).expect("warm search"));
        });
        let fresh = ns_per_call("fresh", |i| {
            black_box(service.search("bench", &request(i)).expect("fresh search"));
        });
        let instantiate = ns_per_call("instantiate", |_| {
            black_box(service.instance().expect("instance"));
        });
        let fresh_pooled = ns_per_call("fresh pooled", |i| {
            black_box(
                pooled
                    .search("bench", &request(i))
                    .expect("fresh pooled search"),
            );
        });
        let instantiate_pooled = ns_per_call("instantiate pooled", |_| {
            black_box(pooled.instance().expect("pooled instance"));
        });

        let backend = match records {
            0 => "a backend returning 5 fixed hits".to_string(),
            usize::MAX => {
                "top 5 of the 300-record sample corpus in SQLite (BM25 index)".to_string()
            }
            _ => format!("top 5 of {records} records (384-d hashing embedder)"),
        };
        println!(
            "\nsearch, {backend}, mean of {} s each:",
            MEASURE_FOR.as_secs()
        );
        println!("| path | ns/call | minus direct |");
        println!("|---|---:|---:|");
        println!("| backend called directly | {direct:.0} | - |");
        println!(
            "| component, warm instance | {warm_ns:.0} | {:+.0} |",
            warm_ns - direct
        );
        println!(
            "| component, fresh instance per call | {fresh:.0} | {:+.0} |",
            fresh - direct
        );
        println!(
            "| component, fresh instance per call, pooling allocator | {fresh_pooled:.0} | {:+.0} |",
            fresh_pooled - direct
        );
        println!("| instantiate only (fresh store + instance) | {instantiate:.0} | |");
        println!("| instantiate only, pooling allocator | {instantiate_pooled:.0} | |");
    }
    if only_fixed {
        return Ok(());
    }
    if !only_logs {
        metering(&plugin)?;
    }
    logs(&plugin)?;
    if !only_logs {
        floor(&component)?;
    }
    Ok(())
}

/// One measured path of the floor table: a call, given its number.
type Timed<'a> = Box<dyn FnMut(usize) + 'a>;

/// The product component against the floor component on the fixed-hits backend: a warm call,
/// a fresh pooled instance per call and a pooled instantiation, each over the direct call.
/// Every row runs in short windows, alternating with the others and in turned order, so that
/// the VM's drift hits all rows alike.
fn floor(component: &[u8]) -> anyhow::Result<()> {
    const WINDOW: Duration = Duration::from_millis(100);
    const ROUNDS: usize = 20;
    let pooled_engine = SandboxEngine::new(Allocation::Pooling {
        instances: 16,
        memory_bytes: 64 << 20,
    })?;
    let mut backends = Backends::memory(Arc::new(MemoryStore::new()));
    backends.retriever = Arc::new(FixedHits);
    let services = [component, FLOOR_COMPONENT].map(|bytes| -> anyhow::Result<_> {
        let plugin = Arc::new(Plugin::new(SandboxEngine::shared()?.engine(), bytes)?);
        let pooled = Arc::new(Plugin::new(pooled_engine.engine(), bytes)?);
        let service =
            |plugin| VectorService::new(plugin, backends.clone(), Telemetry::new(), bench_config());
        Ok((service(plugin), service(pooled)))
    });
    let [product, floor] = services;
    let ((product, product_pooled), (floor, floor_pooled)) = (product?, floor?);
    let (mut product_warm, mut floor_warm) = (product.instance()?, floor.instance()?);
    // Proof that the floor does a search's work: the same hits as the product component.
    let hits = |response: SearchResponse| response.hits;
    anyhow::ensure!(
        hits(product_warm.search("bench", &request(0))?)
            == hits(floor_warm.search("bench", &request(0))?),
        "the floor component's hits differ from the product component's"
    );

    let direct = FixedHits;
    // The paths, in the order of `ns` below.
    let mut paths: [Timed<'_>; 7] = [
        Box::new(|i| {
            black_box(
                direct
                    .search(QUERIES[i % QUERIES.len()], 5, &[])
                    .expect("direct"),
            );
        }),
        Box::new(|i| {
            black_box(product_warm.search("bench", &request(i)).expect("warm"));
        }),
        Box::new(|i| {
            black_box(floor_warm.search("bench", &request(i)).expect("warm"));
        }),
        Box::new(|i| {
            black_box(product_pooled.search("bench", &request(i)).expect("fresh"));
        }),
        Box::new(|i| {
            black_box(floor_pooled.search("bench", &request(i)).expect("fresh"));
        }),
        Box::new(|_| {
            black_box(product_pooled.instance().expect("instance"));
        }),
        Box::new(|_| {
            black_box(floor_pooled.instance().expect("instance"));
        }),
    ];
    eprintln!("measuring: the floor");
    // Per path: elapsed ns and calls, over the counted rounds.
    let mut totals = [(0u128, 0u64); 7];
    for round in 0..=ROUNDS {
        // Round 0 warms every path up and is not counted; odd rounds run in reverse order.
        let mut order: Vec<usize> = (0..paths.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for path in order {
            let started = Instant::now();
            let mut calls = 0;
            while started.elapsed() < WINDOW {
                for _ in 0..16 {
                    paths[path](calls);
                    calls += 1;
                }
            }
            if round > 0 {
                totals[path].0 += started.elapsed().as_nanos();
                totals[path].1 += calls as u64;
            }
        }
    }
    let ns: Vec<f64> = totals
        .iter()
        .map(|&(elapsed, calls)| elapsed as f64 / calls as f64)
        .collect();
    println!(
        "\nthe floor: the product component against one that only passes the fixed hits \
         through (guest/floor, {} bytes), ns per call, {ROUNDS} alternating windows of \
         {} ms per row (the backend called directly: {:.0} ns):",
        FLOOR_COMPONENT.len(),
        WINDOW.as_millis(),
        ns[0]
    );
    println!("| path | product | floor | product - floor |");
    println!("|---|---:|---:|---:|");
    for (label, product, floor) in [
        ("warm instance, over direct", ns[1] - ns[0], ns[2] - ns[0]),
        (
            "fresh pooled instance per call, over direct",
            ns[3] - ns[0],
            ns[4] - ns[0],
        ),
        ("pooled instantiate and drop", ns[5], ns[6]),
    ] {
        println!(
            "| {label} | {product:.0} | {floor:.0} | {:+.0} |",
            product - floor
        );
    }
    Ok(())
}

/// What metering adds to a call, each piece timed alone: the per-instance lookup of the
/// tenant's handles, the call's extra clock read, and the counter updates (one thread, then
/// two threads of one tenant, which share the counters' cache lines).
fn metering(plugin: &Plugin) -> anyhow::Result<()> {
    let config = bench_config();
    let context = TenantContext::new(
        Backends::memory(Arc::new(MemoryStore::new())),
        Telemetry::new(),
        &config,
    );
    let component = plugin.short_digest();
    let lookup = ns_per_call("metering lookup", |_| {
        black_box(context.usage(component));
    });
    let usage = context.usage(component);
    let clock = ns_per_call("metering clock", |_| {
        black_box(Instant::now().elapsed());
    });
    let record = |i: usize| {
        usage.instantiated();
        usage.call(
            Duration::from_nanos(20_000),
            Duration::from_nanos(i as u64 % 5_000),
        );
        usage.memory_peak(1 << 20);
    };
    let updates = ns_per_call("metering updates", record);
    let contended = std::thread::scope(|scope| {
        let other = scope.spawn(|| ns_per_call("metering, other thread", record));
        let here = ns_per_call("metering, this thread", record);
        (here + other.join().expect("the other thread")) / 2.0
    });
    println!(
        "\nmetering, per call, mean of {} s each:",
        MEASURE_FOR.as_secs()
    );
    println!("| piece | ns/call |");
    println!("|---|---:|");
    println!("| the tenant's handles for the instance's component (per instance) | {lookup:.0} |");
    println!("| the call's clock read | {clock:.0} |");
    println!("| counter updates (call, instantiation, memory peak), one thread | {updates:.0} |");
    println!("| the same, two threads of one tenant at once | {contended:.0} |");
    println!(
        "| total on a fresh instance (lookup + clock + updates, contended) | {:.0} |",
        lookup + clock + contended
    );
    Ok(())
}

/// What the server's JSON logs add to a search: the same warm fixed-hits search without a
/// subscriber and with the server's own log stack (`vector_service_json_logs::subscriber`,
/// info level, lines written by its thread into a sink), in alternating short windows so that
/// the VM's drift hits both alike. Wall time is the calling thread's; CPU is the whole
/// process's, so the writer thread's work counts too. The stack is in force as a scoped
/// default (the server installs it globally), which if anything adds a little to its cost.
fn logs(plugin: &Arc<Plugin>) -> anyhow::Result<()> {
    const WINDOW: Duration = Duration::from_millis(100);
    const ROUNDS: usize = 20;
    let mut backends = Backends::memory(Arc::new(MemoryStore::new()));
    backends.retriever = Arc::new(FixedHits);
    let config = bench_config();
    let service = VectorService::new(plugin.clone(), backends, Telemetry::new(), config);
    let mut warm = service.instance()?;
    let lines = LineCount::default();
    let (subscriber, _, flush_on_exit) = vector_service_json_logs::subscriber(
        lines.clone(),
        tracing_subscriber::EnvFilter::new("info"),
    )?;
    let dispatch = tracing::Dispatch::new(subscriber);
    // The first call is made under the stack: tracing caches, per callsite, whether anyone
    // listens when the callsite is first reached, and with no subscriber in force that would
    // read "never" for the whole run (the server installs its stack before any call).
    tracing::dispatcher::with_default(&dispatch, || warm.search("bench", &request(0)))?;
    eprintln!("measuring: logs off and on");
    // [off, on]: wall ns, CPU ns, calls.
    let mut totals = [(0u128, 0u64, 0u64); 2];
    // Every call made under the stack, for the lines-per-call proof.
    let mut calls_logged = 1;
    for round in 0..=ROUNDS {
        // Round 0 warms both up and is not counted; the order alternates between rounds.
        for on in [round % 2 == 1, round % 2 == 0] {
            let cpu_before = process_cpu_ns()?;
            let started = Instant::now();
            let mut calls = 0;
            let mut window = || {
                while started.elapsed() < WINDOW {
                    for _ in 0..16 {
                        black_box(warm.search("bench", &request(calls)).expect("warm search"));
                        calls += 1;
                    }
                }
            };
            if on {
                tracing::dispatcher::with_default(&dispatch, window);
                calls_logged += calls as u64;
            } else {
                window();
            }
            if round > 0 {
                let total = &mut totals[usize::from(on)];
                total.0 += started.elapsed().as_nanos();
                total.1 += process_cpu_ns()? - cpu_before;
                total.2 += calls as u64;
            }
        }
    }
    drop(flush_on_exit);
    // Proof that the "on" windows logged: every line of every call reached the sink.
    let lines_per_call = lines.0.load(Ordering::Relaxed) as f64 / calls_logged as f64;
    let per_call = |(wall, cpu, calls): (u128, u64, u64)| {
        (wall as f64 / calls as f64, cpu as f64 / calls as f64)
    };
    let (off, on) = (per_call(totals[0]), per_call(totals[1]));
    println!(
        "\nlogs, a warm fixed-hits search (its start and end lines), {ROUNDS} alternating windows of {} ms each:",
        WINDOW.as_millis()
    );
    println!("| logs | wall ns/call | process CPU ns/call |");
    println!("|---|---:|---:|");
    println!("| off (no subscriber) | {:.0} | {:.0} |", off.0, off.1);
    println!(
        "| JSON at info, the server's stack into a sink | {:.0} | {:.0} |",
        on.0, on.1
    );
    println!(
        "| the lines' cost ({lines_per_call:.2} lines per call) | {:+.0} | {:+.0} |",
        on.0 - off.0,
        on.1 - off.1
    );
    Ok(())
}

/// A sink that counts the lines written to it.
#[derive(Clone, Default)]
struct LineCount(Arc<AtomicU64>);

impl std::io::Write for LineCount {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let lines = bytes.iter().filter(|&&byte| byte == b'\n').count();
        self.0.fetch_add(lines as u64, Ordering::Relaxed);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// CPU time of the process's live threads, in ns (the first field of each thread's
/// `/proc/self/task/*/schedstat`).
fn process_cpu_ns() -> anyhow::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task")? {
        let stat = std::fs::read_to_string(task?.path().join("schedstat"))?;
        let on_cpu = stat.split_whitespace().next().unwrap_or_default();
        total += on_cpu
            .parse::<u64>()
            .map_err(|error| anyhow::anyhow!("schedstat {on_cpu:?}: {error}"))?;
    }
    Ok(total)
}
