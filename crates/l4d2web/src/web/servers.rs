//! Dashboard, server pages and server actions.
//!
//! Access rule: servers are private to their owner; every other user
//! (administrators included) gets 404 for them.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::audit::Trail;
use super::error::AppError;
use super::extract::{Authed, Protected};
use super::page::{flash, nav, parse_id, render, stamp, Nav, Stamp};
use super::routes::Routes;
use super::schedules::SchedulesBlock;
use super::state::AppState;
use crate::accounts::User;
use crate::audit::Kind;
use crate::jobs::Job;
use crate::schedules::Target;
use crate::servers::blueprints::{self as bp, Blueprint};
use crate::servers::status::{self, InstanceStatus};
use crate::servers::{self, Action, CreateError, ServerRow};
use crate::tasks;

pub fn routes() -> Routes {
    Routes::default()
        .get("/servers", dashboard)
        .post("/servers", create)
        .get("/servers/{id}", server_page)
        .get("/servers/{id}/state", state_fragment)
        .post("/servers/{id}/blueprint", switch_blueprint)
        .post("/servers/{id}/{action}", action)
}

/// Server `id` (as in the path) if `user` owns it, else 404.
pub async fn owned_server(state: &AppState, user: &User, id: &str) -> Result<ServerRow, AppError> {
    servers::find_owned(&state.pool, user.id, parse_id(id)?)
        .await?
        .ok_or(AppError::NotFound)
}

/// A server with its actual state for pages.
pub struct ServerView {
    pub server: ServerRow,
    /// None: state unknown (l4d2ctl failed, see the page's status error).
    pub actual: Option<Option<InstanceStatus>>,
    pub drift: Option<status::Drift>,
    /// Players and slots from the live poller (dashboard only).
    pub players: Option<(u32, u32)>,
}

impl ServerView {
    fn new(server: ServerRow, actual: Option<Option<InstanceStatus>>) -> Self {
        let drift = actual
            .as_ref()
            .and_then(|a| status::drift(server.desired_state, a.as_ref()));
        ServerView {
            players: None,
            server,
            actual,
            drift,
        }
    }
    pub fn state_label(&self) -> String {
        match &self.actual {
            None => "unknown".into(),
            Some(None) => status::NOT_STARTED.into(),
            Some(Some(s)) if self.server.crash_loop && !s.is_up() => status::CRASH_LOOP.into(),
            Some(Some(s)) => status::label(s),
        }
    }
    /// "3 crashes, the last 5 min ago: killed by signal 11 (SIGSEGV)".
    pub fn crash_summary(&self) -> Option<(i64, Option<Stamp>, String)> {
        (self.server.crash_count > 0).then(|| {
            (
                self.server.crash_count,
                self.server.last_crash_at.as_deref().map(stamp),
                self.server.last_exit.clone().unwrap_or_default(),
            )
        })
    }
    /// The service manager's words, for the badge's tooltip.
    pub fn state_detail(&self) -> String {
        match &self.actual {
            None => "the host could not be asked".into(),
            Some(None) => "no instance on the host yet".into(),
            Some(Some(s)) => status::detail(s),
        }
    }
    /// CSS class of the state badge.
    pub fn state_class(&self) -> &'static str {
        match &self.actual {
            Some(Some(s)) if s.is_up() => "state-succeeded",
            Some(Some(s)) if s.service.active_state == "failed" || self.server.crash_loop => {
                "state-failed"
            }
            _ => "",
        }
    }
    pub fn drift_text(&self) -> String {
        self.drift.as_ref().map(|d| d.message()).unwrap_or_default()
    }
    /// Why `action` cannot apply now, for a disabled button's tooltip:
    /// a server never started has nothing to stop, restart or reset.
    pub fn unavailable(&self, action: &str) -> Option<&'static str> {
        let never_started = matches!(self.actual, Some(None));
        (never_started && action != "start")
            .then_some("not started yet: nothing to stop, restart or reset")
    }
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    nav: Nav,
    csrf: String,
    servers: Vec<ServerView>,
    status_error: Option<String>,
    blueprints: Vec<Blueprint>,
    form_name: String,
    form_blueprint: i64,
    form_error: Option<String>,
}

async fn dashboard_with(
    state: &AppState,
    a: &Authed,
    form: Option<(&CreateForm, String)>,
) -> Result<Response, AppError> {
    let rows = servers::list_owned(&state.pool, a.user.id).await?;
    // ONE l4d2ctl call for every server on the page.
    let (all, status_error): (Option<HashMap<String, InstanceStatus>>, _) = if rows.is_empty() {
        (Some(HashMap::new()), None)
    } else {
        match status::list_all(&state.host).await {
            Ok(all) => (Some(all), None),
            Err(e) => (None, Some(e.to_string())),
        }
    };
    let counts = state.live.player_counts();
    let servers = rows
        .into_iter()
        .map(|s| {
            let actual = all.as_ref().map(|m| m.get(&s.name).cloned());
            let players = counts.get(&s.id).copied();
            let mut view = ServerView::new(s, actual);
            view.players = players;
            view
        })
        .collect();
    let blueprints = bp::list(&state.pool, a.user.id).await?;
    let (status, form_name, form_blueprint, form_error) = match form {
        Some((f, e)) => (
            StatusCode::BAD_REQUEST,
            f.name.clone(),
            f.blueprint_id.parse().unwrap_or(0),
            Some(e),
        ),
        None => (StatusCode::OK, String::new(), 0, None),
    };
    let page = DashboardPage {
        nav: nav(state, &a.session).await?,
        csrf: a.session.csrf_token.clone(),
        servers,
        status_error,
        blueprints,
        form_name,
        form_blueprint,
        form_error,
    };
    Ok((status, render(&page)?).into_response())
}

async fn dashboard(State(state): State<AppState>, a: Authed) -> Result<Response, AppError> {
    dashboard_with(&state, &a, None).await
}

#[derive(Deserialize)]
struct CreateForm {
    name: String,
    /// Text, so a wrong value re-renders the form with a message.
    blueprint_id: String,
}

async fn create(
    State(state): State<AppState>,
    a: Authed,
    trail: Trail,
    Protected { form, .. }: Protected<CreateForm>,
) -> Result<Response, AppError> {
    let name = form.name.trim().to_string();
    let Ok(blueprint_id) = form.blueprint_id.trim().parse::<i64>() else {
        let msg = if form.blueprint_id.trim().is_empty() {
            "choose a blueprint (create one under Blueprints first)".to_string()
        } else {
            format!("blueprint id {:?} is not a number", form.blueprint_id)
        };
        return dashboard_with(&state, &a, Some((&form, msg))).await;
    };
    match servers::create_server(&state.pool, &state.config, a.user.id, &name, blueprint_id).await {
        Ok(s) => {
            // The log listener must know the new secret before the first start.
            state.live.servers_changed();
            let detail = format!("port {}, blueprint {}", s.port, s.blueprint_name);
            trail
                .note(Kind::ServerCreated)
                .server(&s)
                .detail(detail)
                .save(&state)
                .await;
            flash(
                &state,
                &a.session,
                &format!(
                    "Server {} created on port {}. Start it when ready.",
                    s.name, s.port
                ),
            )
            .await?;
            Ok(Redirect::to(&format!("/servers/{}", s.id)).into_response())
        }
        Err(CreateError::Db(e)) => Err(e.into()),
        Err(e) => dashboard_with(&state, &a, Some((&form, e.to_string()))).await,
    }
}

#[derive(Template)]
#[template(path = "server.html")]
struct ServerPage {
    nav: Nav,
    csrf: String,
    view: ServerView,
    status_error: Option<String>,
    blueprints: Vec<Blueprint>,
    jobs: Vec<Job>,
    schedules: SchedulesBlock,
}

/// The instance's state, or why it is unknown.
async fn actual_one(
    state: &AppState,
    name: &str,
) -> (Option<Option<InstanceStatus>>, Option<String>) {
    match status::one(&state.host, name).await {
        Ok(s) if s.exists => (Some(Some(s)), None),
        Ok(_) => (Some(None), None),
        Err(e) => (None, Some(e.to_string())),
    }
}

async fn server_page(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let server = owned_server(&state, &a.user, &id).await?;
    let (actual, status_error) = actual_one(&state, &server.name).await;
    let jobs = state
        .jobs
        .list_for_subject(&servers::subject(server.id), 10)
        .await?;
    let page = ServerPage {
        nav: nav(&state, &a.session).await?,
        csrf: a.session.csrf_token.clone(),
        blueprints: bp::list(&state.pool, a.user.id).await?,
        schedules: SchedulesBlock::load(&state, Target::Server(server.id)).await?,
        view: ServerView::new(server, actual),
        status_error,
        jobs,
    };
    Ok(render(&page)?.into_response())
}

#[derive(Template)]
#[template(path = "server_state.html")]
struct StateFragment {
    csrf: String,
    view: ServerView,
    status_error: Option<String>,
}

/// The state block of the server page (HTMX polls it).
async fn state_fragment(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
) -> Result<Html<String>, AppError> {
    let server = owned_server(&state, &a.user, &id).await?;
    let (actual, status_error) = actual_one(&state, &server.name).await;
    render(&StateFragment {
        csrf: a.session.csrf_token.clone(),
        view: ServerView::new(server, actual),
        status_error,
    })
}

#[derive(Deserialize)]
struct ActionForm {
    /// "dashboard": go back there instead of the server page.
    next: Option<String>,
}

async fn action(
    State(state): State<AppState>,
    a: Authed,
    Path((id, action)): Path<(String, String)>,
    trail: Trail,
    Protected { form, .. }: Protected<ActionForm>,
) -> Result<Response, AppError> {
    let kind = Kind::server_action(&action);
    let server = owned_server(&state, &a.user, &id).await;
    let server = trail.refused_on_server(&state, kind, &id, server).await?;
    let action = if action == "reconcile" {
        let (actual, err) = actual_one(&state, &server.name).await;
        let Some(actual) = actual else {
            return Err(AppError::BadRequest(format!(
                "cannot reconcile {}: its state is unknown ({})",
                server.name,
                err.unwrap_or_default()
            )));
        };
        match status::drift(server.desired_state, actual.as_ref()) {
            Some(d) => d.fix(),
            None => {
                flash(
                    &state,
                    &a.session,
                    &format!(
                        "Server {} is already in its desired state; nothing to do.",
                        server.name
                    ),
                )
                .await?;
                return Ok(back(&server, &form).into_response());
            }
        }
    } else {
        Action::parse(&action).ok_or(AppError::NotFound)?
    };
    let job = tasks::request_server_action(&state.jobs, &server, action, a.user.id, None).await?;
    if let Some(kind) = kind {
        let detail = format!("{} queued (job #{job})", action.verb());
        trail
            .note(kind)
            .server(&server)
            .detail(detail)
            .save(&state)
            .await;
    }
    flash(
        &state,
        &a.session,
        &format!(
            "{} of server {} queued (job #{job}).",
            capitalised(action.verb()),
            server.name
        ),
    )
    .await?;
    if action == Action::Delete {
        return Ok(Redirect::to("/servers").into_response());
    }
    Ok(back(&server, &form).into_response())
}

fn back(server: &ServerRow, form: &ActionForm) -> Redirect {
    if form.next.as_deref() == Some("dashboard") {
        Redirect::to("/servers")
    } else {
        Redirect::to(&format!("/servers/{}", server.id))
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[derive(Deserialize)]
struct SwitchForm {
    blueprint_id: String,
}

/// Links the server to another of the owner's blueprints; it applies on the
/// server's next start/restart/reset.
async fn switch_blueprint(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    trail: Trail,
    Protected { form, .. }: Protected<SwitchForm>,
) -> Result<Response, AppError> {
    let server = owned_server(&state, &a.user, &id).await?;
    let name = servers::switch_blueprint(&state.pool, &server, &form.blueprint_id)
        .await
        .map_err(|e| match e {
            servers::SwitchError::Db(e) => AppError::from(e),
            other => AppError::BadRequest(format!("{other}; server {} unchanged", server.name)),
        })?;
    let detail = format!("to blueprint {name}");
    trail
        .note(Kind::ServerBlueprintSwitched)
        .server(&server)
        .detail(detail)
        .save(&state)
        .await;
    flash(
        &state,
        &a.session,
        &format!(
            "Server {} now uses blueprint {name}; it applies on the next start, restart or reset.",
            server.name
        ),
    )
    .await?;
    Ok(Redirect::to(&format!("/servers/{}", server.id)).into_response())
}
