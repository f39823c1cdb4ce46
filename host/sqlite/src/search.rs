//! Search: the modes' rankings over the lexical and vector indexes, and the hits read back.

use vector_service_runtime::api::{BackendError, BackendHit, BackendHits};
use vector_service_runtime::backends::ranking::{search_by_mode, Rankings, SearchMode};
use vector_service_runtime::backends::Retriever;
use vector_service_runtime::deadline;

use crate::SqliteStore;

impl Retriever for SqliteStore {
    fn search(
        &self,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Result<BackendHits, BackendError> {
        search_by_mode(self, query, top_k, origins)
    }

    /// Lexical search reads the change clock first anyway (to catch its index up): that one
    /// read also gives the generation. The other modes read it apart.
    fn search_reading_generation(
        &self,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Option<Result<(BackendHits, u64), BackendError>> {
        (self.search_mode == SearchMode::Lexical).then(|| {
            let connection = self.connection()?;
            let clock = self.clock(&connection)?;
            let found = self.lexical_search_at(&connection, clock.seq, query, top_k, origins)?;
            Ok((found, clock.generation))
        })
    }
}

impl Rankings for SqliteStore {
    fn search_mode(&self) -> SearchMode {
        self.search_mode
    }

    fn lexical_search(
        &self,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Result<BackendHits, BackendError> {
        let connection = self.connection()?;
        self.lexical_search_at(
            &connection,
            self.clock(&connection)?.seq,
            query,
            top_k,
            origins,
        )
    }

    fn vector_search(
        &self,
        query: &str,
        top_k: u32,
        origins: &[String],
    ) -> Result<Vec<BackendHit>, BackendError> {
        let _span =
            vector_service_runtime::work_span!("store.vector", "db.system" = "sqlite", top_k)
                .entered();
        let query_vector = self
            .embedder
            .embed(&[query])?
            .pop()
            .ok_or_else(|| BackendError::Failed("the embedder returned no vector".into()))?;
        let mut index = deadline::lock(&self.index)?;
        self.current_index(&mut index)?;
        let Some(indexed) = index.as_ref() else {
            return Ok(Vec::new());
        };
        let keep = |key: u64| {
            indexed
                .origins
                .get(&key)
                .is_some_and(|origin| origins.contains(origin))
        };
        let nearest = indexed
            .index
            .search(
                &query_vector,
                top_k as usize,
                (!origins.is_empty()).then_some(&keep as &dyn Fn(u64) -> bool),
            )
            .map_err(|e| BackendError::Failed(e.to_string()))?;
        let scored: Vec<(u64, f64)> = nearest
            .into_iter()
            .map(|(key, similarity)| (key, f64::from(similarity)))
            .collect();
        drop(index);
        let connection = self.connection()?;
        Self::hits_for_keys(&connection, &scored, "cosine similarity")
    }
}
