//! The three operations a search-only component leaves out: each answers `unavailable` with
//! the including crate's `NOT_HERE`. Shared by path between this test component and the
//! overhead bench's floor component (`benches/floor-guest/`), which both implement only
//! `Retriever.search`.

use crate::bindings::exports::vector_service::plugin::{
    context_builder as ctx, embedding_backfill as backfill, patch_logger as patch,
};
use crate::bindings::vector_service::plugin::types::Error;
use crate::Component;

fn not_here() -> Error {
    Error::Unavailable(crate::NOT_HERE.to_string())
}

impl ctx::Guest for Component {
    fn build(_: String, _: ctx::ContextRequest) -> Result<ctx::ContextResponse, Error> {
        Err(not_here())
    }
}

impl patch::Guest for Component {
    fn track_contributors(
        _: String,
        _: patch::TrackRequest,
    ) -> Result<patch::TrackResponse, Error> {
        Err(not_here())
    }
}

impl backfill::Guest for Component {
    fn run(_: String, _: backfill::BackfillRequest) -> Result<backfill::BackfillResponse, Error> {
        Err(not_here())
    }
}
