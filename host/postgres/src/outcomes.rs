//! Patch outcomes and per-vector rates: the primary metrics tables and the vector metrics
//! table, each write advancing the change clock.

use postgres::Transaction;
use vector_service_runtime::api::{BackendError, PatchOutcome, Rates, VectorOutcome, VectorRef};
use vector_service_runtime::backends::records::now_ms;
use vector_service_runtime::backends::{rates, MetricsDb, VectorMetricsDb};

use crate::clock::advance_generation;
use crate::error::AttemptError;
use crate::{count, PostgresStore};

impl MetricsDb for PostgresStore {
    fn available(&self) -> bool {
        self.client()
            .is_ok_and(|mut client| client.simple_query("SELECT 1").is_ok())
    }

    fn log_patch_outcome(&self, outcome: &PatchOutcome) -> Result<(), BackendError> {
        self.transaction(|tx| {
            let ts = now_ms();
            let insert = tx.prepare(
                "INSERT INTO patch_outcomes (patch_id, session_id, origin_db, vector_id, success, reverted, label, roi_tag, ts_ms, contribution)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )?;
            for row in &outcome.contributors {
                tx.execute(
                    &insert,
                    &[
                        &outcome.patch_id,
                        &outcome.session_id,
                        &row.origin_db,
                        &row.vector_id,
                        &outcome.success,
                        &outcome.reverted,
                        &outcome.label,
                        &outcome.roi_tag,
                        &ts,
                        &outcome.contribution,
                    ],
                )?;
            }
            let (wins, regrets) = (i64::from(outcome.success), i64::from(!outcome.success));
            for origin in &outcome.credited_origins {
                tx.execute(
                    "INSERT INTO retriever_stats (origin_db, wins, regrets) VALUES ($1, $2, $3)
                     ON CONFLICT (origin_db) DO UPDATE SET
                        wins = retriever_stats.wins + excluded.wins,
                        regrets = retriever_stats.regrets + excluded.regrets",
                    &[origin, &wins, &regrets],
                )?;
            }
            Ok(advance_generation(tx)?)
        })
    }
}

/// Rates from every tracked outcome matching `filter` (a SQL condition on $1, $2), whichever
/// metrics table recorded it: a success is a win, a failure a regret, as in `vector_outcomes`.
fn outcome_rates(
    tx: &mut Transaction<'_>,
    filter: &str,
    a: &str,
    b: Option<&str>,
) -> Result<Option<Rates>, postgres::Error> {
    let row = tx.query_one(
        &format!(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE win), COUNT(*) FILTER (WHERE regret)
             FROM (SELECT win, regret FROM vector_outcomes WHERE {filter}
                   UNION ALL
                   SELECT success, NOT success FROM patch_outcomes WHERE {filter}) AS tracked"
        ),
        &[&a, &b],
    )?;
    Ok(rates(
        count(row.get(0)),
        count(row.get(1)),
        count(row.get(2)),
    ))
}

impl VectorMetricsDb for PostgresStore {
    fn record_outcomes(&self, outcomes: &[VectorOutcome]) -> Result<(), BackendError> {
        self.transaction(|tx| {
            let ts = now_ms();
            let insert = tx.prepare(
                "INSERT INTO vector_outcomes (session_id, origin_db, vector_id, contribution, win, regret, patch_id, roi_tag, ts_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )?;
            for o in outcomes {
                tx.execute(
                    &insert,
                    &[
                        &o.session_id,
                        &o.vector.origin_db,
                        &o.vector.vector_id,
                        &o.contribution,
                        &o.win,
                        &o.regret,
                        &o.patch_id,
                        &o.roi_tag,
                        &ts,
                    ],
                )?;
            }
            Ok(advance_generation(tx)?)
        })
    }

    fn vector_rates(&self, vectors: &[VectorRef]) -> Result<Vec<Option<Rates>>, BackendError> {
        self.transaction(|tx| {
            vectors
                .iter()
                .map(|v| {
                    outcome_rates(
                        tx,
                        "origin_db = $1 AND vector_id = $2",
                        &v.origin_db,
                        Some(&v.vector_id),
                    )
                })
                .collect::<Result<_, _>>()
                .map_err(AttemptError::from)
        })
    }

    fn origin_rates(&self, origins: &[String]) -> Result<Vec<Option<Rates>>, BackendError> {
        self.transaction(|tx| {
            origins
                .iter()
                .map(|origin| {
                    outcome_rates(tx, "origin_db = $1 AND $2::text IS NULL", origin, None)
                })
                .collect::<Result<_, _>>()
                .map_err(AttemptError::from)
        })
    }
}
