//! `/api/v1/servers`: the servers the caller has a role on, one server's
//! state, its live panel, and actions.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiServer, ApiUser};
use crate::servers::access::{self, Right};
use crate::servers::status::{self, InstanceStatus};
use crate::servers::Action;
use crate::tasks;
use crate::web::servers::ServerView;
use crate::web::state::AppState;

/// A server with its state, as the dashboard shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerSummary {
    pub id: i64,
    pub name: String,
    /// The caller's role: owner, viewer, operator, manager or administrator.
    pub role: String,
    pub port: i64,
    pub blueprint_id: i64,
    pub blueprint_name: String,
    /// What was last asked for: running or stopped.
    pub desired_state: String,
    /// What the host says ("running", "stopped", "not started", "crash
    /// loop", ...); null when the host could not be asked.
    pub observed_state: Option<String>,
    /// How observed and desired state differ, if they do.
    pub drift: Option<String>,
    /// Crashes seen since the server was created.
    pub crash_count: i64,
    /// Crashed too often to be restarted until someone acts on it.
    pub crash_loop: bool,
    /// A delete was requested and has not finished.
    pub deleting: bool,
}

/// One server: its summary and the details of its state.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerDetail {
    #[serde(flatten)]
    pub summary: ServerSummary,
    /// The service manager's words.
    pub observed_detail: String,
    /// Why the state is unknown, when it is.
    pub status_error: Option<String>,
    pub last_crash_at: Option<String>,
    /// How the last crash ended.
    pub last_exit: Option<String>,
    pub created_at: String,
    /// The game build it was initialised on (it runs on it until its next
    /// start, restart or reset); null before its first start.
    pub build: Option<u64>,
    /// The build it is kept on (a rollback); null: the newest.
    pub pinned_build: Option<i64>,
}

fn summary(view: &ServerView) -> ServerSummary {
    let s = &view.server;
    ServerSummary {
        id: s.id,
        name: s.name.clone(),
        role: view.role.as_str().to_string(),
        port: s.port,
        blueprint_id: s.blueprint_id,
        blueprint_name: s.blueprint_name.clone(),
        desired_state: s.desired_state.as_str().to_string(),
        observed_state: view.actual.is_some().then(|| view.state_label()),
        drift: view.drift.as_ref().map(|d| d.message()),
        crash_count: s.crash_count,
        crash_loop: s.crash_loop,
        deleting: s.deleting,
    }
}

#[utoipa::path(get, path = "/api/v1/servers", tag = "servers",
    responses(
        (status = 200, description = "The servers the caller has a role on, by name", body = Vec<ServerSummary>),
        (status = 401, body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: ApiUser,
) -> Result<Json<Vec<ServerSummary>>, ApiError> {
    let rows = access::visible(&state.pool, &caller.user).await?;
    // One host query for every server.
    let all: Option<HashMap<String, InstanceStatus>> = if rows.is_empty() {
        Some(HashMap::new())
    } else {
        status::list_all(&state.host).await.ok()
    };
    Ok(Json(
        rows.into_iter()
            .map(|a| {
                let actual = all.as_ref().map(|m| m.get(&a.server.name).cloned());
                summary(&ServerView::new(a, actual))
            })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/servers/{id}", tag = "servers",
    params(("id" = i64, Path, description = "Server id")),
    responses(
        (status = 200, body = ServerDetail),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such server, or no role on it", body = ErrorBody),
    ))]
pub async fn detail(
    State(state): State<AppState>,
    on: ApiServer,
) -> Result<Json<ServerDetail>, ApiError> {
    let (actual, status_error) = match status::one(&state.host, &on.access.server.name).await {
        Ok(s) if s.exists => (Some(Some(s)), None),
        Ok(_) => (Some(None), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let build = match state.builds.report().await {
        Ok(report) => report.build_of(&on.access.server.name).map(|b| b.id.0),
        Err(_) => None,
    };
    let view = ServerView::new(on.access, actual);
    Ok(Json(ServerDetail {
        summary: summary(&view),
        observed_detail: view.state_detail(),
        status_error,
        last_crash_at: view.server.last_crash_at.clone(),
        last_exit: view.server.last_exit.clone(),
        created_at: view.server.created_at.clone(),
        build,
        pinned_build: view.server.pinned_build,
    }))
}

/// One player (from RCON `status`, refreshed while someone watches).
#[derive(Debug, Serialize, ToSchema)]
pub struct LivePlayer {
    pub name: String,
    pub steam_id: String,
    pub steam_id64: Option<String>,
    pub ping: Option<u32>,
    pub connected_secs: Option<u64>,
    pub is_bot: bool,
}

/// What is known about a running server now.
#[derive(Debug, Serialize, ToSchema)]
pub struct Live {
    pub map: Option<String>,
    pub hostname: Option<String>,
    /// Human players (A2S).
    pub humans: Option<u32>,
    pub bots: Option<u32>,
    /// The slot limit.
    pub slots: Option<u32>,
    pub players: Vec<LivePlayer>,
    /// Why the last poll failed.
    pub error: Option<String>,
    pub updated_at: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/servers/{id}/live", tag = "servers",
    params(("id" = i64, Path, description = "Server id")),
    responses(
        (status = 200, body = Live),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn live(State(state): State<AppState>, on: ApiServer) -> Json<Live> {
    let s = state.live.snapshot(on.access.server.id);
    Json(Live {
        map: s.map,
        hostname: s.hostname,
        humans: s.humans,
        bots: s.bots,
        slots: s.player_count.map(|(_, slots)| slots),
        players: s
            .players
            .into_iter()
            .map(|p| LivePlayer {
                name: p.name,
                steam_id: p.steam_id,
                steam_id64: p.steam_id64.map(|id| id.to_string()),
                ping: p.ping,
                connected_secs: p.connected_secs,
                is_bot: p.is_bot,
            })
            .collect(),
        error: s.error,
        updated_at: s.updated_at,
    })
}

/// An action on a server.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// start, stop, restart (operator), reset (manager) or delete (owner).
    #[schema(example = "restart")]
    pub action: String,
}

/// A queued job.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobQueued {
    pub job_id: i64,
    /// Where its state and log are.
    pub job_url: String,
}

impl JobQueued {
    pub fn new(id: i64) -> (StatusCode, Json<JobQueued>) {
        (
            StatusCode::ACCEPTED,
            Json(JobQueued {
                job_id: id,
                job_url: format!("/api/v1/jobs/{id}"),
            }),
        )
    }
}

#[utoipa::path(post, path = "/api/v1/servers/{id}/actions", tag = "servers",
    params(("id" = i64, Path, description = "Server id")),
    request_body = ActionRequest,
    responses(
        (status = 202, description = "Queued; the desired state is recorded", body = JobQueued),
        (status = 400, description = "Bad body or unknown action (with the field)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "A read token, or a role too low for the action", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn act(
    State(state): State<AppState>,
    on: ApiServer,
    ApiJson(body): ApiJson<ActionRequest>,
) -> Result<(StatusCode, Json<JobQueued>), ApiError> {
    let action = Action::parse(body.action.trim()).ok_or_else(|| {
        ApiError::bad(
            Some("action"),
            format!(
                "unknown action {:?}: expected start, stop, restart, reset or delete",
                body.action
            ),
        )
    })?;
    let right = match action {
        Action::Start | Action::Stop | Action::Restart => Right::Operate,
        Action::Reset => Right::Manage,
        Action::Delete => Right::Own,
    };
    on.require(right)?;
    let server = &on.access.server;
    let job =
        tasks::request_server_action(&state.jobs, server, action, on.caller.user.id, None).await?;
    Ok(JobQueued::new(job))
}
