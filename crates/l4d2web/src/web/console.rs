//! A server's console: its log as it prints it (every owner), and the RCON
//! console (administrators, on their own servers).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::sse::Event;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::audit::Trail;
use super::error::AppError;
use super::extract::{Admin, Authed, Protected};
use super::page::{parse_id, render, Nav};
use super::routes::Routes;
use super::servers::owned_server;
use super::sse::{self, Feed};
use super::state::AppState;
use crate::accounts::User;
use crate::audit::{self, Kind, Outcome};
use crate::servers::console::ConsoleSubscription;
use crate::servers::rcon::{self, HistoryEntry, MAX_COMMAND_LEN};
use crate::servers::{self, RconTarget};

/// Commands shown in the console history.
const HISTORY_SHOWN: i64 = 50;

pub fn routes() -> Routes {
    Routes::default()
        .get("/servers/{id}/console", log_stream)
        .get("/servers/{id}/rcon", console_page)
        .post("/servers/{id}/rcon", console_send)
}

#[derive(Template)]
#[template(source = "<div class=\"l\">{{ line }}</div>", ext = "html")]
struct LineHtml<'a> {
    line: &'a str,
}

fn line_event(text: &str) -> Event {
    sse::html("line", &LineHtml { line: text })
}

/// One viewer of a console log: the follower's backlog, then new lines.
struct ConsoleFeed {
    sub: ConsoleSubscription,
    backlog: Option<Vec<Arc<str>>>,
    ended: bool,
}

impl Feed for ConsoleFeed {
    async fn next(&mut self) -> Option<Vec<Event>> {
        if let Some(lines) = self.backlog.take() {
            if !lines.is_empty() {
                return Some(lines.iter().map(|l| line_event(l)).collect());
            }
        }
        if self.ended {
            return None;
        }
        Some(vec![match self.sub.rx.recv().await {
            Ok(l) => line_event(&l),
            Err(RecvError::Lagged(n)) => line_event(&format!(
                "[left4me: {n} lines skipped, the viewer was too slow]"
            )),
            Err(RecvError::Closed) => {
                self.ended = true;
                Event::default().event("end").data("console log ended")
            }
        }])
    }
}

/// One line, then the end of the stream.
struct NoticeFeed(Option<String>);

impl Feed for NoticeFeed {
    async fn next(&mut self) -> Option<Vec<Event>> {
        let note = self.0.take()?;
        Some(vec![
            line_event(&note),
            Event::default().event("end").data("console log ended"),
        ])
    }
}

/// SSE: the last 200 console lines, then new ones as the server prints them.
/// Every viewer of a server shares one `l4d2ctl logs --follow` child.
async fn log_stream(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let server = owned_server(&state, &a.user, &id).await?;
    // A server never started has no log yet: say so in words, not with the
    // host tool's error (if its state is unknown, following says why).
    if let Ok(status) = state.host.status(&server.name).await {
        if !status.exists {
            let note = format!(
                "[left4me: server {} has not been started yet; its console appears when it starts]",
                server.name
            );
            return Ok(sse::stream(NoticeFeed(Some(note)), state.shutdown.clone()).into_response());
        }
    }
    let mut sub = state.consoles.subscribe(&server.name, &state.shutdown)?;
    let backlog = std::mem::take(&mut sub.backlog);
    let feed = ConsoleFeed {
        sub,
        backlog: Some(backlog),
        ended: false,
    };
    Ok(sse::stream(feed, state.shutdown.clone()).into_response())
}

/// The RCON target of server `id` if `user` owns it; 404 otherwise.
async fn owned_target(state: &AppState, user: &User, id: &str) -> Result<RconTarget, AppError> {
    servers::find_owned_rcon(&state.pool, user.id, parse_id(id)?)
        .await?
        .ok_or(AppError::NotFound)
}

#[derive(Template)]
#[template(path = "rcon.html")]
struct ConsolePage {
    nav: Nav,
    server_id: i64,
    server_name: String,
    history: Vec<HistoryEntry>,
    max_len: usize,
}

/// Admins only (on their own servers): other users get 403, even owners,
/// who see the panel but cannot send commands.
async fn console_page(
    State(state): State<AppState>,
    Admin(a): Admin,
    Path(id): Path<String>,
) -> Result<Html<String>, AppError> {
    let server = owned_target(&state, &a.user, &id).await?;
    let history = rcon::history(&state.pool, server.id, HISTORY_SHOWN).await?;
    render(&ConsolePage {
        nav: Nav::for_session(&a.session),
        server_id: server.id,
        server_name: server.name,
        history,
        max_len: MAX_COMMAND_LEN,
    })
}

#[derive(Deserialize)]
struct ConsoleForm {
    command: String,
}

async fn console_send(
    State(state): State<AppState>,
    admin: Result<Admin, Response>,
    Path(id): Path<String>,
    trail: Trail,
    Protected { form, .. }: Protected<ConsoleForm>,
) -> Result<Response, AppError> {
    // Refusals are recorded here, after the CSRF check, with what was tried.
    let note = || trail.note(Kind::RconCommand).server_in_path(&id);
    let Admin(a) = match admin {
        Ok(admin) => admin,
        Err(refusal) => {
            let tried = audit::mask_secrets(&form.command);
            let detail = format!("administrators only; tried: {tried}");
            note().refused().detail(detail).save(&state).await;
            return Ok(refusal);
        }
    };
    let server = owned_target(&state, &a.user, &id).await;
    let server = trail
        .refused_on_server(&state, Some(Kind::RconCommand), &id, server)
        .await?;
    let command = rcon::validate_command(&form.command)?;
    let port = server.port().ok_or(AppError::NotFound)?;
    let (ok, output) = match state
        .live
        .rcon(&server.name, port, &server.rcon_password, command)
        .await
    {
        Ok(out) => (true, out),
        Err(e) => (false, format!("error: {e}")),
    };
    tracing::info!(server = %server.name, admin = %a.user.username, ok, "RCON console command");
    let (result, detail) = match ok {
        true => (Outcome::Ok, audit::mask_secrets(command)),
        false => (
            Outcome::Failed,
            format!("{} ({output})", audit::mask_secrets(command)),
        ),
    };
    let note = note()
        .target("server", server.id, &server.name)
        .concerns(server.id, a.user.id);
    note.result(result).detail(detail).save(&state).await;
    rcon::record(&state.pool, server.id, a.user.id, command, ok, output).await?;
    Ok(Redirect::to(&format!("/servers/{}/rcon", server.id)).into_response())
}
