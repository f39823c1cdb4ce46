//! Prometheus text expositions read by a real parser (`prometheus-parse`), with lookups by
//! family and labels that fail loudly when a series is missing.

use std::collections::BTreeMap;

use prometheus_parse::{Scrape, Value as PromValue};
use vector_service_runtime::Telemetry;

/// The exposition text, parsed by a real Prometheus text-format parser.
pub struct Metrics {
    /// The exposition as received.
    pub text: String,
    /// The same, parsed.
    pub scrape: Scrape,
}

/// A service's telemetry, rendered and parsed.
pub fn metrics(telemetry: &Telemetry) -> Metrics {
    Metrics::parse(telemetry.render())
}

impl Metrics {
    /// Parse an exposition (e.g. a server's `/metrics` answer).
    pub fn parse(text: String) -> Self {
        let scrape =
            Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("valid exposition text");
        Metrics { text, scrape }
    }

    /// The `# TYPE` of a family.
    pub fn family_type(&self, family: &str) -> Option<&str> {
        let prefix = format!("# TYPE {family} ");
        self.text
            .lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
    }

    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<&PromValue> {
        self.scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| &s.value)
    }

    /// A counter's value; panics when the series is missing.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.find(name, labels) {
            Some(PromValue::Counter(value)) => *value,
            other => panic!(
                "counter {name}{labels:?} not found (got {other:?}) in\n{}",
                self.text
            ),
        }
    }

    /// A gauge's value; panics when the series is missing.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.find(name, labels) {
            Some(PromValue::Gauge(value)) => *value,
            other => panic!(
                "gauge {name}{labels:?} not found (got {other:?}) in\n{}",
                self.text
            ),
        }
    }

    /// A histogram's observation count (its `+Inf` bucket).
    pub fn histogram_count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.histogram_at_most(name, labels, f64::INFINITY)
    }

    /// A histogram's observations of at most `bound` (the bucket `le = bound`).
    pub fn histogram_at_most(&self, name: &str, labels: &[(&str, &str)], bound: f64) -> f64 {
        match self.find(name, labels) {
            Some(PromValue::Histogram(buckets)) => buckets
                .iter()
                .find(|b| b.less_than == bound)
                .map_or(0.0, |b| b.count),
            other => panic!(
                "histogram {name}{labels:?} not found (got {other:?}) in\n{}",
                self.text
            ),
        }
    }

    /// `patch_logger_track_contributors_total{status}` (any tenant).
    pub fn patch_tracked(&self, status: &str) -> f64 {
        self.counter(
            "patch_logger_track_contributors_total",
            &[("status", status)],
        )
    }

    /// `embedding_backfill_runs_total{status}` (any tenant).
    pub fn backfill_runs(&self, status: &str) -> f64 {
        self.counter("embedding_backfill_runs_total", &[("status", status)])
    }

    /// Every label set a family has.
    pub fn label_sets(&self, name: &str) -> Vec<BTreeMap<String, String>> {
        self.scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .map(|s| {
                s.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .collect()
    }
}
