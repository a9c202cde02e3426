//! The HTTP API, `/api/v1/…`, in JSON: for scripts and tools, with a
//! personal access token (`Authorization: Bearer l4m_…`, see
//! [`crate::auth::pat`]) and never a session cookie, so it takes no CSRF
//! token. A `read` token may only GET; an `operate` token may also act.
//! What a caller may see and do is what the pages allow its user
//! (`servers::access` for servers; blueprints and private overlays their
//! owner's). Every error is JSON (`{"error", "field"?}`), also for unknown
//! paths, wrong methods and bad bodies. The OpenAPI document, generated
//! from these handlers and types, is `GET /api/v1/openapi.json`.

mod catalog;
mod error;
mod extract;
mod game;
mod jobs;
mod players;
mod servers;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;

use super::routes::Routes;
use error::error_response;

pub fn routes() -> Routes {
    Routes::default()
        .api_get("/api/v1/openapi.json", openapi_json)
        .api_get("/api/v1/me", catalog::me)
        .api_get("/api/v1/servers", servers::list)
        .api_get("/api/v1/servers/{id}", servers::detail)
        .api_get("/api/v1/servers/{id}/live", servers::live)
        .api_post("/api/v1/servers/{id}/actions", servers::act)
        .api_get("/api/v1/servers/{id}/bans", players::bans)
        .api_post("/api/v1/servers/{id}/bans", players::ban)
        .api_post("/api/v1/servers/{id}/unban", players::unban)
        .api_post("/api/v1/servers/{id}/kick", players::kick)
        .api_post("/api/v1/servers/{id}/build", game::set_build)
        .api_get("/api/v1/builds", game::list)
        .api_post("/api/v1/update-check", game::check)
        .api_get("/api/v1/blueprints", catalog::blueprints)
        .api_get("/api/v1/blueprints/{id}", catalog::blueprint)
        .api_get("/api/v1/overlays", catalog::overlays)
        .api_get("/api/v1/overlays/{id}", catalog::overlay)
        .api_post("/api/v1/overlays/{id}/build", catalog::build)
        .api_get("/api/v1/jobs", jobs::list)
        .api_get("/api/v1/jobs/{id}", jobs::detail)
        .api_get("/api/v1/jobs/{id}/log", jobs::log)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "left4me API",
        version = "1",
        description = "Servers, blueprints, overlays and jobs of the left4me panel. Authenticate with a personal access token (created on the Tokens page) as `Authorization: Bearer <token>`; session cookies are refused. A `read` token may only GET. Every error is `{\"error\": \"...\", \"field\": \"...\"}`, the field naming the input at fault where there is one."
    ),
    paths(
        openapi_json,
        catalog::me,
        servers::list,
        servers::detail,
        servers::live,
        servers::act,
        players::bans,
        players::ban,
        players::unban,
        players::kick,
        game::set_build,
        game::list,
        game::check,
        catalog::blueprints,
        catalog::blueprint,
        catalog::overlays,
        catalog::overlay,
        catalog::build,
        jobs::list,
        jobs::detail,
        jobs::log,
    ),
    modifiers(&BearerScheme),
    security(("bearer" = [])),
)]
struct ApiDoc;

/// The `bearer` security scheme every operation uses.
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("l4m_<43 characters>")
                    .description(Some("A personal access token from the Tokens page"))
                    .build(),
            ),
        );
    }
}

/// This document (no token needed).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
async fn openapi_json() -> Response {
    match ApiDoc::openapi().to_json() {
        Ok(json) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            json,
        )
            .into_response(),
        Err(e) => error::ApiError::internal(e).into_response(),
    }
}

/// Middleware: under `/api/`, an error answer that is not JSON already (an
/// unknown path, a wrong method, a rejection of axum's own) becomes one,
/// so an API client never gets an HTML page.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let res = next.run(req).await;
    if !api || !(res.status().is_client_error() || res.status().is_server_error()) {
        return res;
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return res;
    }
    let status = res.status();
    let message = match status {
        StatusCode::NOT_FOUND => "not found".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this path".to_string(),
        s => s.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let mut out = error_response(status, message, None);
    if let Some(allow) = res.headers().get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}
