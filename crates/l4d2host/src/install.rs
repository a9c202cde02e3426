//! `l4d2ctl install`: installs or updates the game with steamcmd (docs/host-contract.md).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use l4d2_contract::install::STEAM_GUARD_CODE_VAR;

use l4d2_contract::builds::BuildId;

use crate::{builds, Layout};

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
    #[error("cannot copy the game files of {from}: {message}")]
    Copy { from: PathBuf, message: String },
    #[error("cannot learn Steam's newest game build: {0}")]
    AppInfo(String),
    #[error(transparent)]
    Build(#[from] builds::BuildsError),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> InstallError {
    let path = path.to_owned();
    move |source| InstallError::Io {
        action,
        path,
        source,
    }
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

/// Installs the game build Steam publishes beside the installed ones
/// (see [`crate::builds`]), streaming steamcmd's output to `out`; then links
/// `.steam/sdk32` and `sdk64` to steamcmd's `linux32`/`linux64` and prunes
/// builds nobody uses. Returns the newest build.
///
/// A new build starts as a copy of the newest one (copy-on-write where the
/// filesystem can), so steamcmd downloads only what changed and the build
/// running servers use is never written to.
pub fn install(
    layout: &Layout,
    steamcmd: &Path,
    login: &SteamLogin,
    out: &mut dyn Write,
) -> Result<BuildId, InstallError> {
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
    remove_stale_staging(layout);
    let newest = builds::installed(layout)?.first().copied();
    if let Some(current) = newest {
        // Copying a whole build only to find nothing changed is costly: ask
        // Steam first.
        match published_build(layout, steamcmd, login, out) {
            Ok(published) if published <= current => {
                let _ = writeln!(
                    out,
                    "l4d2ctl: build {current} is installed and Steam publishes build {published}: nothing to download"
                );
                return finish(layout, steamcmd, current, out);
            }
            Ok(published) => {
                let _ = writeln!(
                    out,
                    "l4d2ctl: Steam publishes build {published}; installing it beside build {current}"
                );
            }
            Err(e @ (InstallError::GuardCodeNeeded { .. } | InstallError::LoginRefused { .. })) => {
                return Err(e)
            }
            Err(e) => {
                let _ = writeln!(
                    out,
                    "l4d2ctl: could not learn Steam's newest build ({e}); updating a copy of build {current} anyway"
                );
            }
        }
    }
    let staging = tempfile::Builder::new()
        .prefix(STAGING_PREFIX)
        .tempdir_in(&installation)
        .map_err(|source| InstallError::Io {
            action: "cannot create a directory in",
            path: installation.clone(),
            source,
        })?;
    if let Some(current) = newest {
        let _ = writeln!(out, "l4d2ctl: copying build {current} to update the copy");
        copy_entries(&layout.build_dir(current), staging.path(), |_| true)?;
    } else if builds::is_legacy(layout) {
        let _ = writeln!(
            out,
            "l4d2ctl: copying the single installation directory into a build directory"
        );
        copy_entries(&installation, staging.path(), |name| {
            BuildId::parse(name).is_err() && !name.starts_with('.')
        })?;
    }
    for (i, platform) in PLATFORMS.iter().enumerate() {
        let _ = writeln!(
            out,
            "l4d2ctl: steamcmd pass {}/{} (platform {platform})",
            i + 1,
            PLATFORMS.len()
        );
        run_pass(steamcmd, staging.path(), platform, login, layout, out)?;
    }
    let srcds_run = staging.path().join("srcds_run");
    if !srcds_run.is_file() {
        return Err(InstallError::Incomplete(srcds_run));
    }
    let id = builds::manifest_build(staging.path())?;
    let target = layout.build_dir(id);
    if target.exists() {
        let _ = writeln!(out, "l4d2ctl: build {id} was already installed");
    } else {
        let staged = staging.keep();
        std::fs::rename(&staged, &target).map_err(|source| InstallError::Io {
            action: "cannot move the new build to",
            path: target.clone(),
            source,
        })?;
        builds::record_size(layout, id)?;
        let _ = writeln!(out, "l4d2ctl: build {id} installed at {}", target.display());
    }
    finish(
        layout,
        steamcmd,
        builds::installed(layout)?.first().copied().unwrap_or(id),
        out,
    )
}

/// Prefix of the directory a new build is assembled in.
const STAGING_PREFIX: &str = ".new-";

/// What an install that was killed left in `installation/`: a half-built
/// build and a half-removed one.
fn remove_stale_staging(layout: &Layout) {
    let Ok(entries) = std::fs::read_dir(layout.installation()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(STAGING_PREFIX) || name.starts_with(".removing-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Copies the entries of `from` whose names `wanted` accepts into `to`,
/// with `cp -a --reflink=auto`: coreutils keeps modes, times, symlinks and
/// hard links and shares extents where the filesystem can (btrfs, XFS),
/// which no crate does as completely.
fn copy_entries(from: &Path, to: &Path, wanted: impl Fn(&str) -> bool) -> Result<(), InstallError> {
    let mut sources = Vec::new();
    for entry in std::fs::read_dir(from).map_err(io("cannot list", from))? {
        let entry = entry.map_err(io("cannot list", from))?;
        if entry.file_name().to_str().is_some_and(&wanted) {
            sources.push(entry.path());
        }
    }
    if sources.is_empty() {
        return Ok(());
    }
    let output = Command::new("cp")
        .args(["-a", "--reflink=auto", "--"])
        .args(&sources)
        .arg(to)
        .stdin(Stdio::null())
        .output()
        .map_err(io("cannot run cp to copy", from))?;
    if !output.status.success() {
        return Err(InstallError::Copy {
            from: from.to_owned(),
            message: String::from_utf8_lossy(&output.stderr)
                .trim()
                .chars()
                .take(300)
                .collect(),
        });
    }
    Ok(())
}

fn finish(
    layout: &Layout,
    steamcmd: &Path,
    newest: BuildId,
    out: &mut dyn Write,
) -> Result<BuildId, InstallError> {
    let steam_dir = steamcmd.parent().unwrap_or(Path::new("/"));
    link_sdk(layout, "sdk32", &steam_dir.join("linux32"))?;
    link_sdk(layout, "sdk64", &steam_dir.join("linux64"))?;
    builds::prune(layout, out)?;
    let _ = writeln!(
        out,
        "l4d2ctl: installation ready: newest build {newest} at {}",
        layout.build_dir(newest).display()
    );
    Ok(newest)
}

/// The build id of the public branch on Steam (`app_info_print`).
pub fn published_build(
    layout: &Layout,
    steamcmd: &Path,
    login: &SteamLogin,
    out: &mut dyn Write,
) -> Result<BuildId, InstallError> {
    if !steamcmd.is_file() {
        return Err(InstallError::MissingSteamcmd(steamcmd.to_owned()));
    }
    let mut info = AppInfoText::default();
    let run = run_steamcmd(
        layout,
        steamcmd,
        login,
        &[],
        &[
            "+app_info_update",
            "1",
            "+app_info_print",
            &APP_ID.to_string(),
            "+quit",
        ],
        &mut |line| {
            // The app's KeyValues text is long and of no use in a log.
            if !info.feed(line) {
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        },
    )?;
    if let Some(failure) = run.login_failure {
        return Err(failure);
    }
    if !run.status.success() {
        return Err(InstallError::AppInfo(format!(
            "steamcmd exited with {}{}",
            run.status,
            last_line(&run.last)
        )));
    }
    parse_public_build(&info.text).map_err(InstallError::AppInfo)
}

/// Collects the app's KeyValues text out of steamcmd's output: from the line
/// `"222860"` to the closing brace in the first column.
#[derive(Default)]
struct AppInfoText {
    text: String,
    state: u8,
}

impl AppInfoText {
    /// Whether `line` belongs to the app info.
    fn feed(&mut self, line: &str) -> bool {
        match self.state {
            0 if line.trim() == format!("\"{APP_ID}\"") => self.state = 1,
            1 if line == "}" => self.state = 2,
            1 => {}
            _ => return false,
        }
        self.text.push_str(line);
        self.text.push('\n');
        true
    }
}

/// `depots.branches.public.buildid` of `app_info_print`'s KeyValues text.
pub fn parse_public_build(text: &str) -> Result<BuildId, String> {
    if text.is_empty() {
        return Err(format!("steamcmd printed no app info for app {APP_ID}"));
    }
    let vdf = keyvalues_parser::parse(text)
        .map_err(|e| format!("steamcmd's app info is not KeyValues text ({e})"))?;
    let mut value = &vdf.value;
    for key in ["depots", "branches", "public", "buildid"] {
        value = value
            .get_obj()
            .and_then(|o| o.get(key))
            .and_then(|v| v.first())
            .ok_or_else(|| format!("steamcmd's app info has no depots.branches.public.buildid ({key:?} is missing)"))?;
    }
    let id = value
        .get_str()
        .ok_or("steamcmd's app info: depots.branches.public.buildid is not a value")?;
    BuildId::parse(id).map_err(|e| format!("steamcmd's app info: {e}"))
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

/// What one steamcmd run ended with.
struct SteamcmdRun {
    status: std::process::ExitStatus,
    login_failure: Option<InstallError>,
    last: Option<String>,
}

/// Runs steamcmd logged in as `login`: `before` ahead of the login, `after`
/// behind it; every output line goes to `on_line`.
fn run_steamcmd(
    layout: &Layout,
    steamcmd: &Path,
    login: &SteamLogin,
    before: &[&std::ffi::OsStr],
    after: &[&str],
    on_line: &mut dyn FnMut(&str),
) -> Result<SteamcmdRun, InstallError> {
    // steamcmd keeps a login it was given once (with its Steam Guard code)
    // in its config; a later request for a code means that login expired.
    let had_saved_login = std::fs::read_to_string(layout.root().join("Steam/config/config.vdf"))
        .is_ok_and(|c| c.contains("ConnectCache"));
    let mut script = LoginScript::write(layout, login)?;
    let mut cmd = Command::new(steamcmd);
    cmd.args(before);
    match script.path() {
        Some(path) => cmd.arg("+runscript").arg(path),
        None => cmd.args(["+login", "anonymous"]),
    };
    cmd.args(after)
        // steamcmd keeps its own state in $HOME/Steam.
        .env("HOME", layout.root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    // If l4d2ctl is killed (e.g. the web app's job is), steamcmd goes too
    // instead of writing into a half-updated build unobserved.
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
    let mut login_failure = None;
    let mut last = None;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches('\r');
            on_line(line);
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
    Ok(SteamcmdRun {
        status,
        login_failure,
        last,
    })
}

fn run_pass(
    steamcmd: &Path,
    dir: &Path,
    platform: &'static str,
    login: &SteamLogin,
    layout: &Layout,
    out: &mut dyn Write,
) -> Result<(), InstallError> {
    let success_line = format!("Success! App '{APP_ID}' fully installed.");
    let mut succeeded = false;
    let app_id = APP_ID.to_string();
    let run = run_steamcmd(
        layout,
        steamcmd,
        login,
        &["+force_install_dir".as_ref(), dir.as_os_str()],
        &[
            "+@sSteamCmdForcePlatformType",
            platform,
            "+app_update",
            &app_id,
            "validate",
            "+quit",
        ],
        &mut |line| {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
            if line.contains(&success_line) {
                succeeded = true;
            }
        },
    )?;
    if let Some(failure) = run.login_failure {
        return Err(failure);
    }
    if !run.status.success() {
        return Err(InstallError::Failed {
            platform,
            status: run.status.to_string(),
            last: run.last,
        });
    }
    if !succeeded {
        return Err(InstallError::NoSuccess {
            platform,
            last: run.last,
        });
    }
    Ok(())
}

/// Points `<root>/.steam/<name>` at `target`, replacing an old link atomically.
fn link_sdk(layout: &Layout, name: &str, target: &Path) -> Result<(), InstallError> {
    let dir = layout.dot_steam();
    std::fs::create_dir_all(&dir).map_err(io("cannot create", &dir))?;
    let link = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(io("cannot create link", &tmp))?;
    std::fs::rename(&tmp, &link).map_err(io("cannot replace", &link))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP_INFO: &str = "Connecting anonymously to Steam Public...OK\nAppID : 222860, change number : 27041234/0, last change : Mon Nov 30 18:00:00 2026 \n\"222860\"\n{\n\t\"common\"\n\t{\n\t\t\"name\"\t\t\"Left 4 Dead 2 Dedicated Server\"\n\t}\n\t\"depots\"\n\t{\n\t\t\"branches\"\n\t\t{\n\t\t\t\"public\"\n\t\t\t{\n\t\t\t\t\"buildid\"\t\t\"15000002\"\n\t\t\t\t\"timeupdated\"\t\t\"1764600000\"\n\t\t\t}\n\t\t}\n\t}\n}\nUnloading Steam API...OK\n";

    /// The app's KeyValues block as `published_build` collects it.
    fn collect(output: &str) -> (String, Vec<String>) {
        let mut info = AppInfoText::default();
        let others = output
            .lines()
            .filter(|l| !info.feed(l))
            .map(str::to_owned)
            .collect();
        (info.text, others)
    }

    #[test]
    fn reads_the_public_build_from_app_info_print() {
        let (text, others) = collect(APP_INFO);
        assert_eq!(parse_public_build(&text), Ok(BuildId(15000002)));
        assert!(others.iter().any(|l| l.starts_with("AppID : 222860")));
        assert!(
            others.iter().any(|l| l.starts_with("Unloading")),
            "{others:?}"
        );
        assert!(!others.iter().any(|l| l.contains("buildid")), "{others:?}");
    }

    #[test]
    fn garbage_app_info_is_a_clear_error() {
        let no_public = APP_INFO.replace("\"public\"", "\"beta\"");
        let bad_id = APP_INFO.replace("\"15000002\"", "\"15000002; rm -rf /\"");
        let cases: [(&str, &str); 5] = [
            (
                "No app info for AppID 222860 found, requesting...\n",
                "printed no app info",
            ),
            (
                "\"222860\"\n{\n\t\"depots\"\n\t{\n}\n",
                "not KeyValues text",
            ),
            (&no_public, "(\"public\" is missing)"),
            (&bad_id, "is not a game build id"),
            (
                "\"222860\"\n{\n\t\"depots\"\n\t{\n\t\t\"branches\"\t\"x\"\n\t}\n}\n",
                "(\"public\" is missing)",
            ),
        ];
        for (output, why) in cases {
            let (text, _) = collect(output);
            let e = parse_public_build(&text).unwrap_err();
            assert!(e.contains(why), "{output:?}: {e}");
        }
    }
}
