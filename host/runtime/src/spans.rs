//! The spans that show where a call's time goes: the sandboxed call, each backend call the
//! guest makes, and the stores' and embedders' own work beneath them. They are ordinary
//! `tracing` spans with target [`SPAN_TARGET`], at `info`: a host records them with whatever
//! subscriber it chooses (vector-service's server exports them over OTLP), and a host that
//! records nothing pays a disabled callsite for each.

use std::sync::OnceLock;

/// Target of every span the runtime and its backends open.
pub const SPAN_TARGET: &str = "vector_service::span";

static WANTED: OnceLock<fn() -> bool> = OnceLock::new();

/// Say when the spans are worth opening, once per process: vector-service's server opens them
/// only for the requests it samples, so a request it does not record creates none. Without
/// it, the subscriber alone decides.
pub fn open_only_when(wanted: fn() -> bool) {
    let _ = WANTED.set(wanted);
}

/// Whether [`work_span!`] opens its span now (see [`open_only_when`]).
#[doc(hidden)]
pub fn wanted() -> bool {
    WANTED.get().is_none_or(|wanted| wanted())
}

/// `info_span!` with target [`SPAN_TARGET`] and the status fields [`failed`] records; a
/// disabled span when the host said spans are not wanted now ([`open_only_when`]).
#[macro_export]
macro_rules! work_span {
    ($name:literal $(, $($field:tt)*)?) => {
        if $crate::spans::wanted() {
            ::tracing::info_span!(
                target: $crate::spans::SPAN_TARGET,
                $name,
                "otel.status_code" = ::tracing::field::Empty,
                "otel.status_message" = ::tracing::field::Empty
                $(, $($field)*)?
            )
        } else {
            ::tracing::Span::none()
        }
    };
}

/// Mark `span` (one [`work_span!`] opened) as failed, saying why.
pub fn failed(span: &tracing::Span, why: &dyn std::fmt::Display) {
    if !span.is_disabled() {
        span.record("otel.status_code", "error");
        span.record("otel.status_message", tracing::field::display(why));
    }
}
