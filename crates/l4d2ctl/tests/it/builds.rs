//! Game builds side by side: install puts a new build beside the current
//! one, instances stay on theirs until initialised again, a spec can name
//! an older build (rollback), and prune never removes a build in use.

use std::time::{Duration, Instant};

use l4d2_contract::builds::{BuildId, BuildsReport, UpdateCheck};
use test_support::{free_game_port, DataRoot};

const FIRST: u64 = 15000001;

fn builds(root: &DataRoot) -> BuildsReport {
    let out = root.l4d2ctl(["builds", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("builds --json")
}

fn ids(report: &BuildsReport) -> Vec<u64> {
    report.builds.iter().map(|b| b.id.0).collect()
}

fn on(report: &BuildsReport, name: &str) -> Option<u64> {
    report.build_of(name).map(|b| b.id.0)
}

fn install(root: &DataRoot) -> String {
    let out = root.l4d2ctl(["install"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn initialize(root: &DataRoot, name: &str, port: u16, build: Option<u64>) {
    let build = build.map(|b| format!("build: {b}\n")).unwrap_or_default();
    let spec = root.path().join(format!("{name}.yaml"));
    std::fs::write(
        &spec,
        format!("port: {port}\n{build}args: [+map, c1m1_hotel, -sim_master_interval, \"1\"]\n"),
    )
    .unwrap();
    let out = root.l4d2ctl(["initialize", name, "-f", spec.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check_update(root: &DataRoot) -> UpdateCheck {
    let out = root.l4d2ctl(["check-update", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("check-update --json")
}

#[test]
fn builds_live_side_by_side_and_instances_move_only_when_initialised_again() {
    let root = DataRoot::installed();
    let report = builds(&root);
    assert_eq!(ids(&report), [FIRST]);
    assert_eq!(report.newest, Some(BuildId(FIRST)));
    assert!(report.builds[0].size_bytes > 1024 * 1024, "{report:?}");
    let up_to_date = check_update(&root);
    assert_eq!(up_to_date.installed, Some(BuildId(FIRST)));
    assert!(!up_to_date.update_available());

    // A server runs on the first build…
    let port = free_game_port();
    initialize(&root, "a", port, None);
    let out = root.l4d2ctl(["start", "a"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // …while an install with nothing new downloads nothing…
    let text = install(&root);
    assert!(text.contains("nothing to download"), "{text}");
    assert!(!text.contains("steamcmd pass"), "{text}");
    // …and Valve publishes a new one.
    root.publish_build(FIRST + 1);
    let check = check_update(&root);
    assert_eq!(check.published, BuildId(FIRST + 1));
    assert!(check.update_available());
    // The running game hears it from Steam (real srcds: MasterRequestRestart).
    // As root the game runs as its own uid in a view without the test's
    // published-build file (the system test covers that case, under systemd).
    if !test_support::is_root() {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let logs = root.l4d2ctl(["logs", "a", "--lines", "400"]);
            let text = String::from_utf8_lossy(&logs.stdout);
            if text.contains(
                "Your server needs to be restarted in order to receive the latest update.",
            ) {
                break;
            }
            assert!(Instant::now() < deadline, "no restart request in {text}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    let text = install(&root);
    assert!(
        text.contains(&format!("installing it beside build {FIRST}")),
        "{text}"
    );
    let report = builds(&root);
    assert_eq!(ids(&report), [FIRST + 1, FIRST]);
    assert_eq!(
        on(&report, "a"),
        Some(FIRST),
        "a running server stays on its build"
    );
    // The old build was not written to: it still says it is the first.
    let manifest = std::fs::read_to_string(root.path().join(format!(
        "installation/{FIRST}/steamapps/appmanifest_222860.acf"
    )))
    .unwrap();
    assert!(
        manifest.contains(&format!("\"buildid\"\t\t\"{FIRST}\"")),
        "{manifest}"
    );
    let status = root.l4d2ctl(["status", "a", "--json"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("\"active_state\":\"active\""));

    // The next initialise (a restart) moves it; another server is kept on
    // the first build (a rollback).
    assert!(root.l4d2ctl(["stop", "a"]).status.success());
    initialize(&root, "a", port, None);
    initialize(&root, "b", free_game_port(), Some(FIRST));
    let report = builds(&root);
    assert_eq!(on(&report, "a"), Some(FIRST + 1));
    assert_eq!(on(&report, "b"), Some(FIRST));
    assert_eq!(report.previous(BuildId(FIRST + 1)), Some(BuildId(FIRST)));
    let out = root.l4d2ctl(["start", "a"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(root.l4d2ctl(["stop", "a"]).status.success());

    // Two more builds: the first is kept while b uses it, the second while
    // a does; then b moves and the first goes.
    root.publish_build(FIRST + 2);
    install(&root);
    root.publish_build(FIRST + 3);
    let text = install(&root);
    assert_eq!(
        ids(&builds(&root)),
        [FIRST + 3, FIRST + 2, FIRST + 1, FIRST],
        "{text}"
    );
    initialize(&root, "b", free_game_port(), None);
    initialize(&root, "a", port, Some(FIRST + 2));
    root.publish_build(FIRST + 4);
    let text = install(&root);
    assert!(
        text.contains(&format!("removed game build {FIRST} (no server uses it)")),
        "{text}"
    );
    assert_eq!(ids(&builds(&root)), [FIRST + 4, FIRST + 3, FIRST + 2]);
    assert!(!root.path().join(format!("installation/{FIRST}")).exists());
    assert!(!root
        .path()
        .join(format!("installation/{}", FIRST + 1))
        .exists());
}

/// An installation made by an older version (the game directly in
/// `installation/`) becomes a build directory at the first install and
/// goes once no instance uses it.
#[test]
fn the_old_single_directory_is_copied_into_a_build_and_removed_when_unused() {
    let root = DataRoot::empty();
    let steamcmd = root.steamcmd();
    let inst = root.path().join("installation");
    for platform in ["windows", "linux"] {
        let out = std::process::Command::new(&steamcmd)
            .args([
                "+force_install_dir",
                inst.to_str().unwrap(),
                "+login",
                "anonymous",
            ])
            .args([
                "+@sSteamCmdForcePlatformType",
                platform,
                "+app_update",
                "222860",
                "validate",
                "+quit",
            ])
            .env("STEAMCMD_SIM_CONTENT_MB", "1")
            .env(
                "LEFT4ME_SIM_PUBLISHED_BUILD_FILE",
                root.published_build_file(),
            )
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    initialize(&root, "old", free_game_port(), None);
    let env = std::fs::read_to_string(root.path().join("instances/old/instance.env")).unwrap();
    assert!(env.trim_end().ends_with("/installation\""), "{env}");
    let report = builds(&root);
    assert_eq!(report.newest, None);
    assert_eq!(report.builds.len(), 1);
    assert_eq!(report.builds[0].dir, "installation");
    assert_eq!(report.builds[0].instances, ["old"]);

    let text = install(&root);
    assert!(
        text.contains("copying the single installation directory"),
        "{text}"
    );
    let report = builds(&root);
    assert_eq!(report.newest, Some(BuildId(FIRST)));
    assert!(inst.join("srcds_run").is_file(), "kept while `old` uses it");
    assert!(inst.join(format!("{FIRST}/srcds_run")).is_file());

    initialize(&root, "old", free_game_port(), None);
    let text = install(&root);
    assert!(
        text.contains("removed the old single installation"),
        "{text}"
    );
    assert!(!inst.join("srcds_run").exists());
    assert!(!inst.join("left4dead2").exists());
    assert_eq!(ids(&builds(&root)), [FIRST]);
    assert_eq!(on(&builds(&root), "old"), Some(FIRST));
}
