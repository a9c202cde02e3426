//! `left4me` as a real process: the CLI, sd_notify readiness, kill -9 while
//! a job runs (recovery on restart, no process left behind), and SIGTERM
//! handing a running job back to the queue.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;
use reqwest::StatusCode;
use test_support::{free_port, workspace_bin, DataRoot};

const SECRET: &str = "process-test-secret-0123456789abcdef";

fn left4me(root: &Path) -> Command {
    let mut cmd = Command::new(workspace_bin("left4me"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LEFT4ME_ROOT", root)
        .env("LEFT4ME_BACKEND", "local")
        .env("LEFT4ME_STEAMCMD", root.join("steam/steamcmd.sh"));
    cmd
}

async fn start_serve(root: &Path, extra: &[(&str, &str)]) -> Serve {
    let port = free_port();
    let mut cmd = left4me(root);
    cmd.arg("serve")
        .env("SECRET_KEY", SECRET)
        .env("LEFT4ME_BIND", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        // The server's log goes to a file in the data root (kept quiet here).
        .stderr(
            std::fs::File::options()
                .create(true)
                .append(true)
                .open(root.join("serve.log"))
                .unwrap(),
        );
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/health")).await {
            if r.status() == StatusCode::OK {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "left4me serve did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Serve { child, base }
}

async fn job_state(pool: &sqlx::SqlitePool, id: i64) -> (String, Option<String>) {
    sqlx::query_as("SELECT state, error FROM jobs WHERE id = ?")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn wait_for_line(pool: &sqlx::SqlitePool, id: i64, needle: &str) {
    for _ in 0..300 {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM job_lines WHERE job_id = ? AND line = ?")
                .bind(id)
                .bind(needle)
                .fetch_one(pool)
                .await
                .unwrap();
        if n > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {id} never printed {needle:?}");
}

async fn wait_state(pool: &sqlx::SqlitePool, id: i64, want: &str) {
    for _ in 0..600 {
        if job_state(pool, id).await.0 == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "job {id} never reached {want}: {:?}",
        job_state(pool, id).await
    );
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push((pid, cmdline));
            }
        }
    }
    found
}

fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) {
            // Fields after the ")" of the command name: state, ppid, ...
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            let ppid: u32 = rest.split(' ').nth(1).unwrap().parse().unwrap();
            if ppid == pid {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn cli_create_user_and_migrate() {
    let root = DataRoot::empty();
    let out = left4me(root.path()).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
    let out = left4me(root.path())
        .args(["create-user", "boss", "--admin"])
        .env("LEFT4ME_ADMIN_PASSWORD", "boss-password")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "created administrator boss"
    );
    // Bad input: a clear error, nothing created.
    for (args, pw, msg) in [
        (
            vec!["create-user", "boss"],
            "another-password",
            "already exists",
        ),
        (
            vec!["create-user", "bad name"],
            "another-password",
            "is invalid",
        ),
        (vec!["create-user", "shorty"], "short", "too short"),
    ] {
        let out = left4me(root.path())
            .args(&args)
            .env("LEFT4ME_ADMIN_PASSWORD", pw)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{args:?}: {err}");
    }
    // No terminal and no LEFT4ME_ADMIN_PASSWORD: refuses instead of hanging.
    let out = left4me(root.path())
        .args(["create-user", "nopw"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    // Seeding from a directory that does not exist names it and fails
    // (the seed itself is tested in tests/overlays.rs).
    let out = left4me(root.path())
        .args(["seed-script-overlays", "/nonexistent-left4me-seed-dir"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent-left4me-seed-dir"));
    // Invalid configuration names the variable.
    let out = left4me(root.path()).arg("serve").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SECRET_KEY is not set"));
    let out = left4me(root.path())
        .arg("serve")
        .env("SECRET_KEY", SECRET)
        .env("JOB_WORKER_THREADS", "many")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("JOB_WORKER_THREADS"));
    let pool = l4d2web::db::connect(&format!("sqlite://{}/left4me.db", root.path().display()))
        .await
        .unwrap();
    let names: Vec<String> = sqlx::query_scalar("SELECT username FROM users")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(names, vec!["boss".to_string()]);
}

#[tokio::test]
async fn kill_9_during_a_job_then_restart_recovers() {
    let root = DataRoot::empty();
    let out = left4me(root.path())
        .args(["create-user", "admin", "--admin"])
        .env("LEFT4ME_ADMIN_PASSWORD", ADMIN.1)
        .output()
        .unwrap();
    assert!(out.status.success());
    slow_steamcmd(root.path(), 600, 0.1);

    // sd_notify: readiness is announced once HTTP is up.
    let notify_path = root.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut server = start_serve(
        root.path(),
        &[("NOTIFY_SOCKET", notify_path.to_str().unwrap())],
    )
    .await;
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));

    let pool = l4d2web::db::connect(&format!("sqlite://{}/left4me.db", root.path().display()))
        .await
        .unwrap();
    let mut admin = Client::new(&server.base);
    assert_eq!(
        admin.login(ADMIN.0, ADMIN.1).await.status,
        StatusCode::SEE_OTHER
    );
    let r = admin.post("/admin/install", &[]).await;
    let id: i64 = r
        .location()
        .strip_prefix("/jobs/")
        .unwrap()
        .parse()
        .unwrap();
    wait_for_line(&pool, id, "slow-steamcmd tick 3").await;
    assert_eq!(job_state(&pool, id).await.0, "running");
    let ctl = children_of(server.child.id());
    assert_eq!(ctl.len(), 1, "one l4d2ctl child");
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    assert_eq!(
        job_state(&pool, id).await.0,
        "running",
        "the killed process could not finish the job"
    );
    // Nothing of the job keeps running: l4d2ctl dies with its parent, the
    // steamcmd it ran dies on its next write to the closed pipe.
    let root_text = root.path().display().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alive = processes_mentioning(&root_text);
        let ctl_alive = std::path::Path::new(&format!("/proc/{}", ctl[0])).exists()
            && !std::fs::read_to_string(format!("/proc/{}/stat", ctl[0]))
                .unwrap_or_default()
                .contains(") Z ");
        if alive.is_empty() && !ctl_alive {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running after kill -9: {alive:?} l4d2ctl alive={ctl_alive}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Restart: the interrupted job is failed with a reason, nothing is running.
    slow_steamcmd(root.path(), 2, 0.05);
    let mut server = start_serve(root.path(), &[]).await;
    admin.base = server.base.clone();
    let (state, error) = job_state(&pool, id).await;
    assert_eq!(state, "failed");
    assert!(
        error.as_deref().unwrap_or("").starts_with("interrupted"),
        "{error:?}"
    );
    let running: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'running'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(running, 0);
    let last: String =
        sqlx::query_scalar("SELECT line FROM job_lines WHERE job_id = ? ORDER BY seq DESC LIMIT 1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(last.starts_with("interrupted"));
    // The old session survives the restart (sessions are in the database);
    // the queue works again.
    let r = admin.post("/admin/install", &[]).await;
    let id2: i64 = r
        .location()
        .strip_prefix("/jobs/")
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(id, id2);
    wait_state(&pool, id2, "succeeded").await;
    let page = admin.get(&format!("/jobs/{id}")).await;
    assert!(page.body.contains("state-failed") && page.body.contains("interrupted"));
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

#[tokio::test]
async fn sigterm_hands_a_running_job_back() {
    let root = DataRoot::empty();
    let out = left4me(root.path())
        .args(["create-user", "admin", "--admin"])
        .env("LEFT4ME_ADMIN_PASSWORD", ADMIN.1)
        .output()
        .unwrap();
    assert!(out.status.success());
    slow_steamcmd(root.path(), 600, 0.1);
    let mut server = start_serve(root.path(), &[("LEFT4ME_SHUTDOWN_GRACE_SECS", "1")]).await;
    let pool = l4d2web::db::connect(&format!("sqlite://{}/left4me.db", root.path().display()))
        .await
        .unwrap();
    let mut admin = Client::new(&server.base);
    admin.login(ADMIN.0, ADMIN.1).await;
    let id: i64 = admin
        .post("/admin/install", &[])
        .await
        .location()
        .strip_prefix("/jobs/")
        .unwrap()
        .parse()
        .unwrap();
    wait_for_line(&pool, id, "slow-steamcmd tick 2").await;
    // An open SSE viewer must not hold up the shutdown.
    let base = server.base.clone();
    let cookie = admin.cookie.clone().unwrap();
    let viewer = tokio::spawn(async move {
        let res = reqwest::Client::new()
            .get(format!("{base}/jobs/{id}/stream"))
            .header("cookie", format!("left4me_session={cookie}"))
            .send()
            .await
            .unwrap();
        res.text().await.unwrap_or_default()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    let status = loop {
        if let Some(st) = server.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "left4me did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");
    let seen = viewer.await.unwrap();
    assert!(seen.contains("slow-steamcmd tick 1"));
    let (state, _) = job_state(&pool, id).await;
    assert_eq!(state, "queued", "handed back to the queue");
    let lines: Vec<String> =
        sqlx::query_scalar("SELECT line FROM job_lines WHERE job_id = ? ORDER BY seq")
            .bind(id)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(
        lines.iter().any(|l| l.contains("put back in the queue")),
        "{lines:?}"
    );
    // The next start runs it to completion.
    slow_steamcmd(root.path(), 1, 0.05);
    let mut server = start_serve(root.path(), &[]).await;
    wait_state(&pool, id, "succeeded").await;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

#[tokio::test]
async fn jobs_never_pass_secrets_to_l4d2ctl() {
    let root = DataRoot::empty();
    let out = left4me(root.path())
        .args(["create-user", "admin", "--admin"])
        .env("LEFT4ME_ADMIN_PASSWORD", ADMIN.1)
        .output()
        .unwrap();
    assert!(out.status.success());
    // A stand-in l4d2ctl that prints its environment.
    let ctl = root.path().join("env-l4d2ctl");
    test_support::write_executable(&ctl, "#!/bin/sh\nenv\n", 0o755);
    // Kept alive (and killed on drop) for the whole test.
    let server = start_serve(
        root.path(),
        &[
            ("LEFT4ME_L4D2CTL", ctl.to_str().unwrap()),
            ("STEAM_WEB_API_KEY", "steam-api-secret"),
            ("LEFT4ME_ADMIN_PASSWORD", "should-not-leak"),
            (
                "LEFT4ME_METRICS_TOKEN",
                "metrics-token-should-not-leak-0123456789",
            ),
        ],
    )
    .await;
    let base = server.base.clone();
    let pool = l4d2web::db::connect(&format!("sqlite://{}/left4me.db", root.path().display()))
        .await
        .unwrap();
    let mut admin = Client::new(&base);
    admin.login(ADMIN.0, ADMIN.1).await;
    let id: i64 = admin
        .post("/admin/install", &[])
        .await
        .location()
        .strip_prefix("/jobs/")
        .unwrap()
        .parse()
        .unwrap();
    wait_state(&pool, id, "succeeded").await;
    let lines: Vec<String> = sqlx::query_scalar("SELECT line FROM job_lines WHERE job_id = ?")
        .bind(id)
        .fetch_all(&pool)
        .await
        .unwrap();
    let all = lines.join("\n");
    assert!(all.contains("LEFT4ME_ROOT="), "the env was printed: {all}");
    for secret in [
        SECRET,
        "steam-api-secret",
        "should-not-leak",
        "SECRET_KEY",
        "STEAM_WEB_API_KEY",
        "LEFT4ME_METRICS_TOKEN",
    ] {
        assert!(
            !all.contains(secret),
            "{secret} leaked into the job's environment"
        );
    }
}

#[tokio::test]
async fn a_second_serve_on_the_same_data_root_refuses_to_start() {
    let root = DataRoot::empty();
    let out = left4me(root.path())
        .args(["create-user", "admin", "--admin"])
        .env("LEFT4ME_ADMIN_PASSWORD", ADMIN.1)
        .output()
        .unwrap();
    assert!(out.status.success());
    slow_steamcmd(root.path(), 600, 0.1);
    let first = start_serve(root.path(), &[]).await;
    let pool = l4d2web::db::connect(&format!("sqlite://{}/left4me.db", root.path().display()))
        .await
        .unwrap();
    let mut admin = Client::new(&first.base);
    admin.login(ADMIN.0, ADMIN.1).await;
    let id: i64 = admin
        .post("/admin/install", &[])
        .await
        .location()
        .strip_prefix("/jobs/")
        .unwrap()
        .parse()
        .unwrap();
    wait_for_line(&pool, id, "slow-steamcmd tick 2").await;

    // The second one exits at once, naming the lock file and its holder.
    let out = left4me(root.path())
        .arg("serve")
        .env("SECRET_KEY", SECRET)
        .env("LEFT4ME_BIND", format!("127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lock = root.path().join("left4me.lock");
    assert!(
        err.contains("already serving")
            && err.contains(&lock.display().to_string())
            && err.contains(&format!("pid {}", first.child.id())),
        "{err}"
    );
    // ... and touched nothing: the first one's job is still running.
    assert_eq!(job_state(&pool, id).await, ("running".to_string(), None));
    assert_eq!(
        reqwest::get(format!("{}/health", first.base))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // The lock dies with its holder, even with kill -9.
    drop(first);
    let again = start_serve(root.path(), &[]).await;
    let (state, error) = job_state(&pool, id).await;
    assert_eq!(state, "failed", "the killed instance's job: {error:?}");
    drop(again);
}

/// Runs `left4me serve` on `root` as a user that the file modes apply to:
/// this user, or `nobody` when the tests run as root (root writes anywhere).
/// Returns its stderr once it exited; kills it (and fails) if it serves.
async fn serve_as_unprivileged(root: &Path) -> (std::process::ExitStatus, String) {
    use std::os::unix::process::CommandExt;
    let log = root.with_extension("serve.log");
    let mut cmd = left4me(root);
    cmd.arg("serve")
        .env("SECRET_KEY", SECRET)
        .env("LEFT4ME_BIND", format!("127.0.0.1:{}", free_port()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    if test_support::is_root() {
        cmd.uid(65534).gid(65534);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "left4me serve did not refuse to start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let err = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    (status, err)
}

#[tokio::test]
async fn serve_refuses_an_unwritable_data_root_or_database() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path, m: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).unwrap()
    };
    // A read-only data root.
    let root = DataRoot::empty();
    mode(root.path(), 0o555);
    let (status, err) = serve_as_unprivileged(root.path()).await;
    mode(root.path(), 0o755);
    assert!(!status.success());
    assert!(
        err.contains(&format!(
            "the data root {} is not writable",
            root.path().display()
        )),
        "{err}"
    );
    assert!(!root.path().join("left4me.db").exists(), "nothing created");

    // A writable data root with a database its user may read, not write.
    let root = DataRoot::empty();
    let out = left4me(root.path()).arg("migrate").output().unwrap();
    assert!(out.status.success());
    let db = root.path().join("left4me.db");
    if test_support::is_root() {
        // Everything belongs to the user serve runs as (see above).
        for entry in std::fs::read_dir(root.path()).unwrap() {
            std::os::unix::fs::chown(entry.unwrap().path(), Some(65534), Some(65534)).unwrap();
        }
        std::os::unix::fs::chown(root.path(), Some(65534), Some(65534)).unwrap();
    }
    mode(&db, 0o440);
    let (status, err) = serve_as_unprivileged(root.path()).await;
    assert!(!status.success());
    assert!(
        err.contains(&format!(
            "the database sqlite://{} is not writable",
            db.display()
        )),
        "{err}"
    );
}
