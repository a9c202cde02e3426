//! New game builds end to end: the update check against the simulated
//! Steam, the install beside the running build, the rollout policies
//! (when empty, canary first, a failed canary stopping the rollout) and
//! rollback, all through the web app with real l4d2ctl, steamcmd-sim and
//! srcds-sim servers.

use std::time::{Duration, Instant};

use crate::servers::{act, create_blueprint, create_server, mk_overlay, range};
use crate::util::*;
use l4d2_contract::builds::BuildsReport;
use reqwest::StatusCode;
use serde_json::json;

const FIRST: u64 = 15000001;

async fn start(port_start: u16) -> TestServer {
    let r = range(port_start);
    TestServer::start_installed(&[
        (r[0].0, &r[0].1),
        (r[1].0, &r[1].1),
        ("LEFT4ME_ROLLOUT_TICK_SECS", "1"),
    ])
    .await
}

fn builds(s: &TestServer) -> BuildsReport {
    let out = s.root.l4d2ctl(["builds", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn build_of(s: &TestServer, name: &str) -> Option<u64> {
    builds(s).build_of(name).map(|b| b.id.0)
}

/// Waits until `cond` holds (checked every 200 ms), or panics with `what`.
async fn wait_until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn set_policy(c: &mut Client, blueprint: i64, policy: &str, minutes: &str) -> Resp {
    c.post(
        &format!("/blueprints/{blueprint}/rollout"),
        &[("policy", policy), ("minutes", minutes)],
    )
    .await
}

async fn policy_row(s: &TestServer, blueprint: i64) -> (String, i64) {
    sqlx::query_as("SELECT rollout_policy, rollout_minutes FROM blueprints WHERE id = ?")
        .bind(blueprint)
        .fetch_one(&s.pool)
        .await
        .unwrap()
}

/// Valve publishes `build`; an administrator checks now; the check installs
/// it (automatic installs are on). Returns when the install finished.
async fn publish_and_check(s: &TestServer, admin: &mut Client, build: u64) {
    s.root.publish_build(build);
    let r = admin.post("/admin/update-check", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let check: i64 = r.location().trim_start_matches("/jobs/").parse().unwrap();
    assert_eq!(
        s.wait_job(check).await,
        "succeeded",
        "{:?}",
        s.job_lines(check).await
    );
    let lines = s.job_lines(check).await.join("\n");
    assert!(
        lines.contains(&format!("update available: build {} → {build}", build - 1)),
        "{lines}"
    );
    let install: i64 = sqlx::query_scalar("SELECT MAX(id) FROM jobs WHERE kind = 'install'")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(
        s.wait_job(install).await,
        "succeeded",
        "{:?}",
        s.job_lines(install).await
    );
    assert_eq!(builds(s).newest.map(|b| b.0), Some(build));
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_servers_move_to_a_new_build_and_busy_ones_wait_and_rollback_holds() {
    let s = start(27600).await;
    let mut alice = s.login(USER).await;
    let mut bob = s.login(USER2).await;
    let mut admin = s.login(ADMIN).await;
    let quiet = create_blueprint(&mut alice, "quiet", "+map c1m1_hotel -sim_players 0", "").await;
    let busy = create_blueprint(&mut alice, "busy", "+map c1m1_hotel -sim_players 2", "").await;

    // The policy form refuses what it cannot mean, and others' blueprints.
    for (policy, minutes, why) in [
        ("sometimes", "0", "unknown update policy"),
        ("when-empty", "-1", "is not a number of minutes"),
        ("when-empty", "1441", "is not a number of minutes"),
        ("when-empty", "soon", "is not a number of minutes"),
    ] {
        let r = set_policy(&mut alice, quiet, policy, minutes).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{policy} {minutes}");
        assert!(r.body.contains(why), "{}", r.body);
        assert!(r.body.contains("unchanged"), "{}", r.body);
    }
    assert_eq!(policy_row(&s, quiet).await, ("manual".into(), 10));
    let r = set_policy(&mut bob, quiet, "when-empty", "0").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(policy_row(&s, quiet).await, ("manual".into(), 10));
    for bp in [quiet, busy] {
        let r = set_policy(&mut alice, bp, "when-empty", "0").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    }
    assert_eq!(policy_row(&s, quiet).await, ("when-empty".into(), 0));
    let page = alice.get(&format!("/blueprints/{quiet}")).await.body;
    assert!(page.contains("value=\"when-empty\" selected"), "{page}");

    let empty = create_server(&mut alice, "empty-1", quiet).await;
    let full = create_server(&mut alice, "full-1", busy).await;
    for id in [empty, full] {
        let (job, state) = act(&s, &mut alice, id, "start").await;
        assert_eq!(state, "succeeded", "{:?}", s.job_lines(job).await);
    }
    assert_eq!(build_of(&s, "empty-1"), Some(FIRST));

    publish_and_check(&s, &mut admin, FIRST + 1).await;
    // The empty server restarts onto the new build by itself, in a job
    // that says why.
    wait_until("the empty server on the new build", 60, || {
        build_of(&s, "empty-1") == Some(FIRST + 1)
    })
    .await;
    let title: String = sqlx::query_scalar(
        "SELECT title FROM jobs WHERE kind = 'server-restart' AND subject = ? ORDER BY id DESC LIMIT 1",
    )
    .bind(format!("server:{empty}"))
    .fetch_one(&s.pool)
    .await
    .unwrap();
    assert!(
        title.contains(&format!("onto game build {}: no players", FIRST + 1)),
        "{title}"
    );
    // The server with players keeps its build while they play.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(build_of(&s, "full-1"), Some(FIRST), "players are on it");

    // The pages say which server runs which build.
    let jobs = admin.get("/jobs").await.body;
    assert!(jobs.contains("id=\"builds\""), "{jobs}");
    assert!(
        jobs.contains(&format!("Up to date: Steam publishes build {}", FIRST + 1)),
        "{jobs}"
    );
    assert!(
        jobs.contains("full-1") && jobs.contains("empty-1"),
        "{jobs}"
    );
    let page = alice.get(&format!("/servers/{empty}")).await.body;
    assert!(
        page.contains(&format!("game build {} (the newest)", FIRST + 1)),
        "{page}"
    );
    assert!(
        page.contains(&format!("Roll back to build {FIRST}")),
        "{page}"
    );
    let page = alice.get(&format!("/servers/{full}")).await.body;
    assert!(
        page.contains(&format!("build {} is installed: it moves there", FIRST + 1)),
        "{page}"
    );

    // Rollback: bad builds change nothing; the previous one restarts it
    // there, and the rollout leaves it alone.
    for (build, why) in [
        ("99", "game build 99 is not installed"),
        ("../1", "is not a game build id"),
    ] {
        let r = alice
            .post(&format!("/servers/{empty}/build"), &[("build", build)])
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{build}");
        assert!(r.body.contains(why), "{}", r.body);
    }
    let r = bob
        .post(
            &format!("/servers/{empty}/build"),
            &[("build", &FIRST.to_string())],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "not bob's server");
    let before = crate::servers::latest_job(&s).await;
    let r = alice
        .post(
            &format!("/servers/{empty}/build"),
            &[("build", &FIRST.to_string())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let job = crate::servers::latest_job(&s).await;
    assert!(job > before);
    assert_eq!(
        s.wait_job(job).await,
        "succeeded",
        "{:?}",
        s.job_lines(job).await
    );
    assert_eq!(build_of(&s, "empty-1"), Some(FIRST));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        build_of(&s, "empty-1"),
        Some(FIRST),
        "a rolled-back server stays"
    );
    let page = alice.get(&format!("/servers/{empty}")).await.body;
    assert!(
        page.contains(&format!("kept on build {FIRST} (rolled back)")),
        "{page}"
    );
    let r = alice
        .post(&format!("/servers/{empty}/build"), &[("build", "newest")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let job = crate::servers::latest_job(&s).await;
    assert_eq!(s.wait_job(job).await, "succeeded");
    assert_eq!(build_of(&s, "empty-1"), Some(FIRST + 1));

    // The same through the API: the builds for administrators, a rollback
    // for whoever manages the server, a bad build named as the field.
    let admin_token = crate::api::create_token(&mut admin, "builds", "operate").await;
    let alice_token = crate::api::create_token(&mut alice, "builds", "operate").await;
    let alice_read = crate::api::create_token(&mut alice, "look", "read").await;
    let bob_token = crate::api::create_token(&mut bob, "builds", "operate").await;
    let list = crate::api::get(&s, "/api/v1/builds", &admin_token).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.json);
    assert_eq!(list.json["newest"], json!(FIRST + 1));
    assert_eq!(list.json["update_available"], json!(null));
    assert_eq!(list.json["last_check"]["published"], json!(FIRST + 1));
    let ids: Vec<u64> = list.json["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["build"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![FIRST + 1, FIRST], "{}", list.json);
    assert_eq!(list.json["builds"][1]["servers"], json!(["full-1"]));
    let refused = crate::api::get(&s, "/api/v1/builds", &alice_token).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.json);
    let detail = crate::api::get(&s, &format!("/api/v1/servers/{empty}"), &alice_token).await;
    assert_eq!(detail.json["build"], json!(FIRST + 1), "{}", detail.json);
    assert_eq!(detail.json["pinned_build"], json!(null));

    let set = |token: &str, body: &str| {
        let auth = format!("Bearer {token}");
        let body = body.to_string();
        let s = &s;
        async move {
            crate::api::call(
                s,
                reqwest::Method::POST,
                &format!("/api/v1/servers/{empty}/build"),
                Some(&auth),
                Some(("application/json", &body)),
            )
            .await
        }
    };
    for (body, status, why) in [
        (
            r#"{"build":"../1"}"#,
            StatusCode::BAD_REQUEST,
            "is not a game build id",
        ),
        (
            r#"{"build":"99"}"#,
            StatusCode::BAD_REQUEST,
            "game build 99 is not installed",
        ),
    ] {
        let r = set(&alice_token, body).await;
        assert_eq!(r.status, status, "{body}: {}", r.json);
        assert!(
            r.json["error"].as_str().unwrap().contains(why),
            "{}",
            r.json
        );
        assert_eq!(r.json["field"], json!("build"));
    }
    let r = set(&alice_token, r#"{"bulid":"newest"}"#).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    let r = set(&alice_read, &format!(r#"{{"build":"{FIRST}"}}"#)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a read token: {}", r.json);
    let r = set(&bob_token, &format!(r#"{{"build":"{FIRST}"}}"#)).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "not bob's server: {}",
        r.json
    );
    let pinned: Option<i64> = sqlx::query_scalar("SELECT pinned_build FROM servers WHERE id = ?")
        .bind(empty)
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(pinned, None, "nothing refused changed the server");

    let r = set(&alice_token, &format!(r#"{{"build":"{FIRST}"}}"#)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let job = r.json["job_id"].as_i64().expect("a restart job");
    assert!(
        r.json["message"]
            .as_str()
            .unwrap()
            .contains(&format!("restarts onto game build {FIRST}")),
        "{}",
        r.json
    );
    assert_eq!(s.wait_job(job).await, "succeeded");
    assert_eq!(build_of(&s, "empty-1"), Some(FIRST));
    let detail = crate::api::get(&s, &format!("/api/v1/servers/{empty}"), &alice_token).await;
    assert_eq!(detail.json["pinned_build"], json!(FIRST), "{}", detail.json);

    let check = |token: String| {
        let s = &s;
        async move {
            let auth = format!("Bearer {token}");
            crate::api::call(
                s,
                reqwest::Method::POST,
                "/api/v1/update-check",
                Some(&auth),
                None,
            )
            .await
        }
    };
    let r = check(alice_token.clone()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.json);
    let r = check(admin_token.clone()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    let job = r.json["job_id"].as_i64().unwrap();
    assert_eq!(
        s.wait_job(job).await,
        "succeeded",
        "{:?}",
        s.job_lines(job).await
    );
    s.stop().await;
}

/// A plugin stand-in that fails to load on one build, as SourceMod does
/// when a game update moved the signatures it needs.
const BROKEN_ON_SECOND_BUILD: &str = "#!/bin/sh\nif grep -q '\"buildid\".*\"15000002\"' steamapps/appmanifest_222860.acf; then\n  echo '[SM] Unable to load plugin \"l4d2_fixes.smx\": Signature \"CTerrorPlayer::OnVomitedUpon\" not found'\nfi\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_canary_stops_the_rollout_and_a_good_build_goes_through() {
    let s = start(27610).await;
    let mut alice = s.login(USER).await;
    let mut admin = s.login(ADMIN).await;
    let alice_id = s.ids["alice"];
    let plugin = mk_overlay(
        &s,
        Some(alice_id),
        "fixes",
        &[(
            "left4dead2/addons/sim-plugins/fixes",
            BROKEN_ON_SECOND_BUILD,
        )],
    )
    .await;
    let script = s.root.path().join(format!(
        "overlays/{plugin}/left4dead2/addons/sim-plugins/fixes"
    ));
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let bp = create_blueprint(&mut alice, "campaign", "+map c1m1_hotel", "").await;
    let r = alice
        .post(
            &format!("/blueprints/{bp}/stack"),
            &[("op", "add"), ("overlay_id", &plugin.to_string())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = set_policy(&mut alice, bp, "canary", "0").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let a = create_server(&mut alice, "camp-a", bp).await;
    let b = create_server(&mut alice, "camp-b", bp).await;
    for id in [a, b] {
        let (job, state) = act(&s, &mut alice, id, "start").await;
        assert_eq!(state, "succeeded", "{:?}", s.job_lines(job).await);
    }

    // The bad build: the canary moves, logs the SourceMod error, and the
    // rollout stops with that reason; the other server stays.
    publish_and_check(&s, &mut admin, FIRST + 1).await;
    let stopped = || async {
        sqlx::query_scalar::<_, Option<String>>(
            "SELECT message FROM rollouts WHERE blueprint_id = ? AND build = ? AND state = 'stopped'",
        )
        .bind(bp)
        .bind((FIRST + 1) as i64)
        .fetch_optional(&s.pool)
        .await
        .unwrap()
        .flatten()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let message = loop {
        if let Some(m) = stopped().await {
            break m;
        }
        assert!(Instant::now() < deadline, "the rollout never stopped");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        message.contains("the canary camp-a logged a SourceMod error"),
        "{message}"
    );
    assert!(
        message.contains("Unable to load plugin \"l4d2_fixes.smx\""),
        "{message}"
    );
    assert_eq!(build_of(&s, "camp-a"), Some(FIRST + 1));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        build_of(&s, "camp-b"),
        Some(FIRST),
        "the rollout stopped before it"
    );
    let page = alice.get(&format!("/blueprints/{bp}")).await.body;
    assert!(
        page.contains("rollout stopped: the canary camp-a logged a SourceMod error"),
        "{page}"
    );

    // The fixed build: the canary passes and the other server follows.
    publish_and_check(&s, &mut admin, FIRST + 2).await;
    wait_until("both servers on the fixed build", 90, || {
        let r = builds(&s);
        r.build_of("camp-a").map(|b| b.id.0) == Some(FIRST + 2)
            && r.build_of("camp-b").map(|b| b.id.0) == Some(FIRST + 2)
    })
    .await;
    let state: String =
        sqlx::query_scalar("SELECT state FROM rollouts WHERE blueprint_id = ? AND build = ?")
            .bind(bp)
            .bind((FIRST + 2) as i64)
            .fetch_one(&s.pool)
            .await
            .unwrap();
    assert!(state == "following" || state == "done", "{state}");
    let titles: Vec<String> =
        sqlx::query_scalar("SELECT title FROM jobs WHERE kind = 'server-restart' ORDER BY id")
            .fetch_all(&s.pool)
            .await
            .unwrap();
    assert!(
        titles
            .iter()
            .any(|t| t.contains(&format!("canary for game build {}", FIRST + 2))),
        "{titles:?}"
    );
    assert!(
        titles.iter().any(|t| t.contains("after the canary")),
        "{titles:?}"
    );
    s.stop().await;
}

/// What the deployment's timer runs: one queued system check, coalesced.
#[tokio::test]
async fn the_update_check_cli_queues_one_coalesced_system_job() {
    let root = test_support::DataRoot::empty();
    let first = left4me_cli(root.path(), &["update-check"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(out.contains("check Steam for a new game build"), "{out}");
    let second = left4me_cli(root.path(), &["update-check"]);
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(out.contains("already queued"), "{out}");
    let url = format!("sqlite://{}", root.path().join("left4me.db").display());
    let pool = l4d2web::db::connect(&url).await.unwrap();
    let rows: Vec<(String, Option<i64>, String, Option<String>)> =
        sqlx::query_as("SELECT kind, user_id, state, lock_key FROM jobs")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        rows,
        [(
            "update-check".to_string(),
            None,
            "queued".to_string(),
            Some("steamcmd".to_string())
        )]
    );
}
