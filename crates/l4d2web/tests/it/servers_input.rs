//! Bad input to blueprint and server pages: clear 400/404, nothing changed.

use std::time::Duration;

use crate::util::*;
use reqwest::StatusCode;

async fn counts(s: &TestServer) -> (i64, i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM servers), (SELECT COUNT(*) FROM blueprints),
                (SELECT COUNT(*) FROM blueprint_overlays), (SELECT COUNT(*) FROM jobs)",
    )
    .fetch_one(&s.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn bad_server_and_blueprint_input_is_refused_and_changes_nothing() {
    // A one-port range: the second server exhausts it.
    // Below the highest game port (its client and SourceTV ports must fit).
    let held = (27451..27499)
        .find_map(|p| std::net::UdpSocket::bind(("0.0.0.0", p)).ok())
        .unwrap();
    let busy = held.local_addr().unwrap().port();
    let s = TestServer::start_with(&[
        ("LEFT4ME_PORT_RANGE_START", "27450"),
        ("LEFT4ME_PORT_RANGE_END", "27450"),
    ])
    .await;
    let mut c = s.login(USER).await;
    let r = c
        .post(
            "/blueprints",
            &[
                ("name", "base"),
                ("args", "+map c1m1_hotel"),
                ("config", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let bp: i64 = r
        .location()
        .trim_start_matches("/blueprints/")
        .parse()
        .unwrap();
    let bps = bp.to_string();
    let mut bob = s.login(USER2).await;
    let r = bob
        .post(
            "/blueprints",
            &[
                ("name", "bobs"),
                ("args", "+map c1m1_hotel"),
                ("config", ""),
            ],
        )
        .await;
    let bob_bp = r.location().trim_start_matches("/blueprints/").to_string();
    let before = counts(&s).await;

    // Invalid names.
    for (name, needle) in [
        ("", "enter a server name"),
        ("Alpha", "is invalid"),
        ("-alpha", "is invalid"),
        ("al pha", "is invalid"),
        ("../etc", "is invalid"),
        (&"a".repeat(65), "is invalid"),
    ] {
        let r = c
            .post("/servers", &[("name", name), ("blueprint_id", &bps)])
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name:?}");
        assert!(r.body.contains(needle), "{name:?}: {}", r.body);
    }
    // Someone else's / unknown / malformed blueprint.
    for b in [bob_bp.as_str(), "999999"] {
        let r = c
            .post("/servers", &[("name", "alpha"), ("blueprint_id", b)])
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(r.body.contains("blueprint not found"), "{}", r.body);
    }
    let r = c
        .post("/servers", &[("name", "alpha"), ("blueprint_id", "x")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("not a number"));
    let r = c.post("/servers", &[("name", "alpha")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "missing field");
    assert!(r.body.contains("malformed form"), "{}", r.body);
    assert_eq!(counts(&s).await, before);

    // One server takes the only port; then: duplicate name, range exhausted.
    let r = c
        .post("/servers", &[("name", "alpha"), ("blueprint_id", &bps)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let id: i64 = r
        .location()
        .trim_start_matches("/servers/")
        .parse()
        .unwrap();
    let after_one = counts(&s).await;
    let r = bob
        .post("/servers", &[("name", "alpha"), ("blueprint_id", &bob_bp)])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body.contains("already exists"),
        "names are unique on the host: {}",
        r.body
    );
    let r = c
        .post("/servers", &[("name", "beta"), ("blueprint_id", &bps)])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body
            .contains("no free port left in the range 27450–27450"),
        "{}",
        r.body
    );
    assert_eq!(counts(&s).await, after_one);

    // A port another process holds is skipped (range = just that port).
    s.stop().await;
    let s = TestServer::start_with(&[
        ("LEFT4ME_PORT_RANGE_START", &busy.to_string()),
        ("LEFT4ME_PORT_RANGE_END", &busy.to_string()),
    ])
    .await;
    let mut c2 = s.login(USER).await;
    let r = c2
        .post(
            "/blueprints",
            &[("name", "b"), ("args", "+map c1m1_hotel"), ("config", "")],
        )
        .await;
    let b2 = r.location().trim_start_matches("/blueprints/").to_string();
    let r = c2
        .post("/servers", &[("name", "held"), ("blueprint_id", &b2)])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("no free port"), "{}", r.body);
    drop(held);
    let r = c2
        .post("/servers", &[("name", "held"), ("blueprint_id", &b2)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "free again: {}", r.body);
    s.stop().await;
    let _ = id;
}

#[tokio::test]
async fn unknown_ids_actions_and_bad_blueprints() {
    let s = TestServer::start_with(&[
        ("LEFT4ME_PORT_RANGE_START", "27460"),
        ("LEFT4ME_PORT_RANGE_END", "27469"),
    ])
    .await;
    let mut c = s.login(USER).await;
    let r = c
        .post(
            "/blueprints",
            &[
                ("name", "base"),
                ("args", "+map c1m1_hotel"),
                ("config", "hostname x"),
            ],
        )
        .await;
    let bp: i64 = r
        .location()
        .trim_start_matches("/blueprints/")
        .parse()
        .unwrap();
    let r = c
        .post(
            "/servers",
            &[("name", "alpha"), ("blueprint_id", &bp.to_string())],
        )
        .await;
    let id: i64 = r
        .location()
        .trim_start_matches("/servers/")
        .parse()
        .unwrap();
    let bob_overlay: i64 = sqlx::query_scalar(
        "INSERT INTO overlays (name, kind, owner_id) VALUES ('private', 'script', ?) RETURNING id",
    )
    .bind(s.ids[USER2.0])
    .fetch_one(&s.pool)
    .await
    .unwrap();
    let before = counts(&s).await;

    for path in [
        "/servers/999999",
        "/servers/abc",
        "/blueprints/999999",
        "/blueprints/-1",
        "/servers/999999/console",
    ] {
        assert_eq!(c.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    for path in [
        "/servers/999999/start",
        "/blueprints/999999/delete",
        &format!("/servers/{id}/explode"),
    ] {
        assert_eq!(
            c.post(path, &[]).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    // Without a CSRF token nothing happens.
    let r = c
        .post(&format!("/servers/{id}/start"), &[("csrf_token", "wrong")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Blueprint fields.
    for (name, args, config, needle) in [
        ("", "", "", "enter a blueprint name"),
        (
            "base",
            "+map c1m1_hotel",
            "",
            "already have a blueprint named",
        ),
        ("x", "+map 'open", "", "cannot be split"),
        (
            "x",
            "+map c1m1_hotel +hostname \"two words\"",
            "",
            "two words",
        ),
        (
            "x",
            "+map c1m1_hotel -x $(reboot)",
            "",
            "launch arguments are single words",
        ),
        ("x", "-tickrate 60", "", "need a first map"),
        (
            "x",
            "+map c1m1_hotel +hostport 27016",
            "",
            "`+hostport` is managed by left4me",
        ),
        (
            "x",
            "+map c1m1_hotel +servercfgfile x.cfg",
            "",
            "`+servercfgfile` is managed by left4me",
        ),
        (
            "x",
            "+map c1m1_hotel -frobnicate",
            "",
            "unknown launch option `-frobnicate`",
        ),
        (
            "x",
            "+map c1m1_hotel",
            "hostname a\nsv_logsecret 1",
            "server.cfg line 2: `sv_logsecret` is managed by left4me",
        ),
    ] {
        let r = c
            .post(
                "/blueprints",
                &[("name", name), ("args", args), ("config", config)],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name:?} {args:?}");
        assert!(r.body.contains(needle), "{needle}: {}", r.body);
    }
    let r = c
        .post(
            &format!("/blueprints/{bp}"),
            &[("name", "base"), ("args", "a;b"), ("config", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body.contains("launch arguments are single words"),
        "{}",
        r.body
    );
    // Stack: someone else's overlay, unknown op, not a number, not in stack.
    for (op, ov, needle) in [
        ("add", bob_overlay.to_string(), "not yours to use"),
        ("add", "424242".to_string(), "does not exist"),
        (
            "sideways",
            bob_overlay.to_string(),
            "unknown stack operation",
        ),
        ("add", "x".to_string(), "not a number"),
        ("up", bob_overlay.to_string(), "not in this blueprint"),
    ] {
        let r = c
            .post(
                &format!("/blueprints/{bp}/stack"),
                &[("op", op), ("overlay_id", &ov)],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{op} {ov}");
        assert!(r.body.contains(needle), "{needle}: {}", r.body);
    }
    assert_eq!(counts(&s).await, before, "nothing changed");
    let config: String = sqlx::query_scalar("SELECT config FROM blueprints WHERE id = ?")
        .bind(bp)
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(config, "hostname x");
    s.stop().await;
}

#[tokio::test]
async fn a_server_never_started_offers_only_start_and_says_why_its_console_is_empty() {
    let s = TestServer::start_with(&[
        ("LEFT4ME_PORT_RANGE_START", "27470"),
        ("LEFT4ME_PORT_RANGE_END", "27479"),
    ])
    .await;
    let mut c = s.login(USER).await;
    let r = c
        .post(
            "/blueprints",
            &[
                ("name", "base"),
                ("args", "+map c1m1_hotel"),
                ("config", ""),
            ],
        )
        .await;
    let bp = r.location().trim_start_matches("/blueprints/").to_string();
    let r = c
        .post("/servers", &[("name", "fresh"), ("blueprint_id", &bp)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let server = r.location().to_string();
    for page in [server.clone(), format!("{server}/state")] {
        let body = c.get(&page).await.body;
        assert!(
            body.contains(r#"id="action-start">"#),
            "start stays enabled: {page}"
        );
        for act in ["stop", "restart", "reset"] {
            assert!(
                body.contains(&format!(
                    r#"id="action-{act}" disabled title="not started yet"#
                )),
                "{act} disabled on {page}: {body}"
            );
        }
    }
    let dashboard = c.get("/servers").await.body;
    assert!(
        dashboard.contains(r#"value="stop" disabled"#),
        "{dashboard}"
    );
    // The console says so in words and ends, rather than the host tool's error.
    let mut console = SseStream::open(&c, &format!("{server}/console")).await;
    let line = console
        .wait_for(Duration::from_secs(10), "the console notice", |f| {
            f.event == "line"
        })
        .await;
    assert!(
        line.data.contains("has not been started yet"),
        "{}",
        line.data
    );
    assert!(!line.data.contains("does not exist"), "{}", line.data);
    let end = console.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(end.event, "end");
    s.stop().await;
}

#[tokio::test]
async fn starting_before_the_game_is_installed_fails_clearly_and_touches_nothing() {
    // TestServer::start_with serves an empty data root: no game installed.
    let s = TestServer::start_with(&[
        ("LEFT4ME_PORT_RANGE_START", "27460"),
        ("LEFT4ME_PORT_RANGE_END", "27469"),
    ])
    .await;
    let mut c = s.login(USER).await;
    let r = c
        .post(
            "/blueprints",
            &[
                ("name", "base"),
                ("args", "+map c1m1_hotel"),
                ("config", ""),
            ],
        )
        .await;
    let bp = r.location().trim_start_matches("/blueprints/").to_string();
    let r = c
        .post("/servers", &[("name", "early"), ("blueprint_id", &bp)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let server = r.location().to_string();
    let r = c.post(&format!("{server}/start"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let job: i64 = sqlx::query_scalar("SELECT MAX(id) FROM jobs WHERE kind = 'server-start'")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(s.wait_job(job).await, "failed");
    let error: String = sqlx::query_scalar("SELECT error FROM jobs WHERE id = ?")
        .bind(job)
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert!(
        error.contains("not starting early: the game is not installed"),
        "{error}"
    );
    assert!(!s.root.path().join("instances/early").exists());
    s.stop().await;
}
