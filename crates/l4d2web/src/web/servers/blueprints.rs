//! Blueprint pages: list + create, edit (fields and overlay stack), delete.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::{nav, parse_id};
use crate::auth;
use crate::servers::blueprints::{
    self as bp, Blueprint, BlueprintError, BlueprintInput, StackEntry, StackOp, UsableOverlay,
};
use crate::web::{render, AppError, AppState, Authed, Nav, Protected};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/blueprints", get(list).post(create))
        .route("/blueprints/{id}", get(edit_page).post(save))
        .route("/blueprints/{id}/stack", post(stack))
        .route("/blueprints/{id}/delete", post(delete))
}

fn app_error(e: BlueprintError) -> AppError {
    match e {
        BlueprintError::NotFound => AppError::NotFound,
        BlueprintError::Db(e) => e.into(),
        other => AppError::BadRequest(other.to_string()),
    }
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
    let blueprints: Vec<Blueprint> = bp::list(&state.pool, a.user.id).await?;
    let mut with_counts = Vec::with_capacity(blueprints.len());
    for b in blueprints {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM servers WHERE blueprint_id = ?")
            .bind(b.id)
            .fetch_one(&state.pool)
            .await?;
        with_counts.push((b, n));
    }
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
        args: "+map c1m1_hotel".into(),
        config: "hostname \"my left4me server\"\n".into(),
    };
    list_with(&state, &a, form, None).await
}

async fn create(
    State(state): State<AppState>,
    a: Authed,
    Protected { form, .. }: Protected<BlueprintForm>,
) -> Result<Response, AppError> {
    let input = match BlueprintInput::validate(&form.name, &form.args, &form.config) {
        Ok(i) => i,
        Err(e) => return list_with(&state, &a, form, Some(e.to_string())).await,
    };
    match bp::create(&state.pool, a.user.id, &input).await {
        Ok(b) => {
            auth::set_flash(
                &state.pool,
                &a.session.id,
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
}

async fn edit_with(
    state: &AppState,
    a: &Authed,
    id: i64,
    form: Option<BlueprintForm>,
    error: Option<String>,
) -> Result<Response, AppError> {
    let blueprint = bp::find_owned(&state.pool, a.user.id, id)
        .await
        .map_err(app_error)?;
    let stack = bp::stack(&state.pool, id).await?;
    let addable = bp::usable_overlays(&state.pool, a.user.id)
        .await?
        .into_iter()
        .filter(|o| !stack.iter().any(|s| s.overlay_id == o.id))
        .collect();
    let servers: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, name FROM servers WHERE blueprint_id = ? ORDER BY name")
            .bind(id)
            .fetch_all(&state.pool)
            .await?;
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
    Protected { form, .. }: Protected<BlueprintForm>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    // Others' blueprints are 404 before any validation message.
    bp::find_owned(&state.pool, a.user.id, id)
        .await
        .map_err(app_error)?;
    let input = match BlueprintInput::validate(&form.name, &form.args, &form.config) {
        Ok(i) => i,
        Err(e) => return edit_with(&state, &a, id, Some(form), Some(e.to_string())).await,
    };
    match bp::update(&state.pool, a.user.id, id, &input).await {
        Ok(()) => {
            auth::set_flash(
                &state.pool,
                &a.session.id,
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
        Err(e) => Err(app_error(e)),
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
    Protected { form, .. }: Protected<StackForm>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    bp::find_owned(&state.pool, a.user.id, id)
        .await
        .map_err(app_error)?;
    let op = StackOp::parse(&form.op).ok_or_else(|| {
        AppError::BadRequest(format!(
            "unknown stack operation {:?} (add, up, down, remove)",
            form.op
        ))
    })?;
    let overlay_id: i64 = form.overlay_id.trim().parse().map_err(|_| {
        AppError::BadRequest(format!("overlay id {:?} is not a number", form.overlay_id))
    })?;
    bp::change_stack(&state.pool, a.user.id, id, op, overlay_id)
        .await
        .map_err(app_error)?;
    Ok(Redirect::to(&format!("/blueprints/{id}#stack")).into_response())
}

#[derive(Deserialize)]
struct Empty {}

async fn delete(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    Protected { .. }: Protected<Empty>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let name = bp::delete(&state.pool, a.user.id, id)
        .await
        .map_err(app_error)?;
    auth::set_flash(
        &state.pool,
        &a.session.id,
        &format!("Blueprint {name} deleted."),
    )
    .await?;
    Ok(Redirect::to("/blueprints").into_response())
}
