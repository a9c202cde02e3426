//! Whoever creates the database (the web app, `migrate`, `create-user` run
//! by the admin wrapper before the first start), it is never readable by
//! others: it holds password hashes, sessions and every server's RCON
//! password.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use test_support::workspace_bin;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn left4me(root: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(workspace_bin("left4me"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LEFT4ME_ROOT", root)
        .env("LEFT4ME_ADMIN_PASSWORD", "a-long-enough-password")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "left4me {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn create_user_before_the_first_start_makes_a_private_database() {
    let dir = tempfile::tempdir().unwrap();
    left4me(dir.path(), &["create-user", "admin", "--admin"]);
    let db = dir.path().join("left4me.db");
    assert_eq!(mode(&db), 0o640, "created {:o}", mode(&db));
    for sidecar in ["left4me.db-wal", "left4me.db-shm"] {
        let path = dir.path().join(sidecar);
        if path.exists() {
            assert_eq!(mode(&path) & 0o027, 0, "{sidecar} is {:o}", mode(&path));
        }
    }
}

#[test]
fn migrate_tightens_a_database_an_older_version_left_world_readable() {
    let dir = tempfile::tempdir().unwrap();
    left4me(dir.path(), &["migrate"]);
    let db = dir.path().join("left4me.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o666)).unwrap();
    left4me(dir.path(), &["migrate"]);
    assert_eq!(mode(&db), 0o640);
    // A stricter mode an operator chose is kept.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    left4me(dir.path(), &["migrate"]);
    assert_eq!(mode(&db), 0o600);
}
