//! The extractor of every server route: the visitor, the server named by
//! the path's `{id}`, and their role on it, checked against the right the
//! route declares (see `routes`). A refused change is in the audit log.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::Method;
use axum::response::{IntoResponse, Response};

use super::audit::Trail;
use super::error::AppError;
use super::extract::Authed;
use super::page::parse_id;
use super::state::AppState;
use crate::accounts::User;
use crate::audit::Kind;
use crate::servers::access::{self, Right, ServerAccess};
use crate::servers::ServerRow;

/// Refusals anyone can repeat are noted once per address and kind in this
/// many seconds.
const REFUSAL_WINDOW_SECS: u64 = 60;

/// A logged-in visitor on the server named by the path's `{id}`, with a
/// role that has the right the route declared (see `routes`): 404 without
/// any role there, 403 with one too low.
pub struct OnServer {
    pub authed: Authed,
    pub access: ServerAccess,
}

impl OnServer {
    pub fn server(&self) -> &ServerRow {
        &self.access.server
    }
    pub fn user(&self) -> &User {
        &self.authed.user
    }
}

impl FromRequestParts<AppState> for OnServer {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let authed = Authed::from_request_parts(parts, state).await?;
        let right = parts.extensions.get::<Right>().copied().ok_or_else(|| {
            AppError::internal(anyhow::anyhow!(
                "{} is not declared as a server route",
                parts.uri.path()
            ))
            .into_response()
        })?;
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::NotFound.into_response())?;
        let id = params
            .get("id")
            .ok_or(AppError::NotFound)
            .and_then(|id| parse_id(id))
            .map_err(IntoResponse::into_response)?;
        let Some(access) = access::access(&state.pool, &authed.user, id)
            .await
            .map_err(|e| AppError::from(e).into_response())?
        else {
            note_refusal(parts, state, None, "no role on this server").await;
            return Err(AppError::NotFound.into_response());
        };
        if !access.role.allows(right) {
            let why = format!(
                "your role on server {} ({}) does not allow this",
                access.server.name,
                access.role.as_str()
            );
            note_refusal(parts, state, Some(&access.server), &why).await;
            return Err(AppError::NoRight(why).into_response());
        }
        Ok(OnServer { authed, access })
    }
}

/// Notes a refused change (a POST) of the kind its path names: what was
/// tried on which server number; the server's owner sees it when the
/// visitor had a role there (`server` is Some), otherwise administrators.
async fn note_refusal(parts: &mut Parts, state: &AppState, server: Option<&ServerRow>, why: &str) {
    if parts.method != Method::POST {
        return;
    }
    let path = parts.uri.path().to_string();
    let last = path.rsplit('/').next().unwrap_or("");
    let kind = match last {
        "rcon" | "exec" => Some(Kind::RconCommand),
        "kick" => Some(Kind::PlayerKicked),
        "ban" => Some(Kind::PlayerBanned),
        "unban" => Some(Kind::PlayerUnbanned),
        "admins" => Some(Kind::PlayerAdminSet),
        "unadmin" => Some(Kind::PlayerAdminRemoved),
        "blueprint" => Some(Kind::ServerBlueprintSwitched),
        "shares" | "revoke" => Some(if last == "shares" {
            Kind::ServerShared
        } else {
            Kind::ServerUnshared
        }),
        verb => Kind::server_action(verb),
    };
    let (Some(kind), Ok(trail)) = (kind, Trail::from_request_parts(parts, state).await) else {
        return;
    };
    let id = path.split('/').nth(2).unwrap_or("");
    let note = trail.note(kind).refused().detail(why);
    let note = match server {
        Some(s) => note.server(s),
        None => note.server_in_path(id),
    };
    note.save_once_per(state, REFUSAL_WINDOW_SECS).await;
}
