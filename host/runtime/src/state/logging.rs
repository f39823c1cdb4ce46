//! `wasi:logging`: the guest's lines become `tracing` events with the tenant.

use super::VectorServiceCtx;
use crate::bindings::wasi::logging::logging;

impl logging::Host for VectorServiceCtx {
    fn log(
        &mut self,
        level: logging::Level,
        context: String,
        message: String,
    ) -> wasmtime::Result<()> {
        self.budget.charge(&(&context, &message))?;
        crate::logging::emit(&self.context.tenant, level, &context, &message);
        Ok(())
    }
}
