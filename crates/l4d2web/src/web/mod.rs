//! HTTP layer: router, shared state, extractors, errors, security headers.

mod live;
mod overlays;
mod pages;
mod servers;

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, FromRef, FromRequest, FromRequestParts, Request,
};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use sqlx::SqlitePool;
use tokio_util::sync::CancellationToken;

use crate::accounts::User;
use crate::auth::{self, LoginLimiter, Session, SESSION_COOKIE};
use crate::config::Config;
use crate::db::now_unix;
use crate::jobs::Jobs;
use crate::live::LiveHub;
use crate::servers::blueprints;

/// Largest accepted request body of an ordinary form.
pub const MAX_BODY: usize = 16 * 1024;
/// Largest accepted body of a form carrying a blueprint (server.cfg and
/// launch args), so that every blueprint within its own limits fits: URL
/// encoding can triple each byte, and browsers send server.cfg's line ends
/// as CRLF, which counts twice before the blueprint stores LF.
pub const MAX_BLUEPRINT_BODY: usize = 6 * blueprints::MAX_CONFIG_BYTES
    + 3 * blueprints::MAX_ARGS * (blueprints::MAX_ARG_LEN + 1)
    + MAX_BODY;

/// The body limit of a [`Protected`] form on `path`, and the error for a
/// larger one. The blueprint routes carry server.cfg; every other form is
/// small.
fn form_limit(path: &str) -> (usize, impl FnOnce() -> AppError) {
    let blueprint = match path.strip_prefix("/blueprints") {
        Some("") => true,
        Some(rest) => rest.strip_prefix('/').is_some_and(|id| !id.contains('/')),
        None => false,
    };
    let limit = if blueprint {
        MAX_BLUEPRINT_BODY
    } else {
        MAX_BODY
    };
    let error = move || AppError::TooLarge {
        limit,
        hint: if blueprint {
            format!(
                " (a blueprint's server.cfg may have at most {} bytes)",
                blueprints::MAX_CONFIG_BYTES
            )
        } else {
            String::new()
        },
    };
    (limit, error)
}

#[derive(Clone)]
pub struct AppState {
    pub pool: SqlitePool,
    pub config: Arc<Config>,
    pub limiter: Arc<LoginLimiter>,
    pub jobs: Jobs,
    pub live: LiveHub,
    /// Fired on shutdown: ends SSE streams so graceful shutdown can finish.
    pub shutdown: CancellationToken,
}

impl FromRef<AppState> for SqlitePool {
    fn from_ref(s: &AppState) -> Self {
        s.pool.clone()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::index))
        .route("/health", get(pages::health))
        .route("/assets/{name}", get(pages::asset))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/jobs", get(pages::jobs_list))
        .route("/jobs/{id}", get(pages::job_detail))
        .route("/jobs/{id}/stream", get(pages::job_stream))
        .route("/admin/install", post(pages::admin_install))
        .route(
            "/admin/users",
            get(pages::users_page).post(pages::user_create),
        )
        .route("/admin/users/{id}/{action}", post(pages::user_action))
        .merge(overlays::routes())
        .merge(servers::routes())
        .merge(live::routes())
        .fallback(pages::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// Content-Security-Policy without inline script; framing forbidden.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https://avatars.steamstatic.com https://avatars.akamai.steamstatic.com https://avatars.cloudflare.steamstatic.com https://steamcdn-a.akamaihd.net; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

/// Navigation data every page template gets.
pub struct Nav {
    pub user: Option<String>,
    pub is_admin: bool,
    pub csrf: Option<String>,
    pub flash: Option<String>,
}

impl Nav {
    pub fn anonymous() -> Self {
        Nav {
            user: None,
            is_admin: false,
            csrf: None,
            flash: None,
        }
    }
    pub fn for_session(s: &Session) -> Self {
        Nav {
            user: s.user.as_ref().map(|u| u.username.clone()),
            is_admin: s.user.as_ref().is_some_and(|u| u.is_admin),
            csrf: Some(s.csrf_token.clone()),
            flash: s.flash.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    nav: Nav,
    status: u16,
    message: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("log in first")]
    LoginRequired,
    #[error("administrators only")]
    Forbidden,
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or wrong CSRF token; reload the page and try again")]
    Csrf,
    #[error(
        "the request body is larger than the limit of {limit} bytes{hint}; nothing was changed"
    )]
    TooLarge { limit: usize, hint: String },
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        AppError::Internal(e.into())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self {
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::LoginRequired => StatusCode::UNAUTHORIZED,
            AppError::Forbidden | AppError::Csrf => StatusCode::FORBIDDEN,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Internal(e) => {
                // Details go to the log only; the page says nothing internal.
                tracing::error!(error = format!("{e:#}"), "request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let message = self.to_string();
        render_status(status, &message)
    }
}

pub fn render_status(status: StatusCode, message: &str) -> Response {
    let page = ErrorPage {
        nav: Nav::anonymous(),
        status: status.as_u16(),
        message,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, message.to_string()).into_response(),
    }
}

pub fn render<T: Template>(t: &T) -> Result<Html<String>, AppError> {
    t.render()
        .map(Html)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("template: {e}")))
}

fn session_token(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The session of the request, if any (anonymous or logged in).
pub struct MaybeSession(pub Option<Session>);

impl FromRequestParts<AppState> for MaybeSession {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if let Some(s) = parts.extensions.get::<Session>() {
            return Ok(MaybeSession(Some(s.clone())));
        }
        let Some(token) = session_token(parts) else {
            return Ok(MaybeSession(None));
        };
        let session = auth::load_session(&state.pool, &state.config.secret_key, &token).await?;
        if let Some(s) = &session {
            parts.extensions.insert(s.clone());
        }
        Ok(MaybeSession(session))
    }
}

/// A logged-in user. GET requests without login are redirected to /login.
pub struct Authed {
    pub session: Session,
    pub user: User,
}

pub struct LoginRedirect;
impl IntoResponse for LoginRedirect {
    fn into_response(self) -> Response {
        Redirect::to("/login").into_response()
    }
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let MaybeSession(s) = MaybeSession::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        match s {
            Some(session) => match session.user.clone() {
                Some(user) => Ok(Authed { session, user }),
                None => Err(unauthenticated(&parts.method)),
            },
            None => Err(unauthenticated(&parts.method)),
        }
    }
}

fn unauthenticated(method: &Method) -> Response {
    if method == Method::GET || method == Method::HEAD {
        LoginRedirect.into_response()
    } else {
        AppError::LoginRequired.into_response()
    }
}

/// A logged-in administrator (403 for other users).
pub struct Admin(pub Authed);

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let a = Authed::from_request_parts(parts, state).await?;
        if a.user.is_admin {
            Ok(Admin(a))
        } else {
            Err(AppError::Forbidden.into_response())
        }
    }
}

/// A state-changing form submission: requires a session whose CSRF token
/// matches the `csrf_token` field or the `X-CSRF-Token` header, then parses
/// the urlencoded body into `T`. Every POST handler takes this, so a
/// forgotten CSRF check does not compile.
pub struct Protected<T> {
    pub session: Session,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Protected<T> {
    type Rejection = AppError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        let (limit, too_large) = form_limit(req.uri().path());
        let (session, form) = read_protected_form(req, state, limit, too_large).await?;
        Ok(Protected { session, form })
    }
}

/// The work of [`Protected`] with a chosen body limit: the session, a CSRF
/// token matching it (form field `csrf_token` or header `X-CSRF-Token`), an
/// urlencoded body of at most `limit` bytes parsed into `T`.
pub async fn read_protected_form<T: DeserializeOwned>(
    req: Request,
    state: &AppState,
    limit: usize,
    too_large: impl FnOnce() -> AppError,
) -> Result<(Session, T), AppError> {
    let mut raw = RawForm::read(req, limit, too_large).await?;
    let MaybeSession(session) = MaybeSession::from_request_parts(&mut raw.parts, state).await?;
    let Some(session) = session else {
        return Err(AppError::Csrf);
    };
    if !auth::tokens_match(&session.csrf_token, &raw.token) {
        return Err(AppError::Csrf);
    }
    Ok((session, raw.parse()?))
}

/// The login form's submission. There is no session before a login, so
/// instead of [`Protected`]'s session token the CSRF token (field
/// `csrf_token` or header `X-CSRF-Token`) must be a login token signed with
/// SECRET_KEY, unexpired, and equal to the one in the session cookie
/// ([`auth::issue_login_token`]). The login handler takes this, so it cannot
/// skip the check either.
pub struct LoginSubmission<T> {
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for LoginSubmission<T> {
    type Rejection = AppError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        let raw = RawForm::read(req, MAX_BODY, || AppError::TooLarge {
            limit: MAX_BODY,
            hint: String::new(),
        })
        .await?;
        let cookie = session_token(&raw.parts).unwrap_or_default();
        if !auth::tokens_match(&cookie, &raw.token)
            || !auth::login_token_valid(&state.config.secret_key, &raw.token, now_unix())
        {
            return Err(AppError::Csrf);
        }
        Ok(LoginSubmission { form: raw.parse()? })
    }
}

/// A form body read up to a limit, with the CSRF token it carries (the
/// `X-CSRF-Token` header wins over the `csrf_token` field), not yet checked.
struct RawForm {
    parts: Parts,
    token: String,
    bytes: axum::body::Bytes,
}

impl RawForm {
    async fn read(
        req: Request,
        limit: usize,
        too_large: impl FnOnce() -> AppError,
    ) -> Result<RawForm, AppError> {
        let (parts, body) = req.into_parts();
        let header_token = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| too_large())?;
        let token = header_token
            .or_else(|| form_urlencoded_field(&bytes, "csrf_token"))
            .unwrap_or_default();
        Ok(RawForm {
            parts,
            token,
            bytes,
        })
    }

    /// The urlencoded body as `T` (call only after the token was checked).
    fn parse<T: DeserializeOwned>(&self) -> Result<T, AppError> {
        if let Some(ct) = self.parts.headers.get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("");
            if !self.bytes.is_empty() && !ct.starts_with("application/x-www-form-urlencoded") {
                return Err(AppError::BadRequest(format!(
                    "unsupported content type {ct:?}: send an HTML form (application/x-www-form-urlencoded)"
                )));
            }
        }
        serde_urlencoded::from_bytes(&self.bytes)
            .map_err(|e| AppError::BadRequest(format!("malformed form: {e}")))
    }
}

fn form_urlencoded_field(bytes: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(bytes)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The client IP (see [`auth::client_ip`]).
pub struct ClientIp(pub std::net::IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0)
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no peer address")))?;
        Ok(ClientIp(auth::client_ip(
            peer,
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}

/// `Set-Cookie` value for a session token.
pub fn session_cookie(token: &str, secure: bool, max_age: i64) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}
