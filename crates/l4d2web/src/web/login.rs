//! Login and logout.

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
use crate::accounts;
use crate::audit::Kind;
use crate::auth::{self, RetryAfter, SESSION_TTL_SECS};
use crate::db::now_unix;

pub fn routes() -> Routes {
    Routes::default()
        .get("/login", login_form)
        .post("/login", login)
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
    let delay = match state.limiter.check(ip, &username) {
        Ok(delay) => delay,
        Err(RetryAfter(wait)) => {
            let secs = wait.as_secs().max(1);
            tracing::warn!(%ip, "login rate limit hit");
            let window = state.config.login_limit_window_secs;
            trail
                .note(Kind::LoginLocked)
                .actor(None, &username)
                .refused()
                .detail(format!("too many login attempts; retry in {secs} s (noted once per address and window)"))
                .save_once_per(&state, window)
                .await;
            let mut res = login_page(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                username,
                Some(format!(
                    "Too many login attempts. Try again in {secs} seconds."
                )),
            )?;
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
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
            tracing::info!(%ip, "failed login");
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
    let (id, name) = (user.id, user.username.clone());
    let (token, _) =
        auth::create_session(&state.pool, &state.config.secret_key, Some(user)).await?;
    trail
        .note(Kind::LoginSucceeded)
        .actor(Some(id), &name)
        .save(&state)
        .await;
    let cookie = session_cookie(token, state.config.session_cookie_secure, SESSION_TTL_SECS);
    Ok((CookieJar::new().add(cookie), Redirect::to("/servers")).into_response())
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
