//! The audit log end to end: what each action records through HTTP, the
//! client address behind a trusted proxy, who sees what on /audit, filters
//! and pages, refused bad filters, and the database keeping the log
//! append-only.

use l4d2web::audit::{self, Entry, Kind};
use reqwest::StatusCode;

use crate::servers::{create_blueprint, create_server};
use crate::util::*;

/// One stored entry, as the tests look at it.
#[derive(Debug, sqlx::FromRow)]
struct Stored {
    actor_id: Option<i64>,
    actor_name: String,
    source_ip: Option<String>,
    target_type: String,
    target_id: Option<i64>,
    target_name: String,
    server_id: Option<i64>,
    result: String,
    detail: String,
}

async fn entries(s: &TestServer, kind: &str) -> Vec<Stored> {
    sqlx::query_as(
        "SELECT actor_id, actor_name, source_ip, target_type, target_id, target_name,
         server_id, result, detail FROM audit_log WHERE kind = ? ORDER BY id",
    )
    .bind(kind)
    .fetch_all(&s.pool)
    .await
    .unwrap()
}

async fn one(s: &TestServer, kind: &str) -> Stored {
    let mut all = entries(s, kind).await;
    assert_eq!(all.len(), 1, "one {kind} entry: {all:?}");
    all.remove(0)
}

async fn count(s: &TestServer) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
        .fetch_one(&s.pool)
        .await
        .unwrap()
}

/// Rows of the /audit table on a page.
fn rows(html: &str) -> usize {
    html.matches("<tr id=\"audit-").count()
}

/// The page's table alone (the filters list names too).
fn table(html: &str) -> &str {
    html.find("id=\"audit-log\"").map_or("", |i| &html[i..])
}

#[tokio::test]
async fn logins_are_recorded_with_the_address_a_trusted_proxy_forwards() {
    let s = TestServer::start_with(&[
        ("LEFT4ME_LOGIN_LIMIT_PER_IP", "100"),
        ("LEFT4ME_LOGIN_LIMIT_PER_USER", "2"),
        ("LEFT4ME_TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let mut c = s.client();
    // A client-supplied left entry is ignored: the rightmost untrusted hop counts.
    c.header("x-forwarded-for", "10.9.9.9, 198.51.100.7");
    assert_eq!(
        c.login(USER.0, "wrong-password").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(c.login(USER.0, USER.1).await.status, StatusCode::SEE_OTHER);
    let mut c = s.client();
    c.header("x-forwarded-for", "198.51.100.7");
    for _ in 0..3 {
        assert_eq!(
            c.login(USER.0, USER.1).await.status,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    let mut other = s.client();
    other.header("x-forwarded-for", "203.0.113.20");
    assert_eq!(
        other.login("nobody", "whatever-password").await.status,
        StatusCode::UNAUTHORIZED
    );

    let alice = s.ids["alice"];
    let failed = entries(&s, "login.failed").await;
    assert_eq!(failed.len(), 2, "{failed:?}");
    let (wrong, unknown) = (&failed[0], &failed[1]);
    assert_eq!(
        wrong.actor_id,
        Some(alice),
        "her own failures are hers to see"
    );
    assert_eq!(wrong.source_ip.as_deref(), Some("198.51.100.7"));
    assert_eq!(
        (wrong.result.as_str(), wrong.detail.as_str()),
        ("failed", "wrong password")
    );
    assert_eq!(
        (unknown.actor_id, unknown.actor_name.as_str()),
        (None, "nobody")
    );
    assert_eq!(unknown.source_ip.as_deref(), Some("203.0.113.20"));
    assert_eq!(unknown.detail, "no such user");
    let ok = one(&s, "login.succeeded").await;
    assert_eq!(ok.actor_id, Some(alice));
    assert_eq!(ok.source_ip.as_deref(), Some("198.51.100.7"));
    assert_eq!(ok.result, "ok");
    // Three refused attempts, one entry: refusals are noted once per window.
    let locked = one(&s, "login.locked").await;
    assert_eq!(locked.result, "refused");
    assert_eq!(locked.actor_name, "alice");
    assert_eq!(locked.source_ip.as_deref(), Some("198.51.100.7"));
    assert!(locked.detail.contains("too many"), "{}", locked.detail);
    // No password anywhere in the log.
    let all: Vec<String> = sqlx::query_scalar("SELECT detail || actor_name FROM audit_log")
        .fetch_all(&s.pool)
        .await
        .unwrap();
    assert!(!all
        .iter()
        .any(|d| d.contains("password-1") || d.contains("wrong-password")));
    s.stop().await;
}

#[tokio::test]
async fn a_forwarded_address_from_an_untrusted_peer_is_not_believed() {
    let s = TestServer::start().await;
    let mut c = s.client();
    c.header("x-forwarded-for", "198.51.100.9");
    assert_eq!(c.login(USER.0, USER.1).await.status, StatusCode::SEE_OTHER);
    let ok = one(&s, "login.succeeded").await;
    assert_eq!(ok.source_ip.as_deref(), Some("127.0.0.1"));
    s.stop().await;
}

#[tokio::test]
async fn every_kind_of_change_is_recorded_after_it_happened() {
    let s = TestServer::start_with(&[
        ("LEFT4ME_PORT_RANGE_START", "29610"),
        ("LEFT4ME_PORT_RANGE_END", "29619"),
        ("LEFT4ME_WEBHOOK_ALLOW_PRIVATE", "true"),
    ])
    .await;
    let mut admin = s.login(ADMIN).await;
    let admin_id = s.ids["admin"];

    // User management.
    let r = admin
        .post(
            "/admin/users",
            &[("username", "carol"), ("password", "carol-password-1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let created = one(&s, "user.created").await;
    assert_eq!(created.actor_id, Some(admin_id));
    assert_eq!(
        (created.target_type.as_str(), created.target_name.as_str()),
        ("user", "carol")
    );
    assert!(!created.detail.contains("carol-password-1"));
    let carol = created.target_id.unwrap();
    for (action, kind) in [
        ("disable", "user.disabled"),
        ("enable", "user.enabled"),
        ("unlock", "user.unlocked"),
    ] {
        let r = admin
            .post(&format!("/admin/users/{carol}/{action}"), &[])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{action}");
        assert_eq!(one(&s, kind).await.target_id, Some(carol), "{kind}");
    }
    let r = admin
        .post(
            &format!("/admin/users/{carol}/password"),
            &[("password", "carol-new-password")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let set = one(&s, "user.password_set").await;
    assert!(!set.detail.contains("carol-new-password"), "{}", set.detail);
    admin
        .post(&format!("/admin/users/{carol}/delete"), &[])
        .await;
    let deleted = one(&s, "user.deleted").await;
    assert_eq!(deleted.target_name, "carol", "the name outlives the user");

    // Blueprints and servers.
    let bp = create_blueprint(&mut admin, "coop", "+map c1m1_hotel", "").await;
    assert_eq!(one(&s, "blueprint.created").await.target_id, Some(bp));
    let r = admin
        .post(
            &format!("/blueprints/{bp}"),
            &[
                ("name", "coop2"),
                ("args", "+map c2m1_highway"),
                ("config", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let saved = one(&s, "blueprint.saved").await;
    assert_eq!(
        (saved.target_id, saved.target_name.as_str()),
        (Some(bp), "coop2")
    );
    let server = create_server(&mut admin, "audited", bp).await;
    let created = one(&s, "server.created").await;
    assert_eq!(created.server_id, Some(server));
    assert_eq!(created.target_name, "audited");
    let r = admin.post(&format!("/servers/{server}/start"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let start = one(&s, "server.start").await;
    assert_eq!(
        (start.server_id, start.result.as_str()),
        (Some(server), "ok")
    );
    assert!(start.detail.contains("job #"), "{}", start.detail);

    // RCON: the command as typed, a secret cvar's value masked. Nothing
    // runs on the port, so the command fails and says so.
    let r = admin
        .post(
            &format!("/servers/{server}/rcon"),
            &[("command", "sv_password hunter2")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let rcon = one(&s, "rcon.command").await;
    assert_eq!(rcon.server_id, Some(server));
    assert_eq!(rcon.result, "failed");
    assert!(
        rcon.detail.starts_with("sv_password ***"),
        "{}",
        rcon.detail
    );
    assert!(!rcon.detail.contains("hunter2"));
    admin
        .post(
            &format!("/servers/{server}/rcon"),
            &[("command", "say hi all")],
        )
        .await;
    let said = entries(&s, "rcon.command").await;
    assert!(said[1].detail.starts_with("say hi all"), "{:?}", said[1]);

    // Schedules.
    let r = admin
        .post(
            &format!("/servers/{server}/schedules"),
            &[
                ("action", "rcon"),
                ("cron", "0 5 * * *"),
                ("command", "rcon_password s3cret"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let added = one(&s, "schedule.added").await;
    assert_eq!(added.server_id, Some(server));
    assert_eq!(added.target_name, "0 5 * * *");
    assert!(
        added.detail.contains("rcon_password ***"),
        "{}",
        added.detail
    );
    assert!(!added.detail.contains("s3cret"));
    let schedule = added.target_id.unwrap();
    for (action, kind) in [
        ("pause", "schedule.paused"),
        ("resume", "schedule.resumed"),
        ("delete", "schedule.deleted"),
    ] {
        admin
            .post(
                &format!("/servers/{server}/schedules/{schedule}/{action}"),
                &[],
            )
            .await;
        assert_eq!(one(&s, kind).await.target_id, Some(schedule), "{kind}");
    }

    // Webhooks: never their URL (it may carry a token).
    let r = admin
        .post(
            "/alerts",
            &[
                ("name", "ops"),
                ("url", "http://127.0.0.1:9/hook?token=webhook-secret"),
                ("format", "json"),
                ("event", "server.crashed"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let hook = one(&s, "webhook.added").await;
    assert_eq!(hook.target_name, "ops");
    let hook_id = hook.target_id.unwrap();
    admin
        .post(
            &format!("/alerts/{hook_id}/events"),
            &[("event", "job.failed")],
        )
        .await;
    admin.post(&format!("/alerts/{hook_id}/test"), &[]).await;
    admin.post(&format!("/alerts/{hook_id}/delete"), &[]).await;
    for kind in ["webhook.changed", "webhook.tested", "webhook.deleted"] {
        assert_eq!(one(&s, kind).await.target_id, Some(hook_id), "{kind}");
    }
    let details: Vec<String> = sqlx::query_scalar("SELECT detail || target_name FROM audit_log")
        .fetch_all(&s.pool)
        .await
        .unwrap();
    assert!(!details.iter().any(|d| d.contains("webhook-secret")));

    // Overlays.
    let r = admin
        .post(
            "/overlays",
            &[("name", "maps"), ("kind", "script"), ("script", "true")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let overlay = one(&s, "overlay.created").await.target_id.unwrap();
    admin
        .post(
            &format!("/overlays/{overlay}"),
            &[("name", "maps"), ("script", "echo hi")],
        )
        .await;
    admin.post(&format!("/overlays/{overlay}/build"), &[]).await;
    assert_eq!(one(&s, "overlay.saved").await.target_id, Some(overlay));
    let build = one(&s, "overlay.build_requested").await;
    assert!(build.detail.starts_with("job #"), "{}", build.detail);

    // Everything shows on the admin's page, newest first.
    let page = admin.get("/audit").await;
    assert_eq!(page.status, StatusCode::OK);
    let body = table(&page.body);
    for kind in [
        "overlay.build_requested",
        "rcon.command",
        "user.created",
        "login.succeeded",
    ] {
        assert!(body.contains(kind), "{kind} on the page");
    }
    assert!(body.contains("sv_password ***"));
    assert!(
        body.find("overlay.build_requested") < body.find("user.created"),
        "newest first"
    );
    assert!(page.body.contains("data-label=\"Detail\""));
    s.stop().await;
}

#[tokio::test]
async fn refused_actions_and_rcon_on_others_servers_are_recorded() {
    let s = TestServer::start_with(&[
        ("LEFT4ME_PORT_RANGE_START", "29620"),
        ("LEFT4ME_PORT_RANGE_END", "29629"),
    ])
    .await;
    let mut alice = s.login(USER).await;
    let mut bob = s.login(USER2).await;
    let mut admin = s.login(ADMIN).await;
    let bp = create_blueprint(&mut alice, "a", "+map c1m1_hotel", "").await;
    let server = create_server(&mut alice, "alices", bp).await;

    let r = bob.post(&format!("/servers/{server}/stop"), &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let stop = one(&s, "server.stop").await;
    assert_eq!(stop.actor_id, Some(s.ids["bob"]));
    assert_eq!(stop.result, "refused");
    assert_eq!(
        (stop.target_type.as_str(), stop.target_id),
        ("server", Some(server))
    );
    assert_eq!(
        stop.target_name, "",
        "nothing about the server leaks to bob"
    );
    assert_eq!(stop.server_id, None);

    // A viewer's RCON command: 403, noted for the owner to see. An
    // administrator's RCON on someone else's server is allowed, and noted
    // as an administrator's.
    let r = alice
        .post(
            &format!("/servers/{server}/shares"),
            &[("username", "bob"), ("role", "viewer")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = bob
        .post(
            &format!("/servers/{server}/rcon"),
            &[("command", "sv_password x")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let rcon = entries(&s, "rcon.command").await;
    assert_eq!(rcon.len(), 1, "{rcon:?}");
    assert_eq!(rcon[0].actor_id, Some(s.ids["bob"]));
    assert_eq!(rcon[0].result, "refused");
    assert_eq!(rcon[0].server_id, Some(server), "the owner sees it");
    assert!(rcon[0].detail.contains("viewer"), "{}", rcon[0].detail);
    let r = admin
        .post(
            &format!("/servers/{server}/rcon"),
            &[("command", "sv_password secret")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let rcon = entries(&s, "rcon.command").await;
    assert_eq!(rcon.len(), 2, "{rcon:?}");
    assert_eq!(rcon[1].actor_id, Some(s.ids["admin"]));
    assert!(
        rcon[1].detail.contains("sv_password ***") && rcon[1].detail.contains("as administrator"),
        "{}",
        rcon[1].detail
    );
    // An allowed change without a valid CSRF token records nothing.
    let before = count(&s).await;
    let r = alice
        .post(
            &format!("/servers/{server}/start"),
            &[("csrf_token", "wrong")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(count(&s).await, before);
    s.stop().await;
}

#[tokio::test]
async fn users_see_their_own_entries_and_their_servers_admins_see_all() {
    let s = TestServer::start_with(&[
        ("LEFT4ME_PORT_RANGE_START", "29630"),
        ("LEFT4ME_PORT_RANGE_END", "29639"),
    ])
    .await;
    let (alice_id, bob_id, admin_id) = (s.ids["alice"], s.ids["bob"], s.ids["admin"]);
    let mut alice = s.login(USER).await;
    let mut bob = s.login(USER2).await;
    let mut admin = s.login(ADMIN).await;
    let a_bp = create_blueprint(&mut alice, "alice-bp", "+map c1m1_hotel", "").await;
    let a_server = create_server(&mut alice, "alice-srv", a_bp).await;
    let b_bp = create_blueprint(&mut bob, "bob-bp", "+map c1m1_hotel", "").await;
    create_server(&mut bob, "bob-srv", b_bp).await;
    // Someone else's entry about alice's server (as a scheduled or system
    // action would be): hers to see.
    let mut about = Entry::new(Kind::ServerRestart);
    about.actor_id = Some(admin_id);
    about.actor_name = "admin".into();
    about.target_type = "server";
    about.target_id = Some(a_server);
    about.target_name = "alice-srv".into();
    about.server_id = Some(a_server);
    about.server_owner_id = Some(alice_id);
    about.detail = "concerning alice".into();
    audit::record(&s.pool, &about).await.unwrap();
    // An entry of an earlier account that had alice's id: not hers.
    sqlx::query(
        "INSERT INTO audit_log (at, actor_id, actor_name, kind, result, detail)
         VALUES ('2001-01-01T00:00:00.000Z', ?, 'ghost', 'login.succeeded', 'ok', 'earlier account')",
    )
    .bind(alice_id)
    .execute(&s.pool)
    .await
    .unwrap();

    let page = alice.get("/audit").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("alice-srv") && page.body.contains("alice-bp"));
    assert!(page.body.contains("concerning alice"));
    assert!(!page.body.contains("bob-srv") && !page.body.contains("bob-bp"));
    assert!(!page.body.contains("earlier account"));
    assert!(
        !page.body.contains("id=\"filter-user\""),
        "no user filter for users"
    );
    let bobs = bob.get("/audit").await.body;
    assert!(bobs.contains("bob-srv") && !bobs.contains("alice-srv"));
    assert!(!bobs.contains("concerning alice"));
    // Alice cannot look at bob's server by its number either.
    let bob_server: i64 = sqlx::query_scalar("SELECT id FROM servers WHERE name = 'bob-srv'")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    let page = alice.get(&format!("/audit?server={bob_server}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(rows(&page.body), 0);

    let all = admin.get("/audit").await.body;
    for needle in [
        "alice-srv",
        "bob-srv",
        "concerning alice",
        "earlier account",
    ] {
        assert!(all.contains(needle), "admin sees {needle}");
    }
    assert!(all.contains("id=\"filter-user\""));
    let only_bob = admin.get(&format!("/audit?user={bob_id}")).await.body;
    let only_bob = table(&only_bob);
    assert!(only_bob.contains("bob-srv") && !only_bob.contains("alice-srv"));
    let only_server = admin.get(&format!("/audit?server={a_server}")).await.body;
    let only_server = table(&only_server);
    assert!(only_server.contains("concerning alice") && !only_server.contains("blueprint.created"));
    assert!(only_server.contains("server.created"));
    s.stop().await;
}

#[tokio::test]
async fn filters_and_pages_work_and_bad_values_are_refused() {
    let s = TestServer::start().await;
    let mut admin = s.login(ADMIN).await;
    let mut alice = s.login(USER).await;
    for i in 0..120 {
        let mut e = Entry::new(if i % 2 == 0 {
            Kind::WebhookTested
        } else {
            Kind::BlueprintSaved
        });
        e.actor_id = Some(s.ids["alice"]);
        e.actor_name = "alice".into();
        e.detail = format!("entry number {i:03}");
        audit::record(&s.pool, &e).await.unwrap();
    }

    // 120 own entries and her login: pages of 50, 50, 21.
    let first = alice.get("/audit").await;
    assert_eq!(rows(&first.body), 50);
    assert!(first.body.contains("entry number 119"), "newest first");
    assert!(first.body.contains("href=\"/audit?page=2\""));
    assert!(!first.body.contains("id=\"audit-newer\""));
    let second = alice.get("/audit?page=2").await.body;
    assert_eq!(rows(&second), 50);
    assert!(second.contains("<a href=\"/audit\" id=\"audit-newer\""));
    assert!(second.contains("<a href=\"/audit?page=3\" id=\"audit-older\""));
    let third = alice.get("/audit?page=3").await.body;
    assert_eq!(rows(&third), 21);
    assert!(!third.contains("id=\"audit-older\""));
    assert_eq!(rows(&alice.get("/audit?page=9").await.body), 0);

    // By area and by exact kind; the links keep the filter.
    let area = alice.get("/audit?kind=webhook").await.body;
    assert_eq!(rows(&area), 50);
    assert!(!area.contains("blueprint.saved</code>"));
    assert!(
        area.contains("href=\"/audit?kind=webhook&#38;page=2\""),
        "{area}"
    );
    let area2 = alice.get("/audit?kind=webhook&page=2").await.body;
    assert_eq!(rows(&area2), 10);
    assert_eq!(
        rows(&alice.get("/audit?kind=login.succeeded").await.body),
        1
    );
    assert_eq!(rows(&alice.get("/audit?kind=login").await.body), 1);
    let mine = admin
        .get(&format!("/audit?user={}&kind=blueprint", s.ids["alice"]))
        .await
        .body;
    assert_eq!(rows(&mine), 50);

    // Bad values: a 400 that says what is wrong, and nothing changes.
    let before = count(&s).await;
    for (who, query, want) in [
        ("alice", "kind=bogus", "unknown kind"),
        ("alice", "kind=server.%25", "unknown kind"),
        ("alice", "server=abc", "server must be"),
        ("alice", "server=-1", "server must be"),
        ("alice", "page=0", "page must be"),
        ("alice", "page=x", "page must be"),
        ("alice", "page=999999999999", "page must be"),
        ("alice", "page=1&page=2", "malformed query"),
        ("alice", "user=1", "only administrators"),
        ("admin", "user=zero", "user must be"),
    ] {
        let c = if who == "admin" {
            &mut admin
        } else {
            &mut alice
        };
        let r = c.get(&format!("/audit?{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.body);
        assert!(
            r.body.contains(want),
            "{query}: want {want:?} in {}",
            r.body
        );
    }
    assert_eq!(count(&s).await, before, "reading the log records nothing");
    // The navigation links it for everyone.
    assert!(alice.get("/servers").await.body.contains("href=\"/audit\""));
    s.stop().await;
}

#[tokio::test]
async fn the_database_keeps_the_log_append_only_and_the_purge_removes_only_old_entries() {
    let s = TestServer::start_with(&[("LEFT4ME_AUDIT_RETENTION_DAYS", "30")]).await;
    // The housekeeping loop purges with the configured retention (its first
    // round runs at start).
    let mut days = 0i64;
    for _ in 0..100 {
        days = sqlx::query_scalar("SELECT days FROM audit_retention")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        if days == 30 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(days, 30, "the housekeeping loop set the retention");

    let mut e = Entry::new(Kind::UserCreated);
    e.actor_name = "admin".into();
    e.detail = "recent".into();
    audit::record(&s.pool, &e).await.unwrap();
    for (at, detail) in [
        ("2000-01-01T00:00:00.000Z", "very old"),
        (&*time_ago(40), "forty days old"),
        (&*time_ago(20), "twenty days old"),
    ] {
        sqlx::query(
            "INSERT INTO audit_log (at, actor_name, kind, result, detail)
             VALUES (?, 'admin', 'user.created', 'ok', ?)",
        )
        .bind(at)
        .bind(detail)
        .execute(&s.pool)
        .await
        .unwrap();
    }

    let err = sqlx::query("UPDATE audit_log SET detail = 'forged' WHERE detail = 'recent'")
        .execute(&s.pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = sqlx::query("UPDATE audit_log SET actor_id = NULL")
        .execute(&s.pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = sqlx::query("DELETE FROM audit_log WHERE detail = 'twenty days old'")
        .execute(&s.pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = sqlx::query("DELETE FROM audit_retention")
        .execute(&s.pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("kept"), "{err}");

    let gone = audit::purge(&s.pool, 30).await.unwrap();
    assert_eq!(gone, 2);
    let left: Vec<String> = sqlx::query_scalar("SELECT detail FROM audit_log ORDER BY id")
        .fetch_all(&s.pool)
        .await
        .unwrap();
    assert_eq!(left, ["recent", "twenty days old"]);
    // A shorter retention lets the purge (and only the purge) go further.
    assert_eq!(audit::purge(&s.pool, 10).await.unwrap(), 1);
    let err = sqlx::query("DELETE FROM audit_log")
        .execute(&s.pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    assert_eq!(count(&s).await, 1);
    s.stop().await;
}

/// `days` days ago in the log's time format.
fn time_ago(days: i64) -> String {
    let t = time::OffsetDateTime::now_utc() - time::Duration::days(days);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}
