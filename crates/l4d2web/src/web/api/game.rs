//! `/api/v1/builds`, `/api/v1/update-check` and `/api/v1/servers/{id}/build`:
//! the installed game builds and the last check for a new one
//! (administrators, as on the Jobs page), and moving one server to another
//! installed build (a rollback, or back to the newest), as on its page.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiServer, ApiUser};
use super::servers::JobQueued;
use crate::game::builds;
use crate::servers::access::Right;
use crate::tasks;
use crate::web::audit::Trail;
use crate::web::game::move_to_build;
use crate::web::state::AppState;

fn admin_only(caller: &ApiUser) -> Result<(), ApiError> {
    if caller.user.is_admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "only administrators see the game builds and check for new ones".into(),
        ))
    }
}

/// One installed game build.
#[derive(Debug, Serialize, ToSchema)]
pub struct BuildInfo {
    /// Steam's build id.
    pub build: u64,
    /// Its directory under the data root.
    pub dir: String,
    pub size_bytes: u64,
    /// The servers initialised on it, by name.
    pub servers: Vec<String>,
}

/// The last check for a new build on Steam.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpdateCheck {
    pub checked_at: String,
    /// The newest installed build when it ran.
    pub installed: Option<u64>,
    /// The build Steam publishes.
    pub published: Option<u64>,
    /// Why the check failed.
    pub error: Option<String>,
}

/// The installed builds, newest first, and the last update check.
#[derive(Debug, Serialize, ToSchema)]
pub struct Builds {
    pub builds: Vec<BuildInfo>,
    /// The build a server starts on unless it is kept on another one.
    pub newest: Option<u64>,
    /// A newer build Steam publishes than every installed one.
    pub update_available: Option<u64>,
    pub last_check: Option<UpdateCheck>,
}

#[utoipa::path(get, path = "/api/v1/builds", tag = "game",
    responses(
        (status = 200, body = Builds),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: ApiUser,
) -> Result<Json<Builds>, ApiError> {
    admin_only(&caller)?;
    let report = state.builds.report().await?;
    let check = builds::update_status(&state.pool).await?;
    let newest = report.newest;
    let update_available = check
        .as_ref()
        .and_then(|c| c.published)
        .filter(|published| newest.is_none_or(|n| *published > n))
        .map(|b| b.0);
    Ok(Json(Builds {
        builds: report
            .builds
            .iter()
            .map(|b| BuildInfo {
                build: b.id.0,
                dir: b.dir.clone(),
                size_bytes: b.size_bytes,
                servers: b.instances.clone(),
            })
            .collect(),
        newest: newest.map(|b| b.0),
        update_available,
        last_check: check.map(|c| UpdateCheck {
            checked_at: c.checked_at,
            installed: c.installed.map(|b| b.0),
            published: c.published.map(|b| b.0),
            error: c.error,
        }),
    }))
}

#[utoipa::path(post, path = "/api/v1/update-check", tag = "game",
    responses(
        (status = 202, description = "Queued (or the check already waiting); with automatic installs on, a new build is installed after it", body = JobQueued),
        (status = 401, body = ErrorBody),
        (status = 403, description = "A read token, or not an administrator", body = ErrorBody),
    ))]
pub async fn check(
    State(state): State<AppState>,
    caller: ApiUser,
) -> Result<(StatusCode, Json<JobQueued>), ApiError> {
    admin_only(&caller)?;
    let job = tasks::rollout::check_now(&state.jobs, caller.user.id).await?;
    Ok(JobQueued::new(job))
}

/// The build to keep a server on.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildRequest {
    /// An installed build id, or `newest` to follow the newest build again.
    #[schema(example = "newest")]
    pub build: String,
}

/// What moving a server did.
#[derive(Debug, Serialize, ToSchema)]
pub struct BuildMoved {
    pub message: String,
    /// The restart onto the build, when the server should run.
    pub job_id: Option<i64>,
    pub job_url: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/servers/{id}/build", tag = "game",
    params(("id" = i64, Path, description = "Server id")),
    request_body = BuildRequest,
    responses(
        (status = 200, description = "Kept on that build; a running server restarts onto it (the job)", body = BuildMoved),
        (status = 400, description = "Not a build id, or a build that is not installed", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "A read token, or a role below manager", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn set_build(
    State(state): State<AppState>,
    on: ApiServer,
    trail: Trail,
    ApiJson(body): ApiJson<BuildRequest>,
) -> Result<Json<BuildMoved>, ApiError> {
    on.require(Right::Manage)?;
    let server = &on.access.server;
    let moved = move_to_build(&state, server, on.caller.user.id, &body.build, &trail)
        .await
        .map_err(|e| match ApiError::from(e) {
            ApiError::BadRequest { message, .. } => ApiError::bad(Some("build"), message),
            other => other,
        })?;
    Ok(Json(BuildMoved {
        message: moved.message(&server.name),
        job_id: moved.job,
        job_url: moved.job.map(|id| format!("/api/v1/jobs/{id}")),
    }))
}
