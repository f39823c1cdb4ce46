//! Host-side bindings generated from `wit/`. The generated types are the contract's own types
//! and are re-exported by [`crate::api`]; the traits and linker glue stay in this crate.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "vector-service:plugin/vector-service",
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
    // Every import may trap: that is how the host-call byte cap stops a call.
    imports: { default: trappable },
    // The host's side of a search answer's handle.
    with: { "vector-service:plugin/retriever-backend.answer": crate::answers::Answer },
});
