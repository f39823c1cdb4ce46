//! Readiness kept by a background check, so that `/readyz` (unauthenticated) answers from a
//! flag per tenant and never touches a store: every few seconds each tenant's store runs its
//! cheap health probe on the blocking pool, bounded in time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vector_service_runtime::backends::Store;

/// How often each store is probed.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// A probe slower than this counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// One tenant's readiness.
pub struct Readiness(AtomicBool);

impl Default for Readiness {
    /// Ready until a probe says otherwise (the server probes every store before it listens).
    fn default() -> Self {
        Self(AtomicBool::new(true))
    }
}

impl Readiness {
    /// Not ready: for a tenant whose store could not be opened.
    pub fn not_ready() -> Self {
        Self(AtomicBool::new(false))
    }

    /// Whether the last probe passed.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Probe `store` once and remember the outcome (logging a change).
    pub async fn probe(&self, tenant: &str, store: Arc<dyn Store>) {
        let probe = tokio::task::spawn_blocking(move || store.health());
        let outcome = match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(error))) => Err(error.to_string()),
            Ok(Err(panic)) => Err(format!("the probe panicked: {panic}")),
            Err(_) => Err(format!(
                "no answer within {} s",
                PROBE_TIMEOUT.as_secs_f64()
            )),
        };
        let was = self.0.swap(outcome.is_ok(), Ordering::Relaxed);
        match (was, outcome) {
            (true, Err(reason)) => tracing::error!(tenant, %reason, "tenant store is not ready"),
            (false, Ok(())) => tracing::info!(tenant, "tenant store is ready again"),
            _ => {}
        }
    }
}
