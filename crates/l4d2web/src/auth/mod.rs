//! Who is asking: server-side sessions, CSRF and login tokens, login
//! rate limits and the second factor.
//!
//! - [`session`]: session rows (user, CSRF token, flash message);
//! - [`token`]: token comparison and the login form's stateless token;
//! - [`limiter`]: login attempt limits per client and per username;
//! - [`totp`]: two-factor login (TOTP codes, recovery codes, the setting
//!   that requires it of administrators);
//! - [`pat`]: personal access tokens for the HTTP API.

mod limiter;
pub mod pat;
mod session;
mod token;
pub mod totp;

pub use limiter::{LoginLimiter, RetryAfter, LOGIN_SLOWDOWN_STEP, MAX_LOGIN_SLOWDOWN};
pub use session::{
    clear_flash, create_session, delete_session, load_session, purge_expired, set_flash, Session,
    ANON_TTL_SECS, SESSION_COOKIE, SESSION_TTL_SECS,
};
pub use token::{
    issue_login_token, issue_second_step_token, login_token_valid, second_step_user, tokens_match,
    LoginTokenError, LOGIN_TOKEN_TTL_SECS, SECOND_STEP_TTL_SECS,
};
