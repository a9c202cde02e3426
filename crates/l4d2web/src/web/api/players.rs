//! `/api/v1/servers/{id}/bans`, `/unban` and `/kick`: the server page's
//! ban list, ban, unban and kick, for a caller who may use RCON there.

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiServer};
use crate::servers::access::Right;
use crate::servers::players::{self, BanLength, PlayersError};
use crate::web::audit::Trail;
use crate::web::players::{ban_player, kick_player, unban_player, Actor};
use crate::web::state::AppState;

impl From<PlayersError> for ApiError {
    fn from(e: PlayersError) -> Self {
        let field = match &e {
            PlayersError::SteamId(_) | PlayersError::NotBanned(_) | PlayersError::NotAdmin(_) => {
                Some("steam_id")
            }
            PlayersError::Length(_) | PlayersError::Unit(_) | PlayersError::TooLong => {
                Some("minutes")
            }
            PlayersError::NoReason | PlayersError::ReasonTooLong(_) | PlayersError::ReasonChars => {
                Some("reason")
            }
            PlayersError::Flags(_) => Some("flags"),
            PlayersError::Immunity(_) => Some("immunity"),
            PlayersError::TooManyBans(_) | PlayersError::TooManyAdmins(_) => None,
            PlayersError::Db(_) => return ApiError::internal(e),
        };
        ApiError::bad(field, format!("{e}; nothing was changed"))
    }
}

fn may_rcon(on: &ApiServer) -> Result<(), ApiError> {
    on.require(Right::Rcon)
}

fn actor<'a>(state: &'a AppState, on: &'a ApiServer, trail: &'a Trail) -> Actor<'a> {
    Actor {
        state,
        access: &on.access,
        user: &on.caller.user,
        trail,
    }
}

/// One ban of a server.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ban {
    /// `STEAM_1:Y:Z`.
    pub steam_id: String,
    /// Whole minutes left; null for a permanent ban.
    pub minutes_left: Option<u32>,
    pub reason: String,
    pub banned_by: Option<String>,
    pub created_at: String,
}

#[utoipa::path(get, path = "/api/v1/servers/{id}/bans", tag = "players",
    params(("id" = i64, Path, description = "Server id")),
    responses(
        (status = 200, description = "The bans still running", body = [Ban]),
        (status = 401, body = ErrorBody),
        (status = 403, description = "A role that may not use RCON", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn bans(
    State(state): State<AppState>,
    on: ApiServer,
) -> Result<Json<Vec<Ban>>, ApiError> {
    may_rcon(&on)?;
    let now = Utc::now().timestamp();
    let rows = players::bans(&state.pool, on.access.server.id, now).await?;
    Ok(Json(
        rows.into_iter()
            .map(|b| Ban {
                minutes_left: b.minutes_left(now),
                steam_id: b.steam_id,
                reason: b.reason,
                banned_by: b.banned_by,
                created_at: b.created_at,
            })
            .collect(),
    ))
}

/// A ban to add (or change).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BanRequest {
    /// `STEAM_X:Y:Z` or `[U:1:N]`.
    #[schema(example = "STEAM_1:0:12345")]
    pub steam_id: String,
    /// Length in minutes; 0 = permanent.
    pub minutes: u32,
    #[serde(default)]
    pub reason: String,
}

/// What was done.
#[derive(Debug, Serialize, ToSchema)]
pub struct Done {
    pub message: String,
}

#[utoipa::path(post, path = "/api/v1/servers/{id}/bans", tag = "players",
    params(("id" = i64, Path, description = "Server id")),
    request_body = BanRequest,
    responses(
        (status = 200, description = "Stored; applied at once when the server runs (and the player kicked)", body = Done),
        (status = 400, description = "A bad Steam id, length or reason (with the field)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn ban(
    State(state): State<AppState>,
    on: ApiServer,
    trail: Trail,
    ApiJson(body): ApiJson<BanRequest>,
) -> Result<Json<Done>, ApiError> {
    may_rcon(&on)?;
    let length = match body.minutes {
        0 => BanLength::Permanent,
        m => BanLength::parse(&m.to_string(), "minutes")?,
    };
    players::steam_id(&body.steam_id)?;
    players::reason(&body.reason, false)?;
    let message = ban_player(
        &actor(&state, &on, &trail),
        &body.steam_id,
        length,
        &body.reason,
    )
    .await?;
    Ok(Json(Done { message }))
}

/// A Steam id to unban.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnbanRequest {
    pub steam_id: String,
}

#[utoipa::path(post, path = "/api/v1/servers/{id}/unban", tag = "players",
    params(("id" = i64, Path, description = "Server id")),
    request_body = UnbanRequest,
    responses(
        (status = 200, description = "Lifted, on the running server too", body = Done),
        (status = 400, description = "A bad Steam id, or one not banned", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn unban(
    State(state): State<AppState>,
    on: ApiServer,
    trail: Trail,
    ApiJson(body): ApiJson<UnbanRequest>,
) -> Result<Json<Done>, ApiError> {
    may_rcon(&on)?;
    let steam_id = players::steam_id(&body.steam_id)?;
    let now = Utc::now().timestamp();
    if !players::bans(&state.pool, on.access.server.id, now)
        .await?
        .iter()
        .any(|b| b.steam_id == steam_id)
    {
        return Err(PlayersError::NotBanned(steam_id).into());
    }
    let message = unban_player(&actor(&state, &on, &trail), &steam_id).await?;
    Ok(Json(Done { message }))
}

/// A connected player to kick.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KickRequest {
    pub steam_id: String,
    /// Shown to the player; required.
    pub reason: String,
}

#[utoipa::path(post, path = "/api/v1/servers/{id}/kick", tag = "players",
    params(("id" = i64, Path, description = "Server id")),
    request_body = KickRequest,
    responses(
        (status = 200, description = "Kicked", body = Done),
        (status = 400, description = "A bad Steam id or reason, a player not connected, or a server not running", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn kick(
    State(state): State<AppState>,
    on: ApiServer,
    trail: Trail,
    ApiJson(body): ApiJson<KickRequest>,
) -> Result<Json<Done>, ApiError> {
    may_rcon(&on)?;
    players::steam_id(&body.steam_id)?;
    players::reason(&body.reason, true)?;
    let message = kick_player(&actor(&state, &on, &trail), &body.steam_id, &body.reason).await?;
    Ok(Json(Done { message }))
}
