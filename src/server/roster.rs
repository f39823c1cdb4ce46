//! Building the live tenants from a tenants file, at start and at every reload: a tenant that
//! stays keeps its jobs, and its store while it is open (and its whole state when its limits
//! did not change); nothing is opened here (see `residency`).

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;
use vector_service_runtime::{Canary, Plugin, PluginHandle, Telemetry};

use super::catalogue::Catalogue;
use super::metrics::HttpMetrics;
use super::rollout::Rollouts;
use super::state::{OpenTenant, Residence, Roster, TenantState};
use super::tenants::{TenantEntry, Tenants};

/// What a reload changed, by tenant name (the answer of `POST /admin/reload`).
#[derive(Debug, Default, Serialize, ToSchema)]
pub(super) struct Changes {
    pub(super) added: Vec<String>,
    pub(super) removed: Vec<String>,
    /// Limits changed (a key change alone is not listed: keys live in the tenants file).
    pub(super) changed: Vec<String>,
}

/// What building tenants' states needs from the server.
pub(super) struct Builder<'a> {
    /// The server's component, for tenants not pinned to one.
    pub(super) plugin: &'a PluginHandle,
    /// The allowed components, for tenants pinned to one.
    pub(super) catalogue: &'a Catalogue,
    /// Rollouts kept from before, for tenants built afresh.
    pub(super) rollouts: &'a Rollouts,
    pub(super) telemetry: &'a Telemetry,
    pub(super) http: &'a HttpMetrics,
}

impl Builder<'_> {
    /// The roster for `tenants`, reusing what `previous` has for tenants that stay, and the
    /// tenants built afresh. Opens nothing: a tenant opens on its first request, and one
    /// whose limits or component changed keeps its open store.
    pub(super) fn build(
        &self,
        tenants: Tenants,
        previous: Option<&Roster>,
    ) -> (Roster, Changes, Vec<Arc<TenantState>>) {
        let mut changes = Changes::default();
        let mut rebuilt = Vec::new();
        let live = tenants
            .entries
            .iter()
            .map(|entry| {
                let before = previous.and_then(|roster| roster.named(&entry.name));
                match before {
                    Some(before)
                        if before.limits == entry.limits
                            && before.component == entry.component
                            && !matches!(before.residence(), Residence::Failed { .. }) =>
                    {
                        before.clone()
                    }
                    before => {
                        if before.is_some_and(|before| {
                            before.limits != entry.limits || before.component != entry.component
                        }) {
                            changes.changed.push(entry.name.clone());
                        }
                        if before.is_none() && previous.is_some() {
                            changes.added.push(entry.name.clone());
                        }
                        let tenant = self.tenant(entry, before);
                        rebuilt.push(tenant.clone());
                        tenant
                    }
                }
            })
            .collect();
        let roster = Roster::new(tenants, live);
        if let Some(previous) = previous {
            changes.removed = previous
                .live
                .iter()
                .filter(|old| roster.named(&old.name).is_none())
                .map(|old| old.name.clone())
                .collect();
        }
        (roster, changes, rebuilt)
    }

    /// A tenant's state for `entry`: with `before`'s jobs, and its store (and readiness) when
    /// it is open; a tenant whose open failed is tried again on its next request.
    fn tenant(&self, entry: &TenantEntry, before: Option<&Arc<TenantState>>) -> Arc<TenantState> {
        // A tenant that keeps its pin keeps its handle, and with it any rollout in progress.
        let plugin = match before.filter(|before| before.component == entry.component) {
            Some(before) => before.plugin.clone(),
            None => self.handle(entry),
        };
        let jobs = before.map_or_else(Arc::default, |b| b.jobs.clone());
        let usage = before.map_or_else(Arc::default, |b| b.closed_usage.clone());
        let tenant = Arc::new(TenantState::new(entry, plugin, jobs, usage));
        if let Some(open) = before.and_then(|before| before.open_state()) {
            let kept = OpenTenant::new(
                &tenant,
                open.store.clone(),
                open.readiness.clone(),
                self.telemetry,
            );
            tenant.set_residence(Residence::Open(Arc::new(kept)));
        }
        if before.is_none() {
            self.http.in_flight(&entry.name, 0);
        }
        tenant
    }

    /// The component with `digest`: an allowed one, or the server's own.
    fn resolve(&self, digest: &str) -> Option<Arc<Plugin>> {
        self.catalogue.resolve(digest, self.plugin)
    }

    /// A new handle for `entry`: its pinned component (or the server's), then the rollout
    /// kept for it, as far as its components are still allowed.
    fn handle(&self, entry: &TenantEntry) -> PluginHandle {
        let pinned = entry
            .component
            .as_deref()
            .and_then(|digest| self.resolve(digest));
        let handle = PluginHandle::new(pinned.unwrap_or_else(|| self.plugin.active()));
        let Some(rollout) = self.rollouts.get(&entry.name, entry.component.as_deref()) else {
            return handle;
        };
        match self.resolve(&rollout.active) {
            Some(active) => {
                handle.replace(active);
            }
            None => {
                tracing::warn!(tenant = %entry.name, component = %rollout.active, "the promoted component is no longer allowed; the tenant runs its pinned one")
            }
        }
        if let Some(canary) = &rollout.canary {
            match self.resolve(&canary.component) {
                Some(plugin) => handle.set_canary(Some(Canary {
                    plugin,
                    share: canary.share_percent / 100.0,
                })),
                None => {
                    tracing::warn!(tenant = %entry.name, component = %canary.component, "the canary component is no longer allowed; no canary")
                }
            }
        }
        handle
    }
}
