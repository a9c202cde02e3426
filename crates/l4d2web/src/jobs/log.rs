//! A job's log: lines appended to `job_lines` (the record) and published to
//! whoever watches the job live.

use std::sync::Arc;

use sqlx::SqlitePool;

use super::model::{JobLine, JobState, LineStream};
use crate::fanout::{Fanout, Subscription};

/// What a live viewer of one job receives.
#[derive(Debug, Clone)]
pub enum JobEvent {
    Line(Arc<JobLine>),
    End { state: JobState },
}

/// Lines a viewer may fall behind before it re-reads the database.
const VIEWER_LAG: usize = 1024;

/// Every job's log; cheap to clone.
#[derive(Clone)]
pub struct JobLog {
    pool: SqlitePool,
    viewers: Fanout<i64, JobEvent>,
}

impl JobLog {
    pub fn new(pool: SqlitePool) -> Self {
        JobLog {
            pool,
            viewers: Fanout::new(VIEWER_LAG, 0),
        }
    }

    /// Follows job `id`. Subscribe before reading the stored lines, so no
    /// line falls in between (duplicates are skipped by `seq`).
    pub fn watch(&self, id: i64) -> Subscription<i64, JobEvent> {
        self.viewers.subscribe(id)
    }

    /// Jobs being watched right now.
    pub fn watched_jobs(&self) -> usize {
        self.viewers.topic_count()
    }

    /// Stored lines of job `id` after `after_seq`, at most `limit`.
    pub async fn lines_after(
        &self,
        id: i64,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<JobLine>, sqlx::Error> {
        sqlx::query_as(
            "SELECT seq, stream, line FROM job_lines WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(id)
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    pub(super) async fn last_seq(&self, id: i64) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM job_lines WHERE job_id = ?")
            .bind(id)
            .fetch_one(&self.pool)
            .await
    }

    /// Stores line `seq` of job `id`, then publishes it: a viewer that read
    /// the database first never misses a line.
    pub(super) async fn append(
        &self,
        id: i64,
        seq: i64,
        stream: LineStream,
        line: String,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO job_lines (job_id, seq, stream, line) VALUES (?, ?, ?, ?)")
            .bind(id)
            .bind(seq)
            .bind(stream)
            .bind(&line)
            .execute(&self.pool)
            .await?;
        self.viewers
            .publish(&id, JobEvent::Line(Arc::new(JobLine { seq, stream, line })));
        Ok(())
    }

    /// Tells the viewers of job `id` that it ended in `state`.
    pub(super) fn end(&self, id: i64, state: JobState) {
        self.viewers.close(&id, Some(JobEvent::End { state }));
    }
}
