//! Game events by two paths: the UDP log listener and the server's own
//! console (followed while someone has the server page open). With the UDP
//! path dead the console alone carries them; with both alive each event
//! counts once; the server page's health line says which path works.

use std::time::Duration;

use crate::servers::{act, create_blueprint, create_server};
use crate::util::*;
use reqwest::StatusCode;
use test_support::free_port;

/// The `id="event-health"` paragraph of the live panel: (state, text);
/// None before the server's first poll.
async fn health(c: &mut Client, server: i64) -> Option<(String, String)> {
    let r = c.get(&format!("/servers/{server}/live")).await;
    assert_eq!(r.status, StatusCode::OK);
    let marker = "id=\"event-health\" data-state=\"";
    let rest = &r.body[r.body.find(marker)? + marker.len()..];
    let (state, rest) = rest.split_once("\">").unwrap();
    let (text, _) = rest.split_once("</p>").unwrap();
    Some((state.to_string(), text.to_string()))
}

/// Polls the health line until it is in `state`; returns its text.
async fn wait_health(c: &mut Client, server: i64, state: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = health(c, server).await;
        if let Some((now_state, text)) = &now {
            if now_state == state {
                return text.clone();
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "health line stayed {now:?}, wanted {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends `command` from the server page's console line.
async fn rcon(c: &mut Client, server: i64, command: &str) {
    let r = c
        .post(
            &format!("/servers/{server}/rcon/exec"),
            &[("command", command)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{command}: {}", r.body);
}

/// Reads the console stream until a line contains `needle`.
async fn console_shows(console: &mut SseStream, needle: &str) {
    console
        .wait_for(Duration::from_secs(15), needle, |f| {
            f.data
                .replace("&#34;", "\"")
                .replace("&quot;", "\"")
                .contains(needle)
        })
        .await;
}

#[tokio::test]
async fn the_console_carries_the_events_when_the_udp_log_goes_nowhere() {
    if !test_support::require(
        test_support::workspace_bin("srcds-sim").is_file(),
        "srcds-sim is not built (cargo build --workspace)",
    ) {
        return;
    }
    // The listener is up on 127.0.0.2, but the servers are told to log to
    // 127.0.0.3, where nothing listens: not one packet reaches the panel.
    let bind = format!("127.0.0.2:{}", free_port());
    let nowhere = format!("127.0.0.3:{}", free_port());
    let s = TestServer::start_installed(&[
        ("LOG_LISTENER_BIND", bind.as_str()),
        ("LOG_LISTENER_ADDR", nowhere.as_str()),
        ("LEFT4ME_PORT_RANGE_START", "28810"),
        ("LEFT4ME_PORT_RANGE_END", "28819"),
    ])
    .await;
    let mut c = s.login(USER).await;
    let bp = create_blueprint(
        &mut c,
        "quiet-udp",
        "+map c1m1_hotel -sim_players 1 -sim_churn 0",
        "",
    )
    .await;
    let server = create_server(&mut c, "quiet-udp-1", bp).await;
    let (_, state) = act(&s, &mut c, server, "start").await;
    assert_eq!(state, "succeeded");

    // Running, nobody's console followed, no UDP: no events at all.
    let mut live = SseStream::open(&c, &format!("/servers/{server}/live/stream")).await;
    live.wait_for(Duration::from_secs(30), "the player count", |f| {
        f.event == "panel" && f.data.contains("1/4")
    })
    .await;
    let text = wait_health(&mut c, server, "none").await;
    assert_eq!(text, "no events for under a minute");

    // The server page's console opens: the same lines now come that way.
    let mut console = SseStream::open(&c, &format!("/servers/{server}/console")).await;
    rcon(&mut c, server, "say only the console saw this").await;
    let frame = live
        .wait_for(Duration::from_secs(15), "the chat event", |f| {
            f.event == "event" && f.data.contains("only the console saw this")
        })
        .await;
    assert!(frame.data.contains("ev-chat"), "{}", frame.data);
    rcon(&mut c, server, "sim_join Zoey").await;
    live.wait_for(Duration::from_secs(15), "Zoey's connect event", |f| {
        f.event == "event" && f.data.contains("Zoey") && f.data.contains("ev-connect")
    })
    .await;
    console_shows(&mut console, "Zoey").await;
    let text = wait_health(&mut c, server, "console").await;
    assert_eq!(text, "events via console (the UDP log is not arriving)");
    // Each event once.
    let panel = c.get(&format!("/servers/{server}/live")).await.body;
    assert_eq!(
        panel.matches("only the console saw this").count(),
        1,
        "{panel}"
    );

    // Stopped: no health line (it is about a running server).
    drop(console);
    let (_, state) = act(&s, &mut c, server, "stop").await;
    assert_eq!(state, "succeeded");
    live.wait_for(Duration::from_secs(10), "the stopped panel", |f| {
        f.event == "panel" && !f.data.contains("event-health")
    })
    .await;
    s.stop().await;
}

#[tokio::test]
async fn an_event_arriving_both_ways_counts_once_and_a_repeat_still_counts() {
    if !test_support::require(
        test_support::workspace_bin("srcds-sim").is_file(),
        "srcds-sim is not built (cargo build --workspace)",
    ) {
        return;
    }
    let bind = format!("127.0.0.2:{}", free_port());
    let s = TestServer::start_installed(&[
        ("LOG_LISTENER_BIND", bind.as_str()),
        ("LEFT4ME_PORT_RANGE_START", "28820"),
        ("LEFT4ME_PORT_RANGE_END", "28829"),
    ])
    .await;
    let mut c = s.login(USER).await;
    // The busy game: bots and kill lines on both paths all the time.
    let bp = create_blueprint(
        &mut c,
        "both",
        "+map c1m1_hotel -sim_players 1 -sim_churn 0 -sim_busy 2",
        "",
    )
    .await;
    let server = create_server(&mut c, "both-1", bp).await;
    let (_, state) = act(&s, &mut c, server, "start").await;
    assert_eq!(state, "succeeded");
    let mut live = SseStream::open(&c, &format!("/servers/{server}/live/stream")).await;
    let mut console = SseStream::open(&c, &format!("/servers/{server}/console")).await;
    let text = wait_health(&mut c, server, "udp").await;
    assert_eq!(text, "events via UDP log");

    // Said twice (the same line, most likely in the same second), then an
    // end mark. Once the console stream showed the end mark, the console
    // path has delivered everything before it too.
    rcon(&mut c, server, "say twice-said").await;
    rcon(&mut c, server, "say twice-said").await;
    rcon(&mut c, server, "say end-mark").await;
    let mut chat = Vec::new();
    loop {
        let f = live
            .next(Duration::from_secs(15))
            .await
            .expect_frame("the end mark on the live panel");
        if f.event == "event" && f.data.contains("twice-said") {
            chat.push(f.data.clone());
        }
        if f.event == "event" && f.data.contains("end-mark") {
            break;
        }
    }
    console_shows(&mut console, "end-mark").await;
    // Whatever the console path added after the end mark came over UDP.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let panel = c.get(&format!("/servers/{server}/live")).await.body;
    assert_eq!(
        panel.matches("twice-said").count(),
        2,
        "said twice, heard both ways, shown twice: {panel}"
    );
    assert_eq!(panel.matches("end-mark").count(), 1, "{panel}");
    assert_eq!(chat.len(), 2, "{chat:#?}");
    assert_eq!(
        wait_health(&mut c, server, "udp").await,
        "events via UDP log"
    );

    // The bots' churn shows as events but never as players in the panel.
    let panel = c.get(&format!("/servers/{server}/live")).await.body;
    assert!(panel.contains("1/4"), "one human of four: {panel}");
    let (_, state) = act(&s, &mut c, server, "stop").await;
    assert_eq!(state, "succeeded");
    s.stop().await;
}

trait ExpectFrame {
    fn expect_frame(self, what: &str) -> SseFrame;
}

impl ExpectFrame for Option<SseFrame> {
    fn expect_frame(self, what: &str) -> SseFrame {
        self.unwrap_or_else(|| panic!("the stream ended before {what}"))
    }
}
