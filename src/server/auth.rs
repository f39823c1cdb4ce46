//! Who a request is for, as axum extractors: [`Authenticated`] resolves a tenant key (or the
//! single keyless tenant), [`Admin`] checks the admin key. Both run before the body is read,
//! and name the caller in the request log.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use super::error::ApiError;
use super::request_log::LogFields;
use super::state::{AppState, Shared};

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
    /// The index in `live` of the tenant a request is for.
    pub(super) fn authenticate(&self, headers: &HeaderMap) -> Result<usize, ApiError> {
        if !self.tenants.authenticated {
            return Ok(0);
        }
        bearer(headers)
            .and_then(|key| self.tenants.by_key(key))
            .ok_or_else(ApiError::unauthorized)
    }

    /// The admin key, checked: admin routes are off unless a tenants file configures one.
    fn admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if !self.tenants.has_admin_key() {
            return Err(ApiError::forbidden(
                "admin-disabled",
                "admin routes are off: set admin_key_sha256 in the tenants file",
            ));
        }
        match bearer(headers) {
            Some(key) if self.tenants.is_admin(key) => Ok(()),
            _ => Err(ApiError::unauthorized()),
        }
    }

    /// Whether a request may read every tenant's metrics: the admin key, or the single
    /// unauthenticated tenant (loopback only) that owns them all.
    pub(super) fn reads_all_metrics(&self, headers: &HeaderMap) -> bool {
        !self.tenants.authenticated || self.admin(headers).is_ok()
    }
}

/// The request's tenant, by index into the server's `live` tenants; 401 without a valid key.
pub(super) struct Authenticated(pub(super) usize);

impl FromRequestParts<Shared> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        let index = state.authenticate(&parts.headers)?;
        LogFields::of(parts).tenant(&state.live[index].name);
        Ok(Self(index))
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
