//! Rolling a component out to one tenant: a canary digest takes a share of the tenant's new
//! calls, `promote` makes it the tenant's component, `rollback` drops the canary or returns
//! to the component before the last promotion. Each change takes effect on the tenant's
//! [`PluginHandle`] at once (calls in flight finish on what they started with) and is kept in
//! `<data-dir>/rollouts.json`, so a restart serves what was promoted.
//!
//! The tenants file stays the declared state: a rollout is kept only while the tenant's
//! `component` in the file is what it was when the rollout started; editing it there wins.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
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
    /// What start found wrong with the file, if anything (the server started anyway).
    damage: Option<String>,
}

impl Rollouts {
    /// The rollouts kept in `path` (none when it does not exist yet); `None`: kept in memory
    /// only. The file is the server's own state, so a damaged one never stops a start: the
    /// previous version the server kept beside it is used, else no rollouts (tenants run their
    /// pinned or the server's component); an entry that does not read is dropped alone. The
    /// damaged file is moved aside for the operator, and [`Rollouts::damage`] says what happened.
    pub(super) fn open(path: Option<PathBuf>) -> Self {
        let Some(file) = &path else {
            return Self::in_memory(path, BTreeMap::new(), None);
        };
        let (by_tenant, damage) = match read_rollouts(file) {
            Ok(Some(Read { by_tenant, dropped })) if dropped.is_empty() => (by_tenant, None),
            Ok(Some(Read { by_tenant, dropped })) => {
                let damage = format!(
                    "rollouts.json: the rollout of {} did not read and was dropped (they run their pinned or the server's component)",
                    dropped.join(", ")
                );
                (by_tenant, Some(damage))
            }
            Ok(None) => (BTreeMap::new(), None),
            Err(error) => {
                let aside = file.with_extension("json.damaged");
                let moved = std::fs::rename(file, &aside).is_ok();
                tracing::error!(%error, moved_to = %aside.display(), moved, "the rollouts file is damaged; starting from its previous version");
                match read_rollouts(&previous_version(file)) {
                    Ok(Some(Read { by_tenant, .. })) => (
                        by_tenant,
                        Some("rollouts.json was damaged: serving its previous version (the last rollout change may be lost)".to_string()),
                    ),
                    _ => (
                        BTreeMap::new(),
                        Some("rollouts.json was damaged and no previous version reads: every tenant runs its pinned or the server's component".to_string()),
                    ),
                }
            }
        };
        Self::in_memory(path, by_tenant, damage)
    }

    fn in_memory(
        path: Option<PathBuf>,
        by_tenant: BTreeMap<String, Rollout>,
        damage: Option<String>,
    ) -> Self {
        Self {
            path,
            by_tenant: Mutex::new(by_tenant),
            damage,
        }
    }

    /// What start found wrong with the rollouts file, if anything.
    pub(super) fn damage(&self) -> Option<&str> {
        self.damage.as_deref()
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

/// A rollouts file as read: the entries that read, and the tenants whose entry did not.
struct Read {
    by_tenant: BTreeMap<String, Rollout>,
    dropped: Vec<String>,
}

/// The rollouts in `path`: `None` when there is no file, an error when it is not a JSON object.
fn read_rollouts(path: &Path) -> Result<Option<Read>, String> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("reading it: {error}")),
    };
    let entries: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&text).map_err(|e| format!("not a rollouts file: {e}"))?;
    let mut read = Read {
        by_tenant: BTreeMap::new(),
        dropped: Vec::new(),
    };
    for (tenant, entry) in entries {
        match serde_json::from_value(entry) {
            Ok(rollout) => {
                read.by_tenant.insert(tenant, rollout);
            }
            Err(error) => {
                tracing::error!(%tenant, %error, "a tenant's rollout did not read; dropped");
                read.dropped.push(tenant);
            }
        }
    }
    Ok(Some(read))
}

/// Where the version before the last write is kept.
fn previous_version(path: &Path) -> PathBuf {
    path.with_extension("json.previous")
}

/// Write `rollouts` durably in place of `path`, keeping the version it replaces beside it: a
/// temporary file, synced, renamed over `path`, the directory synced.
fn write_atomically(path: &Path, rollouts: &BTreeMap<String, Rollout>) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    if path.exists() {
        std::fs::copy(path, previous_version(path))?;
    }
    let temporary = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(rollouts).map_err(std::io::Error::other)?;
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(&text)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(dir)?.sync_all()
}
