//! `retriever-backend` (and the shared `types`): the search, with the cache's generation read
//! before any data, and the answer handle the guest may cache by.

use std::sync::Arc;

use wasmtime::component::Resource;

use super::{BackendResult, Generation, VectorServiceCtx};
use crate::answers::{Answer, FoundHits};
use crate::bindings::vector_service::plugin::retriever_backend::BackendHits;
use crate::bindings::vector_service::plugin::types;
use crate::bounds::{self, count_error, query_error};

impl types::Host for VectorServiceCtx {}

/// The `retriever-backend` import, linked by hand in [`crate::linker`]: its answer lowers the
/// hits from the allocation the `answer` handle shares (the generated binding would own them).
impl VectorServiceCtx {
    pub(crate) fn search(
        &mut self,
        query: String,
        top_k: u32,
        origins: Vec<String>,
    ) -> BackendResult<(FoundHits, Resource<Answer>)> {
        self.budget.charge(&(&query, &origins))?;
        let refused = query_error(&query)
            .or_else(|| count_error("hits", top_k as usize, bounds::MAX_BACKEND_TOP_K as usize));
        let found = match self.search_backend(refused, &query, top_k, &origins)? {
            Ok(found) => found,
            Err(error) => return Ok(Err(error)),
        };
        let cached = self.context.cache.enabled() && self.cache_generation().is_some();
        let found = FoundHits {
            hits: Arc::new(found.hits),
            confidence: found.confidence,
        };
        let answer = self.answers.hold(Answer::new(&found.hits, cached))?;
        Ok(Ok((found, answer)))
    }

    /// The retriever's hits, with the cache's generation read before them (these hits may be
    /// cached): in the search's own statement when the retriever is the change clock and can,
    /// else by a read of its own first.
    fn search_backend(
        &mut self,
        refused: Option<String>,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> BackendResult<BackendHits> {
        let cache_on = self.context.cache.enabled();
        // One span for the search, however many statements it takes.
        let span = crate::work_span!("retriever.search", top_k, origins = origins.len());
        if cache_on
            && matches!(self.generation, Generation::Unread)
            && self.context.backends.retriever_is_change_clock()
        {
            let combined = self.backend(span.clone(), refused.clone(), |b| {
                Ok(b.retriever.search_reading_generation(query, top_k, origins))
            })?;
            match combined {
                Ok(Some(Ok((found, generation)))) => {
                    self.generation = Generation::Read(Some(generation));
                    return Ok(Ok(found));
                }
                Ok(Some(Err(error))) | Err(error) => return Ok(Err(error)),
                Ok(None) => {}
            }
        }
        if cache_on {
            self.cache_generation();
        }
        self.backend(span, refused, |b| b.retriever.search(query, top_k, origins))
    }

    /// The guest dropped its handle on an answer.
    pub(crate) fn release_answer(&mut self, rep: u32) {
        self.answers.release(rep);
    }
}
