//! Players on the server page: kick, ban, unban and the list of bans (for
//! whoever may use RCON on the server), and SourceMod admins (for its
//! managers). Bans and admins are kept per server and written at every
//! start; a kick, ban or unban also goes to a running server at once.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;

use super::audit::{Note, Trail};
use super::error::AppError;
use super::extract::Protected;
use super::on_server::OnServer;
use super::page::{flash, stamp, Stamp};
use super::routes::Routes;
use super::state::AppState;
use crate::accounts::User;
use crate::audit::{Kind, Outcome};
use crate::servers::access::{Right, Role, ServerAccess};
use crate::servers::blueprints as bp;
use crate::servers::players::{self, AdminRow, BanLength, BanRow};
use crate::servers::{self, RconTarget};

pub fn routes() -> Routes {
    Routes::default()
        .server_post("/servers/{id}/players/kick", Right::Rcon, kick)
        .server_post("/servers/{id}/players/ban", Right::Rcon, ban)
        .server_post("/servers/{id}/players/unban", Right::Rcon, unban)
        .server_post("/servers/{id}/players/admins", Right::Manage, set_admin)
        .server_post(
            "/servers/{id}/players/admins/unadmin",
            Right::Manage,
            remove_admin,
        )
}

/// The players section of the server page.
pub struct PlayersBlock {
    /// Connected humans (name, Steam id) the last poll saw, to pick from.
    pub connected: Vec<(String, String)>,
    pub bans: Vec<BanItem>,
    /// For those who may manage the server.
    pub admins: Option<AdminsBlock>,
}

pub struct BanItem {
    pub ban: BanRow,
    pub until: String,
    pub since: Stamp,
}

pub struct AdminsBlock {
    pub items: Vec<AdminRow>,
    /// Whether any overlay of the server's stack carries SourceMod.
    pub sourcemod: bool,
}

impl PlayersBlock {
    pub async fn load(
        state: &AppState,
        server_id: i64,
        blueprint_id: i64,
        manage: bool,
    ) -> Result<PlayersBlock, AppError> {
        let now = Utc::now().timestamp();
        let bans = players::bans(&state.pool, server_id, now)
            .await?
            .into_iter()
            .map(|ban| BanItem {
                until: match ban.minutes_left(now) {
                    None => "permanent".into(),
                    Some(m) => format!("{} left", left(m)),
                },
                since: stamp(&ban.created_at),
                ban,
            })
            .collect();
        let admins = if manage {
            let stack: Vec<i64> = bp::stack(&state.pool, blueprint_id)
                .await?
                .iter()
                .map(|l| l.overlay_id)
                .collect();
            Some(AdminsBlock {
                items: players::admins(&state.pool, server_id).await?,
                sourcemod: players::stack_has_sourcemod(&state.config.root, &stack),
            })
        } else {
            None
        };
        let connected = state
            .live
            .snapshot(server_id)
            .players
            .into_iter()
            .filter(|p| !p.is_bot && players::steam_id(&p.steam_id).is_ok())
            .map(|p| (p.in_game_name, p.steam_id))
            .collect();
        Ok(PlayersBlock {
            connected,
            bans,
            admins,
        })
    }
}

/// `1 d 2 h`, `3 h 5 min`, `12 min`.
fn left(minutes: u32) -> String {
    let (d, h, m) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (d, h) {
        (0, 0) => format!("{m} min"),
        (0, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

/// Runs a command on the server if it is running: Ok(answer), or why not.
async fn send(state: &AppState, server: &RconTarget, command: &str) -> Result<String, String> {
    let port = server.port().ok_or("the server has no valid port")?;
    state
        .live
        .rcon(&server.name, port, &server.rcon_password, command)
        .await
        .map_err(|e| e.to_string())
}

fn back(on: &OnServer) -> Response {
    Redirect::to(&format!("/servers/{}#players", on.server().id)).into_response()
}

fn as_admin(on: &OnServer) -> &'static str {
    if on.access.role == Role::Admin {
        " (as administrator)"
    } else {
        ""
    }
}
/// Who acts on which server, for the handlers the pages and the API share.
pub(super) struct Actor<'a> {
    pub state: &'a AppState,
    pub access: &'a ServerAccess,
    pub user: &'a User,
    pub trail: &'a Trail,
}

impl Actor<'_> {
    fn note(&self, kind: Kind) -> Note {
        self.trail
            .note(kind)
            .actor(Some(self.user.id), &self.user.username)
            .server(&self.access.server)
    }

    fn as_admin(&self) -> &'static str {
        if self.access.role == Role::Admin {
            " (as administrator)"
        } else {
            ""
        }
    }

    async fn target(&self) -> Result<RconTarget, AppError> {
        let s = &self.access.server;
        servers::find_owned_rcon(&self.state.pool, s.owner_id, s.id)
            .await?
            .ok_or(AppError::NotFound)
    }
}

/// Kicks the connected player with `steam_id`; the message for the user.
pub(super) async fn kick_player(
    a: &Actor<'_>,
    steam_id: &str,
    reason: &str,
) -> Result<String, AppError> {
    let steam_id = players::steam_id(steam_id)?;
    let reason = players::reason(reason, true)?;
    let server = a.target().await?;
    let status = send(a.state, &server, "status").await.map_err(|e| {
        AppError::BadRequest(format!(
            "cannot kick on {}: the server is not reachable ({e}); nothing was sent",
            server.name
        ))
    })?;
    let userid = players::connected_userid(&status, &steam_id).ok_or_else(|| {
        AppError::BadRequest(format!(
            "no player with Steam id {steam_id} is connected to {}; nothing was sent",
            server.name
        ))
    })?;
    let result = send(a.state, &server, &players::kick_command(userid, &reason)).await;
    let note = a
        .note(Kind::PlayerKicked)
        .detail(format!("{steam_id} (“{reason}”){}", a.as_admin()));
    match result {
        Ok(_) => {
            note.save(a.state).await;
            tracing::info!(server = %server.name, %steam_id, "player kicked");
            Ok(format!("Kicked {steam_id}."))
        }
        Err(e) => {
            note.result(Outcome::Failed).save(a.state).await;
            Err(AppError::BadRequest(format!(
                "the kick of {steam_id} did not reach {}: {e}",
                server.name
            )))
        }
    }
}

/// Stores a ban and applies it to the running server.
pub(super) async fn ban_player(
    a: &Actor<'_>,
    steam_id: &str,
    length: BanLength,
    reason: &str,
) -> Result<String, AppError> {
    let steam_id = players::steam_id(steam_id)?;
    let reason = players::reason(reason, false)?;
    let server = a.target().await?;
    let now = Utc::now().timestamp();
    players::ban(
        &a.state.pool,
        server.id,
        a.user.id,
        &steam_id,
        length,
        &reason,
        now,
    )
    .await?;
    let applied = send(a.state, &server, &players::ban_command(&steam_id, length)).await;
    let how = length.describe();
    let (message, now_too) = match &applied {
        Ok(_) => (
            format!("Banned {steam_id} {how}; kicked if they were on."),
            "applied at once",
        ),
        Err(_) => (
            format!("Banned {steam_id} {how}; the server is not running, the ban applies when it starts."),
            "applies at the next start",
        ),
    };
    let reason_text = if reason.is_empty() {
        String::new()
    } else {
        format!(" (“{reason}”)")
    };
    a.note(Kind::PlayerBanned)
        .detail(format!(
            "{steam_id} {how}{reason_text}, {now_too}{}",
            a.as_admin()
        ))
        .save(a.state)
        .await;
    tracing::info!(server = %server.name, %steam_id, %how, "player banned");
    Ok(message)
}

/// Lifts a ban, on the running server too.
pub(super) async fn unban_player(a: &Actor<'_>, steam_id: &str) -> Result<String, AppError> {
    let steam_id = players::steam_id(steam_id)?;
    let server = a.target().await?;
    players::unban(&a.state.pool, server.id, &steam_id, Utc::now().timestamp()).await?;
    // A stopped server has nothing to lift: its next start leaves the ban out.
    let applied = send(a.state, &server, &players::unban_command(&steam_id)).await;
    a.note(Kind::PlayerUnbanned)
        .detail(format!(
            "{steam_id}, {}{}",
            if applied.is_ok() {
                "lifted at once"
            } else {
                "lifted from the next start"
            },
            a.as_admin()
        ))
        .save(a.state)
        .await;
    Ok(format!("Unbanned {steam_id}."))
}

fn actor<'a>(state: &'a AppState, on: &'a OnServer, trail: &'a Trail) -> Actor<'a> {
    Actor {
        state,
        access: &on.access,
        user: on.user(),
        trail,
    }
}

#[derive(Deserialize)]
struct KickForm {
    steam_id: String,
    #[serde(default)]
    reason: String,
}

async fn kick(
    State(state): State<AppState>,
    on: OnServer,
    trail: Trail,
    Protected { form, .. }: Protected<KickForm>,
) -> Result<Response, AppError> {
    let message = kick_player(&actor(&state, &on, &trail), &form.steam_id, &form.reason).await?;
    flash(&state, &on.authed.session, &message).await?;
    Ok(back(&on))
}

#[derive(Deserialize)]
struct BanForm {
    steam_id: String,
    #[serde(default)]
    amount: String,
    unit: String,
    #[serde(default)]
    reason: String,
}

async fn ban(
    State(state): State<AppState>,
    on: OnServer,
    trail: Trail,
    Protected { form, .. }: Protected<BanForm>,
) -> Result<Response, AppError> {
    let length = BanLength::parse(&form.amount, &form.unit)?;
    let message = ban_player(
        &actor(&state, &on, &trail),
        &form.steam_id,
        length,
        &form.reason,
    )
    .await?;
    flash(&state, &on.authed.session, &message).await?;
    Ok(back(&on))
}

#[derive(Deserialize)]
struct SteamIdForm {
    steam_id: String,
}

async fn unban(
    State(state): State<AppState>,
    on: OnServer,
    trail: Trail,
    Protected { form, .. }: Protected<SteamIdForm>,
) -> Result<Response, AppError> {
    let message = unban_player(&actor(&state, &on, &trail), &form.steam_id).await?;
    flash(&state, &on.authed.session, &message).await?;
    Ok(back(&on))
}

#[derive(Deserialize)]
struct AdminForm {
    steam_id: String,
    flags: String,
    #[serde(default)]
    immunity: String,
}

async fn set_admin(
    State(state): State<AppState>,
    on: OnServer,
    trail: Trail,
    Protected { form, .. }: Protected<AdminForm>,
) -> Result<Response, AppError> {
    let steam_id = players::steam_id(&form.steam_id)?;
    let (flags, immunity) = players::admin_access(&form.flags, &form.immunity)?;
    let server = on.server();
    players::set_admin(
        &state.pool,
        server.id,
        on.user().id,
        &steam_id,
        &flags,
        immunity,
    )
    .await?;
    let level = immunity
        .map(|i| format!(", immunity {i}"))
        .unwrap_or_default();
    trail
        .note(Kind::PlayerAdminSet)
        .server(server)
        .detail(format!("{steam_id} flags {flags}{level}{}", as_admin(&on)))
        .save(&state)
        .await;
    flash(
        &state,
        &on.authed.session,
        &format!("{steam_id} is a SourceMod admin with flags {flags}{level}; restart the server to apply."),
    )
    .await?;
    Ok(back(&on))
}

async fn remove_admin(
    State(state): State<AppState>,
    on: OnServer,
    trail: Trail,
    Protected { form, .. }: Protected<SteamIdForm>,
) -> Result<Response, AppError> {
    let steam_id = players::steam_id(&form.steam_id)?;
    let server = on.server();
    players::remove_admin(&state.pool, server.id, &steam_id).await?;
    trail
        .note(Kind::PlayerAdminRemoved)
        .server(server)
        .detail(format!("{steam_id}{}", as_admin(&on)))
        .save(&state)
        .await;
    flash(
        &state,
        &on.authed.session,
        &format!("{steam_id} is no longer an admin; restart the server to apply."),
    )
    .await?;
    Ok(back(&on))
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_left_reads_naturally() {
        assert_eq!(super::left(12), "12 min");
        assert_eq!(super::left(185), "3 h 5 min");
        assert_eq!(super::left(1440 + 120), "1 d 2 h");
    }
}
