//! Shared by l4d2ctl's integration tests and its benchmark.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

/// A port inside the default range that is free for both UDP and TCP now.
pub fn free_port() -> u16 {
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
    for i in 0..1000u64 {
        let port = 27000 + ((seed.wrapping_mul(2654435761).wrapping_add(i * 7919)) % 1000) as u16;
        let udp = UdpSocket::bind(("0.0.0.0", port));
        let tcp = std::net::TcpListener::bind(("0.0.0.0", port));
        if udp.is_ok() && tcp.is_ok() {
            return port;
        }
    }
    panic!("no free port in 27000-27999");
}

/// Polls A2S_INFO (a real client crate, independent of our simulator) until
/// the server answers or `timeout` passes.
pub fn wait_for_a2s(port: u16, timeout: Duration) -> Option<a2s::info::Info> {
    let mut client = a2s::A2SClient::new().ok()?;
    // Short: a query sent before the server bound its socket is simply lost,
    // and a long timeout would then dominate what the benchmark measures.
    client.set_timeout(Duration::from_millis(50)).ok()?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(info) = client.info(("127.0.0.1", port)) {
            return Some(info);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// Minimal Source RCON exchange: authenticate, run one command, return the
/// first response body.
pub fn rcon(port: u16, password: &str, command: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect rcon");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let send = |s: &mut TcpStream, id: i32, kind: i32, body: &str| {
        let mut packet = Vec::new();
        packet.extend_from_slice(&id.to_le_bytes());
        packet.extend_from_slice(&kind.to_le_bytes());
        packet.extend_from_slice(body.as_bytes());
        packet.extend_from_slice(&[0, 0]);
        let mut framed = (packet.len() as i32).to_le_bytes().to_vec();
        framed.extend(packet);
        s.write_all(&framed).unwrap();
    };
    let recv = |s: &mut TcpStream| -> (i32, i32, String) {
        let mut size = [0u8; 4];
        s.read_exact(&mut size).unwrap();
        let mut body = vec![0u8; i32::from_le_bytes(size) as usize];
        s.read_exact(&mut body).unwrap();
        let id = i32::from_le_bytes(body[0..4].try_into().unwrap());
        let kind = i32::from_le_bytes(body[4..8].try_into().unwrap());
        let text = String::from_utf8_lossy(&body[8..body.len() - 2]).into_owned();
        (id, kind, text)
    };
    send(&mut stream, 1, 3, password);
    loop {
        let (id, kind, _) = recv(&mut stream);
        if kind == 2 {
            assert_eq!(id, 1, "rcon auth rejected");
            break;
        }
    }
    send(&mut stream, 2, 2, command);
    let (_, _, text) = recv(&mut stream);
    text
}

/// Total bytes of regular files below `path` (apparent size), not following links.
pub fn tree_bytes(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        std::fs::read_dir(path)
            .map(|entries| entries.flatten().map(|e| tree_bytes(&e.path())).sum())
            .unwrap_or(0)
    } else if meta.is_file() {
        meta.len()
    } else {
        0
    }
}

/// Disk blocks actually allocated below `path`, in bytes (what `du` reports).
pub fn tree_disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let own = meta.blocks() * 512;
    if meta.is_dir() {
        own + std::fs::read_dir(path)
            .map(|entries| entries.flatten().map(|e| tree_disk_usage(&e.path())).sum())
            .unwrap_or(0)
    } else {
        own
    }
}
