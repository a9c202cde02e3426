//! The crash supervisor: watches every server's state, counts crashes on
//! both backends, restarts crashed servers on the local backend (systemd
//! restarts its units itself) and tells owners (see
//! [`crate::servers::crashes`] for the policy).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::Task;
use crate::alerts::{self, AlertEvent};
use crate::config::HostBackend;
use crate::jobs::Jobs;
use crate::l4d2ctl::HostClient;
use crate::servers::crashes::{self, Context, CrashWatch, Verdict};
use crate::servers::resources::Resources;
use crate::servers::{self, host_usage, DesiredState, ServerRow};

/// Where the kernel names the current boot.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
/// Made by systemd on every boot (on a fresh /run).
const SYSTEMD_RUN: &str = "/run/systemd/system";

/// Which boot of the host this is: the kernel's boot id, and, under
/// systemd, when systemd set up this boot's /run (a container shares its
/// host's kernel and so its boot id, but boots its own systemd).
fn boot_identity() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let kernel = std::fs::read_to_string(BOOT_ID).ok()?;
    let kernel = kernel.trim();
    Some(match std::fs::metadata(SYSTEMD_RUN) {
        Ok(m) => format!("{kernel}/{}.{}", m.ctime(), m.ctime_nsec()),
        Err(_) => kernel.to_string(),
    })
}

pub struct Supervisor {
    jobs: Jobs,
    host: HostClient,
    /// Between two looks at the host: the local backend's restarts depend
    /// on it; under systemd it only decides how soon a crash is reported.
    interval: Duration,
    watches: HashMap<i64, CrashWatch>,
    /// Each look's CPU time and memory figures, and the host's, kept as
    /// history (no extra host call: the same `list`).
    resources: Resources,
}

impl Supervisor {
    pub fn new(
        jobs: Jobs,
        host: HostClient,
        backend: HostBackend,
        resources: Resources,
    ) -> Supervisor {
        let interval = match backend {
            HostBackend::Local => Duration::from_secs(2),
            HostBackend::Systemd => Duration::from_secs(10),
        };
        Supervisor {
            jobs,
            host,
            interval,
            watches: HashMap::new(),
            resources,
        }
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        if let Err(e) = self.notice_reboot().await {
            tracing::warn!(error = %e, "cannot tell whether the host rebooted");
        }
        loop {
            let sleep = match self.tick(Instant::now()).await {
                Ok(sleep) => sleep,
                Err(e) => {
                    tracing::warn!(error = %e, "watching servers for crashes failed");
                    self.interval
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// After a reboot of the host, every server meant to run is expected
    /// back; its owner hears when it is.
    async fn notice_reboot(&mut self) -> Result<(), sqlx::Error> {
        let Some(boot) = boot_identity() else {
            return Ok(());
        };
        let pool = self.jobs.pool();
        let before = crate::db::fact(pool, "boot").await?;
        crate::db::set_fact(pool, "boot", &boot).await?;
        if before.is_none_or(|b| b == boot) {
            return Ok(());
        }
        for server in servers::list_all(pool).await? {
            if server.desired_state == DesiredState::Running && !server.deleting {
                self.watches.insert(server.id, CrashWatch::after_reboot());
            }
        }
        Ok(())
    }

    /// One look at every server; returns how long to sleep.
    async fn tick(&mut self, now: Instant) -> Result<Duration, TickError> {
        self.resources
            .record_host(now, host_usage::read_cpu(), host_usage::read_memory());
        let rows = servers::list_all(self.jobs.pool()).await?;
        self.resources.retain(|id| rows.iter().any(|r| r.id == id));
        if rows.is_empty() {
            self.watches.clear();
            return Ok(self.interval);
        }
        let states = self.host.list().await?;
        // Stamped when the answer came, so the CPU % interval is the one
        // between two readings, not between two ticks' starts.
        let read_at = Instant::now();
        let busy: std::collections::HashSet<String> =
            self.jobs.busy_lock_keys().await?.into_iter().collect();
        self.watches
            .retain(|id, _| rows.iter().any(|r| r.id == *id));
        let mut sleep = self.interval;
        for server in &rows {
            let Some(status) = states.get(&server.name) else {
                self.resources.forget(server.id);
                continue;
            };
            if status.is_up() {
                self.resources.record_usage(
                    server.id,
                    read_at,
                    status.service.cpu_usage_nsec,
                    status.service.memory_bytes,
                );
            } else {
                self.resources.forget(server.id);
            }
            let cx = Context {
                should_run: server.desired_state == DesiredState::Running && !server.deleting,
                busy: busy.contains(&servers::lock_key(&server.name)),
                crash_loop: server.crash_loop,
            };
            let watch = self.watches.entry(server.id).or_default();
            let verdicts = watch.observe(status, cx, now);
            let restart = watch.restart_due();
            for verdict in verdicts {
                report(&self.jobs, server, &verdict).await?;
            }
            if let Some(due) = restart {
                if due > now {
                    sleep = sleep.min(due - now);
                } else if cx.should_run && !cx.busy {
                    let job = Task::ServerStart(super::ServerRef {
                        server_id: server.id,
                        name: server.name.clone(),
                    })
                    .to_job(Some(server.owner_id), Some("restart after a crash"));
                    let queued = self.jobs.submit(job).await?;
                    tracing::info!(server = %server.name, job = queued.id, "restarting a crashed server");
                    if let Some(w) = self.watches.get_mut(&server.id) {
                        w.restart_submitted();
                    }
                }
            }
        }
        Ok(sleep)
    }
}

#[derive(Debug, thiserror::Error)]
enum TickError {
    #[error("cannot read the servers' state: {0}")]
    Host(#[from] crate::l4d2ctl::HostError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Records a verdict and tells the server's owner.
async fn report(jobs: &Jobs, server: &ServerRow, verdict: &Verdict) -> Result<(), sqlx::Error> {
    let pool = jobs.pool();
    let (server_id, server_name) = (server.id, server.name.clone());
    let event = match verdict {
        Verdict::Crashed { exit } => {
            tracing::warn!(server = %server.name, %exit, "server crashed");
            crashes::record_crash(pool, server.id, exit).await?;
            AlertEvent::ServerCrashed {
                server_id,
                server_name,
                detail: exit.clone(),
            }
        }
        Verdict::CrashLoop { exit } => {
            tracing::warn!(server = %server.name, %exit, "server is in a crash loop; not restarting it");
            crashes::record_crash_loop(pool, server.id).await?;
            AlertEvent::CrashLoop {
                server_id,
                server_name,
                detail: format!("it crashed too often to be restarted; last: {exit}"),
            }
        }
        Verdict::Recovered => {
            tracing::info!(server = %server.name, "server is back after a reboot of the host");
            AlertEvent::ServerRecovered {
                server_id,
                server_name,
            }
        }
    };
    match alerts::raise(pool, server.owner_id, &event).await {
        Ok(_) => Ok(()),
        Err(alerts::AlertError::Db(e)) => Err(e),
        Err(e) => {
            tracing::warn!(server = %server.name, error = %e, "cannot queue an alert");
            Ok(())
        }
    }
}
