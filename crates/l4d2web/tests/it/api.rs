//! The HTTP API (`/api/v1`): personal access tokens (shown once, stored
//! hashed, scoped, expiring, revocable), bearer authentication only (a
//! cookie session is refused), the pages' access rules, JSON errors that
//! name the field, the job log stream, and the OpenAPI document.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::servers::{create_blueprint, create_server};
use crate::util::*;

/// Creates a token on the Tokens page; returns it (as shown once).
pub(crate) async fn create_token(c: &mut Client, name: &str, scope: &str) -> String {
    let r = c
        .post(
            "/tokens",
            &[("name", name), ("scope", scope), ("days", "30")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let marker = "id=\"token-value\">";
    let i = r.body.find(marker).expect("the new token is shown") + marker.len();
    let token = r.body[i..].split('<').next().unwrap().to_string();
    assert!(token.starts_with("l4m_") && token.len() == 47, "{token}");
    token
}

pub(crate) struct ApiResp {
    pub status: StatusCode,
    pub content_type: String,
    pub json: Value,
}

/// One API request with `auth` as the Authorization header (if any).
pub(crate) async fn call(
    s: &TestServer,
    method: Method,
    path: &str,
    auth: Option<&str>,
    body: Option<(&str, &str)>,
) -> ApiResp {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", s.base));
    if let Some(a) = auth {
        req = req.header(AUTHORIZATION, a);
    }
    if let Some((ctype, b)) = body {
        req = req.header(CONTENT_TYPE, ctype).body(b.to_string());
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let content_type = res
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = res.text().await.unwrap();
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{path}: not JSON ({status}): {text}"));
    ApiResp {
        status,
        content_type,
        json,
    }
}

pub(crate) async fn get(s: &TestServer, path: &str, token: &str) -> ApiResp {
    call(s, Method::GET, path, Some(&format!("Bearer {token}")), None).await
}

async fn act(s: &TestServer, server: i64, token: &str, action: &str) -> ApiResp {
    call(
        s,
        Method::POST,
        &format!("/api/v1/servers/{server}/actions"),
        Some(&format!("Bearer {token}")),
        Some(("application/json", &json!({ "action": action }).to_string())),
    )
    .await
}

async fn job_count(s: &TestServer) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(&s.pool)
        .await
        .unwrap()
}

fn assert_error(r: &ApiResp, status: StatusCode, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.json);
    assert!(
        r.content_type.starts_with("application/json"),
        "{what}: {}",
        r.content_type
    );
    assert!(r.json["error"].is_string(), "{what}: {}", r.json);
}

#[tokio::test]
async fn a_token_is_shown_once_and_stored_as_a_hash() {
    let s = TestServer::start().await;
    let mut alice = s.login(USER).await;
    let token = create_token(&mut alice, "ci", "read").await;
    let page = alice.get("/tokens").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("ci"), "listed");
    assert!(
        !page.body.contains(&token),
        "the token is never shown again"
    );
    assert!(!page.body.contains(&token[4..20]));
    let (hash, scope): (String, String) =
        sqlx::query_as("SELECT token_hash, scope FROM api_tokens WHERE name = 'ci'")
            .fetch_one(&s.pool)
            .await
            .unwrap();
    assert_eq!(hash, hex::encode(Sha256::digest(token.as_bytes())));
    assert_eq!(scope, "read");
    // Nowhere in the database is the token itself.
    let dump: Vec<String> = sqlx::query_scalar(
        "SELECT quote(id) || name || scope || token_hash || created_at || expires_at FROM api_tokens",
    )
    .fetch_all(&s.pool)
    .await
    .unwrap();
    assert!(dump.iter().all(|row| !row.contains(&token[4..])));
    // Bad input re-renders the form and creates nothing.
    for (name, scope, days) in [
        ("", "read", "30"),
        ("x", "admin", "30"),
        ("x", "read", "0"),
        ("x", "read", "366"),
        ("x", "read", "never"),
    ] {
        let r = alice
            .post(
                "/tokens",
                &[("name", name), ("scope", scope), ("days", days)],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name} {scope} {days}");
        assert!(!r.body.contains("id=\"token-value\""));
    }
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
    // Another user cannot revoke it.
    let mut bob = s.login(USER2).await;
    let id: i64 = sqlx::query_scalar("SELECT id FROM api_tokens")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    let r = bob.post(&format!("/tokens/{id}/revoke"), &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&s, "/api/v1/me", &token).await.status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn a_token_lists_and_acts_and_its_use_is_recorded() {
    let s = TestServer::start().await;
    let mut alice = s.login(USER).await;
    let bp = create_blueprint(&mut alice, "base", "+map c1m1_hotel", "").await;
    let server = create_server(&mut alice, "api-1", bp).await;
    let token = create_token(&mut alice, "ops", "operate").await;

    let me = get(&s, "/api/v1/me", &token).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json["username"], "alice");
    assert_eq!(me.json["token"]["scope"], "operate");

    let list = get(&s, "/api/v1/servers", &token).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.json);
    let servers = list.json.as_array().unwrap();
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0]["id"], server);
    assert_eq!(servers[0]["name"], "api-1");
    assert_eq!(servers[0]["role"], "owner");
    assert_eq!(servers[0]["desired_state"], "stopped");

    let one = get(&s, &format!("/api/v1/servers/{server}"), &token).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.json);
    assert_eq!(one.json["crash_count"], 0);
    assert!(one.json.get("observed_state").is_some());
    assert!(one.json.get("drift").is_some());
    let live = get(&s, &format!("/api/v1/servers/{server}/live"), &token).await;
    assert_eq!(live.status, StatusCode::OK, "{}", live.json);
    assert!(live.json["players"].is_array());

    let before = job_count(&s).await;
    let r = act(&s, server, &token, "start").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    let job = r.json["job_id"].as_i64().unwrap();
    assert_eq!(job_count(&s).await, before + 1);
    let (owner, desired): (i64, String) = sqlx::query_as(
        "SELECT j.user_id, s.desired_state FROM jobs j, servers s WHERE j.id = ? AND s.id = ?",
    )
    .bind(job)
    .bind(server)
    .fetch_one(&s.pool)
    .await
    .unwrap();
    assert_eq!(owner, s.ids["alice"]);
    assert_eq!(desired, "running");
    s.wait_job(job).await;
    let detail = get(&s, &format!("/api/v1/jobs/{job}"), &token).await;
    assert_eq!(detail.status, StatusCode::OK);
    assert_eq!(detail.json["id"], job);
    assert!(detail.json["title"].as_str().unwrap().contains("api-1"));
    assert!(detail.json["lines"].is_array());
    let jobs = get(&s, "/api/v1/jobs", &token).await;
    assert!(jobs.json.as_array().unwrap().iter().any(|j| j["id"] == job));

    let blueprints = get(&s, "/api/v1/blueprints", &token).await;
    assert_eq!(blueprints.json[0]["id"], bp);
    let b = get(&s, &format!("/api/v1/blueprints/{bp}"), &token).await;
    assert_eq!(b.json["servers"][0]["name"], "api-1");
    let r = alice
        .post("/overlays", &[("name", "cfgs"), ("kind", "script")])
        .await;
    let overlay: i64 = r
        .location()
        .trim_start_matches("/overlays/")
        .parse()
        .unwrap();
    let o = get(&s, &format!("/api/v1/overlays/{overlay}"), &token).await;
    assert_eq!(o.json["kind"], "script");
    assert_eq!(o.json["editable"], true);
    assert!(get(&s, "/api/v1/overlays", &token)
        .await
        .json
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["id"] == overlay));
    let build = call(
        &s,
        Method::POST,
        &format!("/api/v1/overlays/{overlay}/build"),
        Some(&format!("Bearer {token}")),
        None,
    )
    .await;
    assert_eq!(build.status, StatusCode::ACCEPTED, "{}", build.json);
    assert!(build.json["job_id"].as_i64().is_some());

    // Last use: time and address, shown on the Tokens page.
    let (used, ip): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT last_used_at, last_used_ip FROM api_tokens")
            .fetch_one(&s.pool)
            .await
            .unwrap();
    assert!(used.is_some());
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));
    assert!(alice.get("/tokens").await.body.contains("from 127.0.0.1"));
    s.stop().await;
}

#[tokio::test]
async fn refused_tokens_and_cookie_sessions_get_401_and_change_nothing() {
    let s = TestServer::start().await;
    let mut alice = s.login(USER).await;
    let bp = create_blueprint(&mut alice, "base", "+map c1m1_hotel", "").await;
    let server = create_server(&mut alice, "api-2", bp).await;
    let read = create_token(&mut alice, "reader", "read").await;
    let expired = create_token(&mut alice, "old", "operate").await;
    let revoked = create_token(&mut alice, "gone", "operate").await;
    sqlx::query("UPDATE api_tokens SET expires_at = '2000-01-01T00:00:00Z' WHERE name = 'old'")
        .execute(&s.pool)
        .await
        .unwrap();
    let id: i64 = sqlx::query_scalar("SELECT id FROM api_tokens WHERE name = 'gone'")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(get(&s, "/api/v1/me", &revoked).await.status, StatusCode::OK);
    let r = alice.post(&format!("/tokens/{id}/revoke"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let before = job_count(&s).await;

    // A read token reads but cannot act.
    assert_eq!(
        get(&s, "/api/v1/servers", &read).await.status,
        StatusCode::OK
    );
    let r = act(&s, server, &read, "start").await;
    assert_error(&r, StatusCode::FORBIDDEN, "read token acting");
    assert!(r.json["error"].as_str().unwrap().contains("read"));

    for (what, auth) in [
        ("expired", format!("Bearer {expired}")),
        ("revoked", format!("Bearer {revoked}")),
        ("garbage", "Bearer garbage".to_string()),
        ("unknown", format!("Bearer l4m_{}", "A".repeat(43))),
        ("no scheme", expired.clone()),
        ("basic", "Basic YWxpY2U6cGFzc3dvcmQ=".to_string()),
        ("empty", "Bearer ".to_string()),
    ] {
        for (method, path, body) in [
            (Method::GET, "/api/v1/servers".to_string(), None),
            (
                Method::POST,
                format!("/api/v1/servers/{server}/actions"),
                Some(("application/json", r#"{"action":"start"}"#)),
            ),
        ] {
            let r = call(&s, method, &path, Some(&auth), body).await;
            assert_error(&r, StatusCode::UNAUTHORIZED, what);
        }
    }
    // No header at all.
    let r = call(&s, Method::GET, "/api/v1/me", None, None).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "anonymous");

    // A logged-in browser session is not an API credential, CSRF token or not.
    let cookie = format!("left4me_session={}", alice.cookie.clone().unwrap());
    let csrf = alice.csrf.clone().unwrap();
    for (method, path) in [
        (Method::GET, "/api/v1/servers".to_string()),
        (Method::POST, format!("/api/v1/servers/{server}/actions")),
    ] {
        let res = reqwest::Client::new()
            .request(method, format!("{}{path}", s.base))
            .header(COOKIE, &cookie)
            .header("x-csrf-token", &csrf)
            .header(CONTENT_TYPE, "application/json")
            .body(r#"{"action":"start"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body: Value = res.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("cookie"), "{body}");
    }
    assert_eq!(job_count(&s).await, before, "nothing was queued");
    let desired: String = sqlx::query_scalar("SELECT desired_state FROM servers WHERE id = ?")
        .bind(server)
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(desired, "stopped");

    // A disabled user's tokens stop working.
    assert_eq!(get(&s, "/api/v1/me", &read).await.status, StatusCode::OK);
    l4d2web::accounts::set_disabled(&s.pool, s.ids["alice"], true)
        .await
        .unwrap();
    assert_error(
        &get(&s, "/api/v1/me", &read).await,
        StatusCode::UNAUTHORIZED,
        "disabled user",
    );
    s.stop().await;
}

#[tokio::test]
async fn a_shared_server_follows_the_role_and_strangers_get_404() {
    let s = TestServer::start().await;
    let mut alice = s.login(USER).await;
    let bp = create_blueprint(&mut alice, "base", "+map c1m1_hotel", "").await;
    let server = create_server(&mut alice, "shared-api", bp).await;
    let r = alice
        .post(
            &format!("/servers/{server}/shares"),
            &[("username", "bob"), ("role", "viewer")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let mut bob = s.login(USER2).await;
    let viewer = create_token(&mut bob, "bob-ops", "operate").await;
    let password = "carol-password-1";
    l4d2web::accounts::create_user(&s.pool, "carol", password, false)
        .await
        .unwrap();
    let mut carol = s.login(("carol", password)).await;
    let stranger = create_token(&mut carol, "carol-ops", "operate").await;
    let before = job_count(&s).await;

    let list = get(&s, "/api/v1/servers", &viewer).await;
    assert_eq!(list.json[0]["role"], "viewer");
    let one = get(&s, &format!("/api/v1/servers/{server}"), &viewer).await;
    assert_eq!(one.status, StatusCode::OK);
    for action in ["start", "stop", "restart", "reset", "delete"] {
        let r = act(&s, server, &viewer, action).await;
        assert_error(&r, StatusCode::FORBIDDEN, action);
    }
    // The owner's blueprint stays the owner's.
    assert_error(
        &get(&s, &format!("/api/v1/blueprints/{bp}"), &viewer).await,
        StatusCode::NOT_FOUND,
        "another's blueprint",
    );

    assert_eq!(get(&s, "/api/v1/servers", &stranger).await.json, json!([]));
    for path in [
        format!("/api/v1/servers/{server}"),
        format!("/api/v1/servers/{server}/live"),
        "/api/v1/servers/999999".to_string(),
        "/api/v1/servers/abc".to_string(),
    ] {
        assert_error(
            &get(&s, &path, &stranger).await,
            StatusCode::NOT_FOUND,
            &path,
        );
    }
    assert_error(
        &act(&s, server, &stranger, "start").await,
        StatusCode::NOT_FOUND,
        "stranger acting",
    );
    assert_eq!(job_count(&s).await, before);

    // An operator may start but not reset or delete.
    let r = alice
        .post(
            &format!("/servers/{server}/shares"),
            &[("username", "bob"), ("role", "operator")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        act(&s, server, &viewer, "start").await.status,
        StatusCode::ACCEPTED
    );
    assert_error(
        &act(&s, server, &viewer, "reset").await,
        StatusCode::FORBIDDEN,
        "operator reset",
    );
    // The job of a shared server is visible to bob, not to carol.
    let job: i64 = sqlx::query_scalar("SELECT MAX(id) FROM jobs")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(
        get(&s, &format!("/api/v1/jobs/{job}"), &viewer)
            .await
            .status,
        StatusCode::OK
    );
    assert_error(
        &get(&s, &format!("/api/v1/jobs/{job}"), &stranger).await,
        StatusCode::NOT_FOUND,
        "stranger's job",
    );
    s.stop().await;
}

#[tokio::test]
async fn bad_requests_are_json_naming_the_field() {
    let s = TestServer::start().await;
    let mut alice = s.login(USER).await;
    let bp = create_blueprint(&mut alice, "base", "+map c1m1_hotel", "").await;
    let server = create_server(&mut alice, "api-3", bp).await;
    let token = create_token(&mut alice, "ops", "operate").await;
    let auth = format!("Bearer {token}");
    let path = format!("/api/v1/servers/{server}/actions");
    let before = job_count(&s).await;
    for (what, ctype, body, field) in [
        (
            "unknown action",
            "application/json",
            r#"{"action":"explode"}"#,
            Some("action"),
        ),
        (
            "wrong type",
            "application/json",
            r#"{"action":5}"#,
            Some("action"),
        ),
        ("missing field", "application/json", r#"{}"#, Some("action")),
        (
            "unknown field",
            "application/json",
            r#"{"action":"start","force":true}"#,
            Some("force"),
        ),
        ("malformed", "application/json", r#"{"action":"#, None),
        ("not an object", "application/json", r#"[1]"#, None),
        (
            "form",
            "application/x-www-form-urlencoded",
            "action=start",
            Some("content-type"),
        ),
        (
            "text",
            "text/plain",
            r#"{"action":"start"}"#,
            Some("content-type"),
        ),
    ] {
        let r = call(&s, Method::POST, &path, Some(&auth), Some((ctype, body))).await;
        assert_error(&r, StatusCode::BAD_REQUEST, what);
        if let Some(field) = field {
            assert_eq!(r.json["field"], field, "{what}: {}", r.json);
        }
    }
    let r = call(&s, Method::POST, &path, Some(&auth), None).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "no body");
    assert_eq!(job_count(&s).await, before, "nothing was queued");
    // Unknown paths and methods are JSON too.
    assert_error(
        &get(&s, "/api/v1/nothing/here", &token).await,
        StatusCode::NOT_FOUND,
        "unknown path",
    );
    assert_error(
        &call(&s, Method::GET, "/api/v2/servers", None, None).await,
        StatusCode::NOT_FOUND,
        "unknown version",
    );
    assert_error(
        &call(&s, Method::DELETE, "/api/v1/servers", Some(&auth), None).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "wrong method",
    );
    assert_error(
        &get(&s, &path, &token).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "GET on an action",
    );
    s.stop().await;
}

#[tokio::test]
async fn the_job_log_streams_as_sse() {
    let s = TestServer::start().await;
    let mut admin = s.login(ADMIN).await;
    let token = create_token(&mut admin, "logs", "read").await;
    let r = admin.post("/admin/install", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let job: i64 = r.location().trim_start_matches("/jobs/").parse().unwrap();
    let res = reqwest::Client::new()
        .get(format!("{}/api/v1/jobs/{job}/log", s.base))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_TYPE], "text/event-stream");
    let body = tokio::time::timeout(Duration::from_secs(60), res.text())
        .await
        .expect("the stream ends with the job")
        .unwrap();
    let mut lines = Vec::new();
    let mut end = None;
    for block in body.split("\n\n") {
        let event = block
            .lines()
            .find_map(|l| l.strip_prefix("event:"))
            .map(str::trim);
        let data = block
            .lines()
            .find_map(|l| l.strip_prefix("data:"))
            .map(str::trim);
        match (event, data) {
            (Some("line"), Some(d)) => lines.push(serde_json::from_str::<Value>(d).unwrap()),
            (Some("end"), Some(d)) => end = Some(serde_json::from_str::<Value>(d).unwrap()),
            _ => {}
        }
    }
    assert!(!lines.is_empty(), "{body}");
    assert_eq!(lines[0]["seq"], 1);
    assert!(lines
        .iter()
        .all(|l| l["line"].is_string() && l["stream"].is_string()));
    let end = end.expect("an end event");
    let state = s.wait_job(job).await;
    assert_eq!(end["state"], state.as_str());
    // The stored log matches the stream.
    let stored = s.job_lines(job).await;
    assert_eq!(stored.len(), lines.len());
    let detail = get(&s, &format!("/api/v1/jobs/{job}"), &token).await;
    assert_eq!(detail.json["lines"].as_array().unwrap().len(), stored.len());
    assert_eq!(detail.json["state"], state.as_str());
    // Another user's job is 404 for its stream too.
    let mut bob = s.login(USER2).await;
    let other = create_token(&mut bob, "bob", "read").await;
    assert_error(
        &get(&s, &format!("/api/v1/jobs/{job}/log"), &other).await,
        StatusCode::NOT_FOUND,
        "another's log",
    );
    s.stop().await;
}

#[tokio::test]
async fn the_openapi_document_lists_every_api_route() {
    let s = TestServer::start().await;
    let res = reqwest::Client::new()
        .get(format!("{}/api/v1/openapi.json", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let doc: Value = res.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let routes: Vec<_> = l4d2web::web::route_table()
        .into_iter()
        .filter(|r| r.api)
        .collect();
    assert!(routes.len() >= 14, "{}", routes.len());
    for r in &routes {
        assert!(r.path.starts_with("/api/v1/"), "{}", r.path);
        let method = r.method.as_str().to_lowercase();
        assert!(
            doc["paths"][r.path][&method].is_object(),
            "{} {} is not in the OpenAPI document",
            r.method,
            r.path
        );
    }
    // And nothing in the document that the router does not serve.
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, routes.len());
    s.stop().await;
}

#[tokio::test]
async fn an_administrators_token_obeys_the_two_factor_rule() {
    let s = TestServer::start().await;
    let mut admin = s.login(ADMIN).await;
    let token = create_token(&mut admin, "ops", "read").await;
    let bearer = format!("Bearer {token}");
    // Its creation is in the audit log, without the token.
    let details: Vec<String> =
        sqlx::query_scalar("SELECT detail FROM audit_log WHERE kind = 'token.created'")
            .fetch_all(&s.pool)
            .await
            .unwrap();
    assert_eq!(details.len(), 1);
    assert!(
        details[0].contains("scope read") && !details[0].contains(&token),
        "{details:?}"
    );
    let r = call(&s, Method::GET, "/api/v1/me", Some(&bearer), None).await;
    assert_eq!(r.status, StatusCode::OK);
    // Administrators must use two-factor login now: a token is no way around it.
    l4d2web::auth::totp::set_admins_must_use(&s.pool, true)
        .await
        .unwrap();
    let r = call(&s, Method::GET, "/api/v1/me", Some(&bearer), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.json["error"]
            .as_str()
            .unwrap_or("")
            .contains("two-factor"),
        "{}",
        r.json
    );
    s.stop().await;
}
