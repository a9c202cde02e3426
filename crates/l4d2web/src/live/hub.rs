//! The live hub: one per process. It owns the board, the log listener and
//! the background tasks that fill the board, and runs console commands.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use source_proto::listener::{LogListener, ServerLogEvent};
use source_proto::rcon::{RconError, RconSession};
use sqlx::SqlitePool;
use steam_api::{ProfileCache, SteamApi};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::events;
use super::ownership::{self, NotOwned};
use super::paths::{PathCounts, Via};
use super::poll::{Poller, RCON_TIMEOUT};
use super::state::{Board, LiveState, LiveSubscription, Reading};
use crate::config::Config;
use crate::l4d2ctl::{HostClient, HostError};
use crate::servers::resources::Resources;

/// Persona names and avatars are re-fetched after this long.
const PROFILE_TTL: Duration = Duration::from_secs(30 * 60);

/// Shared live state of every server; cheap to clone.
#[derive(Clone)]
pub struct LiveHub {
    inner: Arc<Inner>,
}

struct Inner {
    board: Arc<Board>,
    pool: SqlitePool,
    /// Instance states, to check whose port RCON would talk to.
    host: HostClient,
    listener: Option<LogListener>,
    poller: Arc<Poller>,
    /// Woken when servers were created, for a prompt secret sync.
    resync: Arc<Notify>,
    /// Resource history: the poller adds FPS, the supervisor CPU and memory.
    resources: Resources,
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
        let board = Arc::new(Board::new());
        let resources = Resources::new();
        let poller = Arc::new(Poller {
            board: board.clone(),
            pool: pool.clone(),
            host: host.clone(),
            profiles: ProfileCache::new(api, PROFILE_TTL),
            resources: resources.clone(),
        });
        Ok(LiveHub {
            inner: Arc::new(Inner {
                board,
                pool,
                host,
                listener,
                poller,
                resync: Arc::new(Notify::new()),
                resources,
            }),
        })
    }

    /// Every server's and the host's resource history.
    pub fn resources(&self) -> &Resources {
        &self.inner.resources
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
        let inner = &self.inner;
        if let Some(listener) = &inner.listener {
            // The task only receives; lines are parsed on the listener's own
            // thread (bounded queue, over-long datagrams dropped by size), so
            // a flood of log packets never occupies the workers serving HTTP.
            let socket_task = listener.spawn();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                stop.cancelled().await;
                socket_task.abort();
            });
            tokio::spawn(events::pump(
                inner.board.clone(),
                listener.subscribe(),
                shutdown.clone(),
            ));
            tokio::spawn(events::sync_secrets(
                inner.pool.clone(),
                listener.clone(),
                inner.resync.clone(),
                shutdown.clone(),
            ));
        }
        tokio::spawn(inner.poller.clone().run(shutdown));
    }

    /// A copy of what is known about server `id`.
    pub fn snapshot(&self, id: i64) -> LiveState {
        self.inner.board.snapshot(id)
    }

    /// Players and slots per server, for the dashboard.
    pub fn player_counts(&self) -> HashMap<i64, (u32, u32)> {
        self.inner.board.player_counts()
    }

    /// Players, slots and A2S latency per answering server, for metrics.
    pub fn readings(&self) -> HashMap<i64, Reading> {
        self.inner.board.readings()
    }

    /// Subscribes a viewer of server `id`; while any viewer is subscribed the
    /// poller also fetches the detailed player list over RCON.
    pub fn watch(&self, id: i64) -> LiveSubscription {
        self.inner.board.watch(id)
    }

    /// Tells the hub the `servers` table changed (a server was created), so
    /// the log listener learns the new secret now rather than on its next
    /// periodic sync.
    pub fn servers_changed(&self) {
        self.inner.resync.notify_one();
    }

    /// A server stopped: what its panel showed of the running game (map,
    /// players, the last poll's error) is gone at once, not at the next poll.
    pub fn server_stopped(&self, id: i64) {
        self.inner.board.clear_game(id);
    }

    /// Whether a console line is the game logging the panel's own poll
    /// (`rcon from "127.0.0.1:PORT": command "status"` from a port of the
    /// poller's connections). Any other line, RCON from anyone else
    /// included, is not.
    pub fn is_own_poll_line(&self, line: &str) -> bool {
        own_poll_port(line).is_some_and(|port| self.inner.board.is_own_rcon_port(port))
    }

    /// Forgets a deleted server.
    pub fn forget(&self, id: i64) {
        self.inner.board.forget(id);
        if let Some(l) = &self.inner.listener {
            l.unregister_server(id);
        }
    }

    /// Feeds one attributed log event into the server's state (public for
    /// the benchmark and tests; the listener pump calls it).
    pub fn ingest(&self, ev: &ServerLogEvent) {
        events::ingest(&self.inner.board, ev, Via::Udp);
    }

    /// One line server `id` printed on its console (the console follower
    /// calls it): log lines there are the same events as over UDP, counted
    /// once whichever way they come first.
    pub fn console_line(&self, id: i64, line: &str) {
        events::console_line(&self.inner.board, id, line);
    }

    /// Log lines of server `id` counted per path (before de-duplication).
    pub fn path_counts(&self, id: i64) -> PathCounts {
        self.inner.board.path_counts(id)
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

/// The port of an `rcon from "127.0.0.1:PORT": command "status"` line.
fn own_poll_port(line: &str) -> Option<u16> {
    let rest = &line[line.find("rcon from \"127.0.0.1:")? + "rcon from \"127.0.0.1:".len()..];
    let (port, rest) = rest.split_once('"')?;
    (rest.trim_end() == ": command \"status\"").then_some(())?;
    port.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::own_poll_port;

    #[test]
    fn only_exactly_the_polls_status_line() {
        assert_eq!(
            own_poll_port(
                r#"L 12/01/2026 - 10:00:00: rcon from "127.0.0.1:51234": command "status""#
            ),
            Some(51234)
        );
        assert_eq!(
            own_poll_port(r#"rcon from "127.0.0.1:51234": command "status""#),
            Some(51234)
        );
        for other in [
            r#"rcon from "127.0.0.1:51234": command "status; quit""#,
            r#"rcon from "127.0.0.1:51234": command "kick bob""#,
            r#"rcon from "10.0.0.5:51234": command "status""#,
            r#"say rcon from "127.0.0.1:51234": command "status" and more"#,
            r#"rcon from "127.0.0.1:x": command "status""#,
            "",
        ] {
            assert_eq!(own_poll_port(other), None, "{other}");
        }
    }
}
