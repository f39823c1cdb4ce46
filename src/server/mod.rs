//! `vector-service serve`: the component behind an HTTP JSON API for many tenants. Each
//! request is authenticated to a tenant, admitted by that tenant's rate and concurrency
//! limits, and run on a fresh sandboxed instance with the tenant's memory cap and deadline
//! against the tenant's own database. The tenants file and the component can be reloaded
//! without a restart.

mod admin_tenants;
mod admission;
mod auth;
mod body;
mod catalogue;
mod config;
mod connections;
mod descriptors;
mod error;
mod handlers;
mod jobs;
mod loopback;
mod metrics;
mod openapi;
mod readiness;
mod reload;
mod request_log;
mod rollout;
mod roster;
mod routes;
mod segment;
mod state;
pub mod tenants;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Bytes;
use axum::routing::MethodRouter;
use axum::{Extension, Router};
use utoipa::OpenApi as _;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;
use vector_service_runtime::backends::Store;
use vector_service_runtime::{PluginHandle, SandboxEngine, Telemetry};

pub use config::DEFAULT_MAX_COMPONENT_BYTES;
use config::{Compiled, ComponentFiles};
use connections::ConnectionLimits;
use error::ApiError;
use handlers::*;
use metrics::HttpMetrics;
use rollout::Rollouts;
use state::{pool_for, AppState, OpenStore, Shared, TenantState};
use tenants::Tenants;

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
    /// Largest component file read (at start and at reload).
    pub max_component_bytes: u64,
    /// Open connections at most.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (and most a connection stays idle).
    pub header_timeout: Duration,
    /// Where tenants' rollouts are kept (`None`: in memory only).
    pub rollouts: Option<PathBuf>,
    /// The off-thread log writer's count of dropped lines, exported as a metric.
    pub log_drops: Option<vector_service_json_logs::DroppedLines>,
}

/// Run the server until Ctrl-C or SIGTERM; SIGHUP reloads the tenants file and the component.
pub fn serve(
    options: ServeOptions,
    open_store: impl Fn(&str, u32) -> anyhow::Result<Arc<dyn Store>> + Send + Sync + 'static,
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
    // Checked before any store is opened: a limit too low for the tenants is a clear refusal
    // here, not "too many open files" half-way through opening them.
    let max_connections = descriptors::connection_cap(
        options.max_connections,
        tenants.entries.len(),
        descriptors::raise_limit(),
    )
    .map_err(anyhow::Error::msg)?;
    let engine = SandboxEngine::new(pool_for(&tenants))?;
    let never_gone = AtomicBool::new(false);
    let files = ComponentFiles {
        max_bytes: options.max_component_bytes,
        gone: &never_gone,
    };
    // The same function a reload loads through: a start accepts exactly what a reload would.
    let components = config::load_components(
        &tenants,
        options.component.as_deref(),
        &engine,
        &Compiled::default(),
        &files,
    )
    .map_err(anyhow::Error::msg)?;
    let (plugin, catalogue) = (components.server, components.catalogue);
    let sha256 = plugin.digest().to_string();
    tracing::info!(%sha256, allocation = ?engine.allocation(), "component loaded");
    let telemetry = Telemetry::new();
    telemetry.set_instance_slots(engine.instance_slots());
    let plugin = PluginHandle::new(plugin);
    let http = HttpMetrics::register(telemetry.registry())
        .context("registering HTTP metrics")?
        .with_log_drops(options.log_drops.clone());
    let open_store: OpenStore = Arc::new(open_store);
    let rollouts = Rollouts::open(options.rollouts.clone());
    if let Err(error) = rollouts.forget_stale(&tenants) {
        tracing::warn!(%error, "stale rollouts stay in the file (they are ignored)");
    }
    if let Some(damage) = rollouts.damage() {
        tracing::error!(%damage, "started on the rollouts that could be read");
    }
    let (roster, _) = roster::Builder {
        open_store: &open_store,
        plugin: &plugin,
        catalogue: &catalogue,
        rollouts: &rollouts,
        telemetry: &telemetry,
        http: &http,
    }
    .build(tenants, None);
    let limits = ConnectionLimits {
        max_connections,
        ops_reserve: descriptors::OPS_RESERVE,
        header_timeout: options.header_timeout,
        // Calls in flight end by their deadline; a little more for their answers.
        shutdown_grace: roster
            .tenants
            .entries
            .iter()
            .map(|t| Duration::from_millis(t.limits.call_deadline_ms))
            .max()
            .unwrap_or_default()
            + Duration::from_secs(2),
    };
    let state = Arc::new(AppState {
        authenticated: roster.tenants.authenticated,
        roster: RwLock::new(Arc::new(roster)),
        tenants_file: options.tenants,
        open_store,
        plugin,
        catalogue: RwLock::new(Arc::new(catalogue)),
        rollouts,
        serving: std::sync::Mutex::new(sha256),
        component: options.component,
        engine,
        telemetry,
        http,
        max_body_bytes: options.max_body_bytes,
        max_component_bytes: options.max_component_bytes,
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
    probe_all(&state).await;
    tokio::spawn(check_readiness(state.clone()));
    warm_indexes(&state.roster().live);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let address = listener.local_addr()?;
    // Machines (and the tests) read this line to find the port.
    println!("listening on http://{address}");
    use std::io::Write as _;
    std::io::stdout().flush()?;
    tracing::info!(%address, tenants = state.roster().live.len(), "serving");
    tokio::spawn(reload::reload_on_sighup(state.clone()));
    let http = state.http.clone();
    let jobs_state = state.clone();
    let shutdown = async move {
        shutdown_signal().await;
        // Running backfills stop at their next batch boundary; their batches stay committed.
        for tenant in &jobs_state.roster().live {
            tenant.jobs.cancel_all();
        }
    };
    let ops = ops_router(state.clone());
    connections::serve(listener, router(state), ops, limits, http, shutdown).await;
    Ok(())
}

/// Check each newly opened store for damage, then bring its indexes (lexical, vector) up to
/// date, in the background and outside any call's deadline: a damaged file is reported (and
/// refuses writes) before something trips on it, and first searches find the indexes built
/// rather than building them. Both read the whole store once.
fn warm_indexes(tenants: &[Arc<TenantState>]) {
    for tenant in tenants {
        let Some(store) = tenant.store().cloned() else {
            continue;
        };
        let name = tenant.name.clone();
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            if let Err(error) = store.check_integrity() {
                tracing::error!(tenant = %name, %error, "the tenant's store is damaged: it is not ready and refuses writes");
                return;
            }
            match store.sync_index() {
                Ok(_) => {
                    tracing::info!(tenant = %name, seconds = started.elapsed().as_secs_f64(), "indexes ready")
                }
                Err(error) => {
                    tracing::warn!(tenant = %name, %error, "indexes not built ahead of searches")
                }
            }
        });
    }
}

/// Probe every open store once, one after the other (a tenant whose store could not be
/// opened stays not ready until a reload opens it).
async fn probe_all(state: &AppState) {
    for tenant in &state.roster().live {
        if let Some(store) = tenant.store() {
            tenant.readiness.probe(&tenant.name, store.clone()).await;
        }
    }
}

/// Probe the tenants' stores, forever.
async fn check_readiness(state: Shared) {
    loop {
        tokio::time::sleep(readiness::CHECK_INTERVAL).await;
        probe_all(&state).await;
    }
}

/// The API's routes, each from its handler's OpenAPI annotation, and the document they make
/// (served at `/openapi.json`). Those of the request log carry their label in metrics and logs.
fn router(state: Shared) -> Router {
    let authenticated = state.authenticated;
    let logged = |route: &'static str, (schemas, paths, handler): UtoipaMethodRouter<Shared>| {
        let handler: MethodRouter<Shared> = handler.layer(axum::middleware::from_fn_with_state(
            (state.clone(), route),
            request_log::record,
        ));
        (schemas, paths, handler)
    };
    let (router, document) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(logged("search", routes!(search)))
        .routes(logged("context", routes!(context)))
        .routes(logged("contributors", routes!(contributors)))
        .routes(logged("backfill", routes!(start_backfill)))
        .routes(logged("backfill-job", routes!(backfill_job)))
        .routes(logged("backfill-cancel", routes!(cancel_backfill)))
        .routes(logged("records", routes!(records)))
        .routes(logged("usage", routes!(usage)))
        .routes(routes!(metrics))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(logged("reload", routes!(reload::reload)))
        .routes(logged("tenants", routes!(admin_tenants::tenants)))
        .routes(logged("canary", routes!(admin_tenants::canary)))
        .routes(logged("promote", routes!(admin_tenants::promote)))
        .routes(logged("rollback", routes!(admin_tenants::rollback)))
        .routes(routes!(openapi::document))
        .split_for_parts();
    let document = serde_json::to_vec(&document).expect("the OpenAPI document serialises");
    let router = router
        .layer(Extension(openapi::Document(Bytes::from(document))))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(state);
    keyless_on_loopback_only(router, authenticated)
}

/// What a connection on the reserve (past the connection cap) is served: the operator's
/// probes, and for anything else a 503 that says why.
fn ops_router(state: Shared) -> Router {
    let authenticated = state.authenticated;
    let router = Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .route("/readyz", axum::routing::get(readyz))
        .route("/metrics", axum::routing::get(metrics))
        .fallback(|| async {
            let mut refused = ApiError::overloaded();
            refused.message = "the server is at its connection cap: only /healthz, /readyz and /metrics are answered until connections end".into();
            refused
        })
        .with_state(state);
    keyless_on_loopback_only(router, authenticated)
}

/// Without keys, every route answers this machine only.
fn keyless_on_loopback_only(router: Router, authenticated: bool) -> Router {
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
