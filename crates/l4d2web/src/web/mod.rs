//! The HTTP layer: routes, handlers by area, and what they share (state,
//! the error type, extractors, the SSE loop, page helpers). Handlers call
//! the domain and `tasks`; they hold no SQL.

mod account;
mod admin;
mod alerts;
mod api;
mod assets;
mod audit;
mod blueprints;
mod console;
mod error;
mod error_nav;
mod extract;
mod files;
mod game;
mod jobs;
mod live;
mod login;
mod metrics;
mod nav;
mod on_server;
mod overlays;
mod page;
mod players;
mod routes;
mod schedules;
mod servers;
mod sparkline;
mod sse;
mod state;
mod tokens;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;

pub use error::AppError;
pub use extract::{MAX_BLUEPRINT_BODY, MAX_BODY, MAX_OVERLAY_BODY};
pub use routes::RouteInfo;
pub use state::AppState;

fn all_routes() -> routes::Routes {
    routes::Routes::default()
        .merge(assets::routes())
        .merge(login::routes())
        .merge(account::routes())
        .merge(jobs::routes())
        .merge(admin::routes())
        .merge(servers::routes())
        .merge(schedules::routes())
        .merge(players::routes())
        .merge(blueprints::routes())
        .merge(game::routes())
        .merge(console::routes())
        .merge(live::routes())
        .merge(overlays::routes())
        .merge(files::routes())
        .merge(alerts::routes())
        .merge(audit::routes())
        .merge(metrics::routes())
        .merge(tokens::routes())
        .merge(api::routes())
}

/// Every route of the app, by method and path (for tests that must cover
/// each one).
pub fn route_table() -> Vec<RouteInfo> {
    all_routes().into_parts().1
}

pub fn router(state: AppState) -> Router {
    let (router, _) = all_routes().into_parts();
    router
        .fallback(assets::not_found)
        .layer(middleware::from_fn(api::json_errors))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            account::enrollment_gate,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            error_nav::with_navigation,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            sse::count_viewers,
        ))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// The separate metrics listener's app: `/metrics` without a token (its
/// bind address is its protection), 404 for everything else.
pub fn metrics_router(state: AppState) -> Router {
    metrics::listener_router(state)
}

/// Content-Security-Policy without inline script; framing forbidden.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https://avatars.steamstatic.com https://avatars.akamai.steamstatic.com https://avatars.cloudflare.steamstatic.com https://steamcdn-a.akamaihd.net; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}
