//! Users and argon2id password hashes.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sqlx::SqlitePool;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("username {0:?} is invalid: use 1-32 letters, digits, '.', '_' or '-'")]
    BadUsername(String),
    #[error("password is too short: at least {MIN_PASSWORD} characters")]
    ShortPassword,
    #[error("password is too long: at most {MAX_PASSWORD} characters")]
    LongPassword,
    #[error("user {0:?} already exists")]
    Exists(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("random source failed: {0}")]
    Random(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

pub const MIN_PASSWORD: usize = 8;
/// Bounds argon2's work on attacker-supplied input.
pub const MAX_PASSWORD: usize = 256;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub disabled: bool,
    pub created_at: String,
}

pub fn validate_username(name: &str) -> Result<(), AccountError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AccountError::BadUsername(name.to_string()))
    }
}

pub fn validate_password(password: &str) -> Result<(), AccountError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        Err(AccountError::ShortPassword)
    } else if n > MAX_PASSWORD {
        Err(AccountError::LongPassword)
    } else {
        Ok(())
    }
}

/// Fills `buf` from the OS random source.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), AccountError> {
    getrandom::fill(buf).map_err(|e| AccountError::Random(e.to_string()))
}

/// A random token as lowercase hex (`n` random bytes).
pub fn random_hex(n: usize) -> Result<String, AccountError> {
    let mut buf = vec![0u8; n];
    random_bytes(&mut buf)?;
    Ok(hex::encode(buf))
}

/// A readable generated password (for the demo admin).
pub fn generate_password() -> Result<String, AccountError> {
    random_hex(12)
}

pub fn hash_password(password: &str) -> Result<String, AccountError> {
    let mut salt = [0u8; 16];
    random_bytes(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AccountError::Hash(e.to_string()))?;
    // Argon2::default() is argon2id with the RFC 9106 recommended parameters.
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    if password.chars().count() > MAX_PASSWORD {
        return false;
    }
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A valid hash of a random password: verifying against it costs the same as
/// a real check, so unknown usernames are not revealed by timing.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        random_hex(16)
            .and_then(|p| hash_password(&p))
            .unwrap_or_default()
    })
}

pub async fn create_user(
    pool: &SqlitePool,
    username: &str,
    password: &str,
    is_admin: bool,
) -> Result<User, AccountError> {
    validate_username(username)?;
    validate_password(password)?;
    let hash = hash_password(password)?;
    let result = sqlx::query_as::<_, User>(
        "INSERT INTO users (username, password_hash, is_admin) VALUES (?, ?, ?) RETURNING *",
    )
    .bind(username)
    .bind(hash)
    .bind(is_admin)
    .fetch_one(pool)
    .await;
    match result {
        Ok(user) => Ok(user),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(AccountError::Exists(username.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn find_by_name(pool: &SqlitePool, username: &str) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM users WHERE username = ?")
        .bind(username)
        .fetch_optional(pool)
        .await
}

pub async fn find_by_id(pool: &SqlitePool, id: i64) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM users WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn list(pool: &SqlitePool) -> Result<Vec<User>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM users ORDER BY username")
        .fetch_all(pool)
        .await
}

pub async fn count(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(pool)
        .await
}

pub async fn set_password(pool: &SqlitePool, id: i64, password: &str) -> Result<(), AccountError> {
    validate_password(password)?;
    let hash = hash_password(password)?;
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
        .bind(hash)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    // A reset password must end every existing login of that user.
    sqlx::query("DELETE FROM sessions WHERE user_id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn set_disabled(pool: &SqlitePool, id: i64, disabled: bool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE users SET disabled = ? WHERE id = ?")
        .bind(disabled)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if disabled {
        sqlx::query("DELETE FROM sessions WHERE user_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

#[derive(Debug, thiserror::Error)]
pub enum DeleteUserError {
    #[error("cannot delete user {username}: they still own the server(s) {servers}; those servers must be deleted first")]
    OwnsServers { username: String, servers: String },
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Deletes a user with their blueprints and private overlays. Refused while
/// they own servers (servers.owner_id is ON DELETE RESTRICT: a running game
/// server must be deleted through its own job, not vanish with a row).
pub async fn delete(pool: &SqlitePool, id: i64) -> Result<(), DeleteUserError> {
    let mut tx = pool.begin().await?;
    let servers: Vec<String> =
        sqlx::query_scalar("SELECT name FROM servers WHERE owner_id = ? ORDER BY name")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
    if !servers.is_empty() {
        let username: String = sqlx::query_scalar("SELECT username FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or_else(|| format!("user {id}"));
        return Err(DeleteUserError::OwnsServers {
            username,
            servers: servers.join(", "),
        });
    }
    // Blueprints first: their stacks reference the user's overlays, which
    // RESTRICT deletion while referenced.
    sqlx::query("DELETE FROM blueprints WHERE owner_id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM users WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn username_rules() {
        for ok in ["admin", "a", "Bob.smith_2-x"] {
            validate_username(ok).unwrap();
        }
        for bad in [
            "",
            "has space",
            "x".repeat(33).as_str(),
            "semi;colon",
            "ünï",
        ] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            validate_password("short"),
            Err(AccountError::ShortPassword)
        ));
        assert!(matches!(
            validate_password(&"x".repeat(300)),
            Err(AccountError::LongPassword)
        ));
    }
}
