//! Headless Chromium (chromedriver) drives the servers main loop of the
//! panel against a real server with an installed (simulated) game.

use std::time::{Duration, Instant};

use crate::util::*;
use fantoccini::Locator;

fn a2s_name(port: u16, want: &str) {
    let mut client = a2s::A2SClient::new().unwrap();
    client.set_timeout(Duration::from_millis(200)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(info) = client.info(("127.0.0.1", port)) {
            if info.name == want {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("A2S on {port} never said {want:?}");
}

/// The panel's main loop clicked through in headless Chromium: blueprint →
/// server → start → A2S → edit server.cfg → restart → live → reset → delete.
#[tokio::test]
async fn main_loop_in_the_browser() {
    let Some(b) = browser().await else { return };
    let s = TestServer::start_installed(&[
        ("LEFT4ME_PORT_RANGE_START", "27480"),
        ("LEFT4ME_PORT_RANGE_END", "27489"),
    ])
    .await;
    let c = &b.client;
    submit_login(c, &s.base, USER.0, USER.1).await;
    wait_text(c, "main h1", "Servers").await;
    c.goto(&format!("{}/", s.base)).await.unwrap();
    wait_text(c, "main h1", "Servers").await;

    // Blueprint.
    c.goto(&format!("{}/blueprints", s.base)).await.unwrap();
    fill(c, "#create-blueprint-form input[name=name]", "browser coop").await;
    fill(
        c,
        "#create-blueprint-form input[name=args]",
        "+map c1m1_hotel",
    )
    .await;
    fill(
        c,
        "#create-blueprint-form textarea[name=config]",
        "hostname \"Browser One\"",
    )
    .await;
    click(c, "#create-blueprint-form button[type=submit]").await;
    wait_text(c, "main h1", "Blueprint browser coop").await;

    // Server from it.
    c.goto(&format!("{}/servers", s.base)).await.unwrap();
    fill(c, "#create-server-form input[name=name]", "web1").await;
    click(c, "#create-server-form button[type=submit]").await;
    wait_text(c, "main h1", "Server web1").await;
    wait_text(c, ".flash", "port 27480").await;

    // Start, and the page follows the state.
    click(c, "#action-start").await;
    wait_text(c, ".flash", "Start of server web1 queued").await;
    tokio::task::spawn_blocking(|| a2s_name(27480, "Browser One"))
        .await
        .unwrap();
    wait_text(c, "#server-state", "running").await;
    // The console streams the server's output live (SSE).
    wait_text(c, "#console-log", "server.cfg").await;

    // Edit server.cfg, restart, live.
    let href = c
        .find(Locator::Css("main p.meta a"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    c.goto(&format!("{}{href}", s.base)).await.unwrap();
    fill(
        c,
        "#blueprint-form textarea[name=config]",
        "hostname \"Browser Two\"",
    )
    .await;
    click(c, "#blueprint-form button[type=submit]").await;
    wait_text(c, ".flash", "saved").await;
    c.goto(&format!("{}/servers", s.base)).await.unwrap();
    click(c, "#server-web1 a").await;
    wait_text(c, "main h1", "Server web1").await;
    click(c, "#action-restart").await;
    wait_text(c, ".flash", "Restart of server web1 queued").await;
    tokio::task::spawn_blocking(|| a2s_name(27480, "Browser Two"))
        .await
        .unwrap();

    // Reset wipes the upper layer.
    let marker = s.root.path().join("runtime/web1/upper/marker.txt");
    std::fs::write(&marker, "x").unwrap();
    // Cancel first: nothing happens.
    click(c, "#action-reset").await;
    answer_confirm(c, "Reset server web1?", false).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(marker.exists(), "a cancelled reset wiped the upper layer");
    click(c, "#action-reset").await;
    answer_confirm(c, "Reset server web1?", true).await;
    wait_text(c, ".flash", "Reset of server web1 queued").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while marker.exists() {
        assert!(
            Instant::now() < deadline,
            "reset did not wipe the upper layer"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::task::spawn_blocking(|| a2s_name(27480, "Browser Two"))
        .await
        .unwrap();

    // Delete from the server page; the dashboard no longer lists it.
    click(c, "#action-delete").await;
    answer_confirm(c, "Delete server web1", true).await;
    wait_text(c, "main h1", "Servers").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.root.path().join("instances/web1").exists() {
        assert!(Instant::now() < deadline, "delete did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.refresh().await.unwrap();
    wait_text(c, "main", "No servers yet").await;
    s.stop().await;
}

/// Sharing clicked through: the owner shares a server as operator, the
/// operator sees it with only the buttons their role allows, the owner
/// takes the role back (after confirming).
#[tokio::test]
async fn sharing_in_the_browser() {
    let Some(b) = browser().await else { return };
    let s = TestServer::start().await;
    let mut alice = s.login(USER).await;
    let bp = crate::servers::create_blueprint(&mut alice, "team", "+map c1m1_hotel", "").await;
    let server = crate::servers::create_server(&mut alice, "team-web", bp).await;
    let c = &b.client;
    submit_login(c, &s.base, USER.0, USER.1).await;
    wait_text(c, "main h1", "Servers").await;
    c.goto(&format!("{}/servers/{server}", s.base))
        .await
        .unwrap();
    wait_text(c, "#sharing h2", "Sharing").await;
    fill(c, "#share-user", USER2.0).await;
    c.find(Locator::Css("#share-role"))
        .await
        .unwrap()
        .select_by_value("operator")
        .await
        .unwrap();
    click(c, "#share-add").await;
    wait_text(c, ".flash", "shared with bob as operator").await;
    wait_text(c, "#share-list", "bob").await;

    // Bob's view: on his dashboard, marked, with the operator's buttons.
    click(c, "form[action='/logout'] button").await;
    submit_login(c, &s.base, USER2.0, USER2.1).await;
    wait_text(c, "#server-team-web", "shared with you as operator").await;
    c.goto(&format!("{}/servers/{server}", s.base))
        .await
        .unwrap();
    wait_text(c, "#role-note", "shared with you as operator").await;
    // The buttons are in the state block, which can arrive after the page.
    wait_text(c, "#action-reset", "reset").await;
    // Read in one script: the state block is re-rendered over SSE, so an
    // element handle may go stale between two calls.
    let reset = c
        .execute(
            "const b = document.querySelector('#action-reset'); return [b.disabled, b.title]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(reset[0], serde_json::json!(true), "reset is the manager's");
    assert!(
        reset[1]
            .as_str()
            .unwrap_or_default()
            .contains("does not allow"),
        "{reset}"
    );
    assert!(
        c.find(Locator::Css("#sharing")).await.is_err(),
        "no sharing for an operator"
    );
    assert!(
        c.find(Locator::Css("#rcon-link")).await.is_ok(),
        "an operator may use RCON"
    );

    // Alice takes it back (once her login has landed: going to the page
    // before that races the session cookie).
    click(c, "form[action='/logout'] button").await;
    submit_login(c, &s.base, USER.0, USER.1).await;
    wait_text(c, "main h1", "Servers").await;
    c.goto(&format!("{}/servers/{server}", s.base))
        .await
        .unwrap();
    click(c, "#share-list button.danger").await;
    answer_confirm(c, "Take back bob", true).await;
    wait_text(c, ".flash", "bob no longer has a role").await;
    let mut bob = s.login(USER2).await;
    assert_eq!(
        bob.get(&format!("/servers/{server}")).await.status,
        reqwest::StatusCode::NOT_FOUND
    );
    drop(b);
    s.stop().await;
}

/// A rollback clicked in headless Chromium: the server page names the
/// build, the button asks first (Cancel changes nothing), and once accepted
/// the server restarts on the build before and the page says it is kept
/// there.
#[tokio::test]
async fn a_rollback_in_the_browser_asks_first_and_the_page_says_where_the_server_is() {
    let Some(b) = browser().await else { return };
    let s = TestServer::start_installed(&[
        ("LEFT4ME_PORT_RANGE_START", "27620"),
        ("LEFT4ME_PORT_RANGE_END", "27629"),
    ])
    .await;
    s.root.publish_build(15000002);
    let out = s.root.l4d2ctl(["install"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut alice = s.login(USER).await;
    let bp = crate::servers::create_blueprint(&mut alice, "rollback", "+map c1m1_hotel", "").await;
    let id = crate::servers::create_server(&mut alice, "rb-1", bp).await;
    let (job, state) = crate::servers::act(&s, &mut alice, id, "start").await;
    assert_eq!(state, "succeeded", "{:?}", s.job_lines(job).await);

    let c = &b.client;
    submit_login(c, &s.base, USER.0, USER.1).await;
    wait_text(c, "main h1", "Servers").await;
    c.goto(&format!("{}/servers/{id}", s.base)).await.unwrap();
    wait_text(c, "#game-build", "game build 15000002 (the newest)").await;
    let before = crate::servers::latest_job(&s).await;
    click(c, "#game-build button").await;
    answer_confirm(c, "Roll rb-1 back to game build 15000001?", false).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        crate::servers::latest_job(&s).await,
        before,
        "Cancel queued nothing"
    );
    click(c, "#game-build button").await;
    answer_confirm(c, "Roll rb-1 back to game build 15000001?", true).await;
    wait_text(c, ".flash", "restarts onto game build 15000001").await;
    let job = crate::servers::latest_job(&s).await;
    assert!(job > before);
    assert_eq!(
        s.wait_job(job).await,
        "succeeded",
        "{:?}",
        s.job_lines(job).await
    );
    c.goto(&format!("{}/servers/{id}", s.base)).await.unwrap();
    wait_text(c, "#game-build", "kept on build 15000001 (rolled back)").await;
    wait_text(c, "#game-build button", "Back to the newest build").await;
    crate::servers::act(&s, &mut alice, id, "stop").await;
    s.stop().await;
}

/// The exact time a `<time>` element shows on hover: to the second, in UTC.
fn is_exact_time(title: &str) -> bool {
    let b = title.as_bytes();
    title.len() == "2026-12-01 12:00:00 UTC".len()
        && title.ends_with(" UTC")
        && [4, 7].iter().all(|&i| b[i] == b'-')
        && b[10] == b' '
        && [13, 16].iter().all(|&i| b[i] == b':')
        && title[..19]
            .bytes()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16].contains(&i) || c.is_ascii_digit())
}

/// What a person reads: times as "… ago" with the exact second on hover,
/// how long each job took, and the hint to restart after the blueprint
/// changed, gone once the restart (clicked on the page) applied it.
#[tokio::test]
async fn times_durations_and_the_restart_hint_in_the_browser() {
    let Some(b) = browser().await else { return };
    let s = TestServer::start_installed(&[
        ("LEFT4ME_PORT_RANGE_START", "27630"),
        ("LEFT4ME_PORT_RANGE_END", "27639"),
    ])
    .await;
    let mut alice = s.login(USER).await;
    let bp = crate::servers::create_blueprint(&mut alice, "hint", "+map c1m1_hotel", "").await;
    let id = crate::servers::create_server(&mut alice, "hint-1", bp).await;
    let (job, state) = crate::servers::act(&s, &mut alice, id, "start").await;
    assert_eq!(state, "succeeded", "{:?}", s.job_lines(job).await);

    let c = &b.client;
    submit_login(c, &s.base, USER.0, USER.1).await;
    wait_text(c, "main h1", "Servers").await;
    c.goto(&format!("{}/jobs/{job}", s.base)).await.unwrap();
    wait_text(c, "main", "took").await;
    let times = c
        .execute(
            "return [...document.querySelectorAll('main time')].map(t => [t.textContent.trim(), t.title])",
            vec![],
        )
        .await
        .unwrap();
    let times: Vec<(String, String)> = serde_json::from_value(times).unwrap();
    assert!(times.len() >= 3, "created, started, finished: {times:?}");
    for (text, title) in &times {
        assert!(
            text.ends_with(" ago") || text == "just now",
            "{text:?} is not a relative time"
        );
        assert!(is_exact_time(title), "{title:?} is not the exact time");
    }
    c.goto(&format!("{}/jobs", s.base)).await.unwrap();
    wait_text(c, "main h1", "Jobs").await;
    let took = c
        .execute(
            "return [...document.querySelectorAll('td[data-label=Took]')].map(t => t.textContent.trim())",
            vec![],
        )
        .await
        .unwrap();
    let took: Vec<String> = serde_json::from_value(took).unwrap();
    assert!(
        took.iter().any(|t| t
            .strip_suffix(" s")
            .is_some_and(|n| n.parse::<u64>().is_ok())),
        "no finished job says how long it took: {took:?}"
    );

    // The blueprint changes while the server runs: the page says to restart.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = alice
        .post(
            &format!("/blueprints/{bp}"),
            &[
                ("name", "hint"),
                ("args", "+map c1m1_hotel"),
                ("config", "hostname \"Two\""),
            ],
        )
        .await;
    assert_eq!(r.status, reqwest::StatusCode::SEE_OTHER, "{}", r.body);
    c.goto(&format!("{}/servers/{id}", s.base)).await.unwrap();
    wait_text(c, "#restart-to-apply", "restart it to apply").await;
    let before = crate::servers::latest_job(&s).await;
    click(c, "#action-restart").await;
    wait_text(c, ".flash", "Restart of server hint-1 queued").await;
    let job = crate::servers::latest_job(&s).await;
    assert!(job > before);
    assert_eq!(s.wait_job(job).await, "succeeded");
    // The state block is pushed: the hint goes without a reload.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let gone = c
            .execute(
                "return document.querySelector('#restart-to-apply') === null",
                vec![],
            )
            .await
            .unwrap();
        if gone == serde_json::Value::Bool(true) {
            break;
        }
        assert!(Instant::now() < deadline, "the restart hint stayed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    crate::servers::act(&s, &mut alice, id, "stop").await;
    s.stop().await;
}
