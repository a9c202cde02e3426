//! The persistent job queue (docs/product.md): jobs are rows, `JOB_WORKER_THREADS`
//! workers claim them, run `l4d2ctl` as a subprocess and append its output
//! line by line to the database while fanning it out to live viewers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::SqlitePool;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::{broadcast, mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::db::now_text;

/// Longest stored output line; longer lines are cut (progress spam guard).
const MAX_LINE: usize = 8 * 1024;
const RECOVERY_REASON: &str = "interrupted: the left4me process stopped while this job was running (crash or kill); it was not re-run, check the host and run the action again";

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Host(#[from] crate::l4d2ctl::HostError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub args: String,
    pub user_id: Option<i64>,
    pub coalesce_key: Option<String>,
    pub state: String,
    pub error: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub lock_key: Option<String>,
    pub title: Option<String>,
}

impl Job {
    pub fn is_finished(&self) -> bool {
        matches!(self.state.as_str(), "succeeded" | "failed")
    }
    /// What the job does, for lists: its title, else `l4d2ctl <argv>`.
    pub fn summary(&self) -> String {
        match &self.title {
            Some(t) => t.clone(),
            None => format!("l4d2ctl {}", self.argv().join(" ")),
        }
    }
    /// The l4d2ctl argv stored with the job.
    pub fn argv(&self) -> Vec<String> {
        serde_json::from_str(&self.args).unwrap_or_default()
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobLine {
    pub seq: i64,
    pub stream: String,
    pub line: String,
}

/// What live viewers of one job receive.
#[derive(Debug, Clone)]
pub enum JobEvent {
    Line(Arc<JobLine>),
    End { state: String },
}

/// Per-job broadcast channels for live viewers. A channel exists while the
/// job runs or someone waits for it.
#[derive(Default)]
pub struct Hub {
    channels: Mutex<HashMap<i64, broadcast::Sender<JobEvent>>>,
}

impl Hub {
    pub fn subscribe(&self, job_id: i64) -> broadcast::Receiver<JobEvent> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(job_id)
            .or_insert_with(|| broadcast::channel(1024).0)
            .subscribe()
    }

    fn sender(&self, job_id: i64) -> broadcast::Sender<JobEvent> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(job_id)
            .or_insert_with(|| broadcast::channel(1024).0)
            .clone()
    }

    /// Ends the channel of a finished job.
    fn finish(&self, job_id: i64, state: &str) {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = map.remove(&job_id) {
            let _ = tx.send(JobEvent::End {
                state: state.to_string(),
            });
        }
    }

    /// Drops a channel nobody listens to (a viewer that found the job done).
    pub fn release(&self, job_id: i64) {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(&job_id).is_some_and(|tx| tx.receiver_count() == 0) {
            map.remove(&job_id);
        }
    }

    pub fn channel_count(&self) -> usize {
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

/// Everything workers and handlers share about jobs.
#[derive(Clone)]
pub struct Jobs {
    pub pool: SqlitePool,
    pub hub: Arc<Hub>,
    /// How jobs (and pages, for read-only calls) run l4d2ctl.
    pub host: crate::l4d2ctl::HostClient,
    wake: Arc<Notify>,
    config: Arc<Config>,
    grace: Duration,
}

/// A job to enqueue.
pub struct NewJob<'a> {
    /// Decides who runs it (see `execute`): an l4d2ctl verb, `server-*`,
    /// `overlay-*` or `workshop-*`.
    pub kind: &'a str,
    /// The l4d2ctl argv for l4d2ctl kinds, else the kind's own payload.
    pub payload: serde_json::Value,
    /// None: a system job; identical queued system jobs coalesce.
    pub user_id: Option<i64>,
    /// Jobs sharing a lock key run one at a time, in queue order.
    pub lock_key: Option<String>,
    /// Shown in job lists instead of the raw payload.
    pub title: Option<String>,
}

impl Jobs {
    pub fn new(pool: SqlitePool, config: Arc<Config>) -> Self {
        Jobs {
            pool,
            hub: Arc::new(Hub::default()),
            host: crate::l4d2ctl::HostClient::new(config.clone()),
            wake: Arc::new(Notify::new()),
            grace: Duration::from_secs(config.shutdown_grace_secs),
            config,
        }
    }

    /// Enqueues a job running `l4d2ctl <args>`. System jobs (no user) are
    /// coalesced: an identical system job still queued absorbs this request.
    pub async fn enqueue(
        &self,
        kind: &str,
        args: &[&str],
        user_id: Option<i64>,
    ) -> Result<i64, sqlx::Error> {
        self.enqueue_locked(kind, args, user_id, None).await
    }

    /// Like [`Jobs::enqueue`]; jobs sharing `lock_key` never run at the same
    /// time and start in the order they were queued.
    pub async fn enqueue_locked(
        &self,
        kind: &str,
        args: &[&str],
        user_id: Option<i64>,
        lock_key: Option<&str>,
    ) -> Result<i64, sqlx::Error> {
        self.submit(NewJob {
            kind,
            payload: serde_json::json!(args),
            user_id,
            lock_key: lock_key.map(str::to_string),
            title: None,
        })
        .await
    }

    /// Enqueues any job; returns its id (or the id of the queued system job
    /// it coalesced into).
    pub async fn submit(&self, new: NewJob<'_>) -> Result<i64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let id = Self::submit_in(&mut tx, new).await?;
        tx.commit().await?;
        self.wake();
        Ok(id)
    }

    /// [`Jobs::submit`] inside the caller's transaction, so a job and the
    /// state change it belongs to commit together, in one order. Call
    /// [`Jobs::wake`] after the commit.
    pub async fn submit_in(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        new: NewJob<'_>,
    ) -> Result<i64, sqlx::Error> {
        let args_json = new.payload.to_string();
        let key = new
            .user_id
            .is_none()
            .then(|| format!("{}:{args_json}", new.kind));
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO jobs (kind, args, user_id, coalesce_key, lock_key, title, state) VALUES (?, ?, ?, ?, ?, ?, 'queued')
             ON CONFLICT (coalesce_key) WHERE state = 'queued' AND coalesce_key IS NOT NULL DO NOTHING
             RETURNING id",
        )
        .bind(new.kind)
        .bind(&args_json)
        .bind(new.user_id)
        .bind(&key)
        .bind(&new.lock_key)
        .bind(&new.title)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(id) = inserted {
            return Ok(id);
        }
        // Inside one transaction the queued twin cannot be claimed between
        // the INSERT and this SELECT.
        sqlx::query_scalar("SELECT id FROM jobs WHERE coalesce_key = ? AND state = 'queued'")
            .bind(&key)
            .fetch_one(&mut **tx)
            .await
    }

    /// Tells idle workers that a job was queued.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub async fn get(&self, id: i64) -> Result<Option<Job>, sqlx::Error> {
        sqlx::query_as("SELECT * FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Newest first; `user_id = None` lists every job (admins).
    pub async fn list(&self, user_id: Option<i64>, limit: i64) -> Result<Vec<Job>, sqlx::Error> {
        match user_id {
            Some(uid) => {
                sqlx::query_as("SELECT * FROM jobs WHERE user_id = ? ORDER BY id DESC LIMIT ?")
                    .bind(uid)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                sqlx::query_as("SELECT * FROM jobs ORDER BY id DESC LIMIT ?")
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
            }
        }
    }

    pub async fn lines_after(
        &self,
        job_id: i64,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<JobLine>, sqlx::Error> {
        sqlx::query_as(
            "SELECT seq, stream, line FROM job_lines WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(job_id)
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
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
                 VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM job_lines WHERE job_id = ?), 'system', ?)",
            )
            .bind(id)
            .bind(id)
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

    /// Starts `n` workers. They stop claiming jobs when `shutdown` fires; a
    /// running job gets the grace period to finish, then is killed and handed
    /// back to the queue. Returns when all workers are done.
    pub fn spawn_workers(&self, n: usize, shutdown: CancellationToken) -> tokio::task::JoinSet<()> {
        let mut set = tokio::task::JoinSet::new();
        for worker in 0..n {
            let jobs = self.clone();
            let shutdown = shutdown.clone();
            set.spawn(async move { jobs.worker_loop(worker, shutdown).await });
        }
        set
    }

    async fn worker_loop(self, worker: usize, shutdown: CancellationToken) {
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            match self.claim().await {
                Ok(Some(job)) => {
                    let id = job.id;
                    tracing::info!(worker, job = id, kind = %job.kind, "job started");
                    if let Err(e) = self.run(job, &shutdown).await {
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

    /// A `Command` for `l4d2ctl` with the job environment (see
    /// [`crate::l4d2ctl::HostClient`]).
    pub fn l4d2ctl_command(&self) -> Result<Command, JobError> {
        Ok(self.host.l4d2ctl()?)
    }

    /// A `Command` for any program with the job environment.
    pub fn child_command(&self, program: &Path) -> Command {
        self.host.command(program)
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    async fn next_seq(&self, job_id: i64) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM job_lines WHERE job_id = ?")
            .bind(job_id)
            .fetch_one(&self.pool)
            .await
    }

    async fn append(
        &self,
        tx: &broadcast::Sender<JobEvent>,
        job_id: i64,
        seq: &mut i64,
        stream: &str,
        text: String,
    ) -> Result<(), sqlx::Error> {
        *seq += 1;
        sqlx::query("INSERT INTO job_lines (job_id, seq, stream, line) VALUES (?, ?, ?, ?)")
            .bind(job_id)
            .bind(*seq)
            .bind(stream)
            .bind(&text)
            .execute(&self.pool)
            .await?;
        // Written first, then broadcast: a viewer that read the DB never
        // misses a line (it skips duplicates by seq).
        let _ = tx.send(JobEvent::Line(Arc::new(JobLine {
            seq: *seq,
            stream: stream.to_string(),
            line: text,
        })));
        Ok(())
    }

    async fn finish(
        &self,
        job_id: i64,
        state: &str,
        error: Option<String>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE jobs SET state = ?, error = ?, finished_at = ? WHERE id = ?")
            .bind(state)
            .bind(error)
            .bind(now_text())
            .bind(job_id)
            .execute(&self.pool)
            .await?;
        self.hub.finish(job_id, state);
        Ok(())
    }

    /// Runs one claimed job to its end: the job's work races the shutdown
    /// grace period; a job still running when the grace period ends is
    /// killed (its whole process group) and put back in the queue.
    async fn run(&self, job: Job, shutdown: &CancellationToken) -> Result<(), sqlx::Error> {
        let job_id = job.id;
        let mut ctx = JobCtx {
            tx: self.hub.sender(job.id),
            seq: self.next_seq(job.id).await?,
            jobs: self.clone(),
            job,
            child_group: Arc::new(AtomicI32::new(0)),
        };
        let child_group = ctx.child_group.clone();
        let outcome = {
            // Boxed as `dyn Future + Send`: the job modules' futures are then
            // checked for Send here, with concrete lifetimes, instead of in
            // the worker's spawn, where rustc's higher-ranked Send inference
            // fails ("Send is not general enough").
            let mut work: std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<(), JobFailure>> + Send + '_>,
            > = Box::pin(execute(&mut ctx));
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
                self.hub.finish(job_id, "queued");
                Ok(())
            }
            Some(Ok(())) => {
                ctx.say("job succeeded").await?;
                self.finish(job_id, "succeeded", None).await
            }
            Some(Err(JobFailure::Failed(msg))) => {
                ctx.say(msg.clone()).await?;
                self.finish(job_id, "failed", Some(msg)).await
            }
            Some(Err(JobFailure::Db(e))) => {
                let msg = format!("database error while running the job: {e}");
                let _ = ctx.say(msg.clone()).await;
                self.finish(job_id, "failed", Some(msg)).await
            }
        }
    }
}

/// Job kinds whose `args` are a plain `l4d2ctl` argv.
const L4D2CTL_KINDS: [&str; 8] = [
    "install",
    "initialize",
    "start",
    "stop",
    "delete",
    "status",
    "list",
    "logs",
];

/// Routes a job to the code that knows its kind.
async fn execute(ctx: &mut JobCtx) -> Result<(), JobFailure> {
    let kind = ctx.job.kind.clone();
    match kind.as_str() {
        k if L4D2CTL_KINDS.contains(&k) => {
            let argv = ctx.job.argv();
            ctx.l4d2ctl(&argv).await
        }
        k if k.starts_with("server-") => crate::servers::run_job(ctx).await,
        k if k.starts_with("overlay-") || k.starts_with("workshop-") => {
            crate::overlays::run_job(ctx).await
        }
        other => Err(JobFailure::Failed(format!(
            "unknown job kind {other:?}: this version of left4me cannot run it"
        ))),
    }
}

/// Why a job failed. `Failed` carries the one-line reason shown as the
/// job's error.
#[derive(Debug, thiserror::Error)]
pub enum JobFailure {
    #[error("{0}")]
    Failed(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

impl JobFailure {
    pub fn msg(text: impl Into<String>) -> Self {
        JobFailure::Failed(text.into())
    }
}

/// The running job as its code sees it: its row, a log to write to, and
/// a way to run child processes whose output lands in that log.
pub struct JobCtx {
    jobs: Jobs,
    pub job: Job,
    tx: broadcast::Sender<JobEvent>,
    seq: i64,
    /// Process group of the running child (0: none), killed when the
    /// shutdown grace period runs out.
    child_group: Arc<AtomicI32>,
}

impl JobCtx {
    pub fn pool(&self) -> &SqlitePool {
        &self.jobs.pool
    }

    pub fn config(&self) -> &Config {
        &self.jobs.config
    }

    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }

    /// The job's JSON payload (its `args` column) as `T`.
    pub fn payload<T: serde::de::DeserializeOwned>(&self) -> Result<T, JobFailure> {
        serde_json::from_str(&self.job.args).map_err(|e| {
            JobFailure::msg(format!(
                "job {} ({}) has an unreadable payload: {e}",
                self.job.id, self.job.kind
            ))
        })
    }

    /// Appends a line of the app's own narration (stream `system`).
    pub async fn say(&mut self, text: impl Into<String>) -> Result<(), sqlx::Error> {
        self.append("system", text.into()).await
    }

    async fn append(&mut self, stream: &str, text: String) -> Result<(), sqlx::Error> {
        self.jobs
            .append(&self.tx, self.job.id, &mut self.seq, stream, text)
            .await
    }

    /// See [`Jobs::l4d2ctl_command`].
    pub fn l4d2ctl_command(&self) -> Result<Command, JobFailure> {
        self.jobs
            .l4d2ctl_command()
            .map_err(|e| JobFailure::msg(e.to_string()))
    }

    /// See [`Jobs::child_command`].
    pub fn child_command(&self, program: &Path) -> Command {
        self.jobs.child_command(program)
    }

    /// Runs `l4d2ctl <args>`; a non-zero exit fails the job with l4d2ctl's
    /// last stderr line as the reason.
    pub async fn l4d2ctl<S: AsRef<str>>(&mut self, args: &[S]) -> Result<(), JobFailure> {
        let mut cmd = self.l4d2ctl_command()?;
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        cmd.args(&args);
        self.say(format!("$ l4d2ctl {}", args.join(" "))).await?;
        let run = self.run_command(cmd, "l4d2ctl").await?;
        run.into_result("l4d2ctl")
    }

    /// Runs `cmd` to its end with stdout/stderr appended to the job log
    /// line by line. `what` names the program in error messages.
    pub async fn run_command(
        &mut self,
        mut cmd: Command,
        what: &str,
    ) -> Result<CommandRun, JobFailure> {
        // Process group and death with the panel come from HostClient.
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let program = PathBuf::from(cmd.as_std().get_program());
        let mut child = cmd.spawn().map_err(|e| {
            JobFailure::msg(format!("cannot start {what} ({}): {e}", program.display()))
        })?;
        if let Some(pid) = child.id() {
            self.child_group.store(pid as i32, Ordering::SeqCst);
        }
        let (line_tx, mut line_rx) = mpsc::channel::<(&'static str, String)>(256);
        if let Some(out) = child.stdout.take() {
            tokio::spawn(pump_lines(out, "stdout", line_tx.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(pump_lines(err, "stderr", line_tx.clone()));
        }
        drop(line_tx);

        let mut last_stderr = String::new();
        let mut drain_deadline: Option<tokio::time::Instant> = None;
        let mut exit_status = None;
        let mut pipes_open = true;
        // Output is drained until both pipes close; if the child exits while
        // a detached grandchild still holds a pipe, draining stops shortly after.
        while pipes_open || exit_status.is_none() {
            let drain = drain_deadline;
            tokio::select! {
                line = line_rx.recv(), if pipes_open => match line {
                    Some((stream, text)) => {
                        if stream == "stderr" { last_stderr.clone_from(&text); }
                        self.append(stream, text).await?;
                    }
                    None => pipes_open = false,
                },
                status = child.wait(), if exit_status.is_none() => {
                    exit_status = Some(status);
                    drain_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(2));
                }
                _ = sleep_until_opt(drain) => break,
            }
        }
        let status = match exit_status {
            Some(s) => s,
            None => child.wait().await,
        };
        self.child_group.store(0, Ordering::SeqCst);
        let status = status.map_err(|e| JobFailure::msg(format!("cannot wait for {what}: {e}")))?;
        Ok(CommandRun {
            status,
            last_stderr,
        })
    }
}

/// How a child process ended.
pub struct CommandRun {
    pub status: std::process::ExitStatus,
    /// Its last stderr line (the one-line reason, by l4d2ctl's contract).
    pub last_stderr: String,
}

impl CommandRun {
    /// Ok on exit 0, else a failure "`what` failed (exit code N): reason".
    pub fn into_result(self, what: &str) -> Result<(), JobFailure> {
        if self.status.success() {
            return Ok(());
        }
        let code = self
            .status
            .code()
            .map(|c| format!("exit code {c}"))
            .unwrap_or_else(|| format!("{}", self.status));
        Err(JobFailure::Failed(if self.last_stderr.is_empty() {
            format!("{what} failed ({code})")
        } else {
            format!("{what} failed ({code}): {}", self.last_stderr)
        }))
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Reads a pipe line by line (lossy UTF-8, trailing CR/LF stripped, long
/// lines cut) into `out`.
pub(crate) async fn pump_lines<R: AsyncRead + Unpin>(
    pipe: R,
    stream: &'static str,
    out: mpsc::Sender<(&'static str, String)>,
) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                while matches!(buf.last(), Some(b'\n' | b'\r')) {
                    buf.pop();
                }
                buf.truncate(MAX_LINE);
                let text = String::from_utf8_lossy(&buf).into_owned();
                if out.send((stream, text)).await.is_err() {
                    return;
                }
            }
        }
    }
}
