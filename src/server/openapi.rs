//! The API's OpenAPI 3.1 document, served at `GET /openapi.json`. Paths come from the
//! handlers' `#[utoipa::path]` annotations and the router is built from the same annotations
//! (`super::router`), so a route cannot be served without being documented; schemas come from
//! the request and answer types the handlers parse and write.

use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};

use crate::failure::FailureBody;

/// The document's header; `super::router` adds the paths.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "vector-service",
        description = "A sandboxed vector service plugin: the four operations of the `vector_service` Python module (`Retriever.search`, `ContextBuilder.build`, `PatchLogger.track_contributors`, `EmbeddingBackfill.run`) over HTTP, per tenant. Every error is `{\"error\": {\"kind\", \"message\"}}`; 429 and 503 carry `Retry-After`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&BearerKeys),
    tags(
        (name = "operations", description = "The module's four operations."),
        (name = "records", description = "Writing the records the operations search."),
        (name = "operator", description = "Health, readiness, metrics, this document, reload."),
    )
)]
pub struct ApiDoc;

/// The two keys a request may carry (`Authorization: Bearer <key>`).
struct BearerKeys;

impl Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            let mut scheme = Http::new(HttpAuthScheme::Bearer);
            scheme.description = Some(description.to_string());
            SecurityScheme::Http(scheme)
        };
        components.add_security_scheme(
            "tenant_key",
            bearer(
                "A tenant's API key (its sha256 is in the tenants file). A server started without \
                 a tenants file takes no key and answers only requests from this machine.",
            ),
        );
        components.add_security_scheme(
            "admin_key",
            bearer("The admin key (`admin_key_sha256` in the tenants file)."),
        );
    }
}

/// The errors an operation may answer, beside its own success.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum CallFailures {
    /// `bad-request` (the body does not parse or has an unknown field) or `malformed-prompt`
    /// (the component refused the input: a blank query, a bound exceeded).
    #[response(status = 400)]
    BadRequest(FailureBody),
    /// `unauthorized`: no key, or not a tenant's key.
    #[response(status = 401)]
    Unauthorized(FailureBody),
    /// `forbidden-origin` or `forbidden-host`: an unauthenticated request from a web page or
    /// naming another host.
    #[response(status = 403)]
    Forbidden(FailureBody),
    /// `request-timeout`: the body did not arrive in time.
    #[response(status = 408)]
    Timeout(FailureBody),
    /// `too-large` (the body) or `limit-exceeded` (a sandbox limit stopped the call).
    #[response(status = 413)]
    TooLarge(FailureBody),
    /// `unsupported-media-type`.
    #[response(status = 415)]
    MediaType(FailureBody),
    /// `rate-limited`: the tenant's request rate, or the backend's (after its retry).
    #[response(status = 429)]
    RateLimited(FailureBody),
    /// `internal`: a bug, or a component that trapped.
    #[response(status = 500)]
    Internal(FailureBody),
    /// `backend`: the tenant's store or embedder failed.
    #[response(status = 502)]
    Backend(FailureBody),
    /// `overloaded` (every call slot busy), `unavailable` (the tenant's store cannot be
    /// opened), `store-damaged` (a write to a damaged store), `deadline-exceeded`,
    /// `memory-limit`, `host-call-limit`.
    #[response(status = 503)]
    Unavailable(FailureBody),
    /// `storage-full`: a write found the disk under the tenant's store full;
    /// `quota-exceeded`: the write would take the tenant past its storage quota, and nothing
    /// was written (reads go on).
    #[response(status = 507)]
    StorageFull(FailureBody),
}

/// The document, serialised once when the router is built.
#[derive(Clone)]
pub struct Document(pub Bytes);

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operator",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", body = Object, content_type = "application/json"))
)]
pub(super) async fn document(Extension(Document(document)): Extension<Document>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document).into_response()
}
