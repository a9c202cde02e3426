//! Server-side sessions: rows in our own `sessions` table rather than
//! tower-sessions, because the CSRF token and the flash message live in the
//! same row, the row id is keyed by HMAC(SECRET_KEY) so a leaked database
//! holds no usable cookie, and all of a user's sessions end on
//! disable/password reset in one SQL statement. CSRF is the
//! synchronizer-token pattern on that row (a per-session random token
//! compared in constant time).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::SqlitePool;

use crate::accounts::{self, AccountError, User};
use crate::db::now_unix;

pub const SESSION_COOKIE: &str = "left4me_session";
/// Lifetime of a logged-in session.
pub const SESSION_TTL_SECS: i64 = 12 * 3600;
/// Lifetime of a session without a user (the web app no longer creates
/// them; kept for callers of [`create_session`] that pass no user).
pub const ANON_TTL_SECS: i64 = 3600;

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub user: Option<User>,
    pub csrf_token: String,
    pub flash: Option<String>,
}

fn session_id(secret: &[u8], token: &str) -> String {
    // HMAC accepts keys of any length, so new_from_slice cannot fail here;
    // the fallback keeps this total without a panic path.
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(token.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// Loads a live session by its cookie token. Sessions of disabled or deleted
/// users are gone (deleted with the user / on disable).
pub async fn load_session(
    pool: &SqlitePool,
    secret: &[u8],
    token: &str,
) -> Result<Option<Session>, sqlx::Error> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let id = session_id(secret, token);
    let row: Option<(String, Option<i64>, String, Option<String>)> = sqlx::query_as(
        "SELECT id, user_id, csrf_token, flash FROM sessions WHERE id = ? AND expires_at > ?",
    )
    .bind(&id)
    .bind(now_unix())
    .fetch_optional(pool)
    .await?;
    let Some((id, user_id, csrf_token, flash)) = row else {
        return Ok(None);
    };
    let user = match user_id {
        Some(uid) => match accounts::find_by_id(pool, uid).await? {
            Some(u) if !u.disabled => Some(u),
            _ => return Ok(None),
        },
        None => None,
    };
    Ok(Some(Session {
        id,
        user,
        csrf_token,
        flash,
    }))
}

/// Creates a session and returns (cookie token, session).
pub async fn create_session(
    pool: &SqlitePool,
    secret: &[u8],
    user: Option<User>,
) -> Result<(String, Session), AccountError> {
    let token = accounts::random_hex(32)?;
    let csrf_token = accounts::random_hex(32)?;
    let id = session_id(secret, &token);
    let now = now_unix();
    let ttl = if user.is_some() {
        SESSION_TTL_SECS
    } else {
        ANON_TTL_SECS
    };
    sqlx::query(
        "INSERT INTO sessions (id, user_id, csrf_token, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(user.as_ref().map(|u| u.id))
    .bind(&csrf_token)
    .bind(now)
    .bind(now + ttl)
    .execute(pool)
    .await?;
    Ok((
        token,
        Session {
            id,
            user,
            csrf_token,
            flash: None,
        },
    ))
}

pub async fn delete_session(pool: &SqlitePool, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE id = ?")
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ())
}

pub async fn set_flash(pool: &SqlitePool, id: &str, message: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET flash = ? WHERE id = ?")
        .bind(message)
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ())
}

pub async fn clear_flash(pool: &SqlitePool, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET flash = NULL WHERE id = ? AND flash IS NOT NULL")
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ())
}

pub async fn purge_expired(pool: &SqlitePool) -> Result<u64, sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
        .bind(now_unix())
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
}
