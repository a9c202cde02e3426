//! The API's errors: always JSON, `{"error": "...", "field": "..."}` with
//! the name of the input field at fault where there is one. Domain errors
//! become it here, as the pages' `AppError` does for them.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::pat::TokenError;
use crate::l4d2ctl::HostError;
use crate::overlays::OverlayError;
use crate::servers::blueprints::BlueprintError;
use crate::web::error::AppError;

/// Every error answer of the API.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in words.
    pub error: String,
    /// The input field at fault, for a bad request about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No, a malformed, an unknown, an expired or a revoked token (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The token's scope or the user's role does not allow it (403).
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("{message}")]
    BadRequest {
        message: String,
        field: Option<String>,
    },
    #[error("the request body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad(field: Option<&str>, message: impl std::fmt::Display) -> Self {
        ApiError::BadRequest {
            message: message.to_string(),
            field: field.map(str::to_string),
        }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(e.into())
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A JSON error answer with `status`.
pub fn error_response(status: StatusCode, error: String, field: Option<String>) -> Response {
    let mut res = (status, Json(ErrorBody { error, field })).into_response();
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"left4me\""),
        );
    }
    res
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            // Details go to the log only.
            tracing::error!(error = format!("{e:#}"), "API request failed");
        }
        let field = match &self {
            ApiError::BadRequest { field, .. } => field.clone(),
            _ => None,
        };
        error_response(self.status(), self.to_string(), field)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::internal(e)
    }
}

impl From<HostError> for ApiError {
    fn from(e: HostError) -> Self {
        ApiError::internal(e)
    }
}

/// Errors of the handlers the API shares with the pages.
impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::NotFound => ApiError::NotFound,
            AppError::LoginRequired => ApiError::Unauthorized("a token is required"),
            AppError::Forbidden => ApiError::Forbidden("administrators only".into()),
            AppError::NoRight(m) => ApiError::Forbidden(m),
            AppError::BadRequest(m) => ApiError::bad(None, m),
            AppError::Csrf | AppError::EnrollFirst => ApiError::Forbidden(e.to_string()),
            AppError::TooLarge { limit, .. } => ApiError::TooLarge(limit),
            AppError::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl From<crate::auth::totp::TotpError> for ApiError {
    fn from(e: crate::auth::totp::TotpError) -> Self {
        ApiError::from(AppError::from(e))
    }
}

impl From<OverlayError> for ApiError {
    fn from(e: OverlayError) -> Self {
        match e {
            OverlayError::NotFound => ApiError::NotFound,
            OverlayError::Db(e) => e.into(),
            e @ OverlayError::Io { .. } => ApiError::internal(e),
            other => ApiError::bad(None, other),
        }
    }
}

impl From<BlueprintError> for ApiError {
    fn from(e: BlueprintError) -> Self {
        match e {
            BlueprintError::NotFound => ApiError::NotFound,
            BlueprintError::Db(e) => e.into(),
            other => ApiError::bad(None, other),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::NotFound => ApiError::NotFound,
            TokenError::Db(e) => e.into(),
            e @ TokenError::Random(_) => ApiError::internal(e),
            other => ApiError::bad(other.field(), other),
        }
    }
}
