//! Benchmark: HL-log lines per second through the real UDP log listener of
//! a running `left4me serve` (a separate process), parsed, attributed by
//! `sv_logsecret` and fanned out over SSE to 1,000 live-panel viewers.
//! Prints results; asserts nothing about speed.
//!
//! For each offered rate the sender paces chat lines for a few seconds;
//! every viewer counts the `event` frames it receives. "delivered" is the
//! share of lines the slowest and the average viewer got (a viewer that
//! falls more than the channel's 1,024 events behind skips ahead to a fresh
//! panel instead of stalling the listener).
//!
//! `cargo bench -p l4d2web --bench live_fanout`; VIEWERS=n changes the
//! viewer count (default 1000).

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PASSWORD: &str = "bench-password-1";
const SECRET: &str = "1234567";

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn request(addr: &str, raw: String) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    text.split(start)
        .nth(1)
        .and_then(|rest| rest.split(end).next())
        .unwrap_or_else(|| panic!("{start:?} not found in {}", &text[..text.len().min(300)]))
}

async fn login(addr: &str) -> String {
    let page = request(
        addr,
        format!("GET /login HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    let cookie = between(&page, "left4me_session=", ";").to_string();
    let csrf = between(&page, "name=\"csrf_token\" value=\"", "\"");
    let body = format!("csrf_token={csrf}&username=admin&password={PASSWORD}");
    let res = request(addr, format!(
        "POST /login HTTP/1.1\r\nHost: {addr}\r\nCookie: left4me_session={cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )).await;
    assert!(res.starts_with("HTTP/1.1 303"), "login failed: {res}");
    between(&res, "left4me_session=", ";").to_string()
}

/// One live-panel viewer counting `event` frames.
async fn viewer(
    addr: String,
    path: String,
    cookie: String,
    connected: Arc<AtomicUsize>,
    count: Arc<AtomicUsize>,
) -> Result<(), String> {
    let mut s = TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: left4me_session={cookie}\r\nAccept: text/event-stream\r\n\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let marker = b"event: event\n";
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut headers_seen = false;
    loop {
        let n = s.read(&mut buf).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("closed".into());
        }
        pending.extend_from_slice(&buf[..n]);
        if !headers_seen {
            if !pending.windows(4).any(|w| w == b"\r\n\r\n") {
                continue;
            }
            if !pending.starts_with(b"HTTP/1.1 200") {
                return Err(String::from_utf8_lossy(&pending[..pending.len().min(80)]).into_owned());
            }
            headers_seen = true;
            connected.fetch_add(1, Ordering::Relaxed);
        }
        let events = pending
            .windows(marker.len())
            .filter(|w| w == marker)
            .count();
        count.fetch_add(events, Ordering::Relaxed);
        // Keep a tail shorter than the marker: a marker split across reads
        // is counted once, when it completes.
        let keep = pending.len().min(marker.len() - 1);
        pending.drain(..pending.len() - keep);
    }
}

fn log_packet(n: u64) -> Vec<u8> {
    let mut p = vec![0xFF, 0xFF, 0xFF, 0xFF, b'S'];
    p.extend_from_slice(SECRET.as_bytes());
    p.extend_from_slice(
        format!(
            "L 11/22/2026 - 12:00:00: \"Bench<2><STEAM_1:0:12345><Survivor>\" say \"line {n}\"\n\0"
        )
        .as_bytes(),
    );
    p
}

fn totals(counts: &[Arc<AtomicUsize>]) -> (usize, usize) {
    let v: Vec<usize> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    (v.iter().sum(), v.iter().copied().min().unwrap_or(0))
}

#[tokio::main]
async fn main() {
    let viewers: usize = std::env::var("VIEWERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let exe = env!("CARGO_BIN_EXE_left4me");
    let log_port = test_support::free_port();
    let env = |c: &mut Command| {
        c.env("LEFT4ME_ROOT", root)
            .env("SECRET_KEY", "bench-secret-key-0123456789abcdef-xyz")
            .env("LEFT4ME_BACKEND", "local")
            .env("LOG_LISTENER_BIND", format!("127.0.0.2:{log_port}"))
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
    // The watched server: a row only (no game process needed: the bench
    // plays the game's log sender itself).
    let pool = l4d2web::db::connect(&format!("sqlite://{}", root.join("left4me.db").display()))
        .await
        .unwrap();
    let blueprint: i64 = sqlx::query_scalar(
        "INSERT INTO blueprints (owner_id, name) VALUES (1, 'bench') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let server_id: i64 = sqlx::query_scalar(
        "INSERT INTO servers (name, owner_id, blueprint_id, port, rcon_password, log_secret)
         VALUES ('bench', 1, ?, 27015, 'unused', ?) RETURNING id",
    )
    .bind(blueprint)
    .bind(SECRET)
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;

    let addr = format!("127.0.0.1:{}", test_support::free_port());
    let mut c = Command::new(exe);
    env(&mut c);
    let _server = Server(
        c.arg("serve")
            .env("LEFT4ME_BIND", &addr)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    while TcpStream::connect(&addr).await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cookie = login(&addr).await;
    let path = format!("/servers/{server_id}/live/stream");
    let connected = Arc::new(AtomicUsize::new(0));
    let counts: Vec<Arc<AtomicUsize>> = (0..viewers)
        .map(|_| Arc::new(AtomicUsize::new(0)))
        .collect();
    let mut tasks = Vec::new();
    for (i, count) in counts.iter().enumerate() {
        let (a, p, ck, cn, ct) = (
            addr.clone(),
            path.clone(),
            cookie.clone(),
            connected.clone(),
            count.clone(),
        );
        tasks.push(tokio::spawn(async move {
            if let Err(e) = viewer(a, p, ck, cn, ct).await {
                eprintln!("viewer failed: {e}");
            }
        }));
        if i % 250 == 249 {
            while connected.load(Ordering::Relaxed) + 50 < i {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while connected.load(Ordering::Relaxed) < viewers && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "live_fanout: {} of {viewers} viewers connected to {path}",
        connected.load(Ordering::Relaxed)
    );

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = ("127.0.0.2", log_port);
    // The listener learns the secret from the database within seconds.
    let ready = Instant::now();
    while totals(&counts).0 == 0 {
        assert!(
            ready.elapsed() < Duration::from_secs(20),
            "log lines never reached the viewers"
        );
        sock.send_to(&log_packet(0), target).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    println!("offered lines/s | sent | parse+fan-out time | delivered per viewer (avg / min) | SSE frames/s delivered");
    let mut seq = 1u64;
    for rate in [100u64, 500, 1000, 2000, 5000] {
        let (base_total, _) = totals(&counts);
        let base: Vec<usize> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let secs = 3u64;
        let n = rate * secs;
        let start = Instant::now();
        for i in 0..n {
            // Pace in 10 ms slots.
            let due = start + Duration::from_micros(i * 1_000_000 / rate);
            let now = Instant::now();
            if due > now {
                tokio::time::sleep(due - now).await;
            }
            sock.send_to(&log_packet(seq), target).unwrap();
            seq += 1;
        }
        // Drained when no viewer received anything for a second.
        let mut last = totals(&counts).0;
        let mut last_change = Instant::now();
        while last_change.elapsed() < Duration::from_secs(1) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = totals(&counts).0;
            if now != last {
                last = now;
                last_change = Instant::now();
            }
        }
        let elapsed = last_change.duration_since(start);
        let delivered = last - base_total;
        let per_viewer: Vec<usize> = counts
            .iter()
            .zip(&base)
            .map(|(c, b)| c.load(Ordering::Relaxed) - b)
            .collect();
        let min = per_viewer.iter().copied().min().unwrap_or(0);
        let avg = delivered as f64 / viewers as f64;
        println!(
            "{rate:>15} | {n:>5} | {elapsed:>17.2?} | {:>6.1}% / {:>6.1}% | {:>10.0}",
            avg * 100.0 / n as f64,
            min as f64 * 100.0 / n as f64,
            delivered as f64 / elapsed.as_secs_f64(),
        );
    }
    for t in &tasks {
        t.abort();
    }
}
