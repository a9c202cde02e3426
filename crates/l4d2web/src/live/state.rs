//! What is known about every server right now, and who is watching:
//! the board the poller and the log listener write and viewers read.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::paths::{EventHealth, PathCounts, Paths, Via};

use crate::fanout::{Fanout, Subscription};

/// Updates a slow viewer may fall behind before it re-renders the panel.
const VIEWER_LAG: usize = 1024;

/// A viewer of one server's live panel.
pub type LiveSubscription = Subscription<i64, LiveUpdate>;

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
    /// Human players by A2S (its player count less its bot count).
    pub humans: Option<u32>,
    /// The bots among them (A2S).
    pub bots: Option<u32>,
    /// How long the last answered A2S_INFO query took (for metrics).
    pub a2s_latency: Option<Duration>,
    /// From RCON `status`; only refreshed while someone watches.
    pub players: Vec<LivePlayer>,
    pub events: VecDeque<LiveEvent>,
    /// Why the last poll failed (server down, wrong RCON password, ...).
    pub error: Option<String>,
    /// When the state last changed (RFC 3339, UTC).
    pub updated_at: Option<String>,
    /// How game events arrive, while the server runs (it answered or
    /// failed a poll since it started).
    pub events_health: Option<EventHealth>,
}

/// What the last answered poll of one server measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub humans: u32,
    pub bots: u32,
    pub slots: u32,
    pub a2s_latency: Option<Duration>,
}

/// What viewers of one server are told.
#[derive(Debug, Clone)]
pub enum LiveUpdate {
    /// Map, players or error changed: re-render the panel.
    Panel,
    /// A new game event.
    Event(Arc<LiveEvent>),
}

/// The live state of every server and its viewers.
pub(super) struct Board {
    servers: Mutex<HashMap<i64, Arc<Mutex<LiveState>>>>,
    /// Panel updates, by server id; a server has a topic while watched.
    updates: Fanout<i64, LiveUpdate>,
    /// Servers whose next poll should come early: a viewer arrived, or a
    /// human player connected or left while nobody watched.
    early: Mutex<HashSet<i64>>,
    /// Woken when a server joins `early`.
    pub(super) repoll: Notify,
    /// The local ports of the poller's recent RCON connections: the game
    /// logs each `status` it sends as `rcon from "127.0.0.1:PORT"`.
    own_rcon_ports: Mutex<VecDeque<u16>>,
    /// Log lines by the path they came, de-duplicated.
    paths: Mutex<Paths>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the data consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Board {
    pub(super) fn new() -> Self {
        Board {
            servers: Mutex::new(HashMap::new()),
            updates: Fanout::new(VIEWER_LAG, 0),
            early: Mutex::new(HashSet::new()),
            repoll: Notify::new(),
            own_rcon_ports: Mutex::new(VecDeque::new()),
            paths: Mutex::new(Paths::default()),
        }
    }

    /// Remembers a port the poller's RCON connection uses (the last 256).
    pub(super) fn remember_own_rcon_port(&self, port: u16) {
        let mut ports = lock(&self.own_rcon_ports);
        if !ports.contains(&port) {
            if ports.len() == 256 {
                ports.pop_front();
            }
            ports.push_back(port);
        }
    }

    pub(super) fn is_own_rcon_port(&self, port: u16) -> bool {
        lock(&self.own_rcon_ports).contains(&port)
    }

    fn server(&self, id: i64) -> Arc<Mutex<LiveState>> {
        lock(&self.servers).entry(id).or_default().clone()
    }

    /// Changes server `id`'s state with `f`, which says whether anything
    /// changed.
    pub(super) fn update(&self, id: i64, f: impl FnOnce(&mut LiveState) -> bool) -> bool {
        let server = self.server(id);
        let mut state = lock(&server);
        f(&mut state)
    }

    pub(super) fn snapshot(&self, id: i64) -> LiveState {
        let mut state = lock(&self.server(id)).clone();
        if state.player_count.is_some() || state.error.is_some() {
            state.events_health = Some(lock(&self.paths).health(id, Instant::now()));
        }
        state
    }

    /// Counts a log line of server `id` from `via`: whether it is a new
    /// event (not the twin of one the other path brought), and whether the
    /// server's health line changed with it.
    pub(super) fn admit(&self, id: i64, line: &str, via: Via) -> (bool, bool) {
        let now = Instant::now();
        let mut paths = lock(&self.paths);
        let before = paths.health(id, now).key();
        let fresh = paths.admit(id, line, via, now);
        (fresh, paths.health(id, now).key() != before)
    }

    pub(super) fn path_counts(&self, id: i64) -> PathCounts {
        lock(&self.paths).counts(id)
    }

    pub(super) fn player_counts(&self) -> HashMap<i64, (u32, u32)> {
        lock(&self.servers)
            .iter()
            .filter_map(|(id, s)| lock(s).player_count.map(|c| (*id, c)))
            .collect()
    }

    /// What the last poll of each server measured, for metrics.
    pub(super) fn readings(&self) -> HashMap<i64, Reading> {
        lock(&self.servers)
            .iter()
            .filter_map(|(id, s)| {
                let s = lock(s);
                let (players, slots) = s.player_count?;
                let bots = s.bots.unwrap_or(0).min(players);
                Some((
                    *id,
                    Reading {
                        humans: players - bots,
                        bots,
                        slots,
                        a2s_latency: s.a2s_latency,
                    },
                ))
            })
            .collect()
    }

    pub(super) fn watch(&self, id: i64) -> LiveSubscription {
        let sub = self.updates.subscribe(id);
        if sub.first {
            // The first viewer should not wait for an unwatched server's
            // long interval.
            self.poll_soon(id);
        }
        sub
    }

    /// Asks for server `id`'s next poll early (still never sooner than the
    /// poller's shortest interval after its last one).
    pub(super) fn poll_soon(&self, id: i64) {
        lock(&self.early).insert(id);
        self.repoll.notify_one();
    }

    pub(super) fn wants_early_poll(&self, id: i64) -> bool {
        lock(&self.early).contains(&id)
    }

    /// Server `id` was just polled.
    pub(super) fn polled(&self, id: i64) {
        lock(&self.early).remove(&id);
        lock(&self.paths).running(id, Instant::now());
    }

    pub(super) fn watched(&self, id: i64) -> bool {
        self.updates.is_open(&id)
    }

    pub(super) fn publish(&self, id: i64, update: LiveUpdate) {
        self.updates.publish(&id, update);
    }

    /// Clears what the running game reported for server `id` and tells
    /// its viewers; its recent events stay.
    pub(super) fn clear_game(&self, id: i64) {
        let changed = self.update(id, |state| {
            let had = state.map.is_some()
                || state.player_count.is_some()
                || !state.players.is_empty()
                || state.error.is_some();
            state.map = None;
            state.hostname = None;
            state.player_count = None;
            state.humans = None;
            state.bots = None;
            state.a2s_latency = None;
            state.players.clear();
            state.error = None;
            state.events_health = None;
            if had {
                state.updated_at = Some(crate::db::now_text());
            }
            had
        });
        lock(&self.paths).stopped(id);
        if changed {
            self.publish(id, LiveUpdate::Panel);
        }
    }

    pub(super) fn forget(&self, id: i64) {
        lock(&self.early).remove(&id);
        lock(&self.paths).stopped(id);
        lock(&self.servers).remove(&id);
    }
}
