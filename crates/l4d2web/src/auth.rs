//! Server-side sessions, CSRF tokens and login rate limits.
//!
//! Sessions are rows in our own `sessions` table rather than tower-sessions:
//! we need the CSRF token and flash message in the same row, the row id keyed
//! by HMAC(SECRET_KEY) so a leaked database holds no usable cookie, and
//! deletion of all of a user's sessions on disable/password reset, which is
//! one SQL statement here. CSRF is the synchronizer-token pattern on that row
//! (a per-session random token compared in constant time), which needs no
//! extra crate.
//!
//! The login form is the exception: a row per visitor would let anyone fill
//! the table with `GET /login`, so its CSRF token is stateless (see
//! [`issue_login_token`]) and a session row exists only after a successful
//! login.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
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
/// Lifetime of a login form's CSRF token and of the cookie carrying it.
pub const LOGIN_TOKEN_TTL_SECS: i64 = 3600;
/// Domain separation: a login token's MAC can never double as another
/// HMAC computed with SECRET_KEY (such as a session id).
const LOGIN_TOKEN_CONTEXT: &[u8] = b"left4me login form v1\0";

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
    use subtle::ConstantTimeEq;
    // Lengths are not secret (every token of a kind has the same one).
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

#[derive(Debug, thiserror::Error)]
pub enum LoginTokenError {
    #[error(transparent)]
    Random(#[from] AccountError),
    /// HMAC takes keys of any length, so this does not happen in practice.
    #[error("SECRET_KEY cannot be used as an HMAC key")]
    Key,
}

/// HMAC accepts keys of any length, so `None` does not happen in practice.
fn login_mac(secret: &[u8], nonce: &str, expires: i64) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    mac.update(LOGIN_TOKEN_CONTEXT);
    mac.update(nonce.as_bytes());
    mac.update(b".");
    mac.update(expires.to_string().as_bytes());
    Some(mac)
}

/// A CSRF token for the login form, valid until `now + LOGIN_TOKEN_TTL_SECS`:
/// `<nonce>.<expiry>.<HMAC-SHA256(SECRET_KEY, nonce, expiry)>`. It is put in
/// the form and in the session cookie (double submit), so nothing is stored
/// on the server; a forged token fails the MAC, and a cross-site form
/// cannot send a token that matches the victim's cookie.
pub fn issue_login_token(secret: &[u8], now: i64) -> Result<String, LoginTokenError> {
    let nonce = accounts::random_hex(16)?;
    let expires = now + LOGIN_TOKEN_TTL_SECS;
    let mac = login_mac(secret, &nonce, expires).ok_or(LoginTokenError::Key)?;
    Ok(format!(
        "{nonce}.{expires}.{}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// Whether `token` was issued by [`issue_login_token`] with this secret and
/// has not expired at `now`.
pub fn login_token_valid(secret: &[u8], token: &str, now: i64) -> bool {
    let mut parts = token.split('.');
    let (Some(nonce), Some(expires), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(expires) = expires.parse::<i64>() else {
        return false;
    };
    let Ok(tag) = hex::decode(tag) else {
        return false;
    };
    if nonce.len() != 32 || expires <= now || expires > now + LOGIN_TOKEN_TTL_SECS {
        return false;
    }
    login_mac(secret, nonce, expires).is_some_and(|mac| mac.verify_slice(&tag).is_ok())
}

/// How much one failure over the allowance adds to the next login's wait
/// for that username, doubling per failure, up to [`MAX_LOGIN_SLOWDOWN`].
pub const LOGIN_SLOWDOWN_STEP: Duration = Duration::from_millis(250);
/// The longest a login waits because its username is being guessed.
pub const MAX_LOGIN_SLOWDOWN: Duration = Duration::from_secs(3);
/// Usernames whose recent failures are remembered; beyond this new names
/// are not slowed (bounds memory when random names are tried; the per-IP
/// limit still counts every attempt).
const MAX_TRACKED_USERNAMES: usize = 10_000;

/// Login attempt limits (docs/product.md). Refusing (429) is only ever keyed by
/// the client: at most `per_ip` attempts per window from one address, and
/// `per_user` attempts per window for one username from one address. A
/// username's failures from all addresses together only slow its logins
/// down (a bounded delay), so nobody can lock the owner out by guessing
/// their password from elsewhere.
pub struct LoginLimiter {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    /// Keyed by (username, client, unlock generation): governor cannot
    /// forget one key, so an unlock moves the username to fresh keys.
    per_user_ip: DefaultKeyedRateLimiter<(String, IpAddr, u64)>,
    generations: Mutex<HashMap<String, u64>>,
    failures: Mutex<HashMap<String, Failures>>,
    /// Failures of a username per window before logins are slowed.
    free_failures: u32,
    window: Duration,
}

/// Recent failed logins of one username, from anywhere.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Why a login attempt may not proceed: wait this long and try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps stay consistent even if a holder panicked mid-update
    // (every update is a single insert/remove).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LoginLimiter {
    /// At most `per_ip` / `per_user` (per client) attempts per `window`
    /// (each also the burst size; the allowance refills evenly over the
    /// window); logins of a username are slowed after `per_user` failures
    /// from anywhere within a window.
    pub fn new(per_ip: NonZeroU32, per_user: NonZeroU32, window: Duration) -> Self {
        let quota = |n: NonZeroU32| {
            let period = (window / n.get()).max(Duration::from_millis(1));
            Quota::with_period(period)
                .unwrap_or(Quota::per_second(n))
                .allow_burst(n)
        };
        LoginLimiter {
            per_ip: RateLimiter::keyed(quota(per_ip)),
            per_user_ip: RateLimiter::keyed(quota(per_user)),
            generations: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            free_failures: per_user.get(),
            window,
        }
    }

    /// Counts one attempt of `username` from `ip`. `Ok(delay)`: go ahead
    /// after waiting `delay` (zero unless the username is being guessed);
    /// `Err` when this client has used up one of its limits.
    pub fn check(&self, ip: IpAddr, username: &str) -> Result<Duration, RetryAfter> {
        let name = username.to_lowercase();
        let now = DefaultClock::default().now();
        self.per_ip
            .check_key(&ip)
            .map_err(|nu| RetryAfter(nu.wait_time_from(now)))?;
        let generation = lock(&self.generations).get(&name).copied().unwrap_or(0);
        self.per_user_ip
            .check_key(&(name.clone(), ip, generation))
            .map_err(|nu| RetryAfter(nu.wait_time_from(now)))?;
        Ok(self.slowdown(&name, Instant::now()))
    }

    /// Records a failed login of `username` (from any client).
    pub fn record_failure(&self, username: &str) {
        self.record_failure_at(&username.to_lowercase(), Instant::now());
    }

    fn record_failure_at(&self, name: &str, now: Instant) {
        let mut failures = lock(&self.failures);
        if !failures.contains_key(name) && failures.len() >= MAX_TRACKED_USERNAMES {
            let window = self.window;
            failures.retain(|_, f| now.saturating_duration_since(f.last) < window);
            if failures.len() >= MAX_TRACKED_USERNAMES {
                return;
            }
        }
        let entry = failures.entry(name.to_string()).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.saturating_duration_since(entry.last) >= self.window {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
    }

    /// The wait before a login of `name` is checked: nothing while it has
    /// fewer than `free_failures` failures in a row (each within a window
    /// of the previous one), then [`LOGIN_SLOWDOWN_STEP`], doubling with
    /// every further failure, at most [`MAX_LOGIN_SLOWDOWN`].
    fn slowdown(&self, name: &str, now: Instant) -> Duration {
        let count = match lock(&self.failures).get(name) {
            Some(f) if now.saturating_duration_since(f.last) < self.window => f.count,
            _ => return Duration::ZERO,
        };
        let Some(over) = count.checked_sub(self.free_failures) else {
            return Duration::ZERO;
        };
        LOGIN_SLOWDOWN_STEP
            .saturating_mul(1u32 << over.min(16))
            .min(MAX_LOGIN_SLOWDOWN)
    }

    /// Forgets `username`'s counters (an administrator's "unlock"): its
    /// per-client limits start full again and its logins are no longer
    /// slowed. Per-IP limits are not the user's and stay.
    pub fn unlock(&self, username: &str) {
        let name = username.to_lowercase();
        {
            let mut generations = lock(&self.generations);
            let g = generations.entry(name.clone()).or_insert(0);
            *g = g.wrapping_add(1);
        }
        lock(&self.failures).remove(&name);
    }

    /// Drops state of keys that are back to full quota and failures older
    /// than the window (bounds memory when many usernames are tried).
    pub fn housekeeping(&self) {
        self.per_ip.retain_recent();
        self.per_user_ip.retain_recent();
        let now = Instant::now();
        let window = self.window;
        lock(&self.failures).retain(|_, f| now.saturating_duration_since(f.last) < window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_ip: u32, per_user: u32) -> LoginLimiter {
        LoginLimiter::new(
            NonZeroU32::new(per_ip).unwrap(),
            NonZeroU32::new(per_user).unwrap(),
            Duration::from_secs(3600),
        )
    }

    #[test]
    fn limiter_refuses_per_client_never_per_username() {
        let l = limiter(3, 2);
        let a: IpAddr = "1.1.1.1".parse().unwrap();
        assert!(l.check(a, "bob").is_ok());
        assert!(l.check(a, "BOB").is_ok());
        assert!(l.check(a, "bob").is_err(), "third try for bob from a");
        assert!(
            l.check(a, "carol").is_err(),
            "ip exhausted after 3 counted tries"
        );
        let b: IpAddr = "2.2.2.2".parse().unwrap();
        assert!(l.check(b, "bob").is_ok(), "bob from b is another client");
        assert!(l.check(b, "dave").is_ok());
    }

    #[test]
    fn unlock_resets_the_username_only() {
        let l = limiter(100, 1);
        let a: IpAddr = "1.1.1.1".parse().unwrap();
        assert!(l.check(a, "bob").is_ok());
        assert!(l.check(a, "carol").is_ok());
        assert!(l.check(a, "bob").is_err());
        l.unlock("Bob");
        assert!(l.check(a, "bob").is_ok(), "unlocked");
        assert!(l.check(a, "carol").is_err(), "others keep their counters");
    }

    #[test]
    fn failures_slow_down_boundedly_and_expire() {
        let l = limiter(100, 2);
        let t0 = Instant::now();
        let wait = |n: &str, t| l.slowdown(n, t);
        l.record_failure_at("bob", t0);
        assert_eq!(wait("bob", t0), Duration::ZERO, "within the allowance");
        l.record_failure_at("bob", t0);
        assert_eq!(wait("bob", t0), LOGIN_SLOWDOWN_STEP, "allowance used up");
        l.record_failure_at("bob", t0);
        assert_eq!(wait("bob", t0), LOGIN_SLOWDOWN_STEP * 2);
        for _ in 0..100 {
            l.record_failure_at("bob", t0);
        }
        assert_eq!(wait("bob", t0), MAX_LOGIN_SLOWDOWN, "bounded");
        assert_eq!(wait("carol", t0), Duration::ZERO);
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(wait("bob", later), Duration::ZERO, "a quiet window resets");
        l.record_failure_at("bob", later);
        assert_eq!(wait("bob", later), Duration::ZERO, "counting starts over");
        l.record_failure_at("bob", later);
        l.record_failure_at("bob", later);
        l.unlock("bob");
        assert_eq!(
            wait("bob", later),
            Duration::ZERO,
            "unlock forgets failures"
        );
    }

    #[test]
    fn login_tokens_are_signed_and_expire() {
        let key = b"0123456789abcdef0123456789abcdef";
        let now = 1_000_000;
        let t = issue_login_token(key, now).unwrap();
        assert!(login_token_valid(key, &t, now));
        assert!(login_token_valid(key, &t, now + LOGIN_TOKEN_TTL_SECS - 1));
        assert!(
            !login_token_valid(key, &t, now + LOGIN_TOKEN_TTL_SECS),
            "expired"
        );
        assert!(!login_token_valid(
            b"another key, also 32 bytes long!",
            &t,
            now
        ));
        let (nonce, rest) = t.split_once('.').unwrap();
        let (_, mac) = rest.split_once('.').unwrap();
        let later = format!("{nonce}.{}.{mac}", now + 60);
        assert!(!login_token_valid(key, &later, now), "expiry is signed");
        for bad in ["", "x", "a.b.c", &format!("{t}.x"), &t[..t.len() - 2]] {
            assert!(!login_token_valid(key, bad, now), "{bad:?}");
        }
    }

    #[test]
    fn token_compare() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "abd"));
        assert!(!tokens_match("abc", "ab"));
    }
}
