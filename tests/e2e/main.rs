//! End-to-end tests: every behaviour of the behaviour reference, exercised through the real
//! component in wasmtime. One test binary (modules below) so the component compiles once.

mod support;

mod abuse;
mod blast_radius;
mod catalogue;
mod cli;
mod coherence;
mod context_builder;
mod embedding_backfill;
mod fail_fast;
mod http_embedder;
mod logs_and_metrics;
mod long_backfill;
mod metering;
#[cfg(feature = "neural")]
mod minilm_embedder;
mod misbehaving;
mod node_host;
mod openapi;
mod patch_logger;
mod promises;
mod readme;
mod retriever;
mod rollout;
mod sandbox;
mod scale_out;
mod server;
mod server_process;
mod sqlite_backend;
mod tenant_lifecycle;
mod vector_index;
mod wit_contract;
