//! The vector index at 10k and 100k vectors of 384 dimensions: build rate, search p50/p99 and
//! recall@10 against exact search, per storage precision and search width; snapshot size and
//! save/load time.
//!
//! ```text
//! cargo bench --bench vector_index            # 10k and 100k
//! VECTORS=10000 cargo bench --bench vector_index
//! ```
//! Data: unit vectors in 1,000 clusters (each point = its centre + isotropic noise of equal
//! norm, so a point's cosine to its centre is about 0.7, like sentence embeddings of related
//! texts); the product's default embedder over generated record texts (12-word sentences from
//! the sample corpus's vocabulary); and for contrast uniformly random unit vectors, the worst
//! case for any graph index. Queries are 500 fresh points drawn the same way. Figures go to
//! BENCHMARKS.md.

use std::time::{Duration, Instant};

use vector_service_runtime::backends::hashing_embedder;
use vector_service_sqlite::vector_index::{IndexParams, Quantization, VectorIndex};

const DIMENSIONS: usize = 384;
const QUERIES: usize = 500;
const K: usize = 10;

/// splitmix64: a deterministic generator, so every run measures the same vectors.
struct Generator(u64);

impl Generator {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Approximately normal (sum of uniforms), enough for isotropic directions.
    fn normal(&mut self) -> f32 {
        (0..4)
            .map(|_| (self.next() >> 11) as f32 / (1u64 << 53) as f32)
            .sum::<f32>()
            - 2.0
    }

    fn direction(&mut self) -> Vec<f32> {
        normalise((0..DIMENSIONS).map(|_| self.normal()).collect())
    }
}

fn normalise(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

#[derive(Clone, Copy)]
enum Shape {
    Clustered,
    HashedText,
    Uniform,
}

/// Words of the sample corpus, for generated record texts.
fn vocabulary() -> Vec<String> {
    let corpus = include_str!("../examples/data/records.jsonl");
    let mut words: Vec<String> = corpus
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| w.len() > 2)
        .map(str::to_lowercase)
        .collect();
    words.sort();
    words.dedup();
    words
}

fn points(shape: Shape, count: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut centres_rng = Generator(42);
    let centres: Vec<Vec<f32>> = (0..1_000).map(|_| centres_rng.direction()).collect();
    let words = vocabulary();
    let mut rng = Generator(seed);
    (0..count)
        .map(|_| match shape {
            Shape::Uniform => rng.direction(),
            Shape::HashedText => {
                let text: Vec<&str> = (0..12)
                    .map(|_| words[(rng.next() % words.len() as u64) as usize].as_str())
                    .collect();
                hashing_embedder::embed(&text.join(" "))
            }
            Shape::Clustered => {
                let centre = &centres[(rng.next() % centres.len() as u64) as usize];
                let noise = rng.direction();
                normalise(centre.iter().zip(&noise).map(|(c, n)| c + n).collect())
            }
        })
        .collect()
}

fn exact_top(data: &[Vec<f32>], query: &[f32]) -> Vec<u64> {
    let mut scored: Vec<(f32, u64)> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (v.iter().zip(query).map(|(a, b)| a * b).sum(), i as u64))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(K).map(|(_, key)| key).collect()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at].as_secs_f64() * 1e3
}

/// Adds from two threads (usearch's add is thread-safe), as a rebuild would.
fn build(data: &[Vec<f32>], params: IndexParams) -> (VectorIndex, Duration) {
    let index = VectorIndex::new(DIMENSIONS, params).expect("an index");
    index.reserve(data.len()).expect("capacity");
    let started = Instant::now();
    let half = data.len() / 2;
    std::thread::scope(|scope| {
        for (offset, chunk) in [(0, &data[..half]), (half, &data[half..])] {
            let index = &index;
            scope.spawn(move || {
                for (i, vector) in chunk.iter().enumerate() {
                    index.upsert((offset + i) as u64, vector).expect("add");
                }
            });
        }
    });
    (index, started.elapsed())
}

fn measure(index: &VectorIndex, queries: &[Vec<f32>], truth: &[Vec<u64>]) -> (f64, f64, f64) {
    let mut latencies = Vec::with_capacity(queries.len());
    let mut found = 0;
    for (query, truth) in queries.iter().zip(truth) {
        let started = Instant::now();
        let hits = index.search(query, K, None).expect("search");
        latencies.push(started.elapsed());
        found += hits.iter().filter(|(key, _)| truth.contains(key)).count();
    }
    latencies.sort();
    (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        found as f64 / (queries.len() * K) as f64,
    )
}

fn run(shape: Shape, label: &str, count: usize, precisions: &[Quantization]) {
    let data = points(shape, count, 1);
    let queries = points(shape, QUERIES, 2);
    let truth: Vec<Vec<u64>> = queries.iter().map(|q| exact_top(&data, q)).collect();
    println!("\n{label}, {count} x {DIMENSIONS}, {QUERIES} queries, k = {K}");
    println!(
        "{:<6} {:>12} {:>5} {:>9} {:>9} {:>10}",
        "store", "build vec/s", "ef", "p50 ms", "p99 ms", "recall@10"
    );
    for &quantization in precisions {
        let params = IndexParams {
            exact_below: 0,
            quantization,
            ..IndexParams::default()
        };
        let (index, took) = build(&data, params);
        let rate = count as f64 / took.as_secs_f64();
        for ef in [32, 64, 96, 128, 256] {
            let tuned = IndexParams {
                expansion_search: ef,
                ..params
            };
            let dir = std::env::temp_dir().join(format!("vs-bench-index-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("a temp dir");
            let path = dir.join("index.usearch");
            index.save(&path).expect("save");
            let reloaded = VectorIndex::restore(&path, DIMENSIONS, tuned).expect("restore");
            let (p50, p99, recall) = measure(&reloaded, &queries, &truth);
            println!(
                "{:<6} {rate:>12.0} {ef:>5} {p50:>9.3} {p99:>9.3} {recall:>10.3}",
                format!("{quantization:?}")
            );
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    let params = IndexParams {
        exact_below: usize::MAX,
        ..IndexParams::default()
    };
    let (exact, _) = build(&data, params);
    let (p50, p99, recall) = measure(&exact, &queries, &truth);
    println!(
        "{:<6} {:>12} {:>5} {p50:>9.3} {p99:>9.3} {recall:>10.3}",
        "exact", "-", "-"
    );
    let dir = std::env::temp_dir().join(format!("vs-bench-snap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let path = dir.join("index.usearch");
    let (index, _) = build(&data, IndexParams::default());
    let started = Instant::now();
    index.save(&path).expect("save");
    let saved = started.elapsed();
    let started = Instant::now();
    VectorIndex::restore(&path, DIMENSIONS, IndexParams::default()).expect("restore");
    let loaded = started.elapsed();
    let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!(
        "default params snapshot: {:.1} MiB, save {:.0} ms, load {:.0} ms",
        bytes as f64 / (1 << 20) as f64,
        saved.as_secs_f64() * 1e3,
        loaded.as_secs_f64() * 1e3
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn main() {
    let sizes: Vec<usize> = match std::env::var("VECTORS") {
        Ok(value) => value
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .expect("VECTORS is a comma-separated list of sizes")
            })
            .collect(),
        Err(_) => vec![10_000, 100_000],
    };
    let all = [Quantization::F32, Quantization::F16, Quantization::I8];
    for &count in &sizes {
        run(Shape::Clustered, "clustered", count, &all);
    }
    if let Some(&largest) = sizes.iter().max() {
        let default = [IndexParams::default().quantization];
        run(
            Shape::HashedText,
            "hashing embedder over generated texts",
            largest,
            &default,
        );
        run(
            Shape::Uniform,
            "uniform random (worst case)",
            largest,
            &default,
        );
    }
}
