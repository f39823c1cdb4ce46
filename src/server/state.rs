//! What every request shares: the tenants' live state, the component, the engine and the
//! metrics; and loading a component onto the server's one engine.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use vector_service_runtime::backends::{Backends, Store};
use vector_service_runtime::{
    Allocation, PluginHandle, SandboxEngine, ServiceConfig, Telemetry, UsageTotals, VectorService,
};

use super::admission::Admission;
use super::catalogue::Catalogue;
use super::error::ApiError;
use super::jobs::Jobs;
use super::metrics::HttpMetrics;
use super::readiness::{self, Readiness};
use super::residency::Residency;
use super::rollout::Rollouts;
use super::tenants::{TenantEntry, TenantLimits, Tenants};

/// One tenant's live state. Requests hold it by `Arc`, so a reload that removes or changes
/// the tenant lets the requests already running finish on the state they started with.
pub(super) struct TenantState {
    pub(super) name: String,
    /// Its store and the service over it while it is open (see `residency`).
    residence: Mutex<Residence>,
    /// One open at a time: requests that find it closed wait for the first one's open.
    pub(super) opening: tokio::sync::Mutex<()>,
    /// When a request last leased it, in ms since the server started: eviction goes by it.
    last_used_ms: AtomicU64,
    /// Whether this process has checked its store for damage (once, at its first open).
    pub(super) integrity_checked: AtomicBool,
    pub(super) admission: Admission,
    /// Kept across reloads, so a job started before one can still be read after it.
    pub(super) jobs: Arc<Jobs>,
    /// What it was metered while open before (kept across reloads): its series go when it
    /// closes, its totals here.
    pub(super) closed_usage: Arc<ClosedUsage>,
    pub(super) config: ServiceConfig,
    pub(super) limits: TenantLimits,
    /// The component it is pinned to (sha256); `None`: the server's.
    pub(super) component: Option<String>,
    /// What its new calls run (its canary included); its own, so a rollout moves it alone.
    pub(super) plugin: PluginHandle,
}

/// Whether a tenant is open.
#[derive(Clone)]
pub(super) enum Residence {
    /// Not opened yet, or closed when idle or for room: its next request opens it.
    Closed,
    /// Open: requests lease it.
    Open(Arc<OpenTenant>),
    /// Its last open failed: its requests get 503 with why until a retry opens it.
    Failed { reason: String, at: Instant },
}

/// A tenant whose store is open. Each request and job holds it (a lease) while it runs, so
/// eviction, which closes only a tenant nobody holds, never closes a store under a call.
pub(super) struct OpenTenant {
    pub(super) name: String,
    pub(super) service: VectorService,
    pub(super) store: Arc<dyn Store>,
    /// Kept across reloads while the tenant keeps its store.
    pub(super) readiness: Arc<Readiness>,
    /// The store's size when last looked at, and when: a write that adds nothing of its own
    /// size (an outcome, a backfill start) trusts a look younger than [`STORAGE_RECHECK`].
    storage_seen: Mutex<Option<(Instant, u64)>>,
}

/// How long a look at a store's size stands for writes that bring no body of their own.
const STORAGE_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

impl OpenTenant {
    /// The service over `store` for `tenant`'s limits and component.
    pub(super) fn new(
        tenant: &TenantState,
        store: Arc<dyn Store>,
        readiness: Arc<Readiness>,
        telemetry: &Telemetry,
    ) -> Self {
        Self {
            name: tenant.name.clone(),
            service: VectorService::new(
                tenant.plugin.clone(),
                Backends::store(store.clone()),
                telemetry.clone(),
                tenant.config.clone(),
            ),
            store,
            readiness,
            storage_seen: Mutex::new(None),
        }
    }

    /// Unless the last health check found the store unreachable: then 503 `unavailable` at
    /// once (counted), instead of a call that waits out its whole deadline for a database
    /// that is down.
    pub(super) fn reachable(&self, http: &HttpMetrics) -> Result<(), ApiError> {
        if self.readiness.unreachable() {
            http.fast_failure(&self.name);
            let mut refused = ApiError::unavailable(format!(
                "tenant {:?}: its store did not answer its last health check; retry once it does",
                self.name
            ));
            refused.retry_after = Some(readiness::CHECK_INTERVAL.as_secs().max(1));
            return Err(refused);
        }
        Ok(())
    }

    /// Whether a write may start: not into a store with a lasting fault.
    pub(super) fn writable(&self) -> Result<(), ApiError> {
        match self.store.fault() {
            Some(fault) => Err(ApiError::store_fault(&self.name, fault)),
            None => Ok(()),
        }
    }

    /// A failed call's error, or the store's lasting fault when the failure found one (a
    /// full disk, a damaged page), as its own typed error.
    pub(super) fn failure(&self, error: ApiError) -> ApiError {
        match self.store.fault() {
            Some(fault) if matches!(error.kind, "backend" | "unavailable") => {
                ApiError::store_fault(&self.name, fault)
                    .with_detail(format!("{}: {}", error.kind, error.message))
            }
            _ => error,
        }
    }

    /// Whether a write bringing about `adding` bytes keeps the store within `quota` bytes;
    /// else 507 `quota-exceeded`, before anything is written (a write adding nothing of its
    /// own trusts a look at the size younger than [`STORAGE_RECHECK`]). A store that cannot say its
    /// size lets the write go on (the write meets the same fault itself).
    pub(super) async fn within_quota(
        &self,
        http: &HttpMetrics,
        adding: u64,
        quota: u64,
    ) -> Result<(), ApiError> {
        if adding == 0 {
            let seen = *self.storage_seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.is_some_and(|(at, used)| at.elapsed() < STORAGE_RECHECK && used < quota) {
                return Ok(());
            }
        }
        match self.storage(http, quota).await? {
            Some(used) if used.saturating_add(adding) > quota => {
                Err(ApiError::quota_exceeded(&self.name, used, adding, quota))
            }
            _ => Ok(()),
        }
    }

    /// The bytes its store takes now, looked at on the blocking pool (a catalog query for
    /// PostgreSQL) and published with `quota` as gauges; `None` when the store cannot say.
    pub(super) async fn storage(
        &self,
        http: &HttpMetrics,
        quota: u64,
    ) -> Result<Option<u64>, ApiError> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.storage_bytes()).await {
            Ok(Ok(used)) => {
                http.storage(&self.name, used, quota);
                *self.storage_seen.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((Instant::now(), used));
                Ok(Some(used))
            }
            Ok(Err(error)) => {
                tracing::warn!(tenant = %self.name, %error, "the store's size could not be read");
                Ok(None)
            }
            Err(panic) => Err(super::handlers::panicked("reading the store's size", panic)),
        }
    }

    /// Bytes it holds in memory: the store's indexes and copies, and the result cache.
    pub(super) fn resident_bytes(&self) -> usize {
        self.store.resident_bytes() + self.service.cache_bytes()
    }

    /// Descriptors its store holds.
    pub(super) fn descriptors(&self) -> usize {
        self.store.descriptors()
    }

    /// Why it is not ready, if it is not: a lasting fault of its store (a damaged file, a
    /// full disk: at once, not at the next probe), or a failed last probe.
    fn not_ready(&self) -> Option<String> {
        self.store
            .fault()
            .map(|fault| fault.to_string())
            .or_else(|| self.readiness.reason())
    }
}

/// A tenant's metered totals from its services closed before, per component.
#[derive(Default)]
pub(super) struct ClosedUsage(Mutex<Vec<UsageTotals>>);

impl ClosedUsage {
    fn lock(&self) -> MutexGuard<'_, Vec<UsageTotals>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keep a closed service's totals.
    pub(super) fn add(&self, closed: Vec<UsageTotals>) {
        let mut kept = self.lock();
        *kept = merged(std::mem::take(&mut *kept), closed);
    }

    /// `open`'s totals (the service serving now) with the kept ones.
    pub(super) fn with(&self, open: Vec<UsageTotals>) -> Vec<UsageTotals> {
        merged(self.lock().clone(), open)
    }
}

/// Totals per component: `more` counted into `into`'s.
fn merged(mut into: Vec<UsageTotals>, more: Vec<UsageTotals>) -> Vec<UsageTotals> {
    for totals in more {
        match into.iter_mut().find(|t| t.component == totals.component) {
            Some(kept) => kept.add(&totals),
            None => into.push(totals),
        }
    }
    into
}

impl TenantState {
    /// A closed tenant for `entry`'s settings, running `plugin`, with `jobs` (a reload
    /// passes the ones it had).
    pub(super) fn new(
        entry: &TenantEntry,
        plugin: PluginHandle,
        jobs: Arc<Jobs>,
        closed_usage: Arc<ClosedUsage>,
    ) -> Self {
        Self {
            name: entry.name.clone(),
            residence: Mutex::new(Residence::Closed),
            opening: tokio::sync::Mutex::new(()),
            last_used_ms: AtomicU64::new(0),
            integrity_checked: AtomicBool::new(false),
            admission: Admission::new(&entry.limits),
            jobs,
            closed_usage,
            config: ServiceConfig {
                tenant: entry.name.clone(),
                limits: entry.limits.sandbox(),
                cache: entry.limits.cache(),
                ..ServiceConfig::default()
            },
            limits: entry.limits,
            component: entry.component.clone(),
            plugin,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Residence> {
        self.residence.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether it is open, closed or failed, as of now.
    pub(super) fn residence(&self) -> Residence {
        self.lock().clone()
    }

    /// Set whether it is open (the residency's opens and closes).
    pub(super) fn set_residence(&self, residence: Residence) {
        *self.lock() = residence;
    }

    /// Its open state, if it is open, without marking it used (for the server's own looks:
    /// probes, views, accounting).
    pub(super) fn open_state(&self) -> Option<Arc<OpenTenant>> {
        match &*self.lock() {
            Residence::Open(open) => Some(open.clone()),
            _ => None,
        }
    }

    /// A lease on it when it is open, marking it used at `now_ms`.
    pub(super) fn lease_if_open(&self, now_ms: u64) -> Option<Arc<OpenTenant>> {
        match &*self.lock() {
            Residence::Open(open) => {
                self.last_used_ms.fetch_max(now_ms, Ordering::Relaxed);
                Some(open.clone())
            }
            _ => None,
        }
    }

    /// When a request last leased it (ms since the server started).
    pub(super) fn last_used_ms(&self) -> u64 {
        self.last_used_ms.load(Ordering::Relaxed)
    }

    /// Close it, if nothing holds it: no request or job has a lease (checked under the lock
    /// leases are taken under, so none can start in between) and no backfill is running.
    /// Returns the open state, for the caller to drop outside its own locks.
    pub(super) fn close_if_unused(&self) -> Option<Arc<OpenTenant>> {
        let mut residence = self.lock();
        let Residence::Open(open) = &*residence else {
            return None;
        };
        if Arc::strong_count(open) > 1 || self.jobs.running().is_some() {
            return None;
        }
        match std::mem::replace(&mut *residence, Residence::Closed) {
            Residence::Open(open) => Some(open),
            _ => None,
        }
    }

    /// Why the tenant is not ready now, if it is not: its last open failed, or its open store
    /// has a fault or failed its last probe. A closed tenant is ready: its next request opens
    /// it. Fit for an HTTP body.
    pub(super) fn not_ready(&self) -> Option<String> {
        match &*self.lock() {
            Residence::Closed => None,
            Residence::Open(open) => open.not_ready(),
            Residence::Failed { reason, .. } => Some(reason.clone()),
        }
    }
}

/// The tenants a request can be for: the tenants file as last loaded and each tenant's live
/// state, in file order (a key resolves to an index into both). Swapped whole by a reload.
pub(super) struct Roster {
    pub(super) tenants: Tenants,
    pub(super) live: Vec<Arc<TenantState>>,
    by_name: HashMap<String, usize>,
}

impl Roster {
    /// `live` (in `tenants`' order) for `tenants`.
    pub(super) fn new(tenants: Tenants, live: Vec<Arc<TenantState>>) -> Self {
        let by_name = live
            .iter()
            .enumerate()
            .map(|(index, tenant)| (tenant.name.clone(), index))
            .collect();
        Self {
            tenants,
            live,
            by_name,
        }
    }

    /// The tenant named `name`, found without a walk: reloads look up every tenant.
    pub(super) fn named(&self, name: &str) -> Option<&Arc<TenantState>> {
        self.by_name.get(name).map(|&index| &self.live[index])
    }
}

/// The server's state, shared by every request.
pub(super) struct AppState {
    /// Read through [`AppState::roster`], swapped by [`AppState::replace_roster`].
    pub(super) roster: RwLock<Arc<Roster>>,
    /// The tenants file reloads re-read; `None`: the single keyless tenant, fixed.
    pub(super) tenants_file: Option<PathBuf>,
    /// Opens a tenant's store (on its first request, and after it was closed).
    pub(super) open_store: OpenStore,
    /// Which tenants are open, within the server's bounds.
    pub(super) residency: Arc<Residency>,
    /// Calls running at once over every tenant: the instance pool's slots, so a call never
    /// finds the pool empty however many tenants there are.
    pub(super) calls: Arc<tokio::sync::Semaphore>,
    /// `--memory-budget-mib`, which a tenants file's budget does not override.
    pub(super) memory_budget_flag: Option<usize>,
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

    /// A lease on `tenant`, opening it if it is closed (see `residency`).
    pub(super) async fn lease(
        &self,
        tenant: &Arc<TenantState>,
    ) -> Result<Arc<OpenTenant>, ApiError> {
        self.residency
            .lease(tenant, &self.open_store, &self.telemetry)
            .await
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
    pub(super) fn replace_roster(&self, roster: Arc<Roster>) {
        *self.roster.write().unwrap_or_else(|p| p.into_inner()) = roster;
    }
}

/// The state as handlers hold it.
pub(super) type Shared = Arc<AppState>;

/// Instance slots a pool reserves at most: calls past them wait for a slot (the server's
/// call semaphore), so the pool does not grow with the tenant count.
pub(super) const MAX_POOLED_INSTANCES: u32 = 512;

/// Pool slots for twice the calls the tenants may run at once (a backfill job takes one of a
/// tenant's call slots), at least 16 and at most [`MAX_POOLED_INSTANCES`], each with room for
/// the largest memory cap (at least the default 64 MiB). The headroom is for reloads: tenants
/// a reload adds need slots too. Calls past the pool's slots wait for one.
pub(super) fn pool_for(tenants: &Tenants) -> Allocation {
    let (calls, memory) = demand(tenants);
    Allocation::Pooling {
        instances: calls.saturating_mul(2).clamp(16, MAX_POOLED_INSTANCES),
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

/// Why `tenants` cannot run on the pool reserved at start, if they cannot: each slot's
/// memory is sized once, so a larger memory cap needs a restart. (More calls than slots wait
/// for one, so a reload that adds tenants always fits.)
pub(super) fn fits_pool(tenants: &Tenants, pool: Allocation) -> Result<(), String> {
    let Allocation::Pooling { memory_bytes, .. } = pool else {
        return Ok(());
    };
    let (_, memory) = demand(tenants);
    if memory > memory_bytes {
        return Err(format!(
            "a tenant's memory_mib ({} MiB) is over the {} MiB each instance slot reserved at start; restart the server to grow the pool",
            memory >> 20,
            memory_bytes >> 20
        ));
    }
    Ok(())
}
