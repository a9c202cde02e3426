//! The poller: every server meant to be running is asked for A2S_INFO
//! (map, player count for the dashboard) and, while someone watches its
//! page, for RCON `status` (names, Steam ids, ping, time), the players
//! enriched with Steam persona names and avatars.
//!
//! Each server keeps its own schedule: every 5 s while watched, every 30 s
//! otherwise, sooner (but never within 5 s of its last poll) when a viewer
//! arrives or a human joins or leaves it. Every RCON `status` also leaves an
//! `rcon from` line in the game's own log, so the panel asks no more often
//! than someone can look. The same moments, over the same connection, it
//! asks for `stats` and keeps the server's FPS in its resource history.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use source_proto::a2s::A2sError;
use source_proto::rcon::RconSession;
use sqlx::SqlitePool;
use steam_api::{PlayerSummary, ProfileCache};
use tokio_util::sync::CancellationToken;

use super::ownership::{self, NotOwned};
use super::state::{Board, LivePlayer, LiveUpdate};
use crate::l4d2ctl::{HostClient, HostError};
use crate::servers::resources::Resources;
use crate::servers::{self, RconTarget};

/// How often a server whose page someone watches is polled, and the
/// shortest time between two polls of one server.
const WATCHED_INTERVAL: Duration = Duration::from_secs(5);
/// How often a server nobody watches is polled (the dashboard's counts).
const UNWATCHED_INTERVAL: Duration = Duration::from_secs(30);
/// Servers due within this much of each other are polled together, so the
/// poller wakes at most about once a second however many servers run.
const BATCH_SLACK: Duration = Duration::from_secs(1);
/// The longest the poller sleeps: a newly started server is first polled
/// within this.
const LONGEST_SLEEP: Duration = Duration::from_secs(5);
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
pub(super) const RCON_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the poller does not send a server its RCON password this time.
#[derive(Debug, thiserror::Error)]
enum RconRefused {
    #[error(transparent)]
    NotOwned(#[from] NotOwned),
    #[error("cannot check who holds port {port}: {error}")]
    Unchecked { port: i64, error: HostError },
    #[error("who holds the port is checked on the next poll")]
    NotYet,
}

/// Why a poll of one server failed (shown on its panel).
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error("not answering queries: {0}")]
    Query(#[from] A2sError),
}

pub(super) struct Poller {
    pub(super) board: Arc<Board>,
    pub(super) pool: SqlitePool,
    pub(super) host: HostClient,
    pub(super) profiles: ProfileCache,
    pub(super) resources: Resources,
}

/// One RCON session per server, with the password it was opened with.
type Sessions = HashMap<i64, (String, RconSession)>;

/// When a server is next due: at once if never polled, else its interval
/// after its last poll (the shortest one when an early poll was asked for).
fn due_at(last: Option<Instant>, watched: bool, early: bool, now: Instant) -> Instant {
    match last {
        None => now,
        Some(last) if watched || early => last + WATCHED_INTERVAL,
        Some(last) => last + UNWATCHED_INTERVAL,
    }
}

impl Poller {
    /// Polls until `shutdown`, each server on its own schedule.
    pub(super) async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut sessions = Sessions::new();
        let mut last_polled = HashMap::new();
        loop {
            let next = match self.poll_due(&mut sessions, &mut last_polled).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(error = %e, "live poll failed");
                    Instant::now() + LONGEST_SLEEP
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(next.into()) => {}
                _ = self.board.repoll.notified() => {
                    // Coalesce bursts (a map change disconnects everyone).
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    fn due(&self, id: i64, last_polled: &HashMap<i64, Instant>, now: Instant) -> Instant {
        due_at(
            last_polled.get(&id).copied(),
            self.board.watched(id),
            self.board.wants_early_poll(id),
            now,
        )
    }

    /// Polls, concurrently, the servers meant to be running that are due;
    /// returns when the next one is.
    async fn poll_due(
        &self,
        sessions: &mut Sessions,
        last_polled: &mut HashMap<i64, Instant>,
    ) -> Result<Instant, sqlx::Error> {
        let mut targets = servers::running_targets(&self.pool).await?;
        sessions.retain(|id, _| targets.iter().any(|t| t.id == *id));
        last_polled.retain(|id, _| targets.iter().any(|t| t.id == *id));
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = targets
            .drain(..)
            .partition(|t| self.due(t.id, last_polled, now) <= now + BATCH_SLACK);
        let next = later
            .iter()
            .map(|t| self.due(t.id, last_polled, now))
            .chain(due.iter().map(|_| now + WATCHED_INTERVAL))
            .min()
            .unwrap_or(now + LONGEST_SLEEP)
            .min(now + LONGEST_SLEEP);
        for t in &due {
            last_polled.insert(t.id, now);
            self.board.polled(t.id);
        }
        let targets = due;
        // RCON (with the password) only goes to ports that belong to their
        // servers: one host query per poll, and only when someone watches.
        let any_watched = targets.iter().any(|t| self.board.watched(t.id));
        let states = if any_watched {
            Some(self.host.list().await)
        } else {
            None
        };
        let mut polls = Vec::new();
        for RconTarget {
            id,
            name,
            port,
            rcon_password,
        } in targets
        {
            let Ok(game_port) = u16::try_from(port) else {
                continue;
            };
            let addr = SocketAddr::from(([127, 0, 0, 1], game_port));
            let rcon_check = self.board.watched(id).then(|| match &states {
                Some(Ok(states)) => {
                    ownership::check(game_port, states.get(&name)).map_err(RconRefused::from)
                }
                Some(Err(e)) => Err(RconRefused::Unchecked {
                    port,
                    error: e.clone(),
                }),
                // Watched only since this poll began.
                None => Err(RconRefused::NotYet),
            });
            // A session per server, replaced when the password changed.
            let mut session = match sessions.remove(&id) {
                Some((pw, s)) if pw == rcon_password => (pw, s),
                _ => {
                    let s = RconSession::new(addr, rcon_password.clone(), RCON_TIMEOUT);
                    (rcon_password, s)
                }
            };
            polls.push(async move {
                let outcome = poll_server(addr, rcon_check, &mut session.1).await;
                (id, outcome, session)
            });
        }
        let results = futures_util::future::join_all(polls).await;
        for (id, outcome, session) in results {
            if let Some(local) = session.1.local_addr() {
                self.board.remember_own_rcon_port(local.port());
            }
            sessions.insert(id, session);
            if let Ok(Polled { fps: Some(fps), .. }) = &outcome {
                self.resources.record_fps(id, Instant::now(), *fps);
            }
            let profiles = match &outcome {
                Ok(Polled {
                    players: Some(players),
                    ..
                }) => {
                    let ids: Vec<u64> = players.iter().filter_map(|p| p.steam_id64).collect();
                    self.profiles.get_many(&ids).await
                }
                _ => HashMap::new(),
            };
            let changed = self.board.update(id, |state| {
                let before = (
                    state.map.clone(),
                    state.player_count,
                    state.players.clone(),
                    state.error.clone(),
                );
                match outcome {
                    Ok(polled) => {
                        state.error = polled.rcon_error;
                        state.map = Some(polled.map);
                        state.hostname = Some(polled.hostname);
                        state.player_count = Some(polled.count);
                        state.humans = Some(polled.humans);
                        state.bots = Some(polled.bots);
                        state.a2s_latency = Some(polled.latency);
                        if let Some(players) = polled.players {
                            state.players = enrich(players, &profiles);
                        }
                    }
                    Err(e) => {
                        state.error = Some(e.to_string());
                        state.player_count = None;
                        state.humans = None;
                        state.bots = None;
                        state.a2s_latency = None;
                        state.players.clear();
                    }
                }
                let after = (
                    state.map.clone(),
                    state.player_count,
                    state.players.clone(),
                    state.error.clone(),
                );
                if before != after {
                    state.updated_at = Some(crate::db::now_text());
                }
                before != after
            });
            if changed {
                self.board.publish(id, LiveUpdate::Panel);
            }
        }
        Ok(next)
    }
}

struct Polled {
    hostname: String,
    map: String,
    count: (u32, u32),
    humans: u32,
    bots: u32,
    /// The A2S_INFO query, challenge included.
    latency: Duration,
    /// From RCON `status`, when watched and it worked.
    players: Option<Vec<source_proto::status::StatusPlayer>>,
    /// From RCON `stats`, asked right after `status`.
    fps: Option<f64>,
    rcon_error: Option<String>,
}

/// A2S always; RCON `status` when watched (`rcon` is Some) and the port's
/// ownership check passed.
async fn poll_server(
    addr: SocketAddr,
    rcon_check: Option<Result<(), RconRefused>>,
    rcon: &mut RconSession,
) -> Result<Polled, PollError> {
    let started = Instant::now();
    let info = source_proto::a2s::query_info(addr, QUERY_TIMEOUT).await?;
    let latency = started.elapsed();
    let mut polled = Polled {
        hostname: info.name,
        map: info.map,
        count: (u32::from(info.players), u32::from(info.max_players)),
        humans: u32::from(info.players.saturating_sub(info.bots)),
        bots: u32::from(info.bots),
        latency,
        players: None,
        fps: None,
        rcon_error: None,
    };
    match rcon_check {
        None => {}
        Some(Err(refused)) => polled.rcon_error = Some(format!("RCON: {refused}")),
        Some(Ok(())) => match rcon.exec("status").await {
            Ok(text) => {
                match source_proto::status::parse_status(&text) {
                    Ok(status) => polled.players = Some(status.players),
                    Err(e) => polled.rcon_error = Some(format!("unreadable RCON status: {e}")),
                }
                polled.fps = server_fps(addr, rcon).await;
            }
            Err(e) => polled.rcon_error = Some(format!("RCON: {e}")),
        },
    }
    Ok(polled)
}

/// The game's frame rate from `stats`. A server that answers `status` but
/// not `stats` (or garbles it) only lacks the FPS graph, so failures are
/// logged, not shown.
async fn server_fps(addr: SocketAddr, rcon: &mut RconSession) -> Option<f64> {
    match rcon.exec("stats").await {
        Ok(text) => match source_proto::stats::parse_stats(&text) {
            Ok(stats) => Some(stats.fps),
            Err(e) => {
                tracing::debug!(%addr, error = %e, "unreadable RCON stats");
                None
            }
        },
        Err(e) => {
            tracing::debug!(%addr, error = %e, "RCON stats failed");
            None
        }
    }
}

fn enrich(
    players: Vec<source_proto::status::StatusPlayer>,
    profiles: &HashMap<u64, PlayerSummary>,
) -> Vec<LivePlayer> {
    players
        .into_iter()
        .map(|p| {
            let profile = p.steam_id64.and_then(|id| profiles.get(&id));
            LivePlayer {
                name: profile
                    .map(|s| s.persona_name.clone())
                    .unwrap_or_else(|| p.name.clone()),
                in_game_name: p.name,
                steam_id: p.unique_id,
                steam_id64: p.steam_id64,
                ping: p.ping,
                connected_secs: p.connected_secs,
                is_bot: p.is_bot,
                // steam-api keeps only https URLs on Steam's hosts (the
                // avatar ones are exactly the CSP's img-src); None renders
                // the placeholder avatar and no link.
                avatar_url: profile.and_then(|s| s.avatar_url.clone()),
                profile_url: profile.and_then(|s| s.profile_url.clone()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_server_keeps_its_own_interval() {
        let now = Instant::now();
        let last = now - Duration::from_secs(2);
        assert_eq!(due_at(None, false, false, now), now, "never polled: now");
        assert_eq!(
            due_at(Some(last), true, false, now),
            last + WATCHED_INTERVAL
        );
        assert_eq!(
            due_at(Some(last), false, false, now),
            last + UNWATCHED_INTERVAL
        );
        // Early, but never sooner than the shortest interval.
        assert_eq!(
            due_at(Some(last), false, true, now),
            last + WATCHED_INTERVAL
        );
        assert_eq!(due_at(Some(last), true, true, now), last + WATCHED_INTERVAL);
    }
}
