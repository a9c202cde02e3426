//! Shared test harness: a real `left4me` server (in-process on an ephemeral
//! port, real SQLite file) and a tiny cookie-keeping HTTP client.

pub mod browser;
#[allow(unused_imports)]
pub use browser::*;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use l4d2web::config::{self, Config, EnvSource};
use reqwest::header::{HeaderMap, HeaderValue, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{redirect, Method, StatusCode};
use test_support::{workspace_bin, DataRoot};
use tokio_util::sync::CancellationToken;

pub const ADMIN: (&str, &str) = ("admin", "admin-password-1");
pub const USER: (&str, &str) = ("alice", "alice-password-1");
pub const USER2: (&str, &str) = ("bob", "bob-password-1");

pub struct TestServer {
    pub base: String,
    pub root: DataRoot,
    pub pool: sqlx::SqlitePool,
    pub shutdown: CancellationToken,
    pub task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub ids: HashMap<&'static str, i64>,
}

/// A steamcmd stand-in that prints `ticks` lines `delay` seconds apart, then
/// runs the real steamcmd-sim: makes `l4d2ctl install` a slow, chatty job.
pub fn slow_steamcmd(root: &Path, ticks: u32, delay: f32) -> PathBuf {
    let dir = root.join("steam");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("steamcmd.sh");
    let _ = std::fs::remove_file(&path);
    let script = format!(
        "#!/bin/sh\ni=1\nwhile [ $i -le {ticks} ]; do echo \"slow-steamcmd tick $i\"; i=$((i+1)); sleep {delay}; done\nexec {} \"$@\"\n",
        workspace_bin("steamcmd-sim").display()
    );
    test_support::write_executable(&path, &script, 0o755);
    path
}

pub fn config_for(root: &Path, extra: &[(&str, &str)]) -> Config {
    let mut map: HashMap<String, String> = HashMap::new();
    map.insert("LEFT4ME_ROOT".into(), root.display().to_string());
    map.insert(
        "SECRET_KEY".into(),
        "test-secret-key-0123456789abcdef-0123".into(),
    );
    map.insert("LEFT4ME_BIND".into(), "127.0.0.1:0".into());
    map.insert("LEFT4ME_BACKEND".into(), "local".into());
    // Limits must not refill during a slow (debug, loaded CI) test run.
    map.insert("LEFT4ME_LOGIN_LIMIT_WINDOW_SECS".into(), "3600".into());
    map.insert("LEFT4ME_LOGIN_LIMIT_PER_USER".into(), "20".into());
    for (k, v) in extra {
        map.insert(k.to_string(), v.to_string());
    }
    let mut c = config::load(&EnvSource(move |k| map.get(k).cloned())).unwrap();
    c.l4d2ctl = Some(workspace_bin("l4d2ctl"));
    c.child_env = vec![
        ("LEFT4ME_ROOT".into(), root.display().to_string()),
        ("LEFT4ME_BACKEND".into(), "local".into()),
        (
            "LEFT4ME_STEAMCMD".into(),
            root.join("steam/steamcmd.sh").display().to_string(),
        ),
        // The simulated Steam's newest build, private to this root.
        (
            "LEFT4ME_SIM_PUBLISHED_BUILD_FILE".into(),
            root.join("sim-published-build").display().to_string(),
        ),
    ];
    c
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts a server with extra environment settings; users admin, alice
    /// and bob exist. steamcmd is a slow wrapper around steamcmd-sim.
    pub async fn start_with(extra: &[(&str, &str)]) -> Self {
        let root = DataRoot::empty();
        slow_steamcmd(root.path(), 3, 0.2);
        Self::serve_on(root, extra).await
    }

    /// Like [`TestServer::start`], with more environment for the host
    /// programs the panel runs (l4d2ctl, and steamcmd through it).
    pub async fn start_with_host_env(host_env: &[(&str, &str)]) -> Self {
        let root = DataRoot::empty();
        slow_steamcmd(root.path(), 1, 0.1);
        let mut config = config_for(root.path(), &[]);
        for (k, v) in host_env {
            config.child_env.push((k.to_string(), v.to_string()));
        }
        Self::serve_config(root, config).await
    }

    /// Serves `root` with users admin, alice and bob.
    async fn serve_on(root: DataRoot, extra: &[(&str, &str)]) -> Self {
        let config = config_for(root.path(), extra);
        Self::serve_config(root, config).await
    }

    async fn serve_config(root: DataRoot, config: Config) -> Self {
        let pool = l4d2web::db::connect(&config.database_url).await.unwrap();
        l4d2web::db::migrate(&pool).await.unwrap();
        let mut ids = HashMap::new();
        for (name, pw, admin) in [
            (ADMIN.0, ADMIN.1, true),
            (USER.0, USER.1, false),
            (USER2.0, USER2.1, false),
        ] {
            let u = l4d2web::accounts::create_user(&pool, name, pw, admin)
                .await
                .unwrap();
            ids.insert(name, u.id);
        }
        let listener = tokio::net::TcpListener::bind(config.bind).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(l4d2web::serve(config, listener, shutdown.clone()));
        TestServer {
            base,
            root,
            pool,
            shutdown,
            task: Some(task),
            ids,
        }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.base)
    }

    pub async fn login(&self, who: (&str, &str)) -> Client {
        let mut c = self.client();
        let res = c.login(who.0, who.1).await;
        assert_eq!(
            res.status,
            StatusCode::SEE_OTHER,
            "login of {} failed: {}",
            who.0,
            res.body
        );
        c
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }

    /// Waits until the job reaches a final state (max 60 s).
    pub async fn wait_job(&self, id: i64) -> String {
        for _ in 0..600 {
            let state: String = sqlx::query_scalar("SELECT state FROM jobs WHERE id = ?")
                .bind(id)
                .fetch_one(&self.pool)
                .await
                .unwrap();
            if state == "succeeded" || state == "failed" {
                return state;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("job {id} did not finish");
    }

    pub async fn job_lines(&self, id: i64) -> Vec<String> {
        sqlx::query_scalar("SELECT line FROM job_lines WHERE job_id = ? ORDER BY seq")
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// An HTTP client that keeps the session cookie itself and never follows
/// redirects, so tests see exactly what the server answers.
pub struct Client {
    pub base: String,
    http: reqwest::Client,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
    pub extra_headers: Vec<(&'static str, String)>,
}

pub fn csrf_from(html: &str) -> Option<String> {
    let marker = "name=\"csrf_token\" value=\"";
    let i = html.find(marker)? + marker.len();
    Some(html[i..].split('"').next()?.to_string())
}

impl Client {
    pub fn new(base: &str) -> Self {
        Client {
            base: base.to_string(),
            http: reqwest::Client::builder()
                .redirect(redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
            csrf: None,
            extra_headers: Vec::new(),
        }
    }

    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<(String, &str)>,
    ) -> Resp {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, format!("left4me_session={c}"));
        }
        for (k, v) in &self.extra_headers {
            req = req.header(*k, v);
        }
        if let Some((b, ctype)) = body {
            req = req.header("content-type", ctype).body(b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        for v in headers.get_all(SET_COOKIE) {
            let v = v.to_str().unwrap();
            if let Some(rest) = v.strip_prefix("left4me_session=") {
                let token = rest.split(';').next().unwrap().to_string();
                self.cookie = if token.is_empty() { None } else { Some(token) };
            }
        }
        let body = res.text().await.unwrap();
        if let Some(t) = csrf_from(&body) {
            self.csrf = Some(t);
        }
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Resp {
        self.request(Method::GET, path, None).await
    }

    /// POSTs a form; adds the current CSRF token unless `fields` has one.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let mut pairs: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if !fields.iter().any(|(k, _)| *k == "csrf_token") {
            if let Some(t) = &self.csrf {
                pairs.push(("csrf_token".into(), t.clone()));
            }
        }
        let body = serde_urlencoded::to_string(&pairs).unwrap();
        self.request(
            Method::POST,
            path,
            Some((body, "application/x-www-form-urlencoded")),
        )
        .await
    }

    /// GET /login (anonymous session + token), then POST the credentials.
    pub async fn login(&mut self, user: &str, password: &str) -> Resp {
        let page = self.get("/login").await;
        assert_eq!(page.status, StatusCode::OK);
        let res = self
            .post("/login", &[("username", user), ("password", password)])
            .await;
        if res.status == StatusCode::SEE_OTHER {
            // The CSRF token of the new session (an administrator who must
            // set up two-factor login first reaches only /account).
            let jobs = self.get("/jobs").await;
            if jobs.location() == "/account" {
                assert_eq!(self.get("/account").await.status, StatusCode::OK);
            } else {
                assert_eq!(jobs.status, StatusCode::OK);
            }
        }
        res
    }

    pub fn header(&mut self, name: &'static str, value: &str) {
        self.extra_headers.retain(|(k, _)| *k != name);
        self.extra_headers.push((name, value.to_string()));
    }
}

pub fn assert_security_headers(h: &HeaderMap) {
    let csp = h
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "CSP {csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "CSP {csp}");
    assert_eq!(
        h.get("x-content-type-options"),
        Some(&HeaderValue::from_static("nosniff"))
    );
    assert!(h.get("referrer-policy").is_some());
}

/// A `Jobs` handle for enqueueing and reading jobs directly (its workers are
/// never started; the server under test runs the jobs).
pub fn enqueuer(pool: sqlx::SqlitePool) -> l4d2web::jobs::Jobs {
    l4d2web::jobs::Jobs::new(pool, std::time::Duration::ZERO)
}

/// Queues an install job (`l4d2ctl install`) for `user` (None: a system
/// job) under `lock_key`; returns its id.
pub async fn queue_install(
    jobs: &l4d2web::jobs::Jobs,
    user: Option<i64>,
    lock_key: Option<&str>,
) -> i64 {
    let mut job = l4d2web::tasks::Task::Install.to_job(user, None);
    job.lock_key = lock_key.map(str::to_string);
    jobs.submit(job).await.unwrap().id
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseFrame {
    pub event: String,
    pub data: String,
}

/// An open SSE stream read frame by frame (comments/keep-alives skipped).
pub struct SseStream {
    body: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>,
    >,
    buf: String,
}

impl SseStream {
    /// Opens `path` with the session cookie of `client`; asserts 200 + SSE.
    /// Opens `path` as a browser's EventSource does (`Accept:
    /// text/event-stream`).
    pub async fn open(client: &Client, path: &str) -> SseStream {
        let res = reqwest::Client::new()
            .get(format!("{}{path}", client.base))
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .header(
                COOKIE,
                format!(
                    "left4me_session={}",
                    client.cookie.clone().unwrap_or_default()
                ),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "SSE {path}");
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        SseStream {
            body: Box::pin(res.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next frame, or None when the stream ends or `timeout` passes.
    pub async fn next(&mut self, timeout: Duration) -> Option<SseFrame> {
        use futures_util::StreamExt;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            while let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                let mut frame = SseFrame {
                    event: "message".into(),
                    data: String::new(),
                };
                let mut is_comment = true;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        frame.event = v.trim().to_string();
                        is_comment = false;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        if !frame.data.is_empty() {
                            frame.data.push('\n');
                        }
                        frame.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                        is_comment = false;
                    }
                }
                if !is_comment {
                    return Some(frame);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next()).await;
            match chunk {
                Ok(Some(Ok(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    /// Reads frames until one satisfies `pred`; panics with what was seen
    /// when `timeout` passes first.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&SseFrame) -> bool,
    ) -> SseFrame {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(f) if pred(&f) => return f,
                Some(f) => seen.push(f),
                None => panic!("no SSE frame with {what} within {timeout:?}; saw {seen:#?}"),
            }
        }
    }
}

impl TestServer {
    /// Like [`TestServer::start_with`], but on a data root with the simulated
    /// game INSTALLED (`DataRoot::installed()`: real `l4d2ctl install` through
    /// steamcmd-sim), so servers can really start (local backend; root or not).
    pub async fn start_installed(extra: &[(&str, &str)]) -> Self {
        Self::serve_on(DataRoot::installed(), extra).await
    }
}

/// The error a finished job recorded ("" when none).
pub async fn job_error(s: &TestServer, id: i64) -> String {
    sqlx::query_scalar::<_, Option<String>>("SELECT error FROM jobs WHERE id = ?")
        .bind(id)
        .fetch_one(&s.pool)
        .await
        .unwrap()
        .unwrap_or_default()
}

/// Runs the `left4me` CLI on the data root `root` (quiet log, the database in
/// the data root).
pub fn left4me_cli(root: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_left4me"))
        .args(args)
        .env("LEFT4ME_ROOT", root)
        .env_remove("DATABASE_URL")
        .env("LEFT4ME_LOG", "warn")
        .output()
        .unwrap()
}

/// A `left4me serve` process and its base URL.
pub struct Serve {
    pub child: std::process::Child,
    pub base: String,
}

impl Drop for Serve {
    /// A failing test must not leave a server behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
