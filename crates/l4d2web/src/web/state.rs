//! What every handler can reach.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use axum::extract::FromRef;
use sqlx::SqlitePool;
use tokio_util::sync::CancellationToken;

use crate::auth::LoginLimiter;
use crate::config::Config;
use crate::jobs::Jobs;
use crate::l4d2ctl::HostClient;
use crate::live::LiveHub;
use crate::servers::console::ConsoleHub;
use crate::tasks::schedule::SchedulerHandle;

#[derive(Clone)]
pub struct AppState {
    pub pool: SqlitePool,
    pub config: Arc<Config>,
    pub limiter: Arc<LoginLimiter>,
    pub jobs: Jobs,
    /// Read-only host queries (states for pages).
    pub host: HostClient,
    pub live: LiveHub,
    pub consoles: ConsoleHub,
    /// The installed game builds (cached host report).
    pub builds: crate::game::builds::Builds,
    /// Tells the scheduler that schedules changed.
    pub schedules: SchedulerHandle,
    /// A Steam Guard code an administrator entered, for the next install.
    pub steam_guard: crate::game::SteamGuard,
    /// Fired on shutdown: ends SSE streams so graceful shutdown can finish.
    pub shutdown: CancellationToken,
    /// Event streams open now (counted by `sse::count_viewers`).
    pub sse_viewers: Arc<AtomicUsize>,
}

impl FromRef<AppState> for SqlitePool {
    fn from_ref(s: &AppState) -> Self {
        s.pool.clone()
    }
}
