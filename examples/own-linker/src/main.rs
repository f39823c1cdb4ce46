//! A platform's own wasmtime host that runs the vector-service component with nothing but
//! `vector-service-runtime`: it owns the `Engine`, the `Linker` and the `Store`, defines an
//! interface of its own in the same linker (an audit hook its other plugins would import),
//! adds our imports with `add_to_linker`, and calls `search` through the `Pre` type.
//!
//! Run: `cargo run -p own-linker`. It needs no wasm toolchain: the component comes prebuilt.

use std::sync::Arc;

use anyhow::Context as _;
use vector_service_runtime::api::SearchRequest;
use vector_service_runtime::backends::memory::MemoryStore;
use vector_service_runtime::backends::{Backends, Record, SearchMode};
use vector_service_runtime::linker::{
    add_to_linker, prepare_store, TenantContext, VectorServiceCtx, VectorServicePre,
    VectorServiceView,
};
use vector_service_runtime::{
    configure, SandboxLimits, ServiceConfig, Telemetry, BUILTIN_COMPONENT,
};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store};

/// The platform's store data: its own state next to ours.
struct PlatformState {
    /// What the platform's audit interface recorded.
    audit: Vec<String>,
    vector_service: VectorServiceCtx,
}

impl VectorServiceView for PlatformState {
    fn vector_service(&mut self) -> &mut VectorServiceCtx {
        &mut self.vector_service
    }
}

fn main() -> anyhow::Result<()> {
    // The platform's engine: its own settings, plus what our sandbox needs.
    let mut config = Config::new();
    configure(&mut config);
    let engine = Engine::new(&config).map_err(anyhow::Error::from)?;

    // The platform's linker: an interface of its own, then ours.
    let mut linker = Linker::<PlatformState>::new(&engine);
    linker
        .instance("platform:audit/log@1.0.0")
        .and_then(|mut audit| {
            audit.func_wrap(
                "record",
                |mut store: wasmtime::StoreContextMut<'_, PlatformState>, (line,): (String,)| {
                    store.data_mut().audit.push(line);
                    Ok(())
                },
            )
        })
        .map_err(anyhow::Error::from)
        .context("defining the platform's audit interface")?;
    add_to_linker(&mut linker)?;

    let component = Component::new(&engine, BUILTIN_COMPONENT).map_err(anyhow::Error::from)?;
    let pre = linker
        .instantiate_pre(&component)
        .and_then(VectorServicePre::new)
        .map_err(anyhow::Error::from)
        .context("the component fits the vector-service world")?;

    // One tenant over an in-memory store with a few records.
    let store = Arc::new(MemoryStore::new().with_search_mode(SearchMode::Lexical));
    for (id, text) in [
        ("e1", "upload failed: disk full on the build host"),
        ("e2", "certificate expired on the api gateway"),
        ("e3", "upload retried after a timeout"),
    ] {
        store.insert(
            "errors",
            Record {
                origin_db: "error".into(),
                id: id.into(),
                text: text.into(),
                metadata: serde_json::json!({ "name": id }),
            },
        );
    }
    let telemetry = Telemetry::new();
    let tenant = TenantContext::new(
        Backends::memory(store),
        telemetry.clone(),
        &ServiceConfig {
            tenant: "platform-demo".into(),
            ..ServiceConfig::default()
        },
    );

    // A fresh store per call, as the batteries-included VectorService does.
    let state = PlatformState {
        audit: Vec::new(),
        vector_service: VectorServiceCtx::new(tenant, &SandboxLimits::default()),
    };
    let mut wasm_store = Store::new(&engine, state);
    prepare_store(&mut wasm_store);
    let bindings = pre
        .instantiate(&mut wasm_store)
        .map_err(anyhow::Error::from)?;
    let request = SearchRequest {
        query: "upload failed".into(),
        top_k: Some(2),
        similarity_threshold: None,
        origins: vec![],
    };
    let response = bindings
        .vector_service_plugin_retriever()
        .call_search(&mut wasm_store, "own-linker-1", &request)
        .map_err(anyhow::Error::from)?
        .map_err(|error| anyhow::anyhow!("search refused: {error:?}"))?;

    for hit in &response.hits {
        println!(
            "{}:{} score {:.3}",
            hit.origin_db,
            hit.record_id.as_deref().unwrap_or("-"),
            hit.score
        );
    }
    anyhow::ensure!(!response.hits.is_empty(), "the search found nothing");
    let calls = telemetry
        .render()
        .lines()
        .filter(|line| line.starts_with("vector_service_calls_total"))
        .map(str::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    println!("{calls}");
    println!(
        "audit lines recorded by the platform's own interface: {}",
        wasm_store.data().audit.len()
    );
    Ok(())
}
