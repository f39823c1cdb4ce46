//! The three operations a search-only component leaves out, written once for the misbehaving
//! test component (`guest/misbehaving/`) and the overhead bench's floor
//! (`guest/floor/`).
//!
//! Each component generates its own bindings, so this crate cannot name their types: it is a
//! macro that expands in the component's crate, where `crate::bindings` (the `wit_bindgen`
//! output for the `vector-service` world) and the component type are in scope.
#![no_std]

/// Implement `ContextBuilder.build`, `PatchLogger.track_contributors` and
/// `EmbeddingBackfill.run` for `$component`, each answering `unavailable` with `$message`.
// `crate` on purpose: it names the calling component's crate, where its bindings are.
#[allow(clippy::crate_in_macro_def)]
#[macro_export]
macro_rules! other_operations_unavailable {
    ($component:ty, $message:expr) => {
        const _: () = {
            use crate::bindings::exports::vector_service::plugin::{
                context_builder as ctx, embedding_backfill as backfill, patch_logger as patch,
            };
            use crate::bindings::vector_service::plugin::types::Error;

            fn not_here() -> Error {
                Error::Unavailable(::std::string::ToString::to_string($message))
            }

            impl ctx::Guest for $component {
                fn build(_: String, _: ctx::ContextRequest) -> Result<ctx::ContextResponse, Error> {
                    Err(not_here())
                }
            }

            impl patch::Guest for $component {
                fn track_contributors(
                    _: String,
                    _: patch::TrackRequest,
                ) -> Result<patch::TrackResponse, Error> {
                    Err(not_here())
                }
            }

            impl backfill::Guest for $component {
                fn run(
                    _: String,
                    _: backfill::BackfillRequest,
                ) -> Result<backfill::BackfillResponse, Error> {
                    Err(not_here())
                }
            }
        };
    };
}
