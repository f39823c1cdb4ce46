//! Long work through the sandbox. A call's deadline exists to stop runaway guest code and
//! host work done for short requests; a backfill is legitimately long, and its unit of bounded
//! work is a batch. So a backfill run is bounded per batch: every `embedding-store` call the
//! guest makes starts a new batch deadline (covering that call's host work and the guest's
//! work until its next call) and a new host-call byte budget. The run as a whole is bounded
//! only by an explicit budget, and can be cancelled; a cancelled run stops at its next batch
//! boundary or deadline check, so what it committed is whole batches.
//!
//! Why renewal by the host rather than one export call per batch: the guest keeps its loop and
//! the WIT stays as it is, the renewal costs nothing on other calls (it happens at imports only
//! the backfill uses), and a guest calling other exports can never renew its deadline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a backfill run is bounded; see [`crate::VectorService::backfill_with`].
#[derive(Debug, Clone)]
pub struct RunLimits {
    /// Time one batch may take: its embedding call and the guest's work up to the next batch.
    pub batch_deadline: Duration,
    /// Time the whole run may take; `None`: no limit (cancel it instead).
    pub budget: Option<Duration>,
    /// Set it to stop the run at its next batch boundary (or deadline check).
    pub cancel: CancelFlag,
}

impl RunLimits {
    /// Batches of at most `batch_deadline`, no run budget, a fresh cancel flag.
    pub fn per_batch(batch_deadline: Duration) -> Self {
        Self {
            batch_deadline,
            budget: None,
            cancel: CancelFlag::default(),
        }
    }
}

/// A flag that cancels a run; clones share it.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// Ask the run to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the run was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The trap a run gets when it was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("the run was cancelled")]
pub struct RunCancelled;

/// A run's limits, as a call's store keeps them.
pub(crate) struct Renewal {
    batch_deadline: Duration,
    ends: Option<Instant>,
    pub(crate) cancel: CancelFlag,
}

impl Renewal {
    pub(crate) fn starting_now(limits: &RunLimits) -> Self {
        Self {
            batch_deadline: limits.batch_deadline,
            ends: limits.budget.map(|budget| Instant::now() + budget),
            cancel: limits.cancel.clone(),
        }
    }

    /// The deadline of a batch starting now (never past the run's end).
    pub(crate) fn next_deadline(&self) -> Instant {
        let batch = Instant::now() + self.batch_deadline;
        self.ends.map_or(batch, |ends| batch.min(ends))
    }
}
