//! Server-side sessions, CSRF tokens, login rate limits and client IPs.
//!
//! Sessions are rows in our own `sessions` table rather than tower-sessions:
//! we need the CSRF token and flash message in the same row, the row id keyed
//! by HMAC(SECRET_KEY) so a leaked database holds no usable cookie, and
//! deletion of all of a user's sessions on disable/password reset, which is
//! one SQL statement here. CSRF is the synchronizer-token pattern on that row
//! (a per-session random token compared in constant time), which needs no
//! extra crate.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hmac::{Hmac, Mac};
use ipnet::IpNet;
use sha2::Sha256;
use sqlx::SqlitePool;

use crate::accounts::{self, AccountError, User};
use crate::db::now_unix;

pub const SESSION_COOKIE: &str = "left4me_session";
/// Lifetime of a logged-in session.
pub const SESSION_TTL_SECS: i64 = 12 * 3600;
/// Lifetime of an anonymous (login form) session.
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

/// Constant-time comparison, so the token cannot be guessed byte by byte.
pub fn tokens_match(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Login attempt limits, keyed per client IP and per username (SPEC §7).
pub struct LoginLimiter {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_user: DefaultKeyedRateLimiter<String>,
}

impl LoginLimiter {
    /// At most `per_ip` / `per_user` attempts per `window` (each also the
    /// burst size; the allowance refills evenly over the window).
    pub fn new(per_ip: NonZeroU32, per_user: NonZeroU32, window: Duration) -> Self {
        let quota = |n: NonZeroU32| {
            let period = (window / n.get()).max(Duration::from_millis(1));
            Quota::with_period(period)
                .unwrap_or(Quota::per_second(n))
                .allow_burst(n)
        };
        LoginLimiter {
            per_ip: RateLimiter::keyed(quota(per_ip)),
            per_user: RateLimiter::keyed(quota(per_user)),
        }
    }

    /// Counts one attempt; `Err(wait)` when either limit is exhausted.
    pub fn check(&self, ip: IpAddr, username: &str) -> Result<(), Duration> {
        let now = DefaultClock::default().now();
        self.per_ip
            .check_key(&ip)
            .map_err(|nu| nu.wait_time_from(now))?;
        self.per_user
            .check_key(&username.to_lowercase())
            .map_err(|nu| nu.wait_time_from(now))
    }

    /// Drops state of keys that are back to full quota (bounds memory when
    /// many distinct usernames are tried).
    pub fn housekeeping(&self) {
        self.per_ip.retain_recent();
        self.per_user.retain_recent();
    }
}

/// The client's address: the TCP peer, or — only when the peer is a trusted
/// proxy — the rightmost X-Forwarded-For entry that is not itself a trusted
/// proxy (entries further left are client-controlled and ignored).
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer_ip = peer.ip().to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer_ip) {
        return peer_ip;
    }
    let mut entries: Vec<&str> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return peer_ip;
        };
        entries.extend(text.split(',').map(str::trim));
    }
    for entry in entries.iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip.to_canonical()) => continue,
            Ok(ip) => return ip.to_canonical(),
            Err(_) => return peer_ip,
        }
    }
    peer_ip
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
        h
    }

    #[test]
    fn xff_only_from_trusted_peers() {
        let trusted: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        let proxy: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let other: SocketAddr = "10.9.9.9:5000".parse().unwrap();
        let h = headers("6.6.6.6, 1.2.3.4");
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip(other, &h, &trusted),
            "10.9.9.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(proxy, &headers("garbage"), &trusted), proxy.ip());
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy.ip());
        assert_eq!(
            client_ip(proxy, &headers("1.2.3.4, 127.0.0.1"), &trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn limiter_counts_ip_and_user_separately() {
        let l = LoginLimiter::new(
            NonZeroU32::new(3).unwrap(),
            NonZeroU32::new(2).unwrap(),
            Duration::from_secs(3600),
        );
        let a: IpAddr = "1.1.1.1".parse().unwrap();
        assert!(l.check(a, "bob").is_ok());
        assert!(l.check(a, "BOB").is_ok());
        assert!(l.check(a, "bob").is_err(), "third try for bob");
        assert!(
            l.check(a, "carol").is_err(),
            "ip exhausted after 3 counted tries"
        );
        let b: IpAddr = "2.2.2.2".parse().unwrap();
        assert!(l.check(b, "bob").is_err(), "user limit holds across IPs");
        assert!(l.check(b, "dave").is_ok());
    }

    #[test]
    fn token_compare() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "abd"));
        assert!(!tokens_match("abc", "ab"));
    }
}
