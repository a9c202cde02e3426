//! The panel converges servers to their desired state: racing requests
//! never leave the desired state disagreeing with the last job, and a
//! panel killed in the middle of a restart brings the server back when it
//! starts again, without anyone clicking.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;
use reqwest::StatusCode;
use test_support::{workspace_bin, DataRoot};

async fn blueprint_and_servers(c: &mut Client, names: &[String]) -> Vec<i64> {
    let r = c
        .post(
            "/blueprints",
            &[("name", "bp"), ("args", "+map c1m1_hotel"), ("config", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let bp = r.location().trim_start_matches("/blueprints/").to_string();
    let mut ids = Vec::new();
    for name in names {
        let r = c
            .post(
                "/servers",
                &[("name", name.as_str()), ("blueprint_id", bp.as_str())],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        ids.push(
            r.location()
                .trim_start_matches("/servers/")
                .parse()
                .unwrap(),
        );
    }
    ids
}

#[tokio::test]
async fn racing_start_and_stop_leave_desired_state_matching_the_last_job() {
    let s = TestServer::start_with(&[
        ("LEFT4ME_PORT_RANGE_START", "26100"),
        ("LEFT4ME_PORT_RANGE_END", "26199"),
    ])
    .await;
    let mut admin = s.login(ADMIN).await;
    let names: Vec<String> = (0..40).map(|i| format!("race-{i}")).collect();
    let ids = blueprint_and_servers(&mut admin, &names).await;
    let mut tasks = Vec::new();
    for id in &ids {
        for action in ["start", "stop"] {
            let mut c = Client::new(&admin.base);
            c.cookie = admin.cookie.clone();
            c.csrf = admin.csrf.clone();
            let path = format!("/servers/{id}/{action}");
            tasks.push(tokio::spawn(async move {
                let r = c.post(&path, &[]).await;
                assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    for name in &names {
        let (desired,): (String,) =
            sqlx::query_as("SELECT desired_state FROM servers WHERE name = ?")
                .bind(name)
                .fetch_one(&s.pool)
                .await
                .unwrap();
        let (kind,): (String,) =
            sqlx::query_as("SELECT kind FROM jobs WHERE lock_key = ? ORDER BY id DESC LIMIT 1")
                .bind(format!("server:{name}"))
                .fetch_one(&s.pool)
                .await
                .unwrap();
        let expected = if kind == "server-start" {
            "running"
        } else {
            "stopped"
        };
        assert_eq!(
            desired, expected,
            "{name}: last job {kind}, desired {desired}"
        );
    }
    s.stop().await;
}

const SECRET: &str = "converge-test-secret-0123456789abcdef";

/// `left4me serve` on `root`, with l4d2ctl behind a wrapper that stalls in
/// `start` while `marker` exists.
async fn serve(root: &Path, wrapper: &Path, marker: &Path, port_start: u16) -> Serve {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(workspace_bin("left4me"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LEFT4ME_ROOT", root)
        .env("LEFT4ME_BACKEND", "local")
        .env("LEFT4ME_STEAMCMD", root.join("steam/steamcmd.sh"))
        .env("LEFT4ME_L4D2CTL", wrapper)
        .env("STALL_MARKER", marker)
        .env("SECRET_KEY", SECRET)
        .env("LEFT4ME_BIND", format!("127.0.0.1:{port}"))
        .env("LEFT4ME_PORT_RANGE_START", port_start.to_string())
        .env("LEFT4ME_PORT_RANGE_END", (port_start + 9).to_string())
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::options()
                .create(true)
                .append(true)
                .open(root.join("serve.log"))
                .unwrap(),
        )
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{base}/health"))
        .await
        .map(|r| r.status() != StatusCode::OK)
        .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "left4me serve did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Serve { child, base }
}

fn instance_state(root: &Path, name: &str) -> String {
    let out = Command::new(workspace_bin("l4d2ctl"))
        .args(["status", name, "--json"])
        .env("LEFT4ME_ROOT", root)
        .env("LEFT4ME_BACKEND", "local")
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    status["active_state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn wait_instance(root: &Path, name: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while instance_state(root, name) != want {
        assert!(
            Instant::now() < deadline,
            "{name} never became {want} (is {})",
            instance_state(root, name)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_panel_killed_mid_restart_brings_the_server_back_by_itself() {
    let root = DataRoot::installed();
    let wrapper = root.path().join("l4d2ctl-stalling.sh");
    test_support::write_executable(
        &wrapper,
        &format!(
            "#!/bin/sh\nif [ \"$1\" = start ] && [ -e \"$STALL_MARKER\" ]; then sleep 30; fi\nexec {} \"$@\"\n",
            workspace_bin("l4d2ctl").display()
        ),
        0o755,
    );
    let marker = root.path().join("stall");
    let created = Command::new(workspace_bin("left4me"))
        .args(["create-user", "admin", "--admin"])
        .env("LEFT4ME_ROOT", root.path())
        .env("LEFT4ME_ADMIN_PASSWORD", ADMIN.1)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );

    let panel = serve(root.path(), &wrapper, &marker, 26210).await;
    let mut admin = Client::new(&panel.base);
    admin.login(ADMIN.0, ADMIN.1).await;
    let id = blueprint_and_servers(&mut admin, &["phoenix".to_string()]).await[0];
    let r = admin.post(&format!("/servers/{id}/start"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    wait_instance(root.path(), "phoenix", "active").await;

    // A restart that stalls in `l4d2ctl start`, after the stop happened.
    std::fs::write(&marker, "").unwrap();
    let r = admin.post(&format!("/servers/{id}/restart"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    wait_instance(root.path(), "phoenix", "inactive").await;
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        root.path().join("left4me.db").display()
    ))
    .await
    .unwrap();
    let restart_job: i64 = sqlx::query_scalar(
        "SELECT id FROM jobs WHERE kind = 'server-restart' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let started: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM job_lines WHERE job_id = ? AND line = '$ l4d2ctl start phoenix'",
        )
        .bind(restart_job)
        .fetch_one(&pool)
        .await
        .unwrap();
        if started > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restart never reached its start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // kill -9 between stop and start.
    let mut panel = panel;
    panel.child.kill().unwrap();
    panel.child.wait().unwrap();
    std::fs::remove_file(&marker).unwrap();
    assert_eq!(instance_state(root.path(), "phoenix"), "inactive");

    let panel = serve(root.path(), &wrapper, &marker, 26210).await;
    wait_instance(root.path(), "phoenix", "active").await;
    let (state, error): (String, Option<String>) =
        sqlx::query_as("SELECT state, error FROM jobs WHERE id = ?")
            .bind(restart_job)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(state, "failed", "the interrupted job is not left running");
    assert!(error.unwrap_or_default().contains("interrupted"));
    let (kind, title): (String, String) = sqlx::query_as(
        "SELECT kind, title FROM jobs WHERE id > ? AND lock_key = 'server:phoenix' ORDER BY id LIMIT 1",
    )
    .bind(restart_job)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(kind, "server-start");
    assert!(title.contains("desired state"), "{title}");
    // Nothing else queued: a second start of the panel changes nothing.
    drop(panel);
    let panel = serve(root.path(), &wrapper, &marker, 26210).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs WHERE id > ? AND lock_key = 'server:phoenix'",
    )
    .bind(restart_job)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(later, 1, "a server in its desired state gets no job");
    let r = Client::new(&panel.base).get("/health").await;
    assert_eq!(r.status, StatusCode::OK);
    let _ = Command::new(workspace_bin("l4d2ctl"))
        .args(["delete", "phoenix"])
        .env("LEFT4ME_ROOT", root.path())
        .env("LEFT4ME_BACKEND", "local")
        .status();
}
