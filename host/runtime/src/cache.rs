//! The `result-cache` import: a bounded LRU with expiry, one per tenant. It outlives guest
//! instances, which are short-lived by design. Bounded twice: by entries and by bytes (keys and
//! values), since a caller chooses how large a query (the key) and its answer are. Coherent:
//! each entry keeps the store's generation ([`ChangeClock`](crate::backends::ChangeClock)) it
//! was computed at and is a miss once any write moved it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::answers::SharedHits;
use crate::host_calls::WireBytes;

/// Which operation's cache a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheKind {
    /// The last good search result per query.
    Search,
    /// A built context per (task, options).
    Context,
}

/// A kept answer: a search's hits as the backend answered them (kept on the host, so a search
/// pays no serialisation or copy out of the sandbox to keep them), or the text the component
/// wrote for a context.
#[derive(Debug, Clone, PartialEq)]
pub enum CachedValue {
    Hits(SharedHits),
    Text(String),
}

/// What a hit's bookkeeping costs besides its text: the `BackendHit` and its `String` headers.
const HIT_OVERHEAD: usize = 128;

impl CachedValue {
    /// Bytes charged against the cache's budget.
    fn bytes(&self) -> usize {
        match self {
            CachedValue::Text(text) => text.len(),
            CachedValue::Hits(hits) => hits.len() * HIT_OVERHEAD + hits.wire_bytes(),
        }
    }
}

/// Cache sizing; see [`CacheConfig::default`].
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// Entries kept per tenant (both kinds together); the least recently used goes first.
    pub capacity: usize,
    /// Bytes of keys and values kept per tenant; the least recently used go first, and an
    /// entry larger than an eighth of this is not kept at all.
    pub max_bytes: usize,
    /// Entries older than this are never returned.
    pub time_to_live: Duration,
}

impl Default for CacheConfig {
    /// 1024 entries, 16 MiB, 10 minutes.
    fn default() -> Self {
        Self {
            capacity: 1024,
            max_bytes: 16 << 20,
            time_to_live: Duration::from_secs(600),
        }
    }
}

#[derive(Debug)]
struct Entry {
    value: CachedValue,
    /// The store's generation the value was computed at (`None`: the store cannot tell).
    generation: Option<u64>,
    written: Instant,
    last_used: u64,
}

/// What the bookkeeping charges for an entry besides its text: map slots, `String` headers.
const ENTRY_OVERHEAD: usize = 96;

fn entry_bytes(key: &str, value: &CachedValue) -> usize {
    key.len() + value.bytes() + ENTRY_OVERHEAD
}

/// Entries (one map per kind, so lookups borrow the key), their recency order and their size.
#[derive(Debug, Default)]
struct Entries {
    maps: [HashMap<String, Entry>; 2],
    /// `last_used` -> (kind, key), oldest first.
    recency: BTreeMap<u64, (usize, String)>,
    clock: u64,
    bytes: usize,
}

impl Entries {
    fn len(&self) -> usize {
        self.recency.len()
    }

    fn remove(&mut self, kind: usize, key: &str) {
        if let Some(entry) = self.maps[kind].remove(key) {
            self.recency.remove(&entry.last_used);
            self.bytes -= entry_bytes(key, &entry.value);
        }
    }

    /// Drop the least recently used entry; false when empty.
    fn evict_oldest(&mut self) -> bool {
        match self.recency.pop_first() {
            Some((_, (kind, key))) => {
                if let Some(entry) = self.maps[kind].remove(&key) {
                    self.bytes -= entry_bytes(&key, &entry.value);
                }
                true
            }
            None => false,
        }
    }

    fn touch(&mut self, kind: usize, key: &str) -> Option<&Entry> {
        self.clock += 1;
        let now = self.clock;
        let entry = self.maps[kind].get_mut(key)?;
        let (_, slot) = self.recency.remove_entry(&entry.last_used)?;
        entry.last_used = now;
        self.recency.insert(now, slot);
        self.maps[kind].get(key)
    }
}

/// A bounded, expiring map from (kind, key) to a kept answer.
#[derive(Debug)]
pub struct ResultCache {
    config: CacheConfig,
    entries: Mutex<Entries>,
}

fn kind_index(kind: CacheKind) -> usize {
    kind as usize
}

/// Entries and bytes held, for the cache gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSize {
    /// Entries held.
    pub entries: usize,
    /// Bytes of keys, values and bookkeeping held.
    pub bytes: usize,
}

impl ResultCache {
    pub fn new(config: CacheConfig) -> Self {
        Self {
            config,
            entries: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Entries and bytes held now.
    pub fn size(&self) -> CacheSize {
        let entries = self.lock();
        CacheSize {
            entries: entries.len(),
            bytes: entries.bytes,
        }
    }

    /// Whether anything can be kept at all (a capacity of zero turns the cache off).
    pub fn enabled(&self) -> bool {
        self.config.capacity > 0
    }

    /// The value under `key` if it was computed at `generation` and has not expired.
    pub fn get(&self, kind: CacheKind, key: &str, generation: Option<u64>) -> Option<CachedValue> {
        let mut entries = self.lock();
        let index = kind_index(kind);
        let entry = entries.maps[index].get(key)?;
        let stale =
            entry.generation != generation || entry.written.elapsed() > self.config.time_to_live;
        if stale {
            entries.remove(index, key);
            return None;
        }
        entries.touch(index, key).map(|entry| entry.value.clone())
    }

    /// Keep `value`, computed at `generation`, under `key`, evicting the least recently used
    /// entries until both bounds hold; returns the size afterwards.
    pub fn put(
        &self,
        kind: CacheKind,
        key: &str,
        value: CachedValue,
        generation: Option<u64>,
    ) -> CacheSize {
        let mut entries = self.lock();
        let index = kind_index(kind);
        entries.remove(index, key);
        let bytes = entry_bytes(key, &value);
        if self.config.capacity > 0 && bytes <= self.config.max_bytes / 8 {
            while entries.len() >= self.config.capacity
                || entries.bytes + bytes > self.config.max_bytes
            {
                if !entries.evict_oldest() {
                    break;
                }
            }
            entries.clock += 1;
            let last_used = entries.clock;
            entries.recency.insert(last_used, (index, key.to_string()));
            entries.bytes += bytes;
            entries.maps[index].insert(
                key.to_string(),
                Entry {
                    value,
                    generation,
                    written: Instant::now(),
                    last_used,
                },
            );
        }
        CacheSize {
            entries: entries.len(),
            bytes: entries.bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::vector_service::plugin::retriever_backend::BackendHit;
    use std::sync::Arc;

    impl From<String> for CachedValue {
        fn from(text: String) -> Self {
            CachedValue::Text(text)
        }
    }

    impl From<&str> for CachedValue {
        fn from(text: &str) -> Self {
            CachedValue::Text(text.to_string())
        }
    }

    fn text(value: Option<CachedValue>) -> Option<String> {
        match value? {
            CachedValue::Text(text) => Some(text),
            CachedValue::Hits(_) => None,
        }
    }

    fn cache(capacity: usize, time_to_live: Duration) -> ResultCache {
        ResultCache::new(CacheConfig {
            capacity,
            time_to_live,
            ..CacheConfig::default()
        })
    }

    #[test]
    fn kinds_are_separate_and_the_least_recently_used_entry_goes_first() {
        let cache = cache(2, Duration::from_secs(60));
        cache.put(CacheKind::Search, "q", "search".into(), None);
        cache.put(CacheKind::Context, "q", "context".into(), None);
        assert_eq!(
            text(cache.get(CacheKind::Search, "q", None)).as_deref(),
            Some("search")
        );
        // Full: the context entry was used least recently.
        cache.put(CacheKind::Search, "other", "new".into(), None);
        assert_eq!(cache.get(CacheKind::Context, "q", None), None);
        assert_eq!(
            text(cache.get(CacheKind::Search, "q", None)).as_deref(),
            Some("search")
        );
        assert_eq!(
            text(cache.get(CacheKind::Search, "other", None)).as_deref(),
            Some("new")
        );
        // Replacing a key does not evict.
        cache.put(CacheKind::Search, "q", "again".into(), None);
        assert_eq!(
            text(cache.get(CacheKind::Search, "other", None)).as_deref(),
            Some("new")
        );
        assert_eq!(
            text(cache.get(CacheKind::Search, "q", None)).as_deref(),
            Some("again")
        );
    }

    #[test]
    fn expired_entries_are_never_returned_and_capacity_zero_stores_nothing() {
        let expiring = cache(4, Duration::ZERO);
        expiring.put(CacheKind::Search, "q", "v".into(), None);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(expiring.get(CacheKind::Search, "q", None), None);

        let disabled = cache(0, Duration::from_secs(60));
        disabled.put(CacheKind::Search, "q", "v".into(), None);
        assert_eq!(disabled.get(CacheKind::Search, "q", None), None);
    }

    #[test]
    fn an_entry_from_another_generation_is_a_miss_and_goes() {
        let cache = cache(4, Duration::from_secs(60));
        cache.put(CacheKind::Context, "q", "at 7".into(), Some(7));
        assert_eq!(
            text(cache.get(CacheKind::Context, "q", Some(7))).as_deref(),
            Some("at 7")
        );
        assert_eq!(cache.get(CacheKind::Context, "q", Some(8)), None);
        // Gone, not merely hidden: the old generation does not bring it back.
        assert_eq!(cache.get(CacheKind::Context, "q", Some(7)), None);
        // A store that cannot tell its generation only matches entries that could not either.
        cache.put(CacheKind::Context, "q", "unknown".into(), None);
        assert_eq!(cache.get(CacheKind::Context, "q", Some(7)), None);
    }

    #[test]
    fn the_byte_budget_holds_whatever_the_callers_send() {
        let max_bytes = 64 * 1024;
        let cache = ResultCache::new(CacheConfig {
            capacity: 1024,
            max_bytes,
            time_to_live: Duration::from_secs(60),
        });
        // 1,000 distinct 4 KiB answers: far more than the budget.
        let mut size = CacheSize {
            entries: 0,
            bytes: 0,
        };
        for i in 0..1000 {
            size = cache.put(
                CacheKind::Search,
                &format!("q{i}"),
                "x".repeat(4096).into(),
                None,
            );
            assert!(size.bytes <= max_bytes, "{size:?} after {i}");
        }
        assert!(size.entries >= 10, "the budget is used: {size:?}");
        assert_eq!(
            cache.get(CacheKind::Search, "q0", None),
            None,
            "oldest evicted"
        );
        assert!(cache.get(CacheKind::Search, "q999", None).is_some());
        // An entry over an eighth of the budget is not kept, and evicts nothing.
        let after = cache.put(
            CacheKind::Search,
            "big",
            "x".repeat(max_bytes / 8).into(),
            None,
        );
        assert_eq!(after, size);
        assert_eq!(cache.get(CacheKind::Search, "big", None), None);
    }

    #[test]
    fn hits_are_kept_typed_and_charged_by_their_text() {
        let cache = cache(4, Duration::from_secs(60));
        let hit = BackendHit {
            origin_db: "bot".into(),
            id: "7".into(),
            record_id: Some("b1".into()),
            score: 0.5,
            reason: "bm25".into(),
            metadata: r#"{"name":"x"}"#.into(),
        };
        let hits = CachedValue::Hits(Arc::new(vec![hit.clone(), hit]));
        let size = cache.put(CacheKind::Search, "q", hits.clone(), None);
        assert_eq!(
            size.bytes,
            "q".len() + ENTRY_OVERHEAD + 2 * (HIT_OVERHEAD + 3 + 1 + 2 + 4 + 12)
        );
        assert_eq!(cache.get(CacheKind::Search, "q", None), Some(hits));
        assert_eq!(cache.get(CacheKind::Context, "q", None), None);
    }
}
