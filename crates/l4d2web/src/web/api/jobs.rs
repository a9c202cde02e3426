//! `/api/v1/jobs`: the caller's jobs (an administrator's: every job), one
//! job with its log, and the log as a live stream.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{path_id, ApiUser};
use crate::jobs::Job;
use crate::web::jobs::{log_stream, visible_job};
use crate::web::state::AppState;

/// Most jobs the list returns (newest first).
const LIST_LIMIT: i64 = 200;
/// Most log lines one job's answer carries (the stream has them all).
const LINE_LIMIT: i64 = 100_000;

#[derive(Debug, Serialize, ToSchema)]
pub struct JobSummary {
    pub id: i64,
    /// What runs it (the task kind).
    pub kind: String,
    pub title: Option<String>,
    /// queued, running, succeeded or failed.
    pub state: String,
    pub error: Option<String>,
    /// What it is about (`server:<id>`, `overlay:<id>`).
    pub subject: Option<String>,
    /// None: a system job.
    pub user_id: Option<i64>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl From<Job> for JobSummary {
    fn from(j: Job) -> Self {
        JobSummary {
            id: j.id,
            kind: j.kind,
            title: j.title,
            state: j.state.as_str().to_string(),
            error: j.error,
            subject: j.subject,
            user_id: j.user_id,
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogLine {
    pub seq: i64,
    /// stdout, stderr or system (the panel's own narration).
    pub stream: String,
    pub line: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: JobSummary,
    /// The log so far.
    pub lines: Vec<LogLine>,
}

#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs",
    responses(
        (status = 200, description = "The newest 200 jobs the caller may see", body = Vec<JobSummary>),
        (status = 401, body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: ApiUser,
) -> Result<Json<Vec<JobSummary>>, ApiError> {
    let scope = (!caller.user.is_admin).then_some(caller.user.id);
    let jobs = state.jobs.list(scope, LIST_LIMIT).await?;
    Ok(Json(jobs.into_iter().map(JobSummary::from).collect()))
}

/// A job the caller may see: their own, one on a server they have a role
/// on, or any for administrators (as on the pages).
async fn job(state: &AppState, caller: &ApiUser, parts: &mut Parts) -> Result<Job, ApiError> {
    let id = path_id(parts, state).await?;
    Ok(visible_job(state, &caller.user, &id.to_string()).await?)
}

/// The path's job, once the caller is known.
pub struct PathJob(Job);

impl FromRequestParts<AppState> for PathJob {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = ApiUser::from_request_parts(parts, state).await?;
        Ok(PathJob(job(state, &caller, parts).await?))
    }
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = i64, Path, description = "Job id")),
    responses(
        (status = 200, body = JobDetail),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn detail(
    State(state): State<AppState>,
    PathJob(job): PathJob,
) -> Result<Json<JobDetail>, ApiError> {
    let lines = state
        .jobs
        .log()
        .lines_after(job.id, 0, LINE_LIMIT)
        .await?
        .into_iter()
        .map(|l| LogLine {
            seq: l.seq,
            stream: l.stream.as_str().to_string(),
            line: l.line,
        })
        .collect();
    Ok(Json(JobDetail {
        job: job.into(),
        lines,
    }))
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}/log", tag = "jobs",
    params(("id" = i64, Path, description = "Job id")),
    responses(
        (status = 200, content_type = "text/event-stream",
         description = "Server-sent events: `line` events (JSON: seq, stream, line; the event id is the seq, so `Last-Event-ID` resumes), while the job is an install, `progress` events after steamcmd's progress lines (JSON: stage, percent, done and total bytes, bytes_per_sec or null), then one `end` event (JSON: state) when the job ends"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn log(
    State(state): State<AppState>,
    PathJob(job): PathJob,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    Ok(log_stream(&state, job, &headers, true).await?)
}
