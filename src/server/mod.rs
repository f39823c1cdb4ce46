//! `vector-service serve`: the component behind an HTTP JSON API for many tenants. Each
//! request is authenticated to a tenant, admitted by that tenant's rate and concurrency
//! limits, and run on a fresh sandboxed instance with the tenant's memory cap and deadline
//! against the tenant's own database. The component can be reloaded without a restart.

mod admission;
mod body;
mod connections;
mod error;
mod jobs;
mod loopback;
mod metrics;
mod readiness;
mod routes;
pub mod tenants;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use vector_service_host::backends::{Backends, Store};
use vector_service_host::{
    Allocation, Plugin, PluginHandle, RunLimits, ServiceConfig, ServiceError, Telemetry,
    VectorService,
};

use admission::Admission;
use body::Accepts;
use connections::ConnectionLimits;
use error::ApiError;
use jobs::Jobs;
use metrics::{HttpMetrics, UNAUTHENTICATED};
use readiness::Readiness;
use routes::{Answer, BackfillBody, ContextBody, ContributorsBody, SearchBody, Session};
use tenants::{TenantLimits, Tenants};

use crate::progress::ProgressStore;

/// How to run the server.
pub struct ServeOptions {
    /// Address to bind (port 0 picks a free one; the chosen address is printed).
    pub listen: SocketAddr,
    /// The tenants file; `None` runs one `default` tenant without keys, on loopback only.
    pub tenants: Option<PathBuf>,
    /// A component file to serve instead of the built-in one (reloads re-read it).
    pub component: Option<PathBuf>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Open connections at most.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (and most a connection stays idle).
    pub header_timeout: Duration,
}

/// One tenant's live state.
struct TenantState {
    name: String,
    service: VectorService,
    store: Arc<dyn Store>,
    admission: Admission,
    readiness: Readiness,
    jobs: Jobs,
    config: ServiceConfig,
    limits: TenantLimits,
}

struct AppState {
    tenants: Tenants,
    live: Vec<TenantState>,
    plugin: PluginHandle,
    component: Option<PathBuf>,
    allocation: Allocation,
    telemetry: Telemetry,
    http: HttpMetrics,
    max_body_bytes: usize,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
}

type Shared = Arc<AppState>;

/// The component at `path` (or the built-in one) with the server's instance pool, and its
/// sha256 and size.
fn load_plugin(
    path: Option<&PathBuf>,
    allocation: Allocation,
) -> anyhow::Result<(Plugin, String, usize)> {
    let bytes = match path {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => vector_service_host::BUILTIN_COMPONENT.to_vec(),
    };
    let plugin = Plugin::from_bytes_with(&bytes, allocation)?;
    let digest = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((plugin, digest, bytes.len()))
}

/// A pool slot for every call the tenants may run at once (a backfill job takes one of the
/// tenant's call slots), twice over (a reload briefly runs two components), and room for the
/// largest memory cap.
fn pool_for(tenants: &Tenants) -> Allocation {
    let calls: u32 = tenants
        .entries
        .iter()
        .map(|t| t.limits.max_concurrent)
        .sum();
    let memory = tenants
        .entries
        .iter()
        .map(|t| (t.limits.memory_mib as usize) << 20)
        .max()
        .unwrap_or(64 << 20);
    Allocation::Pooling {
        instances: calls.saturating_mul(2).max(8),
        memory_bytes: memory,
    }
}

/// Run the server until Ctrl-C or SIGTERM; SIGHUP reloads the component.
pub fn serve(
    options: ServeOptions,
    open_store: impl Fn(&str, u32) -> anyhow::Result<Arc<dyn Store>>,
) -> anyhow::Result<()> {
    let tenants = match &options.tenants {
        Some(path) => Tenants::load(path)?,
        None => {
            anyhow::ensure!(
                options.listen.ip().is_loopback(),
                "without --tenants the server has no authentication, so it binds to loopback only; {} is not loopback",
                options.listen
            );
            eprintln!("no tenants file: serving one `default` tenant without authentication, on loopback only");
            Tenants::single_default()
        }
    };
    let allocation = pool_for(&tenants);
    let (plugin, sha256, _) = load_plugin(options.component.as_ref(), allocation)?;
    tracing::info!(%sha256, allocation = ?plugin.allocation(), "component loaded");
    let telemetry = Telemetry::new();
    telemetry.set_instance_slots(plugin.instance_slots());
    let plugin = PluginHandle::new(Arc::new(plugin));
    let http = HttpMetrics::register(telemetry.registry()).context("registering HTTP metrics")?;
    let mut live = Vec::new();
    for entry in &tenants.entries {
        // A connection per call slot, and one for ingest and readiness checks.
        let store = open_store(&entry.name, entry.limits.max_concurrent.saturating_add(1))
            .with_context(|| format!("opening the store of tenant {:?}", entry.name))?;
        let config = ServiceConfig {
            tenant: entry.name.clone(),
            limits: entry.limits.sandbox(),
            ..ServiceConfig::default()
        };
        let service = VectorService::new(
            plugin.clone(),
            Backends::store(store.clone()),
            telemetry.clone(),
            config.clone(),
        );
        http.in_flight(&entry.name, 0);
        live.push(TenantState {
            name: entry.name.clone(),
            service,
            store,
            admission: Admission::new(&entry.limits),
            readiness: Readiness::default(),
            jobs: Jobs::default(),
            config,
            limits: entry.limits,
        });
    }
    let limits = ConnectionLimits {
        max_connections: options.max_connections,
        header_timeout: options.header_timeout,
        // Calls in flight end by their deadline; a little more for their answers.
        shutdown_grace: tenants
            .entries
            .iter()
            .map(|t| Duration::from_millis(t.limits.call_deadline_ms))
            .max()
            .unwrap_or_default()
            + Duration::from_secs(2),
    };
    let state = Arc::new(AppState {
        tenants,
        live,
        plugin,
        component: options.component,
        allocation,
        telemetry,
        http,
        max_body_bytes: options.max_body_bytes,
        reloading: tokio::sync::Mutex::new(()),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(run(state, options.listen, limits));
    // A call still running past the grace period is abandoned, not waited for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn run(state: Shared, listen: SocketAddr, limits: ConnectionLimits) -> anyhow::Result<()> {
    for tenant in &state.live {
        tenant
            .readiness
            .probe(&tenant.name, tenant.store.clone())
            .await;
    }
    tokio::spawn(check_readiness(state.clone()));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let address = listener.local_addr()?;
    // Machines (and the tests) read this line to find the port.
    println!("listening on http://{address}");
    use std::io::Write as _;
    std::io::stdout().flush()?;
    tracing::info!(%address, tenants = state.live.len(), "serving");
    tokio::spawn(reload_on_sighup(state.clone()));
    let http = state.http.clone();
    let jobs_state = state.clone();
    let shutdown = async move {
        shutdown_signal().await;
        // Running backfills stop at their next batch boundary; their batches stay committed.
        for tenant in &jobs_state.live {
            tenant.jobs.cancel_all();
        }
    };
    connections::serve(listener, router(state), limits, http, shutdown).await;
    Ok(())
}

/// Probe every tenant's store, forever, one after the other.
async fn check_readiness(state: Shared) {
    loop {
        tokio::time::sleep(readiness::CHECK_INTERVAL).await;
        for tenant in &state.live {
            tenant
                .readiness
                .probe(&tenant.name, tenant.store.clone())
                .await;
        }
    }
}

fn router(state: Shared) -> Router {
    let authenticated = state.tenants.authenticated;
    let router = Router::new()
        .route("/v1/search", post(search))
        .route("/v1/context", post(context))
        .route("/v1/contributors", post(contributors))
        .route("/v1/backfill", post(start_backfill))
        .route(
            "/v1/backfill/{job}",
            get(backfill_job).delete(cancel_backfill),
        )
        .route("/v1/records", post(records))
        .route("/metrics", get(metrics))
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/admin/reload", post(reload))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(state);
    if authenticated {
        router
    } else {
        router.layer(axum::middleware::from_fn(loopback::only_from_this_machine))
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = interrupt => {}
        _ = async { match terminate.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
    }
    tracing::info!("shutdown signal received");
}

async fn reload_on_sighup(state: Shared) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return;
    };
    while hangup.recv().await.is_some() {
        let path = state.component.clone();
        if let Err(error) = swap_component(&state, path).await {
            tracing::error!(error = %error.message, "SIGHUP reload refused; the old component keeps serving");
        }
    }
}

/// The bearer key of a request, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

impl AppState {
    /// The tenant a request is for.
    fn authenticate(&self, headers: &HeaderMap) -> Result<&TenantState, ApiError> {
        if !self.tenants.authenticated {
            return Ok(&self.live[0]);
        }
        bearer(headers)
            .and_then(|key| self.tenants.by_key(key))
            .map(|index| &self.live[index])
            .ok_or_else(ApiError::unauthorized)
    }

    /// The admin key, checked: admin routes are off unless a tenants file configures one.
    fn admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if !self.tenants.has_admin_key() {
            return Err(ApiError::forbidden(
                "admin-disabled",
                "admin routes are off: set admin_key_sha256 in the tenants file",
            ));
        }
        match bearer(headers) {
            Some(key) if self.tenants.is_admin(key) => Ok(()),
            _ => Err(ApiError::unauthorized()),
        }
    }

    /// Whether the request may read every tenant's metrics: the admin key, or the single
    /// unauthenticated tenant (loopback only) that owns them all.
    fn reads_all_metrics(&self, headers: &HeaderMap) -> bool {
        !self.tenants.authenticated || self.admin(headers).is_ok()
    }
}

/// The request's JSON body as `T`: read only after authentication, bounded.
async fn parse<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    let bytes = body::read(headers, body, state.max_body_bytes, Accepts::Json).await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("request body: {e}")))
}

/// A 500 for work that panicked: the panic's message goes to the log, not to the caller.
fn panicked(what: &str, error: tokio::task::JoinError) -> ApiError {
    tracing::error!(error = %error, "{what} panicked");
    ApiError::internal(format!("{what} failed inside the server"))
}

/// Session ids go into the request log; one over the component's bound (which refuses it)
/// is not copied there.
fn loggable_session_id(session_id: String) -> String {
    if session_id.len() > MAX_LOGGED_SESSION_ID {
        String::new()
    } else {
        session_id
    }
}

/// The component's bound on session ids (`wit/vector-service.wit`).
const MAX_LOGGED_SESSION_ID: usize = 256;

/// Count, time and log a finished request.
fn finish(
    state: &AppState,
    tenant: &str,
    route: &'static str,
    session_id: &str,
    started: Instant,
    result: Result<Response, ApiError>,
) -> Response {
    let response = result.unwrap_or_else(IntoResponse::into_response);
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    state.http.request(tenant, route, status, seconds);
    tracing::info!(
        target: "vector_service::http",
        tenant,
        route,
        status,
        session_id,
        latency_ms = seconds * 1e3,
        "request"
    );
    response
}

/// Authenticate, parse, admit, run `operation` on the blocking pool, answer JSON.
async fn operation<B, R>(
    state: Shared,
    headers: HeaderMap,
    body: Body,
    route: &'static str,
    run: fn(&VectorService, &str, B) -> Result<R, ServiceError>,
) -> Response
where
    B: DeserializeOwned + Session + Send + 'static,
    R: Answer + Send + 'static,
{
    let started = Instant::now();
    let tenant = match state.authenticate(&headers) {
        Ok(tenant) => tenant,
        Err(error) => return finish(&state, UNAUTHENTICATED, route, "", started, Err(error)),
    };
    let name = tenant.name.clone();
    let request: B = match parse(&state, &headers, body).await {
        Ok(request) => request,
        Err(error) => return finish(&state, &name, route, "", started, Err(error)),
    };
    let session = request.session_id();
    let mut session_id = loggable_session_id(session.clone());
    let result = async {
        let permit = tenant.admission.admit().await?;
        state.http.in_flight(&name, tenant.admission.busy());
        let service = tenant.service.clone();
        let outcome = tokio::task::spawn_blocking(move || run(&service, &session, request)).await;
        drop(permit);
        state.http.in_flight(&name, tenant.admission.busy());
        Ok(outcome.map_err(|e| panicked("the call", e))??)
    }
    .await
    .map(|answer: R| {
        // The component generates a session id when the caller sent none: log that one.
        if session_id.is_empty() {
            session_id = answer.session_id().to_string();
        }
        Json(answer).into_response()
    });
    finish(&state, &name, route, &session_id, started, result)
}

/// One handler per operation: the route name, the body type and the service method.
macro_rules! operation_handler {
    ($handler:ident, $route:literal, $body:ty, $method:ident) => {
        async fn $handler(State(state): State<Shared>, headers: HeaderMap, body: Body) -> Response {
            operation(
                state,
                headers,
                body,
                $route,
                |service, session, body: $body| service.$method(session, &body.into()),
            )
            .await
        }
    };
}

operation_handler!(search, "search", SearchBody, search);
operation_handler!(context, "context", ContextBody, build_context);
operation_handler!(
    contributors,
    "contributors",
    ContributorsBody,
    track_contributors
);

/// `POST /v1/backfill`: start a backfill job in one of the tenant's call slots; 202 with its
/// id, 409 when one is already running.
async fn start_backfill(State(state): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let tenant = match state.authenticate(&headers) {
        Ok(tenant) => tenant,
        Err(error) => return finish(&state, UNAUTHENTICATED, "backfill", "", started, Err(error)),
    };
    let request: BackfillBody = match parse(&state, &headers, body).await {
        Ok(request) => request,
        Err(error) => return finish(&state, &tenant.name, "backfill", "", started, Err(error)),
    };
    let session_id = loggable_session_id(request.session_id());
    let result = async {
        let conflict = |running: Arc<jobs::Job>| {
            ApiError::conflict(format!("backfill job {} is still running", running.id))
        };
        if let Some(running) = tenant.jobs.running() {
            return Err(conflict(running));
        }
        let permit = tenant.admission.admit().await?;
        let progress = ProgressStore::counting(tenant.store.clone());
        let job = tenant
            .jobs
            .start(request.session_id(), progress.clone())
            .map_err(conflict)?;
        let mut backends = Backends::store(tenant.store.clone());
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
        let (store, shared) = (tenant.store.clone(), state.clone());
        state.http.in_flight(&name, tenant.admission.busy());
        tokio::task::spawn_blocking(move || {
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
            if let Some(tenant) = shared.live.iter().find(|t| t.name == name) {
                shared.http.in_flight(&name, tenant.admission.busy());
            }
            worker.finish(outcome);
            let view = worker.view();
            tracing::info!(
                target: "vector_service::http",
                tenant = %name,
                job = %worker.id,
                status = %view["status"],
                records_done = worker.progress.done(),
                "backfill job finished"
            );
        });
        let mut answer = (StatusCode::ACCEPTED, Json(job.view())).into_response();
        if let Ok(location) = format!("/v1/backfill/{}", job.id).parse() {
            answer.headers_mut().insert(header::LOCATION, location);
        }
        Ok(answer)
    }
    .await;
    finish(
        &state,
        &tenant.name,
        "backfill",
        &session_id,
        started,
        result,
    )
}

/// `GET /v1/backfill/{job}`: the job's progress and outcome (the tenant's own jobs only).
async fn backfill_job(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    with_job(&state, &headers, &id, "backfill-job", |job| {
        Json(job.view()).into_response()
    })
}

/// `DELETE /v1/backfill/{job}`: cancel it; it stops at its next batch boundary.
async fn cancel_backfill(
    State(state): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    with_job(&state, &headers, &id, "backfill-cancel", |job| {
        job.cancel.cancel();
        (StatusCode::ACCEPTED, Json(job.view())).into_response()
    })
}

/// Authenticate, find the tenant's job `id` (404 otherwise) and answer with `answer`.
fn with_job(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    route: &'static str,
    answer: impl FnOnce(&jobs::Job) -> Response,
) -> Response {
    let started = Instant::now();
    let tenant = match state.authenticate(headers) {
        Ok(tenant) => tenant,
        Err(error) => return finish(state, UNAUTHENTICATED, route, "", started, Err(error)),
    };
    let result = tenant
        .jobs
        .get(id)
        .map(|job| answer(&job))
        .ok_or_else(|| ApiError::not_found_thing("no such backfill job"));
    finish(state, &tenant.name, route, "", started, result)
}

#[derive(Deserialize)]
struct RecordsQuery {
    db: Option<String>,
}

/// `POST /v1/records[?db=NAME]`: a JSON array of records or JSON lines, written in one
/// transaction per database; a bad record refuses the whole body (400, with its position).
async fn records(
    State(state): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let tenant = match state.authenticate(&headers) {
        Ok(tenant) => tenant,
        Err(error) => return finish(&state, UNAUTHENTICATED, "records", "", started, Err(error)),
    };
    let name = tenant.name.clone();
    let result = async {
        let Query(query) = Query::<RecordsQuery>::try_from_uri(&uri)
            .map_err(|e| ApiError::bad_request(format!("query string: {}", e.body_text())))?;
        let bytes = body::read(&headers, body, state.max_body_bytes, Accepts::Records).await?;
        let text = std::str::from_utf8(&bytes).map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
        let by_db = crate::ingest::parse_records(text, "request body", query.db.as_deref())
            .map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
        let _permit = tenant.admission.admit().await?;
        let store = tenant.store.clone();
        let report = tokio::task::spawn_blocking(move || {
            let mut report = Vec::new();
            for (db, records) in &by_db {
                let changed = store.upsert(db, records)?;
                report.push(serde_json::json!({"db": db, "records": records.len(), "new_or_changed": changed}));
            }
            Ok::<_, vector_service_host::api::BackendError>(report)
        })
        .await
        .map_err(|e| panicked("the ingest", e))?
        .map_err(|e| ApiError::backend(e.to_string()))?;
        Ok(Json(serde_json::json!({"databases": report})).into_response())
    }
    .await;
    finish(&state, &name, "records", "", started, result)
}

/// `GET /metrics`: every tenant's series for the admin key (or single-tenant mode), only its
/// own for a tenant key.
async fn metrics(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let text = state.telemetry.render();
    let visible = if state.reads_all_metrics(&headers) {
        text
    } else {
        match state.authenticate(&headers) {
            Ok(tenant) => metrics::for_tenant(&text, &tenant.name),
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

/// `GET /readyz`: from the flags the background check keeps; never touches a store.
async fn readyz(State(state): State<Shared>) -> Response {
    let tenants = state.live.len();
    let ready = state
        .live
        .iter()
        .filter(|tenant| tenant.readiness.is_ready())
        .count();
    if ready == tenants {
        Json(serde_json::json!({"status": "ready", "tenants": tenants})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({
                "status": "not ready",
                "tenants": tenants,
                "not_ready": tenants - ready,
                "reason": "a tenant store failed its health check",
            })),
        )
            .into_response()
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReloadBody {
    /// A component file; default: the one the server was started with.
    component: Option<PathBuf>,
}

/// `POST /admin/reload`: load, validate against the WIT and swap in a component; calls in
/// flight finish on the old one. A component that does not fit is refused (400) and the old
/// one keeps serving.
async fn reload(State(state): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    if let Err(error) = state.admin(&headers) {
        return finish(&state, UNAUTHENTICATED, "reload", "", started, Err(error));
    }
    let result = async {
        let bytes = body::read(&headers, body, state.max_body_bytes, Accepts::Json).await?;
        let request: ReloadBody = if bytes.iter().all(u8::is_ascii_whitespace) {
            ReloadBody::default()
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::bad_request(format!("request body: {e}")))?
        };
        let path = request.component.or_else(|| state.component.clone());
        let loaded = swap_component(&state, path).await?;
        Ok(Json(loaded).into_response())
    }
    .await;
    finish(&state, "admin", "reload", "", started, result)
}

/// Load and swap; the JSON answer names what is now serving.
async fn swap_component(
    state: &AppState,
    path: Option<PathBuf>,
) -> Result<serde_json::Value, ApiError> {
    let _one_at_a_time = state.reloading.lock().await;
    let source = path
        .as_ref()
        .map_or_else(|| "built-in".to_string(), |p| p.display().to_string());
    let allocation = state.allocation;
    let loaded = tokio::task::spawn_blocking(move || load_plugin(path.as_ref(), allocation))
        .await
        .map_err(|e| panicked("the reload", e))?;
    match loaded {
        Ok((plugin, sha256, size)) => {
            state.telemetry.set_instance_slots(plugin.instance_slots());
            state.plugin.replace(Arc::new(plugin));
            state.http.reload(true);
            tracing::info!(component = %source, %sha256, size, "component reloaded");
            Ok(
                serde_json::json!({"status": "reloaded", "component": source, "sha256": sha256, "bytes": size}),
            )
        }
        Err(error) => {
            state.http.reload(false);
            Err(ApiError::bad_request(format!(
                "component {source} refused, the old one keeps serving: {error:#}"
            )))
        }
    }
}
