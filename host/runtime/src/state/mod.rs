//! The per-store context. Its implementation of the component's imports is one module per
//! interface below; each import is a short delegation to the tenant's backends, telemetry,
//! cache or logs.

mod clock;
mod embedding_store;
mod logging;
mod metrics;
mod result_cache;
mod retriever;
mod telemetry;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::answers::Answers;
use crate::backends::Backends;
use crate::bindings::vector_service::plugin::types::BackendError;
use crate::cache::ResultCache;
use crate::deadline::{self, HostDeadlineExceeded};
use crate::host_calls::HostCallBudget;
use crate::limits::CallLimiter;
use crate::limits::SandboxLimits;
use crate::long_work::{Renewal, RunCancelled};
use crate::metering::{Usage, UsageTotals};
use crate::service::ServiceConfig;
use crate::telemetry::{Telemetry, TenantSeries};

/// Everything a tenant's calls share: its backends, metrics, result cache and retry backoff.
/// Cheap to hand to a new store (one `Arc`).
pub struct TenantContext {
    pub(crate) tenant: String,
    pub(crate) backends: Backends,
    pub(crate) telemetry: Telemetry,
    /// Its series in `telemetry` that every call updates.
    pub(crate) series: TenantSeries,
    pub(crate) cache: ResultCache,
    pub(crate) retry_backoff: Duration,
    /// Its metering, one entry per component it has run.
    usage: RwLock<Vec<Arc<Usage>>>,
}

impl TenantContext {
    /// The context of `config.tenant`, registering its metric series in `telemetry`.
    pub fn new(backends: Backends, telemetry: Telemetry, config: &ServiceConfig) -> Arc<Self> {
        Arc::new(Self {
            tenant: config.tenant.clone(),
            backends,
            series: telemetry.register_tenant_series(&config.tenant),
            telemetry,
            cache: ResultCache::new(config.cache),
            retry_backoff: config.retry_backoff,
            usage: RwLock::new(Vec::new()),
        })
    }

    /// The metering of this tenant's calls on `component` (a short digest); created, with
    /// its series at zero, on first use.
    pub fn usage(&self, component: &str) -> Arc<Usage> {
        let known = |usage: &[Arc<Usage>]| {
            usage
                .iter()
                .find(|usage| usage.component() == component)
                .cloned()
        };
        if let Some(usage) = known(&self.usage.read().unwrap_or_else(|p| p.into_inner())) {
            return usage;
        }
        let mut usage = self.usage.write().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = known(&usage) {
            return found;
        }
        let created = Arc::new(self.telemetry.usage(&self.tenant, component));
        usage.push(created.clone());
        created
    }

    /// The tenant's totals per component it has run, as metered by this context's
    /// telemetry (totals of the process, kept across contexts of the same tenant).
    pub fn usage_totals(&self) -> Vec<UsageTotals> {
        self.usage
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|usage| usage.totals())
            .collect()
    }

    /// The tenant's name (the `tenant` label and log field).
    pub fn tenant(&self) -> &str {
        &self.tenant
    }
}

/// What our imports need in a store's data: the tenant's context and the current call's
/// limits. Put one in your own store data and expose it with
/// [`VectorServiceView`](crate::linker::VectorServiceView).
pub struct VectorServiceCtx {
    pub(crate) context: Arc<TenantContext>,
    pub(crate) limiter: CallLimiter,
    pub(crate) budget: HostCallBudget,
    /// When the current call (or batch of a long run) must end; host work done for it stops
    /// there too.
    pub(crate) deadline: Instant,
    /// For a long run (a backfill): how each batch renews the deadline, and its cancel flag.
    pub(crate) renewal: Option<Renewal>,
    /// The store's generation as this call first saw it, before reading any data.
    generation: Generation,
    /// Time the current call spent in backend imports (metering).
    pub(crate) in_backends: Duration,
    /// The current call is async: at each epoch tick its guest code yields to the executor
    /// (until the deadline, which still stops it).
    pub(crate) yields: bool,
    /// The search answers the guest holds handles on.
    answers: Answers,
}

/// The store's generation for the result cache, read once per call before any data is read:
/// a write after that moves the store on, so what this call caches is already stale to the
/// next one (conservative, never stale).
#[derive(Debug, Clone, Copy)]
enum Generation {
    Unread,
    /// `None`: the backends have no change clock; the cache relies on its expiry.
    Read(Option<u64>),
    /// Reading it failed: this call neither reads nor fills the cache.
    Unknown,
}

/// What a backend import returns to the guest: its own typed error, or a trap.
type BackendResult<T> = wasmtime::Result<Result<T, BackendError>>;

impl VectorServiceCtx {
    /// A context for calls of `tenant` under `limits`: a fresh memory limiter and host-call
    /// byte budget, and a deadline `limits.call_deadline` from now.
    pub fn new(tenant: Arc<TenantContext>, limits: &SandboxLimits) -> Self {
        Self {
            context: tenant,
            limiter: CallLimiter::new(limits),
            budget: HostCallBudget::new(limits.host_call_bytes),
            deadline: Instant::now() + limits.call_deadline,
            renewal: None,
            generation: Generation::Unread,
            yields: false,
            in_backends: Duration::ZERO,
            answers: Answers::default(),
        }
    }

    /// The generation cached answers of this call are checked against and kept with; `None`
    /// when the cache must be bypassed. Read at most once per call.
    fn cache_generation(&mut self) -> Option<Option<u64>> {
        if let Generation::Unread = self.generation {
            self.generation = match &self.context.backends.change_clock {
                None => Generation::Read(None),
                Some(clock) => match deadline::within(self.deadline, || clock.generation()) {
                    Ok(generation) => Generation::Read(Some(generation)),
                    Err(error) => {
                        tracing::warn!(tenant = %self.context.tenant, %error, "the store's generation could not be read; the result cache is bypassed for this call");
                        Generation::Unknown
                    }
                },
            };
        }
        match self.generation {
            Generation::Read(generation) => Some(generation),
            Generation::Unread | Generation::Unknown => None,
        }
    }

    /// A new call on a kept instance: its own deadline (or long-run renewal), a fresh
    /// host-call byte budget, and the store's generation read afresh.
    pub(crate) fn begin_call(&mut self, deadline: Instant, renewal: Option<Renewal>) {
        self.budget.reset();
        self.deadline = deadline;
        self.renewal = renewal;
        self.generation = Generation::Unread;
        self.in_backends = Duration::ZERO;
    }

    /// When the current call must end.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the long run this call belongs to was cancelled.
    pub(crate) fn cancelled(&self) -> bool {
        self.renewal
            .as_ref()
            .is_some_and(|renewal| renewal.cancel.is_cancelled())
    }

    /// A long run's next batch starts: a new deadline and a new host-call byte budget.
    fn start_batch(&mut self) {
        if let Some(renewal) = &self.renewal {
            self.deadline = renewal.next_deadline();
            self.budget.reset();
        }
    }

    /// Run backend work for the current call under its deadline. Work that ran past it traps
    /// the call ([`HostDeadlineExceeded`]), whatever the backend answered; a request over the
    /// host's bounds is refused with a typed error before any backend sees it.
    /// The two clock reads of the deadline checks measure the work for metering.
    /// `span` (a [`crate::work_span!`]) covers the work and says how it ended.
    fn backend<T>(
        &mut self,
        span: tracing::Span,
        refused: Option<String>,
        work: impl FnOnce(&Backends) -> Result<T, BackendError>,
    ) -> BackendResult<T> {
        let _entered = span.enter();
        if let Some(reason) = refused {
            crate::spans::failed(&span, &reason);
            return Ok(Err(BackendError::Failed(reason)));
        }
        if self.cancelled() {
            return Err(RunCancelled.into());
        }
        let started = Instant::now();
        if started >= self.deadline {
            return Err(HostDeadlineExceeded.into());
        }
        let result = deadline::within(self.deadline, || work(&self.context.backends));
        let ended = Instant::now();
        self.in_backends += ended.saturating_duration_since(started);
        if ended >= self.deadline {
            crate::spans::failed(&span, &HostDeadlineExceeded);
            return Err(HostDeadlineExceeded.into());
        }
        if let Err(error) = &result {
            crate::spans::failed(&span, error);
        }
        Ok(result)
    }
}
