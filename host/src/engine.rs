//! The compiled component: engine configuration (component model, epoch interruption), one
//! `InstancePre` for all calls, and the ticker thread that drives call deadlines.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::{VectorService as World, VectorServicePre};
use crate::state::CallState;

/// The component built from `guest/` by this crate's build script.
pub static BUILTIN_COMPONENT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/vector_service.wasm"));

/// The WIT package (name and version) the built-in component implements, read from `wit/`.
pub const WIT_PACKAGE: &str = env!("VECTOR_SERVICE_WIT_PACKAGE");

/// How often the epoch advances; call deadlines are whole multiples of it.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// How instances get their memory and tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Allocation {
    /// Map and unmap per instance: right for one-shot processes.
    #[default]
    OnDemand,
    /// Reserve `instances` slots of up to `memory_bytes` linear memory once; instantiating
    /// then reuses a slot instead of mapping memory (the server's choice: BENCHMARKS.md).
    /// More instances alive at once than slots fail to instantiate, so size it to the
    /// concurrency limits.
    Pooling {
        /// Component instances alive at once.
        instances: u32,
        /// Largest linear memory of one instance (at least every tenant's memory cap).
        memory_bytes: usize,
    },
}

/// A component compiled and linked against the host's imports, ready to instantiate cheaply.
pub struct Plugin {
    engine: Engine,
    pre: VectorServicePre<CallState>,
    size: usize,
    allocation: Allocation,
    ticker_stop: Arc<AtomicBool>,
}

/// An engine for `allocation`; a pool that cannot be reserved (e.g. a small address-space
/// limit) falls back to on-demand allocation, with a warning.
fn engine_for(allocation: Allocation) -> anyhow::Result<(Engine, Allocation)> {
    let mut config = Config::new();
    config.wasm_component_model(true).epoch_interruption(true);
    if let Allocation::Pooling {
        instances,
        memory_bytes,
    } = allocation
    {
        let mut pool = PoolingAllocationConfig::new();
        // A component instantiates a few core instances (the module, its shims).
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(4))
            .total_memories(instances.saturating_mul(2))
            .total_tables(instances.saturating_mul(4))
            .max_memory_size(memory_bytes);
        let mut pooled = config.clone();
        pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        match Engine::new(&pooled) {
            Ok(engine) => return Ok((engine, allocation)),
            Err(error) => tracing::warn!(
                error = %format!("{error:#}"),
                "the instance pool could not be reserved; allocating on demand"
            ),
        }
    }
    let engine = anyhow_result(Engine::new(&config)).context("configuring wasmtime")?;
    Ok((engine, Allocation::OnDemand))
}

impl Plugin {
    /// The component built into this crate.
    pub fn builtin() -> anyhow::Result<Self> {
        Self::from_bytes(BUILTIN_COMPONENT).context("loading the built-in vector-service component")
    }

    /// A component file (binary `.wasm`), e.g. one exported earlier or built by another toolchain.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("reading component {}", path.display()))?;
        Self::from_bytes(&bytes).with_context(|| format!("loading component {}", path.display()))
    }

    /// Compile `bytes` and check that the component fits the `vector-service` world.
    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        Self::from_bytes_with(bytes, Allocation::OnDemand)
    }

    /// [`Plugin::from_bytes`] with a choice of instance allocation.
    pub fn from_bytes_with(bytes: &[u8], allocation: Allocation) -> anyhow::Result<Self> {
        let (engine, allocation) = engine_for(allocation)?;
        let component =
            anyhow_result(Component::new(&engine, bytes)).context("compiling the component")?;
        let mut linker = Linker::<CallState>::new(&engine);
        anyhow_result(World::add_to_linker::<CallState, HasSelf<CallState>>(
            &mut linker,
            |state| state,
        ))
        .context("linking the host imports")?;
        let instance_pre = anyhow_result(linker.instantiate_pre(&component))
            .context("the component does not match the vector-service world")?;
        let pre = anyhow_result(VectorServicePre::new(instance_pre))
            .context("the component does not export the vector-service interfaces")?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(engine.clone(), ticker_stop.clone());
        Ok(Self {
            engine,
            pre,
            size: bytes.len(),
            allocation,
            ticker_stop,
        })
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn pre(&self) -> &VectorServicePre<CallState> {
        &self.pre
    }

    /// The allocation actually in use (a pool that could not be reserved reads `OnDemand`).
    pub fn allocation(&self) -> Allocation {
        self.allocation
    }

    /// Instance slots reserved by the pool; 0 when allocating on demand.
    pub fn instance_slots(&self) -> u32 {
        match self.allocation {
            Allocation::Pooling { instances, .. } => instances,
            Allocation::OnDemand => 0,
        }
    }

    /// Size of the component binary in bytes.
    pub fn component_size(&self) -> usize {
        self.size
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// The component every service of a process runs, swappable while calls are in flight: a call
/// keeps the [`Plugin`] it started on until it ends; calls that start after
/// [`PluginHandle::replace`] get the new one.
#[derive(Clone)]
pub struct PluginHandle(Arc<RwLock<Arc<Plugin>>>);

impl PluginHandle {
    /// A handle serving `plugin`.
    pub fn new(plugin: Arc<Plugin>) -> Self {
        Self(Arc::new(RwLock::new(plugin)))
    }

    /// The plugin new calls use.
    pub fn current(&self) -> Arc<Plugin> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Serve `plugin` from now on; returns the one it replaces.
    pub fn replace(&self, plugin: Arc<Plugin>) -> Arc<Plugin> {
        std::mem::replace(
            &mut *self.0.write().unwrap_or_else(|p| p.into_inner()),
            plugin,
        )
    }
}

impl From<Arc<Plugin>> for PluginHandle {
    fn from(plugin: Arc<Plugin>) -> Self {
        Self::new(plugin)
    }
}

fn spawn_epoch_ticker(engine: Engine, stop: Arc<AtomicBool>) {
    thread::Builder::new()
        .name("vector-service-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .expect("spawning the epoch ticker thread");
}

/// wasmtime has its own error type; `anyhow` is this crate's.
pub(crate) fn anyhow_result<T>(result: wasmtime::Result<T>) -> anyhow::Result<T> {
    result.map_err(anyhow::Error::from)
}

/// Epoch ticks in `deadline`, at least one.
pub(crate) fn deadline_ticks(deadline: Duration) -> u64 {
    (deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64).max(1)
}
