//! Game events from the UDP log listener and from the server's console:
//! attributed lines become panel events (once, whichever way they came),
//! and the listener always knows every server's secret.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Local, NaiveDate};
use source_proto::hllog::{LogEvent, LogTime, PlayerTag};
use source_proto::listener::{LogListener, ServerLogEvent};
use sqlx::SqlitePool;
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

use super::paths::{Via, PAIR_WINDOW};
use super::state::{Board, LiveEvent, LiveUpdate};
use crate::servers;

/// Recent events kept per server for newly opened pages.
const RECENT_EVENTS: usize = 50;
/// How often log secrets are re-read from the database.
const SECRET_SYNC_INTERVAL: Duration = Duration::from_secs(5);

/// Feeds one attributed log event into its server's state and tells the
/// server's viewers, unless the other path already brought it.
pub(super) fn ingest(board: &Board, ev: &ServerLogEvent, via: Via) {
    let (fresh, health_changed) = board.admit(ev.server_key, &ev.line, via);
    if health_changed {
        board.publish(ev.server_key, LiveUpdate::Panel);
    }
    if !fresh {
        return;
    }
    let Some(live_event) = to_live_event(ev) else {
        return;
    };
    let panel_changed = board.update(ev.server_key, |state| {
        let mut changed = false;
        if let LogEvent::MapStarted { map } | LogEvent::MapLoading { map } = &ev.event {
            if state.map.as_deref() != Some(map.as_str()) {
                state.map = Some(map.clone());
                changed = true;
            }
        }
        state.events.push_front(live_event.clone());
        state.events.truncate(RECENT_EVENTS);
        state.updated_at = Some(crate::db::now_text());
        changed
    });
    // A human arriving or leaving refreshes this server's player count
    // soon; bots come and go all the time in L4D2 (infected spawn and die)
    // and refresh nobody.
    if let LogEvent::Connected { player, .. }
    | LogEvent::Disconnected { player, .. }
    | LogEvent::Entered { player } = &ev.event
    {
        if !is_bot(player) {
            board.poll_soon(ev.server_key);
        }
    }
    board.publish(ev.server_key, LiveUpdate::Event(Arc::new(live_event)));
    if panel_changed {
        board.publish(ev.server_key, LiveUpdate::Panel);
    }
}

/// Turns every attributed log line into panel state and events.
pub(super) async fn pump(
    board: Arc<Board>,
    mut events: broadcast::Receiver<ServerLogEvent>,
    shutdown: CancellationToken,
) {
    loop {
        let ev = tokio::select! {
            _ = shutdown.cancelled() => return,
            ev = events.recv() => ev,
        };
        match ev {
            Ok(ev) => ingest(&board, &ev, Via::Udp),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(skipped = n, "live panel fell behind the log listener")
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// One line of server `id`'s console: with `log on` the engine echoes each
/// log line there as `L MM/DD/YYYY - HH:MM:SS: …`; everything else the
/// console prints is ignored. A follower starts by replaying the last lines
/// of the log, so lines stamped more than the pairing window ago are old
/// news, not events (the game and the panel share the host's clock).
pub(super) fn console_line(board: &Board, id: i64, line: &str) {
    let line = line.trim_end();
    if !line.starts_with("L ") {
        return;
    }
    let Ok((time, event)) = source_proto::hllog::parse_line_with_time(line) else {
        return;
    };
    if !is_current(&time, Local::now().naive_local()) {
        return;
    }
    let ev = ServerLogEvent {
        server_key: id,
        time,
        event,
        line: line.to_string(),
    };
    ingest(board, &ev, Via::Console);
}

/// Whether a line stamped `time` (the server's local time) was printed
/// within the pairing window of `now`.
fn is_current(time: &LogTime, now: chrono::NaiveDateTime) -> bool {
    let Some(stamp) = NaiveDate::from_ymd_opt(
        i32::from(time.year),
        u32::from(time.month),
        u32::from(time.day),
    )
    .and_then(|d| {
        d.and_hms_opt(
            u32::from(time.hour),
            u32::from(time.minute),
            u32::from(time.second.min(59)),
        )
    }) else {
        return false;
    };
    let window = chrono::Duration::from_std(PAIR_WINDOW).unwrap_or(chrono::Duration::seconds(10));
    let age = now.signed_duration_since(stamp);
    age <= window && age >= -window
}

/// Keeps the listener's secret → server map equal to the `servers` table:
/// every few seconds, and at once when `resync` is notified.
pub(super) async fn sync_secrets(
    pool: SqlitePool,
    listener: LogListener,
    resync: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut known: HashMap<String, i64> = HashMap::new();
    let mut tick = tokio::time::interval(SECRET_SYNC_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
            _ = resync.notified() => {}
        }
        let rows = match servers::log_secrets(&pool).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read log secrets");
                continue;
            }
        };
        let wanted: HashMap<String, i64> = rows.into_iter().map(|(id, s)| (s, id)).collect();
        for (secret, id) in &known {
            if wanted.get(secret) != Some(id) {
                listener.unregister(secret);
            }
        }
        for (secret, id) in &wanted {
            if known.get(secret) != Some(id) {
                if let Err(e) = listener.register(secret.clone(), *id) {
                    tracing::warn!(server = id, error = %e, "cannot register a log secret");
                }
            }
        }
        known = wanted;
    }
}

/// The engine tags bots' Steam id as `BOT`.
fn is_bot(p: &PlayerTag) -> bool {
    p.steam_id.eq_ignore_ascii_case("BOT")
}

fn who(p: &PlayerTag) -> String {
    if p.steam_id.starts_with("STEAM_") || p.steam_id.starts_with("[U:") {
        format!("{} ({})", p.name, p.steam_id)
    } else {
        p.name.clone()
    }
}

/// The panel's view of a log event; None for lines the panel ignores.
fn to_live_event(ev: &ServerLogEvent) -> Option<LiveEvent> {
    let (kind, text) = match &ev.event {
        LogEvent::Connected { player, .. } => ("connect", format!("{} connected", who(player))),
        LogEvent::Entered { player } => ("connect", format!("{} entered the game", player.name)),
        LogEvent::Disconnected { player, reason } => (
            "disconnect",
            if reason.is_empty() {
                format!("{} disconnected", who(player))
            } else {
                format!("{} disconnected ({reason})", who(player))
            },
        ),
        LogEvent::TeamChange { player, team } => {
            ("team", format!("{} joined team {team}", player.name))
        }
        LogEvent::Say {
            player,
            team_only,
            text,
        } => (
            "chat",
            format!(
                "{}{}: {text}",
                player.name,
                if *team_only { " (team)" } else { "" }
            ),
        ),
        LogEvent::MapLoading { map } => ("map", format!("loading map {map}")),
        LogEvent::MapStarted { map } => ("map", format!("map {map} started")),
        LogEvent::Other(_) => return None,
    };
    Some(LiveEvent {
        time: format!(
            "{:02}:{:02}:{:02}",
            ev.time.hour, ev.time.minute, ev.time.second
        ),
        kind,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(server_key: i64, line: &str) -> ServerLogEvent {
        let (time, event) = source_proto::hllog::parse_line_with_time(line).unwrap();
        ServerLogEvent {
            server_key,
            time,
            event,
            line: line.to_string(),
        }
    }

    #[test]
    fn humans_arriving_or_leaving_ask_their_own_server_for_a_poll_and_bots_ask_nobody() {
        let board = Board::new();
        let stamp = "L 12/01/2026 - 12:00:00:";
        for line in [
            format!("{stamp} \"Boomer<17><BOT><Infected>\" connected, address \"none\""),
            format!("{stamp} \"Boomer<17><BOT><Infected>\" disconnected (reason \"Kicked by Console : death anim finished\")"),
            format!("{stamp} \"Coach<3><BOT><Survivor>\" entered the game"),
        ] {
            ingest(&board, &event(1, &line), Via::Udp);
        }
        assert!(!board.wants_early_poll(1), "bot churn wakes nobody");
        assert_eq!(board.snapshot(1).events.len(), 3, "but shows as events");
        ingest(
            &board,
            &event(
                2,
                &format!("{stamp} \"Ellis<5><STEAM_1:0:12345><>\" connected, address \"192.0.2.7:27005\""),
            ),
            Via::Udp,
        );
        assert!(board.wants_early_poll(2), "a human refreshes their server");
        assert!(!board.wants_early_poll(1), "and only theirs");
        board.polled(2);
        assert!(!board.wants_early_poll(2));
    }

    #[test]
    fn console_lines_are_events_only_when_they_are_log_lines_of_now() {
        let board = Board::new();
        let now = Local::now().naive_local();
        let stamp = |t: chrono::NaiveDateTime| t.format("L %m/%d/%Y - %H:%M:%S:").to_string();
        let say = |t| {
            format!(
                "{} \"Ellis<5><STEAM_1:0:1><Survivor>\" say \"hi\"",
                stamp(t)
            )
        };
        console_line(&board, 1, "Server is hibernating");
        console_line(&board, 1, "L garbage");
        console_line(&board, 1, &say(now - chrono::Duration::seconds(60)));
        assert!(
            board.snapshot(1).events.is_empty(),
            "not a log line, or replayed backlog"
        );
        console_line(&board, 1, &format!("{}\r", say(now)));
        let events = board.snapshot(1).events;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, "chat");
        assert_eq!(events[0].text, "Ellis: hi");
        // The same line over UDP is its twin, not a second event.
        ingest(&board, &event(1, &say(now)), Via::Udp);
        assert_eq!(board.snapshot(1).events.len(), 1);
        assert_eq!(
            board.path_counts(1),
            super::super::PathCounts {
                udp_lines: 1,
                console_lines: 1
            }
        );
    }
}
