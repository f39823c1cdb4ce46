//! Rolling a component out to one tenant: a canary digest takes a share of the tenant's new
//! calls, `promote` makes it the tenant's component, `rollback` drops the canary or returns
//! to the component before the last promotion. Each change takes effect on the tenant's
//! [`PluginHandle`] at once (calls in flight finish on what they started with) and is kept in
//! `<data-dir>/rollouts.json`, so a restart serves what was promoted.
//!
//! The tenants file stays the declared state: a rollout is kept only while the tenant's
//! `component` in the file is what it was when the rollout started; editing it there wins.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::tenants::Tenants;

/// A canary: the component on trial and its share of the tenant's new calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub(super) struct CanarySetting {
    /// The component's sha256.
    pub(super) component: String,
    /// Percent of the tenant's new calls it gets, 0 to 100.
    pub(super) share_percent: f64,
}

/// One tenant's rollout state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Rollout {
    /// The tenants file's `component` for the tenant when this state began.
    pub(super) file_pin: Option<String>,
    /// The sha256 the tenant's calls run outside the canary's share.
    pub(super) active: String,
    /// What `active` was before the last promotion (what `rollback` returns to).
    pub(super) previous: Option<String>,
    pub(super) canary: Option<CanarySetting>,
}

impl Rollout {
    /// Every new call on `component`, no canary; the active one kept for a rollback.
    pub(super) fn switch_to(self, component: String) -> Self {
        Self {
            previous: Some(self.active),
            active: component,
            canary: None,
            file_pin: self.file_pin,
        }
    }
}

/// Every tenant's rollout, and the file that keeps them.
pub(super) struct Rollouts {
    path: Option<PathBuf>,
    by_tenant: Mutex<BTreeMap<String, Rollout>>,
}

impl Rollouts {
    /// The rollouts kept in `path` (none when it does not exist yet); `None`: kept in memory
    /// only.
    pub(super) fn open(path: Option<PathBuf>) -> anyhow::Result<Self> {
        let by_tenant = match &path {
            Some(path) if path.exists() => {
                let text = std::fs::read_to_string(path)?;
                serde_json::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("{}: not a rollouts file: {e}", path.display()))?
            }
            _ => BTreeMap::new(),
        };
        Ok(Self {
            path,
            by_tenant: Mutex::new(by_tenant),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Rollout>> {
        self.by_tenant.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `tenant`'s rollout, if it has one that still matches the file's `pin`.
    pub(super) fn get(&self, tenant: &str, pin: Option<&str>) -> Option<Rollout> {
        self.lock()
            .get(tenant)
            .filter(|rollout| rollout.file_pin.as_deref() == pin)
            .cloned()
    }

    /// Change `tenant`'s rollout with `change` (given its current one, if any), keep it, then
    /// `apply` what `change` prepared. Kept before it is applied, so nothing acts on a change
    /// a restart would forget; applied under the same lock, so concurrent changes of a tenant
    /// take effect in the order they were kept. `change` refusing leaves everything as it was.
    pub(super) fn update<E: From<String>, A>(
        &self,
        tenant: &str,
        change: impl FnOnce(Option<&Rollout>) -> Result<(Rollout, A), E>,
        apply: impl FnOnce(A),
    ) -> Result<(), E> {
        let mut by_tenant = self.lock();
        let (rollout, effect) = change(by_tenant.get(tenant))?;
        let mut next = by_tenant.clone();
        next.insert(tenant.to_string(), rollout);
        if let Some(path) = &self.path {
            write_atomically(path, &next).map_err(|e| {
                E::from(format!(
                    "the rollout could not be kept in {}: {e}",
                    path.display()
                ))
            })?;
        }
        *by_tenant = next;
        apply(effect);
        Ok(())
    }
}

impl Rollouts {
    /// Forget the rollouts of tenants that are gone or whose `component` in the tenants file
    /// changed since their rollout began (the file wins), so an old rollout never comes back.
    pub(super) fn forget_stale(&self, tenants: &Tenants) -> Result<(), String> {
        let current = |name: &str, rollout: &Rollout| {
            tenants
                .entries
                .iter()
                .any(|entry| entry.name == name && entry.component == rollout.file_pin)
        };
        let mut by_tenant = self.lock();
        if by_tenant
            .iter()
            .all(|(name, rollout)| current(name, rollout))
        {
            return Ok(());
        }
        let mut next = by_tenant.clone();
        next.retain(|name, rollout| current(name, rollout));
        if let Some(path) = &self.path {
            write_atomically(path, &next).map_err(|e| {
                format!("the rollouts could not be kept in {}: {e}", path.display())
            })?;
        }
        *by_tenant = next;
        Ok(())
    }
}

/// Write `rollouts` to a temporary file beside `path`, then rename it over `path`.
fn write_atomically(path: &PathBuf, rollouts: &BTreeMap<String, Rollout>) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temporary = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(rollouts).map_err(std::io::Error::other)?;
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}
