//! Prometheus metrics: the families the component reports through the `telemetry` import plus
//! the host's own sandbox metrics, all labelled with a `tenant` the guest cannot see or forge.
//! Label values come from closed WIT enums, so no call can create an unbounded series.

use prometheus::{
    exponential_buckets, Counter, CounterVec, Encoder, Histogram, HistogramOpts, HistogramVec,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::bindings::vector_service::plugin::telemetry::{
    CallEvent, CallPhase, ErrorKind, Operation, PatchStatus, RunStatus, Sample,
};
use crate::cache::CacheSize;
use crate::metering::{Usage, UsageHandles};

const OPERATIONS: [Operation; 4] = [
    Operation::RetrieverSearch,
    Operation::ContextBuilderBuild,
    Operation::PatchLoggerTrackContributors,
    Operation::EmbeddingBackfillRun,
];

const ERROR_KINDS: [ErrorKind; 5] = [
    ErrorKind::MalformedPrompt,
    ErrorKind::RateLimited,
    ErrorKind::Backend,
    ErrorKind::LimitExceeded,
    ErrorKind::Unavailable,
];

/// The position of `operation` in [`OPERATIONS`].
fn operation_index(operation: Operation) -> usize {
    match operation {
        Operation::RetrieverSearch => 0,
        Operation::ContextBuilderBuild => 1,
        Operation::PatchLoggerTrackContributors => 2,
        Operation::EmbeddingBackfillRun => 3,
    }
}

/// The position of `kind` in [`ERROR_KINDS`].
fn error_kind_index(kind: ErrorKind) -> usize {
    match kind {
        ErrorKind::MalformedPrompt => 0,
        ErrorKind::RateLimited => 1,
        ErrorKind::Backend => 2,
        ErrorKind::LimitExceeded => 3,
        ErrorKind::Unavailable => 4,
    }
}

/// The `function` label: the original module's `Class.method` names.
pub fn function_label(operation: Operation) -> &'static str {
    match operation {
        Operation::RetrieverSearch => "Retriever.search",
        Operation::ContextBuilderBuild => "ContextBuilder.build",
        Operation::PatchLoggerTrackContributors => "PatchLogger.track_contributors",
        Operation::EmbeddingBackfillRun => "EmbeddingBackfill.run",
    }
}

pub(crate) fn error_kind_label(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::MalformedPrompt => "malformed-prompt",
        ErrorKind::RateLimited => "rate-limited",
        ErrorKind::Backend => "backend",
        ErrorKind::LimitExceeded => "limit-exceeded",
        ErrorKind::Unavailable => "unavailable",
    }
}

fn patch_status_label(status: PatchStatus) -> &'static str {
    match status {
        PatchStatus::Success => "success",
        PatchStatus::Failure => "failure",
        PatchStatus::Error => "error",
    }
}

fn run_status_label(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Success => "success",
        RunStatus::Failure => "failure",
    }
}

/// Why the host stopped a call (`vector_service_sandbox_failures_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxFailure {
    /// The call's deadline passed, in guest code (epoch) or in host work done for it.
    Deadline,
    /// The guest tried to grow its memory past the cap.
    Memory,
    /// The guest passed more bytes to host calls than its cap allows.
    HostCallBytes,
    /// Any other trap (a guest bug).
    Trap,
    /// A long run (a backfill) was cancelled by its host.
    Cancelled,
}

impl SandboxFailure {
    /// Every reason, for creating the series at zero.
    pub const ALL: [SandboxFailure; 5] = [
        SandboxFailure::Deadline,
        SandboxFailure::Memory,
        SandboxFailure::HostCallBytes,
        SandboxFailure::Trap,
        SandboxFailure::Cancelled,
    ];

    /// The `reason` label value.
    pub fn label(self) -> &'static str {
        match self {
            SandboxFailure::Deadline => "deadline",
            SandboxFailure::Memory => "memory",
            SandboxFailure::HostCallBytes => "host-call-bytes",
            SandboxFailure::Trap => "trap",
            SandboxFailure::Cancelled => "cancelled",
        }
    }
}

/// The labels of the metering families.
const METERED: [&str; 2] = ["tenant", "component"];

/// The operations that read a query or task, and so may cut one at its bound.
const CUTTING: [Operation; 2] = [Operation::RetrieverSearch, Operation::ContextBuilderBuild];

/// One registry for every tenant of a process.
#[derive(Clone)]
pub struct Telemetry {
    registry: Registry,
    calls: CounterVec,
    latency: HistogramVec,
    result_size: HistogramVec,
    errors: CounterVec,
    patch_tracked: CounterVec,
    patch_duration: HistogramVec,
    backfill_runs: CounterVec,
    backfill_duration: HistogramVec,
    sandbox_failures: CounterVec,
    inputs_cut: CounterVec,
    instantiate: HistogramVec,
    memory_peak: HistogramVec,
    live_instances: IntGaugeVec,
    instance_slots: IntGauge,
    cache_entries: IntGaugeVec,
    cache_bytes: IntGaugeVec,
    metered: Metered,
}

/// The metering families (`crate::metering`), labelled `tenant` and `component`.
#[derive(Clone)]
struct Metered {
    calls: IntCounterVec,
    guest_seconds: CounterVec,
    backend_seconds: CounterVec,
    instantiations: IntCounterVec,
    memory_high_water: IntGaugeVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> CounterVec {
    let metric = CounterVec::new(Opts::new(name, help), labels).expect("valid counter definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let metric = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("valid histogram definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

fn int_counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric =
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let metric = IntGauge::new(name, help).expect("valid gauge definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

/// 100 µs to ~100 s.
fn seconds_buckets() -> Vec<f64> {
    exponential_buckets(0.0001, 4.0, 11).expect("valid buckets")
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// An empty registry with every family defined (series appear per tenant).
    pub fn new() -> Self {
        let registry = Registry::new();
        let r = &registry;
        Self {
            calls: counter(r, "vector_service_calls_total", "Calls of each vector-service operation.", &["tenant", "function"]),
            latency: histogram(r, "vector_service_latency_seconds", "Latency of each vector-service operation.", &["tenant", "function"], seconds_buckets()),
            result_size: histogram(
                r,
                "vector_service_result_size",
                "Result size of each vector-service operation (hits, context bytes, rows, databases).",
                &["tenant", "function"],
                exponential_buckets(1.0, 4.0, 9).expect("valid buckets"),
            ),
            errors: counter(r, "vector_service_errors_total", "Failed calls by error kind.", &["tenant", "function", "kind"]),
            patch_tracked: counter(r, "patch_logger_track_contributors_total", "Patch outcomes tracked, by status.", &["tenant", "status"]),
            patch_duration: histogram(r, "patch_logger_track_contributors_duration_seconds", "Time to record a patch outcome.", &["tenant"], seconds_buckets()),
            backfill_runs: counter(r, "embedding_backfill_runs_total", "Embedding backfill runs, by status.", &["tenant", "status"]),
            backfill_duration: histogram(r, "embedding_backfill_run_duration_seconds", "Duration of an embedding backfill run.", &["tenant"], seconds_buckets()),
            sandbox_failures: counter(r, "vector_service_sandbox_failures_total", "Calls the sandbox stopped, by reason.", &["tenant", "reason"]),
            inputs_cut: counter(r, "vector_service_inputs_cut_total", "Queries and tasks past their bound (16 KiB or 512 words), cut there and answered with a warning.", &["tenant", "function"]),
            instantiate: histogram(r, "vector_service_instantiate_seconds", "Time to instantiate the component for a call.", &["tenant"], exponential_buckets(0.000_001, 4.0, 10).expect("valid buckets")),
            memory_peak: histogram(r, "vector_service_memory_peak_bytes", "Largest linear memory an instance reached (its high-water mark), observed when it is dropped.", &["tenant"], exponential_buckets(65_536.0, 4.0, 9).expect("valid buckets")),
            live_instances: gauge_vec(r, "vector_service_instances_live", "Component instances alive now (pool slots in use, when pooling).", &["tenant"]),
            cache_entries: gauge_vec(r, "vector_service_cache_entries", "Entries in the tenant's result cache.", &["tenant"]),
            cache_bytes: gauge_vec(r, "vector_service_cache_bytes", "Bytes (keys, values, bookkeeping) in the tenant's result cache; bounded by its byte budget.", &["tenant"]),
            instance_slots: gauge(r, "vector_service_instance_slots", "Instance slots the pooling allocator reserved (0: allocating on demand)."),
            metered: Metered {
                calls: int_counter(r, "vector_service_tenant_calls_total", "Calls run in the sandbox, counted by the host (a backfill run is one call).", &METERED),
                guest_seconds: counter(r, "vector_service_tenant_guest_seconds_total", "Wall-clock seconds calls spent in the sandbox outside backend imports.", &METERED),
                backend_seconds: counter(r, "vector_service_tenant_backend_seconds_total", "Seconds calls spent in backend imports (search, metrics databases, embedding store).", &METERED),
                instantiations: int_counter(r, "vector_service_tenant_instantiations_total", "Component instances created.", &METERED),
                memory_high_water: gauge_vec(r, "vector_service_tenant_memory_high_water_bytes", "The largest linear memory any instance reached since the process started.", &METERED),
            },
            registry,
        }
    }

    /// Create every series of `tenant` at zero, so that rates and absent-alerts work from the
    /// first scrape.
    pub fn register_tenant(&self, tenant: &str) {
        drop(self.register_tenant_series(tenant));
    }

    /// Create `tenant`'s series that [`Self::tenant_series`] does not hold (the patch,
    /// backfill and sandbox-failure families) at zero.
    fn register_other_series(&self, tenant: &str) {
        for status in [
            PatchStatus::Success,
            PatchStatus::Failure,
            PatchStatus::Error,
        ] {
            self.patch_tracked
                .with_label_values(&[tenant, patch_status_label(status)]);
        }
        for status in [RunStatus::Success, RunStatus::Failure] {
            self.backfill_runs
                .with_label_values(&[tenant, run_status_label(status)]);
        }
        self.patch_duration.with_label_values(&[tenant]);
        self.backfill_duration.with_label_values(&[tenant]);
        for failure in SandboxFailure::ALL {
            self.sandbox_failures
                .with_label_values(&[tenant, failure.label()]);
        }
        for operation in CUTTING {
            self.inputs_cut
                .with_label_values(&[tenant, function_label(operation)]);
        }
    }

    /// The metering handles of `tenant` running `component` (a short digest), its series
    /// created at zero: for a host that runs its own instances (ours meter themselves).
    pub fn usage(&self, tenant: &str, component: &str) -> Usage {
        let labels = [tenant, component];
        let m = &self.metered;
        Usage::new(
            component,
            UsageHandles {
                calls: m.calls.with_label_values(&labels),
                guest_seconds: m.guest_seconds.with_label_values(&labels),
                backend_seconds: m.backend_seconds.with_label_values(&labels),
                instantiations: m.instantiations.with_label_values(&labels),
                memory_high_water: m.memory_high_water.with_label_values(&labels),
            },
        )
    }

    /// Register `tenant` (every series at zero, as [`Self::register_tenant`]) and return its
    /// series that every call updates, resolved once.
    pub(crate) fn register_tenant_series(&self, tenant: &str) -> TenantSeries {
        self.register_other_series(tenant);
        self.tenant_series(tenant)
    }

    /// The series of `tenant` that every call updates, resolved (and so created at zero).
    fn tenant_series(&self, tenant: &str) -> TenantSeries {
        let per_operation = |family: &HistogramVec| {
            OPERATIONS
                .map(|operation| family.with_label_values(&[tenant, function_label(operation)]))
        };
        TenantSeries {
            calls: OPERATIONS.map(|operation| {
                self.calls
                    .with_label_values(&[tenant, function_label(operation)])
            }),
            latency: per_operation(&self.latency),
            result_size: per_operation(&self.result_size),
            errors: OPERATIONS.map(|operation| {
                ERROR_KINDS.map(|kind| {
                    self.errors.with_label_values(&[
                        tenant,
                        function_label(operation),
                        error_kind_label(kind),
                    ])
                })
            }),
            instantiate: self.instantiate.with_label_values(&[tenant]),
            memory_peak: self.memory_peak.with_label_values(&[tenant]),
            live_instances: self.live_instances.with_label_values(&[tenant]),
            cache_entries: self.cache_entries.with_label_values(&[tenant]),
            cache_bytes: self.cache_bytes.with_label_values(&[tenant]),
        }
    }

    /// Drop every series of `tenant` (its metering of `components` included) from the
    /// registry: for a host that closes a tenant it will not serve for a while, so the
    /// registry (and every scrape) grows with the tenants in use, not with every tenant ever
    /// served. Its counters restart from zero if it is served again, which Prometheus reads
    /// as a counter reset.
    pub fn forget_tenant(&self, tenant: &str, components: &[String]) {
        for operation in OPERATIONS {
            let function = function_label(operation);
            let _ = self.calls.remove_label_values(&[tenant, function]);
            let _ = self.latency.remove_label_values(&[tenant, function]);
            let _ = self.result_size.remove_label_values(&[tenant, function]);
            for kind in ERROR_KINDS {
                let _ =
                    self.errors
                        .remove_label_values(&[tenant, function, error_kind_label(kind)]);
            }
        }
        for status in [
            PatchStatus::Success,
            PatchStatus::Failure,
            PatchStatus::Error,
        ] {
            let _ = self
                .patch_tracked
                .remove_label_values(&[tenant, patch_status_label(status)]);
        }
        for status in [RunStatus::Success, RunStatus::Failure] {
            let _ = self
                .backfill_runs
                .remove_label_values(&[tenant, run_status_label(status)]);
        }
        for failure in SandboxFailure::ALL {
            let _ = self
                .sandbox_failures
                .remove_label_values(&[tenant, failure.label()]);
        }
        for operation in CUTTING {
            let _ = self
                .inputs_cut
                .remove_label_values(&[tenant, function_label(operation)]);
        }
        let _ = self.patch_duration.remove_label_values(&[tenant]);
        let _ = self.backfill_duration.remove_label_values(&[tenant]);
        let _ = self.instantiate.remove_label_values(&[tenant]);
        let _ = self.memory_peak.remove_label_values(&[tenant]);
        let _ = self.live_instances.remove_label_values(&[tenant]);
        let _ = self.cache_entries.remove_label_values(&[tenant]);
        let _ = self.cache_bytes.remove_label_values(&[tenant]);
        let m = &self.metered;
        for component in components {
            let labels = [tenant, component.as_str()];
            let _ = m.calls.remove_label_values(&labels);
            let _ = m.guest_seconds.remove_label_values(&labels);
            let _ = m.backend_seconds.remove_label_values(&labels);
            let _ = m.instantiations.remove_label_values(&labels);
            let _ = m.memory_high_water.remove_label_values(&labels);
        }
    }

    /// Record one sample the component sent for `tenant`.
    pub fn observe(&self, tenant: &str, sample: &Sample) {
        match sample {
            Sample::PatchTracked(patch) => {
                self.patch_tracked
                    .with_label_values(&[tenant, patch_status_label(patch.status)])
                    .inc();
                self.patch_duration
                    .with_label_values(&[tenant])
                    .observe(non_negative(patch.duration_seconds));
            }
            Sample::BackfillRun(run) => {
                self.backfill_runs
                    .with_label_values(&[tenant, run_status_label(run.status)])
                    .inc();
                self.backfill_duration
                    .with_label_values(&[tenant])
                    .observe(non_negative(run.duration_seconds));
            }
            Sample::InputCut(operation) => {
                self.inputs_cut
                    .with_label_values(&[tenant, function_label(*operation)])
                    .inc();
            }
        }
    }

    /// Count a call the sandbox stopped.
    pub fn sandbox_failure(&self, tenant: &str, failure: SandboxFailure) {
        self.sandbox_failures
            .with_label_values(&[tenant, failure.label()])
            .inc();
    }

    /// Record how long an instantiation took.
    pub fn instantiated(&self, tenant: &str, seconds: f64) {
        self.instantiate
            .with_label_values(&[tenant])
            .observe(seconds);
    }

    /// Publish how many instance slots the pool holds (a host calls this after creating its
    /// [`crate::SandboxEngine`]: [`crate::SandboxEngine::instance_slots`]).
    pub fn set_instance_slots(&self, slots: u32) {
        self.instance_slots.set(i64::from(slots));
    }

    /// The registry, to add a host's own metrics or gather them another way.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every metric in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("encoding to memory cannot fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}

/// One tenant's series of the families a call updates, resolved when its context is made: a
/// label lookup hashes the labels and takes the family's lock, and a fresh instance's call
/// would otherwise make up to nine of them.
pub(crate) struct TenantSeries {
    calls: [Counter; 4],
    latency: [Histogram; 4],
    result_size: [Histogram; 4],
    errors: [[Counter; 5]; 4],
    instantiate: Histogram,
    memory_peak: Histogram,
    live_instances: IntGauge,
    cache_entries: IntGauge,
    cache_bytes: IntGauge,
}

impl TenantSeries {
    /// Record the end of one call the component reported (its call metrics; a failed call's
    /// error count too). The start of a call records nothing.
    pub(crate) fn record_call(&self, event: &CallEvent) {
        if let CallPhase::Start = event.phase {
            return;
        }
        let operation = operation_index(event.operation);
        self.calls[operation].inc();
        self.latency[operation].observe(non_negative(event.latency_seconds));
        self.result_size[operation].observe(f64::from(event.result_size));
        if let Some(failure) = &event.failure {
            self.errors[operation][error_kind_index(failure.kind)].inc();
        }
    }

    /// Record how long an instantiation took, and count the instance alive.
    pub(crate) fn instantiated(&self, seconds: f64) {
        self.instantiate.observe(seconds);
        self.live_instances.inc();
    }

    /// Record a dropped instance's memory high-water mark, and count it gone.
    pub(crate) fn dropped(&self, memory_peak: usize) {
        self.memory_peak.observe(memory_peak as f64);
        self.live_instances.dec();
    }

    /// Publish the size of the tenant's result cache.
    pub(crate) fn cache_size(&self, size: CacheSize) {
        self.cache_entries.set(size.entries as i64);
        self.cache_bytes.set(size.bytes as i64);
    }
}

/// A guest cannot make a histogram misbehave with a negative or NaN duration.
fn non_negative(value: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forgotten_tenant_leaves_no_series_and_the_others_keep_theirs() {
        let telemetry = Telemetry::new();
        for tenant in ["gone", "kept"] {
            telemetry.register_tenant(tenant);
            drop(telemetry.usage(tenant, "abc123"));
        }
        let before = telemetry.render();
        assert!(before.contains(r#"tenant="gone""#));
        telemetry.forget_tenant("gone", &["abc123".to_string()]);
        let after = telemetry.render();
        assert!(!after.contains(r#"tenant="gone""#), "{after}");
        let kept = |text: &str| text.matches(r#"tenant="kept""#).count();
        assert_eq!(kept(&after), kept(&before));
        assert!(kept(&after) > 100, "every family of the kept tenant");
    }
}
