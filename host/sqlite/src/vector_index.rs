//! Nearest-neighbour search over embeddings: an HNSW graph (usearch) for large sets, exact
//! search for small ones. The index is a cache of the database that owns the vectors: it can
//! be snapshotted to one file and rebuilt or replayed from the database at any time.
//!
//! usearch was chosen after measuring (docs/decisions/0010-vector-index.md, `cargo bench --bench vector_index`):
//! it is maintained, persists to a single file, removes and replaces keys in place, filters
//! during the graph walk and stores vectors quantised; hnsw_rs cannot delete, and
//! hannoy/arroy build far slower here.

use std::path::Path;

use usearch::{IndexOptions, MetricKind, ScalarKind};

/// How vectors are stored inside the index (queries are always `f32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantization {
    /// Full precision.
    F32,
    /// Half precision: half the memory, recall within noise of `F32` for cosine.
    F16,
    /// One byte per dimension: a quarter of the memory, a little recall lost.
    I8,
}

/// Tuning for the graph and the exact-search cut-over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexParams {
    /// Neighbours per node (HNSW `M`).
    pub connectivity: usize,
    /// Candidate list while inserting (`efConstruction`).
    pub expansion_add: usize,
    /// Candidate list while searching (`ef`); raised to `k` when `k` is larger.
    pub expansion_search: usize,
    /// Below this many vectors every search is exact.
    pub exact_below: usize,
    /// Storage precision.
    pub quantization: Quantization,
}

impl Default for IndexParams {
    /// Measured at 100k x 384 (BENCHMARKS.md, "Vector index"): recall@10 >= 0.95 with p50 well under 2 ms.
    fn default() -> Self {
        Self {
            connectivity: 16,
            expansion_add: 128,
            expansion_search: 96,
            exact_below: 5_000,
            quantization: Quantization::F16,
        }
    }
}

/// Why the index refused an operation.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// A vector of the wrong length was offered.
    #[error("vector has {found} dimensions, the index has {expected}")]
    Dimensions {
        /// The index's dimensions.
        expected: usize,
        /// The vector's length.
        found: usize,
    },
    /// usearch reported an error (allocation, file I/O, corrupt snapshot).
    #[error("vector index: {0}")]
    Native(String),
}

fn native(error: impl std::fmt::Display) -> IndexError {
    IndexError::Native(error.to_string())
}

/// An HNSW index of `u64` keys to vectors under cosine similarity.
pub struct VectorIndex {
    index: usearch::Index,
    params: IndexParams,
    dimensions: usize,
}

impl VectorIndex {
    /// An empty index for vectors of `dimensions`.
    pub fn new(dimensions: usize, params: IndexParams) -> Result<Self, IndexError> {
        let options = IndexOptions {
            dimensions,
            metric: MetricKind::Cos,
            quantization: match params.quantization {
                Quantization::F32 => ScalarKind::F32,
                Quantization::F16 => ScalarKind::F16,
                Quantization::I8 => ScalarKind::I8,
            },
            connectivity: params.connectivity,
            expansion_add: params.expansion_add,
            expansion_search: params.expansion_search,
            multi: false,
        };
        let index = usearch::Index::new(&options).map_err(native)?;
        Ok(Self {
            index,
            params,
            dimensions,
        })
    }

    /// An index loaded from a snapshot written by [`VectorIndex::save`] with the same
    /// dimensions and parameters.
    pub fn restore(
        path: &Path,
        dimensions: usize,
        params: IndexParams,
    ) -> Result<Self, IndexError> {
        let restored = Self::new(dimensions, params)?;
        restored
            .index
            .load(&path.to_string_lossy())
            .map_err(native)?;
        if restored.index.dimensions() != dimensions {
            return Err(IndexError::Dimensions {
                expected: dimensions,
                found: restored.index.dimensions(),
            });
        }
        // Loading resets the search width to the file's; ours is the configured one.
        restored
            .index
            .change_expansion_search(params.expansion_search);
        Ok(restored)
    }

    /// Write a snapshot atomically: to a temporary file, then renamed over `path`.
    pub fn save(&self, path: &Path) -> Result<(), IndexError> {
        let partial = path.with_extension("partial");
        self.index
            .save(&partial.to_string_lossy())
            .map_err(native)?;
        std::fs::rename(&partial, path).map_err(native)
    }

    /// Vectors currently in the index.
    pub fn len(&self) -> usize {
        self.index.size()
    }

    /// Bytes the index holds in memory (usearch's own count).
    pub fn memory_bytes(&self) -> usize {
        self.index.memory_usage()
    }

    /// Whether the index holds no vectors.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Insert `key`, replacing its vector if it is already present.
    pub fn upsert(&self, key: u64, vector: &[f32]) -> Result<(), IndexError> {
        if vector.len() != self.dimensions {
            return Err(IndexError::Dimensions {
                expected: self.dimensions,
                found: vector.len(),
            });
        }
        if self.index.contains(key) {
            self.index.remove(key).map_err(native)?;
        }
        if self.index.size() + 1 > self.index.capacity() {
            let grown = (self.index.capacity() * 2).max(1024);
            self.index.reserve(grown).map_err(native)?;
        }
        self.index.add(key, vector).map_err(native)
    }

    /// Make room for `additional` more vectors at once (avoids repeated growth in bulk loads).
    pub fn reserve(&self, additional: usize) -> Result<(), IndexError> {
        let wanted = self.index.size() + additional;
        if wanted > self.index.capacity() {
            self.index.reserve(wanted).map_err(native)?;
        }
        Ok(())
    }

    /// Remove `key` if present.
    pub fn remove(&self, key: u64) -> Result<(), IndexError> {
        if self.index.contains(key) {
            self.index.remove(key).map_err(native)?;
        }
        Ok(())
    }

    /// The `k` keys most similar to `query` that pass `keep`, best first, with cosine
    /// similarity. Exact below `exact_below` vectors, approximate above.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        keep: Option<&dyn Fn(u64) -> bool>,
    ) -> Result<Vec<(u64, f32)>, IndexError> {
        if query.len() != self.dimensions {
            return Err(IndexError::Dimensions {
                expected: self.dimensions,
                found: query.len(),
            });
        }
        if k == 0 || self.is_empty() {
            return Ok(Vec::new());
        }
        let small = self.len() < self.params.exact_below;
        let matches = match keep {
            None if small => self.index.exact_search(query, k),
            None => self.index.search(query, k),
            // A small set is scanned whole, then filtered: exact whatever the filter keeps.
            Some(keep) if small => self.index.exact_search(query, self.len()).map(|mut all| {
                let kept: Vec<usize> = (0..all.keys.len())
                    .filter(|&i| keep(all.keys[i]))
                    .take(k)
                    .collect();
                all.distances = kept.iter().map(|&i| all.distances[i]).collect();
                all.keys = kept.iter().map(|&i| all.keys[i]).collect();
                all
            }),
            Some(keep) => self.index.filtered_search(query, k, keep),
        }
        .map_err(native)?;
        Ok(matches
            .keys
            .into_iter()
            .zip(matches.distances)
            .map(|(key, distance)| (key, 1.0 - distance))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(values: &[f32]) -> Vec<f32> {
        let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
        values.iter().map(|v| v / norm).collect()
    }

    #[test]
    fn upsert_replaces_and_remove_deletes() {
        let index = VectorIndex::new(3, IndexParams::default()).unwrap();
        index.upsert(1, &unit(&[1.0, 0.0, 0.0])).unwrap();
        index.upsert(2, &unit(&[0.0, 1.0, 0.0])).unwrap();
        let top = index.search(&unit(&[1.0, 0.1, 0.0]), 1, None).unwrap();
        assert_eq!(top[0].0, 1);
        index.upsert(1, &unit(&[0.0, 0.0, 1.0])).unwrap();
        assert_eq!(index.len(), 2);
        let top = index.search(&unit(&[1.0, 0.1, 0.0]), 1, None).unwrap();
        assert_eq!(top[0].0, 2);
        index.remove(2).unwrap();
        let all = index.search(&unit(&[1.0, 0.1, 0.0]), 5, None).unwrap();
        assert_eq!(all.iter().map(|hit| hit.0).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn filter_and_wrong_dimensions() {
        let index = VectorIndex::new(2, IndexParams::default()).unwrap();
        for key in 0..10u64 {
            index.upsert(key, &unit(&[1.0, key as f32])).unwrap();
        }
        let even = index
            .search(&unit(&[1.0, 0.0]), 3, Some(&|key| key % 2 == 0))
            .unwrap();
        assert_eq!(even.iter().map(|hit| hit.0).collect::<Vec<_>>(), [0, 2, 4]);
        assert!(matches!(
            index.upsert(11, &[1.0, 2.0, 3.0]),
            Err(IndexError::Dimensions {
                expected: 2,
                found: 3
            })
        ));
    }

    #[test]
    fn snapshot_round_trips() {
        let dir = std::env::temp_dir().join(format!("vs-index-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("index.usearch");
        let index = VectorIndex::new(2, IndexParams::default()).unwrap();
        index.upsert(7, &unit(&[1.0, 1.0])).unwrap();
        index.save(&path).unwrap();
        let restored = VectorIndex::restore(&path, 2, IndexParams::default()).unwrap();
        assert_eq!(restored.len(), 1);
        assert_eq!(
            restored.search(&unit(&[1.0, 1.0]), 1, None).unwrap()[0].0,
            7
        );
        assert!(VectorIndex::restore(&path, 3, IndexParams::default()).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
