//! `/metrics` end to end: off unless configured, the bearer token on the
//! main listener, the separate listener that serves nothing else, job
//! counts and durations after real jobs, a running srcds-sim's players and
//! host state, open event streams, and an exposition Prometheus can parse.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::util::*;
use reqwest::StatusCode;
use test_support::free_port;

const TOKEN: &str = "metrics-test-token-0123456789abcdef-0123";

/// GETs `url` with an optional `Authorization` header.
async fn get(url: &str, authorization: Option<&str>) -> (StatusCode, String, String) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(a) = authorization {
        req = req.header(reqwest::header::AUTHORIZATION, a);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let ctype = res
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, ctype, res.text().await.unwrap())
}

/// The exposition through the main listener, with the token.
async fn scrape(s: &TestServer) -> String {
    let (status, ctype, body) = get(
        &format!("{}/metrics", s.base),
        Some(&format!("Bearer {TOKEN}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    check_exposition(&body);
    body
}

/// Scrapes until a line satisfies `pred`; panics with the last text after
/// `timeout`.
async fn scrape_until(
    s: &TestServer,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = scrape(s).await;
        if text.lines().any(&pred) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within {timeout:?} in\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn has(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

/// What Prometheus' OpenMetrics parser insists on, checked line by line:
/// `# HELP`/`# TYPE`/`# UNIT` comments, samples `name{label="value",...}
/// number` of a declared family, and `# EOF` last.
fn check_exposition(text: &str) {
    assert!(text.ends_with("# EOF\n"), "no # EOF at the end:\n{text}");
    let mut families: Vec<(String, String)> = Vec::new();
    let mut seen = HashSet::new();
    for line in text.lines() {
        if line == "# EOF" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect(line);
            assert!(
                ["gauge", "counter", "histogram", "info"].contains(&kind),
                "{line}"
            );
            families.push((name.to_string(), kind.to_string()));
            continue;
        }
        if line.starts_with("# HELP ") || line.starts_with("# UNIT ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line:?}");
        // name, optional {labels}, one space, a number.
        let name_end = line.find(['{', ' ']).expect(line);
        let name = &line[..name_end];
        assert!(
            name.starts_with("left4me_")
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "bad metric name in {line:?}"
        );
        let mut rest = &line[name_end..];
        if let Some(labels) = rest.strip_prefix('{') {
            let end = labels.find('}').expect(line);
            for pair in labels[..end].split(',') {
                let (key, value) = pair.split_once('=').expect(line);
                assert!(
                    !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                    "label {key:?} in {line:?}"
                );
                assert!(
                    value.len() >= 2 && value.starts_with('"') && value.ends_with('"'),
                    "label value {value:?} in {line:?}"
                );
            }
            rest = &labels[end + 1..];
        }
        let value = rest.strip_prefix(' ').expect(line);
        assert!(
            value.parse::<f64>().is_ok() || value == "+Inf",
            "value {value:?} in {line:?}"
        );
        let family = families
            .iter()
            .rev()
            .find(|(f, kind)| {
                let suffixes: &[&str] = match kind.as_str() {
                    "counter" => &["_total"],
                    "histogram" => &["_sum", "_count", "_bucket"],
                    "info" => &["_info"],
                    _ => &[""],
                };
                suffixes.iter().any(|s| name == format!("{f}{s}"))
            })
            .unwrap_or_else(|| panic!("{line:?} belongs to no declared family"));
        assert!(
            seen.insert(line[..line.rfind(' ').unwrap()].to_string()),
            "duplicate series {line:?} of {}",
            family.0
        );
    }
}

#[tokio::test]
async fn off_unless_configured() {
    let s = TestServer::start().await;
    let mut admin = s.login(ADMIN).await;
    for auth in [None, Some(format!("Bearer {TOKEN}"))] {
        let (status, _, body) = get(&format!("{}/metrics", s.base), auth.as_deref()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(!body.contains("left4me_"), "{body}");
    }
    // A session is no way in either.
    let r = admin.get("/metrics").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    s.stop().await;
}

#[tokio::test]
async fn the_main_listener_wants_the_token() {
    let s = TestServer::start_with(&[("LEFT4ME_METRICS_TOKEN", TOKEN)]).await;
    let url = format!("{}/metrics", s.base);
    let wrong = format!("Bearer {TOKEN}x");
    let basic = format!("Basic {TOKEN}");
    for auth in [
        None,
        Some("Bearer "),
        Some(wrong.as_str()),
        Some(basic.as_str()),
    ] {
        let (status, _, body) = get(&url, auth).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(!body.contains("left4me_"), "{body}");
    }
    // Logged in is not enough.
    let mut admin = s.login(ADMIN).await;
    assert_eq!(admin.get("/metrics").await.status, StatusCode::UNAUTHORIZED);
    let text = scrape(&s).await;
    assert!(
        has(
            &text,
            &format!(
                "left4me_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )
        ),
        "{text}"
    );
    assert!(has(&text, "left4me_host_up 1"), "{text}");
    assert!(has(&text, "left4me_job_queue_depth 0"), "{text}");
    // No log listener configured: no log packet counters.
    assert!(!text.contains("left4me_log_packets"), "{text}");
    // Secrets and accounts never show.
    for secret in [TOKEN, "test-secret-key", "admin-password", ADMIN.0, USER.0] {
        assert!(!text.contains(secret), "{secret} in\n{text}");
    }
    s.stop().await;
}

#[tokio::test]
async fn the_separate_listener_serves_metrics_and_nothing_else() {
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let s = TestServer::start_with(&[("LEFT4ME_METRICS_BIND", bind.as_str())]).await;
    let metrics = format!("http://{bind}");
    // serve binds it before it serves anything: the main listener answering
    // means the metrics one is up.
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{}/health", s.base)).await.is_err() {
        assert!(Instant::now() < deadline, "the panel did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, ctype, body) = get(&format!("{metrics}/metrics"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    check_exposition(&body);
    assert!(body.contains("left4me_build_info{"), "{body}");
    for path in [
        "/",
        "/health",
        "/login",
        "/servers",
        "/jobs",
        "/metrics/",
        "/assets/app.css",
    ] {
        let (status, _, body) = get(&format!("{metrics}{path}"), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(!body.contains("left4me_"), "{path}: {body}");
    }
    // Without a token the main listener has no /metrics.
    let (status, _, _) = get(&format!("{}/metrics", s.base), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    s.stop().await;
    // It stops with the panel.
    assert!(reqwest::get(format!("{metrics}/metrics")).await.is_err());
}

#[tokio::test]
async fn a_metrics_address_in_use_fails_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bind = taken.local_addr().unwrap().to_string();
    let mut s = TestServer::start_with(&[("LEFT4ME_METRICS_BIND", bind.as_str())]).await;
    let err = s.task.take().unwrap().await.unwrap().unwrap_err();
    assert!(
        format!("{err:#}").contains("LEFT4ME_METRICS_BIND"),
        "{err:#}"
    );
}

#[test]
fn bad_values_stop_serve_naming_the_variable() {
    let root = test_support::DataRoot::empty();
    for (var, value) in [
        ("LEFT4ME_METRICS_TOKEN", "short"),
        ("LEFT4ME_METRICS_BIND", "0.0.0.0:9464"),
        ("LEFT4ME_METRICS_BIND", "not-an-address"),
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_left4me"))
            .arg("serve")
            .env_clear()
            .env("LEFT4ME_ROOT", root.path())
            .env("LEFT4ME_BACKEND", "local")
            .env("SECRET_KEY", "metrics-config-secret-0123456789abcdef")
            .env("LEFT4ME_BIND", "127.0.0.1:0")
            .env(var, value)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // A value wrongly accepted would leave the panel serving.
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{var}={value} was accepted: serve kept running");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "{var}={value} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(var), "{var}={value}: {stderr}");
        if var == "LEFT4ME_METRICS_TOKEN" {
            assert!(!stderr.contains(value), "the token is shown: {stderr}");
        }
    }
}

#[tokio::test]
async fn jobs_are_counted_by_kind_and_state_with_their_durations() {
    let s = TestServer::start_with(&[("LEFT4ME_METRICS_TOKEN", TOKEN)]).await;
    let jobs = enqueuer(s.pool.clone());
    let id = queue_install(&jobs, None, None).await;
    let state = s.wait_job(id).await;
    let text = scrape(&s).await;
    assert!(
        has(
            &text,
            &format!("left4me_jobs{{kind=\"install\",state=\"{state}\"}} 1")
        ),
        "{text}"
    );
    assert!(
        has(
            &text,
            &format!("left4me_job_duration_seconds_count{{kind=\"install\",result=\"{state}\"}} 1")
        ),
        "{text}"
    );
    assert!(
        has(
            &text,
            &format!(
                "left4me_job_duration_seconds_bucket{{le=\"+Inf\",kind=\"install\",result=\"{state}\"}} 1"
            )
        ),
        "{text}"
    );
    let sum_line =
        format!("left4me_job_duration_seconds_sum{{kind=\"install\",result=\"{state}\"}} ");
    let sum: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(&sum_line))
        .unwrap_or_else(|| panic!("no duration sum in\n{text}"))
        .parse()
        .unwrap();
    // The install wrapper ticks three times 0.2 s apart.
    assert!((0.4..120.0).contains(&sum), "{sum}");
    s.stop().await;
}

#[tokio::test]
async fn a_running_server_shows_its_players_state_and_viewers() {
    if !test_support::require(
        test_support::workspace_bin("srcds-sim").is_file(),
        "srcds-sim is not built (cargo build --workspace)",
    ) {
        return;
    }
    let log_port = free_port();
    let log_bind = format!("127.0.0.2:{log_port}");
    let s = TestServer::start_installed(&[
        ("LEFT4ME_METRICS_TOKEN", TOKEN),
        ("LOG_LISTENER_BIND", log_bind.as_str()),
        ("LEFT4ME_PORT_RANGE_START", "26320"),
        ("LEFT4ME_PORT_RANGE_END", "26329"),
    ])
    .await;
    let mut admin = s.login(ADMIN).await;
    let r = admin
        .post(
            "/blueprints",
            &[
                ("name", "metrics"),
                ("args", "+map c1m1_hotel -sim_players 2 -sim_churn 0"),
                ("config", "hostname \"Metrics Test\""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let bp = r.location().trim_start_matches("/blueprints/").to_string();
    let r = admin
        .post(
            "/servers",
            &[("name", "metered"), ("blueprint_id", bp.as_str())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let id: i64 = r
        .location()
        .trim_start_matches("/servers/")
        .parse()
        .unwrap();
    // Known before it ever ran: desired stopped, nothing on the host yet.
    let text = scrape(&s).await;
    assert!(
        has(
            &text,
            "left4me_server_desired_state{server=\"metered\",state=\"stopped\"} 1"
        ),
        "{text}"
    );
    assert!(
        has(&text, "left4me_server_up{server=\"metered\"} 0"),
        "{text}"
    );
    assert!(
        !text.contains("left4me_server_players{server=\"metered\""),
        "{text}"
    );

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

    // The poller's first A2S answer reaches the board, then the metrics.
    let text = scrape_until(&s, Duration::from_secs(30), "two human players", |l| {
        l == "left4me_server_players{server=\"metered\",kind=\"human\"} 2"
    })
    .await;
    for line in [
        "left4me_server_players{server=\"metered\",kind=\"bot\"} 0",
        "left4me_server_up{server=\"metered\"} 1",
        "left4me_server_state{server=\"metered\",state=\"running\"} 1",
        "left4me_server_state{server=\"metered\",state=\"stopped\"} 0",
        "left4me_server_desired_state{server=\"metered\",state=\"running\"} 1",
        "left4me_host_up 1",
        "left4me_jobs{kind=\"server-start\",state=\"succeeded\"} 1",
    ] {
        assert!(has(&text, line), "no {line:?} in\n{text}");
    }
    let latency: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("left4me_server_a2s_latency_seconds{server=\"metered\"} "))
        .unwrap_or_else(|| panic!("no A2S latency in\n{text}"))
        .parse()
        .unwrap();
    assert!(latency > 0.0 && latency < 2.0, "{latency}");
    // The RCON password never shows.
    let rcon: String = sqlx::query_scalar("SELECT rcon_password FROM servers WHERE id = ?")
        .bind(id)
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert!(!text.contains(&rcon));

    // The game's log lines reach the listener and are counted; a datagram
    // without a secret is dropped and counted by its reason.
    scrape_until(&s, Duration::from_secs(30), "accepted log packets", |l| {
        l.strip_prefix("left4me_log_packets_accepted_total ")
            .is_some_and(|n| n.parse::<u64>().is_ok_and(|n| n > 0))
    })
    .await;
    let mut plain = vec![0xFF, 0xFF, 0xFF, 0xFF, b'R'];
    plain.extend_from_slice(b"L 01/01/2026 - 00:00:00: \"x<9><STEAM_1:0:1><>\" say \"x\"\n\0");
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(&plain, ("127.0.0.2", log_port))
        .unwrap();
    scrape_until(
        &s,
        Duration::from_secs(10),
        "a packet without a secret",
        |l| l == "left4me_log_packets_dropped_total{reason=\"no_secret\"} 1",
    )
    .await;

    // A live viewer is an open event stream until it goes away.
    assert!(has(&text, "left4me_sse_viewers 0"), "{text}");
    let stream = SseStream::open(&admin, &format!("/servers/{id}/live/stream")).await;
    scrape_until(&s, Duration::from_secs(10), "one viewer", |l| {
        l == "left4me_sse_viewers 1"
    })
    .await;
    drop(stream);
    scrape_until(&s, Duration::from_secs(10), "no viewer", |l| {
        l == "left4me_sse_viewers 0"
    })
    .await;

    // Stopped: no players any more, observed and desired state follow.
    let r = admin.post(&format!("/servers/{id}/stop"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let job: i64 = sqlx::query_scalar("SELECT MAX(id) FROM jobs")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(s.wait_job(job).await, "succeeded");
    let text = scrape(&s).await;
    assert!(
        has(&text, "left4me_server_up{server=\"metered\"} 0"),
        "{text}"
    );
    assert!(
        has(
            &text,
            "left4me_server_desired_state{server=\"metered\",state=\"stopped\"} 1"
        ),
        "{text}"
    );
    assert!(
        !text.contains("left4me_server_players{server=\"metered\""),
        "{text}"
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
