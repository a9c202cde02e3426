//! A2S server queries over UDP, as the Valve Developer Wiki page *Server
//! queries* specifies: little-endian, single-packet responses prefixed with
//! `0xFFFFFFFF`, and the challenge mechanism (a request without a valid
//! challenge is answered with `S2C_CHALLENGE` 'A' + 4 bytes, and the client
//! repeats the request carrying that challenge).
//!
//! Hand-written: this is the server side of the protocol, which no maintained
//! crate provides, and byte-level control is the point of the simulator.

use thiserror::Error;

/// `0xFFFFFFFF`: a single (non-split) packet.
pub const SIMPLE_HEADER: [u8; 4] = [0xFF; 4];
/// A2S_INFO request type 'T'.
pub const A2S_INFO: u8 = 0x54;
/// A2S_PLAYER request type 'U'.
pub const A2S_PLAYER: u8 = 0x55;
/// A2S_RULES request type 'V'.
pub const A2S_RULES: u8 = 0x56;
/// Legacy A2S_SERVERQUERY_GETCHALLENGE 'W'.
pub const A2S_GETCHALLENGE: u8 = 0x57;
/// S2C_CHALLENGE response type 'A'.
pub const S2C_CHALLENGE: u8 = 0x41;
/// A2S_INFO response type 'I'.
pub const S2A_INFO: u8 = 0x49;
/// A2S_PLAYER response type 'D'.
pub const S2A_PLAYER: u8 = 0x44;
/// A2S_RULES response type 'E'.
pub const S2A_RULES: u8 = 0x45;
/// The payload every A2S_INFO request carries.
pub const INFO_PAYLOAD: &[u8] = b"Source Engine Query\0";
/// The "no challenge yet" value clients send in A2S_PLAYER / A2S_RULES.
pub const NO_CHALLENGE: i32 = -1;

/// Extra Data Flag bits of A2S_INFO.
pub mod edf {
    pub const PORT: u8 = 0x80;
    pub const STEAM_ID: u8 = 0x10;
    pub const SOURCE_TV: u8 = 0x40;
    pub const KEYWORDS: u8 = 0x20;
    pub const GAME_ID: u8 = 0x01;
}

/// Why an incoming datagram is not a query we answer.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum QueryError {
    #[error("datagram of {0} bytes is too short for an A2S request")]
    TooShort(usize),
    #[error("datagram does not start with the 0xFFFFFFFF simple header")]
    BadHeader,
    #[error("A2S_INFO payload is not \"Source Engine Query\"")]
    BadInfoPayload,
    #[error("unknown A2S request type 0x{0:02x}")]
    UnknownType(u8),
    #[error("A2S request of type 0x{0:02x} lacks its 4-byte challenge")]
    MissingChallenge(u8),
}

/// A parsed A2S request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// A2S_INFO, with the challenge if the client appended one.
    Info { challenge: Option<i32> },
    /// A2S_PLAYER; `-1` asks for a challenge.
    Player { challenge: i32 },
    /// A2S_RULES; `-1` asks for a challenge.
    Rules { challenge: i32 },
    /// Legacy explicit challenge request.
    GetChallenge,
}

fn read_i32(bytes: &[u8]) -> Option<i32> {
    Some(i32::from_le_bytes(bytes.get(..4)?.try_into().ok()?))
}

/// Parses one request datagram.
pub fn parse_request(datagram: &[u8]) -> Result<Request, QueryError> {
    if datagram.len() < 5 {
        return Err(QueryError::TooShort(datagram.len()));
    }
    if datagram[..4] != SIMPLE_HEADER {
        return Err(QueryError::BadHeader);
    }
    let kind = datagram[4];
    let rest = &datagram[5..];
    match kind {
        A2S_INFO => {
            let tail = rest
                .strip_prefix(INFO_PAYLOAD)
                .ok_or(QueryError::BadInfoPayload)?;
            // Anything other than nothing or exactly 4 bytes is malformed.
            let challenge = match tail.len() {
                0 => None,
                4 => read_i32(tail),
                _ => return Err(QueryError::BadInfoPayload),
            };
            Ok(Request::Info { challenge })
        }
        A2S_PLAYER => Ok(Request::Player {
            challenge: read_i32(rest).ok_or(QueryError::MissingChallenge(kind))?,
        }),
        A2S_RULES => Ok(Request::Rules {
            challenge: read_i32(rest).ok_or(QueryError::MissingChallenge(kind))?,
        }),
        A2S_GETCHALLENGE => Ok(Request::GetChallenge),
        other => Err(QueryError::UnknownType(other)),
    }
}

/// Little-endian packet writer with the wiki's data types.
#[derive(Debug, Default)]
pub struct Writer(Vec<u8>);

impl Writer {
    /// Starts a simple-format response of the given type.
    pub fn response(kind: u8) -> Self {
        let mut w = Writer(Vec::with_capacity(256));
        w.0.extend_from_slice(&SIMPLE_HEADER);
        w.0.push(kind);
        w
    }
    pub fn byte(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn short(&mut self, v: i16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn long(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn float(&mut self, v: f32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn long_long(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A NUL-terminated UTF-8 string; interior NULs would end it early, so
    /// they are dropped.
    pub fn string(&mut self, s: &str) -> &mut Self {
        self.0.extend(s.bytes().filter(|b| *b != 0));
        self.0.push(0);
        self
    }
    pub fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// `S2C_CHALLENGE`: `FF FF FF FF 41 <challenge long>`.
pub fn encode_challenge(challenge: i32) -> Vec<u8> {
    let mut w = Writer::response(S2C_CHALLENGE);
    w.long(challenge);
    w.finish()
}

/// Everything an A2S_INFO reply carries (Source format).
#[derive(Debug, Clone, PartialEq)]
pub struct Info {
    pub protocol: u8,
    pub name: String,
    pub map: String,
    pub folder: String,
    pub game: String,
    pub app_id: i16,
    pub players: u8,
    pub max_players: u8,
    pub bots: u8,
    /// 'd' dedicated.
    pub server_type: u8,
    /// 'l' Linux.
    pub environment: u8,
    /// 0 public, 1 password protected.
    pub visibility: u8,
    pub vac: u8,
    pub version: String,
    pub port: u16,
    pub steam_id: u64,
    pub keywords: String,
    pub game_id: u64,
}

/// `S2A_INFO` 'I' with EDF = port | SteamID | keywords | GameID.
pub fn encode_info(info: &Info) -> Vec<u8> {
    let mut w = Writer::response(S2A_INFO);
    w.byte(info.protocol)
        .string(&info.name)
        .string(&info.map)
        .string(&info.folder)
        .string(&info.game)
        .short(info.app_id)
        .byte(info.players)
        .byte(info.max_players)
        .byte(info.bots)
        .byte(info.server_type)
        .byte(info.environment)
        .byte(info.visibility)
        .byte(info.vac)
        .string(&info.version);
    let flags = edf::PORT | edf::STEAM_ID | edf::KEYWORDS | edf::GAME_ID;
    w.byte(flags);
    // Order of the optional fields is fixed by the wiki: port, SteamID,
    // SourceTV, keywords, GameID.
    w.short(info.port as i16)
        .long_long(info.steam_id)
        .string(&info.keywords)
        .long_long(info.game_id);
    w.finish()
}

/// One row of an A2S_PLAYER reply.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayerEntry {
    pub index: u8,
    pub name: String,
    pub score: i32,
    pub duration_secs: f32,
}

/// `S2A_PLAYER` 'D': count byte, then index/name/score/duration per player.
pub fn encode_players(players: &[PlayerEntry]) -> Vec<u8> {
    let mut w = Writer::response(S2A_PLAYER);
    let count = players.len().min(255);
    w.byte(count as u8);
    for p in &players[..count] {
        w.byte(p.index)
            .string(&p.name)
            .long(p.score)
            .float(p.duration_secs);
    }
    w.finish()
}

/// `S2A_RULES` 'E': short count, then name/value string pairs.
pub fn encode_rules(rules: &[(String, String)]) -> Vec<u8> {
    let mut w = Writer::response(S2A_RULES);
    w.short(rules.len().min(i16::MAX as usize) as i16);
    for (name, value) in rules {
        w.string(name).string(value);
    }
    w.finish()
}

/// Stateless per-address challenges: a keyed mix of the client's IP, so any
/// request from that address carrying it is accepted (as srcds does) and no
/// table can be filled by spoofed requests.
#[derive(Debug, Clone, Copy)]
pub struct Challenges {
    secret: u64,
}

impl Challenges {
    pub fn new(secret: u64) -> Self {
        Challenges { secret }
    }

    /// The challenge for a client address (never 0 or -1).
    pub fn for_addr(&self, ip: std::net::IpAddr) -> i32 {
        let ip_bits: u128 = match ip {
            std::net::IpAddr::V4(v4) => u128::from(u32::from(v4)),
            std::net::IpAddr::V6(v6) => u128::from(v6),
        };
        let mut x = self.secret ^ (ip_bits as u64) ^ ((ip_bits >> 64) as u64).rotate_left(17);
        // splitmix64 finaliser: spreads every input bit over the output.
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        let c = x as i32;
        if c == 0 || c == NO_CHALLENGE {
            0x5EED_1234
        } else {
            c
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_info_with_and_without_challenge() {
        let mut req = vec![0xFF, 0xFF, 0xFF, 0xFF, A2S_INFO];
        req.extend_from_slice(INFO_PAYLOAD);
        assert_eq!(parse_request(&req), Ok(Request::Info { challenge: None }));
        req.extend_from_slice(&0x1234_5678_i32.to_le_bytes());
        assert_eq!(
            parse_request(&req),
            Ok(Request::Info {
                challenge: Some(0x1234_5678)
            })
        );
        req.push(0);
        assert_eq!(parse_request(&req), Err(QueryError::BadInfoPayload));
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(parse_request(&[]), Err(QueryError::TooShort(0)));
        assert_eq!(
            parse_request(&[0xFE, 0xFF, 0xFF, 0xFF, A2S_INFO]),
            Err(QueryError::BadHeader)
        );
        assert_eq!(
            parse_request(&[0xFF, 0xFF, 0xFF, 0xFF, A2S_PLAYER, 1, 2]),
            Err(QueryError::MissingChallenge(A2S_PLAYER))
        );
        assert_eq!(
            parse_request(&[0xFF, 0xFF, 0xFF, 0xFF, b'z']),
            Err(QueryError::UnknownType(b'z'))
        );
        let mut bad = vec![0xFF, 0xFF, 0xFF, 0xFF, A2S_INFO];
        bad.extend_from_slice(b"Source Engine Quer");
        assert_eq!(parse_request(&bad), Err(QueryError::BadInfoPayload));
    }

    #[test]
    fn challenge_layout() {
        assert_eq!(
            encode_challenge(0x0403_0201),
            vec![0xFF, 0xFF, 0xFF, 0xFF, 0x41, 1, 2, 3, 4]
        );
        let c = Challenges::new(42);
        let ip = "127.0.0.1".parse().unwrap();
        assert_eq!(c.for_addr(ip), c.for_addr(ip));
        assert_ne!(c.for_addr(ip), NO_CHALLENGE);
        assert_ne!(c.for_addr(ip), Challenges::new(43).for_addr(ip));
    }

    #[test]
    fn players_layout() {
        let bytes = encode_players(&[PlayerEntry {
            index: 0,
            name: "Ellis".into(),
            score: 7,
            duration_secs: 1.5,
        }]);
        let mut want = vec![0xFF, 0xFF, 0xFF, 0xFF, 0x44, 1, 0];
        want.extend_from_slice(b"Ellis\0");
        want.extend_from_slice(&7i32.to_le_bytes());
        want.extend_from_slice(&1.5f32.to_le_bytes());
        assert_eq!(bytes, want);
    }
}
