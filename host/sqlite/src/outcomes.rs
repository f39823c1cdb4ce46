//! Patch outcomes and per-vector rates: the primary metrics tables and the vector metrics
//! table, each write counted in the change clock's `outcomes`.

use rusqlite::{params, Transaction};
use vector_service_runtime::api::{BackendError, PatchOutcome, Rates, VectorOutcome, VectorRef};
use vector_service_runtime::backends::records::now_ms;
use vector_service_runtime::backends::{rates, MetricsDb, VectorMetricsDb};

use crate::error::backend_error;
use crate::{unsigned, SqliteStore};

/// Rates from every tracked outcome matching `filter` (a SQL condition on ?1, ?2), whichever
/// metrics table recorded it: a success is a win, a failure a regret, as in `vector_outcomes`.
fn outcome_rates(
    tx: &Transaction<'_>,
    filter: &str,
    a: &str,
    b: Option<&str>,
) -> rusqlite::Result<Option<Rates>> {
    let (samples, wins, regrets): (u64, u64, u64) = tx
        .prepare_cached(&format!(
            "SELECT COUNT(*), COALESCE(SUM(win), 0), COALESCE(SUM(regret), 0) FROM (
             SELECT win, regret FROM vector_outcomes WHERE {filter}
             UNION ALL
             SELECT success, 1 - success FROM patch_outcomes WHERE {filter})"
        ))?
        .query_row(params![a, b], |row| {
            Ok((unsigned(row, 0)?, unsigned(row, 1)?, unsigned(row, 2)?))
        })?;
    Ok(rates(samples, wins, regrets))
}

/// Count an outcome write in the change clock's `outcomes` (see migration 4).
fn count_outcome_write(tx: &Transaction<'_>) -> Result<(), BackendError> {
    tx.prepare_cached("UPDATE change_clock SET outcomes = outcomes + 1")
        .and_then(|mut statement| statement.execute([]))
        .map(drop)
        .map_err(backend_error)
}

impl MetricsDb for SqliteStore {
    fn available(&self) -> bool {
        true
    }

    fn log_patch_outcome(&self, outcome: &PatchOutcome) -> Result<(), BackendError> {
        let mut connection = self.writer()?;
        let tx = connection.transaction().map_err(backend_error)?;
        let ts = now_ms();
        {
            // Prepared once per connection, not per row: compiling the statement cost more
            // than running it (docs/benchmarks-log.md, "/v1/contributors: statements compiled per row").
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO patch_outcomes (patch_id, session_id, origin_db, vector_id, success, reverted, label, roi_tag, ts_ms, contribution)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(backend_error)?;
            for row in &outcome.contributors {
                insert
                    .execute(params![
                        outcome.patch_id,
                        outcome.session_id,
                        row.origin_db,
                        row.vector_id,
                        outcome.success,
                        outcome.reverted,
                        outcome.label,
                        outcome.roi_tag,
                        ts,
                        outcome.contribution
                    ])
                    .map_err(backend_error)?;
            }
            let mut credit = tx
                .prepare_cached(
                    "INSERT INTO retriever_stats (origin_db, wins, regrets) VALUES (?1, ?2, ?3)
                     ON CONFLICT (origin_db) DO UPDATE SET wins = wins + excluded.wins, regrets = regrets + excluded.regrets",
                )
                .map_err(backend_error)?;
            for origin in &outcome.credited_origins {
                credit
                    .execute(params![
                        origin,
                        i64::from(outcome.success),
                        i64::from(!outcome.success)
                    ])
                    .map_err(backend_error)?;
            }
        }
        count_outcome_write(&tx)?;
        tx.commit().map_err(backend_error)
    }
}

impl VectorMetricsDb for SqliteStore {
    fn record_outcomes(&self, outcomes: &[VectorOutcome]) -> Result<(), BackendError> {
        let mut connection = self.writer()?;
        let tx = connection.transaction().map_err(backend_error)?;
        let ts = now_ms();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO vector_outcomes (session_id, origin_db, vector_id, contribution, win, regret, patch_id, roi_tag, ts_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(backend_error)?;
            for o in outcomes {
                insert
                    .execute(params![
                        o.session_id,
                        o.vector.origin_db,
                        o.vector.vector_id,
                        o.contribution,
                        o.win,
                        o.regret,
                        o.patch_id,
                        o.roi_tag,
                        ts
                    ])
                    .map_err(backend_error)?;
            }
        }
        count_outcome_write(&tx)?;
        tx.commit().map_err(backend_error)
    }

    fn vector_rates(&self, vectors: &[VectorRef]) -> Result<Vec<Option<Rates>>, BackendError> {
        let mut connection = self.connection()?;
        let tx = connection.transaction().map_err(backend_error)?;
        vectors
            .iter()
            .map(|v| {
                outcome_rates(
                    &tx,
                    "origin_db = ?1 AND vector_id = ?2",
                    &v.origin_db,
                    Some(&v.vector_id),
                )
            })
            .collect::<rusqlite::Result<_>>()
            .map_err(backend_error)
    }

    fn origin_rates(&self, origins: &[String]) -> Result<Vec<Option<Rates>>, BackendError> {
        let mut connection = self.connection()?;
        let tx = connection.transaction().map_err(backend_error)?;
        origins
            .iter()
            .map(|origin| outcome_rates(&tx, "origin_db = ?1 AND ?2 IS NULL", origin, None))
            .collect::<rusqlite::Result<_>>()
            .map_err(backend_error)
    }
}
