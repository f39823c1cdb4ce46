//! Upper bounds on every request input, checked before any backend is called, so that no
//! request can make the host do (or allocate) work proportional to a number it chose. The same
//! values are documented in `wit/vector-service.wit` and enforced again by the host's imports.

use crate::bindings::vector_service::plugin::types::Error;
use crate::errors;

/// Most hits one request may ask for (`top-k`).
pub const MAX_TOP_K: u32 = 1_000;
/// Longest query or task, in bytes.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// Most words (runs of letters and digits) in a query or task.
pub const MAX_QUERY_TERMS: usize = 512;
/// Longest session id, patch id, vector id, database or origin name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Most vector ids in one `track-contributors` call.
pub const MAX_VECTOR_IDS: usize = 1_000;
/// Largest backfill batch.
pub const MAX_BATCH_SIZE: u32 = 1_000;
/// Most entries in a list of names (origins, databases, db weights).
pub const MAX_LIST_ENTRIES: usize = 64;

/// A query or task as the operation reads it: cut at its bound when it was longer.
pub struct Bounded<'a> {
    pub text: &'a str,
    /// Says what was cut, for the answer's `warnings`.
    pub warning: Option<String>,
}

/// A query or task: non-blank; past [`MAX_QUERY_BYTES`] or [`MAX_QUERY_TERMS`] words it is cut
/// at the bound (the original's callers pass whole logs; it took any size), at a character
/// boundary and before the first word past the count, and the caller is warned.
pub fn text<'a>(field: &str, text: &'a str) -> Result<Bounded<'a>, Error> {
    if text.trim().is_empty() {
        return Err(errors::malformed(format!(
            "{field} must be a non-empty string"
        )));
    }
    let mut end = text.len().min(MAX_QUERY_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut words = 0;
    let mut in_word = false;
    for (at, c) in text[..end].char_indices() {
        let word_char = c.is_alphanumeric();
        if word_char && !in_word {
            if words == MAX_QUERY_TERMS {
                end = at;
                break;
            }
            words += 1;
        }
        in_word = word_char;
    }
    if text[..end].trim().is_empty() {
        return Err(errors::malformed(format!(
            "{field} has no words in its first {MAX_QUERY_BYTES} bytes"
        )));
    }
    if end == text.len() {
        return Ok(Bounded {
            text,
            warning: None,
        });
    }
    let cut = text[..end].trim_end();
    Ok(Bounded {
        text: cut,
        warning: Some(format!(
            "{field} cut to its first {} of {} bytes: at most {MAX_QUERY_BYTES} bytes and \
             {MAX_QUERY_TERMS} words are read",
            cut.len(),
            text.len()
        )),
    })
}

/// A requested hit count: `default` when absent or 0 (as the original read `top_k=0`), else
/// at most [`MAX_TOP_K`].
pub fn top_k(top_k: Option<u32>, default: u32) -> Result<u32, Error> {
    match top_k {
        None | Some(0) => Ok(default),
        Some(top_k) => count("top_k", top_k, MAX_TOP_K),
    }
}

/// A backfill batch size: 1 to [`MAX_BATCH_SIZE`].
pub fn batch_size(size: u32) -> Result<u32, Error> {
    count("batch_size", size, MAX_BATCH_SIZE)
}

/// A count from 1 to `max`.
fn count(field: &str, value: u32, max: u32) -> Result<u32, Error> {
    match value {
        0 => Err(errors::malformed(format!("{field} must be at least 1"))),
        value if value > max => Err(errors::malformed(format!(
            "{field} is {value}; at most {max} are accepted"
        ))),
        value => Ok(value),
    }
}

/// A short identifier (session id, patch id, name): at most [`MAX_NAME_BYTES`].
pub fn name(field: &str, value: &str) -> Result<(), Error> {
    if value.len() > MAX_NAME_BYTES {
        return Err(errors::malformed(format!(
            "{field} is {} bytes; at most {MAX_NAME_BYTES} are accepted",
            value.len()
        )));
    }
    Ok(())
}

/// A list of names: at most `max` entries, each a valid [`name`].
pub fn names<'a>(
    field: &str,
    values: impl ExactSizeIterator<Item = &'a str>,
    max: usize,
) -> Result<(), Error> {
    if values.len() > max {
        return Err(errors::malformed(format!(
            "{field} has {} entries; at most {max} are accepted",
            values.len()
        )));
    }
    values.into_iter().try_for_each(|value| name(field, value))
}
