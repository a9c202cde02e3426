//! Blueprint pages: list + create, edit (fields and overlay stack), delete.

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
use super::schedules::SchedulesBlock;
use super::state::AppState;
use crate::audit::Kind;
use crate::schedules::Target;
use crate::servers;
use crate::servers::blueprints::{
    self as bp, Blueprint, BlueprintError, BlueprintInput, StackEntry, StackOp, UsableOverlay,
};

pub fn routes() -> Routes {
    Routes::default()
        .get("/blueprints", list)
        .post("/blueprints", create)
        .get("/blueprints/{id}", edit_page)
        .post("/blueprints/{id}", save)
        .post("/blueprints/{id}/stack", stack)
        .post("/blueprints/{id}/delete", delete)
}

#[derive(Template)]
#[template(path = "blueprints.html")]
struct ListPage {
    nav: Nav,
    csrf: String,
    blueprints: Vec<(Blueprint, i64)>,
    form: BlueprintForm,
    error: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
struct BlueprintForm {
    name: String,
    #[serde(default)]
    args: String,
    #[serde(default)]
    config: String,
}

async fn list_with(
    state: &AppState,
    a: &Authed,
    form: BlueprintForm,
    error: Option<String>,
) -> Result<Response, AppError> {
    let with_counts = bp::list_with_server_counts(&state.pool, a.user.id).await?;
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = ListPage {
        nav: nav(state, &a.session).await?,
        csrf: a.session.csrf_token.clone(),
        blueprints: with_counts,
        form,
        error,
    };
    Ok((status, render(&page)?).into_response())
}

async fn list(State(state): State<AppState>, a: Authed) -> Result<Response, AppError> {
    let form = BlueprintForm {
        name: String::new(),
        // Empty: the fields' placeholders show examples (a value would be
        // typed after, as in "+map c1m1_hotel+map c2m1_highway").
        args: String::new(),
        config: String::new(),
    };
    list_with(&state, &a, form, None).await
}

async fn create(
    State(state): State<AppState>,
    a: Authed,
    trail: Trail,
    Protected { form, .. }: Protected<BlueprintForm>,
) -> Result<Response, AppError> {
    let input = match BlueprintInput::validate(&form.name, &form.args, &form.config) {
        Ok(i) => i,
        Err(e) => return list_with(&state, &a, form, Some(e.to_string())).await,
    };
    match bp::create(&state.pool, a.user.id, &input).await {
        Ok(b) => {
            let note = trail.note(Kind::BlueprintCreated);
            note.target("blueprint", b.id, &b.name).save(&state).await;
            flash(
                &state,
                &a.session,
                &format!("Blueprint {} created; add overlays below.", b.name),
            )
            .await?;
            Ok(Redirect::to(&format!("/blueprints/{}", b.id)).into_response())
        }
        Err(BlueprintError::Db(e)) => Err(e.into()),
        Err(e) => list_with(&state, &a, form, Some(e.to_string())).await,
    }
}

#[derive(Template)]
#[template(path = "blueprint.html")]
struct EditPage {
    nav: Nav,
    csrf: String,
    blueprint: Blueprint,
    form: BlueprintForm,
    error: Option<String>,
    stack: Vec<StackEntry>,
    addable: Vec<UsableOverlay>,
    servers: Vec<(i64, String)>,
    schedules: SchedulesBlock,
    rollout: super::game::RolloutBlock,
}

async fn edit_with(
    state: &AppState,
    a: &Authed,
    id: i64,
    form: Option<BlueprintForm>,
    error: Option<String>,
) -> Result<Response, AppError> {
    let blueprint = bp::find_owned(&state.pool, a.user.id, id).await?;
    let stack = bp::stack(&state.pool, id).await?;
    let addable = bp::usable_overlays(&state.pool, a.user.id)
        .await?
        .into_iter()
        .filter(|o| !stack.iter().any(|s| s.overlay_id == o.id))
        .collect();
    let servers = servers::using_blueprint(&state.pool, id).await?;
    let form = form.unwrap_or_else(|| BlueprintForm {
        name: blueprint.name.clone(),
        args: blueprint.args.clone(),
        config: blueprint.config.clone(),
    });
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = EditPage {
        nav: nav(state, &a.session).await?,
        csrf: a.session.csrf_token.clone(),
        blueprint,
        form,
        error,
        stack,
        addable,
        servers,
        schedules: SchedulesBlock::load(state, Target::Blueprint(id)).await?,
        rollout: super::game::RolloutBlock::load(state, id).await?,
    };
    Ok((status, render(&page)?).into_response())
}

async fn edit_page(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    edit_with(&state, &a, parse_id(&id)?, None, None).await
}

async fn save(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    trail: Trail,
    Protected { form, .. }: Protected<BlueprintForm>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    // Others' blueprints are 404 before any validation message.
    bp::find_owned(&state.pool, a.user.id, id).await?;
    let input = match BlueprintInput::validate(&form.name, &form.args, &form.config) {
        Ok(i) => i,
        Err(e) => return edit_with(&state, &a, id, Some(form), Some(e.to_string())).await,
    };
    match bp::update(&state.pool, a.user.id, id, &input).await {
        Ok(()) => {
            let note = trail.note(Kind::BlueprintSaved);
            note.target("blueprint", id, &input.name).save(&state).await;
            flash(
                &state,
                &a.session,
                &format!(
                    "Blueprint {} saved; its servers pick it up on their next start, restart or reset.",
                    input.name
                ),
            )
            .await?;
            Ok(Redirect::to(&format!("/blueprints/{id}")).into_response())
        }
        Err(e @ (BlueprintError::Invalid(_) | BlueprintError::Duplicate(_))) => {
            edit_with(&state, &a, id, Some(form), Some(e.to_string())).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct StackForm {
    op: String,
    overlay_id: String,
}

async fn stack(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    trail: Trail,
    Protected { form, .. }: Protected<StackForm>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let blueprint = bp::find_owned(&state.pool, a.user.id, id).await?;
    let op = StackOp::parse(&form.op).ok_or_else(|| {
        AppError::BadRequest(format!(
            "unknown stack operation {:?} (add, up, down, remove)",
            form.op
        ))
    })?;
    let overlay_id: i64 = form.overlay_id.trim().parse().map_err(|_| {
        AppError::BadRequest(format!("overlay id {:?} is not a number", form.overlay_id))
    })?;
    bp::change_stack(&state.pool, a.user.id, id, op, overlay_id).await?;
    let note = trail.note(Kind::BlueprintStackChanged);
    let note = note.target("blueprint", id, &blueprint.name);
    let detail = format!("{} overlay #{overlay_id}", form.op.trim());
    note.detail(detail).save(&state).await;
    Ok(Redirect::to(&format!("/blueprints/{id}#stack")).into_response())
}

#[derive(Deserialize)]
struct Empty {}

async fn delete(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    trail: Trail,
    Protected { .. }: Protected<Empty>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let name = bp::delete(&state.pool, a.user.id, id).await?;
    let note = trail.note(Kind::BlueprintDeleted);
    note.target("blueprint", id, &name).save(&state).await;
    flash(&state, &a.session, &format!("Blueprint {name} deleted.")).await?;
    Ok(Redirect::to("/blueprints").into_response())
}
