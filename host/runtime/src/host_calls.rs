//! The host-call byte cap: how many bytes one call may hand to the host through imports.
//!
//! The memory cap bounds what a guest can build, not how often it can send it: without this
//! budget a guest could log a 60 MiB line in a loop until the deadline, and the host would copy
//! (and write) every one. Each import charges its arguments' payload; running over the budget
//! traps the call with [`HostCallBytesExceeded`].

use crate::bindings::vector_service::plugin::metrics_db::{ContributorRow, PatchOutcome};
use crate::bindings::vector_service::plugin::retriever_backend::BackendHit;
use crate::bindings::vector_service::plugin::telemetry::CallEvent;
use crate::bindings::vector_service::plugin::types::VectorRef;
use crate::bindings::vector_service::plugin::vector_metrics_db::VectorOutcome;

/// What an import with no variable-size argument costs, so that calling one in a loop is
/// bounded too.
pub(crate) const FIXED_CALL_BYTES: usize = 16;

/// The trap a call gets when its imports' arguments exceed the tenant's byte cap.
#[derive(Debug, thiserror::Error)]
#[error("the component passed more than {limit} bytes to host calls in one call")]
pub struct HostCallBytesExceeded {
    /// The cap that was exceeded.
    pub limit: usize,
}

/// Bytes left for the current call.
pub(crate) struct HostCallBudget {
    limit: usize,
    used: usize,
}

impl HostCallBudget {
    pub(crate) fn new(limit: usize) -> Self {
        Self { limit, used: 0 }
    }

    /// Start a new call (a warm instance serves several).
    pub(crate) fn reset(&mut self) {
        self.used = 0;
    }

    /// Charge `payload`'s bytes plus the fixed cost of one import.
    pub(crate) fn charge(&mut self, payload: &impl WireBytes) -> wasmtime::Result<()> {
        self.used = self
            .used
            .saturating_add(FIXED_CALL_BYTES + payload.wire_bytes());
        if self.used > self.limit {
            return Err(HostCallBytesExceeded { limit: self.limit }.into());
        }
        Ok(())
    }
}

/// The variable-size payload of an import argument: string and list contents.
pub(crate) trait WireBytes {
    fn wire_bytes(&self) -> usize;
}

impl WireBytes for () {
    fn wire_bytes(&self) -> usize {
        0
    }
}

impl WireBytes for str {
    fn wire_bytes(&self) -> usize {
        self.len()
    }
}

impl WireBytes for String {
    fn wire_bytes(&self) -> usize {
        self.len()
    }
}

impl<T: WireBytes> WireBytes for Option<T> {
    fn wire_bytes(&self) -> usize {
        self.as_ref().map_or(0, WireBytes::wire_bytes)
    }
}

impl<T: WireBytes> WireBytes for [T] {
    fn wire_bytes(&self) -> usize {
        self.iter().map(WireBytes::wire_bytes).sum()
    }
}

impl<T: WireBytes> WireBytes for Vec<T> {
    fn wire_bytes(&self) -> usize {
        self.as_slice().wire_bytes()
    }
}

impl<A: WireBytes + ?Sized, B: WireBytes + ?Sized> WireBytes for (&A, &B) {
    fn wire_bytes(&self) -> usize {
        self.0.wire_bytes() + self.1.wire_bytes()
    }
}

impl WireBytes for VectorRef {
    fn wire_bytes(&self) -> usize {
        self.origin_db.len() + self.vector_id.len()
    }
}

impl WireBytes for BackendHit {
    fn wire_bytes(&self) -> usize {
        self.origin_db.len()
            + self.id.len()
            + self.record_id.wire_bytes()
            + self.reason.len()
            + self.metadata.len()
    }
}

impl WireBytes for CallEvent {
    fn wire_bytes(&self) -> usize {
        self.session_id.len()
            + self
                .failure
                .as_ref()
                .map_or(0, |failure| failure.message.len())
    }
}

impl WireBytes for ContributorRow {
    fn wire_bytes(&self) -> usize {
        self.origin_db.wire_bytes() + self.vector_id.wire_bytes()
    }
}

impl WireBytes for PatchOutcome {
    fn wire_bytes(&self) -> usize {
        [&self.patch_id, &self.session_id, &self.label, &self.roi_tag]
            .iter()
            .map(|text| text.len())
            .sum::<usize>()
            + self.contributors.wire_bytes()
            + self.credited_origins.wire_bytes()
    }
}

impl WireBytes for VectorOutcome {
    fn wire_bytes(&self) -> usize {
        self.session_id.len() + self.vector.wire_bytes() + self.patch_id.len() + self.roi_tag.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_traps_once_the_payload_passes_the_limit() {
        let mut budget = HostCallBudget::new(100);
        let line = "x".repeat(40);
        budget.charge(&line).expect("56 bytes fit");
        let error = budget.charge(&line).expect_err("112 bytes do not");
        assert!(error.downcast_ref::<HostCallBytesExceeded>().is_some());
        budget.reset();
        budget.charge(&line).expect("a new call starts from zero");
    }

    #[test]
    fn lists_and_options_count_their_contents() {
        let refs = vec![
            VectorRef {
                origin_db: "bot".into(),
                vector_id: "17".into(),
            };
            3
        ];
        assert_eq!(refs.wire_bytes(), 15);
        assert_eq!(Some("abc".to_string()).wire_bytes(), 3);
        assert_eq!(("ab", "cde").wire_bytes(), 5);
    }
}
