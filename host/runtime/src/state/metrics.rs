//! `metrics-db` and `vector-metrics-db`: patch outcomes and per-vector rates, bounded before
//! the backend sees them.

use super::{BackendResult, VectorServiceCtx};
use crate::bindings::vector_service::plugin::types::{Rates, VectorRef};
use crate::bindings::vector_service::plugin::{metrics_db, vector_metrics_db};
use crate::bounds::{self, count_error};

impl metrics_db::Host for VectorServiceCtx {
    fn available(&mut self) -> wasmtime::Result<bool> {
        self.budget.charge(&())?;
        Ok(self
            .backend(crate::work_span!("metrics_db.available"), None, |b| {
                Ok(b.metrics_db.available())
            })?
            .unwrap_or(false))
    }

    fn log_patch_outcome(&mut self, outcome: metrics_db::PatchOutcome) -> BackendResult<()> {
        self.budget.charge(&outcome)?;
        let refused = count_error(
            "contributors",
            outcome.contributors.len(),
            bounds::MAX_LOOKUP,
        );
        let span = crate::work_span!(
            "metrics_db.log_patch_outcome",
            contributors = outcome.contributors.len()
        );
        self.backend(span, refused, |b| b.metrics_db.log_patch_outcome(&outcome))
    }
}

impl vector_metrics_db::Host for VectorServiceCtx {
    fn record_outcomes(
        &mut self,
        outcomes: Vec<vector_metrics_db::VectorOutcome>,
    ) -> BackendResult<()> {
        self.budget.charge(&outcomes)?;
        let refused = count_error("outcomes", outcomes.len(), bounds::MAX_LOOKUP);
        let span = crate::work_span!(
            "vector_metrics_db.record_outcomes",
            outcomes = outcomes.len()
        );
        self.backend(span, refused, |b| {
            b.vector_metrics_db.record_outcomes(&outcomes)
        })
    }

    fn vector_rates(&mut self, vectors: Vec<VectorRef>) -> BackendResult<Vec<Option<Rates>>> {
        self.budget.charge(&vectors)?;
        let refused = count_error("vectors", vectors.len(), bounds::MAX_LOOKUP);
        let span = crate::work_span!("vector_metrics_db.vector_rates", vectors = vectors.len());
        self.backend(span, refused, |b| {
            b.vector_metrics_db.vector_rates(&vectors)
        })
    }

    fn origin_rates(&mut self, origins: Vec<String>) -> BackendResult<Vec<Option<Rates>>> {
        self.budget.charge(&origins)?;
        let refused = count_error("origins", origins.len(), bounds::MAX_LOOKUP);
        let span = crate::work_span!("vector_metrics_db.origin_rates", origins = origins.len());
        self.backend(span, refused, |b| {
            b.vector_metrics_db.origin_rates(&origins)
        })
    }
}
