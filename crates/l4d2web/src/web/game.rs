//! Game builds on the pages: the builds and the update check on the Jobs
//! page (administrators), a server's build with rollback, and a
//! blueprint's update policy with its rollout.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use l4d2_contract::builds::{BuildId, BuildsReport};
use serde::Deserialize;

use super::audit::Trail;
use super::error::AppError;
use super::extract::{Admin, Authed, Protected};
use super::on_server::OnServer;
use super::page::{flash, parse_id};
use super::routes::Routes;
use super::sparkline::bytes;
use super::state::AppState;
use crate::audit::Kind;
use crate::game::builds::{self, UpdateStatus};
use crate::game::rollout::{self, Policy, Rollout};
use crate::servers::access::Right;
use crate::servers::blueprints as bp;
use crate::servers::{Action, ServerRow};
use crate::tasks;

pub fn routes() -> Routes {
    Routes::default()
        .post("/admin/update-check", check_now)
        .server_post("/servers/{id}/build", Right::Manage, set_build)
        .post("/blueprints/{id}/rollout", set_rollout)
}

/// One installed build, for a table.
pub struct BuildRow {
    pub id: BuildId,
    pub newest: bool,
    pub size: String,
    pub servers: String,
    pub legacy: bool,
}

/// The Jobs page's game section (administrators).
pub struct BuildsSection {
    pub builds: Vec<BuildRow>,
    /// The newest installed build, as the host says now.
    pub newest: Option<BuildId>,
    /// Why the host's report could not be read.
    pub error: Option<String>,
    pub update: Option<UpdateStatus>,
}

impl BuildsSection {
    pub async fn load(state: &AppState) -> Result<BuildsSection, AppError> {
        let update = builds::update_status(&state.pool).await?;
        let (builds, newest, error) = match state.builds.report().await {
            Ok(report) => (rows(&report), report.newest, None),
            Err(e) => (Vec::new(), None, Some(e.to_string())),
        };
        Ok(BuildsSection {
            builds,
            newest,
            error,
            update,
        })
    }

    /// "update available (build X → Y)", or what the last check said.
    pub fn update_line(&self) -> Option<String> {
        let u = self.update.as_ref()?;
        let installed = self
            .newest
            .or(u.installed)
            .map(|b| b.to_string())
            .unwrap_or_else(|| "none".into());
        Some(match (&u.error, self.available()) {
            (Some(e), _) => format!("The last check for a new game build failed: {e}"),
            (None, Some(new)) => format!("Update available (build {installed} → {new})"),
            (None, None) => format!("Up to date: Steam publishes build {installed}"),
        })
    }

    /// The build Steam publishes, when it is newer than every installed
    /// one (an install since the check may have brought it already).
    fn available(&self) -> Option<BuildId> {
        let u = self.update.as_ref()?;
        let published = u.published?;
        let installed = self.newest.or(u.installed);
        installed.is_none_or(|i| published > i).then_some(published)
    }

    pub fn update_available(&self) -> bool {
        self.available().is_some()
    }

    pub fn checked_at(&self) -> &str {
        self.update.as_ref().map_or("", |u| u.checked_at.as_str())
    }
}

fn rows(report: &BuildsReport) -> Vec<BuildRow> {
    report
        .builds
        .iter()
        .map(|b| BuildRow {
            id: b.id,
            newest: report.newest == Some(b.id),
            size: bytes(b.size_bytes as f64),
            servers: if b.instances.is_empty() {
                "none".into()
            } else {
                b.instances.join(", ")
            },
            legacy: b.dir == l4d2_contract::builds::LEGACY_DIR,
        })
        .collect()
}

async fn check_now(
    State(state): State<AppState>,
    Admin(a): Admin,
    Protected { .. }: Protected<Empty>,
) -> Result<Response, AppError> {
    let id = tasks::rollout::check_now(&state.jobs, a.user.id).await?;
    flash(
        &state,
        &a.session,
        &format!("Check for a new game build queued (job #{id})."),
    )
    .await?;
    Ok(Redirect::to(&format!("/jobs/{id}")).into_response())
}

#[derive(Deserialize)]
struct Empty {}

/// A server's game build on its page.
pub struct ServerBuild {
    pub current: Option<BuildId>,
    pub newest: Option<BuildId>,
    pub pinned: Option<i64>,
    /// Where "roll back" goes: the newest build older than its own.
    pub previous: Option<BuildId>,
}

impl ServerBuild {
    pub async fn load(state: &AppState, server: &ServerRow) -> Option<ServerBuild> {
        let report: Arc<BuildsReport> = state.builds.report().await.ok()?;
        let current = report.build_of(&server.name).map(|b| b.id);
        let previous = current.or(report.newest).and_then(|b| report.previous(b));
        Some(ServerBuild {
            current,
            newest: report.newest,
            pinned: server.pinned_build,
            previous,
        })
    }

    /// The line under the server's title.
    pub fn text(&self) -> String {
        let on = match self.current {
            Some(b) => format!("game build {b}"),
            None => "not initialised on a game build yet".into(),
        };
        match (self.pinned, self.newest, self.current) {
            (Some(p), _, _) => format!("{on} · kept on build {p} (rolled back)"),
            (None, Some(n), Some(c)) if n > c => {
                format!("{on} · build {n} is installed: it moves there at its next start, restart or reset")
            }
            (None, Some(_), Some(_)) => format!("{on} (the newest)"),
            _ => on,
        }
    }
}

#[derive(Deserialize)]
struct BuildForm {
    /// A build id, or `newest`.
    build: String,
}

/// Keeps a server on an older build (rollback), or back on the newest; a
/// running server restarts onto it at once.
async fn set_build(
    State(state): State<AppState>,
    on: OnServer,
    trail: Trail,
    Protected { form, .. }: Protected<BuildForm>,
) -> Result<Response, AppError> {
    let server = on.server();
    let moved = move_to_build(&state, server, on.user().id, &form.build, &trail).await?;
    flash(&state, &on.authed.session, &moved.message(&server.name)).await?;
    Ok(Redirect::to(&format!("/servers/{}", server.id)).into_response())
}

/// What [`move_to_build`] did.
pub(super) struct BuildMove {
    /// "build 15000001" or "the newest build".
    pub target: String,
    /// The restart onto it, when the server runs.
    pub job: Option<i64>,
}

impl BuildMove {
    pub fn message(&self, server: &str) -> String {
        let target = &self.target;
        match self.job {
            Some(job) => format!("Server {server} restarts onto game {target} (job #{job})."),
            None => format!("Server {server} runs on game {target} from its next start."),
        }
    }
}

/// Pins `server` to the installed build `build` (a build id, or `newest`
/// to follow the newest again) and restarts it onto that build when it
/// should run. A bad or uninstalled build changes nothing. The pages and
/// the API share it.
pub(super) async fn move_to_build(
    state: &AppState,
    server: &ServerRow,
    user_id: i64,
    build: &str,
    trail: &Trail,
) -> Result<BuildMove, AppError> {
    let report = state.builds.refresh().await?;
    let build = match build.trim() {
        "newest" => None,
        text => {
            let id = BuildId::parse(text).map_err(|e| {
                AppError::BadRequest(format!("{e}; server {} unchanged", server.name))
            })?;
            if report.build(id).is_none() {
                return Err(AppError::BadRequest(format!(
                    "game build {id} is not installed; server {} unchanged",
                    server.name
                )));
            }
            Some(id)
        }
    };
    builds::pin(&state.pool, server.id, build).await?;
    let target = match build {
        Some(b) => format!("build {b}"),
        None => "the newest build".into(),
    };
    let job = if server.desired_state == crate::servers::DesiredState::Running {
        let why = format!("onto game {target}");
        Some(
            tasks::request_server_action(&state.jobs, server, Action::Restart, user_id, Some(&why))
                .await?,
        )
    } else {
        None
    };
    trail
        .note(Kind::ServerBuildChanged)
        .server(server)
        .detail(format!("to {target}"))
        .save(state)
        .await;
    Ok(BuildMove { target, job })
}

/// A blueprint's update policy and its latest rollout, on its page.
pub struct RolloutBlock {
    pub policy: Policy,
    pub minutes: i64,
    pub latest: Option<Rollout>,
}

impl RolloutBlock {
    pub async fn load(state: &AppState, blueprint_id: i64) -> Result<RolloutBlock, AppError> {
        let (policy, minutes) = rollout::policy_of(&state.pool, blueprint_id).await?;
        Ok(RolloutBlock {
            policy,
            minutes,
            latest: rollout::latest(&state.pool, blueprint_id).await?,
        })
    }

    pub fn policies(&self) -> [Policy; 3] {
        Policy::ALL
    }

    /// What the latest rollout did, in words.
    pub fn status(&self) -> Option<String> {
        let r = self.latest.as_ref()?;
        let canary = r.canary_name.as_deref().unwrap_or("the canary");
        Some(match r.state.as_str() {
            "canary" if r.canary_since.is_none() => {
                format!("Build {}: the canary {canary} is moving to it.", r.build)
            }
            "canary" => format!(
                "Build {}: the canary {canary} runs on it; the other servers follow after {} min without a crash or SourceMod error.",
                r.build, self.minutes
            ),
            "following" => format!(
                "Build {}: the other servers are moving to it ({}).",
                r.build,
                r.message.as_deref().unwrap_or("the canary passed")
            ),
            "done" => format!("Build {}: every server has moved to it.", r.build),
            _ => format!(
                "Build {}: rollout stopped: {}",
                r.build,
                r.message.as_deref().unwrap_or("no reason recorded")
            ),
        })
    }

    pub fn stopped(&self) -> bool {
        self.latest.as_ref().is_some_and(|r| r.state == "stopped")
    }
}

#[derive(Deserialize)]
struct RolloutForm {
    policy: String,
    #[serde(default)]
    minutes: String,
}

async fn set_rollout(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    trail: Trail,
    Protected { form, .. }: Protected<RolloutForm>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    // Others' blueprints are 404 before any validation message.
    let blueprint = bp::find_owned(&state.pool, a.user.id, id).await?;
    let (policy, minutes) = rollout::parse_policy(&form.policy, &form.minutes).map_err(|e| {
        AppError::BadRequest(format!("{e}; blueprint {} unchanged", blueprint.name))
    })?;
    rollout::set_policy(&state.pool, id, policy, minutes).await?;
    trail
        .note(Kind::BlueprintRolloutSet)
        .target("blueprint", id, &blueprint.name)
        .detail(format!("{} ({minutes} min)", policy.as_str()))
        .save(&state)
        .await;
    flash(
        &state,
        &a.session,
        &format!(
            "Blueprint {}: new game builds reach its servers {}.",
            blueprint.name,
            match policy {
                Policy::Manual => "when they are started, restarted or reset".to_string(),
                Policy::WhenEmpty => format!("once each has had no players for {minutes} min"),
                Policy::Canary =>
                    format!("through one canary server first, the rest after {minutes} min"),
            }
        ),
    )
    .await?;
    Ok(Redirect::to(&format!("/blueprints/{id}#game-updates")).into_response())
}
