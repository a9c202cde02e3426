//! The loop that keeps the game current: it queues a check for a new build
//! on Steam when a game says Steam wants it restarted (the periodic check
//! is the deployment's `left4me-update-check.timer`: `left4me update-check`),
//! and moves servers onto the newest installed build as their blueprint's
//! policy says (see [`crate::game::rollout`]). Every move is a restart
//! job in the server owner's name, with the reason in its title.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use l4d2_contract::builds::{BuildId, BuildsReport, RESTART_FOR_UPDATE_LINE};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{request_server_action, submit, Task};
use crate::game::builds::Builds;
use crate::game::rollout::{self, EmptySince, Policy, Rollout};
use crate::jobs::{JobState, Jobs};
use crate::l4d2ctl::HostClient;
use crate::live::LiveHub;
use crate::servers::console::{ConsoleHub, ConsoleSubscription};
use crate::servers::{self, Action, DesiredState, ServerRow};

/// A game asking for a restart onto a new build queues a check at most
/// this often.
const GAME_SIGNAL_DEBOUNCE: Duration = Duration::from_secs(600);

/// Tells the loop that a game printed Steam's restart request. Cheap to
/// clone; the console tap calls [`GameSignal::line`] for every line.
#[derive(Clone, Default)]
pub struct GameSignal(Arc<Notify>);

impl GameSignal {
    pub fn line(&self, line: &str) {
        if line.contains(RESTART_FOR_UPDATE_LINE) {
            self.0.notify_one();
        }
    }
}

pub struct RolloutLoop {
    jobs: Jobs,
    host: HostClient,
    builds: Builds,
    live: LiveHub,
    consoles: ConsoleHub,
    tick: Duration,
    signal: GameSignal,
    empty: EmptySince,
    canaries: HashMap<i64, CanaryWatch>,
    shutdown: CancellationToken,
}

/// The console of a canary, read while it is watched.
struct CanaryWatch {
    sub: ConsoleSubscription,
    /// The first SourceMod error of the current run.
    error: Option<String>,
    /// The current run's first line was seen: the errors above are its own.
    saw_start: bool,
    /// Times the console was read.
    reads: u32,
    since: Instant,
}

impl CanaryWatch {
    fn new(sub: ConsoleSubscription) -> Self {
        CanaryWatch {
            sub,
            error: None,
            saw_start: false,
            reads: 0,
            since: Instant::now(),
        }
    }

    /// Whether the console was read long enough to judge the current run:
    /// its start was seen and read again at a later step, or (a chatty
    /// game whose start is out of the follower's backlog) half a minute.
    fn judged(&self) -> bool {
        (self.saw_start && self.reads >= 2) || self.since.elapsed() >= Duration::from_secs(30)
    }

    fn read(&mut self) {
        self.reads += 1;
        let backlog = std::mem::take(&mut self.sub.backlog);
        for line in backlog.iter().map(|l| l.to_string()) {
            self.line(&line);
        }
        while let Ok(line) = self.sub.rx.try_recv() {
            self.line(&line);
        }
    }

    fn line(&mut self, line: &str) {
        if line.contains(rollout::START_LINE) {
            // An earlier run's errors (in the backlog) are not the canary's.
            self.error = None;
            self.saw_start = true;
        } else if self.error.is_none() && rollout::sourcemod_error(line) {
            self.error = Some(line.chars().take(300).collect());
        }
    }
}

pub struct LoopParts {
    pub jobs: Jobs,
    pub host: HostClient,
    pub builds: Builds,
    pub live: LiveHub,
    pub consoles: ConsoleHub,
    pub tick: Duration,
    pub signal: GameSignal,
}

impl RolloutLoop {
    pub fn new(p: LoopParts, shutdown: CancellationToken) -> Self {
        RolloutLoop {
            jobs: p.jobs,
            host: p.host,
            builds: p.builds,
            live: p.live,
            consoles: p.consoles,
            tick: p.tick,
            signal: p.signal,
            empty: EmptySince::default(),
            canaries: HashMap::new(),
            shutdown,
        }
    }

    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(self.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_signal: Option<Instant> = None;
        let signal = self.signal.0.clone();
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tick.tick() => {
                    if let Err(e) = self.step().await {
                        tracing::warn!(error = %e, "moving servers onto the newest game build");
                    }
                }
                _ = signal.notified() => {
                    if last_signal.is_none_or(|at| at.elapsed() >= GAME_SIGNAL_DEBOUNCE) {
                        last_signal = Some(Instant::now());
                        self.queue_check("a server said Steam wants it restarted for an update").await;
                    }
                }
            }
        }
    }

    async fn queue_check(&self, why: &str) {
        let job = Task::UpdateCheck.to_job(None, Some(why));
        if let Err(e) = self.jobs.submit(job).await {
            tracing::warn!(error = %e, "cannot queue the check for a new game build");
        }
    }

    /// One look at every blueprint with an automatic policy.
    pub async fn step(&mut self) -> Result<(), StepError> {
        let pool = self.jobs.pool().clone();
        let policies = rollout::automatic(&pool).await?;
        if policies.is_empty() {
            self.canaries.clear();
            return Ok(());
        }
        // Jobs that install a build or move a server invalidate the cache.
        let report = self.builds.report().await?;
        let Some(newest) = report.newest else {
            return Ok(());
        };
        let servers = servers::list_all(&pool).await?;
        // The steady state (everyone on the newest build, no rollout under
        // way) costs no host call beyond the cached report.
        let anyone_behind = servers.iter().any(|s| {
            follows_newest(s)
                && policies.iter().any(|(id, ..)| *id == s.blueprint_id)
                && on_older_build(&report, &s.name, newest)
        });
        if !anyone_behind && !rollout::any_under_way(&pool, newest).await? {
            self.canaries.clear();
            return Ok(());
        }
        let busy: HashSet<String> = self.jobs.busy_lock_keys().await?.into_iter().collect();
        let up: HashSet<String> = self
            .host
            .list()
            .await?
            .into_values()
            .filter(|s| s.is_up())
            .map(|s| s.name)
            .collect();
        let readings = self.live.readings();
        let mut watched = HashSet::new();
        for (blueprint_id, policy, minutes) in policies {
            let wait = Duration::from_secs(u64::try_from(minutes).unwrap_or(0) * 60);
            let members: Vec<Member> = servers
                .iter()
                .filter(|s| s.blueprint_id == blueprint_id && follows_newest(s))
                .map(|s| Member {
                    behind: on_older_build(&report, &s.name, newest),
                    busy: busy.contains(&servers::lock_key(&s.name)),
                    up: up.contains(&s.name),
                    server: s,
                })
                .collect();
            match policy {
                Policy::Manual => {}
                Policy::WhenEmpty => self.when_empty(&members, newest, wait, &readings).await?,
                Policy::Canary => {
                    if let Some(id) = self.canary(blueprint_id, &members, newest, wait).await? {
                        watched.insert(id);
                    }
                }
            }
        }
        // Rollouts that ended (or whose policy changed) stop being watched.
        self.canaries.retain(|id, _| watched.contains(id));
        Ok(())
    }

    async fn when_empty(
        &mut self,
        members: &[Member<'_>],
        newest: BuildId,
        wait: Duration,
        readings: &HashMap<i64, crate::live::Reading>,
    ) -> Result<(), StepError> {
        let now = Instant::now();
        for m in members.iter().filter(|m| m.behind && !m.busy && m.up) {
            let humans = readings.get(&m.server.id).map(|r| r.humans);
            let Some(empty_for) = self.empty.observe(m.server.id, humans, now) else {
                continue;
            };
            if empty_for >= wait {
                let why = format!(
                    "onto game build {newest}: no players for {} min",
                    empty_for.as_secs() / 60
                );
                self.restart(m.server, &why).await?;
                self.empty.forget(m.server.id);
            }
        }
        Ok(())
    }

    /// Runs a canary rollout one step; returns the rollout being watched.
    async fn canary(
        &mut self,
        blueprint_id: i64,
        members: &[Member<'_>],
        newest: BuildId,
        wait: Duration,
    ) -> Result<Option<i64>, StepError> {
        let pool = self.jobs.pool().clone();
        let behind: Vec<&Member> = members.iter().filter(|m| m.behind).collect();
        let Some(r) = rollout::find(&pool, blueprint_id, newest).await? else {
            let Some(canary) = behind.iter().find(|m| m.up && !m.busy) else {
                return Ok(None);
            };
            let why = format!("canary for game build {newest}");
            let job = self.restart(canary.server, &why).await?;
            let s = canary.server;
            rollout::start_canary(
                &pool,
                blueprint_id,
                newest,
                (s.id, &s.name, s.crash_count),
                job,
            )
            .await?;
            return Ok(None);
        };
        match r.state.as_str() {
            "canary" => self.watch_canary(&r, members, newest, wait).await,
            "following" => {
                for m in behind.iter().filter(|m| !m.busy) {
                    let why = format!("onto game build {newest}, after the canary");
                    self.restart(m.server, &why).await?;
                }
                if behind.is_empty() {
                    rollout::set_state(&pool, r.id, "done", None).await?;
                }
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    async fn watch_canary(
        &mut self,
        r: &Rollout,
        members: &[Member<'_>],
        newest: BuildId,
        wait: Duration,
    ) -> Result<Option<i64>, StepError> {
        let pool = self.jobs.pool().clone();
        let name = r.canary_name.clone().unwrap_or_default();
        let stop = |message: String| async move {
            tracing::warn!(%message, "rollout stopped");
            rollout::set_state(&pool, r.id, "stopped", Some(&message)).await
        };
        let Some(canary) = members
            .iter()
            .find(|m| Some(m.server.id) == r.canary_server_id)
        else {
            stop(format!(
                "the canary {name} was deleted, stopped, kept on another build or moved to another blueprint before it proved build {newest}"
            ))
            .await?;
            return Ok(None);
        };
        if r.canary_since.is_none() {
            let job = match r.canary_job_id {
                Some(id) => self.jobs.get(id).await?,
                None => None,
            };
            match job.map(|j| (j.state, j.error)) {
                Some((JobState::Queued | JobState::Running, _)) => return Ok(Some(r.id)),
                Some((JobState::Succeeded, _)) => {
                    rollout::canary_moved(self.jobs.pool(), r.id).await?;
                    self.canaries.remove(&r.id);
                }
                Some((JobState::Failed, error)) => {
                    stop(format!(
                        "the canary {name} could not move to build {newest}: {}",
                        error.unwrap_or_else(|| "its restart failed".into())
                    ))
                    .await?;
                    return Ok(None);
                }
                None => {
                    stop(format!("the canary {name}'s move job is gone")).await?;
                    return Ok(None);
                }
            }
            return Ok(Some(r.id));
        }
        if !self.canaries.contains_key(&r.id) {
            match self
                .consoles
                .subscribe(canary.server.id, &canary.server.name, &self.shutdown)
            {
                Ok(sub) => {
                    self.canaries.insert(r.id, CanaryWatch::new(sub));
                }
                Err(e) => {
                    tracing::warn!(error = %e, canary = %name, "cannot follow the canary's console")
                }
            }
        }
        let (error, judged) = match self.canaries.get_mut(&r.id) {
            Some(w) => {
                w.read();
                (w.error.clone(), w.judged())
            }
            None => (None, false),
        };
        let server = canary.server;
        let problem = if server.crash_loop {
            Some("is in a crash loop".to_string())
        } else if r.canary_crashes.is_some_and(|c| server.crash_count > c) {
            Some(format!(
                "crashed ({})",
                server.last_exit.as_deref().unwrap_or("no exit status")
            ))
        } else if !canary.up && !canary.busy {
            Some("is not running".to_string())
        } else {
            error.map(|line| format!("logged a SourceMod error: {line}"))
        };
        if let Some(problem) = problem {
            stop(format!(
                "the canary {name} {problem} on build {newest}; the other servers stay where they are"
            ))
            .await?;
            return Ok(None);
        }
        let since = r
            .canary_since
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        let proven = judged
            && since.is_some_and(|t| {
                let ran = chrono::Utc::now().signed_duration_since(t);
                ran.to_std().is_ok_and(|d| d >= wait)
            });
        if proven {
            let note = format!(
                "the canary {name} ran {} min on build {newest} without trouble",
                wait.as_secs() / 60
            );
            rollout::set_state(self.jobs.pool(), r.id, "following", Some(&note)).await?;
            return Ok(None);
        }
        Ok(Some(r.id))
    }

    /// Queues a restart of `server` in its owner's name; returns the job.
    async fn restart(&self, server: &ServerRow, why: &str) -> Result<i64, StepError> {
        tracing::info!(server = %server.name, %why, "moving a server onto a new game build");
        Ok(request_server_action(
            &self.jobs,
            server,
            Action::Restart,
            server.owner_id,
            Some(why),
        )
        .await?)
    }
}

/// A server of a blueprint with an automatic policy, as one step saw it.
struct Member<'a> {
    server: &'a ServerRow,
    /// Initialised on a build older than the newest.
    behind: bool,
    /// A job for it is queued or running.
    busy: bool,
    up: bool,
}

/// A server a rollout may move: it should run, is not being deleted and is
/// not kept on an older build.
fn follows_newest(s: &ServerRow) -> bool {
    !s.deleting && s.desired_state == DesiredState::Running && s.pinned_build.is_none()
}

fn on_older_build(report: &BuildsReport, name: &str, newest: BuildId) -> bool {
    report.build_of(name).is_some_and(|b| b.id < newest)
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Host(#[from] crate::l4d2ctl::HostError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Queues a check now (the "Check now" button).
pub async fn check_now(jobs: &Jobs, user_id: i64) -> Result<i64, sqlx::Error> {
    Ok(submit(jobs, &Task::UpdateCheck, Some(user_id)).await?.id)
}
