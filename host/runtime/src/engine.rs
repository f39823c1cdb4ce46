//! Engines and compiled components: the engine configuration our sandbox needs (component
//! model, epoch interruption, optionally an instance pool), the one epoch ticker per process
//! that drives call deadlines, and [`Plugin`], a component compiled onto an engine and linked
//! against our imports.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread;
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Config, Enabled, Engine, EngineWeak, InstanceAllocationStrategy, PoolingAllocationConfig,
};

use crate::bindings::VectorServicePre;
use crate::exports::Exports;
use crate::linker::{add_to_linker, VectorServiceCtx};

/// The component built from `guest/`, shipped prebuilt by `vector-service-component`.
pub static BUILTIN_COMPONENT: &[u8] = vector_service_component::COMPONENT;

/// The WIT package (name and version) the built-in component implements.
pub const WIT_PACKAGE: &str = vector_service_component::WIT_PACKAGE;

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

    /// The process-wide on-demand engine that [`Plugin::builtin`] and friends compile onto.
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

/// A component compiled onto an engine and linked against the host's imports, ready to
/// instantiate cheaply.
pub struct Plugin {
    engine: Engine,
    pre: VectorServicePre<VectorServiceCtx>,
    exports: Exports,
    size: usize,
    /// The sha256 of its bytes, hex.
    digest: String,
}

impl Plugin {
    /// Compile `bytes` onto `engine` (configured with [`configure`]) and check that the
    /// component fits the `vector-service` world.
    pub fn new(engine: &Engine, bytes: &[u8]) -> anyhow::Result<Self> {
        let component =
            anyhow_result(Component::new(engine, bytes)).context("compiling the component")?;
        let mut linker = Linker::<VectorServiceCtx>::new(engine);
        add_to_linker(&mut linker)?;
        let instance_pre = anyhow_result(linker.instantiate_pre(&component))
            .context("the component does not match the vector-service world")?;
        let pre = anyhow_result(VectorServicePre::new(instance_pre))
            .context("the component does not export the vector-service interfaces")?;
        let exports = Exports::new(&component)?;
        Ok(Self {
            engine: engine.clone(),
            pre,
            exports,
            size: bytes.len(),
            digest: sha256_hex(bytes),
        })
    }

    /// The built-in component, on the process-wide engine ([`SandboxEngine::shared`]).
    pub fn builtin() -> anyhow::Result<Self> {
        Self::from_bytes(BUILTIN_COMPONENT).context("loading the built-in vector-service component")
    }

    /// A component file (binary `.wasm`), e.g. one exported earlier or built by another
    /// toolchain, on the process-wide engine.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("reading component {}", path.display()))?;
        Self::from_bytes(&bytes).with_context(|| format!("loading component {}", path.display()))
    }

    /// [`Plugin::new`] on the process-wide engine.
    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        Self::new(SandboxEngine::shared()?.engine(), bytes)
    }

    /// The sha256 of the component's bytes, hex: which bytes run.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The digest's first [`crate::metering::SHORT_DIGEST`] hex digits: the `component`
    /// label of the metering families.
    pub fn short_digest(&self) -> &str {
        &self.digest[..crate::metering::SHORT_DIGEST]
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn pre(&self) -> &VectorServicePre<VectorServiceCtx> {
        &self.pre
    }

    pub(crate) fn exports(&self) -> &Exports {
        &self.exports
    }

    /// Size of the component binary in bytes.
    pub fn component_size(&self) -> usize {
        self.size
    }
}

/// The component a service runs, swappable while calls are in flight: a call keeps the
/// [`Plugin`] it started on until it ends; calls that start after [`PluginHandle::replace`]
/// get the new one. A canary takes a share of new calls (a rollout to a new component that
/// can be promoted or dropped at once).
#[derive(Clone)]
pub struct PluginHandle(Arc<HandleState>);

struct HandleState {
    serving: RwLock<Serving>,
    /// Calls started, for the canary's share.
    calls: AtomicU64,
}

struct Serving {
    active: Arc<Plugin>,
    canary: Option<Canary>,
}

/// A component taking a share of a handle's new calls.
#[derive(Clone)]
pub struct Canary {
    /// The component on trial.
    pub plugin: Arc<Plugin>,
    /// The share of new calls it gets, in `[0, 1]`.
    pub share: f64,
}

impl PluginHandle {
    /// A handle serving `plugin`.
    pub fn new(plugin: Arc<Plugin>) -> Self {
        Self(Arc::new(HandleState {
            serving: RwLock::new(Serving {
                active: plugin,
                canary: None,
            }),
            calls: AtomicU64::new(0),
        }))
    }

    fn serving(&self) -> std::sync::RwLockReadGuard<'_, Serving> {
        self.0.serving.read().unwrap_or_else(|p| p.into_inner())
    }

    fn serving_mut(&self) -> std::sync::RwLockWriteGuard<'_, Serving> {
        self.0.serving.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The plugin a new call uses: the canary for its share of calls (spread evenly by a
    /// hash of the call's number), else the active one.
    pub fn current(&self) -> Arc<Plugin> {
        let serving = self.serving();
        match &serving.canary {
            Some(canary) if canary.share > 0.0 => {
                let call = self.0.calls.fetch_add(1, Ordering::Relaxed);
                if unit_interval(call) < canary.share {
                    canary.plugin.clone()
                } else {
                    serving.active.clone()
                }
            }
            _ => serving.active.clone(),
        }
    }

    /// The active plugin (what calls use outside the canary's share).
    pub fn active(&self) -> Arc<Plugin> {
        self.serving().active.clone()
    }

    /// The canary, if one is set.
    pub fn canary(&self) -> Option<Canary> {
        self.serving().canary.clone()
    }

    /// Serve `plugin` from now on (the canary, if any, stays); returns the one it replaces.
    pub fn replace(&self, plugin: Arc<Plugin>) -> Arc<Plugin> {
        std::mem::replace(&mut self.serving_mut().active, plugin)
    }

    /// Give `canary` its share of new calls (its share clamped to `[0, 1]`), or stop one.
    pub fn set_canary(&self, canary: Option<Canary>) {
        self.serving_mut().canary = canary.map(|canary| Canary {
            share: if canary.share.is_nan() {
                0.0
            } else {
                canary.share.clamp(0.0, 1.0)
            },
            ..canary
        });
    }
}

/// `n` hashed to `[0, 1)` (splitmix64): consecutive calls land far apart, so a share is met
/// over any run of calls, not only over long ones.
fn unit_interval(n: u64) -> f64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl From<Arc<Plugin>> for PluginHandle {
    fn from(plugin: Arc<Plugin>) -> Self {
        Self::new(plugin)
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

/// `bytes`' sha256 as lowercase hex. The server hashes every request's API key, so the hex is
/// written by table: `write!` per byte cost several times the digest itself in its profile.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(64);
    for byte in Sha256::digest(bytes) {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::{sha256_hex, unit_interval};

    #[test]
    fn sha256_is_lowercase_hex_of_the_standard_digest() {
        // FIPS 180-2's test vectors.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn call_numbers_spread_evenly_over_the_unit_interval() {
        for share in [0.01, 0.1, 0.5, 0.9] {
            // Every window of 1,000 consecutive calls, not only the whole run, meets the share
            // within four standard deviations of a binomial draw.
            for start in (0..20_000u64).step_by(1_000) {
                let hits = (start..start + 1_000)
                    .filter(|&n| unit_interval(n) < share)
                    .count() as f64;
                let sigma = (1_000.0 * share * (1.0 - share)).sqrt();
                assert!(
                    (hits - 1_000.0 * share).abs() <= 4.0 * sigma,
                    "share {share}, calls {start}..: {hits}"
                );
            }
        }
        assert!((0..100_000u64).all(|n| (0.0..1.0).contains(&unit_interval(n))));
    }
}
