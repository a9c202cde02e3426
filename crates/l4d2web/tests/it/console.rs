//! The console on the server page: the log stream without the panel's own
//! `status` polls, and the command line (RCON) with its history.

use std::time::{Duration, Instant};

use crate::servers::{act, create_blueprint, create_server, range};
use crate::util::*;
use fantoccini::{key::Key, Locator};
use reqwest::StatusCode;

#[tokio::test]
async fn the_console_leaves_out_the_panels_polls_and_takes_commands() {
    let r = range(27490);
    let s = TestServer::start_installed(&[(r[0].0, &r[0].1), (r[1].0, &r[1].1)]).await;
    let mut c = s.login(USER).await;
    let bp = create_blueprint(
        &mut c,
        "talk",
        "+map c1m1_hotel -sim_players 1 -sim_churn 0",
        "",
    )
    .await;
    let server = create_server(&mut c, "talk-1", bp).await;
    let (_, state) = act(&s, &mut c, server, "start").await;
    assert_eq!(state, "succeeded");

    // Watching the live panel makes the poller send RCON `status`, which
    // the game logs as `rcon from "127.0.0.1:…": command "status"`.
    let _watch = SseStream::open(&c, &format!("/servers/{server}/live/stream")).await;
    let log = s.root.path().join("runtime/talk-1/console.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains(r#"command "status""#)
    {
        assert!(Instant::now() < deadline, "the poller never sent status");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A command from the server page: its answer comes back as console lines.
    let r = c
        .post(
            &format!("/servers/{server}/rcon/exec"),
            &[("command", "say hello console")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body
            .contains(r#"<div class="l cmd">&gt; say hello console</div>"#),
        "{}",
        r.body
    );
    let r = c
        .post(
            &format!("/servers/{server}/rcon/exec"),
            &[("command", "a\u{1}b")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // The same RCON `status` typed by a person stays in the view.
    let r = c
        .post(
            &format!("/servers/{server}/rcon/exec"),
            &[("command", "status")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = c
        .post(
            &format!("/servers/{server}/rcon/exec"),
            &[("command", "say after status")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains(r#"command "say after status""#)
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let status_lines = text
        .lines()
        .filter(|l| l.ends_with(r#"command "status""#))
        .count();
    assert!(
        status_lines >= 2,
        "the poller's and the person's: {status_lines}"
    );

    let mut console = SseStream::open(&c, &format!("/servers/{server}/console")).await;
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains("say after status") && Instant::now() < deadline {
        if let Some(f) = console.next(Duration::from_secs(2)).await {
            seen.push_str(&f.data.replace("&#34;", "\"").replace("&quot;", "\""));
            seen.push('\n');
        }
    }
    assert!(seen.contains(r#"command "say hello console""#), "{seen}");
    let shown = seen.matches(r#"command "status""#).count();
    assert_eq!(
        shown, 1,
        "only the person's status, none of the poller's: {seen}"
    );
    // The history has both commands, like the RCON page's.
    let page = c.get(&format!("/servers/{server}/rcon")).await.body;
    assert!(page.contains("say hello console"));
    act(&s, &mut c, server, "stop").await;
    s.stop().await;
}

#[tokio::test]
async fn the_command_line_in_the_browser_with_its_history() {
    let Some(b) = browser().await else { return };
    let r = range(27500);
    let s = TestServer::start_installed(&[(r[0].0, &r[0].1), (r[1].0, &r[1].1)]).await;
    let mut http = s.login(USER).await;
    let bp = create_blueprint(&mut http, "cli", "+map c1m1_hotel", "").await;
    let server = create_server(&mut http, "cli-1", bp).await;
    let (_, state) = act(&s, &mut http, server, "start").await;
    assert_eq!(state, "succeeded");
    let c = &b.client;
    submit_login(c, &s.base, USER.0, USER.1).await;
    wait_text(c, "main h1", "Servers").await;
    c.goto(&format!("{}/servers/{server}", s.base))
        .await
        .unwrap();
    for command in ["say first", "say second"] {
        fill(c, "#console-command", command).await;
        c.find(Locator::Css("#console-command"))
            .await
            .unwrap()
            .send_keys(&Key::Enter.to_string())
            .await
            .unwrap();
        wait_text(c, "#console-log", &format!("> {command}")).await;
    }
    let input = c.find(Locator::Css("#console-command")).await.unwrap();
    assert_eq!(
        input.prop("value").await.unwrap().as_deref(),
        Some(""),
        "cleared after sending"
    );
    input.send_keys(&Key::Up.to_string()).await.unwrap();
    assert_eq!(
        input.prop("value").await.unwrap().as_deref(),
        Some("say second")
    );
    input.send_keys(&Key::Up.to_string()).await.unwrap();
    assert_eq!(
        input.prop("value").await.unwrap().as_deref(),
        Some("say first")
    );
    input.send_keys(&Key::Down.to_string()).await.unwrap();
    assert_eq!(
        input.prop("value").await.unwrap().as_deref(),
        Some("say second")
    );
    drop(b);
    act(&s, &mut http, server, "stop").await;
    s.stop().await;
}
