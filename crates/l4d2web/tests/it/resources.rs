//! Resources end to end on the local backend: a real srcds-sim started
//! through the app and l4d2ctl, its CPU and memory from the supervisor's
//! `l4d2ctl list`, its FPS from RCON `stats` while the page is watched,
//! drawn as sparklines on the server page; the host's figures on the
//! dashboard; the history gone once the server stops.

use std::time::{Duration, Instant};

use crate::servers::{act, create_blueprint, create_server, start_installed};
use crate::util::*;
use reqwest::StatusCode;

/// The text of the element with id `id` up to its closing `</strong>`.
fn strong(page: &str, id: &str) -> Option<String> {
    let at = page.find(&format!("id=\"{id}\">"))?;
    let rest = &page[at..];
    let start = rest.find('>')? + 1;
    let end = rest.find("</strong>")?;
    Some(rest[start..end].to_string())
}

/// The `<figure id="{id}">…</figure>` block.
fn figure<'a>(page: &'a str, id: &str) -> Option<&'a str> {
    let at = page.find(&format!("<figure class=\"chart\" id=\"{id}\">"))?;
    let end = page[at..].find("</figure>")?;
    Some(&page[at..at + end])
}

#[tokio::test]
async fn server_page_draws_cpu_memory_and_fps_and_the_dashboard_the_host() {
    let s = start_installed(28740).await;
    let mut c = s.login(USER).await;
    let bp = create_blueprint(&mut c, "res", "+map c1m1_hotel -tickrate 30", "").await;
    let id = create_server(&mut c, "res-1", bp).await;

    // Created, never started: no resource section at all.
    let page = c.get(&format!("/servers/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("id=\"resources\""), "{}", page.body);

    let (_, state) = act(&s, &mut c, id, "start").await;
    assert_eq!(state, "succeeded");
    // Someone watches: the poller asks RCON `status` and `stats`.
    let _watch = SseStream::open(&c, &format!("/servers/{id}/live/stream")).await;

    let deadline = Instant::now() + Duration::from_secs(45);
    let page = loop {
        let page = c.get(&format!("/servers/{id}")).await;
        assert_eq!(page.status, StatusCode::OK);
        let ready = ["res-cpu-current", "res-memory-current", "res-fps-current"]
            .iter()
            .all(|id| strong(&page.body, id).is_some());
        if ready {
            break page.body;
        }
        assert!(
            Instant::now() < deadline,
            "no CPU, memory and FPS figures after 45 s:\n{}",
            page.body
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let cpu = strong(&page, "res-cpu-current").unwrap();
    let cpu: f64 = cpu
        .trim_end_matches(" %")
        .parse()
        .unwrap_or_else(|_| panic!("{cpu:?}"));
    assert!((0.0..=400.0).contains(&cpu), "{cpu}");
    let memory = strong(&page, "res-memory-current").unwrap();
    assert!(
        memory.ends_with(" MiB") || memory.ends_with(" GiB") || memory.ends_with(" KiB"),
        "{memory:?}"
    );
    let fps: f64 = strong(&page, "res-fps-current").unwrap().parse().unwrap();
    assert!(
        (29.0..=30.0).contains(&fps),
        "FPS follows -tickrate 30: {fps}"
    );
    for key in ["res-cpu", "res-memory", "res-fps"] {
        let fig = figure(&page, key).unwrap_or_else(|| panic!("no {key} in\n{page}"));
        assert!(fig.contains("<svg class=\"sparkline\""), "{fig}");
        assert!(fig.contains("min ") && fig.contains("max "), "{fig}");
    }
    // The memory line has at least two readings by now (the supervisor
    // looks every 2 s), so it is a line, not a dot.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = c.get(&format!("/servers/{id}")).await.body;
        if figure(&page, "res-memory").is_some_and(|f| f.contains("<polyline")) {
            break;
        }
        assert!(Instant::now() < deadline, "memory still one dot:\n{page}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The pushed state block carries the same section.
    let mut state = SseStream::open(&c, &format!("/servers/{id}/state/stream")).await;
    state
        .wait_for(
            Duration::from_secs(10),
            "the state block with resources",
            |f| f.event == "state" && f.data.contains("id=\"res-cpu\""),
        )
        .await;
    drop(state);

    // The dashboard: host CPU (after two looks), memory and disk.
    let deadline = Instant::now() + Duration::from_secs(20);
    let dash = loop {
        let dash = c.get("/servers").await;
        assert_eq!(dash.status, StatusCode::OK);
        if strong(&dash.body, "res-host-cpu-current").is_some() {
            break dash.body;
        }
        assert!(Instant::now() < deadline, "no host CPU:\n{}", dash.body);
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let host_memory = strong(&dash, "res-host-memory-current").unwrap();
    assert!(host_memory.contains(" of "), "{host_memory:?}");
    let disk = strong(&dash, "res-host-disk-current").unwrap();
    assert!(disk.contains(" free of "), "{disk:?}");

    // Stopped: the history is dropped and the section goes away.
    let (_, state) = act(&s, &mut c, id, "stop").await;
    assert_eq!(state, "succeeded");
    let page = c.get(&format!("/servers/{id}")).await.body;
    assert!(!page.contains("id=\"resources\""), "{page}");
    s.stop().await;
}
