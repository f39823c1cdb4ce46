//! [`PluginHandle`]: the component a service runs, swapped while calls are in flight, and
//! the canary that takes a share of its new calls.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::plugin::Plugin;

/// The component a service runs, swappable while calls are in flight: a call keeps the
/// [`Plugin`] it started on until it ends; calls that start after [`PluginHandle::replace`]
/// get the new one. A canary takes a share of new calls (a rollout to a new component that
/// can be promoted or dropped at once).
#[derive(Clone)]
pub struct PluginHandle(Arc<HandleState>);

struct HandleState {
    serving: RwLock<Serving>,
    /// Calls started, for the canary's share.
    calls: AtomicU64,
}

struct Serving {
    active: Arc<Plugin>,
    canary: Option<Canary>,
}

/// A component taking a share of a handle's new calls.
#[derive(Clone)]
pub struct Canary {
    /// The component on trial.
    pub plugin: Arc<Plugin>,
    /// The share of new calls it gets, in `[0, 1]`.
    pub share: f64,
}

impl PluginHandle {
    /// A handle serving `plugin`.
    pub fn new(plugin: Arc<Plugin>) -> Self {
        Self(Arc::new(HandleState {
            serving: RwLock::new(Serving {
                active: plugin,
                canary: None,
            }),
            calls: AtomicU64::new(0),
        }))
    }

    fn serving(&self) -> std::sync::RwLockReadGuard<'_, Serving> {
        self.0.serving.read().unwrap_or_else(|p| p.into_inner())
    }

    fn serving_mut(&self) -> std::sync::RwLockWriteGuard<'_, Serving> {
        self.0.serving.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The plugin a new call uses: the canary for its share of calls (spread evenly by a
    /// hash of the call's number), else the active one.
    pub fn current(&self) -> Arc<Plugin> {
        let serving = self.serving();
        match &serving.canary {
            Some(canary) if canary.share > 0.0 => {
                let call = self.0.calls.fetch_add(1, Ordering::Relaxed);
                if unit_interval(call) < canary.share {
                    canary.plugin.clone()
                } else {
                    serving.active.clone()
                }
            }
            _ => serving.active.clone(),
        }
    }

    /// The active plugin (what calls use outside the canary's share).
    pub fn active(&self) -> Arc<Plugin> {
        self.serving().active.clone()
    }

    /// The canary, if one is set.
    pub fn canary(&self) -> Option<Canary> {
        self.serving().canary.clone()
    }

    /// Serve `plugin` from now on (the canary, if any, stays); returns the one it replaces.
    pub fn replace(&self, plugin: Arc<Plugin>) -> Arc<Plugin> {
        std::mem::replace(&mut self.serving_mut().active, plugin)
    }

    /// Give `canary` its share of new calls (its share clamped to `[0, 1]`), or stop one.
    pub fn set_canary(&self, canary: Option<Canary>) {
        self.serving_mut().canary = canary.map(|canary| Canary {
            share: if canary.share.is_nan() {
                0.0
            } else {
                canary.share.clamp(0.0, 1.0)
            },
            ..canary
        });
    }
}

/// `n` hashed to `[0, 1)` (splitmix64): consecutive calls land far apart, so a share is met
/// over any run of calls, not only over long ones.
fn unit_interval(n: u64) -> f64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl From<Arc<Plugin>> for PluginHandle {
    fn from(plugin: Arc<Plugin>) -> Self {
        Self::new(plugin)
    }
}

#[cfg(test)]
mod tests {
    use super::unit_interval;

    #[test]
    fn call_numbers_spread_evenly_over_the_unit_interval() {
        for share in [0.01, 0.1, 0.5, 0.9] {
            // Every window of 1,000 consecutive calls, not only the whole run, meets the share
            // within four standard deviations of a binomial draw.
            for start in (0..20_000u64).step_by(1_000) {
                let hits = (start..start + 1_000)
                    .filter(|&n| unit_interval(n) < share)
                    .count() as f64;
                let sigma = (1_000.0 * share * (1.0 - share)).sqrt();
                assert!(
                    (hits - 1_000.0 * share).abs() <= 4.0 * sigma,
                    "share {share}, calls {start}..: {hits}"
                );
            }
        }
        assert!((0..100_000u64).all(|n| (0.0..1.0).contains(&unit_interval(n))));
    }
}
