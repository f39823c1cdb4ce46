//! Reloading while serving: `POST /admin/reload` and SIGHUP re-read the tenants file (tenants
//! added, removed, keys and limits changed: `roster`) and load a component onto the server's
//! one engine, checked against the WIT world; both are swapped in once both pass. Calls in
//! flight finish on what they started with; anything that does not pass is refused and the
//! old tenants and component keep serving.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use vector_service_runtime::Plugin;

use super::auth::Admin;
use super::body::{self, Accepts};
use super::error::ApiError;
use super::handlers::panicked;
use super::roster::Builder;
use super::state::{fits_pool, read_component, AppState, Shared};
use super::tenants::Tenants;
use super::warm_indexes;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReloadBody {
    /// A component file; default: the one the server was started with.
    component: Option<PathBuf>,
}

/// `POST /admin/reload`: re-read the tenants file and load the component (the given one, or
/// the one the server was started with), then swap both in. Calls in flight finish on the
/// tenants and component they started with. A tenants file or component that does not pass
/// its checks is refused (400) and nothing changes.
pub(super) async fn reload(
    State(state): State<Shared>,
    _: Admin,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = body::read(&headers, body, state.max_body_bytes, Accepts::Json).await?;
    let request: ReloadBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        ReloadBody::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("request body: {e}")))?
    };
    let path = request.component.or_else(|| state.component.clone());
    let loaded = reload_all(&state, path).await?;
    Ok(Json(loaded).into_response())
}

/// A reload refused: counted, and the old tenants and component keep serving.
fn refused(state: &AppState, message: String) -> ApiError {
    state.http.reload(false);
    ApiError::bad_request(message)
}

/// Check the tenants file and the component, then swap both in; the JSON answer names what
/// is now serving and what changed.
async fn reload_all(state: &Shared, path: Option<PathBuf>) -> Result<serde_json::Value, ApiError> {
    let _one_at_a_time = state.reloading.lock().await;
    let tenants = match &state.tenants_file {
        None => None,
        Some(file) => {
            let checked = Tenants::load(file)
                .map_err(|error| error.to_string())
                .and_then(|tenants| {
                    fits_pool(&tenants, state.engine.allocation()).map(|()| tenants)
                });
            let tenants = checked.map_err(|error| {
                refused(
                    state,
                    format!("tenants file refused, nothing changed: {error}"),
                )
            })?;
            Some(tenants)
        }
    };
    let source = path
        .as_ref()
        .map_or_else(|| "built-in".to_string(), |p| p.display().to_string());
    let engine = state.engine.clone();
    let serving = state.serving_digest();
    // Compile only new bytes: a reload for a tenants-file change keeps the component as is.
    let loaded = tokio::task::spawn_blocking(move || {
        let (bytes, sha256) = read_component(path.as_ref())?;
        let plugin = (sha256 != serving)
            .then(|| Plugin::new(engine.engine(), &bytes))
            .transpose()?;
        anyhow::Ok((plugin, sha256, bytes.len()))
    })
    .await
    .map_err(|e| panicked("the reload", e))?;
    let (plugin, sha256, size) = loaded.map_err(|error| {
        refused(
            state,
            format!("component {source} refused, the old one keeps serving: {error:#}"),
        )
    })?;
    let compiled = plugin.is_some();
    if let Some(plugin) = plugin {
        state.plugin.replace(Arc::new(plugin));
        *state.serving.lock().unwrap_or_else(|p| p.into_inner()) = sha256.clone();
    }
    let mut answer = serde_json::json!({"status": "reloaded", "component": source, "sha256": sha256, "bytes": size, "compiled": compiled});
    if let Some(tenants) = tenants {
        let shared = state.clone();
        let built = tokio::task::spawn_blocking(move || {
            let previous = shared.roster();
            let (roster, changes) = Builder {
                open_store: &shared.open_store,
                plugin: &shared.plugin,
                telemetry: &shared.telemetry,
                http: &shared.http,
            }
            .build(tenants, Some(&previous));
            // Tenants kept whole have their indexes warm already.
            let rebuilt: Vec<_> = roster
                .live
                .iter()
                .filter(|tenant| !previous.live.iter().any(|old| Arc::ptr_eq(old, tenant)))
                .cloned()
                .collect();
            let count = roster.live.len();
            shared.replace_roster(roster);
            (count, rebuilt, changes)
        })
        .await
        .map_err(|e| panicked("the reload", e))?;
        let (count, rebuilt, changes) = built;
        warm_indexes(&rebuilt);
        tracing::info!(tenants = count, ?changes, "tenants reloaded");
        answer["tenants"] = serde_json::json!({"count": count, "changes": changes});
    }
    state.http.reload(true);
    tracing::info!(component = %source, %sha256, size, "component reloaded");
    Ok(answer)
}

/// Reload the tenants file and the component (the one the server was started with) on every
/// SIGHUP.
pub(super) async fn reload_on_sighup(state: Shared) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return;
    };
    while hangup.recv().await.is_some() {
        let path = state.component.clone();
        if let Err(error) = reload_all(&state, path).await {
            tracing::error!(error = %error.message, "SIGHUP reload refused; the old tenants and component keep serving");
        }
    }
}
