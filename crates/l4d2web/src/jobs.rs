//! The persistent job queue (SPEC §7): jobs are rows, `JOB_WORKER_THREADS`
//! workers claim them, run `l4d2ctl` as a subprocess and append its output
//! line by line to the database while fanning it out to live viewers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::SqlitePool;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::{broadcast, mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::db::now_text;

/// Longest stored output line; longer lines are cut (progress spam guard).
const MAX_LINE: usize = 8 * 1024;
const RECOVERY_REASON: &str = "interrupted: the left4me process stopped while this job was running (crash or kill); it was not re-run, check the host and run the action again";

/// Environment variables never passed to `l4d2ctl`.
const SECRET_VARS: [&str; 5] = [
    "SECRET_KEY",
    "STEAM_WEB_API_KEY",
    "DATABASE_URL",
    "LEFT4ME_ADMIN_PASSWORD",
    "NOTIFY_SOCKET",
];

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("cannot find l4d2ctl: set LEFT4ME_L4D2CTL or install it next to the left4me binary (looked in {0})")]
    NoL4d2ctl(String),
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
}

impl Job {
    pub fn is_finished(&self) -> bool {
        matches!(self.state.as_str(), "succeeded" | "failed")
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
    wake: Arc<Notify>,
    l4d2ctl: Option<PathBuf>,
    child_env: Arc<Vec<(String, String)>>,
    grace: Duration,
}

impl Jobs {
    pub fn new(
        pool: SqlitePool,
        l4d2ctl: Option<PathBuf>,
        child_env: Vec<(String, String)>,
        grace: Duration,
    ) -> Self {
        Jobs {
            pool,
            hub: Arc::new(Hub::default()),
            wake: Arc::new(Notify::new()),
            l4d2ctl,
            child_env: Arc::new(child_env),
            grace,
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
        let args_json = serde_json::to_string(args).unwrap_or_else(|_| "[]".into());
        let key = user_id.is_none().then(|| format!("{kind}:{args_json}"));
        // Two rounds: the queued twin may be claimed between our INSERT and
        // SELECT, after which a fresh insert succeeds.
        for _ in 0..2 {
            let inserted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO jobs (kind, args, user_id, coalesce_key, lock_key, state) VALUES (?, ?, ?, ?, ?, 'queued')
                 ON CONFLICT (coalesce_key) WHERE state = 'queued' AND coalesce_key IS NOT NULL DO NOTHING
                 RETURNING id",
            )
            .bind(kind)
            .bind(&args_json)
            .bind(user_id)
            .bind(&key)
            .bind(lock_key)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(id) = inserted {
                self.wake.notify_one();
                return Ok(id);
            }
            let existing: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM jobs WHERE coalesce_key = ? AND state = 'queued'",
            )
            .bind(&key)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(id) = existing {
                return Ok(id);
            }
        }
        Err(sqlx::Error::RowNotFound)
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

    fn resolve_l4d2ctl(&self) -> Result<PathBuf, JobError> {
        if let Some(p) = &self.l4d2ctl {
            return Ok(p.clone());
        }
        let dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf));
        match dir {
            Some(dir) if dir.join("l4d2ctl").is_file() => Ok(dir.join("l4d2ctl")),
            Some(dir) => Err(JobError::NoL4d2ctl(dir.display().to_string())),
            None => Err(JobError::NoL4d2ctl("<unknown executable dir>".into())),
        }
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

    async fn run(&self, job: Job, shutdown: &CancellationToken) -> Result<(), sqlx::Error> {
        let tx = self.hub.sender(job.id);
        let mut seq = self.next_seq(job.id).await?;
        let argv = job.argv();
        let program = match self.resolve_l4d2ctl() {
            Ok(p) => p,
            Err(e) => {
                let msg = e.to_string();
                self.append(&tx, job.id, &mut seq, "system", msg.clone())
                    .await?;
                return self.finish(job.id, "failed", Some(msg)).await;
            }
        };
        self.append(
            &tx,
            job.id,
            &mut seq,
            "system",
            format!("$ l4d2ctl {}", argv.join(" ")),
        )
        .await?;
        let mut cmd = Command::new(&program);
        cmd.args(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Own process group, so a shutdown can stop l4d2ctl's children too.
            .process_group(0);
        // The web app's secrets stay here: l4d2ctl starts game servers, which
        // run third-party plugins and must never see them (SPEC §9).
        for var in SECRET_VARS {
            cmd.env_remove(var);
        }
        for (k, v) in self.child_env.iter() {
            cmd.env(k, v);
        }
        // SAFETY: prctl is async-signal-safe; it only changes this child's
        // parent-death signal, so a kill -9 of left4me takes l4d2ctl down too
        // instead of leaving it running unsupervised.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("cannot start {}: {e}", program.display());
                self.append(&tx, job.id, &mut seq, "system", msg.clone())
                    .await?;
                return self.finish(job.id, "failed", Some(msg)).await;
            }
        };
        let (line_tx, mut line_rx) = mpsc::channel::<(&'static str, String)>(256);
        if let Some(out) = child.stdout.take() {
            tokio::spawn(pump_lines(out, "stdout", line_tx.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(pump_lines(err, "stderr", line_tx.clone()));
        }
        drop(line_tx);

        let mut last_stderr = String::new();
        let mut grace_deadline: Option<tokio::time::Instant> = None;
        let mut drain_deadline: Option<tokio::time::Instant> = None;
        let mut exit_status = None;
        let mut handed_back = false;
        let mut pipes_open = true;
        // Output is drained until both pipes close; if l4d2ctl exits while a
        // detached grandchild still holds a pipe, draining stops shortly after.
        while pipes_open || exit_status.is_none() {
            let grace = grace_deadline;
            let drain = drain_deadline;
            tokio::select! {
                line = line_rx.recv(), if pipes_open => match line {
                    Some((stream, text)) => {
                        if stream == "stderr" { last_stderr.clone_from(&text); }
                        self.append(&tx, job.id, &mut seq, stream, text).await?;
                    }
                    None => pipes_open = false,
                },
                status = child.wait(), if exit_status.is_none() => {
                    exit_status = Some(status);
                    drain_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(2));
                }
                _ = sleep_until_opt(drain) => break,
                _ = shutdown.cancelled(), if grace_deadline.is_none() && !handed_back => {
                    grace_deadline = Some(tokio::time::Instant::now() + self.grace);
                    self.append(&tx, job.id, &mut seq, "system",
                        format!("left4me is shutting down; waiting up to {}s for this job", self.grace.as_secs())).await?;
                }
                _ = sleep_until_opt(grace) => {
                    if let Some(pid) = child.id() {
                        // SAFETY: plain kill(2) on the process group we created
                        // for this child (negative pid = group); it is still
                        // our unreaped child, so the id cannot be reused yet.
                        unsafe { libc::kill(-(pid as i32), libc::SIGKILL); }
                    }
                    handed_back = true;
                    grace_deadline = None;
                }
            }
        }
        let status = match exit_status {
            Some(s) => s,
            None => child.wait().await,
        };
        if handed_back {
            self.append(
                &tx,
                job.id,
                &mut seq,
                "system",
                "shutdown grace period over: the job was stopped and put back in the queue".into(),
            )
            .await?;
            sqlx::query("UPDATE jobs SET state = 'queued', started_at = NULL WHERE id = ?")
                .bind(job.id)
                .execute(&self.pool)
                .await?;
            self.hub.finish(job.id, "queued");
            return Ok(());
        }
        match status {
            Ok(s) if s.success() => {
                self.append(&tx, job.id, &mut seq, "system", "job succeeded".into())
                    .await?;
                self.finish(job.id, "succeeded", None).await
            }
            Ok(s) => {
                let code = s
                    .code()
                    .map(|c| format!("exit code {c}"))
                    .unwrap_or_else(|| format!("{s}"));
                let msg = if last_stderr.is_empty() {
                    format!("l4d2ctl failed ({code})")
                } else {
                    format!("l4d2ctl failed ({code}): {last_stderr}")
                };
                self.append(&tx, job.id, &mut seq, "system", msg.clone())
                    .await?;
                self.finish(job.id, "failed", Some(msg)).await
            }
            Err(e) => {
                let msg = format!("cannot wait for l4d2ctl: {e}");
                self.append(&tx, job.id, &mut seq, "system", msg.clone())
                    .await?;
                self.finish(job.id, "failed", Some(msg)).await
            }
        }
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
async fn pump_lines<R: AsyncRead + Unpin>(
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
