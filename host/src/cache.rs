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

/// Entries and a use counter that orders them by recency.
#[derive(Debug, Default)]
struct Entries {
    map: HashMap<(u8, String), Entry>,
    clock: u64,
}

/// A bounded, expiring map from (kind, key) to the guest's JSON text.
#[derive(Debug)]
pub struct ResultCache {
    config: CacheConfig,
    entries: Mutex<Entries>,
}

fn kind_index(kind: CacheKind) -> u8 {
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
        let map_key = (kind_index(kind), key.to_string());
        let entry = entries.map.get_mut(&map_key)?;
        if entry.written.elapsed() > self.config.time_to_live {
            entries.map.remove(&map_key);
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
        let map_key = (kind_index(kind), key.to_string());
        if !entries.map.contains_key(&map_key) && entries.map.len() >= self.config.capacity {
            // Expired entries go first, else the least recently used one.
            let ttl = self.config.time_to_live;
            entries
                .map
                .retain(|_, entry| entry.written.elapsed() <= ttl);
            if entries.map.len() >= self.config.capacity {
                let oldest = entries
                    .map
                    .iter()
                    .min_by_key(|(_, e)| e.last_used)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    entries.map.remove(&oldest);
                }
            }
        }
        let last_used = entries.clock;
        entries.map.insert(
            map_key,
            Entry {
                value,
                written: Instant::now(),
                last_used,
            },
        );
    }
}
