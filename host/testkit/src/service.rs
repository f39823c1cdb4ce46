//! The sandboxed service as tests build it: the built-in component compiled once per test
//! binary, over real in-memory backends or a scripted retriever (fault handling).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;
use vector_service_runtime::api::{BackendError, BackendHit, BackendHits};
use vector_service_runtime::backends::memory::MemoryStore;
use vector_service_runtime::backends::{Backends, Retriever};
use vector_service_runtime::{Plugin, SandboxLimits, ServiceConfig, Telemetry, VectorService};

/// The built-in component, compiled once per test binary.
pub fn plugin() -> Arc<Plugin> {
    // Before the first component call, so no callsite is ever cached as uninteresting.
    #[cfg(feature = "logs")]
    crate::logs::install_log_capture();
    static PLUGIN: OnceLock<Arc<Plugin>> = OnceLock::new();
    PLUGIN
        .get_or_init(|| Arc::new(Plugin::builtin().expect("the built-in component loads")))
        .clone()
}

/// `tenant`'s configuration, with retries 1 ms apart so fault tests stay quick.
pub fn config(tenant: &str) -> ServiceConfig {
    ServiceConfig {
        tenant: tenant.to_string(),
        retry_backoff: Duration::from_millis(1),
        ..ServiceConfig::default()
    }
}

/// The built-in component over `backends`, for tenant `acme`.
pub fn service(backends: Backends) -> (VectorService, Telemetry) {
    service_with(backends, config("acme"))
}

/// The built-in component over `backends` with `config`.
pub fn service_with(backends: Backends, config: ServiceConfig) -> (VectorService, Telemetry) {
    let telemetry = Telemetry::new();
    (
        VectorService::new(plugin(), backends, telemetry.clone(), config),
        telemetry,
    )
}

/// Tenant `acme`'s configuration under `limits`.
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

/// A backend hit of `origin`/`id` with `score` and `metadata`.
pub fn hit(origin: &str, id: &str, score: f64, metadata: Value) -> BackendHit {
    BackendHit::from_value(
        origin.to_string(),
        id.to_string(),
        score,
        "test".to_string(),
        &metadata,
    )
}

/// A backend's successful answer.
pub fn hits(hits: Vec<BackendHit>, confidence: Option<f64>) -> Result<BackendHits, BackendError> {
    Ok(BackendHits { hits, confidence })
}

/// A retriever that answers from a script (fault handling: rate limits, failures, weak
/// results) and remembers how it was called; past the script it finds nothing.
#[derive(Default)]
pub struct ScriptedRetriever {
    script: Mutex<VecDeque<Result<BackendHits, BackendError>>>,
    calls: Mutex<Vec<(String, u32, Vec<String>)>>,
}

impl ScriptedRetriever {
    /// A retriever that gives `script`'s answers in order.
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

    /// One more answer at the end of the script.
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
