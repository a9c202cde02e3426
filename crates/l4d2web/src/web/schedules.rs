//! Schedules on the server and blueprint pages: the list with next run
//! times, adding, pausing, resuming and deleting. Only the owner of the
//! server or blueprint sees or changes its schedules.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;

use super::audit::{Note, Trail};
use super::error::AppError;
use super::extract::{Authed, Protected};
use super::page::{flash, parse_id, stamp, Stamp};
use super::routes::Routes;
use super::state::AppState;
use crate::audit::{self, Kind};
use crate::schedules::{self, NewSchedule, Schedule, ScheduleAction, Target};
use crate::servers::{self, blueprints as bp};

pub fn routes() -> Routes {
    Routes::default()
        .post("/servers/{id}/schedules", add_to_server)
        .post("/blueprints/{id}/schedules", add_to_blueprint)
        .post("/schedules/{id}/pause", pause)
        .post("/schedules/{id}/resume", resume)
        .post("/schedules/{id}/delete", delete)
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
    a: &Authed,
    trail: &Trail,
    target: Target,
    form: &AddForm,
    page: String,
) -> Result<Response, AppError> {
    let new = form.validate()?;
    let id = schedules::create(&state.pool, a.user.id, target, &new).await?;
    state.schedules.schedules_changed();
    let created = schedules::find_owned(&state.pool, a.user.id, id).await?;
    if let Some(s) = &created {
        note(trail, Kind::ScheduleAdded, s).save(state).await;
    }
    let next = created
        .and_then(|s| s.next_runs(1, Utc::now()).into_iter().next())
        .unwrap_or_else(|| "never".into());
    flash(
        state,
        &a.session,
        &format!(
            "Schedule added ({} at “{}”); next run {next}.",
            new.action.label(),
            new.cron
        ),
    )
    .await?;
    Ok(Redirect::to(&format!("{page}#schedules")).into_response())
}

async fn add_to_server(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    trail: Trail,
    Protected { form, .. }: Protected<AddForm>,
) -> Result<Response, AppError> {
    let server = servers::find_owned(&state.pool, a.user.id, parse_id(&id)?)
        .await?
        .ok_or(AppError::NotFound)?;
    let page = format!("/servers/{}", server.id);
    add(&state, &a, &trail, Target::Server(server.id), &form, page).await
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
        &a,
        &trail,
        Target::Blueprint(blueprint.id),
        &form,
        page,
    )
    .await
}

#[derive(Deserialize)]
struct Empty {}

/// Schedule `id` if the visitor owns it, and the page it belongs on.
async fn owned(state: &AppState, a: &Authed, id: &str) -> Result<(Schedule, String), AppError> {
    let s = schedules::find_owned(&state.pool, a.user.id, parse_id(id)?)
        .await?
        .ok_or(AppError::NotFound)?;
    let page = match (s.server_id, s.blueprint_id) {
        (Some(server), _) => format!("/servers/{server}#schedules"),
        (None, Some(blueprint)) => format!("/blueprints/{blueprint}#schedules"),
        (None, None) => "/servers".into(),
    };
    Ok((s, page))
}

async fn set_enabled(
    state: AppState,
    a: Authed,
    trail: Trail,
    id: String,
    enabled: bool,
) -> Result<Response, AppError> {
    let (s, page) = owned(&state, &a, &id).await?;
    schedules::set_enabled(&state.pool, a.user.id, s.id, enabled).await?;
    state.schedules.schedules_changed();
    let kind = if enabled {
        Kind::ScheduleResumed
    } else {
        Kind::SchedulePaused
    };
    note(&trail, kind, &s).save(&state).await;
    let what = if enabled { "resumed" } else { "paused" };
    flash(
        &state,
        &a.session,
        &format!("Schedule “{}” {what}.", s.cron),
    )
    .await?;
    Ok(Redirect::to(&page).into_response())
}

async fn pause(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    trail: Trail,
    Protected { .. }: Protected<Empty>,
) -> Result<Response, AppError> {
    set_enabled(state, a, trail, id, false).await
}

async fn resume(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    trail: Trail,
    Protected { .. }: Protected<Empty>,
) -> Result<Response, AppError> {
    set_enabled(state, a, trail, id, true).await
}

async fn delete(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    trail: Trail,
    Protected { .. }: Protected<Empty>,
) -> Result<Response, AppError> {
    let (s, page) = owned(&state, &a, &id).await?;
    schedules::delete_owned(&state.pool, a.user.id, s.id).await?;
    state.schedules.schedules_changed();
    note(&trail, Kind::ScheduleDeleted, &s).save(&state).await;
    flash(
        &state,
        &a.session,
        &format!("Schedule “{}” deleted.", s.cron),
    )
    .await?;
    Ok(Redirect::to(&page).into_response())
}
