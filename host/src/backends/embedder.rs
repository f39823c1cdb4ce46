//! Text embedders behind one trait. The version string is stored with every vector: a store
//! re-embeds a record whose vector was made by another embedder (or from other text).

use super::hashing_embedder;
use crate::api::BackendError;

/// Turns texts into vectors of a fixed dimension.
pub trait Embedder: Send + Sync {
    /// Names the model and every setting that changes its vectors.
    fn version(&self) -> &str;
    /// Length of every vector it returns.
    fn dimensions(&self) -> usize;
    /// One vector per text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, BackendError>;
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
