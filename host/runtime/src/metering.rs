//! Per-tenant metering, always on, for billing and noisy-neighbour hunting: calls, time in the
//! sandbox outside backend imports ("guest time"), time in backend imports, instantiations
//! and the memory high-water mark, per tenant and component. Each figure is a Prometheus
//! handle resolved once per (tenant, component), so a call pays a few atomic adds and one
//! clock read (`cargo bench --bench overhead`, "metering" rows) and no label lookup.
//!
//! Guest time is wall-clock time, not CPU time: the call's duration minus the time its
//! backend imports took, which the deadline checks around each import measure anyway. It
//! includes host work the guest asks for besides backends (logs, metrics, the result cache)
//! and time the thread was preempted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus::{Counter, IntCounter, IntGauge};
use serde::Serialize;

/// How many hex digits of a component's sha256 make its `component` label.
pub const SHORT_DIGEST: usize = 12;

/// One tenant's usage of one component.
pub struct Usage {
    component: String,
    calls: IntCounter,
    guest_seconds: Counter,
    backend_seconds: Counter,
    instantiations: IntCounter,
    memory_high_water: IntGauge,
    high_water: AtomicU64,
}

/// A tenant's totals for one component, as `/v1/usage` shows them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageTotals {
    /// The component's short digest (the `component` label).
    pub component: String,
    /// Calls run (a backfill run is one call).
    pub calls: u64,
    /// Seconds in the sandbox outside backend imports.
    pub guest_seconds: f64,
    /// Seconds in backend imports (search, metrics databases, embedding store).
    pub backend_seconds: f64,
    /// Instances created.
    pub instantiations: u64,
    /// The largest linear memory any instance reached, in bytes.
    pub memory_high_water_bytes: u64,
}

impl UsageTotals {
    /// Count `other`'s usage in too: sums, and the larger memory high-water mark.
    pub fn add(&mut self, other: &UsageTotals) {
        self.calls += other.calls;
        self.guest_seconds += other.guest_seconds;
        self.backend_seconds += other.backend_seconds;
        self.instantiations += other.instantiations;
        self.memory_high_water_bytes = self
            .memory_high_water_bytes
            .max(other.memory_high_water_bytes);
    }
}

/// The Prometheus handles of one (tenant, component), resolved by the telemetry.
pub(crate) struct UsageHandles {
    pub(crate) calls: IntCounter,
    pub(crate) guest_seconds: Counter,
    pub(crate) backend_seconds: Counter,
    pub(crate) instantiations: IntCounter,
    pub(crate) memory_high_water: IntGauge,
}

impl Usage {
    pub(crate) fn new(component: &str, handles: UsageHandles) -> Self {
        let high_water = handles.memory_high_water.get().max(0) as u64;
        Self {
            component: component.to_string(),
            calls: handles.calls,
            guest_seconds: handles.guest_seconds,
            backend_seconds: handles.backend_seconds,
            instantiations: handles.instantiations,
            memory_high_water: handles.memory_high_water,
            high_water: AtomicU64::new(high_water),
        }
    }

    /// The component's short digest.
    pub fn component(&self) -> &str {
        &self.component
    }

    /// A call that took `elapsed`, `in_backends` of it in backend imports.
    pub fn call(&self, elapsed: Duration, in_backends: Duration) {
        self.calls.inc();
        self.guest_seconds
            .inc_by(elapsed.saturating_sub(in_backends).as_secs_f64());
        if !in_backends.is_zero() {
            self.backend_seconds.inc_by(in_backends.as_secs_f64());
        }
    }

    /// An instance was created.
    pub fn instantiated(&self) {
        self.instantiations.inc();
    }

    /// An instance reached `bytes` of linear memory at most.
    pub fn memory_peak(&self, bytes: usize) {
        let bytes = bytes as u64;
        if self.high_water.fetch_max(bytes, Ordering::Relaxed) < bytes {
            // Racing raisers each publish the maximum as they read it after theirs.
            let highest = self.high_water.load(Ordering::Relaxed);
            self.memory_high_water
                .set(i64::try_from(highest).unwrap_or(i64::MAX));
        }
    }

    /// The totals so far (since the process started).
    pub fn totals(&self) -> UsageTotals {
        UsageTotals {
            component: self.component.clone(),
            calls: self.calls.get(),
            guest_seconds: self.guest_seconds.get(),
            backend_seconds: self.backend_seconds.get(),
            instantiations: self.instantiations.get(),
            memory_high_water_bytes: self.high_water.load(Ordering::Relaxed),
        }
    }
}
