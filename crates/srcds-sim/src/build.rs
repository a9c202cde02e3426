//! Steam build ids, shared by `steamcmd-sim` and `srcds-sim`.
//!
//! The build Steam "publishes" for app 222860 is one file (the path in
//! `LEFT4ME_SIM_PUBLISHED_BUILD_FILE`, default
//! `/etc/left4me-sim/published-build`) holding a decimal build id; writing
//! it is "Valve published a new build". `steamcmd-sim` installs that build
//! (`app_update`) and reports it (`app_info_print`); `srcds-sim` compares it
//! with the build it runs, read from the tree's
//! `steamapps/appmanifest_222860.acf`, as the master server does.
//!
//! A build decides a few files (`left4dead2/steam.inf`, one server binary
//! placeholder per depot); everything else, the big `pak01_dir.vpk`
//! included, is the same in every build, so an update downloads little.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::UNIX_EPOCH;
use thiserror::Error;

/// The environment variable naming the published build file.
pub const PUBLISHED_BUILD_FILE_VAR: &str = "LEFT4ME_SIM_PUBLISHED_BUILD_FILE";
/// The published build file when the variable is unset or empty.
pub const DEFAULT_PUBLISHED_BUILD_FILE: &str = "/etc/left4me-sim/published-build";
/// steamcmd-sim's build when no published build file exists.
pub const BUILD_ID_VAR: &str = "STEAMCMD_SIM_BUILD_ID";
/// The build when neither the file nor `STEAMCMD_SIM_BUILD_ID` names one.
pub const DEFAULT_BUILD_ID: BuildId = BuildId(15_000_001);
/// "timeupdated" of a build that has no file to date it (2024-11-08).
pub const DEFAULT_TIME_UPDATED: u64 = 1_731_023_958;
/// The manifest steamcmd writes for the dedicated server app.
pub const APP_MANIFEST: &str = "steamapps/appmanifest_222860.acf";

/// A Steam build id: 1 to 20 decimal digits (u128, so 20 nines still fit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BuildId(pub u128);

/// Text that is not a build id.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{0:?} is not a build id (1 to 20 decimal digits)")]
pub struct NotABuildId(pub String);

impl FromStr for BuildId {
    type Err = NotABuildId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.trim();
        if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NotABuildId(s.to_owned()));
        }
        digits
            .parse()
            .map(BuildId)
            .map_err(|_| NotABuildId(s.to_owned()))
    }
}

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why the published build file could not be used.
#[derive(Debug, Error)]
pub enum PublishedBuildError {
    #[error("cannot read the published build file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the published build file {path} is broken: {source}")]
    Garbage {
        path: PathBuf,
        #[source]
        source: NotABuildId,
    },
}

/// The build Steam offers, and when it was published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub id: BuildId,
    /// Unix seconds: the file's mtime, or [`DEFAULT_TIME_UPDATED`].
    pub time_updated: u64,
}

/// The published build file for the value of
/// [`PUBLISHED_BUILD_FILE_VAR`] (unset or empty: the default path).
pub fn published_build_file(var: Option<std::ffi::OsString>) -> PathBuf {
    match var {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(DEFAULT_PUBLISHED_BUILD_FILE),
    }
}

/// Reads the published build file; `Ok(None)` when it does not exist.
pub fn read_published(path: &Path) -> Result<Option<Published>, PublishedBuildError> {
    let read_error = |source| PublishedBuildError::Read {
        path: path.to_path_buf(),
        source,
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_error(e)),
    };
    let text = String::from_utf8_lossy(&bytes);
    let id = text
        .parse::<BuildId>()
        .map_err(|source| PublishedBuildError::Garbage {
            path: path.to_path_buf(),
            source,
        })?;
    let time_updated = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(DEFAULT_TIME_UPDATED, |d| d.as_secs());
    Ok(Some(Published { id, time_updated }))
}

/// The four digits of a build's `ServerVersion` (2200-2299). Consecutive
/// builds get consecutive versions and [`DEFAULT_BUILD_ID`] is 2236
/// (2.2.3.6, the version the simulator has always reported); builds 100
/// apart share a version, which only the build-specific binaries tell apart.
fn server_version(id: BuildId) -> u32 {
    2200 + ((id.0 + 35) % 100) as u32
}

/// `PatchVersion` of a build, e.g. `2.2.3.6`.
pub fn patch_version(id: BuildId) -> String {
    let v = server_version(id);
    format!("{}.{}.{}.{}", v / 1000, v / 100 % 10, v / 10 % 10, v % 10)
}

/// `left4dead2/steam.inf` of a build, in the real file's format.
pub fn steam_inf(id: BuildId) -> String {
    let v = server_version(id);
    format!(
        "ClientVersion={v}\nServerVersion={v}\nPatchVersion={}\nProductName=left4dead2\nappID=550\nServerAppID=222860\n",
        patch_version(id)
    )
}

/// The `"buildid"` of an appmanifest's text, if it has a valid one.
pub fn manifest_build(text: &str) -> Option<BuildId> {
    text.lines().find_map(|line| {
        let mut fields = line.split('"').filter(|f| !f.trim().is_empty());
        match (fields.next(), fields.next()) {
            (Some(key), Some(value)) if key.eq_ignore_ascii_case("buildid") => value.parse().ok(),
            _ => None,
        }
    })
}

/// The build installed in `tree` (its appmanifest); `None` when there is no
/// manifest or it names no build.
pub fn installed_build(tree: &Path) -> Option<BuildId> {
    let text = std::fs::read_to_string(tree.join(APP_MANIFEST)).ok()?;
    manifest_build(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_ids_are_1_to_20_digits() {
        assert_eq!("15000001\n".parse(), Ok(BuildId(15_000_001)));
        assert_eq!(
            "99999999999999999999".parse::<BuildId>().unwrap().0,
            99_999_999_999_999_999_999
        );
        for bad in [
            "",
            " ",
            "-1",
            "+1",
            "12a",
            "1 2",
            "123456789012345678901",
            "0x10",
        ] {
            assert!(bad.parse::<BuildId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn versions_follow_the_build() {
        assert_eq!(patch_version(DEFAULT_BUILD_ID), "2.2.3.6");
        assert_eq!(patch_version(BuildId(15_000_002)), "2.2.3.7");
        assert!(steam_inf(BuildId(15_000_002)).contains("ServerVersion=2237\n"));
        assert_ne!(
            steam_inf(BuildId(15_000_001)),
            steam_inf(BuildId(15_000_002))
        );
    }

    #[test]
    fn manifest_buildid_is_found() {
        let text = "\"AppState\"\n{\n\t\"appid\"\t\t\"222860\"\n\t\"buildid\"\t\t\"16000042\"\n\t\"TargetBuildID\"\t\t\"16000042\"\n}\n";
        assert_eq!(manifest_build(text), Some(BuildId(16_000_042)));
        assert_eq!(manifest_build("\"AppState\"\n{\n}\n"), None);
        assert_eq!(manifest_build("\t\"buildid\"\t\t\"x\"\n"), None);
    }

    #[test]
    fn empty_variable_means_the_default_file() {
        assert_eq!(
            published_build_file(Some("".into())),
            PathBuf::from(DEFAULT_PUBLISHED_BUILD_FILE)
        );
        assert_eq!(
            published_build_file(Some("/x/y".into())),
            PathBuf::from("/x/y")
        );
        assert_eq!(
            published_build_file(None),
            PathBuf::from(DEFAULT_PUBLISHED_BUILD_FILE)
        );
    }
}
