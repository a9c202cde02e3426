//! left4me web app: accounts, servers, overlays, jobs with live logs, and
//! the admin CLI (`left4me serve|demo|create-user|migrate|...`).
//!
//! Host operations run through the `l4d2ctl` binary as a subprocess
//! (docs/host-contract.md); this crate never links `l4d2host`. The layers,
//! each calling only those below it (ARCHITECTURE.md):
//!
//! 1. [`l4d2ctl`] (the process client) and the infrastructure beside it:
//!    [`config`], [`db`], [`fanout`];
//! 2. [`jobs`]: the job engine, which knows no job kinds;
//! 3. the domain: [`accounts`], [`auth`], [`servers`], [`overlays`],
//!    [`live`], [`backup`], [`schedules`], [`alerts`], [`audit`];
//! 4. [`tasks`]: every job kind, and requests that queue work; [`metrics`]
//!    beside it, which reads every part below;
//! 5. [`web`]: HTTP handlers; [`cli`] and the demo beside it.

pub mod accounts;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod config;
pub mod data_root;
pub mod db;
mod demo;
pub mod fanout;
pub mod game;
mod http;
pub mod jobs;
pub mod l4d2ctl;
pub mod live;
pub mod metrics;
pub mod overlays;
pub mod schedules;
pub mod servers;
pub mod tasks;
pub mod web;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::LoginLimiter;
use crate::config::Config;
use crate::jobs::Jobs;
use crate::l4d2ctl::HostClient;
use crate::servers::console::ConsoleHub;
use crate::tasks::TaskRunner;
use crate::web::AppState;

/// Locks the data root, opens and migrates the database, recovers
/// interrupted jobs, starts the job workers and serves HTTP on `listener`
/// until `shutdown` fires (and `/metrics` on `LEFT4ME_METRICS_BIND`, if
/// set). Then it stops accepting, ends live streams and gives running jobs
/// the grace period (after which they are handed back to the queue).
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Held until serve returns.
    let _data_root_lock = claim_data_root(&config)?;
    // Bound before anything starts, so a taken address fails the start.
    let metrics_listener = match config.metrics_bind {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (LEFT4ME_METRICS_BIND)"))?,
        ),
        None => None,
    };
    let pool = db::connect(&config.database_url).await?;
    db::migrate(&pool).await?;
    data_root::check_database_writable(&pool, &config.database_url).await?;
    let config = Arc::new(config);
    let host = HostClient::new(config.clone());
    let jobs = Jobs::new(
        pool.clone(),
        Duration::from_secs(config.shutdown_grace_secs),
    );
    jobs.recover()
        .await
        .context("recovering interrupted jobs")?;
    converge_servers(&jobs, &host).await;
    let limiter = Arc::new(LoginLimiter::new(
        config.login_limit_per_ip,
        config.login_limit_per_user,
        Duration::from_secs(config.login_limit_window_secs),
    ));
    let live = live::LiveHub::new(pool.clone(), host.clone(), &config)
        .await
        .context("starting live state")?;
    live.spawn(shutdown.clone());
    let workers_stop = CancellationToken::new();
    let steam_guard = game::SteamGuard::default();
    let builds = game::builds::Builds::new(host.clone());
    let runner = Arc::new(TaskRunner::new(
        config.clone(),
        host.clone(),
        jobs.clone(),
        live.clone(),
        steam_guard.clone(),
        builds.clone(),
    ));
    let mut workers = jobs.spawn_workers(config.job_workers, runner, workers_stop.clone());
    let schedules = tasks::schedule::SchedulerHandle::default();
    let scheduler = tasks::schedule::Scheduler::new(
        jobs.clone(),
        live.clone(),
        Duration::from_secs(config.schedule_grace_secs),
        schedules.clone(),
    );
    tokio::spawn(scheduler.run(shutdown.clone()));
    let supervisor = tasks::supervise::Supervisor::new(
        jobs.clone(),
        host.clone(),
        config.backend,
        live.resources().clone(),
    );
    tokio::spawn(supervisor.run(shutdown.clone()));
    let alerts = alerts::AlertSender::new(pool.clone(), &config).spawn(shutdown.clone());
    let housekeeping = tokio::spawn(housekeeping(
        pool.clone(),
        limiter.clone(),
        config.audit_retention_days,
        shutdown.clone(),
    ));

    // Game events come from the consoles being followed too (see
    // ARCHITECTURE.md: a follower is a process, so only while watched), and
    // so does a game's word that Steam wants it restarted for an update.
    let game_signal = tasks::rollout::GameSignal::default();
    let consoles = ConsoleHub::new(host.clone()).with_tap({
        let live = live.clone();
        let game_signal = game_signal.clone();
        Arc::new(move |id, line| {
            live.console_line(id, line);
            game_signal.line(line);
        })
    });
    let rollouts = tasks::rollout::RolloutLoop::new(
        tasks::rollout::LoopParts {
            jobs: jobs.clone(),
            host: host.clone(),
            builds: builds.clone(),
            live: live.clone(),
            consoles: consoles.clone(),
            tick: Duration::from_secs(config.rollout_tick_secs),
            signal: game_signal,
        },
        shutdown.clone(),
    );
    tokio::spawn(rollouts.run());

    let state = AppState {
        pool: pool.clone(),
        config,
        limiter,
        jobs,
        consoles,
        builds,
        host,
        live,
        schedules,
        steam_guard,
        shutdown: shutdown.clone(),
        sse_viewers: Default::default(),
    };
    let metrics_server = metrics_listener.map(|metrics_listener| {
        if let Ok(addr) = metrics_listener.local_addr() {
            if addr.ip().is_loopback() {
                tracing::info!(%addr, "metrics listening");
            } else {
                // Anyone who reaches this address reads the metrics.
                tracing::warn!(%addr, "metrics listening without authentication on a non-loopback address; make sure only Prometheus can reach it");
            }
        }
        tokio::spawn(http::serve(
            metrics_listener,
            web::metrics_router(state.clone()),
            shutdown.clone(),
        ))
    });
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "left4me listening");
    notify_systemd(&[sd_notify::NotifyState::Ready]);
    http::serve(listener, web::router(state), shutdown.clone()).await;
    if let Some(server) = metrics_server {
        if let Err(e) = server.await {
            tracing::warn!(error = %e, "the metrics listener ended abnormally");
        }
    }
    notify_systemd(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("HTTP stopped; waiting for running jobs");
    workers_stop.cancel();
    while workers.join_next().await.is_some() {}
    housekeeping.abort();
    // Deliveries in flight are dropped unrecorded: they stay pending.
    if let Err(e) = alerts.await {
        tracing::warn!(error = %e, "the webhook sender ended abnormally");
    }
    pool.close().await;
    tracing::info!("shutdown complete");
    Ok(())
}

/// Refuses a data root this process cannot write, then takes its lock so
/// no second `serve`/`demo` runs on it.
fn claim_data_root(config: &Config) -> Result<data_root::DataRootLock, data_root::DataRootError> {
    data_root::check_writable(&config.root)?;
    data_root::lock(&config.root)
}

/// After a crash, kill or reboot of the panel: queue what brings every
/// server back to its desired state. A host that cannot be asked is logged,
/// not fatal: the panel still serves, and the drift shows on the dashboard.
async fn converge_servers(jobs: &Jobs, host: &HostClient) {
    match tasks::converge(jobs, host).await {
        Ok(done) => {
            for (name, action) in &done.queued {
                tracing::info!(server = %name, action = action.verb(), "queued to restore the desired state after a restart of the panel");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot bring servers to their desired state at startup")
        }
    }
}

/// Tells systemd (Type=notify); does nothing when not started by it.
fn notify_systemd(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

/// Every minute: forgets idle login limits, purges expired sessions and
/// audit log entries older than the retention.
async fn housekeeping(
    pool: sqlx::SqlitePool,
    limiter: Arc<LoginLimiter>,
    audit_retention_days: u32,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        limiter.housekeeping();
        if let Err(e) = auth::purge_expired(&pool).await {
            tracing::warn!(error = %e, "purging expired sessions failed");
        }
        match audit::purge(&pool, audit_retention_days).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                entries = n,
                days = audit_retention_days,
                "purged audit log entries older than the retention"
            ),
            Err(e) => tracing::warn!(error = %e, "purging the audit log failed"),
        }
    }
}
