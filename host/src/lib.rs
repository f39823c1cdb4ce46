//! Embed the vector-service component in a wasmtime host.
//!
//! The component (built from `guest/` and included in this crate) holds the wrapper logic of
//! four operations; this crate supplies its imports: backends behind narrow traits, Prometheus
//! telemetry with a `tenant` label, `wasi:logging` as `tracing` events, a bounded result cache,
//! clocks and session ids. Every call runs in a fresh store with a memory cap and a deadline.
//!
//! ```no_run
//! use std::sync::Arc;
//! use vector_service_host::api::SearchRequest;
//! use vector_service_host::backends::{memory::MemoryStore, Backends};
//! use vector_service_host::{Plugin, ServiceConfig, Telemetry, VectorService};
//!
//! let plugin = Arc::new(Plugin::builtin()?);
//! let store = Arc::new(MemoryStore::new());
//! let telemetry = Telemetry::new();
//! let service = VectorService::new(plugin, Backends::memory(store), telemetry.clone(), ServiceConfig::default());
//! let request = SearchRequest { query: "upload failed".into(), top_k: None, similarity_threshold: None, origins: vec![] };
//! let response = service.search("session-1", &request)?;
//! println!("{} hits\n{}", response.hits.len(), telemetry.render());
//! # Ok::<(), anyhow::Error>(())
//! ```
#![deny(missing_docs)]

#[allow(missing_docs)]
mod bindings;
pub mod bounds;
mod cache;
pub mod deadline;
mod engine;
mod host_calls;
mod limits;
mod logging;
mod long_work;
mod service;
mod state;
mod telemetry;

#[allow(missing_docs)]
pub mod backends;

/// The WIT contract's types, as the host sees them (generated from `wit/`).
#[allow(missing_docs)]
pub mod api {
    pub use crate::bindings::exports::vector_service::plugin::context_builder::{
        ContextEntry, ContextRequest, ContextResponse,
    };
    pub use crate::bindings::exports::vector_service::plugin::embedding_backfill::{
        BackfillRequest, BackfillResponse, DatabaseReport,
    };
    pub use crate::bindings::exports::vector_service::plugin::patch_logger::{
        Destination, TrackRequest, TrackResponse,
    };
    pub use crate::bindings::exports::vector_service::plugin::retriever::{
        Fallback, Hit, SearchRequest, SearchResponse,
    };
    pub use crate::bindings::vector_service::plugin::embedding_store::EmbedReport;
    pub use crate::bindings::vector_service::plugin::metrics_db::{ContributorRow, PatchOutcome};
    pub use crate::bindings::vector_service::plugin::retriever_backend::{BackendHit, BackendHits};
    pub use crate::bindings::vector_service::plugin::types::{
        BackendError, Error, Rates, VectorRef,
    };
    pub use crate::bindings::vector_service::plugin::vector_metrics_db::VectorOutcome;
}

pub use cache::CacheConfig;
pub use engine::{Allocation, Plugin, PluginHandle, BUILTIN_COMPONENT, EPOCH_TICK, WIT_PACKAGE};
pub use host_calls::HostCallBytesExceeded;
pub use limits::SandboxLimits;
pub use logging::GUEST_TARGET;
pub use long_work::{CancelFlag, RunCancelled, RunLimits};
pub use service::{Instance, ServiceConfig, ServiceError, VectorService};
pub use telemetry::{SandboxFailure, Telemetry};
