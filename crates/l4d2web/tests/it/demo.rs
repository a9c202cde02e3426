//! `left4me demo` as a real process: first run creates the data directory,
//! prints a generated admin password once and installs the simulated game as
//! a visible job; a second run reuses everything.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;
use reqwest::StatusCode;
use test_support::workspace_bin;

struct Demo {
    child: Child,
    _stdout: BufReader<std::process::ChildStdout>,
    banner: Vec<String>,
    base: String,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `left4me demo` in `cwd` (no LEFT4ME_* configuration at all) and
/// reads its banner up to the URL line.
fn start_demo(cwd: &std::path::Path) -> Demo {
    let mut child = Command::new(workspace_bin("left4me"))
        .args(["demo", "--bind", "127.0.0.1:0"])
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut banner = Vec::new();
    let base = loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "demo exited early: {banner:?}"
        );
        let line = line.trim_end().to_string();
        banner.push(line.clone());
        if let Some(url) = line.trim().strip_prefix("open ") {
            break url.trim_end_matches('/').to_string();
        }
    };
    Demo {
        child,
        _stdout: reader,
        banner,
        base,
    }
}

async fn wait_install(base: &str, client: &mut Client) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = client.get("/jobs").await;
        assert_eq!(page.status, StatusCode::OK, "{base}");
        if page.body.contains("state-succeeded") || page.body.contains("state-failed") {
            return page.body;
        }
        assert!(Instant::now() < deadline, "install job did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn demo_first_and_second_run() {
    let cwd = tempfile::tempdir().unwrap();
    let demo = start_demo(cwd.path());
    let data = cwd.path().join("left4me-data").canonicalize().unwrap();
    let text = demo.banner.join("\n");
    assert!(text.contains(&data.display().to_string()), "{text}");
    let pw_line = demo
        .banner
        .iter()
        .find(|l| l.contains("administrator: admin / "))
        .expect("password printed");
    let password = pw_line
        .split("admin / ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(password.len() >= 16);
    let mut admin = Client::new(&demo.base);
    assert_eq!(
        admin.login("admin", &password).await.status,
        StatusCode::SEE_OTHER
    );
    let jobs = wait_install(&demo.base, &mut admin).await;
    assert!(jobs.contains("state-succeeded"), "{jobs}");
    assert!(data.join("installation").is_dir());
    // The demo's data is private to the user running it.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&data), 0o700);
    for db in ["left4me.db", "left4me.db-wal", "left4me.db-shm"] {
        let path = data.join(db);
        if path.exists() {
            assert_eq!(mode(&path) & 0o077, 0, "{db} is {:o}", mode(&path));
        }
    }
    let link = std::fs::read_link(data.join("steam/steamcmd.sh")).unwrap();
    assert_eq!(link, workspace_bin("steamcmd-sim"));
    let job = admin.get("/jobs/1").await;
    assert!(job.body.contains("fully installed"), "{}", job.body);
    drop(demo);

    // Second run: same directory, no new admin, the old password still works,
    // no second install.
    let demo = start_demo(cwd.path());
    let text = demo.banner.join("\n");
    assert!(!text.contains("administrator: admin /"), "{text}");
    assert!(text.contains("existing data directory reused"), "{text}");
    let mut admin = Client::new(&demo.base);
    assert_eq!(
        admin.login("admin", &password).await.status,
        StatusCode::SEE_OTHER
    );
    let jobs = admin.get("/jobs").await.body;
    assert_eq!(
        jobs.matches("/jobs/").count(),
        1,
        "no second install job: {jobs}"
    );
}

#[test]
fn demo_without_built_workspace_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let lonely = dir.path().join("left4me");
    test_support::copy_executable(&workspace_bin("left4me"), &lonely);
    let out = Command::new(&lonely)
        .args(["demo", "--bind", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_clear()
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("steamcmd-sim not found") && err.contains("build the workspace first"),
        "{err}"
    );
    assert!(!dir.path().join("left4me-data").exists(), "nothing created");
}
