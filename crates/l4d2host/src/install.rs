//! `l4d2ctl install`: installs or updates the game with steamcmd (docs/host-contract.md).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use l4d2_contract::install::STEAM_GUARD_CODE_VAR;

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
    #[error("the Steam account file {path}: {problem}")]
    BadAccountFile { path: PathBuf, problem: String },
    #[error("{STEAM_GUARD_CODE_VAR} must be the 5 letters or digits of a Steam Guard code")]
    BadGuardCode,
    #[error("Steam asks for a Steam Guard code for the account {user}{}: run the install again with the code from the email or the Steam app", if *.expired { " (its saved login has expired)" } else { "" })]
    GuardCodeNeeded { user: String, expired: bool },
    #[error("Steam refused the login of the account {user}: {reason}")]
    LoginRefused { user: String, reason: String },
    #[error("Steam refused the anonymous download (Invalid platform): Valve no longer gives this game to anonymous logins everywhere; configure a Steam account for steamcmd (see the deployment guide)")]
    AnonymousRefused,
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

/// How steamcmd logs in.
#[derive(Clone, PartialEq, Eq)]
pub enum SteamLogin {
    Anonymous,
    Account {
        user: String,
        password: String,
        /// A Steam Guard code for this one run.
        guard_code: Option<String>,
    },
}

impl std::fmt::Debug for SteamLogin {
    // Never the password, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SteamLogin::Anonymous => f.write_str("Anonymous"),
            SteamLogin::Account { user, .. } => write!(f, "Account({user})"),
        }
    }
}

impl SteamLogin {
    /// The account in the file `LEFT4ME_STEAM_ACCOUNT_FILE`, else
    /// anonymous; and the Steam Guard code in `LEFT4ME_STEAM_GUARD_CODE`, if
    /// any. A file that is named but cannot be read is an error, never a
    /// quiet fall back to anonymous.
    pub fn from_env() -> Result<Self, InstallError> {
        let Some(path) = std::env::var_os("LEFT4ME_STEAM_ACCOUNT_FILE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
        else {
            return Ok(SteamLogin::Anonymous);
        };
        let text = std::fs::read_to_string(&path).map_err(|e| InstallError::BadAccountFile {
            path: path.clone(),
            problem: format!("cannot be read ({e})"),
        })?;
        let guard_code = match std::env::var(STEAM_GUARD_CODE_VAR) {
            Ok(code) if !code.trim().is_empty() => {
                let code = code.trim();
                if code.len() != 5 || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(InstallError::BadGuardCode);
                }
                Some(code.to_owned())
            }
            _ => None,
        };
        Self::account(&text, guard_code).map_err(|problem| InstallError::BadAccountFile {
            path,
            problem: problem.to_owned(),
        })
    }

    /// An account from the file's text (the account name on the first
    /// line, the password on the second) and an optional guard code.
    fn account(text: &str, guard_code: Option<String>) -> Result<Self, &'static str> {
        let mut lines = text.lines();
        let user = lines.next().unwrap_or("").trim();
        let password = lines.next().unwrap_or("");
        if lines.any(|l| !l.trim().is_empty()) {
            return Err("has more than two lines (the account name, then the password)");
        }
        if user.is_empty() || password.is_empty() {
            return Err(
                "must hold the account name on the first line and the password on the second",
            );
        }
        if user.len() > 64 || !user.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err("the account name may only hold letters, digits and _ (at most 64)");
        }
        // steamcmd's script syntax quotes with '"' and has no escape.
        if password.contains('"') || password.chars().any(char::is_control) {
            return Err("the password contains a double quote or a control character, which steamcmd cannot be given");
        }
        Ok(SteamLogin::Account {
            user: user.to_owned(),
            password: password.to_owned(),
            guard_code,
        })
    }
}

/// Runs both steamcmd passes, streaming their output to `out`, then links
/// `.steam/sdk32` and `sdk64` to steamcmd's `linux32`/`linux64`.
pub fn install(
    layout: &Layout,
    steamcmd: &Path,
    login: &SteamLogin,
    out: &mut dyn Write,
) -> Result<(), InstallError> {
    if !steamcmd.is_file() {
        return Err(InstallError::MissingSteamcmd(steamcmd.to_owned()));
    }
    LoginScript::remove_stale(layout);
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
        run_pass(steamcmd, &installation, platform, login, layout, out)?;
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

/// A file holding steamcmd's login command, readable by its owner only and
/// removed as soon as steamcmd has logged in (or at the latest when the
/// pass ends): the password never appears in an argument list, which
/// every user can read in /proc.
struct LoginScript {
    file: Option<tempfile::TempPath>,
}

impl LoginScript {
    fn write(layout: &Layout, login: &SteamLogin) -> Result<Self, InstallError> {
        let SteamLogin::Account {
            user,
            password,
            guard_code,
        } = login
        else {
            return Ok(Self { file: None });
        };
        let dir = layout.tmp();
        let io = |action, path: &Path| {
            let path = path.to_owned();
            move |source| InstallError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(&dir).map_err(io("cannot create", &dir))?;
        let mut file = tempfile::Builder::new()
            .prefix(".steamcmd-login-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .tempfile_in(&dir)
            .map_err(io("cannot create a file in", &dir))?;
        let code = guard_code
            .as_deref()
            .map(|c| format!(" \"{c}\""))
            .unwrap_or_default();
        writeln!(file, "login \"{user}\" \"{password}\"{code}")
            .and_then(|()| file.flush())
            .map_err(io("cannot write", file.path()))?;
        Ok(Self {
            file: Some(file.into_temp_path()),
        })
    }

    fn path(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Login files an install that was killed (SIGKILL runs no cleanup)
    /// left behind.
    fn remove_stale(layout: &Layout) {
        let Ok(dir) = std::fs::read_dir(layout.tmp()) else {
            return;
        };
        for entry in dir.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(".steamcmd-login-")
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    fn remove(&mut self) {
        if let Some(file) = self.file.take() {
            let _ = file.close();
        }
    }
}

/// What steamcmd's output said about the login.
fn login_outcome(line: &str, login: &SteamLogin, expired: bool) -> Option<InstallError> {
    let SteamLogin::Account { user, .. } = login else {
        return line
            .contains(&format!(
                "Failed to install app '{APP_ID}' (Invalid platform)"
            ))
            .then_some(InstallError::AnonymousRefused);
    };
    let user = user.clone();
    let refused = |reason: &str| {
        Some(InstallError::LoginRefused {
            user: user.clone(),
            reason: reason.to_owned(),
        })
    };
    if line.contains("FAILED (Invalid Password)") {
        refused("the account name or password is wrong")
    } else if line.contains("FAILED (Invalid Login Auth Code)")
        || line.contains("FAILED (Two-factor code mismatch)")
    {
        refused("the Steam Guard code is wrong or too old")
    } else if line.contains("FAILED (Rate Limit Exceeded)") {
        refused("too many login attempts; wait before trying again")
    } else if line.contains("Steam Guard code:")
        || line.contains("Two-factor code:")
        || line.contains("FAILED (Account Logon Denied)")
        || line.contains("FAILED (Account Login Denied Need Two Factor)")
    {
        Some(InstallError::GuardCodeNeeded { user, expired })
    } else {
        None
    }
}

fn run_pass(
    steamcmd: &Path,
    installation: &Path,
    platform: &'static str,
    login: &SteamLogin,
    layout: &Layout,
    out: &mut dyn Write,
) -> Result<(), InstallError> {
    // steamcmd keeps a login it was given once (with its Steam Guard code)
    // in its config; a later request for a code means that login expired.
    let had_saved_login = std::fs::read_to_string(layout.root().join("Steam/config/config.vdf"))
        .is_ok_and(|c| c.contains("ConnectCache"));
    let mut script = LoginScript::write(layout, login)?;
    let mut cmd = Command::new(steamcmd);
    cmd.arg("+force_install_dir").arg(installation);
    match script.path() {
        Some(path) => cmd.arg("+runscript").arg(path),
        None => cmd.args(["+login", "anonymous"]),
    };
    cmd.args(["+@sSteamCmdForcePlatformType", platform])
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
    let mut login_failure = None;
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
            if line.contains("Waiting for user info...OK") {
                script.remove();
            }
            if login_failure.is_none() {
                login_failure = login_outcome(line, login, had_saved_login);
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
    script.remove();
    if let Some(failure) = login_failure {
        return Err(failure);
    }
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
