//! Rollout policies: how a blueprint's servers move onto a new game build.
//! A server moves by a restart (which initialises it on the newest build);
//! the loop that decides when is `tasks::rollout`. This module holds the
//! policies, the rollouts' records and the rules that need no I/O.
//!
//! - manual: servers move when someone starts, restarts or resets them;
//! - when empty: each running server restarts once no human has played on
//!   it for the policy's minutes;
//! - canary: one server moves first; once it has run the policy's minutes
//!   without a crash or a SourceMod load error on its console, the rest
//!   follow. A canary that fails stops the rollout and says why.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use l4d2_contract::builds::BuildId;
use serde::Serialize;
use sqlx::SqlitePool;

/// Longest wait a policy may set: a day.
pub const MAX_MINUTES: i64 = 24 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Policy {
    Manual,
    WhenEmpty,
    Canary,
}

impl Policy {
    pub const ALL: [Policy; 3] = [Policy::Manual, Policy::WhenEmpty, Policy::Canary];

    pub fn parse(s: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.as_str() == s.trim())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Manual => "manual",
            Policy::WhenEmpty => "when-empty",
            Policy::Canary => "canary",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Policy::Manual => "by hand (start, restart or reset)",
            Policy::WhenEmpty => "restart each server once it is empty",
            Policy::Canary => "one canary server first, then the rest",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("unknown update policy {0:?} (manual, when-empty or canary)")]
    BadPolicy(String),
    #[error("{0:?} is not a number of minutes from 0 to {MAX_MINUTES}")]
    BadMinutes(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A blueprint's policy as its form sends it.
pub fn parse_policy(policy: &str, minutes: &str) -> Result<(Policy, i64), RolloutError> {
    let p = Policy::parse(policy).ok_or_else(|| RolloutError::BadPolicy(policy.to_owned()))?;
    let m = minutes
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|m| (0..=MAX_MINUTES).contains(m))
        .ok_or_else(|| RolloutError::BadMinutes(minutes.chars().take(40).collect()))?;
    Ok((p, m))
}

/// Sets blueprint `id`'s policy (its owner was checked by the caller).
pub async fn set_policy(
    pool: &SqlitePool,
    id: i64,
    policy: Policy,
    minutes: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE blueprints SET rollout_policy = ?, rollout_minutes = ? WHERE id = ?")
        .bind(policy.as_str())
        .bind(minutes)
        .bind(id)
        .execute(pool)
        .await
        .map(drop)
}

/// The policy of one blueprint.
pub async fn policy_of(pool: &SqlitePool, id: i64) -> Result<(Policy, i64), sqlx::Error> {
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT rollout_policy, rollout_minutes FROM blueprints WHERE id = ?")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(row
        .and_then(|(p, m)| Some((Policy::parse(&p)?, m)))
        .unwrap_or((Policy::Manual, 10)))
}

/// Blueprints whose servers move by themselves.
pub async fn automatic(pool: &SqlitePool) -> Result<Vec<(i64, Policy, i64)>, sqlx::Error> {
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT id, rollout_policy, rollout_minutes FROM blueprints WHERE rollout_policy != 'manual' ORDER BY id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, p, m)| Some((id, Policy::parse(&p)?, m)))
        .collect())
}

/// One rollout of a blueprint onto a build.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Rollout {
    pub id: i64,
    pub blueprint_id: i64,
    pub build: i64,
    pub state: String,
    pub canary_server_id: Option<i64>,
    pub canary_name: Option<String>,
    pub canary_job_id: Option<i64>,
    pub canary_crashes: Option<i64>,
    pub canary_since: Option<String>,
    pub message: Option<String>,
    pub updated_at: String,
}

const COLUMNS: &str = "id, blueprint_id, build, state, canary_server_id, canary_name, canary_job_id, canary_crashes, canary_since, message, updated_at";

pub async fn find(
    pool: &SqlitePool,
    blueprint_id: i64,
    build: BuildId,
) -> Result<Option<Rollout>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM rollouts WHERE blueprint_id = ? AND build = ?"
    ))
    .bind(blueprint_id)
    .bind(build_i64(build))
    .fetch_optional(pool)
    .await
}

/// Whether any blueprint's rollout of `build` is still moving servers
/// (its canary, or the servers following it).
pub async fn any_under_way(pool: &SqlitePool, build: BuildId) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS(SELECT 1 FROM rollouts WHERE build = ? AND state IN ('canary', 'following'))",
    )
    .bind(build_i64(build))
    .fetch_one(pool)
    .await
}

/// The newest rollout of a blueprint, for its page.
pub async fn latest(pool: &SqlitePool, blueprint_id: i64) -> Result<Option<Rollout>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM rollouts WHERE blueprint_id = ? ORDER BY build DESC LIMIT 1"
    ))
    .bind(blueprint_id)
    .fetch_optional(pool)
    .await
}

fn build_i64(b: BuildId) -> i64 {
    i64::try_from(b.0).unwrap_or(i64::MAX)
}

/// Records that `server` moves first, by job `job_id`.
pub async fn start_canary(
    pool: &SqlitePool,
    blueprint_id: i64,
    build: BuildId,
    server: (i64, &str, i64),
    job_id: i64,
) -> Result<(), sqlx::Error> {
    let (server_id, name, crashes) = server;
    sqlx::query(
        "INSERT INTO rollouts (blueprint_id, build, state, canary_server_id, canary_name, canary_job_id, canary_crashes)
         VALUES (?, ?, 'canary', ?, ?, ?, ?)",
    )
    .bind(blueprint_id)
    .bind(build_i64(build))
    .bind(server_id)
    .bind(name)
    .bind(job_id)
    .bind(crashes)
    .execute(pool)
    .await
    .map(drop)
}

/// The canary's move finished: its watch starts now.
pub async fn canary_moved(pool: &SqlitePool, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE rollouts SET canary_since = strftime('%Y-%m-%dT%H:%M:%SZ', 'now'),
             updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE id = ?",
    )
    .bind(id)
    .execute(pool)
    .await
    .map(drop)
}

/// Moves rollout `id` to `state` with `message`.
pub async fn set_state(
    pool: &SqlitePool,
    id: i64,
    state: &str,
    message: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE rollouts SET state = ?, message = COALESCE(?, message),
             updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE id = ?",
    )
    .bind(state)
    .bind(message)
    .bind(id)
    .execute(pool)
    .await
    .map(drop)
}

/// The first line real srcds prints when it starts (the crash handler's
/// set-up): console lines before it, in a follower's backlog, belong to an
/// earlier run.
pub const START_LINE: &str = "Setting breakpad minidump AppID";

/// Whether a console line is SourceMod failing to load something: a
/// plugin (`[SM] Unable to load plugin "x.smx": …`), an extension, or
/// SourceMod itself (what a game update that moved signatures causes).
/// SourceMod starts such lines with its tag; chat and log lines start with
/// a player's name or `L <date>`, so the tag must open the line (after the
/// simulator's `[plugin <file>] ` prefix for its stand-in plugins).
pub fn sourcemod_error(line: &str) -> bool {
    let line = line.trim_start();
    let line = match line.strip_prefix("[plugin ") {
        Some(rest) => rest.split_once("] ").map_or(rest, |(_, l)| l),
        None => line,
    };
    [
        "[SM] Unable to load",
        "[SM] Failed to load",
        "[SM] Exception reported",
        "SourceMod failed to load",
    ]
    .iter()
    .any(|p| line.starts_with(p))
}

/// How long each server has been empty of humans, for the when-empty
/// policy. Fed the players the live poll counted; a server with no reading
/// (not answering) is not empty.
#[derive(Debug, Default)]
pub struct EmptySince(HashMap<i64, Instant>);

impl EmptySince {
    /// Notes server `id`'s humans now; returns how long it has been empty.
    pub fn observe(&mut self, id: i64, humans: Option<u32>, now: Instant) -> Option<Duration> {
        match humans {
            Some(0) => {
                let since = *self.0.entry(id).or_insert(now);
                Some(now.saturating_duration_since(since))
            }
            _ => {
                self.0.remove(&id);
                None
            }
        }
    }

    pub fn forget(&mut self, id: i64) {
        self.0.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_and_minutes_parse_strictly() {
        assert_eq!(
            parse_policy("when-empty", " 5 ").unwrap(),
            (Policy::WhenEmpty, 5)
        );
        assert_eq!(parse_policy("canary", "0").unwrap(), (Policy::Canary, 0));
        for (p, m) in [
            ("sometimes", "5"),
            ("", "5"),
            ("manual", "-1"),
            ("manual", "1441"),
            ("manual", "5m"),
            ("manual", ""),
        ] {
            assert!(parse_policy(p, m).is_err(), "{p:?} {m:?}");
        }
    }

    #[test]
    fn sourcemod_errors() {
        assert!(sourcemod_error(
            "[plugin x] [SM] Unable to load plugin \"foo.smx\": Native \"L4D_X\" was not found"
        ));
        assert!(sourcemod_error(
            "[SM] Unable to load extension \"left4dhooks.ext\": signature not found"
        ));
        assert!(!sourcemod_error("[SM] Loaded plugin foo.smx"));
        assert!(!sourcemod_error("Player said: [SM] fine"));
        assert!(!sourcemod_error(
            "L 12/01/2026 - 20:00:00: \"Bob<2><STEAM_1:0:1><Survivor>\" say \"[SM] Unable to load\""
        ));
    }

    #[test]
    fn empty_counts_from_the_first_empty_reading() {
        let mut e = EmptySince::default();
        let t0 = Instant::now();
        assert_eq!(e.observe(1, Some(0), t0), Some(Duration::ZERO));
        assert_eq!(
            e.observe(1, Some(0), t0 + Duration::from_secs(60)),
            Some(Duration::from_secs(60))
        );
        assert_eq!(e.observe(1, Some(2), t0 + Duration::from_secs(61)), None);
        assert_eq!(
            e.observe(1, Some(0), t0 + Duration::from_secs(90)),
            Some(Duration::ZERO),
            "a player came and went: the count starts again"
        );
        assert_eq!(e.observe(1, None, t0 + Duration::from_secs(91)), None);
    }
}
