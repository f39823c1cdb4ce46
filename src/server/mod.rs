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
mod memory;
mod metrics;
mod openapi;
mod readiness;
mod reload;
mod request_log;
mod residency;
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
use residency::{Residency, ResidencyLimits};
use rollout::Rollouts;
use state::{pool_for, AppState, OpenStore, Shared};
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
    /// The span exporter's counts, when spans are exported.
    pub trace_stats: Option<vector_service_trace::otlp::ExportStats>,
    /// Tenants open at once at most (lowered to what the descriptor limit holds).
    pub max_open_tenants: usize,
    /// Bytes the open tenants may hold in all; `None`: the tenants file's
    /// `memory_budget_mib`, else [`memory::default_budget`].
    pub memory_budget_bytes: Option<usize>,
    /// A tenant unused for this long is closed.
    pub idle_close: Duration,
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
    // The descriptor limit is shared between connections and open tenants' stores, whatever
    // the tenant count: a limit too low for even a few of each is a clear refusal here.
    let shares = descriptors::split(
        options.max_connections,
        options.max_open_tenants,
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
        .with_log_drops(options.log_drops.clone())
        .with_trace_stats(options.trace_stats.clone());
    let open_store: OpenStore = Arc::new(open_store);
    let residency = Arc::new(
        Residency::new(
            ResidencyLimits {
                max_open: shares.open_tenants,
                descriptor_share: shares.tenant_descriptors,
                budget_bytes: options
                    .memory_budget_bytes
                    .or(tenants.memory_budget_bytes())
                    .unwrap_or_else(memory::default_budget),
                idle_close: options.idle_close,
            },
            telemetry.registry(),
            http.clone(),
        )
        .context("registering residency metrics")?
        .watching_process_memory(),
    );
    tracing::info!(tenants = tenants.entries.len(), limits = ?residency.limits(), "tenants open on their first request");
    let rollouts = Rollouts::open(options.rollouts.clone());
    if let Err(error) = rollouts.forget_stale(&tenants) {
        tracing::warn!(%error, "stale rollouts stay in the file (they are ignored)");
    }
    if let Some(damage) = rollouts.damage() {
        tracing::error!(%damage, "started on the rollouts that could be read");
    }
    let (roster, _, _) = roster::Builder {
        plugin: &plugin,
        catalogue: &catalogue,
        rollouts: &rollouts,
        telemetry: &telemetry,
        http: &http,
    }
    .build(tenants, None);
    let limits = ConnectionLimits {
        max_connections: shares.connections,
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
        residency,
        calls: Arc::new(tokio::sync::Semaphore::new(match engine.instance_slots() {
            0 => state::MAX_POOLED_INSTANCES as usize,
            slots => slots as usize,
        })),
        memory_budget_flag: options.memory_budget_bytes,
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
    tokio::spawn(check_readiness(state.clone()));
    tokio::spawn(sweep(state.clone()));
    // Without a tenants file there is one tenant, whose first search would otherwise pay for
    // its open: open it now (in the background, so the server listens at once).
    if !state.authenticated {
        let warm = state.clone();
        tokio::spawn(async move {
            let tenant = warm.roster().live[0].clone();
            if let Err(error) = warm.lease(&tenant).await {
                tracing::warn!(error = %error.message, "the default tenant was not opened ahead of its first request");
            }
        });
    }
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

/// Probe the open tenants' stores once, one after the other.
async fn probe_all(state: &AppState) {
    for tenant in state.residency.open_now() {
        if let Some(open) = tenant.open_state() {
            open.readiness.probe(&tenant.name, open.store.clone()).await;
            state.http.ready(&tenant.name, tenant.not_ready().is_none());
        }
    }
}

/// Probe the open tenants' stores, forever.
async fn check_readiness(state: Shared) {
    loop {
        tokio::time::sleep(readiness::CHECK_INTERVAL).await;
        probe_all(&state).await;
    }
}

/// How often idle tenants are closed and the memory budget is enforced.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Close idle tenants and keep the budget, forever, and give what closed tenants freed back
/// to the system (off the async workers: closing a store may checkpoint its log).
async fn sweep(state: Shared) {
    loop {
        tokio::time::sleep(SWEEP_INTERVAL).await;
        let residency = state.residency.clone();
        let _ = tokio::task::spawn_blocking(move || {
            residency.make_room(0);
            if residency.take_closed() > 0 {
                memory::release_free_memory();
            }
        })
        .await;
    }
}

/// The API's routes, each from its handler's OpenAPI annotation, and the document they make
/// (served at `/openapi.json`). Those of the request log carry their label in metrics and logs.
fn router(state: Shared) -> Router {
    let authenticated = state.authenticated;
    let logged = |route: &'static str, (schemas, paths, handler): UtoipaMethodRouter<Shared>| {
        // Their series are forgotten by these labels when a tenant closes.
        assert!(
            request_log::ROUTES.contains(&route),
            "{route} is listed in ROUTES"
        );
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
        .routes(logged("record", routes!(read_record)))
        .routes(logged("usage", routes!(usage)))
        .routes(routes!(metrics))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(logged("reload", routes!(reload::reload)))
        .routes(logged("tenants", routes!(admin_tenants::tenants)))
        .routes(logged("warm", routes!(admin_tenants::warm)))
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
