//! The server's own metrics, in the same registry as the component's: requests by tenant,
//! route and status, their latency, and calls in flight. Label values are bounded: routes are
//! the fixed route names, tenants come from the tenants file (`unauthenticated` otherwise).

use vector_service_json_logs::DroppedLines;
use vector_service_trace::otlp::ExportStats;

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Tenant label of requests that did not authenticate.
pub const UNAUTHENTICATED: &str = "unauthenticated";

/// Request counters, latency and in-flight gauges.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    latency: HistogramVec,
    in_flight: IntGaugeVec,
    reloads: IntCounterVec,
    fast_failures: IntCounterVec,
    connections_open: IntGauge,
    connections_refused: IntCounter,
    accept_errors: IntCounter,
    log_lines_dropped: IntCounter,
    storage: IntGaugeVec,
    storage_quota: IntGaugeVec,
    ready: IntGaugeVec,
    /// The log writer's own count of lines it dropped (`None` when logs are written inline).
    log_drops: Option<DroppedLines>,
    spans_exported: IntCounter,
    spans_dropped: IntCounterVec,
    /// The span exporter's own counts (`None` when no spans are exported).
    trace_stats: Option<ExportStats>,
}

impl HttpMetrics {
    /// Register the families in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new(
                "vector_service_http_requests_total",
                "HTTP requests by tenant, route and status code.",
            ),
            &["tenant", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "vector_service_http_request_duration_seconds",
                "HTTP request latency by tenant and route, admission wait included.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ]),
            &["tenant", "route"],
        )?;
        let in_flight = IntGaugeVec::new(
            Opts::new(
                "vector_service_calls_in_flight",
                "Component calls running now, per tenant (admission slots taken).",
            ),
            &["tenant"],
        )?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "vector_service_component_reloads_total",
                "Component reloads by outcome.",
            ),
            &["outcome"],
        )?;
        let fast_failures = IntCounterVec::new(
            Opts::new(
                "vector_service_store_fast_failures_total",
                "Requests answered 503 at once because the tenant's store was unreachable at its last health check.",
            ),
            &["tenant"],
        )?;
        let connections_open = IntGauge::new(
            "vector_service_connections_open",
            "HTTP connections open now.",
        )?;
        let connections_refused = IntCounter::new(
            "vector_service_connections_refused_total",
            "Connections closed on arrival because the connection cap was reached.",
        )?;
        let accept_errors = IntCounter::new(
            "vector_service_accept_errors_total",
            "Failures to accept a connection (e.g. out of file descriptors).",
        )?;
        let log_lines_dropped = IntCounter::new(
            "vector_service_log_lines_dropped_total",
            "Log lines dropped because the log writer thread was behind (its queue was full).",
        )?;
        let storage = IntGaugeVec::new(
            Opts::new(
                "vector_service_tenant_storage_bytes",
                "Bytes the tenant's database took at its last write request.",
            ),
            &["tenant"],
        )?;
        let storage_quota = IntGaugeVec::new(
            Opts::new(
                "vector_service_tenant_storage_quota_bytes",
                "The tenant's storage quota (storage_mib), as of its last write request.",
            ),
            &["tenant"],
        )?;
        let ready = IntGaugeVec::new(
            Opts::new(
                "vector_service_tenant_ready",
                "1 while a tenant is ready, 0 when its last open failed or its open store has a lasting fault or failed its last health check (absent while it is closed).",
            ),
            &["tenant"],
        )?;
        let spans_exported = IntCounter::new(
            "vector_service_trace_spans_exported_total",
            "Spans the OpenTelemetry collector accepted (0 unless OTEL_EXPORTER_OTLP_ENDPOINT is set).",
        )?;
        let spans_dropped = IntCounterVec::new(
            Opts::new(
                "vector_service_trace_spans_dropped_total",
                "Spans dropped: queue_full (the exporter was behind) or export_failed (the collector refused or could not be reached).",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(spans_exported.clone()))?;
        registry.register(Box::new(spans_dropped.clone()))?;
        for reason in ["queue_full", "export_failed"] {
            spans_dropped.with_label_values(&[reason]);
        }
        registry.register(Box::new(ready.clone()))?;
        registry.register(Box::new(storage.clone()))?;
        registry.register(Box::new(storage_quota.clone()))?;
        registry.register(Box::new(log_lines_dropped.clone()))?;
        registry.register(Box::new(connections_open.clone()))?;
        registry.register(Box::new(connections_refused.clone()))?;
        registry.register(Box::new(accept_errors.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(fast_failures.clone()))?;
        for outcome in ["success", "refused"] {
            reloads.with_label_values(&[outcome]);
        }
        Ok(Self {
            requests,
            latency,
            in_flight,
            reloads,
            fast_failures,
            connections_open,
            connections_refused,
            accept_errors,
            log_lines_dropped,
            storage,
            storage_quota,
            ready,
            log_drops: None,
            spans_exported,
            spans_dropped,
            trace_stats: None,
        })
    }

    /// Count the lines the off-thread log writer behind `drops` drops.
    pub fn with_log_drops(mut self, drops: Option<DroppedLines>) -> Self {
        self.log_drops = drops;
        self
    }

    /// Count the spans the exporter behind `stats` exports and drops.
    pub fn with_trace_stats(mut self, stats: Option<ExportStats>) -> Self {
        self.trace_stats = stats;
        self
    }

    /// Bring the counters kept by other threads (the log writer's dropped lines, the span
    /// exporter's counts) up to date (before a scrape).
    pub fn refresh_off_thread_counts(&self) {
        fn catch_up(counter: &IntCounter, total: u64) {
            let counted = counter.get();
            if total > counted {
                counter.inc_by(total - counted);
            }
        }
        if let Some(drops) = &self.log_drops {
            catch_up(&self.log_lines_dropped, drops.get());
        }
        if let Some(stats) = &self.trace_stats {
            catch_up(&self.spans_exported, stats.exported());
            catch_up(
                &self.spans_dropped.with_label_values(&["queue_full"]),
                stats.dropped_queue_full(),
            );
            catch_up(
                &self.spans_dropped.with_label_values(&["export_failed"]),
                stats.dropped_export_failed(),
            );
        }
    }

    /// A connection was accepted.
    pub fn connection_opened(&self) {
        self.connections_open.inc();
    }

    /// A connection ended.
    pub fn connection_closed(&self) {
        self.connections_open.dec();
    }

    /// A connection was closed on arrival: the cap was reached.
    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// Accepting a connection failed.
    pub fn accept_error(&self) {
        self.accept_errors.inc();
    }

    /// One finished request.
    pub fn request(&self, tenant: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[tenant, route, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[tenant, route])
            .observe(seconds);
    }

    /// Set a tenant's calls in flight (and make its other per-tenant series exist at zero).
    pub fn in_flight(&self, tenant: &str, calls: usize) {
        self.in_flight
            .with_label_values(&[tenant])
            .set(calls as i64);
        self.fast_failures.with_label_values(&[tenant]);
    }

    /// A request failed fast: its tenant's store was known to be unreachable.
    pub fn fast_failure(&self, tenant: &str) {
        self.fast_failures.with_label_values(&[tenant]).inc();
    }

    /// A tenant's database size and quota, as a write request found them.
    pub fn storage(&self, tenant: &str, bytes: u64, quota: u64) {
        self.storage.with_label_values(&[tenant]).set(bytes as i64);
        self.storage_quota
            .with_label_values(&[tenant])
            .set(quota as i64);
    }

    /// Whether `tenant` is ready, as its last probe or open found it.
    pub fn ready(&self, tenant: &str, ready: bool) {
        self.ready
            .with_label_values(&[tenant])
            .set(i64::from(ready));
    }

    /// Drop `tenant`'s series (a closed tenant's): its request counts and latencies by
    /// route and the statuses the server answers, its in-flight, fast-failure and storage
    /// gauges. They are made again by its next request.
    pub fn forget(&self, tenant: &str) {
        const STATUSES: [u16; 17] = [
            200, 202, 400, 401, 403, 404, 405, 408, 409, 413, 415, 429, 500, 502, 503, 504, 507,
        ];
        for route in super::request_log::ROUTES {
            let _ = self.latency.remove_label_values(&[tenant, route]);
            for status in STATUSES {
                let _ = self
                    .requests
                    .remove_label_values(&[tenant, route, &status.to_string()]);
            }
        }
        let _ = self.in_flight.remove_label_values(&[tenant]);
        let _ = self.fast_failures.remove_label_values(&[tenant]);
        let _ = self.storage.remove_label_values(&[tenant]);
        let _ = self.storage_quota.remove_label_values(&[tenant]);
        let _ = self.ready.remove_label_values(&[tenant]);
    }

    /// One reload attempt.
    pub fn reload(&self, success: bool) {
        self.reloads
            .with_label_values(&[if success { "success" } else { "refused" }])
            .inc();
    }
}

/// Only the lines of `text` (Prometheus exposition) that belong to `tenant`, with the
/// `# HELP`/`# TYPE` lines of the families that keep at least one sample.
pub fn for_tenant(text: &str, tenant: &str) -> String {
    let label = format!("tenant=\"{tenant}\"");
    let mut out = String::new();
    let mut header = String::new();
    for line in text.lines() {
        if line.starts_with("# HELP") {
            header = format!("{line}\n");
        } else if line.starts_with("# TYPE") {
            header.push_str(line);
            header.push('\n');
        } else if line.contains(&label) {
            out.push_str(&std::mem::take(&mut header));
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_tenant_sees_only_its_series() {
        let text = "# HELP x_total X.\n# TYPE x_total counter\nx_total{tenant=\"a\"} 1\nx_total{tenant=\"b\"} 2\n# HELP y Y.\n# TYPE y gauge\ny{tenant=\"b\"} 3\n";
        assert_eq!(
            super::for_tenant(text, "a"),
            "# HELP x_total X.\n# TYPE x_total counter\nx_total{tenant=\"a\"} 1\n"
        );
    }
}
