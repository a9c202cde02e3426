//! `left4me backup` while the panel serves, `left4me restore` into a fresh
//! data root, and every way a backup or its target can be wrong.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::util::{left4me_cli, TestServer, USER};
use reqwest::StatusCode;

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every path below `dir`, sorted, with "link -> target" for symlinks.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let rel = format!("{rel}/{}", e.file_name().to_string_lossy());
            let ty = e.file_type().unwrap();
            if ty.is_symlink() {
                out.push(format!(
                    "{rel} -> {}",
                    std::fs::read_link(e.path()).unwrap().display()
                ));
            } else if ty.is_dir() {
                out.push(format!("{rel}/"));
                walk(&e.path(), &rel, out);
            } else if !ty.is_file() {
                out.push(format!("{rel} (special)"));
            } else {
                let bytes = std::fs::read(e.path()).unwrap();
                out.push(format!("{rel} {} bytes {:o}", bytes.len(), mode(&e.path())));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out);
    out
}

/// A panel with a user, a blueprint, a server, an overlay with a nested
/// file, a link and a FIFO; returns it and the backup made while it serves.
async fn backed_up() -> (TestServer, tempfile::TempDir, std::path::PathBuf) {
    let s = TestServer::start().await;
    let mut alice = s.login(USER).await;
    let r = alice
        .post(
            "/blueprints",
            &[
                ("name", "base"),
                ("args", "+map c1m1_hotel"),
                ("config", "hostname x"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let bp = r.location().trim_start_matches("/blueprints/").to_string();
    let r = alice
        .post("/servers", &[("name", "alpha"), ("blueprint_id", &bp)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = alice
        .post("/overlays", &[("name", "cfgs"), ("kind", "script")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let overlay = r.location().trim_start_matches("/overlays/").to_string();
    let root = s.root.path();
    let cfg = root.join(format!("overlays/{overlay}/left4dead2/cfg"));
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("extra.cfg"), "sv_cheats 0\n").unwrap();
    std::os::unix::fs::symlink("extra.cfg", cfg.join("alias.cfg")).unwrap();
    // A link out of the overlay stays a link (never followed, never copied
    // as what it points to).
    std::os::unix::fs::symlink("/etc", cfg.join("escape")).unwrap();
    // A read-only directory comes back read-only, with its contents.
    let ro = root.join(format!("overlays/{overlay}/ro"));
    std::fs::create_dir(&ro).unwrap();
    std::fs::write(ro.join("kept.txt"), "kept\n").unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let fifo = cfg.join("pipe");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    std::fs::create_dir_all(root.join("instances/alpha")).unwrap();
    std::fs::write(root.join("instances/alpha/server.cfg"), "hostname x\n").unwrap();

    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("b1");
    let out = left4me_cli(root, &["backup", target.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("backed up"), "{said}");
    assert!(
        said.contains("left out:") && said.contains("pipe"),
        "{said}"
    );
    (s, dir, target)
}

#[tokio::test]
async fn a_backup_made_while_serving_restores_into_a_fresh_root() {
    let (s, _dir, target) = backed_up().await;
    // Only its owner reads the backup and its database.
    assert_eq!(mode(&target), 0o700);
    assert_eq!(mode(&target.join("left4me.db")), 0o600);
    assert!(target.join("manifest.json").is_file());
    assert!(
        !target.join("installation").exists(),
        "the game is left out"
    );

    // A root as the deploy script leaves it: empty directories only.
    let fresh = tempfile::tempdir().unwrap();
    let new_root = fresh.path().join("root");
    for sub in ["installation", "overlays", "instances", "runtime/x"] {
        std::fs::create_dir_all(new_root.join(sub)).unwrap();
    }
    let out = left4me_cli(&new_root, &["restore", target.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&new_root.join("left4me.db")), 0o600 & 0o640);
    // The trees come back exactly (the FIFO was left out).
    let old_overlays: Vec<String> = tree(&s.root.path().join("overlays"))
        .into_iter()
        .filter(|p| !p.ends_with("/pipe (special)"))
        .collect();
    assert_eq!(tree(&new_root.join("overlays")), old_overlays);
    assert!(
        old_overlays.iter().any(|p| p.ends_with("/escape -> /etc")),
        "{old_overlays:?}"
    );
    let ro = std::fs::read_dir(new_root.join("overlays"))
        .unwrap()
        .map(|e| e.unwrap().path().join("ro"))
        .find(|p| p.is_dir())
        .unwrap();
    assert_eq!(mode(&ro), 0o555);
    assert_eq!(
        std::fs::read_to_string(ro.join("kept.txt")).unwrap(),
        "kept\n"
    );
    assert_eq!(
        tree(&new_root.join("instances")),
        tree(&s.root.path().join("instances"))
    );
    // A panel on the restored root has the user, the blueprint, the
    // server and the overlay.
    let url = format!("sqlite://{}", new_root.join("left4me.db").display());
    let pool = l4d2web::db::connect(&url).await.unwrap();
    let counts: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM users WHERE username = 'alice'),
                (SELECT COUNT(*) FROM blueprints), (SELECT COUNT(*) FROM servers WHERE name = 'alpha'),
                (SELECT COUNT(*) FROM overlays WHERE name = 'cfgs')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(counts, (1, 1, 1, 1));
    pool.close().await;
    s.stop().await;
}

#[tokio::test]
async fn bad_targets_and_damaged_backups_are_refused_and_change_nothing() {
    let (s, dir, target) = backed_up().await;
    let root = s.root.path();

    // Backing up into a directory that holds something.
    let busy = dir.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("keep"), "mine").unwrap();
    let out = left4me_cli(root, &["backup", busy.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is not empty"), "{}", stderr(&out));
    assert_eq!(tree(&busy), vec!["/keep 4 bytes 644".to_string()]);

    // Restoring over a data root in use, or one with a single file deep down.
    let out = left4me_cli(root, &["restore", target.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is not empty"), "{}", stderr(&out));
    let nearly = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(nearly.path().join("overlays/9")).unwrap();
    std::fs::write(nearly.path().join("overlays/9/x"), "").unwrap();
    let out = left4me_cli(nearly.path(), &["restore", target.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("overlays/9/x"), "{}", stderr(&out));
    assert_eq!(
        tree(nearly.path()),
        vec!["/overlays/", "/overlays/9/", "/overlays/9/x 0 bytes 644"]
    );

    // Each damage, on a fresh copy of the good backup, into an empty root.
    // What is wrong, how to do it to a copy of the backup, what restore says.
    type Damage<'a> = (&'a str, &'a dyn Fn(&Path), &'a str);
    let damages: &[Damage] = &[
        (
            "no manifest (unfinished)",
            &|b| std::fs::remove_file(b.join("manifest.json")).unwrap(),
            "not a complete backup",
        ),
        (
            "a changed byte",
            &|b| {
                let f = b.join("instances/alpha/server.cfg");
                std::fs::write(&f, "hostname y\n").unwrap();
            },
            "does not match its checksum",
        ),
        (
            "a truncated database",
            &|b| {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(b.join("left4me.db"))
                    .unwrap();
                f.set_len(100).unwrap();
            },
            "the manifest says",
        ),
        (
            "a missing file",
            &|b| std::fs::remove_file(b.join("instances/alpha/server.cfg")).unwrap(),
            "is missing",
        ),
        (
            "an unlisted file",
            &|b| std::fs::write(b.join("instances/alpha/planted.so"), "x").unwrap(),
            "is not in the manifest",
        ),
        (
            "a path out of the data root",
            &|b| {
                let m = b.join("manifest.json");
                let text = std::fs::read_to_string(&m).unwrap();
                let text = text.replacen("\"instances\"", "\"instances/../../etc\"", 1);
                std::fs::write(&m, text).unwrap();
            },
            "is not a path a backup may hold",
        ),
        (
            "a manifest that is not JSON",
            &|b| std::fs::write(b.join("manifest.json"), "{").unwrap(),
            "unreadable",
        ),
    ];
    for (what, damage, expected) in damages {
        let copy = dir.path().join("copy");
        let _ = std::fs::remove_dir_all(&copy);
        assert!(std::process::Command::new("cp")
            .args(["-a", "--"])
            .arg(&target)
            .arg(&copy)
            .status()
            .unwrap()
            .success());
        damage(&copy);
        let empty = tempfile::tempdir().unwrap();
        let out = left4me_cli(empty.path(), &["restore", copy.to_str().unwrap()]);
        assert!(!out.status.success(), "{what}: restored");
        assert!(stderr(&out).contains(expected), "{what}: {}", stderr(&out));
        assert!(
            std::fs::read_dir(empty.path()).unwrap().next().is_none(),
            "{what}: the root was written to"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn rotated_backups_keep_the_newest_complete_ones() {
    let s = TestServer::start().await;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("backups");
    let p = dir.to_str().unwrap();
    let out = left4me_cli(s.root.path(), &["backup", "--keep", "0", p]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--keep must be at least 1"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.exists(), "a refused backup writes nothing");
    // An unfinished backup (no manifest) is never pruned.
    std::fs::create_dir_all(dir.join("left4me-00000000T000000Z")).unwrap();
    let mut made = Vec::new();
    for _ in 0..3 {
        let out = left4me_cli(s.root.path(), &["backup", "--keep", "2", p]);
        assert!(out.status.success(), "{}", stderr(&out));
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        let path = said
            .lines()
            .find_map(|l| l.split(" into ").nth(1))
            .unwrap()
            .to_string();
        made.push((path, said));
        // Names carry the second.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    assert!(
        made[2]
            .1
            .contains(&format!("removed the old backup {}", made[0].0)),
        "{}",
        made[2].1
    );
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    left.sort();
    let mut expected = vec![
        dir.join("left4me-00000000T000000Z").display().to_string(),
        made[1].0.clone(),
        made[2].0.clone(),
    ];
    expected.sort();
    assert_eq!(left, expected);
    s.stop().await;
}
