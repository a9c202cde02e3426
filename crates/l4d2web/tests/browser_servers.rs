//! Headless Chromium (chromedriver) drives the servers main loop of the
//! panel against a real server with an installed (simulated) game.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};

fn find_program(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Starts chromedriver + headless Chromium, or returns None (loud skip,
/// failure in CI) when they are not installed.
async fn browser() -> Option<Browser> {
    let (chromium, driver) = (find_program("chromium"), find_program("chromedriver"));
    if !test_support::require(
        chromium.is_some() && driver.is_some(),
        "browser tests need Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
    ) {
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = Command::new(driver.unwrap())
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let profile = tempfile::tempdir().unwrap();
    let args = vec![
        "--headless".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-dev-shm-usage".into(),
        "--window-size=400,900".into(),
        format!("--user-data-dir={}", profile.path().display()),
    ];
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({"args": args, "binary": chromium.unwrap()}),
    );
    // Both ring and aws-lc-rs are enabled in the dependency graph, so rustls
    // cannot pick a provider by itself.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("connect to chromedriver");
    Some(Browser {
        client,
        driver,
        _profile: profile,
    })
}

async fn submit_login(c: &Client, base: &str, user: &str, password: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    c.find(Locator::Css("input[name=username]"))
        .await
        .unwrap()
        .send_keys(user)
        .await
        .unwrap();
    c.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    c.find(Locator::Css("#login-form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn wait_text(c: &Client, css: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(el) = c.find(Locator::Css(css)).await {
            if let Ok(t) = el.text().await {
                if t.contains(needle) {
                    return t;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "{css} never contained {needle:?}: {}",
            c.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn fill(c: &Client, css: &str, text: &str) {
    let el = c.find(Locator::Css(css)).await.unwrap();
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

fn a2s_name(port: u16, want: &str) {
    let mut client = a2s::A2SClient::new().unwrap();
    client.set_timeout(Duration::from_millis(200)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(info) = client.info(("127.0.0.1", port)) {
            if info.name == want {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("A2S on {port} never said {want:?}");
}

/// The panel's main loop clicked through in headless Chromium: blueprint →
/// server → start → A2S → edit server.cfg → restart → live → reset → delete.
#[tokio::test]
async fn main_loop_in_the_browser() {
    let Some(b) = browser().await else { return };
    let s = TestServer::start_installed(&[
        ("LEFT4ME_PORT_RANGE_START", "27480"),
        ("LEFT4ME_PORT_RANGE_END", "27489"),
    ])
    .await;
    let c = &b.client;
    submit_login(c, &s.base, USER.0, USER.1).await;
    wait_text(c, "main h1", "Jobs").await;
    c.goto(&format!("{}/", s.base)).await.unwrap();
    wait_text(c, "main h1", "Servers").await;

    // Blueprint.
    c.goto(&format!("{}/blueprints", s.base)).await.unwrap();
    fill(c, "#create-blueprint-form input[name=name]", "browser coop").await;
    fill(
        c,
        "#create-blueprint-form input[name=args]",
        "+map c1m1_hotel",
    )
    .await;
    fill(
        c,
        "#create-blueprint-form textarea[name=config]",
        "hostname \"Browser One\"",
    )
    .await;
    click(c, "#create-blueprint-form button[type=submit]").await;
    wait_text(c, "main h1", "Blueprint browser coop").await;

    // Server from it.
    c.goto(&format!("{}/servers", s.base)).await.unwrap();
    fill(c, "#create-server-form input[name=name]", "web1").await;
    click(c, "#create-server-form button[type=submit]").await;
    wait_text(c, "main h1", "Server web1").await;
    wait_text(c, ".flash", "port 27480").await;

    // Start, and the page follows the state.
    click(c, "#action-start").await;
    wait_text(c, ".flash", "Start of server web1 queued").await;
    tokio::task::spawn_blocking(|| a2s_name(27480, "Browser One"))
        .await
        .unwrap();
    wait_text(c, "#server-state", "active").await;
    // The console streams the server's output live (SSE).
    wait_text(c, "#console-log", "server.cfg").await;

    // Edit server.cfg, restart, live.
    let href = c
        .find(Locator::Css("main p.meta a"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    c.goto(&format!("{}{href}", s.base)).await.unwrap();
    fill(
        c,
        "#blueprint-form textarea[name=config]",
        "hostname \"Browser Two\"",
    )
    .await;
    click(c, "#blueprint-form button[type=submit]").await;
    wait_text(c, ".flash", "saved").await;
    c.goto(&format!("{}/servers", s.base)).await.unwrap();
    click(c, "#server-web1 a").await;
    wait_text(c, "main h1", "Server web1").await;
    click(c, "#action-restart").await;
    wait_text(c, ".flash", "Restart of server web1 queued").await;
    tokio::task::spawn_blocking(|| a2s_name(27480, "Browser Two"))
        .await
        .unwrap();

    // Reset wipes the upper layer.
    let marker = s.root.path().join("runtime/web1/upper/marker.txt");
    std::fs::write(&marker, "x").unwrap();
    click(c, "#action-reset").await;
    wait_text(c, ".flash", "Reset of server web1 queued").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while marker.exists() {
        assert!(
            Instant::now() < deadline,
            "reset did not wipe the upper layer"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::task::spawn_blocking(|| a2s_name(27480, "Browser Two"))
        .await
        .unwrap();

    // Delete from the server page; the dashboard no longer lists it.
    click(c, "#action-delete").await;
    wait_text(c, "main h1", "Servers").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.root.path().join("instances/web1").exists() {
        assert!(Instant::now() < deadline, "delete did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.refresh().await.unwrap();
    wait_text(c, "main", "No servers yet").await;
    s.stop().await;
}
