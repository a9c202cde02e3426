//! HL Log Standard lines as srcds sends them to `logaddress_add`
//! destinations over UDP.
//!
//! Packet: `FF FF FF FF`, then either `'R'` (0x52, S2A_LOGSTRING) and the
//! line, or — when `sv_logsecret` is non-zero — `'S'` (0x53, S2A_LOGKEY),
//! the secret's decimal digits and the line directly after them (no
//! separator: the line always starts with `L `), then `"\n\0"`.
//!
//! Line: `L MM/DD/YYYY - HH:MM:SS: <event>`. Player tags look like
//! `"Name<userid><STEAM_1:0:123><Survivor>"`; names may contain `<`, `>`
//! and quotes, so a tag is read from its right end.
//!
//! Sizes are capped at what the engine itself can send (Source's
//! `engine/sv_log.cpp`): `CLog::Printf` and the game DLL's `UTIL_LogPrintf`
//! format the event into a 1024-byte buffer (at most 1023 bytes plus the
//! NUL), `CLog::Print` prefixes the 25-byte timestamp, and
//! `NET_OutOfBandPrintf` sends it from a `MAX_ROUTABLE_PAYLOAD` (1260-byte)
//! buffer. Anything longer did not come from srcds and is refused before
//! it is parsed. Every parser here is linear in its input.

use thiserror::Error;

/// Log line without secret.
pub const LOG_PLAIN: u8 = 0x52;
/// Log line prefixed by `sv_logsecret`.
pub const LOG_WITH_SECRET: u8 = 0x53;
/// Longest secret we accept (sv_logsecret is an int; 20 digits covers it).
pub const MAX_SECRET_LEN: usize = 20;
/// Longest event text srcds formats: its 1024-byte log buffer minus the NUL
/// (the trailing newline counts, so an event we keep is at most 1022 bytes).
pub const MAX_EVENT_BYTES: usize = 1024 - 1;
/// `L MM/DD/YYYY - HH:MM:SS: ` in front of every event.
pub const STAMP_BYTES: usize = 25;
/// Longest log line (timestamp, event and its newline) srcds sends.
pub const MAX_LINE_BYTES: usize = STAMP_BYTES + MAX_EVENT_BYTES;
/// Largest datagram srcds sends (`MAX_ROUTABLE_PAYLOAD`); a log packet is
/// `FF FF FF FF`, the type, the secret and the line with its NUL, so every
/// real one fits.
pub const MAX_PACKET_BYTES: usize = 1260;

/// A log packet or line we cannot read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LogError {
    #[error("log packet of {0} bytes is too short")]
    TooShort(usize),
    #[error("log packet does not start with FF FF FF FF")]
    BadHeader,
    #[error("unknown log packet type {0:#04x} (expected 'R' or 'S')")]
    UnknownType(u8),
    #[error("log packet type 'S' without a decimal secret before the line")]
    BadSecret,
    #[error("log packet line is empty")]
    EmptyLine,
    #[error("log line {0:?} does not start with `L MM/DD/YYYY - HH:MM:SS: `")]
    BadTimestamp(String),
    #[error("log line has an empty event")]
    EmptyEvent,
    /// Longer than srcds can send: forged, and not worth parsing.
    #[error("log {what} of {len} bytes is longer than srcds sends (at most {max})")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
}

/// A received log packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPacket {
    /// The `sv_logsecret` digits, if the packet carried one.
    pub secret: Option<String>,
    /// The line without the trailing newline (invalid UTF-8 replaced:
    /// the engine may cut names mid-character).
    pub line: String,
}

/// Parses one UDP datagram.
pub fn parse_packet(datagram: &[u8]) -> Result<LogPacket, LogError> {
    if datagram.len() > MAX_PACKET_BYTES {
        return Err(LogError::TooLong {
            what: "packet",
            len: datagram.len(),
            max: MAX_PACKET_BYTES,
        });
    }
    if datagram.len() < 5 {
        return Err(LogError::TooShort(datagram.len()));
    }
    if datagram[..4] != [0xFF; 4] {
        return Err(LogError::BadHeader);
    }
    let rest = &datagram[5..];
    let (secret, line) = match datagram[4] {
        LOG_PLAIN => (None, rest),
        LOG_WITH_SECRET => {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 || digits > MAX_SECRET_LEN || !rest[digits..].starts_with(b"L ") {
                return Err(LogError::BadSecret);
            }
            // ASCII digits: valid UTF-8 by construction.
            let secret = String::from_utf8_lossy(&rest[..digits]).into_owned();
            (Some(secret), &rest[digits..])
        }
        other => return Err(LogError::UnknownType(other)),
    };
    // Trailing "\n\0" (tolerate either missing, and stray NULs).
    let mut end = line.len();
    while end > 0 && line[end - 1] == 0 {
        end -= 1;
    }
    if end > 0 && line[end - 1] == b'\n' {
        end -= 1;
    }
    if end > 0 && line[end - 1] == b'\r' {
        end -= 1;
    }
    let line = &line[..end];
    if line.is_empty() {
        return Err(LogError::EmptyLine);
    }
    // Checked on the raw bytes: the lossy conversion below may grow them.
    if line.len() > MAX_LINE_BYTES {
        return Err(LogError::TooLong {
            what: "line",
            len: line.len(),
            max: MAX_LINE_BYTES,
        });
    }
    Ok(LogPacket {
        secret,
        line: String::from_utf8_lossy(line).into_owned(),
    })
}

/// The timestamp of a log line (server local time, as printed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

/// `"Name<userid><steamid><team>"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayerTag {
    pub name: String,
    /// 0 for the server console.
    pub userid: u32,
    /// As logged: `STEAM_1:0:123`, `BOT`, `Console`, ...
    pub steam_id: String,
    /// Empty before the player joined a team.
    pub team: String,
}

/// What a log line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    Connected {
        player: PlayerTag,
        address: String,
    },
    Entered {
        player: PlayerTag,
    },
    Disconnected {
        player: PlayerTag,
        reason: String,
    },
    TeamChange {
        player: PlayerTag,
        team: String,
    },
    Say {
        player: PlayerTag,
        team_only: bool,
        text: String,
    },
    MapLoading {
        map: String,
    },
    MapStarted {
        map: String,
    },
    /// Any other well-formed line: the event text after the timestamp.
    Other(String),
}

fn two(b: &[u8]) -> Option<u8> {
    match b {
        [a, c] if a.is_ascii_digit() && c.is_ascii_digit() => Some((a - b'0') * 10 + (c - b'0')),
        _ => None,
    }
}

/// Parses `L MM/DD/YYYY - HH:MM:SS: ` and returns the time and the event text.
fn parse_stamp(line: &str) -> Result<(LogTime, &str), LogError> {
    let bad = || LogError::BadTimestamp(line.chars().take(40).collect());
    let b = line.as_bytes();
    // "L " + "MM/DD/YYYY" + " - " + "HH:MM:SS" + ": " = 25 bytes.
    if b.len() < STAMP_BYTES || !b.starts_with(b"L ") {
        return Err(bad());
    }
    let fixed = [
        (4, b'/'),
        (7, b'/'),
        (12, b' '),
        (13, b'-'),
        (14, b' '),
        (17, b':'),
        (20, b':'),
        (23, b':'),
        (24, b' '),
    ];
    if fixed.iter().any(|(i, c)| b[*i] != *c) {
        return Err(bad());
    }
    let month = two(&b[2..4]).ok_or_else(bad)?;
    let day = two(&b[5..7]).ok_or_else(bad)?;
    let year_hi = two(&b[8..10]).ok_or_else(bad)?;
    let year_lo = two(&b[10..12]).ok_or_else(bad)?;
    let hour = two(&b[15..17]).ok_or_else(bad)?;
    let minute = two(&b[18..20]).ok_or_else(bad)?;
    let second = two(&b[21..23]).ok_or_else(bad)?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let time = LogTime {
        year: u16::from(year_hi) * 100 + u16::from(year_lo),
        month,
        day,
        hour,
        minute,
        second,
    };
    // Bytes 0..25 are ASCII (checked above), so 25 is a char boundary.
    Ok((time, &line[STAMP_BYTES..]))
}

/// Reads a tag body `Name<uid><steam><team>` from the right.
#[cfg(test)]
fn parse_tag(tag: &str) -> Option<PlayerTag> {
    let inner = tag.strip_suffix('>')?;
    let mut lts = [None; 3];
    for (i, b) in inner.bytes().enumerate() {
        if b == b'<' {
            lts = [lts[1], lts[2], Some(i)];
        }
    }
    tag_from_lts(inner, lts)
}

/// The tag ending just before `inner.len()` (where its final `>` was),
/// given the positions of the last three `<` in `inner`, oldest first.
///
/// Reading from the right, the team is after the last `<`, the Steam id
/// between the two before it and the user id between the first two; each
/// field is closed by `>`. Fields may themselves contain `>` (never `<`
/// after their own opening), which is why only the `<` positions matter.
fn tag_from_lts(inner: &str, lts: [Option<usize>; 3]) -> Option<PlayerTag> {
    let [Some(u), Some(s), Some(t)] = lts else {
        return None;
    };
    let b = inner.as_bytes();
    // `...><team` and `...><steam>` and `<uid>`: each field's `>` sits right
    // before the next field's `<`.
    if t == 0 || b[t - 1] != b'>' || s == 0 || b[s - 1] != b'>' {
        return None;
    }
    // s < t - 1 and u < s - 1 hold: b[t-1] and b[s-1] are '>', not '<'.
    let uid = &inner[u + 1..s - 1];
    if uid.is_empty() || uid.len() > 10 || !uid.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let userid = uid.parse().ok()?;
    Some(PlayerTag {
        name: inner[..u].to_string(),
        userid,
        steam_id: inner[s + 1..t - 1].to_string(),
        team: inner[t + 1..].to_string(),
    })
}

/// Splits `"<tag>" <verb...>` at the first `>" ` that closes a valid tag.
///
/// One pass from the left, remembering the last three `<`: every candidate
/// `>" ` is checked in constant time (the user id is at most 10 digits), so
/// a line made of nothing but `>" ` costs O(n), not O(n²).
fn split_player(event: &str) -> Option<(PlayerTag, &str)> {
    let body = event.strip_prefix('"')?;
    let b = body.as_bytes();
    let mut lts: [Option<usize>; 3] = [None; 3];
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'<' => lts = [lts[1], lts[2], Some(i)],
            b'>' if b[i + 1..].starts_with(b"\" ") => {
                // '>' is ASCII, so i is a char boundary.
                if let Some(tag) = tag_from_lts(&body[..i], lts) {
                    return Some((tag, &body[i + 3..]));
                }
            }
            _ => {}
        }
    }
    None
}

/// `"value"` → value (the whole rest must be one quoted string).
fn quoted(s: &str) -> Option<&str> {
    s.strip_prefix('"')?.strip_suffix('"')
}

/// First quoted string in `s`, up to the last quote (maps, reasons).
fn first_quoted(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('"')?;
    let close = rest.find('"')?;
    Some(&rest[..close])
}

fn parse_event(event: &str) -> LogEvent {
    if let Some(rest) = event.strip_prefix("Loading map ") {
        if let Some(map) = first_quoted(rest) {
            return LogEvent::MapLoading {
                map: map.to_string(),
            };
        }
    }
    if let Some(rest) = event.strip_prefix("Started map ") {
        if let Some(map) = first_quoted(rest) {
            return LogEvent::MapStarted {
                map: map.to_string(),
            };
        }
    }
    if let Some((player, verb)) = split_player(event) {
        if let Some(addr) = verb.strip_prefix("connected, address ").and_then(quoted) {
            return LogEvent::Connected {
                player,
                address: addr.to_string(),
            };
        }
        if verb == "entered the game" {
            return LogEvent::Entered { player };
        }
        if let Some(reason) = verb
            .strip_prefix("disconnected (reason ")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(quoted)
        {
            return LogEvent::Disconnected {
                player,
                reason: reason.to_string(),
            };
        }
        if let Some(team) = verb.strip_prefix("joined team ").and_then(quoted) {
            return LogEvent::TeamChange {
                player,
                team: team.to_string(),
            };
        }
        for (prefix, team_only) in [("say_team ", true), ("say ", false)] {
            if let Some(text) = verb.strip_prefix(prefix) {
                // Text is quoted and unescaped; some games append
                // " (dead)" after the closing quote.
                let text = quoted(text)
                    .or_else(|| text.strip_suffix(" (dead)").and_then(quoted))
                    .unwrap_or(text);
                return LogEvent::Say {
                    player,
                    team_only,
                    text: text.to_string(),
                };
            }
        }
    }
    LogEvent::Other(event.to_string())
}

/// Parses one log line (without the packet framing) into its time and event.
/// Lines longer than srcds sends ([`MAX_LINE_BYTES`]) are refused; the limit
/// counts characters here, because [`parse_packet`] turns every byte that is
/// not UTF-8 into one (three-byte) U+FFFD, so any line it accepted fits.
pub fn parse_line_with_time(line: &str) -> Result<(LogTime, LogEvent), LogError> {
    if line.len() > MAX_LINE_BYTES {
        // At most MAX_LINE_BYTES + 1 characters are looked at.
        let chars = line.chars().take(MAX_LINE_BYTES + 1).count();
        if chars > MAX_LINE_BYTES {
            return Err(LogError::TooLong {
                what: "line",
                len: line.len(),
                max: MAX_LINE_BYTES,
            });
        }
    }
    let (time, event) = parse_stamp(line)?;
    if event.trim().is_empty() {
        return Err(LogError::EmptyEvent);
    }
    Ok((time, parse_event(event)))
}

/// Parses one log line into its event.
pub fn parse_line(line: &str) -> Result<LogEvent, LogError> {
    parse_line_with_time(line).map(|(_, e)| e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_from_the_right() {
        let t = parse_tag("a<b>\"c<1><2><3>").unwrap();
        assert_eq!(t.name, "a<b>\"c");
        assert_eq!(t.userid, 1);
        assert_eq!((t.steam_id.as_str(), t.team.as_str()), ("2", "3"));
        assert!(parse_tag("x<y><z>").is_none());
        assert!(parse_tag("x<-1><z><t>").is_none());
        assert_eq!(parse_tag("<5><BOT><>").unwrap().name, "");
    }

    /// The former quadratic reader (every `>" ` re-scanned the tag from
    /// the right): kept to prove the linear one finds the same split.
    fn reference_split_player(event: &str) -> Option<(PlayerTag, &str)> {
        fn tag(tag: &str) -> Option<PlayerTag> {
            let mut rest = tag;
            let mut fields = [""; 3];
            for slot in fields.iter_mut().rev() {
                let inner = rest.strip_suffix('>')?;
                let open = inner.rfind('<')?;
                *slot = &inner[open + 1..];
                rest = &inner[..open];
            }
            let [uid, steam, team] = fields;
            if uid.is_empty() || uid.len() > 10 || !uid.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some(PlayerTag {
                name: rest.to_string(),
                userid: uid.parse().ok()?,
                steam_id: steam.to_string(),
                team: team.to_string(),
            })
        }
        let body = event.strip_prefix('"')?;
        let mut from = 0;
        while let Some(i) = body[from..].find(">\" ") {
            let end = from + i + 1;
            if let Some(t) = tag(&body[..end]) {
                return Some((t, &body[end + 2..]));
            }
            from = end;
        }
        None
    }

    #[test]
    fn linear_split_matches_the_reference() {
        let samples = [
            "\"Nick<2><STEAM_1:0:1><>\" entered the game",
            "\"a<b>\"c\" <x<3><STEAM_1:1:9><Survivor>\" say \"hi >\" say \"there\"",
            "\"x<1><2><a>b>\" joined team \"a\"",
            "\"<5><BOT><>\" say \"x\"",
            "\"N<99999999999><S><T>\" entered the game",
            "\">\" >\" <1><2><3>\" x",
            "\"<<<>>><1>>\" <2><3>\" y",
            "\"",
            "\">\" ",
            "no quote<1><2><3>\" x",
        ];
        // Small alphabet of the characters that matter, so random strings
        // are full of near-tags.
        let alphabet = ['<', '>', '"', ' ', '1', '2', 'a', 'é'];
        let mut seed = 0x5EED_0007u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut inputs: Vec<String> = samples.iter().map(|s| s.to_string()).collect();
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let mut s = String::from("\"");
            for _ in 0..len {
                s.push(alphabet[(next() % alphabet.len() as u64) as usize]);
            }
            inputs.push(s);
        }
        for input in &inputs {
            assert_eq!(
                split_player(input),
                reference_split_player(input),
                "{input:?}"
            );
        }
    }
}
