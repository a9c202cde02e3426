//! The Tokens page: a user's personal access tokens for the HTTP API
//! (create, shown once; revoke; delete once revoked or expired).
//!
//! Access rule: tokens are private to their owner; everyone else
//! (administrators included) gets 404.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::audit::Trail;
use super::error::AppError;
use super::extract::{Authed, Protected};
use super::page::{flash, nav, parse_id, render, Nav};
use super::routes::Routes;
use super::state::AppState;
use crate::audit::Kind;
use crate::auth::pat::{self, ApiToken, TokenError, MAX_EXPIRY_DAYS};
use crate::auth::Session;

pub fn routes() -> Routes {
    Routes::default()
        .get("/tokens", page)
        .post("/tokens", create)
        .post("/tokens/{id}/revoke", revoke)
        .post("/tokens/{id}/delete", delete)
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    nav: Nav,
    csrf: String,
    tokens: Vec<ApiToken>,
    form: TokenForm,
    error: Option<String>,
    /// The token just created: shown this once.
    created: Option<(String, ApiToken)>,
    max_days: i64,
}

#[derive(Deserialize, Clone)]
struct TokenForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    days: String,
}

impl Default for TokenForm {
    fn default() -> Self {
        TokenForm {
            name: String::new(),
            scope: "read".into(),
            days: "90".into(),
        }
    }
}

async fn page_with(
    state: &AppState,
    session: &Session,
    user_id: i64,
    form: TokenForm,
    error: Option<String>,
    created: Option<(String, ApiToken)>,
) -> Result<Response, AppError> {
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = TokensPage {
        nav: nav(state, session).await?,
        csrf: session.csrf_token.clone(),
        tokens: pat::list(&state.pool, user_id).await?,
        form,
        error,
        created,
        max_days: MAX_EXPIRY_DAYS,
    };
    Ok((status, render(&page)?).into_response())
}

async fn page(State(state): State<AppState>, a: Authed) -> Result<Response, AppError> {
    page_with(
        &state,
        &a.session,
        a.user.id,
        TokenForm::default(),
        None,
        None,
    )
    .await
}

/// Creates a token and shows it in this answer only (never in a flash
/// message or a later page).
async fn create(
    State(state): State<AppState>,
    a: Authed,
    trail: Trail,
    Protected { form, .. }: Protected<TokenForm>,
) -> Result<Response, AppError> {
    match pat::create(&state.pool, a.user.id, &form.name, &form.scope, &form.days).await {
        Ok(created) => {
            tracing::info!(user = %a.user.username, token = created.1.id, scope = created.1.scope.as_str(), "API token created");
            // Never the token itself: its id, name, scope and expiry.
            trail
                .note(Kind::TokenCreated)
                .target("token", created.1.id, &created.1.name)
                .detail(format!(
                    "scope {}, expires {}",
                    created.1.scope.as_str(),
                    created.1.expires_at
                ))
                .save(&state)
                .await;
            page_with(
                &state,
                &a.session,
                a.user.id,
                TokenForm::default(),
                None,
                Some(created),
            )
            .await
        }
        Err(e @ (TokenError::Db(_) | TokenError::Random(_))) => Err(AppError::internal(e)),
        Err(e) => {
            page_with(
                &state,
                &a.session,
                a.user.id,
                form,
                Some(e.to_string()),
                None,
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct Empty {}

fn token_error(e: TokenError) -> AppError {
    match e {
        TokenError::NotFound => AppError::NotFound,
        TokenError::Db(e) => e.into(),
        other => AppError::bad(other),
    }
}

async fn revoke(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    trail: Trail,
    Protected { .. }: Protected<Empty>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let name = pat::revoke(&state.pool, a.user.id, id)
        .await
        .map_err(token_error)?;
    trail
        .note(Kind::TokenRevoked)
        .target("token", id, &name)
        .save(&state)
        .await;
    flash(
        &state,
        &a.session,
        &format!("Token {name} is revoked; it no longer works."),
    )
    .await?;
    Ok(Redirect::to("/tokens").into_response())
}

async fn delete(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    trail: Trail,
    Protected { .. }: Protected<Empty>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let name = pat::delete(&state.pool, a.user.id, id)
        .await
        .map_err(|e| match e {
            TokenError::NotFound => AppError::BadRequest(
                "only a revoked or expired token of yours can be deleted; revoke it first".into(),
            ),
            other => token_error(other),
        })?;
    trail
        .note(Kind::TokenDeleted)
        .target("token", id, &name)
        .save(&state)
        .await;
    flash(&state, &a.session, &format!("Token {name} is deleted.")).await?;
    Ok(Redirect::to("/tokens").into_response())
}
