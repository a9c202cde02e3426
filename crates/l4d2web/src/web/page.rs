//! What every page shares: its navigation (consuming the flash message),
//! rendering, and ids taken from paths.

use askama::Template;
use axum::response::Html;

use super::error::AppError;
pub use super::nav::Nav;
use super::state::AppState;
use crate::auth::{self, Session};

/// The navigation of a full page; shows the session's flash message once.
pub async fn nav(state: &AppState, session: &Session) -> Result<Nav, AppError> {
    if session.flash.is_some() {
        auth::clear_flash(&state.pool, &session.id).await?;
    }
    Ok(Nav::for_session(session))
}

/// Leaves `message` for the next page the session shows.
pub async fn flash(state: &AppState, session: &Session, message: &str) -> Result<(), AppError> {
    Ok(auth::set_flash(&state.pool, &session.id, message).await?)
}

pub fn render<T: Template>(t: &T) -> Result<Html<String>, AppError> {
    Ok(Html(t.render()?))
}

/// Ids in paths: anything that is not a number names nothing (404).
pub fn parse_id(id: &str) -> Result<i64, AppError> {
    id.parse().map_err(|_| AppError::NotFound)
}
