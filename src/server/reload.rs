//! Reloading while serving: `POST /admin/reload` and SIGHUP re-read the tenants file (tenants
//! added, removed, keys and limits changed: `roster`) and load a component onto the server's
//! one engine, checked against the WIT world; both are swapped in once both pass. Calls in
//! flight finish on what they started with; anything that does not pass is refused and the
//! old tenants and component keep serving.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Admin;
use super::body::{self, Accepts};
use super::config::{self, Compiled, ComponentFiles};
use super::error::ApiError;
use super::handlers::panicked;
use super::roster::{Builder, Changes};
use super::state::{fits_pool, AppState, Shared};
use super::tenants::Tenants;
use crate::failure::FailureBody;

/// `POST /admin/reload`'s body (optional).
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ReloadBody {
    /// A component file on the server's machine; default: the one the server was started
    /// with.
    #[schema(value_type = Option<String>)]
    component: Option<PathBuf>,
}

/// `POST /admin/reload`'s answer.
#[derive(Serialize, ToSchema)]
pub(super) struct ReloadAnswer {
    /// `reloaded`.
    status: &'static str,
    /// The component's file name, or `built-in`.
    component: String,
    /// Its sha256, hex.
    sha256: String,
    /// Its size.
    bytes: usize,
    /// Whether it was compiled (false: the same bytes were compiled before).
    compiled: bool,
    /// With a tenants file: what the reload changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    tenants: Option<TenantChanges>,
}

/// The tenants after a reload.
#[derive(Serialize, ToSchema)]
pub(super) struct TenantChanges {
    /// Tenants serving now.
    count: usize,
    changes: Changes,
}

/// `POST /admin/reload`: re-read the tenants file and load the component (the given one, or
/// the one the server was started with), then swap both in. Calls in flight finish on the
/// tenants and component they started with. A tenants file or component that does not pass
/// its checks is refused (400) and nothing changes.
#[utoipa::path(post, path = "/admin/reload", tag = "operator",
    request_body(content = Option<ReloadBody>, description = "Optional; an empty body reloads the component the server was started with."),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "Reloaded: the component and, with a tenants file, the tenants.", body = ReloadAnswer),
        (status = 400, description = "`bad-request`: the tenants file or component did not pass its checks; nothing changed.", body = FailureBody),
        (status = 401, description = "`unauthorized`.", body = FailureBody),
        (status = 403, description = "`admin-disabled`: no admin key is configured.", body = FailureBody)))]
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
    // Set when this handler is dropped before it answers (the caller hung up): the reload's
    // file reads stop there.
    let gone = Arc::new(AtomicBool::new(false));
    let _on_hang_up = SetOnDrop(gone.clone());
    let loaded = reload_all(&state, path, gone).await?;
    Ok(Json(loaded).into_response())
}

/// Sets its flag when dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A reload refused: counted, and the old tenants and component keep serving.
fn refused(state: &AppState, message: String) -> ApiError {
    state.http.reload(false);
    ApiError::bad_request(message)
}

/// Check the tenants file and the component, then swap both in; the JSON answer names what
/// is now serving and what changed. Reading stops once `gone` is set (the caller hung up), and
/// then nothing changes.
async fn reload_all(
    state: &Shared,
    path: Option<PathBuf>,
    gone: Arc<AtomicBool>,
) -> Result<ReloadAnswer, ApiError> {
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
    let engine = state.engine.clone();
    let serving = state.serving_digest();
    let previous = state.catalogue();
    let running = state.plugin.active();
    // Without a tenants file the one keyless tenant stays as it is; its component is checked
    // the same way.
    let fixed = state.roster().tenants.clone();
    let max_bytes = state.max_component_bytes;
    // Start and reload load through the same function: a reload accepts what a start would.
    let loaded = tokio::task::spawn_blocking(move || {
        let files = ComponentFiles {
            max_bytes,
            gone: &gone,
        };
        let compiled = Compiled {
            catalogue: Some(&previous),
            plugins: vec![running],
        };
        let checked = tenants.as_ref().unwrap_or(&fixed);
        config::load_components(checked, path.as_deref(), &engine, &compiled, &files)
            .map(|components| (components, tenants))
    })
    .await
    .map_err(|e| panicked("the reload", e))?;
    let (components, tenants) = loaded.map_err(|error| {
        refused(
            state,
            format!("reload refused; nothing changed, the old one keeps serving: {error}"),
        )
    })?;
    let sha256 = components.server.digest().to_string();
    let (source, size, compiled) = (components.source, components.bytes, components.compiled);
    let plugin = (sha256 != serving).then_some(components.server);
    let catalogue = tenants.is_some().then_some(components.catalogue);
    if let Some(plugin) = plugin {
        state.plugin.replace(plugin.clone());
        *state.serving.lock().unwrap_or_else(|p| p.into_inner()) = sha256.clone();
        // Tenants that run the server's component move with it; pinned ones and those in a
        // rollout stay where they are.
        for tenant in &state.roster().live {
            if tenant.component.is_none() && state.rollouts.get(&tenant.name, None).is_none() {
                tenant.plugin.replace(plugin.clone());
            }
        }
    }
    let mut answer = ReloadAnswer {
        status: "reloaded",
        component: source.clone(),
        sha256: sha256.clone(),
        bytes: size,
        compiled,
        tenants: None,
    };
    if let (Some(tenants), Some(catalogue)) = (tenants, catalogue) {
        let shared = state.clone();
        let built = tokio::task::spawn_blocking(move || {
            let previous = shared.roster();
            let (roster, changes, rebuilt) = Builder {
                plugin: &shared.plugin,
                catalogue: &catalogue,
                rollouts: &shared.rollouts,
                telemetry: &shared.telemetry,
                http: &shared.http,
            }
            .build(tenants, Some(&previous));
            if let Err(error) = shared.rollouts.forget_stale(&roster.tenants) {
                tracing::warn!(%error, "stale rollouts stay in the file (they are ignored)");
            }
            shared.replace_catalogue(catalogue);
            if shared.memory_budget_flag.is_none() {
                if let Some(bytes) = roster.tenants.memory_budget_bytes() {
                    shared.residency.set_budget(bytes);
                }
            }
            let count = roster.live.len();
            let roster = Arc::new(roster);
            shared.replace_roster(roster.clone());
            shared.residency.follow(&roster, &rebuilt);
            (count, changes)
        })
        .await
        .map_err(|e| panicked("the reload", e))?;
        let (count, changes) = built;
        tracing::info!(tenants = count, ?changes, "tenants reloaded");
        answer.tenants = Some(TenantChanges { count, changes });
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
        let never_gone = Arc::new(AtomicBool::new(false));
        if let Err(error) = reload_all(&state, path, never_gone).await {
            tracing::error!(error = %error.message, "SIGHUP reload refused; the old tenants and component keep serving");
        }
    }
}
