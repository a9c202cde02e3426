//! Bad input: every case exits non-zero with a one-line reason on stderr and
//! leaves the data root exactly as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use test_support::{free_game_port, DataRoot};

/// Every path below `root` with its content (files), target (links) or
/// nothing (directories).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(base).unwrap().to_path_buf();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    format!("-> {}", std::fs::read_link(&path).unwrap().display()),
                );
            } else if meta.is_dir() {
                out.insert(rel, "dir".into());
                walk(&path, base, out);
            } else {
                out.insert(
                    rel,
                    String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Runs l4d2ctl, expecting failure with `expected` in a single stderr line
/// and no change below the data root.
fn rejects(root: &DataRoot, args: &[&str], env: &[(&str, &str)], expected: &str) {
    let before = snapshot(root.path());
    let mut cmd = root.l4d2ctl_command(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{args:?} succeeded; stderr: {stderr}"
    );
    assert!(
        stderr.contains(expected),
        "{args:?}: expected {expected:?} in stderr, got {stderr:?}"
    );
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{args:?}: stderr is not one line: {stderr:?}"
    );
    assert_eq!(
        before,
        snapshot(root.path()),
        "{args:?} changed the data root"
    );
}

fn root_with_overlays() -> DataRoot {
    let root = DataRoot::empty();
    for dir in [
        "overlays/maps/left4dead2",
        "workshop_cache/123",
        "installation",
    ] {
        std::fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    root.steamcmd();
    root
}

fn spec(root: &DataRoot, file: &str, text: &str) -> String {
    let path = root.path().join(file);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn bad_instance_names() {
    let root = root_with_overlays();
    let good = spec(&root, "good.yaml", "port: 27015\n");
    let long = "a".repeat(65);
    for name in [
        "../x",
        "A",
        "",
        long.as_str(),
        "-x",
        "a/b",
        "a b",
        ".",
        "x\n",
    ] {
        for verb in ["start", "stop", "delete"] {
            rejects(&root, &[verb, name], &[], "invalid instance name");
        }
        rejects(
            &root,
            &["initialize", name, "-f", &good],
            &[],
            "invalid instance name",
        );
        rejects(
            &root,
            &["status", name, "--json"],
            &[],
            "invalid instance name",
        );
        rejects(
            &root,
            &["logs", name, "--lines", "5", "--no-follow"],
            &[],
            "invalid instance name",
        );
    }
}

#[test]
fn bad_specs() {
    let root = root_with_overlays();
    std::os::unix::fs::symlink("/etc", root.path().join("overlays/escape")).unwrap();
    std::os::unix::fs::symlink("../../installation", root.path().join("overlays/maps/up")).unwrap();
    let many: Vec<String> = (0..501).map(|_| "overlays/maps".to_string()).collect();
    let cases: Vec<(&str, String, &str)> = vec![
        ("yaml", "port: [27015".into(), "not valid YAML"),
        ("tabs", "port: 27015\n\tconfig: x".into(), "not valid YAML"),
        ("not-mapping", "just a string".into(), "expected a mapping"),
        (
            "unknown",
            "port: 27015\nmaxplayers: 8\n".into(),
            "unknown key `maxplayers`",
        ),
        (
            "port-type",
            "port: twenty\n".into(),
            "`port`: expected a whole number",
        ),
        (
            "port-float",
            "port: 27015.5\n".into(),
            "`port`: expected a whole number",
        ),
        (
            "port-0",
            "port: 0\n".into(),
            "`port`: 0 is not a port number",
        ),
        (
            "port-65536",
            "port: 65536\n".into(),
            "`port`: 65536 is not a port number",
        ),
        (
            "port-range",
            "port: 28000\n".into(),
            "outside the configured range 27000–27999",
        ),
        ("no-port", "overlays: []\n".into(), "`port`: is required"),
        (
            "overlays-type",
            "port: 27015\noverlays: {a: b}\n".into(),
            "`overlays`: expected a list",
        ),
        (
            "overlay-outside",
            "port: 27015\noverlays: [/etc]\n".into(),
            "not inside",
        ),
        (
            "build-not-installed",
            "port: 27015\nbuild: 99\n".into(),
            "game build 99 is not installed",
        ),
        (
            "build-path",
            "port: 27015\nbuild: ../../etc\n".into(),
            "`build`: \"../../etc\" is not a game build id",
        ),
        (
            "overlay-installation",
            "port: 27015\noverlays: [installation]\n".into(),
            "not inside",
        ),
        (
            "overlay-dotdot",
            "port: 27015\noverlays: [overlays/../instances]\n".into(),
            "cannot be resolved",
        ),
        (
            "overlay-symlink",
            "port: 27015\noverlays: [overlays/escape]\n".into(),
            "resolves to /etc",
        ),
        (
            "overlay-symlink-up",
            "port: 27015\noverlays: [overlays/maps/up]\n".into(),
            "not inside",
        ),
        (
            "overlay-missing",
            "port: 27015\noverlays: [overlays/nope]\n".into(),
            "cannot be resolved",
        ),
        (
            "overlays-501",
            format!("port: 27015\noverlays: [{}]\n", many.join(", ")),
            "at most 499",
        ),
        (
            "args-type",
            "port: 27015\nargs: 5\n".into(),
            "`args`: expected a list",
        ),
        (
            "args-shell",
            "port: 27015\nargs: [\"+map;reboot\"]\n".into(),
            "contains ';'",
        ),
        (
            "args-owned-port",
            "port: 27015\nargs: [+hostport, \"27016\"]\n".into(),
            "`+hostport` is managed by left4me",
        ),
        (
            "args-owned-rcon",
            "port: 27015\nargs: [+map, c1m1_hotel, +rcon_password, x]\n".into(),
            "`+rcon_password` is managed by left4me",
        ),
        (
            "args-owned-debugger",
            "port: 27015\nargs: [-gdb]\n".into(),
            "`-gdb` is managed by left4me",
        ),
        (
            "args-unknown",
            "port: 27015\nargs: [-frobnicate]\n".into(),
            "unknown launch option `-frobnicate`",
        ),
        (
            "args-stray",
            "port: 27015\nargs: [c1m1_hotel]\n".into(),
            "neither a launch option",
        ),
        ("port-too-high", "port: 45536\n".into(), "too high"),
        (
            "config-type",
            "port: 27015\nconfig: [1, 2]\n".into(),
            "`config`: expected server.cfg text",
        ),
        (
            "ban-steam-id",
            "port: 27015\nbans: [{steam_id: \"STEAM_1:0:1; quit\", minutes: 0}]\n".into(),
            "`bans[0].steam_id`: \"STEAM_1:0:1; quit\" is not a Steam id",
        ),
        (
            "ban-minutes",
            "port: 27015\nbans: [{steam_id: STEAM_1:0:1, minutes: 1.5}]\n".into(),
            "`bans[0].minutes`: expected whole minutes",
        ),
        (
            "too-many-bans",
            format!(
                "port: 27015\nbans: [{}]\n",
                (0..10_001)
                    .map(|i| format!("{{steam_id: \"STEAM_1:0:{i}\", minutes: 0}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "`bans`: 10001 entries; at most 10000",
        ),
        (
            "admin-flags",
            "port: 27015\nadmins: [{steam_id: STEAM_1:0:1, flags: \"ab\\\" \\\"z\"}]\n".into(),
            "`admins[0].flags`: '\"' is not a SourceMod admin flag",
        ),
        (
            "admin-steam-id",
            "port: 27015\nadmins: [{steam_id: \"[U:1:x]\", flags: z}]\n".into(),
            "`admins[0].steam_id`",
        ),
    ];
    for (file, text, expected) in &cases {
        let path = spec(&root, &format!("{file}.yaml"), text);
        rejects(&root, &["initialize", "srv", "-f", &path], &[], expected);
    }
    rejects(
        &root,
        &["initialize", "srv", "-f", "/nonexistent/spec.yaml"],
        &[],
        "cannot read spec file /nonexistent/spec.yaml",
    );
    // A custom range from the environment is honoured.
    let in_default = spec(&root, "in-default.yaml", "port: 27015\n");
    rejects(
        &root,
        &["initialize", "srv", "-f", &in_default],
        &[
            ("LEFT4ME_PORT_RANGE_START", "30000"),
            ("LEFT4ME_PORT_RANGE_END", "30100"),
        ],
        "outside the configured range 30000–30100",
    );
    rejects(
        &root,
        &["initialize", "srv", "-f", &in_default],
        &[("LEFT4ME_PORT_RANGE_START", "nope")],
        "LEFT4ME_PORT_RANGE_START",
    );
}

#[test]
fn a_bad_respec_keeps_the_old_definition() {
    let root = root_with_overlays();
    let good = spec(&root, "good.yaml", "port: 27015\nconfig: hostname old\n");
    let out = root.l4d2ctl(["initialize", "srv", "-f", &good]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = spec(
        &root,
        "bad.yaml",
        "port: 27015\nconfig: hostname new\nbogus: 1\n",
    );
    rejects(
        &root,
        &["initialize", "srv", "-f", &bad],
        &[],
        "unknown key `bogus`",
    );
    let cfg = std::fs::read_to_string(root.path().join("instances/srv/server.cfg")).unwrap();
    assert_eq!(cfg, "hostname old\nexec banned_user.cfg\n");
}

#[test]
fn operations_on_missing_instances() {
    let root = root_with_overlays();
    rejects(
        &root,
        &["start", "ghost"],
        &[],
        "instance ghost does not exist",
    );
    rejects(
        &root,
        &["stop", "ghost"],
        &[],
        "instance ghost does not exist",
    );
    rejects(
        &root,
        &["logs", "ghost", "--lines", "5", "--no-follow"],
        &[],
        "instance ghost does not exist",
    );
    // delete of a missing instance succeeds, and status says it does not exist.
    assert!(root.l4d2ctl(["delete", "ghost"]).status.success());
    let status = root.l4d2ctl(["status", "ghost", "--json"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("\"exists\":false"));
}

#[test]
fn start_without_installation_says_so() {
    let root = DataRoot::empty();
    std::fs::create_dir_all(root.path().join("installation")).unwrap();
    let good = spec(&root, "good.yaml", &format!("port: {}\n", free_game_port()));
    assert!(root
        .l4d2ctl(["initialize", "srv", "-f", &good])
        .status
        .success());
    let out = root.l4d2ctl(["start", "srv"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("l4d2ctl install"), "{stderr}");
    assert!(
        String::from_utf8_lossy(&root.l4d2ctl(["status", "srv", "--json"]).stdout)
            .contains("\"active_state\":\"inactive\"")
    );
    // This root's mount point only: other tests of this process have their
    // own `srv` instances running.
    let merged = format!(
        "{}/runtime/srv/merged",
        root.path().canonicalize().unwrap().display()
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&merged),
        "a failed start left its overlay mounted"
    );
    assert!(root.l4d2ctl(["delete", "srv"]).status.success());
}

#[test]
fn failing_steamcmd() {
    let root = DataRoot::empty();
    let script = |name: &str, body: &str| -> String {
        let path = root.path().join(name);
        test_support::write_executable(&path, &format!("#!/bin/sh\n{body}\n"), 0o755);
        path.to_str().unwrap().to_owned()
    };
    let failing = script(
        "fail.sh",
        "echo 'ERROR! Failed to install app 222860 (No Connection)'; exit 8",
    );
    let garbage = script("garbage.sh", "echo 'qwfp;arst 0xDEADBEEF'; exit 0");
    let install = |steamcmd: &str| {
        root.l4d2ctl_command(["install"])
            .env("LEFT4ME_STEAMCMD", steamcmd)
            .output()
            .unwrap()
    };

    let out = install(&failing);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("steamcmd (windows pass) exited with exit status: 8"),
        "{stderr}"
    );
    assert!(stderr.contains("No Connection"), "{stderr}");

    let out = install(&garbage);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("never reported \"Success! App '222860' fully installed.\""),
        "{stderr}"
    );
    assert!(stderr.contains("qwfp;arst"), "{stderr}");

    let out = install("relative/steamcmd.sh");
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be an absolute path"));
    let out = install("/nonexistent/steamcmd.sh");
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("steamcmd not found at /nonexistent/steamcmd.sh"));
    // No sdk links were made by any failed install.
    assert!(!root.path().join(".steam").exists());
}

#[test]
fn unknown_backend_is_rejected() {
    let root = root_with_overlays();
    rejects(
        &root,
        &["status", "srv", "--json"],
        &[("LEFT4ME_BACKEND", "docker")],
        "LEFT4ME_BACKEND=\"docker\" is not a backend",
    );
}

/// The upper layer is the game's own writable tree: whatever it planted
/// there must not redirect l4d2ctl's server.cfg staging (a link to another
/// tenant's overlay or to the database would be overwritten otherwise).
#[test]
fn start_never_writes_through_links_the_game_planted() {
    let root = DataRoot::installed();
    let port = free_game_port();
    let good = spec(
        &root,
        "good.yaml",
        &format!("port: {port}\nargs: [+map, c1m1_hotel]\nconfig: |\n  hostname \"staged\"\n"),
    );
    assert!(root
        .l4d2ctl(["initialize", "srv", "-f", &good])
        .status
        .success());
    let victim = root.path().join("overlays/victim/left4dead2/sys.txt");
    std::fs::create_dir_all(victim.parent().unwrap()).unwrap();
    std::fs::write(&victim, "victim's file\n").unwrap();
    let cfg = root.path().join("runtime/srv/upper/left4dead2/cfg");
    std::fs::create_dir_all(&cfg).unwrap();
    // Links where the file and any temporary name would go.
    std::os::unix::fs::symlink(&victim, cfg.join("server.cfg")).unwrap();
    std::os::unix::fs::symlink(&victim, cfg.join(".server.cfg.l4d2ctl-tmp")).unwrap();
    let out = root.l4d2ctl(["start", "srv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim's file\n");
    let staged = cfg.join("server.cfg");
    assert!(!staged.symlink_metadata().unwrap().file_type().is_symlink());
    assert!(std::fs::read_to_string(&staged).unwrap().contains("staged"));
    assert!(root.l4d2ctl(["stop", "srv"]).status.success());

    // The directory itself replaced by a link: refused, nothing written.
    std::fs::remove_dir_all(&cfg).unwrap();
    std::os::unix::fs::symlink(victim.parent().unwrap(), &cfg).unwrap();
    let before = snapshot(&root.path().join("overlays"));
    let out = root.l4d2ctl(["start", "srv"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("reset the server"), "{stderr}");
    assert_eq!(snapshot(&root.path().join("overlays")), before);
    assert!(root.l4d2ctl(["delete", "srv"]).status.success());
    assert!(victim.exists(), "delete followed the planted link");
}
