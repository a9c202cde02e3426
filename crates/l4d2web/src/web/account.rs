//! The account page: two-factor login (set up, recovery codes, turning it
//! off), and the gate that keeps an administrator who must use two-factor
//! login but has not set it up on this page.

use askama::Template;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::error::AppError;
use super::extract::{session_token, Authed, Protected};
use super::page::{flash, nav, render, Nav};
use super::routes::Routes;
use super::state::AppState;
use crate::accounts;
use crate::auth::totp::{self, Enrollment, Status, TotpError};
use crate::auth::{self, Session};

pub fn routes() -> Routes {
    Routes::default()
        .get("/account", account_page)
        .post("/account/two-factor/begin", begin)
        .post("/account/two-factor/cancel", cancel)
        .post("/account/two-factor/confirm", confirm)
        .post("/account/two-factor/disable", disable)
        .post("/account/two-factor/recovery-codes", regenerate)
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    nav: Nav,
    csrf: String,
    username: String,
    must_enroll: bool,
    status: Status,
    enrollment: Option<Enrollment>,
    /// Shown once, right after they were made.
    recovery_codes: Vec<String>,
    error: Option<String>,
}

async fn page_with(
    state: &AppState,
    a: &Authed,
    status_code: StatusCode,
    recovery_codes: Vec<String>,
    error: Option<String>,
) -> Result<Response, AppError> {
    let status = totp::status(&state.pool, a.user.id).await?;
    let enrollment = match status {
        Status::Enrolling => totp::pending_enrollment(&state.pool, &a.user).await?,
        _ => None,
    };
    let page = AccountPage {
        nav: nav(state, &a.session).await?,
        csrf: a.session.csrf_token.clone(),
        username: a.user.username.clone(),
        must_enroll: totp::must_enroll(&state.pool, &a.user).await?,
        status,
        enrollment,
        recovery_codes,
        error,
    };
    Ok((status_code, render(&page)?).into_response())
}

async fn account_page(State(state): State<AppState>, a: Authed) -> Result<Response, AppError> {
    page_with(&state, &a, StatusCode::OK, Vec::new(), None).await
}

#[derive(Deserialize)]
struct Empty {}

async fn begin(
    State(state): State<AppState>,
    a: Authed,
    _: Protected<Empty>,
) -> Result<Response, AppError> {
    totp::begin_enrollment(&state.pool, &a.user).await?;
    Ok(Redirect::to("/account").into_response())
}

async fn cancel(
    State(state): State<AppState>,
    a: Authed,
    _: Protected<Empty>,
) -> Result<Response, AppError> {
    totp::cancel_enrollment(&state.pool, a.user.id).await?;
    Ok(Redirect::to("/account").into_response())
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    code: String,
}

/// A wrong code on the account page: the page again, saying so.
async fn wrong_code(state: &AppState, a: &Authed, e: TotpError) -> Result<Response, AppError> {
    match e {
        TotpError::WrongCode => {
            let message = "Wrong code: enter the 6-digit code your authenticator app shows now \
                           (or an unused recovery code); nothing was changed."
                .to_string();
            page_with(
                state,
                a,
                StatusCode::UNPROCESSABLE_ENTITY,
                Vec::new(),
                Some(message),
            )
            .await
        }
        other => Err(other.into()),
    }
}

async fn confirm(
    State(state): State<AppState>,
    a: Authed,
    Protected { form, .. }: Protected<CodeForm>,
) -> Result<Response, AppError> {
    match totp::confirm_enrollment(&state.pool, &a.user, &form.code).await {
        Ok(codes) => {
            tracing::info!(user = %a.user.username, "two-factor login turned on");
            page_with(&state, &a, StatusCode::OK, codes, None).await
        }
        Err(e) => wrong_code(&state, &a, e).await,
    }
}

async fn regenerate(
    State(state): State<AppState>,
    a: Authed,
    Protected { form, .. }: Protected<CodeForm>,
) -> Result<Response, AppError> {
    if let Err(e) = totp::verify(&state.pool, &a.user, &form.code).await {
        return wrong_code(&state, &a, e).await;
    }
    let codes = totp::regenerate_recovery_codes(&state.pool, a.user.id).await?;
    page_with(&state, &a, StatusCode::OK, codes, None).await
}

#[derive(Deserialize)]
struct DisableForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

/// Turning two-factor login off takes the password and a code (or a
/// recovery code): a session left open somewhere is not enough. The
/// password is checked first, so a wrong one spends no code.
async fn disable(
    State(state): State<AppState>,
    a: Authed,
    Protected { form, .. }: Protected<DisableForm>,
) -> Result<Response, AppError> {
    if !totp::is_enabled(&state.pool, a.user.id).await? {
        return Err(TotpError::NotEnabled.into());
    }
    let password = form.password;
    let hash = a.user.password_hash.clone();
    let ok =
        tokio::task::spawn_blocking(move || accounts::verify_password(&password, &hash)).await?;
    if !ok {
        let message = "Wrong password; two-factor login is still on.".to_string();
        return page_with(
            &state,
            &a,
            StatusCode::UNPROCESSABLE_ENTITY,
            Vec::new(),
            Some(message),
        )
        .await;
    }
    if let Err(e) = totp::verify(&state.pool, &a.user, &form.code).await {
        return wrong_code(&state, &a, e).await;
    }
    totp::disable(&state.pool, a.user.id).await?;
    tracing::info!(user = %a.user.username, "two-factor login turned off");
    flash(&state, &a.session, "Two-factor login is off.").await?;
    Ok(Redirect::to("/account").into_response())
}

/// What an administrator who must set up two-factor login first may still
/// reach: this page and its forms, logging out, the assets.
fn open_while_enrolling(path: &str) -> bool {
    path == "/account"
        || path.starts_with("/account/")
        || path == "/logout"
        || path == "/health"
        || path.starts_with("/assets/")
}

/// Middleware: while the panel requires two-factor login of administrators,
/// an administrator without it gets a session that only sets it up (pages
/// redirect to /account, which explains; other requests are refused).
/// Loads the session once for the handlers after it.
pub async fn enrollment_gate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    if open_while_enrolling(req.uri().path()) {
        return next.run(req).await;
    }
    let Some(token) = session_token(req.headers()) else {
        return next.run(req).await;
    };
    let session: Session =
        match auth::load_session(&state.pool, &state.config.secret_key, &token).await {
            Ok(Some(s)) => s,
            // Errors and strangers: the handlers' own extractors decide.
            _ => return next.run(req).await,
        };
    let restricted = match &session.user {
        Some(user) if user.is_admin => match totp::must_enroll(&state.pool, user).await {
            Ok(must) => must,
            Err(e) => return AppError::from(e).into_response(),
        },
        _ => false,
    };
    if !restricted {
        req.extensions_mut().insert(session);
        return next.run(req).await;
    }
    if req.method() == Method::GET || req.method() == Method::HEAD {
        Redirect::to("/account").into_response()
    } else {
        AppError::EnrollFirst.into_response()
    }
}
