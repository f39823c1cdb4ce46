//! The per-store context and its implementation of every import the component uses. Each
//! import is a one-line delegation to the tenant's backends, telemetry, cache or logs.

use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use crate::answers::{Answer, Answers, FoundHits};
use crate::backends::Backends;
use crate::bindings::vector_service::plugin::{
    clock, embedding_store, ids, metrics_db, result_cache, retriever_backend, telemetry, types,
    vector_metrics_db,
};
use crate::bindings::wasi::logging::logging;
use crate::bounds::{self, count_error, query_error};
use crate::cache::{CacheKind, CachedValue, ResultCache};
use crate::deadline::{self, HostDeadlineExceeded};
use crate::host_calls::HostCallBudget;
use crate::limits::CallLimiter;
use crate::limits::SandboxLimits;
use crate::long_work::{Renewal, RunCancelled};
use crate::metering::{Usage, UsageTotals};
use crate::service::ServiceConfig;
use crate::telemetry::{Telemetry, TenantSeries};
use retriever_backend::{BackendHit, BackendHits};
use types::{BackendError, Rates, VectorRef};
use wasmtime::component::Resource;

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
    fn backend<T>(
        &mut self,
        refused: Option<String>,
        work: impl FnOnce(&Backends) -> Result<T, BackendError>,
    ) -> BackendResult<T> {
        if let Some(reason) = refused {
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
            return Err(HostDeadlineExceeded.into());
        }
        Ok(result)
    }
}

fn process_start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

impl logging::Host for VectorServiceCtx {
    fn log(
        &mut self,
        level: logging::Level,
        context: String,
        message: String,
    ) -> wasmtime::Result<()> {
        self.budget.charge(&(&context, &message))?;
        crate::logging::emit(&self.context.tenant, level, &context, &message);
        Ok(())
    }
}

impl clock::Host for VectorServiceCtx {
    fn monotonic_now(&mut self) -> wasmtime::Result<u64> {
        Ok(process_start().elapsed().as_nanos() as u64)
    }

    fn wall_now_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(crate::backends::records::unix_ms())
    }

    fn backoff(&mut self, attempt: u32) -> wasmtime::Result<()> {
        self.budget.charge(&())?;
        let factor = 1u32 << attempt.clamp(1, 6).saturating_sub(1);
        let wanted = self.context.retry_backoff.saturating_mul(factor);
        let left = self.deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(wanted.min(left));
        if wanted >= left {
            return Err(HostDeadlineExceeded.into());
        }
        Ok(())
    }
}

impl ids::Host for VectorServiceCtx {
    fn new_session_id(&mut self) -> wasmtime::Result<String> {
        Ok(uuid::Uuid::new_v4().to_string())
    }
}

impl telemetry::Host for VectorServiceCtx {
    fn observe(&mut self, sample: telemetry::Sample) -> wasmtime::Result<()> {
        self.budget.charge(&())?;
        self.context
            .telemetry
            .observe(&self.context.tenant, &sample);
        Ok(())
    }

    fn record_call(&mut self, event: telemetry::CallEvent) -> wasmtime::Result<()> {
        self.budget.charge(&event)?;
        crate::logging::emit_call(&self.context.tenant, &event);
        self.context.series.record_call(&event);
        Ok(())
    }
}

impl VectorServiceCtx {
    /// The cached value under (`kind`, `key`) if it is current for this call's store.
    fn cache_get(&mut self, kind: CacheKind, key: &str) -> Option<CachedValue> {
        let generation = self.cache_generation()?;
        self.context.cache.get(kind, key, generation)
    }

    /// Keep `value` under (`kind`, `key`) at this call's store generation.
    fn cache_put(&mut self, kind: CacheKind, key: &str, value: CachedValue) {
        let Some(generation) = self.cache_generation() else {
            return;
        };
        let size = self.context.cache.put(kind, key, value, generation);
        self.context.series.cache_size(size);
    }
}

impl result_cache::Host for VectorServiceCtx {
    fn get_hits(&mut self, key: String) -> wasmtime::Result<Option<Vec<BackendHit>>> {
        self.budget.charge(&key)?;
        Ok(match self.cache_get(CacheKind::Search, &key) {
            Some(CachedValue::Hits(hits)) => Some(hits.as_ref().clone()),
            _ => None,
        })
    }

    fn put_answer(&mut self, key: String, answer: Resource<Answer>) -> wasmtime::Result<()> {
        self.budget.charge(&key)?;
        let hits = self.answers.get_mut(&answer).and_then(Answer::take_hits);
        if let Some(hits) = hits {
            self.cache_put(CacheKind::Search, &key, CachedValue::Hits(hits));
        }
        Ok(())
    }

    fn get_context(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.budget.charge(&key)?;
        Ok(match self.cache_get(CacheKind::Context, &key) {
            Some(CachedValue::Text(text)) => Some(text),
            _ => None,
        })
    }

    fn put_context(&mut self, key: String, value: String) -> wasmtime::Result<()> {
        self.budget.charge(&(&key, &value))?;
        self.cache_put(CacheKind::Context, &key, CachedValue::Text(value));
        Ok(())
    }
}

impl types::Host for VectorServiceCtx {}

/// The `retriever-backend` import, linked by hand in [`crate::linker`]: its answer lowers the
/// hits from the allocation the `answer` handle shares (the generated binding would own them).
impl VectorServiceCtx {
    pub(crate) fn search(
        &mut self,
        query: String,
        top_k: u32,
        origins: Vec<String>,
    ) -> BackendResult<(FoundHits, Resource<Answer>)> {
        self.budget.charge(&(&query, &origins))?;
        let refused = query_error(&query)
            .or_else(|| count_error("hits", top_k as usize, bounds::MAX_BACKEND_TOP_K as usize));
        let found = match self.search_backend(refused, &query, top_k, &origins)? {
            Ok(found) => found,
            Err(error) => return Ok(Err(error)),
        };
        let cached = self.context.cache.enabled() && self.cache_generation().is_some();
        let found = FoundHits {
            hits: Arc::new(found.hits),
            confidence: found.confidence,
        };
        let answer = self.answers.hold(Answer::new(&found.hits, cached))?;
        Ok(Ok((found, answer)))
    }

    /// The retriever's hits, with the cache's generation read before them (these hits may be
    /// cached): in the search's own statement when the retriever is the change clock and can,
    /// else by a read of its own first.
    fn search_backend(
        &mut self,
        refused: Option<String>,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> BackendResult<BackendHits> {
        let cache_on = self.context.cache.enabled();
        if cache_on
            && matches!(self.generation, Generation::Unread)
            && self.context.backends.retriever_is_change_clock()
        {
            let combined = self.backend(refused.clone(), |b| {
                Ok(b.retriever.search_reading_generation(query, top_k, origins))
            })?;
            match combined {
                Ok(Some(Ok((found, generation)))) => {
                    self.generation = Generation::Read(Some(generation));
                    return Ok(Ok(found));
                }
                Ok(Some(Err(error))) | Err(error) => return Ok(Err(error)),
                Ok(None) => {}
            }
        }
        if cache_on {
            self.cache_generation();
        }
        self.backend(refused, |b| b.retriever.search(query, top_k, origins))
    }

    /// The guest dropped its handle on an answer.
    pub(crate) fn release_answer(&mut self, rep: u32) {
        self.answers.release(rep);
    }
}

impl metrics_db::Host for VectorServiceCtx {
    fn available(&mut self) -> wasmtime::Result<bool> {
        self.budget.charge(&())?;
        Ok(self
            .backend(None, |b| Ok(b.metrics_db.available()))?
            .unwrap_or(false))
    }

    fn log_patch_outcome(&mut self, outcome: metrics_db::PatchOutcome) -> BackendResult<()> {
        self.budget.charge(&outcome)?;
        let refused = count_error(
            "contributors",
            outcome.contributors.len(),
            bounds::MAX_LOOKUP,
        );
        self.backend(refused, |b| b.metrics_db.log_patch_outcome(&outcome))
    }
}

impl vector_metrics_db::Host for VectorServiceCtx {
    fn record_outcomes(
        &mut self,
        outcomes: Vec<vector_metrics_db::VectorOutcome>,
    ) -> BackendResult<()> {
        self.budget.charge(&outcomes)?;
        let refused = count_error("outcomes", outcomes.len(), bounds::MAX_LOOKUP);
        self.backend(refused, |b| b.vector_metrics_db.record_outcomes(&outcomes))
    }

    fn vector_rates(&mut self, vectors: Vec<VectorRef>) -> BackendResult<Vec<Option<Rates>>> {
        self.budget.charge(&vectors)?;
        let refused = count_error("vectors", vectors.len(), bounds::MAX_LOOKUP);
        self.backend(refused, |b| b.vector_metrics_db.vector_rates(&vectors))
    }

    fn origin_rates(&mut self, origins: Vec<String>) -> BackendResult<Vec<Option<Rates>>> {
        self.budget.charge(&origins)?;
        let refused = count_error("origins", origins.len(), bounds::MAX_LOOKUP);
        self.backend(refused, |b| b.vector_metrics_db.origin_rates(&origins))
    }
}

impl embedding_store::Host for VectorServiceCtx {
    fn databases(&mut self) -> BackendResult<Vec<String>> {
        self.budget.charge(&())?;
        self.backend(None, |b| b.embedding_store.databases())
    }

    fn pending(
        &mut self,
        db: String,
        after: Option<String>,
        limit: u32,
    ) -> BackendResult<Vec<String>> {
        self.start_batch();
        self.budget.charge(&(&db, &after))?;
        let refused = count_error("pending ids", limit as usize, bounds::MAX_BATCH);
        self.backend(refused, |b| {
            b.embedding_store.pending(&db, after.as_deref(), limit)
        })
    }

    fn embed(
        &mut self,
        db: String,
        ids: Vec<String>,
    ) -> BackendResult<embedding_store::EmbedReport> {
        self.start_batch();
        self.budget.charge(&(&db, &ids))?;
        let refused = count_error("records to embed", ids.len(), bounds::MAX_BATCH);
        self.backend(refused, |b| b.embedding_store.embed(&db, &ids))
    }
}
