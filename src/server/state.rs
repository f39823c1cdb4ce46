//! What every request shares: the tenants' live state, the component, the engine and the
//! metrics; and loading a component onto the server's one engine.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use vector_service_runtime::backends::Store;
use vector_service_runtime::{
    Allocation, PluginHandle, SandboxEngine, ServiceConfig, Telemetry, VectorService,
};

use super::admission::Admission;
use super::catalogue::Catalogue;
use super::error::ApiError;
use super::jobs::Jobs;
use super::metrics::HttpMetrics;
use super::readiness::{self, Readiness};
use super::rollout::Rollouts;
use super::tenants::{TenantLimits, Tenants};

/// One tenant's live state. Requests hold it by `Arc`, so a reload that removes or changes
/// the tenant lets the requests already running finish on the state they started with.
pub(super) struct TenantState {
    pub(super) name: String,
    /// Its store and the service over it, or why the store could not be opened (the tenant
    /// is then not ready and its requests get 503 until a reload opens it).
    pub(super) open: Result<OpenTenant, String>,
    pub(super) admission: Admission,
    /// Kept across reloads while the tenant keeps its store.
    pub(super) readiness: Arc<Readiness>,
    /// Kept across reloads, so a job started before one can still be read after it.
    pub(super) jobs: Arc<Jobs>,
    pub(super) config: ServiceConfig,
    pub(super) limits: TenantLimits,
    /// The component it is pinned to (sha256); `None`: the server's.
    pub(super) component: Option<String>,
    /// What its new calls run (its canary included); its own, so a rollout moves it alone.
    pub(super) plugin: PluginHandle,
}

/// A tenant whose store is open.
pub(super) struct OpenTenant {
    pub(super) service: VectorService,
    pub(super) store: Arc<dyn Store>,
}

impl TenantState {
    /// The open store and service; 503 `unavailable` when the store could not be opened.
    pub(super) fn open(&self) -> Result<&OpenTenant, ApiError> {
        self.open.as_ref().map_err(|reason| {
            ApiError::unavailable(format!(
                "tenant {:?} is not ready: {reason}; the operator fixes it and reloads",
                self.name
            ))
        })
    }

    /// The open store and service, unless the last health check found the store unreachable:
    /// then 503 `unavailable` at once (counted), instead of a call that waits out its whole
    /// deadline for a database that is down.
    pub(super) fn reachable(&self, http: &HttpMetrics) -> Result<&OpenTenant, ApiError> {
        let open = self.open()?;
        if self.readiness.unreachable() {
            http.fast_failure(&self.name);
            let mut refused = ApiError::unavailable(format!(
                "tenant {:?}: its store did not answer its last health check; retry once it does",
                self.name
            ));
            refused.retry_after = Some(readiness::CHECK_INTERVAL.as_secs().max(1));
            return Err(refused);
        }
        Ok(open)
    }

    /// Whether a write may start: not into a store with a lasting fault.
    pub(super) fn writable(&self) -> Result<(), ApiError> {
        match self.open()?.store.fault() {
            Some(fault) => Err(ApiError::store_fault(&self.name, fault)),
            None => Ok(()),
        }
    }

    /// A failed call's error, or the store's lasting fault when the failure found one (a
    /// full disk, a damaged page), as its own typed error.
    pub(super) fn failure(&self, error: ApiError) -> ApiError {
        match self.store().and_then(|store| store.fault()) {
            Some(fault) if matches!(error.kind, "backend" | "unavailable") => {
                ApiError::store_fault(&self.name, fault)
                    .with_detail(format!("{}: {}", error.kind, error.message))
            }
            _ => error,
        }
    }

    /// Why the tenant is not ready now, if it is not: its store could not be opened, found a
    /// lasting fault of its own (a damaged file, a full disk: at once, not at the next probe),
    /// or failed its last probe. Fit for an HTTP body.
    pub(super) fn not_ready(&self) -> Option<String> {
        match &self.open {
            Err(reason) => Some(reason.clone()),
            Ok(open) => open
                .store
                .fault()
                .map(|fault| fault.to_string())
                .or_else(|| self.readiness.reason()),
        }
    }

    /// The store, when it is open.
    pub(super) fn store(&self) -> Option<&Arc<dyn Store>> {
        self.open.as_ref().ok().map(|open| &open.store)
    }
}

/// The tenants a request can be for: the tenants file as last loaded and each tenant's live
/// state, in file order (a key resolves to an index into both). Swapped whole by a reload.
pub(super) struct Roster {
    pub(super) tenants: Tenants,
    pub(super) live: Vec<Arc<TenantState>>,
}

/// The server's state, shared by every request.
pub(super) struct AppState {
    /// Read through [`AppState::roster`], swapped by [`AppState::replace_roster`].
    pub(super) roster: RwLock<Arc<Roster>>,
    /// The tenants file reloads re-read; `None`: the single keyless tenant, fixed.
    pub(super) tenants_file: Option<PathBuf>,
    /// Opens a tenant's store (at start and for tenants a reload adds or repairs).
    pub(super) open_store: OpenStore,
    pub(super) plugin: PluginHandle,
    /// The allowed components, compiled; swapped with the roster by a reload.
    pub(super) catalogue: RwLock<Arc<Catalogue>>,
    /// Tenants' rollouts (canary, promotion, rollback), kept across restarts.
    pub(super) rollouts: Rollouts,
    /// The sha256 of the component serving now: a reload of the same bytes compiles nothing.
    pub(super) serving: std::sync::Mutex<String>,
    pub(super) component: Option<PathBuf>,
    /// The one engine (and instance pool) every component of this process compiles onto.
    pub(super) engine: SandboxEngine,
    pub(super) telemetry: Telemetry,
    pub(super) http: HttpMetrics,
    pub(super) max_body_bytes: usize,
    /// Largest component file a reload reads.
    pub(super) max_component_bytes: u64,
    /// Whether requests need a tenant key: fixed at start (a tenants file or none).
    pub(super) authenticated: bool,
    /// One reload at a time.
    pub(super) reloading: tokio::sync::Mutex<()>,
}

/// Opens the store of a tenant with the given number of connections.
pub(super) type OpenStore = Arc<dyn Fn(&str, u32) -> anyhow::Result<Arc<dyn Store>> + Send + Sync>;

impl AppState {
    /// The tenants as of now (a cheap snapshot; a reload swaps in a new one).
    pub(super) fn roster(&self) -> Arc<Roster> {
        self.roster
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The sha256 of the component serving now.
    pub(super) fn serving_digest(&self) -> String {
        self.serving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The allowed components as of now.
    pub(super) fn catalogue(&self) -> Arc<Catalogue> {
        self.catalogue
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Pin tenants to `catalogue`'s components from now on.
    pub(super) fn replace_catalogue(&self, catalogue: Catalogue) {
        *self.catalogue.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(catalogue);
    }

    /// Serve `roster` from now on.
    pub(super) fn replace_roster(&self, roster: Roster) {
        *self.roster.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(roster);
    }
}

/// The state as handlers hold it.
pub(super) type Shared = Arc<AppState>;

/// Pool slots for twice the calls the tenants may run at once (a backfill job takes one of a
/// tenant's call slots), at least 16, each with room for the largest memory cap (at least the
/// default 64 MiB). The headroom is for reloads: calls still running on an old component or
/// under a tenant's old limits hold their slots while new ones start, and tenants a reload
/// adds need slots too ([`fits_pool`] refuses a reload that would not fit).
pub(super) fn pool_for(tenants: &Tenants) -> Allocation {
    let (calls, memory) = demand(tenants);
    Allocation::Pooling {
        instances: calls.saturating_mul(2).max(16),
        memory_bytes: memory.max(64 << 20),
    }
}

/// Calls at once and the largest memory cap over every tenant.
fn demand(tenants: &Tenants) -> (u32, usize) {
    let calls = tenants
        .entries
        .iter()
        .map(|t| t.limits.max_concurrent)
        .fold(0u32, u32::saturating_add);
    let memory = tenants
        .entries
        .iter()
        .map(|t| (t.limits.memory_mib as usize) << 20)
        .max()
        .unwrap_or(0);
    (calls, memory)
}

/// Why `tenants` cannot run on the pool reserved at start, if they cannot: the pool is sized
/// once, so growing past it needs a restart.
pub(super) fn fits_pool(tenants: &Tenants, pool: Allocation) -> Result<(), String> {
    let Allocation::Pooling {
        instances,
        memory_bytes,
    } = pool
    else {
        return Ok(());
    };
    let (calls, memory) = demand(tenants);
    if calls > instances {
        return Err(format!(
            "the tenants' max_concurrent add up to {calls}, more than the {instances} instance slots reserved at start; restart the server to grow the pool"
        ));
    }
    if memory > memory_bytes {
        return Err(format!(
            "a tenant's memory_mib ({} MiB) is over the {} MiB each instance slot reserved at start; restart the server to grow the pool",
            memory >> 20,
            memory_bytes >> 20
        ));
    }
    Ok(())
}
