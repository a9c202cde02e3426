//! Counts and durations of jobs as the queue stores them, for metrics: read
//! from the rows at the time they are asked for, so nothing is counted twice
//! and a restart of the panel loses nothing. Kinds are the stored strings.

use sqlx::Row;

use super::model::JobState;
use super::queue::{Jobs, RECOVERY_REASON};

/// Upper bounds (seconds) of the duration histogram's buckets: from a quick
/// server action to a long game install or overlay build.
pub const DURATION_BUCKETS: [f64; 10] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// How many jobs of one kind are in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCount {
    pub kind: String,
    pub state: JobState,
    pub count: u64,
}

/// How long the finished jobs of one kind took, by result.
#[derive(Debug, Clone, PartialEq)]
pub struct Durations {
    pub kind: String,
    /// Succeeded or failed.
    pub result: JobState,
    pub count: u64,
    pub sum_secs: f64,
    /// Jobs that took at most each of [`DURATION_BUCKETS`] (cumulative).
    pub buckets: [u64; DURATION_BUCKETS.len()],
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobStats {
    pub states: Vec<StateCount>,
    pub durations: Vec<Durations>,
}

impl JobStats {
    /// Jobs waiting for a worker.
    pub fn queued(&self) -> u64 {
        self.states
            .iter()
            .filter(|s| s.state == JobState::Queued)
            .map(|s| s.count)
            .sum()
    }
}

impl Jobs {
    /// Every kind's count per state, and the durations of finished jobs
    /// (started to finished). Jobs failed by recovery after a crash are left
    /// out of the durations: their time includes the panel's downtime.
    pub async fn stats(&self) -> Result<JobStats, sqlx::Error> {
        let states = sqlx::query_as::<_, (String, JobState, i64)>(
            "SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state ORDER BY kind, state",
        )
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(|(kind, state, count)| StateCount {
            kind,
            state,
            count: u64::try_from(count).unwrap_or(0),
        })
        .collect();
        let bucket_columns: String = DURATION_BUCKETS
            .iter()
            .map(|b| format!(", SUM(secs <= {b:.1})"))
            .collect();
        // julianday() is a double: rounded to the millisecond, a job of
        // exactly a bucket's bound lands in that bucket.
        let sql = format!(
            "WITH d AS (
                 SELECT kind, state,
                        ROUND(MAX(0.0, (julianday(finished_at) - julianday(started_at)) * 86400.0), 3) AS secs
                 FROM jobs
                 WHERE state IN ('succeeded', 'failed')
                   AND started_at IS NOT NULL AND finished_at IS NOT NULL
                   AND (error IS NULL OR error <> ?))
             SELECT kind, state, COUNT(*), TOTAL(secs){bucket_columns}
             FROM d WHERE secs IS NOT NULL GROUP BY kind, state ORDER BY kind, state"
        );
        let rows = sqlx::query(&sql)
            .bind(RECOVERY_REASON)
            .fetch_all(self.pool())
            .await?;
        let mut durations = Vec::with_capacity(rows.len());
        for row in rows {
            let count = |i: usize| -> Result<u64, sqlx::Error> {
                Ok(u64::try_from(row.try_get::<i64, _>(i)?).unwrap_or(0))
            };
            let mut buckets = [0; DURATION_BUCKETS.len()];
            for (i, b) in buckets.iter_mut().enumerate() {
                *b = count(4 + i)?;
            }
            durations.push(Durations {
                kind: row.try_get(0)?,
                result: row.try_get(1)?,
                count: count(2)?,
                sum_secs: row.try_get(3)?,
                buckets,
            });
        }
        Ok(JobStats { states, durations })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::NewJob;

    async fn pool() -> sqlx::SqlitePool {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        crate::db::migrate(&pool).await.unwrap();
        pool
    }

    /// Distinct payloads: identical system jobs would be coalesced.
    fn job(kind: &str, n: u32) -> NewJob {
        NewJob {
            kind: kind.into(),
            payload: serde_json::json!({ "n": n }),
            user_id: None,
            lock_key: None,
            title: kind.into(),
            subject: None,
        }
    }

    #[tokio::test]
    async fn counts_by_kind_and_state_and_durations_from_the_rows() {
        let pool = pool().await;
        let jobs = Jobs::new(pool.clone(), std::time::Duration::ZERO);
        let a = jobs.submit(job("kind-a", 1)).await.unwrap().id;
        let b = jobs.submit(job("kind-a", 2)).await.unwrap().id;
        let c = jobs.submit(job("kind-b", 3)).await.unwrap().id;
        jobs.submit(job("kind-b", 4)).await.unwrap();
        // Timestamps as the queue writes them (RFC 3339, nanoseconds).
        for (id, state, started, finished, error) in [
            (
                a,
                "succeeded",
                "2026-01-01T10:00:00.250000000Z",
                "2026-01-01T10:00:02.750000000Z",
                None,
            ),
            (
                b,
                "failed",
                "2026-01-01T10:00:00Z",
                "2026-01-01T10:10:00Z",
                Some("boom"),
            ),
            (
                c,
                "failed",
                "2026-01-01T10:00:00Z",
                "2026-01-02T10:00:00Z",
                Some(RECOVERY_REASON),
            ),
        ] {
            sqlx::query(
                "UPDATE jobs SET state = ?, started_at = ?, finished_at = ?, error = ? WHERE id = ?",
            )
            .bind(state)
            .bind(started)
            .bind(finished)
            .bind(error)
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
        }
        let stats = jobs.stats().await.unwrap();
        let count = |kind: &str, state: JobState| {
            stats
                .states
                .iter()
                .find(|s| s.kind == kind && s.state == state)
                .map(|s| s.count)
        };
        assert_eq!(count("kind-a", JobState::Succeeded), Some(1));
        assert_eq!(count("kind-a", JobState::Failed), Some(1));
        assert_eq!(count("kind-b", JobState::Failed), Some(1));
        assert_eq!(count("kind-b", JobState::Queued), Some(1));
        assert_eq!(stats.queued(), 1);
        // The recovered job has no duration; the others have theirs.
        assert_eq!(stats.durations.len(), 2, "{:?}", stats.durations);
        let ok = &stats.durations[1];
        assert_eq!(
            (ok.kind.as_str(), ok.result),
            ("kind-a", JobState::Succeeded)
        );
        assert_eq!(ok.count, 1);
        assert!((ok.sum_secs - 2.5).abs() < 0.01, "{}", ok.sum_secs);
        assert_eq!(ok.buckets, [0, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
        let failed = &stats.durations[0];
        assert_eq!(failed.result, JobState::Failed);
        assert!((failed.sum_secs - 600.0).abs() < 0.01);
        assert_eq!(failed.buckets, [0, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
    }
}
