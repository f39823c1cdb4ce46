//! Building the live tenants from a tenants file, at start and at every reload: a tenant that
//! stays keeps its store, jobs and readiness (and its whole state when its limits did not
//! change); a new tenant's store is opened; a store that cannot be opened leaves its tenant
//! not ready (503) while the others serve.

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;
use vector_service_runtime::backends::Backends;
use vector_service_runtime::{
    Canary, Plugin, PluginHandle, ServiceConfig, Telemetry, VectorService,
};

use super::admission::Admission;
use super::catalogue::Catalogue;
use super::jobs::Jobs;
use super::metrics::HttpMetrics;
use super::readiness::Readiness;
use super::rollout::Rollouts;
use super::state::{OpenStore, OpenTenant, Roster, TenantState};
use super::tenants::{TenantEntry, Tenants};

/// What a reload changed, by tenant name (the answer of `POST /admin/reload`).
#[derive(Debug, Default, Serialize, ToSchema)]
pub(super) struct Changes {
    pub(super) added: Vec<String>,
    pub(super) removed: Vec<String>,
    /// Limits changed (a key change alone is not listed: keys live in the tenants file).
    pub(super) changed: Vec<String>,
    /// Tenants whose store could not be opened, with why.
    pub(super) not_ready: Vec<NotReady>,
}

/// A tenant whose store could not be opened.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct NotReady {
    pub(super) tenant: String,
    /// Why its store could not be opened.
    pub(super) reason: String,
}

/// What building tenants' services needs from the server.
pub(super) struct Builder<'a> {
    pub(super) open_store: &'a OpenStore,
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
    /// The roster for `tenants`, reusing what `previous` has for tenants that stay. Opens
    /// stores: run it off the async threads.
    pub(super) fn build(&self, tenants: Tenants, previous: Option<&Roster>) -> (Roster, Changes) {
        let mut changes = Changes::default();
        let live = tenants
            .entries
            .iter()
            .map(|entry| {
                let before = previous
                    .and_then(|roster| roster.live.iter().find(|tenant| tenant.name == entry.name));
                match before {
                    Some(before)
                        if before.limits == entry.limits
                            && before.component == entry.component
                            && before.open.is_ok() =>
                    {
                        before.clone()
                    }
                    Some(before) => {
                        if before.limits != entry.limits || before.component != entry.component {
                            changes.changed.push(entry.name.clone());
                        }
                        self.tenant(entry, Some(before), &mut changes)
                    }
                    None => {
                        if previous.is_some() {
                            changes.added.push(entry.name.clone());
                        }
                        self.tenant(entry, None, &mut changes)
                    }
                }
            })
            .collect();
        if let Some(previous) = previous {
            changes.removed = previous
                .live
                .iter()
                .filter(|old| !tenants.entries.iter().any(|entry| entry.name == old.name))
                .map(|old| old.name.clone())
                .collect();
        }
        (Roster { tenants, live }, changes)
    }

    /// A tenant's state for `entry`: `before`'s store, jobs and readiness when it had an open
    /// store, else a store opened now.
    fn tenant(
        &self,
        entry: &TenantEntry,
        before: Option<&Arc<TenantState>>,
        changes: &mut Changes,
    ) -> Arc<TenantState> {
        let config = ServiceConfig {
            tenant: entry.name.clone(),
            limits: entry.limits.sandbox(),
            cache: entry.limits.cache(),
            ..ServiceConfig::default()
        };
        let kept = before.and_then(|b| b.store().map(|store| (store.clone(), b.readiness.clone())));
        let opened = match kept {
            Some(kept) => Ok(kept),
            // A connection per call slot, and one for ingest and readiness checks.
            None => (self.open_store)(&entry.name, entry.limits.max_concurrent.saturating_add(1))
                .map(|store| (store, Arc::new(Readiness::default())))
                .map_err(|error| {
                    // The whole chain (file paths, server addresses) goes to the log; the
                    // answers show the root cause, which names neither.
                    tracing::error!(tenant = %entry.name, error = %format!("{error:#}"), "the tenant's store could not be opened; it is not ready and its requests get 503");
                    format!("its store could not be opened: {}", error.root_cause())
                }),
        };
        // A tenant that keeps its pin keeps its handle, and with it any rollout in progress.
        let plugin = match before.filter(|before| before.component == entry.component) {
            Some(before) => before.plugin.clone(),
            None => self.handle(entry),
        };
        let (open, readiness) = match opened {
            Ok((store, readiness)) => {
                let service = VectorService::new(
                    plugin.clone(),
                    Backends::store(store.clone()),
                    self.telemetry.clone(),
                    config.clone(),
                );
                (Ok(OpenTenant { service, store }), readiness)
            }
            Err(reason) => {
                self.telemetry.register_tenant(&entry.name);
                changes.not_ready.push(NotReady {
                    tenant: entry.name.clone(),
                    reason: reason.clone(),
                });
                (Err(reason.clone()), Arc::new(Readiness::not_ready(reason)))
            }
        };
        if before.is_none() {
            self.http.in_flight(&entry.name, 0);
        }
        Arc::new(TenantState {
            name: entry.name.clone(),
            open,
            admission: Admission::new(&entry.limits),
            readiness,
            jobs: before.map_or_else(|| Arc::new(Jobs::default()), |b| b.jobs.clone()),
            config,
            limits: entry.limits,
            component: entry.component.clone(),
            plugin,
        })
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
