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

use thiserror::Error;

/// Log line without secret.
pub const LOG_PLAIN: u8 = 0x52;
/// Log line prefixed by `sv_logsecret`.
pub const LOG_WITH_SECRET: u8 = 0x53;
/// Longest secret we accept (sv_logsecret is an int; 20 digits covers it).
pub const MAX_SECRET_LEN: usize = 20;

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
    if b.len() < 25 || !b.starts_with(b"L ") {
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
    Ok((time, &line[25..]))
}

/// Reads a tag body `Name<uid><steam><team>` from the right.
fn parse_tag(tag: &str) -> Option<PlayerTag> {
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
    let userid = uid.parse().ok()?;
    Some(PlayerTag {
        name: rest.to_string(),
        userid,
        steam_id: steam.to_string(),
        team: team.to_string(),
    })
}

/// Splits `"<tag>" <verb...>` at the first `>" ` that closes a valid tag.
fn split_player(event: &str) -> Option<(PlayerTag, &str)> {
    let body = event.strip_prefix('"')?;
    let mut from = 0;
    while let Some(i) = body[from..].find(">\" ") {
        let end = from + i + 1; // index just after '>'
        if let Some(tag) = parse_tag(&body[..end]) {
            return Some((tag, &body[end + 2..]));
        }
        from = end;
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
pub fn parse_line_with_time(line: &str) -> Result<(LogTime, LogEvent), LogError> {
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
}
