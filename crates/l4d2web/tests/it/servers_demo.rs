//! `left4me demo` ends ready to play: the demo admin's example blueprint
//! turns into a running (simulated) server through the web app.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;
use reqwest::StatusCode;
use test_support::workspace_bin;

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn demo_example_blueprint_starts_a_server() {
    let cwd = tempfile::tempdir().unwrap();
    let mut child = Command::new(workspace_bin("left4me"))
        .args(["demo", "--bind", "127.0.0.1:0"])
        .current_dir(cwd.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let _demo = Kill(child);
    let (mut password, mut banner) = (String::new(), Vec::new());
    let base = loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "demo exited: {banner:?}"
        );
        if let Some(rest) = line.trim().strip_prefix("administrator: admin / ") {
            password = rest.split_whitespace().next().unwrap().to_string();
        }
        banner.push(line.clone());
        if let Some(url) = line.trim().strip_prefix("open ") {
            break url.trim_end_matches('/').to_string();
        }
    };
    assert!(
        banner.iter().any(|l| l.contains("example blueprint")),
        "{banner:?}"
    );
    let mut c = Client::new(&base);
    let r = c.login("admin", &password).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(c.get("/").await.location(), "/servers");

    let page = c.get("/blueprints").await;
    let i = page
        .body
        .find("href=\"/blueprints/")
        .expect("the example blueprint is listed")
        + 18;
    let bp: String = page.body[i..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert!(page.body.contains(">example<"), "{}", page.body);
    let r = c
        .post("/servers", &[("name", "demo1"), ("blueprint_id", &bp)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let server = r.location().to_string();
    let page = c.get(&server).await;
    let i = page.body.find("Port ").unwrap() + 5;
    let port: u16 = page.body[i..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap();

    // The install job may still run: start is queued behind nothing, so retry
    // until the game is installed and the server answers.
    let deadline = Instant::now() + Duration::from_secs(90);
    let name = loop {
        let r = c.post(&format!("{server}/start"), &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let found = tokio::task::spawn_blocking(move || {
            let mut a = a2s::A2SClient::new().unwrap();
            a.set_timeout(Duration::from_millis(200)).unwrap();
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until {
                if let Ok(info) = a.info(("127.0.0.1", port)) {
                    return Some(info.name);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            None
        })
        .await
        .unwrap();
        if let Some(n) = found {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "the example server never answered A2S"
        );
    };
    assert_eq!(name, "left4me demo server");

    // The live panel works with zero configuration too: map and simulated
    // players from the poller, game events through the loopback log listener.
    let mut live = SseStream::open(&c, &format!("{server}/live/stream")).await;
    live.wait_for(Duration::from_secs(30), "map and players", |f| {
        f.event == "panel" && f.data.contains("c1m1_hotel") && f.data.contains("live-players")
    })
    .await;
    let r = c
        .post(
            &format!("{server}/rcon"),
            &[("command", "say hello from the demo")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    live.wait_for(Duration::from_secs(30), "the chat event", |f| {
        f.event == "event" && f.data.contains("hello from the demo")
    })
    .await;
    drop(live);

    let r = c.post(&format!("{server}/delete"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let instance = cwd.path().join("left4me-data/instances/demo1");
    let deadline = Instant::now() + Duration::from_secs(30);
    while instance.exists() {
        assert!(Instant::now() < deadline, "delete did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
