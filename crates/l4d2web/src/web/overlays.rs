//! Overlay pages: list, create, edit, build/sync, delete (the file
//! browser is in `files`).
//!
//! Access: a user sees their own overlays and the system ones; other
//! users' private overlays are 404 everywhere (also for administrators).
//! Editing, building and deleting need ownership, or admin rights for
//! system overlays (403 otherwise).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::audit::Trail;
use super::error::AppError;
use super::extract::{Authed, Protected};
use super::page::{flash, nav, parse_id, render, Nav};
use super::routes::Routes;
use super::state::AppState;
use crate::accounts::User;
use crate::audit::Kind as Audited;
use crate::auth::Session;
use crate::jobs::Job;
use crate::overlays::{self, workshop, Kind, Overlay, OverlayError, OverlayInput};
use crate::tasks::{self, Task};

pub fn routes() -> Routes {
    Routes::default()
        .get("/overlays", list_page)
        .post("/overlays", create)
        .get("/overlays/{id}", detail_page)
        .post("/overlays/{id}", update)
        .post("/overlays/{id}/build", build)
        .post("/overlays/{id}/delete", delete)
}

/// Overlay `id` (as in the path) if `user` may see it: their own or a
/// system one. Others' private overlays are 404 (administrators too).
pub async fn visible(state: &AppState, user: &User, id: &str) -> Result<Overlay, AppError> {
    overlays::find_visible(&state.pool, user, parse_id(id)?)
        .await?
        .ok_or(AppError::NotFound)
}

/// Visible and editable by `user`; a visible system overlay is 403 for
/// non-admins.
async fn editable(state: &AppState, user: &User, id: &str) -> Result<Overlay, AppError> {
    let o = visible(state, user, id).await?;
    if o.editable_by(user) {
        Ok(o)
    } else {
        Err(AppError::Forbidden)
    }
}

struct Row {
    overlay: Overlay,
    owner: String,
}

#[derive(Template)]
#[template(path = "overlays.html")]
struct ListPage {
    nav: Nav,
    csrf: String,
    rows: Vec<Row>,
    is_admin: bool,
    form: NewForm,
    error: Option<String>,
}

#[derive(Default, Deserialize)]
pub struct NewForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    script: String,
    #[serde(default)]
    refs: String,
    #[serde(default)]
    system: Option<String>,
}

async fn list_with(
    state: &AppState,
    session: &Session,
    user: &User,
    form: NewForm,
    error: Option<String>,
) -> Result<Response, AppError> {
    let rows = overlays::list_visible(&state.pool, user)
        .await?
        .into_iter()
        .map(|o| Row {
            owner: if o.is_system() {
                "system".into()
            } else {
                "you".into()
            },
            overlay: o,
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = ListPage {
        nav: nav(state, session).await?,
        csrf: session.csrf_token.clone(),
        rows,
        is_admin: user.is_admin,
        form,
        error,
    };
    Ok((status, render(&page)?).into_response())
}

async fn list_page(State(state): State<AppState>, a: Authed) -> Result<Response, AppError> {
    let form = NewForm {
        kind: "script".into(),
        ..NewForm::default()
    };
    list_with(&state, &a.session, &a.user, form, None).await
}

async fn create(
    State(state): State<AppState>,
    trail: Trail,
    submitted: Protected<NewForm>,
) -> Result<Response, AppError> {
    let user = submitted.user()?.clone();
    let Protected { session, form } = submitted;
    let kind = Kind::parse(&form.kind)?;
    if form.system.is_some() && !user.is_admin {
        return Err(AppError::Forbidden);
    }
    let owner = if form.system.is_some() {
        None
    } else {
        Some(user.id)
    };
    let input = OverlayInput {
        name: form.name.clone(),
        description: form.description.clone(),
        script: Some(form.script.clone()),
        refs: Some(form.refs.clone()),
    };
    match overlays::create(&state.pool, &state.config.root, owner, kind, &input).await {
        Ok(o) => {
            let note = trail
                .note(Audited::OverlayCreated)
                .target("overlay", o.id, &o.name);
            let scope = if o.is_system() { "system" } else { "private" };
            note.detail(format!("{scope}, {}", form.kind.trim()))
                .save(&state)
                .await;
            flash(&state, &session, &format!("Overlay {} created.", o.name)).await?;
            Ok(Redirect::to(&format!("/overlays/{}", o.id)).into_response())
        }
        Err(e @ (OverlayError::Invalid(_) | OverlayError::NameTaken(_))) => {
            list_with(&state, &session, &user, form, Some(e.to_string())).await
        }
        Err(e) => Err(e.into()),
    }
}

struct ItemRow {
    id: i64,
    title: String,
    size: String,
    /// When the item last changed on the Workshop (RFC 3339).
    updated: String,
    cached: bool,
}

#[derive(Template)]
#[template(path = "overlay.html")]
struct DetailPage {
    nav: Nav,
    csrf: String,
    overlay: Overlay,
    can_edit: bool,
    owner: String,
    name: String,
    description: String,
    script: String,
    refs: String,
    items: Vec<ItemRow>,
    jobs: Vec<Job>,
    error: Option<String>,
}

async fn detail_with(
    state: &AppState,
    session: &Session,
    user: &User,
    overlay: Overlay,
    edited: Option<(EditForm, String)>,
) -> Result<Response, AppError> {
    let items = workshop::items(&state.pool, overlay.id)
        .await?
        .into_iter()
        .map(|i| ItemRow {
            cached: std::fs::metadata(overlays::workshop_cache_file(&state.config.root, i.id))
                .is_ok_and(|m| m.len() == i.file_size as u64),
            id: i.id,
            title: i.title,
            size: steam_api::human_size(i.file_size as u64),
            updated: super::page::from_unix(i.time_updated),
        })
        .collect();
    let jobs = state
        .jobs
        .list_for_subject(&overlays::subject(overlay.id), 10)
        .await?;
    let (name, description, script, refs, error, status) = match edited {
        Some((f, err)) => (
            f.name,
            f.description,
            f.script,
            f.refs,
            Some(err),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        None => (
            overlay.name.clone(),
            overlay.description.clone(),
            overlay.script.clone(),
            overlay.refs_text(),
            None,
            StatusCode::OK,
        ),
    };
    let page = DetailPage {
        nav: nav(state, session).await?,
        csrf: session.csrf_token.clone(),
        can_edit: overlay.editable_by(user),
        owner: if overlay.is_system() {
            "system overlay (usable by everyone, editable by administrators)".into()
        } else {
            "your private overlay".into()
        },
        overlay,
        name,
        description,
        script,
        refs,
        items,
        jobs,
        error,
    };
    Ok((status, render(&page)?).into_response())
}

async fn detail_page(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let overlay = visible(&state, &a.user, &id).await?;
    detail_with(&state, &a.session, &a.user, overlay, None).await
}

#[derive(Deserialize)]
pub struct EditForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    script: String,
    #[serde(default)]
    refs: String,
}

async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    trail: Trail,
    submitted: Protected<EditForm>,
) -> Result<Response, AppError> {
    let user = submitted.user()?.clone();
    let Protected { session, form } = submitted;
    let overlay = editable(&state, &user, &id).await?;
    let input = OverlayInput {
        name: form.name.clone(),
        description: form.description.clone(),
        script: Some(form.script.clone()),
        refs: Some(form.refs.clone()),
    };
    match overlays::update(&state.pool, &overlay, &input).await {
        Ok(o) => {
            let note = trail.note(Audited::OverlaySaved);
            note.target("overlay", o.id, &o.name).save(&state).await;
            let hint = if o.is_script() {
                "Build it to apply the script."
            } else {
                "Sync it to apply the item list."
            };
            flash(
                &state,
                &session,
                &format!("Overlay {} saved. {hint}", o.name),
            )
            .await?;
            Ok(Redirect::to(&format!("/overlays/{}", o.id)).into_response())
        }
        Err(e @ (OverlayError::Invalid(_) | OverlayError::NameTaken(_))) => {
            let msg = e.to_string();
            detail_with(&state, &session, &user, overlay, Some((form, msg))).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct BuildForm {
    #[serde(default)]
    clean: Option<String>,
}

async fn build(
    State(state): State<AppState>,
    Path(id): Path<String>,
    trail: Trail,
    submitted: Protected<BuildForm>,
) -> Result<Response, AppError> {
    let user = submitted.user()?.clone();
    let Protected { session, form } = submitted;
    let overlay = editable(&state, &user, &id).await?;
    let clean = form.clean.is_some_and(|v| v == "1" || v == "on");
    let job = tasks::submit(
        &state.jobs,
        &Task::overlay_sync(&overlay, clean),
        Some(user.id),
    )
    .await?
    .id;
    let note = trail.note(Audited::OverlayBuildRequested);
    let detail = format!("job #{job}{}", if clean { ", clean" } else { "" });
    let note = note.target("overlay", overlay.id, &overlay.name);
    note.detail(detail).save(&state).await;
    flash(
        &state,
        &session,
        &format!("Job #{job} queued for overlay {}.", overlay.name),
    )
    .await?;
    Ok(Redirect::to(&format!("/jobs/{job}")).into_response())
}

#[derive(Deserialize)]
pub struct Empty {}

async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    trail: Trail,
    submitted: Protected<Empty>,
) -> Result<Response, AppError> {
    let user = submitted.user()?.clone();
    let overlay = editable(&state, &user, &id).await?;
    overlays::delete(&state.pool, &state.config.root, &overlay, &user).await?;
    let note = trail.note(Audited::OverlayDeleted);
    note.target("overlay", overlay.id, &overlay.name)
        .save(&state)
        .await;
    flash(
        &state,
        &submitted.session,
        &format!("Overlay {} deleted.", overlay.name),
    )
    .await?;
    Ok(Redirect::to("/overlays").into_response())
}
