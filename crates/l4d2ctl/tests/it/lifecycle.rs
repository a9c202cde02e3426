//! The full instance lifecycle on the local backend with real overlayfs, a
//! real srcds-sim process and real A2S/RCON traffic, as root and as an
//! unprivileged user.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use test_support::sim::{rcon, wait_for_a2s};
use test_support::{free_game_port, is_root, require, workspace_bin, DataRoot};

/// The unprivileged identity used when the test itself runs as root.
const NOBODY: u32 = 65534;

/// Runs l4d2ctl against one data root, as the current user or (when the
/// test is root) as an unprivileged uid through `setpriv`.
struct Ctl<'a> {
    root: &'a DataRoot,
    as_uid: Option<u32>,
}

impl Ctl<'_> {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = match self.as_uid {
            Some(uid) => {
                let mut cmd = Command::new("setpriv");
                cmd.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={uid}"))
                    .arg("--clear-groups")
                    .arg(workspace_bin("l4d2ctl"));
                cmd
            }
            None => Command::new(workspace_bin("l4d2ctl")),
        };
        cmd.args(args)
            .env("LEFT4ME_ROOT", self.root.path())
            .env("LEFT4ME_STEAMCMD", self.root.steamcmd())
            .env("LEFT4ME_BACKEND", "local");
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("spawn l4d2ctl")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "l4d2ctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn status(&self, name: &str) -> serde_json_lite::Status {
        serde_json_lite::Status::parse(&self.ok(&["status", name, "--json"]))
    }
}

/// Just enough JSON reading for the status object (keeps the test's
/// dependencies to the point).
mod serde_json_lite {
    pub struct Status {
        pub raw: String,
    }
    impl Status {
        pub fn parse(raw: &str) -> Status {
            assert!(
                raw.trim_start().starts_with('{'),
                "not a JSON object: {raw}"
            );
            Status {
                raw: raw.to_owned(),
            }
        }
        pub fn field(&self, key: &str) -> String {
            let needle = format!("\"{key}\":");
            let start = self
                .raw
                .find(&needle)
                .unwrap_or_else(|| panic!("no {key} in {}", self.raw))
                + needle.len();
            let rest = &self.raw[start..];
            let end = rest.find([',', '}']).unwrap();
            rest[..end].trim_matches('"').to_owned()
        }
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn chown_tree(path: &Path, uid: u32) {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{uid}"))
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s[s.rfind(')').unwrap() + 2..].chars().next().unwrap();
            state != 'Z' && state != 'X'
        })
        .unwrap_or(false)
}

fn lifecycle(as_uid: Option<u32>) {
    let root = DataRoot::empty();
    if let Some(uid) = as_uid {
        std::fs::set_permissions(
            root.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        root.steamcmd();
        chown_tree(root.path(), uid);
    }
    let ctl = Ctl {
        root: &root,
        as_uid,
    };
    let install_log = ctl.ok(&["install"]);
    assert!(install_log.contains("Success! App '222860' fully installed."));
    assert!(install_log.contains("pass 2/2 (platform linux)"));
    assert!(root
        .path()
        .join(".steam/sdk32")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());

    // Two overlays: the uppermost one must win over the same path below it.
    let top = root.path().join("overlays/top");
    let bottom = root.path().join("overlays/bottom");
    write(&top.join("left4dead2/motd.txt"), "from top\n");
    write(&bottom.join("left4dead2/motd.txt"), "from bottom\n");
    write(&bottom.join("left4dead2/only-bottom.txt"), "bottom only\n");
    let port = free_game_port();
    let hostname = format!("left4me lifecycle {}", std::process::id());
    let spec = root.path().join("spec.yaml");
    write(
        &spec,
        &format!(
            "port: {port}\noverlays: [overlays/top, overlays/bottom]\nargs: [+map, c2m1_highway, -sim_churn, \"0\"]\nconfig: |\n  hostname \"{hostname}\"\n  rcon_password \"secret-{port}\"\n"
        ),
    );
    if let Some(uid) = as_uid {
        chown_tree(root.path(), uid);
    }

    ctl.ok(&["initialize", "srv", "-f", spec.to_str().unwrap()]);
    let env = std::fs::read_to_string(root.path().join("instances/srv/instance.env")).unwrap();
    assert!(env.contains(&format!("L4D2_PORT={port}")), "{env}");
    let canonical = root.path().canonicalize().unwrap();
    assert!(
        env.contains(&format!(
            "L4D2_LOWERDIRS=\"{0}/overlays/top:{0}/overlays/bottom:{0}/installation/15000001\"",
            canonical.display()
        )),
        "{env}"
    );

    ctl.ok(&["start", "srv"]);
    let status = ctl.status("srv");
    assert_eq!(status.field("active_state"), "active", "{}", status.raw);
    assert_eq!(status.field("sub_state"), "running");
    assert_eq!(status.field("port"), port.to_string());
    let pid: u32 = status.field("pid").parse().unwrap();
    // Starting a running instance is a no-op, not a second server.
    ctl.ok(&["start", "srv"]);
    assert_eq!(ctl.status("srv").field("pid"), pid.to_string());

    let info = wait_for_a2s(port, Duration::from_secs(20)).expect("A2S_INFO answered");
    assert_eq!(info.name, hostname);
    assert_eq!(info.map, "c2m1_highway");
    assert_eq!(info.folder, "left4dead2");

    // Its CPU time and memory: the game's whole process tree, from /proc.
    let usage = ctl.status("srv");
    let memory: u64 = usage
        .field("memory_bytes")
        .parse()
        .unwrap_or_else(|_| panic!("no memory figure: {}", usage.raw));
    assert!(
        memory >= 1 << 20,
        "a running game holds at least 1 MiB: {}",
        usage.raw
    );
    let cpu: u64 = usage
        .field("cpu_usage_nsec")
        .parse()
        .unwrap_or_else(|_| panic!("no CPU figure: {}", usage.raw));
    // The counter only grows while the game runs (it answers RCON meanwhile).
    for _ in 0..20 {
        rcon(port, &format!("secret-{port}"), "stats");
    }
    let later: u64 = ctl.status("srv").field("cpu_usage_nsec").parse().unwrap();
    assert!(later >= cpu, "CPU time went from {cpu} to {later}");
    let list = ctl.ok(&["list", "--json"]);
    for key in ["\"cpu_usage_nsec\":", "\"memory_bytes\":"] {
        let at = list
            .find(key)
            .unwrap_or_else(|| panic!("{key} missing: {list}"));
        assert!(
            list[at + key.len()..].starts_with(|c: char| c.is_ascii_digit()),
            "{key} not a number in list --json: {list}"
        );
    }

    // The game process sees the merged view; read it through its root so the
    // check also works when the mount lives in its private namespace.
    let merged = PathBuf::from(format!("/proc/{pid}/root"))
        .join(canonical.strip_prefix("/").unwrap())
        .join("runtime/srv/merged");
    assert_eq!(
        std::fs::read_to_string(merged.join("left4dead2/motd.txt")).unwrap(),
        "from top\n"
    );
    assert_eq!(
        std::fs::read_to_string(merged.join("left4dead2/only-bottom.txt")).unwrap(),
        "bottom only\n"
    );
    assert!(
        merged.join("srcds_run").is_file(),
        "the game build is the lowest layer"
    );
    if as_uid.is_none() {
        // As root the game runs as its own uid and sees only its view of
        // the data root: no instances/, no tmp/, no database.
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        let expected = 0x7000_0000u32 + u32::from(port);
        assert!(
            uid_line
                .split_whitespace()
                .skip(1)
                .all(|u| u == expected.to_string()),
            "{uid_line}"
        );
        let view_root =
            PathBuf::from(format!("/proc/{pid}/root")).join(canonical.strip_prefix("/").unwrap());
        let mut seen: Vec<String> = std::fs::read_dir(&view_root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        seen.sort();
        assert!(
            seen.iter()
                .all(|e| [".steam", "runtime", "steam", "workshop_cache"].contains(&e.as_str())),
            "the game sees more of the data root than its view: {seen:?}"
        );
        assert!(!view_root.join("instances").exists());
        assert!(!view_root.join("spec.yaml").exists());
        // Files the game creates land on disk owned by the data owner.
        let upper_cfg = root.path().join("runtime/srv/upper/left4dead2/cfg");
        assert_eq!(std::fs::metadata(&upper_cfg).unwrap().uid(), 0);
    }
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    assert!(
        mountinfo
            .lines()
            .any(|l| l.contains("runtime/srv/merged") && l.contains(" - overlay ")),
        "overlay mounted for the game process"
    );
    // server.cfg is staged in the upper layer so it wins over every overlay.
    let staged = root
        .path()
        .join("runtime/srv/upper/left4dead2/cfg/server.cfg");
    assert!(std::fs::read_to_string(&staged)
        .unwrap()
        .contains(&hostname));
    if let Some(uid) = as_uid {
        assert_eq!(
            std::fs::metadata(&staged).unwrap().uid(),
            uid,
            "upper files belong to the user"
        );
    }

    let logs = ctl.ok(&["logs", "srv", "--lines", "200", "--no-follow"]);
    assert!(logs.contains("Started map \"c2m1_highway\""), "{logs}");
    let two = ctl.ok(&["logs", "srv", "--lines", "2", "--no-follow"]);
    assert_eq!(two.lines().count(), 2, "{two}");

    // --follow streams lines printed after it started.
    let mut follower = ctl
        .command(&["logs", "srv", "--lines", "0", "--follow"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let token = format!("follow-token-{}", std::process::id());
    std::thread::sleep(Duration::from_millis(300));
    rcon(port, &format!("secret-{port}"), &format!("say {token}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = false;
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.contains(&token) {
            seen = true;
            break;
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    assert!(seen, "logs --follow did not stream the new console line");

    ctl.ok(&["stop", "srv"]);
    assert!(!pid_alive(pid), "server process still alive after stop");
    let status = ctl.status("srv");
    assert_eq!(status.field("active_state"), "inactive");
    assert_eq!(status.field("sub_state"), "dead");
    assert_eq!(status.field("cpu_usage_nsec"), "null", "{}", status.raw);
    assert_eq!(status.field("memory_bytes"), "null", "{}", status.raw);
    let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !host_mounts.contains(&format!("{}/runtime/srv/merged", canonical.display())),
        "overlay still mounted after stop"
    );
    assert!(
        !root.path().join("runtime/srv/work/work").exists(),
        "work/work left behind"
    );
    assert!(
        wait_for_a2s(port, Duration::from_millis(300)).is_none(),
        "server still answers"
    );

    ctl.ok(&["delete", "srv"]);
    assert!(!root.path().join("instances/srv").exists());
    assert!(!root.path().join("runtime/srv").exists());
    ctl.ok(&["delete", "srv"]);
    assert_eq!(ctl.status("srv").field("exists"), "false");
}

#[test]
fn lifecycle_as_root() {
    if !require(
        is_root(),
        "the privileged lifecycle needs root (real overlayfs in the host namespace)",
    ) {
        return;
    }
    lifecycle(None);
}

#[test]
fn lifecycle_as_unprivileged_user() {
    // As root, drop to an unprivileged uid; as a normal user, run directly.
    lifecycle(is_root().then_some(NOBODY));
}

#[test]
fn a_crashed_server_shows_as_failed() {
    let root = DataRoot::installed();
    let ctl = Ctl {
        root: &root,
        as_uid: None,
    };
    let port = free_game_port();
    let spec = root.path().join("spec.yaml");
    write(
        &spec,
        &format!("port: {port}\nargs: [-sim_crash_after, \"1\"]\n"),
    );
    ctl.ok(&["initialize", "crashy", "-f", spec.to_str().unwrap()]);
    ctl.ok(&["start", "crashy"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut state = String::new();
    while Instant::now() < deadline {
        state = ctl.status("crashy").field("active_state");
        if state == "failed" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        state, "failed",
        "a process that died without stop is failed, not inactive"
    );
    // stop cleans up after a crash; then it is plainly inactive.
    ctl.ok(&["stop", "crashy"]);
    assert_eq!(ctl.status("crashy").field("active_state"), "inactive");
    ctl.ok(&["delete", "crashy"]);
}

#[test]
fn list_reports_every_instance() {
    let root = DataRoot::empty();
    let ctl = Ctl {
        root: &root,
        as_uid: None,
    };
    assert_eq!(ctl.ok(&["list", "--json"]).trim(), "[]");
    for (name, port) in [("b-srv", 27001), ("a-srv", 27002)] {
        let spec = root.path().join(format!("{name}.yaml"));
        write(&spec, &format!("port: {port}\n"));
        ctl.ok(&["initialize", name, "-f", spec.to_str().unwrap()]);
    }
    let list = ctl.ok(&["list", "--json"]);
    let a = list.find("\"a-srv\"").expect("a-srv listed");
    let b = list.find("\"b-srv\"").expect("b-srv listed");
    assert!(a < b, "sorted by name: {list}");
    assert!(list.contains("\"port\":27002"));
}

/// 499 overlays + the installation = the kernel's 500-layer maximum. The
/// option string would be ~40 KB, far past the one page `mount(2)` takes, so
/// this only works through `fsconfig(lowerdir+)`.
fn five_hundred_layers(as_uid: Option<u32>) {
    let root = DataRoot::installed();
    let mut overlays = Vec::new();
    for i in 0..499 {
        let dir =
            format!("overlays/a-rather-long-overlay-directory-name-to-fill-the-option-page-{i:03}");
        write(
            &root
                .path()
                .join(&dir)
                .join(format!("left4dead2/layer{i}.txt")),
            &format!("{i}\n"),
        );
        overlays.push(dir);
    }
    write(
        &root
            .path()
            .join(&overlays[0])
            .join("left4dead2/layer498.txt"),
        "top wins\n",
    );
    let port = free_game_port();
    let spec = root.path().join("spec.yaml");
    write(
        &spec,
        &format!(
            "port: {port}\noverlays: [{}]\nargs: [+map, c1m1_hotel]\n",
            overlays.join(", ")
        ),
    );
    if let Some(uid) = as_uid {
        std::fs::set_permissions(
            root.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        chown_tree(root.path(), uid);
    }
    let ctl = Ctl {
        root: &root,
        as_uid,
    };
    ctl.ok(&["initialize", "deep", "-f", spec.to_str().unwrap()]);
    ctl.ok(&["start", "deep"]);
    let pid: u32 = ctl.status("deep").field("pid").parse().unwrap();
    assert!(
        wait_for_a2s(port, Duration::from_secs(20)).is_some(),
        "server on 500 layers answers A2S"
    );
    let canonical = root.path().canonicalize().unwrap();
    let merged = PathBuf::from(format!("/proc/{pid}/root"))
        .join(canonical.strip_prefix("/").unwrap())
        .join("runtime/deep/merged/left4dead2");
    assert_eq!(
        std::fs::read_to_string(merged.join("layer0.txt")).unwrap(),
        "0\n"
    );
    assert_eq!(
        std::fs::read_to_string(merged.join("layer250.txt")).unwrap(),
        "250\n"
    );
    assert_eq!(
        std::fs::read_to_string(merged.join("layer498.txt")).unwrap(),
        "top wins\n"
    );
    ctl.ok(&["delete", "deep"]);
}

#[test]
fn five_hundred_layers_mount() {
    five_hundred_layers(None);
}

#[test]
fn five_hundred_layers_mount_unprivileged() {
    five_hundred_layers(is_root().then_some(NOBODY));
}

/// Bans and SourceMod admins of the spec land in the upper layer at start
/// (winning over an overlay's own admins_simple.ini), and the game applies
/// the bans through `exec banned_user.cfg`; without admins the host's own
/// file goes away again.
#[test]
fn bans_and_admins_are_staged_at_start_and_applied_by_the_game() {
    let root = DataRoot::installed();
    let ctl = Ctl {
        root: &root,
        as_uid: None,
    };
    let port = free_game_port();
    let overlay_ini = root
        .path()
        .join("overlays/sm/left4dead2/addons/sourcemod/configs/admins_simple.ini");
    write(&overlay_ini, "\"STEAM_1:0:1\" \"z\"\n");
    let spec = root.path().join("spec.yaml");
    let password = format!("secret-{port}");
    write(
        &spec,
        &format!(
            "port: {port}\noverlays: [overlays/sm]\nargs: [+map, c1m1_hotel, -sim_churn, \"0\"]\n\
             config: |\n  rcon_password \"{password}\"\n\
             bans:\n  - {{steam_id: STEAM_1:0:1234, minutes: 0}}\n  - {{steam_id: \"[U:1:7]\", minutes: 90}}\n\
             admins:\n  - {{steam_id: STEAM_1:1:42, flags: abcz, immunity: 99}}\n  - {{steam_id: STEAM_1:0:43, flags: bk}}\n"
        ),
    );
    ctl.ok(&["initialize", "srv", "-f", spec.to_str().unwrap()]);
    ctl.ok(&["start", "srv"]);
    assert!(
        wait_for_a2s(port, Duration::from_secs(15)).is_some(),
        "server answers A2S"
    );
    let upper = root.path().join("runtime/srv/upper/left4dead2");
    let bans = std::fs::read_to_string(upper.join("cfg/banned_user.cfg")).unwrap();
    assert!(
        bans.ends_with("banid 0 STEAM_1:0:1234\nbanid 90 [U:1:7]\n"),
        "{bans}"
    );
    let cfg = std::fs::read_to_string(upper.join("cfg/server.cfg")).unwrap();
    assert!(cfg.ends_with("exec banned_user.cfg\n"), "{cfg}");
    // Read through the game's root: the mount may live in its namespace.
    let merged_ini = |ctl: &Ctl| {
        let pid = ctl.status("srv").field("pid");
        let canonical = root.path().canonicalize().unwrap();
        PathBuf::from(format!("/proc/{pid}/root"))
            .join(canonical.strip_prefix("/").unwrap())
            .join("runtime/srv/merged/left4dead2/addons/sourcemod/configs/admins_simple.ini")
    };
    let ini = std::fs::read_to_string(merged_ini(&ctl)).unwrap();
    assert!(
        ini.ends_with("\"STEAM_1:1:42\" \"99:abcz\"\n\"STEAM_1:0:43\" \"bk\"\n"),
        "the panel's admins win over the overlay's: {ini}"
    );
    // The game ran banned_user.cfg with server.cfg.
    assert_eq!(
        rcon(port, &password, "listid"),
        "ID filter list: 2 entries\n1 STEAM_1:0:1234 : permanent\n2 STEAM_1:1:3 : 90.000 min\n"
    );
    assert_eq!(
        rcon(port, &password, "sim_join Griefer STEAM_1:0:1234"),
        "sim_join: STEAM UserID STEAM_1:0:1234 is banned\n"
    );
    ctl.ok(&["stop", "srv"]);

    // Without bans and admins: an empty ban file, the overlay's admins back.
    write(
        &spec,
        &format!(
            "port: {port}\noverlays: [overlays/sm]\nargs: [+map, c1m1_hotel]\nconfig: |\n  rcon_password \"{password}\"\n"
        ),
    );
    ctl.ok(&["initialize", "srv", "-f", spec.to_str().unwrap()]);
    ctl.ok(&["start", "srv"]);
    assert!(wait_for_a2s(port, Duration::from_secs(15)).is_some());
    assert_eq!(
        std::fs::read_to_string(merged_ini(&ctl)).unwrap(),
        "\"STEAM_1:0:1\" \"z\"\n"
    );
    assert_eq!(rcon(port, &password, "listid"), "ID filter list: empty\n");
    ctl.ok(&["stop", "srv"]);
    ctl.ok(&["delete", "srv"]);
}
