//! HL log throughput: lines per second through `parse_packet` +
//! `parse_line` (pure), through the listener's classification (plus the
//! secret lookup), and through the real UDP listener on loopback with a
//! sender blasting packets (received, parsed, delivered, dropped).
//!
//! Run: `cargo bench -p source-proto --bench log_parse`
//! (LOG_BENCH_PACKETS=N changes the UDP packet count, default 200000).

use source_proto::hllog;
use source_proto::listener::LogListener;
use std::net::UdpSocket;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;

const LINES: &[&str] = &[
    "\"Nick<2><STEAM_1:0:123456><>\" connected, address \"203.0.113.5:27005\"",
    "\"Nick<2><STEAM_1:0:123456><>\" entered the game",
    "\"Nick<2><STEAM_1:0:123456><Survivor>\" joined team \"Survivor\"",
    "\"Ellis <the> \"Mechanic\"<3><STEAM_1:1:98765><Survivor>\" say \"tank incoming, pills in the saferoom\"",
    "\"Coach<4><BOT><Survivor>\" say_team \"follow me\"",
    "\"Nick<2><STEAM_1:0:123456><Survivor>\" disconnected (reason \"Disconnect by user.\")",
    "Loading map \"c2m1_highway\"",
    "Started map \"c2m1_highway\" (CRC \"-1734891\")",
    "server_cvar: \"sv_cheats\" \"0\"",
    "rcon from \"127.0.0.1:41234\": command \"status\"",
];

fn packets(secret: &str) -> Vec<Vec<u8>> {
    LINES
        .iter()
        .map(|event| {
            let mut v = vec![0xFF, 0xFF, 0xFF, 0xFF, b'S'];
            v.extend_from_slice(secret.as_bytes());
            v.extend_from_slice(format!("L 11/22/2025 - 00:35:07: {event}\n\0").as_bytes());
            v
        })
        .collect()
}

/// A line built to make a naive player-tag parser quadratic: `"` and then
/// `>" ` over and over, so every position looks like the end of a tag whose
/// fields are never there. `len` is the whole line's length in bytes.
fn hostile_line(len: usize) -> String {
    let mut line = String::from("L 11/22/2025 - 00:35:07: \"");
    while line.len() + 3 <= len {
        line.push_str(">\" ");
    }
    line
}

/// The same shape as a packet with a valid secret.
fn hostile_packet(len: usize) -> Vec<u8> {
    let mut v = vec![0xFF, 0xFF, 0xFF, 0xFF, b'S'];
    v.extend_from_slice(b"1000007");
    v.extend_from_slice(hostile_line(len).as_bytes());
    v.extend_from_slice(b"\n\0");
    v
}

/// Worst-case lines: the longest hostile line the engine could send, and the
/// 65 KB datagram a forger can send (refused by its size before parsing).
fn worst_case(quick: bool) {
    let rounds = if quick { 20 } else { 2_000 };
    for (label, len) in [
        ("hostile line, 1 KB", hllog::MAX_LINE_BYTES),
        ("hostile line, 65 KB", 65_000),
    ] {
        let packet = hostile_packet(len);
        let line = hostile_line(len);
        let start = Instant::now();
        for _ in 0..rounds {
            if let Ok(p) = hllog::parse_packet(std::hint::black_box(&packet)) {
                let _ = std::hint::black_box(hllog::parse_line(&p.line));
            }
        }
        let packet_time = start.elapsed() / rounds;
        let start = Instant::now();
        for _ in 0..rounds {
            let _ = std::hint::black_box(hllog::parse_line(std::hint::black_box(&line)));
        }
        let line_time = start.elapsed() / rounds;
        println!(
            "worst case {label:<20}: parse_packet + parse_line {packet_time:>10.2?}/packet, parse_line alone {line_time:>10.2?}/line"
        );
    }
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn pure_parse(pkts: &[Vec<u8>]) {
    let n = 1_000_000usize;
    let start = Instant::now();
    let mut events = 0u64;
    for i in 0..n {
        let p = hllog::parse_packet(&pkts[i % pkts.len()]).expect("sample packet parses");
        if hllog::parse_line(&p.line).is_ok() {
            events += 1;
        }
    }
    let d = start.elapsed();
    assert_eq!(events, n as u64, "every sample line parses");
    println!(
        "parse_packet + parse_line : {:>10.0} lines/s  ({n} lines in {:.2?}, {:.0} ns/line)",
        rate(n as u64, d),
        d,
        d.as_nanos() as f64 / n as f64
    );
}

async fn classify(pkts: &[Vec<u8>]) {
    let listener = LogListener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    // A realistic registry: a few dozen servers.
    for key in 0..50i64 {
        listener
            .register(format!("{}", 1_000_000 + key), key)
            .unwrap();
    }
    let n = 1_000_000usize;
    let start = Instant::now();
    for i in 0..n {
        listener
            .classify(&pkts[i % pkts.len()])
            .expect("attributed");
    }
    let d = start.elapsed();
    println!(
        "listener classify (50 srv): {:>10.0} lines/s  ({:.0} ns/line)",
        rate(n as u64, d),
        d.as_nanos() as f64 / n as f64
    );
}

/// Sends `total` packets to the listener (at most `per_sec` per second when
/// paced) and reports what came through.
async fn udp(pkts: &[Vec<u8>], total: u64, per_sec: Option<u64>) {
    let listener = LogListener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    listener.register("1000007".into(), 7).unwrap();
    let target = listener.local_addr().unwrap();
    let task = listener.spawn();
    let mut rx = listener.subscribe();
    let consumer = tokio::spawn(async move {
        let (mut got, mut lagged) = (0u64, 0u64);
        loop {
            match tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
                Ok(Ok(_)) => got += 1,
                Ok(Err(RecvError::Lagged(n))) => lagged += n,
                Ok(Err(RecvError::Closed)) | Err(_) => return (got, lagged),
            }
        }
    });

    let pkts = pkts.to_vec();
    let start = Instant::now();
    let sender = std::thread::spawn(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut sent = 0u64;
        let t0 = Instant::now();
        for i in 0..total {
            if let Some(r) = per_sec {
                let due = Duration::from_secs_f64(i as f64 / r as f64);
                while t0.elapsed() < due {
                    std::hint::spin_loop();
                }
            }
            // A full socket buffer is exactly the drop we want to observe.
            if sock
                .send_to(&pkts[(i as usize) % pkts.len()], target)
                .is_ok()
            {
                sent += 1;
            }
        }
        (sent, t0.elapsed())
    });
    let (sent, send_time) = tokio::task::spawn_blocking(move || sender.join().unwrap())
        .await
        .unwrap();
    // Wait until the listener stops receiving.
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = listener.stats().received;
        if now == last {
            break;
        }
        last = now;
    }
    let elapsed = start.elapsed() - Duration::from_millis(200);
    let stats = listener.stats();
    task.abort();
    drop(listener);
    let (delivered, lagged) = consumer.await.unwrap();
    let label = match per_sec {
        Some(r) => format!("UDP paced {r}/s"),
        None => "UDP blast (unpaced)".to_string(),
    };
    println!(
        "{label:<26}: sent {sent} in {send_time:.2?} ({:.0}/s); listener received {} ({:.1}% kernel drops), \
         parsed+attributed {} ({:.0}/s), malformed {}, subscriber got {} (lagged {})",
        rate(sent, send_time),
        stats.received,
        100.0 * (sent.saturating_sub(stats.received)) as f64 / sent.max(1) as f64,
        stats.accepted,
        rate(stats.accepted, elapsed),
        stats.dropped_malformed,
        delivered,
        lagged,
    );
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench`-less args;
    // keep that run short.
    let quick = !std::env::args().any(|a| a == "--bench");
    let total: u64 = std::env::var("LOG_BENCH_PACKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 2_000 } else { 200_000 });
    let pkts = packets("1000007");
    println!("== source-proto HL log benchmark ==");
    if quick {
        println!("(quick mode: run with `cargo bench` for real numbers)");
    } else {
        pure_parse(&pkts);
    }
    worst_case(quick);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        if !quick {
            classify(&packets("1000007")).await;
        }
        udp(&pkts, total, None).await;
        udp(&pkts, total / 2, Some(50_000)).await;
    });
}
