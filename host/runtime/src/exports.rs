//! The component's four operations, found and type-checked once per compiled component: a
//! call then neither looks its export up by name nor type-checks it again (the check walks
//! every field of the request and the answer: 2% of a call's instructions, BENCHMARKS.md).
//! The check is the one the generated bindings make, through the same wasmtime functions
//! (`ComponentFunc::typecheck`, `InstancePre::instance_type`; public but hidden from the
//! docs, for generated code).

use std::marker::PhantomData;

use anyhow::{bail, Context as _};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{
    Component, ComponentExportIndex, ComponentNamedList, Instance, InstancePre, Lift, Lower,
    TypedFunc,
};
use wasmtime::AsContextMut;

use crate::api::{
    BackfillRequest, BackfillResponse, ContextRequest, ContextResponse, Error, SearchRequest,
    SearchResponse, TrackRequest, TrackResponse,
};
use crate::engine::WIT_PACKAGE;

/// What one operation's export takes and answers. Every export takes the session id and a
/// request record and answers `result<response, error>`.
pub(crate) trait Signature {
    /// The request record.
    type Request: Sync;
    /// The response record.
    type Response: Send + Sync + 'static;
}

/// The parameters a call of `S` lowers: borrowed for the call.
pub(crate) type Params<'a, S> = (&'a str, &'a <S as Signature>::Request);

/// The results a call of `S` lifts.
pub(crate) type Results<S> = (Result<<S as Signature>::Response, Error>,);

/// Each operation's marker type and its signature.
macro_rules! operations {
    ($($(#[$doc:meta])* $name:ident: $request:ty => $response:ty;)*) => {$(
        $(#[$doc])*
        pub(crate) enum $name {}

        impl Signature for $name {
            type Request = $request;
            type Response = $response;
        }
    )*};
}

operations! {
    /// `Retriever.search`.
    Search: SearchRequest => SearchResponse;
    /// `ContextBuilder.build`.
    Build: ContextRequest => ContextResponse;
    /// `PatchLogger.track_contributors`.
    TrackContributors: TrackRequest => TrackResponse;
    /// `EmbeddingBackfill.run`.
    Run: BackfillRequest => BackfillResponse;
}

/// One operation's export, type-checked against `S` when the component was compiled.
pub(crate) struct Export<S> {
    index: ComponentExportIndex,
    signature: PhantomData<fn() -> S>,
}

impl<S: Signature> Export<S>
where
    for<'a> Params<'a, S>: ComponentNamedList + Lower,
    Results<S>: ComponentNamedList + Lift,
{
    /// The function `name` of the exported `interface`, checked against `S` at the types the
    /// instances of `pre` get.
    fn find<T>(
        component: &Component,
        pre: &InstancePre<T>,
        interface: &ComponentExportIndex,
        name: &str,
    ) -> anyhow::Result<Self> {
        let (item, index) = component
            .get_export(Some(interface), name)
            .with_context(|| format!("the component does not export `{name}`"))?;
        let ComponentItem::ComponentFunc(function) = item else {
            bail!("the component's export `{name}` is not a function");
        };
        function
            .typecheck::<Params<'_, S>, Results<S>>(&pre.instance_type())
            .map_err(anyhow::Error::from)
            .with_context(|| format!("type-checking the component's export `{name}`"))?;
        Ok(Self {
            index,
            signature: PhantomData,
        })
    }

    /// The export in `instance`, typed without checking again; `None` when `instance` is not
    /// of the component this export was found in.
    pub(crate) fn typed<'a>(
        &self,
        instance: &Instance,
        store: impl AsContextMut,
    ) -> Option<TypedFunc<Params<'a, S>, Results<S>>> {
        // The index names its component: another component's instance answers `None`.
        let function = instance.get_func(store, self.index)?;
        // SAFETY: `find` type-checked this export of this component against exactly these
        // parameter and result types (up to lifetimes, which a type check does not see), and
        // `get_func` found it in an instance of that component, the check the generated
        // bindings also make once per component before their calls of `new_unchecked`.
        Some(unsafe { TypedFunc::new_unchecked(function) })
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
    /// Find and check the four exports of `component`, which `pre` instantiates.
    pub(crate) fn new<T>(component: &Component, pre: &InstancePre<T>) -> anyhow::Result<Self> {
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
            search: Export::find(component, pre, &interface("retriever")?, "search")?,
            build: Export::find(component, pre, &interface("context-builder")?, "build")?,
            track_contributors: Export::find(
                component,
                pre,
                &interface("patch-logger")?,
                "track-contributors",
            )?,
            run: Export::find(component, pre, &interface("embedding-backfill")?, "run")?,
        })
    }
}
