//! `GET /admin/tenants`: the operator's read-only view of the tenants as serving now: the
//! component each runs (pinned or the server's) and its limits.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Admin;
use super::state::Shared;
use super::tenants::TenantLimits;
use crate::failure::FailureBody;

/// One tenant as `GET /admin/tenants` shows it.
#[derive(Serialize, ToSchema)]
pub(super) struct TenantView {
    name: String,
    /// The sha256 of the component its new calls run.
    component: String,
    /// Whether the tenants file pins it to that component (else it runs the server's).
    pinned: bool,
    /// Whether its store is open and passed its last health check.
    ready: bool,
    limits: TenantLimits,
}

/// `GET /admin/tenants`' answer.
#[derive(Serialize, ToSchema)]
pub(super) struct TenantsView {
    /// The server's component (tenants not pinned run it).
    component: String,
    tenants: Vec<TenantView>,
}

/// `GET /admin/tenants`: every tenant, the component it runs and its limits (read-only;
/// change them in the tenants file and reload).
#[utoipa::path(get, path = "/admin/tenants", tag = "operator",
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "The tenants as serving now.", body = TenantsView),
        (status = 401, description = "`unauthorized`.", body = FailureBody),
        (status = 403, description = "`admin-disabled`: no admin key is configured.", body = FailureBody)))]
pub(super) async fn tenants(State(state): State<Shared>, _: Admin) -> Response {
    let serving = state.serving_digest();
    let tenants = state
        .roster()
        .live
        .iter()
        .map(|tenant| TenantView {
            name: tenant.name.clone(),
            component: tenant.component.clone().unwrap_or_else(|| serving.clone()),
            pinned: tenant.component.is_some(),
            ready: tenant.open.is_ok() && tenant.readiness.is_ready(),
            limits: tenant.limits,
        })
        .collect();
    Json(TenantsView {
        component: serving,
        tenants,
    })
    .into_response()
}
