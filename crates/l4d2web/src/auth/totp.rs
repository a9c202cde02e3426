//! Two-factor login with TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, one
//! step of clock skew either way: what every authenticator app does by
//! default), single-use recovery codes, and the panel setting that makes
//! administrators use it (docs/product.md, Accounts).
//!
//! Replay rule: the time step of the last accepted code is stored, and a
//! code is accepted only for a later step (one conditional UPDATE, so two
//! concurrent logins cannot both use one code). The secret is shown only
//! while enrolling; this module never logs it, and [`Enrollment`] has no
//! `Debug`.

use sha2::{Digest, Sha256};
use sqlx::SqlitePool;
use totp_rs::{Algorithm, TOTP};

use crate::accounts::{self, User};
use crate::db::{now_text, now_unix};

/// Seconds per time step.
pub const STEP_SECS: u64 = 30;
/// Digits of a code.
pub const DIGITS: usize = 6;
/// Steps accepted before and after the current one (clock drift, typing).
pub const SKEW: u64 = 1;
/// Recovery codes made at enrollment (and on regeneration).
pub const RECOVERY_CODES: usize = 10;
/// RFC 4226 recommends 160 bits.
const SECRET_BYTES: usize = 20;
/// Characters of a recovery code (5 bits each: 80 random bits).
const RECOVERY_LEN: usize = 16;
/// Crockford's base32: no i, l, o, u, so a code read aloud or off paper is
/// unambiguous.
const RECOVERY_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// The name the authenticator app shows next to the account.
const ISSUER: &str = "left4me";
/// Key of the "administrators must use two-factor login" setting.
const ADMINS_MUST_KEY: &str = "admins_must_use_two_factor";

#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    #[error("two-factor login is already on for this account")]
    AlreadyEnabled,
    #[error("two-factor login is not on for this account")]
    NotEnabled,
    #[error("no two-factor setup is in progress: start it again")]
    NoEnrollment,
    #[error("wrong code: enter the current 6-digit code of your authenticator app or an unused recovery code")]
    WrongCode,
    #[error("random source failed: {0}")]
    Random(String),
    #[error("cannot build the authenticator's settings: {0}")]
    Setup(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// A user's two-factor state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Off,
    /// A secret was shown; no code confirmed it yet.
    Enrolling,
    On {
        recovery_left: i64,
    },
}

/// What an authenticator app needs: shown only while enrolling.
pub struct Enrollment {
    /// The secret in base32, for typing it in by hand.
    pub secret_base32: String,
    /// The same as an `otpauth://` URI, drawn as an inline SVG QR code.
    pub qr_svg: String,
}

/// How a second factor was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Used {
    Code,
    /// A recovery code, now spent; this many are left.
    Recovery {
        left: i64,
    },
}

fn totp_for(secret: Vec<u8>, account: &str) -> Result<TOTP, TotpError> {
    // The account name may not contain ':' (the label separator);
    // usernames cannot, but keep this total.
    let account = account.replace(':', "_");
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        SKEW as u8,
        STEP_SECS,
        secret,
        Some(ISSUER.to_string()),
        account,
    )
    .map_err(|e| TotpError::Setup(e.to_string()))
}

fn now_secs() -> u64 {
    u64::try_from(now_unix()).unwrap_or(0)
}

/// The latest step within the skew window around `now` whose code is
/// `code` and that comes after `after`.
fn matching_step(totp: &TOTP, code: &str, now: u64, after: Option<i64>) -> Option<i64> {
    use subtle::ConstantTimeEq;
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = now / STEP_SECS;
    let mut found = None;
    for step in current.saturating_sub(SKEW)..=current + SKEW {
        let Ok(step_i) = i64::try_from(step) else {
            continue;
        };
        if after.is_some_and(|last| step_i <= last) {
            continue;
        }
        let expected = totp.generate(step * STEP_SECS);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            found = Some(step_i);
        }
    }
    found
}

/// A code as typed: spaces and dashes dropped, lowercase, and the letters
/// people confuse with digits read as those digits.
fn normalize(input: &str) -> String {
    input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_lowercase() {
            'i' | 'l' => '1',
            'o' => '0',
            c => c,
        })
        .collect()
}

fn recovery_hash(normalized: &str) -> String {
    hex::encode(Sha256::digest(normalized.as_bytes()))
}

/// Ten fresh recovery codes, shown as `xxxx-xxxx-xxxx-xxxx`.
fn new_recovery_codes() -> Result<Vec<String>, TotpError> {
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        let mut raw = [0u8; RECOVERY_LEN];
        accounts::random_bytes(&mut raw).map_err(|e| TotpError::Random(e.to_string()))?;
        let chars: Vec<char> = raw
            .iter()
            .map(|b| char::from(RECOVERY_ALPHABET[usize::from(b & 31)]))
            .collect();
        let groups: Vec<String> = chars.chunks(4).map(|g| g.iter().collect()).collect();
        codes.push(groups.join("-"));
    }
    Ok(codes)
}

fn qr_svg(uri: &str) -> Result<String, TotpError> {
    use qrcode::render::svg;
    let code = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| TotpError::Setup(e.to_string()))?;
    let svg = code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build();
    // Inline in HTML: without the XML declaration, with a name for screen
    // readers.
    let start = svg.find("<svg").unwrap_or(0);
    Ok(svg[start..].replacen(
        "<svg ",
        "<svg role=\"img\" aria-label=\"QR code for your authenticator app\" ",
        1,
    ))
}

/// The user's two-factor state.
pub async fn status(pool: &SqlitePool, user_id: i64) -> Result<Status, TotpError> {
    let enabled: Option<bool> =
        sqlx::query_scalar("SELECT enabled FROM user_totp WHERE user_id = ?")
            .bind(user_id)
            .fetch_optional(pool)
            .await?;
    Ok(match enabled {
        None => Status::Off,
        Some(false) => Status::Enrolling,
        Some(true) => Status::On {
            recovery_left: recovery_left(pool, user_id).await?,
        },
    })
}

/// Whether two-factor login is on for the user.
pub async fn is_enabled(pool: &SqlitePool, user_id: i64) -> Result<bool, TotpError> {
    // Asked on every login and, for administrators, by the enrollment gate
    // on every request: one indexed lookup.
    let on: Option<bool> =
        sqlx::query_scalar("SELECT enabled FROM user_totp WHERE user_id = ? AND enabled = 1")
            .bind(user_id)
            .fetch_optional(pool)
            .await?;
    Ok(on.is_some())
}

/// Ids of the users with two-factor login on.
pub async fn enabled_users(pool: &SqlitePool) -> Result<Vec<i64>, TotpError> {
    Ok(
        sqlx::query_scalar("SELECT user_id FROM user_totp WHERE enabled = 1 ORDER BY user_id")
            .fetch_all(pool)
            .await?,
    )
}

async fn recovery_left(pool: &SqlitePool, user_id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM totp_recovery_codes WHERE user_id = ? AND used_at IS NULL",
    )
    .bind(user_id)
    .fetch_one(pool)
    .await
}

/// Starts (or restarts) enrollment: a new secret, not yet in force.
pub async fn begin_enrollment(pool: &SqlitePool, user: &User) -> Result<Enrollment, TotpError> {
    if is_enabled(pool, user.id).await? {
        return Err(TotpError::AlreadyEnabled);
    }
    let mut secret = vec![0u8; SECRET_BYTES];
    accounts::random_bytes(&mut secret).map_err(|e| TotpError::Random(e.to_string()))?;
    let enrollment = enrollment_of(secret.clone(), &user.username)?;
    // `enabled = 0` in the WHERE: a concurrent confirmation is never undone.
    let done = sqlx::query(
        "INSERT INTO user_totp (user_id, secret, enabled) VALUES (?, ?, 0)
         ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, last_step = NULL
         WHERE user_totp.enabled = 0",
    )
    .bind(user.id)
    .bind(&secret)
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(TotpError::AlreadyEnabled);
    }
    Ok(enrollment)
}

fn enrollment_of(secret: Vec<u8>, username: &str) -> Result<Enrollment, TotpError> {
    let totp = totp_for(secret, username)?;
    Ok(Enrollment {
        secret_base32: totp.get_secret_base32(),
        qr_svg: qr_svg(&totp.get_url())?,
    })
}

/// The enrollment in progress, to show again (None when there is none).
pub async fn pending_enrollment(
    pool: &SqlitePool,
    user: &User,
) -> Result<Option<Enrollment>, TotpError> {
    let secret: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT secret FROM user_totp WHERE user_id = ? AND enabled = 0")
            .bind(user.id)
            .fetch_optional(pool)
            .await?;
    secret.map(|s| enrollment_of(s, &user.username)).transpose()
}

/// Abandons an enrollment in progress (nothing changes when none is).
pub async fn cancel_enrollment(pool: &SqlitePool, user_id: i64) -> Result<(), TotpError> {
    sqlx::query("DELETE FROM user_totp WHERE user_id = ? AND enabled = 0")
        .bind(user_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Confirms enrollment with a current code: two-factor login is on from
/// now, and the new recovery codes are returned (to be shown once). A wrong
/// code changes nothing.
pub async fn confirm_enrollment(
    pool: &SqlitePool,
    user: &User,
    code: &str,
) -> Result<Vec<String>, TotpError> {
    let secret: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT secret FROM user_totp WHERE user_id = ? AND enabled = 0")
            .bind(user.id)
            .fetch_optional(pool)
            .await?;
    let Some(secret) = secret else {
        return Err(if is_enabled(pool, user.id).await? {
            TotpError::AlreadyEnabled
        } else {
            TotpError::NoEnrollment
        });
    };
    let totp = totp_for(secret.clone(), &user.username)?;
    let step =
        matching_step(&totp, &normalize(code), now_secs(), None).ok_or(TotpError::WrongCode)?;
    let codes = new_recovery_codes()?;
    let mut tx = pool.begin().await?;
    // The secret in the WHERE: a restarted enrollment in between (another
    // tab) is not confirmed by a code of the old secret.
    let done = sqlx::query(
        "UPDATE user_totp SET enabled = 1, last_step = ?, enabled_at = ?
         WHERE user_id = ? AND enabled = 0 AND secret = ?",
    )
    .bind(step)
    .bind(now_text())
    .bind(user.id)
    .bind(&secret)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(TotpError::NoEnrollment);
    }
    replace_recovery_codes(&mut tx, user.id, &codes).await?;
    tx.commit().await?;
    Ok(codes)
}

async fn replace_recovery_codes(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    user_id: i64,
    codes: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM totp_recovery_codes WHERE user_id = ?")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    for code in codes {
        sqlx::query("INSERT INTO totp_recovery_codes (user_id, code_hash) VALUES (?, ?)")
            .bind(user_id)
            .bind(recovery_hash(&normalize(code)))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Checks a second factor of a user with two-factor login on: a code of a
/// step after the last accepted one (which then becomes the last), or an
/// unused recovery code (which is then spent). Anything else is
/// [`TotpError::WrongCode`] and changes nothing.
pub async fn verify(pool: &SqlitePool, user: &User, input: &str) -> Result<Used, TotpError> {
    let row: Option<(Vec<u8>, Option<i64>)> =
        sqlx::query_as("SELECT secret, last_step FROM user_totp WHERE user_id = ? AND enabled = 1")
            .bind(user.id)
            .fetch_optional(pool)
            .await?;
    let Some((secret, last_step)) = row else {
        return Err(TotpError::NotEnabled);
    };
    let code = normalize(input);
    if code.len() == DIGITS {
        let totp = totp_for(secret, &user.username)?;
        let step =
            matching_step(&totp, &code, now_secs(), last_step).ok_or(TotpError::WrongCode)?;
        let done = sqlx::query(
            "UPDATE user_totp SET last_step = ?
             WHERE user_id = ? AND enabled = 1 AND (last_step IS NULL OR last_step < ?)",
        )
        .bind(step)
        .bind(user.id)
        .bind(step)
        .execute(pool)
        .await?;
        // Zero rows: another request took this step (or a later one) first.
        return if done.rows_affected() == 1 {
            Ok(Used::Code)
        } else {
            Err(TotpError::WrongCode)
        };
    }
    if code.len() != RECOVERY_LEN || !code.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)) {
        return Err(TotpError::WrongCode);
    }
    let done = sqlx::query(
        "UPDATE totp_recovery_codes SET used_at = ?
         WHERE user_id = ? AND code_hash = ? AND used_at IS NULL",
    )
    .bind(now_text())
    .bind(user.id)
    .bind(recovery_hash(&code))
    .execute(pool)
    .await?;
    if done.rows_affected() == 1 {
        Ok(Used::Recovery {
            left: recovery_left(pool, user.id).await?,
        })
    } else {
        Err(TotpError::WrongCode)
    }
}

/// New recovery codes in place of the old ones (the caller checked a code).
pub async fn regenerate_recovery_codes(
    pool: &SqlitePool,
    user_id: i64,
) -> Result<Vec<String>, TotpError> {
    if !is_enabled(pool, user_id).await? {
        return Err(TotpError::NotEnabled);
    }
    let codes = new_recovery_codes()?;
    let mut tx = pool.begin().await?;
    replace_recovery_codes(&mut tx, user_id, &codes).await?;
    tx.commit().await?;
    Ok(codes)
}

/// Turns two-factor login off for the user: the secret and the recovery
/// codes are deleted (the caller checked the user's password and a code,
/// or is an administrator resetting it).
pub async fn disable(pool: &SqlitePool, user_id: i64) -> Result<(), TotpError> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM user_totp WHERE user_id = ?")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM totp_recovery_codes WHERE user_id = ?")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Whether administrators must use two-factor login (off unless set).
pub async fn admins_must_use(pool: &SqlitePool) -> Result<bool, TotpError> {
    let value: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
        .bind(ADMINS_MUST_KEY)
        .fetch_optional(pool)
        .await?;
    Ok(value.as_deref() == Some("1"))
}

pub async fn set_admins_must_use(pool: &SqlitePool, on: bool) -> Result<(), TotpError> {
    sqlx::query(
        "INSERT INTO settings (key, value) VALUES (?, ?)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(ADMINS_MUST_KEY)
    .bind(if on { "1" } else { "0" })
    .execute(pool)
    .await?;
    Ok(())
}

/// Whether this user may use only their account page until they set up
/// two-factor login: an administrator without it while the panel requires
/// it of administrators.
pub async fn must_enroll(pool: &SqlitePool, user: &User) -> Result<bool, TotpError> {
    if !user.is_admin || !admins_must_use(pool).await? {
        return Ok(false);
    }
    Ok(!is_enabled(pool, user.id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totp() -> TOTP {
        totp_for(b"12345678901234567890".to_vec(), "alice").unwrap()
    }

    #[test]
    fn rfc6238_vector_and_skew() {
        let t = totp();
        // RFC 6238 appendix B, SHA-1, T = 59: 94287082 (8 digits) → 287082.
        assert_eq!(t.generate(59), "287082");
        assert_eq!(matching_step(&t, "287082", 59, None), Some(1));
        assert_eq!(
            matching_step(&t, "287082", 59 + 30, None),
            Some(1),
            "one step late"
        );
        assert_eq!(
            matching_step(&t, "287082", 59 - 30, None),
            Some(1),
            "one step early"
        );
        assert_eq!(
            matching_step(&t, "287082", 59 + 60, None),
            None,
            "two steps late"
        );
        assert_eq!(matching_step(&t, "287082", 59, Some(1)), None, "replayed");
        assert_eq!(matching_step(&t, "287082", 59, Some(0)), Some(1));
        for bad in ["", "28708", "2870822", "28708x", "287 82"] {
            assert_eq!(matching_step(&t, bad, 59, None), None, "{bad:?}");
        }
    }

    #[test]
    fn recovery_codes_are_long_readable_and_normalized() {
        let codes = new_recovery_codes().unwrap();
        assert_eq!(codes.len(), RECOVERY_CODES);
        for c in &codes {
            assert_eq!(c.len(), RECOVERY_LEN + 3, "{c}");
            assert_eq!(normalize(c).len(), RECOVERY_LEN);
        }
        assert_eq!(normalize(" AB1L-o0I "), "ab11001");
        assert_eq!(
            recovery_hash(&normalize("ABCD-EFGH")),
            recovery_hash("abcdefgh")
        );
    }

    #[test]
    fn qr_is_an_svg() {
        let svg = qr_svg("otpauth://totp/left4me:alice?secret=ABC&issuer=left4me").unwrap();
        assert!(
            svg.starts_with("<svg role=\"img\"") && !svg.contains("<?xml"),
            "{svg}"
        );
    }
}
