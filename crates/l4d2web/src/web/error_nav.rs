//! Error pages with the visitor's navigation bar.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::error::{error_page, ErrorPageInfo};
use super::extract::session_token;
use super::nav::Nav;
use super::state::AppState;

/// Middleware: an error page shown to a logged-in visitor carries the
/// navigation bar (errors are rendered without the request, so only here
/// is the visitor known). Costs a session lookup on error responses only.
pub async fn with_navigation(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let token = session_token(req.headers());
    let res = next.run(req).await;
    let (Some(info), Some(token)) = (res.extensions().get::<ErrorPageInfo>(), token) else {
        return res;
    };
    match crate::auth::load_session(&state.pool, &state.config.secret_key, &token).await {
        Ok(Some(session)) if session.user.is_some() => {
            let mut nav = Nav::for_session(&session);
            // A flash belongs to the page it was set for.
            nav.flash = None;
            error_page(info.status, &info.message, nav)
        }
        _ => res,
    }
}
