//! Game builds: the build Steam publishes (a file), `app_update` installing
//! it with only the changed files downloaded, `app_info_print` reporting
//! it, and srcds-sim noticing that it runs an outdated build. All through
//! the real binaries, as `l4d2ctl install` and the panel run them.

use crate::util::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const PUBLISHED_VAR: &str = "LEFT4ME_SIM_PUBLISHED_BUILD_FILE";
const BUILD_A: &str = "15000001";
const BUILD_B: &str = "15000002";
const RESTART_LINE: &str = "\u{3}MasterRequestRestart";
const UPDATE_LINE: &str =
    "Your server needs to be restarted in order to receive the latest update.";

/// A root whose "Steam" publishes the build in `<root>/published-build`.
struct Steam {
    root: Root,
}

impl Steam {
    fn new() -> Self {
        Steam { root: Root::new() }
    }

    fn published_file(&self) -> PathBuf {
        self.root.path().join("published-build")
    }

    fn publish(&self, content: &str) {
        std::fs::write(self.published_file(), content).unwrap();
    }

    /// steamcmd-sim with `args`, the published build file and `env`.
    fn steamcmd(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(self.root.path().join("steam/steamcmd.sh"))
            .args(args)
            .env("STEAMCMD_SIM_CONTENT_MB", "1")
            .env_remove("SRCDS_SIM_BIN")
            .env_remove("STEAMCMD_SIM_BUILD_ID")
            .env_remove("STEAMCMD_SIM_ANONYMOUS_REFUSED")
            .env("HOME", self.root.path())
            .env(PUBLISHED_VAR, self.published_file())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("spawn steamcmd-sim")
    }

    /// One install pass into `dir`, as `l4d2ctl install` runs it.
    fn pass(&self, dir: &Path, platform: &str) -> Output {
        let out = self.steamcmd(
            &[
                "+force_install_dir",
                dir.to_str().unwrap(),
                "+login",
                "anonymous",
                "+@sSteamCmdForcePlatformType",
                platform,
                "+app_update",
                "222860",
                "validate",
                "+quit",
            ],
            &[],
        );
        assert!(
            out.status.success(),
            "{platform} pass: {}{}",
            stdout(&out),
            stderr(&out)
        );
        out
    }

    fn install(&self, dir: &Path) {
        self.pass(dir, "windows");
        self.pass(dir, "linux");
    }

    fn app_info(&self, login: &[&str], app: &str, env: &[(&str, &str)]) -> Output {
        let mut args = login.to_vec();
        args.extend(["+app_info_update", "1", "+app_info_print", app, "+quit"]);
        self.steamcmd(&args, env)
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `(done, total)` of every downloading line.
fn downloads(out: &Output) -> Vec<(u64, u64)> {
    stdout(out)
        .lines()
        .filter_map(|l| l.strip_prefix(" Update state (0x61) downloading, progress: "))
        .map(|rest| {
            let counts = rest.rsplit_once('(').unwrap().1.trim_end_matches(')');
            let (done, total) = counts.split_once(" / ").unwrap();
            (done.parse().unwrap(), total.parse().unwrap())
        })
        .collect()
}

fn manifest_value(dir: &Path, key: &str) -> String {
    let text = std::fs::read_to_string(dir.join("steamapps/appmanifest_222860.acf")).unwrap();
    let prefix = format!("\t\"{key}\"\t\t\"");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        .to_owned()
}

fn file_id(path: &Path) -> (u64, i64, i64) {
    let m = std::fs::metadata(path).unwrap();
    (m.ino(), m.mtime(), m.mtime_nsec())
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn an_update_downloads_and_writes_only_the_changed_files() {
    let steam = Steam::new();
    let dir = steam.root.installation();
    steam.publish(&format!("{BUILD_A}\n"));
    steam.install(&dir);
    assert_eq!(manifest_value(&dir, "buildid"), BUILD_A);
    assert_eq!(manifest_value(&dir, "TargetBuildID"), BUILD_A);
    assert!(manifest_value(&dir, "LastUpdated").parse::<u64>().unwrap() > 1_700_000_000);
    let inf = dir.join("left4dead2/steam.inf");
    let inf_a = std::fs::read_to_string(&inf).unwrap();
    assert!(inf_a.contains("PatchVersion=2.2.3.6\n"), "{inf_a}");
    let vpk = dir.join("left4dead2/pak01_dir.vpk");
    let bin = dir.join("srcds_linux");
    let (vpk_before, bin_before) = (file_id(&vpk), file_id(&bin));

    // Valve publishes B: the windows pass downloads steam.inf and the
    // server library, nothing else.
    steam.publish(BUILD_B);
    let update = steam.pass(&dir, "windows");
    let inf_b = std::fs::read_to_string(&inf).unwrap();
    assert_ne!(inf_a, inf_b);
    assert!(inf_b.contains("PatchVersion=2.2.3.7\n"), "{inf_b}");
    assert!(inf_b.contains("ServerVersion=2237\n"), "{inf_b}");
    let changed = size(&inf) + size(&dir.join("left4dead2/bin/server.dll"));
    let progress = downloads(&update);
    assert!(!progress.is_empty(), "{}", stdout(&update));
    assert!(
        progress.iter().all(|(_, total)| *total == changed),
        "{progress:?}"
    );
    assert_eq!(progress.last().unwrap().0, changed);
    assert!(
        changed < size(&vpk) / 10,
        "the update is small: {changed} bytes"
    );
    assert_eq!(file_id(&vpk), vpk_before, "the vpk is not rewritten");
    assert_eq!(manifest_value(&dir, "buildid"), BUILD_B);
    assert_eq!(manifest_value(&dir, "TargetBuildID"), BUILD_B);

    // The linux pass: only the linux server library changed.
    let linux = steam.pass(&dir, "linux");
    let so = size(&dir.join("left4dead2/bin/server_srv.so"));
    assert_eq!(downloads(&linux).last().unwrap(), &(so, so));
    assert_eq!(file_id(&bin), bin_before, "srcds_linux is not rewritten");

    // Validating the same build again downloads nothing.
    let again = steam.pass(&dir, "windows");
    assert!(downloads(&again).is_empty(), "{}", stdout(&again));
    assert!(stdout(&again).contains("Success! App '222860' fully installed."));
    assert_eq!(file_id(&vpk), vpk_before);
}

/// A new build installed into a copy of the old one (hard links here, the
/// strictest kind of sharing) replaces only the changed files: the old
/// tree keeps its build and both still share the unchanged files.
#[test]
fn updating_a_copy_leaves_the_old_build_intact_and_shares_the_rest() {
    let steam = Steam::new();
    let old = steam.root.path().join("builds/a");
    steam.publish(BUILD_A);
    steam.install(&old);
    let new = steam.root.path().join("builds/b");
    let cp = Command::new("cp")
        .arg("-al")
        .arg(&old)
        .arg(&new)
        .status()
        .unwrap();
    assert!(cp.success());

    steam.publish(BUILD_B);
    steam.install(&new);
    assert_eq!(manifest_value(&old, "buildid"), BUILD_A);
    assert_eq!(manifest_value(&new, "buildid"), BUILD_B);
    let inf = "left4dead2/steam.inf";
    assert!(std::fs::read_to_string(old.join(inf))
        .unwrap()
        .contains("PatchVersion=2.2.3.6"));
    assert!(std::fs::read_to_string(new.join(inf))
        .unwrap()
        .contains("PatchVersion=2.2.3.7"));
    for shared in [
        "left4dead2/pak01_dir.vpk",
        "srcds_linux",
        "left4dead2/maps/c1m1_hotel.bsp",
    ] {
        assert_eq!(
            file_id(&old.join(shared)).0,
            file_id(&new.join(shared)).0,
            "{shared} still shared"
        );
    }
    for own in [
        inf,
        "left4dead2/bin/server.dll",
        "left4dead2/bin/server_srv.so",
    ] {
        assert_ne!(
            std::fs::read(old.join(own)).unwrap(),
            std::fs::read(new.join(own)).unwrap(),
            "{own} differs between builds"
        );
    }
}

#[test]
fn a_broken_published_build_fails_the_install_and_changes_nothing() {
    let steam = Steam::new();
    let dir = steam.root.installation();
    steam.publish(BUILD_A);
    steam.install(&dir);
    let inf_before = std::fs::read(dir.join("left4dead2/steam.inf")).unwrap();
    steam.publish("build 42, probably\n");
    let out = steam.steamcmd(
        &[
            "+force_install_dir",
            dir.to_str().unwrap(),
            "+login",
            "anonymous",
            "+@sSteamCmdForcePlatformType",
            "windows",
            "+app_update",
            "222860",
            "+quit",
        ],
        &[],
    );
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains(steam.published_file().to_str().unwrap()) && err.contains("is not a build id"),
        "{err}"
    );
    assert!(!stdout(&out).contains("Success!"), "{}", stdout(&out));
    assert_eq!(
        std::fs::read(dir.join("left4dead2/steam.inf")).unwrap(),
        inf_before
    );
    assert_eq!(manifest_value(&dir, "buildid"), BUILD_A);
}

/// The public branch's build id of an app_info_print output, checked to sit
/// at depots/branches/public with steamcmd's indentation.
fn public_buildid(text: &str) -> Option<String> {
    let at = text.find("\t\t\"branches\"\n\t\t{\n\t\t\t\"public\"\n\t\t\t{\n")?;
    text[at..]
        .lines()
        .find_map(|l| l.strip_prefix("\t\t\t\t\"buildid\"\t\t\""))
        .and_then(|v| v.strip_suffix('"'))
        .map(str::to_owned)
}

const ANONYMOUS: &[&str] = &["+login", "anonymous"];

#[test]
fn app_info_print_reports_the_published_build() {
    let steam = Steam::new();
    steam.publish("16000042\n");
    let out = steam.app_info(ANONYMOUS, "222860", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let header = text
        .lines()
        .find(|l| l.starts_with("AppID : "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        header.starts_with("AppID : 222860, change number : 16000042/0, last change : "),
        "{header}"
    );
    assert!(text.contains("\n\"222860\"\n{\n\t\"common\"\n\t{\n\t\t\"name\"\t\t\"Left 4 Dead 2 Dedicated Server\"\n"), "{text}");
    assert_eq!(public_buildid(&text).as_deref(), Some("16000042"), "{text}");
    // "timeupdated" is when the build was published: the file's mtime.
    let mtime = std::fs::metadata(steam.published_file()).unwrap().mtime();
    assert!(
        text.contains(&format!("\t\t\t\t\"timeupdated\"\t\t\"{mtime}\"\n")),
        "{text}"
    );
    // Balanced braces: one KeyValues tree.
    assert_eq!(text.matches('{').count(), text.matches('}').count());

    // Publishing a new build shows at the next look.
    steam.publish("16000043");
    let next = stdout(&steam.app_info(ANONYMOUS, "222860", &[]));
    assert_eq!(public_buildid(&next).as_deref(), Some("16000043"));
}

#[test]
fn without_a_published_file_the_build_comes_from_the_environment_or_the_default() {
    let steam = Steam::new();
    let env = steam.app_info(
        ANONYMOUS,
        "222860",
        &[("STEAMCMD_SIM_BUILD_ID", "15550000")],
    );
    assert!(env.status.success());
    assert_eq!(public_buildid(&stdout(&env)).as_deref(), Some("15550000"));

    let default = steam.app_info(ANONYMOUS, "222860", &[]);
    assert_eq!(public_buildid(&stdout(&default)).as_deref(), Some(BUILD_A));

    // The file wins over the variable.
    steam.publish("15550001");
    let both = steam.app_info(
        ANONYMOUS,
        "222860",
        &[("STEAMCMD_SIM_BUILD_ID", "15550000")],
    );
    assert_eq!(public_buildid(&stdout(&both)).as_deref(), Some("15550001"));

    // And the install follows the same build.
    let dir = steam.root.installation();
    steam.pass(&dir, "windows");
    assert_eq!(manifest_value(&dir, "buildid"), "15550001");
}

#[test]
fn a_bad_build_id_variable_is_refused() {
    let steam = Steam::new();
    let out = steam.app_info(ANONYMOUS, "222860", &[("STEAMCMD_SIM_BUILD_ID", "latest")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("STEAMCMD_SIM_BUILD_ID") && stderr(&out).contains("\"latest\""),
        "{}",
        stderr(&out)
    );
    assert_eq!(public_buildid(&stdout(&out)), None);
}

#[test]
fn a_garbage_published_file_is_a_broken_steam() {
    let steam = Steam::new();
    for garbage in ["", "next week", "123456789012345678901", "-5", "0x1f"] {
        steam.publish(garbage);
        let out = steam.app_info(ANONYMOUS, "222860", &[]);
        assert_ne!(out.status.code(), Some(0), "{garbage:?}");
        assert!(
            stderr(&out).contains("is not a build id"),
            "{garbage:?}: {}",
            stderr(&out)
        );
        assert!(!stdout(&out).contains("AppID : "), "{}", stdout(&out));
    }
    // A directory where the file should be cannot be read either.
    std::fs::remove_file(steam.published_file()).unwrap();
    std::fs::create_dir(steam.published_file()).unwrap();
    let out = steam.app_info(ANONYMOUS, "222860", &[]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("cannot read the published build file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn app_info_print_without_login_or_for_an_unknown_app_prints_no_app_info() {
    let steam = Steam::new();
    steam.publish(BUILD_B);
    let no_login = steam.app_info(&[], "222860", &[]);
    let text = stdout(&no_login);
    assert!(
        text.contains("No app info for AppID 222860 found, requesting..."),
        "{text}"
    );
    assert!(!text.contains("AppID : "), "{text}");
    assert_eq!(public_buildid(&text), None);

    let unknown = steam.app_info(ANONYMOUS, "730", &[]);
    let text = stdout(&unknown);
    assert!(
        text.contains("No app info for AppID 730 found, requesting..."),
        "{text}"
    );
    assert!(!text.contains("AppID : "), "{text}");
}

#[test]
fn app_info_is_public_even_when_anonymous_downloads_are_refused() {
    let steam = Steam::new();
    steam.publish(BUILD_B);
    let refused = [("STEAMCMD_SIM_ANONYMOUS_REFUSED", "1")];
    let info = steam.app_info(ANONYMOUS, "222860", &refused);
    assert!(info.status.success());
    assert_eq!(public_buildid(&stdout(&info)).as_deref(), Some(BUILD_B));

    let dir = steam.root.installation();
    let install = steam.steamcmd(
        &[
            "+force_install_dir",
            dir.to_str().unwrap(),
            "+login",
            "anonymous",
            "+@sSteamCmdForcePlatformType",
            "windows",
            "+app_update",
            "222860",
            "+quit",
        ],
        &refused,
    );
    assert_eq!(install.status.code(), Some(8));
    assert!(stdout(&install).contains("ERROR! Failed to install app '222860' (Invalid platform)"));
    assert!(!dir.exists());
}

#[test]
fn app_info_after_an_account_login_with_steam_guard() {
    let steam = Steam::new();
    steam.publish(BUILD_B);
    let account = [
        ("STEAMCMD_SIM_ACCOUNT", "operator:hunter2"),
        ("STEAMCMD_SIM_GUARD_CODE", "F7K2Q"),
    ];
    let wrong = steam.app_info(
        &["+login", "operator", "hunter2", "AAAAA"],
        "222860",
        &account,
    );
    assert_eq!(wrong.status.code(), Some(5));
    assert_eq!(public_buildid(&stdout(&wrong)), None);

    let first = steam.app_info(
        &["+login", "operator", "hunter2", "F7K2Q"],
        "222860",
        &account,
    );
    assert!(first.status.success(), "{}", stdout(&first));
    assert_eq!(public_buildid(&stdout(&first)).as_deref(), Some(BUILD_B));
    // The saved login needs no code the next time.
    let later = steam.app_info(&["+login", "operator", "hunter2"], "222860", &account);
    assert!(later.status.success(), "{}", stdout(&later));
    assert_eq!(public_buildid(&stdout(&later)).as_deref(), Some(BUILD_B));
}

// ---- srcds-sim and the master server ----

const CFG: &str = "rcon_password s3cret\n";

/// A root with build `build` installed by steamcmd-sim.
fn installed_build(build: &str) -> Steam {
    let steam = Steam::new();
    steam.publish(build);
    steam.install(&steam.root.installation());
    steam.root.write_server_cfg(CFG);
    steam
}

fn start(steam: &Steam) -> Sim {
    let file = steam.published_file();
    Sim::start_with_env(
        &steam.root,
        &[
            "+map",
            "c1m1_hotel",
            "-sim_players",
            "0",
            "-sim_churn",
            "0",
            "-sim_master_interval",
            "1",
        ],
        &[(PUBLISHED_VAR, file.to_str().unwrap())],
    )
}

fn restart_messages(sim: &Sim) -> usize {
    sim.console
        .lock()
        .unwrap()
        .iter()
        .filter(|l| *l == RESTART_LINE)
        .count()
}

/// Long enough for two checks at `-sim_master_interval 1`. Absence can
/// only be shown by waiting; each such wait is followed by a check that
/// something else did show up.
fn two_intervals() {
    std::thread::sleep(Duration::from_millis(2500));
}

#[test]
fn an_outdated_build_prints_the_master_servers_restart_request() {
    let steam = installed_build(BUILD_A);
    let sim = start(&steam);
    two_intervals();
    assert_eq!(restart_messages(&sim), 0, "{}", sim.console_text());

    // An older published build (a rollback on Steam's side) is not newer.
    steam.publish("15000000");
    two_intervals();
    assert_eq!(restart_messages(&sim), 0, "{}", sim.console_text());

    // Garbage is ignored with one warning line.
    steam.publish("soon");
    sim.wait_console("srcds-sim: warning: ignoring the published build file");
    two_intervals();
    let warnings = sim
        .console_text()
        .matches("srcds-sim: warning: ignoring")
        .count();
    assert_eq!(warnings, 1, "{}", sim.console_text());
    assert_eq!(restart_messages(&sim), 0);

    // Valve publishes B: the engine's two lines, at every check.
    steam.publish(BUILD_B);
    sim.wait_console(RESTART_LINE);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while restart_messages(&sim) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            sim.console_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let lines = sim.console.lock().unwrap().clone();
    let at = lines.iter().position(|l| l == RESTART_LINE).unwrap();
    assert_eq!(lines[at + 1], UPDATE_LINE, "{lines:#?}");

    // `version` shows the build the server runs, not the published one.
    let version = rcon(sim.port, "s3cret", "version");
    assert!(
        version.starts_with("Version 2.2.3.6 (left4dead2)\nNetwork Version 2.1.0.0\nExe build: "),
        "{version}"
    );
    assert!(
        version.contains(&format!("srcds-sim: Steam build {BUILD_A}\n")),
        "{version}"
    );
}

#[test]
fn a_server_on_the_published_build_after_a_restart_is_quiet() {
    let steam = installed_build(BUILD_A);
    steam.publish(BUILD_B);
    let mut sim = start(&steam);
    sim.wait_console(RESTART_LINE);
    // Update the tree to B and restart: the build is current again.
    steam.install(&steam.root.installation());
    sim.stop();
    sim.console.lock().unwrap().clear();
    sim.restart();
    let version = rcon(sim.port, "s3cret", "version");
    assert!(
        version.starts_with("Version 2.2.3.7 (left4dead2)\n"),
        "{version}"
    );
    assert!(
        version.contains(&format!("srcds-sim: Steam build {BUILD_B}\n")),
        "{version}"
    );
    two_intervals();
    assert_eq!(restart_messages(&sim), 0, "{}", sim.console_text());
    // The checks still run: a newer build shows up again.
    steam.publish("15000003");
    sim.wait_console(RESTART_LINE);
}

#[test]
fn a_tree_without_a_manifest_is_never_outdated() {
    let steam = installed_build(BUILD_A);
    std::fs::remove_file(
        steam
            .root
            .installation()
            .join("steamapps/appmanifest_222860.acf"),
    )
    .unwrap();
    steam.publish("99999999999999999999");
    let sim = start(&steam);
    two_intervals();
    assert_eq!(restart_messages(&sim), 0, "{}", sim.console_text());
    let version = rcon(sim.port, "s3cret", "version");
    assert!(
        version.contains("srcds-sim: Steam build unknown\n"),
        "{version}"
    );
    // The checks do run (a broken file is reported).
    steam.publish("x");
    sim.wait_console("srcds-sim: warning: ignoring");
    assert_eq!(restart_messages(&sim), 0);
}

#[test]
fn a_bad_master_interval_is_refused_at_launch() {
    let steam = installed_build(BUILD_A);
    for bad in ["0", "3601", "often"] {
        let out = Command::new(steam.root.installation().join("srcds_run"))
            .args([
                "-game",
                "left4dead2",
                "+hostport",
                "27999",
                "-sim_master_interval",
                bad,
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert!(
            stderr(&out).contains(&format!(
                "invalid -sim_master_interval value \"{bad}\": expected whole seconds from 1 to 3600"
            )),
            "{}",
            stderr(&out)
        );
    }
}
