//! The sandboxed service, operation by operation, through the real built-in component in
//! wasmtime over the in-memory store or scripted backends: every behaviour of the behaviour
//! reference that needs no store crate, server or embedder. One test binary (modules below),
//! so the component compiles once.

mod context_builder;
mod embedding_backfill;
mod logs_and_metrics;
mod patch_logger;
mod retriever;
mod sandbox;
mod wit_contract;
