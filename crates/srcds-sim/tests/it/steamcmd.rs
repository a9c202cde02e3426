//! steamcmd-sim run as a real process, exactly as `l4d2ctl install` calls it.

use crate::util::*;
use std::os::unix::fs::PermissionsExt;

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The bytes done of a progress line.
fn byte_counts(line: &str) -> u64 {
    line.rsplit_once('(')
        .and_then(|(_, counts)| counts.split_once(" / "))
        .and_then(|(done, _)| done.parse().ok())
        .unwrap_or_else(|| panic!("not a progress line: {line:?}"))
}

#[test]
fn a_bad_download_speed_is_refused() {
    let root = Root::new();
    let out = std::process::Command::new(root.path().join("steam/steamcmd.sh"))
        .args(["+quit"])
        .env("STEAMCMD_SIM_KIB_PER_SEC", "fast")
        .output()
        .expect("spawn steamcmd-sim");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("STEAMCMD_SIM_KIB_PER_SEC=\"fast\" is not a whole number of KiB/s"));
}

#[test]
fn two_passes_install_a_startable_tree() {
    let root = Root::new();
    let win = root.pass("windows", "222860");
    assert!(win.status.success(), "{}", text(&win));
    let out = text(&win);
    assert!(out.contains("Loading Steam API...OK"), "{out}");
    assert!(
        out.contains("Connecting anonymously to Steam Public...OK"),
        "{out}"
    );
    assert!(
        out.contains("Success! App '222860' fully installed."),
        "{out}"
    );
    // Progress lines in steamcmd's format, ending at the full size.
    let progress: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with(" Update state (0x61) downloading, progress: "))
        .collect();
    assert!(progress.len() > 3, "{out}");
    let last = progress.last().unwrap();
    let (done, total) = last
        .rsplit_once('(')
        .unwrap()
        .1
        .trim_end_matches(')')
        .split_once(" / ")
        .unwrap();
    assert_eq!(done, total);
    assert!(last.contains("progress: 100.00 ("), "{last}");
    // The 1 MiB archive is reported in parts, as a download goes.
    let archive_reports = progress
        .windows(2)
        .filter(|w| byte_counts(w[1]) - byte_counts(w[0]) == 512 * 1024)
        .count();
    assert!(archive_reports >= 2, "{out}");

    let inst = root.installation();
    for map in ["c1m1_hotel", "c2m1_highway"] {
        assert!(inst.join(format!("left4dead2/maps/{map}.bsp")).is_file());
    }
    assert!(inst.join("left4dead2/addons").is_dir());
    assert!(inst.join("srcds.exe").is_file());
    assert!(
        !inst.join("left4dead2/cfg/server.cfg").exists(),
        "real installs ship no server.cfg"
    );
    let vpk = std::fs::metadata(inst.join("left4dead2/pak01_dir.vpk")).unwrap();
    assert_eq!(vpk.len(), 1024 * 1024, "STEAMCMD_SIM_CONTENT_MB=1");
    assert!(
        !inst.join("srcds_run").exists(),
        "linux files come with the linux pass"
    );
    // steamclient.so lands next to the invoked (symlinked) path, not the build dir.
    for arch in ["linux32", "linux64"] {
        assert!(
            root.path()
                .join("steam")
                .join(arch)
                .join("steamclient.so")
                .is_file(),
            "{arch}"
        );
    }

    let linux = root.pass("linux", "222860");
    assert!(linux.status.success(), "{}", text(&linux));
    let run = inst.join("srcds_run");
    let script = std::fs::read_to_string(&run).unwrap();
    assert!(script.contains("cd \"$(dirname \"$0\")\""), "{script}");
    assert!(script.contains("exec ./srcds_linux \"$@\""), "{script}");
    assert_eq!(
        std::fs::metadata(&run).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let linux_bin = inst.join("srcds_linux");
    assert_eq!(
        std::fs::metadata(&linux_bin).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(
        std::fs::read(&linux_bin).unwrap(),
        std::fs::read(SRCDS).unwrap(),
        "srcds_linux is srcds-sim"
    );
    assert!(inst.join("steamapps/appmanifest_222860.acf").is_file());

    // validate over an existing install succeeds and changes nothing.
    let before = std::fs::read(inst.join("left4dead2/pak01_dir.vpk")).unwrap();
    for platform in ["windows", "linux"] {
        let again = root.pass(platform, "222860");
        assert!(again.status.success(), "{}", text(&again));
    }
    assert_eq!(
        std::fs::read(inst.join("left4dead2/pak01_dir.vpk")).unwrap(),
        before
    );
}

#[test]
fn wrong_app_id_is_no_subscription_exit_8() {
    let root = Root::new();
    let out = root.pass("windows", "730");
    assert_eq!(out.status.code(), Some(8));
    assert!(
        text(&out).contains("ERROR! Failed to install app '730' (No subscription)"),
        "{}",
        text(&out)
    );
    assert!(!root.installation().exists(), "nothing installed");
}

#[test]
fn linux_pass_alone_fails_like_the_real_depot() {
    let root = Root::new();
    let out = root.pass("linux", "222860");
    assert_eq!(out.status.code(), Some(8));
    assert!(
        text(&out).contains("ERROR! Failed to install app '222860' (Missing configuration)"),
        "{}",
        text(&out)
    );
    assert!(!root.installation().join("srcds_linux").exists());
}

#[test]
fn missing_install_dir_or_login_fail() {
    let root = Root::new();
    let no_dir = root.steamcmd(&[
        "+login",
        "anonymous",
        "+app_update",
        "222860",
        "validate",
        "+quit",
    ]);
    assert_eq!(no_dir.status.code(), Some(8));
    assert!(text(&no_dir).contains("ERROR! Failed to install app '222860' (Missing configuration)"));

    let dir = root.installation();
    let no_login = root.steamcmd(&[
        "+force_install_dir",
        dir.to_str().unwrap(),
        "+app_update",
        "222860",
        "+quit",
    ]);
    assert_eq!(no_login.status.code(), Some(8));
    assert!(
        text(&no_login).contains("ERROR! Not logged on."),
        "{}",
        text(&no_login)
    );
    assert!(!dir.exists());

    let user = root.steamcmd(&[
        "+force_install_dir",
        dir.to_str().unwrap(),
        "+login",
        "someone",
        "+app_update",
        "222860",
        "+quit",
    ]);
    assert_eq!(user.status.code(), Some(5));
    assert!(text(&user).contains("FAILED (Invalid Password)"));
    assert!(!dir.exists());
}

#[test]
fn unwritable_install_dir_is_disk_write_failure() {
    let root = Root::new();
    // A path below a regular file cannot be created, even as root.
    let blocker = root.path().join("blocker");
    std::fs::write(&blocker, b"x").unwrap();
    let dir = blocker.join("installation");
    let out = root.steamcmd(&[
        "+force_install_dir",
        dir.to_str().unwrap(),
        "+login",
        "anonymous",
        "+@sSteamCmdForcePlatformType",
        "windows",
        "+app_update",
        "222860",
        "+quit",
    ]);
    assert_eq!(out.status.code(), Some(8));
    assert!(text(&out).contains("(Disk write failure"), "{}", text(&out));
}

#[test]
fn missing_simulator_binary_is_a_clear_error() {
    let root = Root::new();
    assert!(root.pass("windows", "222860").status.success());
    let dir = root.installation();
    let out = std::process::Command::new(root.path().join("steam/steamcmd.sh"))
        .args([
            "+force_install_dir",
            dir.to_str().unwrap(),
            "+login",
            "anonymous",
            "+@sSteamCmdForcePlatformType",
            "linux",
            "+app_update",
            "222860",
            "+quit",
        ])
        .env("SRCDS_SIM_BIN", "/nonexistent/srcds-sim")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8));
    let t = text(&out);
    assert!(
        t.contains("srcds-sim binary not found") && t.contains("/nonexistent/srcds-sim"),
        "{t}"
    );
    assert!(!dir.join("srcds_linux").exists());
}

#[test]
fn unknown_commands_are_reported_and_skipped() {
    let root = Root::new();
    let out = root.steamcmd(&["+frobnicate", "1", "+quit"]);
    assert!(out.status.success());
    assert!(
        text(&out).contains("Unknown command \"frobnicate\""),
        "{}",
        text(&out)
    );
}
