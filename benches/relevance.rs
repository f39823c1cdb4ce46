//! Relevance of each retrieval the product offers, measured through the product's own paths:
//! a real SQLite store searched with `lexical` (its BM25 index), `vector` (its vector index: exact below
//! 5,000 vectors, the f16 HNSW graph above) and `hybrid` (RRF over both at the store's own
//! depth), for each embedder (hashing; all-MiniLM-L6-v2 when scripts/fetch-minilm.sh has fetched
//! it). Next to them, labelled as references: this bench's own BM25, exact cosine over every
//! vector, and RRF at depth 100 over those.
//!
//! ```text
//! cargo bench --bench relevance
//! ```
//! Queries and their relevant record ids: `examples/data/queries.jsonl` (labelled for this
//! project over `examples/data/records.jsonl`), then BEIR SciFact from `../shared/data/scifact`
//! when that directory exists. Prints recall@5, precision@5, nDCG@10 and recall@100.
//! MiniLM vectors of a corpus are cached under `target/bench-cache/` (SciFact takes minutes).

use std::collections::{HashMap, HashSet};

use std::sync::Arc;

use vector_service_embed_minilm::MiniLmEmbedder;
use vector_service_runtime::backends::hashing_embedder::{cosine, fnv1a, FNV_OFFSET};
use vector_service_runtime::backends::{
    Embedder, EmbeddingStore, HashingEmbedder, Record, Retriever, SearchMode, Store,
};
use vector_service_sqlite::SqliteStore;

mod support;
use support::corpora::{sample_corpus, scifact, Doc, Query};

fn tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

/// Okapi BM25 (k1 = 1.2, b = 0.75) over whitespace-and-punctuation tokens.
struct Bm25 {
    docs: Vec<HashMap<String, f64>>,
    lengths: Vec<f64>,
    document_frequency: HashMap<String, f64>,
    average_length: f64,
}

impl Bm25 {
    fn new(docs: &[Doc]) -> Self {
        let mut document_frequency = HashMap::new();
        let mut term_counts = Vec::new();
        let mut lengths = Vec::new();
        for doc in docs {
            let terms = tokens(&doc.text);
            lengths.push(terms.len() as f64);
            let mut counts: HashMap<String, f64> = HashMap::new();
            for term in terms {
                *counts.entry(term).or_default() += 1.0;
            }
            for term in counts.keys() {
                *document_frequency.entry(term.clone()).or_default() += 1.0;
            }
            term_counts.push(counts);
        }
        let average_length = lengths.iter().sum::<f64>() / lengths.len().max(1) as f64;
        Self {
            docs: term_counts,
            lengths,
            document_frequency,
            average_length,
        }
    }

    fn score(&self, query: &str, index: usize) -> f64 {
        let n = self.docs.len() as f64;
        tokens(query)
            .iter()
            .map(|term| {
                let tf = self.docs[index].get(term).copied().unwrap_or(0.0);
                let df = self.document_frequency.get(term).copied().unwrap_or(0.0);
                let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
                idf * tf * 2.2
                    / (tf + 1.2 * (0.25 + 0.75 * self.lengths[index] / self.average_length))
            })
            .sum()
    }
}

/// Document indexes, best first.
fn ranking(scores: Vec<f64>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
}

/// Reciprocal-rank fusion of partial rankings over `documents` documents; documents in no
/// ranking come last.
fn rrf(rankings: &[Vec<usize>], documents: usize) -> Vec<usize> {
    let mut fused = vec![0.0; documents];
    for ranking in rankings {
        for (rank, &doc) in ranking.iter().enumerate() {
            fused[doc] += 1.0 / (60.0 + rank as f64 + 1.0);
        }
    }
    ranking(fused)
}

fn ndcg_at(k: usize, ranked: &[&str], relevant: &HashSet<String>) -> f64 {
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, id)| relevant.contains(**id))
        .map(|(i, _)| 1.0 / (i as f64 + 2.0).log2())
        .sum();
    let ideal: f64 = (0..k.min(relevant.len()))
        .map(|i| 1.0 / (i as f64 + 2.0).log2())
        .sum();
    dcg / ideal
}

/// Vectors of `docs`, read from the cache when this embedder already embedded this corpus.
fn corpus_vectors(corpus: &str, embedder: &dyn Embedder, docs: &[Doc]) -> Vec<Vec<f32>> {
    // Keyed by corpus content too, so an edited corpus is embedded again.
    let content = docs.iter().fold(FNV_OFFSET, |h, d| {
        fnv1a(fnv1a(h, d.text.as_bytes()), d.id.as_bytes())
    });
    let name: String = format!("{corpus}-{content:016x}-{}", embedder.version())
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '-' })
        .collect();
    let cache = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/bench-cache")
        .join(name);
    let dims = embedder.dimensions();
    if let Ok(bytes) = std::fs::read(&cache) {
        if bytes.len() == docs.len() * dims * 4 {
            return bytes
                .chunks_exact(dims * 4)
                .map(|row| {
                    row.chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect()
                })
                .collect();
        }
    }
    let started = std::time::Instant::now();
    let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
    let vectors = embedder.embed(&texts).expect("embedding the corpus");
    println!(
        "embedded {} documents with {} in {:.1} s ({:.1} documents/s)",
        docs.len(),
        embedder.version(),
        started.elapsed().as_secs_f64(),
        docs.len() as f64 / started.elapsed().as_secs_f64()
    );
    if let Some(dir) = cache.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let bytes: Vec<u8> = vectors
        .iter()
        .flatten()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let _ = std::fs::write(&cache, bytes);
    vectors
}

/// An embedder's name, its document vectors and its query vectors.
type Dense<'a> = (&'a str, Vec<Vec<f32>>, Vec<Vec<f32>>);

/// Rank every document for every query each way and print the table.
fn evaluate(
    title: &str,
    corpus: &str,
    docs: &[Doc],
    queries: &[Query],
    embedders: &[(&str, Arc<dyn Embedder>)],
) {
    let bm25 = Bm25::new(docs);
    let sqlite = product_store(docs, Arc::new(HashingEmbedder), SearchMode::Lexical);
    let dense: Vec<Dense> = embedders
        .iter()
        .map(|(name, embedder)| {
            let texts: Vec<&str> = queries.iter().map(|q| q.text.as_str()).collect();
            let query_vectors = embedder.embed(&texts).expect("embedding the queries");
            (
                *name,
                corpus_vectors(corpus, embedder.as_ref(), docs),
                query_vectors,
            )
        })
        .collect();
    // The product's vector and hybrid search, per embedder, over the vectors computed above.
    let product_modes: Vec<(SqliteStore, SqliteStore)> = embedders
        .iter()
        .zip(&dense)
        .map(|((_, embedder), (_, vectors, _))| {
            let precomputed = || -> Arc<dyn Embedder> {
                Arc::new(Precomputed {
                    vectors: docs
                        .iter()
                        .zip(vectors)
                        .map(|(doc, vector)| (doc.text.clone(), vector.clone()))
                        .collect(),
                    inner: embedder.clone(),
                })
            };
            (
                product_store(docs, precomputed(), SearchMode::Vector),
                product_store(docs, precomputed(), SearchMode::Hybrid),
            )
        })
        .collect();
    let mut methods: Vec<String> = vec![
        "reference: BM25 (this bench's own)".into(),
        "lexical: SQLite + BM25 index (the product's default)".into(),
    ];
    for (name, _, _) in &dense {
        methods.push(format!("vector: {name} (the product's index)"));
        methods.push(format!("hybrid: BM25 index + {name} (the product's RRF)"));
        methods.push(format!("reference: {name}, exact cosine"));
        methods.push(format!("reference: BM25 index + {name}, RRF at depth 100"));
    }
    let index_of: HashMap<&str, usize> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.as_str(), i))
        .collect();
    let mut latencies = Vec::new();
    let mut totals: HashMap<String, [f64; 4]> = HashMap::new();
    for (query_index, query) in queries.iter().enumerate() {
        let lexical = ranking(
            (0..docs.len())
                .map(|i| bm25.score(&query.text, i))
                .collect(),
        );
        let started = std::time::Instant::now();
        let product = sqlite
            .search(&query.text, 100, &[])
            .map(|found| found.hits)
            .unwrap_or_default();
        latencies.push(started.elapsed());
        let product: Vec<usize> = product
            .iter()
            .filter_map(|hit| index_of.get(hit.id.as_str()).copied())
            .collect();
        let mut rankings: Vec<Vec<usize>> = vec![lexical, product.clone()];
        let ranked_by = |store: &SqliteStore| -> Vec<usize> {
            store
                .search(&query.text, 100, &[])
                .map(|found| found.hits)
                .unwrap_or_default()
                .iter()
                .filter_map(|hit| index_of.get(hit.id.as_str()).copied())
                .collect()
        };
        for ((_, vectors, query_vectors), (vector_store, hybrid_store)) in
            dense.iter().zip(&product_modes)
        {
            rankings.push(ranked_by(vector_store));
            rankings.push(ranked_by(hybrid_store));
            let q = &query_vectors[query_index];
            let by_cosine = ranking(vectors.iter().map(|v| cosine(q, v)).collect());
            let mut fused = rrf(
                &[
                    product.clone(),
                    by_cosine[..100.min(by_cosine.len())].to_vec(),
                ],
                docs.len(),
            );
            fused.truncate(100);
            rankings.push(by_cosine);
            rankings.push(fused);
        }
        for (name, order) in methods.iter().zip(&rankings) {
            let ranked: Vec<&str> = order.iter().map(|&i| docs[i].id.as_str()).collect();
            let found = |k: usize| {
                ranked
                    .iter()
                    .take(k)
                    .filter(|id| query.relevant.contains(**id))
                    .count() as f64
            };
            let entry = totals.entry(name.clone()).or_default();
            entry[0] += found(5) / query.relevant.len() as f64;
            entry[1] += found(5) / 5.0;
            entry[2] += ndcg_at(10, &ranked, &query.relevant);
            entry[3] += found(100) / query.relevant.len() as f64;
        }
    }
    let n = queries.len() as f64;
    println!(
        "\n{title}: {} queries over {} documents",
        queries.len(),
        docs.len()
    );
    println!("| retrieval | recall@5 | precision@5 | nDCG@10 | recall@100 |");
    println!("|---|---:|---:|---:|---:|");
    for name in &methods {
        let [recall, precision, ndcg, recall100] = totals[name];
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.3} |",
            recall / n,
            precision / n,
            ndcg / n,
            recall100 / n
        );
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    println!(
        "SQLite lexical search latency (top 100): p50 {:.2} ms, p99 {:.2} ms",
        at(0.5),
        at(0.99)
    );
}

/// An embedder that answers from vectors computed earlier (this bench's cache) and asks the
/// real one only for texts it has not seen (the queries): the store's backfill then costs
/// nothing, and its vectors are exactly the real embedder's.
struct Precomputed {
    vectors: HashMap<String, Vec<f32>>,
    inner: Arc<dyn Embedder>,
}

impl Embedder for Precomputed {
    fn version(&self) -> &str {
        self.inner.version()
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }

    fn embed(
        &self,
        texts: &[&str],
    ) -> Result<Vec<Vec<f32>>, vector_service_runtime::api::BackendError> {
        texts
            .iter()
            .map(|text| match self.vectors.get(*text) {
                Some(vector) => Ok(vector.clone()),
                None => Ok(self.inner.embed(&[text])?.remove(0)),
            })
            .collect()
    }
}

/// The documents in a real SQLite store (temporary file), searched the way the product does:
/// with `embedder` (all documents embedded through `EmbeddingStore::embed` and the vector index
/// brought up to date, as a backfill leaves it) and ranked by `mode`.
fn product_store(docs: &[Doc], embedder: Arc<dyn Embedder>, mode: SearchMode) -> SqliteStore {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "vector-service-relevance-{}-{}.sqlite3",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    for suffix in ["", "-wal", "-shm", ".usearch", ".usearch.json"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let store = SqliteStore::open(&path, embedder)
        .expect("a temporary store")
        .with_search_mode(mode);
    let records: Vec<Record> = docs.iter().map(Doc::record).collect();
    store.upsert("docs", &records).expect("ingest");
    if mode != SearchMode::Lexical {
        let ids: Vec<String> = docs.iter().map(|d| d.id.clone()).collect();
        for batch in ids.chunks(500) {
            store
                .embed("docs", batch)
                .expect("embedding through the store");
        }
        store.sync_index().expect("the vector index");
    }
    store
}

fn main() -> anyhow::Result<()> {
    let root = env!("CARGO_MANIFEST_DIR");
    let minilm_dir = MiniLmEmbedder::default_dir();
    let minilm = MiniLmEmbedder::load(&minilm_dir).ok();
    let mut embedders: Vec<(&str, Arc<dyn Embedder>)> =
        vec![("hashing", Arc::new(HashingEmbedder))];
    match minilm {
        Some(model) => embedders.push(("MiniLM", Arc::new(model))),
        None => println!(
            "MiniLM not measured: no model in {} (scripts/fetch-minilm.sh)",
            minilm_dir.display()
        ),
    }
    let (docs, queries) = sample_corpus(root)?;
    evaluate(
        "sample corpus (examples/data)",
        "sample",
        &docs,
        &queries,
        &embedders,
    );
    let scifact_dir = format!("{root}/../shared/data/scifact");
    if std::path::Path::new(&scifact_dir)
        .join("corpus.jsonl")
        .exists()
    {
        let (docs, queries) = scifact(&scifact_dir)?;
        evaluate(
            "BEIR SciFact test (../shared/data/scifact)",
            "scifact",
            &docs,
            &queries,
            &embedders,
        );
    } else {
        println!("\nSciFact not measured: {scifact_dir} is not there (it is not part of the repository).");
    }
    Ok(())
}
