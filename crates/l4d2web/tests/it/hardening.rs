//! Hardening against real HTTP: file downloads refuse FIFOs, sockets and
//! devices without blocking a thread; slow or idle connections are closed
//! by the header-read timeout while SSE streams outlive it; body limits
//! fit a full blueprint and say why when a form is too large.

use std::time::Duration;

use crate::util::*;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A generous bound for "the server reacted" (the header-read timeout is
/// 10 s; a loaded CI machine must not turn this into a flaky test).
const PROMPTLY: Duration = Duration::from_secs(60);

/// Creates an (unbuilt) script overlay owned by `c`; returns its id.
async fn overlay(c: &mut Client, name: &str) -> i64 {
    let r = c
        .post(
            "/overlays",
            &[("name", name), ("kind", "script"), ("script", "true\n")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    r.location()
        .strip_prefix("/overlays/")
        .unwrap()
        .parse()
        .unwrap()
}

fn mkfifo(path: &std::path::Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}

/// Every viewer and download holds sockets: lift the soft open-file limit
/// (as `left4me serve` does) so hundreds of connections fit in this process.
fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[tokio::test]
async fn downloads_refuse_fifos_sockets_and_devices_promptly() {
    let s = TestServer::start().await;
    let mut alice = s.login(USER).await;
    let id = overlay(&mut alice, "special-files").await;
    let dir = l4d2web::overlays::overlay_dir(s.root.path(), id);
    mkfifo(&dir.join("pipe"));
    let _listener = std::os::unix::net::UnixListener::bind(dir.join("sock")).unwrap();
    std::fs::write(dir.join("plain.txt"), "plain\n").unwrap();
    // A device node needs root (mknod); /dev/null is one.
    let device = test_support::is_root()
        && rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("null"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .is_ok();
    let mut cases = vec![("pipe", "is a named pipe"), ("sock", "is a socket")];
    if device {
        cases.push(("null", "is a device"));
    }
    for (path, what) in cases {
        let r = tokio::time::timeout(
            PROMPTLY,
            alice.get(&format!("/overlays/{id}/download?path={path}")),
        )
        .await
        .unwrap_or_else(|_| panic!("downloading {path} blocked"));
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.body);
        assert!(
            r.body.contains(what) && r.body.contains("only regular files can be downloaded"),
            "{path}: {}",
            r.body
        );
    }
    // The listing still shows them, and regular files still download.
    let list = alice.get(&format!("/overlays/{id}/files")).await;
    assert!(list.body.contains("pipe") && list.body.contains("sock"));
    let r = alice
        .get(&format!("/overlays/{id}/download?path=plain.txt"))
        .await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "plain\n"));
    s.stop().await;
}

#[tokio::test]
async fn many_fifo_downloads_do_not_starve_logins() {
    raise_open_file_limit();
    let s = TestServer::start().await;
    let mut alice = s.login(USER).await;
    let id = overlay(&mut alice, "fifo").await;
    mkfifo(&l4d2web::overlays::overlay_dir(s.root.path(), id).join("pipe"));
    // More downloads at once than tokio's blocking pool has threads (512):
    // each one that blocked would hold a thread forever, and logins verify
    // passwords on that pool.
    let http = reqwest::Client::new();
    let url = format!("{}/overlays/{id}/download?path=pipe", s.base);
    let cookie = format!("left4me_session={}", alice.cookie.clone().unwrap());
    let mut downloads = tokio::task::JoinSet::new();
    for _ in 0..600 {
        let req = http.get(&url).header("cookie", &cookie);
        downloads.spawn(async move { req.send().await.map(|r| r.status()) });
    }
    let login = tokio::time::timeout(PROMPTLY, async {
        let mut c = s.client();
        c.login(ADMIN.0, ADMIN.1).await.status
    })
    .await
    .expect("a login hung while FIFO downloads were running");
    assert_eq!(login, StatusCode::SEE_OTHER);
    let all = tokio::time::timeout(PROMPTLY, async {
        let mut statuses = Vec::new();
        while let Some(r) = downloads.join_next().await {
            statuses.push(r.unwrap());
        }
        statuses
    })
    .await
    .expect("FIFO downloads hung");
    assert_eq!(all.len(), 600);
    for status in all {
        assert_eq!(status.unwrap(), StatusCode::BAD_REQUEST);
    }
    let health = s.client().get("/health").await;
    assert_eq!(health.status, StatusCode::OK);
    s.stop().await;
}

/// Reads until the server closes the connection; returns what it sent.
/// Panics if it stays open for longer than [`PROMPTLY`].
async fn read_until_closed(stream: &mut tokio::net::TcpStream, what: &str) -> String {
    let mut seen = Vec::new();
    let closed = tokio::time::timeout(PROMPTLY, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "{what}: the server kept the connection open for {PROMPTLY:?}"
    );
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn slow_and_idle_connections_are_closed() {
    let s = TestServer::start().await;
    let addr = s.base.strip_prefix("http://").unwrap().to_string();
    // Half a request line, then nothing.
    let mut half = tokio::net::TcpStream::connect(&addr).await.unwrap();
    half.write_all(b"GET /health HT").await.unwrap();
    // Nothing at all.
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // One request, then an idle keep-alive connection.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: left4me\r\n\r\n")
        .await
        .unwrap();
    let (half, silent, idle) = tokio::join!(
        read_until_closed(&mut half, "half a request line"),
        read_until_closed(&mut silent, "a silent connection"),
        read_until_closed(&mut idle, "an idle keep-alive connection"),
    );
    assert!(!half.contains("200 OK"), "{half}");
    assert!(!silent.contains("200 OK"), "{silent}");
    assert!(
        idle.starts_with("HTTP/1.1 200 OK") && idle.contains(r#""status":"ok""#),
        "the request itself was answered: {idle}"
    );
    // The server itself is unaffected.
    assert_eq!(s.client().get("/health").await.status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn sse_streams_outlive_the_header_timeout() {
    let s = TestServer::start().await;
    // An install that prints for longer than the header-read timeout.
    slow_steamcmd(s.root.path(), 14, 1.0);
    let mut admin = s.login(ADMIN).await;
    let r = admin.post("/admin/install", &[]).await;
    let id: i64 = r
        .location()
        .strip_prefix("/jobs/")
        .unwrap()
        .parse()
        .unwrap();
    let mut sse = SseStream::open(&admin, &format!("/jobs/{id}/stream")).await;
    sse.wait_for(PROMPTLY, "the first tick", |f| {
        f.data.contains("slow-steamcmd tick 1<")
    })
    .await;
    // Ticks are a second apart: tick 13 comes at least 12 s after tick 1.
    sse.wait_for(PROMPTLY, "tick 13", |f| {
        f.data.contains("slow-steamcmd tick 13<")
    })
    .await;
    let end = sse
        .wait_for(PROMPTLY, "the end event", |f| f.event == "end")
        .await;
    assert!(end.data.contains("succeeded"), "{end:?}");
    s.stop().await;
}

/// A server.cfg of exactly `bytes` bytes (as stored, LF line ends) that
/// URL-encodes large, sent with CRLF line ends as browsers do.
fn server_cfg_crlf(bytes: usize) -> String {
    let line = "sv_tags \"coop,versus;10%\"";
    let mut cfg = String::new();
    while cfg.len() + line.len() < bytes {
        cfg.push_str(line);
        cfg.push('\n');
    }
    while cfg.len() < bytes {
        cfg.insert(0, '/');
    }
    cfg.replace('\n', "\r\n")
}

#[tokio::test]
async fn body_limits_fit_a_full_blueprint_and_explain_a_413() {
    let max = l4d2web::servers::blueprints::MAX_CONFIG_BYTES;
    let s = TestServer::start().await;
    let mut alice = s.login(USER).await;
    let full = server_cfg_crlf(max);
    let encoded = serde_urlencoded::to_string([("config", &full)]).unwrap();
    assert!(
        encoded.len() > 3 * max / 2,
        "the test body must be well over the old 16 KiB limit"
    );
    let r = alice
        .post(
            "/blueprints",
            &[
                ("name", "full"),
                ("args", "+map c1m1_hotel"),
                ("config", &full),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let bp = r.location().to_string();
    let stored: String = sqlx::query_scalar("SELECT config FROM blueprints WHERE name = 'full'")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), max);
    // Saving the edit form takes the same size.
    let r = alice
        .post(
            &bp,
            &[
                ("name", "full"),
                ("args", "+map c1m2_streets"),
                ("config", &full),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // One byte over the content limit: the blueprint's own message.
    let over = server_cfg_crlf(max + 1);
    let r = alice
        .post(
            "/blueprints",
            &[
                ("name", "over"),
                ("args", "+map c1m1_hotel"),
                ("config", &over),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains(&format!("at most {max}")), "{}", r.body);
    // A body beyond any valid blueprint: 413, saying what the limit is for.
    let huge = "x".repeat(l4d2web::web::MAX_BLUEPRINT_BODY);
    let r = alice
        .post(
            "/blueprints",
            &[
                ("name", "huge"),
                ("args", "+map c1m1_hotel"),
                ("config", &huge),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        r.body.contains("larger than the limit") && r.body.contains("server.cfg"),
        "{}",
        r.body
    );
    // Other forms keep the small limit, with a clear message too.
    let r = alice
        .post("/logout", &[("padding", &"x".repeat(64 * 1024))])
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        r.body
            .contains(&format!("limit of {} bytes", l4d2web::web::MAX_BODY)),
        "{}",
        r.body
    );
    assert_eq!(alice.get("/blueprints").await.status, StatusCode::OK);
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM blueprints")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
    s.stop().await;
}
