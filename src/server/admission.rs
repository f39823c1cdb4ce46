//! Per-tenant admission: a token bucket for the request rate (beyond it: 429) and a bounded
//! number of calls running at once (beyond it a request waits up to the tenant's queue wait,
//! then gets 503 with Retry-After). One tenant's load cannot take another's slots; all of
//! them together take no more than the server's instance pool holds.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;
use super::tenants::TenantLimits;

/// Tokens refill at `rate` per second up to `capacity` (one second's worth, at least 1).
struct TokenBucket {
    tokens: f64,
    capacity: f64,
    rate: f64,
    refilled: Instant,
}

impl TokenBucket {
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

/// One call's slots, the tenant's and the server's; freed on drop.
#[derive(Debug)]
pub struct CallPermit {
    _tenant: OwnedSemaphorePermit,
    _server: OwnedSemaphorePermit,
}

/// A tenant's gate.
pub struct Admission {
    slots: Arc<Semaphore>,
    max_concurrent: usize,
    queue_wait: Duration,
    bucket: Mutex<TokenBucket>,
}

impl Admission {
    /// A gate for `limits`.
    pub fn new(limits: &TenantLimits) -> Self {
        let capacity = limits.requests_per_second.max(1.0);
        Self {
            slots: Arc::new(Semaphore::new(limits.max_concurrent as usize)),
            max_concurrent: limits.max_concurrent as usize,
            queue_wait: Duration::from_millis(limits.queue_wait_ms),
            bucket: Mutex::new(TokenBucket {
                tokens: capacity,
                capacity,
                rate: limits.requests_per_second,
                refilled: Instant::now(),
            }),
        }
    }

    /// A slot to run one call in, one of the tenant's and one of the `server`'s (the
    /// instance pool's), both within the tenant's queue wait; or the reason there is none.
    pub async fn admit(&self, server: &Arc<Semaphore>) -> Result<CallPermit, ApiError> {
        let rate = self
            .bucket
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(Instant::now());
        if let Err(wait) = rate {
            return Err(ApiError::rate_limited(wait));
        }
        let both = async {
            let tenant = self.slots.clone().acquire_owned().await?;
            let server = server.clone().acquire_owned().await?;
            Ok::<_, tokio::sync::AcquireError>(CallPermit {
                _tenant: tenant,
                _server: server,
            })
        };
        match tokio::time::timeout(self.queue_wait, both).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ApiError::overloaded()),
        }
    }

    /// Calls running now.
    pub fn busy(&self) -> usize {
        self.max_concurrent - self.slots.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket {
            tokens: 2.0,
            capacity: 2.0,
            rate: 2.0,
            refilled: start,
        };
        assert!(bucket.take(start).is_ok());
        assert!(bucket.take(start).is_ok());
        let wait = bucket.take(start).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6);
        assert!(bucket.take(start + Duration::from_millis(500)).is_ok());
    }

    #[tokio::test]
    async fn a_full_gate_answers_overloaded_after_the_queue_wait() {
        let gate = Admission::new(&TenantLimits {
            max_concurrent: 1,
            queue_wait_ms: 10,
            ..TenantLimits::default()
        });
        let server = Arc::new(Semaphore::new(8));
        let held = gate.admit(&server).await.unwrap();
        assert_eq!(gate.busy(), 1);
        assert_eq!(gate.admit(&server).await.unwrap_err().status.as_u16(), 503);
        drop(held);
        assert!(gate.admit(&server).await.is_ok());
        // The server's slots bound every tenant's calls together.
        let other = Admission::new(&TenantLimits {
            queue_wait_ms: 10,
            ..TenantLimits::default()
        });
        let full = Arc::new(Semaphore::new(0));
        assert_eq!(other.admit(&full).await.unwrap_err().status.as_u16(), 503);
        assert_eq!(other.busy(), 0);
    }
}
