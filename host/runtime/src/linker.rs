//! Our imports for a caller's own [`Linker`], the way wasmtime's `wasi-*` crates offer theirs:
//! keep a [`VectorServiceCtx`] in your store data, expose it through [`VectorServiceView`],
//! call [`add_to_linker`] next to your other interfaces, and instantiate through
//! [`VectorServicePre`]. `examples/own-linker` does exactly that.

use std::time::Instant;

use wasmtime::component::{HasSelf, Linker, ResourceType};
use wasmtime::{Store, UpdateDeadline};

use crate::answers::Answer;
use crate::bindings::vector_service::plugin::{
    clock, embedding_store, ids, metrics_db, result_cache, telemetry, types, vector_metrics_db,
};
use crate::bindings::wasi::logging::logging;
use crate::engine::{anyhow_result, deadline_ticks, ensure_ticking};
use crate::long_work::RunCancelled;
use crate::WIT_PACKAGE;

pub use crate::bindings::{VectorService as VectorServiceBindings, VectorServicePre};
pub use crate::state::{TenantContext, VectorServiceCtx};

/// How our imports find their context in a caller's store data.
pub trait VectorServiceView: Send {
    /// The context our imports read and update.
    fn vector_service(&mut self) -> &mut VectorServiceCtx;
}

impl VectorServiceView for VectorServiceCtx {
    fn vector_service(&mut self) -> &mut VectorServiceCtx {
        self
    }
}

/// Define every import of the `vector-service` world (backends, telemetry, logging, cache,
/// clocks, ids) in `linker`. The engine must be configured with [`crate::configure`]; its
/// epoch is advanced by this crate's ticker from now on (one thread per process).
pub fn add_to_linker<T: VectorServiceView + 'static>(linker: &mut Linker<T>) -> anyhow::Result<()> {
    ensure_ticking(linker.engine());
    type Ctx = HasSelf<VectorServiceCtx>;
    let get = T::vector_service;
    anyhow_result((|| {
        logging::add_to_linker::<T, Ctx>(linker, get)?;
        clock::add_to_linker::<T, Ctx>(linker, get)?;
        ids::add_to_linker::<T, Ctx>(linker, get)?;
        telemetry::add_to_linker::<T, Ctx>(linker, get)?;
        types::add_to_linker::<T, Ctx>(linker, get)?;
        result_cache::add_to_linker::<T, Ctx>(linker, get)?;
        add_retriever_backend(linker)?;
        metrics_db::add_to_linker::<T, Ctx>(linker, get)?;
        vector_metrics_db::add_to_linker::<T, Ctx>(linker, get)?;
        embedding_store::add_to_linker::<T, Ctx>(linker, get)
    })())
}

/// `retriever-backend`, by hand rather than generated: its `search` lowers the hits by
/// reference from the allocation its `answer` handle keeps for the cache. The linker checks
/// these signatures against the component's imports when it is instantiated.
fn add_retriever_backend<T: VectorServiceView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    let version = WIT_PACKAGE
        .rsplit_once('@')
        .map_or("", |(_, version)| version);
    let mut backend = linker.instance(&format!(
        "vector-service:plugin/retriever-backend@{version}"
    ))?;
    backend.resource(
        "answer",
        ResourceType::host::<Answer>(),
        |mut store, rep| {
            store.data_mut().vector_service().release_answer(rep);
            Ok(())
        },
    )?;
    backend.func_wrap(
        "search",
        |mut store, (query, top_k, origins): (String, u32, Vec<String>)| {
            let answer = store
                .data_mut()
                .vector_service()
                .search(query, top_k, origins)?;
            Ok((answer,))
        },
    )
}

/// Arm a new store for calls under its context's limits: the memory cap, and the deadline as
/// an epoch deadline. At each epoch deadline a long run whose batch renewed the deadline goes
/// on, a cancelled run stops, and anything else is interrupted.
pub fn prepare_store<T: VectorServiceView + 'static>(store: &mut Store<T>) {
    store.limiter(|data| &mut data.vector_service().limiter);
    let left = store
        .data_mut()
        .vector_service()
        .deadline
        .saturating_duration_since(Instant::now());
    store.set_epoch_deadline(deadline_ticks(left));
    store.epoch_deadline_callback(|mut context| {
        let state = context.data_mut().vector_service();
        if state.cancelled() {
            return Err(RunCancelled.into());
        }
        let left = state.deadline.saturating_duration_since(Instant::now());
        Ok(if left.is_zero() {
            UpdateDeadline::Interrupt
        } else {
            resume(state.yields, left)
        })
    });
}

/// Guest code with time left goes on: an async call after yielding to the executor, one tick
/// at a time (so it never holds an executor thread longer than a tick); a synchronous one
/// until its deadline.
fn resume(yields: bool, left: std::time::Duration) -> UpdateDeadline {
    #[cfg(feature = "async")]
    if yields {
        return UpdateDeadline::Yield(1);
    }
    #[cfg(not(feature = "async"))]
    let _ = yields;
    UpdateDeadline::Continue(deadline_ticks(left))
}
