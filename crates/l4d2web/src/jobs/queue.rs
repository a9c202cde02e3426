//! The queue: enqueueing (with coalescing of system jobs), claiming in
//! order under lock keys, workers, recovery after a crash, and the
//! shutdown grace period.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::SqlitePool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::ctx::{JobCtx, JobFailure};
use super::log::JobLog;
use super::model::{Job, JobState, LineStream, NewJob, Queued};
use crate::db::now_text;

pub(super) const RECOVERY_REASON: &str = "interrupted: the left4me process stopped while this job was running (crash or kill); it was not re-run, check the host and run the action again";

/// What a job does: given its context (row, log, children), run it to
/// success or failure. Implemented once, by the `tasks` module.
pub trait Runner: Send + Sync + 'static {
    fn run<'a>(&'a self, ctx: &'a mut JobCtx) -> BoxFuture<'a, Result<(), JobFailure>>;
}

/// The queue and its log; cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    pool: SqlitePool,
    log: JobLog,
    wake: Arc<Notify>,
    grace: Duration,
    /// Bumped whenever a job is queued, starts or ends: pages showing
    /// state that depends on jobs re-render on it.
    changes: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Jobs {
    /// `grace`: how long a shutdown waits for a running job before it is
    /// killed and handed back to the queue.
    pub fn new(pool: SqlitePool, grace: Duration) -> Self {
        Jobs {
            log: JobLog::new(pool.clone()),
            pool,
            wake: Arc::new(Notify::new()),
            grace,
            changes: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }

    /// Changes whenever a job is queued, starts or ends.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub fn log(&self) -> &JobLog {
        &self.log
    }

    /// Enqueues a job and wakes a worker.
    pub async fn submit(&self, new: NewJob) -> Result<Queued, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let queued = Self::submit_in(&mut tx, new).await?;
        tx.commit().await?;
        self.wake();
        Ok(queued)
    }

    /// [`Jobs::submit`] inside the caller's transaction, so a job and the
    /// state change it belongs to commit together, in one order. Call
    /// [`Jobs::wake`] after the commit. A system job (no user) identical to
    /// one still queued is absorbed by it.
    pub async fn submit_in(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        new: NewJob,
    ) -> Result<Queued, sqlx::Error> {
        let args = new.payload.to_string();
        let key = new
            .user_id
            .is_none()
            .then(|| format!("{}:{args}", new.kind));
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO jobs (kind, args, user_id, coalesce_key, lock_key, title, subject, state)
             VALUES (?, ?, ?, ?, ?, ?, ?, 'queued')
             ON CONFLICT (coalesce_key) WHERE state = 'queued' AND coalesce_key IS NOT NULL DO NOTHING
             RETURNING id",
        )
        .bind(&new.kind)
        .bind(&args)
        .bind(new.user_id)
        .bind(&key)
        .bind(&new.lock_key)
        .bind(&new.title)
        .bind(&new.subject)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(id) = inserted {
            return Ok(Queued { id, new: true });
        }
        // Inside one transaction the queued twin cannot be claimed between
        // the INSERT and this SELECT.
        let id =
            sqlx::query_scalar("SELECT id FROM jobs WHERE coalesce_key = ? AND state = 'queued'")
                .bind(&key)
                .fetch_one(&mut **tx)
                .await?;
        Ok(Queued { id, new: false })
    }

    /// Tells idle workers that a job was queued.
    pub fn wake(&self) {
        self.wake.notify_one();
        self.changed();
    }

    pub async fn get(&self, id: i64) -> Result<Option<Job>, sqlx::Error> {
        sqlx::query_as("SELECT * FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Newest first; `user_id = None` lists every job (admins).
    pub async fn list(&self, user_id: Option<i64>, limit: i64) -> Result<Vec<Job>, sqlx::Error> {
        sqlx::query_as(
            "SELECT * FROM jobs WHERE (?1 IS NULL OR user_id = ?1) ORDER BY id DESC LIMIT ?2",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Every job queued or running that is about something, oldest first.
    pub async fn active_with_subject(&self) -> Result<Vec<Job>, sqlx::Error> {
        sqlx::query_as(
            "SELECT * FROM jobs WHERE state IN ('queued', 'running') AND subject IS NOT NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
    }

    /// The newest jobs about `subject`.
    pub async fn list_for_subject(
        &self,
        subject: &str,
        limit: i64,
    ) -> Result<Vec<Job>, sqlx::Error> {
        sqlx::query_as("SELECT * FROM jobs WHERE subject = ? ORDER BY id DESC LIMIT ?")
            .bind(subject)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
    }

    /// Whether a job of `kind` ever succeeded.
    pub async fn ever_succeeded(&self, kind: &str) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE kind = ? AND state = 'succeeded')",
        )
        .bind(kind)
        .fetch_one(&self.pool)
        .await
    }

    /// Lock keys of every queued or running job.
    pub async fn busy_lock_keys(&self) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT DISTINCT lock_key FROM jobs WHERE state IN ('queued', 'running') AND lock_key IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await
    }

    /// Unlinks the jobs of `subject` from it, when the thing they were about
    /// is deleted (its id may be reused by a new one).
    pub async fn detach_subject(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        subject: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE jobs SET subject = NULL WHERE subject = ?")
            .bind(subject)
            .execute(&mut **tx)
            .await
            .map(drop)
    }

    /// Marks jobs left `running` by a killed process as failed, with the
    /// reason in the job and its log. Must run before workers start.
    pub async fn recover(&self) -> Result<u64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let stale: Vec<i64> = sqlx::query_scalar("SELECT id FROM jobs WHERE state = 'running'")
            .fetch_all(&mut *tx)
            .await?;
        for id in &stale {
            sqlx::query(
                "INSERT INTO job_lines (job_id, seq, stream, line)
                 VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM job_lines WHERE job_id = ?), ?, ?)",
            )
            .bind(id)
            .bind(id)
            .bind(LineStream::System)
            .bind(RECOVERY_REASON)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE jobs SET state = 'failed', error = ?, finished_at = ? WHERE id = ?",
            )
            .bind(RECOVERY_REASON)
            .bind(now_text())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        if !stale.is_empty() {
            tracing::warn!(jobs = ?stale, "marked jobs left running by a previous process as failed");
        }
        Ok(stale.len() as u64)
    }

    /// Starts `n` workers running jobs with `runner`. They stop claiming
    /// jobs when `shutdown` fires; a running job gets the grace period to
    /// finish, then is killed and handed back to the queue.
    pub fn spawn_workers(
        &self,
        n: usize,
        runner: Arc<dyn Runner>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinSet<()> {
        let mut set = tokio::task::JoinSet::new();
        for worker in 0..n {
            let jobs = self.clone();
            let shutdown = shutdown.clone();
            let runner = runner.clone();
            set.spawn(async move { jobs.worker_loop(worker, runner, shutdown).await });
        }
        set
    }

    async fn worker_loop(
        self,
        worker: usize,
        runner: Arc<dyn Runner>,
        shutdown: CancellationToken,
    ) {
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            match self.claim().await {
                Ok(Some(job)) => {
                    self.changed();
                    let id = job.id;
                    tracing::info!(worker, job = id, kind = %job.kind, "job started");
                    if let Err(e) = self.run(job, runner.as_ref(), &shutdown).await {
                        tracing::error!(job = id, error = %e, "job bookkeeping failed");
                    }
                }
                Ok(None) => {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = self.wake.notified() => {}
                        // Jobs enqueued by another process (CLI) are seen by polling.
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                }
                Err(e) => {
                    tracing::error!(worker, error = %e, "cannot claim a job");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    async fn claim(&self) -> Result<Option<Job>, sqlx::Error> {
        sqlx::query_as(
            "UPDATE jobs SET state = 'running', started_at = ?, error = NULL
             WHERE id = (
                 SELECT q.id FROM jobs q WHERE q.state = 'queued'
                   AND (q.lock_key IS NULL OR NOT EXISTS (
                         SELECT 1 FROM jobs r WHERE r.lock_key = q.lock_key
                           AND (r.state = 'running' OR (r.state = 'queued' AND r.id < q.id))))
                 ORDER BY q.id LIMIT 1)
               AND state = 'queued'
             RETURNING *",
        )
        .bind(now_text())
        .fetch_optional(&self.pool)
        .await
    }

    async fn finish(
        &self,
        job_id: i64,
        state: JobState,
        error: Option<String>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE jobs SET state = ?, error = ?, finished_at = ? WHERE id = ?")
            .bind(state)
            .bind(error)
            .bind(now_text())
            .bind(job_id)
            .execute(&self.pool)
            .await?;
        self.log.end(job_id, state);
        self.changed();
        Ok(())
    }

    /// Runs one claimed job to its end: the job's work races the shutdown
    /// grace period; a job still running when the grace period ends is
    /// killed (its whole process group) and put back in the queue.
    async fn run(
        &self,
        job: Job,
        runner: &dyn Runner,
        shutdown: &CancellationToken,
    ) -> Result<(), sqlx::Error> {
        let job_id = job.id;
        let seq = self.log.last_seq(job_id).await?;
        let mut ctx = JobCtx::new(job, self.pool.clone(), self.log.clone(), seq);
        let child_group = ctx.child_group.clone();
        let outcome = {
            let mut work = runner.run(&mut ctx);
            tokio::select! {
                r = &mut work => Some(r),
                _ = async {
                    shutdown.cancelled().await;
                    tracing::info!(job = job_id, grace = self.grace.as_secs(), "shutdown: waiting for the running job");
                    tokio::time::sleep(self.grace).await;
                } => None,
            }
        };
        match outcome {
            None => {
                // The process group created for this job's current child,
                // which is not reaped yet.
                if let Some(group) =
                    rustix::process::Pid::from_raw(child_group.load(Ordering::SeqCst))
                {
                    let _ =
                        rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                }
                ctx.say(
                    "shutdown grace period over: the job was stopped and put back in the queue",
                )
                .await?;
                sqlx::query("UPDATE jobs SET state = 'queued', started_at = NULL WHERE id = ?")
                    .bind(job_id)
                    .execute(&self.pool)
                    .await?;
                self.log.end(job_id, JobState::Queued);
                self.changed();
                Ok(())
            }
            Some(Ok(())) => {
                ctx.say("job succeeded").await?;
                self.finish(job_id, JobState::Succeeded, None).await
            }
            Some(Err(JobFailure::Failed(msg))) => {
                ctx.say(msg.clone()).await?;
                self.finish(job_id, JobState::Failed, Some(msg)).await
            }
            Some(Err(JobFailure::Db(e))) => {
                let msg = format!("database error while running the job: {e}");
                let _ = ctx.say(msg.clone()).await;
                self.finish(job_id, JobState::Failed, Some(msg)).await
            }
        }
    }
}
