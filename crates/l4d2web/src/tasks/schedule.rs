//! The scheduler: turns due schedule occurrences into jobs.
//!
//! It sleeps until the earliest next occurrence of any enabled schedule
//! (or until a schedule changes), never on a fixed tick: an idle panel is
//! not woken by it. While a "restart when empty" schedule waits for its
//! servers to empty it looks at the live state every [`EMPTY_CHECK`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{request_server_action, Task};
use crate::jobs::Jobs;
use crate::live::LiveHub;
use crate::schedules::{self, Due, Schedule, ScheduleAction};
use crate::servers::{self, Action, DesiredState, ServerRow};

/// How often a waiting "restart when empty" looks at its servers (the
/// poller refreshes an unwatched server's player count every 30 s).
const EMPTY_CHECK: Duration = Duration::from_secs(15);
/// The longest sleep: a clock that jumps is noticed within this.
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// Wakes the scheduler when schedules were added, removed or paused.
#[derive(Clone, Default)]
pub struct SchedulerHandle(Arc<Notify>);

impl SchedulerHandle {
    pub fn schedules_changed(&self) {
        self.0.notify_one();
    }
}

pub struct Scheduler {
    jobs: Jobs,
    live: LiveHub,
    grace: chrono::Duration,
    wake: SchedulerHandle,
    /// "Restart when empty": since when each (schedule, server) has been
    /// seen without human players, and which servers are done.
    empty_since: HashMap<(i64, i64), DateTime<Utc>>,
    restarted: HashMap<i64, Vec<i64>>,
}

impl Scheduler {
    pub fn new(jobs: Jobs, live: LiveHub, grace: Duration, wake: SchedulerHandle) -> Scheduler {
        Scheduler {
            jobs,
            live,
            grace: chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX),
            wake,
            empty_since: HashMap::new(),
            restarted: HashMap::new(),
        }
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let sleep = match self.tick(Utc::now()).await {
                Ok(sleep) => sleep,
                Err(e) => {
                    tracing::warn!(error = %e, "running schedules failed; trying again in a minute");
                    Duration::from_secs(60)
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.0.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Handles every due occurrence; returns how long to sleep.
    pub async fn tick(&mut self, now: DateTime<Utc>) -> Result<Duration, sqlx::Error> {
        let pool = self.jobs.pool().clone();
        let list = schedules::list_enabled(&pool).await?;
        let mut next: Option<DateTime<Utc>> = None;
        let mut waiting = false;
        for s in &list {
            let Some(timing) = s.timing() else {
                continue;
            };
            let since = s
                .last_run_at
                .as_deref()
                .or(Some(s.created_at.as_str()))
                .and_then(schedules::parse_stamp)
                .unwrap_or(now);
            match schedules::due(&timing, since, now, self.grace) {
                Due::At(t) => next = Some(next.map_or(t, |n| n.min(t))),
                Due::Never => {}
                Due::Missed(at) => {
                    let when = at.with_timezone(&timing.tz).format("%Y-%m-%d %H:%M %Z");
                    schedules::record_run(
                        &pool,
                        s.id,
                        at,
                        &format!("missed: the panel was not running at {when}"),
                    )
                    .await?;
                    tracing::info!(schedule = s.id, %at, "schedule missed while the panel was down");
                    next = Some(now);
                }
                Due::Run(at) => {
                    let result = self.fire(s, at).await?;
                    tracing::info!(schedule = s.id, %at, %result, "schedule ran");
                    schedules::record_run(&pool, s.id, at, &result).await?;
                    next = Some(now); // its next occurrence is computed on the next pass
                }
            }
            if s.armed_at.is_some() && s.action == ScheduleAction::RestartWhenEmpty {
                waiting |= self.check_empty(s, now).await?;
            }
        }
        // Forget what belongs to schedules no longer waiting.
        let armed: Vec<i64> = list
            .iter()
            .filter(|s| s.armed_at.is_some())
            .map(|s| s.id)
            .collect();
        self.empty_since.retain(|(id, _), _| armed.contains(id));
        self.restarted.retain(|id, _| armed.contains(id));

        let mut sleep = next
            .map(|t| (t - now).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP);
        if waiting {
            sleep = sleep.min(EMPTY_CHECK);
        }
        // Occurrences are whole minutes; waking a little late is harmless,
        // waking in a loop is not.
        Ok(sleep.max(Duration::from_millis(200)))
    }

    /// The servers a schedule acts on: its server, or its blueprint's
    /// servers (all its owner's), without those being deleted.
    async fn targets(&self, s: &Schedule) -> Result<Vec<ServerRow>, sqlx::Error> {
        let all = servers::list_owned(self.jobs.pool(), s.owner_id).await?;
        Ok(all
            .into_iter()
            .filter(|r| !r.deleting)
            .filter(|r| match (s.server_id, s.blueprint_id) {
                (Some(id), _) => r.id == id,
                (None, Some(b)) => r.blueprint_id == b,
                (None, None) => false,
            })
            .collect())
    }

    /// Runs the occurrence at `at`; returns what happened, for the page.
    async fn fire(&mut self, s: &Schedule, at: DateTime<Utc>) -> Result<String, sqlx::Error> {
        let targets = self.targets(s).await?;
        if targets.is_empty() {
            return Ok("nothing to do: no server".into());
        }
        if s.action == ScheduleAction::RestartWhenEmpty {
            let running = targets
                .iter()
                .filter(|r| r.desired_state == DesiredState::Running)
                .count();
            if running == 0 {
                return Ok("skipped: not running".into());
            }
            if s.armed_at.is_some() {
                // Still waiting from an earlier occurrence: keep counting.
                return Ok(s.last_result.clone().unwrap_or_default());
            }
            let result = format!(
                "waiting until no human player has been on for {} min",
                s.empty_minutes
            );
            schedules::set_armed(self.jobs.pool(), s.id, Some(at), &result).await?;
            self.restarted.remove(&s.id);
            self.empty_since.retain(|(id, _), _| *id != s.id);
            return Ok(result);
        }
        let mut done = Vec::new();
        let mut skipped = Vec::new();
        for server in &targets {
            let running = server.desired_state == DesiredState::Running;
            let job = match s.action {
                ScheduleAction::Start => Some(self.action(server, Action::Start, s).await?),
                ScheduleAction::Stop => Some(self.action(server, Action::Stop, s).await?),
                ScheduleAction::Restart if running => {
                    Some(self.action(server, Action::Restart, s).await?)
                }
                ScheduleAction::Rcon if running => {
                    let task = Task::ServerRcon {
                        server_id: server.id,
                        name: server.name.clone(),
                        command: s.command.clone(),
                    };
                    Some(
                        self.jobs
                            .submit(task.to_job(Some(s.owner_id), Some("scheduled")))
                            .await?
                            .id,
                    )
                }
                _ => None,
            };
            match job {
                Some(id) => done.push(format!("{} (job {id})", server.name)),
                None => skipped.push(server.name.clone()),
            }
        }
        let mut result = if done.is_empty() {
            String::from("skipped")
        } else {
            format!("queued for {}", done.join(", "))
        };
        if !skipped.is_empty() {
            result.push_str(&format!("; not running: {}", skipped.join(", ")));
        }
        Ok(result)
    }

    async fn action(
        &self,
        server: &ServerRow,
        action: Action,
        s: &Schedule,
    ) -> Result<i64, sqlx::Error> {
        let why = format!("scheduled: {}", s.cron);
        request_server_action(&self.jobs, server, action, s.owner_id, Some(&why)).await
    }

    /// One look at a waiting "restart when empty" schedule: restarts each
    /// server that has been without humans long enough. Returns whether it
    /// is still waiting.
    async fn check_empty(&mut self, s: &Schedule, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
        let targets = self.targets(s).await?;
        let needed = chrono::Duration::minutes(s.empty_minutes);
        let mut waiting = false;
        let mut names = Vec::new();
        for server in targets
            .iter()
            .filter(|r| r.desired_state == DesiredState::Running)
        {
            if self
                .restarted
                .get(&s.id)
                .is_some_and(|d| d.contains(&server.id))
            {
                continue;
            }
            let live = self.live.snapshot(server.id);
            // Unknown (not polled yet, poll failing) is not "empty".
            let empty = live.error.is_none() && live.humans == Some(0);
            let key = (s.id, server.id);
            if !empty {
                self.empty_since.remove(&key);
                waiting = true;
                continue;
            }
            let since = *self.empty_since.entry(key).or_insert(now);
            if now - since < needed {
                waiting = true;
                continue;
            }
            let job = self.action(server, Action::Restart, s).await?;
            names.push(format!("{} (job {job})", server.name));
            self.restarted.entry(s.id).or_default().push(server.id);
            self.empty_since.remove(&key);
        }
        if !names.is_empty() || !waiting {
            let result = if names.is_empty() {
                "done: no server left to restart".to_string()
            } else {
                format!(
                    "empty for {} min: restart queued for {}",
                    s.empty_minutes,
                    names.join(", ")
                )
            };
            let armed = waiting
                .then(|| s.armed_at.as_deref().and_then(schedules::parse_stamp))
                .flatten();
            schedules::set_armed(self.jobs.pool(), s.id, armed, &result).await?;
        }
        Ok(waiting)
    }
}
