//! The corpora the relevance and confidence benches read: the sample corpus and its labelled
//! queries (in the repository), and BEIR SciFact (from `../shared/data/scifact`, when there).

use std::collections::{HashMap, HashSet};

use anyhow::Context as _;
use serde_json::Value;
use vector_service_runtime::backends::Record;

/// A document: its id and its text.
pub struct Doc {
    pub id: String,
    pub text: String,
}

impl Doc {
    /// The document as a store's record of origin `doc`, with no metadata.
    pub fn record(&self) -> Record {
        Record {
            origin_db: "doc".into(),
            id: self.id.clone(),
            text: self.text.clone(),
            metadata: Value::Object(Default::default()),
        }
    }
}

/// A labelled query.
pub struct Query {
    pub text: String,
    pub relevant: HashSet<String>,
}

pub fn read_jsonl(path: &str) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .map(|l| serde_json::from_str(l).context("a JSON line"))
        .collect()
}

/// The sample corpus (`examples/data/records.jsonl`) and its labelled queries, under `root`.
pub fn sample_corpus(root: &str) -> anyhow::Result<(Vec<Doc>, Vec<Query>)> {
    let docs = read_jsonl(&format!("{root}/examples/data/records.jsonl"))?
        .into_iter()
        .map(|r| Doc {
            id: r["id"].as_str().unwrap_or_default().into(),
            text: r["text"].as_str().unwrap_or_default().into(),
        })
        .collect();
    let queries = read_jsonl(&format!("{root}/examples/data/queries.jsonl"))?
        .into_iter()
        .map(|q| Query {
            text: q["query"].as_str().unwrap_or_default().into(),
            relevant: q["relevant"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
        })
        .collect();
    Ok((docs, queries))
}

/// BEIR SciFact (test split): title + abstract per document, claims as queries.
pub fn scifact(dir: &str) -> anyhow::Result<(Vec<Doc>, Vec<Query>)> {
    let docs = read_jsonl(&format!("{dir}/corpus.jsonl"))?
        .into_iter()
        .map(|d| Doc {
            id: d["_id"].as_str().unwrap_or_default().into(),
            text: format!(
                "{} {}",
                d["title"].as_str().unwrap_or_default(),
                d["text"].as_str().unwrap_or_default()
            ),
        })
        .collect();
    let qrels =
        std::fs::read_to_string(format!("{dir}/qrels_test.tsv")).context("reading qrels")?;
    let mut relevant: HashMap<String, HashSet<String>> = HashMap::new();
    for line in qrels.lines().skip(1) {
        let mut fields = line.split('\t');
        if let (Some(query), Some(doc)) = (fields.next(), fields.next()) {
            relevant.entry(query.into()).or_default().insert(doc.into());
        }
    }
    let queries = read_jsonl(&format!("{dir}/queries.jsonl"))?
        .into_iter()
        .filter_map(|q| {
            let relevant = relevant.remove(q["_id"].as_str()?)?;
            Some(Query {
                text: q["text"].as_str()?.into(),
                relevant,
            })
        })
        .collect();
    Ok((docs, queries))
}
