//! Per-call sandbox limits: a memory cap (wasmtime's `StoreLimits`), a CPU deadline (epoch
//! interruption) and a cap on bytes passed to host calls, plus the bookkeeping that tells a
//! memory-cap trap from a guest bug and remembers the memory high-water mark.

use std::time::Duration;

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

/// Limits applied to every call; see [`SandboxLimits::default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Linear memory the component may grow to.
    pub memory_bytes: usize,
    /// Wall-clock budget of one call, enforced at epoch ticks (host calls count too).
    pub call_deadline: Duration,
    /// Bytes of import arguments (log lines, queries, ids, cache values) one call may pass to
    /// the host; more traps the call (see [`crate::HostCallBytesExceeded`]).
    pub host_call_bytes: usize,
}

impl Default for SandboxLimits {
    /// 64 MiB of memory, 10 seconds and 16 MiB of host-call arguments per call.
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            call_deadline: Duration::from_secs(10),
            host_call_bytes: 16 << 20,
        }
    }
}

/// `StoreLimits` that remember whether they refused a memory growth, and the largest linear
/// memory they granted.
pub(crate) struct CallLimiter {
    limits: StoreLimits,
    pub(crate) memory_refused: bool,
    pub(crate) memory_peak: usize,
}

impl CallLimiter {
    pub(crate) fn new(limits: &SandboxLimits) -> Self {
        Self {
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .instances(16)
                .build(),
            memory_refused: false,
            memory_peak: 0,
        }
    }
}

impl ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        self.memory_refused |= !allowed;
        if allowed {
            self.memory_peak = self.memory_peak.max(desired);
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}
