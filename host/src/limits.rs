//! Per-call sandbox limits: a memory cap (wasmtime's `StoreLimits`) and a CPU deadline
//! (epoch interruption), plus the bookkeeping that tells a memory-cap trap from a guest bug.

use std::time::Duration;

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

/// Limits applied to every call; see [`SandboxLimits::default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Linear memory the component may grow to.
    pub memory_bytes: usize,
    /// Wall-clock budget of one call, enforced at epoch ticks (host calls count too).
    pub call_deadline: Duration,
}

impl Default for SandboxLimits {
    /// 64 MiB of memory and 10 seconds per call.
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            call_deadline: Duration::from_secs(10),
        }
    }
}

/// `StoreLimits` that remember whether they refused a memory growth.
pub(crate) struct CallLimiter {
    limits: StoreLimits,
    pub(crate) memory_refused: bool,
}

impl CallLimiter {
    pub(crate) fn new(limits: &SandboxLimits) -> Self {
        Self {
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .instances(16)
                .build(),
            memory_refused: false,
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
