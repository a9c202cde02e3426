//! Headless Chromium (via chromedriver) against a real server: login,
//! failed login, rate-limited login, and a job log growing live in the page.

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

#[tokio::test]
async fn login_and_failed_login() {
    let Some(b) = browser().await else { return };
    let s = TestServer::start().await;
    let c = &b.client;
    submit_login(c, &s.base, ADMIN.0, "wrong-password").await;
    let err = wait_text(c, "#login-error", "Wrong username or password").await;
    assert!(!err.is_empty());
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    submit_login(c, &s.base, ADMIN.0, ADMIN.1).await;
    wait_text(c, "main h1", "Jobs").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/jobs");
    wait_text(c, "header nav", "Log out admin").await;
    // The stylesheet and scripts loaded under the CSP (no inline script needed).
    let htmx_loaded = c
        .execute(
            "return typeof htmx !== 'undefined' && !!htmx.version",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(htmx_loaded, serde_json::Value::Bool(true));
    // Log out via the nav button.
    c.find(Locator::Css("header nav button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "main h1", "Log in").await;
    b.client.clone().close().await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn rate_limited_login() {
    let Some(b) = browser().await else { return };
    let s = TestServer::start_with(&[("LEFT4ME_LOGIN_LIMIT_PER_USER", "2")]).await;
    let c = &b.client;
    for _ in 0..2 {
        submit_login(c, &s.base, USER.0, "wrong-password").await;
        wait_text(c, "#login-error", "Wrong username or password").await;
    }
    // Even the right password is refused now.
    submit_login(c, &s.base, USER.0, USER.1).await;
    wait_text(c, "#login-error", "Too many login attempts").await;
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    b.client.clone().close().await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn job_log_grows_live_without_reload() {
    let Some(b) = browser().await else { return };
    let s = TestServer::start().await;
    slow_steamcmd(s.root.path(), 30, 0.25);
    let c = &b.client;
    submit_login(c, &s.base, ADMIN.0, ADMIN.1).await;
    wait_text(c, "main h1", "Jobs").await;
    c.find(Locator::Css("main form[action='/admin/install'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "main h1", "install").await;
    assert!(c.current_url().await.unwrap().path().starts_with("/jobs/"));
    // A marker that a reload would wipe.
    c.execute("window.__left4meNoReload = 42; return 1", vec![])
        .await
        .unwrap();
    let count = || async {
        c.execute(
            "return document.querySelectorAll('#job-log .l').length",
            vec![],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        let n = count().await;
        if n >= 2 {
            break n;
        }
        assert!(Instant::now() < deadline, "no log lines arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = count().await;
        if n >= first + 5 {
            break;
        }
        assert!(Instant::now() < deadline, "log did not grow past {first}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_text(c, "#job-log", "slow-steamcmd tick 30").await;
    wait_text(c, "#job-state", "succeeded").await;
    wait_text(c, "#job-log", "Success! App '222860' fully installed").await;
    let marker = c
        .execute("return window.__left4meNoReload", vec![])
        .await
        .unwrap();
    assert_eq!(marker, serde_json::json!(42), "the page was not reloaded");
    // Exactly the database's log, once (no duplicate from a reconnect).
    let shown = c
        .execute(
            "return Array.from(document.querySelectorAll('#job-log .l')).map(e => e.textContent)",
            vec![],
        )
        .await
        .unwrap();
    let id: i64 = c
        .current_url()
        .await
        .unwrap()
        .path()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(shown, serde_json::json!(s.job_lines(id).await));
    b.client.clone().close().await.unwrap();
    s.stop().await;
}
