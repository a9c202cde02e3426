//! The server page's state block is pushed: a job's start and end reach
//! the viewer without a reload, with the transition word while it runs and
//! no drift meanwhile.

use std::time::Duration;

use crate::servers::{create_blueprint, create_server, latest_job, range};
use crate::util::*;
use reqwest::StatusCode;

/// The state badge's word in a rendered state block.
fn badge(block: &str) -> String {
    let Some(i) = block.find("id=\"server-state\"") else {
        return String::new();
    };
    let rest = &block[i..];
    let start = rest.find('>').map_or(0, |j| j + 1);
    rest[start..].split('<').next().unwrap_or("").to_string()
}

#[tokio::test]
async fn the_state_block_follows_a_start_as_it_happens() {
    let r = range(27510);
    let s = TestServer::start_installed(&[(r[0].0, &r[0].1), (r[1].0, &r[1].1)]).await;
    let mut c = s.login(USER).await;
    let bp = create_blueprint(&mut c, "push", "+map c1m1_hotel", "").await;
    let server = create_server(&mut c, "push-1", bp).await;
    let mut stream = SseStream::open(&c, &format!("/servers/{server}/state/stream")).await;
    let first = stream
        .wait_for(Duration::from_secs(10), "the first state", |f| {
            f.event == "state"
        })
        .await;
    assert!(first.data.contains("not started"), "{}", first.data);

    let r = c.post(&format!("/servers/{server}/start"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let job = latest_job(&s).await;
    let during = stream
        .wait_for(Duration::from_secs(20), "starting…", |f| {
            badge(&f.data) == "starting…"
        })
        .await;
    assert!(
        !during.data.contains("id=\"drift\""),
        "no drift while the start runs: {}",
        during.data
    );
    let after = stream
        .wait_for(Duration::from_secs(60), "running", |f| {
            badge(&f.data) == "running"
        })
        .await;
    assert!(!after.data.contains("starting…"), "{}", after.data);
    assert_eq!(s.wait_job(job).await, "succeeded");

    // Another user cannot follow it.
    let bob = s.login(USER2).await;
    let mut bob = bob;
    assert_eq!(
        bob.get(&format!("/servers/{server}/state")).await.status,
        StatusCode::NOT_FOUND
    );
    crate::servers::act(&s, &mut c, server, "stop").await;
    s.stop().await;
}

#[tokio::test]
async fn a_failed_action_and_a_changed_blueprint_are_said_at_the_top() {
    let r = range(27520);
    let s = TestServer::start_installed(&[(r[0].0, &r[0].1), (r[1].0, &r[1].1)]).await;
    let mut c = s.login(USER).await;
    let bp = create_blueprint(&mut c, "hint", "+map c1m1_hotel", "hostname \"One\"").await;
    let server = create_server(&mut c, "hint-1", bp).await;
    let (_, state) = crate::servers::act(&s, &mut c, server, "start").await;
    assert_eq!(state, "succeeded");
    let page = c.get(&format!("/servers/{server}")).await.body;
    assert!(!page.contains("id=\"restart-to-apply\"") && !page.contains("id=\"last-failure\""));
    // SQLite stores seconds: the edit must be a later second than the start.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = c
        .post(
            &format!("/blueprints/{bp}"),
            &[
                ("name", "hint"),
                ("args", "+map c1m1_hotel"),
                ("config", "hostname \"Two\""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = c.get(&format!("/servers/{server}")).await.body;
    assert!(page.contains("id=\"restart-to-apply\""), "{page}");
    let (_, state) = crate::servers::act(&s, &mut c, server, "restart").await;
    assert_eq!(state, "succeeded");
    let page = c.get(&format!("/servers/{server}")).await.body;
    assert!(
        !page.contains("id=\"restart-to-apply\""),
        "applied by the restart"
    );

    // A restart that fails in its job (the game went missing; an overlay
    // that is not ready is refused before any job) is said at the top
    // until a later action succeeds.
    let srcds = s.root.path().join("installation/15000001/srcds_run");
    let moved = s.root.path().join("installation/15000001/srcds_run.away");
    std::fs::rename(&srcds, &moved).unwrap();
    let (job, state) = crate::servers::act(&s, &mut c, server, "restart").await;
    assert_eq!(state, "failed");
    let page = c.get(&format!("/servers/{server}")).await.body;
    assert!(
        page.contains("id=\"last-failure\"") && page.contains(&format!("/jobs/{job}")),
        "{page}"
    );
    std::fs::rename(&moved, &srcds).unwrap();
    let (_, state) = crate::servers::act(&s, &mut c, server, "restart").await;
    assert_eq!(state, "succeeded");
    let page = c.get(&format!("/servers/{server}")).await.body;
    assert!(!page.contains("id=\"last-failure\""));
    crate::servers::act(&s, &mut c, server, "stop").await;
    s.stop().await;
}

#[tokio::test]
async fn the_dashboard_rows_follow_jobs_as_they_happen() {
    let r = range(27530);
    let s = TestServer::start_installed(&[(r[0].0, &r[0].1), (r[1].0, &r[1].1)]).await;
    let mut c = s.login(USER).await;
    let bp = create_blueprint(&mut c, "dash", "+map c1m1_hotel", "").await;
    let server = create_server(&mut c, "dash-1", bp).await;
    let page = c.get("/servers").await.body;
    assert!(page.contains("sse-connect=\"/servers/stream\""), "{page}");
    let mut stream = SseStream::open(&c, "/servers/stream").await;
    let first = stream
        .wait_for(Duration::from_secs(10), "the rows", |f| {
            f.event == "servers"
        })
        .await;
    assert!(
        first.data.contains("server-dash-1") && first.data.contains("not started"),
        "{}",
        first.data
    );
    let r = c.post(&format!("/servers/{server}/start"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    stream
        .wait_for(Duration::from_secs(20), "starting…", |f| {
            f.event == "servers" && f.data.contains("starting…")
        })
        .await;
    stream
        .wait_for(Duration::from_secs(60), "running", |f| {
            f.event == "servers"
                && f.data.contains(">running</span>")
                && !f.data.contains("starting…")
        })
        .await;
    // Deleted: gone from the rows without a reload.
    let r = c.post(&format!("/servers/{server}/delete"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    stream
        .wait_for(Duration::from_secs(60), "the row gone", |f| {
            f.event == "servers" && !f.data.contains("server-dash-1")
        })
        .await;
    // Bob's rows never had it.
    let bob = s.login(USER2).await;
    let mut other = SseStream::open(&bob, "/servers/stream").await;
    let rows = other
        .wait_for(Duration::from_secs(10), "bob's rows", |f| {
            f.event == "servers"
        })
        .await;
    assert!(!rows.data.contains("dash-1"));
    s.stop().await;
}
