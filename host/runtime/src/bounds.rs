//! Upper bounds on what a component may ask of the host's backends in one import call. The
//! built-in component refuses requests past the request bounds of `wit/vector-service.wit`
//! before calling any backend; these host-side bounds hold for any component, including one
//! that does not check (a backend is never asked for work proportional to a guest's number).

/// The contract's request bounds (`wit/vector-service.wit`), for hosts that check a request
/// before handing it to the component: a job that would only fail later, or a field the host
/// keeps (a session id in a job's record), is refused up front.
pub mod request {
    /// Most hits a request may ask for (`top-k`).
    pub const MAX_TOP_K: u32 = 1_000;
    /// Longest session id, patch id, vector id, database or origin name, in bytes.
    pub const MAX_NAME_BYTES: usize = 256;
    /// Largest backfill batch.
    pub const MAX_BATCH_SIZE: u32 = 1_000;
    /// Most entries in a list of names (origins, databases, db weights).
    pub const MAX_LIST_ENTRIES: usize = 64;
}

/// Most hits one `retriever-backend.search` may ask for. Above the request bound (1,000) because
/// the component looks deeper than a request's `top-k` (a doubled retry, candidates per
/// context entry).
pub const MAX_BACKEND_TOP_K: u32 = 10_000;
/// Longest query, in bytes (the request bound).
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// Most words (runs of letters and digits) in a query (the request bound).
pub const MAX_QUERY_TERMS: usize = 512;
/// Most ids in one `embedding-store.pending` page or `embed` batch.
pub const MAX_BATCH: usize = 1_000;
/// Most vectors or origins in one rates lookup, and contributors in one outcome.
pub const MAX_LOOKUP: usize = 10_000;

/// Why a search query is refused, if it is.
pub fn query_error(query: &str) -> Option<String> {
    if query.len() > MAX_QUERY_BYTES {
        return Some(format!(
            "the query is {} bytes; at most {MAX_QUERY_BYTES} are accepted",
            query.len()
        ));
    }
    let terms = crate::backends::query_words(query).count();
    (terms > MAX_QUERY_TERMS)
        .then(|| format!("the query has {terms} words; at most {MAX_QUERY_TERMS} are accepted"))
}

/// Why a count is refused, if it is.
pub fn count_error(what: &str, count: usize, max: usize) -> Option<String> {
    (count > max).then(|| format!("{count} {what} asked for; at most {max} are accepted"))
}
