//! source-proto's clients against the real srcds-sim process over real
//! sockets: RCON, `status`, A2S and the HL log listener.

use source_proto::a2s;
use source_proto::hllog::LogEvent;
use source_proto::listener::{LogListener, ServerLogEvent};
use source_proto::rcon::{RconClient, RconError, RconSession};
use source_proto::status::parse_status;
use source_proto::steamid;
use std::net::SocketAddr;
use std::time::Duration;
use test_support::free_port;
use test_support::sim::{sims_built, Root, Sim};
use tokio::sync::broadcast;

const T: Duration = Duration::from_secs(5);

const PASSWORD: &str = "pr0to-s3cret";

/// The simulator without player churn: `srcds_run ... -sim_churn 0 <extra>`.
fn start_sim(install: &Root, extra: &[&str]) -> Sim {
    let args: Vec<&str> = ["-sim_churn", "0"]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    Sim::start(install, &args)
}

fn plain_cfg() -> String {
    format!("hostname \"Proto Test Server\"\nrcon_password {PASSWORD}\nsv_maxplayers 8\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn rcon_auth_ok_and_wrong_password() {
    if !sims_built() {
        return;
    }
    let install = Root::installed(&plain_cfg());
    let sim = start_sim(&install, &["+map", "c1m1_hotel", "-sim_players", "0"]);

    let mut client = RconClient::connect(sim.addr(), PASSWORD, T).await.unwrap();
    let out = client.exec("echo hello rcon").await.unwrap();
    assert_eq!(out, "hello rcon\n");
    // The same connection keeps working (end-marker trailer skipped).
    let out = client.exec("hostname").await.unwrap();
    assert!(
        out.contains("\"hostname\" = \"Proto Test Server\""),
        "{out}"
    );

    let wrong = RconClient::connect(sim.addr(), "not-the-password", T).await;
    assert!(matches!(wrong, Err(RconError::AuthFailed)), "{wrong:?}");

    // Nothing listens on a fresh port: a connect error, not a hang.
    let closed: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let refused = RconClient::connect(closed, PASSWORD, T).await;
    assert!(
        matches!(refused, Err(RconError::Connect { .. })),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_parsed_and_matches_a2s_player() {
    if !sims_built() {
        return;
    }
    let install = Root::installed(&plain_cfg());
    let sim = start_sim(&install, &["+map", "c2m1_highway", "-sim_players", "3"]);
    let mut client = RconClient::connect(sim.addr(), PASSWORD, T).await.unwrap();
    let joined = client.exec("sim_join Name With Spaces ünï").await.unwrap();
    assert!(joined.starts_with("sim_join: userid "), "{joined}");

    let text = client.exec("status").await.unwrap();
    let status = parse_status(&text).unwrap();
    assert_eq!(status.hostname, "Proto Test Server");
    assert_eq!(status.map, "c2m1_highway");
    assert_eq!(status.humans, Some(4));
    assert_eq!(status.bots, Some(0));
    assert_eq!(status.max_players, Some(8));
    assert_eq!(status.hibernating, Some(false));
    assert_eq!(status.address, Some(sim.addr()));
    assert_eq!(status.players.len(), 4);
    assert!(status
        .players
        .iter()
        .any(|p| p.name == "Name With Spaces ünï"));
    for p in &status.players {
        let id64 = p.steam_id64.expect("human players have SteamIDs");
        assert_eq!(steamid::parse_steam_id(&p.unique_id), Ok(id64));
        assert!(p.unique_id.starts_with("STEAM_1:"), "{}", p.unique_id);
        assert!(!p.is_bot);
        assert!(p.ping.is_some() && p.connected_secs.is_some());
        assert_eq!(p.state, "active");
    }

    let players = a2s::query_players(sim.addr(), T).await.unwrap();
    let mut a2s_names: Vec<&str> = players.iter().map(|p| p.name.as_str()).collect();
    let mut status_names: Vec<&str> = status.players.iter().map(|p| p.name.as_str()).collect();
    a2s_names.sort();
    status_names.sort();
    assert_eq!(a2s_names, status_names);
    assert!(players
        .iter()
        .all(|p| p.duration >= 0.0 && p.duration < 3600.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn multi_packet_responses_and_cap() {
    if !sims_built() {
        return;
    }
    let install = Root::installed(&plain_cfg());
    let sim = start_sim(&install, &["+map", "c1m1_hotel", "-sim_players", "0"]);
    let mut client = RconClient::connect(sim.addr(), PASSWORD, T).await.unwrap();
    let out = client.exec("sim_long 3000").await.unwrap();
    assert!(
        out.len() > 4 * 4096,
        "spans many packets: {} bytes",
        out.len()
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3000);
    for (i, line) in lines.iter().enumerate() {
        assert!(
            line.starts_with(&format!("sim_long line {:06} of 003000:", i + 1)),
            "line {i} out of order or mangled: {line}"
        );
    }
    // Next command on the same connection gets its own output only.
    assert_eq!(client.exec("echo after").await.unwrap(), "after\n");

    client.set_max_response(10_000);
    let capped = client.exec("sim_long 3000").await;
    assert!(
        matches!(capped, Err(RconError::ResponseTooLarge { limit: 10_000 })),
        "{capped:?}"
    );
    // The stream is now mid-response: the client refuses to reuse it.
    assert!(matches!(
        client.exec("echo x").await,
        Err(RconError::Broken)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn session_reconnects_after_server_restart() {
    if !sims_built() {
        return;
    }
    let install = Root::installed(&plain_cfg());
    let mut sim = start_sim(&install, &["+map", "c1m1_hotel", "-sim_players", "1"]);
    let mut session = RconSession::new(sim.addr(), PASSWORD, T);
    assert!(
        !format!("{session:?}").contains(PASSWORD),
        "password in Debug"
    );
    assert_eq!(session.exec("echo one").await.unwrap(), "one\n");
    sim.restart();
    // The old TCP connection is dead; the session reconnects once.
    assert_eq!(session.exec("echo two").await.unwrap(), "two\n");
    let status = parse_status(&session.exec("status").await.unwrap()).unwrap();
    assert_eq!(status.players.len(), 1);

    // Server gone for good: one reconnect attempt, then a clear error.
    sim.stop();
    let err = session.exec("echo three").await.unwrap_err();
    assert!(err.is_connection_failure(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a2s_info_reports_hostname_and_map() {
    if !sims_built() {
        return;
    }
    let install = Root::installed(&plain_cfg());
    let sim = start_sim(&install, &["+map", "c1m2_streets", "-sim_players", "2"]);
    let info = a2s::query_info(sim.addr(), T).await.unwrap();
    assert_eq!(info.name, "Proto Test Server");
    assert_eq!(info.map, "c1m2_streets");
    assert_eq!(info.folder, "left4dead2");
    assert_eq!(info.app_id, 550);
    assert_eq!(info.players, 2);
    assert_eq!(info.max_players, 8);
    assert_eq!(info.server_type, 'd');
    assert_eq!(info.environment, 'l');
    assert_eq!(info.port, Some(sim.port));
    assert!(info.keywords.unwrap_or_default().starts_with("coop"));

    // Nothing answers on a bound-but-silent socket: a timeout error.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let err = a2s::query_info(silent.local_addr().unwrap(), Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, a2s::A2sError::Timeout { .. }), "{err:?}");
}

/// Waits for the next event of `key` matching `pred`, skipping others.
async fn wait_event(
    rx: &mut broadcast::Receiver<ServerLogEvent>,
    key: i64,
    what: &str,
    pred: impl Fn(&LogEvent) -> bool,
) -> ServerLogEvent {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Ok(ev)) => {
                assert_eq!(ev.server_key, key, "attributed to the wrong server: {ev:?}");
                if pred(&ev.event) {
                    return ev;
                }
                seen.push(ev.line);
            }
            Ok(Err(e)) => panic!("channel error {e} waiting for {what}"),
            Err(_) => panic!("no {what} event; saw {seen:#?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn log_listener_attributes_sim_events_by_secret() {
    if !sims_built() {
        return;
    }
    let install = Root::installed(&format!("{}sv_logsecret 4242\nlog on\n", plain_cfg()));
    let sim = start_sim(
        &install,
        &[
            "+map",
            "c1m1_hotel",
            "-sim_players",
            "0",
            "-sim_log_loopback",
        ],
    );
    let listener = LogListener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    listener.register("4242".into(), 7).unwrap();
    let task = listener.spawn();
    let mut rx = listener.subscribe();

    let mut rcon = RconClient::connect(sim.addr(), PASSWORD, T).await.unwrap();
    let added = rcon
        .exec(&format!(
            "logaddress_add {}",
            listener.local_addr().unwrap()
        ))
        .await
        .unwrap();
    assert!(added.starts_with("logaddress_add:"), "{added}");

    rcon.exec("say hello \"survivors\" <3").await.unwrap();
    let ev = wait_event(&mut rx, 7, "say", |e| matches!(e, LogEvent::Say { .. })).await;
    let LogEvent::Say {
        player,
        team_only,
        text,
    } = ev.event
    else {
        unreachable!()
    };
    assert_eq!(text, "hello \"survivors\" <3");
    assert!(!team_only);
    assert_eq!((player.name.as_str(), player.userid), ("Console", 0));

    rcon.exec("sim_join Zoey <The> \"Quoted\"").await.unwrap();
    let ev = wait_event(&mut rx, 7, "connect", |e| {
        matches!(e, LogEvent::Connected { .. })
    })
    .await;
    let LogEvent::Connected { player, address } = ev.event else {
        unreachable!()
    };
    // The sim strips quotes and angle brackets from names like srcds does.
    assert_eq!(player.name, "Zoey The Quoted");
    assert!(
        steamid::parse_steam_id(&player.steam_id).is_ok(),
        "{}",
        player.steam_id
    );
    assert!(address.ends_with(":27005"), "{address}");
    let joined_id = player.userid;
    let ev = wait_event(&mut rx, 7, "entered", |e| {
        matches!(e, LogEvent::Entered { .. })
    })
    .await;
    assert!(matches!(ev.event, LogEvent::Entered { ref player } if player.userid == joined_id));
    let ev = wait_event(&mut rx, 7, "team", |e| {
        matches!(e, LogEvent::TeamChange { .. })
    })
    .await;
    assert!(matches!(ev.event, LogEvent::TeamChange { ref team, .. } if team == "Survivor"));

    rcon.exec("sim_leave Zoey The Quoted").await.unwrap();
    let ev = wait_event(&mut rx, 7, "disconnect", |e| {
        matches!(e, LogEvent::Disconnected { .. })
    })
    .await;
    let LogEvent::Disconnected { player, reason } = ev.event else {
        unreachable!()
    };
    assert_eq!(
        (player.userid, reason.as_str()),
        (joined_id, "Disconnect by user.")
    );

    rcon.exec("changelevel c2m1_highway").await.unwrap();
    let ev = wait_event(&mut rx, 7, "map loading", |e| {
        matches!(e, LogEvent::MapLoading { .. })
    })
    .await;
    assert_eq!(
        ev.event,
        LogEvent::MapLoading {
            map: "c2m1_highway".into()
        }
    );
    let ev = wait_event(&mut rx, 7, "map started", |e| {
        matches!(e, LogEvent::MapStarted { .. })
    })
    .await;
    assert_eq!(
        ev.event,
        LogEvent::MapStarted {
            map: "c2m1_highway".into()
        }
    );
    assert!(ev.line.starts_with("L ") && ev.line.contains("Started map \"c2m1_highway\""));

    let stats = listener.stats();
    assert!(stats.accepted >= 7, "{stats:?}");
    assert_eq!(stats.dropped(), 0, "{stats:?}");
    task.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn log_lines_without_or_with_unknown_secret_are_dropped_and_counted() {
    if !sims_built() {
        return;
    }
    // Server A: no sv_logsecret ('R' packets). Server B: a secret nobody registered.
    let install_a = Root::installed(&format!("{}log on\n", plain_cfg()));
    let install_b = Root::installed(&format!("{}sv_logsecret 999\nlog on\n", plain_cfg()));
    let sim_a = start_sim(
        &install_a,
        &[
            "+map",
            "c1m1_hotel",
            "-sim_players",
            "0",
            "-sim_log_loopback",
        ],
    );
    let sim_b = start_sim(
        &install_b,
        &[
            "+map",
            "c1m1_hotel",
            "-sim_players",
            "0",
            "-sim_log_loopback",
        ],
    );
    let listener = LogListener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    listener.register("4242".into(), 1).unwrap();
    let task = listener.spawn();
    let mut rx = listener.subscribe();
    let target = listener.local_addr().unwrap();

    let mut a = RconClient::connect(sim_a.addr(), PASSWORD, T)
        .await
        .unwrap();
    let mut b = RconClient::connect(sim_b.addr(), PASSWORD, T)
        .await
        .unwrap();
    a.exec(&format!("logaddress_add {target}")).await.unwrap();
    b.exec(&format!("logaddress_add {target}")).await.unwrap();
    a.exec("say from a").await.unwrap();
    b.exec("say from b").await.unwrap();

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = listener.stats();
        if s.dropped_no_secret >= 1 && s.dropped_unknown_secret >= 1 {
            assert_eq!(s.accepted, 0, "{s:?}");
            assert_eq!(s.dropped_malformed, 0, "{s:?}");
            assert_eq!(s.received, s.dropped(), "{s:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "drops never counted: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(rx.try_recv().is_err(), "nothing may be broadcast");

    // Registering B's secret makes its next line count.
    listener.register("999".into(), 2).unwrap();
    b.exec("say now known").await.unwrap();
    // "say from b" may still be in flight (the drop counted above can be an earlier line of
    // B's), so wait for this line's own event rather than the first say.
    let ev = wait_event(
        &mut rx,
        2,
        "say",
        |e| matches!(e, LogEvent::Say { text, .. } if text == "now known"),
    )
    .await;
    assert!(ev.line.contains("now known"), "{ev:?}");
    // And unregistering drops it again.
    assert_eq!(listener.unregister("999"), Some(2));
    let before = listener.stats().dropped_unknown_secret;
    b.exec("say forgotten").await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while listener.stats().dropped_unknown_secret == before {
        assert!(
            std::time::Instant::now() < deadline,
            "unregistered secret not dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
}
