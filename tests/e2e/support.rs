//! Shared fixtures: the compiled plugin, services over real in-memory backends or fault-injecting
//! doubles, a `tracing` capture layer and a Prometheus text parser.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prometheus_parse::{Scrape, Value as PromValue};
use serde_json::{json, Value};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;
use vector_service_runtime::api::{BackendError, BackendHit, BackendHits};
use vector_service_runtime::backends::memory::MemoryStore;
use vector_service_runtime::backends::Record;
pub use vector_service_runtime::backends::Store;
use vector_service_runtime::backends::{Backends, Retriever};
use vector_service_runtime::{Plugin, SandboxLimits, ServiceConfig, Telemetry, VectorService};

/// Records, requests and the sample corpus, shared with the conformance suite.
pub use vector_service_testkit::fixtures::{
    backfill, context, ingest_sample_corpus, record, records, sample_queries, search, track,
};

/// The built-in component, compiled once per test binary.
pub fn plugin() -> Arc<Plugin> {
    install_log_capture();
    static PLUGIN: OnceLock<Arc<Plugin>> = OnceLock::new();
    PLUGIN
        .get_or_init(|| Arc::new(Plugin::builtin().expect("the built-in component loads")))
        .clone()
}

pub fn config(tenant: &str) -> ServiceConfig {
    ServiceConfig {
        tenant: tenant.to_string(),
        retry_backoff: Duration::from_millis(1),
        ..ServiceConfig::default()
    }
}

pub fn service(backends: Backends) -> (VectorService, Telemetry) {
    service_with(backends, config("acme"))
}

pub fn service_with(backends: Backends, config: ServiceConfig) -> (VectorService, Telemetry) {
    let telemetry = Telemetry::new();
    (
        VectorService::new(plugin(), backends, telemetry.clone(), config),
        telemetry,
    )
}

pub fn limited(limits: SandboxLimits) -> ServiceConfig {
    ServiceConfig {
        limits,
        ..config("acme")
    }
}

/// Every backend in one real in-memory store.
pub fn memory_service() -> (VectorService, Arc<MemoryStore>, Telemetry) {
    let store = Arc::new(MemoryStore::new());
    let (service, telemetry) = service(Backends::memory(store.clone()));
    (service, store, telemetry)
}

/// The in-memory store for every slot but the retriever.
pub fn with_retriever(retriever: Arc<dyn Retriever>) -> (Backends, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let mut backends = Backends::memory(store.clone());
    backends.retriever = retriever;
    (backends, store)
}

pub fn hit(origin: &str, id: &str, score: f64, metadata: Value) -> BackendHit {
    BackendHit::from_value(
        origin.to_string(),
        id.to_string(),
        score,
        "test".to_string(),
        &metadata,
    )
}

pub fn hits(hits: Vec<BackendHit>, confidence: Option<f64>) -> Result<BackendHits, BackendError> {
    Ok(BackendHits { hits, confidence })
}

/// A retriever that answers from a script (fault handling: rate limits, failures, weak
/// results) and remembers how it was called.
#[derive(Default)]
pub struct ScriptedRetriever {
    script: Mutex<VecDeque<Result<BackendHits, BackendError>>>,
    calls: Mutex<Vec<(String, u32, Vec<String>)>>,
}

impl ScriptedRetriever {
    pub fn new(script: Vec<Result<BackendHits, BackendError>>) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::new(script.into()),
            calls: Mutex::default(),
        })
    }

    /// (query, top_k, origins) of every call so far.
    pub fn calls(&self) -> Vec<(String, u32, Vec<String>)> {
        self.calls.lock().unwrap().clone()
    }

    pub fn push(&self, response: Result<BackendHits, BackendError>) {
        self.script.lock().unwrap().push_back(response);
    }
}

impl Retriever for ScriptedRetriever {
    fn search(
        &self,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Result<BackendHits, BackendError> {
        self.calls
            .lock()
            .unwrap()
            .push((query.to_string(), top_k, origins.to_vec()));
        self.script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Ok(BackendHits {
                hits: vec![],
                confidence: None,
            }))
    }
}

/// One captured `tracing` event.
#[derive(Debug, Clone)]
pub struct LogEvent {
    pub level: tracing::Level,
    pub target: String,
    pub message: String,
    pub fields: BTreeMap<String, String>,
}

impl LogEvent {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

thread_local! {
    /// Where this thread's events go while `capture_logs` runs.
    static SINK: std::cell::RefCell<Option<Vec<LogEvent>>> = const { std::cell::RefCell::new(None) };
}

/// A process-wide subscriber that hands each event to its thread's sink. (Scoped subscribers
/// race with `tracing`'s callsite interest cache when tests run in parallel; one global
/// subscriber that is always interested does not.)
struct ThreadCapture;

struct FieldVisitor<'a>(&'a mut BTreeMap<String, String>);

impl Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> Layer<S> for ThreadCapture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        SINK.with(|sink| {
            if let Some(events) = sink.borrow_mut().as_mut() {
                let mut fields = BTreeMap::new();
                event.record(&mut FieldVisitor(&mut fields));
                let message = fields.remove("message").unwrap_or_default();
                events.push(LogEvent {
                    level: *event.metadata().level(),
                    target: event.metadata().target().to_string(),
                    message,
                    fields,
                });
            }
        });
    }
}

/// Installed before the first component call, so no callsite is ever cached as uninteresting.
fn install_log_capture() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(ThreadCapture))
            .expect("no other global subscriber in the test binary");
    });
}

/// Run `body` with every `tracing` event of this thread captured.
pub fn capture_logs<T>(body: impl FnOnce() -> T) -> (T, Vec<LogEvent>) {
    install_log_capture();
    SINK.with(|sink| *sink.borrow_mut() = Some(Vec::new()));
    let output = body();
    let events = SINK
        .with(|sink| sink.borrow_mut().take())
        .unwrap_or_default();
    (output, events)
}

/// The events the component logged (target `vector_service::guest`).
pub fn guest_events(events: &[LogEvent]) -> Vec<&LogEvent> {
    events
        .iter()
        .filter(|e| e.target == vector_service_runtime::GUEST_TARGET)
        .collect()
}

/// The exposition text, parsed by a real Prometheus text-format parser.
pub struct Metrics {
    pub text: String,
    pub scrape: Scrape,
}

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

/// Write `dir/tenants.toml`: an optional admin key, then one `[[tenant]]` per
/// `(name, key, limits)`, where `limits` are TOML lines for `[tenant.limits]` (may be empty).
/// Keys are stored hashed, as the server expects.
pub fn write_tenants(
    dir: &std::path::Path,
    admin_key: Option<&str>,
    tenants: &[(&str, &str, &str)],
) -> std::path::PathBuf {
    let hash = crate::server::vector_service_tenant_hash;
    let mut text = admin_key
        .map(|key| format!("admin_key_sha256 = \"{}\"\n", hash(key)))
        .unwrap_or_default();
    for (name, key, limits) in tenants {
        text += &format!(
            "\n[[tenant]]\nname = \"{name}\"\napi_key_sha256 = \"{}\"\n[tenant.limits]\n{limits}\n",
            hash(key)
        );
    }
    let path = dir.join("tenants.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `count` tenants `{prefix}{i}` with keys `k{i}` and default limits, written as
/// [`write_tenants`] does: the file, and each tenant's name and key.
pub fn write_numbered_tenants(
    dir: &std::path::Path,
    admin_key: Option<&str>,
    prefix: &str,
    count: usize,
) -> (std::path::PathBuf, Vec<(String, String)>) {
    let entries: Vec<(String, String)> = (0..count)
        .map(|i| (format!("{prefix}{i}"), format!("k{i}")))
        .collect();
    let listed: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|(name, key)| (name.as_str(), key.as_str(), ""))
        .collect();
    (write_tenants(dir, admin_key, &listed), entries)
}

/// The record ids of a search answer's hits, in order.
pub fn record_ids(found: &serde_json::Value) -> Vec<&str> {
    found["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .filter_map(|hit| hit["record_id"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// A fresh, empty directory under the system temp dir, unique per call.
pub fn temp_dir(label: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir =
        std::env::temp_dir().join(format!("vector-service-{label}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a temp dir");
    dir
}

/// The records of [`seed_corpus`], with their database names.
pub fn corpus_records() -> Vec<(&'static str, Record)> {
    vec![
        (
            "errors",
            record(
                "error",
                "e1",
                "upload failed: connection reset by peer while sending file to storage",
                json!({"message": "Upload failed: connection reset by peer", "frequency": 3}),
            ),
        ),
        (
            "errors",
            record(
                "error",
                "e2",
                "test suite failing on assertion in payment module",
                json!({"message": "Tests failing: assertion error in payment module", "frequency": 9}),
            ),
        ),
        (
            "bots",
            record(
                "bot",
                "b1",
                "upload bot retries failed uploads to storage",
                json!({"name": "upload-retrier", "purpose": "Retries failed uploads", "roi": 2.5}),
            ),
        ),
        (
            "bots",
            record(
                "bot",
                "b2",
                "test fixer bot repairs failing tests",
                json!({"name": "test-fixer", "purpose": "Repairs failing tests", "deploy_count": 4}),
            ),
        ),
        (
            "workflows",
            record(
                "workflow",
                "w1",
                "workflow to resume an upload that failed halfway",
                json!({"title": "Resumable upload", "description": "Resume an upload after a failure", "usage": 12}),
            ),
        ),
        (
            "code",
            record(
                "code",
                "c1",
                "retry upload with exponential backoff on failure",
                json!({"summary": "upload_with_retry(): retries with backoff", "patch_success": 0.8}),
            ),
        ),
    ]
}

/// A small realistic corpus across the bucketed origins.
pub fn seed_corpus(store: &MemoryStore) {
    for (db, record) in corpus_records() {
        store.insert(db, record);
    }
}
