//! The instance spec: the YAML file `l4d2ctl initialize <name> -f <file>`
//! reads. The web app writes it (serde); the host parses it by hand so every
//! error names the field (see `l4d2host::spec`), into this same type.

use serde::{Deserialize, Serialize};

/// The kernel stacks at most 500 lower layers.
pub const MAX_LOWERDIRS: usize = 500;
/// Overlays a spec may list: every lower layer but the installation.
pub const MAX_OVERLAYS: usize = MAX_LOWERDIRS - 1;
/// server.cfg text larger than this is certainly a mistake.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;
/// Launch arguments (tokens) a spec may carry.
pub const MAX_ARGS: usize = 64;
/// Longest single launch argument.
pub const MAX_ARG_LEN: usize = 256;
/// Largest spec file.
pub const MAX_SPEC_BYTES: usize = 1024 * 1024;

/// Steam id bans a spec may carry.
pub const MAX_BANS: usize = 10_000;
/// SourceMod admins a spec may carry.
pub const MAX_ADMINS: usize = 500;
/// The longest timed ban: ten years, in minutes.
pub const MAX_BAN_MINUTES: u32 = 10 * 366 * 24 * 60;
/// SourceMod's admin flag letters (`a`–`t`, `z` for root).
pub const ADMIN_FLAGS: &str = "abcdefghijklmnopqrstz";

/// The keys of a spec file, for error messages.
pub const KEYS: &str = "port, build, overlays, args, config, bans, admins";

/// One instance definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSpec {
    /// The game port (UDP game traffic, TCP RCON). The client and SourceTV
    /// ports follow from it ([`crate::launch::GamePorts`]).
    pub port: u16,
    /// The game build the instance runs on (its lowest layer is
    /// `installation/<build>`); absent: the newest installed build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<crate::builds::BuildId>,
    /// Overlay directories, uppermost first: absolute, or relative to the
    /// data root (`overlays/<id>`). The installation is always the lowest layer.
    #[serde(default)]
    pub overlays: Vec<String>,
    /// Extra srcds arguments a blueprint chose (see [`crate::launch`]).
    #[serde(default)]
    pub args: Vec<String>,
    /// server.cfg text.
    #[serde(default)]
    pub config: String,
    /// Steam id bans, applied at every start (`banned_user.cfg`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bans: Vec<Ban>,
    /// SourceMod admins, written to `admins_simple.ini` at every start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admins: Vec<Admin>,
}

/// One Steam id ban.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ban {
    /// `STEAM_X:Y:Z` or `[U:1:N]` (see [`check_steam_id`]).
    pub steam_id: String,
    /// Minutes left, 0 = permanent (the engine's `banid` convention).
    pub minutes: u32,
}

/// One SourceMod admin (`admins_simple.ini`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    pub steam_id: String,
    /// Flag letters from [`ADMIN_FLAGS`], e.g. `abcz`.
    pub flags: String,
    /// Immunity level (SourceMod: higher is immune to lower).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immunity: Option<u8>,
}

/// A Steam id as the engine's `banid` and SourceMod accept it:
/// `STEAM_X:Y:Z` (X 0–5, Y 0 or 1, Z a number) or `[U:1:N]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a Steam id (expected STEAM_1:0:12345 or [U:1:24690])")]
pub struct BadSteamId(pub String);

/// The Steam account number of a valid Steam id (the `N` of `[U:1:N]`).
pub fn steam_account(s: &str) -> Result<u32, BadSteamId> {
    check_steam_id(s)?;
    let bad = || BadSteamId(s.to_string());
    if let Some(rest) = s.strip_prefix("STEAM_") {
        let mut parts = rest.split(':').skip(1);
        let y: u32 = parts.next().and_then(|y| y.parse().ok()).ok_or_else(bad)?;
        let z: u32 = parts.next().and_then(|z| z.parse().ok()).ok_or_else(bad)?;
        return Ok(z * 2 + y);
    }
    s[5..s.len() - 1].parse().map_err(|_| bad())
}

/// One spelling per account, as L4D2 prints it in `status`: `STEAM_1:Y:Z`
/// (`STEAM_0:1:5`, `STEAM_1:1:5` and `[U:1:11]` are the same player).
pub fn canonical_steam_id(s: &str) -> Result<String, BadSteamId> {
    let n = steam_account(s)?;
    Ok(format!("STEAM_1:{}:{}", n % 2, n / 2))
}

pub fn check_steam_id(s: &str) -> Result<(), BadSteamId> {
    let bad = || BadSteamId(s.to_string());
    let number = |n: &str| !n.is_empty() && n.len() <= 10 && n.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = s.strip_prefix("STEAM_") {
        let parts: Vec<&str> = rest.split(':').collect();
        let [x, y, z] = parts[..] else {
            return Err(bad());
        };
        let ok = matches!(x, "0" | "1" | "2" | "3" | "4" | "5")
            && matches!(y, "0" | "1")
            && number(z)
            && z.parse::<u32>().is_ok_and(|z| z <= u32::MAX / 2);
        return if ok { Ok(()) } else { Err(bad()) };
    }
    match s.strip_prefix("[U:1:").and_then(|r| r.strip_suffix(']')) {
        Some(n) if number(n) && n.parse::<u32>().is_ok_and(|n| n > 0) => Ok(()),
        _ => Err(bad()),
    }
}

/// SourceMod flags: letters from [`ADMIN_FLAGS`], each at most once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadFlags {
    #[error("no admin flags given (use letters a–t, or z for all)")]
    Empty,
    #[error("{0:?} is not a SourceMod admin flag (letters a–t, or z for all)")]
    Unknown(char),
    #[error("admin flag {0:?} is given twice")]
    Repeated(char),
}

pub fn check_admin_flags(flags: &str) -> Result<(), BadFlags> {
    if flags.is_empty() {
        return Err(BadFlags::Empty);
    }
    for (i, c) in flags.char_indices() {
        if !ADMIN_FLAGS.contains(c) {
            return Err(BadFlags::Unknown(c));
        }
        if flags[..i].contains(c) {
            return Err(BadFlags::Repeated(c));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steam_ids() {
        for ok in ["STEAM_1:0:1234", "STEAM_0:1:1", "[U:1:2469]"] {
            assert_eq!(check_steam_id(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "STEAM_1:2:5",
            "STEAM_1:0",
            "STEAM_1:0:",
            "STEAM_9:0:1",
            "steam_1:0:1",
            "STEAM_ID_LAN",
            "[U:1:0]",
            "[U:2:5]",
            "STEAM_1:0:1 kick",
            "STEAM_1:0:1;quit",
            "STEAM_1:0:99999999999",
        ] {
            assert!(check_steam_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_spelling_per_account() {
        for same in ["STEAM_0:1:5", "STEAM_1:1:5", "[U:1:11]"] {
            assert_eq!(canonical_steam_id(same).unwrap(), "STEAM_1:1:5");
        }
        assert!(canonical_steam_id("STEAM_1:1").is_err());
    }

    #[test]
    fn admin_flags() {
        assert_eq!(check_admin_flags("abcz"), Ok(()));
        assert_eq!(check_admin_flags(""), Err(BadFlags::Empty));
        assert_eq!(check_admin_flags("abu"), Err(BadFlags::Unknown('u')));
        assert_eq!(check_admin_flags("a\"b"), Err(BadFlags::Unknown('"')));
        assert_eq!(check_admin_flags("aba"), Err(BadFlags::Repeated('a')));
    }
}
