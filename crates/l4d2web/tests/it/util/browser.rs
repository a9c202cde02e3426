//! Headless Chromium through chromedriver (fantoccini) for the browser
//! tests, plus the small page helpers they share.

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

pub fn find_program(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    /// Kills chromedriver's whole process group: Chromium and its helpers
    /// with it (killing chromedriver alone leaves them running).
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.driver.id() as i32) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.driver.wait();
    }
}

/// Starts chromedriver + headless Chromium, or returns None (loud skip,
/// failure in CI) when they are not installed.
pub async fn browser() -> Option<Browser> {
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
        // Its own group, so that dropping the browser ends every process it started.
        .process_group(0)
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

pub async fn submit_login(c: &Client, base: &str, user: &str, password: &str) {
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

pub async fn wait_text(c: &Client, css: &str, needle: &str) -> String {
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

/// Clicks the element `css` names; found again if the page swapped it out
/// between finding and clicking (htmx refreshes parts of some pages).
pub async fn click(c: &Client, css: &str) {
    let mut tries = 0;
    loop {
        let clicked = match c.find(Locator::Css(css)).await {
            Ok(el) => el.click().await,
            Err(e) => Err(e),
        };
        match clicked {
            Ok(()) => return,
            Err(e) if tries < 3 => {
                tries += 1;
                eprintln!("click {css}: {e}; finding it again");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot click {css}: {e}"),
        }
    }
}

/// Waits for the page's confirmation dialog, checks its question and
/// answers it (OK when `accept`, Cancel otherwise).
pub async fn answer_confirm(c: &Client, needle: &str, accept: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let question = loop {
        match c.get_alert_text().await {
            Ok(text) => break text,
            Err(e) => {
                assert!(Instant::now() < deadline, "no confirmation dialog: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(
        question.contains(needle),
        "{question:?} should contain {needle:?}"
    );
    if accept {
        c.accept_alert().await.unwrap();
    } else {
        c.dismiss_alert().await.unwrap();
    }
}

pub async fn fill(c: &Client, css: &str, text: &str) {
    let el = c.find(Locator::Css(css)).await.unwrap();
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}
