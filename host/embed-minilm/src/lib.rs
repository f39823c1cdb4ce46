//! A neural sentence embedder: all-MiniLM-L6-v2 (BERT, 6 layers, 384 dimensions) run on the
//! CPU with candle, from a local directory holding `config.json`, `tokenizer.json` and
//! `model.safetensors` (`scripts/fetch-minilm.sh` puts them there). Mean pooling over the
//! attention mask and L2 normalisation, as sentence-transformers does.
//!
//! Not the default: on 2 cores it embeds tens of short texts per second, against tens of
//! thousands for the hashing embedder (BENCHMARKS.md, "Relevance"). Texts are sorted by length and batched
//! so padding stays small; candle's matrix kernels use every core.
#![deny(missing_docs)]

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use vector_service_runtime::api::BackendError;
use vector_service_runtime::backends::Embedder;

/// Tokens kept per text (the model was trained with this limit).
const MAX_TOKENS: usize = 256;
/// Texts per forward pass.
const BATCH: usize = 16;

/// Why the model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum MiniLmError {
    /// A file the model needs is missing or unreadable.
    #[error("{path}: {message} (fetch the model with scripts/fetch-minilm.sh)")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The files were read but do not make a working model.
    #[error("loading the model from {dir}: {message}")]
    Model {
        /// The model directory.
        dir: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// all-MiniLM-L6-v2 on the CPU.
pub struct MiniLmEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dimensions: usize,
    version: String,
}

fn failed(error: impl std::fmt::Display) -> BackendError {
    BackendError::Failed(format!("minilm: {error}"))
}

impl MiniLmEmbedder {
    /// The directories searched when none is given: `$VECTOR_SERVICE_MODEL_DIR`, else
    /// `$XDG_CACHE_HOME/vector-service/models/all-MiniLM-L6-v2`, else under `~/.cache`.
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("VECTOR_SERVICE_MODEL_DIR") {
            return dir.into();
        }
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
            .unwrap_or_else(|| PathBuf::from("."))
            .join("vector-service/models/all-MiniLM-L6-v2")
    }

    /// Load the model from `dir`.
    pub fn load(dir: &Path) -> Result<Self, MiniLmError> {
        let file = |name: &str| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(MiniLmError::File {
                    path,
                    message: "not found".into(),
                })
            }
        };
        let model_error = |message: String| MiniLmError::Model {
            dir: dir.to_path_buf(),
            message,
        };
        let config_path = file("config.json")?;
        let config_text = std::fs::read_to_string(&config_path).map_err(|e| MiniLmError::File {
            path: config_path.clone(),
            message: e.to_string(),
        })?;
        let config: Config =
            serde_json::from_str(&config_text).map_err(|e| model_error(e.to_string()))?;
        let mut tokenizer = Tokenizer::from_file(file("tokenizer.json")?)
            .map_err(|e| model_error(e.to_string()))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| model_error(e.to_string()))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        let weights = file("model.safetensors")?;
        let bytes = std::fs::read(&weights).map_err(|e| MiniLmError::File {
            path: weights.clone(),
            message: e.to_string(),
        })?;
        let weights_len = bytes.len();
        let device = Device::Cpu;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &device)
            .map_err(|e| model_error(e.to_string()))?;
        let model = BertModel::load(vb, &config).map_err(|e| model_error(e.to_string()))?;
        Ok(Self {
            model,
            tokenizer,
            device,
            dimensions: config.hidden_size,
            version: format!("all-MiniLM-L6-v2:mean:max{MAX_TOKENS}:{weights_len}"),
        })
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, BackendError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(failed)?;
        let rows =
            |pick: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Result<Tensor, BackendError> {
                let rows: Vec<Tensor> = encodings
                    .iter()
                    .map(|encoding| Tensor::new(pick(encoding), &self.device))
                    .collect::<Result<_, _>>()
                    .map_err(failed)?;
                Tensor::stack(&rows, 0).map_err(failed)
            };
        let ids = rows(&|e| e.get_ids())?;
        let mask = rows(&|e| e.get_attention_mask())?;
        let token_types = ids.zeros_like().map_err(failed)?;
        let hidden = self
            .model
            .forward(&ids, &token_types, Some(&mask))
            .map_err(failed)?;
        // Mean over real tokens: sum(hidden * mask) / sum(mask), then unit length.
        let mask = mask
            .to_dtype(DType::F32)
            .and_then(|m| m.unsqueeze(2))
            .map_err(failed)?;
        let summed = hidden
            .broadcast_mul(&mask)
            .and_then(|h| h.sum(1))
            .map_err(failed)?;
        let counts = mask.sum(1).map_err(failed)?;
        let mean = summed.broadcast_div(&counts).map_err(failed)?;
        let norms = mean
            .sqr()
            .and_then(|m| m.sum_keepdim(1))
            .and_then(|m| m.sqrt())
            .map_err(failed)?;
        mean.broadcast_div(&norms)
            .and_then(|m| m.to_vec2::<f32>())
            .map_err(failed)
    }
}

impl Embedder for MiniLmEmbedder {
    fn version(&self) -> &str {
        &self.version
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, BackendError> {
        // Similar lengths share a batch, so little time goes to padding.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut vectors = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(BATCH) {
            vector_service_runtime::deadline::check()?;
            let batch: Vec<&str> = chunk
                .iter()
                .map(|&i| match texts[i].trim() {
                    // An empty input has no tokens to average; BERT still gets [CLS] [SEP].
                    "" => " ",
                    text => text,
                })
                .collect();
            for (&i, vector) in chunk.iter().zip(self.embed_batch(&batch)?) {
                vectors[i] = vector;
            }
        }
        Ok(vectors)
    }
}
