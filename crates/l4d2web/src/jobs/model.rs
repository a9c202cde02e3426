//! Job rows and log lines as stored, and what a new job is made of.

use std::fmt;

/// Where a job is in its life. Stored as lower-case text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize)]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
        }
    }
    pub fn is_finished(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Job {
    pub id: i64,
    /// What runs it (the task kind; see the `tasks` module).
    pub kind: String,
    /// The kind's own JSON payload.
    pub args: String,
    /// None: a system job.
    pub user_id: Option<i64>,
    pub coalesce_key: Option<String>,
    pub state: JobState,
    pub error: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub lock_key: Option<String>,
    pub title: Option<String>,
    /// What the job is about (`server:<id>`, `overlay:<id>`), for the
    /// lists on that thing's page.
    pub subject: Option<String>,
}

impl Job {
    pub fn is_finished(&self) -> bool {
        self.state.is_finished()
    }
    /// What the job does, for lists: its title, else its kind.
    pub fn summary(&self) -> &str {
        self.title.as_deref().unwrap_or(&self.kind)
    }
}

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
pub enum LineStream {
    Stdout,
    Stderr,
    /// The app's own narration.
    System,
}

impl LineStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LineStream::Stdout => "stdout",
            LineStream::Stderr => "stderr",
            LineStream::System => "system",
        }
    }
}

impl fmt::Display for LineStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobLine {
    pub seq: i64,
    pub stream: LineStream,
    pub line: String,
}

/// A job to enqueue (the `tasks` module builds these).
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    pub payload: serde_json::Value,
    /// None: a system job; an identical queued system job absorbs it.
    pub user_id: Option<i64>,
    /// Jobs sharing a lock key run one at a time, in queue order.
    pub lock_key: Option<String>,
    /// Shown in job lists.
    pub title: String,
    pub subject: Option<String>,
}

/// The outcome of enqueueing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    pub id: i64,
    /// False when an identical queued system job absorbed the request.
    pub new: bool,
}
