//! Readiness kept by a background check, so that `/readyz` (unauthenticated) answers from a
//! flag per tenant and never touches a store: every few seconds each open tenant's store runs
//! its cheap health probe on the blocking pool, bounded in time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vector_service_runtime::api::BackendError;
use vector_service_runtime::backends::Store;

/// How often each store is probed.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// A probe slower than this counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// One tenant's readiness: why its last probe failed, if it did, and whether that says the
/// store cannot be reached (then requests fail at once instead of waiting out their deadline:
/// a circuit breaker that the next probe to pass closes).
pub struct Readiness {
    reason: Mutex<Option<String>>,
    unreachable: AtomicBool,
}

impl Default for Readiness {
    /// Ready until a probe says otherwise (the server probes its open tenants' stores).
    fn default() -> Self {
        Self {
            reason: Mutex::new(None),
            unreachable: AtomicBool::new(false),
        }
    }
}

impl Readiness {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.reason.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the last probe found the store unreachable (it failed as `unavailable`, or did
    /// not answer in time).
    pub fn unreachable(&self) -> bool {
        self.unreachable.load(Ordering::Relaxed)
    }

    /// Why the last probe failed, if it did (a reason fit for an HTTP body).
    pub fn reason(&self) -> Option<String> {
        self.lock().clone()
    }

    /// Probe `store` once and remember the outcome (logging a change, with the store's own
    /// detail; callers are shown its kind only).
    pub async fn probe(&self, tenant: &str, store: Arc<dyn Store>) {
        let probe = tokio::task::spawn_blocking(move || store.health());
        let outcome = tokio::time::timeout(PROBE_TIMEOUT, probe).await;
        let unreachable = matches!(outcome, Ok(Ok(Err(BackendError::Unavailable(_)))) | Err(_));
        self.unreachable.store(unreachable, Ordering::Relaxed);
        let outcome = match outcome {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(error))) => Err((
                format!("its store failed its health check ({})", error_kind(&error)),
                error.to_string(),
            )),
            Ok(Err(panic)) => Err((
                "its health check failed inside the server".to_string(),
                format!("the probe panicked: {panic}"),
            )),
            Err(_) => {
                let reason = format!(
                    "its store did not answer its health check within {} s",
                    PROBE_TIMEOUT.as_secs_f64()
                );
                Err((reason.clone(), reason))
            }
        };
        let shown = outcome.as_ref().err().map(|(shown, _)| shown.clone());
        let was = std::mem::replace(&mut *self.lock(), shown);
        match (was, outcome) {
            (None, Err((_, detail))) => {
                tracing::error!(tenant, reason = %detail, "tenant store is not ready")
            }
            (Some(_), Ok(())) => tracing::info!(tenant, "tenant store is ready again"),
            _ => {}
        }
    }
}

/// A backend error's kind, as the contract names it.
fn error_kind(error: &BackendError) -> &'static str {
    match error {
        BackendError::RateLimited(_) => "rate-limited",
        BackendError::Unavailable(_) => "unavailable",
        BackendError::Failed(_) => "failed",
    }
}
