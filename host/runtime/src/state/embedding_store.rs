//! `embedding-store`: the backfill's databases, pending ids and embedding, each call starting
//! a new batch of a long run.

use super::{BackendResult, VectorServiceCtx};
use crate::bindings::vector_service::plugin::embedding_store;
use crate::bounds::{self, count_error};

impl embedding_store::Host for VectorServiceCtx {
    fn databases(&mut self) -> BackendResult<Vec<String>> {
        self.budget.charge(&())?;
        self.backend(crate::work_span!("embedding_store.databases"), None, |b| {
            b.embedding_store.databases()
        })
    }

    fn pending(
        &mut self,
        db: String,
        after: Option<String>,
        limit: u32,
    ) -> BackendResult<Vec<String>> {
        self.start_batch();
        self.budget.charge(&(&db, &after))?;
        let refused = count_error("pending ids", limit as usize, bounds::MAX_BATCH);
        let span = crate::work_span!("embedding_store.pending", db = %db, limit);
        self.backend(span, refused, |b| {
            b.embedding_store.pending(&db, after.as_deref(), limit)
        })
    }

    fn embed(
        &mut self,
        db: String,
        ids: Vec<String>,
    ) -> BackendResult<embedding_store::EmbedReport> {
        self.start_batch();
        self.budget.charge(&(&db, &ids))?;
        let refused = count_error("records to embed", ids.len(), bounds::MAX_BATCH);
        let span = crate::work_span!("embedding_store.embed", db = %db, records = ids.len());
        self.backend(span, refused, |b| b.embedding_store.embed(&db, &ids))
    }
}
