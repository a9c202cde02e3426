//! Benchmark: what the live panel's poller costs each game server, with
//! 40 running servers (srcds-sim, started through the web app), a few of
//! them watched by an open live panel, and L4D2's constant bot churn in
//! the log stream (`harness = false`).
//!
//! Every server runs the simulator's busy game (`-sim_busy 1`: one step a
//! second, about five times a real server's pace) with one human on it:
//! survivor bots, special infected spawning and dying with kill lines, chat,
//! all sent by the games themselves over the real UDP log path to the
//! panel's listener. On top, the bench makes one human join and leave an
//! unwatched server every 10 s (HL-log packets with that server's secret).
//! After the run it reads every server's own counters (`sim_query_counts`
//! over RCON: A2S_INFO answered, RCON `status` run) and the listener's
//! accepted-packet counter from `/metrics`, and prints queries per server
//! per minute for watched and unwatched servers. Prints figures; asserts
//! nothing about them.
//!
//! `cargo build --workspace --bins && cargo bench -p l4d2web --bench live_polling`;
//! `SERVERS=n`, `WATCHED=n`, `SECS=n` override 40, 4 and 60.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use test_support::DataRoot;
use tokio_util::sync::CancellationToken;

mod support;

const RANGE_START: u16 = 27700;
const METRICS_TOKEN: &str = "bench-metrics-token-0123456789abcdef";

/// The listener's `left4me_log_packets_accepted` counter.
async fn accepted_log_packets(http: &reqwest::Client, base: &str) -> u64 {
    let text = http
        .get(format!("{base}/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("left4me_log_packets_accepted_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no accepted-packet counter in {text}"))
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One HL-log line framed as srcds sends it with `sv_logsecret` set
/// (`FF FF FF FF 'S' <secret> "L <stamp>: <event>" '\n' 00`).
fn log_packet(secret: &str, event: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFF, 0xFF, 0xFF, b'S'];
    out.extend_from_slice(secret.as_bytes());
    out.extend_from_slice(format!("L 12/01/2026 - 12:00:00: {event}\n").as_bytes());
    out.push(0);
    out
}

/// `(a2s_info, rcon_status)` as the simulated server counted them.
fn query_counts(port: u16, password: &str) -> (u64, u64) {
    let text = test_support::sim::rcon(port, password, "sim_query_counts");
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        ["a2s_info", info, "rcon_status", status] => (
            info.parse().expect("a2s_info count"),
            status.parse().expect("rcon_status count"),
        ),
        _ => panic!("unexpected sim_query_counts answer: {text:?}"),
    }
}

fn summary(label: &str, mut per_minute: Vec<f64>) {
    if per_minute.is_empty() {
        return;
    }
    per_minute.sort_by(f64::total_cmp);
    let median = per_minute[per_minute.len() / 2];
    let max = per_minute[per_minute.len() - 1];
    println!(
        "{label}: median {median:.1}/min, max {max:.1}/min over {} servers",
        per_minute.len()
    );
}

#[tokio::main]
async fn main() {
    let n = env_usize("SERVERS", 40);
    let watched = env_usize("WATCHED", 4).min(n);
    let secs = env_usize("SECS", 60) as u64;
    let root = DataRoot::installed();
    let listener_port = test_support::free_port();
    // On the loopback alias, as the panel defaults to: the games send their
    // own lines there too.
    let log_addr = format!("127.0.0.2:{listener_port}");
    let support::Panel {
        config,
        pool,
        user,
        blueprint: bp,
    } = support::panel(
        &root,
        RANGE_START,
        n,
        "+map c1m1_hotel -sim_players 1 -sim_churn 0 -sim_busy 1",
        &[
            ("LOG_LISTENER_BIND", log_addr.clone()),
            ("LEFT4ME_METRICS_TOKEN", METRICS_TOKEN.to_string()),
        ],
    )
    .await;
    let mut servers = Vec::new();
    for i in 0..n {
        let s =
            l4d2web::servers::create_server(&pool, &config, user.id, &format!("p{i:03}"), bp.id)
                .await
                .unwrap();
        servers.push(s);
    }

    let (token, session) =
        l4d2web::auth::create_session(&pool, &config.secret_key, Some(user.clone()))
            .await
            .unwrap();
    let listener = tokio::net::TcpListener::bind(config.bind).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(l4d2web::serve(config, listener, shutdown.clone()));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = format!("left4me_session={token}");

    let t = Instant::now();
    for s in &servers {
        let res = http
            .post(format!("{base}/servers/{}/start", s.id))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf_token={}", session.csrf_token))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "start {}", s.name);
    }
    loop {
        let (done, failed): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*) FILTER (WHERE state IN ('succeeded','failed')),
                    COUNT(*) FILTER (WHERE state = 'failed') FROM jobs",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(failed, 0, "a start job failed");
        if done as usize == n {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(300), "starts too slow");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "setup: {n} servers started through the web app in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // Live panels open on the first `watched` servers, read continuously.
    let mut viewers = Vec::new();
    for s in servers.iter().take(watched) {
        let res = http
            .get(format!("{base}/servers/{}/live/stream", s.id))
            .header("cookie", &cookie)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let mut body = res.bytes_stream();
        viewers.push(tokio::spawn(async move {
            while let Some(Ok(_)) = body.next().await {}
        }));
    }
    // Let the first polls after the starts and the viewers' arrival pass.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut secrets: Vec<(u16, String, String)> = Vec::new();
    for s in &servers {
        let (port, password, secret): (i64, String, String) =
            sqlx::query_as("SELECT port, rcon_password, log_secret FROM servers WHERE id = ?")
                .bind(s.id)
                .fetch_one(&pool)
                .await
                .unwrap();
        secrets.push((port as u16, password, secret));
    }
    let before: Vec<(u64, u64)> = {
        let secrets = secrets.clone();
        tokio::task::spawn_blocking(move || {
            secrets
                .iter()
                .map(|(port, pw, _)| query_counts(*port, pw))
                .collect()
        })
        .await
        .unwrap()
    };

    // The games churn by themselves; a human now and then on an unwatched one.
    let accepted_before = accepted_log_packets(&http, &base).await;
    let churn = {
        let secrets = secrets.clone();
        tokio::task::spawn_blocking(move || {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let started = Instant::now();
            let mut sent = 0u64;
            let mut step = 0usize;
            while started.elapsed() < Duration::from_secs(secs) {
                if step.is_multiple_of(10) && secrets.len() > watched {
                    let (_, _, secret) =
                        &secrets[watched + (step / 10) % (secrets.len() - watched)];
                    for event in [
                        "\"Player<7><STEAM_1:0:12345><>\" connected, address \"192.0.2.7:27005\"",
                        "\"Player<7><STEAM_1:0:12345><>\" disconnected (reason \"Disconnect by user.\")",
                    ] {
                        socket.send_to(&log_packet(secret, event), &log_addr).unwrap();
                        sent += 1;
                    }
                }
                step += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            sent
        })
    };
    let sent = churn.await.unwrap();
    let accepted = accepted_log_packets(&http, &base).await - accepted_before;
    let after: Vec<(u64, u64)> = tokio::task::spawn_blocking(move || {
        secrets
            .iter()
            .map(|(port, pw, _)| query_counts(*port, pw))
            .collect()
    })
    .await
    .unwrap();
    let minutes = secs as f64 / 60.0;
    println!(
        "churn: {accepted} log lines accepted in {secs} s ({:.0}/s, {:.0} per server per minute) from the games' busy play and {sent} sent by the bench (a human every 10 s)",
        accepted as f64 / secs as f64,
        accepted as f64 / n as f64 / minutes,
    );
    let rate = |range: std::ops::Range<usize>, status: bool| -> Vec<f64> {
        range
            .map(|i| {
                let (b, a) = (before[i], after[i]);
                let d = if status { a.1 - b.1 } else { a.0 - b.0 };
                d as f64 / minutes
            })
            .collect()
    };
    summary(
        &format!("A2S_INFO per watched server ({watched})"),
        rate(0..watched, false),
    );
    summary(
        &format!("RCON status per watched server ({watched})"),
        rate(0..watched, true),
    );
    summary(
        &format!("A2S_INFO per unwatched server ({})", n - watched),
        rate(watched..n, false),
    );
    summary(
        &format!("RCON status per unwatched server ({})", n - watched),
        rate(watched..n, true),
    );

    for v in viewers {
        v.abort();
    }
    for s in &servers {
        let _ = root.l4d2ctl(["stop", &s.name]);
    }
    shutdown.cancel();
    let _ = task.await;
}
