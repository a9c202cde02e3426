//! The server page's state block is pushed: a job's start and end reach
//! the viewer without a reload, with the transition word while it runs and
//! no drift meanwhile.

use std::time::Duration;

use crate::servers::{create_blueprint, create_server, latest_job, range};
use crate::util::*;
use reqwest::StatusCode;

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
            f.data.contains("starting…")
        })
        .await;
    assert!(
        !during.data.contains("id=\"drift\""),
        "no drift while the start runs: {}",
        during.data
    );
    let after = stream
        .wait_for(Duration::from_secs(60), "running", |f| {
            f.data.contains(">running<")
        })
        .await;
    assert!(!after.data.contains("starting…"));
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
