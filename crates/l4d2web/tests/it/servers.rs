//! Blueprints and servers end to end: real left4me over HTTP, real l4d2ctl,
//! the local backend with srcds-sim on an installed data root, real
//! overlayfs (as root in the host namespace, else in a user namespace), A2S
//! answers read with the independent `a2s` crate.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::*;
use reqwest::StatusCode;

/// Each test gets its own port range, so parallel tests never race for a port.
pub(crate) fn range(start: u16) -> [(&'static str, String); 2] {
    [
        ("LEFT4ME_PORT_RANGE_START", start.to_string()),
        ("LEFT4ME_PORT_RANGE_END", (start + 9).to_string()),
    ]
}

pub(crate) async fn start_installed(port_start: u16) -> TestServer {
    let r = range(port_start);
    TestServer::start_installed(&[(r[0].0, &r[0].1), (r[1].0, &r[1].1)]).await
}

/// An overlay row owned by `owner` (None: system) with `files` in its dir.
pub(crate) async fn mk_overlay(
    s: &TestServer,
    owner: Option<i64>,
    name: &str,
    files: &[(&str, &str)],
) -> i64 {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO overlays (name, kind, owner_id) VALUES (?, 'script', ?) RETURNING id",
    )
    .bind(name)
    .bind(owner)
    .fetch_one(&s.pool)
    .await
    .unwrap();
    let dir = s.root.path().join("overlays").join(id.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    id
}

pub(crate) fn id_in(location: &str, prefix: &str) -> i64 {
    location
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("redirect {location:?} is not under {prefix}"))
        .trim_end_matches("#stack")
        .parse()
        .unwrap()
}

pub(crate) async fn create_blueprint(c: &mut Client, name: &str, args: &str, config: &str) -> i64 {
    let r = c
        .post(
            "/blueprints",
            &[("name", name), ("args", args), ("config", config)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    id_in(r.location(), "/blueprints/")
}

pub(crate) async fn create_server(c: &mut Client, name: &str, blueprint: i64) -> i64 {
    let r = c
        .post(
            "/servers",
            &[("name", name), ("blueprint_id", &blueprint.to_string())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    id_in(r.location(), "/servers/")
}

/// POSTs an action and waits for the job it queued; returns (job id, state).
pub(crate) async fn act(
    s: &TestServer,
    c: &mut Client,
    server: i64,
    action: &str,
) -> (i64, String) {
    let before = latest_job(s).await;
    let r = c.post(&format!("/servers/{server}/{action}"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{action}: {}", r.body);
    let job = latest_job(s).await;
    assert!(job > before, "{action} queued no job");
    let state = s.wait_job(job).await;
    (job, state)
}

pub(crate) async fn latest_job(s: &TestServer) -> i64 {
    sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM jobs")
        .fetch_one(&s.pool)
        .await
        .unwrap()
}

pub(crate) async fn server_port(s: &TestServer, id: i64) -> u16 {
    let p: i64 = sqlx::query_scalar("SELECT port FROM servers WHERE id = ?")
        .bind(id)
        .fetch_one(&s.pool)
        .await
        .unwrap();
    p as u16
}

/// Polls A2S_INFO until the server's name is `want` (or panics after 30 s).
async fn wait_hostname(port: u16, want: &str) {
    let want = want.to_string();
    tokio::task::spawn_blocking(move || {
        let mut client = a2s::A2SClient::new().unwrap();
        client.set_timeout(Duration::from_millis(200)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = None;
        while Instant::now() < deadline {
            match client.info(("127.0.0.1", port)) {
                Ok(info) if info.name == want => return,
                Ok(info) => last = Some(info.name),
                Err(_) => {}
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("A2S on port {port} never answered with hostname {want:?} (last: {last:?})");
    })
    .await
    .unwrap();
}

fn a2s_silent(port: u16) -> bool {
    let mut client = a2s::A2SClient::new().unwrap();
    client.set_timeout(Duration::from_millis(300)).unwrap();
    client.info(("127.0.0.1", port)).is_err()
}

fn read_env(root: &Path, name: &str) -> String {
    std::fs::read_to_string(root.join("instances").join(name).join("instance.env")).unwrap()
}

#[tokio::test]
async fn main_loop_blueprint_server_start_edit_restart_reset_delete() {
    let s = start_installed(27400).await;
    let alice = s.ids[USER.0];
    let maps = mk_overlay(
        &s,
        Some(alice),
        "maps",
        &[("left4dead2/addons/maps.txt", "maps")],
    )
    .await;
    let plugins = mk_overlay(
        &s,
        None,
        "plugins",
        &[("left4dead2/addons/plugins.txt", "p")],
    )
    .await;
    let mut c = s.login(USER).await;

    // Blueprint with two overlays; reorder so "plugins" is uppermost.
    let bp = create_blueprint(
        &mut c,
        "coop",
        "+map c1m1_hotel -tickrate 30",
        "hostname \"Alpha One\"\nsv_cheats 0\n",
    )
    .await;
    for ov in [maps, plugins] {
        let r = c
            .post(
                &format!("/blueprints/{bp}/stack"),
                &[("op", "add"), ("overlay_id", &ov.to_string())],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    }
    let r = c
        .post(
            &format!("/blueprints/{bp}/stack"),
            &[("op", "up"), ("overlay_id", &plugins.to_string())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = c.get(&format!("/blueprints/{bp}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let (p_at, m_at) = (
        page.body.find(">plugins<").unwrap(),
        page.body.find(">maps<").unwrap(),
    );
    assert!(
        p_at < m_at,
        "plugins is listed above maps after moving it up"
    );

    // Server: lowest port of the range, secrets never on a page.
    let id = create_server(&mut c, "alpha", bp).await;
    let port = server_port(&s, id).await;
    assert_eq!(port, 27400);
    let (rcon, secret): (String, String) =
        sqlx::query_as("SELECT rcon_password, log_secret FROM servers WHERE id = ?")
            .bind(id)
            .fetch_one(&s.pool)
            .await
            .unwrap();
    assert_eq!(rcon.len(), 24);
    assert!(
        secret.parse::<i32>().is_ok_and(|n| n > 0),
        "sv_logsecret is numeric: {secret}"
    );
    let page = c.get(&format!("/servers/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&format!(
        "hx-get=\"/servers/{id}/live\" hx-trigger=\"load\""
    )));
    assert!(!page.body.contains(&rcon) && !page.body.contains(&secret));

    // Start → A2S answers with the blueprint's hostname.
    let (job, state) = act(&s, &mut c, id, "start").await;
    assert_eq!(state, "succeeded", "{:?}", s.job_lines(job).await);
    wait_hostname(port, "Alpha One").await;
    let lines = s.job_lines(job).await.join("\n");
    assert!(
        !lines.contains(&rcon),
        "the rcon password never reaches a job log"
    );
    let env = read_env(s.root.path(), "alpha");
    let lower = env
        .lines()
        .find(|l| l.starts_with("L4D2_LOWERDIRS"))
        .unwrap()
        .to_string();
    let (pi, mi, ii) = (
        lower.find(&format!("overlays/{plugins}")).unwrap(),
        lower.find(&format!("overlays/{maps}")).unwrap(),
        lower.find("installation").unwrap(),
    );
    assert!(
        pi < mi && mi < ii,
        "blueprint order, uppermost first: {lower}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(s.root.path().join("tmp"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("spec-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "spec files are removed: {leftovers:?}"
    );
    // The managed rcon_password is live (RCON auth with the row's password).
    let status =
        tokio::task::spawn_blocking(move || test_support::sim::rcon(port, &rcon, "status"))
            .await
            .unwrap();
    assert!(status.contains("Alpha One"), "{status}");
    let dash = c.get("/servers").await;
    assert!(dash.body.contains(">running</span>"), "{}", dash.body);
    assert!(
        dash.body.contains("active (running)"),
        "systemd's words on hover: {}",
        dash.body
    );
    assert!(!dash.body.contains("Reconcile"));

    // Edit the blueprint's server.cfg → restart → live.
    let r = c
        .post(
            &format!("/blueprints/{bp}"),
            &[
                ("name", "coop"),
                ("args", "+map c1m1_hotel -tickrate 30"),
                ("config", "hostname \"Alpha Two\"\r\n"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    wait_hostname(port, "Alpha One").await; // unchanged until the next action
    let (job, state) = act(&s, &mut c, id, "restart").await;
    assert_eq!(state, "succeeded", "{:?}", s.job_lines(job).await);
    wait_hostname(port, "Alpha Two").await;

    // Reset wipes the upper layer and brings it back (desired: running).
    let marker = s
        .root
        .path()
        .join("runtime/alpha/upper/left4dead2/marker.txt");
    std::fs::create_dir_all(marker.parent().unwrap()).unwrap();
    std::fs::write(&marker, "written by the game").unwrap();
    let (job, state) = act(&s, &mut c, id, "reset").await;
    assert_eq!(state, "succeeded", "{:?}", s.job_lines(job).await);
    assert!(!marker.exists(), "reset wiped the upper layer");
    wait_hostname(port, "Alpha Two").await;

    // Bob (no role on it) gets 404 everywhere, and changes nothing. The
    // admin sees the server (administrators act on every server) but not
    // the blueprint: blueprints stay their owner's.
    let mut bob = s.login(USER2).await;
    let bob_bp = create_blueprint(&mut bob, "bobs", "+map c1m1_hotel", "").await;
    let mut admin = s.login(ADMIN).await;
    assert_eq!(
        admin.get(&format!("/servers/{id}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        admin.get(&format!("/blueprints/{bp}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(admin.get("/servers").await.body.contains("alpha"));
    let jobs_before = latest_job(&s).await;
    for other in [&mut bob] {
        for path in [
            format!("/servers/{id}"),
            format!("/servers/{id}/state"),
            format!("/servers/{id}/console"),
            format!("/blueprints/{bp}"),
        ] {
            assert_eq!(
                other.get(&path).await.status,
                StatusCode::NOT_FOUND,
                "GET {path}"
            );
        }
        for action in ["start", "stop", "restart", "reset", "delete", "reconcile"] {
            let r = other.post(&format!("/servers/{id}/{action}"), &[]).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "POST {action}");
        }
        let bid = bob_bp.to_string();
        let r = other
            .post(
                &format!("/servers/{id}/blueprint"),
                &[("blueprint_id", &bid)],
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = other
            .post(
                &format!("/blueprints/{bp}"),
                &[("name", "x"), ("args", ""), ("config", "")],
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = other
            .post(
                &format!("/blueprints/{bp}/stack"),
                &[("op", "remove"), ("overlay_id", &maps.to_string())],
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = other.post(&format!("/blueprints/{bp}/delete"), &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let dash = other.get("/servers").await;
        assert!(
            !dash.body.contains("alpha"),
            "others' dashboards do not list alpha"
        );
    }
    assert_eq!(latest_job(&s).await, jobs_before, "no job was queued");
    let (name, config, desired, bp_now): (String, String, String, i64) = sqlx::query_as(
        "SELECT b.name, b.config, s.desired_state, s.blueprint_id FROM servers s JOIN blueprints b ON b.id = s.blueprint_id WHERE s.id = ?",
    )
    .bind(id)
    .fetch_one(&s.pool)
    .await
    .unwrap();
    assert_eq!(
        (name.as_str(), config.as_str(), desired.as_str(), bp_now),
        ("coop", "hostname \"Alpha Two\"\n", "running", bp)
    );
    assert_eq!(bp::stack_len(&s, bp).await, 2);
    wait_hostname(port, "Alpha Two").await;

    // A user who owns servers cannot be deleted (clear message).
    let r = admin
        .post(&format!("/admin/users/{alice}/delete"), &[])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body.contains("alpha") && r.body.contains("must be deleted first"),
        "{}",
        r.body
    );

    // Delete: the job stops it, removes the instance, then the row.
    let (job, state) = act(&s, &mut c, id, "delete").await;
    assert_eq!(state, "succeeded", "{:?}", s.job_lines(job).await);
    assert!(!s.root.path().join("instances/alpha").exists());
    assert!(!s.root.path().join("runtime/alpha").exists());
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM servers")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    assert!(tokio::task::spawn_blocking(move || a2s_silent(port))
        .await
        .unwrap());
    assert_eq!(
        c.get(&format!("/servers/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    // Job logs are read by server owners: they never say where the data
    // root lives (relative paths mean the data root).
    let root = s.root.path().canonicalize().unwrap().display().to_string();
    let leaks: Vec<String> =
        sqlx::query_scalar("SELECT line FROM job_lines WHERE instr(line, ?) > 0")
            .bind(&root)
            .fetch_all(&s.pool)
            .await
            .unwrap();
    assert!(
        leaks.is_empty(),
        "absolute data-root paths in job logs: {leaks:?}"
    );
    s.stop().await;
}

mod bp {
    use super::*;
    pub async fn stack_len(s: &TestServer, bp: i64) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM blueprint_overlays WHERE blueprint_id = ?")
            .bind(bp)
            .fetch_one(&s.pool)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn live_link_rules_delete_refused_switch_applies_on_next_action() {
    let s = start_installed(27410).await;
    let mut c = s.login(USER).await;
    let one = create_blueprint(
        &mut c,
        "one",
        "+map c1m1_hotel",
        "hostname \"Blueprint One\"",
    )
    .await;
    let two = create_blueprint(
        &mut c,
        "two",
        "+map c1m1_hotel",
        "hostname \"Blueprint Two\"",
    )
    .await;
    let id = create_server(&mut c, "linked", one).await;
    let port = server_port(&s, id).await;

    // Delete refused while a server uses it; the message names the server.
    let r = c.post(&format!("/blueprints/{one}/delete"), &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body.contains("linked") && r.body.contains("used by"),
        "{}",
        r.body
    );
    assert!(bp_exists(&s, one).await);

    // Switch to another of my blueprints: applies on the next start.
    let mut bob = s.login(USER2).await;
    let bobs = create_blueprint(&mut bob, "bobs", "+map c1m1_hotel", "").await;
    let r = c
        .post(
            &format!("/servers/{id}/blueprint"),
            &[("blueprint_id", &bobs.to_string())],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "someone else's blueprint is refused"
    );
    let r = c
        .post(
            &format!("/servers/{id}/blueprint"),
            &[("blueprint_id", "nope")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = c
        .post(
            &format!("/servers/{id}/blueprint"),
            &[("blueprint_id", &two.to_string())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let (job, state) = act(&s, &mut c, id, "start").await;
    assert_eq!(state, "succeeded", "{:?}", s.job_lines(job).await);
    wait_hostname(port, "Blueprint Two").await;

    // Now "one" is unused and can go; "two" cannot.
    let r = c.post(&format!("/blueprints/{one}/delete"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(!bp_exists(&s, one).await);
    let r = c.post(&format!("/blueprints/{two}/delete"), &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Switch back while running, edit nothing else: only a restart applies it.
    let three = create_blueprint(
        &mut c,
        "three",
        "+map c1m1_hotel",
        "hostname \"Blueprint Three\"",
    )
    .await;
    let r = c
        .post(
            &format!("/servers/{id}/blueprint"),
            &[("blueprint_id", &three.to_string())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    wait_hostname(port, "Blueprint Two").await;
    let (_, state) = act(&s, &mut c, id, "restart").await;
    assert_eq!(state, "succeeded");
    wait_hostname(port, "Blueprint Three").await;

    // Stop → drift when it runs anyway; the console streams its log.
    let (_, state) = act(&s, &mut c, id, "stop").await;
    assert_eq!(state, "succeeded");
    assert!(tokio::task::spawn_blocking(move || a2s_silent(port))
        .await
        .unwrap());
    let (_, state) = act(&s, &mut c, id, "delete").await;
    assert_eq!(state, "succeeded");
    s.stop().await;
}

async fn bp_exists(s: &TestServer, id: i64) -> bool {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM blueprints WHERE id = ?")
        .bind(id)
        .fetch_one(&s.pool)
        .await
        .unwrap()
        == 1
}

/// Counts `l4d2ctl logs <name> …` processes of the app serving `root` (the
/// app runs l4d2ctl in its data root): other test runs on this machine have
/// their own.
fn log_followers(root: &Path, name: &str) -> usize {
    let needle = format!("logs\0{name}\0");
    let root = root.canonicalize().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd == root))
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| {
            let text = String::from_utf8_lossy(c);
            text.contains("l4d2ctl\0") && text.contains(&needle)
        })
        .count()
}

/// Reads an SSE response until its text contains `needle`.
async fn sse_until(res: &mut reqwest::Response, seen: &mut String, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen.contains(needle) {
        match tokio::time::timeout_at(deadline, res.chunk()).await {
            Ok(Ok(Some(b))) => seen.push_str(&String::from_utf8_lossy(&b)),
            other => panic!("SSE ended or timed out before {needle:?} ({other:?}); saw {seen}"),
        }
    }
}

async fn open_console(c: &Client, id: i64) -> reqwest::Response {
    let res = reqwest::Client::new()
        .get(format!("{}/servers/{id}/console", c.base))
        .header(
            "cookie",
            format!("left4me_session={}", c.cookie.clone().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    res
}

#[tokio::test]
async fn drift_is_shown_and_reconciled_console_has_one_follower() {
    let s = start_installed(27420).await;
    let mut c = s.login(USER).await;
    let bp = create_blueprint(&mut c, "d", "+map c1m1_hotel", "hostname \"Drifter\"").await;
    let id = create_server(&mut c, "drifter", bp).await;
    let port = server_port(&s, id).await;

    // Desired running but never started on the host: drift.
    sqlx::query("UPDATE servers SET desired_state = 'running' WHERE id = ?")
        .bind(id)
        .execute(&s.pool)
        .await
        .unwrap();
    let dash = c.get("/servers").await;
    assert!(
        dash.body.contains("should be running, but is not started"),
        "{}",
        dash.body
    );
    let (job, state) = act(&s, &mut c, id, "reconcile").await;
    assert_eq!(state, "succeeded", "{:?}", s.job_lines(job).await);
    let kind: String = sqlx::query_scalar("SELECT kind FROM jobs WHERE id = ?")
        .bind(job)
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(kind, "server-start");
    wait_hostname(port, "Drifter").await;
    assert!(!c.get("/servers").await.body.contains("should be"));

    // Stopped behind the panel's back (crash, admin): drift, reconcile starts it.
    let out = s.root.l4d2ctl(["stop", "drifter"]);
    assert!(out.status.success());
    let page = c.get(&format!("/servers/{id}")).await;
    assert!(
        page.body.contains("should be running, but is stopped"),
        "{}",
        page.body
    );
    let (_, state) = act(&s, &mut c, id, "reconcile").await;
    assert_eq!(state, "succeeded");
    wait_hostname(port, "Drifter").await;

    // Desired stopped but running: drift the other way; reconcile stops it.
    sqlx::query("UPDATE servers SET desired_state = 'stopped' WHERE id = ?")
        .bind(id)
        .execute(&s.pool)
        .await
        .unwrap();
    let state_html = c.get(&format!("/servers/{id}/state")).await;
    assert!(
        state_html
            .body
            .contains("should be stopped, but is running"),
        "{}",
        state_html.body
    );
    let (job, _) = act(&s, &mut c, id, "reconcile").await;
    let kind: String = sqlx::query_scalar("SELECT kind FROM jobs WHERE id = ?")
        .bind(job)
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(kind, "server-stop");
    assert!(tokio::task::spawn_blocking(move || a2s_silent(port))
        .await
        .unwrap());
    // No drift: reconcile queues nothing.
    let before = latest_job(&s).await;
    let r = c.post(&format!("/servers/{id}/reconcile"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(latest_job(&s).await, before);

    // Console: two viewers share ONE `l4d2ctl logs --follow` child.
    let (_, state) = act(&s, &mut c, id, "start").await;
    assert_eq!(state, "succeeded");
    wait_hostname(port, "Drifter").await;
    let mut v1 = open_console(&c, id).await;
    let mut seen1 = String::new();
    sse_until(&mut v1, &mut seen1, "server.cfg").await;
    let mut v2 = open_console(&c, id).await;
    let mut seen2 = String::new();
    sse_until(&mut v2, &mut seen2, "server.cfg").await;
    assert_eq!(
        log_followers(s.root.path(), "drifter"),
        1,
        "one follower for two viewers"
    );
    drop(v1);
    drop(v2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while log_followers(s.root.path(), "drifter") != 0 {
        assert!(
            Instant::now() < deadline,
            "the follower outlived its last viewer"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, state) = act(&s, &mut c, id, "delete").await;
    assert_eq!(state, "succeeded");
    s.stop().await;
}

#[tokio::test]
async fn overlay_not_ready_fails_start_and_actions_queue_in_order() {
    let s = start_installed(27430).await;
    let alice = s.ids[USER.0];
    let mut c = s.login(USER).await;
    let ghost = mk_overlay(&s, Some(alice), "ghost", &[]).await;
    std::fs::remove_dir(s.root.path().join("overlays").join(ghost.to_string())).unwrap();
    let bp = create_blueprint(&mut c, "g", "+map c1m1_hotel", "hostname \"Q\"").await;
    let r = c
        .post(
            &format!("/blueprints/{bp}/stack"),
            &[("op", "add"), ("overlay_id", &ghost.to_string())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let id = create_server(&mut c, "queued", bp).await;
    // Refused when asked, as a warning on the page the operator is on.
    let before = latest_job(&s).await;
    let r = c.post(&format!("/servers/{id}/start"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(latest_job(&s).await, before, "a refused start queued a job");
    let page = c.get(r.location()).await.body;
    assert!(
        page.contains("class=\"flash refused\"")
            && page.contains("Server queued was not started")
            && page.contains("ghost")
            && page.contains("build it first"),
        "{page}"
    );
    let desired: String = sqlx::query_scalar("SELECT desired_state FROM servers WHERE id = ?")
        .bind(id)
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(desired, "stopped", "a refused start changes nothing");
    assert!(
        !s.root.path().join("instances/queued").exists(),
        "nothing initialized"
    );

    // Fix the stack; three actions requested at once run one at a time, in order.
    let r = c
        .post(
            &format!("/blueprints/{bp}/stack"),
            &[("op", "remove"), ("overlay_id", &ghost.to_string())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let first = latest_job(&s).await + 1;
    for action in ["start", "restart", "stop"] {
        let r = c.post(&format!("/servers/{id}/{action}"), &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
    }
    let last = latest_job(&s).await;
    assert_eq!(last - first, 2);
    for j in first..=last {
        assert_eq!(
            s.wait_job(j).await,
            "succeeded",
            "{:?}",
            s.job_lines(j).await
        );
    }
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT kind, lock_key, started_at, finished_at FROM jobs WHERE id >= ? ORDER BY id",
    )
    .bind(first)
    .fetch_all(&s.pool)
    .await
    .unwrap();
    let kinds: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(kinds, ["server-start", "server-restart", "server-stop"]);
    for w in rows.windows(2) {
        assert_eq!(w[0].1, "server:queued");
        assert!(
            w[1].2 >= w[0].3,
            "job started before the previous one finished: {rows:?}"
        );
    }
    let desired: String = sqlx::query_scalar("SELECT desired_state FROM servers WHERE id = ?")
        .bind(id)
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(desired, "stopped");
    let (_, state) = act(&s, &mut c, id, "delete").await;
    assert_eq!(state, "succeeded");
    s.stop().await;
}
