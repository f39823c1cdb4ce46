//! SQLite against PostgreSQL + pgvector, through the same `Store` trait: ingest, backfill
//! (embedding every record, plus bringing SQLite's vector index up to date), what a new process
//! pays to open the store with its indexes current, then lexical and vector search latency
//! (p50/p99) and vector recall@10 against an exact search.
//!
//! ```text
//! cargo bench --bench backends                      # 100,000 records
//! BACKENDS_RECORDS=20000 cargo bench --bench backends
//! BACKENDS_SKIP_POSTGRES=1 cargo bench --bench backends   # SQLite only
//! ```
//! Records are synthetic: each draws most words from one of 200 topics, so the hashing
//! embedder's vectors have cluster structure, as real text does. PostgreSQL is the test
//! server (`vector_service_testkit::postgres_server`: fetched by scripts/fetch-pgserver.sh, fsync off).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use vector_service_postgres::PostgresStore;
use vector_service_runtime::api::BackendHits;
use vector_service_runtime::backends::hashing_embedder::cosine;
use vector_service_runtime::backends::{Embedder, HashingEmbedder, Record, SearchMode, Store};
use vector_service_sqlite::SqliteStore;
use vector_service_testkit::postgres_server;

const TOPICS: usize = 200;
const QUERIES: usize = 200;
const BATCH: usize = 1_000;

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn word(i: usize) -> String {
    format!("w{i:x}")
}

/// `topic`'s words (12 of them) plus a few from anywhere.
fn text(rng: &mut Rng, topic: usize) -> String {
    let mut words: Vec<String> = (0..10).map(|_| word(topic * 12 + rng.below(12))).collect();
    words.extend((0..4).map(|_| word(rng.below(TOPICS * 12))));
    words.join(" ")
}

fn corpus(records: usize) -> Vec<Record> {
    let mut rng = Rng(0x5eed);
    (0..records)
        .map(|i| {
            let topic = rng.below(TOPICS);
            Record {
                origin_db: ["error", "bot", "workflow"][i % 3].to_string(),
                id: format!("r{i:07}"),
                text: text(&mut rng, topic),
                metadata: json!({"topic": topic}),
            }
        })
        .collect()
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3
}

struct Row {
    backend: &'static str,
    ingest: f64,
    backfill: f64,
    lexical: (f64, f64),
    /// A lexical search as the result cache makes it: the generation read first, then the
    /// search (the server before 5123bf0)...
    lexical_after_generation: (f64, f64),
    /// ...and the search that reads the generation on its way where the store can.
    lexical_reading_generation: (f64, f64),
    /// A new process's cost: open the store and bring its indexes current.
    index_build: f64,
    vector: (f64, f64),
    recall: f64,
}

fn timed_searches(store: &dyn Store, queries: &[String]) -> (Vec<Vec<String>>, (f64, f64)) {
    timed(queries, |query| {
        store.search(query, 10, &[]).expect("search")
    })
}

/// Ids found per query and the (p50, p99) latency in ms of `search` over `queries`.
fn timed(
    queries: &[String],
    search: impl Fn(&str) -> BackendHits,
) -> (Vec<Vec<String>>, (f64, f64)) {
    let mut latencies = Vec::with_capacity(queries.len());
    let mut results = Vec::with_capacity(queries.len());
    for query in queries {
        let started = Instant::now();
        let hits = search(query).hits;
        latencies.push(started.elapsed());
        results.push(hits.into_iter().map(|hit| hit.id).collect());
    }
    latencies.sort();
    (
        results,
        (percentile(&latencies, 0.5), percentile(&latencies, 0.99)),
    )
}

fn run(
    backend: &'static str,
    records: &[Record],
    queries: &[String],
    exact: &[Vec<String>],
    open: impl Fn(SearchMode) -> Arc<dyn Store>,
) -> Row {
    let store = open(SearchMode::Lexical);
    let started = Instant::now();
    for batch in records.chunks(BATCH) {
        store.upsert("bench", batch).expect("upsert");
    }
    let ingest = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut after: Option<String> = None;
    loop {
        let pending = store
            .pending("bench", after.as_deref(), 500)
            .expect("pending");
        let Some(last) = pending.last().cloned() else {
            break;
        };
        store.embed("bench", &pending).expect("embed");
        after = Some(last);
    }
    let vector_store = open(SearchMode::Vector);
    vector_store.sync_index().expect("index");
    let backfill = started.elapsed().as_secs_f64();
    // One warm-up pass (the lexical index is built on a process's first lexical search).
    timed_searches(store.as_ref(), &queries[..10]);
    let (_, lexical) = timed_searches(store.as_ref(), queries);
    let after_generation = |query: &str| {
        std::hint::black_box(store.generation().expect("generation"));
        store.search(query, 10, &[]).expect("search")
    };
    let (_, lexical_after_generation) = timed(queries, after_generation);
    let (_, lexical_reading_generation) = timed(queries, |query| {
        match store.search_reading_generation(query, 10, &[]) {
            Some(found) => found.expect("search").0,
            None => after_generation(query),
        }
    });
    let started = Instant::now();
    let reopened = open(SearchMode::Lexical);
    reopened.sync_index().expect("indexes");
    let index_build = started.elapsed().as_secs_f64();
    // One warm-up pass (index load, caches), then the measured one.
    timed_searches(vector_store.as_ref(), &queries[..10]);
    let (found, vector) = timed_searches(vector_store.as_ref(), queries);
    let hits: usize = found
        .iter()
        .zip(exact)
        .map(|(found, exact)| exact.iter().filter(|id| found.contains(id)).count())
        .sum();
    Row {
        backend,
        ingest,
        backfill,
        lexical,
        lexical_after_generation,
        lexical_reading_generation,
        index_build,
        vector,
        recall: hits as f64 / (exact.len() * 10) as f64,
    }
}

fn main() {
    let records: usize = std::env::var("BACKENDS_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let corpus = corpus(records);
    let mut rng = Rng(0xfeed);
    let queries: Vec<String> = (0..QUERIES)
        .map(|_| {
            let topic = rng.below(TOPICS);
            (0..3)
                .map(|_| word(topic * 12 + rng.below(12)))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    // Exact top 10 by cosine, the reference for recall.
    let texts: Vec<&str> = corpus.iter().map(|r| r.text.as_str()).collect();
    let vectors = HashingEmbedder.embed(&texts).expect("embedding");
    let exact: Vec<Vec<String>> = queries
        .iter()
        .map(|query| {
            let q = HashingEmbedder
                .embed(&[query.as_str()])
                .expect("embedding")
                .remove(0);
            let mut scored: Vec<(f64, usize)> = vectors
                .iter()
                .enumerate()
                .map(|(i, v)| (cosine(&q, v), i))
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            scored[..10]
                .iter()
                .map(|(_, i)| corpus[*i].id.clone())
                .collect()
        })
        .collect();

    let dir = std::env::temp_dir().join(format!("vs-backends-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let path = dir.join("bench.sqlite3");
    let sqlite = run(
        "SQLite (in-memory BM25 index + usearch HNSW)",
        &corpus,
        &queries,
        &exact,
        |mode| {
            Arc::new(
                SqliteStore::open(&path, Arc::new(HashingEmbedder))
                    .expect("sqlite")
                    .with_search_mode(mode),
            )
        },
    );
    // BACKENDS_SKIP_POSTGRES=1 measures SQLite alone (no PostgreSQL server needed).
    let skip_postgres = std::env::var_os("BACKENDS_SKIP_POSTGRES").is_some();
    let postgres = (!skip_postgres).then(|| {
        let url = postgres_server::postgres().url.clone();
        run(
            "PostgreSQL 18 (tsvector GIN + pgvector HNSW)",
            &corpus,
            &queries,
            &exact,
            |mode| {
                Arc::new(
                    PostgresStore::connect(&url, "bench", Arc::new(HashingEmbedder), 4)
                        .expect("postgres")
                        .with_search_mode(mode),
                )
            },
        )
    });
    println!("{records} records, {QUERIES} queries, hashing embedder (384-d), top 10");
    println!("| backend | ingest s | backfill s | reopen + indexes s | lexical p50 ms | lexical p99 ms | generation, then lexical p50 ms | lexical reading the generation p50 ms | vector p50 ms | vector p99 ms | vector recall@10 |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in std::iter::once(sqlite).chain(postgres) {
        println!(
            "| {} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {:.3} | {:.3} | {:.2} | {:.2} | {:.3} |",
            row.backend,
            row.ingest,
            row.backfill,
            row.index_build,
            row.lexical.0,
            row.lexical.1,
            row.lexical_after_generation.0,
            row.lexical_reading_generation.0,
            row.vector.0,
            row.vector.1,
            row.recall
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
