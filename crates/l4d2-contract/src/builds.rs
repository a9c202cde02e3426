//! Game builds: the installed versions of the game (`installation/<build>/`)
//! and what `l4d2ctl builds --json` and `l4d2ctl check-update --json` print.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A Steam build id of the game (the `buildid` of its app manifest). Builds
/// are numbered upwards by Steam, so a larger id is a newer build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BuildId(pub u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a game build id (a Steam build number, e.g. 15000001)")]
pub struct BadBuildId(pub String);

impl BuildId {
    /// Decimal digits only, no sign, no leading zero, not 0: the spelling
    /// of a build's directory name. At most `i64::MAX`, so the web app can
    /// keep one in an SQLite integer (Steam's are eight digits).
    pub fn parse(s: &str) -> Result<BuildId, BadBuildId> {
        let bad = || BadBuildId(s.chars().take(40).collect());
        if s.is_empty()
            || s.len() > 19
            || !s.bytes().all(|b| b.is_ascii_digit())
            || s.starts_with('0')
        {
            return Err(bad());
        }
        match s.parse::<i64>() {
            Ok(n) => Ok(BuildId(n.unsigned_abs())),
            Err(_) => Err(bad()),
        }
    }
}

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One installed build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    pub id: BuildId,
    /// Its directory, relative to the data root (`installation/<id>`; the
    /// single directory of older versions, `installation`, is listed while
    /// an instance still uses it).
    pub dir: String,
    /// Disk blocks its files take (shared copy-on-write extents are counted
    /// in every build that shares them).
    pub size_bytes: u64,
    /// The instances whose lowest layer is this build, by name.
    pub instances: Vec<String>,
}

/// `l4d2ctl builds --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildsReport {
    /// Newest first.
    pub builds: Vec<Build>,
    /// The build an instance gets when its spec names none.
    pub newest: Option<BuildId>,
}

impl BuildsReport {
    pub fn build(&self, id: BuildId) -> Option<&Build> {
        self.builds
            .iter()
            .find(|b| b.id == id && b.dir != LEGACY_DIR)
    }

    /// The build instance `name` was initialised on.
    pub fn build_of(&self, name: &str) -> Option<&Build> {
        self.builds
            .iter()
            .find(|b| b.instances.iter().any(|i| i == name))
    }

    /// The newest build older than `id`: where a rollback goes.
    pub fn previous(&self, id: BuildId) -> Option<BuildId> {
        self.builds
            .iter()
            .filter(|b| b.id < id && b.dir != LEGACY_DIR)
            .map(|b| b.id)
            .max()
    }
}

/// The directory of the single installation older versions used.
pub const LEGACY_DIR: &str = "installation";

/// `l4d2ctl check-update --json`: the newest installed build against the
/// public branch's build on Steam.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateCheck {
    pub installed: Option<BuildId>,
    pub published: BuildId,
}

impl UpdateCheck {
    pub fn update_available(&self) -> bool {
        self.installed.is_none_or(|i| self.published > i)
    }
}

/// What real srcds prints on its console when Steam rejects its version
/// (the master server asks it to restart onto the new build).
pub const RESTART_FOR_UPDATE_LINE: &str =
    "Your server needs to be restarted in order to receive the latest update.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_ids() {
        assert_eq!(BuildId::parse("15000001"), Ok(BuildId(15000001)));
        assert_eq!(
            BuildId::parse("9223372036854775807"),
            Ok(BuildId(i64::MAX.unsigned_abs()))
        );
        for bad in [
            "",
            "0",
            "012",
            "-1",
            "+1",
            "1.5",
            "1 ",
            "abc",
            "99999999999999999999",
            "9223372036854775808",
        ] {
            assert!(BuildId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn previous_and_update() {
        let b = |id, dir: &str| Build {
            id: BuildId(id),
            dir: dir.into(),
            size_bytes: 1,
            instances: vec![],
        };
        let r = BuildsReport {
            builds: vec![
                b(30, "installation/30"),
                b(20, "installation/20"),
                b(10, "installation"),
            ],
            newest: Some(BuildId(30)),
        };
        assert_eq!(r.previous(BuildId(30)), Some(BuildId(20)));
        assert_eq!(
            r.previous(BuildId(20)),
            None,
            "the legacy directory is no rollback target"
        );
        let check = UpdateCheck {
            installed: Some(BuildId(30)),
            published: BuildId(31),
        };
        assert!(check.update_available());
        assert!(!UpdateCheck {
            published: BuildId(30),
            ..check.clone()
        }
        .update_available());
        assert!(UpdateCheck {
            installed: None,
            ..check
        }
        .update_available());
    }
}
