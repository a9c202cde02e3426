//! What every page shares: its navigation (consuming the flash message),
//! rendering, and ids taken from paths.

use askama::Template;
use axum::response::Html;

use super::error::AppError;
pub use super::nav::Nav;
use super::state::AppState;
use crate::auth::{self, Session};

/// The navigation of a full page; shows the session's flash message once.
pub async fn nav(state: &AppState, session: &Session) -> Result<Nav, AppError> {
    if session.flash.is_some() {
        auth::clear_flash(&state.pool, &session.id).await?;
    }
    Ok(Nav::for_session(session))
}

/// Leaves `message` for the next page the session shows.
pub async fn flash(state: &AppState, session: &Session, message: &str) -> Result<(), AppError> {
    Ok(auth::set_flash(&state.pool, &session.id, message).await?)
}

/// Leaves a refusal (shown as a warning at the top) for the next page.
pub async fn flash_refusal(
    state: &AppState,
    session: &Session,
    message: &str,
) -> Result<(), AppError> {
    let marked = format!("{}{message}", super::nav::REFUSED_MARK);
    Ok(auth::set_flash(&state.pool, &session.id, &marked).await?)
}

pub fn render<T: Template>(t: &T) -> Result<Html<String>, AppError> {
    Ok(Html(t.render()?))
}

/// Ids in paths: anything that is not a number names nothing (404).
pub fn parse_id(id: &str) -> Result<i64, AppError> {
    id.parse().map_err(|_| AppError::NotFound)
}

/// A stored time (RFC 3339, UTC) as the pages show it: how long ago, with
/// the exact time for the tooltip. Text that is not such a time is shown
/// as it is.
pub struct Stamp {
    pub ago: String,
    pub exact: String,
}

pub fn stamp(text: &str) -> Stamp {
    stamp_at(text, time::OffsetDateTime::now_utc())
}

pub(super) fn parse_time(text: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

fn stamp_at(text: &str, now: time::OffsetDateTime) -> Stamp {
    let Some(t) = parse_time(text) else {
        return Stamp {
            ago: text.to_string(),
            exact: text.to_string(),
        };
    };
    let exact = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let secs = (now - t).whole_seconds();
    let ago = if secs < 0 {
        // A time to come (an expiry): "in 3 days"; a clock a little ahead
        // of ours is "just now".
        let ahead = -secs;
        if ahead < 60 {
            "just now".to_string()
        } else if ahead < 3600 {
            format!("in {} min", ahead / 60)
        } else if ahead < 86_400 {
            format!("in {} h", ahead / 3600)
        } else {
            format!("in {} days", ahead / 86_400)
        }
    } else if secs < 60 {
        format!("{secs} s ago")
    } else if secs < 3600 {
        format!("{} min ago", secs / 60)
    } else if secs < 86_400 {
        format!("{} h ago", secs / 3600)
    } else {
        format!("{} days ago", secs / 86_400)
    };
    Stamp { ago, exact }
}

/// Unix seconds (as Steam gives them) as the RFC 3339 text [`stamp`]
/// reads; empty when out of range.
pub fn from_unix(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// How long from `start` to `end` (both RFC 3339): "42 s", "3 min 5 s",
/// "1 h 2 min"; empty when either is missing or unreadable.
pub fn took(start: Option<&str>, end: Option<&str>) -> String {
    let (Some(s), Some(e)) = (start.and_then(parse_time), end.and_then(parse_time)) else {
        return String::new();
    };
    let secs = (e - s).whole_seconds().max(0);
    if secs < 60 {
        format!("{secs} s")
    } else if secs < 3600 {
        format!("{} min {} s", secs / 60, secs % 60)
    } else {
        format!("{} h {} min", secs / 3600, secs / 60 % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_and_durations_read_like_a_person_would_say_them() {
        let now = parse_time("2026-12-01T12:00:00Z").unwrap();
        let s = stamp_at("2026-12-01T11:57:30.123456789Z", now);
        assert_eq!(s.ago, "2 min ago");
        assert_eq!(s.exact, "2026-12-01 11:57:30 UTC", "no nanoseconds");
        assert_eq!(stamp_at("2026-12-01T11:59:58Z", now).ago, "2 s ago");
        assert_eq!(stamp_at("2026-11-28T12:00:00Z", now).ago, "3 days ago");
        assert_eq!(stamp_at("2026-12-01T12:00:05Z", now).ago, "just now");
        assert_eq!(stamp_at("garbage", now).ago, "garbage");
        assert_eq!(stamp_at("2026-12-04T12:00:00Z", now).ago, "in 3 days");
        assert_eq!(from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            took(Some("2026-12-01T12:00:00Z"), Some("2026-12-01T12:03:05.5Z")),
            "3 min 5 s"
        );
        assert_eq!(took(Some("2026-12-01T12:00:00Z"), None), "");
        assert_eq!(took(Some("x"), Some("2026-12-01T12:00:00Z")), "");
    }
}
