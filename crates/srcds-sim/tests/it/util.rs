//! What srcds-sim's tests share beyond `test_support::sim`: the binary
//! under test, raw A2S replies and HL log packets.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

pub use test_support::free_port;
pub use test_support::sim::*;

pub const SRCDS: &str = env!("CARGO_BIN_EXE_srcds-sim");

/// One UDP request/response.
pub fn udp_query(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.send_to(request, addr).unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = sock.recv_from(&mut buf).expect("A2S reply");
    buf[..n].to_vec()
}

/// Little cursor over a reply, with the wiki's types.
pub struct Cursor<'a>(pub &'a [u8]);
impl<'a> Cursor<'a> {
    pub fn byte(&mut self) -> u8 {
        let b = self.0[0];
        self.0 = &self.0[1..];
        b
    }
    pub fn short(&mut self) -> i16 {
        let v = i16::from_le_bytes([self.0[0], self.0[1]]);
        self.0 = &self.0[2..];
        v
    }
    pub fn long(&mut self) -> i32 {
        let v = i32::from_le_bytes(self.0[..4].try_into().unwrap());
        self.0 = &self.0[4..];
        v
    }
    pub fn float(&mut self) -> f32 {
        let v = f32::from_le_bytes(self.0[..4].try_into().unwrap());
        self.0 = &self.0[4..];
        v
    }
    pub fn long_long(&mut self) -> u64 {
        let v = u64::from_le_bytes(self.0[..8].try_into().unwrap());
        self.0 = &self.0[8..];
        v
    }
    pub fn string(&mut self) -> String {
        let end = self
            .0
            .iter()
            .position(|b| *b == 0)
            .expect("NUL-terminated string");
        let s = String::from_utf8(self.0[..end].to_vec()).unwrap();
        self.0 = &self.0[end + 1..];
        s
    }
}

/// A UDP socket receiving HL log packets.
pub struct LogListener {
    pub sock: UdpSocket,
}

impl Default for LogListener {
    fn default() -> Self {
        Self::new()
    }
}

impl LogListener {
    pub fn new() -> Self {
        Self::on("127.0.0.1")
    }
    /// A listener on `ip` (any address of 127.0.0.0/8 works on Linux).
    pub fn on(ip: &str) -> Self {
        let sock = UdpSocket::bind((ip, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        LogListener { sock }
    }
    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }
    /// Receives packets until one contains `needle` (or panics after 10 s);
    /// returns that packet's raw bytes.
    pub fn wait_for(&self, needle: &str) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                let pkt = buf[..n].to_vec();
                if String::from_utf8_lossy(&pkt).contains(needle) {
                    return pkt;
                }
                seen.push(String::from_utf8_lossy(&pkt).into_owned());
            }
        }
        panic!("no log packet containing {needle:?}; got {seen:#?}");
    }
}
