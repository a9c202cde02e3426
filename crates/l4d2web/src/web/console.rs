//! A server's console: its log as it prints it (whoever may view the
//! server), and the RCON console (its owner, operators and managers, and
//! administrators).

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::sse::Event;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::audit::Trail;
use super::error::AppError;
use super::extract::Protected;
use super::on_server::OnServer;
use super::page::{render, Nav};
use super::routes::Routes;
use super::sse::{self, Feed};
use super::state::AppState;
use crate::audit::{self, Kind, Outcome};
use crate::live::LiveHub;
use crate::servers::access::{Right, Role};
use crate::servers::console::ConsoleSubscription;
use crate::servers::rcon::{self, HistoryEntry, MAX_COMMAND_LEN};
use crate::servers::{self, RconTarget};

/// Commands shown in the console history.
const HISTORY_SHOWN: i64 = 50;

pub fn routes() -> Routes {
    Routes::default()
        .server_get("/servers/{id}/console", Right::View, log_stream)
        .server_get("/servers/{id}/rcon", Right::Rcon, console_page)
        .server_post("/servers/{id}/rcon", Right::Rcon, console_send)
        .server_post("/servers/{id}/rcon/exec", Right::Rcon, console_exec)
}

#[derive(Template)]
#[template(source = "<div class=\"l\">{{ line }}</div>", ext = "html")]
struct LineHtml<'a> {
    line: &'a str,
}

fn line_event(text: &str) -> Event {
    sse::html("line", &LineHtml { line: text })
}

/// One viewer of a console log: the follower's backlog, then new lines,
/// without the game's lines about the panel's own `status` polls.
struct ConsoleFeed {
    sub: ConsoleSubscription,
    backlog: Option<Vec<Arc<str>>>,
    ended: bool,
    live: LiveHub,
}

impl Feed for ConsoleFeed {
    async fn next(&mut self) -> Option<Vec<Event>> {
        if let Some(lines) = self.backlog.take() {
            let shown: Vec<Event> = lines
                .iter()
                .filter(|l| !self.live.is_own_poll_line(l))
                .map(|l| line_event(l))
                .collect();
            if !shown.is_empty() {
                return Some(shown);
            }
        }
        if self.ended {
            return None;
        }
        loop {
            return Some(vec![match self.sub.rx.recv().await {
                Ok(l) if self.live.is_own_poll_line(&l) => continue,
                Ok(l) => line_event(&l),
                Err(RecvError::Lagged(n)) => line_event(&format!(
                    "[left4me: {n} lines skipped, the viewer was too slow]"
                )),
                Err(RecvError::Closed) => {
                    self.ended = true;
                    Event::default().event("end").data("console log ended")
                }
            }]);
        }
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
async fn log_stream(State(state): State<AppState>, on: OnServer) -> Result<Response, AppError> {
    let server = on.server();
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
    let mut sub = state
        .consoles
        .subscribe(server.id, &server.name, &state.shutdown)?;
    let backlog = std::mem::take(&mut sub.backlog);
    let feed = ConsoleFeed {
        sub,
        backlog: Some(backlog),
        ended: false,
        live: state.live.clone(),
    };
    Ok(sse::stream(feed, state.shutdown.clone()).into_response())
}

/// The RCON target of the server (its access was checked).
async fn target(state: &AppState, on: &OnServer) -> Result<RconTarget, AppError> {
    servers::find_owned_rcon(&state.pool, on.server().owner_id, on.server().id)
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

async fn console_page(
    State(state): State<AppState>,
    on: OnServer,
) -> Result<Html<String>, AppError> {
    let server = target(&state, &on).await?;
    let a = &on.authed;
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
    on: OnServer,
    trail: Trail,
    Protected { form, .. }: Protected<ConsoleForm>,
) -> Result<Response, AppError> {
    let server = target(&state, &on).await?;
    let a = &on.authed;
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
    tracing::info!(server = %server.name, user = %a.user.username, ok, "RCON console command");
    if ok {
        state.consoles.note_reply(&server.name, &output);
    }
    note_rcon(&state, &trail, &on, command, ok, &output).await;
    rcon::record(&state.pool, server.id, a.user.id, command, ok, output).await?;
    Ok(Redirect::to(&format!("/servers/{}/rcon", server.id)).into_response())
}

#[derive(Template)]
#[template(
    source = "<div class=\"l cmd\">&gt; {{ command }}</div>{% for line in output.lines() %}<div class=\"l {% if ok %}reply{% else %}error{% endif %}\">{{ line }}</div>{% endfor %}",
    ext = "html"
)]
struct ReplyHtml<'a> {
    command: &'a str,
    output: &'a str,
    ok: bool,
}

/// The server page's command line (HTMX): runs one command and answers
/// with its lines for the console view; kept in the history like the
/// RCON page's.
async fn console_exec(
    State(state): State<AppState>,
    on: OnServer,
    trail: Trail,
    Protected { form, .. }: Protected<ConsoleForm>,
) -> Result<Html<String>, AppError> {
    let server = target(&state, &on).await?;
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
    tracing::info!(server = %server.name, user = %on.user().username, ok, "RCON command from the server page");
    if ok {
        state.consoles.note_reply(&server.name, &output);
    }
    note_rcon(&state, &trail, &on, command, ok, &output).await;
    rcon::record(
        &state.pool,
        server.id,
        on.user().id,
        command,
        ok,
        output.clone(),
    )
    .await?;
    render(&ReplyHtml {
        command,
        output: &output,
        ok,
    })
}

/// The audit entry of one RCON command (its secrets masked).
async fn note_rcon(
    state: &AppState,
    trail: &Trail,
    on: &OnServer,
    command: &str,
    ok: bool,
    output: &str,
) {
    let admin = if on.access.role == Role::Admin {
        " (as administrator)"
    } else {
        ""
    };
    let (result, detail) = if ok {
        (
            Outcome::Ok,
            format!("{}{admin}", audit::mask_secrets(command)),
        )
    } else {
        (
            Outcome::Failed,
            format!("{}{admin} ({output})", audit::mask_secrets(command)),
        )
    };
    trail
        .note(Kind::RconCommand)
        .server(on.server())
        .result(result)
        .detail(detail)
        .save(state)
        .await;
}
