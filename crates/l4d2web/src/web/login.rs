//! Login (password, then the two-factor code where the user has it on)
//! and logout.

use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use super::audit::Trail;
use super::error::AppError;
use super::extract::{session_cookie, ClientIp, LoginSubmission, MaybeSession, Protected};
use super::page::{render, Nav};
use super::routes::Routes;
use super::state::AppState;
use crate::accounts::{self, User};
use crate::audit::Kind;
use crate::auth::totp::{self, TotpError, Used};
use crate::auth::{self, RetryAfter, SESSION_TTL_SECS};
use crate::db::now_unix;

pub fn routes() -> Routes {
    Routes::default()
        .get("/login", login_form)
        .post("/login", login)
        .post("/login/code", login_code)
        .post("/logout", logout)
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
async fn login_form(
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
    let token = auth::issue_login_token(&state.config.secret_key, now_unix())?;
    let page = LoginPage {
        nav: Nav::anonymous(),
        csrf: token.clone(),
        username,
        error,
    };
    let cookie = session_cookie(
        token,
        state.config.session_cookie_secure,
        auth::LOGIN_TOKEN_TTL_SECS,
    );
    Ok((status, CookieJar::new().add(cookie), render(&page)?).into_response())
}

#[derive(Template)]
#[template(path = "login_code.html")]
struct CodePage {
    nav: Nav,
    csrf: String,
    step: String,
    username: String,
    error: Option<String>,
}

/// The second step's form: a fresh login token (also the cookie) and the
/// signed token saying whose password was right.
fn code_page(
    state: &AppState,
    status: StatusCode,
    user: &User,
    step: String,
    error: Option<String>,
) -> Result<Response, AppError> {
    let token = auth::issue_login_token(&state.config.secret_key, now_unix())?;
    let page = CodePage {
        nav: Nav::anonymous(),
        csrf: token.clone(),
        step,
        username: user.username.clone(),
        error,
    };
    let cookie = session_cookie(
        token,
        state.config.session_cookie_secure,
        auth::LOGIN_TOKEN_TTL_SECS,
    );
    Ok((status, CookieJar::new().add(cookie), render(&page)?).into_response())
}

/// Counts one attempt (password or code) against the login limits; the
/// refusal when a limit is used up (`Err`), else after any slow-down.
async fn limit(
    state: &AppState,
    ip: std::net::IpAddr,
    username: &str,
) -> Result<(), std::time::Duration> {
    let delay = match state.limiter.check(ip, username) {
        Ok(delay) => delay,
        Err(RetryAfter(wait)) => {
            tracing::warn!(%ip, "login rate limit hit");
            return Err(wait);
        }
    };
    if !delay.is_zero() {
        // Someone is guessing this username's password or code (from
        // anywhere): slow every try, never refuse, so the owner still gets in.
        tracing::info!(delay_ms = delay.as_millis() as u64, "login slowed down");
        tokio::time::sleep(delay).await;
    }
    Ok(())
}

fn too_many(wait: std::time::Duration, mut res: Response) -> Response {
    let secs = wait.as_secs().max(1);
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res
}

fn too_many_message(wait: std::time::Duration) -> String {
    format!(
        "Too many login attempts. Try again in {} seconds.",
        wait.as_secs().max(1)
    )
}

/// The logged-in session of `user`: its fresh token replaces the login
/// token in the cookie.
async fn start_session(
    state: &AppState,
    user: User,
    flash: Option<String>,
) -> Result<Response, AppError> {
    let (token, session) =
        auth::create_session(&state.pool, &state.config.secret_key, Some(user)).await?;
    if let Some(message) = flash {
        auth::set_flash(&state.pool, &session.id, &message).await?;
    }
    let cookie = session_cookie(token, state.config.session_cookie_secure, SESSION_TTL_SECS);
    Ok((CookieJar::new().add(cookie), Redirect::to("/servers")).into_response())
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    trail: Trail,
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
    if let Err(wait) = limit(&state, ip, &username).await {
        note_locked(&state, &trail, &username, wait).await;
        let message = too_many_message(wait);
        let res = login_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            username,
            Some(message),
        )?;
        return Ok(too_many(wait, res));
    }
    let user = accounts::find_by_name(&state.pool, &username).await?;
    // Verify even for unknown users so timing does not reveal which exist.
    let password = form.password;
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| accounts::dummy_hash().to_string());
    let ok =
        tokio::task::spawn_blocking(move || accounts::verify_password(&password, &hash)).await?;
    let known = user.as_ref().map(|u| (u.id, u.disabled));
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        _ => {
            let why = match known {
                None => "no such user",
                Some((_, true)) if ok => "account disabled",
                Some(_) => "wrong password",
            };
            trail
                .note(Kind::LoginFailed)
                .actor(known.map(|(id, _)| id), &username)
                .failed()
                .detail(why)
                .save(&state)
                .await;
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
    if totp::is_enabled(&state.pool, user.id).await? {
        // No session yet: the code decides.
        let step = auth::issue_second_step_token(&state.config.secret_key, user.id, now_unix())?;
        return code_page(&state, StatusCode::OK, &user, step, None);
    }
    // The first session row of this visitor: created only now.
    note_login(&state, &trail, &user, "password").await;
    start_session(&state, user, None).await
}

async fn note_login(state: &AppState, trail: &Trail, user: &User, how: &str) {
    trail
        .note(Kind::LoginSucceeded)
        .actor(Some(user.id), &user.username)
        .detail(how)
        .save(state)
        .await;
}

/// A login limit was hit: noted once per address and window, so nobody can
/// flood the log with refused logins.
async fn note_locked(state: &AppState, trail: &Trail, username: &str, wait: std::time::Duration) {
    let secs = wait.as_secs().max(1);
    trail
        .note(Kind::LoginLocked)
        .actor(None, username)
        .refused()
        .detail(format!(
            "too many login attempts; retry in {secs} s (noted once per address and window)"
        ))
        .save_once_per(state, state.config.login_limit_window_secs)
        .await;
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    step: String,
    #[serde(default)]
    code: String,
}

/// The second step: a current code or an unused recovery code of the user
/// whose password the signed `step` token vouches for. Counted against the
/// same login limits as passwords, so codes cannot be guessed faster.
async fn login_code(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    trail: Trail,
    LoginSubmission { form }: LoginSubmission<CodeForm>,
) -> Result<Response, AppError> {
    let user = match auth::second_step_user(&state.config.secret_key, &form.step, now_unix()) {
        Some(id) => accounts::find_by_id(&state.pool, id).await?,
        None => None,
    };
    let Some(user) = user.filter(|u| !u.disabled) else {
        return login_page(
            &state,
            StatusCode::BAD_REQUEST,
            String::new(),
            Some("The login took too long or was not started here: log in again.".into()),
        );
    };
    let step = form.step;
    if let Err(wait) = limit(&state, ip, &user.username).await {
        note_locked(&state, &trail, &user.username, wait).await;
        let message = too_many_message(wait);
        let res = code_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            &user,
            step,
            Some(message),
        )?;
        return Ok(too_many(wait, res));
    }
    let flash = match totp::verify(&state.pool, &user, &form.code).await {
        Ok(Used::Code) => None,
        Ok(Used::Recovery { left }) => {
            tracing::info!(%ip, "login with a recovery code");
            Some(format!(
                "You logged in with a recovery code; {left} unused recovery codes are left. \
                 Make new ones on your account page if you are running low."
            ))
        }
        Err(TotpError::WrongCode) => {
            trail
                .note(Kind::LoginFailed)
                .actor(Some(user.id), &user.username)
                .failed()
                .detail("wrong two-factor code")
                .save(&state)
                .await;
            tracing::info!(%ip, "wrong two-factor code");
            state.limiter.record_failure(&user.username);
            return code_page(
                &state,
                StatusCode::UNAUTHORIZED,
                &user,
                step,
                Some("Wrong code. Enter the code your authenticator app shows now, or an unused recovery code.".into()),
            );
        }
        // Turned off between the two steps: the password was right.
        Err(TotpError::NotEnabled) => None,
        Err(e) => return Err(e.into()),
    };
    let how = if flash.is_some() {
        "password and a recovery code"
    } else {
        "password and two-factor code"
    };
    note_login(&state, &trail, &user, how).await;
    start_session(&state, user, flash).await
}

#[derive(Deserialize)]
struct Empty {}

async fn logout(
    State(state): State<AppState>,
    Protected { session, .. }: Protected<Empty>,
) -> Result<Response, AppError> {
    auth::delete_session(&state.pool, &session.id).await?;
    let cookie = session_cookie(String::new(), state.config.session_cookie_secure, 0);
    Ok((CookieJar::new().add(cookie), Redirect::to("/login")).into_response())
}
