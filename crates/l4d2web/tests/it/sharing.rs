//! Sharing a server: every server route of the router table, for every
//! role (none, viewer, operator, manager, owner, administrator), gets 404
//! without a role, 403 with one too low, and otherwise reaches its handler
//! (for a POST without a token that is the CSRF refusal, so nothing runs).

use l4d2web::servers::access::{Right, Role};
use reqwest::header::COOKIE;
use reqwest::{Method, StatusCode};

use crate::servers::{create_blueprint, create_server};
use crate::util::*;

/// The status (and the start of the body) of one request as `c`, without
/// reading an event stream's endless body.
async fn probe(c: &Client, method: &Method, path: &str) -> (StatusCode, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = http.request(method.clone(), format!("{}{}", c.base, path));
    if let Some(cookie) = &c.cookie {
        req = req.header(COOKIE, format!("left4me_session={cookie}"));
    }
    if method == Method::POST {
        req = req
            .header("content-type", "application/x-www-form-urlencoded")
            .body("username=x&role=viewer&action=restart&cron=0+5+*+*+*&command=status&blueprint_id=1");
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let stream = res
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
    let body = if stream {
        String::new()
    } else {
        res.text().await.unwrap_or_default()
    };
    (status, body)
}

async fn user(s: &TestServer, name: &str) -> (Client, i64) {
    let password = format!("{name}-password-1");
    let u = l4d2web::accounts::create_user(&s.pool, name, &password, false)
        .await
        .unwrap();
    (s.login((name, &password)).await, u.id)
}

#[tokio::test]
async fn every_server_route_enforces_its_right_for_every_role() {
    let s = TestServer::start().await;
    let mut alice = s.login(USER).await;
    let bp = create_blueprint(&mut alice, "shared", "+map c1m1_hotel", "").await;
    let server = create_server(&mut alice, "shared-1", bp).await;
    let (carol, carol_id) = user(&s, "carol").await;
    let (dave, _) = user(&s, "dave").await;
    let (erin, _) = user(&s, "erin").await;
    for (name, role) in [
        ("carol", "viewer"),
        ("dave", "operator"),
        ("erin", "manager"),
    ] {
        let r = alice
            .post(
                &format!("/servers/{server}/shares"),
                &[("username", name), ("role", role)],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    }
    let r = alice
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
    let bob = s.login(USER2).await;
    let admin = s.login(ADMIN).await;
    let roles: [(&str, &Client, Option<Role>); 6] = [
        ("nobody", &bob, None),
        ("viewer", &carol, Some(Role::Viewer)),
        ("operator", &dave, Some(Role::Operator)),
        ("manager", &erin, Some(Role::Manager)),
        ("owner", &alice, Some(Role::Owner)),
        ("administrator", &admin, Some(Role::Admin)),
    ];
    let before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    let routes: Vec<_> = l4d2web::web::route_table()
        .into_iter()
        .filter(|r| r.right.is_some())
        .collect();
    assert!(routes.len() >= 20, "server routes: {}", routes.len());
    let mut checked = 0;
    for route in &routes {
        assert!(route.path.starts_with("/servers/{id}"), "{}", route.path);
        let right = route.right.unwrap();
        let path = route
            .path
            .replace("{id}", &server.to_string())
            .replace("{schedule}", &schedule.to_string())
            .replace("{user}", &carol_id.to_string());
        for (who, client, role) in &roles {
            let (status, body) = probe(client, &route.method, &path).await;
            let what = format!("{} {path} as {who}", route.method);
            match role {
                None => assert_eq!(status, StatusCode::NOT_FOUND, "{what}"),
                Some(role) if !role.allows(right) => {
                    assert_eq!(status, StatusCode::FORBIDDEN, "{what}");
                    assert!(body.contains("does not allow"), "{what}: {body}");
                }
                Some(_) if route.method == Method::POST => {
                    // Reached the handler's token check: authorised, and
                    // still nothing done.
                    assert_eq!(status, StatusCode::FORBIDDEN, "{what}");
                    assert!(body.contains("CSRF"), "{what}: {body}");
                }
                Some(_) => assert!(status.is_success(), "{what}: {status} {body}"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 120, "{checked}");
    let after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(before, after, "no request of the matrix ran anything");
    // The rights the table declares are the product's rules.
    let right_of = |path: &str| routes.iter().find(|r| r.path == path).and_then(|r| r.right);
    assert_eq!(right_of("/servers/{id}"), Some(Right::View));
    assert_eq!(right_of("/servers/{id}/console"), Some(Right::View));
    assert_eq!(right_of("/servers/{id}/rcon"), Some(Right::Rcon));
    assert_eq!(right_of("/servers/{id}/start"), Some(Right::Operate));
    assert_eq!(right_of("/servers/{id}/reset"), Some(Right::Manage));
    assert_eq!(right_of("/servers/{id}/shares"), Some(Right::Manage));
    assert_eq!(right_of("/servers/{id}/delete"), Some(Right::Own));
    assert_eq!(right_of("/servers/{id}/players/kick"), Some(Right::Rcon));
    assert_eq!(right_of("/servers/{id}/players/ban"), Some(Right::Rcon));
    assert_eq!(right_of("/servers/{id}/players/unban"), Some(Right::Rcon));
    assert_eq!(
        right_of("/servers/{id}/players/admins"),
        Some(Right::Manage)
    );
    assert_eq!(
        right_of("/servers/{id}/players/admins/unadmin"),
        Some(Right::Manage)
    );
    s.stop().await;
}

#[tokio::test]
async fn shared_users_act_within_their_role_and_lose_it_when_revoked() {
    let s = TestServer::start().await;
    let mut alice = s.login(USER).await;
    let bp = create_blueprint(&mut alice, "team", "+map c1m1_hotel", "").await;
    let server = create_server(&mut alice, "team-1", bp).await;
    let (mut carol, carol_id) = user(&s, "carol").await;
    let (mut dave, _) = user(&s, "dave").await;
    let mut bob = s.login(USER2).await;

    // Bad shares: a clear message, nothing stored.
    for (fields, needle) in [
        (
            vec![("username", "nobody-here"), ("role", "viewer")],
            "no user named",
        ),
        (
            vec![("username", "carol"), ("role", "owner")],
            "unknown role",
        ),
        (
            vec![("username", "alice"), ("role", "viewer")],
            "owns this server",
        ),
    ] {
        let r = alice
            .post(&format!("/servers/{server}/shares"), &fields)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{fields:?}");
        assert!(r.body.contains(needle), "{fields:?}: {}", r.body);
    }
    let shares: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM server_shares")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(shares, 0);
    // Bob (no role) cannot share it either.
    let r = bob
        .post(
            &format!("/servers/{server}/shares"),
            &[("username", "bob"), ("role", "manager")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    for (name, role) in [("carol", "viewer"), ("dave", "operator")] {
        let r = alice
            .post(
                &format!("/servers/{server}/shares"),
                &[("username", name), ("role", role)],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    }
    let page = alice.get(&format!("/servers/{server}")).await.body;
    assert!(
        page.contains("share-list") && page.contains("carol") && page.contains("operator"),
        "{page}"
    );

    // The dashboard lists it for them, with their role; not for bob.
    let dash = carol.get("/servers").await.body;
    assert!(
        dash.contains("team-1") && dash.contains("shared with you as viewer"),
        "{dash}"
    );
    assert!(!bob.get("/servers").await.body.contains("team-1"));
    // The viewer sees the page without the controls it may not use.
    let page = carol.get(&format!("/servers/{server}")).await.body;
    assert!(
        page.contains("Server team-1")
            && !page.contains("id=\"sharing\"")
            && !page.contains("id=\"rcon-link\"")
    );
    assert!(
        !page.contains("/blueprints/"),
        "a viewer is not shown the owner's blueprint link"
    );
    let before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    let r = carol.post(&format!("/servers/{server}/stop"), &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(before, after, "a viewer's action queued nothing");

    // The operator stops it: a job of theirs, visible to the owner and the viewer.
    let r = dave.post(&format!("/servers/{server}/stop"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let job: i64 = sqlx::query_scalar("SELECT MAX(id) FROM jobs")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    s.wait_job(job).await;
    let user_id: Option<i64> = sqlx::query_scalar("SELECT user_id FROM jobs WHERE id = ?")
        .bind(job)
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_ne!(user_id, Some(s.ids["alice"]), "the operator's own job");
    assert_eq!(
        alice.get(&format!("/jobs/{job}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        carol.get(&format!("/jobs/{job}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        bob.get(&format!("/jobs/{job}")).await.status,
        StatusCode::NOT_FOUND
    );
    // An operator may not reset or delete.
    assert_eq!(
        dave.post(&format!("/servers/{server}/reset"), &[])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        dave.post(&format!("/servers/{server}/delete"), &[])
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // Revoked: the server is gone for her.
    let r = alice
        .post(&format!("/servers/{server}/shares/{carol_id}/revoke"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        carol.get(&format!("/servers/{server}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        carol.get(&format!("/jobs/{job}")).await.status,
        StatusCode::NOT_FOUND
    );
    let r = alice
        .post(&format!("/servers/{server}/shares/{carol_id}/revoke"), &[])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "revoking twice");
    s.stop().await;
}

/// The API's server routes under the same rule, for every role, with
/// tokens that may act (`operate`).
#[tokio::test]
async fn the_apis_server_routes_enforce_the_same_roles() {
    let s = TestServer::start().await;
    let mut alice = s.login(USER).await;
    let bp = create_blueprint(&mut alice, "api-shared", "+map c1m1_hotel", "").await;
    let server = create_server(&mut alice, "api-shared-1", bp).await;
    let (mut carol, _) = user(&s, "carol").await;
    let (mut dave, _) = user(&s, "dave").await;
    let (mut erin, _) = user(&s, "erin").await;
    for (name, role) in [
        ("carol", "viewer"),
        ("dave", "operator"),
        ("erin", "manager"),
    ] {
        let r = alice
            .post(
                &format!("/servers/{server}/shares"),
                &[("username", name), ("role", role)],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    }
    let mut bob = s.login(USER2).await;
    let mut admin = s.login(ADMIN).await;
    let mut roles = Vec::new();
    for (who, client, role) in [
        ("nobody", &mut bob, None),
        ("viewer", &mut carol, Some(Role::Viewer)),
        ("operator", &mut dave, Some(Role::Operator)),
        ("manager", &mut erin, Some(Role::Manager)),
        ("owner", &mut alice, Some(Role::Owner)),
        ("administrator", &mut admin, Some(Role::Admin)),
    ] {
        let token = crate::api::create_token(client, "matrix", "operate").await;
        roles.push((who, format!("Bearer {token}"), role));
    }
    let http = reqwest::Client::new();
    for path in [
        format!("/api/v1/servers/{server}"),
        format!("/api/v1/servers/{server}/live"),
    ] {
        for (who, bearer, role) in &roles {
            let status = http
                .get(format!("{}{path}", s.base))
                .header("authorization", bearer)
                .send()
                .await
                .unwrap()
                .status();
            let want = if role.is_some() {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            assert_eq!(status, want, "GET {path} as {who}");
        }
    }
    let path = format!("{}/api/v1/servers/{server}/actions", s.base);
    for (action, right) in [
        ("stop", Right::Operate),
        ("restart", Right::Operate),
        ("reset", Right::Manage),
        ("delete", Right::Own),
    ] {
        for (who, bearer, role) in &roles {
            let allowed = role.is_some_and(|r| r.allows(right));
            if allowed && action == "delete" {
                continue; // it would delete the server under the next checks
            }
            let res = http
                .post(&path)
                .header("authorization", bearer)
                .header("content-type", "application/json")
                .body(format!(r#"{{"action":"{action}"}}"#))
                .send()
                .await
                .unwrap();
            let status = res.status();
            let body = res.text().await.unwrap_or_default();
            let want = match role {
                None => StatusCode::NOT_FOUND,
                Some(_) if !allowed => StatusCode::FORBIDDEN,
                Some(_) => StatusCode::ACCEPTED,
            };
            assert_eq!(status, want, "{action} as {who}: {body}");
            assert!(body.starts_with('{'), "JSON, never a page: {body}");
        }
    }
    s.stop().await;
}
