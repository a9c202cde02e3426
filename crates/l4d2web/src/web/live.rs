//! The live panel of a server (SSE) and the admin RCON console.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::{render, Admin, AppError, AppState, Authed, Nav, Protected};
use crate::accounts::User;
use crate::live::{LiveEvent, LiveState, LiveUpdate};

/// Longest console command (an RCON request body holds 4086 bytes).
pub const MAX_COMMAND_LEN: usize = 512;
/// Console output kept per command.
const MAX_OUTPUT_STORED: usize = 64 * 1024;
const HISTORY_SHOWN: i64 = 50;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/servers/{id}/live", get(live_fragment))
        .route("/servers/{id}/live/stream", get(live_stream))
        .route("/servers/{id}/rcon", get(console_page).post(console_send))
}

/// The few server fields the live pages need.
struct LiveServer {
    id: i64,
    name: String,
    port: u16,
    rcon_password: String,
}

/// Server `id` if `user` owns it; 404 otherwise (also for ids that are
/// not numbers). Same rule as the server pages: admins included.
async fn visible_server(state: &AppState, user: &User, id: &str) -> Result<LiveServer, AppError> {
    let id: i64 = id.parse().map_err(|_| AppError::NotFound)?;
    let row: Option<(i64, String, i64, i64, String)> =
        sqlx::query_as("SELECT id, name, owner_id, port, rcon_password FROM servers WHERE id = ?")
            .bind(id)
            .fetch_optional(&state.pool)
            .await?;
    match row {
        Some((id, name, owner, port, rcon_password)) if owner == user.id => Ok(LiveServer {
            id,
            name,
            port: u16::try_from(port).map_err(|_| AppError::NotFound)?,
            rcon_password,
        }),
        _ => Err(AppError::NotFound),
    }
}

#[derive(Template)]
#[template(path = "live.html")]
struct LiveFragment {
    server_id: i64,
    state: LiveState,
    is_admin: bool,
}

#[derive(Template)]
#[template(path = "live_state.html")]
struct LiveStateFragment<'a> {
    state: &'a LiveState,
}

#[derive(Template)]
#[template(path = "live_event.html")]
struct LiveEventFragment<'a> {
    e: &'a LiveEvent,
}

/// The panel with what is known now; it then follows the stream.
async fn live_fragment(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
) -> Result<Html<String>, AppError> {
    let server = visible_server(&state, &a.user, &id).await?;
    render(&LiveFragment {
        server_id: server.id,
        state: state.live.snapshot(server.id),
        is_admin: a.user.is_admin,
    })
}

fn html_event(name: &str, html: Result<String, askama::Error>) -> Event {
    // SSE data lines cannot hold newlines as-is; the extension joins data
    // lines with "\n", so splitting keeps the HTML intact.
    Event::default()
        .event(name)
        .data(html.unwrap_or_else(|e| format!("<p class=\"error\">render failed: {e}</p>")))
}

/// `panel` events carry the re-rendered state, `event` events one new game
/// event. One task per viewer; the stream ends on shutdown.
async fn live_stream(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let server = visible_server(&state, &a.user, &id).await?;
    let (mut rx, guard) = state.live.watch(server.id);
    let live = state.live.clone();
    let shutdown = state.shutdown.clone();
    let server_id = server.id;
    let stream = async_stream::stream! {
        let _guard = guard;
        let snapshot = live.snapshot(server_id);
        yield Ok(html_event("panel", LiveStateFragment { state: &snapshot }.render()));
        loop {
            let update = tokio::select! {
                _ = shutdown.cancelled() => return,
                u = rx.recv() => u,
            };
            let mut panel = false;
            match update {
                Ok(LiveUpdate::Event(e)) => {
                    yield Ok(html_event("event", LiveEventFragment { e: &e }.render()));
                }
                Ok(LiveUpdate::Panel) | Err(RecvError::Lagged(_)) => panel = true,
                Err(RecvError::Closed) => return,
            }
            // Whatever else is already waiting: events go out in order, the
            // panel is rendered once at the end.
            loop {
                match rx.try_recv() {
                    Ok(LiveUpdate::Event(e)) => {
                        yield Ok(html_event("event", LiveEventFragment { e: &e }.render()));
                    }
                    Ok(LiveUpdate::Panel) | Err(TryRecvError::Lagged(_)) => panel = true,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Closed) => return,
                }
            }
            if panel {
                let snapshot = live.snapshot(server_id);
                yield Ok(html_event("panel", LiveStateFragment { state: &snapshot }.render()));
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[derive(sqlx::FromRow)]
struct HistoryRow {
    created_at: String,
    username: Option<String>,
    command: String,
    output: String,
    ok: i64,
}

#[derive(Template)]
#[template(path = "rcon.html")]
struct ConsolePage {
    nav: Nav,
    server_id: i64,
    server_name: String,
    history: Vec<HistoryRow>,
    max_len: usize,
}

/// Admins only (on their own servers): other users get 403, even owners,
/// who see the panel but cannot send commands.
async fn console_page(
    State(state): State<AppState>,
    Admin(a): Admin,
    Path(id): Path<String>,
) -> Result<Html<String>, AppError> {
    let server = visible_server(&state, &a.user, &id).await?;
    let history: Vec<HistoryRow> = sqlx::query_as(
        "SELECT h.created_at, u.username, h.command, h.output, h.ok FROM console_history h
         LEFT JOIN users u ON u.id = h.user_id WHERE h.server_id = ? ORDER BY h.id DESC LIMIT ?",
    )
    .bind(server.id)
    .bind(HISTORY_SHOWN)
    .fetch_all(&state.pool)
    .await?;
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

/// Checks a console command: one line, printable, not too long.
pub fn validate_command(command: &str) -> Result<&str, String> {
    let command = command.trim();
    if command.is_empty() {
        return Err("enter a command".into());
    }
    if command.len() > MAX_COMMAND_LEN {
        return Err(format!(
            "the command is {} bytes; the limit is {MAX_COMMAND_LEN}",
            command.len()
        ));
    }
    if command.chars().any(char::is_control) {
        return Err("the command must be one line without control characters".into());
    }
    Ok(command)
}

async fn console_send(
    State(state): State<AppState>,
    Admin(a): Admin,
    Path(id): Path<String>,
    Protected { form, .. }: Protected<ConsoleForm>,
) -> Result<Response, AppError> {
    let server = visible_server(&state, &a.user, &id).await?;
    let command = validate_command(&form.command).map_err(AppError::BadRequest)?;
    let (ok, mut output) = match state
        .live
        .rcon(&server.name, server.port, &server.rcon_password, command)
        .await
    {
        Ok(out) => (true, out),
        Err(e) => (false, format!("error: {e}")),
    };
    if output.len() > MAX_OUTPUT_STORED {
        let mut cut = MAX_OUTPUT_STORED;
        while !output.is_char_boundary(cut) {
            cut -= 1;
        }
        output.truncate(cut);
        output.push_str("\n[output truncated]");
    }
    tracing::info!(server = %server.name, admin = %a.user.username, ok, "RCON console command");
    sqlx::query(
        "INSERT INTO console_history (server_id, user_id, command, output, ok) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(server.id)
    .bind(a.user.id)
    .bind(command)
    .bind(&output)
    .bind(ok)
    .execute(&state.pool)
    .await?;
    Ok(Redirect::to(&format!("/servers/{}/rcon", server.id)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_commands_are_one_printable_line() {
        assert_eq!(validate_command("  status ").unwrap(), "status");
        assert!(validate_command("").is_err());
        assert!(validate_command("say a\nquit").is_err());
        assert!(validate_command("say \u{7}").is_err());
        assert!(validate_command(&"x".repeat(MAX_COMMAND_LEN + 1)).is_err());
        assert!(validate_command(&"x".repeat(MAX_COMMAND_LEN)).is_ok());
    }
}
