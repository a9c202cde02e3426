//! Route handlers.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Json;
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::{
    render, session_cookie, Admin, AppError, AppState, Authed, ClientIp, LoginSubmission,
    MaybeSession, Nav, Protected,
};
use crate::accounts::{self, AccountError, User};
use crate::auth::{self, RetryAfter, SESSION_TTL_SECS};
use crate::db::now_unix;
use crate::jobs::{Job, JobEvent, JobLine};

static HTMX_JS: &str = include_str!("../../assets/vendor/htmx-2.0.11.min.js");
static SSE_JS: &str = include_str!("../../assets/vendor/htmx-ext-sse-2.2.4.js");
static APP_CSS: &str = include_str!("../../assets/app.css");
static AVATAR_SVG: &str = include_str!("../../assets/avatar.svg");

pub async fn index(MaybeSession(s): MaybeSession) -> Redirect {
    if s.is_some_and(|s| s.user.is_some()) {
        Redirect::to("/servers")
    } else {
        Redirect::to("/login")
    }
}

pub async fn not_found() -> AppError {
    AppError::NotFound
}

/// Monitoring endpoint: 200 when the database answers, 503 otherwise.
pub async fn health(State(state): State<AppState>) -> Response {
    match sqlx::query_scalar::<_, i64>("SELECT 1")
        .fetch_one(&state.pool)
        .await
    {
        Ok(_) => Json(serde_json::json!({"status": "ok", "database": "ok"})).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"status": "error", "database": "unavailable"})),
            )
                .into_response()
        }
    }
}

pub async fn asset(Path(name): Path<String>) -> Result<Response, AppError> {
    let (body, ctype) = match name.as_str() {
        "htmx.min.js" => (HTMX_JS, "text/javascript; charset=utf-8"),
        "sse.js" => (SSE_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "avatar.svg" => (AVATAR_SVG, "image/svg+xml"),
        _ => return Err(AppError::NotFound),
    };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(ctype)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response())
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    nav: Nav,
    csrf: String,
    username: String,
    error: Option<String>,
}

/// Shows the login form. Its CSRF token is stateless (signed, with an
/// expiry) and goes into the form and the session cookie, so a visitor who
/// has not logged in leaves nothing in the database.
pub async fn login_form(
    State(state): State<AppState>,
    MaybeSession(s): MaybeSession,
) -> Result<Response, AppError> {
    if s.is_some_and(|session| session.user.is_some()) {
        return Ok(Redirect::to("/servers").into_response());
    }
    login_page(&state, StatusCode::OK, String::new(), None)
}

/// The login form with a fresh login token (also set as the cookie).
fn login_page(
    state: &AppState,
    status: StatusCode,
    username: String,
    error: Option<String>,
) -> Result<Response, AppError> {
    let token = auth::issue_login_token(&state.config.secret_key, now_unix())
        .map_err(|e| AppError::Internal(e.into()))?;
    let page = LoginPage {
        nav: Nav::anonymous(),
        csrf: token.clone(),
        username,
        error,
    };
    let mut res = (status, render(&page)?).into_response();
    let cookie = session_cookie(
        &token,
        state.config.session_cookie_secure,
        auth::LOGIN_TOKEN_TTL_SECS,
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    LoginSubmission { form }: LoginSubmission<LoginForm>,
) -> Result<Response, AppError> {
    let username = form.username.trim().to_string();
    if username.is_empty() || form.password.is_empty() {
        return login_page(
            &state,
            StatusCode::BAD_REQUEST,
            username,
            Some("Enter a username and a password.".into()),
        );
    }
    let delay = match state.limiter.check(ip, &username) {
        Ok(delay) => delay,
        Err(RetryAfter(wait)) => {
            let secs = wait.as_secs().max(1);
            tracing::warn!(%ip, "login rate limit hit");
            let mut res = login_page(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                username,
                Some(format!(
                    "Too many login attempts. Try again in {secs} seconds."
                )),
            )?;
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return Ok(res);
        }
    };
    if !delay.is_zero() {
        // Someone is guessing this username's password (from anywhere):
        // slow every try, never refuse, so the owner still gets in.
        tracing::info!(delay_ms = delay.as_millis() as u64, "login slowed down");
        tokio::time::sleep(delay).await;
    }
    let user = accounts::find_by_name(&state.pool, &username).await?;
    // Verify even for unknown users so timing does not reveal which exist.
    let password = form.password.clone();
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| accounts::dummy_hash().to_string());
    let ok = tokio::task::spawn_blocking(move || accounts::verify_password(&password, &hash))
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        _ => {
            tracing::info!(%ip, "failed login");
            state.limiter.record_failure(&username);
            return login_page(
                &state,
                StatusCode::UNAUTHORIZED,
                username,
                Some("Wrong username or password.".into()),
            );
        }
    };
    // The first session row of this visitor: created only now. Its fresh
    // token replaces the login token in the cookie.
    let (token, _) = auth::create_session(&state.pool, &state.config.secret_key, Some(user))
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let mut res = Redirect::to("/servers").into_response();
    let cookie = session_cookie(&token, state.config.session_cookie_secure, SESSION_TTL_SECS);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn logout(
    State(state): State<AppState>,
    Protected { session, .. }: Protected<Empty>,
) -> Result<Response, AppError> {
    auth::delete_session(&state.pool, &session.id).await?;
    let mut res = Redirect::to("/login").into_response();
    let cookie = session_cookie("", state.config.session_cookie_secure, 0);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// Builds the page navigation and consumes the flash message.
async fn nav(state: &AppState, session: &auth::Session) -> Result<Nav, AppError> {
    if session.flash.is_some() {
        auth::clear_flash(&state.pool, &session.id).await?;
    }
    Ok(Nav::for_session(session))
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    nav: Nav,
    jobs: Vec<Job>,
}

pub async fn jobs_list(State(state): State<AppState>, a: Authed) -> Result<Html<String>, AppError> {
    let scope = if a.user.is_admin {
        None
    } else {
        Some(a.user.id)
    };
    let jobs = state.jobs.list(scope, 200).await?;
    render(&JobsPage {
        nav: nav(&state, &a.session).await?,
        jobs,
    })
}

/// A job the user may see: their own, or any for admins. Others are 404.
async fn visible_job(state: &AppState, user: &User, id: &str) -> Result<Job, AppError> {
    let id: i64 = id.parse().map_err(|_| AppError::NotFound)?;
    match state.jobs.get(id).await? {
        Some(job) if user.is_admin || job.user_id == Some(user.id) => Ok(job),
        _ => Err(AppError::NotFound),
    }
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    nav: Nav,
    job: Job,
    lines: Vec<JobLine>,
}

pub async fn job_detail(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
) -> Result<Html<String>, AppError> {
    let job = visible_job(&state, &a.user, &id).await?;
    // A running job's log arrives over SSE (whole log, then the tail).
    let lines = if job.is_finished() {
        state.jobs.lines_after(job.id, 0, 100_000).await?
    } else {
        Vec::new()
    };
    render(&JobPage {
        nav: nav(&state, &a.session).await?,
        job,
        lines,
    })
}

fn line_event(l: &JobLine) -> Event {
    #[derive(Template)]
    #[template(
        source = "<div class=\"l s-{{ stream }}\">{{ line }}</div>",
        ext = "html"
    )]
    struct LineHtml<'a> {
        stream: &'a str,
        line: &'a str,
    }
    let html = LineHtml {
        stream: &l.stream,
        line: &l.line,
    }
    .render()
    .unwrap_or_default();
    Event::default()
        .event("line")
        .id(l.seq.to_string())
        .data(html)
}

fn end_event(state: &str) -> Event {
    #[derive(Template)]
    #[template(
        source = "<span id=\"job-state\" class=\"badge state-{{ state }}\">{{ state }}</span>",
        ext = "html"
    )]
    struct StateHtml<'a> {
        state: &'a str,
    }
    Event::default()
        .event("end")
        .data(StateHtml { state }.render().unwrap_or_default())
}

/// SSE: the whole log so far, then new lines as they arrive; ends with an
/// `end` event when the job ends. One task per viewer, no thread.
///
/// A reconnecting EventSource sends `Last-Event-ID` (the last line's seq);
/// the stream then resumes after it instead of repeating the log.
pub async fn job_stream(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let job = visible_job(&state, &a.user, &id).await?;
    let resume_after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|seq| *seq >= 0)
        .unwrap_or(0);
    let job_id = job.id;
    // Subscribe before reading the database, so no line falls in between.
    let mut rx = state.jobs.hub.subscribe(job_id);
    let jobs = state.jobs.clone();
    let shutdown = state.shutdown.clone();
    let stream = async_stream::stream! {
        let mut last = resume_after;
        // Catch up from the database in pages.
        macro_rules! catch_up {
            () => {
                loop {
                    match jobs.lines_after(job_id, last, 2000).await {
                        Ok(batch) if batch.is_empty() => break,
                        Ok(batch) => {
                            for l in &batch { last = l.seq; yield Ok(line_event(l)); }
                        }
                        Err(e) => { tracing::error!(job = job_id, error = %e, "job log read failed"); break; }
                    }
                }
            };
        }
        let current = jobs.get(job_id).await.ok().flatten();
        catch_up!();
        match current {
            Some(j) if j.is_finished() => {
                drop(rx);
                jobs.hub.release(job_id);
                yield Ok(end_event(&j.state));
                return;
            }
            None => return,
            Some(_) => {}
        }
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                e = rx.recv() => e,
            };
            match event {
                Ok(JobEvent::Line(l)) if l.seq <= last => {}
                Ok(JobEvent::Line(l)) if l.seq == last + 1 => { last = l.seq; yield Ok(line_event(&l)); }
                Ok(JobEvent::Line(_)) | Err(RecvError::Lagged(_)) => { catch_up!(); }
                Ok(JobEvent::End { state }) => {
                    catch_up!();
                    yield Ok(end_event(&state));
                    return;
                }
                Err(RecvError::Closed) => {
                    catch_up!();
                    let state = jobs.get(job_id).await.ok().flatten().map(|j| j.state).unwrap_or_default();
                    yield Ok(end_event(&state));
                    return;
                }
            }
        }
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

pub async fn admin_install(
    State(state): State<AppState>,
    Admin(_): Admin,
    Protected { session, .. }: Protected<Empty>,
) -> Result<Response, AppError> {
    let id = state.jobs.enqueue("install", &["install"], None).await?;
    auth::set_flash(
        &state.pool,
        &session.id,
        &format!("Install job #{id} queued."),
    )
    .await?;
    Ok(Redirect::to(&format!("/jobs/{id}")).into_response())
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    nav: Nav,
    csrf: String,
    me: i64,
    users: Vec<User>,
    form_username: String,
    form_admin: bool,
    username_error: Option<String>,
    password_error: Option<String>,
}

async fn users_page_with(
    state: &AppState,
    a: &Authed,
    form: Option<(&CreateUserForm, AccountError)>,
) -> Result<Response, AppError> {
    let users = accounts::list(&state.pool).await?;
    let mut page = UsersPage {
        nav: nav(state, &a.session).await?,
        csrf: a.session.csrf_token.clone(),
        me: a.user.id,
        users,
        form_username: String::new(),
        form_admin: false,
        username_error: None,
        password_error: None,
    };
    let status = if let Some((f, err)) = form {
        page.form_username = f.username.clone();
        page.form_admin = f.is_admin.is_some();
        match err {
            AccountError::ShortPassword | AccountError::LongPassword => {
                page.password_error = Some(err.to_string())
            }
            _ => page.username_error = Some(err.to_string()),
        }
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, render(&page)?).into_response())
}

pub async fn users_page(
    State(state): State<AppState>,
    Admin(a): Admin,
) -> Result<Response, AppError> {
    users_page_with(&state, &a, None).await
}

#[derive(Deserialize)]
pub struct CreateUserForm {
    username: String,
    password: String,
    is_admin: Option<String>,
}

pub async fn user_create(
    State(state): State<AppState>,
    Admin(a): Admin,
    Protected { form, .. }: Protected<CreateUserForm>,
) -> Result<Response, AppError> {
    let username = form.username.trim();
    match accounts::create_user(
        &state.pool,
        username,
        &form.password,
        form.is_admin.is_some(),
    )
    .await
    {
        Ok(u) => {
            auth::set_flash(
                &state.pool,
                &a.session.id,
                &format!("User {} created.", u.username),
            )
            .await?;
            Ok(Redirect::to("/admin/users").into_response())
        }
        Err(AccountError::Db(e)) => Err(e.into()),
        Err(e) => users_page_with(&state, &a, Some((&form, e))).await,
    }
}

#[derive(Deserialize)]
pub struct UserActionForm {
    password: Option<String>,
}

pub async fn user_action(
    State(state): State<AppState>,
    Admin(a): Admin,
    Path((id, action)): Path<(String, String)>,
    Protected { form, .. }: Protected<UserActionForm>,
) -> Result<Response, AppError> {
    let id: i64 = id.parse().map_err(|_| AppError::NotFound)?;
    let target = accounts::find_by_id(&state.pool, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let is_self = target.id == a.user.id;
    let message = match action.as_str() {
        "disable" | "delete" if is_self => {
            return Err(AppError::BadRequest(format!(
                "you cannot {action} your own account"
            )))
        }
        "disable" => {
            accounts::set_disabled(&state.pool, id, true).await?;
            format!("User {} disabled.", target.username)
        }
        "enable" => {
            accounts::set_disabled(&state.pool, id, false).await?;
            format!("User {} enabled.", target.username)
        }
        "delete" => {
            accounts::delete(&state.pool, id).await?;
            format!("User {} deleted.", target.username)
        }
        "unlock" => {
            state.limiter.unlock(&target.username);
            format!(
                "Login limits of {} cleared: failed attempts are forgotten.",
                target.username
            )
        }
        "password" => {
            let pw = form.password.unwrap_or_default();
            match accounts::set_password(&state.pool, id, &pw).await {
                Ok(()) => {}
                Err(AccountError::Db(e)) => return Err(e.into()),
                Err(e) => return Err(AppError::BadRequest(format!("password not changed: {e}"))),
            }
            if is_self {
                // Own password reset ends this session too.
                return Ok(Redirect::to("/login").into_response());
            }
            format!(
                "Password of {} reset; their sessions were ended.",
                target.username
            )
        }
        _ => return Err(AppError::NotFound),
    };
    auth::set_flash(&state.pool, &a.session.id, &message).await?;
    Ok(Redirect::to("/admin/users").into_response())
}
