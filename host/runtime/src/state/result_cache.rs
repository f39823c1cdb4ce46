//! `result-cache`: the tenant's answers, kept and checked at the store's generation as this
//! call first saw it.

use wasmtime::component::Resource;

use super::VectorServiceCtx;
use crate::answers::Answer;
use crate::bindings::vector_service::plugin::result_cache;
use crate::bindings::vector_service::plugin::retriever_backend::BackendHit;
use crate::cache::{CacheKind, CachedValue};

impl VectorServiceCtx {
    /// The cached value under (`kind`, `key`) if it is current for this call's store.
    fn cache_get(&mut self, kind: CacheKind, key: &str) -> Option<CachedValue> {
        let span = crate::work_span!("result_cache.get", kind = ?kind, hit = tracing::field::Empty);
        let _entered = span.enter();
        let generation = self.cache_generation()?;
        let found = self.context.cache.get(kind, key, generation);
        span.record("hit", found.is_some());
        found
    }

    /// Keep `value` under (`kind`, `key`) at this call's store generation.
    fn cache_put(&mut self, kind: CacheKind, key: &str, value: CachedValue) {
        let span = crate::work_span!("result_cache.put", kind = ?kind);
        let _entered = span.enter();
        let Some(generation) = self.cache_generation() else {
            return;
        };
        let size = self.context.cache.put(kind, key, value, generation);
        self.context.series.cache_size(size);
    }
}

impl result_cache::Host for VectorServiceCtx {
    fn get_hits(&mut self, key: String) -> wasmtime::Result<Option<Vec<BackendHit>>> {
        self.budget.charge(&key)?;
        Ok(match self.cache_get(CacheKind::Search, &key) {
            Some(CachedValue::Hits(hits)) => Some(hits.as_ref().clone()),
            _ => None,
        })
    }

    fn put_answer(&mut self, key: String, answer: Resource<Answer>) -> wasmtime::Result<()> {
        self.budget.charge(&key)?;
        let hits = self.answers.get_mut(&answer).and_then(Answer::take_hits);
        if let Some(hits) = hits {
            self.cache_put(CacheKind::Search, &key, CachedValue::Hits(hits));
        }
        Ok(())
    }

    fn get_context(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.budget.charge(&key)?;
        Ok(match self.cache_get(CacheKind::Context, &key) {
            Some(CachedValue::Text(text)) => Some(text),
            _ => None,
        })
    }

    fn put_context(&mut self, key: String, value: String) -> wasmtime::Result<()> {
        self.budget.charge(&(&key, &value))?;
        self.cache_put(CacheKind::Context, &key, CachedValue::Text(value));
        Ok(())
    }
}
