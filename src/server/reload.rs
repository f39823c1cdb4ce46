//! Swapping the component while serving: `POST /admin/reload` and SIGHUP load a component
//! onto the server's one engine, check it against the WIT world, and swap it in; calls in
//! flight finish on the old one, and a component that does not fit is refused.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::auth::Admin;
use super::body::{self, Accepts};
use super::error::ApiError;
use super::handlers::panicked;
use super::state::{load_plugin, AppState, Shared};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReloadBody {
    /// A component file; default: the one the server was started with.
    component: Option<PathBuf>,
}

/// `POST /admin/reload`: load, validate against the WIT and swap in a component; calls in
/// flight finish on the old one. A component that does not fit is refused (400) and the old
/// one keeps serving.
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
    let loaded = swap_component(&state, path).await?;
    Ok(Json(loaded).into_response())
}

/// Load and swap; the JSON answer names what is now serving.
async fn swap_component(
    state: &AppState,
    path: Option<PathBuf>,
) -> Result<serde_json::Value, ApiError> {
    let _one_at_a_time = state.reloading.lock().await;
    let source = path
        .as_ref()
        .map_or_else(|| "built-in".to_string(), |p| p.display().to_string());
    let engine = state.engine.clone();
    let loaded = tokio::task::spawn_blocking(move || load_plugin(path.as_ref(), &engine))
        .await
        .map_err(|e| panicked("the reload", e))?;
    match loaded {
        Ok((plugin, sha256, size)) => {
            state.plugin.replace(Arc::new(plugin));
            state.http.reload(true);
            tracing::info!(component = %source, %sha256, size, "component reloaded");
            Ok(
                serde_json::json!({"status": "reloaded", "component": source, "sha256": sha256, "bytes": size}),
            )
        }
        Err(error) => {
            state.http.reload(false);
            Err(ApiError::bad_request(format!(
                "component {source} refused, the old one keeps serving: {error:#}"
            )))
        }
    }
}

/// Reload the component on every SIGHUP (the one the server was started with).
pub(super) async fn reload_on_sighup(state: Shared) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return;
    };
    while hangup.recv().await.is_some() {
        let path = state.component.clone();
        if let Err(error) = swap_component(&state, path).await {
            tracing::error!(error = %error.message, "SIGHUP reload refused; the old component keeps serving");
        }
    }
}
