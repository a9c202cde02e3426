//! Live state end to end: a real srcds-sim feeding the real UDP log
//! listener, RCON `status` and A2S polled by the app, Steam profiles from a
//! local server replaying a recorded GetPlayerSummaries answer, the panel
//! over SSE, and the admin RCON console.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::util::*;
use reqwest::StatusCode;
use test_support::free_port;

const RCON_PASSWORD: &str = "live-rcon-pw-0123";
const LOG_SECRET: &str = "424242";
const STEAM_KEY: &str = "TESTKEY0123456789ABCDEF";

/// A local stand-in for api.steampowered.com answering GetPlayerSummaries
/// with the recorded real answer (crates/steam-api/tests/fixtures), one
/// player record per requested id (steamid and personaname changed).
async fn fake_steam(requests: Arc<AtomicUsize>) -> String {
    use axum::extract::Query;
    use axum::routing::get;
    let recorded: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../steam-api/tests/fixtures/player_summaries.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let template = recorded["response"]["players"][0].clone();
    let app = axum::Router::new().route(
        "/ISteamUser/GetPlayerSummaries/v2/",
        get(
            move |Query(q): Query<std::collections::HashMap<String, String>>| {
                let requests = requests.clone();
                let template = template.clone();
                async move {
                    requests.fetch_add(1, Ordering::SeqCst);
                    assert_eq!(q.get("key").map(String::as_str), Some(STEAM_KEY));
                    let players: Vec<serde_json::Value> = q["steamids"]
                        .split(',')
                        .map(|id| {
                            let mut p = template.clone();
                            p["steamid"] = id.into();
                            p["personaname"] = format!("Persona-{id}").into();
                            p
                        })
                        .collect();
                    axum::Json(serde_json::json!({"response": {"players": players}}))
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn insert_server(s: &TestServer, owner: i64, name: &str, port: u16, secret: &str) -> i64 {
    let blueprint: i64 =
        sqlx::query_scalar("INSERT INTO blueprints (owner_id, name) VALUES (?, ?) RETURNING id")
            .bind(owner)
            .bind(name)
            .fetch_one(&s.pool)
            .await
            .unwrap();
    sqlx::query_scalar(
        "INSERT INTO servers (name, owner_id, blueprint_id, port, rcon_password, log_secret, desired_state)
         VALUES (?, ?, ?, ?, ?, ?, 'running') RETURNING id",
    )
    .bind(name)
    .bind(owner)
    .bind(blueprint)
    .bind(port)
    .bind(RCON_PASSWORD)
    .bind(secret)
    .fetch_one(&s.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn live_panel_follows_the_game_and_admins_use_the_console() {
    if !test_support::require(
        test_support::workspace_bin("srcds-sim").is_file(),
        "srcds-sim is not built (cargo build --workspace)",
    ) {
        return;
    }
    let log_port = free_port();
    let steam_requests = Arc::new(AtomicUsize::new(0));
    let steam = fake_steam(steam_requests.clone()).await;
    let bind = format!("127.0.0.2:{log_port}");
    // The listener on the loopback alias, and no LOG_LISTENER_ADDR: servers
    // are told the listener's own address. The simulated game, like the
    // engine, sends real datagrams to 127.0.0.2 (never to 127.0.0.1).
    let s = TestServer::start_installed(&[
        ("LOG_LISTENER_BIND", bind.as_str()),
        ("STEAM_WEB_API_KEY", STEAM_KEY),
        ("STEAM_API_BASE_URL", steam.as_str()),
        ("LEFT4ME_PORT_RANGE_START", "26300"),
        ("LEFT4ME_PORT_RANGE_END", "26309"),
    ])
    .await;
    let mut alice = s.login(USER).await;
    let mut bob = s.login(USER2).await;
    let mut admin = s.login(ADMIN).await;

    // The game runs the way the panel runs every server (blueprint, server,
    // start job through l4d2ctl): the panel sends RCON only to a port that
    // belongs to the instance l4d2ctl reports.
    let r = admin
        .post(
            "/blueprints",
            &[
                ("name", "live"),
                ("args", "+map c1m1_hotel -sim_players 2 -sim_churn 0"),
                ("config", "hostname \"Live Test\""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let bp = r.location().trim_start_matches("/blueprints/").to_string();
    let r = admin
        .post(
            "/servers",
            &[("name", "live"), ("blueprint_id", bp.as_str())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let id: i64 = r
        .location()
        .trim_start_matches("/servers/")
        .parse()
        .unwrap();
    let r = admin.post(&format!("/servers/{id}/start"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let job: i64 = sqlx::query_scalar("SELECT MAX(id) FROM jobs")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(
        s.wait_job(job).await,
        "succeeded",
        "{:?}",
        s.job_lines(job).await
    );
    let rcon_password: String =
        sqlx::query_scalar("SELECT rcon_password FROM servers WHERE id = ?")
            .bind(id)
            .fetch_one(&s.pool)
            .await
            .unwrap();
    // A server of a non-admin owner: its panel is hers, its console is not.
    let alices = insert_server(&s, s.ids["alice"], "alices", free_port(), "777").await;

    // Access: owners (and administrators) see the panel; everyone else
    // gets 404. Whoever may use RCON there gets the console link.
    let panel = admin.get(&format!("/servers/{id}/live")).await;
    assert_eq!(panel.status, StatusCode::OK);
    assert!(panel
        .body
        .contains(&format!("sse-connect=\"/servers/{id}/live/stream\"")));
    assert!(panel.body.contains("RCON console"));
    let panel = alice.get(&format!("/servers/{alices}/live")).await;
    assert_eq!(panel.status, StatusCode::OK);
    assert!(
        panel.body.contains("RCON console"),
        "an owner may use the console"
    );
    assert_eq!(
        admin.get(&format!("/servers/{alices}/live")).await.status,
        StatusCode::OK
    );
    for path in [
        format!("/servers/{id}/live"),
        format!("/servers/{id}/live/stream"),
        "/servers/abc/live".to_string(),
        "/servers/99999/live".to_string(),
    ] {
        assert_eq!(bob.get(&path).await.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            alice.get(&path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }

    // The panel: map, both simulated players with Steam personas and avatars.
    let mut stream = SseStream::open(&admin, &format!("/servers/{id}/live/stream")).await;
    let frame = stream
        .wait_for(Duration::from_secs(30), "two enriched players", |f| {
            f.event == "panel"
                && f.data.contains("c1m1_hotel")
                && f.data.matches("Persona-7656").count() == 2
        })
        .await;
    assert!(frame.data.contains("2/"), "{}", frame.data);
    assert!(
        frame.data.contains("steamcdn-a.akamaihd.net"),
        "avatar: {}",
        frame.data
    );
    assert!(frame.data.contains("STEAM_1:"), "{}", frame.data);
    assert!(steam_requests.load(Ordering::SeqCst) >= 1);
    assert!(!frame.data.contains(STEAM_KEY) && !frame.data.contains(&rcon_password));
    // The dashboard shows the same player count.
    let dashboard = admin.get("/servers").await;
    assert_eq!(dashboard.status, StatusCode::OK);
    assert!(
        dashboard
            .body
            .contains("<td class=\"players\" data-label=\"Players\">2/"),
        "{}",
        dashboard.body
    );

    // The console: the owner's (administrators may use every server's);
    // for anyone without a role the server does not exist.
    let console = format!("/servers/{id}/rcon");
    let alices_console = format!("/servers/{alices}/rcon");
    assert_eq!(alice.get(&alices_console).await.status, StatusCode::OK);
    assert_eq!(admin.get(&alices_console).await.status, StatusCode::OK);
    assert_eq!(
        bob.post(&console, &[("command", "quit")]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        bob.post(&alices_console, &[("command", "quit")])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let page = admin.get(&console).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains(&rcon_password));
    // Bad commands change nothing.
    for bad in ["", "say a\nquit", &"x".repeat(600)] {
        let res = admin.post(&console, &[("command", bad)]).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{bad:?}");
    }
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM console_history")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);

    // A command's output lands in the history; its chat line in the panel.
    let res = admin
        .post(&console, &[("command", "say hello from the admin")])
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let frame = stream
        .wait_for(Duration::from_secs(15), "the chat event", |f| {
            f.event == "event" && f.data.contains("hello from the admin")
        })
        .await;
    assert!(frame.data.contains("ev-chat"), "{}", frame.data);
    let res = admin.post(&console, &[("command", "status")]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let page = admin.get(&console).await;
    assert!(page.body.contains("say hello from the admin"));
    assert!(
        page.body.contains("c1m1_hotel"),
        "status output in the history"
    );

    // A player joins: a connect event, then the panel lists three players.
    admin.post(&console, &[("command", "sim_join Zoey")]).await;
    stream
        .wait_for(Duration::from_secs(15), "Zoey's connect event", |f| {
            f.event == "event" && f.data.contains("Zoey") && f.data.contains("ev-connect")
        })
        .await;
    stream
        .wait_for(Duration::from_secs(15), "three players", |f| {
            f.event == "panel" && f.data.matches("Persona-7656").count() == 3
        })
        .await;

    // A map change reaches the panel from the log listener.
    admin
        .post(&console, &[("command", "changelevel c2m1_highway")])
        .await;
    stream
        .wait_for(Duration::from_secs(15), "the new map", |f| {
            f.event == "panel" && f.data.contains("c2m1_highway")
        })
        .await;

    // A log packet with a wrong secret is dropped: nothing new appears.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut forged = vec![0xFF, 0xFF, 0xFF, 0xFF, b'S'];
    forged.extend_from_slice(
        b"999999L 01/01/2026 - 00:00:00: \"Mallory<9><STEAM_1:0:1><>\" say \"forged\"\n\0",
    );
    sock.send_to(&forged, ("127.0.0.2", log_port)).unwrap();
    let mut plain = vec![0xFF, 0xFF, 0xFF, 0xFF, b'R'];
    plain.extend_from_slice(
        b"L 01/01/2026 - 00:00:00: \"Mallory<9><STEAM_1:0:1><>\" say \"plain\"\n\0",
    );
    sock.send_to(&plain, ("127.0.0.2", log_port)).unwrap();
    admin
        .post(&console, &[("command", "say after the forgeries")])
        .await;
    let mut saw_forged = false;
    loop {
        let f = stream
            .next(Duration::from_secs(15))
            .await
            .expect("the genuine chat line must arrive");
        saw_forged |= f.data.contains("forged") || f.data.contains("plain");
        if f.event == "event" && f.data.contains("after the forgeries") {
            break;
        }
    }
    assert!(!saw_forged, "unauthenticated log packets reached the panel");

    // Stopped: the panel drops the game's players at once, with no poll.
    let r = admin.post(&format!("/servers/{id}/stop"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let job: i64 = sqlx::query_scalar("SELECT MAX(id) FROM jobs")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(s.wait_job(job).await, "succeeded");
    stream
        .wait_for(Duration::from_secs(10), "the panel without players", |f| {
            f.event == "panel" && !f.data.contains("Persona-7656")
        })
        .await;
    let dashboard = admin.get("/servers").await.body;
    assert!(
        dashboard.contains("<td class=\"players\" data-label=\"Players\">–</td>"),
        "no player count for a stopped server: {dashboard}"
    );
    let r = admin.post(&format!("/servers/{id}/delete"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let job: i64 = sqlx::query_scalar("SELECT MAX(id) FROM jobs")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    s.wait_job(job).await;
    s.stop().await;
}

/// A port held by something that is not the server never gets its RCON
/// password: the console refuses and says why.
#[tokio::test]
async fn rcon_is_never_sent_to_a_port_another_process_holds() {
    let s = TestServer::start().await;
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port();
    squatter.set_nonblocking(true).unwrap();
    let id = insert_server(&s, s.ids["admin"], "squatted", port, LOG_SECRET).await;
    let mut admin = s.login(ADMIN).await;
    let console = format!("/servers/{id}/rcon");
    admin.get(&console).await;
    let r = admin.post(&console, &[("command", "status")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = admin.get(&console).await;
    assert!(
        page.body.contains("RCON password was not sent") || page.body.contains("not running"),
        "{}",
        page.body
    );
    // Nobody connected to the squatter, so it never saw the password.
    assert!(matches!(squatter.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock));
    s.stop().await;
}

/// One HL log datagram carrying `secret`, as srcds frames it.
fn log_packet(secret: &str, line: &str) -> Vec<u8> {
    let mut v = vec![0xFF, 0xFF, 0xFF, 0xFF, b'S'];
    v.extend_from_slice(secret.as_bytes());
    v.extend_from_slice(line.as_bytes());
    v.extend_from_slice(b"\n\0");
    v
}

#[tokio::test]
async fn overlong_and_hostile_log_lines_never_reach_the_panel_and_the_app_keeps_serving() {
    let log_port = free_port();
    let bind = format!("127.0.0.2:{log_port}");
    let s = TestServer::start_with(&[
        ("LOG_LISTENER_BIND", bind.as_str()),
        ("LOG_LISTENER_ADDR", bind.as_str()),
    ])
    .await;
    // Nothing listens on the game port: the poller only reports an error.
    let id = insert_server(&s, s.ids["admin"], "hostile", free_port(), LOG_SECRET).await;
    let mut admin = s.login(ADMIN).await;
    let mut stream = SseStream::open(&admin, &format!("/servers/{id}/live/stream")).await;

    let stamp = "L 01/01/2026 - 00:00:00: ";
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let send = |bytes: &[u8]| {
        sock.send_to(bytes, ("127.0.0.2", log_port)).unwrap();
    };
    // Authenticated, but longer than srcds ever sends: a 65 KB datagram and
    // a line over the engine's limit in a datagram that fits.
    let say = format!("{stamp}\"Mallory<9><STEAM_1:0:1><>\" say \"too-long-marker ");
    send(&log_packet(
        LOG_SECRET,
        &format!("{say}{}\"", ">\" ".repeat(21_000)),
    ));
    let over_line = format!("{say}{}\"", "x".repeat(source_proto::hllog::MAX_LINE_BYTES));
    assert!(over_line.len() + 20 < source_proto::hllog::MAX_PACKET_BYTES);
    send(&log_packet(LOG_SECRET, &over_line));
    // The longest hostile lines srcds could carry: parsed (cheaply), but no
    // player event, so nothing for the panel.
    let mut hostile = format!("{stamp}\"");
    while hostile.len() + 3 <= source_proto::hllog::MAX_LINE_BYTES {
        hostile.push_str(">\" ");
    }
    for _ in 0..100 {
        send(&log_packet(LOG_SECRET, &hostile));
    }
    send(&log_packet(
        LOG_SECRET,
        &format!("{stamp}\"Alice<3><STEAM_1:0:3><>\" say \"after the hostile lines\""),
    ));

    let mut saw_marker = false;
    loop {
        let f = stream
            .next(Duration::from_secs(15))
            .await
            .expect("the genuine chat line must arrive");
        saw_marker |= f.data.contains("too-long-marker");
        if f.event == "event" && f.data.contains("after the hostile lines") {
            break;
        }
    }
    assert!(!saw_marker, "an over-long log line reached the panel");
    assert_eq!(admin.get("/servers").await.status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn csp_allows_images_from_exactly_the_avatar_hosts_steam_api_keeps() {
    let s = TestServer::start().await;
    let res = s.client().get("/login").await;
    let csp = res
        .headers
        .get("content-security-policy")
        .expect("a CSP header")
        .to_str()
        .unwrap()
        .to_string();
    let img_src: std::collections::BTreeSet<&str> = csp
        .split(';')
        .map(str::trim)
        .find_map(|d| d.strip_prefix("img-src "))
        .expect("an img-src directive")
        .split_whitespace()
        .collect();
    let avatar_sources = steam_api::urls::avatar_csp_sources();
    let mut expected: std::collections::BTreeSet<&str> = avatar_sources.split(' ').collect();
    expected.extend(["'self'", "data:"]);
    assert_eq!(img_src, expected, "{csp}");
    s.stop().await;
}
