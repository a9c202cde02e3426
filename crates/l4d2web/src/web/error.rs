//! The one error type of the HTTP layer. Domain errors become it here, at
//! the edge, through `From`: what the user may fix is a 400 with the
//! domain's own message, what they may not see is a 404, and everything
//! else is a 500 whose details go to the log only.

use crate::servers::players::PlayersError;
use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::nav::Nav;
use crate::accounts::{AccountError, DeleteUserError};
use crate::alerts::AlertError;
use crate::audit::AuditError;
use crate::auth::totp::TotpError;
use crate::auth::LoginTokenError;
use crate::game::GameError;
use crate::l4d2ctl::HostError;
use crate::overlays::files::FileError;
use crate::overlays::OverlayError;
use crate::schedules::ScheduleError;
use crate::servers::blueprints::BlueprintError;
use crate::servers::console::ConsoleError;
use crate::servers::rcon::CommandError;
use crate::servers::SwitchError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("log in first")]
    LoginRequired,
    #[error("administrators only")]
    Forbidden,
    /// A role on the server too low for the request.
    #[error("{0}")]
    NoRight(String),
    #[error("this panel requires administrators to use two-factor login: set it up on your account page (/account) first")]
    EnrollFirst,
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

impl AppError {
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        AppError::Internal(e.into())
    }

    /// A 400 with `e`'s own message.
    pub fn bad(e: impl std::fmt::Display) -> Self {
        AppError::BadRequest(e.to_string())
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        AppError::internal(e)
    }
}

impl From<askama::Error> for AppError {
    fn from(e: askama::Error) -> Self {
        AppError::Internal(anyhow::anyhow!("template: {e}"))
    }
}

impl From<HostError> for AppError {
    fn from(e: HostError) -> Self {
        AppError::internal(e)
    }
}

impl From<LoginTokenError> for AppError {
    fn from(e: LoginTokenError) -> Self {
        AppError::internal(e)
    }
}

impl From<ConsoleError> for AppError {
    fn from(e: ConsoleError) -> Self {
        AppError::internal(e)
    }
}

impl From<CommandError> for AppError {
    fn from(e: CommandError) -> Self {
        AppError::bad(e)
    }
}

impl From<AccountError> for AppError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Db(e) => e.into(),
            e @ (AccountError::Hash(_) | AccountError::Random(_)) => AppError::internal(e),
            other => AppError::bad(other),
        }
    }
}

impl From<DeleteUserError> for AppError {
    fn from(e: DeleteUserError) -> Self {
        match e {
            DeleteUserError::Db(e) => e.into(),
            other => AppError::bad(other),
        }
    }
}

impl From<BlueprintError> for AppError {
    fn from(e: BlueprintError) -> Self {
        match e {
            BlueprintError::NotFound => AppError::NotFound,
            BlueprintError::Db(e) => e.into(),
            other => AppError::bad(other),
        }
    }
}

impl From<PlayersError> for AppError {
    fn from(e: PlayersError) -> Self {
        match e {
            PlayersError::Db(e) => e.into(),
            other => AppError::BadRequest(format!("{other}; nothing was changed")),
        }
    }
}

impl From<ScheduleError> for AppError {
    fn from(e: ScheduleError) -> Self {
        match e {
            ScheduleError::NotFound => AppError::NotFound,
            ScheduleError::Db(e) => e.into(),
            other => AppError::BadRequest(format!("{other}; nothing was changed")),
        }
    }
}

impl From<SwitchError> for AppError {
    fn from(e: SwitchError) -> Self {
        match e {
            SwitchError::Db(e) => e.into(),
            other => AppError::bad(other),
        }
    }
}

impl From<OverlayError> for AppError {
    fn from(e: OverlayError) -> Self {
        match e {
            OverlayError::NotFound => AppError::NotFound,
            OverlayError::Db(e) => e.into(),
            e @ OverlayError::Io { .. } => AppError::internal(e),
            other => AppError::bad(other),
        }
    }
}

impl From<FileError> for AppError {
    fn from(e: FileError) -> Self {
        match e {
            FileError::NotFound(_) => AppError::NotFound,
            e @ FileError::Io(..) => AppError::internal(e),
            other => AppError::bad(other),
        }
    }
}

impl From<AlertError> for AppError {
    fn from(e: AlertError) -> Self {
        match e {
            AlertError::NotFound => AppError::NotFound,
            AlertError::Db(e) => e.into(),
            other => AppError::bad(other),
        }
    }
}

impl From<AuditError> for AppError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Db(e) => e.into(),
            other => AppError::bad(other),
        }
    }
}

impl From<TotpError> for AppError {
    fn from(e: TotpError) -> Self {
        match e {
            TotpError::Db(e) => e.into(),
            e @ (TotpError::Random(_) | TotpError::Setup(_)) => AppError::internal(e),
            other => AppError::BadRequest(format!("{other}; nothing was changed")),
        }
    }
}

impl From<GameError> for AppError {
    fn from(e: GameError) -> Self {
        AppError::BadRequest(format!("{e}; nothing was changed"))
    }
}

impl From<tokio::task::JoinError> for AppError {
    fn from(e: tokio::task::JoinError) -> Self {
        AppError::internal(e)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    nav: Nav,
    status: u16,
    message: &'a str,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self {
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::LoginRequired => StatusCode::UNAUTHORIZED,
            AppError::Forbidden | AppError::NoRight(_) | AppError::Csrf | AppError::EnrollFirst => {
                StatusCode::FORBIDDEN
            }
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Internal(e) => {
                // Details go to the log only; the page says nothing internal.
                tracing::error!(error = format!("{e:#}"), "request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let message = self.to_string();
        let mut res = error_page(status, &message, Nav::anonymous());
        // The page is re-rendered with the visitor's navigation by
        // `error_nav::with_navigation`, which knows the request.
        res.extensions_mut()
            .insert(ErrorPageInfo { status, message });
        res
    }
}

/// What an error page said, kept on its response.
#[derive(Clone)]
pub(super) struct ErrorPageInfo {
    pub(super) status: StatusCode,
    pub(super) message: String,
}

pub(super) fn error_page(status: StatusCode, message: &str, nav: Nav) -> Response {
    let page = ErrorPage {
        nav,
        status: status.as_u16(),
        message,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, message.to_string()).into_response(),
    }
}
