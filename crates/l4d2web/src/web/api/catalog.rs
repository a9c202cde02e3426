//! `/api/v1/me`, blueprints (the caller's own) and overlays (their own and
//! the system ones), and an overlay's build.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{path_id, ApiJson, ApiUser};
use super::servers::JobQueued;
use crate::overlays::{self, Overlay};
use crate::servers;
use crate::servers::blueprints::{self as bp, Blueprint};
use crate::tasks::{self, Task};
use crate::web::state::AppState;

/// The caller and the token used.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub id: i64,
    pub username: String,
    pub is_admin: bool,
    pub token: TokenInfo,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenInfo {
    pub name: String,
    /// read or operate.
    pub scope: String,
    pub expires_at: String,
}

#[utoipa::path(get, path = "/api/v1/me", tag = "account",
    responses(
        (status = 200, body = Me),
        (status = 401, body = ErrorBody),
    ))]
pub async fn me(caller: ApiUser) -> Json<Me> {
    Json(Me {
        id: caller.user.id,
        username: caller.user.username,
        is_admin: caller.user.is_admin,
        token: TokenInfo {
            name: caller.token.name,
            scope: caller.token.scope.as_str().to_string(),
            expires_at: caller.token.expires_at,
        },
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BlueprintSummary {
    pub id: i64,
    pub name: String,
    /// Launch arguments.
    pub args: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Blueprint> for BlueprintSummary {
    fn from(b: Blueprint) -> Self {
        BlueprintSummary {
            id: b.id,
            name: b.name,
            args: b.args,
            created_at: b.created_at,
            updated_at: b.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StackOverlay {
    /// 1 is the lowest layer.
    pub position: i64,
    pub overlay_id: i64,
    pub name: String,
    pub kind: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServerRef {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BlueprintDetail {
    #[serde(flatten)]
    pub summary: BlueprintSummary,
    /// The server.cfg it gives its servers.
    pub config: String,
    /// Its overlays, lowest first.
    pub overlays: Vec<StackOverlay>,
    /// The servers made from it.
    pub servers: Vec<ServerRef>,
}

#[utoipa::path(get, path = "/api/v1/blueprints", tag = "blueprints",
    responses(
        (status = 200, description = "The caller's blueprints", body = Vec<BlueprintSummary>),
        (status = 401, body = ErrorBody),
    ))]
pub async fn blueprints(
    State(state): State<AppState>,
    caller: ApiUser,
) -> Result<Json<Vec<BlueprintSummary>>, ApiError> {
    let list = bp::list(&state.pool, caller.user.id).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

#[utoipa::path(get, path = "/api/v1/blueprints/{id}", tag = "blueprints",
    params(("id" = i64, Path, description = "Blueprint id")),
    responses(
        (status = 200, body = BlueprintDetail),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such blueprint of the caller's", body = ErrorBody),
    ))]
pub async fn blueprint(
    State(state): State<AppState>,
    caller: ApiUser,
    PathId(id): PathId,
) -> Result<Json<BlueprintDetail>, ApiError> {
    let b = bp::find_owned(&state.pool, caller.user.id, id).await?;
    let overlays = bp::stack(&state.pool, b.id)
        .await?
        .into_iter()
        .map(|s| StackOverlay {
            position: s.position,
            overlay_id: s.overlay_id,
            name: s.name,
            kind: s.kind,
        })
        .collect();
    let servers = servers::using_blueprint(&state.pool, b.id)
        .await?
        .into_iter()
        .map(|(id, name)| ServerRef { id, name })
        .collect();
    Ok(Json(BlueprintDetail {
        config: b.config.clone(),
        summary: b.into(),
        overlays,
        servers,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OverlaySummary {
    pub id: i64,
    pub name: String,
    /// script or workshop.
    pub kind: String,
    /// A system overlay: usable by everyone, editable by administrators.
    pub system: bool,
    /// The caller may edit and build it.
    pub editable: bool,
    pub description: String,
    /// When its last build or sync succeeded.
    pub built_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OverlayDetail {
    #[serde(flatten)]
    pub summary: OverlaySummary,
    /// The build script (script overlays).
    pub script: String,
    /// Workshop items and collections (workshop overlays).
    pub workshop_ids: Vec<u64>,
}

fn overlay_summary(o: &Overlay, caller: &ApiUser) -> OverlaySummary {
    OverlaySummary {
        id: o.id,
        name: o.name.clone(),
        kind: o.kind.as_str().to_string(),
        system: o.is_system(),
        editable: o.editable_by(&caller.user),
        description: o.description.clone(),
        built_at: o.built_at.clone(),
        created_at: o.created_at.clone(),
        updated_at: o.updated_at.clone(),
    }
}

#[utoipa::path(get, path = "/api/v1/overlays", tag = "overlays",
    responses(
        (status = 200, description = "The caller's overlays and the system ones", body = Vec<OverlaySummary>),
        (status = 401, body = ErrorBody),
    ))]
pub async fn overlays(
    State(state): State<AppState>,
    caller: ApiUser,
) -> Result<Json<Vec<OverlaySummary>>, ApiError> {
    let list = overlays::list_visible(&state.pool, &caller.user).await?;
    Ok(Json(
        list.iter().map(|o| overlay_summary(o, &caller)).collect(),
    ))
}

async fn visible_overlay(state: &AppState, caller: &ApiUser, id: i64) -> Result<Overlay, ApiError> {
    overlays::find_visible(&state.pool, &caller.user, id)
        .await?
        .ok_or(ApiError::NotFound)
}

#[utoipa::path(get, path = "/api/v1/overlays/{id}", tag = "overlays",
    params(("id" = i64, Path, description = "Overlay id")),
    responses(
        (status = 200, body = OverlayDetail),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such overlay, or another user's", body = ErrorBody),
    ))]
pub async fn overlay(
    State(state): State<AppState>,
    caller: ApiUser,
    PathId(id): PathId,
) -> Result<Json<OverlayDetail>, ApiError> {
    let o = visible_overlay(&state, &caller, id).await?;
    Ok(Json(OverlayDetail {
        summary: overlay_summary(&o, &caller),
        workshop_ids: o.refs(),
        script: o.script,
    }))
}

/// Options of a build (the body may be left out).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildRequest {
    /// Script overlays: empty the overlay's directory first.
    #[serde(default)]
    pub clean: bool,
}

#[utoipa::path(post, path = "/api/v1/overlays/{id}/build", tag = "overlays",
    params(("id" = i64, Path, description = "Overlay id")),
    request_body(content = Option<BuildRequest>, description = "Optional"),
    responses(
        (status = 202, description = "Build (script) or sync (workshop) queued", body = JobQueued),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "A read token, or a system overlay and no administrator", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn build(
    State(state): State<AppState>,
    caller: ApiUser,
    PathId(id): PathId,
    ApiJson(body): ApiJson<Option<BuildRequest>>,
) -> Result<(StatusCode, Json<JobQueued>), ApiError> {
    let o = visible_overlay(&state, &caller, id).await?;
    if !o.editable_by(&caller.user) {
        return Err(ApiError::Forbidden(
            "only administrators build system overlays".into(),
        ));
    }
    let clean = body.unwrap_or_default().clean;
    let job = tasks::submit(
        &state.jobs,
        &Task::overlay_sync(&o, clean),
        Some(caller.user.id),
    )
    .await?;
    Ok(JobQueued::new(job.id))
}

/// The path's `{id}` as a number (404 otherwise).
pub struct PathId(pub i64);

impl FromRequestParts<AppState> for PathId {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(PathId(path_id(parts, state).await?))
    }
}
