//! Live state of running servers (docs/product.md, Live state): map and players
//! from A2S and RCON `status`, game events from the UDP log listener,
//! Steam persona names and avatars, fanned out to any number of viewers.
//!
//! One [`LiveHub`] per process owns three background tasks:
//! - the log listener (when `LOG_LISTENER_BIND` is set), whose secrets are
//!   kept in step with the `servers` table;
//! - a poller that asks every server meant to be running for A2S_INFO (map,
//!   player count for the dashboard) and, while someone watches its page,
//!   for RCON `status` (names, Steam ids, ping, time);
//! - an event pump turning attributed log lines into panel events.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use source_proto::a2s::A2sError;
use source_proto::hllog::{LogEvent, PlayerTag};
use source_proto::listener::{LogListener, ServerLogEvent};
use source_proto::rcon::{RconError, RconSession};
use sqlx::SqlitePool;
use steam_api::{PlayerSummary, ProfileCache, SteamApi};
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::fanout::{Fanout, Subscription};
use crate::l4d2ctl::{HostClient, HostError};

mod ownership;
pub use ownership::NotOwned;

/// Recent events kept per server for newly opened pages.
const RECENT_EVENTS: usize = 50;
/// How often running servers are polled.
const POLL_INTERVAL: Duration = Duration::from_secs(5);
/// How often log secrets are re-read from the database.
const SECRET_SYNC_INTERVAL: Duration = Duration::from_secs(5);
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
const RCON_TIMEOUT: Duration = Duration::from_secs(3);
/// Persona names and avatars are re-fetched after this long.
const PROFILE_TTL: Duration = Duration::from_secs(30 * 60);

/// One player as the panel shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LivePlayer {
    /// Steam persona name when known, else the in-game name.
    pub name: String,
    pub in_game_name: String,
    /// As the server printed it (`STEAM_1:0:N`, `BOT`, ...).
    pub steam_id: String,
    pub steam_id64: Option<u64>,
    pub ping: Option<u32>,
    pub connected_secs: Option<u64>,
    pub is_bot: bool,
    /// Steam avatar (64×64), or None for the placeholder. Validated by
    /// [`steam_api::urls::avatar_url`].
    pub avatar_url: Option<String>,
    /// Validated by [`steam_api::urls::profile_url`].
    pub profile_url: Option<String>,
}

impl LivePlayer {
    /// `m:ss` or `h:mm:ss`.
    pub fn connected(&self) -> String {
        match self.connected_secs {
            None => String::new(),
            Some(s) if s >= 3600 => format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60),
            Some(s) => format!("{}:{:02}", s / 60, s % 60),
        }
    }
}

/// One game event for the panel.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveEvent {
    /// `HH:MM:SS` from the log line.
    pub time: String,
    /// connect, disconnect, team, chat, map.
    pub kind: &'static str,
    pub text: String,
}

/// What is known about one server right now.
#[derive(Debug, Clone, Default)]
pub struct LiveState {
    pub map: Option<String>,
    pub hostname: Option<String>,
    /// Humans + bots as A2S counts them, and the slot limit.
    pub player_count: Option<(u32, u32)>,
    /// From RCON `status`; only refreshed while someone watches.
    pub players: Vec<LivePlayer>,
    pub events: VecDeque<LiveEvent>,
    /// Why the last poll failed (server down, wrong RCON password, ...).
    pub error: Option<String>,
    /// When the state last changed (RFC 3339, UTC).
    pub updated_at: Option<String>,
}

/// Updates a slow viewer may fall behind before it re-renders the panel.
const VIEWER_LAG: usize = 1024;

/// A viewer of one server's live panel.
pub type LiveSubscription = Subscription<i64, LiveUpdate>;

/// What viewers of one server are told.
#[derive(Debug, Clone)]
pub enum LiveUpdate {
    /// Map, players or error changed: re-render the panel.
    Panel,
    /// A new game event.
    Event(Arc<LiveEvent>),
}

struct ServerLive {
    state: Mutex<LiveState>,
}

impl ServerLive {
    fn new() -> Self {
        ServerLive {
            state: Mutex::new(LiveState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LiveState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Shared live state of every server; cheap to clone.
#[derive(Clone)]
pub struct LiveHub {
    inner: Arc<Inner>,
}

struct Inner {
    pool: SqlitePool,
    /// Instance states, to check whose port RCON would talk to.
    host: HostClient,
    servers: Mutex<HashMap<i64, Arc<ServerLive>>>,
    /// Panel updates, by server id; a server has a topic while watched.
    updates: Fanout<i64, LiveUpdate>,
    listener: Option<LogListener>,
    profiles: ProfileCache,
    /// Woken when a player connects or leaves, for a prompt re-poll.
    repoll: Notify,
    /// Woken when servers were created, for a prompt secret sync.
    resync: Notify,
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("cannot start the log listener on {addr} (LOG_LISTENER_BIND): {reason}")]
    Listener { addr: SocketAddr, reason: String },
    #[error("invalid STEAM_API_BASE_URL: {0}")]
    SteamApi(String),
}

/// Why a console command did not reach the server.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleRconError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    NotOwned(#[from] NotOwned),
    #[error(transparent)]
    Rcon(#[from] RconError),
}

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

impl LiveHub {
    /// Binds the log listener (if configured) and prepares the profile
    /// cache. Call [`LiveHub::spawn`] to start the background tasks.
    pub async fn new(
        pool: SqlitePool,
        host: HostClient,
        config: &Config,
    ) -> Result<LiveHub, LiveError> {
        let listener = match config.log_listener_bind {
            Some(addr) => Some(
                LogListener::bind(addr)
                    .await
                    .map_err(|e| LiveError::Listener {
                        addr,
                        reason: e.to_string(),
                    })?,
            ),
            None => None,
        };
        let api = match &config.steam_web_api_key {
            Some(key) => Some(
                SteamApi::new(
                    &config.steam_api_base_url,
                    Some(key.clone()),
                    Duration::from_secs(5),
                )
                .map_err(|e| LiveError::SteamApi(e.to_string()))?,
            ),
            None => None,
        };
        Ok(LiveHub {
            inner: Arc::new(Inner {
                pool,
                host,
                servers: Mutex::new(HashMap::new()),
                updates: Fanout::new(VIEWER_LAG, 0),
                listener,
                profiles: ProfileCache::new(api, PROFILE_TTL),
                repoll: Notify::new(),
                resync: Notify::new(),
            }),
        })
    }

    /// The address the log listener is bound to, if any.
    pub fn listener_addr(&self) -> Option<SocketAddr> {
        self.inner
            .listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Counters of the log listener (received, accepted, dropped by reason).
    pub fn listener_stats(&self) -> Option<source_proto::listener::ListenerStats> {
        self.inner.listener.as_ref().map(LogListener::stats)
    }

    /// Starts the listener, the secret sync, the event pump and the poller;
    /// they end when `shutdown` fires.
    pub fn spawn(&self, shutdown: CancellationToken) {
        if let Some(listener) = &self.inner.listener {
            // The task only receives; lines are parsed on the listener's own
            // thread (bounded queue, over-long datagrams dropped by size), so
            // a flood of log packets never occupies the workers serving HTTP.
            let socket_task = listener.spawn();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                stop.cancelled().await;
                socket_task.abort();
            });
            let events = listener.subscribe();
            tokio::spawn(self.clone().pump_events(events, shutdown.clone()));
            tokio::spawn(self.clone().sync_secrets(shutdown.clone()));
        }
        tokio::spawn(self.clone().poll_loop(shutdown));
    }

    fn server(&self, id: i64) -> Arc<ServerLive> {
        let mut map = self.inner.servers.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id)
            .or_insert_with(|| Arc::new(ServerLive::new()))
            .clone()
    }

    /// A copy of what is known about server `id`.
    pub fn snapshot(&self, id: i64) -> LiveState {
        self.server(id).lock().clone()
    }

    /// Players and slots per server, for the dashboard.
    pub fn player_counts(&self) -> HashMap<i64, (u32, u32)> {
        let map = self.inner.servers.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter_map(|(id, s)| s.lock().player_count.map(|c| (*id, c)))
            .collect()
    }

    /// Subscribes a viewer of server `id`; while any viewer is subscribed the
    /// poller also fetches the detailed player list over RCON.
    pub fn watch(&self, id: i64) -> LiveSubscription {
        let sub = self.inner.updates.subscribe(id);
        if sub.first {
            // The first viewer should not wait a whole poll interval.
            self.inner.repoll.notify_one();
        }
        sub
    }

    fn watched(&self, id: i64) -> bool {
        self.inner.updates.is_open(&id)
    }

    /// Tells the hub the `servers` table changed (a server was created), so
    /// the log listener learns the new secret now rather than on its next
    /// periodic sync.
    pub fn servers_changed(&self) {
        self.inner.resync.notify_one();
    }

    /// Forgets a deleted server.
    pub fn forget(&self, id: i64) {
        self.inner
            .servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if let Some(l) = &self.inner.listener {
            l.unregister_server(id);
        }
    }

    /// Feeds one attributed log event into the server's state (public for
    /// the benchmark and tests; the listener pump calls it).
    pub fn ingest(&self, ev: &ServerLogEvent) {
        let Some(live_event) = to_live_event(ev) else {
            return;
        };
        let live = self.server(ev.server_key);
        let mut panel_changed = false;
        {
            let mut state = live.lock();
            if let LogEvent::MapStarted { map } | LogEvent::MapLoading { map } = &ev.event {
                if state.map.as_deref() != Some(map.as_str()) {
                    state.map = Some(map.clone());
                    panel_changed = true;
                }
            }
            state.events.push_front(live_event.clone());
            state.events.truncate(RECENT_EVENTS);
            state.updated_at = Some(crate::db::now_text());
        }
        if matches!(
            ev.event,
            LogEvent::Connected { .. } | LogEvent::Disconnected { .. } | LogEvent::Entered { .. }
        ) {
            self.inner.repoll.notify_one();
        }
        let updates = &self.inner.updates;
        updates.publish(&ev.server_key, LiveUpdate::Event(Arc::new(live_event)));
        if panel_changed {
            updates.publish(&ev.server_key, LiveUpdate::Panel);
        }
    }

    async fn pump_events(
        self,
        mut events: broadcast::Receiver<ServerLogEvent>,
        shutdown: CancellationToken,
    ) {
        loop {
            let ev = tokio::select! {
                _ = shutdown.cancelled() => return,
                ev = events.recv() => ev,
            };
            match ev {
                Ok(ev) => self.ingest(&ev),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "live panel fell behind the log listener")
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Keeps the listener's secret → server map equal to the `servers` table.
    async fn sync_secrets(self, shutdown: CancellationToken) {
        let Some(listener) = self.inner.listener.clone() else {
            return;
        };
        let mut known: HashMap<String, i64> = HashMap::new();
        let mut tick = tokio::time::interval(SECRET_SYNC_INTERVAL);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                _ = self.inner.resync.notified() => {}
            }
            let rows: Vec<(i64, String)> =
                match sqlx::query_as("SELECT id, log_secret FROM servers")
                    .fetch_all(&self.inner.pool)
                    .await
                {
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

    async fn poll_loop(self, shutdown: CancellationToken) {
        let mut sessions: HashMap<i64, (String, RconSession)> = HashMap::new();
        loop {
            if let Err(e) = self.poll_once(&mut sessions).await {
                tracing::warn!(error = %e, "live poll failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = self.inner.repoll.notified() => {
                    // Coalesce bursts (a map change disconnects everyone).
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Polls every server meant to be running, concurrently.
    async fn poll_once(
        &self,
        sessions: &mut HashMap<i64, (String, RconSession)>,
    ) -> Result<(), sqlx::Error> {
        let rows: Vec<(i64, String, i64, String)> = sqlx::query_as(
            "SELECT id, name, port, rcon_password FROM servers WHERE desired_state = 'running'",
        )
        .fetch_all(&self.inner.pool)
        .await?;
        sessions.retain(|id, _| rows.iter().any(|(rid, ..)| rid == id));
        // RCON (with the password) only goes to ports that belong to their
        // servers: one host query per poll, and only when someone watches.
        let any_watched = rows.iter().any(|(id, ..)| self.watched(*id));
        let states = if any_watched {
            Some(self.inner.host.list().await)
        } else {
            None
        };
        let mut polls = Vec::new();
        for (id, name, port, password) in rows {
            let addr = SocketAddr::from(([127, 0, 0, 1], port as u16));
            let live = self.server(id);
            let rcon_check = self.watched(id).then(|| match &states {
                Some(Ok(states)) => {
                    ownership::check(port as u16, states.get(&name)).map_err(RconRefused::from)
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
                Some((pw, s)) if pw == password => Some((pw, s)),
                _ => None,
            }
            .unwrap_or_else(|| {
                let s = RconSession::new(addr, password.clone(), RCON_TIMEOUT);
                (password, s)
            });
            polls.push(async move {
                let outcome = poll_server(addr, rcon_check, &mut session.1).await;
                (id, live, outcome, session)
            });
        }
        let results = futures_util::future::join_all(polls).await;
        for (id, live, outcome, session) in results {
            sessions.insert(id, session);
            let players = match &outcome {
                Ok(p) => p.players.clone(),
                Err(_) => None,
            };
            let profiles = match &players {
                Some(players) => {
                    let ids: Vec<u64> = players.iter().filter_map(|p| p.steam_id64).collect();
                    self.inner.profiles.get_many(&ids).await
                }
                None => HashMap::new(),
            };
            let changed = {
                let mut state = live.lock();
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
                        if let Some(players) = polled.players {
                            state.players = enrich(players, &profiles);
                        }
                    }
                    Err(e) => {
                        state.error = Some(e.to_string());
                        state.player_count = None;
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
            };
            if changed {
                self.inner.updates.publish(&id, LiveUpdate::Panel);
            }
        }
        Ok(())
    }

    /// Runs one RCON command on server `name` (the console), after checking
    /// that its port belongs to it.
    pub async fn rcon(
        &self,
        name: &str,
        port: u16,
        password: &str,
        command: &str,
    ) -> Result<String, ConsoleRconError> {
        let state = self.inner.host.status(name).await?;
        ownership::check(port, Some(&state))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut session = RconSession::new(addr, password, RCON_TIMEOUT);
        Ok(session.exec(command).await?)
    }
}

struct Polled {
    hostname: String,
    map: String,
    count: (u32, u32),
    /// From RCON `status`, when watched and it worked.
    players: Option<Vec<source_proto::status::StatusPlayer>>,
    rcon_error: Option<String>,
}

/// A2S always; RCON `status` when watched (`rcon` is Some) and the port's
/// ownership check passed.
async fn poll_server(
    addr: SocketAddr,
    rcon_check: Option<Result<(), RconRefused>>,
    rcon: &mut RconSession,
) -> Result<Polled, PollError> {
    let info = source_proto::a2s::query_info(addr, QUERY_TIMEOUT).await?;
    let mut polled = Polled {
        hostname: info.name,
        map: info.map,
        count: (u32::from(info.players), u32::from(info.max_players)),
        players: None,
        rcon_error: None,
    };
    match rcon_check {
        None => {}
        Some(Err(refused)) => polled.rcon_error = Some(format!("RCON: {refused}")),
        Some(Ok(())) => match rcon.exec("status").await {
            Ok(text) => match source_proto::status::parse_status(&text) {
                Ok(status) => polled.players = Some(status.players),
                Err(e) => polled.rcon_error = Some(format!("unreadable RCON status: {e}")),
            },
            Err(e) => polled.rcon_error = Some(format!("RCON: {e}")),
        },
    }
    Ok(polled)
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
