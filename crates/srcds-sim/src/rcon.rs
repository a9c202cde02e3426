//! Source RCON packet framing (Valve Developer Wiki, *Source RCON Protocol*):
//! `size:i32le id:i32le type:i32le body NUL NUL`, where `size` counts the
//! bytes after itself (10 ..= 4096).
//!
//! Hand-written server side: the maintained RCON crates are clients.

use std::io::{self, Write};
use thiserror::Error;

pub const SERVERDATA_AUTH: i32 = 3;
pub const SERVERDATA_AUTH_RESPONSE: i32 = 2;
pub const SERVERDATA_EXECCOMMAND: i32 = 2;
pub const SERVERDATA_RESPONSE_VALUE: i32 = 0;
/// Smallest legal `size`: id + type + two NUL terminators.
pub const MIN_SIZE: i32 = 10;
/// Largest legal `size`, for requests and for each response packet.
pub const MAX_SIZE: i32 = 4096;
/// Largest body that fits one response packet.
pub const MAX_BODY: usize = (MAX_SIZE - MIN_SIZE) as usize;
/// The body of the packet srcds sends after mirroring an empty
/// SERVERDATA_RESPONSE_VALUE (the end-of-response marker trick).
pub const MIRROR_TRAILER_BODY: [u8; 4] = [0x00, 0x01, 0x00, 0x00];

/// A framing violation; srcds drops such connections.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("RCON packet size {0} outside {MIN_SIZE}..={MAX_SIZE}")]
    BadSize(i32),
    #[error("RCON packet body is not NUL-terminated")]
    Unterminated,
}

/// One RCON packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub id: i32,
    pub kind: i32,
    /// Body bytes without the terminating NUL (and without the empty string).
    pub body: Vec<u8>,
}

impl Packet {
    pub fn new(id: i32, kind: i32, body: impl Into<Vec<u8>>) -> Self {
        Packet {
            id,
            kind,
            body: body.into(),
        }
    }

    /// Body as text (lossy: clients may send anything).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Wire bytes: size, id, type, body, NUL, NUL.
    pub fn encode(&self) -> Vec<u8> {
        let size = (self.body.len() + MIN_SIZE as usize) as i32;
        let mut out = Vec::with_capacity(size as usize + 4);
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.kind.to_le_bytes());
        out.extend_from_slice(&self.body);
        out.extend_from_slice(&[0, 0]);
        out
    }

    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&self.encode())
    }
}

/// Takes one complete packet off the front of `buf`.
/// `Ok(None)`: need more bytes. `Err`: the stream is garbage.
pub fn take_packet(buf: &mut Vec<u8>) -> Result<Option<Packet>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let size = i32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if !(MIN_SIZE..=MAX_SIZE).contains(&size) {
        return Err(FrameError::BadSize(size));
    }
    let total = 4 + size as usize;
    if buf.len() < total {
        return Ok(None);
    }
    let frame: Vec<u8> = buf.drain(..total).collect();
    let id = i32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let kind = i32::from_le_bytes([frame[8], frame[9], frame[10], frame[11]]);
    let rest = &frame[12..];
    // The body ends at its first NUL; the empty second string follows.
    let end = rest
        .iter()
        .position(|b| *b == 0)
        .ok_or(FrameError::Unterminated)?;
    Ok(Some(Packet::new(id, kind, &rest[..end])))
}

/// Splits a command's output into SERVERDATA_RESPONSE_VALUE packets of at
/// most [`MAX_SIZE`]; an empty output still yields one empty packet.
pub fn response_packets(id: i32, output: &[u8]) -> Vec<Packet> {
    if output.is_empty() {
        return vec![Packet::new(id, SERVERDATA_RESPONSE_VALUE, Vec::new())];
    }
    output
        .chunks(MAX_BODY)
        .map(|chunk| Packet::new(id, SERVERDATA_RESPONSE_VALUE, chunk))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_layout() {
        let p = Packet::new(7, SERVERDATA_AUTH, "pw");
        let bytes = p.encode();
        assert_eq!(
            bytes,
            vec![12, 0, 0, 0, 7, 0, 0, 0, 3, 0, 0, 0, b'p', b'w', 0, 0]
        );
        let mut buf = bytes.clone();
        buf.extend_from_slice(&bytes[..5]);
        assert_eq!(take_packet(&mut buf), Ok(Some(p)));
        assert_eq!(buf.len(), 5);
        assert_eq!(take_packet(&mut buf), Ok(None));
    }

    #[test]
    fn rejects_bad_frames() {
        let mut small = 9i32.to_le_bytes().to_vec();
        assert_eq!(take_packet(&mut small), Err(FrameError::BadSize(9)));
        let mut huge = 4097i32.to_le_bytes().to_vec();
        assert_eq!(take_packet(&mut huge), Err(FrameError::BadSize(4097)));
        let mut neg = (-1i32).to_le_bytes().to_vec();
        assert_eq!(take_packet(&mut neg), Err(FrameError::BadSize(-1)));
        let mut unterminated = 10i32.to_le_bytes().to_vec();
        unterminated.extend_from_slice(&[1, 0, 0, 0, 2, 0, 0, 0, b'a', b'b']);
        assert_eq!(
            take_packet(&mut unterminated),
            Err(FrameError::Unterminated)
        );
    }

    #[test]
    fn splits_long_output() {
        let out = vec![b'x'; MAX_BODY * 2 + 5];
        let packets = response_packets(3, &out);
        assert_eq!(packets.len(), 3);
        assert!(packets
            .iter()
            .all(|p| p.encode().len() <= 4 + MAX_SIZE as usize));
        assert_eq!(packets[2].body.len(), 5);
        assert_eq!(response_packets(3, b"").len(), 1);
    }
}
