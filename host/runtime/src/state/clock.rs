//! `clock` and `ids`: monotonic and wall time, the retry backoff (bounded by the deadline), and
//! fresh session ids.

use std::sync::OnceLock;
use std::time::Instant;

use super::VectorServiceCtx;
use crate::bindings::vector_service::plugin::{clock, ids};
use crate::deadline::HostDeadlineExceeded;

fn process_start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

impl clock::Host for VectorServiceCtx {
    fn monotonic_now(&mut self) -> wasmtime::Result<u64> {
        Ok(process_start().elapsed().as_nanos() as u64)
    }

    fn wall_now_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(crate::backends::records::unix_ms())
    }

    fn backoff(&mut self, attempt: u32) -> wasmtime::Result<()> {
        self.budget.charge(&())?;
        let factor = 1u32 << attempt.clamp(1, 6).saturating_sub(1);
        let wanted = self.context.retry_backoff.saturating_mul(factor);
        let left = self.deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(wanted.min(left));
        if wanted >= left {
            return Err(HostDeadlineExceeded.into());
        }
        Ok(())
    }
}

impl ids::Host for VectorServiceCtx {
    fn new_session_id(&mut self) -> wasmtime::Result<String> {
        Ok(uuid::Uuid::new_v4().to_string())
    }
}
