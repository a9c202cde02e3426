//! Benchmark: how many SSE job-log viewers stay connected at once, the
//! p50/p99 latency of `/health` and of the jobs page meanwhile, and the
//! server's resident memory. Prints results; asserts nothing about speed.
//!
//! Runs the real `left4me serve` binary (a separate process, so its RSS is
//! its own) on a real SQLite file. The job being watched runs a stand-in for
//! `l4d2ctl` (LEFT4ME_L4D2CTL) that prints one line per second: the bench
//! measures the web side's fan-out, not the game install.
//!
//! `cargo bench -p l4d2web --bench sse_viewers`; VIEWERS=n to change the
//! target (default 10000). Viewers ask for `text/event-stream` as a
//! browser's EventSource does; BROWSER_ACCEPT=0 leaves the header out (the
//! request is then served by hyper's general path).

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PASSWORD: &str = "bench-password-1";

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn raise_nofile(target: u64) -> u64 {
    // SAFETY: plain get/setrlimit on a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        let want = libc::rlimit {
            rlim_cur: target,
            rlim_max: target.max(lim.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &want) != 0 {
            let soft = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &soft);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur
    }
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn raw_get(addr: &str, path: &str, cookie: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: left4me_session={cookie}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Logs in over raw HTTP and returns the session cookie.
async fn login(addr: &str) -> String {
    let (_, page) = raw_get(addr, "/login", "").await;
    let cookie = page
        .split("left4me_session=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let marker = "name=\"csrf_token\" value=\"";
    let csrf = page
        .split(marker)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let body = format!("csrf_token={csrf}&username=admin&password={PASSWORD}");
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST /login HTTP/1.1\r\nHost: {addr}\r\nCookie: left4me_session={cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 303"), "login failed: {text}");
    text.split("left4me_session=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// One SSE viewer: connects, checks the 200, then counts `line` events.
async fn viewer(
    addr: String,
    path: String,
    cookie: String,
    accept: &'static str,
    connected: Arc<AtomicUsize>,
    lines: Arc<AtomicUsize>,
) -> Result<(), String> {
    let mut s = TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: left4me_session={cookie}\r\n{accept}\r\n"
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = vec![0u8; 4096];
    let mut head = Vec::new();
    let mut counted = false;
    loop {
        let n = s.read(&mut buf).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("closed".into());
        }
        if !counted {
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                if !head.starts_with(b"HTTP/1.1 200") {
                    return Err(String::from_utf8_lossy(&head[..head.len().min(80)]).into_owned());
                }
                counted = true;
                connected.fetch_add(1, Ordering::Relaxed);
            }
        }
        let events = buf[..n].windows(11).filter(|w| w == b"event: line").count();
        lines.fetch_add(events, Ordering::Relaxed);
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn latency(addr: &str, path: &str, cookie: &str, n: usize) -> (Duration, Duration, Duration) {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let (status, _) = raw_get(addr, path, cookie).await;
        samples.push(t.elapsed());
        assert_eq!(status, 200, "{path}");
    }
    samples.sort();
    (
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        *samples.last().unwrap(),
    )
}

#[tokio::main]
async fn main() {
    let target: usize = std::env::var("VIEWERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let accept = match std::env::var("BROWSER_ACCEPT").as_deref() {
        Ok("0") => "",
        _ => "Accept: text/event-stream\r\n",
    };
    let limit = raise_nofile(65_536);
    println!(
        "sse_viewers: target {target} viewers ({}), RLIMIT_NOFILE {limit}",
        if accept.is_empty() {
            "no Accept header"
        } else {
            "Accept: text/event-stream"
        }
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let ctl = root.join("ticker-l4d2ctl");
    std::fs::write(
        &ctl,
        "#!/bin/sh\ni=0\nwhile [ $i -lt 100000 ]; do echo \"tick $i\"; i=$((i+1)); sleep 1; done\n",
    )
    .unwrap();
    std::fs::set_permissions(&ctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = env!("CARGO_BIN_EXE_left4me");
    let env = |c: &mut Command| {
        c.env("LEFT4ME_ROOT", root)
            .env("SECRET_KEY", "bench-secret-key-0123456789abcdef-xyz")
            .env("LEFT4ME_L4D2CTL", &ctl)
            .env("LEFT4ME_LOG", "warn");
    };
    let mut c = Command::new(exe);
    env(&mut c);
    let out = c
        .args(["create-user", "admin", "--admin"])
        .env("LEFT4ME_ADMIN_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = test_support::free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut c = Command::new(exe);
    env(&mut c);
    let server = Server(
        c.arg("serve")
            .env("LEFT4ME_BIND", &addr)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = server.0.id();
    while TcpStream::connect(&addr).await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (rss0, _) = rss_kib(pid);
    let cookie = login(&addr).await;
    // Enqueue the watched job through the admin form.
    let (_, page) = raw_get(&addr, "/jobs", &cookie).await;
    let csrf = page
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let body = format!("csrf_token={csrf}");
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(format!("POST /admin/install HTTP/1.1\r\nHost: {addr}\r\nCookie: left4me_session={cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes()).await.unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    let job_path = resp
        .split("location: ")
        .nth(1)
        .unwrap()
        .split("\r\n")
        .next()
        .unwrap()
        .to_string();
    let stream_path = format!("{job_path}/stream");
    println!("watching {stream_path}");

    let (h50, h99, _) = latency(&addr, "/health", &cookie, 200).await;
    let (j50, j99, _) = latency(&addr, "/jobs", &cookie, 200).await;
    println!("idle:      /health p50 {h50:?} p99 {h99:?} | /jobs p50 {j50:?} p99 {j99:?} | RSS {rss0} KiB");

    let connected = Arc::new(AtomicUsize::new(0));
    let lines = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(target);
    for i in 0..target {
        let (a, p, ck, cn, ln, er) = (
            addr.clone(),
            stream_path.clone(),
            cookie.clone(),
            connected.clone(),
            lines.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            if let Err(e) = viewer(a, p, ck, accept, cn, ln).await {
                er.lock().unwrap().push(e);
            }
        }));
        // Open in waves so the listen backlog is not overrun.
        if i % 250 == 249 {
            while connected.load(Ordering::Relaxed) + errors.lock().unwrap().len() + 50 < i {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while connected.load(Ordering::Relaxed) + errors.lock().unwrap().len() < target
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ramp = started.elapsed();
    println!(
        "connected: {} of {target} viewers in {ramp:?} ({} failed)",
        connected.load(Ordering::Relaxed),
        errors.lock().unwrap().len()
    );
    if let Some(e) = errors.lock().unwrap().first() {
        println!("  first failure: {e}");
    }

    let (h50, h99, hmax) = latency(&addr, "/health", &cookie, 300).await;
    let (j50, j99, jmax) = latency(&addr, "/jobs", &cookie, 300).await;
    let (rss, hwm) = rss_kib(pid);
    println!("with viewers: /health p50 {h50:?} p99 {h99:?} max {hmax:?} | /jobs p50 {j50:?} p99 {j99:?} max {jmax:?}");
    println!(
        "server RSS {rss} KiB (peak {hwm} KiB), {:.1} KiB per viewer",
        (rss.saturating_sub(rss0)) as f64 / target.max(1) as f64
    );

    // Are they all still live? Every viewer should receive the next lines.
    let before = lines.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = lines.load(Ordering::Relaxed);
    let still = target - tasks.iter().filter(|t| t.is_finished()).count();
    println!(
        "after 5 s: {still} viewer connections open, {} line events delivered ({:.1} per viewer, the job prints 1/s)",
        after - before,
        (after - before) as f64 / still.max(1) as f64
    );
    for t in &tasks {
        t.abort();
    }
    drop(server);
}
