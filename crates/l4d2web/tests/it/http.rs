//! Real HTTP against a real server (ephemeral port, real SQLite file):
//! access rules, CSRF, bad requests, login rate limits, user admin.

use crate::util::*;
use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};

#[tokio::test]
async fn health_assets_and_security_headers() {
    let s = TestServer::start().await;
    let mut c = s.client();
    let r = c.get("/health").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, r#"{"database":"ok","status":"ok"}"#);
    assert_security_headers(&r.headers);
    for (path, ctype) in [
        ("/assets/htmx.min.js", "text/javascript"),
        ("/assets/sse.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
    ] {
        let r = c.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with(ctype));
        assert!(r.body.len() > 1000, "{path} is embedded");
    }
    assert!(c.get("/assets/htmx.min.js").await.body.contains("htmx"));
    assert_eq!(
        c.get("/assets/../Cargo.toml").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(c.get("/assets/nope.js").await.status, StatusCode::NOT_FOUND);
    let page = c.get("/login").await;
    assert_security_headers(&page.headers);
    assert!(!page.body.contains("<script>"), "no inline script");
    s.stop().await;
}

#[tokio::test]
async fn anonymous_access_rules() {
    let s = TestServer::start().await;
    let mut c = s.client();
    assert_eq!(c.get("/").await.location(), "/login");
    for path in ["/jobs", "/jobs/1", "/jobs/1/stream", "/admin/users"] {
        let r = c.get(path).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.location(), "/login", "{path}");
    }
    // State changes without a login: 401 (admin routes) or 403 (no session → CSRF).
    for path in ["/admin/install", "/admin/users", "/admin/users/1/disable"] {
        let r = c.post(path, &[]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    assert_eq!(c.post("/logout", &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(c.get("/no/such/page").await.status, StatusCode::NOT_FOUND);
    // Nothing was created.
    let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0);
    s.stop().await;
}

#[tokio::test]
async fn user_and_admin_access_rules() {
    let s = TestServer::start().await;
    let jobs = crate::util::enqueuer(s.pool.clone());
    let alice_job = crate::util::queue_install(&jobs, Some(s.ids["alice"]), None).await;
    let mut alice = s.login(USER).await;
    let mut bob = s.login(USER2).await;
    let mut admin = s.login(ADMIN).await;

    assert_eq!(alice.get("/jobs").await.status, StatusCode::OK);
    assert!(alice
        .get("/jobs")
        .await
        .body
        .contains(&format!("/jobs/{alice_job}")));
    assert!(!bob
        .get("/jobs")
        .await
        .body
        .contains(&format!("/jobs/{alice_job}")));
    assert_eq!(
        alice.get(&format!("/jobs/{alice_job}")).await.status,
        StatusCode::OK
    );
    // Another user's job does not exist for bob.
    assert_eq!(
        bob.get(&format!("/jobs/{alice_job}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        bob.get(&format!("/jobs/{alice_job}/stream")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        admin.get(&format!("/jobs/{alice_job}")).await.status,
        StatusCode::OK
    );
    // Unknown and malformed ids.
    for path in [
        "/jobs/999999",
        "/jobs/abc",
        "/jobs/-1",
        "/jobs/999999/stream",
    ] {
        assert_eq!(
            admin.get(path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    // Admin pages: users get 403 and change nothing.
    assert_eq!(
        alice.get("/admin/users").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        alice.post("/admin/install", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    let bob_id = s.ids["bob"].to_string();
    assert_eq!(
        alice
            .post(&format!("/admin/users/{bob_id}/delete"), &[])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        alice
            .post(
                "/admin/users",
                &[("username", "mallory"), ("password", "password123")]
            )
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert!(l4d2web::accounts::find_by_name(&s.pool, "bob")
        .await
        .unwrap()
        .is_some());
    assert!(l4d2web::accounts::find_by_name(&s.pool, "mallory")
        .await
        .unwrap()
        .is_none());
    let r = admin.get("/admin/users").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("alice") && r.body.contains("bob"));
    for path in [
        "/admin/users/999999/disable",
        "/admin/users/abc/delete",
        &format!("/admin/users/{bob_id}/explode"),
    ] {
        assert_eq!(
            admin.post(path, &[]).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    s.stop().await;
}

/// Every row of every table but `sessions` (whose last-seen times move on
/// each request), as text: equal snapshots mean nothing changed.
async fn snapshot(pool: &sqlx::SqlitePool) -> Vec<String> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
         AND name NOT IN ('sessions', '_sqlx_migrations') ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut rows = Vec::new();
    for table in tables {
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY cid")
                .bind(&table)
                .fetch_all(pool)
                .await
                .unwrap();
        let row = columns
            .iter()
            .map(|c| format!("quote(\"{c}\")"))
            .collect::<Vec<_>>()
            .join(" || ',' || ");
        let sql = format!("SELECT '{table}: ' || {row} FROM \"{table}\" ORDER BY 1");
        rows.extend(
            sqlx::query_scalar::<_, String>(&sql)
                .fetch_all(pool)
                .await
                .unwrap(),
        );
    }
    rows
}

/// The paths a POST route template stands for, with ids of things the
/// admin owns (or, for user administration, another user) and every action.
fn post_paths(template: &str, ids: &BTreeMap<&str, String>) -> Vec<String> {
    let actions: &[&str] = if !template.contains("{action}") {
        &[""]
    } else if template.starts_with("/admin/users/") {
        &[
            "disable",
            "enable",
            "delete",
            "unlock",
            "password",
            "reset-two-factor",
        ]
    } else {
        &[""]
    };
    let area = template.trim_start_matches('/').split('/').next().unwrap();
    let area = if template.starts_with("/admin/users/") {
        "users"
    } else if let Some(rest) = template.strip_prefix("/api/v1/") {
        rest.split('/').next().unwrap()
    } else {
        area
    };
    actions
        .iter()
        .map(|action| {
            let mut path = template
                .replace("{action}", action)
                .replace("{schedule}", &ids["schedules"])
                .replace("{user}", &ids["users"]);
            if path.contains("{id}") {
                let id = ids
                    .get(area)
                    .unwrap_or_else(|| panic!("no id for {template}"));
                path = path.replace("{id}", id);
            }
            assert!(!path.contains('{'), "unfilled parameter in {template}");
            path
        })
        .collect()
}

#[tokio::test]
async fn csrf_is_required_on_every_state_change() {
    let s = TestServer::start().await;
    let mut admin = s.login(ADMIN).await;
    let other = s.login(USER).await;
    let foreign = other.csrf.clone().unwrap();
    // Something of each kind for the id routes to name, made with a token.
    let r = admin
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
    let blueprint = r.location().trim_start_matches("/blueprints/").to_string();
    let r = admin
        .post(
            "/servers",
            &[("name", "alpha"), ("blueprint_id", &blueprint)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let server = r.location().trim_start_matches("/servers/").to_string();
    let r = admin
        .post("/overlays", &[("name", "cfgs"), ("kind", "script")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let overlay = r.location().trim_start_matches("/overlays/").to_string();
    let r = admin
        .post(
            &format!("/servers/{server}/schedules"),
            &[("action", "restart"), ("cron", "0 5 * * *")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let schedule: i64 = sqlx::query_scalar("SELECT MAX(id) FROM schedules")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    // A webhook of the admin's (through the domain: its loopback target
    // needs private targets allowed; nothing is ever sent to it here).
    let hook = l4d2web::alerts::WebhookInput::validate(
        "ops",
        "http://127.0.0.1:9/hook",
        "json",
        ["server.crashed"],
    )
    .unwrap();
    let webhook = l4d2web::alerts::create(&s.pool, s.ids["admin"], &hook, true)
        .await
        .unwrap()
        .id
        .to_string();
    let (_, token) = l4d2web::auth::pat::create(&s.pool, s.ids["admin"], "ci", "operate", "30")
        .await
        .unwrap();
    let ids = BTreeMap::from([
        ("tokens", token.id.to_string()),
        ("alerts", webhook),
        ("blueprints", blueprint),
        ("servers", server),
        ("overlays", overlay),
        ("schedules", schedule.to_string()),
        ("users", s.ids["bob"].to_string()),
    ]);
    let before = snapshot(&s.pool).await;

    let posts: Vec<&str> = l4d2web::web::route_table()
        .into_iter()
        .filter(|r| r.method == Method::POST && !r.api)
        .map(|r| r.path)
        .collect();
    // The API's POSTs take no CSRF token, and refuse a cookie session even
    // with a valid one: only a bearer token authenticates them.
    let api_posts: Vec<&str> = l4d2web::web::route_table()
        .into_iter()
        .filter(|r| r.method == Method::POST && r.api)
        .map(|r| r.path)
        .collect();
    assert!(api_posts.len() >= 2, "{api_posts:?}");
    let valid = admin.csrf.clone().unwrap();
    for template in api_posts {
        for path in post_paths(template, &ids) {
            admin.header("x-csrf-token", &valid);
            let r = admin
                .request(
                    Method::POST,
                    &path,
                    Some((r#"{"action":"start"}"#.to_string(), "application/json")),
                )
                .await;
            admin.extra_headers.clear();
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "cookie session on {path}"
            );
            assert!(r.body.contains("cookie"), "{path}: {}", r.body);
        }
    }
    assert!(
        posts.len() >= 15,
        "the route table lists every POST: {posts:?}"
    );
    let mut tried = 0;
    for template in posts {
        for path in post_paths(template, &ids) {
            // Fields every form of the app could want, so only the token is missing.
            let fields = [
                ("username", "x"),
                ("password", "yyyyyyyyy"),
                ("name", "x"),
                ("kind", "script"),
                ("args", "+map c1m1_hotel"),
                ("config", ""),
                ("command", "status"),
                ("blueprint_id", ids["blueprints"].as_str()),
            ];
            let body = fields
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&");
            let r = admin
                .request(
                    Method::POST,
                    &path,
                    Some((body, "application/x-www-form-urlencoded")),
                )
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "missing token on {path}");
            assert!(r.body.contains("CSRF"), "{path}: {}", r.body);
            // A wrong token, another session's valid token, an empty one.
            for token in ["0".repeat(64), foreign.clone(), String::new()] {
                let mut with_token = vec![("csrf_token", token.as_str())];
                with_token.extend(fields);
                let r = admin.post(&path, &with_token).await;
                assert_eq!(r.status, StatusCode::FORBIDDEN, "token {token:?} on {path}");
            }
            tried += 1;
        }
    }
    assert!(tried >= 25, "{tried} paths tried");
    assert_eq!(
        snapshot(&s.pool).await,
        before,
        "a refused POST changed something"
    );
    assert_eq!(admin.get("/jobs").await.status, StatusCode::OK);
    // The header form (used by HTMX) is accepted.
    let token = admin.csrf.clone().unwrap();
    admin.header("x-csrf-token", &token);
    let r = admin.request(Method::POST, "/logout", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(admin.get("/jobs").await.location(), "/login");
    // The login form needs the token of its own cookie.
    let mut c = s.client();
    c.get("/login").await;
    let r = c
        .post(
            "/login",
            &[
                ("csrf_token", "bad"),
                ("username", ADMIN.0),
                ("password", ADMIN.1),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let mut fresh = s.client();
    let r = fresh
        .post("/login", &[("username", ADMIN.0), ("password", ADMIN.1)])
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "login without a login cookie"
    );
    s.stop().await;
}

#[tokio::test]
async fn bad_requests() {
    let s = TestServer::start().await;
    let mut admin = s.login(ADMIN).await;
    // Oversized body.
    let huge = "a".repeat(64 * 1024);
    let r = admin
        .post("/admin/users", &[("username", "big"), ("password", &huge)])
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Wrong methods.
    for (m, path) in [
        (Method::GET, "/logout"),
        (Method::DELETE, "/jobs"),
        (Method::PUT, "/admin/users"),
        (Method::POST, "/health"),
        (Method::GET, "/admin/install"),
    ] {
        let r = admin.request(m.clone(), path, None).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{m} {path}");
    }
    // Malformed forms: missing field, wrong content type, broken encoding.
    let r = admin.post("/admin/users", &[("username", "carl")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body.contains("malformed form") && r.body.contains("password"),
        "{}",
        r.body
    );
    let token = admin.csrf.clone().unwrap();
    admin.header("x-csrf-token", &token);
    let r = admin
        .request(
            Method::POST,
            "/admin/users",
            Some((r#"{"username":"carl"}"#.into(), "application/json")),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("content type"), "{}", r.body);
    let r = admin
        .request(
            Method::POST,
            "/admin/users",
            Some((
                "username=%ZZ&password=%".into(),
                "application/x-www-form-urlencoded",
            )),
        )
        .await;
    assert!(
        r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        r.status
    );
    // Field errors are shown in the form and nothing is created.
    let r = admin
        .post(
            "/admin/users",
            &[("username", "bad name!"), ("password", "longenough1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body.contains("field-error") && r.body.contains("is invalid"),
        "{}",
        r.body
    );
    let r = admin
        .post(
            "/admin/users",
            &[("username", "carl"), ("password", "short")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("too short"));
    assert!(
        r.body.contains("value=\"carl\""),
        "entered username is kept"
    );
    let r = admin
        .post(
            "/admin/users",
            &[("username", "ALICE"), ("password", "longenough1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("already exists"));
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(n, 3);
    // Templates escape user input.
    let r = admin
        .post(
            "/admin/users",
            &[
                ("username", "<script>x</script>"),
                ("password", "longenough1"),
            ],
        )
        .await;
    assert!(!r.body.contains("<script>x</script>"), "escaped");
    assert!(
        r.body.contains("&lt;script&gt;") || r.body.contains("&#60;script&#62;"),
        "{}",
        r.body
    );
    s.stop().await;
}

#[tokio::test]
async fn login_logout_and_failed_login() {
    let s = TestServer::start().await;
    let mut c = s.client();
    let r = c.login(ADMIN.0, "wrong-password").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("Wrong username or password"));
    let r = c.login("nobody", "whatever-pass").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.body.contains("Wrong username or password"),
        "same message for unknown users"
    );
    let r = c
        .post("/login", &[("username", ""), ("password", "")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let anon_cookie = c.cookie.clone().unwrap();
    let r = c.login(ADMIN.0, ADMIN.1).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/servers");
    let set = r.headers["set-cookie"].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && !set.contains("Secure"),
        "{set}"
    );
    assert_ne!(
        c.cookie.as_deref(),
        Some(anon_cookie.as_str()),
        "session id rotates on login"
    );
    // The pre-login session is gone.
    let mut old = s.client();
    old.cookie = Some(anon_cookie);
    assert_eq!(old.get("/jobs").await.location(), "/login");
    assert_eq!(c.get("/").await.location(), "/servers");
    assert_eq!(c.get("/login").await.location(), "/servers");
    let r = c.post("/logout", &[]).await;
    assert_eq!(r.location(), "/login");
    assert!(c.cookie.is_none(), "cookie cleared");
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE user_id IS NOT NULL")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    s.stop().await;
}

async fn session_rows(s: &TestServer) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
        .fetch_one(&s.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_login_form_stores_nothing_until_a_login_succeeds() {
    let s = TestServer::start().await;
    let http = reqwest::Client::new();
    for _ in 0..1000 {
        let r = http.get(format!("{}/login", s.base)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert_eq!(session_rows(&s).await, 0, "GET /login wrote sessions");
    let mut c = s.client();
    let page = c.get("/login").await;
    let set = page.headers["set-cookie"].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Max-Age=3600"),
        "{set}"
    );
    assert_eq!(c.cookie, c.csrf, "the cookie carries the form's token");
    // Failed logins store nothing either.
    assert_eq!(
        c.login(ADMIN.0, "wrong-password").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(session_rows(&s).await, 0);
    assert_eq!(
        c.login(ADMIN.0, ADMIN.1).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(session_rows(&s).await, 1);
    assert_eq!(c.get("/jobs").await.status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn forged_expired_and_mismatched_login_tokens_are_refused() {
    let s = TestServer::start().await;
    let secret = config_for(std::path::Path::new("/nonexistent"), &[]).secret_key;
    let now = l4d2web::db::now_unix();
    let login = [("username", ADMIN.0), ("password", ADMIN.1)];
    // POSTs the login with `cookie` in the session cookie and `token` in the form.
    let attempt = |cookie: String, token: String| {
        let mut c = s.client();
        c.cookie = Some(cookie);
        c.csrf = Some(token);
        async move { c.post("/login", &login).await }
    };
    let mut a = s.client();
    a.get("/login").await;
    let token_a = a.csrf.clone().unwrap();
    let mut b = s.client();
    b.get("/login").await;
    let token_b = b.csrf.clone().unwrap();
    let (nonce, rest) = token_a.split_once('.').unwrap();
    let (_, mac) = rest.split_once('.').unwrap();
    let expired = l4d2web::auth::issue_login_token(&secret, now - 7200).unwrap();
    let foreign =
        l4d2web::auth::issue_login_token(b"some-other-secret-key-0123456789abc", now).unwrap();
    let stretched = format!("{nonce}.{}.{mac}", now + 600);
    for (what, cookie, token) in [
        ("mismatched", token_a.clone(), token_b.clone()),
        ("no cookie", String::new(), token_a.clone()),
        ("no form token", token_a.clone(), String::new()),
        ("forged", "x".repeat(20), "x".repeat(20)),
        ("expiry changed", stretched.clone(), stretched.clone()),
        ("expired", expired.clone(), expired.clone()),
        ("other key", foreign.clone(), foreign.clone()),
    ] {
        let r = attempt(cookie, token).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}: {}", r.body);
        assert!(r.body.contains("CSRF"), "{what}: {}", r.body);
    }
    // A logged-in session's cookie is no login token either.
    let admin = s.login(ADMIN).await;
    let r = attempt(admin.cookie.clone().unwrap(), token_a.clone()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(session_rows(&s).await, 1, "only the one real login");
    // The real pair works, also from a second tab of the same browser.
    assert_eq!(
        attempt(token_b.clone(), token_b).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        attempt(token_a.clone(), token_a).await.status,
        StatusCode::SEE_OTHER
    );
    s.stop().await;
}

#[tokio::test]
async fn secure_cookie_when_configured() {
    let s = TestServer::start_with(&[("SESSION_COOKIE_SECURE", "true")]).await;
    let mut c = s.client();
    let r = c.get("/login").await;
    assert!(r.headers["set-cookie"]
        .to_str()
        .unwrap()
        .contains("; Secure"));
    s.stop().await;
}

#[tokio::test]
async fn many_usernames_from_one_ip_are_limited() {
    let s = TestServer::start_with(&[
        ("LEFT4ME_LOGIN_LIMIT_PER_IP", "5"),
        ("LEFT4ME_LOGIN_LIMIT_PER_USER", "100"),
    ])
    .await;
    let mut c = s.client();
    for i in 0..5 {
        let r = c.login(&format!("user{i}"), "wrong-password").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    // Even the right password is refused now, with Retry-After.
    let r = c.login(ADMIN.0, ADMIN.1).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.body.contains("Too many login attempts"));
    assert!(r.headers.get("retry-after").is_some());
    // X-Forwarded-For from an untrusted peer is ignored: still limited.
    c.header("x-forwarded-for", "203.0.113.9");
    assert_eq!(
        c.login(ADMIN.0, ADMIN.1).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    s.stop().await;
}

#[tokio::test]
async fn guessing_a_password_cannot_lock_its_owner_out() {
    let s = TestServer::start_with(&[
        ("LEFT4ME_LOGIN_LIMIT_PER_IP", "100"),
        ("LEFT4ME_LOGIN_LIMIT_PER_USER", "3"),
        ("LEFT4ME_TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let mut attacker = s.client();
    attacker.header("x-forwarded-for", "198.51.100.1");
    for _ in 0..3 {
        assert_eq!(
            attacker.login(ADMIN.0, "wrong-password").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // The guessing client is refused, even with the right password, and
    // case does not give it fresh attempts.
    let r = attacker.login("ADMIN", ADMIN.1).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.get("retry-after").is_some());
    // The owner, from an address that has not been failing, gets in.
    let mut owner = s.client();
    owner.header("x-forwarded-for", "203.0.113.5");
    assert_eq!(
        owner.login(ADMIN.0, ADMIN.1).await.status,
        StatusCode::SEE_OTHER
    );
    // More guessing from more addresses only slows the username down: the
    // owner still gets in (after a bounded wait), the guessers get 401.
    for i in 2..4 {
        let mut other = s.client();
        other.header("x-forwarded-for", &format!("198.51.100.{i}"));
        for _ in 0..2 {
            assert_eq!(
                other.login(ADMIN.0, "wrong-password").await.status,
                StatusCode::UNAUTHORIZED,
                "never 429 for a new client"
            );
        }
    }
    let mut owner = s.client();
    owner.header("x-forwarded-for", "203.0.113.6");
    assert_eq!(
        owner.login(ADMIN.0, ADMIN.1).await.status,
        StatusCode::SEE_OTHER
    );
    // Other usernames from the guessing client are fine.
    assert_eq!(
        attacker.login(USER.0, USER.1).await.status,
        StatusCode::SEE_OTHER
    );
    s.stop().await;
}

#[tokio::test]
async fn admin_unlock_clears_a_users_login_limits() {
    let s = TestServer::start_with(&[
        ("LEFT4ME_LOGIN_LIMIT_PER_IP", "100"),
        ("LEFT4ME_LOGIN_LIMIT_PER_USER", "2"),
    ])
    .await;
    let mut admin = s.login(ADMIN).await;
    let alice_id = s.ids["alice"];
    let mut alice = s.client();
    for _ in 0..2 {
        assert_eq!(
            alice.login(USER.0, "wrong-password").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        alice.login(USER.0, USER.1).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let page = admin.get("/admin/users").await;
    assert!(
        page.body
            .contains(&format!("action=\"/admin/users/{alice_id}/unlock\"")),
        "{}",
        page.body
    );
    // Only administrators unlock.
    let mut bob = s.login(USER2).await;
    assert_eq!(
        bob.post(&format!("/admin/users/{alice_id}/unlock"), &[])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        alice.login(USER.0, USER.1).await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "still locked"
    );
    let r = admin
        .post(&format!("/admin/users/{alice_id}/unlock"), &[])
        .await;
    assert_eq!(r.location(), "/admin/users");
    assert!(admin
        .get("/admin/users")
        .await
        .body
        .contains("Login limits of alice cleared"));
    assert_eq!(
        alice.login(USER.0, USER.1).await.status,
        StatusCode::SEE_OTHER
    );
    s.stop().await;
}

#[tokio::test]
async fn trusted_proxy_separates_clients_by_forwarded_ip() {
    let s = TestServer::start_with(&[
        ("LEFT4ME_LOGIN_LIMIT_PER_IP", "2"),
        ("LEFT4ME_LOGIN_LIMIT_PER_USER", "100"),
        ("LEFT4ME_TRUSTED_PROXIES", "127.0.0.0/8"),
    ])
    .await;
    let mut c = s.client();
    c.header("x-forwarded-for", "192.0.2.1");
    for _ in 0..2 {
        assert_eq!(
            c.login("x", "wrong-password").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        c.login("x", "wrong-password").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A client-supplied left entry does not help: the rightmost untrusted hop counts.
    c.header("x-forwarded-for", "10.10.10.10, 192.0.2.1");
    assert_eq!(
        c.login("x", "wrong-password").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another real client behind the proxy is not affected.
    c.header("x-forwarded-for", "192.0.2.2");
    assert_eq!(
        c.login(ADMIN.0, ADMIN.1).await.status,
        StatusCode::SEE_OTHER
    );
    s.stop().await;
}

#[tokio::test]
async fn admin_manages_users() {
    let s = TestServer::start().await;
    let mut admin = s.login(ADMIN).await;
    let mut alice = s.login(USER).await;
    let alice_id = s.ids["alice"];
    // Create.
    let r = admin
        .post(
            "/admin/users",
            &[
                ("username", "carol"),
                ("password", "carol-password"),
                ("is_admin", "on"),
            ],
        )
        .await;
    assert_eq!(r.location(), "/admin/users");
    let page = admin.get("/admin/users").await;
    assert!(page.body.contains("User carol created."), "flash shown");
    assert!(
        !admin
            .get("/admin/users")
            .await
            .body
            .contains("User carol created."),
        "flash shown once"
    );
    let carol = l4d2web::accounts::find_by_name(&s.pool, "carol")
        .await
        .unwrap()
        .unwrap();
    assert!(carol.is_admin && carol.password_hash.starts_with("$argon2id$"));
    s.login(("carol", "carol-password")).await;
    // Disable: alice's session ends and she cannot log in.
    admin
        .post(&format!("/admin/users/{alice_id}/disable"), &[])
        .await;
    assert_eq!(alice.get("/jobs").await.location(), "/login");
    assert_eq!(
        s.client().login(USER.0, USER.1).await.status,
        StatusCode::UNAUTHORIZED
    );
    admin
        .post(&format!("/admin/users/{alice_id}/enable"), &[])
        .await;
    let mut alice = s.login(USER).await;
    // Reset password: old sessions end, old password fails, new one works.
    let r = admin
        .post(
            &format!("/admin/users/{alice_id}/password"),
            &[("password", "short")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("too short"));
    assert_eq!(
        alice.get("/jobs").await.status,
        StatusCode::OK,
        "failed reset changes nothing"
    );
    admin
        .post(
            &format!("/admin/users/{alice_id}/password"),
            &[("password", "new-alice-password")],
        )
        .await;
    assert_eq!(alice.get("/jobs").await.location(), "/login");
    assert_eq!(
        s.client().login(USER.0, USER.1).await.status,
        StatusCode::UNAUTHORIZED
    );
    s.login((USER.0, "new-alice-password")).await;
    // Admins cannot lock themselves out.
    let me = s.ids["admin"];
    for action in ["disable", "delete"] {
        let r = admin
            .post(&format!("/admin/users/{me}/{action}"), &[])
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(r.body.contains("your own account"));
    }
    // Delete.
    admin
        .post(&format!("/admin/users/{alice_id}/delete"), &[])
        .await;
    assert!(l4d2web::accounts::find_by_id(&s.pool, alice_id)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        admin
            .post(&format!("/admin/users/{alice_id}/delete"), &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    s.stop().await;
}
