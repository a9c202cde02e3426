//! Players on a server: Steam id bans (timed or permanent) and SourceMod
//! admins, kept per server and written into the instance spec at every
//! start and reset (the host turns them into the game's `banned_user.cfg`
//! and SourceMod's `admins_simple.ini`), and the console commands that
//! apply a kick, ban or unban to a running server at once.

use std::path::Path;

use l4d2_contract::spec::{self as contract, BadFlags, BadSteamId};
use sqlx::SqlitePool;

/// Longest kick or ban reason.
pub const MAX_REASON_LEN: usize = 120;
/// Bans and admins one server may keep (the spec's limits).
pub const MAX_BANS: usize = contract::MAX_BANS;
pub const MAX_ADMINS: usize = contract::MAX_ADMINS;

#[derive(Debug, thiserror::Error)]
pub enum PlayersError {
    #[error(transparent)]
    SteamId(#[from] BadSteamId),
    #[error(transparent)]
    Flags(#[from] BadFlags),
    #[error("ban length {0:?}: enter a whole number of minutes, hours or days from 1 (or choose permanent)")]
    Length(String),
    #[error("ban unit {0:?}: choose minutes, hours, days or permanent")]
    Unit(String),
    #[error("a ban of more than ten years: choose permanent instead")]
    TooLong,
    #[error("enter a reason for the kick (the player sees it)")]
    NoReason,
    #[error("the reason is {0} characters; the limit is {MAX_REASON_LEN}")]
    ReasonTooLong(usize),
    #[error("the reason must be one line without double quotes")]
    ReasonChars,
    #[error("immunity {0:?}: enter a whole number from 0 to 255, or leave it empty")]
    Immunity(String),
    #[error("{0} is not banned on this server")]
    NotBanned(String),
    #[error("{0} is not an admin on this server")]
    NotAdmin(String),
    #[error("this server already keeps {0} bans, the most it can")]
    TooManyBans(usize),
    #[error("this server already has {0} admins, the most it can")]
    TooManyAdmins(usize),
    #[error("players: {0}")]
    Db(#[from] sqlx::Error),
}

/// How long a ban lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanLength {
    Minutes(u32),
    Permanent,
}

impl BanLength {
    /// From the form: an amount and a unit (`minutes`, `hours`, `days`,
    /// `permanent`; the amount is ignored for permanent).
    pub fn parse(amount: &str, unit: &str) -> Result<BanLength, PlayersError> {
        let per = match unit {
            "permanent" => return Ok(BanLength::Permanent),
            "minutes" => 1u64,
            "hours" => 60,
            "days" => 24 * 60,
            other => return Err(PlayersError::Unit(other.to_string())),
        };
        let amount = amount.trim();
        let n: u64 = amount
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| PlayersError::Length(amount.to_string()))?;
        let minutes = n.saturating_mul(per);
        match u32::try_from(minutes) {
            Ok(m) if m <= contract::MAX_BAN_MINUTES => Ok(BanLength::Minutes(m)),
            _ => Err(PlayersError::TooLong),
        }
    }

    pub fn describe(self) -> String {
        match self {
            BanLength::Permanent => "permanently".into(),
            BanLength::Minutes(m) if m % (24 * 60) == 0 => plural(m / (24 * 60), "day"),
            BanLength::Minutes(m) if m % 60 == 0 => plural(m / 60, "hour"),
            BanLength::Minutes(m) => plural(m, "minute"),
        }
    }
}

fn plural(n: u32, unit: &str) -> String {
    if n == 1 {
        format!("for 1 {unit}")
    } else {
        format!("for {n} {unit}s")
    }
}

/// A Steam id as entered, in the one spelling the panel keeps.
pub fn steam_id(raw: &str) -> Result<String, PlayersError> {
    Ok(contract::canonical_steam_id(raw.trim())?)
}

/// A kick or ban reason: trimmed, one line, no double quotes (it is sent
/// inside quotes on the console). `required` for kicks.
pub fn reason(raw: &str, required: bool) -> Result<String, PlayersError> {
    let r = raw.trim();
    if r.is_empty() && required {
        return Err(PlayersError::NoReason);
    }
    let len = r.chars().count();
    if len > MAX_REASON_LEN {
        return Err(PlayersError::ReasonTooLong(len));
    }
    if r.chars().any(|c| c.is_control() || c == '"') {
        return Err(PlayersError::ReasonChars);
    }
    Ok(r.to_string())
}

/// SourceMod flags and an optional immunity level, as entered.
pub fn admin_access(flags: &str, immunity: &str) -> Result<(String, Option<u8>), PlayersError> {
    let flags = flags.trim();
    contract::check_admin_flags(flags)?;
    let immunity = immunity.trim();
    let level = if immunity.is_empty() {
        None
    } else {
        Some(
            immunity
                .parse::<u8>()
                .map_err(|_| PlayersError::Immunity(immunity.to_string()))?,
        )
    };
    Ok((flags.to_string(), level))
}

/// `kickid <userid> "<reason>"`.
pub fn kick_command(userid: u32, reason: &str) -> String {
    format!("kickid {userid} \"{reason}\"")
}

/// `banid <minutes> <steamid> kick` (0 minutes = permanent).
pub fn ban_command(steam_id: &str, length: BanLength) -> String {
    let minutes = match length {
        BanLength::Permanent => 0,
        BanLength::Minutes(m) => m,
    };
    format!("banid {minutes} {steam_id} kick")
}

/// `removeid <steamid>`.
pub fn unban_command(steam_id: &str) -> String {
    format!("removeid {steam_id}")
}

/// The userid of the connected human with `steam_id`, from the answer to
/// RCON `status`.
pub fn connected_userid(status: &str, steam_id: &str) -> Option<u32> {
    let parsed = source_proto::status::parse_status(status).ok()?;
    parsed
        .players
        .iter()
        .filter(|p| !p.is_bot)
        .find(|p| contract::canonical_steam_id(&p.unique_id).is_ok_and(|id| id == steam_id))
        .map(|p| p.userid)
}

/// One ban as the server page lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BanRow {
    pub steam_id: String,
    /// Unix seconds; None = permanent.
    pub expires_at: Option<i64>,
    pub reason: String,
    pub banned_by: Option<String>,
    pub created_at: String,
}

impl BanRow {
    /// Whole minutes left at `now` (rounded up), None for a permanent ban.
    pub fn minutes_left(&self, now: i64) -> Option<u32> {
        self.expires_at
            .map(|t| u32::try_from(((t - now).max(0) + 59) / 60).unwrap_or(u32::MAX))
    }
}

/// The bans of a server that have not ended at `now`.
pub async fn bans(pool: &SqlitePool, server_id: i64, now: i64) -> Result<Vec<BanRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT b.steam_id, b.expires_at, b.reason, u.username AS banned_by, b.created_at
         FROM server_bans b LEFT JOIN users u ON u.id = b.banned_by
         WHERE b.server_id = ? AND (b.expires_at IS NULL OR b.expires_at > ?)
         ORDER BY b.created_at DESC, b.steam_id",
    )
    .bind(server_id)
    .bind(now)
    .fetch_all(pool)
    .await
}

/// Bans (or re-bans with the new length and reason) `steam_id`; ended bans
/// of the server are dropped on the way.
pub async fn ban(
    pool: &SqlitePool,
    server_id: i64,
    user_id: i64,
    steam_id: &str,
    length: BanLength,
    reason: &str,
    now: i64,
) -> Result<(), PlayersError> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM server_bans WHERE server_id = ? AND expires_at <= ?")
        .bind(server_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let (count, exists): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(steam_id = ?), 0) FROM server_bans WHERE server_id = ?",
    )
    .bind(steam_id)
    .bind(server_id)
    .fetch_one(&mut *tx)
    .await?;
    if exists == 0 && count as usize >= MAX_BANS {
        return Err(PlayersError::TooManyBans(MAX_BANS));
    }
    let expires_at = match length {
        BanLength::Permanent => None,
        BanLength::Minutes(m) => Some(now + i64::from(m) * 60),
    };
    sqlx::query(
        "INSERT INTO server_bans (server_id, steam_id, expires_at, reason, banned_by) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (server_id, steam_id) DO UPDATE SET expires_at = excluded.expires_at,
           reason = excluded.reason, banned_by = excluded.banned_by,
           created_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')",
    )
    .bind(server_id)
    .bind(steam_id)
    .bind(expires_at)
    .bind(reason)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Lifts a ban (an ended one counts as not banned).
pub async fn unban(
    pool: &SqlitePool,
    server_id: i64,
    steam_id: &str,
    now: i64,
) -> Result<(), PlayersError> {
    let done = sqlx::query(
        "DELETE FROM server_bans WHERE server_id = ? AND steam_id = ? AND (expires_at IS NULL OR expires_at > ?)",
    )
    .bind(server_id)
    .bind(steam_id)
    .bind(now)
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(PlayersError::NotBanned(steam_id.to_string()));
    }
    Ok(())
}

/// One SourceMod admin of a server.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AdminRow {
    pub steam_id: String,
    pub flags: String,
    pub immunity: Option<i64>,
    pub added_by: Option<String>,
    pub created_at: String,
}

pub async fn admins(pool: &SqlitePool, server_id: i64) -> Result<Vec<AdminRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT a.steam_id, a.flags, a.immunity, u.username AS added_by, a.created_at
         FROM server_admins a LEFT JOIN users u ON u.id = a.added_by
         WHERE a.server_id = ? ORDER BY a.steam_id",
    )
    .bind(server_id)
    .fetch_all(pool)
    .await
}

/// Adds an admin, or changes the flags and immunity of one already there.
pub async fn set_admin(
    pool: &SqlitePool,
    server_id: i64,
    user_id: i64,
    steam_id: &str,
    flags: &str,
    immunity: Option<u8>,
) -> Result<(), PlayersError> {
    let mut tx = pool.begin().await?;
    let (count, exists): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(steam_id = ?), 0) FROM server_admins WHERE server_id = ?",
    )
    .bind(steam_id)
    .bind(server_id)
    .fetch_one(&mut *tx)
    .await?;
    if exists == 0 && count as usize >= MAX_ADMINS {
        return Err(PlayersError::TooManyAdmins(MAX_ADMINS));
    }
    sqlx::query(
        "INSERT INTO server_admins (server_id, steam_id, flags, immunity, added_by) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (server_id, steam_id) DO UPDATE SET flags = excluded.flags,
           immunity = excluded.immunity, added_by = excluded.added_by",
    )
    .bind(server_id)
    .bind(steam_id)
    .bind(flags)
    .bind(immunity.map(i64::from))
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn remove_admin(
    pool: &SqlitePool,
    server_id: i64,
    steam_id: &str,
) -> Result<(), PlayersError> {
    let done = sqlx::query("DELETE FROM server_admins WHERE server_id = ? AND steam_id = ?")
        .bind(server_id)
        .bind(steam_id)
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(PlayersError::NotAdmin(steam_id.to_string()));
    }
    Ok(())
}

/// The bans and admins for the instance spec at `now`: ended bans left
/// out, timed ones with the minutes left.
pub async fn spec_entries(
    pool: &SqlitePool,
    server_id: i64,
    now: i64,
) -> Result<(Vec<contract::Ban>, Vec<contract::Admin>), sqlx::Error> {
    let bans = bans(pool, server_id, now)
        .await?
        .into_iter()
        .map(|b| contract::Ban {
            // A ban still running has at least a minute left (rounded up).
            minutes: b.minutes_left(now).map_or(0, |m| m.max(1)),
            steam_id: b.steam_id,
        })
        .collect();
    let admins = admins(pool, server_id)
        .await?
        .into_iter()
        .map(|a| contract::Admin {
            steam_id: a.steam_id,
            flags: a.flags,
            immunity: a.immunity.and_then(|i| u8::try_from(i).ok()),
        })
        .collect();
    Ok((bans, admins))
}

/// Whether any overlay of the stack (uppermost first, `overlays/<id>`
/// under the data root) carries SourceMod (`left4dead2/addons/sourcemod`).
/// Only metadata is read, nothing is followed into.
pub fn stack_has_sourcemod(root: &Path, overlay_ids: &[i64]) -> bool {
    overlay_ids.iter().any(|id| {
        let dir = crate::overlays::overlay_dir(root, *id).join("left4dead2/addons/sourcemod");
        std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ban_lengths() {
        assert_eq!(
            BanLength::parse("30", "minutes").unwrap(),
            BanLength::Minutes(30)
        );
        assert_eq!(
            BanLength::parse(" 2 ", "hours").unwrap(),
            BanLength::Minutes(120)
        );
        assert_eq!(
            BanLength::parse("7", "days").unwrap(),
            BanLength::Minutes(10_080)
        );
        assert_eq!(
            BanLength::parse("", "permanent").unwrap(),
            BanLength::Permanent
        );
        assert_eq!(BanLength::Minutes(10_080).describe(), "for 7 days");
        assert_eq!(BanLength::Minutes(1).describe(), "for 1 minute");
        for (amount, unit) in [
            ("0", "minutes"),
            ("-1", "hours"),
            ("1.5", "days"),
            ("x", "days"),
            ("", "minutes"),
        ] {
            assert!(
                matches!(BanLength::parse(amount, unit), Err(PlayersError::Length(_))),
                "{amount} {unit}"
            );
        }
        assert!(matches!(
            BanLength::parse("1", "weeks"),
            Err(PlayersError::Unit(_))
        ));
        assert!(matches!(
            BanLength::parse("99999", "days"),
            Err(PlayersError::TooLong)
        ));
    }

    #[test]
    fn reasons_and_commands() {
        assert!(matches!(reason("  ", true), Err(PlayersError::NoReason)));
        assert_eq!(reason("  ", false).unwrap(), "");
        assert!(matches!(
            reason("a\"; quit", false),
            Err(PlayersError::ReasonChars)
        ));
        assert!(matches!(
            reason("a\nb", false),
            Err(PlayersError::ReasonChars)
        ));
        assert_eq!(kick_command(7, "spam"), "kickid 7 \"spam\"");
        assert_eq!(
            ban_command("STEAM_1:0:5", BanLength::Permanent),
            "banid 0 STEAM_1:0:5 kick"
        );
        assert_eq!(
            ban_command("STEAM_1:0:5", BanLength::Minutes(60)),
            "banid 60 STEAM_1:0:5 kick"
        );
    }

    #[test]
    fn finds_the_connected_player_by_steam_id() {
        let status = "hostname: x\nversion : 2.2.4.3 9999 secure\nudp/ip  : 127.0.0.1:27015\nos      : Linux Dedicated\nmap     : c1m1_hotel\nplayers : 1 humans, 0 bots (4 max) (not hibernating) (unreserved)\n\n# userid name uniqueid connected ping loss state rate adr\n#  7 1 \"Griefer\" STEAM_1:0:1234 00:05 30 0 active 30000 203.0.113.5:27005\n#end\n";
        assert_eq!(connected_userid(status, "STEAM_1:0:1234"), Some(7));
        assert_eq!(connected_userid(status, "STEAM_1:0:9"), None);
    }
}
