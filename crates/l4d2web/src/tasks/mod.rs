//! Every kind of job the panel runs, in one place: the [`Task`] enum (what
//! is stored in a job row), how each is queued (lock key, title, subject)
//! and what runs it ([`TaskRunner`], the job engine's [`Runner`]).
//!
//! Requests that change state and queue work in one go (a server action,
//! bringing servers back after a restart of the panel) live here too: they
//! are the only callers that know both the domain and the job kinds. So do
//! the two loops that queue jobs by themselves: the [`schedule`]r and the
//! crash [`supervise`]or.

pub mod rollout;
pub mod schedule;
pub mod supervise;

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::alerts;
use crate::config::Config;
use crate::game::{self, SteamGuard};
use crate::jobs::{Job, JobCtx, JobFailure, Jobs, NewJob, Queued, Runner};
use crate::l4d2ctl::HostClient;
use crate::live::LiveHub;
use crate::overlays::{self, Overlay};
use crate::servers::{self, Action, ServerRow};

/// A job's work. Stored as the row's `kind` (the tag) and `args` (the
/// remaining fields as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Task {
    /// Install or update the shared game installation (`l4d2ctl install`).
    Install,
    /// Ask Steam whether a newer game build is out (`l4d2ctl check-update`).
    UpdateCheck,
    ServerStart(ServerRef),
    ServerStop(ServerRef),
    ServerRestart(ServerRef),
    ServerReset(ServerRef),
    ServerDelete(ServerRef),
    /// Run one RCON command on a running server (a schedule's).
    ServerRcon {
        server_id: i64,
        #[serde(default)]
        name: String,
        command: String,
    },
    /// Run a script overlay's build script in the sandbox.
    OverlayBuild {
        overlay_id: i64,
        #[serde(default)]
        clean: bool,
        #[serde(default)]
        name: String,
    },
    /// Resolve, download and link one workshop overlay's items.
    WorkshopSync {
        overlay_id: i64,
        #[serde(default)]
        name: String,
    },
    /// Check every workshop overlay for updated items (the daily timer).
    WorkshopRefresh,
}

/// The server a server task is about. The name is what jobs on one
/// instance serialize on; the job itself reads the server by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRef {
    pub server_id: i64,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("job {id} of kind {kind:?} cannot be run by this version of left4me: {reason}")]
    Unreadable {
        id: i64,
        kind: String,
        reason: String,
    },
}

impl Task {
    pub fn server(action: Action, server: &ServerRow) -> Task {
        let r = ServerRef {
            server_id: server.id,
            name: server.name.clone(),
        };
        match action {
            Action::Start => Task::ServerStart(r),
            Action::Stop => Task::ServerStop(r),
            Action::Restart => Task::ServerRestart(r),
            Action::Reset => Task::ServerReset(r),
            Action::Delete => Task::ServerDelete(r),
        }
    }

    pub fn overlay_sync(overlay: &Overlay, clean: bool) -> Task {
        if overlay.is_script() {
            Task::OverlayBuild {
                overlay_id: overlay.id,
                clean,
                name: overlay.name.clone(),
            }
        } else {
            Task::WorkshopSync {
                overlay_id: overlay.id,
                name: overlay.name.clone(),
            }
        }
    }

    /// The server action of a server task.
    pub fn server_action(&self) -> Option<(Action, &ServerRef)> {
        match self {
            Task::ServerStart(r) => Some((Action::Start, r)),
            Task::ServerStop(r) => Some((Action::Stop, r)),
            Task::ServerRestart(r) => Some((Action::Restart, r)),
            Task::ServerReset(r) => Some((Action::Reset, r)),
            Task::ServerDelete(r) => Some((Action::Delete, r)),
            _ => None,
        }
    }

    /// What a page says while this job is queued or running for its
    /// server ("starting…"); None for jobs that do not change its state.
    pub fn transition(&self) -> Option<&'static str> {
        Some(match self.server_action()?.0 {
            Action::Start => "starting…",
            Action::Stop => "stopping…",
            Action::Restart => "restarting…",
            Action::Reset => "resetting…",
            Action::Delete => "deleting…",
        })
    }

    /// The stored kind (the serde tag).
    pub fn kind(&self) -> &'static str {
        match self {
            Task::Install => "install",
            Task::UpdateCheck => "update-check",
            Task::ServerStart(_) => "server-start",
            Task::ServerStop(_) => "server-stop",
            Task::ServerRestart(_) => "server-restart",
            Task::ServerReset(_) => "server-reset",
            Task::ServerDelete(_) => "server-delete",
            Task::OverlayBuild { .. } => "overlay-build",
            Task::WorkshopSync { .. } => "workshop-sync",
            Task::WorkshopRefresh => "workshop-refresh",
            Task::ServerRcon { .. } => "server-rcon",
        }
    }

    /// Jobs with the same key never run at the same time: everything on
    /// one instance, everything writing one overlay's directory.
    pub fn lock_key(&self) -> Option<String> {
        match self {
            // steamcmd keeps one state directory: one run at a time.
            Task::Install | Task::UpdateCheck => Some("steamcmd".into()),
            Task::WorkshopRefresh => None,
            Task::OverlayBuild { overlay_id, .. } | Task::WorkshopSync { overlay_id, .. } => {
                Some(overlays::lock_key(*overlay_id))
            }
            Task::ServerRcon { name, .. } => Some(servers::lock_key(name)),
            _ => self
                .server_action()
                .map(|(_, r)| servers::lock_key(&r.name)),
        }
    }

    /// What the job is about, for that thing's page.
    pub fn subject(&self) -> Option<String> {
        match self {
            Task::Install | Task::UpdateCheck | Task::WorkshopRefresh => None,
            Task::OverlayBuild { overlay_id, .. } | Task::WorkshopSync { overlay_id, .. } => {
                Some(overlays::subject(*overlay_id))
            }
            Task::ServerRcon { server_id, .. } => Some(servers::subject(*server_id)),
            _ => self
                .server_action()
                .map(|(_, r)| servers::subject(r.server_id)),
        }
    }

    pub fn title(&self) -> String {
        match self {
            Task::Install => "install / update the game".into(),
            Task::UpdateCheck => "check Steam for a new game build".into(),
            Task::OverlayBuild { name, clean, .. } => format!(
                "build overlay {name}{}",
                if *clean { " (clean)" } else { "" }
            ),
            Task::WorkshopSync { name, .. } => format!("sync workshop overlay {name}"),
            Task::WorkshopRefresh => "refresh all workshop overlays".into(),
            Task::ServerRcon { name, command, .. } => {
                format!("RCON on server {name}: {command}")
            }
            _ => match self.server_action() {
                Some((action, r)) => format!("{} server {}", action.verb(), r.name),
                None => self.kind().into(),
            },
        }
    }

    /// The row to queue: on behalf of `user_id` (None: a system job),
    /// `why` added to the title.
    pub fn to_job(&self, user_id: Option<i64>, why: Option<&str>) -> NewJob {
        let mut payload = serde_json::to_value(self).unwrap_or_default();
        if let Some(fields) = payload.as_object_mut() {
            fields.remove("kind");
        }
        let title = match why {
            Some(why) => format!("{} ({why})", self.title()),
            None => self.title(),
        };
        NewJob {
            kind: self.kind().to_string(),
            payload,
            user_id,
            lock_key: self.lock_key(),
            title,
            subject: self.subject(),
        }
    }

    /// The task stored in `job`.
    pub fn from_job(job: &Job) -> Result<Task, TaskError> {
        let unreadable = |reason: String| TaskError::Unreadable {
            id: job.id,
            kind: job.kind.clone(),
            reason,
        };
        let mut payload: serde_json::Value =
            serde_json::from_str(&job.args).map_err(|e| unreadable(e.to_string()))?;
        // Jobs queued by earlier versions stored an l4d2ctl argv.
        if payload.is_array() {
            payload = serde_json::json!({});
        }
        let fields = payload
            .as_object_mut()
            .ok_or_else(|| unreadable("its payload is not a JSON object".into()))?;
        fields.insert("kind".into(), job.kind.clone().into());
        serde_json::from_value(payload).map_err(|e| unreadable(e.to_string()))
    }
}

/// Queues `task`.
pub async fn submit(jobs: &Jobs, task: &Task, user_id: Option<i64>) -> Result<Queued, sqlx::Error> {
    jobs.submit(task.to_job(user_id, None)).await
}

/// Records the desired state and queues the action's job (after any job
/// already queued or running for this server), in one transaction: the
/// desired state always matches the last requested job, however requests
/// race. Returns the job id.
pub async fn request_server_action(
    jobs: &Jobs,
    server: &ServerRow,
    action: Action,
    user_id: i64,
    why: Option<&str>,
) -> Result<i64, sqlx::Error> {
    let mut tx = jobs.pool().begin().await?;
    // The first statement writes, so concurrent requests serialise here.
    servers::record_request(&mut tx, server.id, action).await?;
    let queued = Jobs::submit_in(
        &mut tx,
        Task::server(action, server).to_job(Some(user_id), why),
    )
    .await?;
    tx.commit().await?;
    jobs.wake();
    Ok(queued.id)
}

/// What a converge pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Converged {
    /// Jobs queued, by server name and action.
    pub queued: Vec<(String, Action)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConvergeError {
    #[error("cannot read the servers' state: {0}")]
    Status(#[from] crate::l4d2ctl::HostError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Brings every server to its desired state after the panel was down (a
/// crash, a kill, a reboot): see [`servers::converge_action`]. Servers with
/// a job already queued or running are left to it. Runs once at startup,
/// after interrupted jobs were recovered; the jobs it queues belong to the
/// servers' owners, so they see them in their lists.
pub async fn converge(jobs: &Jobs, host: &HostClient) -> Result<Converged, ConvergeError> {
    let rows = servers::list_all(jobs.pool()).await?;
    if rows.is_empty() {
        return Ok(Converged::default());
    }
    let busy: HashSet<String> = jobs.busy_lock_keys().await?.into_iter().collect();
    let actual = host.list().await?;
    let mut done = Converged::default();
    for server in rows {
        let task_key = servers::lock_key(&server.name);
        if busy.contains(&task_key) {
            continue;
        }
        let up = actual.get(&server.name).is_some_and(|s| s.is_up());
        let Some(action) = servers::converge_action(&server, up) else {
            continue;
        };
        let job = Task::server(action, &server).to_job(
            Some(server.owner_id),
            Some("back to its desired state after the panel restarted"),
        );
        jobs.submit(job).await?;
        done.queued.push((server.name.clone(), action));
    }
    Ok(done)
}

/// Runs every [`Task`]; the job engine's [`Runner`].
pub struct TaskRunner {
    config: Arc<Config>,
    host: HostClient,
    jobs: Jobs,
    live: LiveHub,
    steam_guard: SteamGuard,
    builds: game::builds::Builds,
}

impl TaskRunner {
    pub fn new(
        config: Arc<Config>,
        host: HostClient,
        jobs: Jobs,
        live: LiveHub,
        steam_guard: SteamGuard,
        builds: game::builds::Builds,
    ) -> Self {
        TaskRunner {
            config,
            host,
            jobs,
            live,
            steam_guard,
            builds,
        }
    }

    async fn run_task(&self, ctx: &mut JobCtx) -> Result<(), JobFailure> {
        let task = Task::from_job(ctx.job()).map_err(JobFailure::from_error)?;
        match task {
            Task::Install => {
                let result =
                    game::install_job(ctx, &self.host, &["install"], &self.steam_guard).await;
                self.builds.invalidate();
                result
            }
            Task::UpdateCheck => {
                let status =
                    game::builds::check_job(ctx, &self.host, &["check-update", "--json"]).await?;
                if let Some(new) = status.available() {
                    if self.config.auto_install {
                        let why = format!("Steam published game build {new}");
                        let queued = self
                            .jobs
                            .submit(Task::Install.to_job(None, Some(&why)))
                            .await?;
                        ctx.say(format!(
                            "installing it beside the current build: job {}",
                            queued.id
                        ))
                        .await?;
                    } else {
                        ctx.say(
                            "not installing it: automatic installs are off (LEFT4ME_AUTO_INSTALL)",
                        )
                        .await?;
                    }
                }
                Ok(())
            }
            Task::OverlayBuild {
                overlay_id, clean, ..
            } => overlays::build::run(ctx, &self.config, &self.host, overlay_id, clean).await,
            Task::WorkshopSync { overlay_id, .. } => {
                overlays::workshop::sync_job(ctx, &self.config, overlay_id).await
            }
            Task::WorkshopRefresh => overlays::workshop::refresh_job(ctx, &self.config).await,
            Task::ServerRcon {
                server_id, command, ..
            } => self.run_rcon(ctx, server_id, &command).await,
            ref server_task => {
                let Some((action, r)) = server_task.server_action() else {
                    return Err(JobFailure::msg(format!(
                        "job kind {:?} has no runner",
                        server_task.kind()
                    )));
                };
                let env = servers::ActionEnv {
                    config: &self.config,
                    host: &self.host,
                };
                let result = servers::run_action(ctx, &env, r.server_id, action).await;
                // Whatever happened, the instance may be on another build now.
                self.builds.invalidate();
                result?;
                if matches!(action, Action::Stop | Action::Delete) {
                    self.live.server_stopped(r.server_id);
                }
                Ok(())
            }
        }
    }
}

impl TaskRunner {
    /// A scheduled console command: on the server's owner's behalf, into
    /// the console history like one typed on the RCON page.
    async fn run_rcon(
        &self,
        ctx: &mut JobCtx,
        server_id: i64,
        command: &str,
    ) -> Result<(), JobFailure> {
        let owner = ctx
            .job()
            .user_id
            .ok_or_else(|| JobFailure::msg("an RCON job needs the server's owner"))?;
        let target = servers::find_owned_rcon(self.jobs.pool(), owner, server_id)
            .await?
            .ok_or_else(|| JobFailure::msg(format!("server {server_id} no longer exists")))?;
        let port = target
            .port()
            .ok_or_else(|| JobFailure::msg(format!("server {} has no valid port", target.name)))?;
        ctx.say(format!("> {command}")).await?;
        let result = self
            .live
            .rcon(&target.name, port, &target.rcon_password, command)
            .await;
        let (ok, output) = match &result {
            Ok(out) => (true, out.clone()),
            Err(e) => (false, e.to_string()),
        };
        servers::rcon::record(
            self.jobs.pool(),
            server_id,
            owner,
            command,
            ok,
            output.clone(),
        )
        .await?;
        for line in output.lines() {
            ctx.say(line).await?;
        }
        result
            .map(drop)
            .map_err(|e| JobFailure::msg(format!("RCON on server {}: {e}", target.name)))
    }
}

impl Runner for TaskRunner {
    fn run<'a>(&'a self, ctx: &'a mut JobCtx) -> BoxFuture<'a, Result<(), JobFailure>> {
        Box::pin(async move {
            let result = self.run_task(ctx).await;
            if let (Err(failure), Some(user)) = (&result, ctx.job().user_id) {
                let event = alerts::AlertEvent::JobFailed {
                    job_id: ctx.job().id,
                    title: ctx
                        .job()
                        .title
                        .clone()
                        .unwrap_or_else(|| ctx.job().kind.clone()),
                    summary: failure.to_string(),
                };
                if let Err(e) = alerts::raise(self.jobs.pool(), user, &event).await {
                    tracing::warn!(job = ctx.job().id, error = %e, "cannot queue the job-failed alert");
                }
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::JobState;

    fn job(kind: &str, args: &str) -> Job {
        Job {
            id: 7,
            kind: kind.into(),
            args: args.into(),
            user_id: None,
            coalesce_key: None,
            state: JobState::Queued,
            error: None,
            created_at: String::new(),
            started_at: None,
            finished_at: None,
            lock_key: None,
            title: None,
            subject: None,
        }
    }

    #[test]
    fn every_task_round_trips_through_a_job_row() {
        let server = ServerRef {
            server_id: 3,
            name: "alpha".into(),
        };
        for task in [
            Task::Install,
            Task::ServerStart(server.clone()),
            Task::ServerStop(server.clone()),
            Task::ServerRestart(server.clone()),
            Task::ServerReset(server.clone()),
            Task::ServerDelete(server),
            Task::OverlayBuild {
                overlay_id: 4,
                clean: true,
                name: "maps".into(),
            },
            Task::WorkshopSync {
                overlay_id: 5,
                name: "ws".into(),
            },
            Task::WorkshopRefresh,
            Task::ServerRcon {
                server_id: 3,
                name: "alpha".into(),
                command: "say hi".into(),
            },
        ] {
            let new = task.to_job(Some(1), None);
            assert_eq!(new.kind, task.kind());
            let row = job(&new.kind, &new.payload.to_string());
            assert_eq!(Task::from_job(&row).unwrap(), task, "{}", new.payload);
        }
    }

    #[test]
    fn keys_subjects_and_titles() {
        let t = Task::ServerRestart(ServerRef {
            server_id: 9,
            name: "b".into(),
        });
        assert_eq!(t.lock_key().as_deref(), Some("server:b"));
        assert_eq!(t.subject().as_deref(), Some("server:9"));
        assert_eq!(t.title(), "restart server b");
        assert_eq!(t.to_job(None, Some("why")).title, "restart server b (why)");
        let b = Task::OverlayBuild {
            overlay_id: 2,
            clean: false,
            name: "x".into(),
        };
        assert_eq!(b.lock_key().as_deref(), Some("overlay:2"));
        assert_eq!(b.subject().as_deref(), Some("overlay:2"));
        // Installs and update checks share steamcmd: one at a time.
        assert_eq!(Task::Install.lock_key().as_deref(), Some("steamcmd"));
        assert_eq!(Task::UpdateCheck.lock_key(), Task::Install.lock_key());
        assert_eq!(Task::UpdateCheck.subject(), None);
        assert_eq!(Task::WorkshopRefresh.lock_key(), None);
        assert_eq!(Task::WorkshopRefresh.subject(), None);
    }

    #[test]
    fn rows_of_earlier_versions_and_bad_rows() {
        // An install queued as an l4d2ctl argv, a server job without a name.
        assert_eq!(
            Task::from_job(&job("install", r#"["install"]"#)).unwrap(),
            Task::Install
        );
        assert_eq!(
            Task::from_job(&job("server-stop", r#"{"server_id": 4}"#)).unwrap(),
            Task::ServerStop(ServerRef {
                server_id: 4,
                name: String::new()
            })
        );
        for (kind, args) in [
            ("status", r#"["status","x"]"#),
            ("server-start", "{}"),
            ("overlay-build", r#"{"overlay_id": "one"}"#),
            ("install", "not json"),
            ("install", "3"),
        ] {
            let err = Task::from_job(&job(kind, args)).unwrap_err().to_string();
            assert!(err.contains(kind) && err.contains("job 7"), "{err}");
        }
    }
}
