//! Personal access tokens for the HTTP API: `l4m_` and 32 random bytes in
//! base64url (no padding), shown once when created. Only the token's
//! SHA-256 is stored: a token has 256 random bits, so a fast hash cannot be
//! searched, and a lookup by hash compares nothing secret byte by byte.
//!
//! A token has a name, a scope (`read`: GET requests only; `operate`: also
//! actions) and an expiry of 1 to 365 days; it can be revoked, and it stops
//! working when its user is disabled or deleted.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;

use crate::accounts::{self, AccountError, User};

/// What every token starts with (so it can be recognised, e.g. by secret
/// scanners).
pub const TOKEN_PREFIX: &str = "l4m_";
/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;
/// Longest lifetime of a token, in days.
pub const MAX_EXPIRY_DAYS: i64 = 365;
/// Longest token name.
pub const MAX_NAME: usize = 64;
/// Most tokens one user may hold (revoked and expired ones included,
/// until deleted with their user).
pub const MAX_TOKENS: i64 = 50;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
pub enum Scope {
    /// GET requests only.
    Read,
    /// GET requests and actions.
    Operate,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "operate" => Some(Scope::Operate),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Operate => "operate",
        }
    }
}

/// A token as its owner sees it (never the token itself).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub scope: Scope,
    pub created_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
    pub last_used_ip: Option<String>,
    /// Not revoked and not expired.
    pub active: bool,
}

const COLUMNS: &str =
    "id, user_id, name, scope, created_at, expires_at, revoked_at, last_used_at, last_used_ip,
    (revoked_at IS NULL AND expires_at > strftime('%Y-%m-%dT%H:%M:%SZ', 'now')) AS active";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("give the token a name of 1 to {MAX_NAME} characters")]
    BadName,
    #[error("unknown scope {0:?}: choose read or operate")]
    BadScope(String),
    #[error("the expiry must be a whole number of days from 1 to {MAX_EXPIRY_DAYS}")]
    BadExpiry,
    #[error("you have {MAX_TOKENS} tokens already; revoke and delete some first")]
    TooMany,
    #[error("token not found")]
    NotFound,
    #[error(transparent)]
    Random(#[from] AccountError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

impl TokenError {
    /// The form field the error is about, if it is about one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            TokenError::BadName => Some("name"),
            TokenError::BadScope(_) => Some("scope"),
            TokenError::BadExpiry => Some("days"),
            _ => None,
        }
    }
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `token` has the shape of one of ours (prefix, 43 base64url
/// characters): anything else is refused without a database lookup.
fn well_formed(token: &str) -> bool {
    token.strip_prefix(TOKEN_PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Creates a token for `user_id`; returns the token (to be shown once) and
/// its row. `days` is the lifetime in days as entered.
pub async fn create(
    pool: &SqlitePool,
    user_id: i64,
    name: &str,
    scope: &str,
    days: &str,
) -> Result<(String, ApiToken), TokenError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(TokenError::BadName);
    }
    let scope = Scope::parse(scope.trim()).ok_or_else(|| TokenError::BadScope(scope.into()))?;
    let days: i64 = days.trim().parse().map_err(|_| TokenError::BadExpiry)?;
    if !(1..=MAX_EXPIRY_DAYS).contains(&days) {
        return Err(TokenError::BadExpiry);
    }
    let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens WHERE user_id = ?")
        .bind(user_id)
        .fetch_one(pool)
        .await?;
    if held >= MAX_TOKENS {
        return Err(TokenError::TooMany);
    }
    let mut bytes = [0u8; TOKEN_BYTES];
    accounts::random_bytes(&mut bytes)?;
    let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let row: ApiToken = sqlx::query_as(&format!(
        "INSERT INTO api_tokens (user_id, name, scope, token_hash, expires_at)
         VALUES (?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%SZ', 'now', ?))
         RETURNING {COLUMNS}"
    ))
    .bind(user_id)
    .bind(name)
    .bind(scope)
    .bind(hash(&token))
    .bind(format!("+{days} days"))
    .fetch_one(pool)
    .await?;
    Ok((token, row))
}

/// The user's tokens, newest first.
pub async fn list(pool: &SqlitePool, user_id: i64) -> Result<Vec<ApiToken>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM api_tokens WHERE user_id = ? ORDER BY id DESC"
    ))
    .bind(user_id)
    .fetch_all(pool)
    .await
}

/// Revokes token `id` of `user_id` (again: no change). Returns its name.
pub async fn revoke(pool: &SqlitePool, user_id: i64, id: i64) -> Result<String, TokenError> {
    sqlx::query_scalar(
        "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
         WHERE id = ? AND user_id = ? RETURNING name",
    )
    .bind(id)
    .bind(user_id)
    .fetch_optional(pool)
    .await?
    .ok_or(TokenError::NotFound)
}

/// Deletes a revoked or expired token `id` of `user_id` from the list.
pub async fn delete(pool: &SqlitePool, user_id: i64, id: i64) -> Result<String, TokenError> {
    sqlx::query_scalar(
        "DELETE FROM api_tokens WHERE id = ? AND user_id = ?
           AND (revoked_at IS NOT NULL OR expires_at <= strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
         RETURNING name",
    )
    .bind(id)
    .bind(user_id)
    .fetch_optional(pool)
    .await?
    .ok_or(TokenError::NotFound)
}

/// The token's row and its user, if `token` is a live token of an enabled
/// user; records the use (time and client address).
pub async fn authenticate(
    pool: &SqlitePool,
    token: &str,
    client: &str,
) -> Result<Option<(ApiToken, User)>, sqlx::Error> {
    if !well_formed(token) {
        return Ok(None);
    }
    let row: Option<ApiToken> = sqlx::query_as(&format!(
        "UPDATE api_tokens SET last_used_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), last_used_ip = ?
         WHERE token_hash = ? AND revoked_at IS NULL
           AND expires_at > strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
           AND user_id IN (SELECT id FROM users WHERE disabled = 0)
         RETURNING {COLUMNS}"
    ))
    .bind(client)
    .bind(hash(token))
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    match accounts::find_by_id(pool, row.user_id).await? {
        Some(user) if !user.disabled => Ok(Some((row, user))),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shape() {
        let t = format!(
            "{TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode([7u8; TOKEN_BYTES])
        );
        assert!(well_formed(&t), "{t}");
        assert!(!well_formed(&t[1..]));
        assert!(!well_formed(&format!("{t}x")));
        assert!(!well_formed(&t.replace('H', "+")));
        assert!(!well_formed(""));
        assert_eq!(hash(&t).len(), 64);
        assert_ne!(hash(&t), hash(&format!("{t}x")));
    }
}
