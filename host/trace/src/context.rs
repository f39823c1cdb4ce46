//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the ids a span carries and the
//! `traceparent` header that passes them between processes.

use std::fmt;
use std::sync::Arc;

use crate::ids;

/// A trace's id: 16 bytes, never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TraceId(pub [u8; 16]);

/// A span's id: 8 bytes, never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    /// A new random id.
    pub fn random() -> Self {
        loop {
            let id = (u128::from(ids::next()) << 64 | u128::from(ids::next())).to_be_bytes();
            if id != [0; 16] {
                return Self(id);
            }
        }
    }

    /// The low 8 bytes as a number: what a ratio sampler compares (W3C level 2 puts the
    /// randomness there).
    pub fn low_u64(&self) -> u64 {
        u64::from_be_bytes(self.0[8..].try_into().expect("8 bytes"))
    }
}

impl SpanId {
    /// A new random id.
    pub fn random() -> Self {
        loop {
            let id = ids::next().to_be_bytes();
            if id != [0; 8] {
                return Self(id);
            }
        }
    }
}

/// The bit of `trace-flags` that says the caller may have recorded the trace.
pub const SAMPLED: u8 = 0x01;

/// The ids of one span and what its trace carries along: the sampled flag and `tracestate`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TraceContext {
    /// The trace the span belongs to.
    pub trace_id: TraceId,
    /// The span's own id.
    pub span_id: SpanId,
    /// W3C `trace-flags` ([`SAMPLED`]).
    pub flags: u8,
    /// The caller's `tracestate`, passed on unread (at most [`MAX_TRACESTATE`] bytes).
    pub state: Option<Arc<str>>,
}

/// W3C's bound on `tracestate` (32 members of up to 256 bytes, but 512 is what it asks
/// implementations to keep at least); a longer one is dropped, not cut.
pub const MAX_TRACESTATE: usize = 512;

/// Why a `traceparent` was not taken (the request then starts a trace of its own).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TraceparentError {
    /// Not `version-traceid-parentid-flags` with the right lengths.
    #[error("traceparent is not 55 characters of version-traceid-parentid-flags")]
    Shape,
    /// A field has a character that is not lower-case hex.
    #[error("traceparent has a field that is not lower-case hex")]
    NotHex,
    /// Version `ff`.
    #[error("traceparent has version ff, which is never valid")]
    Version,
    /// An all-zero id.
    #[error("traceparent has an all-zero trace id or parent id")]
    ZeroId,
}

impl TraceContext {
    /// The context a remote caller sent: its `traceparent` (the caller's span becomes this
    /// one's parent) and `tracestate`. Versions above 00 are read as 00, as W3C asks.
    pub fn from_headers(
        traceparent: &str,
        tracestate: Option<&str>,
    ) -> Result<Self, TraceparentError> {
        let text = traceparent.trim();
        let bytes = text.as_bytes();
        // A later version may append fields after a '-'; version 00 has exactly 55 characters.
        let ok_length =
            bytes.len() == 55 || (bytes.len() > 55 && bytes[55] == b'-' && &text[..2] != "00");
        if !ok_length || bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return Err(TraceparentError::Shape);
        }
        let version = hex::<1>(&text[..2])?;
        if version == [0xff] {
            return Err(TraceparentError::Version);
        }
        let trace_id = hex::<16>(&text[3..35])?;
        let span_id = hex::<8>(&text[36..52])?;
        let [flags] = hex::<1>(&text[53..55])?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return Err(TraceparentError::ZeroId);
        }
        let state = tracestate
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= MAX_TRACESTATE && s.is_ascii())
            .map(Arc::from);
        Ok(Self {
            trace_id: TraceId(trace_id),
            span_id: SpanId(span_id),
            flags,
            state,
        })
    }

    /// A new trace's first span.
    pub fn new_root(sampled: bool) -> Self {
        Self {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            flags: if sampled { SAMPLED } else { 0 },
            state: None,
        }
    }

    /// A new span of this one's trace, under it.
    pub fn child(&self) -> Self {
        Self {
            trace_id: self.trace_id,
            span_id: SpanId::random(),
            flags: self.flags,
            state: self.state.clone(),
        }
    }

    /// Whether the trace is sampled (its spans are recorded).
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The `traceparent` header naming this span as the parent of the next hop.
    pub fn traceparent(&self) -> String {
        let mut header = String::with_capacity(55);
        header.push_str("00-");
        self.trace_id.push_hex(&mut header);
        header.push('-');
        self.span_id.push_hex(&mut header);
        header.push('-');
        push_hex(&mut header, &[self.flags]);
        header
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lower-case hex of `bytes`, appended (ids are written into every log line of a request, so
/// without `core::fmt`).
fn push_hex(out: &mut String, bytes: &[u8]) {
    for byte in bytes {
        out.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(HEX_DIGITS[usize::from(byte & 0xf)]));
    }
}

impl TraceId {
    /// Append the 32 hex digits to `out`.
    pub fn push_hex(&self, out: &mut String) {
        push_hex(out, &self.0);
    }
}

impl SpanId {
    /// Append the 16 hex digits to `out`.
    pub fn push_hex(&self, out: &mut String) {
        push_hex(out, &self.0);
    }
}

fn hex<const N: usize>(text: &str) -> Result<[u8; N], TraceparentError> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(TraceparentError::NotHex),
    };
    let bytes = text.as_bytes();
    if bytes.len() != 2 * N {
        return Err(TraceparentError::Shape);
    }
    let mut out = [0; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = digit(bytes[2 * i])? << 4 | digit(bytes[2 * i + 1])?;
    }
    Ok(out)
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::with_capacity(32);
        self.push_hex(&mut text);
        f.write_str(&text)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::with_capacity(16);
        self.push_hex(&mut text);
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIVEN: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_round_trips() {
        let context = TraceContext::from_headers(GIVEN, Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(context.traceparent(), GIVEN);
        assert!(context.sampled());
        assert_eq!(context.state.as_deref(), Some("congo=t61rcWkgMzE"));
        let child = context.child();
        assert_eq!(child.trace_id, context.trace_id);
        assert_ne!(child.span_id, context.span_id);
    }

    #[test]
    fn malformed_traceparents_are_refused_with_their_reason() {
        let cases = [
            ("", TraceparentError::Shape),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
                TraceparentError::Shape,
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                TraceparentError::NotHex,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                TraceparentError::Version,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                TraceparentError::ZeroId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                TraceparentError::ZeroId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
                TraceparentError::Shape,
            ),
        ];
        for (header, error) in cases {
            assert_eq!(
                TraceContext::from_headers(header, None),
                Err(error),
                "{header:?}"
            );
        }
        // A later version with more fields is read as version 00.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-comes";
        assert!(!TraceContext::from_headers(later, None).unwrap().sampled());
    }

    #[test]
    fn new_ids_differ_and_are_never_zero() {
        let a = TraceContext::new_root(true);
        let b = TraceContext::new_root(false);
        assert_ne!(a.trace_id, b.trace_id);
        assert!(a.sampled() && !b.sampled());
        assert_ne!(a.trace_id.0, [0; 16]);
    }
}
