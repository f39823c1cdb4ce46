//! One function per subcommand that works on a tenant's data: each opens what it needs,
//! runs, and prints a human table or, with `--json`, JSON.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use vector_service_runtime::api::{
    BackfillRequest, ContextRequest, Destination, SearchRequest, TrackRequest,
};
use vector_service_runtime::backends::EmbeddingStore;
use vector_service_runtime::RunLimits;

use crate::answers::{BackfillAnswer, ContextAnswer, SearchAnswer, TrackAnswer};
use crate::cli::{Command, Global, Retrieval};
use crate::failure::{CommandFailed, Failure};
use crate::tenant::Tenant;
use crate::{ingest, progress};

/// Run `command` (one that needs the tenant's database) and print its answer: a human table,
/// or under `--json` one JSON object (with the Prometheus text as `metrics` if asked).
pub fn run(global: &Global, command: Command) -> anyhow::Result<()> {
    let tenant = Tenant::open(global)?;
    let session = global.session_id.as_str();
    let answer = match command {
        Command::Info | Command::Component(_) | Command::Serve { .. } => {
            unreachable!("handled without a tenant")
        }
        Command::Ingest { file, db } => ingest_file(global, &tenant, &file, db.as_deref())?,
        Command::Backfill {
            batch_size,
            databases,
            batch_deadline_secs,
            max_seconds,
        } => {
            let run = RunLimits {
                budget: max_seconds.map(std::time::Duration::from_secs),
                ..RunLimits::per_batch(std::time::Duration::from_secs(batch_deadline_secs))
            };
            let request = BackfillRequest {
                batch_size,
                databases,
            };
            backfill(global, &tenant, session, request, &run)?
        }
        Command::Search {
            query,
            top_k,
            threshold,
            origins,
        } => {
            let request = SearchRequest {
                query,
                top_k,
                similarity_threshold: threshold,
                origins,
            };
            search(global, &tenant, session, &request)?
        }
        Command::Context {
            task,
            top_k,
            max_tokens,
            buckets,
        } => {
            let request = ContextRequest {
                task,
                top_k,
                max_tokens,
                db_weights: vec![],
                buckets,
            };
            context(global, &tenant, session, &request)?
        }
        Command::Track {
            patch_id,
            failure,
            contribution,
            roi_tag,
            vector_ids,
        } => {
            warn_of_unusual_ids(&vector_ids);
            let request = TrackRequest {
                vector_ids,
                success: !failure,
                patch_id,
                contribution,
                roi_tag,
            };
            track(global, &tenant, session, &request)?
        }
        Command::Delete { db, ids } => delete(global, &tenant, &db, &ids)?,
        Command::Stats => stats(global, &tenant)?,
    };
    let metrics = global.metrics.then(|| tenant.telemetry.render());
    print_answer(global, answer, metrics)
}

/// Under `--json`, `value` as JSON for [`print_answer`]; otherwise print the human rendering
/// now (and answer `null`).
pub fn emit<T: Serialize>(
    global: &Global,
    value: &T,
    human: impl FnOnce(&T),
) -> anyhow::Result<Value> {
    if global.json {
        Ok(serde_json::to_value(value)?)
    } else {
        human(value);
        Ok(Value::Null)
    }
}

/// Print a command's answer: under `--json` the one JSON object [`emit`] made, with the
/// metrics text as its `metrics` field; otherwise only the metrics text (the human rendering
/// was printed already).
pub fn print_answer(
    global: &Global,
    mut answer: Value,
    metrics: Option<String>,
) -> anyhow::Result<()> {
    if global.json {
        if let (Some(text), Value::Object(object)) = (&metrics, &mut answer) {
            object.insert("metrics".into(), text.clone().into());
        }
        out!("{}", serde_json::to_string_pretty(&answer)?);
    } else if let Some(text) = metrics {
        print!("{text}");
    }
    Ok(())
}

/// `ingest FILE`: add or update records, one transaction per database.
fn ingest_file(
    global: &Global,
    tenant: &Tenant,
    file: &std::path::Path,
    db: Option<&str>,
) -> anyhow::Result<Value> {
    let by_db = ingest::read_records(file, db).map_err(CommandFailed::bad_input)?;
    // The server's answer to `POST /v1/records`.
    let answer = ingest::upsert_all(tenant.store.as_ref(), &by_db)?;
    emit(global, &answer, |answer| {
        for row in &answer.databases {
            out!(
                "{:<14} {:>6} records, {:>6} new or changed",
                row.db,
                row.records,
                row.new_or_changed
            );
        }
    })
}

/// `backfill`: embed what lacks a current embedding, then bring the vector index up to date.
/// A database that failed makes the command fail, after the report.
fn backfill(
    global: &Global,
    tenant: &Tenant,
    session: &str,
    request: BackfillRequest,
    run: &RunLimits,
) -> anyhow::Result<Value> {
    let total = tenant.pending_records(&request.databases)?;
    let progress = progress::ProgressStore::for_terminal(tenant.store.clone(), total);
    let service = tenant.service(progress.clone().map(|p| p as Arc<dyn EmbeddingStore>));
    // Ctrl-C and SIGTERM keep their default (the process ends): each batch commits in
    // one transaction, so what was done is whole batches, and the next run resumes.
    let response = service.backfill_with(session, &request, run)?;
    if let Some(progress) = progress {
        progress.finish();
    }
    // Leave the vector index current so the first vector search pays nothing.
    let started = std::time::Instant::now();
    let indexed = tenant.store.sync_index()?;
    let mut report = serde_json::to_value(BackfillAnswer::of(&response))?;
    report["index_changes"] = indexed.into();
    let answer = emit(global, &report, |_| {
        let r = &response;
        out!("backfill {} (session {})", r.status, r.session_id);
        for d in &r.databases {
            let error = d
                .error
                .as_ref()
                .map(|e| format!("  error: {e}"))
                .unwrap_or_default();
            out!(
                "  {:<14} embedded {:>6}  skipped {:>4}  batches {:>4}{error}",
                d.name,
                d.embedded,
                d.skipped,
                d.batches
            );
        }
        out!(
            "vector index: {indexed} change(s) applied in {:.2} s",
            started.elapsed().as_secs_f64()
        );
    })?;
    // A database that could not be backfilled (unreadable, damaged, embedder down) is
    // a failure for scripts and cron jobs, even though the others were done.
    let failed: Vec<&str> = response
        .databases
        .iter()
        .filter(|d| d.error.is_some())
        .map(|d| d.name.as_str())
        .collect();
    if !failed.is_empty() {
        return Err(CommandFailed {
            failure: Failure::new(
                "backfill-failed",
                format!(
                    "backfill failed for {} database(s): {}",
                    failed.len(),
                    failed.join(", ")
                ),
            ),
            answer: Some(answer),
        }
        .into());
    }
    Ok(answer)
}

/// `search QUERY`: Retriever.search through the component.
fn search(
    global: &Global,
    tenant: &Tenant,
    session: &str,
    request: &SearchRequest,
) -> anyhow::Result<Value> {
    let response = tenant.service(None).search(session, request)?;
    if response.fallback.is_some() || response.hits.is_empty() {
        hint_why_empty(global, tenant, &request.origins);
    }
    emit(global, &SearchAnswer::of(&response), |_| {
        let r = &response;
        if let Some(fallback) = &r.fallback {
            out!(
                "no confident result ({}, confidence {:.3})",
                fallback.reason,
                fallback.confidence
            );
        }
        out!("{:<10} {:<12} {:>6}  metadata", "origin", "id", "score");
        for hit in &r.hits {
            out!(
                "{:<10} {:<12} {:>6.3}  {}",
                hit.origin_db,
                hit.record_id.as_deref().unwrap_or("-"),
                hit.score,
                hit.metadata
            );
        }
    })
}

/// `context TASK`: ContextBuilder.build through the component.
fn context(
    global: &Global,
    tenant: &Tenant,
    session: &str,
    request: &ContextRequest,
) -> anyhow::Result<Value> {
    let response = tenant.service(None).build_context(session, request)?;
    if response.entries.is_empty() {
        let origins: Vec<String> = request.buckets.iter().map(|b| b.origin.clone()).collect();
        hint_why_empty(global, tenant, &origins);
    }
    emit(global, &ContextAnswer::of(&response), |_| {
        let r = &response;
        out!("{}", r.context);
        for e in &r.entries {
            let reliability = e
                .reliability
                .map(|r| {
                    format!(
                        "win {:.2} regret {:.2} ({})",
                        r.win_rate, r.regret_rate, r.samples
                    )
                })
                .unwrap_or_else(|| "-".into());
            out!(
                "  {:<14} {:<12} score {:>7.3}  reliability {reliability}",
                e.bucket,
                e.id,
                e.score
            );
        }
    })
}

/// `track VECTOR_ID...`: PatchLogger.track_contributors through the component.
fn track(
    global: &Global,
    tenant: &Tenant,
    session: &str,
    request: &TrackRequest,
) -> anyhow::Result<Value> {
    let response = tenant.service(None).track_contributors(session, request)?;
    emit(global, &TrackAnswer::of(&response), |_| {
        let r = &response;
        let destination = match r.written_to {
            Destination::Primary => "primary metrics db",
            Destination::Fallback => "vector metrics db (fallback)",
        };
        // The ROI tag defaults to `success` whatever the outcome: shown only when it says
        // something, so a failure never reads as a success.
        let tag = match r.roi_tag.as_str() {
            "success" => String::new(),
            tag => format!(", ROI tag {tag}"),
        };
        out!(
            "patch {}: {} recorded in the {destination}: {} row(s){tag}",
            request.patch_id,
            r.status,
            r.rows
        );
        for warning in &r.warnings {
            out!("  warning: {warning}");
        }
    })
}

/// An empty answer with a likely cause says it, on stderr: an origin filter naming a database
/// (hits carry origins: `error`, not `errors`) or an origin no database holds by default, and
/// a vector search over a store with no vector from this run's embedder.
fn hint_why_empty(global: &Global, tenant: &Tenant, origins: &[String]) {
    let Ok(stats) = tenant.store.stats() else {
        return;
    };
    let databases: Vec<&str> = stats.databases.iter().map(|(db, ..)| db.as_str()).collect();
    let listed = databases.join(", ");
    for origin in origins {
        if databases.contains(&origin.as_str()) {
            let example = crate::ingest::default_origin(origin).unwrap_or("its records' origin_db");
            eprintln!("hint: {origin:?} is a database; hits are filtered by origin ({example:?} for {origin:?})");
        } else if !databases
            .iter()
            .any(|db| crate::ingest::default_origin(db) == Some(origin.as_str()))
        {
            eprintln!("hint: no database holds origin {origin:?} by default (databases: {listed}; a record's origin is its origin_db)");
        }
    }
    let records: u64 = stats.databases.iter().map(|(_, records, _)| records).sum();
    let embedded: u64 = stats.databases.iter().map(|(.., embedded)| embedded).sum();
    if global.retrieval != Retrieval::Lexical && records > 0 && embedded == 0 {
        eprintln!(
            "hint: none of the {records} records has a vector from this embedder ({}): run `backfill` with it, or search with the embedder the vectors came from",
            stats.embedding_version
        );
    }
}

/// Say what the contract does with ids a caller may not mean (`wit/vector-service.wit`): an
/// id without `origin:` is recorded with an empty origin, and no ids at all records the
/// patch's outcome without contributors. Both are accepted, as the original module did.
fn warn_of_unusual_ids(vector_ids: &[String]) {
    if vector_ids.is_empty() {
        eprintln!("warning: no vector ids: the patch's outcome is recorded without contributors");
    }
    for id in vector_ids.iter().filter(|id| !id.contains(':')) {
        eprintln!("warning: {id:?} is not origin:id; it is recorded with an empty origin");
    }
}

/// `delete --db DB ID...`: records and their embeddings.
fn delete(global: &Global, tenant: &Tenant, db: &str, ids: &[String]) -> anyhow::Result<Value> {
    let deleted = tenant.store.delete(db, ids)?;
    let report = serde_json::json!({"db": db, "requested": ids.len(), "deleted": deleted});
    emit(global, &report, |_| {
        out!("{db}: deleted {deleted} of {} record(s)", ids.len());
    })
}

/// `stats`: record, embedding and outcome counts.
fn stats(global: &Global, tenant: &Tenant) -> anyhow::Result<Value> {
    let stats = tenant.store.stats()?;
    emit(global, &stats, |s| {
        out!("embedder: {}", s.embedding_version);
        for (db, records, embedded) in &s.databases {
            out!("  {db:<14} {records:>6} records  {embedded:>6} embedded");
        }
        out!(
            "patch outcomes: {}  vector outcomes: {}",
            s.patch_outcomes,
            s.vector_outcomes
        );
    })
}
