//! Game builds as the panel sees them: the host's `l4d2ctl builds --json`
//! (kept for a minute, and forgotten when a job installs a build or moves
//! a server: pages and the rollout ask often, each answer is a sudo round
//! trip), the last check for a new build on Steam, and keeping
//! a server on an older build (a rollback).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use l4d2_contract::builds::{BuildId, BuildsReport, UpdateCheck};
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;

use crate::db;
use crate::jobs::{JobCtx, JobFailure};
use crate::l4d2ctl::{HostClient, HostError};

/// How long a report is reused. The panel's own changes invalidate it at
/// once; this bounds how long one made by hand (`l4d2ctl install`) stays
/// unseen.
const REPORT_TTL: Duration = Duration::from_secs(60);

/// The host's builds report, cached; cheap to clone.
#[derive(Clone)]
pub struct Builds {
    host: HostClient,
    cached: Arc<Mutex<Option<Cached>>>,
}

/// A report and when it was read.
type Cached = (Instant, Arc<BuildsReport>);

impl Builds {
    pub fn new(host: HostClient) -> Self {
        Builds {
            host,
            cached: Arc::default(),
        }
    }

    /// The report, at most [`REPORT_TTL`] old.
    pub async fn report(&self) -> Result<Arc<BuildsReport>, HostError> {
        if let Some((at, report)) = self.lock().as_ref() {
            if at.elapsed() < REPORT_TTL {
                return Ok(report.clone());
            }
        }
        self.refresh().await
    }

    /// A fresh report (after a job changed what is installed or used).
    pub async fn refresh(&self) -> Result<Arc<BuildsReport>, HostError> {
        let report = Arc::new(self.host.builds().await?);
        *self.lock() = Some((Instant::now(), report.clone()));
        Ok(report)
    }

    /// Forgets the cached report: the next read asks the host.
    pub fn invalidate(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Cached>> {
        self.cached.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The last check for a new build on Steam.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStatus {
    /// RFC 3339.
    pub checked_at: String,
    pub installed: Option<BuildId>,
    pub published: Option<BuildId>,
    /// Why the check failed, in l4d2ctl's words.
    pub error: Option<String>,
}

impl UpdateStatus {
    /// The new build Steam publishes, if it is newer than the installed one.
    pub fn available(&self) -> Option<BuildId> {
        let published = self.published?;
        self.installed
            .is_none_or(|i| published > i)
            .then_some(published)
    }
}

const FACT: &str = "game_update";

pub async fn update_status(pool: &SqlitePool) -> Result<Option<UpdateStatus>, sqlx::Error> {
    Ok(db::fact(pool, FACT)
        .await?
        .and_then(|v| serde_json::from_str(&v).ok()))
}

async fn set_update_status(pool: &SqlitePool, status: &UpdateStatus) -> Result<(), JobFailure> {
    let value = serde_json::to_string(status).map_err(JobFailure::from_error)?;
    db::set_fact(pool, FACT, &value).await?;
    Ok(())
}

/// The update check job: `l4d2ctl <args>` (the tasks module knows the
/// verb) printing an [`UpdateCheck`] as JSON; its result is kept for the
/// pages, a failure too.
pub async fn check_job(
    ctx: &mut JobCtx,
    host: &HostClient,
    args: &[&str],
) -> Result<UpdateStatus, JobFailure> {
    let mut cmd = host.l4d2ctl().map_err(JobFailure::from_error)?;
    cmd.args(args);
    ctx.say(format!("$ l4d2ctl {}", args.join(" "))).await?;
    let run = ctx.run_command(cmd, "l4d2ctl").await?;
    // A check logs in like an install: a login that needs a Steam Guard
    // code shows on the Jobs page either way.
    super::remember_login(ctx, &run).await?;
    let checked_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let parsed = if run.status.success() {
        serde_json::from_str::<UpdateCheck>(&run.last_stdout).map_err(|e| {
            format!(
                "l4d2ctl check-update printed something unexpected ({e}): {:?}",
                run.last_stdout
            )
        })
    } else {
        Err(run
            .last_stderr
            .strip_prefix("l4d2ctl: error: ")
            .unwrap_or(&run.last_stderr)
            .to_owned())
    };
    let status = match &parsed {
        Ok(check) => UpdateStatus {
            checked_at,
            installed: check.installed,
            published: Some(check.published),
            error: None,
        },
        Err(message) => UpdateStatus {
            checked_at,
            installed: None,
            published: None,
            error: Some(message.clone()),
        },
    };
    set_update_status(ctx.pool(), &status).await?;
    match parsed {
        Ok(_) => {
            let verdict = match status.available() {
                Some(new) => format!(
                    "update available: build {} → {new}",
                    status
                        .installed
                        .map(|b| b.to_string())
                        .unwrap_or_else(|| "none".into())
                ),
                None => "the newest build is installed".into(),
            };
            ctx.say(verdict).await?;
            Ok(status)
        }
        Err(message) => Err(JobFailure::Failed(message)),
    }
}

/// Keeps server `id` on `build` (None: back to the newest) from its next
/// start, restart or reset on.
pub async fn pin(pool: &SqlitePool, id: i64, build: Option<BuildId>) -> Result<(), sqlx::Error> {
    let build = build.and_then(|b| i64::try_from(b.0).ok());
    sqlx::query("UPDATE servers SET pinned_build = ? WHERE id = ?")
        .bind(build)
        .bind(id)
        .execute(pool)
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_is_a_newer_published_build() {
        let s = |installed: Option<u64>, published: Option<u64>| UpdateStatus {
            checked_at: String::new(),
            installed: installed.map(BuildId),
            published: published.map(BuildId),
            error: None,
        };
        assert_eq!(s(Some(1), Some(2)).available(), Some(BuildId(2)));
        assert_eq!(s(Some(2), Some(2)).available(), None);
        assert_eq!(s(Some(3), Some(2)).available(), None);
        assert_eq!(s(None, Some(2)).available(), Some(BuildId(2)));
        assert_eq!(s(Some(1), None).available(), None, "a failed check");
    }
}
