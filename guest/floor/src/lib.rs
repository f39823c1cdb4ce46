//! The floor of the sandbox's cost, for `cargo bench --bench overhead`: a component that fits
//! the `vector-service` world and whose `Retriever.search` does the least a search can do. It
//! asks the backend once and returns its hits, shaped as the contract says (the record id, else
//! the backend's id), with the product guest's allocator (Rust's default) and stack. It validates nothing, logs
//! nothing, records no metric and caches nothing, so it imports two functions, not 21.
//!
//! What the product component costs above this one is its wrapper logic; what this one costs
//! above the backend is the canonical ABI's and wasmtime's, which no guest can go below.
//! The other operations answer `unavailable`.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "vector-service:plugin/vector-service",
        generate_all,
    });
}

use bindings::exports::vector_service::plugin::retriever as ret;
use bindings::vector_service::plugin::retriever_backend::{self, BackendHit};
use bindings::vector_service::plugin::types::{BackendError, Error, Hit};

struct Component;

search_only::other_operations_unavailable!(Component, "the floor component only implements search");

/// A backend hit as the caller receives it, shaped as the product guest shapes it.
fn hit(backend: BackendHit) -> Hit {
    Hit {
        origin_db: backend.origin_db,
        record_id: Some(backend.record_id.unwrap_or(backend.id)),
        score: backend.score,
        reason: backend.reason,
        metadata: backend.metadata,
    }
}

impl ret::Guest for Component {
    fn search(
        session_id: String,
        request: ret::SearchRequest,
    ) -> Result<ret::SearchResponse, Error> {
        let top_k = request.top_k.unwrap_or(5);
        let (answer, _handle) = retriever_backend::search(&request.query, top_k, &request.origins)
            .map_err(|error| match error {
                BackendError::RateLimited(message) => Error::RateLimited(message),
                BackendError::Unavailable(message) => Error::Unavailable(message),
                BackendError::Failed(message) => Error::Backend(message),
            })?;
        Ok(ret::SearchResponse {
            session_id,
            hits: answer.hits.into_iter().map(hit).collect(),
            fallback: None,
            from_cache: false,
            warnings: Vec::new(),
        })
    }
}

bindings::export!(Component with_types_in bindings);
