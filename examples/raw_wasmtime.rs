//! The WIT is enough: load the component from a file with `wasmtime` directly, generate
//! bindings from `wit/` and implement the imports here, without the vector-service host library.
//!
//! ```text
//! cargo run -- component export /tmp/vector-service.wasm
//! cargo run --example raw_wasmtime -- /tmp/vector-service.wasm
//! ```
//! Prints one search and one patch-tracking result; every other import gets a minimal answer.

use std::time::Instant;

use anyhow::Context as _;
use wasmtime::component::{bindgen, Component, HasSelf, Linker, Resource};
use wasmtime::{Engine, Store};

bindgen!({ path: "wit", world: "vector-service:plugin/vector-service" });

use exports::vector_service::plugin::{patch_logger, retriever};
use vector_service::plugin::types::{BackendError, Rates, VectorRef};
use vector_service::plugin::{
    clock, embedding_store, ids, metrics_db, result_cache, retriever_backend, telemetry, types,
    vector_metrics_db,
};
use wasi::logging::logging;

/// Everything the component may touch: two fixed hits, a console log and a call counter.
struct Host {
    started: Instant,
    calls: u32,
}

impl logging::Host for Host {
    fn log(&mut self, level: logging::Level, context: String, message: String) {
        eprintln!("[{level:?}] {message} {context}");
    }
}

impl clock::Host for Host {
    fn monotonic_now(&mut self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }
    fn wall_now_ms(&mut self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
    fn backoff(&mut self, _attempt: u32) {}
}

impl ids::Host for Host {
    fn new_session_id(&mut self) -> String {
        format!("raw-{}", self.started.elapsed().as_nanos())
    }
}

impl telemetry::Host for Host {
    fn observe(&mut self, _: telemetry::Sample) {}

    fn record_call(&mut self, event: telemetry::CallEvent) {
        if let telemetry::CallPhase::End | telemetry::CallPhase::Error = event.phase {
            self.calls += 1;
        }
    }
}

impl result_cache::Host for Host {
    fn get_hits(&mut self, _: String) -> Option<Vec<retriever_backend::BackendHit>> {
        None
    }
    fn put_answer(&mut self, _: String, _: Resource<retriever_backend::Answer>) {}
    fn get_context(&mut self, _: String) -> Option<String> {
        None
    }
    fn put_context(&mut self, _: String, _: String) {}
}

impl types::Host for Host {}

/// No cache here, so an answer's handle holds nothing: every one has the same representation.
impl retriever_backend::HostAnswer for Host {
    fn drop(&mut self, _: Resource<retriever_backend::Answer>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl retriever_backend::Host for Host {
    fn search(
        &mut self,
        query: String,
        _: u32,
        _: Vec<String>,
    ) -> Result<
        (
            retriever_backend::BackendHits,
            Resource<retriever_backend::Answer>,
        ),
        BackendError,
    > {
        let hit = |origin: &str, id: &str, score| retriever_backend::BackendHit {
            origin_db: origin.into(),
            id: id.into(),
            record_id: None,
            score,
            reason: format!("matched {query:?}"),
            metadata: "{}".into(),
        };
        let hits = retriever_backend::BackendHits {
            hits: vec![hit("error", "e-1", 0.9), hit("bot", "b-2", 0.7)],
            confidence: None,
        };
        Ok((hits, Resource::new_own(0)))
    }
}

impl metrics_db::Host for Host {
    fn available(&mut self) -> bool {
        true
    }
    fn log_patch_outcome(&mut self, outcome: metrics_db::PatchOutcome) -> Result<(), BackendError> {
        println!(
            "primary metrics db: patch {} with {} contributor row(s)",
            outcome.patch_id,
            outcome.contributors.len()
        );
        Ok(())
    }
}

impl vector_metrics_db::Host for Host {
    fn record_outcomes(
        &mut self,
        _: Vec<vector_metrics_db::VectorOutcome>,
    ) -> Result<(), BackendError> {
        Ok(())
    }
    fn vector_rates(
        &mut self,
        vectors: Vec<VectorRef>,
    ) -> Result<Vec<Option<Rates>>, BackendError> {
        Ok(vec![None; vectors.len()])
    }
    fn origin_rates(&mut self, origins: Vec<String>) -> Result<Vec<Option<Rates>>, BackendError> {
        Ok(vec![None; origins.len()])
    }
}

impl embedding_store::Host for Host {
    fn databases(&mut self) -> Result<Vec<String>, BackendError> {
        Ok(vec![])
    }
    fn pending(
        &mut self,
        _: String,
        _: Option<String>,
        _: u32,
    ) -> Result<Vec<String>, BackendError> {
        Ok(vec![])
    }
    fn embed(
        &mut self,
        _: String,
        _: Vec<String>,
    ) -> Result<embedding_store::EmbedReport, BackendError> {
        Ok(embedding_store::EmbedReport {
            embedded: 0,
            skipped: 0,
        })
    }
}

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .context("usage: raw_wasmtime COMPONENT.wasm")?;
    let engine = Engine::default();
    let component = Component::from_file(&engine, &path)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("loading {path}"))?;
    let mut linker = Linker::new(&engine);
    VectorService::add_to_linker::<Host, HasSelf<Host>>(&mut linker, |host| host)?;
    let mut store = Store::new(
        &engine,
        Host {
            started: Instant::now(),
            calls: 0,
        },
    );
    let plugin = VectorService::instantiate(&mut store, &component, &linker)?;

    let request = retriever::SearchRequest {
        query: "upload failed".into(),
        top_k: Some(2),
        similarity_threshold: None,
        origins: vec![],
    };
    let found = plugin.vector_service_plugin_retriever().call_search(
        &mut store,
        "raw-session",
        &request,
    )?;
    match found {
        Ok(response) => {
            for hit in response.hits {
                println!(
                    "hit {} {:?} score {:.2}",
                    hit.origin_db, hit.record_id, hit.score
                );
            }
        }
        Err(error) => println!("search failed: {error}"),
    }
    let track = patch_logger::TrackRequest {
        vector_ids: vec!["error:e-1".into()],
        success: true,
        patch_id: "p-1".into(),
        contribution: None,
        roi_tag: None,
    };
    let tracked = plugin
        .vector_service_plugin_patch_logger()
        .call_track_contributors(&mut store, "", &track)?;
    match tracked {
        Ok(response) => println!(
            "tracked: {} to {:?} (session {})",
            response.status, response.written_to, response.session_id
        ),
        Err(error) => println!("tracking failed: {error}"),
    }
    println!("calls observed by telemetry: {}", store.data().calls);
    Ok(())
}
