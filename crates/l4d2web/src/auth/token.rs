//! Tokens: constant-time comparison, and the login form's stateless CSRF
//! token. A session row per visitor would let anyone fill the table with
//! `GET /login`, so the login form's token is signed (HMAC over a nonce and
//! an expiry) instead of stored, and a session row exists only after a
//! successful login. The same construction carries a password-checked
//! login to its second step (the two-factor code): a signed "second step"
//! token naming the user, short-lived, so no session exists before the
//! code is right either.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::accounts::{self, AccountError};

/// Lifetime of a login form's CSRF token and of the cookie carrying it.
pub const LOGIN_TOKEN_TTL_SECS: i64 = 3600;
/// Domain separation: a login token's MAC can never double as another
/// HMAC computed with SECRET_KEY (such as a session id).
const LOGIN_TOKEN_CONTEXT: &[u8] = b"left4me login form v1\0";
/// Lifetime of a second-step token: enough to open an authenticator app.
pub const SECOND_STEP_TTL_SECS: i64 = 300;
const SECOND_STEP_CONTEXT: &[u8] = b"left4me login second step v1\0";

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
    context_mac(secret, LOGIN_TOKEN_CONTEXT, nonce, expires)
}

fn context_mac(secret: &[u8], context: &[u8], nonce: &str, expires: i64) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    mac.update(context);
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

/// A second-step token for `user_id`, valid until
/// `now + SECOND_STEP_TTL_SECS`: `<user>-<nonce>.<expiry>.<HMAC>`, the MAC
/// under its own context (a login token never passes for one). It proves
/// only that this user's password was right a moment ago.
pub fn issue_second_step_token(
    secret: &[u8],
    user_id: i64,
    now: i64,
) -> Result<String, LoginTokenError> {
    let nonce = format!("{user_id}-{}", accounts::random_hex(16)?);
    let expires = now + SECOND_STEP_TTL_SECS;
    let mac =
        context_mac(secret, SECOND_STEP_CONTEXT, &nonce, expires).ok_or(LoginTokenError::Key)?;
    Ok(format!(
        "{nonce}.{expires}.{}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// The user a second-step token was issued for, if it is genuine and
/// unexpired at `now`.
pub fn second_step_user(secret: &[u8], token: &str, now: i64) -> Option<i64> {
    let mut parts = token.split('.');
    let (Some(nonce), Some(expires), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let expires = expires.parse::<i64>().ok()?;
    let tag = hex::decode(tag).ok()?;
    if expires <= now || expires > now + SECOND_STEP_TTL_SECS {
        return None;
    }
    let (user, random) = nonce.split_once('-')?;
    if random.len() != 32 {
        return None;
    }
    context_mac(secret, SECOND_STEP_CONTEXT, nonce, expires)?
        .verify_slice(&tag)
        .ok()?;
    user.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn second_step_tokens_name_their_user_and_expire() {
        let key = b"0123456789abcdef0123456789abcdef";
        let now = 1_000_000;
        let t = issue_second_step_token(key, 42, now).unwrap();
        assert_eq!(second_step_user(key, &t, now), Some(42));
        assert_eq!(second_step_user(key, &t, now + SECOND_STEP_TTL_SECS), None);
        assert_eq!(
            second_step_user(b"another key, also 32 bytes long!", &t, now),
            None
        );
        let forged = t.replacen("42-", "1-", 1);
        assert_eq!(second_step_user(key, &forged, now), None, "user is signed");
        // The two kinds of token are not interchangeable.
        let login = issue_login_token(key, now).unwrap();
        assert_eq!(second_step_user(key, &login, now), None);
        assert!(!login_token_valid(key, &t, now));
    }

    #[test]
    fn token_compare() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "abd"));
        assert!(!tokens_match("abc", "ab"));
    }
}
