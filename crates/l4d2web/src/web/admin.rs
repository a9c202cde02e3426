//! User administration (administrators only).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::audit::Trail;
use super::error::AppError;
use super::extract::{Admin, Authed, Protected};
use super::page::{flash, nav, parse_id, render, Nav};
use super::routes::Routes;
use super::state::AppState;
use crate::accounts::{self, AccountError, User};
use crate::audit::Kind;
use crate::auth::totp;

pub fn routes() -> Routes {
    Routes::default()
        .get("/admin/users", users_page)
        .post("/admin/users", user_create)
        .post("/admin/users/{id}/{action}", user_action)
        .post("/admin/settings/two-factor", two_factor_setting)
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    nav: Nav,
    csrf: String,
    me: i64,
    users: Vec<User>,
    /// Users with two-factor login on.
    two_factor: Vec<i64>,
    admins_must_use_two_factor: bool,
    form_username: String,
    form_admin: bool,
    username_error: Option<String>,
    password_error: Option<String>,
}

impl UsersPage {
    fn has_two_factor(&self, id: &i64) -> bool {
        self.two_factor.contains(id)
    }
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
        two_factor: totp::enabled_users(&state.pool).await?,
        admins_must_use_two_factor: totp::admins_must_use(&state.pool).await?,
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

async fn users_page(State(state): State<AppState>, Admin(a): Admin) -> Result<Response, AppError> {
    users_page_with(&state, &a, None).await
}

#[derive(Deserialize)]
struct CreateUserForm {
    username: String,
    password: String,
    is_admin: Option<String>,
}

async fn user_create(
    State(state): State<AppState>,
    Admin(a): Admin,
    trail: Trail,
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
            let role = if u.is_admin { "administrator" } else { "user" };
            trail
                .note(Kind::UserCreated)
                .user(&u)
                .detail(role)
                .save(&state)
                .await;
            flash(&state, &a.session, &format!("User {} created.", u.username)).await?;
            Ok(Redirect::to("/admin/users").into_response())
        }
        Err(e @ (AccountError::Db(_) | AccountError::Hash(_) | AccountError::Random(_))) => {
            Err(e.into())
        }
        Err(e) => users_page_with(&state, &a, Some((&form, e))).await,
    }
}

#[derive(Deserialize)]
struct UserActionForm {
    password: Option<String>,
}

async fn user_action(
    State(state): State<AppState>,
    Admin(a): Admin,
    Path((id, action)): Path<(String, String)>,
    trail: Trail,
    Protected { form, .. }: Protected<UserActionForm>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let target = accounts::find_by_id(&state.pool, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let is_self = target.id == a.user.id;
    let note = |kind| trail.note(kind).user(&target);
    let message = match action.as_str() {
        "disable" | "delete" if is_self => {
            return Err(AppError::BadRequest(format!(
                "you cannot {action} your own account"
            )))
        }
        "disable" => {
            accounts::set_disabled(&state.pool, id, true).await?;
            note(Kind::UserDisabled).save(&state).await;
            format!("User {} disabled.", target.username)
        }
        "enable" => {
            accounts::set_disabled(&state.pool, id, false).await?;
            note(Kind::UserEnabled).save(&state).await;
            format!("User {} enabled.", target.username)
        }
        "delete" => {
            accounts::delete(&state.pool, id).await?;
            note(Kind::UserDeleted).save(&state).await;
            format!("User {} deleted.", target.username)
        }
        "unlock" => {
            state.limiter.unlock(&target.username);
            note(Kind::UserUnlocked).save(&state).await;
            format!(
                "Login limits of {} cleared: failed attempts are forgotten.",
                target.username
            )
        }
        "reset-two-factor" => {
            // For a lost authenticator: they log in with the password alone
            // (and set it up again if the panel requires it).
            totp::disable(&state.pool, id).await?;
            tracing::info!(user = %target.username, "two-factor login reset by an administrator");
            format!("Two-factor login of {} is off.", target.username)
        }
        "password" => {
            let pw = form.password.unwrap_or_default();
            match accounts::set_password(&state.pool, id, &pw).await {
                Ok(()) => {}
                Err(
                    e @ (AccountError::Db(_) | AccountError::Hash(_) | AccountError::Random(_)),
                ) => return Err(e.into()),
                Err(e) => return Err(AppError::BadRequest(format!("password not changed: {e}"))),
            }
            note(Kind::UserPasswordSet)
                .detail("their sessions were ended")
                .save(&state)
                .await;
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
    flash(&state, &a.session, &message).await?;
    Ok(Redirect::to("/admin/users").into_response())
}

#[derive(Deserialize)]
struct TwoFactorSettingForm {
    /// The checkbox: present when checked.
    required: Option<String>,
}

/// "Administrators must use two-factor login": those without it get a
/// session that only sets it up (docs/product.md, Accounts).
async fn two_factor_setting(
    State(state): State<AppState>,
    Admin(a): Admin,
    Protected { form, .. }: Protected<TwoFactorSettingForm>,
) -> Result<Response, AppError> {
    let on = match form.required.as_deref() {
        None => false,
        Some("on") => true,
        Some(other) => {
            return Err(AppError::BadRequest(format!(
                "required must be \"on\" or absent, not {other:?}; nothing was changed"
            )))
        }
    };
    totp::set_admins_must_use(&state.pool, on).await?;
    let message = if on {
        "Administrators must now use two-factor login; those without it can only set it up until they do."
    } else {
        "Administrators no longer must use two-factor login."
    };
    flash(&state, &a.session, message).await?;
    Ok(Redirect::to("/admin/users").into_response())
}
