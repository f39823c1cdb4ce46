//! The component's four operations, each found once per compiled component by its export
//! index; a call types the one it runs with `Instance::get_typed_func`, which checks it against
//! the call's Rust types. Only documented wasmtime API: the whole world was type-checked when
//! the component loaded, by the generated bindings (docs/decisions/0011-exports.md).

use std::marker::PhantomData;

use anyhow::Context as _;
use wasmtime::component::{
    Component, ComponentExportIndex, ComponentNamedList, Instance, Lift, Lower, TypedFunc,
};
use wasmtime::AsContextMut;

use crate::api::{
    BackfillRequest, BackfillResponse, ContextRequest, ContextResponse, Error, SearchRequest,
    SearchResponse, TrackRequest, TrackResponse,
};
use crate::bindings::vector_service::plugin::telemetry::Operation;
use crate::WIT_PACKAGE;

/// What one operation's export takes and answers. Every export takes the session id and a
/// request record and answers `result<response, error>`.
pub(crate) trait Signature {
    /// The request record.
    type Request: Sync;
    /// The response record.
    type Response: Send + Sync + 'static;
    /// The operation, as the guest's telemetry names it (its label: `function_label`).
    const OPERATION: Operation;
}

/// The parameters a call of `S` lowers: borrowed for the call.
pub(crate) type Params<'a, S> = (&'a str, &'a <S as Signature>::Request);

/// The results a call of `S` lifts.
pub(crate) type Results<S> = (Result<<S as Signature>::Response, Error>,);

/// Each operation's marker type and its signature.
macro_rules! operations {
    ($($(#[$doc:meta])* $name:ident($operation:ident): $request:ty => $response:ty;)*) => {$(
        $(#[$doc])*
        pub(crate) enum $name {}

        impl Signature for $name {
            type Request = $request;
            type Response = $response;
            const OPERATION: Operation = Operation::$operation;
        }
    )*};
}

operations! {
    /// `Retriever.search`.
    Search(RetrieverSearch): SearchRequest => SearchResponse;
    /// `ContextBuilder.build`.
    Build(ContextBuilderBuild): ContextRequest => ContextResponse;
    /// `PatchLogger.track_contributors`.
    TrackContributors(PatchLoggerTrackContributors): TrackRequest => TrackResponse;
    /// `EmbeddingBackfill.run`.
    Run(EmbeddingBackfillRun): BackfillRequest => BackfillResponse;
}

/// One operation's export in one compiled component.
pub(crate) struct Export<S> {
    index: ComponentExportIndex,
    signature: PhantomData<fn() -> S>,
}

impl<S: Signature> Export<S>
where
    for<'a> Params<'a, S>: ComponentNamedList + Lower,
    Results<S>: ComponentNamedList + Lift,
{
    /// The function `name` of the exported `interface`.
    fn find(
        component: &Component,
        interface: &ComponentExportIndex,
        name: &str,
    ) -> anyhow::Result<Self> {
        let index = component
            .get_export_index(Some(interface), name)
            .with_context(|| format!("the component does not export `{name}`"))?;
        Ok(Self {
            index,
            signature: PhantomData,
        })
    }

    /// The export in `instance`, typed (and so checked) for this call; `None` when `instance`
    /// is not of the component this export was found in, or the export is not of `S`'s type.
    pub(crate) fn typed<'a>(
        &self,
        instance: &Instance,
        store: impl AsContextMut,
    ) -> Option<TypedFunc<Params<'a, S>, Results<S>>> {
        // The index names its component: another component's instance answers an error.
        instance.get_typed_func(store, self.index).ok()
    }
}

/// The four operations' exports of one compiled component.
pub(crate) struct Exports {
    pub(crate) search: Export<Search>,
    pub(crate) build: Export<Build>,
    pub(crate) track_contributors: Export<TrackContributors>,
    pub(crate) run: Export<Run>,
}

impl Exports {
    /// Find the four exports of `component`.
    pub(crate) fn new(component: &Component) -> anyhow::Result<Self> {
        let (package, version) = WIT_PACKAGE
            .split_once('@')
            .context("the WIT package name has a version")?;
        let interface = |name: &str| {
            let name = format!("{package}/{name}@{version}");
            component
                .get_export_index(None, name.as_str())
                .with_context(|| format!("the component does not export {name}"))
        };
        Ok(Self {
            search: Export::find(component, &interface("retriever")?, "search")?,
            build: Export::find(component, &interface("context-builder")?, "build")?,
            track_contributors: Export::find(
                component,
                &interface("patch-logger")?,
                "track-contributors",
            )?,
            run: Export::find(component, &interface("embedding-backfill")?, "run")?,
        })
    }
}
