//! Who a request is for, as axum extractors: [`Authenticated`] resolves a tenant key (or the
//! single keyless tenant), [`Admin`] checks the admin key. Both run before the body is read,
//! and name the caller in the request log.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use super::error::ApiError;
use super::request_log::LogFields;
use super::state::{AppState, Shared, TenantState};

/// The bearer key of a request, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

impl AppState {
    /// The tenant a request is for, as the tenants are now.
    pub(super) fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<TenantState>, ApiError> {
        let roster = self.roster();
        let index = if self.authenticated {
            bearer(headers)
                .and_then(|key| roster.tenants.by_key(key))
                .ok_or_else(ApiError::unauthorized)?
        } else {
            0
        };
        Ok(roster.live[index].clone())
    }

    /// The admin key, checked: admin routes are off unless a tenants file configures one.
    fn admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let roster = self.roster();
        if !roster.tenants.has_admin_key() {
            return Err(ApiError::forbidden(
                "admin-disabled",
                "admin routes are off: set admin_key_sha256 in the tenants file",
            ));
        }
        match bearer(headers) {
            Some(key) if roster.tenants.is_admin(key) => Ok(()),
            _ => Err(ApiError::unauthorized()),
        }
    }

    /// Whether a request may read every tenant's metrics: the admin key, or the single
    /// unauthenticated tenant (loopback only) that owns them all.
    pub(super) fn reads_all_metrics(&self, headers: &HeaderMap) -> bool {
        !self.authenticated || self.admin(headers).is_ok()
    }
}

/// The request's tenant; 401 without a valid key. Held for the whole request, so a reload
/// that removes or changes the tenant lets this request finish as it started.
pub(super) struct Authenticated(pub(super) Arc<TenantState>);

impl FromRequestParts<Shared> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        let tenant = state.authenticate(&parts.headers)?;
        LogFields::of(parts).tenant(&tenant.name);
        Ok(Self(tenant))
    }
}

/// A request made with the admin key; 401 with another key, 403 when admin routes are off.
pub(super) struct Admin;

impl FromRequestParts<Shared> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        state.admin(&parts.headers)?;
        LogFields::of(parts).tenant("admin");
        Ok(Self)
    }
}
