//! Text embedders behind one trait. The version string is stored with every vector: a store
//! re-embeds a record whose vector was made by another embedder (or from other text).

use super::hashing_embedder;
use crate::api::{BackendError, EmbedReport};

/// A stored record's text to embed: its id, its text and the hash of that text (stored with
/// the vector, so a later change of text makes the vector stale).
pub type StoredText = (String, String, i64);

/// `embedding-store.embed` as every SQL store does it, around the store's own read and write:
/// blank texts are dropped, the rest embedded in one call outside any transaction, one vector
/// per text is checked, and `write` stores the batch (in one transaction). Of `requested`
/// ids, those not embedded (missing or blank) count as skipped.
pub fn embed_batch(
    embedder: &dyn Embedder,
    requested: usize,
    texts: Vec<StoredText>,
    write: impl FnOnce(&[StoredText], Vec<Vec<f32>>) -> Result<(), BackendError>,
) -> Result<EmbedReport, BackendError> {
    let texts: Vec<StoredText> = texts
        .into_iter()
        .filter(|(_, text, _)| !text.trim().is_empty())
        .collect();
    let inputs: Vec<&str> = texts.iter().map(|(_, text, _)| text.as_str()).collect();
    let vectors = embedder.embed(&inputs)?;
    if vectors.len() != texts.len() {
        return Err(BackendError::Failed(format!(
            "the embedder returned {} vectors for {} texts",
            vectors.len(),
            texts.len()
        )));
    }
    write(&texts, vectors)?;
    Ok(EmbedReport {
        embedded: texts.len() as u32,
        skipped: requested.saturating_sub(texts.len()) as u32,
    })
}

/// Turns texts into vectors of a fixed dimension.
pub trait Embedder: Send + Sync {
    /// Names the model and every setting that changes its vectors.
    fn version(&self) -> &str;
    /// Length of every vector it returns.
    fn dimensions(&self) -> usize;
    /// One vector per text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, BackendError>;
    /// Whether embedding a query is a few microseconds of this thread's work (no network, no
    /// model): see [`crate::backends::Store::serves_reads_in_process`].
    fn embeds_in_microseconds(&self) -> bool {
        false
    }
}

/// The default: offline, deterministic feature hashing (see [`hashing_embedder`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct HashingEmbedder;

impl Embedder for HashingEmbedder {
    fn version(&self) -> &str {
        "hashing-fnv1a-words-trigrams-384-v1"
    }

    fn dimensions(&self) -> usize {
        hashing_embedder::DIMENSIONS
    }

    fn embeds_in_microseconds(&self) -> bool {
        true
    }

    /// Large batches are split across the machine's cores (each text is independent).
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, BackendError> {
        const PER_THREAD: usize = 64;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if threads == 1 || texts.len() < 2 * PER_THREAD {
            return Ok(texts
                .iter()
                .map(|text| hashing_embedder::embed(text))
                .collect());
        }
        let chunk = texts.len().div_ceil(threads).max(PER_THREAD);
        Ok(std::thread::scope(|scope| {
            let workers: Vec<_> = texts
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|text| hashing_embedder::embed(text))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|worker| {
                    worker
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        }))
    }
}
