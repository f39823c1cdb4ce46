//! End-to-end tests: the CLI, the server and the store and embedder crates together, through
//! the real component in wasmtime (the service's own behaviour is tested in host/runtime). One
//! test binary (modules below) so the component compiles once.

mod support;

mod abuse;
mod blast_radius;
mod catalogue;
mod cli;
mod coherence;
mod fail_fast;
mod http_embedder;
mod long_backfill;
mod metering;
#[cfg(feature = "neural")]
mod minilm_embedder;
mod misbehaving;
mod node_host;
mod openapi;
mod promises;
mod readme;
mod rollout;
mod scale_out;
mod server;
mod sqlite_backend;
mod tenant_lifecycle;
mod traces;
mod vector_index;
