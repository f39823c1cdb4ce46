//! The vector-service component: the wrapper logic of the four operations.
//!
//! Every export validates its input, resolves the session id, logs start/end/error through
//! `wasi:logging`, records metrics through the `telemetry` import and delegates the real work to
//! the backend imports. Storage and search live in the host; nothing here outlives a call.

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "vector-service:plugin/vector-service",
        additional_derives: [serde::Serialize, serde::Deserialize],
        generate_all,
    });
}

mod bounds;
mod context_builder;
mod embedding_backfill;
mod errors;
mod instrument;
mod json;
mod patch_logger;
mod retriever;

use bindings::exports::vector_service::plugin::{
    context_builder as ctx, embedding_backfill as backfill, patch_logger as patch, retriever as ret,
};
use bindings::vector_service::plugin::types::Error;

/// The component's export implementation; all state lives in the host.
struct Component;

impl ret::Guest for Component {
    fn search(
        session_id: String,
        request: ret::SearchRequest,
    ) -> Result<ret::SearchResponse, Error> {
        retriever::search(session_id, request)
    }
}

impl ctx::Guest for Component {
    fn build(
        session_id: String,
        request: ctx::ContextRequest,
    ) -> Result<ctx::ContextResponse, Error> {
        context_builder::build(session_id, request)
    }
}

impl patch::Guest for Component {
    fn track_contributors(
        session_id: String,
        request: patch::TrackRequest,
    ) -> Result<patch::TrackResponse, Error> {
        patch_logger::track_contributors(session_id, request)
    }
}

impl backfill::Guest for Component {
    fn run(
        session_id: String,
        request: backfill::BackfillRequest,
    ) -> Result<backfill::BackfillResponse, Error> {
        embedding_backfill::run(session_id, request)
    }
}

bindings::export!(Component with_types_in bindings);
