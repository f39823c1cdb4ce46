//! The API's handlers: the three operations, backfill jobs, record ingest, metrics and
//! readiness. Authentication is an extractor (`auth`), the request log a layer
//! (`request_log`); a handler parses, admits, runs the call (a read on this task's worker when
//! the store answers it in process, else on the blocking pool) and answers.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use utoipa::{IntoParams, ToSchema};
use vector_service_runtime::api::BackendError;
use vector_service_runtime::backends::{Backends, Store};
use vector_service_runtime::bounds::request::MAX_NAME_BYTES;
use vector_service_runtime::{RunLimits, ServiceError, UsageTotals, VectorService};
use vector_service_trace::scope::{root_span_of, within};

use super::admission::CallPermit;
use super::auth::Authenticated;
use super::body::{self, Accepts};
use super::error::ApiError;
use super::jobs::{self, JobStatus, JobView};
use super::metrics::for_tenant;
use super::openapi::CallFailures;
use super::request_log::LogFields;
use super::routes::{Answer, BackfillBody, ContextBody, ContributorsBody, SearchBody, Session};
use super::segment::Segment;
use super::state::{AppState, OpenTenant, Shared, TenantState};
use crate::answers::{ContextAnswer, SearchAnswer, TrackAnswer};
use crate::failure::FailureBody;
use crate::ingest::{self, IngestAnswer, RecordFields};
use crate::progress::ProgressStore;

/// The request's JSON body as `T`: read only after authentication, bounded.
pub(super) async fn parse<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    let bytes = body::read(headers, body, state.max_body_bytes, Accepts::Json).await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("request body: {e}")))
}

/// A 500 for work that panicked: the panic's message goes to the log, not to the caller.
pub(super) fn panicked(what: &str, error: tokio::task::JoinError) -> ApiError {
    ApiError::internal(format!("{what} failed inside the server"))
        .with_detail(format!("{what} panicked: {error}"))
}

/// A parsed call holding one of its tenant's call slots and a lease on the open tenant.
struct Admitted<B> {
    open: Arc<OpenTenant>,
    service: VectorService,
    /// The tenant's store: a read call asks it whether it answers in process now, and then
    /// runs on this task instead of the blocking pool (the hop costs more than a search:
    /// docs/decisions/0006-instances.md).
    store: Arc<dyn Store>,
    session: String,
    request: B,
    permit: CallPermit,
}

/// Parse the body, lease the tenant (opening it if it is closed) and take a call slot.
async fn admit<B: DeserializeOwned + Session>(
    state: &AppState,
    tenant: &Arc<TenantState>,
    log: &LogFields,
    headers: HeaderMap,
    body: Body,
) -> Result<Admitted<B>, ApiError> {
    let request: B = parse(state, &headers, body).await?;
    if let Some(reason) = request.refused() {
        return Err(ApiError::malformed(reason));
    }
    let open = state
        .lease(tenant)
        .instrument(vector_service_runtime::work_span!("tenant.lease"))
        .await?;
    open.reachable(&state.http)?;
    if B::WRITES {
        open.writable()?;
        open.within_quota(&state.http, 0, tenant.limits.storage_bytes())
            .await?;
    }
    let (service, store) = (open.service.clone(), open.store.clone());
    let session = request.session_id();
    log.session(&session);
    let permit = tenant
        .admission
        .admit(&state.calls)
        .instrument(vector_service_runtime::work_span!("admission"))
        .await?;
    state.http.in_flight(&tenant.name, tenant.admission.busy());
    Ok(Admitted {
        open,
        service,
        store,
        session,
        request,
        permit,
    })
}

/// Free the call's slot and answer JSON.
fn answer<R: Answer>(
    state: &AppState,
    tenant: &TenantState,
    open: &OpenTenant,
    log: &LogFields,
    permit: CallPermit,
    outcome: Result<Result<R, ServiceError>, tokio::task::JoinError>,
) -> Result<Response, ApiError> {
    drop(permit);
    state.http.in_flight(&tenant.name, tenant.admission.busy());
    let answer = outcome
        .map_err(|e| panicked("the call", e))?
        .map_err(|error| open.failure(error.into()))?;
    // The component generates a session id when the caller sent none: log that one.
    if log.session_id().is_empty() {
        log.session(answer.session_id());
    }
    Ok(answer.respond())
}

/// One handler per operation: its document entry, the body type and the service method; a
/// read names its async method too, which runs on this task's worker when the store answers
/// in process (as a task of its own, so a panic answers 500 as on the blocking pool).
macro_rules! operation_handler {
    ($(#[$doc:meta])* $handler:ident, $body:ty, $method:ident $(, read: $read:ident)?) => {
        $(#[$doc])*
        pub(super) async fn $handler(
            State(state): State<Shared>,
            Authenticated(tenant): Authenticated,
            log: LogFields,
            headers: HeaderMap,
            body: Body,
        ) -> Result<Response, ApiError> {
            let call = admit::<$body>(&state, &tenant, &log, headers, body).await?;
            $(
                if call.store.serves_reads_in_process() {
                    let Admitted { open, service, session, request, permit, .. } = call;
                    let outcome = tokio::spawn(vector_service_trace::propagate(
                        async move { service.$read(&session, &request.into()).await },
                    ))
                    .await;
                    return answer(&state, &tenant, &open, &log, permit, outcome);
                }
            )?
            let Admitted { open, service, session, request, permit, .. } = call;
            let outcome = tokio::task::spawn_blocking(vector_service_trace::propagate_blocking(
                move || service.$method(&session, &request.into()),
            ))
            .await;
            answer(&state, &tenant, &open, &log, permit, outcome)
        }
    };
}

operation_handler!(
    /// `Retriever.search`: hits for a query, a cached earlier answer or a fallback.
    #[utoipa::path(post, path = "/v1/search", tag = "operations", request_body = SearchBody,
        security(("tenant_key" = []), ()),
        responses((status = 200, description = "The hits.", body = SearchAnswer), CallFailures))]
    search,
    SearchBody,
    search,
    read: search_async
);
operation_handler!(
    /// `ContextBuilder.build`: a compact context of the records related to a task.
    #[utoipa::path(post, path = "/v1/context", tag = "operations", request_body = ContextBody,
        security(("tenant_key" = []), ()),
        responses((status = 200, description = "The context.", body = ContextAnswer), CallFailures))]
    context,
    ContextBody,
    build_context,
    read: build_context_async
);
operation_handler!(
    /// `PatchLogger.track_contributors`: record a patch's outcome against the vectors that
    /// contributed to it.
    #[utoipa::path(post, path = "/v1/contributors", tag = "operations",
        request_body = ContributorsBody, security(("tenant_key" = []), ()),
        responses((status = 200, description = "Where the outcomes were written.", body = TrackAnswer), CallFailures))]
    contributors,
    ContributorsBody,
    track_contributors
);

/// `POST /v1/backfill`: start a backfill job in one of the tenant's call slots; 202 with its
/// id, 409 when one is already running.
#[utoipa::path(post, path = "/v1/backfill", tag = "operations", request_body = BackfillBody,
    security(("tenant_key" = []), ()),
    responses(
        (status = 202, description = "The job started; `Location` names it.", body = JobView,
            headers(("Location" = String, description = "`/v1/backfill/{job}`"))),
        (status = 409, description = "`conflict`: the tenant's backfill is still running.", body = FailureBody),
        CallFailures))]
pub(super) async fn start_backfill(
    State(state): State<Shared>,
    Authenticated(tenant): Authenticated,
    log: LogFields,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request: BackfillBody = parse(&state, &headers, body).await?;
    if let Some(reason) = request.refused() {
        return Err(ApiError::malformed(reason));
    }
    let open = state.lease(&tenant).await?;
    open.reachable(&state.http)?;
    open.writable()?;
    open.within_quota(&state.http, 0, tenant.limits.storage_bytes())
        .await?;
    let store = open.store.clone();
    log.session(&request.session_id());
    let conflict = |running: Arc<jobs::Job>| {
        ApiError::conflict(format!("backfill job {} is still running", running.id))
    };
    if let Some(running) = tenant.jobs.running() {
        return Err(conflict(running));
    }
    let permit = tenant.admission.admit(&state.calls).await?;
    let progress = ProgressStore::counting(store.clone());
    let job = tenant
        .jobs
        .start(request.session_id(), progress.clone())
        .map_err(conflict)?;
    let mut backends = Backends::store(store.clone());
    backends.embedding_store = progress;
    let service = VectorService::new(
        state.plugin.clone(),
        backends,
        state.telemetry.clone(),
        tenant.config.clone(),
    );
    let run = RunLimits {
        cancel: job.cancel.clone(),
        ..tenant.limits.backfill_run()
    };
    let (worker, name) = (job.clone(), tenant.name.clone());
    let (shared, owner) = (state.clone(), tenant.clone());
    state.http.in_flight(&name, tenant.admission.busy());
    // The job's own scope, under the request that started it and outliving it: its log lines
    // carry the trace id, and, when spans are exported, each batch's embedding is a span
    // beneath its span.
    let scope = vector_service_trace::current_scope().map(|request| request.child());
    let span = root_span_of(scope.as_ref(), || {
        tracing::info_span!(
            target: "vector_service::span",
            "backfill.job",
            "trace.root" = true,
            tenant = %name,
            job = %job.id,
            "session.id" = %job.session_id,
        )
    });
    tokio::task::spawn_blocking(move || {
        within(scope.as_ref(), || {
            let _entered = span.enter();
            // The job holds the tenant open until it ends.
            let _lease = open;
            let outcome = match service.backfill_with(&worker.session_id, &request.into(), &run) {
                Ok(response) => {
                    // As the CLI does: leave the vector index current, so the next vector
                    // search does not pay for the whole backfill's index inserts.
                    if let Err(error) = store.sync_index() {
                        tracing::warn!(tenant = %name, %error, "the vector index was not brought up to date");
                    }
                    jobs::Outcome::Finished(response)
                }
                Err(error) => {
                    let error = ApiError::from(error);
                    jobs::Outcome::Stopped {
                        kind: error.kind,
                        message: error.message,
                    }
                }
            };
            // The slot is free (and counted so) before the job reads as finished.
            drop(permit);
            shared.http.in_flight(&name, owner.admission.busy());
            worker.finish(outcome);
            let view = worker.view();
            tracing::info!(
                target: "vector_service::http",
                tenant = %name,
                job = %worker.id,
                status = view.status.as_str(),
                records_done = worker.progress.done(),
                "backfill job finished"
            );
        })
    });
    let mut answer = (StatusCode::ACCEPTED, Json(job.view())).into_response();
    if let Ok(location) = format!("/v1/backfill/{}", job.id).parse() {
        answer.headers_mut().insert(header::LOCATION, location);
    }
    Ok(answer)
}

/// `GET /v1/backfill/{job}`: the job's progress and outcome (the tenant's own jobs only).
#[utoipa::path(get, path = "/v1/backfill/{job}", tag = "operations",
    params(("job" = String, Path, description = "The id `POST /v1/backfill` answered.")),
    security(("tenant_key" = []), ()),
    responses(
        (status = 200, description = "The job.", body = JobView),
        (status = 404, description = "`not-found`: no such job of this tenant.", body = FailureBody),
        CallFailures))]
pub(super) async fn backfill_job(
    Authenticated(tenant): Authenticated,
    Segment(id): Segment,
) -> Result<Response, ApiError> {
    with_job(&tenant, &id, |job| Json(job.view()).into_response())
}

/// `DELETE /v1/backfill/{job}`: cancel it; it stops at its next batch boundary.
#[utoipa::path(delete, path = "/v1/backfill/{job}", tag = "operations",
    params(("job" = String, Path, description = "The id `POST /v1/backfill` answered.")),
    security(("tenant_key" = []), ()),
    responses(
        (status = 202, description = "Cancelling: the job stops at its next batch boundary (safe to repeat while it runs).", body = JobView),
        (status = 404, description = "`not-found`: no such job of this tenant.", body = FailureBody),
        (status = 409, description = "`conflict`: the job already ended; nothing changed.", body = FailureBody),
        CallFailures))]
pub(super) async fn cancel_backfill(
    Authenticated(tenant): Authenticated,
    Segment(id): Segment,
) -> Result<Response, ApiError> {
    let job = tenant
        .jobs
        .get(&id)
        .ok_or_else(|| ApiError::not_found_thing("no such backfill job"))?;
    let view = job.view();
    if !matches!(view.status, JobStatus::Running | JobStatus::Cancelling) {
        return Err(ApiError::conflict(format!(
            "backfill job {id} already ended ({}); nothing changed",
            view.status.as_str()
        )));
    }
    job.cancel.cancel();
    Ok((StatusCode::ACCEPTED, Json(job.view())).into_response())
}

/// Find the tenant's job `id` (404 otherwise) and answer with `answer`.
fn with_job(
    tenant: &TenantState,
    id: &str,
    answer: impl FnOnce(&jobs::Job) -> Response,
) -> Result<Response, ApiError> {
    tenant
        .jobs
        .get(id)
        .map(|job| answer(&job))
        .ok_or_else(|| ApiError::not_found_thing("no such backfill job"))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RecordsQuery {
    /// The database of records that name none.
    db: Option<String>,
}

/// `POST /v1/records[?db=NAME]`: records as `ingest` reads them, by content type: one JSON
/// document (`application/json`: a record or an array of records), JSON lines
/// (`application/x-ndjson`, `application/jsonl`) or CSV (`text/csv`); written in one
/// transaction per database; a bad record refuses the whole body (400, with its position).
#[utoipa::path(post, path = "/v1/records", tag = "records", params(RecordsQuery),
    request_body(description = "Records: one JSON document (a record, or an array of records), JSON lines (one record per line), or CSV with a header row (columns `db`, `origin_db`, `id`, `text`; any other column is a metadata field).",
        content(
            (Vec<RecordFields> = "application/json"),
            (String = "application/x-ndjson"),
            (String = "application/jsonl"),
            (String = "text/csv"))),
    security(("tenant_key" = []), ()),
    responses((status = 200, description = "Per database: records read and how many were new or changed.", body = IngestAnswer), CallFailures))]
pub(super) async fn records(
    State(state): State<Shared>,
    Authenticated(tenant): Authenticated,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Query(query) = Query::<RecordsQuery>::try_from_uri(&uri)
        .map_err(|e| ApiError::bad_request(format!("query string: {}", e.body_text())))?;
    let bytes = body::read(&headers, body, state.max_body_bytes, Accepts::Records).await?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
    let format = match body::media_type(&headers).as_deref() {
        Some("text/csv") => ingest::Format::Csv,
        Some("application/x-ndjson" | "application/jsonl") => ingest::Format::JsonLines,
        _ => ingest::Format::Json,
    };
    let by_db = ingest::parse_records(text, format, "request body", query.db.as_deref())
        .map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
    let open = state.lease(&tenant).await?;
    open.reachable(&state.http)?;
    open.writable()?;
    // The body's size stands for what the records will take in the database.
    open.within_quota(
        &state.http,
        bytes.len() as u64,
        tenant.limits.storage_bytes(),
    )
    .await?;
    let store = open.store.clone();
    let _permit = tenant.admission.admit(&state.calls).await?;
    let name = tenant.name.clone();
    let report = tokio::task::spawn_blocking(move || {
        let report = ingest::upsert_all(store.as_ref(), &by_db)?;
        // Searches run on the async workers once the indexes are built: leave them current
        // here, so the next search does not catch up this whole body on a worker. The records
        // are written either way; a search catches up what this could not.
        if let Err(error) = store.sync_index() {
            tracing::warn!(tenant = %name, %error, "the indexes were not brought up to date after an ingest");
        }
        Ok::<_, BackendError>(report)
    })
    .await
    .map_err(|e| panicked("the ingest", e))?
    .map_err(|e| open.failure(ApiError::backend(e.to_string())))?;
    Ok(Json(report).into_response())
}

/// A record as `GET /v1/records/{db}/{id}` answers it: as it was written.
#[derive(Serialize, ToSchema)]
#[schema(as = StoredRecord)]
pub(super) struct StoredRecord {
    db: String,
    origin_db: String,
    id: String,
    text: String,
    #[schema(value_type = Object)]
    metadata: serde_json::Value,
}

/// `GET /v1/records/{db}/{id}`: one record as it was written, read by its key (so its cost does
/// not grow with the store). The Python client's retriever helpers read metrics from it.
#[utoipa::path(get, path = "/v1/records/{db}/{id}", tag = "records",
    params(
        ("db" = String, Path, description = "The record's database; at most 256 bytes."),
        ("id" = String, Path, description = "Its id; at most 256 bytes.")),
    security(("tenant_key" = []), ()),
    responses(
        (status = 200, description = "The record.", body = StoredRecord),
        (status = 404, description = "`not-found`: no such record in that database.", body = FailureBody),
        CallFailures))]
pub(super) async fn read_record(
    State(state): State<Shared>,
    Authenticated(tenant): Authenticated,
    Segment((db, id)): Segment<(String, String)>,
) -> Result<Response, ApiError> {
    for (field, value) in [("db", &db), ("id", &id)] {
        if value.len() > MAX_NAME_BYTES {
            return Err(ApiError::malformed(format!(
                "{field} is {} bytes; at most {MAX_NAME_BYTES} are accepted",
                value.len()
            )));
        }
    }
    let open = state.lease(&tenant).await?;
    open.reachable(&state.http)?;
    let store = open.store.clone();
    let _permit = tenant.admission.admit(&state.calls).await?;
    let (key_db, key_id) = (db.clone(), id.clone());
    let found = tokio::task::spawn_blocking(move || store.record(&key_db, &key_id))
        .await
        .map_err(|e| panicked("the read", e))?
        .map_err(|e| open.failure(ApiError::backend(e.to_string())))?;
    let record =
        found.ok_or_else(|| ApiError::not_found_thing(format!("no record {id} in {db}")))?;
    Ok(Json(StoredRecord {
        db,
        origin_db: record.origin_db,
        id: record.id,
        text: record.text,
        metadata: record.metadata,
    })
    .into_response())
}

/// `GET /metrics`: every tenant's series for the admin key (or single-tenant mode), only its
/// own for a tenant key.
#[utoipa::path(get, path = "/metrics", tag = "operator",
    security(("admin_key" = []), ("tenant_key" = []), ()),
    responses(
        (status = 200, description = "Prometheus text exposition 0.0.4.", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"),
        (status = 401, description = "`unauthorized`.", body = FailureBody)))]
pub(super) async fn metrics(State(state): State<Shared>, headers: HeaderMap) -> Response {
    state.http.refresh_off_thread_counts();
    let text = state.telemetry.render();
    let visible = if state.reads_all_metrics(&headers) {
        text
    } else {
        match state.authenticate(&headers) {
            Ok(tenant) => for_tenant(&text, &tenant.name),
            Err(error) => return error.into_response(),
        }
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        visible,
    )
        .into_response()
}

/// `GET /healthz`: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operator", security(()),
    responses((status = 200, description = "Alive.", body = Health)))]
pub(super) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `/healthz`'s answer.
#[derive(Serialize, ToSchema)]
pub(super) struct Health {
    /// `ok`.
    status: &'static str,
}

/// `/readyz`'s answer.
#[derive(Serialize, ToSchema)]
pub(super) struct Readiness {
    /// `ready` or `not ready`.
    status: &'static str,
    tenants: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_ready: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    /// The tenants that are not ready and why: every one for the admin key (and the keyless
    /// single tenant), a tenant's own for its key, none without a key.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    not_ready_tenants: Vec<TenantNotReady>,
    /// For the admin key: what the server started without (a damaged rollouts file).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// A tenant that is not ready, and why.
#[derive(Serialize, ToSchema)]
pub(super) struct TenantNotReady {
    tenant: String,
    reason: String,
}

/// `GET /readyz`: from flags the background check and the stores keep; never touches a store.
/// It is about the server: 503 only when no tenant can be served (a store every tenant shares
/// is down, or the one tenant is not ready); one tenant's damaged file must not take a server
/// that serves all the others out of rotation.
#[utoipa::path(get, path = "/readyz", tag = "operator", security(("admin_key" = []), ("tenant_key" = []), ()),
    responses(
        (status = 200, description = "At least one tenant is ready; those that are not are counted (and named, with why, for the admin key).", body = Readiness),
        (status = 503, description = "No tenant is ready.", body = Readiness)))]
pub(super) async fn readyz(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let roster = state.roster();
    let tenants = roster.live.len();
    let not_ready: Vec<TenantNotReady> = roster
        .live
        .iter()
        .filter_map(|tenant| {
            tenant.not_ready().map(|reason| TenantNotReady {
                tenant: tenant.name.clone(),
                reason,
            })
        })
        .collect();
    let count = not_ready.len();
    let admin = state.reads_all_metrics(&headers);
    let warnings = match state.rollouts.damage() {
        Some(damage) if admin => vec![damage.to_string()],
        _ => Vec::new(),
    };
    let shown = if admin {
        not_ready
    } else {
        match state.authenticate(&headers) {
            Ok(own) => not_ready
                .into_iter()
                .filter(|entry| entry.tenant == own.name)
                .collect(),
            Err(_) => Vec::new(),
        }
    };
    let mut answer = Readiness {
        status: "ready",
        tenants,
        not_ready: (count > 0).then_some(count),
        reason: (count > 0).then_some("a tenant store is not ready"),
        not_ready_tenants: shown,
        warnings,
    };
    if tenants > 0 && count == tenants {
        answer.status = "not ready";
        (StatusCode::SERVICE_UNAVAILABLE, Json(answer)).into_response()
    } else {
        Json(answer).into_response()
    }
}

/// A tenant's metered usage of one component (or of all, summed).
#[derive(Serialize, ToSchema)]
pub(super) struct UsageFigures {
    /// Calls run in the sandbox (a backfill run is one call).
    calls: u64,
    /// Wall-clock seconds in the sandbox outside backend imports.
    guest_seconds: f64,
    /// Seconds in backend imports (search, metrics databases, embedding store).
    backend_seconds: f64,
    /// Component instances created.
    instantiations: u64,
    /// The largest linear memory an instance reached, in bytes.
    memory_high_water_bytes: u64,
}

impl UsageFigures {
    fn of(totals: &UsageTotals) -> Self {
        Self {
            calls: totals.calls,
            guest_seconds: totals.guest_seconds,
            backend_seconds: totals.backend_seconds,
            instantiations: totals.instantiations,
            memory_high_water_bytes: totals.memory_high_water_bytes,
        }
    }
}

/// One component's share of a tenant's usage.
#[derive(Serialize, ToSchema)]
pub(super) struct ComponentUsage {
    /// The component's short digest (the `component` label of the metering metrics).
    component: String,
    #[serde(flatten)]
    usage: UsageFigures,
}

/// `GET /v1/usage`'s answer: totals since the server started, and the storage in use.
#[derive(Serialize, ToSchema)]
pub(super) struct UsageAnswer {
    tenant: String,
    /// Bytes its database takes now.
    storage_bytes: u64,
    /// Its storage quota: a write past it is refused with `quota-exceeded`.
    storage_quota_bytes: u64,
    #[serde(flatten)]
    total: UsageFigures,
    components: Vec<ComponentUsage>,
}

/// `GET /v1/usage`: the tenant's own metered usage (the `vector_service_tenant_*` metrics),
/// summed and per component.
#[utoipa::path(get, path = "/v1/usage", tag = "operator",
    security(("tenant_key" = []), ()),
    responses(
        (status = 200, description = "The tenant's usage since the server started.", body = UsageAnswer),
        (status = 401, description = "`unauthorized`.", body = FailureBody),
        (status = 503, description = "`unavailable`: the tenant's store cannot be opened.", body = FailureBody)))]
pub(super) async fn usage(
    State(state): State<Shared>,
    Authenticated(tenant): Authenticated,
) -> Result<Response, ApiError> {
    let open = state.lease(&tenant).await?;
    let totals = tenant.closed_usage.with(open.service.usage());
    let quota = tenant.limits.storage_bytes();
    let storage_bytes = open.storage(&state.http, quota).await?.unwrap_or(0);
    let total = UsageFigures::of(&totals.iter().fold(UsageTotals::default(), |mut sum, t| {
        sum.add(t);
        sum
    }));
    let components = totals
        .iter()
        .map(|totals| ComponentUsage {
            component: totals.component.clone(),
            usage: UsageFigures::of(totals),
        })
        .collect();
    Ok(Json(UsageAnswer {
        tenant: tenant.name.clone(),
        storage_bytes,
        storage_quota_bytes: quota,
        total,
        components,
    })
    .into_response())
}
