//! Who is calling the API and what they send: a bearer token (never a
//! session cookie), the server named by the path, and JSON bodies whose
//! errors name the field at fault.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, Method};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::accounts::User;
use crate::auth::pat::{self, ApiToken, Scope};
use crate::servers::access::{self, Right, ServerAccess};
use crate::web::extract::{client_ip, session_token, MAX_BODY};
use crate::web::state::AppState;

/// A caller with a live token of an enabled user. A token of scope `read`
/// passes only GET (and HEAD) requests: anything else is 403.
pub struct ApiUser {
    pub user: User,
    pub token: ApiToken,
}

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(if session_token(&parts.headers).is_some() {
                ApiError::Unauthorized(
                    "the API does not accept session cookies: send a personal access token as Authorization: Bearer <token>",
                )
            } else {
                ApiError::Unauthorized(
                    "send a personal access token as Authorization: Bearer <token>",
                )
            });
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized(
                "malformed Authorization header: expected Bearer <token>",
            ))?;
        let client = match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            Some(peer) => {
                client_ip(peer.0, &parts.headers, &state.config.trusted_proxies).to_string()
            }
            None => String::new(),
        };
        let (token, user) = pat::authenticate(&state.pool, token, &client)
            .await?
            .ok_or(ApiError::Unauthorized("unknown, expired or revoked token"))?;
        // The panel's rule for administrators holds for their tokens too.
        if user.is_admin
            && crate::auth::totp::admins_must_use(&state.pool).await?
            && !crate::auth::totp::is_enabled(&state.pool, user.id).await?
        {
            return Err(ApiError::Forbidden(
                "this panel requires administrators to use two-factor login: set it up on your account page first".into(),
            ));
        }
        let reads = parts.method == Method::GET || parts.method == Method::HEAD;
        if !reads && token.scope == Scope::Read {
            return Err(ApiError::Forbidden(
                "this token has the read scope: it cannot act (create a token with the operate scope)"
                    .into(),
            ));
        }
        Ok(ApiUser { user, token })
    }
}

/// A caller with a role on the server named by the path's `{id}` (404
/// without one, as on the pages); what the role allows is the handler's
/// check, since an action's right depends on the action.
pub struct ApiServer {
    pub caller: ApiUser,
    pub access: ServerAccess,
}

impl ApiServer {
    /// 403 unless the caller's role on the server allows `right`.
    pub fn require(&self, right: Right) -> Result<(), ApiError> {
        if self.access.role.allows(right) {
            return Ok(());
        }
        Err(ApiError::Forbidden(format!(
            "your role on server {} ({}) does not allow this",
            self.access.server.name,
            self.access.role.as_str()
        )))
    }
}

impl FromRequestParts<AppState> for ApiServer {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = ApiUser::from_request_parts(parts, state).await?;
        let id = path_id(parts, state).await?;
        let access = access::access(&state.pool, &caller.user, id)
            .await?
            .ok_or(ApiError::NotFound)?;
        Ok(ApiServer { caller, access })
    }
}

/// The path's `{id}` as a number (anything else names nothing: 404).
pub async fn path_id(parts: &mut Parts, state: &AppState) -> Result<i64, ApiError> {
    let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map_err(|_| ApiError::NotFound)?;
    params
        .get("id")
        .and_then(|id| id.parse().ok())
        .ok_or(ApiError::NotFound)
}

/// A JSON body (`Content-Type: application/json`) as `T`. An error names
/// the field at fault; an empty body reads as `null`, so an optional body
/// may be left out.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, _state: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(|_| ApiError::TooLarge(MAX_BODY))?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"null"
        } else {
            let ctype = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let essence = ctype.split(';').next().unwrap_or("").trim();
            if !essence.eq_ignore_ascii_case("application/json") {
                return Err(ApiError::bad(
                    Some("content-type"),
                    format!("unsupported content type {ctype:?}: send application/json"),
                ));
            }
            &bytes
        };
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let inner = e.inner();
            if inner.is_syntax() || inner.is_eof() {
                return ApiError::bad(None, format!("malformed JSON: {inner}"));
            }
            let path = e.path().to_string();
            let message = inner.to_string();
            let field = if path == "." {
                // "missing field `x`" / "unknown field `x`" name it in words.
                message.split('`').nth(1).map(str::to_string)
            } else {
                Some(path)
            };
            ApiError::BadRequest {
                field,
                message: format!("invalid request body: {message}"),
            }
        })?;
        Ok(ApiJson(value))
    }
}
