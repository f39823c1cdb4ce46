//! The `result-cache` import: a bounded LRU with expiry, one per tenant. It outlives guest
//! instances, which are short-lived by design.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::bindings::vector_service::plugin::result_cache::CacheKind;

/// Cache sizing; see [`CacheConfig::default`].
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// Entries kept per tenant (both kinds together); the least recently used goes first.
    pub capacity: usize,
    /// Entries older than this are never returned.
    pub time_to_live: Duration,
}

impl Default for CacheConfig {
    /// 1024 entries, 10 minutes.
    fn default() -> Self {
        Self {
            capacity: 1024,
            time_to_live: Duration::from_secs(600),
        }
    }
}

#[derive(Debug)]
struct Entry {
    value: String,
    written: Instant,
    last_used: u64,
}

/// Entries (one map per kind, so lookups borrow the key) and a use counter that orders them
/// by recency.
#[derive(Debug, Default)]
struct Entries {
    maps: [HashMap<String, Entry>; 2],
    clock: u64,
}

impl Entries {
    fn len(&self) -> usize {
        self.maps.iter().map(HashMap::len).sum()
    }

    /// Drop expired entries; if still full, the least recently used one.
    fn make_room(&mut self, time_to_live: Duration, capacity: usize) {
        for map in &mut self.maps {
            map.retain(|_, entry| entry.written.elapsed() <= time_to_live);
        }
        if self.len() < capacity {
            return;
        }
        let oldest = self
            .maps
            .iter()
            .enumerate()
            .flat_map(|(kind, map)| map.iter().map(move |(key, e)| (e.last_used, kind, key)))
            .min()
            .map(|(_, kind, key)| (kind, key.clone()));
        if let Some((kind, key)) = oldest {
            self.maps[kind].remove(&key);
        }
    }
}

/// A bounded, expiring map from (kind, key) to the guest's JSON text.
#[derive(Debug)]
pub struct ResultCache {
    config: CacheConfig,
    entries: Mutex<Entries>,
}

fn kind_index(kind: CacheKind) -> usize {
    match kind {
        CacheKind::Search => 0,
        CacheKind::Context => 1,
    }
}

impl ResultCache {
    pub fn new(config: CacheConfig) -> Self {
        Self {
            config,
            entries: Mutex::default(),
        }
    }

    pub fn get(&self, kind: CacheKind, key: &str) -> Option<String> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.clock += 1;
        let now = entries.clock;
        let map = &mut entries.maps[kind_index(kind)];
        let entry = map.get_mut(key)?;
        if entry.written.elapsed() > self.config.time_to_live {
            map.remove(key);
            return None;
        }
        entry.last_used = now;
        Some(entry.value.clone())
    }

    pub fn put(&self, kind: CacheKind, key: &str, value: String) {
        if self.config.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.clock += 1;
        let index = kind_index(kind);
        if !entries.maps[index].contains_key(key) && entries.len() >= self.config.capacity {
            entries.make_room(self.config.time_to_live, self.config.capacity);
        }
        let last_used = entries.clock;
        entries.maps[index].insert(
            key.to_string(),
            Entry {
                value,
                written: Instant::now(),
                last_used,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(capacity: usize, time_to_live: Duration) -> ResultCache {
        ResultCache::new(CacheConfig {
            capacity,
            time_to_live,
        })
    }

    #[test]
    fn kinds_are_separate_and_the_least_recently_used_entry_goes_first() {
        let cache = cache(2, Duration::from_secs(60));
        cache.put(CacheKind::Search, "q", "search".into());
        cache.put(CacheKind::Context, "q", "context".into());
        assert_eq!(cache.get(CacheKind::Search, "q").as_deref(), Some("search"));
        // Full: the context entry was used least recently.
        cache.put(CacheKind::Search, "other", "new".into());
        assert_eq!(cache.get(CacheKind::Context, "q"), None);
        assert_eq!(cache.get(CacheKind::Search, "q").as_deref(), Some("search"));
        assert_eq!(
            cache.get(CacheKind::Search, "other").as_deref(),
            Some("new")
        );
        // Replacing a key does not evict.
        cache.put(CacheKind::Search, "q", "again".into());
        assert_eq!(
            cache.get(CacheKind::Search, "other").as_deref(),
            Some("new")
        );
        assert_eq!(cache.get(CacheKind::Search, "q").as_deref(), Some("again"));
    }

    #[test]
    fn expired_entries_are_never_returned_and_capacity_zero_stores_nothing() {
        let expiring = cache(4, Duration::ZERO);
        expiring.put(CacheKind::Search, "q", "v".into());
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(expiring.get(CacheKind::Search, "q"), None);

        let disabled = cache(0, Duration::from_secs(60));
        disabled.put(CacheKind::Search, "q", "v".into());
        assert_eq!(disabled.get(CacheKind::Search, "q"), None);
    }
}
