//! Hardening against real HTTP: file downloads refuse FIFOs, sockets and
//! devices without blocking a thread.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;

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
