//! Which tenants are open. A tenant's store, indexes, result cache and connections are opened
//! by its first request and closed when it has been idle for a while, or when the server needs
//! the room: more tenants open than its descriptors allow, or more bytes held than its memory
//! budget. The least recently used go first, and a tenant that a request or a job holds (a
//! lease) is never closed. Start-up opens nothing, so it costs the same for ten tenants or ten
//! thousand (docs/decisions/0013-residency.md).
//!
//! The bytes held are the larger of two figures: the open tenants' own counts (what closing
//! each would free, which chooses how many to close) and, in a server, the process's resident
//! memory above what it held before any tenant opened, which also sees what the counts miss
//! (the allocator's slack, metric series, requests in flight).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use tokio::sync::Semaphore;
use vector_service_runtime::Telemetry;

use super::descriptors::PER_TENANT_AT_REST;
use super::error::ApiError;
use super::handlers::panicked;
use super::memory;
use super::metrics::HttpMetrics;
use super::readiness::Readiness;
use super::state::{OpenStore, OpenTenant, Residence, Roster, TenantState};

/// How long a tenant whose store could not be opened answers 503 before a request tries again.
pub const RETRY_OPEN_AFTER: Duration = Duration::from_secs(2);

/// How long a request waits for one of the server's open slots.
const OPEN_WAIT: Duration = Duration::from_secs(10);

/// Stores opened at once (each reads its whole store into its indexes).
const OPENS_AT_ONCE: usize = 4;

/// How the server bounds its open tenants.
#[derive(Debug, Clone, Copy)]
pub struct ResidencyLimits {
    /// Tenants open at once at most (each holds descriptors and connections).
    pub max_open: usize,
    /// Descriptors the open tenants' stores may hold in all (more than at rest under load).
    pub descriptor_share: usize,
    /// Bytes the open tenants may hold in all: their indexes, copies and result caches.
    pub budget_bytes: usize,
    /// A tenant nobody has used for this long is closed.
    pub idle_close: Duration,
}

/// Why a tenant was closed (the `reason` label of the evictions counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eviction {
    Idle,
    Budget,
    OpenCap,
}

impl Eviction {
    fn label(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Budget => "budget",
            Self::OpenCap => "open-cap",
        }
    }
}

/// The open tenants and the bounds they are kept within.
pub struct Residency {
    limits: Mutex<ResidencyLimits>,
    /// The HTTP series a closed tenant's go with, and its readiness gauge.
    http: HttpMetrics,
    /// The open tenants, in no order (eviction sorts them by last use).
    open: Mutex<Vec<Arc<TenantState>>>,
    opening: Semaphore,
    /// Tenants closed since [`Residency::take_closed`] last asked.
    closed_lately: std::sync::atomic::AtomicUsize,
    started: Instant,
    /// Resident bytes before any tenant opened, when the process's memory is watched
    /// ([`Residency::watching_process_memory`]).
    fixed_bytes: Option<usize>,
    metrics: ResidencyMetrics,
}

impl Residency {
    /// Nothing open yet; metrics in `registry`.
    pub fn new(
        limits: ResidencyLimits,
        registry: &Registry,
        http: HttpMetrics,
    ) -> prometheus::Result<Self> {
        let metrics = ResidencyMetrics::register(registry)?;
        metrics.budget.set(limits.budget_bytes as i64);
        metrics.max_open.set(limits.max_open as i64);
        Ok(Self {
            limits: Mutex::new(limits),
            http,
            open: Mutex::new(Vec::new()),
            opening: Semaphore::new(OPENS_AT_ONCE),
            closed_lately: Default::default(),
            started: Instant::now(),
            fixed_bytes: None,
            metrics,
        })
    }

    /// The same, holding the process's resident memory above what it holds now (its fixed
    /// share) within the budget too: for a server, not for a test beside others.
    pub fn watching_process_memory(mut self) -> Self {
        self.fixed_bytes = memory::resident_bytes();
        if let Some(fixed) = self.fixed_bytes {
            self.metrics.fixed.set(fixed as i64);
        }
        self
    }

    /// The process's resident bytes above its fixed share, when watched.
    fn process_bytes(&self) -> Option<usize> {
        let fixed = self.fixed_bytes?;
        Some(memory::resident_bytes()?.saturating_sub(fixed))
    }

    fn open_tenants(&self) -> MutexGuard<'_, Vec<Arc<TenantState>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The bounds as now.
    pub fn limits(&self) -> ResidencyLimits {
        *self.limits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new memory budget (a reload's); the next sweep keeps it.
    pub fn set_budget(&self, bytes: usize) {
        self.limits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .budget_bytes = bytes;
        self.metrics.budget.set(bytes as i64);
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The tenants open now.
    pub(super) fn open_now(&self) -> Vec<Arc<TenantState>> {
        self.open_tenants().clone()
    }

    /// A lease on `tenant`, opening it first when it is closed: one open at a time per tenant
    /// (later requests wait for it) and [`OPENS_AT_ONCE`] over the server. 503 when its
    /// store cannot be opened (and for [`RETRY_OPEN_AFTER`] after, without trying again).
    pub(super) async fn lease(
        self: &Arc<Self>,
        tenant: &Arc<TenantState>,
        open_store: &OpenStore,
        telemetry: &Telemetry,
    ) -> Result<Arc<OpenTenant>, ApiError> {
        if let Some(open) = tenant.lease_if_open(self.now_ms()) {
            return Ok(open);
        }
        let _turn = tenant.opening.lock().await;
        match tenant.residence() {
            Residence::Open(_) => {
                if let Some(open) = tenant.lease_if_open(self.now_ms()) {
                    return Ok(open);
                }
            }
            Residence::Failed { reason, at } if at.elapsed() < RETRY_OPEN_AFTER => {
                return Err(not_ready(&tenant.name, &reason));
            }
            _ => {}
        }
        let _slot = tokio::time::timeout(OPEN_WAIT, self.opening.acquire())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                let mut busy = ApiError::overloaded();
                busy.message = "the server is opening other tenants; retry shortly".into();
                busy
            })?;
        let (residency, opened) = (self.clone(), tenant.clone());
        let (open_store, telemetry) = (open_store.clone(), telemetry.clone());
        tokio::task::spawn_blocking(move || residency.open(&opened, &open_store, &telemetry))
            .await
            .map_err(|e| panicked("opening the tenant", e))?
            .map_err(|reason| not_ready(&tenant.name, &reason))
    }

    /// Open `tenant`'s store, bring its indexes up to date and lease it; make room first
    /// and after. Runs on the blocking pool.
    fn open(
        &self,
        tenant: &Arc<TenantState>,
        open_store: &OpenStore,
        telemetry: &Telemetry,
    ) -> Result<Arc<OpenTenant>, String> {
        self.make_room(1);
        let started = Instant::now();
        // A connection per call slot, and one for ingest and readiness checks.
        let connections = tenant.limits.max_concurrent.saturating_add(1);
        let store = match open_store(&tenant.name, connections) {
            Ok(store) => store,
            Err(error) => {
                // The whole chain (file paths, server addresses) goes to the log; the answer
                // shows the root cause, which names neither.
                tracing::error!(tenant = %tenant.name, error = %format!("{error:#}"), "the tenant's store could not be opened; its requests get 503 until it can be");
                let reason = format!("its store could not be opened: {}", error.root_cause());
                tenant.set_residence(Residence::Failed {
                    reason: reason.clone(),
                    at: Instant::now(),
                });
                self.metrics.loads.with_label_values(&["failed"]).inc();
                self.http.ready(&tenant.name, false);
                return Err(reason);
            }
        };
        // Checked once per process, before any request reads or writes it: a damaged file is
        // reported (and refuses writes) before something trips on it. It reads the whole
        // file, which a first open pays anyway to build the indexes.
        if !tenant.integrity_checked.swap(true, Ordering::Relaxed) {
            if let Err(error) = store.check_integrity() {
                tracing::error!(tenant = %tenant.name, %error, "the tenant's store is damaged: it is not ready and refuses writes");
            }
        }
        // First searches then find the indexes built rather than build them.
        if let Err(error) = store.sync_index() {
            tracing::warn!(tenant = %tenant.name, %error, "indexes not built ahead of searches");
        }
        let open = Arc::new(OpenTenant::new(
            tenant,
            store,
            Arc::new(Readiness::default()),
            telemetry,
        ));
        tenant.set_residence(Residence::Open(open.clone()));
        self.http.ready(&tenant.name, tenant.not_ready().is_none());
        let leased = tenant.lease_if_open(self.now_ms());
        self.open_tenants().push(tenant.clone());
        let seconds = started.elapsed().as_secs_f64();
        self.metrics.loads.with_label_values(&["opened"]).inc();
        self.metrics.open_seconds.observe(seconds);
        tracing::info!(tenant = %tenant.name, seconds, "tenant opened");
        self.make_room(0);
        leased.ok_or_else(|| "it was closed while it opened".to_string())
    }

    /// Close tenants until the open ones fit with `reserve` more: idle ones past the idle
    /// time first, then least recently used ones while more are open than allowed or they
    /// hold more than the budget. Tenants with a lease are skipped. Returns how many closed.
    pub(super) fn make_room(&self, reserve: usize) -> usize {
        let limits = self.limits();
        let idle_before = self
            .now_ms()
            .saturating_sub(limits.idle_close.as_millis() as u64);
        let mut closed = Vec::new();
        let mut gone: Vec<Arc<TenantState>> = Vec::new();
        {
            let mut open = self.open_tenants();
            let mut held: Vec<(u64, usize, usize, usize)> = open
                .iter()
                .enumerate()
                .map(|(index, tenant)| {
                    let (bytes, descriptors) = tenant
                        .open_state()
                        .map_or((0, 0), |open| (open.resident_bytes(), open.descriptors()));
                    self.metrics
                        .tenant_bytes
                        .with_label_values(&[&tenant.name])
                        .set(bytes as i64);
                    (tenant.last_used_ms(), bytes, descriptors, index)
                })
                .collect();
            let counted: usize = held.iter().map(|(_, bytes, _, _)| bytes).sum();
            let mut in_use = counted.max(self.process_bytes().unwrap_or(0));
            let mut descriptors: usize = held.iter().map(|(_, _, fds, _)| fds).sum();
            // Room for the tenant about to open: its descriptors at rest, and the bytes an
            // open tenant holds on average for each open in flight (so opens running side by
            // side do not carry RSS past the budget before the next count).
            let opening = reserve * PER_TENANT_AT_REST as usize;
            let in_flight = OPENS_AT_ONCE.saturating_sub(self.opening.available_permits());
            let opening_bytes = in_flight.max(reserve) * (counted / open.len().max(1));
            let mut count = open.len();
            held.sort_unstable();
            for (last_used, bytes, fds, index) in held {
                let reason = if count + reserve > limits.max_open
                    || descriptors + opening > limits.descriptor_share
                {
                    Eviction::OpenCap
                } else if in_use + opening_bytes > limits.budget_bytes {
                    Eviction::Budget
                } else if last_used <= idle_before {
                    Eviction::Idle
                } else {
                    // The rest were used more recently and the bounds hold.
                    break;
                };
                if let Some(lease) = open[index].close_if_unused() {
                    closed.push((index, lease, reason));
                    count -= 1;
                    in_use -= bytes.min(in_use);
                    descriptors -= fds;
                }
            }
            // Highest first, so each removal moves only an entry that stays.
            closed.sort_unstable_by_key(|(index, _, _)| std::cmp::Reverse(*index));
            for (index, _, _) in &closed {
                let tenant = open.swap_remove(*index);
                let _ = self
                    .metrics
                    .tenant_bytes
                    .remove_label_values(&[&tenant.name]);
                gone.push(tenant);
            }
            self.metrics.open.set(open.len() as i64);
            self.metrics.in_use.set(in_use as i64);
            self.metrics.descriptors.set(descriptors as i64);
        }
        for ((_, lease, reason), tenant) in closed.iter().zip(&gone) {
            self.metrics
                .evictions
                .with_label_values(&[reason.label()])
                .inc();
            // Its series go with it (the registry grows with the tenants in use, not with
            // every tenant served), its metered totals stay for /v1/usage.
            tenant.closed_usage.add(lease.service.forget_metrics());
            self.http.forget(&tenant.name);
            tracing::info!(tenant = %lease.name, reason = reason.label(), "tenant closed");
        }
        self.closed_lately
            .fetch_add(closed.len(), Ordering::Relaxed);
        // The stores close here, outside the lock (a SQLite close may checkpoint its WAL).
        closed.len()
    }

    /// How many tenants closed since the last call.
    pub(super) fn take_closed(&self) -> usize {
        self.closed_lately.swap(0, Ordering::Relaxed)
    }

    /// After a reload: the open tenants as the new roster has them. A tenant the reload
    /// kept stays; one it rebuilt is replaced by its new state (which took over the store);
    /// one it removed is forgotten (its store closes when its last request ends).
    pub(super) fn follow(&self, roster: &Roster, rebuilt: &[Arc<TenantState>]) {
        let mut open = self.open_tenants();
        let mut removed = Vec::new();
        let mut kept: Vec<Arc<TenantState>> = Vec::with_capacity(open.len());
        for tenant in open.drain(..) {
            match roster.named(&tenant.name) {
                Some(now) if Arc::ptr_eq(now, &tenant) || now.open_state().is_some() => {
                    kept.push(now.clone())
                }
                Some(_) => {}
                None => removed.push(tenant),
            }
        }
        for tenant in rebuilt {
            let listed = kept.iter().any(|known| Arc::ptr_eq(known, tenant));
            if !listed && tenant.open_state().is_some() {
                kept.push(tenant.clone());
            }
        }
        *open = kept;
        self.metrics.open.set(open.len() as i64);
        drop(open);
        // A tenant the file no longer lists takes its series with it; its store closes when
        // the last call or job holding it ends.
        for tenant in removed {
            if let Some(lease) = tenant.open_state() {
                lease.service.forget_metrics();
            }
            self.http.forget(&tenant.name);
            let _ = self
                .metrics
                .tenant_bytes
                .remove_label_values(&[&tenant.name]);
            tracing::info!(tenant = %tenant.name, "tenant removed");
        }
    }
}

/// 503 for a tenant whose store cannot be opened.
fn not_ready(name: &str, reason: &str) -> ApiError {
    let mut refused = ApiError::unavailable(format!("tenant {name:?} is not ready: {reason}"));
    refused.retry_after = Some(RETRY_OPEN_AFTER.as_secs().max(1));
    refused
}

/// The residency's metrics.
struct ResidencyMetrics {
    open: IntGauge,
    max_open: IntGauge,
    budget: IntGauge,
    in_use: IntGauge,
    fixed: IntGauge,
    descriptors: IntGauge,
    tenant_bytes: IntGaugeVec,
    loads: IntCounterVec,
    evictions: IntCounterVec,
    open_seconds: Histogram,
}

impl ResidencyMetrics {
    fn register(registry: &Registry) -> prometheus::Result<Self> {
        let open = IntGauge::new("vector_service_tenants_open", "Tenants open now.")?;
        let max_open = IntGauge::new(
            "vector_service_tenants_open_max",
            "Tenants open at once at most (the descriptor limit's share).",
        )?;
        let budget = IntGauge::new(
            "vector_service_memory_budget_bytes",
            "Bytes the open tenants may hold in all (indexes, copies, result caches).",
        )?;
        let in_use = IntGauge::new(
            "vector_service_memory_budget_used_bytes",
            "Bytes the open tenants held at the last count: their own counts, or the resident memory above the fixed share when that is more.",
        )?;
        let descriptors = IntGauge::new(
            "vector_service_tenants_descriptors",
            "Descriptors the open tenants' stores held at the last count (kept within what the client connections leave of the limit).",
        )?;
        let fixed = IntGauge::new(
            "vector_service_memory_fixed_bytes",
            "Resident bytes before any tenant opened: the share outside the budget.",
        )?;
        let tenant_bytes = IntGaugeVec::new(
            Opts::new(
                "vector_service_tenant_resident_bytes",
                "Bytes an open tenant held at the last count (absent while it is closed).",
            ),
            &["tenant"],
        )?;
        let loads = IntCounterVec::new(
            Opts::new(
                "vector_service_tenant_opens_total",
                "Tenant opens by outcome (opened, failed).",
            ),
            &["outcome"],
        )?;
        let evictions = IntCounterVec::new(
            Opts::new(
                "vector_service_tenant_evictions_total",
                "Tenants closed, by reason: idle, budget (over the memory budget), open-cap (more open than allowed).",
            ),
            &["reason"],
        )?;
        let open_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "vector_service_tenant_open_seconds",
                "Time to open a tenant: its store, and its indexes brought up to date.",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ]),
        )?;
        registry.register(Box::new(open.clone()))?;
        registry.register(Box::new(max_open.clone()))?;
        registry.register(Box::new(budget.clone()))?;
        registry.register(Box::new(in_use.clone()))?;
        registry.register(Box::new(fixed.clone()))?;
        registry.register(Box::new(descriptors.clone()))?;
        registry.register(Box::new(tenant_bytes.clone()))?;
        registry.register(Box::new(loads.clone()))?;
        registry.register(Box::new(evictions.clone()))?;
        registry.register(Box::new(open_seconds.clone()))?;
        for outcome in ["opened", "failed"] {
            loads.with_label_values(&[outcome]);
        }
        for reason in [Eviction::Idle, Eviction::Budget, Eviction::OpenCap] {
            evictions.with_label_values(&[reason.label()]);
        }
        Ok(Self {
            open,
            max_open,
            budget,
            in_use,
            fixed,
            descriptors,
            tenant_bytes,
            loads,
            evictions,
            open_seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use vector_service_runtime::api::SearchRequest;
    use vector_service_runtime::backends::{HashingEmbedder, Record, Store};
    use vector_service_runtime::{Plugin, PluginHandle};
    use vector_service_sqlite::SqliteStore;
    use vector_service_testkit::fixtures::record;

    use super::*;
    use crate::server::tenants::{TenantEntry, TenantLimits};

    fn residency(max_open: usize, budget_bytes: usize) -> Arc<Residency> {
        with_descriptor_share(max_open, budget_bytes, usize::MAX)
    }

    fn with_descriptor_share(
        max_open: usize,
        budget_bytes: usize,
        descriptor_share: usize,
    ) -> Arc<Residency> {
        let limits = ResidencyLimits {
            max_open,
            descriptor_share,
            budget_bytes,
            idle_close: Duration::from_secs(3600),
        };
        let registry = Registry::new();
        let http = HttpMetrics::register(&registry).unwrap();
        Arc::new(Residency::new(limits, &registry, http).unwrap())
    }

    fn tenants(names: &[&str]) -> Vec<Arc<TenantState>> {
        let plugin = Arc::new(Plugin::builtin().unwrap());
        names
            .iter()
            .map(|name| {
                let entry = TenantEntry {
                    name: name.to_string(),
                    api_key_sha256: None,
                    limits: TenantLimits::default(),
                    component: None,
                };
                let handle = PluginHandle::new(plugin.clone());
                Arc::new(TenantState::new(
                    &entry,
                    handle,
                    Arc::default(),
                    Arc::default(),
                ))
            })
            .collect()
    }

    /// Real SQLite stores under `dir`, one file per tenant.
    fn sqlite_stores(dir: &Path) -> OpenStore {
        let dir = dir.to_path_buf();
        Arc::new(move |name: &str, connections: u32| {
            let store = SqliteStore::open(
                &dir.join(format!("{name}.sqlite3")),
                Arc::new(HashingEmbedder),
            )?
            .with_connections(connections as usize);
            Ok(Arc::new(store) as Arc<dyn Store>)
        })
    }

    fn is_open(tenant: &TenantState) -> bool {
        tenant.open_state().is_some()
    }

    #[test]
    fn a_tenant_with_a_lease_is_never_closed_and_closes_once_released() {
        let dir = tempfile::tempdir().unwrap();
        let (stores, telemetry) = (sqlite_stores(dir.path()), Telemetry::new());
        let residency = residency(1, usize::MAX);
        let [a, b] = <[_; 2]>::try_from(tenants(&["a", "b"])).ok().unwrap();
        let held = residency.open(&a, &stores, &telemetry).unwrap();
        // Room for `b` is wanted, but `a` is held: both stay open, over the cap.
        let b_lease = residency.open(&b, &stores, &telemetry).unwrap();
        assert!(is_open(&a) && is_open(&b));
        drop(b_lease);
        // Over the cap: `b` has no lease and closes; `a` is held and stays.
        assert_eq!(residency.make_room(0), 1);
        assert!(is_open(&a) && !is_open(&b));
        // `b`'s series went with it; `a`'s stay.
        let series = telemetry.render();
        assert!(!series.contains(r#"tenant="b""#), "{series}");
        assert!(series.contains(r#"tenant="a""#), "{series}");
        // Room for another is wanted, but `a`'s call is still running.
        assert_eq!(residency.make_room(1), 0);
        assert!(is_open(&a));
        // The call writes and ends: now it can go.
        let kept = record("error", "id-1", "kept", serde_json::json!({}));
        held.store.upsert("db", &[kept]).unwrap();
        let search = SearchRequest {
            query: "kept".into(),
            top_k: None,
            similarity_threshold: None,
            origins: vec![],
        };
        held.service.search("s-1", &search).unwrap();
        drop(held);
        assert_eq!(residency.make_room(1), 1);
        assert!(!is_open(&a));
        // Its metered call outlives its series.
        let usage = a.closed_usage.with(Vec::new());
        assert_eq!(usage.iter().map(|u| u.calls).sum::<u64>(), 1, "{usage:?}");
        assert!(!telemetry.render().contains(r#"tenant="a""#));
        // Its next request opens it again, with what was written before.
        let again = residency.open(&a, &stores, &telemetry).unwrap();
        assert_eq!(again.store.stats().unwrap().databases[0].1, 1);
    }

    #[test]
    fn the_open_tenants_stay_within_the_memory_budget() {
        let dir = tempfile::tempdir().unwrap();
        let stores = sqlite_stores(dir.path());
        let names: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
        let records: Vec<Record> = (0..300)
            .map(|i| {
                let text = format!("record {i} about uploads {}", i * 7);
                record("error", &format!("r{i}"), &text, serde_json::json!({}))
            })
            .collect();
        for name in &names {
            stores(name, 1).unwrap().upsert("db", &records).unwrap();
        }
        let telemetry = Telemetry::new();
        // One tenant's bytes, measured the way the budget counts them.
        let probe = residency(usize::MAX, usize::MAX);
        let one = probe
            .open(&tenants(&["t0"])[0], &stores, &telemetry)
            .unwrap()
            .resident_bytes();
        assert!(one > 10_000, "a 300-record tenant holds its index: {one}");
        let budget = one * 3 + one / 2;
        let residency = residency(usize::MAX, budget);
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let tenants = tenants(&refs);
        for tenant in &tenants {
            drop(residency.open(tenant, &stores, &telemetry).unwrap());
            let held: usize = tenants
                .iter()
                .filter_map(|t| Some(t.open_state()?.resident_bytes()))
                .sum();
            assert!(held <= budget, "{held} bytes held, budget {budget}");
        }
        let open = tenants.iter().filter(|t| is_open(t)).count();
        assert_eq!(open, 3, "as many as the budget holds");
        assert!(is_open(tenants.last().unwrap()), "the newest stays open");
    }

    #[test]
    fn busy_tenants_are_charged_their_descriptors_and_closed_to_keep_the_share() {
        let dir = tempfile::tempdir().unwrap();
        let (stores, telemetry) = (sqlite_stores(dir.path()), Telemetry::new());
        let at_rest = PER_TENANT_AT_REST as usize;
        // Room for three tenants at rest, by the open cap; the share holds three as well.
        let residency = with_descriptor_share(3, usize::MAX, 3 * at_rest);
        let tenants = tenants(&["a", "b", "c"]);
        let leases: Vec<_> = tenants
            .iter()
            .map(|tenant| residency.open(tenant, &stores, &telemetry).unwrap())
            .collect();
        assert_eq!(leases[0].descriptors(), at_rest, "a store at rest");
        // `a` gets busy: a write waits for a lock another process holds, keeping its
        // connection, so a read beside it takes a second connection of its pool.
        let path = dir.path().join("a.sqlite3");
        let other_process = rusqlite::Connection::open(&path).unwrap();
        other_process.execute_batch("BEGIN IMMEDIATE").unwrap();
        std::thread::scope(|scope| {
            let store = &leases[0].store;
            let write = record("error", "w-1", "written", serde_json::json!({}));
            let writer = scope.spawn(move || store.upsert("db", &[write]));
            while leases[0].descriptors() == at_rest {
                store.stats().unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
            other_process.execute_batch("COMMIT").unwrap();
            assert_eq!(writer.join().unwrap().unwrap(), 1);
        });
        assert!(
            leases[0].descriptors() > at_rest,
            "{}",
            leases[0].descriptors()
        );
        drop(leases);
        // Within the open cap, but over the descriptor share: the least recently used goes.
        assert_eq!(residency.make_room(0), 1);
        assert!(!is_open(&tenants[0]) && is_open(&tenants[1]) && is_open(&tenants[2]));
    }
}
