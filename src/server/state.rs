//! What every request shares: the tenants' live state, the component, the engine and the
//! metrics; and loading a component onto the server's one engine.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use vector_service_runtime::backends::Store;
use vector_service_runtime::{
    Allocation, Plugin, PluginHandle, SandboxEngine, ServiceConfig, Telemetry, VectorService,
};

use super::admission::Admission;
use super::jobs::Jobs;
use super::metrics::HttpMetrics;
use super::readiness::Readiness;
use super::tenants::{TenantLimits, Tenants};

/// One tenant's live state.
pub(super) struct TenantState {
    pub(super) name: String,
    pub(super) service: VectorService,
    pub(super) store: Arc<dyn Store>,
    pub(super) admission: Admission,
    pub(super) readiness: Readiness,
    pub(super) jobs: Jobs,
    pub(super) config: ServiceConfig,
    pub(super) limits: TenantLimits,
}

/// The server's state, shared by every request.
pub(super) struct AppState {
    pub(super) tenants: Tenants,
    pub(super) live: Vec<TenantState>,
    pub(super) plugin: PluginHandle,
    pub(super) component: Option<PathBuf>,
    /// The one engine (and instance pool) every component of this process compiles onto.
    pub(super) engine: SandboxEngine,
    pub(super) telemetry: Telemetry,
    pub(super) http: HttpMetrics,
    pub(super) max_body_bytes: usize,
    /// One reload at a time.
    pub(super) reloading: tokio::sync::Mutex<()>,
}

/// The state as handlers hold it.
pub(super) type Shared = Arc<AppState>;

/// The component at `path` (or the built-in one) compiled onto the server's one engine, and
/// its sha256 and size.
pub(super) fn load_plugin(
    path: Option<&PathBuf>,
    engine: &SandboxEngine,
) -> anyhow::Result<(Plugin, String, usize)> {
    let bytes = match path {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => vector_service_runtime::BUILTIN_COMPONENT.to_vec(),
    };
    let plugin = Plugin::new(engine.engine(), &bytes)?;
    let digest = crate::sha256_hex(&bytes);
    Ok((plugin, digest, bytes.len()))
}

/// A pool slot for every call the tenants may run at once (a backfill job takes one of the
/// tenant's call slots), and room for the largest memory cap. A reload compiles onto the same
/// engine and pool: calls still running on the old component hold their tenants' call slots,
/// so old and new together never need more.
pub(super) fn pool_for(tenants: &Tenants) -> Allocation {
    let calls: u32 = tenants
        .entries
        .iter()
        .map(|t| t.limits.max_concurrent)
        .sum();
    let memory = tenants
        .entries
        .iter()
        .map(|t| (t.limits.memory_mib as usize) << 20)
        .max()
        .unwrap_or(64 << 20);
    Allocation::Pooling {
        instances: calls.max(8),
        memory_bytes: memory,
    }
}
