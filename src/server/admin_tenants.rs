//! The operator's tenant routes (admin key): `GET /admin/tenants` shows what each tenant runs
//! (its component, canary and limits); `POST /admin/tenants/{tenant}/canary`, `/promote` and
//! `/rollback` roll a component out to one tenant (`rollout`).

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoResponses, ToSchema};
use vector_service_runtime::{Canary, Plugin};

use super::auth::Admin;
use super::error::ApiError;
use super::handlers::parse;
use super::rollout::{CanarySetting, Rollout};
use super::segment::Segment;
use super::state::{AppState, Shared, TenantState};
use super::tenants::TenantLimits;
use crate::failure::FailureBody;

/// One tenant as `GET /admin/tenants` shows it.
#[derive(Serialize, ToSchema)]
pub(super) struct TenantView {
    name: String,
    /// The sha256 of the component its new calls run (outside a canary's share).
    component: String,
    /// Whether the tenants file pins it to a component (else it runs the server's).
    pinned: bool,
    /// A component on trial and its share of the tenant's new calls.
    canary: Option<CanarySetting>,
    /// The component before the last promotion: what `rollback` returns to.
    previous: Option<String>,
    /// Whether it is open now (its store, indexes and connections); a closed tenant opens
    /// on its next request.
    open: bool,
    /// Bytes it held in memory at the last count, while it is open.
    #[serde(skip_serializing_if = "Option::is_none")]
    resident_bytes: Option<usize>,
    /// False when its last open failed, or its open store has a lasting fault or failed its
    /// last health check.
    ready: bool,
    /// Why it is not ready, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    limits: TenantLimits,
}

impl TenantView {
    fn of(state: &AppState, tenant: &TenantState) -> Self {
        let rollout = state
            .rollouts
            .get(&tenant.name, tenant.component.as_deref());
        let reason = tenant.not_ready();
        let open = tenant.open_state().map(|open| open.resident_bytes());
        Self {
            name: tenant.name.clone(),
            component: tenant.plugin.active().digest().to_string(),
            pinned: tenant.component.is_some(),
            canary: rollout.as_ref().and_then(|r| r.canary.clone()),
            previous: rollout.and_then(|r| r.previous),
            open: open.is_some(),
            resident_bytes: open,
            ready: reason.is_none(),
            reason,
            limits: tenant.limits,
        }
    }
}

/// `GET /admin/tenants`' answer.
#[derive(Serialize, ToSchema)]
pub(super) struct TenantsView {
    /// The server's component (tenants not pinned run it).
    component: String,
    tenants: Vec<TenantView>,
}

/// `GET /admin/tenants`: every tenant, the component it runs and its limits.
#[utoipa::path(get, path = "/admin/tenants", tag = "operator",
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The tenants as serving now.", body = TenantsView),
        (status = 401, description = "`unauthorized`.", body = FailureBody),
        (status = 403, description = "`admin-disabled`: no admin key is configured.", body = FailureBody)))]
pub(super) async fn tenants(State(state): State<Shared>, _: Admin) -> Response {
    let tenants = state
        .roster()
        .live
        .iter()
        .map(|tenant| TenantView::of(&state, tenant))
        .collect();
    Json(TenantsView {
        component: state.serving_digest(),
        tenants,
    })
    .into_response()
}

/// The errors of a route that names a tenant, beside its own.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(super) enum TenantRouteFailures {
    /// `unauthorized`: not the admin key.
    #[response(status = 401)]
    Unauthorized(FailureBody),
    /// `admin-disabled`: no admin key is configured.
    #[response(status = 403)]
    AdminOff(FailureBody),
    /// `not-found`: no such tenant.
    #[response(status = 404)]
    NoSuchTenant(FailureBody),
}

/// `POST /admin/tenants/{tenant}/canary`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"component": "5f2c0d7e9a1b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5", "share_percent": 10.0}))]
pub(super) struct CanaryBody {
    /// The sha256 of an allowed component (the tenants file's `[[component]]` list) or of
    /// the server's.
    component: String,
    /// Percent of the tenant's new calls it gets, 0 to 100.
    share_percent: f64,
}

fn tenant_named(state: &AppState, name: &str) -> Result<std::sync::Arc<TenantState>, ApiError> {
    state
        .roster()
        .named(name)
        .cloned()
        .ok_or_else(|| ApiError::not_found_thing(format!("no tenant {name:?}")))
}

/// The allowed component with `digest`, or a 400 naming it.
fn allowed(state: &AppState, digest: &str) -> Result<std::sync::Arc<Plugin>, ApiError> {
    state
        .catalogue()
        .resolve(digest, &state.plugin)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "component {digest} is neither in the tenants file's [[component]] list nor the server's"
            ))
        })
}

/// Keep `tenant`'s new rollout (computed by `change` from its current one), then make its
/// handle serve it; the tenant's view.
fn roll(
    state: &AppState,
    tenant: &TenantState,
    change: impl FnOnce(Rollout) -> Result<Rollout, ApiError>,
) -> Result<Response, ApiError> {
    let pin = tenant.component.clone();
    let current = |kept: Option<&Rollout>| {
        kept.filter(|r| r.file_pin == pin)
            .cloned()
            .unwrap_or(Rollout {
                file_pin: pin.clone(),
                active: tenant.plugin.active().digest().to_string(),
                previous: None,
                canary: None,
            })
    };
    state.rollouts.update(
        &tenant.name,
        |kept| {
            let next = change(current(kept))?;
            let active = allowed(state, &next.active)?;
            let canary = match &next.canary {
                Some(canary) => Some(Canary {
                    plugin: allowed(state, &canary.component)?,
                    share: canary.share_percent / 100.0,
                }),
                None => None,
            };
            Ok::<_, ApiError>((next, (active, canary)))
        },
        |(active, canary)| {
            // The canary first: no call sees the old canary beside the new active one.
            tenant.plugin.set_canary(canary);
            tenant.plugin.replace(active);
        },
    )?;
    tracing::info!(tenant = %tenant.name, rollout = ?state.rollouts.get(&tenant.name, pin.as_deref()), "rollout changed");
    Ok(Json(TenantView::of(state, tenant)).into_response())
}

/// `POST /admin/tenants/{tenant}/warm`: open the tenant now (its store, integrity check and
/// indexes), so its next request does not pay for it; a no-op for an open tenant. It is then
/// closed like any other (idle, or for room).
#[utoipa::path(post, path = "/admin/tenants/{tenant}/warm", tag = "operator",
    params(("tenant" = String, Path, description = "The tenant's name.")),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The tenant, open.", body = TenantView),
        TenantRouteFailures,
        (status = 503, description = "`unavailable`: its store could not be opened (why is in the message).", body = FailureBody)))]
pub(super) async fn warm(
    State(state): State<Shared>,
    _: Admin,
    Segment(name): Segment,
) -> Result<Response, ApiError> {
    let tenant = tenant_named(&state, &name)?;
    drop(state.lease(&tenant).await?);
    Ok(Json(TenantView::of(&state, &tenant)).into_response())
}

/// `POST /admin/tenants/{tenant}/canary`: give a component a share of the tenant's new calls
/// (replacing any canary; share 0 keeps it set but idle).
#[utoipa::path(post, path = "/admin/tenants/{tenant}/canary", tag = "operator",
    params(("tenant" = String, Path, description = "The tenant's name.")),
    request_body = CanaryBody, security(("admin_key" = [])),
    responses(
        (status = 200, description = "The tenant, its canary set.", body = TenantView),
        (status = 400, description = "`bad-request`: a share outside 0..=100, or a component that is not allowed.", body = FailureBody),
        TenantRouteFailures))]
pub(super) async fn canary(
    State(state): State<Shared>,
    _: Admin,
    Segment(name): Segment,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let tenant = tenant_named(&state, &name)?;
    let body: CanaryBody = parse(&state, &headers, body).await?;
    if !(0.0..=100.0).contains(&body.share_percent) {
        return Err(ApiError::bad_request(
            "share_percent must be within 0..=100",
        ));
    }
    let component = body.component.to_ascii_lowercase();
    roll(&state, &tenant, |rollout| {
        Ok(Rollout {
            canary: Some(CanarySetting {
                component,
                share_percent: body.share_percent,
            }),
            ..rollout
        })
    })
}

/// `POST /admin/tenants/{tenant}/promote`: the canary becomes the tenant's component for all
/// its new calls; the one it replaces is kept for `rollback`.
#[utoipa::path(post, path = "/admin/tenants/{tenant}/promote", tag = "operator",
    params(("tenant" = String, Path, description = "The tenant's name.")),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The tenant, its canary promoted.", body = TenantView),
        TenantRouteFailures,
        (status = 409, description = "`conflict`: the tenant has no canary.", body = FailureBody)))]
pub(super) async fn promote(
    State(state): State<Shared>,
    _: Admin,
    Segment(name): Segment,
) -> Result<Response, ApiError> {
    let tenant = tenant_named(&state, &name)?;
    roll(&state, &tenant, |rollout| {
        let canary = rollout
            .canary
            .clone()
            .ok_or_else(|| ApiError::conflict("the tenant has no canary to promote"))?;
        Ok(rollout.switch_to(canary.component))
    })
}

/// `POST /admin/tenants/{tenant}/rollback`: drop the canary; without one, return to the
/// component before the last promotion. Safe to retry: once there is nothing to undo, 409.
#[utoipa::path(post, path = "/admin/tenants/{tenant}/rollback", tag = "operator",
    params(("tenant" = String, Path, description = "The tenant's name.")),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The tenant, rolled back.", body = TenantView),
        TenantRouteFailures,
        (status = 409, description = "`conflict`: no canary and no earlier component (a rollback already undid the last promotion); nothing changed.", body = FailureBody)))]
pub(super) async fn rollback(
    State(state): State<Shared>,
    _: Admin,
    Segment(name): Segment,
) -> Result<Response, ApiError> {
    let tenant = tenant_named(&state, &name)?;
    roll(&state, &tenant, |rollout| {
        if rollout.canary.is_some() {
            return Ok(Rollout {
                canary: None,
                ..rollout
            });
        }
        let previous = rollout.previous.ok_or_else(|| {
            ApiError::conflict("nothing to roll back: no canary, no earlier component")
        })?;
        // Nothing left to undo: a retried rollback is a 409 that changes nothing, never a
        // return to the component it just rolled back from.
        Ok(Rollout {
            previous: None,
            active: previous,
            canary: None,
            file_pin: rollout.file_pin,
        })
    })
}
