//! `l4d2ctl install`: installs or updates the game with steamcmd (docs/host-contract.md).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Layout;

/// Steam app id of the Left 4 Dead 2 dedicated server.
pub const APP_ID: u32 = 222860;

/// The two platform passes, in the order that works around steamcmd
/// installing an incomplete Linux server on the first try.
const PLATFORMS: [&str; 2] = ["windows", "linux"];

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("LEFT4ME_STEAMCMD must be an absolute path, got {0:?}")]
    RelativeSteamcmd(PathBuf),
    #[error("steamcmd not found at {0} (set LEFT4ME_STEAMCMD)")]
    MissingSteamcmd(PathBuf),
    #[error("cannot run steamcmd {path}: {source}")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("steamcmd ({platform} pass) exited with {status}{}", last_line(.last))]
    Failed {
        platform: &'static str,
        status: String,
        last: Option<String>,
    },
    #[error("steamcmd ({platform} pass) exited successfully but never reported \"Success! App '{APP_ID}' fully installed.\"{}", last_line(.last))]
    NoSuccess {
        platform: &'static str,
        last: Option<String>,
    },
    #[error("steamcmd reported success but {0} is missing")]
    Incomplete(PathBuf),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn last_line(last: &Option<String>) -> String {
    match last {
        Some(l) => format!(" (last output: {l:?})"),
        None => " (no output)".into(),
    }
}

/// `LEFT4ME_STEAMCMD`, or `<root>/steam/steamcmd.sh`.
pub fn steamcmd_from_env(layout: &Layout) -> Result<PathBuf, InstallError> {
    let path = std::env::var_os("LEFT4ME_STEAMCMD")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| layout.steam_dir().join("steamcmd.sh"));
    if !path.is_absolute() {
        return Err(InstallError::RelativeSteamcmd(path));
    }
    Ok(path)
}

/// Runs both steamcmd passes, streaming their output to `out`, then links
/// `.steam/sdk32` and `sdk64` to steamcmd's `linux32`/`linux64`.
pub fn install(layout: &Layout, steamcmd: &Path, out: &mut dyn Write) -> Result<(), InstallError> {
    if !steamcmd.is_file() {
        return Err(InstallError::MissingSteamcmd(steamcmd.to_owned()));
    }
    let installation = layout.installation();
    std::fs::create_dir_all(&installation).map_err(|source| InstallError::Io {
        action: "cannot create",
        path: installation.clone(),
        source,
    })?;
    for (i, platform) in PLATFORMS.iter().enumerate() {
        let _ = writeln!(
            out,
            "l4d2ctl: steamcmd pass {}/{} (platform {platform})",
            i + 1,
            PLATFORMS.len()
        );
        run_pass(steamcmd, &installation, platform, layout, out)?;
    }
    let srcds_run = installation.join("srcds_run");
    if !srcds_run.is_file() {
        return Err(InstallError::Incomplete(srcds_run));
    }
    let steam_dir = steamcmd.parent().unwrap_or(Path::new("/"));
    link_sdk(layout, "sdk32", &steam_dir.join("linux32"))?;
    link_sdk(layout, "sdk64", &steam_dir.join("linux64"))?;
    let _ = writeln!(
        out,
        "l4d2ctl: installation ready at {}",
        installation.display()
    );
    Ok(())
}

fn run_pass(
    steamcmd: &Path,
    installation: &Path,
    platform: &'static str,
    layout: &Layout,
    out: &mut dyn Write,
) -> Result<(), InstallError> {
    let mut cmd = Command::new(steamcmd);
    cmd.arg("+force_install_dir")
        .arg(installation)
        .args([
            "+login",
            "anonymous",
            "+@sSteamCmdForcePlatformType",
            platform,
        ])
        .args(["+app_update", &APP_ID.to_string(), "validate", "+quit"])
        // steamcmd keeps its own state in $HOME/Steam.
        .env("HOME", layout.root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    // If l4d2ctl is killed (e.g. the web app's job is), steamcmd goes too
    // instead of writing into a half-updated installation unobserved.
    // SAFETY: only an async-signal-safe prctl between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().map_err(|source| InstallError::Spawn {
        path: steamcmd.to_owned(),
        source,
    })?;
    let success_line = format!("Success! App '{APP_ID}' fully installed.");
    let mut succeeded = false;
    let mut last = None;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches('\r');
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
            if line.contains(&success_line) {
                succeeded = true;
            }
            if !line.trim().is_empty() {
                last = Some(line.trim().chars().take(200).collect());
            }
        }
    }
    let status = child.wait().map_err(|source| InstallError::Spawn {
        path: steamcmd.to_owned(),
        source,
    })?;
    if !status.success() {
        return Err(InstallError::Failed {
            platform,
            status: status.to_string(),
            last,
        });
    }
    if !succeeded {
        return Err(InstallError::NoSuccess { platform, last });
    }
    Ok(())
}

/// Points `<root>/.steam/<name>` at `target`, replacing an old link atomically.
fn link_sdk(layout: &Layout, name: &str, target: &Path) -> Result<(), InstallError> {
    let dir = layout.dot_steam();
    let io = |action, path: &Path| {
        let path = path.to_owned();
        move |source| InstallError::Io {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(&dir).map_err(io("cannot create", &dir))?;
    let link = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(io("cannot create link", &tmp))?;
    std::fs::rename(&tmp, &link).map_err(io("cannot replace", &link))?;
    Ok(())
}
