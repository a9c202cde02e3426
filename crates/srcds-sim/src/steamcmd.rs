//! `steamcmd-sim`: installs the simulated game like `steamcmd` installs
//! app 222860, driven by the same `+command args` sequence:
//!
//! `+force_install_dir <dir> +login anonymous +@sSteamCmdForcePlatformType windows +app_update 222860 validate +quit`
//!
//! The windows pass writes the shared content (left4dead2/ tree, srcds.exe);
//! the linux pass writes `srcds_run` and `srcds_linux` (a copy of the
//! `srcds-sim` binary). Like the real depots, the linux pass fails on a
//! directory without the shared content — this is why left4me runs the
//! windows pass first. Output and exit codes imitate steamcmd.

use crate::build::{self, BuildId, Published, PublishedBuildError};
use crate::clock;
use std::fs;
use std::io::{self, BufRead, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The L4D2 dedicated server app.
pub const APP_ID: &str = "222860";
/// steamcmd's exit code for a failed app_update.
pub const EXIT_APP_UPDATE_FAILED: u8 = 8;
/// steamcmd's exit code for a failed login.
pub const EXIT_LOGIN_FAILED: u8 = 5;
/// Exit code when steamcmd cannot bootstrap itself.
pub const EXIT_BOOTSTRAP_FAILED: u8 = 1;
/// Exit code when "Steam" is broken: the published build file holds
/// something that is not a build id.
pub const EXIT_STEAM_BROKEN: u8 = 1;
/// Default size of the content archive, MiB (`STEAMCMD_SIM_CONTENT_MB`).
pub const DEFAULT_CONTENT_MB: u64 = 4;

/// Bytes between two progress reports of one file.
const PROGRESS_CHUNK: usize = 512 * 1024;

/// Real campaign maps shipped as placeholders.
pub const MAPS: &[&str] = &[
    "c1m1_hotel",
    "c1m2_streets",
    "c1m3_mall",
    "c1m4_atrium",
    "c2m1_highway",
    "c2m2_fairgrounds",
    "c5m1_waterfront",
    "c8m1_apartment",
];

const SRCDS_RUN: &str = "#!/bin/bash\n\
# srcds_run (left4me srcds-sim): like Valve's script, run the server binary\n\
# from the script's own directory, so it must be started through the path\n\
# whose tree it should see (e.g. an overlay mount).\n\
cd \"$(dirname \"$0\")\" || exit 1\n\
exec ./srcds_linux \"$@\"\n";

/// An install failure, printed as `ERROR! Failed to install app '<id>' (<why>)`.
#[derive(Debug, Error)]
pub enum InstallError {
    #[error("No subscription")]
    NoSubscription,
    #[error("Missing configuration")]
    MissingConfiguration,
    #[error("Invalid platform {0:?}")]
    InvalidPlatform(String),
    /// What real steamcmd prints since Valve took the game out of the
    /// anonymous package for some platforms.
    #[error("Invalid platform")]
    AnonymousRefused,
    #[error("Disk write failure: {path}: {source}")]
    DiskWrite {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("srcds-sim binary not found (looked at {0}); build it or set SRCDS_SIM_BIN")]
    SimBinaryMissing(String),
}

/// Splits `+cmd a b +cmd2 c` into commands, as steamcmd does.
pub fn parse_commands(args: &[String]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for a in args {
        match a.strip_prefix('+') {
            Some(name) => out.push(vec![name.to_string()]),
            None => match out.last_mut() {
                Some(cmd) => cmd.push(a.clone()),
                // Arguments before any +command: steamcmd treats them as a
                // command line too.
                None => out.push(vec![a.clone()]),
            },
        }
    }
    out
}

/// What the caller provides: where it was invoked from and knobs from env.
#[derive(Debug)]
pub struct Environment {
    /// The build Steam offers: the published build file, else
    /// `STEAMCMD_SIM_BUILD_ID`, else [`build::DEFAULT_BUILD_ID`]; an error
    /// when the file holds garbage (reported by the commands that need it).
    pub published: Result<Published, PublishedBuildError>,
    /// Directory of argv[0] as invoked (not canonicalized): steamclient.so
    /// goes into its linux32/ and linux64/.
    pub steam_dir: PathBuf,
    /// The srcds-sim binary to copy as srcds_linux.
    pub sim_binary: Result<PathBuf, String>,
    /// Size of left4dead2/pak01_dir.vpk in MiB.
    pub content_mb: u64,
    /// Simulated download speed (`STEAMCMD_SIM_KIB_PER_SEC`); 0 = as fast
    /// as the disk.
    pub download_kib_per_sec: u64,
    /// The one Steam account that can log in (`STEAMCMD_SIM_ACCOUNT`,
    /// `name:password`), with its Steam Guard code when it has Steam Guard
    /// (`STEAMCMD_SIM_GUARD_CODE`).
    pub account: Option<SimAccount>,
    /// Saved logins are refused as expired (`STEAMCMD_SIM_LOGIN_EXPIRED=1`).
    pub saved_login_expired: bool,
    /// Anonymous logins cannot install the game, as Valve made it in
    /// November 2024 for some platforms (`STEAMCMD_SIM_ANONYMOUS_REFUSED=1`).
    pub anonymous_refused: bool,
    /// Where steamcmd keeps its state: `$HOME/Steam`.
    pub home: Option<PathBuf>,
}

/// A Steam account steamcmd-sim accepts.
#[derive(Debug, Clone)]
pub struct SimAccount {
    pub user: String,
    pub password: String,
    pub guard_code: Option<String>,
}

impl SimAccount {
    /// `name:password` (the password may contain ':').
    pub fn parse(spec: &str, guard_code: Option<String>) -> Option<Self> {
        let (user, password) = spec.split_once(':')?;
        (!user.is_empty() && !password.is_empty()).then(|| SimAccount {
            user: user.to_owned(),
            password: password.to_owned(),
            guard_code,
        })
    }
}

struct Session<'a, W: Write> {
    env: &'a Environment,
    out: W,
    stdin: &'a mut dyn BufRead,
    install_dir: Option<PathBuf>,
    logged_in: bool,
    anonymous: bool,
    platform: String,
}

fn say<W: Write>(out: &mut W, line: &str) {
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), InstallError> {
    let fail = |source| InstallError::DiskWrite {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(fail)?;
    }
    // Write beside and rename: replacing a running srcds_linux must not
    // fail with ETXTBSY, and a crash never leaves a half-written file.
    let tmp = path.with_extension("steamcmd-sim-tmp");
    fs::write(&tmp, bytes).map_err(fail)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(fail)?;
    fs::rename(&tmp, path).map_err(fail)
}

fn up_to_date(path: &Path, bytes: &[u8]) -> bool {
    match fs::read(path) {
        Ok(existing) => existing == bytes,
        Err(_) => false,
    }
}

/// Deterministic filler so files have real, non-sparse bytes on disk.
fn filler(header: &[u8], len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len.max(header.len()));
    v.extend_from_slice(header);
    let mut x: u32 = 0x1234_5678;
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.push(x as u8);
    }
    v
}

/// One planned file of a depot.
struct Item {
    rel: String,
    bytes: Vec<u8>,
    mode: u32,
}

/// Size of each depot's build-specific server binary placeholder.
const BUILD_BINARY_LEN: usize = 32 * 1024;

/// A placeholder for a binary that changes with every build (real updates
/// change the server library); its bytes are the build's.
fn build_binary(rel: &str, magic: &[u8], build: BuildId) -> Item {
    let mut header = magic.to_vec();
    header.extend_from_slice(format!(" srcds-sim placeholder, build {build}\n").as_bytes());
    Item {
        rel: rel.into(),
        bytes: filler(&header, BUILD_BINARY_LEN),
        mode: 0o644,
    }
}

fn shared_depot(content_mb: u64, build: BuildId) -> Vec<Item> {
    let mut items = vec![
        Item {
            rel: "left4dead2/steam.inf".into(),
            bytes: build::steam_inf(build).into_bytes(),
            mode: 0o644,
        },
        build_binary("left4dead2/bin/server.dll", b"MZ\x90\x00", build),
        Item {
            rel: "left4dead2/cfg/valve.rc".into(),
            bytes: b"// load the base configuration\nexec config_default.cfg\n\n// run a user script file if present\nexec autoexec.cfg\n\nstuffcmds\nstartupmenu\n".to_vec(),
            mode: 0o644,
        },
        Item {
            rel: "left4dead2/cfg/config_default.cfg".into(),
            bytes: b"// default configuration (srcds-sim placeholder)\nunbindall\nbind \"ESCAPE\" \"cancelselect\"\nbind \"`\" \"toggleconsole\"\n".to_vec(),
            mode: 0o644,
        },
        Item {
            rel: "left4dead2/cfg/server_example.cfg".into(),
            bytes: b"// example server.cfg (srcds-sim placeholder; real installs ship none)\n// hostname \"My L4D2 Server\"\n// rcon_password \"change-me\"\n".to_vec(),
            mode: 0o644,
        },
        Item {
            rel: "left4dead2/addons/README.txt".into(),
            bytes: b"Put .vpk add-ons here.\n".to_vec(),
            mode: 0o644,
        },
        Item {
            rel: "srcds.exe".into(),
            bytes: filler(b"MZ\x90\x00srcds-sim placeholder for the windows server binary\n", 8 * 1024),
            mode: 0o644,
        },
    ];
    for map in MAPS {
        // VBSP header with version 21 (L4D2's BSP version), then filler.
        items.push(Item {
            rel: format!("left4dead2/maps/{map}.bsp"),
            bytes: filler(b"VBSP\x15\x00\x00\x00", 16 * 1024),
            mode: 0o644,
        });
    }
    let vpk_len = (content_mb.min(64 * 1024) as usize) * 1024 * 1024;
    // VPK v2 signature 0x55AA1234, little-endian.
    items.push(Item {
        rel: "left4dead2/pak01_dir.vpk".into(),
        bytes: filler(b"\x34\x12\xAA\x55\x02\x00\x00\x00", vpk_len),
        mode: 0o644,
    });
    items
}

fn linux_depot(sim_binary: &Path, build: BuildId) -> Result<Vec<Item>, InstallError> {
    let bytes = fs::read(sim_binary)
        .map_err(|_| InstallError::SimBinaryMissing(sim_binary.display().to_string()))?;
    Ok(vec![
        build_binary("left4dead2/bin/server_srv.so", b"\x7fELF", build),
        Item {
            rel: "srcds_run".into(),
            bytes: SRCDS_RUN.as_bytes().to_vec(),
            mode: 0o755,
        },
        Item {
            rel: "srcds_linux".into(),
            bytes,
            mode: 0o755,
        },
    ])
}

impl<W: Write> Session<'_, W> {
    /// The published build, or (after saying why on stderr) the exit code
    /// of a steamcmd whose Steam is broken.
    fn published(&mut self) -> Result<Published, u8> {
        match &self.env.published {
            Ok(p) => Ok(*p),
            Err(e) => {
                eprintln!("steamcmd-sim: {e}");
                Err(EXIT_STEAM_BROKEN)
            }
        }
    }

    fn app_update(&mut self, args: &[String]) -> Result<(), u8> {
        let app = args.first().cloned().unwrap_or_default();
        if !self.logged_in {
            say(&mut self.out, "ERROR! Not logged on.");
            return Err(EXIT_APP_UPDATE_FAILED);
        }
        let published = self.published()?;
        match self.install(&app, published) {
            Ok(()) => {
                say(
                    &mut self.out,
                    &format!("Success! App '{app}' fully installed."),
                );
                Ok(())
            }
            Err(e) => {
                say(
                    &mut self.out,
                    &format!("ERROR! Failed to install app '{app}' ({e})"),
                );
                Err(EXIT_APP_UPDATE_FAILED)
            }
        }
    }

    fn install(&mut self, app: &str, published: Published) -> Result<(), InstallError> {
        if app != APP_ID {
            return Err(InstallError::NoSubscription);
        }
        if self.anonymous && self.env.anonymous_refused {
            return Err(InstallError::AnonymousRefused);
        }
        // Without force_install_dir real steamcmd would use its own
        // steamapps/common; the simulator only installs where told to.
        let dir = self
            .install_dir
            .clone()
            .ok_or(InstallError::MissingConfiguration)?;
        let build = published.id;
        let items = match self.platform.as_str() {
            "windows" => shared_depot(self.env.content_mb, build),
            "linux" => {
                if !dir.join("left4dead2/steam.inf").is_file() {
                    // The linux depot alone cannot install L4D2 (the reason
                    // for the windows-first two-pass workaround).
                    return Err(InstallError::MissingConfiguration);
                }
                let bin = self
                    .env
                    .sim_binary
                    .clone()
                    .map_err(InstallError::SimBinaryMissing)?;
                linux_depot(&bin, build)?
            }
            other => return Err(InstallError::InvalidPlatform(other.to_string())),
        };
        let size_on_disk: u64 = items.iter().map(|i| i.bytes.len() as u64).sum();
        // Like SteamPipe, download only what differs from the files already
        // there; unchanged files are left alone (not even rewritten), so a
        // copy-on-write copy of an older build keeps sharing them.
        let changed: Vec<&Item> = items
            .iter()
            .filter(|i| !up_to_date(&dir.join(&i.rel), &i.bytes))
            .collect();
        let total: u64 = changed.iter().map(|i| i.bytes.len() as u64).sum();
        fs::create_dir_all(&dir).map_err(|source| InstallError::DiskWrite {
            path: dir.clone(),
            source,
        })?;
        if total > 0 {
            say(
                &mut self.out,
                &format!(" Update state (0x3) reconfiguring, progress: 0.00 (0 / {total})"),
            );
        }
        let mut done: u64 = 0;
        for item in changed {
            // Real steamcmd reports about once a second while a large file
            // downloads; a report per chunk is the same shape, faster.
            for chunk in item.bytes.chunks(PROGRESS_CHUNK) {
                self.throttle(chunk.len());
                done += chunk.len() as u64;
                let pct = done as f64 * 100.0 / total as f64;
                say(
                    &mut self.out,
                    &format!(
                        " Update state (0x61) downloading, progress: {pct:.2} ({done} / {total})"
                    ),
                );
            }
            write_file(&dir.join(&item.rel), &item.bytes, item.mode)?;
        }
        if total > 0 {
            say(
                &mut self.out,
                &format!(
                    " Update state (0x81) verifying update, progress: 100.00 ({total} / {total})"
                ),
            );
        }
        let manifest = app_manifest(build, size_on_disk, total, &self.platform);
        write_file(&dir.join(build::APP_MANIFEST), manifest.as_bytes(), 0o644)?;
        Ok(())
    }

    /// `app_info_print <appid>`, as real steamcmd prints it: a header line,
    /// then the app's KeyValues. App info is public, so any login works,
    /// anonymous included even where anonymous downloads are refused.
    fn app_info_print(&mut self, args: &[String]) -> Result<(), u8> {
        let Some(app) = args.first() else {
            say(&mut self.out, "Usage: app_info_print <appid>");
            return Ok(());
        };
        // Without a connection (no login) steamcmd has nothing cached and
        // cannot fetch: it says so and prints no app info. Same for an app
        // Steam does not know.
        if !self.logged_in || app != APP_ID {
            say(
                &mut self.out,
                &format!("No app info for AppID {app} found, requesting..."),
            );
            return Ok(());
        }
        let published = self.published()?;
        let text = app_info(published);
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
        Ok(())
    }

    /// Waits as long as downloading `bytes` takes at the simulated speed.
    fn throttle(&self, bytes: usize) {
        if self.env.download_kib_per_sec > 0 {
            let secs = bytes as f64 / (self.env.download_kib_per_sec as f64 * 1024.0);
            std::thread::sleep(std::time::Duration::from_secs_f64(secs));
        }
    }

    /// `login <user> [<password>] [<Steam Guard code>]`, as real steamcmd
    /// answers it. With Steam Guard, a login without a saved one asks for
    /// the code on stdin (EOF: denied); a right code saves the login in
    /// `$HOME/Steam/config/config.vdf`, as steamcmd's `ConnectCache`, so
    /// later logins need no code.
    fn login(
        &mut self,
        user: &str,
        password: Option<&String>,
        code: Option<&String>,
    ) -> Result<bool, u8> {
        let refuse = |s: &mut Self, result: &str| {
            say(
                &mut s.out,
                &format!("Logging in user '{user}' to Steam Public...FAILED ({result})"),
            );
            say(
                &mut s.out,
                &format!("FAILED login with result code {result}"),
            );
            Err(EXIT_LOGIN_FAILED)
        };
        let Some(account) = self.env.account.clone() else {
            return refuse(self, "Invalid Password");
        };
        if account.user != user || password != Some(&account.password) {
            return refuse(self, "Invalid Password");
        }
        if let Some(want) = &account.guard_code {
            let saved = !self.env.saved_login_expired && self.saved_login(user);
            if !saved {
                let code = match code {
                    Some(c) => Some(c.clone()),
                    None => {
                        say(
                            &mut self.out,
                            &format!("Logging in user '{user}' to Steam Public..."),
                        );
                        say(&mut self.out, "This computer has not been authenticated for your account using Steam Guard.");
                        say(&mut self.out, "Please check your email for the message from Steam, and enter the Steam Guard");
                        say(&mut self.out, " code from that message.");
                        say(
                            &mut self.out,
                            "You can also enter this code at any time using 'set_steam_guard_code'",
                        );
                        say(&mut self.out, " at the console.");
                        let _ = write!(self.out, "Steam Guard code:");
                        let _ = self.out.flush();
                        let mut line = String::new();
                        match self.stdin.read_line(&mut line) {
                            Ok(n) if n > 0 && !line.trim().is_empty() => {
                                Some(line.trim().to_owned())
                            }
                            _ => {
                                say(&mut self.out, "");
                                return refuse(self, "Account Logon Denied");
                            }
                        }
                    }
                };
                if code.as_deref() != Some(want.as_str()) {
                    return refuse(self, "Invalid Login Auth Code");
                }
                self.save_login(user);
            }
        }
        say(
            &mut self.out,
            &format!("Logging in user '{user}' to Steam Public...OK"),
        );
        say(&mut self.out, "Waiting for client config...OK");
        say(&mut self.out, "Waiting for user info...OK");
        self.logged_in = true;
        self.anonymous = false;
        Ok(true)
    }

    fn config_vdf(&self) -> Option<PathBuf> {
        Some(self.env.home.as_ref()?.join("Steam/config/config.vdf"))
    }

    fn saved_login(&self, user: &str) -> bool {
        self.config_vdf()
            .and_then(|p| fs::read_to_string(p).ok())
            .is_some_and(|c| c.contains(&format!("\"{user}\"")) && c.contains("ConnectCache"))
    }

    /// Real steamcmd nests ConnectCache under Software/Valve/Steam and keys
    /// it by a hash of the account name; this keeps the shape, not the key.
    fn save_login(&mut self, user: &str) {
        let Some(path) = self.config_vdf() else {
            return;
        };
        let text = format!(
            "\"InstallConfigStore\"\n{{\n\t\"ConnectCache\"\n\t{{\n\t\t\"{user}\"\t\t\"steamcmd-sim-saved-login\"\n\t}}\n}}\n"
        );
        if let Err(e) = write_file(&path, text.as_bytes(), 0o600) {
            say(&mut self.out, &format!("Saving the login failed: {e}"));
        }
    }

    /// `runscript <file>`: one command per line, words split at spaces
    /// except inside double quotes; `//` starts a comment line.
    fn runscript(&mut self, file: &Path) -> Result<bool, u8> {
        let Ok(text) = fs::read_to_string(file) else {
            say(
                &mut self.out,
                &format!("Could not open script file {}", file.display()),
            );
            return Ok(true);
        };
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with("//") {
                continue;
            }
            let words = split_quoted(line);
            if words.is_empty() {
                continue;
            }
            if !self.command(&words)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Runs one command; `Err(code)` ends steamcmd with that exit code,
    /// `Ok(false)` is `quit`.
    fn command(&mut self, cmd: &[String]) -> Result<bool, u8> {
        let name = cmd[0].as_str();
        let args = &cmd[1..];
        match name {
            "force_install_dir" => match args.first() {
                Some(dir) => {
                    if self.logged_in {
                        say(&mut self.out, "Please use force_install_dir before logon!");
                    }
                    self.install_dir = Some(PathBuf::from(dir));
                }
                None => say(&mut self.out, "Usage: force_install_dir <path>"),
            },
            "login" => match args.first().map(String::as_str) {
                Some("anonymous") => {
                    say(&mut self.out, "Connecting anonymously to Steam Public...OK");
                    say(&mut self.out, "Waiting for client config...OK");
                    say(&mut self.out, "Waiting for user info...OK");
                    self.logged_in = true;
                    self.anonymous = true;
                }
                Some(user) => return self.login(user, args.get(1), args.get(2)),
                None => say(
                    &mut self.out,
                    "Usage: login <username> [<password>] [<Steam guard code>]",
                ),
            },
            "@sSteamCmdForcePlatformType" => match args.first() {
                Some(p) => self.platform = p.clone(),
                None => say(&mut self.out, "\"@sSteamCmdForcePlatformType\" = \"\""),
            },
            "app_update" => self.app_update(args).map(|_| ())?,
            // Refreshes steamcmd's app info cache, silently. The simulator
            // keeps no cache: app_info_print reads the published build.
            "app_info_update" => {}
            "app_info_print" => self.app_info_print(args)?,
            "runscript" => match args.first() {
                Some(file) => return self.runscript(Path::new(file)),
                None => say(&mut self.out, "Usage: runscript <file>"),
            },
            "quit" | "exit" => return Ok(false),
            other => say(&mut self.out, &format!("Unknown command \"{other}\"")),
        }
        Ok(true)
    }
}

/// `steamapps/appmanifest_222860.acf` after an update to `build`, with the
/// fields a real one has (InstalledDepots and the owner left out).
fn app_manifest(build: BuildId, size_on_disk: u64, downloaded: u64, platform: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let fields: [(&str, String); 17] = [
        ("appid", APP_ID.into()),
        ("Universe", "1".into()),
        ("name", "Left 4 Dead 2 Dedicated Server".into()),
        ("StateFlags", "4".into()),
        ("installdir", "Left 4 Dead 2 Dedicated Server".into()),
        ("LastUpdated", now.to_string()),
        ("SizeOnDisk", size_on_disk.to_string()),
        ("StagingSize", "0".into()),
        ("buildid", build.to_string()),
        ("UpdateResult", "0".into()),
        ("BytesToDownload", downloaded.to_string()),
        ("BytesDownloaded", downloaded.to_string()),
        ("BytesToStage", downloaded.to_string()),
        ("BytesStaged", downloaded.to_string()),
        ("TargetBuildID", build.to_string()),
        ("AutoUpdateBehavior", "0".into()),
        ("AllowOtherDownloadsWhileRunning", "0".into()),
    ];
    let mut text = String::from("\"AppState\"\n{\n");
    for (key, value) in fields {
        text.push_str(&format!("\t\"{key}\"\t\t\"{value}\"\n"));
    }
    text.push_str(&format!(
        "\t\"ScheduledAutoUpdate\"\t\t\"0\"\n\t\"UserConfig\"\n\t{{\n\t\t\"platform_override_dest\"\t\t\"{platform}\"\n\t}}\n\t\"MountedConfig\"\n\t{{\n\t\t\"platform_override_dest\"\t\t\"{platform}\"\n\t}}\n}}\n"
    ));
    text
}

/// A KeyValues tree, printed with steamcmd's tab indentation.
enum Kv {
    Value(String),
    Block(Vec<(String, Kv)>),
}

fn kv(key: &str, value: impl Into<String>) -> (String, Kv) {
    (key.to_owned(), Kv::Value(value.into()))
}

fn block(key: &str, children: Vec<(String, Kv)>) -> (String, Kv) {
    (key.to_owned(), Kv::Block(children))
}

fn print_kv(out: &mut String, depth: usize, key: &str, node: &Kv) {
    let indent = "\t".repeat(depth);
    match node {
        Kv::Value(v) => out.push_str(&format!("{indent}\"{key}\"\t\t\"{v}\"\n")),
        Kv::Block(children) => {
            out.push_str(&format!("{indent}\"{key}\"\n{indent}{{\n"));
            for (k, child) in children {
                print_kv(out, depth + 1, k, child);
            }
            out.push_str(&format!("{indent}}}\n"));
        }
    }
}

/// What `app_info_print 222860` prints for the published build. The real
/// app has more keys (ufs, extended, more depots); these are the ones that
/// describe the install and the public branch's build (the depot ids and
/// names are the simulator's). The change number
/// is the build id here, so it grows with every publication as Steam's
/// does; real change numbers are a separate sequence.
fn app_info(published: Published) -> String {
    let build = published.id.to_string();
    let updated = published.time_updated.to_string();
    let depot = |name: &str, os: &str, gid: u128| {
        vec![
            kv("name", name),
            block("config", vec![kv("oslist", os)]),
            block(
                "manifests",
                vec![block(
                    "public",
                    vec![kv("gid", gid.to_string()), kv("size", "0")],
                )],
            ),
        ]
    };
    let launch = |exe: &str, args: &str, os: &str| {
        vec![
            kv("executable", exe),
            kv("arguments", args),
            block("config", vec![kv("oslist", os)]),
        ]
    };
    let tree = Kv::Block(vec![
        block(
            "common",
            vec![
                kv("name", "Left 4 Dead 2 Dedicated Server"),
                kv("type", "Tool"),
                kv("parent", "550"),
                kv("oslist", "windows,linux"),
                kv("osarch", ""),
                kv("gameid", APP_ID),
            ],
        ),
        block(
            "config",
            vec![
                kv("contenttype", "3"),
                kv("installdir", "Left 4 Dead 2 Dedicated Server"),
                block(
                    "launch",
                    vec![
                        block(
                            "0",
                            launch("srcds.exe", "-console -game left4dead2", "windows"),
                        ),
                        block("1", launch("srcds_run", "-game left4dead2", "linux")),
                    ],
                ),
            ],
        ),
        block(
            "depots",
            vec![
                block(
                    "222861",
                    depot(
                        "Left 4 Dead 2 Dedicated Server Content",
                        "windows",
                        published.id.0 * 1_000 + 1,
                    ),
                ),
                block(
                    "222862",
                    depot(
                        "Left 4 Dead 2 Dedicated Server Linux",
                        "linux",
                        published.id.0 * 1_000 + 2,
                    ),
                ),
                block(
                    "branches",
                    vec![block(
                        "public",
                        vec![kv("buildid", build.clone()), kv("timeupdated", updated)],
                    )],
                ),
            ],
        ),
    ]);
    let mut out = format!(
        "AppID : {APP_ID}, change number : {build}/0, last change : {} \n",
        clock::asctime(published.time_updated)
    );
    print_kv(&mut out, 0, APP_ID, &tree);
    out
}

/// Runs steamcmd with `args` (after argv[0]); interactive commands are read
/// from `stdin` when the arguments do not end with `+quit`. Returns the
/// process exit code.
pub fn run<W: Write, R: BufRead>(env: &Environment, args: &[String], out: W, mut stdin: R) -> u8 {
    let mut s = Session {
        env,
        out,
        stdin: &mut stdin,
        install_dir: None,
        logged_in: false,
        anonymous: false,
        platform: "linux".into(),
    };
    say(&mut s.out, "[  0%] Checking for available updates...");
    say(&mut s.out, "[----] Verifying installation...");
    say(
        &mut s.out,
        "Steam Console Client (c) Valve Corporation - version 1731023958 (steamcmd-sim)",
    );
    say(&mut s.out, "-- type 'quit' to exit --");
    if let Err(e) = ensure_steamclient(&env.steam_dir) {
        say(&mut s.out, &format!("Loading Steam API...FAILED ({e})"));
        return EXIT_BOOTSTRAP_FAILED;
    }
    say(&mut s.out, "Loading Steam API...OK");
    say(&mut s.out, "");
    for cmd in parse_commands(args) {
        match s.command(&cmd) {
            Ok(true) => {}
            Ok(false) => return finish(&mut s.out, 0),
            Err(code) => return finish(&mut s.out, code),
        }
    }
    // No +quit: steamcmd stays at its prompt and reads commands.
    loop {
        let mut line = String::new();
        match s.stdin.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let tokens = split_quoted(&line);
        if tokens.is_empty() {
            continue;
        }
        match s.command(&tokens) {
            Ok(true) => {}
            Ok(false) => return finish(&mut s.out, 0),
            Err(code) => return finish(&mut s.out, code),
        }
    }
    finish(&mut s.out, 0)
}

/// Words of a command line; double quotes group words (no escapes, as in
/// steamcmd).
fn split_quoted(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.trim_end_matches(['\r', '\n']).chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(word);
    }
    words
}

fn finish<W: Write>(out: &mut W, code: u8) -> u8 {
    say(out, "Unloading Steam API...OK");
    code
}

/// steamcmd keeps its client library in linux32/ and linux64/ beside
/// steamcmd.sh; srcds dlopens it via ~/.steam/sdk32|sdk64.
pub fn ensure_steamclient(steam_dir: &Path) -> Result<(), InstallError> {
    for arch in ["linux32", "linux64"] {
        let path = steam_dir.join(arch).join("steamclient.so");
        if path.is_file() {
            continue;
        }
        let bytes = filler(b"\x7fELF srcds-sim placeholder steamclient.so\n", 4096);
        write_file(&path, &bytes, 0o755)?;
    }
    Ok(())
}

/// Locates the srcds-sim binary: `$SRCDS_SIM_BIN` when set, else next to
/// the running executable (canonicalized, so a symlinked steamcmd.sh still
/// finds the build directory).
pub fn find_sim_binary(
    env_override: Option<PathBuf>,
    current_exe: io::Result<PathBuf>,
) -> Result<PathBuf, String> {
    if let Some(p) = env_override {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("$SRCDS_SIM_BIN={}", p.display()))
        };
    }
    let exe = current_exe
        .and_then(fs::canonicalize)
        .map_err(|e| format!("current executable ({e})"))?;
    let candidate = exe.with_file_name("srcds-sim");
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(candidate.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plus_commands_in_order() {
        let args: Vec<String> = "+force_install_dir /x +login anonymous +@sSteamCmdForcePlatformType windows +app_update 222860 validate +quit"
            .split(' ')
            .map(String::from)
            .collect();
        let cmds = parse_commands(&args);
        assert_eq!(cmds.len(), 5);
        assert_eq!(cmds[0], vec!["force_install_dir", "/x"]);
        assert_eq!(cmds[3], vec!["app_update", "222860", "validate"]);
        assert_eq!(cmds[4], vec!["quit"]);
    }
}
