//! Engines: the configuration our sandbox needs (component model, epoch interruption,
//! optionally an instance pool) and the one epoch ticker per process that drives call
//! deadlines.

use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::{
    Config, Enabled, Engine, EngineWeak, InstanceAllocationStrategy, PoolingAllocationConfig,
};

/// How often the epoch advances; call deadlines are whole multiples of it.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Linear memory a pooled slot keeps resident when freed (zeroed, not unmapped): the guest's
/// working set for a call is well under it.
const KEEP_RESIDENT_MEMORY_BYTES: usize = 4 << 20;

/// Table bytes a pooled slot keeps resident when freed.
const KEEP_RESIDENT_TABLE_BYTES: usize = 64 << 10;

/// How instances get their memory and tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Allocation {
    /// Map and unmap per instance: right for one-shot processes.
    #[default]
    OnDemand,
    /// Reserve `instances` slots of up to `memory_bytes` linear memory once; instantiating
    /// then reuses a slot instead of mapping memory (the server's choice:
    /// docs/decisions/0006-instances.md).
    /// More instances alive at once than slots fail to instantiate, so size it to the
    /// concurrency limits.
    Pooling {
        /// Component instances alive at once.
        instances: u32,
        /// Largest linear memory of one instance (at least every tenant's memory cap).
        memory_bytes: usize,
    },
}

/// Turn on what the sandbox needs in a caller's engine configuration: the component model and
/// epoch interruption (call deadlines). Everything else stays the caller's choice.
pub fn configure(config: &mut Config) -> &mut Config {
    config.wasm_component_model(true).epoch_interruption(true)
}

/// An engine configured for the component, with the allocation it really got.
#[derive(Clone)]
pub struct SandboxEngine {
    engine: Engine,
    allocation: Allocation,
}

impl SandboxEngine {
    /// An engine for `allocation`; a pool that cannot be reserved (e.g. a small address-space
    /// limit) falls back to on-demand allocation, with a warning. Create one per process and
    /// compile every component (and every reload) onto it.
    pub fn new(allocation: Allocation) -> anyhow::Result<Self> {
        let mut config = Config::new();
        configure(&mut config);
        // Guest code named in `perf report` (a /tmp/perf-PID.map), for profiling the sandbox.
        if std::env::var_os("VECTOR_SERVICE_PERF_MAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
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
                .max_memory_size(memory_bytes)
                // A freed slot is reset by zeroing the pages the instance dirtied (found with
                // Linux's PAGEMAP_SCAN where the kernel has it, 6.7+) instead of madvise: no
                // TLB shootdown on every drop and no page faults on the next instantiation
                // (docs/decisions/0006-instances.md).
                .pagemap_scan(Enabled::Auto)
                .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY_BYTES)
                .table_keep_resident(KEEP_RESIDENT_TABLE_BYTES);
            // An async call runs on a fiber stack from the pool: one per live instance.
            #[cfg(feature = "async")]
            pool.total_stacks(instances);
            let mut pooled = config.clone();
            pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
            // Explicit bounds checks instead of guard pages: a slot then never has its
            // protections changed (mprotect, with a TLB shootdown across cores) when one call's
            // memory.grow is undone for the next instance (docs/decisions/0006-instances.md).
            pooled.signals_based_traps(false).memory_guard_size(0);
            match Engine::new(&pooled) {
                Ok(engine) => return Ok(Self { engine, allocation }),
                Err(error) => tracing::warn!(
                    error = %format!("{error:#}"),
                    "the instance pool could not be reserved; allocating on demand"
                ),
            }
        }
        let engine = anyhow_result(Engine::new(&config)).context("configuring wasmtime")?;
        Ok(Self {
            engine,
            allocation: Allocation::OnDemand,
        })
    }

    /// The process-wide on-demand engine that [`crate::Plugin::builtin`] and friends compile onto.
    pub fn shared() -> anyhow::Result<&'static SandboxEngine> {
        static SHARED: OnceLock<SandboxEngine> = OnceLock::new();
        if let Some(engine) = SHARED.get() {
            return Ok(engine);
        }
        let engine = Self::new(Allocation::OnDemand)?;
        Ok(SHARED.get_or_init(|| engine))
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
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
}

/// Make sure `engine`'s epoch advances every [`EPOCH_TICK`]: one ticker thread per process
/// serves every engine our imports were linked into (normally exactly one). It holds them
/// weakly: a dropped engine is forgotten at the next tick.
pub(crate) fn ensure_ticking(engine: &Engine) {
    static ENGINES: OnceLock<Arc<Mutex<Vec<EngineWeak>>>> = OnceLock::new();
    let engines = ENGINES.get_or_init(|| {
        let engines = Arc::new(Mutex::new(Vec::<EngineWeak>::new()));
        let ticked = engines.clone();
        thread::Builder::new()
            .name("vector-service-epoch".into())
            .spawn(move || loop {
                thread::sleep(EPOCH_TICK);
                ticked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|weak| match weak.upgrade() {
                        Some(engine) => {
                            engine.increment_epoch();
                            true
                        }
                        None => false,
                    });
            })
            .expect("spawning the epoch ticker thread");
        engines
    });
    let mut engines = engines.lock().unwrap_or_else(|p| p.into_inner());
    let known = engines
        .iter()
        .filter_map(EngineWeak::upgrade)
        .any(|known| Engine::same(&known, engine));
    if !known {
        engines.push(engine.weak());
    }
}

/// wasmtime has its own error type; `anyhow` is this crate's.
pub(crate) fn anyhow_result<T>(result: wasmtime::Result<T>) -> anyhow::Result<T> {
    result.map_err(anyhow::Error::from)
}

/// Epoch ticks in `deadline`, at least one.
pub fn deadline_ticks(deadline: Duration) -> u64 {
    (deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64).max(1)
}
