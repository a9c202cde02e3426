//! Schedules: recurring actions on one server, or on every server of a
//! blueprint (docs/product.md). Start, stop, restart, an RCON command, or
//! "restart when empty": armed at the scheduled time, the restart comes
//! once the server has had no human player for N minutes.
//!
//! Times are five-field cron expressions (minute hour day month weekday,
//! parsed by `croner`) in an IANA time zone of the schedule's own. Each
//! occurrence is handled once: run when due, or, when the panel was down
//! at the time and more than the grace window has passed, skipped and
//! recorded as missed. However many were missed, at most one run follows.
//!
//! This module holds the rows, their validation and the timing rules;
//! `tasks` turns due occurrences into jobs.

use std::str::FromStr as _;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};
use croner::Cron;
use sqlx::SqlitePool;

use crate::servers::rcon;

/// Longest cron expression accepted.
const MAX_CRON_LEN: usize = 100;
/// Schedules per server or blueprint.
pub const MAX_PER_TARGET: i64 = 20;
/// Longest wait of a "restart when empty" schedule.
pub const MAX_EMPTY_MINUTES: i64 = 24 * 60;

/// What a schedule does. Stored as kebab-case text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "TEXT", rename_all = "kebab-case")]
pub enum ScheduleAction {
    Start,
    Stop,
    Restart,
    Rcon,
    RestartWhenEmpty,
}

impl ScheduleAction {
    pub const ALL: [ScheduleAction; 5] = [
        ScheduleAction::Restart,
        ScheduleAction::RestartWhenEmpty,
        ScheduleAction::Stop,
        ScheduleAction::Start,
        ScheduleAction::Rcon,
    ];

    pub fn parse(s: &str) -> Option<ScheduleAction> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleAction::Start => "start",
            ScheduleAction::Stop => "stop",
            ScheduleAction::Restart => "restart",
            ScheduleAction::Rcon => "rcon",
            ScheduleAction::RestartWhenEmpty => "restart-when-empty",
        }
    }

    /// For pages.
    pub fn label(self) -> &'static str {
        match self {
            ScheduleAction::Start => "start",
            ScheduleAction::Stop => "stop",
            ScheduleAction::Restart => "restart",
            ScheduleAction::Rcon => "RCON command",
            ScheduleAction::RestartWhenEmpty => "restart when empty",
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Schedule {
    pub id: i64,
    pub owner_id: i64,
    pub server_id: Option<i64>,
    pub blueprint_id: Option<i64>,
    pub action: ScheduleAction,
    pub command: String,
    pub empty_minutes: i64,
    pub cron: String,
    pub time_zone: String,
    pub enabled: bool,
    pub last_run_at: Option<String>,
    pub last_result: Option<String>,
    pub armed_at: Option<String>,
    pub created_at: String,
}

impl Schedule {
    /// Its timing; None for a row whose expression no longer parses (it
    /// was validated when saved, so only a newer parser could refuse it).
    pub fn timing(&self) -> Option<Timing> {
        Timing::parse(&self.cron, &self.time_zone).ok()
    }

    /// The next `n` run times, in the schedule's time zone, for pages.
    pub fn next_runs(&self, n: usize, now: DateTime<Utc>) -> Vec<String> {
        let Some(timing) = self.timing() else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(n);
        let mut t = now;
        while out.len() < n {
            let Some(next) = timing.next_after(t) else {
                break;
            };
            out.push(
                next.with_timezone(&timing.tz)
                    .format("%a %Y-%m-%d %H:%M %Z")
                    .to_string(),
            );
            t = next;
        }
        out
    }

    /// What it does, for pages: "restart", "RCON command `say hi`", …
    pub fn describe(&self) -> String {
        match self.action {
            ScheduleAction::Rcon => format!("RCON command “{}”", self.command),
            ScheduleAction::RestartWhenEmpty => format!(
                "restart once empty for {} minute{}",
                self.empty_minutes,
                if self.empty_minutes == 1 { "" } else { "s" }
            ),
            a => a.label().to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("cron expression {expr:?}: {reason} (five fields: minute hour day-of-month month day-of-week, e.g. \"0 5 * * *\" for 05:00 every day)")]
    Cron { expr: String, reason: String },
    #[error(
        "unknown time zone {0:?} (an IANA name such as UTC, Europe/Berlin or America/New_York)"
    )]
    TimeZone(String),
    #[error(
        "unknown schedule action {0:?} (one of start, stop, restart, restart-when-empty, rcon)"
    )]
    UnknownAction(String),
    #[error("RCON command: {0}")]
    Command(#[from] rcon::CommandError),
    #[error(
        "minutes without players must be a whole number from 1 to {MAX_EMPTY_MINUTES} (got {0:?})"
    )]
    EmptyMinutes(String),
    #[error("at most {MAX_PER_TARGET} schedules per server or blueprint")]
    TooMany,
    #[error("no such schedule")]
    NotFound,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// A parsed cron expression in its time zone.
#[derive(Debug, Clone)]
pub struct Timing {
    cron: Cron,
    pub tz: Tz,
}

impl Timing {
    pub fn parse(expr: &str, time_zone: &str) -> Result<Timing, ScheduleError> {
        let expr = expr.trim();
        let bad = |reason: String| ScheduleError::Cron {
            expr: expr.to_string(),
            reason,
        };
        if expr.is_empty() {
            return Err(bad("it is empty".into()));
        }
        if expr.len() > MAX_CRON_LEN {
            return Err(bad(format!("longer than {MAX_CRON_LEN} characters")));
        }
        // Minutes are the finest step: a per-second schedule would queue
        // a job every second.
        let parser = CronParser::builder().seconds(Seconds::Disallowed).build();
        let cron = parser.parse(expr).map_err(|e| bad(e.to_string()))?;
        let tz = Tz::from_str(time_zone.trim())
            .map_err(|_| ScheduleError::TimeZone(time_zone.to_string()))?;
        let timing = Timing { cron, tz };
        // A pattern such as "0 0 31 2 *" parses but never happens.
        if timing.next_after(Utc::now()).is_none() {
            return Err(bad("it never matches a real date".into()));
        }
        Ok(timing)
    }

    /// The first occurrence strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The latest occurrence at or before `t`.
    pub fn latest_until(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&t.with_timezone(&self.tz), true)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }
}

/// Whether a schedule has an occurrence to handle now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Nothing before this time.
    At(DateTime<Utc>),
    /// Run the occurrence at this time.
    Run(DateTime<Utc>),
    /// The occurrence at this time was missed by more than the grace
    /// window (the panel was down): record it, do not run it.
    Missed(DateTime<Utc>),
    /// Never again.
    Never,
}

/// The rule for one schedule whose last handled occurrence (or creation)
/// was `since`: of all the occurrences after it up to `now`, only the
/// latest counts, and it runs if it is at most `grace` old.
pub fn due(
    timing: &Timing,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    grace: chrono::Duration,
) -> Due {
    let Some(next) = timing.next_after(since) else {
        return Due::Never;
    };
    if next > now {
        return Due::At(next);
    }
    let latest = timing.latest_until(now).unwrap_or(next).max(next);
    if now - latest <= grace {
        Due::Run(latest)
    } else {
        Due::Missed(latest)
    }
}

/// RFC 3339, UTC, seconds: how schedule times are stored.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A stored time back (None for garbage, which counts as "never").
pub fn parse_stamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// A schedule as submitted, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSchedule {
    pub action: ScheduleAction,
    pub command: String,
    pub empty_minutes: i64,
    pub cron: String,
    pub time_zone: String,
}

impl NewSchedule {
    /// Checks every field of a submitted form; the first bad one is the
    /// error.
    pub fn validate(
        action: &str,
        cron: &str,
        time_zone: &str,
        command: &str,
        empty_minutes: &str,
    ) -> Result<NewSchedule, ScheduleError> {
        let action = ScheduleAction::parse(action.trim())
            .ok_or_else(|| ScheduleError::UnknownAction(action.to_string()))?;
        let time_zone = if time_zone.trim().is_empty() {
            "UTC"
        } else {
            time_zone.trim()
        };
        let timing = Timing::parse(cron, time_zone)?;
        let command = match action {
            ScheduleAction::Rcon => rcon::validate_command(command)?.to_string(),
            _ => String::new(),
        };
        let empty_minutes = match action {
            ScheduleAction::RestartWhenEmpty => {
                let text = empty_minutes.trim();
                match text.parse::<i64>() {
                    Ok(m) if (1..=MAX_EMPTY_MINUTES).contains(&m) => m,
                    _ => return Err(ScheduleError::EmptyMinutes(text.to_string())),
                }
            }
            _ => 0,
        };
        Ok(NewSchedule {
            action,
            command,
            empty_minutes,
            cron: cron.trim().to_string(),
            time_zone: timing.tz.name().to_string(),
        })
    }
}

/// What a schedule is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Server(i64),
    Blueprint(i64),
}

const COLUMNS: &str = "id, owner_id, server_id, blueprint_id, action, command, empty_minutes, cron, time_zone, enabled, last_run_at, last_result, armed_at, created_at";

/// Adds a schedule for `owner` (who owns `target`: the caller checked).
pub async fn create(
    pool: &SqlitePool,
    owner: i64,
    target: Target,
    new: &NewSchedule,
) -> Result<i64, ScheduleError> {
    let (server, blueprint) = match target {
        Target::Server(id) => (Some(id), None),
        Target::Blueprint(id) => (None, Some(id)),
    };
    // One statement with the limit inside it: a transaction that reads
    // before it writes fails with SQLITE_BUSY when another connection (the
    // scheduler) writes in between, as a WAL read snapshot cannot be
    // upgraded to a write.
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO schedules (owner_id, server_id, blueprint_id, action, command, empty_minutes, cron, time_zone)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8
         WHERE (SELECT COUNT(*) FROM schedules WHERE server_id IS ?2 AND blueprint_id IS ?3) < ?9
         RETURNING id",
    )
    .bind(owner)
    .bind(server)
    .bind(blueprint)
    .bind(new.action)
    .bind(&new.command)
    .bind(new.empty_minutes)
    .bind(&new.cron)
    .bind(&new.time_zone)
    .bind(MAX_PER_TARGET)
    .fetch_optional(pool)
    .await?;
    id.ok_or(ScheduleError::TooMany)
}

/// The schedules of a server or blueprint, oldest first.
pub async fn list_for(pool: &SqlitePool, target: Target) -> Result<Vec<Schedule>, sqlx::Error> {
    let (column, id) = match target {
        Target::Server(id) => ("server_id", id),
        Target::Blueprint(id) => ("blueprint_id", id),
    };
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM schedules WHERE {column} = ? ORDER BY id"
    ))
    .bind(id)
    .fetch_all(pool)
    .await
}

/// Every enabled schedule (the scheduler's work list).
pub async fn list_enabled(pool: &SqlitePool) -> Result<Vec<Schedule>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM schedules WHERE enabled = 1 ORDER BY id"
    ))
    .fetch_all(pool)
    .await
}

/// Schedule `id` if it belongs to `target` (the caller checked the
/// visitor's right on the target).
pub async fn find_in(
    pool: &SqlitePool,
    target: Target,
    id: i64,
) -> Result<Option<Schedule>, sqlx::Error> {
    let (column, target_id) = match target {
        Target::Server(t) => ("server_id", t),
        Target::Blueprint(t) => ("blueprint_id", t),
    };
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM schedules WHERE id = ? AND {column} = ?"
    ))
    .bind(id)
    .bind(target_id)
    .fetch_optional(pool)
    .await
}

pub async fn delete(pool: &SqlitePool, id: i64) -> Result<(), ScheduleError> {
    let done = sqlx::query("DELETE FROM schedules WHERE id = ?")
        .bind(id)
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ScheduleError::NotFound);
    }
    Ok(())
}

/// Pauses or resumes a schedule. Resuming starts counting from now, so
/// the occurrences of the pause are not "missed".
pub async fn set_enabled(pool: &SqlitePool, id: i64, enabled: bool) -> Result<(), ScheduleError> {
    let done = sqlx::query(
        "UPDATE schedules SET enabled = ?1, armed_at = NULL,
             last_run_at = CASE WHEN ?1 THEN strftime('%Y-%m-%dT%H:%M:%SZ', 'now') ELSE last_run_at END
         WHERE id = ?2",
    )
    .bind(enabled)
    .bind(id)
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ScheduleError::NotFound);
    }
    Ok(())
}

/// Records that the occurrence at `at` was handled, and how.
pub async fn record_run(
    pool: &SqlitePool,
    id: i64,
    at: DateTime<Utc>,
    result: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE schedules SET last_run_at = ?, last_result = ? WHERE id = ?")
        .bind(stamp(at))
        .bind(result)
        .bind(id)
        .execute(pool)
        .await
        .map(drop)
}

/// A "restart when empty" schedule starts (Some) or stops (None) waiting.
pub async fn set_armed(
    pool: &SqlitePool,
    id: i64,
    armed_at: Option<DateTime<Utc>>,
    result: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE schedules SET armed_at = ?, last_result = ? WHERE id = ?")
        .bind(armed_at.map(stamp))
        .bind(result)
        .bind(id)
        .execute(pool)
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_stamp(s).unwrap()
    }

    #[test]
    fn validates_every_field() {
        let ok = NewSchedule::validate("restart", " 0 5 * * * ", "Europe/Berlin", "", "").unwrap();
        assert_eq!(ok.cron, "0 5 * * *");
        assert_eq!(ok.time_zone, "Europe/Berlin");
        assert_eq!(
            NewSchedule::validate("rcon", "*/10 * * * *", "", "say hi", "")
                .unwrap()
                .command,
            "say hi"
        );
        let e = |r: Result<NewSchedule, ScheduleError>| r.unwrap_err().to_string();
        assert!(
            e(NewSchedule::validate("reboot", "0 5 * * *", "UTC", "", ""))
                .contains("unknown schedule action \"reboot\"")
        );
        assert!(e(NewSchedule::validate(
            "restart",
            "61 5 * * *",
            "UTC",
            "",
            ""
        ))
        .contains("\"61 5 * * *\""));
        assert!(e(NewSchedule::validate(
            "restart",
            "0 0 5 * * *",
            "UTC",
            "",
            ""
        ))
        .contains("five fields"));
        assert!(e(NewSchedule::validate("restart", "", "UTC", "", "")).contains("empty"));
        assert!(e(NewSchedule::validate(
            "restart",
            "0 0 31 2 *",
            "UTC",
            "",
            ""
        ))
        .contains("never matches"));
        assert!(e(NewSchedule::validate(
            "restart",
            "0 5 * * *",
            "Mars/Olympus",
            "",
            ""
        ))
        .contains("unknown time zone"));
        assert!(
            e(NewSchedule::validate("rcon", "0 5 * * *", "UTC", "", "")).contains("RCON command")
        );
        assert!(e(NewSchedule::validate(
            "rcon",
            "0 5 * * *",
            "UTC",
            "say a\nquit",
            ""
        ))
        .contains("RCON command"));
        for minutes in ["", "0", "-3", "1441", "ten"] {
            assert!(
                e(NewSchedule::validate(
                    "restart-when-empty",
                    "0 5 * * *",
                    "UTC",
                    "",
                    minutes
                ))
                .contains("minutes"),
                "{minutes:?}"
            );
        }
        assert_eq!(
            NewSchedule::validate("restart-when-empty", "0 5 * * *", "UTC", "", "10")
                .unwrap()
                .empty_minutes,
            10
        );
    }

    #[test]
    fn due_runs_the_latest_occurrence_once_within_grace() {
        let timing = Timing::parse("0 * * * *", "UTC").unwrap();
        let grace = chrono::Duration::minutes(10);
        let since = t("2026-12-01T10:00:00Z");
        assert_eq!(
            due(&timing, since, t("2026-12-01T10:30:00Z"), grace),
            Due::At(t("2026-12-01T11:00:00Z"))
        );
        assert_eq!(
            due(&timing, since, t("2026-12-01T11:00:02Z"), grace),
            Due::Run(t("2026-12-01T11:00:00Z"))
        );
        // Down for five hours: one run for the latest occurrence, if it is
        // recent enough; never one per missed hour.
        assert_eq!(
            due(&timing, since, t("2026-12-01T15:05:00Z"), grace),
            Due::Run(t("2026-12-01T15:00:00Z"))
        );
        assert_eq!(
            due(&timing, since, t("2026-12-01T15:45:00Z"), grace),
            Due::Missed(t("2026-12-01T15:00:00Z"))
        );
    }

    #[test]
    fn times_are_in_the_schedules_zone() {
        // 05:00 in Berlin in winter is 04:00 UTC.
        let timing = Timing::parse("0 5 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            timing.next_after(t("2026-12-01T00:00:00Z")),
            Some(t("2026-12-01T04:00:00Z"))
        );
        let s = Schedule {
            id: 1,
            owner_id: 1,
            server_id: Some(1),
            blueprint_id: None,
            action: ScheduleAction::Restart,
            command: String::new(),
            empty_minutes: 0,
            cron: "0 5 * * *".into(),
            time_zone: "Europe/Berlin".into(),
            enabled: true,
            last_run_at: None,
            last_result: None,
            armed_at: None,
            created_at: "2026-12-01T00:00:00Z".into(),
        };
        assert_eq!(
            s.next_runs(2, t("2026-12-01T00:00:00Z")),
            ["Tue 2026-12-01 05:00 CET", "Wed 2026-12-02 05:00 CET"]
        );
    }
}
