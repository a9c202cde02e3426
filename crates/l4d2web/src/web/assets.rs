//! Static assets (embedded: no CDN), the health check, and the front door.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;

use super::error::AppError;
use super::extract::MaybeSession;
use super::routes::Routes;
use super::state::AppState;
use crate::db;

static HTMX_JS: &str = include_str!("../../assets/vendor/htmx-2.0.11.min.js");
static SSE_JS: &str = include_str!("../../assets/vendor/htmx-ext-sse-2.2.4.js");
static APP_CSS: &str = include_str!("../../assets/app.css");
static APP_JS: &str = include_str!("../../assets/app.js");
static AVATAR_SVG: &str = include_str!("../../assets/avatar.svg");

pub fn routes() -> Routes {
    Routes::default()
        .get("/", index)
        .get("/health", health)
        .get("/assets/{name}", asset)
}

async fn index(MaybeSession(s): MaybeSession) -> Redirect {
    if s.is_some_and(|s| s.user.is_some()) {
        Redirect::to("/servers")
    } else {
        Redirect::to("/login")
    }
}

pub async fn not_found() -> AppError {
    AppError::NotFound
}

/// Monitoring endpoint: 200 when the database answers, 503 otherwise.
async fn health(State(state): State<AppState>) -> Response {
    match db::ping(&state.pool).await {
        Ok(()) => Json(serde_json::json!({"status": "ok", "database": "ok"})).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"status": "error", "database": "unavailable"})),
            )
                .into_response()
        }
    }
}

async fn asset(Path(name): Path<String>) -> Result<Response, AppError> {
    let (body, ctype) = match name.as_str() {
        "htmx.min.js" => (HTMX_JS, "text/javascript; charset=utf-8"),
        "sse.js" => (SSE_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "avatar.svg" => (AVATAR_SVG, "image/svg+xml"),
        _ => return Err(AppError::NotFound),
    };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(ctype)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response())
}
