//! Recording to the audit log from handlers ([`Trail`]: who and from where,
//! one line per record), and the `/audit` page.

use std::net::IpAddr;

use askama::Template;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::response::Html;
use serde::Deserialize;

use super::error::AppError;
use super::extract::{Authed, ClientIp, MaybeSession};
use super::page::{nav, render, stamp, Nav, Stamp};
use super::routes::Routes;
use super::state::AppState;
use crate::accounts::{self, User};
use crate::audit::{self, Entry, Filter, KindFilter, Outcome, Row, Viewer};
use crate::servers::{self, ServerRow};

pub fn routes() -> Routes {
    Routes::default().get("/audit", page)
}

/// Who is asking and from where, for audit entries. Take it before the
/// request's form ([`super::extract::Protected`] reads the body) and record
/// in the handler's body, i.e. after the CSRF check passed.
pub struct Trail {
    ip: IpAddr,
    actor: Option<(i64, String)>,
}

impl FromRequestParts<AppState> for Trail {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        let MaybeSession(session) = MaybeSession::from_request_parts(parts, state).await?;
        let actor = session
            .and_then(|s| s.user)
            .map(|u| (u.id, u.username.clone()));
        Ok(Trail { ip, actor })
    }
}

impl Trail {
    /// A new entry of `kind` by the visitor (result ok until said otherwise).
    pub fn note(&self, kind: audit::Kind) -> Note {
        let mut entry = Entry::new(kind);
        entry.source_ip = Some(self.ip.to_string());
        if let Some((id, name)) = &self.actor {
            entry.actor_id = Some(*id);
            entry.actor_name = name.clone();
        }
        Note { entry }
    }
}

/// An entry being written: `trail.note(kind).server(&s).detail(..).save(&state)`.
pub struct Note {
    entry: Entry,
}

impl Note {
    pub fn target(mut self, target_type: &'static str, id: i64, name: &str) -> Self {
        self.entry.target_type = target_type;
        self.entry.target_id = Some(id);
        self.entry.target_name = name.to_string();
        self
    }

    pub fn user(self, user: &User) -> Self {
        self.target("user", user.id, &user.username)
    }

    /// The target is a server (which the entry then also concerns).
    pub fn server(self, server: &ServerRow) -> Self {
        self.target("server", server.id, &server.name)
            .concerns(server.id, server.owner_id)
    }

    /// The target is the server `id` of a path, which may not exist (a
    /// refused request): only its number is kept.
    pub fn server_in_path(mut self, id: &str) -> Self {
        self.entry.target_type = "server";
        self.entry.target_id = id.trim().parse().ok();
        self
    }

    /// The entry concerns server `server_id` of `owner_id` (its owner sees it).
    pub fn concerns(mut self, server_id: i64, owner_id: i64) -> Self {
        self.entry.server_id = Some(server_id);
        self.entry.server_owner_id = Some(owner_id);
        self
    }

    /// Someone other than the session's user (a login).
    pub fn actor(mut self, id: Option<i64>, name: &str) -> Self {
        self.entry.actor_id = id;
        self.entry.actor_name = name.to_string();
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.entry.detail = detail.into();
        self
    }

    pub fn result(mut self, result: Outcome) -> Self {
        self.entry.result = result;
        self
    }

    pub fn refused(self) -> Self {
        self.result(Outcome::Refused)
    }

    pub fn failed(self) -> Self {
        self.result(Outcome::Failed)
    }

    /// Records the entry. The action it describes has already happened, so
    /// a failure does not fail the request: it is logged at error level.
    pub async fn save(self, state: &AppState) {
        if let Err(e) = audit::record(&state.pool, &self.entry).await {
            self.log_failure(&e);
        }
    }

    /// Records it unless the same kind came from the same address within
    /// `window_secs` (for refusals anyone can repeat).
    pub async fn save_once_per(self, state: &AppState, window_secs: u64) {
        if let Err(e) = audit::record_once_per(&state.pool, &self.entry, window_secs).await {
            self.log_failure(&e);
        }
    }

    fn log_failure(&self, e: &audit::AuditError) {
        tracing::error!(
            error = %e,
            kind = self.entry.kind.as_str(),
            actor = %self.entry.actor_name,
            target = %self.entry.target_name,
            "cannot write the audit log entry"
        );
    }
}

/// The page's query: every value is text, checked here (a bad one is a
/// 400 naming it, never a 500).
#[derive(Deserialize, Default)]
struct AuditQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    server: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    page: String,
}

/// The furthest page one may ask for.
const MAX_PAGE: u32 = 100_000;

fn id_param(name: &str, value: &str) -> Result<Option<i64>, AppError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    match value.parse::<i64>() {
        Ok(id) if id > 0 => Ok(Some(id)),
        _ => Err(AppError::BadRequest(format!(
            "{name} must be a {name} id (a positive number), not {:?}",
            value.chars().take(40).collect::<String>()
        ))),
    }
}

impl AuditQuery {
    fn filter(&self, viewer: &User) -> Result<(Filter, u32), AppError> {
        let actor_id = id_param("user", &self.user)?;
        if actor_id.is_some() && !viewer.is_admin {
            return Err(AppError::BadRequest(
                "only administrators filter the audit log by user".into(),
            ));
        }
        let server_id = id_param("server", &self.server)?;
        let kind = match self.kind.trim() {
            "" => None,
            k => Some(KindFilter::parse(k).map_err(AppError::bad)?),
        };
        let page = match self.page.trim() {
            "" => 1,
            p => match p.parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => {
                    return Err(AppError::BadRequest(format!(
                        "page must be a number from 1 to {MAX_PAGE}, not {:?}",
                        p.chars().take(40).collect::<String>()
                    )))
                }
            },
        };
        let viewer = if viewer.is_admin {
            Viewer::Admin
        } else {
            Viewer::User(viewer.id)
        };
        Ok((
            Filter {
                viewer,
                actor_id,
                server_id,
                kind,
            },
            page,
        ))
    }
}

/// One row as the page shows it.
struct Line {
    row: Row,
    at: Stamp,
}

impl Line {
    fn target(&self) -> String {
        let r = &self.row;
        match (r.target_type.as_str(), r.target_id, r.target_name.as_str()) {
            ("", _, _) => String::new(),
            (t, Some(id), "") => format!("{t} #{id}"),
            (t, Some(id), name) => format!("{t} {name} (#{id})"),
            (t, None, name) => format!("{t} {name}"),
        }
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    nav: Nav,
    is_admin: bool,
    lines: Vec<Line>,
    /// (id, name, chosen in the filter)
    users: Vec<(i64, String, bool)>,
    servers: Vec<(i64, String, bool)>,
    kinds: Vec<&'static str>,
    kind: String,
    page: u32,
    newer: Option<String>,
    older: Option<String>,
    retention_days: u32,
}

/// The link to page `n` with the same filters.
fn page_link(f: &Filter, n: u32) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(u) = f.actor_id {
        pairs.push(("user", u.to_string()));
    }
    if let Some(s) = f.server_id {
        pairs.push(("server", s.to_string()));
    }
    if let Some(k) = f.kind {
        pairs.push(("kind", k.as_str().to_string()));
    }
    if n > 1 {
        pairs.push(("page", n.to_string()));
    }
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    if query.is_empty() {
        "/audit".into()
    } else {
        format!("/audit?{query}")
    }
}

/// `choices` with `chosen` among them: a filter by a deleted user or server
/// still shows, by its number (deleted, or not the visitor's).
fn with_chosen(
    mut choices: Vec<(i64, String, bool)>,
    chosen: Option<i64>,
) -> Vec<(i64, String, bool)> {
    if let Some(id) = chosen {
        if !choices.iter().any(|c| c.0 == id) {
            choices.push((id, format!("#{id}"), true));
        }
    }
    choices
}

async fn page(
    State(state): State<AppState>,
    a: Authed,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Html<String>, AppError> {
    let Query(query) =
        query.map_err(|e| AppError::BadRequest(format!("malformed query: {}", e.body_text())))?;
    let (filter, number) = query.filter(&a.user)?;
    let found = audit::list(&state.pool, &filter, number).await?;
    let (users, servers) = if a.user.is_admin {
        let users = accounts::list(&state.pool).await?;
        let chosen = |id| filter.actor_id == Some(id);
        (
            users
                .into_iter()
                .map(|u| (u.id, u.username, chosen(u.id)))
                .collect(),
            servers::list_all(&state.pool).await?,
        )
    } else {
        (
            Vec::new(),
            servers::list_owned(&state.pool, a.user.id).await?,
        )
    };
    let servers = with_chosen(
        servers
            .into_iter()
            .map(|s| (s.id, s.name, filter.server_id == Some(s.id)))
            .collect(),
        filter.server_id,
    );
    let users = with_chosen(users, filter.actor_id);
    let page = AuditPage {
        nav: nav(&state, &a.session).await?,
        is_admin: a.user.is_admin,
        lines: found
            .rows
            .into_iter()
            .map(|row| Line {
                at: stamp(&row.at),
                row,
            })
            .collect(),
        users,
        servers,
        kinds: audit::areas()
            .into_iter()
            .chain(audit::Kind::ALL.iter().map(|k| k.as_str()))
            .collect(),
        kind: filter
            .kind
            .map(|k| k.as_str().to_string())
            .unwrap_or_default(),
        page: found.number,
        newer: (found.number > 1).then(|| page_link(&filter, found.number - 1)),
        older: found
            .has_older
            .then(|| page_link(&filter, found.number + 1)),
        retention_days: state.config.audit_retention_days,
    };
    render(&page)
}
