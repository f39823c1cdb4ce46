//! The rows every storage backend keeps, independent of where it keeps them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::Rates;

/// A record of an embeddable database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The origin its hits report (`bot`, `workflow`, `error`, `code`, `discrepancy`, ...).
    pub origin_db: String,
    pub id: String,
    /// The text that is embedded.
    pub text: String,
    /// A JSON object: the fields the context builder reads (name, roi, frequency, ...).
    pub metadata: Value,
}

/// One row of the primary database's `patch_outcomes` table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatchOutcomeRow {
    pub patch_id: String,
    pub session_id: String,
    pub origin_db: Option<String>,
    pub vector_id: Option<String>,
    pub success: bool,
    pub reverted: bool,
    pub label: String,
    pub roi_tag: String,
    pub ts_ms: u64,
}

/// Wins and regrets of one origin in `retriever_stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RetrieverStats {
    pub wins: u64,
    pub regrets: u64,
}

/// Win and regret rates from counts; `None` without samples.
pub fn rates(samples: u64, wins: u64, regrets: u64) -> Option<Rates> {
    (samples > 0).then(|| Rates {
        win_rate: wins as f64 / samples as f64,
        regret_rate: regrets as f64 / samples as f64,
        samples,
    })
}

/// Counts for `vector-service stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StoreStats {
    /// (database, records, records with a current embedding)
    pub databases: Vec<(String, u64, u64)>,
    /// Rows in `patch_outcomes`.
    pub patch_outcomes: u64,
    /// Rows in `vector_outcomes`.
    pub vector_outcomes: u64,
    /// The embedder whose vectors count as current.
    pub embedding_version: String,
}

/// Milliseconds since the Unix epoch, as SQL backends store timestamps.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// FNV-1a of the text: detects changed records without keeping a second copy of the text.
pub(crate) fn text_hash(text: &str) -> i64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) as i64
}
