//! The live panel of a server: what is known now, then its stream.

use askama::Template;
use axum::extract::State;
use axum::response::sse::Event;
use axum::response::{Html, IntoResponse, Response};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::error::AppError;
use super::on_server::OnServer;
use super::page::render;
use super::routes::Routes;
use super::sse::{self, Feed};
use super::state::AppState;
use crate::live::{LiveEvent, LiveHub, LiveState, LiveSubscription, LiveUpdate};
use crate::servers::access::Right;

pub fn routes() -> Routes {
    Routes::default()
        .server_get("/servers/{id}/live", Right::View, live_fragment)
        .server_get("/servers/{id}/live/stream", Right::View, live_stream)
}

#[derive(Template)]
#[template(path = "live.html")]
struct LiveFragment {
    server_id: i64,
    state: LiveState,
    /// May use the RCON console there.
    rcon: bool,
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
    on: OnServer,
) -> Result<Html<String>, AppError> {
    let id = on.server().id;
    render(&LiveFragment {
        server_id: id,
        state: state.live.snapshot(id),
        rcon: on.access.role.allows(Right::Rcon),
    })
}

/// One viewer of a server's live panel.
struct LiveFeed {
    live: LiveHub,
    server_id: i64,
    sub: LiveSubscription,
    started: bool,
}

impl LiveFeed {
    fn panel(&self) -> Event {
        let snapshot = self.live.snapshot(self.server_id);
        sse::html("panel", &LiveStateFragment { state: &snapshot })
    }
}

impl Feed for LiveFeed {
    async fn next(&mut self) -> Option<Vec<Event>> {
        if !self.started {
            self.started = true;
            return Some(vec![self.panel()]);
        }
        let mut events = Vec::new();
        let mut panel = false;
        match self.sub.rx.recv().await {
            Ok(LiveUpdate::Event(e)) => {
                events.push(sse::html("event", &LiveEventFragment { e: &e }))
            }
            Ok(LiveUpdate::Panel) | Err(RecvError::Lagged(_)) => panel = true,
            Err(RecvError::Closed) => return None,
        }
        // Whatever else is already waiting: events go out in order, the
        // panel is rendered once at the end.
        loop {
            match self.sub.rx.try_recv() {
                Ok(LiveUpdate::Event(e)) => {
                    events.push(sse::html("event", &LiveEventFragment { e: &e }))
                }
                Ok(LiveUpdate::Panel) | Err(TryRecvError::Lagged(_)) => panel = true,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => return None,
            }
        }
        if panel {
            events.push(self.panel());
        }
        Some(events)
    }
}

/// `panel` events carry the re-rendered state, `event` events one new game
/// event. One task per viewer; the stream ends on shutdown.
async fn live_stream(State(state): State<AppState>, on: OnServer) -> Result<Response, AppError> {
    let server = on.server();
    let feed = LiveFeed {
        sub: state.live.watch(server.id),
        live: state.live.clone(),
        server_id: server.id,
        started: false,
    };
    Ok(sse::stream(feed, state.shutdown.clone()).into_response())
}
