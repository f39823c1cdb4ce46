//! `telemetry`: a call's start, end and error as typed fields (a log line and the call
//! metrics), and the patch and backfill samples.

use super::VectorServiceCtx;
use crate::bindings::vector_service::plugin::telemetry;

impl telemetry::Host for VectorServiceCtx {
    fn observe(&mut self, sample: telemetry::Sample) -> wasmtime::Result<()> {
        self.budget.charge(&())?;
        self.context
            .telemetry
            .observe(&self.context.tenant, &sample);
        Ok(())
    }

    fn record_call(&mut self, event: telemetry::CallEvent) -> wasmtime::Result<()> {
        self.budget.charge(&event)?;
        crate::logging::emit_call(&self.context.tenant, &event);
        self.context.series.record_call(&event);
        Ok(())
    }
}
