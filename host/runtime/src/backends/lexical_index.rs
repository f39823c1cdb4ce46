//! An in-memory inverted index ranking records by BM25: the lexical search of the embedded
//! stores. A store keeps it as a cache of its records (the store stays the truth) and feeds it
//! every change; a query walks only the postings of its own terms, so its cost grows with how
//! many records contain those terms, not with the corpus.
//!
//! Terms are runs of letters and digits, lowercased and stemmed (Snowball English, the Porter
//! family FTS5 and PostgreSQL's `english` configuration use too). Scores are Okapi BM25 with
//! k1 = 1.2, b = 0.75 and the non-negative idf `ln(1 + (N - n + 0.5) / (n + 0.5))`.
//!
//! A search also says how well its best record matches, on a scale that does not depend on the
//! corpus: its score over the query's ceiling, the most any record could score (each query term
//! at BM25's limit `idf * (k1 + 1)`, a term no record contains at the idf of a term one record
//! contains: at its own idf, an absent word would outweigh a present one 4.8 times in a
//! one-record store). A record that holds every query term often scores near 1; one that shares
//! a common word with an off-topic query, near 0 (docs/decisions/0016-absolute-confidence.md).

mod encoding;

use std::collections::HashMap;

use rust_stemmers::{Algorithm, Stemmer};

pub use encoding::{DecodeError, ENCODING_VERSION};

use super::ranking::query_words;
use crate::api::BackendError;
use crate::deadline;

const BM25_K1: f32 = 1.2;
const BM25_B: f32 = 0.75;

/// Removed slots tolerated before postings are rewritten without them.
const COMPACT_AFTER_DEAD: usize = 1024;

/// Words whose term the index remembers, so that a word seen before is not stemmed again:
/// stemming was the largest share of building an index (29% of a cold 100,000-record
/// search's samples, `perf record`; docs/decisions/0013-residency.md).
const REMEMBERED_WORDS: usize = 1 << 16;

/// Marks a removed slot in [`LexicalIndex::slot_origins`].
const REMOVED: u32 = u32::MAX;

/// One indexed record.
#[derive(Debug)]
struct Document {
    key: u64,
    id: Box<str>,
    /// Distinct term ids, so removal can find the record's postings.
    terms: Box<[u32]>,
}

/// One scored record of [`LexicalIndex::search`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LexicalHit {
    /// The key the record was added under.
    pub key: u64,
    /// BM25 score (higher is better).
    pub score: f64,
}

/// What [`LexicalIndex::search`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct LexicalAnswer {
    /// The best records, best first.
    pub hits: Vec<LexicalHit>,
    /// The best record's score over the query's ceiling, in [0, 1]; 0 when nothing matched.
    pub confidence: f64,
}

/// BM25 over a changing set of records, each under a caller-chosen `u64` key.
pub struct LexicalIndex {
    stemmer: Stemmer,
    terms: HashMap<Box<str>, u32>,
    /// Per term id: `(slot, term frequency)`, in slot order.
    postings: Vec<Vec<(u32, u32)>>,
    /// Per slot; `None` once removed (slots are not reused until compaction).
    documents: Vec<Option<Document>>,
    /// Per slot, beside `documents` so scoring reads two dense arrays: terms in the text,
    /// repeats included (BM25's document length), and the origin id (`REMOVED` once removed).
    slot_lengths: Vec<u32>,
    slot_origins: Vec<u32>,
    slots: HashMap<u64, u32>,
    origins: Vec<Box<str>>,
    total_length: u64,
    /// Lowercased words already stemmed, with their term (at most [`REMEMBERED_WORDS`]).
    word_terms: HashMap<Box<str>, u32>,
    /// Bytes of the terms' text, postings entries and documents' ids and term lists: kept
    /// as records come and go, so [`LexicalIndex::heap_bytes`] costs nothing.
    counted: Counted,
}

/// What [`LexicalIndex::heap_bytes`] adds up, kept current by every change.
#[derive(Debug, Default, Clone, Copy)]
struct Counted {
    term_bytes: usize,
    word_bytes: usize,
    postings: usize,
    document_bytes: usize,
}

impl std::fmt::Debug for LexicalIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LexicalIndex")
            .field("records", &self.len())
            .field("terms", &self.terms.len())
            .finish()
    }
}

impl Default for LexicalIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl LexicalIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self {
            stemmer: Stemmer::create(Algorithm::English),
            terms: HashMap::new(),
            postings: Vec::new(),
            documents: Vec::new(),
            slot_lengths: Vec::new(),
            slot_origins: Vec::new(),
            slots: HashMap::new(),
            origins: Vec::new(),
            total_length: 0,
            word_terms: HashMap::new(),
            counted: Counted::default(),
        }
    }

    /// The heap the index holds, estimated from what it counts (terms, postings, records)
    /// without walking it: what a memory budget charges for it. Spare capacity of its
    /// vectors is not counted, so the true figure may be up to twice the postings' share.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        const MAP_ENTRY_OVERHEAD: usize = 8;
        let terms = (self.terms.len() + self.word_terms.len())
            * (size_of::<Box<str>>() + size_of::<u32>() + MAP_ENTRY_OVERHEAD)
            + self.counted.term_bytes
            + self.counted.word_bytes;
        let postings = self.postings.len() * size_of::<Vec<(u32, u32)>>()
            + self.counted.postings * size_of::<(u32, u32)>();
        let slots = self.documents.len() * (size_of::<Option<Document>>() + 2 * size_of::<u32>())
            + self.counted.document_bytes
            + self.slots.len() * (size_of::<u64>() + size_of::<u32>() + MAP_ENTRY_OVERHEAD);
        terms + postings + slots
    }

    /// How many records are indexed.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no record is indexed.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The terms of `text`, in order, as the index counts them.
    pub fn terms<'a>(&'a self, text: &'a str) -> impl Iterator<Item = String> + 'a {
        query_words(text).map(|word| self.stemmer.stem(&word.to_lowercase()).into_owned())
    }

    /// Index `text` under `key`, replacing what `key` held.
    pub fn upsert(&mut self, key: u64, id: &str, origin: &str, text: &str) {
        self.remove(key);
        // Term ids sorted, then counted by runs: no hashing per word.
        let mut ids: Vec<u32> = query_words(text).map(|word| self.term_of(word)).collect();
        let length = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        ids.sort_unstable();
        let slot = self.documents.len() as u32;
        let mut terms: Vec<u32> = Vec::new();
        for run in ids.chunk_by(|a, b| a == b) {
            let term_id = run[0];
            terms.push(term_id);
            self.postings[term_id as usize].push((slot, run.len() as u32));
        }
        let origin = self.origin_id(origin);
        self.counted.postings += terms.len();
        self.counted.document_bytes += id.len() + terms.len() * std::mem::size_of::<u32>();
        self.documents.push(Some(Document {
            key,
            id: id.into(),
            terms: terms.into_boxed_slice(),
        }));
        self.slot_lengths.push(length);
        self.slot_origins.push(origin);
        self.slots.insert(key, slot);
        self.total_length += u64::from(length);
    }

    /// The term id of `word` (made if new): remembered for words seen before, else stemmed.
    fn term_of(&mut self, word: &str) -> u32 {
        let lower = word.to_lowercase();
        if let Some(&term_id) = self.word_terms.get(lower.as_str()) {
            return term_id;
        }
        let stemmed = self.stemmer.stem(&lower).into_owned();
        let term_id = match self.terms.get(stemmed.as_str()) {
            Some(&term_id) => term_id,
            None => {
                let term_id = self.postings.len() as u32;
                self.counted.term_bytes += stemmed.len();
                self.terms.insert(stemmed.into_boxed_str(), term_id);
                self.postings.push(Vec::new());
                term_id
            }
        };
        if self.word_terms.len() < REMEMBERED_WORDS {
            self.counted.word_bytes += lower.len();
            self.word_terms.insert(lower.into_boxed_str(), term_id);
        }
        term_id
    }

    /// Forget `key`; whether it was indexed.
    pub fn remove(&mut self, key: u64) -> bool {
        let Some(slot) = self.slots.remove(&key) else {
            return false;
        };
        if let Some(document) = self.documents[slot as usize].take() {
            self.counted.postings -= document.terms.len();
            self.counted.document_bytes -=
                document.id.len() + document.terms.len() * std::mem::size_of::<u32>();
            for &term_id in document.terms.iter() {
                let postings = &mut self.postings[term_id as usize];
                if let Ok(at) = postings.binary_search_by_key(&slot, |&(s, _)| s) {
                    postings.remove(at);
                }
            }
            self.total_length -= u64::from(self.slot_lengths[slot as usize]);
            self.slot_lengths[slot as usize] = 0;
            self.slot_origins[slot as usize] = REMOVED;
        }
        let dead = self.documents.len() - self.slots.len();
        if dead > COMPACT_AFTER_DEAD && dead > self.slots.len() {
            self.compact();
        }
        true
    }

    /// Renumber the live records' slots densely (postings keep their slot order).
    fn compact(&mut self) {
        let mut renumbered = vec![u32::MAX; self.documents.len()];
        let live = self.slots.len();
        let (mut documents, mut lengths, mut origins) = (
            Vec::with_capacity(live),
            Vec::with_capacity(live),
            Vec::with_capacity(live),
        );
        for (old, document) in self.documents.drain(..).enumerate() {
            if let Some(document) = document {
                renumbered[old] = documents.len() as u32;
                self.slots.insert(document.key, documents.len() as u32);
                documents.push(Some(document));
                lengths.push(self.slot_lengths[old]);
                origins.push(self.slot_origins[old]);
            }
        }
        self.documents = documents;
        self.slot_lengths = lengths;
        self.slot_origins = origins;
        for postings in &mut self.postings {
            for (slot, _) in postings.iter_mut() {
                *slot = renumbered[*slot as usize];
            }
        }
    }

    fn origin_id(&mut self, origin: &str) -> u32 {
        match self.origins.iter().position(|known| &**known == origin) {
            Some(at) => at as u32,
            None => {
                self.origins.push(origin.into());
                (self.origins.len() - 1) as u32
            }
        }
    }

    /// The best `top_k` records for `query` among `origins` (all when empty), best first, ties
    /// by id, and the confidence of the best. Document frequencies count every origin. Stops
    /// with an error once the current call's deadline passed (checked per query term).
    pub fn search(
        &self,
        query: &str,
        top_k: usize,
        origins: &[String],
    ) -> Result<LexicalAnswer, BackendError> {
        let records = self.slots.len();
        if records == 0 || top_k == 0 {
            return Ok(LexicalAnswer {
                hits: Vec::new(),
                confidence: 0.0,
            });
        }
        let idf = |with: f32| (1.0 + (records as f32 - with + 0.5) / (with + 0.5)).ln();
        let mut ceiling = 0f32;
        let allowed: Vec<bool> = self
            .origins
            .iter()
            .map(|origin| origins.is_empty() || origins.iter().any(|o| **o == **origin))
            .collect();
        let average_length = (self.total_length as f32 / records as f32).max(1.0);
        // BM25's denominator is tf + k1 * (1 - b + b * length / average), split so the loop
        // does one multiply-add per posting.
        let base = BM25_K1 * (1.0 - BM25_B);
        let per_length = BM25_K1 * BM25_B / average_length;
        let mut scores = vec![0f32; self.documents.len()];
        let mut touched: Vec<u32> = Vec::new();
        for term in self.terms(query) {
            deadline::check()?;
            let Some(&term_id) = self.terms.get(term.as_str()) else {
                ceiling += idf(1.0) * (BM25_K1 + 1.0);
                continue;
            };
            let postings = &self.postings[term_id as usize];
            let weight = idf(postings.len() as f32) * (BM25_K1 + 1.0);
            ceiling += weight;
            for &(slot, frequency) in postings {
                let origin = self.slot_origins[slot as usize];
                if origin == REMOVED || !allowed[origin as usize] {
                    continue;
                }
                let frequency = frequency as f32;
                let length = self.slot_lengths[slot as usize] as f32;
                let score = &mut scores[slot as usize];
                if *score == 0.0 {
                    touched.push(slot);
                }
                *score += weight * frequency / (frequency + base + per_length * length);
            }
        }
        let document = |slot: u32| {
            self.documents[slot as usize]
                .as_ref()
                .expect("scored slots are live")
        };
        let better = |a: &u32, b: &u32| {
            scores[*b as usize]
                .total_cmp(&scores[*a as usize])
                .then_with(|| document(*a).id.cmp(&document(*b).id))
        };
        if touched.len() > top_k {
            touched.select_nth_unstable_by(top_k - 1, better);
            touched.truncate(top_k);
        }
        touched.sort_unstable_by(better);
        let best = touched.first().map_or(0.0, |slot| scores[*slot as usize]);
        Ok(LexicalAnswer {
            hits: touched
                .into_iter()
                .map(|slot| LexicalHit {
                    key: document(slot).key,
                    score: f64::from(scores[slot as usize]),
                })
                .collect(),
            confidence: if ceiling > 0.0 {
                f64::from(best / ceiling).clamp(0.0, 1.0)
            } else {
                0.0
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(records: &[(u64, &str, &str)]) -> LexicalIndex {
        let mut index = LexicalIndex::new();
        for (key, origin, text) in records {
            index.upsert(*key, &format!("r{key}"), origin, text);
        }
        index
    }

    fn keys(hits: &[LexicalHit]) -> Vec<u64> {
        hits.iter().map(|hit| hit.key).collect()
    }

    #[test]
    fn ranks_by_bm25_with_stemming_and_ties_by_id() {
        let index = index(&[
            (1, "bot", "the upload failed twice"),
            (
                2,
                "bot",
                "uploads are failing: upload retried, upload failed",
            ),
            (3, "error", "nothing related here"),
            (4, "error", "the upload failed twice"),
        ]);
        let hits = index.search("Upload FAILURES", 10, &[]).unwrap().hits;
        // Record 2 repeats both stems; 1 and 4 tie and order by id.
        assert_eq!(keys(&hits), vec![2, 1, 4]);
        assert!(hits[0].score > hits[1].score);
        assert_eq!(hits[1].score, hits[2].score);
        assert!(index
            .search("unrelated words only", 10, &[])
            .unwrap()
            .hits
            .is_empty());
        assert_eq!(keys(&index.search("upload", 1, &[]).unwrap().hits), vec![2]);
    }

    #[test]
    fn confidence_is_absolute_high_for_a_full_match_and_low_for_a_shared_common_word() {
        let mut records: Vec<(u64, &str, &str)> = (0..50)
            .map(|key| (key, "error", "the service failed on the host"))
            .collect();
        records.push((
            50,
            "error",
            "certificate expired on the gateway certificate",
        ));
        let index = index(&records);
        let confidence = |query: &str| index.search(query, 5, &[]).unwrap().confidence;

        // Every rare term of the query, one of them twice: near the ceiling, yet not above it.
        let on_topic = confidence("gateway certificate expired");
        assert!((0.4..=1.0).contains(&on_topic), "{on_topic}");
        // Scaling to the best hit would give 1.0 here; the common word alone says little.
        let off_topic = confidence("sourdough bread failed to rise");
        assert!(off_topic < 0.1, "{off_topic}");
        assert!(!index
            .search("sourdough bread failed to rise", 5, &[])
            .unwrap()
            .hits
            .is_empty());
        // Nothing matched at all.
        assert_eq!(confidence("sourdough"), 0.0);
    }

    #[test]
    fn filters_by_origin_after_counting_every_origin() {
        let index = index(&[(1, "bot", "disk full"), (2, "error", "disk full")]);
        let hits = index
            .search("disk", 10, &["error".to_string()])
            .unwrap()
            .hits;
        assert_eq!(keys(&hits), vec![2]);
        assert!(index
            .search("disk", 10, &["workflow".to_string()])
            .unwrap()
            .hits
            .is_empty());
    }

    #[test]
    fn replacing_and_removing_update_postings_and_lengths() {
        let mut index = index(&[(1, "bot", "alpha beta"), (2, "bot", "beta gamma")]);
        index.upsert(1, "r1", "bot", "gamma delta");
        assert_eq!(
            keys(&index.search("alpha", 10, &[]).unwrap().hits),
            Vec::<u64>::new()
        );
        assert_eq!(
            keys(&index.search("gamma", 10, &[]).unwrap().hits),
            vec![1, 2]
        );
        assert!(index.remove(2));
        assert!(!index.remove(2));
        assert_eq!(
            keys(&index.search("gamma beta", 10, &[]).unwrap().hits),
            vec![1]
        );
        assert_eq!(index.len(), 1);
        assert_eq!(index.total_length, 2);
    }

    #[test]
    fn compaction_keeps_answers() {
        let mut index = LexicalIndex::new();
        for key in 0..3000u64 {
            index.upsert(
                key,
                &format!("{key:05}"),
                "bot",
                &format!("common word{}", key % 7),
            );
        }
        for key in 0..2500u64 {
            index.remove(key);
        }
        assert!(index.documents.len() < 3000, "compacted");
        assert_eq!(index.len(), 500);
        let hits = index.search("word3", 1000, &[]).unwrap().hits;
        assert_eq!(hits.len(), (2500..3000).filter(|k| k % 7 == 3).count());
        assert!(hits.iter().all(|hit| hit.key >= 2500 && hit.key % 7 == 3));
    }

    #[test]
    fn the_heap_count_follows_records_in_and_out() {
        let mut index = LexicalIndex::new();
        let empty = index.heap_bytes();
        for key in 0..1000u64 {
            index.upsert(
                key,
                &format!("{key:05}"),
                "bot",
                &format!("upload number {key}"),
            );
        }
        let full = index.heap_bytes();
        // 1,000 records of three terms each: at least their postings and ids.
        assert!(full > empty + 1000 * (3 * 8 + 5), "{empty} -> {full}");
        for key in 0..1000u64 {
            index.remove(key);
        }
        let emptied = index.heap_bytes();
        // Postings and documents go; the vocabulary and the slots (until compaction) stay.
        assert!(emptied < full - 1000 * (3 * 8 + 5), "{full} -> {emptied}");
        assert_eq!(index.counted.postings, 0);
        assert_eq!(index.counted.document_bytes, 0);
    }
}
