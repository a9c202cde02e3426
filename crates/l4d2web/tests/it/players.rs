//! Players on a server end to end: kick, ban and unban over HTTP reach the
//! running srcds-sim with the game's own commands; bans are kept per server
//! and re-applied at every start (banned_user.cfg, exec'd by server.cfg),
//! across restarts and resets; SourceMod admins land in the upper layer.
//! Every bad input is a 400 that changes nothing; roles are enforced.

use reqwest::StatusCode;

use crate::servers::{act, create_blueprint, create_server, mk_overlay, range, server_port};
use crate::util::*;

async fn rcon_password(s: &TestServer, id: i64) -> String {
    sqlx::query_scalar("SELECT rcon_password FROM servers WHERE id = ?")
        .bind(id)
        .fetch_one(&s.pool)
        .await
        .unwrap()
}

/// One RCON command straight to the game (not through the panel).
async fn game(port: u16, password: &str, command: &str) -> String {
    let (password, command) = (password.to_string(), command.to_string());
    tokio::task::spawn_blocking(move || test_support::sim::rcon(port, &password, &command))
        .await
        .unwrap()
}

/// Runs a start, restart or reset and waits until the game answers A2S
/// (the job ends when the process runs, before its network is up).
async fn up(s: &TestServer, c: &mut Client, id: i64, action: &str) {
    assert_eq!(act(s, c, id, action).await.1, "succeeded", "{action}");
    let port = server_port(s, id).await;
    let answered = tokio::task::spawn_blocking(move || {
        test_support::sim::wait_for_a2s(port, std::time::Duration::from_secs(30))
    })
    .await
    .unwrap();
    assert!(answered.is_some(), "the server answers A2S after {action}");
}

async fn ban_rows(s: &TestServer, id: i64) -> Vec<(String, Option<i64>, String)> {
    sqlx::query_as(
        "SELECT steam_id, expires_at, reason FROM server_bans WHERE server_id = ? ORDER BY steam_id",
    )
    .bind(id)
    .fetch_all(&s.pool)
    .await
    .unwrap()
}

async fn admin_rows(s: &TestServer, id: i64) -> Vec<(String, String, Option<i64>)> {
    sqlx::query_as(
        "SELECT steam_id, flags, immunity FROM server_admins WHERE server_id = ? ORDER BY steam_id",
    )
    .bind(id)
    .fetch_all(&s.pool)
    .await
    .unwrap()
}

async fn audit_details(s: &TestServer, kind: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT detail FROM audit_log WHERE kind = ? ORDER BY id")
        .bind(kind)
        .fetch_all(&s.pool)
        .await
        .unwrap()
}

/// POSTs a form that must be refused with 400 and `expected` in the page.
async fn refused(c: &mut Client, path: &str, fields: &[(&str, &str)], expected: &str) {
    let r = c.post(path, fields).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{fields:?}: {}", r.body);
    assert!(
        r.body.contains(expected),
        "{fields:?}: expected {expected:?} in {}",
        r.body
    );
}

#[tokio::test]
async fn bans_reach_the_game_and_survive_restarts_and_resets() {
    let r = range(27540);
    let s = TestServer::start_installed(&[(r[0].0, &r[0].1), (r[1].0, &r[1].1)]).await;
    let mut c = s.login(USER).await;
    let bp = create_blueprint(
        &mut c,
        "bans",
        "+map c1m1_hotel -sim_players 0 -sim_churn 0",
        "",
    )
    .await;
    let id = create_server(&mut c, "bans-1", bp).await;
    let port = server_port(&s, id).await;
    let pw = rcon_password(&s, id).await;
    let page = format!("/servers/{id}");
    let ban_url = format!("/servers/{id}/players/ban");
    let kick_url = format!("/servers/{id}/players/kick");
    let unban_url = format!("/servers/{id}/players/unban");

    // Kicking needs a running server.
    c.get(&page).await;
    refused(
        &mut c,
        &kick_url,
        &[("steam_id", "STEAM_1:0:1234"), ("reason", "spam")],
        "the server is not reachable",
    )
    .await;
    up(&s, &mut c, id, "start").await;
    assert_eq!(
        game(port, &pw, "sim_join Griefer STEAM_1:0:1234").await,
        "sim_join: userid 2\n"
    );

    // A permanent ban while running: stored, applied with banid … kick.
    c.get(&page).await;
    let r = c
        .post(
            &ban_url,
            &[
                ("steam_id", " STEAM_0:0:1234 "),
                ("unit", "permanent"),
                ("reason", "griefing"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), format!("/servers/{id}#players"));
    assert_eq!(
        game(port, &pw, "listid").await,
        "ID filter list: 1 entry\n1 STEAM_1:0:1234 : permanent\n"
    );
    assert!(
        !game(port, &pw, "status").await.contains("Griefer"),
        "the banned player was kicked"
    );
    // A timed ban by a typed Steam3 id.
    let r = c
        .post(
            &ban_url,
            &[("steam_id", "[U:1:11]"), ("amount", "2"), ("unit", "hours")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let list = game(port, &pw, "listid").await;
    assert!(list.contains("2 STEAM_1:1:5 : 120.000 min"), "{list}");
    let shown = c.get(&page).await.body;
    assert!(shown.contains("id=\"ban-list\""), "{shown}");
    assert!(shown.contains("STEAM_1:0:1234") && shown.contains("griefing"));
    assert!(shown.contains("permanent"));
    assert!(
        shown.contains("1 h 59 min left") || shown.contains("2 h 0 min left"),
        "{shown}"
    );

    // Bad input: 400 with a clear message, nothing stored or sent.
    let before = ban_rows(&s, id).await;
    for (fields, expected) in [
        (
            vec![("steam_id", "STEAM_1:2:3"), ("unit", "permanent")],
            "is not a Steam id",
        ),
        (
            vec![("steam_id", "STEAM_1:0:1; quit"), ("unit", "permanent")],
            "is not a Steam id",
        ),
        (
            vec![
                ("steam_id", "STEAM_1:0:9"),
                ("amount", "0"),
                ("unit", "minutes"),
            ],
            "ban length",
        ),
        (
            vec![
                ("steam_id", "STEAM_1:0:9"),
                ("amount", "1.5"),
                ("unit", "hours"),
            ],
            "ban length",
        ),
        (
            vec![
                ("steam_id", "STEAM_1:0:9"),
                ("amount", "3"),
                ("unit", "weeks"),
            ],
            "choose minutes, hours, days or permanent",
        ),
        (
            vec![
                ("steam_id", "STEAM_1:0:9"),
                ("amount", "99999"),
                ("unit", "days"),
            ],
            "choose permanent instead",
        ),
        (
            vec![
                ("steam_id", "STEAM_1:0:9"),
                ("unit", "permanent"),
                ("reason", "a\" ; quit \""),
            ],
            "without double quotes",
        ),
    ] {
        refused(&mut c, &ban_url, &fields, expected).await;
    }
    refused(
        &mut c,
        &unban_url,
        &[("steam_id", "STEAM_1:0:999")],
        "STEAM_1:0:999 is not banned on this server",
    )
    .await;
    refused(
        &mut c,
        &kick_url,
        &[("steam_id", "STEAM_1:0:1234"), ("reason", "  ")],
        "enter a reason for the kick",
    )
    .await;
    refused(
        &mut c,
        &kick_url,
        &[("steam_id", "STEAM_1:0:999"), ("reason", "spam")],
        "no player with Steam id STEAM_1:0:999 is connected",
    )
    .await;
    assert_eq!(ban_rows(&s, id).await, before);
    assert!(game(port, &pw, "listid")
        .await
        .starts_with("ID filter list: 2 entries\n"));

    // Kick with a reason: kickid <userid> "<reason>".
    let joined = game(port, &pw, "sim_join Rude STEAM_1:1:77").await;
    assert!(joined.starts_with("sim_join: userid"), "{joined}");
    let r = c
        .post(
            &kick_url,
            &[("steam_id", "STEAM_1:1:77"), ("reason", "language")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(!game(port, &pw, "status").await.contains("Rude"));
    let console = std::fs::read_to_string(s.root.path().join("runtime/bans-1/console.log"))
        .unwrap_or_default();
    assert!(
        console.contains("was kicked by \"Console\" (message \"language\")"),
        "{console}"
    );

    // Restart and reset: the bans come back from banned_user.cfg, exec'd
    // by server.cfg, and the banned player is refused at once.
    for action in ["restart", "reset"] {
        up(&s, &mut c, id, action).await;
        let list = game(port, &pw, "listid").await;
        assert!(
            list.starts_with("ID filter list: 2 entries\n"),
            "after {action}: {list}"
        );
        assert!(list.contains(" STEAM_1:0:1234 : permanent\n"), "{list}");
        // What was left of the two hours when the spec was written.
        assert!(
            list.contains(" STEAM_1:1:5 : 120.000 min\n")
                || list.contains(" STEAM_1:1:5 : 119.000 min\n"),
            "{list}"
        );
        assert_eq!(
            game(port, &pw, "sim_join Griefer STEAM_1:0:1234").await,
            "sim_join: STEAM UserID STEAM_1:0:1234 is banned\n",
            "after {action}"
        );
    }

    // Unban lifts it at once and for good.
    c.get(&page).await;
    let r = c.post(&unban_url, &[("steam_id", "STEAM_1:0:1234")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let list = game(port, &pw, "listid").await;
    assert!(
        list.starts_with("ID filter list: 1 entry\n1 STEAM_1:1:5 : "),
        "{list}"
    );
    assert!(game(port, &pw, "sim_join Griefer STEAM_1:0:1234")
        .await
        .starts_with("sim_join: userid"));

    // A timed ban that has ended is left out of the page and the next start.
    sqlx::query(
        "UPDATE server_bans SET expires_at = strftime('%s', 'now') - 1 WHERE server_id = ?",
    )
    .bind(id)
    .execute(&s.pool)
    .await
    .unwrap();
    assert!(c.get(&page).await.body.contains("id=\"no-bans\""));
    up(&s, &mut c, id, "restart").await;
    assert_eq!(game(port, &pw, "listid").await, "ID filter list: empty\n");

    // The audit log has each act.
    let bans = audit_details(&s, "player.banned").await;
    assert!(
        bans[0].contains("STEAM_1:0:1234 permanently (“griefing”), applied at once"),
        "{bans:?}"
    );
    assert!(bans[1].contains("STEAM_1:1:5 for 2 hours"), "{bans:?}");
    assert!(audit_details(&s, "player.kicked").await[0].contains("STEAM_1:1:77 (“language”)"));
    assert!(
        audit_details(&s, "player.unbanned").await[0].contains("STEAM_1:0:1234, lifted at once")
    );

    // A viewer sees no ban controls and is refused (403); a stranger does
    // not see the server at all (404); nothing changes.
    let before = ban_rows(&s, id).await;
    let r = c
        .post(
            &format!("/servers/{id}/shares"),
            &[("username", USER2.0), ("role", "viewer")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let mut bob = s.login(USER2).await;
    let shown = bob.get(&page).await.body;
    assert!(!shown.contains("id=\"ban-form\""));
    let ban = [("steam_id", "STEAM_1:0:5"), ("unit", "permanent")];
    assert_eq!(bob.post(&ban_url, &ban).await.status, StatusCode::FORBIDDEN);
    let password = "carol-password-1";
    l4d2web::accounts::create_user(&s.pool, "carol", password, false)
        .await
        .unwrap();
    let mut carol = s.login(("carol", password)).await;
    carol.get("/").await;
    assert_eq!(
        carol.post(&ban_url, &ban).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        carol
            .post(&kick_url, &[("steam_id", "STEAM_1:0:5"), ("reason", "x")])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(ban_rows(&s, id).await, before);

    // A ban while the server is stopped waits for its start.
    assert_eq!(act(&s, &mut c, id, "stop").await.1, "succeeded");
    c.get(&page).await;
    let r = c
        .post(
            &ban_url,
            &[("steam_id", "STEAM_1:0:42"), ("unit", "permanent")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(audit_details(&s, "player.banned")
        .await
        .last()
        .unwrap()
        .contains("applies at the next start"));
    up(&s, &mut c, id, "start").await;
    assert_eq!(
        game(port, &pw, "listid").await,
        "ID filter list: 1 entry\n1 STEAM_1:0:42 : permanent\n"
    );
    act(&s, &mut c, id, "stop").await;
    s.stop().await;
}

#[tokio::test]
async fn sourcemod_admins_are_written_at_start_over_the_overlays_file() {
    let r = range(27550);
    let s = TestServer::start_installed(&[(r[0].0, &r[0].1), (r[1].0, &r[1].1)]).await;
    let alice = s.ids[USER.0];
    let mut c = s.login(USER).await;
    let bp = create_blueprint(&mut c, "sm", "+map c1m1_hotel -sim_players 0", "").await;
    let id = create_server(&mut c, "sm-1", bp).await;
    let page = format!("/servers/{id}");
    let admins_url = format!("/servers/{id}/players/admins");

    // No overlay with SourceMod: the page says so.
    let shown = c.get(&page).await.body;
    assert!(shown.contains("id=\"no-sourcemod\""), "{shown}");
    let sm = mk_overlay(
        &s,
        Some(alice),
        "sourcemod",
        &[
            (
                "left4dead2/addons/sourcemod/plugins/basecommands.smx",
                "smx",
            ),
            (
                "left4dead2/addons/sourcemod/configs/admins_simple.ini",
                "\"STEAM_1:0:1\" \"z\"\n",
            ),
        ],
    )
    .await;
    let r = c
        .post(
            &format!("/blueprints/{bp}/stack"),
            &[("op", "add"), ("overlay_id", &sm.to_string())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let shown = c.get(&page).await.body;
    assert!(!shown.contains("id=\"no-sourcemod\""));
    assert!(shown.contains("id=\"no-admins\""));

    let r = c
        .post(
            &admins_url,
            &[
                ("steam_id", "[U:1:85]"),
                ("flags", "abcz"),
                ("immunity", "99"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = c
        .post(
            &admins_url,
            &[("steam_id", "STEAM_1:0:43"), ("flags", "bk")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let shown = c.get(&page).await.body;
    assert!(shown.contains("STEAM_1:1:42") && shown.contains("restart the server to apply"));

    // Bad input changes nothing.
    let before = admin_rows(&s, id).await;
    for (fields, expected) in [
        (
            vec![("steam_id", "nope"), ("flags", "z")],
            "is not a Steam id",
        ),
        (
            vec![("steam_id", "STEAM_1:0:44"), ("flags", "abx")],
            "is not a SourceMod admin flag",
        ),
        (
            vec![("steam_id", "STEAM_1:0:44"), ("flags", "")],
            "no admin flags given",
        ),
        (
            vec![("steam_id", "STEAM_1:0:44"), ("flags", "aa")],
            "given twice",
        ),
        (
            vec![
                ("steam_id", "STEAM_1:0:44"),
                ("flags", "z"),
                ("immunity", "300"),
            ],
            "enter a whole number from 0 to 255",
        ),
    ] {
        refused(&mut c, &admins_url, &fields, expected).await;
    }
    refused(
        &mut c,
        &format!("/servers/{id}/players/admins/unadmin"),
        &[("steam_id", "STEAM_1:0:44")],
        "STEAM_1:0:44 is not an admin on this server",
    )
    .await;
    assert_eq!(admin_rows(&s, id).await, before);

    // At start the file lands in the upper layer, over the overlay's.
    up(&s, &mut c, id, "start").await;
    let upper_ini = s
        .root
        .path()
        .join("runtime/sm-1/upper/left4dead2/addons/sourcemod/configs/admins_simple.ini");
    let ini = std::fs::read_to_string(&upper_ini).unwrap();
    assert!(
        ini.ends_with("\"STEAM_1:0:43\" \"bk\"\n\"STEAM_1:1:42\" \"99:abcz\"\n"),
        "{ini}"
    );
    let overlay_ini = s.root.path().join(format!(
        "overlays/{sm}/left4dead2/addons/sourcemod/configs/admins_simple.ini"
    ));
    assert_eq!(
        std::fs::read_to_string(overlay_ini).unwrap(),
        "\"STEAM_1:0:1\" \"z\"\n"
    );

    // An operator may ban but not manage admins (403).
    let r = c
        .post(
            &format!("/servers/{id}/shares"),
            &[("username", USER2.0), ("role", "operator")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let mut bob = s.login(USER2).await;
    let shown = bob.get(&page).await.body;
    assert!(shown.contains("id=\"ban-form\"") && !shown.contains("id=\"admin-form\""));
    assert_eq!(
        bob.post(&admins_url, &[("steam_id", "STEAM_1:0:5"), ("flags", "z")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // Removing every admin: the next start removes the panel's file.
    for steam_id in ["STEAM_1:1:42", "STEAM_1:0:43"] {
        let r = c
            .post(
                &format!("/servers/{id}/players/admins/unadmin"),
                &[("steam_id", steam_id)],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    }
    assert_eq!(act(&s, &mut c, id, "restart").await.1, "succeeded");
    assert!(
        !upper_ini.exists(),
        "the overlay's own file shows through again"
    );
    let admin_audit = audit_details(&s, "player.admin_set").await;
    assert!(
        admin_audit[0].contains("STEAM_1:1:42 flags abcz, immunity 99"),
        "{admin_audit:?}"
    );
    assert_eq!(audit_details(&s, "player.admin_removed").await.len(), 2);
    act(&s, &mut c, id, "stop").await;
    s.stop().await;
}

/// One API call with a bearer token; (status, JSON body).
async fn api(
    s: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (StatusCode, serde_json::Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", s.base))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}")),
    )
}

#[tokio::test]
async fn the_api_lists_bans_bans_unbans_and_kicks() {
    use reqwest::Method;
    use serde_json::json;
    let r = range(27560);
    let s = TestServer::start_installed(&[(r[0].0, &r[0].1), (r[1].0, &r[1].1)]).await;
    let mut c = s.login(USER).await;
    let bp = create_blueprint(
        &mut c,
        "api-bans",
        "+map c1m1_hotel -sim_players 0 -sim_churn 0",
        "",
    )
    .await;
    let id = create_server(&mut c, "api-bans-1", bp).await;
    let port = server_port(&s, id).await;
    let pw = rcon_password(&s, id).await;
    up(&s, &mut c, id, "start").await;
    let token = crate::api::create_token(&mut c, "bans", "operate").await;
    let bans = format!("/api/v1/servers/{id}/bans");

    let (status, list) = api(&s, Method::GET, &bans, &token, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([]));
    game(port, &pw, "sim_join Cheater STEAM_1:1:9").await;
    let (status, done) = api(
        &s,
        Method::POST,
        &bans,
        &token,
        Some(json!({"steam_id": "STEAM_0:1:9", "minutes": 90, "reason": "aimbot"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(done["message"]
        .as_str()
        .unwrap()
        .contains("Banned STEAM_1:1:9 for 90 minutes"));
    assert!(game(port, &pw, "listid")
        .await
        .contains("1 STEAM_1:1:9 : 90.000 min"));
    assert!(!game(port, &pw, "status").await.contains("Cheater"));
    let (_, list) = api(&s, Method::GET, &bans, &token, None).await;
    assert_eq!(list[0]["steam_id"], "STEAM_1:1:9");
    assert_eq!(list[0]["minutes_left"], 90);
    assert_eq!(list[0]["reason"], "aimbot");

    // Bad input names the field and changes nothing.
    for (body, field) in [
        (json!({"steam_id": "nope", "minutes": 0}), "steam_id"),
        (
            json!({"steam_id": "STEAM_1:0:3", "minutes": 99999999}),
            "minutes",
        ),
        (
            json!({"steam_id": "STEAM_1:0:3", "minutes": 0, "reason": "a\"b"}),
            "reason",
        ),
    ] {
        let (status, err) = api(&s, Method::POST, &bans, &token, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert_eq!(err["field"], field, "{body}: {err}");
    }
    let (status, err) = api(
        &s,
        Method::POST,
        &format!("/api/v1/servers/{id}/kick"),
        &token,
        Some(json!({"steam_id": "STEAM_1:0:3", "reason": "afk"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        err["error"].as_str().unwrap().contains("is connected"),
        "{err}"
    );
    let (status, err) = api(
        &s,
        Method::POST,
        &format!("/api/v1/servers/{id}/unban"),
        &token,
        Some(json!({"steam_id": "STEAM_1:0:3"})),
    )
    .await;
    assert_eq!(
        (status, err["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("steam_id"))
    );
    assert_eq!(ban_rows(&s, id).await.len(), 1);

    // Kick a connected player, then unban.
    game(port, &pw, "sim_join Idle STEAM_1:0:8").await;
    let (status, done) = api(
        &s,
        Method::POST,
        &format!("/api/v1/servers/{id}/kick"),
        &token,
        Some(json!({"steam_id": "STEAM_1:0:8", "reason": "afk"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(!game(port, &pw, "status").await.contains("Idle"));
    let (status, _) = api(
        &s,
        Method::POST,
        &format!("/api/v1/servers/{id}/unban"),
        &token,
        Some(json!({"steam_id": "[U:1:19]"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(game(port, &pw, "listid").await, "ID filter list: empty\n");

    // A read token and a viewer may not.
    let read = crate::api::create_token(&mut c, "ro", "read").await;
    let (status, _) = api(
        &s,
        Method::POST,
        &bans,
        &read,
        Some(json!({"steam_id": "STEAM_1:0:3", "minutes": 0})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    c.post(
        &format!("/servers/{id}/shares"),
        &[("username", USER2.0), ("role", "viewer")],
    )
    .await;
    let mut bob = s.login(USER2).await;
    let bob_token = crate::api::create_token(&mut bob, "bob", "operate").await;
    let (status, _) = api(&s, Method::GET, &bans, &bob_token, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(ban_rows(&s, id).await.is_empty());
    act(&s, &mut c, id, "stop").await;
    s.stop().await;
}
