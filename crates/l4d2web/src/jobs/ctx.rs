//! The running job as its code sees it: its row, a log to narrate into,
//! and child processes whose output lands in that log.

use std::process::Stdio;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;
use tokio::process::Command;
use tokio::sync::mpsc;

use super::log::JobLog;
use super::model::{Job, LineStream};
use crate::l4d2ctl::{self, HostClient, Pipe};

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
    /// The failure of `error`, in its own words.
    pub fn from_error(error: impl std::fmt::Display) -> Self {
        JobFailure::Failed(error.to_string())
    }
}

pub struct JobCtx {
    job: Job,
    pool: SqlitePool,
    log: JobLog,
    seq: i64,
    /// Process group of the running child (0: none), killed when the
    /// shutdown grace period runs out.
    pub(super) child_group: Arc<AtomicI32>,
}

impl JobCtx {
    pub(super) fn new(job: Job, pool: SqlitePool, log: JobLog, seq: i64) -> Self {
        JobCtx {
            job,
            pool,
            log,
            seq,
            child_group: Arc::new(AtomicI32::new(0)),
        }
    }

    pub fn job(&self) -> &Job {
        &self.job
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Appends a line of the app's own narration.
    pub async fn say(&mut self, text: impl Into<String>) -> Result<(), sqlx::Error> {
        self.append(LineStream::System, text.into()).await
    }

    async fn append(&mut self, stream: LineStream, text: String) -> Result<(), sqlx::Error> {
        self.seq += 1;
        self.log.append(self.job.id, self.seq, stream, text).await
    }

    /// Runs `l4d2ctl <args>`; a non-zero exit fails the job with l4d2ctl's
    /// last stderr line as the reason.
    pub async fn l4d2ctl<S: AsRef<str>>(
        &mut self,
        host: &HostClient,
        args: &[S],
    ) -> Result<(), JobFailure> {
        let mut cmd = host.l4d2ctl().map_err(JobFailure::from_error)?;
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        cmd.args(&args);
        self.say(format!("$ l4d2ctl {}", args.join(" "))).await?;
        self.run_command(cmd, "l4d2ctl")
            .await?
            .into_result("l4d2ctl")
    }

    /// Runs `cmd` (made by [`HostClient`]: own process group, dies with
    /// the panel) to its end, its stdout and stderr appended to the log
    /// line by line. `what` names the program in error messages.
    pub async fn run_command(
        &mut self,
        mut cmd: Command,
        what: &str,
    ) -> Result<CommandRun, JobFailure> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let program = cmd.as_std().get_program().to_string_lossy().into_owned();
        let mut child = cmd
            .spawn()
            .map_err(|e| JobFailure::msg(format!("cannot start {what} ({program}): {e}")))?;
        if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
            self.child_group.store(pid, Ordering::SeqCst);
        }
        let (line_tx, mut line_rx) = mpsc::channel::<(Pipe, String)>(256);
        if let Some(out) = child.stdout.take() {
            tokio::spawn(l4d2ctl::read_lines(out, Pipe::Stdout, line_tx.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(l4d2ctl::read_lines(err, Pipe::Stderr, line_tx.clone()));
        }
        drop(line_tx);

        let mut last_stderr = String::new();
        let mut last_stdout = String::new();
        let mut drain_deadline: Option<tokio::time::Instant> = None;
        let mut exit_status = None;
        let mut pipes_open = true;
        // Output is drained until both pipes close; if the child exits while
        // a detached grandchild still holds a pipe, draining stops shortly after.
        while pipes_open || exit_status.is_none() {
            let drain = drain_deadline;
            tokio::select! {
                line = line_rx.recv(), if pipes_open => match line {
                    Some((pipe, text)) => {
                        let stream = match pipe {
                            Pipe::Stdout => {
                                last_stdout.clone_from(&text);
                                LineStream::Stdout
                            }
                            Pipe::Stderr => {
                                last_stderr.clone_from(&text);
                                LineStream::Stderr
                            }
                        };
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
            last_stdout,
        })
    }
}

/// How a child process ended.
pub struct CommandRun {
    pub status: std::process::ExitStatus,
    /// Its last stderr line (the one-line reason, by l4d2ctl's contract).
    pub last_stderr: String,
    /// Its last stdout line (where a `--json` verb prints its answer).
    pub last_stdout: String,
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
