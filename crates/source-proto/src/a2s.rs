//! A2S_INFO and A2S_PLAYER queries (Valve Developer Wiki, *Server queries*).
//!
//! Requests go out as `FF FF FF FF <type> ...`; a server may answer with
//! S2C_CHALLENGE (`'A'` + 4 bytes) and the client repeats the request with
//! that challenge (appended to A2S_INFO since the December 2020 change, in
//! place of `-1` for A2S_PLAYER). Replies larger than one datagram come
//! split (`FE FF FF FF`, Source format); compressed splits are refused.
//!
//! Hand-written rather than the `a2s` crate (0.6): its async client is a
//! crate feature that replaces the blocking API, so enabling it would break
//! every other user of the crate in this workspace; its parsers take owned
//! `Cursor<Vec<u8>>`s of its own framing, and its split-packet code indexes
//! received bytes without length checks (a short datagram panics). The
//! parsers here are pure functions over untrusted bytes.

use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;
use tokio::net::UdpSocket;

/// Single-packet header.
pub const SIMPLE_HEADER: i32 = -1;
/// Split-packet header.
pub const SPLIT_HEADER: i32 = -2;
/// A2S_INFO request type.
pub const A2S_INFO: u8 = 0x54;
/// A2S_PLAYER request type.
pub const A2S_PLAYER: u8 = 0x55;
/// S2C_CHALLENGE reply type.
pub const S2C_CHALLENGE: u8 = 0x41;
/// A2S_INFO reply type (Source).
pub const S2A_INFO: u8 = 0x49;
/// A2S_PLAYER reply type.
pub const S2A_PLAYER: u8 = 0x44;
const INFO_PAYLOAD: &[u8] = b"Source Engine Query\0";
/// Most fragments of one split reply we accept (the engine sends few; the
/// byte field allows 255).
pub const MAX_SPLIT_PACKETS: u8 = 32;
/// Largest datagram we read.
const MAX_DATAGRAM: usize = 65_535;
/// Challenge rounds before giving up (a server may re-challenge once).
const MAX_CHALLENGE_ROUNDS: usize = 3;

/// A failed query or an unreadable reply.
#[derive(Debug, Error)]
pub enum A2sError {
    #[error("A2S I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("A2S query to {addr} timed out after {after:?}")]
    Timeout { addr: SocketAddr, after: Duration },
    #[error("A2S reply truncated: needed {what} at byte {at}")]
    Truncated { what: &'static str, at: usize },
    #[error("A2S reply has header {0:#010x}, expected 0xFFFFFFFF or 0xFFFFFFFE")]
    BadHeader(i32),
    #[error("A2S reply type {got:#04x}, expected {expected:#04x}")]
    WrongType { got: u8, expected: u8 },
    #[error("A2S reply has {0} unparsed trailing bytes")]
    Trailing(usize),
    #[error("compressed split A2S replies are not supported")]
    Compressed,
    #[error("bad split A2S packet: {0}")]
    BadSplit(&'static str),
    #[error("server kept answering with a challenge")]
    ChallengeLoop,
}

/// What A2S_INFO tells about a server.
#[derive(Debug, Clone, PartialEq)]
pub struct Info {
    pub protocol: u8,
    pub name: String,
    pub map: String,
    pub folder: String,
    pub game: String,
    pub app_id: u16,
    pub players: u8,
    pub max_players: u8,
    pub bots: u8,
    /// `d` dedicated, `l` listen, `p` SourceTV relay.
    pub server_type: char,
    /// `l` Linux, `w` Windows, `m`/`o` macOS.
    pub environment: char,
    pub password_protected: bool,
    pub vac: bool,
    pub version: String,
    pub port: Option<u16>,
    pub steam_id: Option<u64>,
    pub source_tv: Option<(u16, String)>,
    pub keywords: Option<String>,
    pub game_id: Option<u64>,
}

/// One A2S_PLAYER row.
#[derive(Debug, Clone, PartialEq)]
pub struct Player {
    pub index: u8,
    pub name: String,
    pub score: i32,
    /// Seconds connected.
    pub duration: f32,
}

/// Little-endian reader over untrusted bytes: every read is bounds-checked.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], A2sError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.data.len());
        let Some(end) = end else {
            return Err(A2sError::Truncated { what, at: self.pos });
        };
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, A2sError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, A2sError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn i32(&mut self, what: &'static str) -> Result<i32, A2sError> {
        let b = self.take(4, what)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn f32(&mut self, what: &'static str) -> Result<f32, A2sError> {
        let b = self.take(4, what)?;
        Ok(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, A2sError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    /// NUL-terminated string. Invalid UTF-8 is replaced, not refused: the
    /// engine cuts names at a byte limit, mid-character.
    fn string(&mut self, what: &'static str) -> Result<String, A2sError> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|b| *b == 0)
            .ok_or(A2sError::Truncated { what, at: self.pos })?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(s)
    }
    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
}

/// Checks the single-packet header and reply type; returns the reader after them.
fn open_reply(data: &[u8], expected: u8) -> Result<Reader<'_>, A2sError> {
    let mut r = Reader::new(data);
    let header = r.i32("header")?;
    if header != SIMPLE_HEADER {
        return Err(A2sError::BadHeader(header));
    }
    let kind = r.u8("reply type")?;
    if kind != expected {
        return Err(A2sError::WrongType {
            got: kind,
            expected,
        });
    }
    Ok(r)
}

/// Parses a complete (reassembled) S2A_INFO reply, header included.
pub fn parse_info(data: &[u8]) -> Result<Info, A2sError> {
    let mut r = open_reply(data, S2A_INFO)?;
    let protocol = r.u8("protocol")?;
    let name = r.string("name")?;
    let map = r.string("map")?;
    let folder = r.string("folder")?;
    let game = r.string("game")?;
    let app_id = r.u16("app id")?;
    let players = r.u8("players")?;
    let max_players = r.u8("max players")?;
    let bots = r.u8("bots")?;
    let server_type = char::from(r.u8("server type")?);
    let environment = char::from(r.u8("environment")?);
    let password_protected = r.u8("visibility")? != 0;
    let vac = r.u8("vac")? != 0;
    let version = r.string("version")?;
    let mut info = Info {
        protocol,
        name,
        map,
        folder,
        game,
        app_id,
        players,
        max_players,
        bots,
        server_type,
        environment,
        password_protected,
        vac,
        version,
        port: None,
        steam_id: None,
        source_tv: None,
        keywords: None,
        game_id: None,
    };
    // The Extra Data Flag and everything after it are optional.
    if r.remaining() == 0 {
        return Ok(info);
    }
    let edf = r.u8("extra data flag")?;
    if edf & 0x80 != 0 {
        info.port = Some(r.u16("port")?);
    }
    if edf & 0x10 != 0 {
        info.steam_id = Some(r.u64("steam id")?);
    }
    if edf & 0x40 != 0 {
        let port = r.u16("SourceTV port")?;
        let name = r.string("SourceTV name")?;
        info.source_tv = Some((port, name));
    }
    if edf & 0x20 != 0 {
        info.keywords = Some(r.string("keywords")?);
    }
    if edf & 0x01 != 0 {
        info.game_id = Some(r.u64("game id")?);
    }
    if r.remaining() != 0 {
        return Err(A2sError::Trailing(r.remaining()));
    }
    Ok(info)
}

/// Parses a complete (reassembled) S2A_PLAYER reply, header included.
pub fn parse_players(data: &[u8]) -> Result<Vec<Player>, A2sError> {
    let mut r = open_reply(data, S2A_PLAYER)?;
    let count = r.u8("player count")?;
    let mut players = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        players.push(Player {
            index: r.u8("player index")?,
            name: r.string("player name")?,
            score: r.i32("player score")?,
            duration: r.f32("player duration")?,
        });
    }
    // Bytes past the counted players are tolerated: with more than 255
    // players, or The Ship's extra fields, servers send more than the count.
    Ok(players)
}

/// The challenge number of an S2C_CHALLENGE reply, or `None` if the reply is
/// something else.
pub fn parse_challenge(data: &[u8]) -> Option<i32> {
    let mut r = open_reply(data, S2C_CHALLENGE).ok()?;
    let c = r.i32("challenge").ok()?;
    (r.remaining() == 0).then_some(c)
}

/// Collects the fragments of a split reply (Source format, uncompressed).
#[derive(Debug, Default)]
pub struct SplitCollector {
    id: Option<i32>,
    total: u8,
    parts: Vec<Option<Vec<u8>>>,
}

impl SplitCollector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one datagram. Returns the reassembled reply (starting with the
    /// `FF FF FF FF` header) once it is complete; a single-packet datagram is
    /// returned as it is.
    pub fn push(&mut self, datagram: &[u8]) -> Result<Option<Vec<u8>>, A2sError> {
        let mut r = Reader::new(datagram);
        let header = r.i32("header")?;
        if header == SIMPLE_HEADER {
            return Ok(Some(datagram.to_vec()));
        }
        if header != SPLIT_HEADER {
            return Err(A2sError::BadHeader(header));
        }
        let id = r.i32("split id")?;
        if (id as u32) & 0x8000_0000 != 0 {
            return Err(A2sError::Compressed);
        }
        let total = r.u8("split total")?;
        let number = r.u8("split number")?;
        let _max_size = r.u16("split size")?;
        if total == 0 || total > MAX_SPLIT_PACKETS {
            return Err(A2sError::BadSplit("packet count out of range"));
        }
        if number >= total {
            return Err(A2sError::BadSplit("packet number beyond total"));
        }
        match self.id {
            None => {
                self.id = Some(id);
                self.total = total;
                self.parts = vec![None; usize::from(total)];
            }
            Some(known) if known != id || self.total != total => {
                return Err(A2sError::BadSplit("fragments of different replies"));
            }
            Some(_) => {}
        }
        let payload = datagram[r.pos..].to_vec();
        self.parts[usize::from(number)] = Some(payload);
        if self.parts.iter().all(Option::is_some) {
            let joined: Vec<u8> = self.parts.iter().flatten().flatten().copied().collect();
            *self = SplitCollector::default();
            return Ok(Some(joined));
        }
        Ok(None)
    }
}

fn info_request(challenge: Option<i32>) -> Vec<u8> {
    let mut v = vec![0xFF, 0xFF, 0xFF, 0xFF, A2S_INFO];
    v.extend_from_slice(INFO_PAYLOAD);
    if let Some(c) = challenge {
        v.extend_from_slice(&c.to_le_bytes());
    }
    v
}

fn player_request(challenge: i32) -> Vec<u8> {
    let mut v = vec![0xFF, 0xFF, 0xFF, 0xFF, A2S_PLAYER];
    v.extend_from_slice(&challenge.to_le_bytes());
    v
}

/// Sends requests built by `request(challenge)` until a reply of type
/// `expected` arrives, following challenges.
async fn query(
    addr: SocketAddr,
    timeout: Duration,
    expected: u8,
    request: impl Fn(Option<i32>) -> Vec<u8>,
) -> Result<Vec<u8>, A2sError> {
    let work = async {
        let bind: SocketAddr = if addr.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let sock = UdpSocket::bind(bind).await?;
        // A connected UDP socket only receives datagrams from the server, so
        // nobody else can inject a reply.
        sock.connect(addr).await?;
        let mut challenge = None;
        let mut buf = vec![0u8; MAX_DATAGRAM];
        for _ in 0..MAX_CHALLENGE_ROUNDS {
            sock.send(&request(challenge)).await?;
            let mut split = SplitCollector::new();
            let reply = loop {
                let n = sock.recv(&mut buf).await?;
                if let Some(full) = split.push(&buf[..n])? {
                    break full;
                }
            };
            if let Some(c) = parse_challenge(&reply) {
                challenge = Some(c);
                continue;
            }
            let kind = reply.get(4).copied().unwrap_or(0);
            if kind != expected {
                return Err(A2sError::WrongType {
                    got: kind,
                    expected,
                });
            }
            return Ok(reply);
        }
        Err(A2sError::ChallengeLoop)
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| A2sError::Timeout {
            addr,
            after: timeout,
        })?
}

/// A2S_INFO with the challenge dance; `timeout` bounds the whole query.
pub async fn query_info(addr: SocketAddr, timeout: Duration) -> Result<Info, A2sError> {
    let reply = query(addr, timeout, S2A_INFO, info_request).await?;
    parse_info(&reply)
}

/// A2S_PLAYER with the challenge dance; `timeout` bounds the whole query.
pub async fn query_players(addr: SocketAddr, timeout: Duration) -> Result<Vec<Player>, A2sError> {
    let reply = query(addr, timeout, S2A_PLAYER, |c| {
        player_request(c.unwrap_or(-1))
    })
    .await?;
    parse_players(&reply)
}
