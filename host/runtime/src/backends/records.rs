//! The rows every storage backend keeps, independent of where it keeps them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::Rates;

/// A record of an embeddable database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The origin its hits report (`bot`, `workflow`, `error`, `code`, `discrepancy`, ...).
    pub origin_db: String,
    /// Unique within its database.
    pub id: String,
    /// The text that is embedded.
    pub text: String,
    /// A JSON object: the fields the context builder reads (name, roi, frequency, ...).
    pub metadata: Value,
}

/// One row of the primary database's `patch_outcomes` table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatchOutcomeRow {
    /// The patch tracked.
    pub patch_id: String,
    /// The session that tracked it.
    pub session_id: String,
    /// The contributing vector's origin; `None` for the row of a patch without contributors.
    pub origin_db: Option<String>,
    /// The contributing vector's id; `None` as for `origin_db`.
    pub vector_id: Option<String>,
    /// Whether the patch succeeded.
    pub success: bool,
    /// Whether it was reverted (a failed patch is).
    pub reverted: bool,
    /// The outcome's label (`success`, `failure`, or a negative ROI tag's).
    pub label: String,
    /// The ROI tag given with the outcome.
    pub roi_tag: String,
    /// The caller's contribution (0.0 when it gave none).
    pub contribution: f64,
    /// When it was written, in ms since the Unix epoch.
    pub ts_ms: u64,
}

/// Wins and regrets of one origin in `retriever_stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RetrieverStats {
    /// Successful patches the origin contributed to.
    pub wins: u64,
    /// Failed patches it contributed to.
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
    /// (database, records, records with a current embedding); serialised as objects
    /// `{db, records, embedded}`.
    #[serde(serialize_with = "databases_as_objects")]
    pub databases: Vec<(String, u64, u64)>,
    /// Rows in `patch_outcomes`.
    pub patch_outcomes: u64,
    /// Rows in `vector_outcomes`.
    pub vector_outcomes: u64,
    /// The embedder whose vectors count as current.
    pub embedding_version: String,
}

fn databases_as_objects<S: serde::Serializer>(
    databases: &[(String, u64, u64)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Database<'a> {
        db: &'a str,
        records: u64,
        embedded: u64,
    }
    serializer.collect_seq(databases.iter().map(|(db, records, embedded)| Database {
        db,
        records: *records,
        embedded: *embedded,
    }))
}

/// Milliseconds since the Unix epoch (0 for a clock set before it).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// [`unix_ms`] as SQL backends store timestamps.
pub fn now_ms() -> i64 {
    unix_ms() as i64
}

/// FNV-1a of the text: detects changed records without keeping a second copy of the text.
pub fn text_hash(text: &str) -> i64 {
    use super::hashing_embedder::{fnv1a, FNV_OFFSET};
    fnv1a(FNV_OFFSET, text.as_bytes()) as i64
}
