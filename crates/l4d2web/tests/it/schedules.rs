//! Schedules and crash recovery end to end: the real web app with the
//! local backend and srcds-sim on an installed data root. Schedules are
//! added through the pages; occurrences are made due by moving a
//! schedule's creation into the past (the scheduler reads the clock, the
//! test cannot wait for 05:00).

use std::time::Duration;

use crate::servers::{act, create_blueprint, create_server, latest_job, range};
use crate::util::*;
use reqwest::StatusCode;

async fn schedule_count(s: &TestServer) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM schedules")
        .fetch_one(&s.pool)
        .await
        .unwrap()
}

async fn add(c: &mut Client, path: &str, fields: &[(&str, &str)]) -> Resp {
    c.post(path, fields).await
}

/// Wakes the scheduler the way a page does: a schedule added and removed.
async fn poke(s: &TestServer, c: &mut Client, server: i64) {
    let r = add(
        c,
        &format!("/servers/{server}/schedules"),
        &[("action", "stop"), ("cron", "0 0 1 1 *")],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let id: i64 = sqlx::query_scalar("SELECT MAX(id) FROM schedules")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    let r = c
        .post(&format!("/servers/{server}/schedules/{id}/delete"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}

async fn backdate(s: &TestServer, id: i64, created_at: &str) {
    sqlx::query("UPDATE schedules SET created_at = ?, last_run_at = NULL WHERE id = ?")
        .bind(created_at)
        .bind(id)
        .execute(&s.pool)
        .await
        .unwrap();
}

async fn last_result(s: &TestServer, id: i64) -> Option<String> {
    sqlx::query_scalar("SELECT last_result FROM schedules WHERE id = ?")
        .bind(id)
        .fetch_one(&s.pool)
        .await
        .unwrap()
}

/// Waits (max 60 s) for a job whose title contains `needle`; its id.
async fn wait_job_titled(s: &TestServer, needle: &str) -> i64 {
    for _ in 0..600 {
        let id: Option<i64> =
            sqlx::query_scalar("SELECT MAX(id) FROM jobs WHERE title LIKE '%' || ? || '%'")
                .bind(needle)
                .fetch_one(&s.pool)
                .await
                .unwrap();
        if let Some(id) = id {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no job titled like {needle:?}");
}

async fn jobs_titled(s: &TestServer, needle: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE title LIKE '%' || ? || '%'")
        .bind(needle)
        .fetch_one(&s.pool)
        .await
        .unwrap()
}

fn minutes_ago(m: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::minutes(m))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[tokio::test]
async fn schedules_validate_run_once_when_due_and_skip_what_was_missed() {
    let r = range(27440);
    let s = TestServer::start_installed(&[
        (r[0].0, &r[0].1),
        (r[1].0, &r[1].1),
        // Every hourly occurrence of the last hour is still within grace.
        ("LEFT4ME_SCHEDULE_GRACE_SECS", "3700"),
    ])
    .await;
    let mut c = s.login(USER).await;
    let bp = create_blueprint(&mut c, "sched", "+map c1m1_hotel -sim_players 0", "").await;
    let server = create_server(&mut c, "sched-1", bp).await;
    let path = format!("/servers/{server}/schedules");

    // Bad input: a clear message, nothing saved.
    for (fields, needle) in [
        (
            vec![("action", "restart"), ("cron", "61 5 * * *")],
            "cron expression",
        ),
        (
            vec![("action", "restart"), ("cron", "0 0 5 * * *")],
            "five fields",
        ),
        (vec![("action", "restart"), ("cron", "")], "empty"),
        (
            vec![("action", "restart"), ("cron", "0 0 31 2 *")],
            "never matches",
        ),
        (
            vec![("action", "reboot"), ("cron", "0 5 * * *")],
            "unknown schedule action",
        ),
        (
            vec![
                ("action", "restart"),
                ("cron", "0 5 * * *"),
                ("time_zone", "Mars/Base"),
            ],
            "unknown time zone",
        ),
        (
            vec![("action", "rcon"), ("cron", "0 5 * * *")],
            "RCON command",
        ),
        (
            vec![
                ("action", "rcon"),
                ("cron", "0 5 * * *"),
                ("command", "say a\u{7}"),
            ],
            "control characters",
        ),
        (
            vec![
                ("action", "restart-when-empty"),
                ("cron", "0 5 * * *"),
                ("empty_minutes", "0"),
            ],
            "minutes",
        ),
    ] {
        let r = add(&mut c, &path, &fields).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{fields:?}: {}", r.body);
        assert!(
            r.body.contains(needle) && r.body.contains("nothing was changed"),
            "{fields:?}: {}",
            r.body
        );
    }
    assert_eq!(schedule_count(&s).await, 0);

    // Another user sees nothing of it and can change nothing.
    let mut bob = s.login(USER2).await;
    let r = add(
        &mut bob,
        &path,
        &[("action", "restart"), ("cron", "0 5 * * *")],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(schedule_count(&s).await, 0);

    // A start every minute, due now: one scheduled job.
    let r = add(
        &mut c,
        &path,
        &[
            ("action", "start"),
            ("cron", "* * * * *"),
            ("time_zone", "Europe/Berlin"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let start_id: i64 = sqlx::query_scalar("SELECT MAX(id) FROM schedules")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    let page = c.get(&format!("/servers/{server}")).await.body;
    assert!(
        page.contains("schedule-list") && page.contains("Europe/Berlin"),
        "{page}"
    );
    assert!(
        page.matches("class=\"next-run\"").count() == 3,
        "three next runs shown: {page}"
    );
    for action in ["pause", "resume", "delete"] {
        let r = bob
            .post(
                &format!("/servers/{server}/schedules/{start_id}/{action}"),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{action} by another user");
    }
    backdate(&s, start_id, &minutes_ago(2)).await;
    poke(&s, &mut c, server).await;
    let job = wait_job_titled(&s, "start server sched-1 (scheduled: * * * * *)").await;
    assert_eq!(
        s.wait_job(job).await,
        "succeeded",
        "{:?}",
        s.job_lines(job).await
    );
    assert!(last_result(&s, start_id)
        .await
        .unwrap_or_default()
        .contains("queued for sched-1"));
    // Paused: no more runs; the page says so.
    let r = c
        .post(
            &format!("/servers/{server}/schedules/{start_id}/pause"),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(c
        .get(&format!("/servers/{server}"))
        .await
        .body
        .contains(">paused<"));

    // Down for three hours with an hourly RCON command: one run, not three.
    let r = add(
        &mut c,
        &path,
        &[
            ("action", "rcon"),
            ("cron", "0 * * * *"),
            ("command", "status"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let rcon_id: i64 = sqlx::query_scalar("SELECT MAX(id) FROM schedules")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    backdate(&s, rcon_id, &minutes_ago(185)).await;
    // A yearly stop last due in January: far beyond grace, so missed.
    let r = add(&mut c, &path, &[("action", "stop"), ("cron", "0 0 1 1 *")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let missed_id: i64 = sqlx::query_scalar("SELECT MAX(id) FROM schedules")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    backdate(&s, missed_id, "2025-06-01T00:00:00Z").await;
    poke(&s, &mut c, server).await;
    let job = wait_job_titled(&s, "RCON on server sched-1: status").await;
    assert_eq!(
        s.wait_job(job).await,
        "succeeded",
        "{:?}",
        s.job_lines(job).await
    );
    assert!(
        s.job_lines(job)
            .await
            .iter()
            .any(|l| l.contains("hostname")),
        "{:?}",
        s.job_lines(job).await
    );
    for _ in 0..50 {
        if last_result(&s, missed_id).await.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(last_result(&s, missed_id)
        .await
        .unwrap_or_default()
        .starts_with("missed"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        jobs_titled(&s, "RCON on server sched-1").await,
        1,
        "one run for three missed hours"
    );
    assert_eq!(
        jobs_titled(&s, "stop server sched-1").await,
        0,
        "a missed run beyond grace does not run"
    );
    // The command is in the server's console history like a typed one.
    let (history,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM console_history WHERE command = 'status'")
            .fetch_one(&s.pool)
            .await
            .unwrap_or((0,));
    assert_eq!(history, 1);
    // Leave no game running behind the test.
    act(&s, &mut c, server, "stop").await;
    s.stop().await;
}

async fn crash_state(s: &TestServer, id: i64) -> (i64, bool, Option<String>) {
    sqlx::query_as("SELECT crash_count, crash_loop, last_exit FROM servers WHERE id = ?")
        .bind(id)
        .fetch_one(&s.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_crashing_local_server_is_restarted_then_marked_as_a_crash_loop() {
    let hook = crate::alerts::Receiver::start().await;
    let r = range(27450);
    let s = TestServer::start_installed(&[
        (r[0].0, &r[0].1),
        (r[1].0, &r[1].1),
        ("LEFT4ME_WEBHOOK_ALLOW_PRIVATE", "true"),
    ])
    .await;
    let mut c = s.login(USER).await;
    let r = c
        .post(
            "/alerts",
            &[
                ("name", "ops"),
                ("url", hook.url.as_str()),
                ("format", "json"),
                ("event", "server.crashed"),
                ("event", "server.crash_loop"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // Crashes 2 s after every start.
    let bp = create_blueprint(&mut c, "crashy", "+map c1m1_hotel -sim_crash_after 2", "").await;
    let server = create_server(&mut c, "crashy-1", bp).await;
    let (_, state) = act(&s, &mut c, server, "start").await;
    assert_eq!(state, "succeeded");
    // Restarted after its first crash, by a job of its owner.
    let job = wait_job_titled(&s, "start server crashy-1 (restart after a crash)").await;
    let owner: Option<i64> = sqlx::query_scalar("SELECT user_id FROM jobs WHERE id = ?")
        .bind(job)
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(owner, Some(s.ids["alice"]));
    let (count, _, exit) = crash_state(&s, server).await;
    assert!(count >= 1);
    assert_eq!(
        exit.as_deref(),
        Some("the game process ended without being stopped")
    );
    // Five crashes within a minute: given up.
    let mut looped = false;
    for _ in 0..900 {
        if crash_state(&s, server).await.1 {
            looped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        looped,
        "no crash loop after 90 s: {:?}",
        crash_state(&s, server).await
    );
    let restarts = jobs_titled(&s, "restart after a crash").await;
    assert_eq!(restarts, 4, "four restarts, then it gave up");
    let page = c.get(&format!("/servers/{server}")).await.body;
    assert!(
        page.contains(">crash loop<") && page.contains("id=\"crash-loop\""),
        "{page}"
    );
    assert!(page.contains("id=\"crash-count\">5<"), "{page}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        jobs_titled(&s, "restart after a crash").await,
        restarts,
        "no restart while in a crash loop"
    );
    // Its owner was told: five crashes, one crash loop, without secrets.
    let mut events = Vec::new();
    for _ in 0..200 {
        events = hook.bodies();
        if events.len() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "server.crashed").count(),
        5,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "server.crash_loop").count(),
        1,
        "{kinds:?}"
    );
    let password: String = sqlx::query_scalar("SELECT rcon_password FROM servers WHERE id = ?")
        .bind(server)
        .fetch_one(&s.pool)
        .await
        .unwrap();
    for e in &events {
        assert_eq!(e["server"]["name"], "crashy-1", "{e}");
        assert!(!e.to_string().contains(&password), "{e}");
    }
    // The owner acting on it clears the flag.
    let before = latest_job(&s).await;
    let r = c.post(&format!("/servers/{server}/stop"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(latest_job(&s).await > before);
    assert!(!crash_state(&s, server).await.1);
    s.wait_job(latest_job(&s).await).await;
    s.stop().await;
}

#[tokio::test]
async fn restart_when_empty_waits_for_no_human_player_then_restarts() {
    let s = crate::servers::start_installed(27460).await;
    let mut c = s.login(USER).await;
    let bp = create_blueprint(
        &mut c,
        "quiet",
        "+map c1m1_hotel -sim_players 0 -sim_churn 0",
        "",
    )
    .await;
    let server = create_server(&mut c, "quiet-1", bp).await;
    let (_, state) = act(&s, &mut c, server, "start").await;
    assert_eq!(state, "succeeded");
    let r = add(
        &mut c,
        &format!("/servers/{server}/schedules"),
        &[
            ("action", "restart-when-empty"),
            ("cron", "* * * * *"),
            ("empty_minutes", "1"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let id: i64 = sqlx::query_scalar("SELECT MAX(id) FROM schedules")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    backdate(&s, id, &minutes_ago(2)).await;
    poke(&s, &mut c, server).await;
    // Armed at once; the restart only after a minute without humans.
    for _ in 0..100 {
        if last_result(&s, id)
            .await
            .unwrap_or_default()
            .contains("waiting")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(last_result(&s, id)
        .await
        .unwrap_or_default()
        .contains("waiting until no human player"));
    let page = c.get(&format!("/servers/{server}")).await.body;
    assert!(page.contains("waiting for empty"), "{page}");
    assert_eq!(jobs_titled(&s, "restart server quiet-1").await, 0);
    let job = wait_job_titled_within(
        &s,
        "restart server quiet-1 (scheduled",
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(s.wait_job(job).await, "succeeded");
    assert!(last_result(&s, id)
        .await
        .unwrap_or_default()
        .contains("empty for 1 min"));
    act(&s, &mut c, server, "stop").await;
    s.stop().await;
}

async fn wait_job_titled_within(s: &TestServer, needle: &str, limit: Duration) -> i64 {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if jobs_titled(s, needle).await > 0 {
            return wait_job_titled(s, needle).await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("no job titled like {needle:?} within {limit:?}");
}

#[tokio::test]
async fn a_blueprints_schedule_acts_on_each_of_its_servers() {
    let r = range(27470);
    let s = TestServer::start_with(&[(r[0].0, &r[0].1), (r[1].0, &r[1].1)]).await;
    let mut c = s.login(USER).await;
    let bp = create_blueprint(&mut c, "fleet", "+map c1m1_hotel", "").await;
    let other = create_blueprint(&mut c, "other", "+map c1m1_hotel", "").await;
    let a = create_server(&mut c, "fleet-a", bp).await;
    create_server(&mut c, "fleet-b", bp).await;
    create_server(&mut c, "elsewhere", other).await;
    let mut bob = s.login(USER2).await;
    let r = add(
        &mut bob,
        &format!("/blueprints/{bp}/schedules"),
        &[("action", "stop"), ("cron", "* * * * *")],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "another user's blueprint");
    let r = add(
        &mut c,
        &format!("/blueprints/{bp}/schedules"),
        &[("action", "stop"), ("cron", "* * * * *")],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().starts_with(&format!("/blueprints/{bp}")));
    let page = c.get(&format!("/blueprints/{bp}")).await.body;
    assert!(
        page.contains("every server using this blueprint") && page.contains("schedule-list"),
        "{page}"
    );
    let id: i64 = sqlx::query_scalar("SELECT MAX(id) FROM schedules")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    backdate(&s, id, &minutes_ago(2)).await;
    poke(&s, &mut c, a).await;
    wait_job_titled(&s, "stop server fleet-b (scheduled").await;
    wait_job_titled(&s, "stop server fleet-a (scheduled").await;
    assert_eq!(
        jobs_titled(&s, "elsewhere").await,
        0,
        "a server of another blueprint"
    );
    let desired: Vec<String> = sqlx::query_scalar(
        "SELECT desired_state FROM servers WHERE blueprint_id = ? ORDER BY name",
    )
    .bind(bp)
    .fetch_all(&s.pool)
    .await
    .unwrap();
    assert_eq!(desired, ["stopped", "stopped"]);
    s.stop().await;
}
