//! Schedules on the server and blueprint pages: the list with next run
//! times, adding, pausing, resuming and deleting. A server's schedules
//! belong to whoever may manage the server; a blueprint's to its owner.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;

use super::audit::{Note, Trail};
use super::error::AppError;
use super::extract::{Authed, Protected};
use super::on_server::OnServer;
use super::page::{flash, parse_id, stamp, Stamp};
use super::routes::Routes;
use super::state::AppState;
use crate::audit::{self, Kind};
use crate::auth::Session;
use crate::schedules::{self, NewSchedule, Schedule, ScheduleAction, Target};
use crate::servers::access::Right;
use crate::servers::blueprints as bp;

pub fn routes() -> Routes {
    Routes::default()
        .server_post("/servers/{id}/schedules", Right::Manage, add_to_server)
        .server_post(
            "/servers/{id}/schedules/{schedule}/pause",
            Right::Manage,
            pause_on_server,
        )
        .server_post(
            "/servers/{id}/schedules/{schedule}/resume",
            Right::Manage,
            resume_on_server,
        )
        .server_post(
            "/servers/{id}/schedules/{schedule}/delete",
            Right::Manage,
            delete_on_server,
        )
        .post("/blueprints/{id}/schedules", add_to_blueprint)
        .post(
            "/blueprints/{id}/schedules/{schedule}/pause",
            pause_on_blueprint,
        )
        .post(
            "/blueprints/{id}/schedules/{schedule}/resume",
            resume_on_blueprint,
        )
        .post(
            "/blueprints/{id}/schedules/{schedule}/delete",
            delete_on_blueprint,
        )
}

/// The schedules section of a server or blueprint page.
pub struct SchedulesBlock {
    /// Where the add form posts.
    pub add_url: String,
    pub items: Vec<ScheduleItem>,
    /// A blueprint's schedules act on each of its servers.
    pub for_blueprint: bool,
}

pub struct ScheduleItem {
    pub schedule: Schedule,
    pub what: String,
    pub next: Vec<String>,
    pub last_run: Option<Stamp>,
}

impl SchedulesBlock {
    pub async fn load(state: &AppState, target: Target) -> Result<SchedulesBlock, AppError> {
        let now = Utc::now();
        let items = schedules::list_for(&state.pool, target)
            .await?
            .into_iter()
            .map(|s| ScheduleItem {
                what: s.describe(),
                next: if s.enabled {
                    s.next_runs(3, now)
                } else {
                    Vec::new()
                },
                last_run: s.last_run_at.as_deref().map(stamp),
                schedule: s,
            })
            .collect();
        let (add_url, for_blueprint) = match target {
            Target::Server(id) => (format!("/servers/{id}/schedules"), false),
            Target::Blueprint(id) => (format!("/blueprints/{id}/schedules"), true),
        };
        Ok(SchedulesBlock {
            add_url,
            items,
            for_blueprint,
        })
    }

    /// The actions the add form offers, as (value, label).
    pub fn actions(&self) -> Vec<(&'static str, &'static str)> {
        ScheduleAction::ALL
            .iter()
            .map(|a| (a.as_str(), a.label()))
            .collect()
    }
}

#[derive(Deserialize)]
struct AddForm {
    action: String,
    cron: String,
    #[serde(default)]
    time_zone: String,
    #[serde(default)]
    command: String,
    #[serde(default)]
    empty_minutes: String,
}

impl AddForm {
    fn validate(&self) -> Result<NewSchedule, AppError> {
        Ok(NewSchedule::validate(
            &self.action,
            &self.cron,
            &self.time_zone,
            &self.command,
            &self.empty_minutes,
        )?)
    }
}

/// An audit entry about schedule `s` (its RCON command's secrets masked).
fn note(trail: &Trail, kind: Kind, s: &Schedule) -> Note {
    let mut masked = s.clone();
    masked.command = audit::mask_secrets(&s.command);
    let on = match s.blueprint_id {
        Some(b) => format!(", on each server of blueprint #{b}"),
        None => String::new(),
    };
    let detail = format!("{} ({}{on})", masked.describe(), s.time_zone);
    let note = trail.note(kind).target("schedule", s.id, &s.cron);
    match s.server_id {
        Some(server) => note.concerns(server, s.owner_id).detail(detail),
        None => note.detail(detail),
    }
}

async fn add(
    state: &AppState,
    session: &Session,
    trail: &Trail,
    owner: i64,
    target: Target,
    form: &AddForm,
    page: String,
) -> Result<Response, AppError> {
    let new = form.validate()?;
    let id = schedules::create(&state.pool, owner, target, &new).await?;
    state.schedules.schedules_changed();
    let created = schedules::find_in(&state.pool, target, id).await?;
    if let Some(s) = &created {
        note(trail, Kind::ScheduleAdded, s).save(state).await;
    }
    let next = created
        .and_then(|s| s.next_runs(1, Utc::now()).into_iter().next())
        .unwrap_or_else(|| "never".into());
    flash(
        state,
        session,
        &format!(
            "Schedule added ({} at “{}”); next run {next}.",
            new.action.label(),
            new.cron
        ),
    )
    .await?;
    Ok(Redirect::to(&format!("{page}#schedules")).into_response())
}

/// A server's schedules run as its owner's jobs, whoever added them.
async fn add_to_server(
    State(state): State<AppState>,
    on: OnServer,
    trail: Trail,
    Protected { form, .. }: Protected<AddForm>,
) -> Result<Response, AppError> {
    let server = on.server();
    let page = format!("/servers/{}", server.id);
    add(
        &state,
        &on.authed.session,
        &trail,
        server.owner_id,
        Target::Server(server.id),
        &form,
        page,
    )
    .await
}

async fn add_to_blueprint(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    trail: Trail,
    Protected { form, .. }: Protected<AddForm>,
) -> Result<Response, AppError> {
    let blueprint = bp::find_owned(&state.pool, a.user.id, parse_id(&id)?).await?;
    let page = format!("/blueprints/{}", blueprint.id);
    add(
        &state,
        &a.session,
        &trail,
        a.user.id,
        Target::Blueprint(blueprint.id),
        &form,
        page,
    )
    .await
}

#[derive(Deserialize)]
struct Empty {}

/// What to do with one schedule.
#[derive(Clone, Copy)]
enum Change {
    Pause,
    Resume,
    Delete,
}

/// Schedule `schedule` of `target` (404 if it belongs to anything else).
async fn change(
    state: &AppState,
    session: &Session,
    trail: &Trail,
    target: Target,
    schedule: &str,
    change: Change,
    page: String,
) -> Result<Response, AppError> {
    let s = schedules::find_in(&state.pool, target, parse_id(schedule)?)
        .await?
        .ok_or(AppError::NotFound)?;
    let (what, kind) = match change {
        Change::Pause => {
            schedules::set_enabled(&state.pool, s.id, false).await?;
            ("paused", Kind::SchedulePaused)
        }
        Change::Resume => {
            schedules::set_enabled(&state.pool, s.id, true).await?;
            ("resumed", Kind::ScheduleResumed)
        }
        Change::Delete => {
            schedules::delete(&state.pool, s.id).await?;
            ("deleted", Kind::ScheduleDeleted)
        }
    };
    state.schedules.schedules_changed();
    note(trail, kind, &s).save(state).await;
    flash(state, session, &format!("Schedule “{}” {what}.", s.cron)).await?;
    Ok(Redirect::to(&format!("{page}#schedules")).into_response())
}

async fn on_server(
    state: AppState,
    on: OnServer,
    trail: Trail,
    schedule: String,
    c: Change,
) -> Result<Response, AppError> {
    let id = on.server().id;
    change(
        &state,
        &on.authed.session,
        &trail,
        Target::Server(id),
        &schedule,
        c,
        format!("/servers/{id}"),
    )
    .await
}

async fn on_blueprint(
    state: AppState,
    a: Authed,
    trail: Trail,
    blueprint: String,
    schedule: String,
    c: Change,
) -> Result<Response, AppError> {
    let blueprint = bp::find_owned(&state.pool, a.user.id, parse_id(&blueprint)?).await?;
    let page = format!("/blueprints/{}", blueprint.id);
    change(
        &state,
        &a.session,
        &trail,
        Target::Blueprint(blueprint.id),
        &schedule,
        c,
        page,
    )
    .await
}

async fn pause_on_server(
    State(state): State<AppState>,
    on: OnServer,
    Path((_, schedule)): Path<(String, String)>,
    trail: Trail,
    Protected { .. }: Protected<Empty>,
) -> Result<Response, AppError> {
    on_server(state, on, trail, schedule, Change::Pause).await
}

async fn resume_on_server(
    State(state): State<AppState>,
    on: OnServer,
    Path((_, schedule)): Path<(String, String)>,
    trail: Trail,
    Protected { .. }: Protected<Empty>,
) -> Result<Response, AppError> {
    on_server(state, on, trail, schedule, Change::Resume).await
}

async fn delete_on_server(
    State(state): State<AppState>,
    on: OnServer,
    Path((_, schedule)): Path<(String, String)>,
    trail: Trail,
    Protected { .. }: Protected<Empty>,
) -> Result<Response, AppError> {
    on_server(state, on, trail, schedule, Change::Delete).await
}

async fn pause_on_blueprint(
    State(state): State<AppState>,
    a: Authed,
    Path((id, schedule)): Path<(String, String)>,
    trail: Trail,
    Protected { .. }: Protected<Empty>,
) -> Result<Response, AppError> {
    on_blueprint(state, a, trail, id, schedule, Change::Pause).await
}

async fn resume_on_blueprint(
    State(state): State<AppState>,
    a: Authed,
    Path((id, schedule)): Path<(String, String)>,
    trail: Trail,
    Protected { .. }: Protected<Empty>,
) -> Result<Response, AppError> {
    on_blueprint(state, a, trail, id, schedule, Change::Resume).await
}

async fn delete_on_blueprint(
    State(state): State<AppState>,
    a: Authed,
    Path((id, schedule)): Path<(String, String)>,
    trail: Trail,
    Protected { .. }: Protected<Empty>,
) -> Result<Response, AppError> {
    on_blueprint(state, a, trail, id, schedule, Change::Delete).await
}
