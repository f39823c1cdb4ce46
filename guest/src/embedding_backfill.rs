//! EmbeddingBackfill.run: every registered (or every requested) database, batch by batch,
//! with progress logs. One failing database is reported and does not stop the others, but
//! the run is then a `failure` (status and metric): a cron job or an alert must see it.

use serde_json::json;

use crate::bindings::exports::vector_service::plugin::embedding_backfill::{
    BackfillRequest, BackfillResponse, DatabaseReport,
};
use crate::bindings::vector_service::plugin::clock;
use crate::bindings::vector_service::plugin::embedding_store;
use crate::bindings::vector_service::plugin::telemetry::{
    self, BackfillSample, Operation, RunStatus, Sample,
};
use crate::bindings::vector_service::plugin::types::Error;
use crate::bindings::wasi::logging::logging::Level;
use crate::instrument::{event, instrumented, seconds_since};
use crate::{bounds, errors};

const OPERATION: Operation = Operation::EmbeddingBackfillRun;
const DEFAULT_BATCH_SIZE: u32 = 100;

/// The export: one instrumented `EmbeddingBackfill.run` call.
pub fn run(session_id: String, request: BackfillRequest) -> Result<BackfillResponse, Error> {
    instrumented(
        OPERATION,
        session_id,
        |response: &BackfillResponse| response.databases.len() as u32,
        |session_id| {
            let started = clock::monotonic_now();
            let result = run_in_session(session_id, &request);
            let succeeded = result.as_ref().is_ok_and(every_database_succeeded);
            telemetry::observe(Sample::BackfillRun(BackfillSample {
                status: if succeeded {
                    RunStatus::Success
                } else {
                    RunStatus::Failure
                },
                duration_seconds: seconds_since(started),
            }));
            result
        },
    )
}

fn run_in_session(session_id: &str, request: &BackfillRequest) -> Result<BackfillResponse, Error> {
    let batch_size = bounds::batch_size(request.batch_size.unwrap_or(DEFAULT_BATCH_SIZE))?;
    bounds::names(
        "dbs",
        request.databases.iter().map(String::as_str),
        bounds::MAX_LIST_ENTRIES,
    )?;
    let registered = embedding_store::databases().map_err(errors::from_backend)?;
    if let Some(unknown) = request
        .databases
        .iter()
        .find(|name| !registered.contains(name))
    {
        return Err(errors::malformed(format!(
            "unknown database {unknown:?}; registered: {}",
            registered.join(", ")
        )));
    }
    let selected: Vec<String> = registered
        .into_iter()
        .filter(|name| request.databases.is_empty() || request.databases.contains(name))
        .collect();

    let total = selected.len();
    let databases = selected
        .into_iter()
        .enumerate()
        .map(|(index, name)| {
            event(
                Level::Info,
                OPERATION,
                session_id,
                &format!("Backfilling {name} ({}/{total})", index + 1),
                json!({ "database": name }),
            );
            backfill_database(session_id, name, batch_size)
        })
        .collect();
    let mut response = BackfillResponse {
        session_id: session_id.to_string(),
        status: String::new(),
        databases,
    };
    response.status = if every_database_succeeded(&response) {
        "success"
    } else {
        "failure"
    }
    .to_string();
    Ok(response)
}

fn every_database_succeeded(response: &BackfillResponse) -> bool {
    response.databases.iter().all(|db| db.error.is_none())
}

/// Page through the database's pending records (keyset paging, so records the embedder skips
/// are not offered again) and embed them batch by batch.
fn backfill_database(session_id: &str, name: String, batch_size: u32) -> DatabaseReport {
    let mut report = DatabaseReport {
        name,
        embedded: 0,
        skipped: 0,
        batches: 0,
        error: None,
    };
    let mut after: Option<String> = None;
    loop {
        let step =
            embedding_store::pending(&report.name, after.as_deref(), batch_size).and_then(|ids| {
                if ids.is_empty() {
                    return Ok(None);
                }
                let embedded = embedding_store::embed(&report.name, &ids)?;
                Ok(Some((ids, embedded)))
            });
        match step {
            Ok(None) => break,
            Ok(Some((ids, embedded))) => {
                report.batches += 1;
                report.embedded += u64::from(embedded.embedded);
                report.skipped += u64::from(embedded.skipped);
                event(
                    Level::Info,
                    OPERATION,
                    session_id,
                    &format!("Backfilled batch {} of {}", report.batches, report.name),
                    json!({
                        "database": report.name,
                        "batch": report.batches,
                        "batch_records": ids.len(),
                        "embedded": report.embedded,
                        "skipped": report.skipped,
                    }),
                );
                if ids.len() < batch_size as usize {
                    break;
                }
                after = ids.into_iter().last();
            }
            Err(error) => {
                let message = errors::backend_message(&error).to_string();
                event(
                    Level::Error,
                    OPERATION,
                    session_id,
                    &format!("Backfill failed for {}", report.name),
                    json!({ "database": report.name, "error": message }),
                );
                report.error = Some(message);
                break;
            }
        }
    }
    report
}
