//! The public handle: one method per operation, each on a fresh sandboxed instance.

#[cfg(feature = "async")]
mod asynchronous;

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{ComponentNamedList, Lift, Lower, TypedFunc};

use crate::answers::TooManyAnswers;
use crate::api::{
    BackfillRequest, BackfillResponse, ContextRequest, ContextResponse, Error, SearchRequest,
    SearchResponse, TrackRequest, TrackResponse,
};
use crate::backends::Backends;
use crate::cache::CacheConfig;
use crate::deadline::HostDeadlineExceeded;
use crate::engine::deadline_ticks;
use crate::exports::{Export, Exports, Params, Results, Signature};
use crate::host_calls::HostCallBytesExceeded;
use crate::limits::SandboxLimits;
use crate::linker::prepare_store;
use crate::long_work::{Renewal, RunCancelled, RunLimits};
use crate::metering::{Usage, UsageTotals};
use crate::plugin::Plugin;
use crate::rollout::PluginHandle;
use crate::state::{TenantContext, VectorServiceCtx};
use crate::telemetry::{SandboxFailure, Telemetry};

/// Per-tenant settings; see [`ServiceConfig::default`].
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The `tenant` label on metrics and the `tenant` field on logs.
    pub tenant: String,
    /// Memory cap and deadline of every call.
    pub limits: SandboxLimits,
    /// Wait before retrying a rate-limited backend search (doubling per further attempt).
    pub retry_backoff: Duration,
    /// The tenant's result cache.
    pub cache: CacheConfig,
}

impl Default for ServiceConfig {
    /// Tenant `default`, default limits, a 1 s retry backoff (the original module's), default cache.
    fn default() -> Self {
        Self {
            tenant: "default".to_string(),
            limits: SandboxLimits::default(),
            retry_backoff: Duration::from_secs(1),
            cache: CacheConfig::default(),
        }
    }
}

/// Why a call did not return a result.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The component answered with one of its typed errors.
    #[error("{0}")]
    Rejected(Error),
    /// The sandbox stopped the call (deadline, memory cap or a guest trap); the next call is
    /// served normally.
    #[error("sandbox stopped the call ({}): {detail}", reason.label())]
    Sandbox {
        /// Which limit (or trap) stopped it.
        reason: SandboxFailure,
        /// wasmtime's description of the trap.
        detail: String,
    },
    /// The host could not set up the call (instantiation failed).
    #[error("host failure: {0:#}")]
    Host(anyhow::Error),
}

/// A tenant's view of the plugin: its backends, limits, cache and metrics.
#[derive(Clone)]
pub struct VectorService {
    plugin: PluginHandle,
    context: Arc<TenantContext>,
    limits: SandboxLimits,
}

impl VectorService {
    /// A service for `config.tenant`, registering its metric series in `telemetry`. Pass a
    /// [`PluginHandle`] shared by several services to swap their component at once.
    pub fn new(
        plugin: impl Into<PluginHandle>,
        backends: Backends,
        telemetry: Telemetry,
        config: ServiceConfig,
    ) -> Self {
        let plugin = plugin.into();
        let context = TenantContext::new(backends, telemetry, &config);
        // The metering series of the component it starts with, at zero.
        context.usage(plugin.active().short_digest());
        Self {
            plugin,
            context,
            limits: config.limits,
        }
    }

    /// The tenant's metered usage, per component it has run: totals since the process
    /// started (kept across services of the same tenant on the same telemetry).
    pub fn usage(&self) -> Vec<UsageTotals> {
        self.context.usage_totals()
    }

    /// Bytes the tenant's result cache holds now: what a server's memory budget charges the
    /// service for, beside its store's [`Store::resident_bytes`](crate::backends::Store::resident_bytes).
    pub fn cache_bytes(&self) -> usize {
        self.context.cache.size().bytes
    }

    /// Drop the tenant's series from its telemetry ([`Telemetry::forget_tenant`]), for a
    /// host closing the tenant; call it once no call of the tenant runs. Returns its metered
    /// totals as they were, which the series no longer hold.
    pub fn forget_metrics(&self) -> Vec<UsageTotals> {
        let totals = self.usage();
        let components: Vec<String> = totals.iter().map(|t| t.component.clone()).collect();
        self.context
            .telemetry
            .forget_tenant(&self.context.tenant, &components);
        totals
    }

    /// The tenant this service serves.
    pub fn tenant(&self) -> &str {
        &self.context.tenant
    }

    /// The registry this tenant's metrics go to.
    pub fn telemetry(&self) -> &Telemetry {
        &self.context.telemetry
    }

    /// Retriever.search on a fresh instance.
    pub fn search(
        &self,
        session_id: &str,
        request: &SearchRequest,
    ) -> Result<SearchResponse, ServiceError> {
        self.instance()?.search(session_id, request)
    }

    /// ContextBuilder.build on a fresh instance.
    pub fn build_context(
        &self,
        session_id: &str,
        request: &ContextRequest,
    ) -> Result<ContextResponse, ServiceError> {
        self.instance()?.build_context(session_id, request)
    }

    /// PatchLogger.track_contributors on a fresh instance.
    pub fn track_contributors(
        &self,
        session_id: &str,
        request: &TrackRequest,
    ) -> Result<TrackResponse, ServiceError> {
        self.instance()?.track_contributors(session_id, request)
    }

    /// EmbeddingBackfill.run on a fresh instance, bounded per batch by the call deadline and
    /// not in all (see [`VectorService::backfill_with`]).
    pub fn backfill(
        &self,
        session_id: &str,
        request: &BackfillRequest,
    ) -> Result<BackfillResponse, ServiceError> {
        let run = RunLimits::per_batch(self.limits.call_deadline);
        self.backfill_with(session_id, request, &run)
    }

    /// EmbeddingBackfill.run on a fresh instance as a long run: each batch (an embedding call
    /// and the guest's work until the next) is bounded by `run.batch_deadline`, the run by
    /// `run.budget` if any, and setting `run.cancel` stops it between batches.
    pub fn backfill_with(
        &self,
        session_id: &str,
        request: &BackfillRequest,
        run: &RunLimits,
    ) -> Result<BackfillResponse, ServiceError> {
        self.instance()?.backfill_with(session_id, request, run)
    }

    /// A new sandboxed instance. Calls on one instance share its memory (faster, same tenant);
    /// each method of [`VectorService`] uses a fresh one.
    pub fn instance(&self) -> Result<Instance, ServiceError> {
        let started = Instant::now();
        let plugin = self.plugin.current();
        let state = VectorServiceCtx::new(self.context.clone(), &self.limits);
        let mut store = wasmtime::Store::new(plugin.engine(), state);
        prepare_store(&mut store);
        let result = plugin.pre().instance_pre().instantiate(&mut store);
        let instance = match result {
            Ok(instance) => instance,
            Err(error) => return Err(self.sandbox_error(&store, error)),
        };
        self.context
            .series
            .instantiated(started.elapsed().as_secs_f64());
        let usage = self.context.usage(plugin.short_digest());
        usage.instantiated();
        Ok(Instance {
            service: self.clone(),
            store,
            instance,
            trapped: false,
            calls: 0,
            usage,
            _plugin: plugin,
        })
    }

    fn sandbox_error(
        &self,
        store: &wasmtime::Store<VectorServiceCtx>,
        error: wasmtime::Error,
    ) -> ServiceError {
        let reason = if store.data().limiter.memory_refused {
            SandboxFailure::Memory
        } else if error.downcast_ref::<HostCallBytesExceeded>().is_some() {
            SandboxFailure::HostCallBytes
        } else if error.downcast_ref::<RunCancelled>().is_some() {
            SandboxFailure::Cancelled
        } else if error.downcast_ref::<HostDeadlineExceeded>().is_some()
            || matches!(
                error.downcast_ref::<wasmtime::Trap>(),
                Some(wasmtime::Trap::Interrupt)
            )
        {
            SandboxFailure::Deadline
        } else if error.downcast_ref::<wasmtime::Trap>().is_some()
            || error.downcast_ref::<TooManyAnswers>().is_some()
        {
            SandboxFailure::Trap
        } else {
            return ServiceError::Host(error.into());
        };
        self.context
            .telemetry
            .sandbox_failure(&self.context.tenant, reason);
        tracing::warn!(tenant = %self.context.tenant, reason = reason.label(), error = %format!("{error:#}"), "sandbox stopped a call");
        ServiceError::Sandbox {
            reason,
            detail: format!("{error:#}"),
        }
    }
}

/// Which of the plugin's exports a call runs.
type ExportOf<S> = fn(&Exports) -> &Export<S>;

/// One live instance of the component. After a trap it is replaced transparently by a fresh one
/// on the next call: a failed call never poisons the next.
pub struct Instance {
    service: VectorService,
    store: wasmtime::Store<VectorServiceCtx>,
    instance: wasmtime::component::Instance,
    trapped: bool,
    /// Calls this instance has served (0: the next is its first, on a fresh instance).
    calls: u32,
    /// The tenant's metering of this instance's component.
    usage: Arc<Usage>,
    /// Keeps the plugin alive while this instance runs, even if the
    /// service has moved on to a reloaded one. Declared last: dropped after the store.
    _plugin: Arc<Plugin>,
}

impl Instance {
    /// Retriever.search on this instance.
    pub fn search(
        &mut self,
        session_id: &str,
        request: &SearchRequest,
    ) -> Result<SearchResponse, ServiceError> {
        self.call(None, |exports| &exports.search, (session_id, request))
    }

    /// ContextBuilder.build on this instance.
    pub fn build_context(
        &mut self,
        session_id: &str,
        request: &ContextRequest,
    ) -> Result<ContextResponse, ServiceError> {
        self.call(None, |exports| &exports.build, (session_id, request))
    }

    /// PatchLogger.track_contributors on this instance.
    pub fn track_contributors(
        &mut self,
        session_id: &str,
        request: &TrackRequest,
    ) -> Result<TrackResponse, ServiceError> {
        self.call(
            None,
            |exports| &exports.track_contributors,
            (session_id, request),
        )
    }

    /// EmbeddingBackfill.run on this instance, as a long run (see
    /// [`VectorService::backfill_with`]).
    pub fn backfill_with(
        &mut self,
        session_id: &str,
        request: &BackfillRequest,
        run: &RunLimits,
    ) -> Result<BackfillResponse, ServiceError> {
        let renewal = Some(Renewal::starting_now(run));
        self.call(renewal, |exports| &exports.run, (session_id, request))
    }

    /// One call under the call deadline, or as a long run renewed per batch by `renewal`.
    fn call<S: Signature>(
        &mut self,
        renewal: Option<Renewal>,
        export: ExportOf<S>,
        params: Params<'_, S>,
    ) -> Result<S::Response, ServiceError>
    where
        for<'a> Params<'a, S>: ComponentNamedList + Lower,
        Results<S>: ComponentNamedList + Lift,
    {
        let span = self.call_span::<S>();
        let _entered = span.enter();
        let started = self.begin(renewal)?;
        let outcome = self
            .function(export)
            .and_then(|function| function.call(&mut self.store, params))
            .map(|(result,)| result);
        self.finish(started, outcome, &span)
    }

    /// The span of one call of `S` (see [`crate::spans`]); what it cost is recorded by
    /// [`Instance::finish`].
    fn call_span<S: Signature>(&self) -> tracing::Span {
        crate::work_span!(
            "vector_service.call",
            operation = crate::telemetry::function_label(S::OPERATION),
            tenant = %self.service.context.tenant,
            "component.digest" = self._plugin.short_digest(),
            "instance.fresh" = self.calls == 0 && !self.trapped,
            "guest.seconds" = tracing::field::Empty,
            "backend.seconds" = tracing::field::Empty,
            "memory.peak_bytes" = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    }

    /// A fresh instance after a trap, and the deadline armed: when the call started.
    fn begin(&mut self, renewal: Option<Renewal>) -> Result<Instant, ServiceError> {
        if self.trapped {
            *self = self.service.instance()?;
        }
        let started = Instant::now();
        let deadline = match &renewal {
            Some(renewal) => renewal.next_deadline(),
            None => started + self.service.limits.call_deadline,
        };
        self.store
            .set_epoch_deadline(deadline_ticks(deadline.saturating_duration_since(started)));
        self.store.data_mut().begin_call(deadline, renewal);
        Ok(started)
    }

    /// The call's export in this instance, typed for the call.
    fn function<'a, S: Signature>(
        &mut self,
        export: ExportOf<S>,
    ) -> wasmtime::Result<TypedFunc<Params<'a, S>, Results<S>>>
    where
        for<'b> Params<'b, S>: ComponentNamedList + Lower,
        Results<S>: ComponentNamedList + Lift,
    {
        export(self._plugin.exports())
            .typed(&self.instance, &mut self.store)
            .ok_or_else(|| wasmtime::format_err!("the instance lacks the plugin's export"))
    }

    /// Meter the call and sort its outcome; a trap marks the instance for replacement.
    fn finish<R>(
        &mut self,
        started: Instant,
        outcome: wasmtime::Result<Result<R, Error>>,
        span: &tracing::Span,
    ) -> Result<R, ServiceError> {
        self.calls += 1;
        let elapsed = started.elapsed();
        let in_backends = self.store.data().in_backends;
        self.usage.call(elapsed, in_backends);
        let result = match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(ServiceError::Rejected(error)),
            Err(error) => {
                self.trapped = true;
                Err(self.service.sandbox_error(&self.store, error))
            }
        };
        if !span.is_disabled() {
            span.record(
                "guest.seconds",
                elapsed.saturating_sub(in_backends).as_secs_f64(),
            );
            span.record("backend.seconds", in_backends.as_secs_f64());
            span.record(
                "memory.peak_bytes",
                self.store.data().limiter.memory_peak as u64,
            );
            span.record(
                "outcome",
                match &result {
                    Ok(_) => "ok",
                    Err(ServiceError::Rejected(_)) => "rejected",
                    Err(ServiceError::Sandbox { reason, .. }) => reason.label(),
                    Err(_) => "host-error",
                },
            );
            if let Err(error) = &result {
                crate::spans::failed(span, error);
            }
        }
        result
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let context = &self.service.context;
        let peak = self.store.data().limiter.memory_peak;
        context.series.dropped(peak);
        self.usage.memory_peak(peak);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::backends::memory::MemoryStore;
    use crate::backends::Backends;
    use crate::{Plugin, ServiceConfig, Telemetry, VectorService};

    fn service_of(plugin: &Arc<Plugin>) -> VectorService {
        let backends = Backends::memory(Arc::new(MemoryStore::new()));
        VectorService::new(
            plugin.clone(),
            backends,
            Telemetry::new(),
            ServiceConfig::default(),
        )
    }

    /// An export's index answers nothing in an instance of another component, even one
    /// compiled from the same bytes: a call always runs its own component's function.
    #[test]
    fn an_export_is_typed_only_in_instances_of_its_own_component() {
        let own = Arc::new(Plugin::builtin().unwrap());
        let same_bytes = Arc::new(Plugin::builtin().unwrap());
        let mut instance = service_of(&same_bytes).instance().unwrap();
        let typed_in_instance = |plugin: &Plugin, instance: &mut super::Instance| {
            let exports = plugin.exports();
            let store = &mut instance.store;
            [
                exports
                    .search
                    .typed(&instance.instance, &mut *store)
                    .is_some(),
                exports
                    .build
                    .typed(&instance.instance, &mut *store)
                    .is_some(),
                exports
                    .track_contributors
                    .typed(&instance.instance, &mut *store)
                    .is_some(),
                exports.run.typed(&instance.instance, &mut *store).is_some(),
            ]
        };
        assert_eq!(typed_in_instance(&own, &mut instance), [false; 4]);
        assert_eq!(typed_in_instance(&same_bytes, &mut instance), [true; 4]);
        // And a call through the instance's own plugin answers.
        let request = crate::api::SearchRequest {
            query: "anything".to_string(),
            top_k: None,
            similarity_threshold: None,
            origins: Vec::new(),
        };
        assert!(instance.search("s", &request).is_ok());
    }
}
