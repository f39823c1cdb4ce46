//! The trace a thread works for: a request's, a job's or a command's [`Scope`], kept in a
//! thread-local while its work runs ([`Scoped`] sets it around each poll of a future,
//! [`Scope::enter`] around a closure). Log lines read their trace ids from it and outgoing
//! requests their `traceparent`, with no `tracing` span involved, so the trace context costs a
//! request almost nothing when no spans are exported. When spans are exported, the scope's
//! root span is created with [`ROOT_FIELD`] and takes the scope's ids.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::task::{Context, Poll};

use crate::context::{SpanId, TraceContext, SAMPLED};
use crate::sampler::{Root, Sampler};

/// The field that marks a scope's root span: it takes the scope's ids as its own.
pub const ROOT_FIELD: &str = "trace.root";

/// One unit of work's place in its trace: its own span's context, and its parent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// The work's own span (ids, flags, state).
    pub context: TraceContext,
    /// The span it runs under, if any.
    pub parent_span_id: Option<SpanId>,
    /// Whether that parent is another process's (a caller's `traceparent`).
    pub parent_is_remote: bool,
}

static SAMPLER: OnceLock<Sampler> = OnceLock::new();
static RECORDING: AtomicBool = AtomicBool::new(false);
static PROPAGATING: AtomicBool = AtomicBool::new(true);

/// Why `OTEL_PROPAGATORS` was not taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "OTEL_PROPAGATORS={0:?}: only tracecontext, baggage (passed on by the Python client) or none"
)]
pub struct PropagatorsError(pub String);

/// Whether requests take and give W3C trace context, as `OTEL_PROPAGATORS` says (a list; the
/// default `tracecontext,baggage`): `none` turns it off, so a request carries no trace ids
/// and costs nothing for them; a propagator this server does not speak is refused.
pub fn propagation_from(value: Option<&str>) -> Result<bool, PropagatorsError> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(true);
    };
    let mut tracecontext = false;
    for name in value.split(',').map(str::trim) {
        match name {
            "tracecontext" => tracecontext = true,
            "baggage" => {}
            "none" => return Ok(false),
            _ => return Err(PropagatorsError(value.to_string())),
        }
    }
    Ok(tracecontext)
}

/// Set once at start: whether requests get a scope (trace ids in their logs, `traceresponse`)
/// when no spans are recorded ([`propagation_from`]). With spans recorded every request gets
/// one; without propagation it does not read the caller's `traceparent`.
pub fn set_propagating(on: bool) {
    PROPAGATING.store(on, Ordering::Relaxed);
}

/// Whether a request reads and gives trace context ([`set_propagating`]).
pub fn propagating() -> bool {
    PROPAGATING.load(Ordering::Relaxed)
}

/// Set once at start: how new traces and callers' decisions are sampled, and whether sampled
/// spans are recorded (an exporter is running). Before it (or without it) nothing is sampled
/// here and callers' decisions are passed on.
pub fn configure(sampler: Sampler, recording: bool) {
    let _ = SAMPLER.set(sampler);
    RECORDING.store(recording, Ordering::Relaxed);
}

/// The sampler [`configure`] set.
pub(crate) fn sampler() -> Sampler {
    SAMPLER
        .get()
        .copied()
        .unwrap_or(Sampler::ParentBased(Root::AlwaysOff))
}

/// Whether spans are recorded: create a scope's root span only then, and only when the scope
/// is sampled.
pub fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

impl Scope {
    /// A request's scope, or None when it needs none: trace context is off
    /// ([`set_propagating`]) and no spans are recorded. Otherwise [`Scope::for_incoming`], the
    /// caller's headers read only when propagating.
    pub fn for_request(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<Self> {
        match (propagating(), recording()) {
            (true, _) => Some(Self::for_incoming(traceparent, tracestate)),
            (false, true) => Some(Self::for_incoming(None, None)),
            (false, false) => None,
        }
    }

    /// A request's scope: under the caller's `traceparent` (passing its `tracestate` on) when
    /// it is valid, else a trace of its own; sampled as [`configure`] said.
    pub fn for_incoming(traceparent: Option<&str>, tracestate: Option<&str>) -> Self {
        let remote = traceparent
            .filter(|header| !header.is_empty())
            .and_then(|header| TraceContext::from_headers(header, tracestate).ok());
        let mut context = match &remote {
            Some(caller) => caller.child(),
            None => TraceContext::new_root(false),
        };
        let sampled = sampler().sample(remote.as_ref(), context.trace_id);
        context.flags = (context.flags & !SAMPLED) | if sampled { SAMPLED } else { 0 };
        Self {
            context,
            parent_span_id: remote.as_ref().map(|caller| caller.span_id),
            parent_is_remote: remote.is_some(),
        }
    }

    /// Work started by this scope's and outliving it (a backfill job): its own span under
    /// this one's, the same decision.
    pub fn child(&self) -> Self {
        Self {
            context: self.context.child(),
            parent_span_id: Some(self.context.span_id),
            parent_is_remote: false,
        }
    }

    /// Whether a root span should be created for this scope: sampled, and spans recorded.
    pub fn records(&self) -> bool {
        self.context.sampled() && recording()
    }

    /// This scope's root span, made by `make` (a span with field [`ROOT_FIELD`]) when the scope
    /// records spans; a disabled span otherwise, made for nothing.
    pub fn root_span(&self, make: impl FnOnce() -> tracing::Span) -> tracing::Span {
        if self.records() {
            self.enter(make)
        } else {
            tracing::Span::none()
        }
    }

    /// Run `work` in this scope on this thread.
    pub fn enter<R>(&self, work: impl FnOnce() -> R) -> R {
        lend(&mut Some(self.clone()), work)
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

/// Run `work` with `home`'s scope moved into the thread-local, and moved back (the thread's
/// previous scope restored) when it ends, also when it panics: a future's scope is lent on
/// every poll without a copy.
fn lend<R>(home: &mut Option<Scope>, work: impl FnOnce() -> R) -> R {
    struct Lent<'a> {
        home: &'a mut Option<Scope>,
        previous: Option<Scope>,
    }
    impl Drop for Lent<'_> {
        fn drop(&mut self) {
            let previous = self.previous.take();
            *self.home = CURRENT.with(|current| current.replace(previous));
        }
    }
    let previous = CURRENT.with(|current| current.replace(home.take()));
    let _lent = Lent { home, previous };
    work()
}

/// `work` in `scope` when there is one (see [`Scope::enter`]).
pub fn within<R>(scope: Option<&Scope>, work: impl FnOnce() -> R) -> R {
    match scope {
        Some(scope) => scope.enter(work),
        None => work(),
    }
}

/// `scope`'s root span (see [`Scope::root_span`]); a disabled span without a scope.
pub fn root_span_of(scope: Option<&Scope>, make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    scope.map_or_else(tracing::Span::none, |scope| scope.root_span(make))
}

/// `f` of the scope this thread works for, without copying it.
pub fn with_current<R>(f: impl FnOnce(Option<&Scope>) -> R) -> R {
    CURRENT.with(|current| f(current.borrow().as_ref()))
}

/// The scope this thread works for.
pub fn current_scope() -> Option<Scope> {
    with_current(|scope| scope.cloned())
}

pin_project_lite::pin_project! {
    /// A future polled in a scope and, when spans are recorded, inside a span.
    pub struct Scoped<F> {
        scope: Option<Scope>,
        span: tracing::Span,
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        if this.scope.is_some() {
            lend(this.scope, || this.inner.poll(cx))
        } else {
            this.inner.poll(cx)
        }
    }
}

/// `future` polled in `scope` and inside `span` (`Span::none()` when none is recorded).
pub fn scoped<F: Future>(scope: Option<Scope>, span: tracing::Span, future: F) -> Scoped<F> {
    Scoped {
        scope,
        span,
        inner: future,
    }
}

/// `future` in this thread's scope and current span, for a task spawned on another worker.
pub fn propagate<F: Future>(future: F) -> Scoped<F> {
    scoped(current_scope(), tracing::Span::current(), future)
}

/// `work` in this thread's scope and current span, for a closure run on another thread
/// (`spawn_blocking`).
pub fn propagate_blocking<R>(work: impl FnOnce() -> R) -> impl FnOnce() -> R {
    let (scope, span) = (current_scope(), tracing::Span::current());
    move || {
        let _entered = span.enter();
        within(scope.as_ref(), work)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_is_current_while_its_work_runs_and_only_then() {
        let scope = Scope::for_incoming(
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            None,
        );
        assert!(scope.parent_is_remote);
        // Not configured: the caller's decision is passed on.
        assert!(scope.context.sampled() && !scope.records());
        assert_eq!(current_scope(), None);
        let inner = scope.child();
        scope.enter(|| {
            assert_eq!(current_scope().as_ref(), Some(&scope));
            inner.enter(|| assert_eq!(current_scope().as_ref(), Some(&inner)));
            assert_eq!(current_scope().as_ref(), Some(&scope));
        });
        assert_eq!(current_scope(), None);
        assert_eq!(inner.parent_span_id, Some(scope.context.span_id));
        let own = Scope::for_incoming(Some("garbage"), None);
        assert!(own.parent_span_id.is_none() && !own.context.sampled());
    }

    #[test]
    fn otel_propagators_turns_the_context_off_or_is_refused() {
        assert_eq!(propagation_from(None), Ok(true));
        assert_eq!(propagation_from(Some("tracecontext,baggage")), Ok(true));
        assert_eq!(propagation_from(Some("none")), Ok(false));
        assert_eq!(propagation_from(Some("baggage")), Ok(false));
        assert!(propagation_from(Some("b3")).is_err());
    }

    #[test]
    fn a_scoped_future_sees_its_scope_on_every_poll() {
        let scope = Scope::for_incoming(None, None);
        let expected = scope.clone();
        let future = scoped(Some(scope), tracing::Span::none(), async move {
            assert_eq!(current_scope(), Some(expected.clone()));
            std::future::ready(()).await;
            assert_eq!(current_scope(), Some(expected));
        });
        let waker = std::task::Waker::noop();
        let mut future = std::pin::pin!(future);
        assert!(future
            .as_mut()
            .poll(&mut Context::from_waker(waker))
            .is_ready());
        assert_eq!(current_scope(), None);
    }
}
