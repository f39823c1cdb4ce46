//! The operations as futures, for hosts that serve calls from an async executor: the call
//! runs on the caller's task (no hand-off to a thread pool and back), its guest code on a
//! fiber that yields to the executor at every epoch tick, so a guest never holds an executor
//! thread longer than a tick. Backend imports stay synchronous and run on that thread: use
//! these only with backends that answer from process memory and local files (the embedded
//! SQLite store with an in-process embedder), never with ones that wait on a network.

use tracing::Instrument;
use wasmtime::component::{ComponentNamedList, Lift, Lower};

use super::{ExportOf, Instance, ServiceError, VectorService};
use crate::api::{
    ContextRequest, ContextResponse, SearchRequest, SearchResponse, TrackRequest, TrackResponse,
};
use crate::exports::{Params, Results, Signature};

impl VectorService {
    /// [`VectorService::search`] on the caller's async task.
    pub async fn search_async(
        &self,
        session_id: &str,
        request: &SearchRequest,
    ) -> Result<SearchResponse, ServiceError> {
        self.instance()?
            .call_async(|exports| &exports.search, (session_id, request))
            .await
    }

    /// [`VectorService::build_context`] on the caller's async task.
    pub async fn build_context_async(
        &self,
        session_id: &str,
        request: &ContextRequest,
    ) -> Result<ContextResponse, ServiceError> {
        self.instance()?
            .call_async(|exports| &exports.build, (session_id, request))
            .await
    }

    /// [`VectorService::track_contributors`] on the caller's async task.
    pub async fn track_contributors_async(
        &self,
        session_id: &str,
        request: &TrackRequest,
    ) -> Result<TrackResponse, ServiceError> {
        self.instance()?
            .call_async(|exports| &exports.track_contributors, (session_id, request))
            .await
    }
}

impl Instance {
    /// One call under the call deadline, its guest code yielding at every epoch tick.
    async fn call_async<S: Signature>(
        &mut self,
        export: ExportOf<S>,
        params: Params<'_, S>,
    ) -> Result<S::Response, ServiceError>
    where
        for<'a> Params<'a, S>: ComponentNamedList + Lower + Send + Sync,
        Results<S>: ComponentNamedList + Lift + Send + Sync + 'static,
    {
        let span = self.call_span::<S>();
        let started = span.in_scope(|| self.begin(None))?;
        self.store.data_mut().yields = true;
        self.store.set_epoch_deadline(1);
        let outcome = match self.function(export) {
            Ok(function) => {
                function
                    .call_async(&mut self.store, params)
                    .instrument(span.clone())
                    .await
            }
            .map(|(result,)| result),
            Err(error) => Err(error),
        };
        self.store.data_mut().yields = false;
        span.in_scope(|| self.finish(started, outcome, &span))
    }
}
