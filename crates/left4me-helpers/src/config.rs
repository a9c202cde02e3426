//! Root-owned configuration: the data root and the env files of the admin wrapper.
//!
//! Helpers never read the caller's environment. The data root comes from
//! `LEFT4ME_ROOT` in [`HOST_ENV`] (which must be owned by root and writable by
//! nobody else), or is [`DEFAULT_ROOT`] when the file does not exist.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub const HOST_ENV: &str = "/etc/left4me/host.env";
pub const WEB_ENV: &str = "/etc/left4me/web.env";
pub const DEFAULT_ROOT: &str = "/var/lib/left4me";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("refusing {path}: it must be owned by root and not writable by group or others (owner uid {uid}, mode {mode:o})")]
    Untrusted { path: PathBuf, uid: u32, mode: u32 },
    #[error("cannot parse {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("LEFT4ME_ROOT in {path} must be an absolute path without `..`, got {value:?}")]
    BadRoot { path: PathBuf, value: String },
}

/// Reads a root-owned `KEY=VALUE` env file. A missing file yields `None`; a
/// file anyone but root could have written is refused.
pub fn read_root_owned_env(path: &Path) -> Result<Option<Vec<(String, String)>>, ConfigError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(ConfigError::Untrusted {
            path: path.to_path_buf(),
            uid: meta.uid(),
            mode: meta.mode() & 0o7777,
        });
    }
    parse_env_file(path).map(Some)
}

/// Parses an env file (`KEY=VALUE`, `#` comments, optional quotes) without
/// touching the process environment.
pub fn parse_env_file(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let iter = dotenvy::from_path_iter(path).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    iter.map(|item| {
        item.map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    })
    .collect()
}

/// The data root from `host_env` (see module docs).
pub fn data_root_from(host_env: &Path) -> Result<PathBuf, ConfigError> {
    let Some(vars) = read_root_owned_env(host_env)? else {
        return Ok(PathBuf::from(DEFAULT_ROOT));
    };
    match vars.into_iter().rev().find(|(k, _)| k == "LEFT4ME_ROOT") {
        None => Ok(PathBuf::from(DEFAULT_ROOT)),
        Some((_, value)) => {
            let root = PathBuf::from(&value);
            let clean = root.is_absolute()
                && root
                    .components()
                    .all(|c| !matches!(c, std::path::Component::ParentDir));
            if clean {
                Ok(root)
            } else {
                Err(ConfigError::BadRoot {
                    path: host_env.to_path_buf(),
                    value,
                })
            }
        }
    }
}

/// The production data root (from [`HOST_ENV`]).
pub fn data_root() -> Result<PathBuf, ConfigError> {
    data_root_from(Path::new(HOST_ENV))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, body: &str, mode: u32) -> PathBuf {
        let path = dir.join("host.env");
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn missing_file_gives_default_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = data_root_from(&dir.path().join("absent.env")).unwrap();
        assert_eq!(root, PathBuf::from(DEFAULT_ROOT));
    }

    #[test]
    fn root_owned_file_sets_root() {
        if !test_support::require(test_support::is_root(), "needs root to own a file as uid 0") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "# comment\nLEFT4ME_BACKEND=systemd\nLEFT4ME_ROOT=\"/srv/l4d2\"\n",
            0o644,
        );
        assert_eq!(data_root_from(&path).unwrap(), PathBuf::from("/srv/l4d2"));

        let relative = write(dir.path(), "LEFT4ME_ROOT=srv\n", 0o644);
        let err = data_root_from(&relative).unwrap_err().to_string();
        assert!(err.contains("absolute"), "{err}");

        let dotdot = write(dir.path(), "LEFT4ME_ROOT=/srv/../etc\n", 0o644);
        assert!(data_root_from(&dotdot).is_err());
    }

    #[test]
    fn group_writable_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "LEFT4ME_ROOT=/tmp/evil\n", 0o664);
        let err = data_root_from(&path).unwrap_err().to_string();
        assert!(err.contains("refusing"), "{err}");
    }

    #[test]
    fn file_not_owned_by_root_is_refused() {
        if !test_support::require(test_support::is_root(), "needs root to chown a file") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "LEFT4ME_ROOT=/tmp/evil\n", 0o644);
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let err = data_root_from(&path).unwrap_err().to_string();
        assert!(err.contains("owner uid 65534"), "{err}");
    }
}
