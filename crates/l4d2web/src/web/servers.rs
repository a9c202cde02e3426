//! Dashboard, server pages, server actions and sharing.
//!
//! Access rule (`servers::access`): the owner, the users the server is
//! shared with (each route declares the right it needs) and
//! administrators; everyone else gets 404.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::audit::Trail;
use super::error::AppError;
use super::extract::{Authed, Protected};
use super::on_server::OnServer;
use super::page::{flash, flash_refusal, nav, parse_id, render, stamp, Nav, Stamp};
use super::players::PlayersBlock;
use super::routes::Routes;
use super::schedules::SchedulesBlock;
use super::sparkline::{self, Chart, HostCharts};
use super::sse;
use super::state::AppState;
use crate::audit::Kind;
use crate::jobs::Job;
use crate::schedules::Target;
use crate::servers::access::{self, Right, Role, ServerAccess, Share, ShareError};
use crate::servers::blueprints::{self as bp, Blueprint};
use crate::servers::console::MapFailure;
use crate::servers::status::{self, InstanceStatus};
use crate::servers::{self, Action, CreateError, ServerRow};
use crate::tasks::{self, Task};

pub fn routes() -> Routes {
    Routes::default()
        .get("/servers", dashboard)
        .get("/servers/stream", dashboard_stream)
        .post("/servers", create)
        .server_get("/servers/{id}", Right::View, server_page)
        .server_get("/servers/{id}/state", Right::View, state_fragment)
        .server_get("/servers/{id}/state/stream", Right::View, state_stream)
        .server_post("/servers/{id}/blueprint", Right::Manage, switch_blueprint)
        .server_post("/servers/{id}/start", Right::Operate, start)
        .server_post("/servers/{id}/stop", Right::Operate, stop)
        .server_post("/servers/{id}/restart", Right::Operate, restart)
        .server_post("/servers/{id}/reconcile", Right::Operate, reconcile)
        .server_post("/servers/{id}/reset", Right::Manage, reset)
        .server_post("/servers/{id}/delete", Right::Own, delete)
        .server_post("/servers/{id}/shares", Right::Manage, share)
        .server_post("/servers/{id}/shares/{user}/revoke", Right::Manage, unshare)
}

/// A server with its actual state for pages.
pub struct ServerView {
    pub server: ServerRow,
    /// The visitor's role on it.
    pub role: Role,
    /// None: state unknown (l4d2ctl failed, see the page's status error).
    pub actual: Option<Option<InstanceStatus>>,
    pub drift: Option<status::Drift>,
    /// Players and slots from the live poller (dashboard only).
    pub players: Option<(u32, u32)>,
    /// What a queued or running job is doing to it ("starting…").
    pub pending: Option<&'static str>,
    /// Its blueprint changed after the server last started.
    pub restart_to_apply: bool,
    /// The newest finished job on it, if that one failed: (job, title, error).
    pub last_failure: Option<(i64, String, String)>,
    /// CPU, memory and FPS of the last hour, while it runs (server page).
    pub resources: Option<Vec<Chart>>,
}

/// What the server's recent jobs (newest first) tell its page: whether
/// its blueprint changed since it last started, and a failure nobody has
/// fixed since.
fn from_history(view: &mut ServerView, jobs: &[Job]) {
    let finished = jobs.iter().filter(|j| j.is_finished());
    view.last_failure = finished
        .clone()
        .next()
        .filter(|j| j.state == crate::jobs::JobState::Failed)
        .map(|j| {
            (
                j.id,
                j.summary().to_string(),
                j.error.clone().unwrap_or_default(),
            )
        });
    let started = finished
        .filter(|j| j.state == crate::jobs::JobState::Succeeded)
        .find(|j| {
            Task::from_job(j)
                .ok()
                .and_then(|t| t.server_action().map(|(a, _)| a))
                .is_some_and(|a| matches!(a, Action::Start | Action::Restart | Action::Reset))
        })
        .and_then(|j| j.finished_at.as_deref())
        .and_then(super::page::parse_time);
    let edited = super::page::parse_time(&view.server.blueprint_updated_at);
    let up = matches!(&view.actual, Some(Some(s)) if s.is_up());
    view.restart_to_apply = up && matches!((edited, started), (Some(e), Some(s)) if e > s);
}

/// The transition of the oldest unfinished job among `jobs` (a server's).
fn pending_of<'a>(jobs: impl IntoIterator<Item = &'a Job>) -> Option<&'static str> {
    jobs.into_iter()
        .filter(|j| !j.is_finished())
        .min_by_key(|j| j.id)
        .and_then(|j| Task::from_job(j).ok())
        .and_then(|t| t.transition())
}

impl ServerView {
    pub(super) fn new(access: ServerAccess, actual: Option<Option<InstanceStatus>>) -> Self {
        let ServerAccess { server, role } = access;
        let drift = actual
            .as_ref()
            .and_then(|a| status::drift(server.desired_state, a.as_ref()));
        ServerView {
            players: None,
            pending: None,
            restart_to_apply: false,
            last_failure: None,
            resources: None,
            role,
            server,
            actual,
            drift,
        }
    }
    /// A job under way for it: its transition, and no drift meanwhile.
    /// Adds the resource charts when the server is up.
    fn with_resources(mut self, state: &AppState) -> Self {
        if matches!(&self.actual, Some(Some(s)) if s.is_up()) {
            let history = state
                .live
                .resources()
                .server(self.server.id, std::time::Instant::now());
            self.resources = Some(sparkline::server_charts(&history));
        }
        self
    }

    fn with_pending(mut self, pending: Option<&'static str>) -> Self {
        if pending.is_some() {
            self.drift = None;
        }
        self.pending = pending;
        self
    }
    pub fn state_label(&self) -> String {
        if let Some(p) = self.pending {
            return p.into();
        }
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
        if self.pending.is_some() {
            return "state-running";
        }
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
    /// a server never started has nothing to stop, restart or reset, and
    /// the visitor's role may not allow it.
    pub fn unavailable(&self, action: &str) -> Option<String> {
        let right = if action == "reset" {
            Right::Manage
        } else {
            Right::Operate
        };
        if !self.role.allows(right) {
            return Some(format!(
                "your role ({}) does not allow this",
                self.role.as_str()
            ));
        }
        let never_started = matches!(self.actual, Some(None));
        (never_started && action != "start")
            .then(|| "not started yet: nothing to stop, restart or reset".to_string())
    }
    pub fn may(&self, right: &str) -> bool {
        let right = match right {
            "operate" => Right::Operate,
            "rcon" => Right::Rcon,
            "manage" => Right::Manage,
            "own" => Right::Own,
            _ => Right::View,
        };
        self.role.allows(right)
    }
    /// "shared with you as operator", "owned by bob" — nothing for one's own.
    pub fn role_note(&self) -> Option<String> {
        match self.role {
            Role::Owner => None,
            Role::Admin => Some("another user's server (you act as administrator)".into()),
            r => Some(format!("shared with you as {}", r.as_str())),
        }
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
    host: HostCharts,
}

#[derive(Template)]
#[template(path = "host_usage.html")]
struct HostBlock {
    host: HostCharts,
}

/// The host's CPU and memory history and the data root's free space.
fn host_charts(state: &AppState) -> HostCharts {
    let history = state.live.resources().host(std::time::Instant::now());
    sparkline::host_charts(
        &history,
        crate::servers::host_usage::disk_space(&state.config.root),
    )
}

async fn dashboard_with(
    state: &AppState,
    a: &Authed,
    form: Option<(&CreateForm, String)>,
) -> Result<Response, AppError> {
    let (servers, status_error) = dashboard_views(state, &a.user).await?;
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
        host: host_charts(state),
    };
    Ok((status, render(&page)?).into_response())
}

/// Every server the visitor has a role on, with its state, players and
/// any job under way; or why the states are unknown.
async fn dashboard_views(
    state: &AppState,
    user: &crate::accounts::User,
) -> Result<(Vec<ServerView>, Option<String>), AppError> {
    let rows = access::visible(&state.pool, user).await?;
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
    let active = state.jobs.active_with_subject().await?;
    let servers = rows
        .into_iter()
        .map(|s| {
            let actual = all.as_ref().map(|m| m.get(&s.server.name).cloned());
            let players = counts.get(&s.server.id).copied();
            let subject = servers::subject(s.server.id);
            let pending = pending_of(
                active
                    .iter()
                    .filter(|j| j.subject.as_deref() == Some(&subject)),
            );
            let mut view = ServerView::new(s, actual).with_pending(pending);
            view.players = players;
            view
        })
        .collect();
    Ok((servers, status_error))
}

#[derive(Template)]
#[template(path = "dashboard_rows.html")]
struct DashboardRows {
    csrf: String,
    servers: Vec<ServerView>,
}

/// Pushes the dashboard's rows: whenever a job is queued, starts or ends,
/// and when a state or player count changed, looked at every 5 s; and the
/// host block when it changed, looked at as often.
struct DashboardFeed {
    state: AppState,
    user: crate::accounts::User,
    csrf: String,
    jobs: tokio::sync::watch::Receiver<u64>,
    last: Option<String>,
    last_host: Option<String>,
}

impl sse::Feed for DashboardFeed {
    async fn next(&mut self) -> Option<Vec<axum::response::sse::Event>> {
        loop {
            if self.last.is_some() {
                tokio::select! {
                    _ = self.jobs.changed() => {}
                    _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                }
            }
            let html = match dashboard_views(&self.state, &self.user).await {
                Ok((servers, _)) => askama::Template::render(&DashboardRows {
                    csrf: self.csrf.clone(),
                    servers,
                })
                .unwrap_or_else(|e| format!("<tr><td class=\"error\">{e}</td></tr>")),
                Err(e) => format!("<tr><td class=\"error\">{e}</td></tr>"),
            };
            let host = askama::Template::render(&HostBlock {
                host: host_charts(&self.state),
            })
            .unwrap_or_else(|e| format!("<p class=\"error\">{e}</p>"));
            let mut events = Vec::new();
            if self.last.as_deref() != Some(html.as_str()) {
                self.last = Some(html.clone());
                events.push(
                    axum::response::sse::Event::default()
                        .event("servers")
                        .data(html),
                );
            }
            if self.last_host.as_deref() != Some(host.as_str()) {
                self.last_host = Some(host.clone());
                events.push(
                    axum::response::sse::Event::default()
                        .event("host")
                        .data(host),
                );
            }
            if !events.is_empty() {
                return Some(events);
            }
        }
    }
}

async fn dashboard_stream(State(state): State<AppState>, a: Authed) -> Result<Response, AppError> {
    let feed = DashboardFeed {
        jobs: state.jobs.changes(),
        user: a.user.clone(),
        csrf: a.session.csrf_token.clone(),
        last: None,
        last_host: None,
        state: state.clone(),
    };
    Ok(sse::stream(feed, state.shutdown.clone()).into_response())
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
    map_failure: Option<MapFailure>,
    /// The owner's blueprints (a manager may switch among them).
    blueprints: Vec<Blueprint>,
    jobs: Vec<Job>,
    schedules: Option<SchedulesBlock>,
    /// Bans and admins, for those who may use RCON on it.
    players: Option<PlayersBlock>,
    /// Who else has a role on it (for those who may manage it).
    shares: Option<Vec<Share>>,
    /// The game build it runs on; None when the host's report is unreadable.
    build: Option<super::game::ServerBuild>,
    /// May keep it on another build (roll back).
    manage: bool,
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

async fn server_page(State(state): State<AppState>, on: OnServer) -> Result<Response, AppError> {
    let server = on.server().clone();
    let (actual, status_error) = actual_one(&state, &server.name).await;
    let jobs = state
        .jobs
        .list_for_subject(&servers::subject(server.id), 10)
        .await?;
    let manage = on.access.role.allows(Right::Manage);
    let page = ServerPage {
        nav: nav(&state, &on.authed.session).await?,
        csrf: on.authed.session.csrf_token.clone(),
        blueprints: if manage {
            bp::list(&state.pool, server.owner_id).await?
        } else {
            Vec::new()
        },
        schedules: if manage {
            Some(SchedulesBlock::load(&state, Target::Server(server.id)).await?)
        } else {
            None
        },
        players: if on.access.role.allows(Right::Rcon) {
            Some(PlayersBlock::load(&state, server.id, server.blueprint_id, manage).await?)
        } else {
            None
        },
        shares: if manage {
            Some(access::shares(&state.pool, server.id).await?)
        } else {
            None
        },
        view: {
            let mut view = ServerView::new(on.access, actual)
                .with_pending(pending_of(&jobs))
                .with_resources(&state);
            from_history(&mut view, &jobs);
            view
        },
        status_error,
        map_failure: map_failure(&state, &server),
        jobs,
        build: super::game::ServerBuild::load(&state, &server).await,
        manage,
    };
    Ok(render(&page)?.into_response())
}

#[derive(Template)]
#[template(path = "server_state.html")]
struct StateFragment {
    csrf: String,
    view: ServerView,
    status_error: Option<String>,
    map_failure: Option<MapFailure>,
}

/// The level that failed to load on a server that should be running.
fn map_failure(state: &AppState, server: &ServerRow) -> Option<MapFailure> {
    if server.desired_state != servers::DesiredState::Running {
        return None;
    }
    state.consoles.map_failure(&server.name)
}

/// The state block of the server page as it is now.
async fn state_block(
    state: &AppState,
    access: ServerAccess,
    csrf: String,
) -> Result<StateFragment, AppError> {
    let (actual, status_error) = actual_one(state, &access.server.name).await;
    let jobs = state
        .jobs
        .list_for_subject(&servers::subject(access.server.id), 10)
        .await?;
    let failure = map_failure(state, &access.server);
    let mut view = ServerView::new(access, actual)
        .with_pending(pending_of(&jobs))
        .with_resources(state);
    from_history(&mut view, &jobs);
    Ok(StateFragment {
        csrf,
        map_failure: failure,
        view,
        status_error,
    })
}

async fn state_fragment(
    State(state): State<AppState>,
    on: OnServer,
) -> Result<Html<String>, AppError> {
    render(&state_block(&state, on.access, on.authed.session.csrf_token.clone()).await?)
}

/// Pushes the state block: at once, whenever a job is queued, starts or
/// ends (the server's or another's; the block is cheap to compare), and
/// when the observed state changed, looked at every 5 s. Ends when the
/// visitor's role on the server is gone.
struct StateFeed {
    state: AppState,
    user: crate::accounts::User,
    server_id: i64,
    csrf: String,
    jobs: tokio::sync::watch::Receiver<u64>,
    last: Option<String>,
}

impl StateFeed {
    async fn render(&mut self) -> Option<Result<String, AppError>> {
        let access = match access::access(&self.state.pool, &self.user, self.server_id).await {
            Ok(Some(a)) => a,
            Ok(None) => return None,
            Err(e) => return Some(Err(e.into())),
        };
        let block = match state_block(&self.state, access, self.csrf.clone()).await {
            Ok(b) => b,
            Err(e) => return Some(Err(e)),
        };
        Some(askama::Template::render(&block).map_err(AppError::from))
    }
}

impl sse::Feed for StateFeed {
    async fn next(&mut self) -> Option<Vec<axum::response::sse::Event>> {
        loop {
            if self.last.is_some() {
                tokio::select! {
                    _ = self.jobs.changed() => {}
                    _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                }
            }
            let html = match self.render().await? {
                Ok(html) => html,
                Err(e) => format!("<p class=\"error\">{e}</p>"),
            };
            if self.last.as_deref() != Some(html.as_str()) {
                self.last = Some(html.clone());
                return Some(vec![axum::response::sse::Event::default()
                    .event("state")
                    .data(html)]);
            }
        }
    }
}

async fn state_stream(State(state): State<AppState>, on: OnServer) -> Result<Response, AppError> {
    let feed = StateFeed {
        jobs: state.jobs.changes(),
        user: on.authed.user.clone(),
        server_id: on.server().id,
        csrf: on.authed.session.csrf_token.clone(),
        last: None,
        state: state.clone(),
    };
    Ok(sse::stream(feed, state.shutdown.clone()).into_response())
}

#[derive(Deserialize)]
struct ActionForm {
    /// "dashboard": go back there instead of the server page.
    next: Option<String>,
}

async fn start(
    State(state): State<AppState>,
    on: OnServer,
    trail: Trail,
    Protected { form, .. }: Protected<ActionForm>,
) -> Result<Response, AppError> {
    request(&state, &on, &trail, Action::Start, Kind::ServerStart, &form).await
}

async fn stop(
    State(state): State<AppState>,
    on: OnServer,
    trail: Trail,
    Protected { form, .. }: Protected<ActionForm>,
) -> Result<Response, AppError> {
    request(&state, &on, &trail, Action::Stop, Kind::ServerStop, &form).await
}

async fn restart(
    State(state): State<AppState>,
    on: OnServer,
    trail: Trail,
    Protected { form, .. }: Protected<ActionForm>,
) -> Result<Response, AppError> {
    request(
        &state,
        &on,
        &trail,
        Action::Restart,
        Kind::ServerRestart,
        &form,
    )
    .await
}

async fn reset(
    State(state): State<AppState>,
    on: OnServer,
    trail: Trail,
    Protected { form, .. }: Protected<ActionForm>,
) -> Result<Response, AppError> {
    request(&state, &on, &trail, Action::Reset, Kind::ServerReset, &form).await
}

async fn delete(
    State(state): State<AppState>,
    on: OnServer,
    trail: Trail,
    Protected { form, .. }: Protected<ActionForm>,
) -> Result<Response, AppError> {
    request(
        &state,
        &on,
        &trail,
        Action::Delete,
        Kind::ServerDelete,
        &form,
    )
    .await
}

/// Whatever brings the server back to its desired state.
async fn reconcile(
    State(state): State<AppState>,
    on: OnServer,
    trail: Trail,
    Protected { form, .. }: Protected<ActionForm>,
) -> Result<Response, AppError> {
    let server = on.server();
    let (actual, err) = actual_one(&state, &server.name).await;
    let Some(actual) = actual else {
        return Err(AppError::BadRequest(format!(
            "cannot reconcile {}: its state is unknown ({})",
            server.name,
            err.unwrap_or_default()
        )));
    };
    match status::drift(server.desired_state, actual.as_ref()) {
        Some(d) => request(&state, &on, &trail, d.fix(), Kind::ServerReconcile, &form).await,
        None => {
            flash(
                &state,
                &on.authed.session,
                &format!(
                    "Server {} is already in its desired state; nothing to do.",
                    server.name
                ),
            )
            .await?;
            Ok(back(server, &form).into_response())
        }
    }
}

async fn request(
    state: &AppState,
    on: &OnServer,
    trail: &Trail,
    action: Action,
    kind: Kind,
    form: &ActionForm,
) -> Result<Response, AppError> {
    let server = on.server();
    if matches!(action, Action::Start | Action::Restart) {
        if let Some(why) = servers::start_refusal(&state.pool, &state.config.root, server).await? {
            flash_refusal(
                state,
                &on.authed.session,
                &format!("Server {} was not {}ed: {why}", server.name, action.verb()),
            )
            .await?;
            return Ok(back(server, form).into_response());
        }
    }
    let job = tasks::request_server_action(&state.jobs, server, action, on.user().id, None).await?;
    let detail = format!("{} queued (job #{job}){}", action.verb(), as_admin(on));
    trail
        .note(kind)
        .server(server)
        .detail(detail)
        .save(state)
        .await;
    flash(
        state,
        &on.authed.session,
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
    Ok(back(server, form).into_response())
}

/// What an audit entry adds when an administrator acts on another user's
/// server.
fn as_admin(on: &OnServer) -> &'static str {
    if on.access.role == Role::Admin {
        " as administrator"
    } else {
        ""
    }
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

/// Links the server to another of its owner's blueprints; it applies on
/// the server's next start/restart/reset.
async fn switch_blueprint(
    State(state): State<AppState>,
    on: OnServer,
    trail: Trail,
    Protected { form, .. }: Protected<SwitchForm>,
) -> Result<Response, AppError> {
    let server = on.server();
    let name = servers::switch_blueprint(&state.pool, server, &form.blueprint_id)
        .await
        .map_err(|e| match e {
            servers::SwitchError::Db(e) => AppError::from(e),
            other => AppError::BadRequest(format!("{other}; server {} unchanged", server.name)),
        })?;
    let detail = format!("to blueprint {name}{}", as_admin(&on));
    trail
        .note(Kind::ServerBlueprintSwitched)
        .server(server)
        .detail(detail)
        .save(&state)
        .await;
    flash(
        &state,
        &on.authed.session,
        &format!(
            "Server {} now uses blueprint {name}; it applies on the next start, restart or reset.",
            server.name
        ),
    )
    .await?;
    Ok(Redirect::to(&format!("/servers/{}", server.id)).into_response())
}

#[derive(Deserialize)]
struct ShareForm {
    username: String,
    role: String,
}

/// Gives another user a role on the server (or changes theirs).
async fn share(
    State(state): State<AppState>,
    on: OnServer,
    trail: Trail,
    Protected { form, .. }: Protected<ShareForm>,
) -> Result<Response, AppError> {
    let server = on.server();
    let (user, role) = access::grant(
        &state.pool,
        server,
        &form.username,
        &form.role,
        on.user().id,
    )
    .await
    .map_err(|e| match e {
        ShareError::Db(e) => AppError::from(e),
        other => AppError::BadRequest(format!("{other}; nothing was changed")),
    })?;
    let detail = format!(
        "with {} as {}{}",
        user.username,
        role.as_str(),
        as_admin(&on)
    );
    trail
        .note(Kind::ServerShared)
        .server(server)
        .detail(detail)
        .save(&state)
        .await;
    flash(
        &state,
        &on.authed.session,
        &format!(
            "Server {} is shared with {} as {}.",
            server.name,
            user.username,
            role.as_str()
        ),
    )
    .await?;
    Ok(Redirect::to(&format!("/servers/{}#sharing", server.id)).into_response())
}

#[derive(Deserialize)]
struct Empty {}

async fn unshare(
    State(state): State<AppState>,
    on: OnServer,
    Path((_, user)): Path<(String, String)>,
    trail: Trail,
    Protected { .. }: Protected<Empty>,
) -> Result<Response, AppError> {
    let server = on.server();
    let name = access::revoke(&state.pool, server.id, parse_id(&user)?)
        .await
        .map_err(|e| match e {
            ShareError::Db(e) => AppError::from(e),
            ShareError::NotShared => AppError::NotFound,
            other => AppError::bad(other),
        })?;
    let detail = format!("{name}'s role taken back{}", as_admin(&on));
    trail
        .note(Kind::ServerUnshared)
        .server(server)
        .detail(detail)
        .save(&state)
        .await;
    flash(
        &state,
        &on.authed.session,
        &format!("{name} no longer has a role on server {}.", server.name),
    )
    .await?;
    Ok(Redirect::to(&format!("/servers/{}#sharing", server.id)).into_response())
}
