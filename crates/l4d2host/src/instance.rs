//! Instance definitions on disk: `instances/<name>/{instance.env,server.cfg}`
//! and the runtime tree `runtime/<name>/{upper,work,merged}`.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::spec::{check_mount_safe, InstanceSpec};
use crate::{InstanceName, Layout};

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("instance {0} does not exist (run `l4d2ctl initialize {0} -f <spec.yaml>` first)")]
    Missing(InstanceName),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    BadEnv { path: PathBuf, message: String },
    #[error(transparent)]
    Build(#[from] crate::builds::BuildsError),
    #[error("instance {name}: {path} in its upper layer is not a directory (the game replaced it, e.g. with a symlink); reset the server to get a clean upper layer")]
    Tampered { name: InstanceName, path: PathBuf },
}

pub(crate) fn io_err(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> InstanceError {
    let path = path.to_owned();
    move |source| InstanceError::Io {
        action,
        path,
        source,
    }
}

/// Largest instance.env accepted (500 long lowerdirs fit easily).
const MAX_ENV_BYTES: u64 = 512 * 1024;

/// The parsed `instance.env`, the contract between `initialize` and whoever
/// starts the instance (the local backend, the systemd unit, left4me-overlay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceEnv {
    pub port: u16,
    /// Already split the way systemd splits `$L4D2_ARGS`.
    pub args: Vec<String>,
    /// Uppermost first, the installation last.
    pub lowerdirs: Vec<PathBuf>,
}

impl InstanceEnv {
    fn render(&self) -> String {
        let lower: Vec<String> = self
            .lowerdirs
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        format!(
            "# Written by l4d2ctl initialize; re-initialise the instance to change it.\nL4D2_PORT={}\nL4D2_ARGS=\"{}\"\nL4D2_LOWERDIRS=\"{}\"\n",
            self.port,
            self.args.join(" "),
            lower.join(":")
        )
    }

    /// Reads and strictly validates `instances/<name>/instance.env`. Root
    /// reads it (the overlay helper), so it is opened beneath the data root
    /// without following symlinks, must be a small regular file, and errors
    /// never quote its content (they end up in the journal).
    pub fn read(layout: &Layout, name: &InstanceName) -> Result<InstanceEnv, InstanceError> {
        let root = crate::fsx::open_trusted_dir(layout.root())
            .map_err(io_err("cannot open", layout.root()))?;
        Self::read_beneath(std::os::fd::AsFd::as_fd(&root), name)
    }

    /// [`InstanceEnv::read`] with the data root already open.
    pub fn read_beneath(
        root: std::os::fd::BorrowedFd<'_>,
        name: &InstanceName,
    ) -> Result<InstanceEnv, InstanceError> {
        let rel = Path::new("instances")
            .join(name.as_str())
            .join("instance.env");
        let bytes =
            crate::fsx::read_regular_beneath(root, &rel, MAX_ENV_BYTES).map_err(|e| match e {
                crate::fsx::ReadError::Io(source)
                    if source.raw_os_error() == Some(libc::ENOENT) =>
                {
                    InstanceError::Missing(name.clone())
                }
                other => InstanceError::BadEnv {
                    path: rel.clone(),
                    message: match other {
                        crate::fsx::ReadError::Io(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                            "is a symlink (or below one); refusing to follow it".into()
                        }
                        other => other.to_string(),
                    },
                },
            })?;
        let text = std::str::from_utf8(&bytes).map_err(|_| InstanceError::BadEnv {
            path: rel.clone(),
            message: "is not UTF-8 text".into(),
        })?;
        Self::parse(text).map_err(|message| InstanceError::BadEnv { path: rel, message })
    }

    pub(crate) fn parse(text: &str) -> Result<InstanceEnv, String> {
        let (mut port, mut args, mut lower) = (None, None, None);
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, raw) = line
                .split_once('=')
                .ok_or_else(|| format!("line {}: expected KEY=VALUE", i + 1))?;
            // Messages never quote the file: root reads it, and a line of
            // some other file must not end up in the journal.
            let value = match raw.strip_prefix('"') {
                Some(rest) => rest
                    .strip_suffix('"')
                    .ok_or_else(|| format!("line {}: unterminated quote", i + 1))?,
                None => raw,
            };
            if value.contains('"') {
                return Err(format!("line {}: unexpected quote in value", i + 1));
            }
            match key {
                "L4D2_PORT" => {
                    port = Some(
                        value
                            .parse::<u16>()
                            .ok()
                            .filter(|p| *p > 0)
                            .ok_or_else(|| {
                                format!("line {}: L4D2_PORT is not a port number", i + 1)
                            })?,
                    )
                }
                "L4D2_ARGS" => args = Some(value.split_whitespace().map(str::to_owned).collect()),
                "L4D2_LOWERDIRS" => {
                    lower = Some(
                        value
                            .split(':')
                            .filter(|s| !s.is_empty())
                            .map(PathBuf::from)
                            .collect::<Vec<_>>(),
                    )
                }
                _ => return Err(format!("line {}: unknown key", i + 1)),
            }
        }
        let lowerdirs: Vec<PathBuf> = lower.ok_or("L4D2_LOWERDIRS is missing")?;
        if lowerdirs.is_empty() {
            return Err("L4D2_LOWERDIRS is empty".into());
        }
        Ok(InstanceEnv {
            port: port.ok_or("L4D2_PORT is missing")?,
            args: args.unwrap_or_default(),
            lowerdirs,
        })
    }
}

pub fn exists(layout: &Layout, name: &InstanceName) -> bool {
    layout.instance_env(name).is_file()
}

/// Writes (or replaces) the definition of `name` and creates its runtime
/// directories. The new definition is assembled in a temporary directory and
/// swapped in with one atomic rename, so a crash leaves either the old or
/// the new definition, never a mix.
pub fn initialize(
    layout: &Layout,
    name: &InstanceName,
    spec: &InstanceSpec,
) -> Result<(), InstanceError> {
    let installation = absolute_build(layout, spec.build)?;
    let mut lowerdirs = spec.overlays.clone();
    lowerdirs.push(installation);
    let env = InstanceEnv {
        port: spec.port,
        args: spec.args.clone(),
        lowerdirs,
    };

    let instances = layout.instances();
    std::fs::create_dir_all(&instances).map_err(io_err("cannot create", &instances))?;
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.new-"))
        .tempdir_in(&instances)
        .map_err(io_err("cannot create a staging directory in", &instances))?;
    write_file(
        &staging.path().join("instance.env"),
        env.render().as_bytes(),
    )?;
    write_file(
        &staging.path().join("server.cfg"),
        server_cfg_with_bans(&spec.config).as_bytes(),
    )?;
    write_file(
        &staging.path().join(BANNED_USER_CFG),
        banned_user_cfg(&spec.bans).as_bytes(),
    )?;
    if !spec.admins.is_empty() {
        write_file(
            &staging.path().join(ADMINS_SIMPLE_INI),
            admins_simple_ini(&spec.admins).as_bytes(),
        )?;
    }
    set_mode(staging.path(), 0o750)?;

    let target = layout.instance_dir(name);
    if target.exists() {
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            staging.path(),
            rustix::fs::CWD,
            &target,
            rustix::fs::RenameFlags::EXCHANGE,
        )
        .map_err(|e| InstanceError::Io {
            action: "cannot swap in the new definition at",
            path: target.clone(),
            source: e.into(),
        })?;
        // `staging` now holds the old definition and is removed on drop.
    } else {
        let staged = staging.keep();
        std::fs::rename(&staged, &target)
            .map_err(io_err("cannot move the new definition to", &target))?;
    }

    for dir in [layout.upper(name), layout.work(name), layout.merged(name)] {
        std::fs::create_dir_all(&dir).map_err(io_err("cannot create", &dir))?;
    }
    Ok(())
}

/// The game build the instance runs on (`installation/<build>`, see
/// [`crate::builds`]), absolute and canonical where it already exists (the
/// overlay helper compares canonical paths).
fn absolute_build(
    layout: &Layout,
    build: Option<l4d2_contract::builds::BuildId>,
) -> Result<PathBuf, InstanceError> {
    let root = layout.root();
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let lowest = crate::builds::lowest_layer(&Layout::new(root), build)?;
    let lowest = lowest.canonicalize().unwrap_or(lowest);
    check_mount_safe(&lowest).map_err(|message| InstanceError::BadEnv {
        path: lowest.clone(),
        message,
    })?;
    Ok(lowest)
}

fn write_file(path: &Path, contents: &[u8]) -> Result<(), InstanceError> {
    let mut file = std::fs::File::create(path).map_err(io_err("cannot create", path))?;
    file.write_all(contents)
        .map_err(io_err("cannot write", path))?;
    file.sync_all().map_err(io_err("cannot sync", path))?;
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), InstanceError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_err("cannot chmod", path))
}

/// The Steam id bans of an instance, as the engine's own ban file.
pub const BANNED_USER_CFG: &str = "banned_user.cfg";
/// The SourceMod admins of an instance, in SourceMod's simple format.
pub const ADMINS_SIMPLE_INI: &str = "admins_simple.ini";
/// First line of an admins_simple.ini the host wrote, so a later start
/// without admins removes only its own file, never one the game wrote.
const ADMINS_MARKER: &str = "// Written by left4me at every start";

/// server.cfg ends with `exec banned_user.cfg`: the game rules exec
/// server.cfg at every map load, so the bans hold from the first map on.
fn server_cfg_with_bans(config: &str) -> String {
    let mut out = String::with_capacity(config.len() + 64);
    out.push_str(config);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("exec banned_user.cfg\n");
    out
}

/// `banid <minutes> <steamid>` per ban (0 = permanent), as `writeid` writes.
pub fn banned_user_cfg(bans: &[crate::spec::Ban]) -> String {
    let mut out =
        String::from("// Written by left4me at every start; manage bans on the server's page.\n");
    for ban in bans {
        out.push_str(&format!("banid {} {}\n", ban.minutes, ban.steam_id));
    }
    out
}

/// SourceMod's admins_simple.ini: `"<steamid>" "[immunity:]<flags>"`.
pub fn admins_simple_ini(admins: &[crate::spec::Admin]) -> String {
    let mut out = format!("{ADMINS_MARKER}; manage admins on the server's page.\n");
    for admin in admins {
        let access = match admin.immunity {
            Some(level) => format!("{level}:{}", admin.flags),
            None => admin.flags.clone(),
        };
        out.push_str(&format!("\"{}\" \"{access}\"\n", admin.steam_id));
    }
    out
}

/// Opens (creating) the directory `rel` of the upper layer, never
/// following anything the game planted there.
fn upper_dir(
    upper_fd: std::os::fd::BorrowedFd<'_>,
    upper: &Path,
    name: &InstanceName,
    rel: &Path,
) -> Result<std::os::fd::OwnedFd, InstanceError> {
    crate::fsx::ensure_dir_beneath(upper_fd, rel).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) || e.raw_os_error() == Some(libc::ENOTDIR) {
            InstanceError::Tampered {
                name: name.clone(),
                path: rel.to_path_buf(),
            }
        } else {
            io_err("cannot create", &upper.join(rel))(e)
        }
    })
}

/// Reads a file of the instance definition; `None` when it does not exist
/// (an instance initialized before the file was part of the definition, or
/// one without admins).
fn read_definition_file(path: &Path) -> Result<Option<Vec<u8>>, InstanceError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("cannot read", path)(e)),
    }
}

/// Copies the instance's server.cfg, banned_user.cfg and SourceMod
/// admins_simple.ini into the upper layer so they win over every overlay.
/// The upper layer is the game's own writable tree, so every directory is
/// opened beneath it without following symlinks, and each file is written
/// to a fresh temporary name and renamed into place.
pub fn stage_server_cfg(layout: &Layout, name: &InstanceName) -> Result<(), InstanceError> {
    use std::os::fd::AsFd;
    let source = layout.instance_server_cfg(name);
    let config = std::fs::read(&source).map_err(io_err("cannot read", &source))?;
    let definition = layout.instance_dir(name);
    let bans = read_definition_file(&definition.join(BANNED_USER_CFG))?;
    let admins = read_definition_file(&definition.join(ADMINS_SIMPLE_INI))?;
    let upper = layout.upper(name);
    let upper_fd = crate::fsx::open_trusted_dir(&upper).map_err(io_err("cannot open", &upper))?;
    let write = |dir: std::os::fd::BorrowedFd<'_>, rel: &Path, file: &str, bytes: &[u8]| {
        crate::fsx::write_atomic(dir, std::ffi::OsStr::new(file), bytes, 0o644).map_err(|e| {
            InstanceError::Io {
                action: "cannot write",
                path: upper.join(rel).join(file),
                source: e,
            }
        })
    };
    let cfg_rel = Path::new("left4dead2/cfg");
    let cfg_dir = upper_dir(upper_fd.as_fd(), &upper, name, cfg_rel)?;
    write(cfg_dir.as_fd(), cfg_rel, "server.cfg", &config)?;
    if let Some(bans) = bans {
        write(cfg_dir.as_fd(), cfg_rel, BANNED_USER_CFG, &bans)?;
    }
    let sm_rel = Path::new("left4dead2/addons/sourcemod/configs");
    match admins {
        Some(admins) => {
            let sm_dir = upper_dir(upper_fd.as_fd(), &upper, name, sm_rel)?;
            write(sm_dir.as_fd(), sm_rel, ADMINS_SIMPLE_INI, &admins)?;
        }
        None => remove_own_admins_file(upper_fd.as_fd(), &upper, sm_rel)?,
    }
    Ok(())
}

/// Without admins, an admins_simple.ini an earlier start wrote goes away
/// (the overlays' own file shows through again); one without the marker is
/// the game's or a plugin's and stays.
fn remove_own_admins_file(
    upper_fd: std::os::fd::BorrowedFd<'_>,
    upper: &Path,
    sm_rel: &Path,
) -> Result<(), InstanceError> {
    use rustix::fs::{AtFlags, OFlags};
    use std::os::fd::AsFd;
    let file_rel = sm_rel.join(ADMINS_SIMPLE_INI);
    let head = match crate::fsx::read_regular_beneath(upper_fd, &file_rel, 1024 * 1024) {
        Ok(bytes) => bytes,
        // Missing, a symlink, a directory: nothing the host wrote.
        Err(_) => return Ok(()),
    };
    if !head.starts_with(ADMINS_MARKER.as_bytes()) {
        return Ok(());
    }
    let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY;
    let Ok(dir) = crate::fsx::open_beneath(upper_fd, sm_rel, flags) else {
        return Ok(());
    };
    // unlinkat without REMOVEDIR: whatever replaced the file meanwhile, a
    // directory is never removed.
    match rustix::fs::unlinkat(dir.as_fd(), ADMINS_SIMPLE_INI, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(io_err("cannot remove", &upper.join(&file_rel))(e.into())),
    }
}

/// Removes the definition and runtime tree of `name` (the caller stops it first).
pub fn remove(layout: &Layout, name: &InstanceName) -> Result<(), InstanceError> {
    for dir in [layout.instance_dir(name), layout.runtime_dir(name)] {
        remove_tree(&dir)?;
    }
    Ok(())
}

/// Removes `path` and everything below it without following symlinks, also
/// where the kernel or the game left directories without permissions.
pub fn remove_tree(path: &Path) -> Result<(), InstanceError> {
    crate::fsx::remove_tree(path).map_err(io_err("cannot remove", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_round_trips() {
        let env = InstanceEnv {
            port: 27015,
            args: vec!["-tickrate".into(), "60".into()],
            lowerdirs: vec!["/r/overlays/a".into(), "/r/installation".into()],
        };
        assert_eq!(InstanceEnv::parse(&env.render()).unwrap(), env);
    }

    #[test]
    fn env_rejects_garbage() {
        for (text, expected) in [
            ("L4D2_PORT=1\n", "L4D2_LOWERDIRS is missing"),
            ("L4D2_LOWERDIRS=/a\n", "L4D2_PORT is missing"),
            ("L4D2_PORT=x\nL4D2_LOWERDIRS=/a", "not a port"),
            ("L4D2_PORT=1\nL4D2_LOWERDIRS=\"/a", "unterminated"),
            ("L4D2_PORT=1\nL4D2_LOWERDIRS=/a\nEVIL=1", "unknown key"),
            ("garbage\n", "expected KEY=VALUE"),
        ] {
            let e = InstanceEnv::parse(text).unwrap_err();
            assert!(e.contains(expected), "{text:?}: {e}");
        }
    }
}
