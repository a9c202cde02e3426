//! Overlay pages: list, create, edit, build, file browser.

use axum::Router;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}
