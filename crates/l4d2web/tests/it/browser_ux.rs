//! Headless Chromium at phone width on every page of the panel, with real
//! data in every table; and failures shown where the operator looks: a
//! workshop sync that failed, a start refused, a map that did not load.

use std::time::{Duration, Instant};

use crate::servers::{create_blueprint, create_server, id_in};
use crate::util::*;
use fantoccini::{Client, Locator};
use reqwest::StatusCode;
use serde_json::Value;

/// Long enough to overflow any fixed-width layout.
const LONG_OVERLAY: &str = "maps-and-more-maps-from-an-overlay-whose-name-never-seems-to-end";

/// What the pages are filled with.
struct World {
    good_server: i64,
    bad_map_server: i64,
    unsynced_server: i64,
    good_bp: i64,
    script_overlay: i64,
    workshop_overlay: i64,
    webhook: i64,
    job: i64,
}

async fn user_id(s: &TestServer, name: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM users WHERE username = ?")
        .bind(name)
        .fetch_one(&s.pool)
        .await
        .unwrap()
}

/// A script overlay of `owner` with files already in place.
async fn script_overlay(s: &TestServer, owner: i64, name: &str) -> i64 {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO overlays (name, kind, owner_id, script) VALUES (?, 'script', ?, ?) RETURNING id",
    )
    .bind(name)
    .bind(owner)
    .bind("set -euo pipefail\ncurl -fsSL https://example.com/a/very/long/url/to/a/map/archive/that/does/not/fit/on/a/phone/screen.zip -o map.zip")
    .fetch_one(&s.pool)
    .await
    .unwrap();
    let dir = s
        .root
        .path()
        .join(format!("overlays/{id}/left4dead2/addons"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("a_campaign_file_with_a_name_far_too_long_for_a_phone_screen_v2_final.vpk"),
        "x",
    )
    .unwrap();
    id
}

async fn wait_job_of(s: &TestServer, location: &str) -> i64 {
    let job = id_in(location, "/jobs/");
    s.wait_job(job).await;
    job
}

/// Blueprints, overlays (one whose sync failed), three servers (one
/// running with players, one whose map does not exist, one refused),
/// jobs, a schedule, a share, a token, a webhook, RCON history.
async fn populate(s: &TestServer) -> World {
    let mut alice = s.login(USER).await;
    let alice_id = user_id(s, USER.0).await;
    let script = script_overlay(s, alice_id, LONG_OVERLAY).await;
    let second = script_overlay(s, alice_id, "sourcemod-plugins").await;

    let r = alice
        .post(
            "/overlays",
            &[
                ("name", "workshop maps"),
                ("kind", "workshop"),
                ("refs", "123456789"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let workshop = id_in(r.location(), "/overlays/");
    let r = alice
        .post(&format!("/overlays/{workshop}/build"), &[])
        .await;
    let sync_job = wait_job_of(s, r.location()).await;
    assert_eq!(job_state(s, sync_job).await, "failed");

    let good_bp = create_blueprint(
        &mut alice,
        "coop with a long blueprint name for phones",
        "+map c1m1_hotel -sim_players 2 -sim_churn 0 +sv_cheats 0 +mp_gamemode coop +z_difficulty impossible",
        "hostname \"A server whose host name is longer than any phone screen is wide\"",
    )
    .await;
    for ov in [script, second] {
        let r = alice
            .post(
                &format!("/blueprints/{good_bp}/stack"),
                &[("op", "add"), ("overlay_id", &ov.to_string())],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    }
    let bad_bp = create_blueprint(&mut alice, "bad map", "+map c9m9_nothere", "").await;
    let unsynced_bp = create_blueprint(&mut alice, "needs sync", "+map c1m1_hotel", "").await;
    let r = alice
        .post(
            &format!("/blueprints/{unsynced_bp}/stack"),
            &[("op", "add"), ("overlay_id", &workshop.to_string())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

    let good_server = create_server(&mut alice, "phone1", good_bp).await;
    let bad_map_server = create_server(&mut alice, "badmap", bad_bp).await;
    let unsynced_server = create_server(&mut alice, "unsynced", unsynced_bp).await;
    let mut job = 0;
    for id in [good_server, bad_map_server] {
        let r = alice.post(&format!("/servers/{id}/start"), &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let queued: i64 = sqlx::query_scalar("SELECT MAX(id) FROM jobs")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert_eq!(s.wait_job(queued).await, "succeeded");
        job = queued;
    }

    let r = alice
        .post(
            &format!("/servers/{good_server}/schedules"),
            &[
                ("action", "restart"),
                ("cron", "0 4 * * *"),
                ("time_zone", "Europe/Berlin"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = alice
        .post(
            &format!("/servers/{good_server}/shares"),
            &[("username", USER2.0), ("role", "viewer")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = alice
        .post(
            "/tokens",
            &[
                ("name", "a deploy script with a long name"),
                ("scope", "read"),
                ("days", "30"),
            ],
        )
        .await;
    assert!(
        r.status.is_success() || r.status.is_redirection(),
        "{}",
        r.body
    );
    let r = alice
        .post(
            "/alerts",
            &[
                ("name", "ops channel"),
                (
                    "url",
                    "http://127.0.0.1:9/services/T000000000/B000000000/averyveryverylongsecretpathsegment",
                ),
                ("format", "json"),
                ("event", "job.failed"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let webhook = r
        .location()
        .trim_start_matches("/alerts/")
        .parse()
        .unwrap_or_else(|_| panic!("webhook redirect {}", r.location()));
    let r = alice
        .post(
            &format!("/servers/{good_server}/rcon/exec"),
            &[("command", "status")],
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    World {
        good_server,
        bad_map_server,
        unsynced_server,
        good_bp,
        script_overlay: script,
        workshop_overlay: workshop,
        webhook,
        job,
    }
}

async fn job_state(s: &TestServer, id: i64) -> String {
    sqlx::query_scalar("SELECT state FROM jobs WHERE id = ?")
        .bind(id)
        .fetch_one(&s.pool)
        .await
        .unwrap()
}

/// The page's width against the window's, and what sticks out.
async fn overflow(c: &Client) -> Option<String> {
    let v = c
        .execute(
            r#"const w = window.innerWidth, sw = document.documentElement.scrollWidth;
               if (sw <= w) return null;
               const out = [];
               for (const e of document.querySelectorAll('body *')) {
                 const r = e.getBoundingClientRect();
                 if (r.right > w + 0.5 && out.length < 5)
                   out.push(e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
                            (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ').join('.') : '') +
                            ' right=' + Math.round(r.right));
               }
               return 'scrollWidth ' + sw + ' > innerWidth ' + w + ' by ' + (sw - w) + ' px: ' + out.join(', ');"#,
            vec![],
        )
        .await
        .unwrap();
    v.as_str().map(str::to_string)
}

/// Routes of the table that are not pages a person looks at.
const NOT_PAGES: &[&str] = &[
    "/health",
    "/metrics",
    "/assets/{name}",
    "/servers/stream",
    "/jobs/{id}/stream",
    "/servers/{id}/console",
    "/servers/{id}/live",
    "/servers/{id}/live/stream",
    "/servers/{id}/state",
    "/servers/{id}/state/stream",
    "/overlays/{id}/download",
];

/// The addresses to visit for one GET page route (None: not known here).
fn visits(path: &str, w: &World) -> Option<Vec<String>> {
    let v = |list: &[String]| Some(list.to_vec());
    match path {
        "/" | "/servers" | "/blueprints" | "/overlays" | "/jobs" | "/audit" | "/account"
        | "/tokens" | "/alerts" | "/login" | "/admin/users" => v(&[path.to_string()]),
        "/servers/{id}" => v(&[
            format!("/servers/{}", w.good_server),
            format!("/servers/{}", w.bad_map_server),
            format!("/servers/{}", w.unsynced_server),
        ]),
        "/servers/{id}/rcon" => v(&[format!("/servers/{}/rcon", w.good_server)]),
        "/blueprints/{id}" => v(&[format!("/blueprints/{}", w.good_bp)]),
        "/overlays/{id}" => v(&[
            format!("/overlays/{}", w.script_overlay),
            format!("/overlays/{}", w.workshop_overlay),
        ]),
        "/overlays/{id}/files" => v(&[
            format!("/overlays/{}/files", w.script_overlay),
            format!(
                "/overlays/{}/files?path=left4dead2/addons",
                w.script_overlay
            ),
        ]),
        "/jobs/{id}" => v(&[format!("/jobs/{}", w.job)]),
        "/alerts/{id}" => v(&[format!("/alerts/{}", w.webhook)]),
        _ => None,
    }
}

async fn settle(c: &Client) {
    // The live panel and the state block arrive over HTMX after load.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let loading = c
            .execute(
                "return document.body.innerText.includes('Loading live state')",
                vec![],
            )
            .await
            .unwrap();
        if loading == Value::Bool(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Every page of the route table at 360 px: nothing wider than the
/// screen, table rows as labelled cards, the stack's buttons on their
/// rows, and the new-overlay form showing only the chosen kind's field.
#[tokio::test]
async fn every_page_fits_a_phone_screen() {
    let Some(b) = browser().await else { return };
    let s = TestServer::start_installed(&[
        ("LEFT4ME_PORT_RANGE_START", "27640"),
        ("LEFT4ME_PORT_RANGE_END", "27649"),
        ("STEAM_API_BASE_URL", "http://127.0.0.1:9/"),
        ("LEFT4ME_WEBHOOK_ALLOW_PRIVATE", "true"),
    ])
    .await;
    let w = populate(&s).await;
    let c = &b.client;
    c.set_window_size(360, 800).await.unwrap();
    c.goto(&format!("{}/login", s.base)).await.unwrap();
    let inner = c.execute("return window.innerWidth", vec![]).await.unwrap();
    assert_eq!(inner, serde_json::json!(360), "the window is phone-wide");

    let mut problems = Vec::new();
    let mut check = |url: String, what: Option<String>| {
        if let Some(what) = what {
            problems.push(format!("{url}: {what}"));
        }
    };
    // Logged out: the login page.
    c.goto(&format!("{}/login", s.base)).await.unwrap();
    check("/login".into(), overflow(c).await);

    let routes: Vec<_> = l4d2web::web::route_table()
        .into_iter()
        .filter(|r| r.method == axum::http::Method::GET && !r.api)
        .filter(|r| !NOT_PAGES.contains(&r.path))
        .collect();
    assert!(routes.len() >= 15, "GET pages: {}", routes.len());
    let mut urls = Vec::new();
    for r in &routes {
        let v = visits(r.path, &w).unwrap_or_else(|| {
            panic!(
                "GET route {} is not in the phone-width walk: add it to visits() or NOT_PAGES",
                r.path
            )
        });
        urls.extend(v);
    }
    // Error pages, inside the layout.
    urls.push("/servers/999999".into());
    urls.push(format!(
        "/overlays/{}/files?path=../../etc",
        w.script_overlay
    ));

    submit_login(c, &s.base, ADMIN.0, ADMIN.1).await;
    wait_text(c, "main h1", "Servers").await;
    for url in &urls {
        if url == "/login" {
            continue;
        }
        c.goto(&format!("{}{url}", s.base)).await.unwrap();
        settle(c).await;
        check(format!("{url} (admin)"), overflow(c).await);
    }
    click(c, "form[action='/logout'] button").await;
    submit_login(c, &s.base, USER.0, USER.1).await;
    wait_text(c, "main h1", "Servers").await;
    for url in &urls {
        if url == "/login" || url == "/admin/users" {
            continue;
        }
        c.goto(&format!("{}{url}", s.base)).await.unwrap();
        settle(c).await;
        check(url.clone(), overflow(c).await);
    }
    // A refusal page (bob may only view the server).
    click(c, "form[action='/logout'] button").await;
    submit_login(c, &s.base, USER2.0, USER2.1).await;
    wait_text(c, "main h1", "Servers").await;
    let forbidden = format!("/servers/{}/rcon", w.good_server);
    c.goto(&format!("{}{forbidden}", s.base)).await.unwrap();
    wait_text(c, "main h1", "403").await;
    check(forbidden, overflow(c).await);
    assert!(
        problems.is_empty(),
        "pages wider than a 360 px screen:\n{}",
        problems.join("\n")
    );

    // Rows are cards whose cells name their column.
    click(c, "form[action='/logout'] button").await;
    submit_login(c, &s.base, USER.0, USER.1).await;
    wait_text(c, "#server-phone1", "phone1").await;
    let label = c
        .execute(
            "return getComputedStyle(document.querySelector('#server-phone1 td[data-label=State]'), '::before').content",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(label, serde_json::json!("\"State: \""));
    let head = c
        .execute(
            "return getComputedStyle(document.querySelector('#servers thead')).display",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(head, serde_json::json!("none"));

    // The stack's ↑↓✕ stay on their overlay's row.
    c.goto(&format!("{}/blueprints/{}", s.base, w.good_bp))
        .await
        .unwrap();
    let off_row = c
        .execute(
            r#"const bad = [];
               for (const li of document.querySelectorAll('#stack-list li')) {
                 const r = li.getBoundingClientRect();
                 for (const b of li.querySelectorAll('.stack-ops button')) {
                   const br = b.getBoundingClientRect();
                   if (br.top < r.top - 1 || br.bottom > r.bottom + 1 || br.right > window.innerWidth)
                     bad.push(b.title + ' of ' + li.querySelector('.stack-name').textContent);
                 }
               }
               return [document.querySelectorAll('#stack-list .stack-ops button').length, bad];"#,
            vec![],
        )
        .await
        .unwrap();
    assert!(off_row[0].as_u64().unwrap() >= 3, "{off_row}");
    assert_eq!(off_row[1], serde_json::json!([]), "buttons off their rows");

    // The new-overlay form: each Kind radio beside its label; only the
    // chosen kind's field shows.
    c.goto(&format!("{}/overlays", s.base)).await.unwrap();
    let shown = || async {
        c.execute(
            r#"const vis = s => document.querySelector(s).offsetParent !== null;
               return [vis('#new-overlay textarea[name=script]'), vis('#new-overlay textarea[name=refs]')];"#,
            vec![],
        )
        .await
        .unwrap()
    };
    assert_eq!(shown().await, serde_json::json!([true, false]));
    let gap = c
        .execute(
            r#"return Array.from(document.querySelectorAll('#new-overlay input[name=kind]')).map(i => {
                 const label = i.closest('label');
                 const range = document.createRange();
                 range.selectNodeContents(label);
                 const text = Array.from(label.childNodes).find(n => n.nodeType === 3 && n.textContent.trim());
                 const tr = document.createRange(); tr.selectNodeContents(text);
                 return Math.round(tr.getBoundingClientRect().left - i.getBoundingClientRect().right);
               });"#,
            vec![],
        )
        .await
        .unwrap();
    for g in gap.as_array().unwrap() {
        let g = g.as_i64().unwrap();
        assert!((0..=16).contains(&g), "radio {g} px from its label: {gap}");
    }
    click(c, "#new-overlay input[name=kind][value=workshop]").await;
    assert_eq!(shown().await, serde_json::json!([false, true]));
    drop(b);
    s.stop().await;
}

/// A failed workshop sync on the overlay's page and in the list, in plain
/// words with the raw error in the details; a refused start as a warning
/// at the top of the page the operator is on; a map that does not exist
/// as a warning on the server page until a map loads.
#[tokio::test]
async fn failures_show_where_the_operator_looks() {
    let Some(b) = browser().await else { return };
    let s = TestServer::start_installed(&[
        ("LEFT4ME_PORT_RANGE_START", "27570"),
        ("LEFT4ME_PORT_RANGE_END", "27579"),
        // Nothing listens on the discard port: the connection is refused.
        ("STEAM_API_BASE_URL", "http://127.0.0.1:9/"),
        ("LEFT4ME_WEBHOOK_ALLOW_PRIVATE", "true"),
    ])
    .await;
    let w = populate(&s).await;
    let c = &b.client;
    submit_login(c, &s.base, USER.0, USER.1).await;
    wait_text(c, "main h1", "Servers").await;

    // The sync that failed.
    c.goto(&format!("{}/overlays/{}", s.base, w.workshop_overlay))
        .await
        .unwrap();
    wait_text(c, "#sync-failed .badge", "sync failed").await;
    let plain = wait_text(c, "#sync-error", "").await;
    assert_eq!(plain, "Steam could not be reached from this host.");
    let detail = c
        .find(Locator::Css("#sync-error"))
        .await
        .unwrap()
        .attr("title")
        .await
        .unwrap()
        .unwrap();
    assert!(
        detail.contains("cannot reach ISteamRemoteStorage")
            && detail.contains("Connection refused"),
        "{detail}"
    );
    c.goto(&format!("{}/overlays", s.base)).await.unwrap();
    wait_text(
        c,
        &format!("#overlay-{} .sync-failed", w.workshop_overlay),
        "sync failed",
    )
    .await;
    wait_text(
        c,
        &format!("#overlay-{}", w.workshop_overlay),
        "Steam could not be reached",
    )
    .await;

    // A start refused from the dashboard: a warning at its top, no job.
    let jobs = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM jobs")
            .fetch_one(&s.pool)
            .await
            .unwrap()
    };
    let before = jobs().await;
    c.goto(&format!("{}/servers", s.base)).await.unwrap();
    click(c, "#server-unsynced button[value=start]").await;
    let flash = wait_text(c, ".flash.refused", "Server unsynced was not started").await;
    assert!(flash.contains("has not been synced yet"), "{flash}");
    assert_eq!(c.current_url().await.unwrap().path(), "/servers");
    let above = c
        .execute(
            "return document.querySelector('.flash.refused').getBoundingClientRect().top < document.querySelector('main h1').getBoundingClientRect().top",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(above, Value::Bool(true), "the warning is at the top");
    assert_eq!(jobs().await, before, "a refused start queued a job");

    // The map that does not exist, from +map at launch.
    c.goto(&format!("{}/servers/{}", s.base, w.bad_map_server))
        .await
        .unwrap();
    let warning = wait_text(c, "#map-failure", "c9m9_nothere").await;
    assert!(
        warning.contains("The map c9m9_nothere failed to load: not found or invalid"),
        "{warning}"
    );

    // On the good server: a bad map over RCON warns, a good one clears it.
    c.goto(&format!("{}/servers/{}", s.base, w.good_server))
        .await
        .unwrap();
    wait_text(c, "#console-log", "Started map").await;
    assert!(c.find(Locator::Css("#map-failure")).await.is_err());
    fill(c, "#console-command", "changelevel c9m9_nothere").await;
    click(c, "#console-send").await;
    wait_text(
        c,
        "#console-log",
        "changelevel failed: c9m9_nothere not found",
    )
    .await;
    wait_text(
        c,
        "#map-failure",
        "The map c9m9_nothere failed to load: not found",
    )
    .await;
    fill(c, "#console-command", "changelevel c2m1_highway").await;
    click(c, "#console-send").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.find(Locator::Css("#map-failure")).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the warning stayed after a map loaded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(b);
    s.stop().await;
}
