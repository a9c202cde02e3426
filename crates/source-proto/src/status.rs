//! Parser for the `status` console command of a Left 4 Dead 2 dedicated
//! server, e.g.
//!
//! ```text
//! hostname: My Server
//! version : 2.2.3.6 9183 secure
//! udp/ip  : 0.0.0.0:27015
//! os      : Linux Dedicated
//! map     : c1m1_hotel
//! players : 2 humans, 1 bots (4 max) (not hibernating) (unreserved)
//!
//! # userid name uniqueid connected ping loss state rate adr
//! #  2 1 "Ellis" STEAM_1:0:1234 05:12 48 0 active 30000 203.0.113.7:27005
//! #  4 "Coach" BOT active
//! #end
//! ```
//!
//! Humans carry a slot column after the userid; bots have fewer columns.
//! The name is quoted but not escaped, and nothing after it contains a
//! quote, so it runs from the first to the last `"` of the row.

use crate::steamid;
use std::net::SocketAddr;
use thiserror::Error;

/// Output that is not a `status` table we can read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StatusError {
    #[error("not `status` output: no \"hostname:\" line")]
    NotStatus,
    #[error("`status` output has no player table header (\"# userid name ...\")")]
    NoTable,
    #[error("malformed `status` header line {line:?}: {why}")]
    BadHeader { line: String, why: &'static str },
    #[error("malformed player row {row:?}: {why}")]
    BadRow { row: String, why: &'static str },
}

/// The header plus the player table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    pub hostname: String,
    /// The `version :` value as printed (e.g. "2.2.3.6 9183 secure").
    pub version: String,
    /// The `udp/ip  :` value as printed.
    pub udp_ip: String,
    /// The address part of `udp/ip`, when it parses.
    pub address: Option<SocketAddr>,
    /// Empty while the server hibernates without a map.
    pub map: String,
    pub humans: Option<u32>,
    pub bots: Option<u32>,
    pub max_players: Option<u32>,
    pub hibernating: Option<bool>,
    pub players: Vec<StatusPlayer>,
}

/// One row of the player table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusPlayer {
    pub userid: u32,
    /// Slot column (humans only).
    pub slot: Option<u32>,
    pub name: String,
    /// As printed: `STEAM_1:0:N`, `BOT`, `STEAM_ID_PENDING`, ...
    pub unique_id: String,
    /// SteamID64 when `unique_id` is a real SteamID.
    pub steam_id64: Option<u64>,
    pub is_bot: bool,
    /// Connected time in seconds (humans only).
    pub connected_secs: Option<u64>,
    pub ping: Option<u32>,
    pub loss: Option<u32>,
    pub state: String,
    pub rate: Option<u32>,
    /// Remote address as printed (humans only).
    pub adr: Option<String>,
}

fn header_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(key)?;
    let rest = rest.trim_start_matches(' ');
    rest.strip_prefix(':').map(str::trim)
}

fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `mm:ss` or `h:mm:ss` to seconds.
pub fn parse_connected(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 {
        return None;
    }
    let nums: Option<Vec<u64>> = parts.iter().map(|p| parse_u32(p).map(u64::from)).collect();
    let nums = nums?;
    // Minutes and seconds are two-digit fields below 60 (except the leading one).
    let (h, m, s) = match nums.as_slice() {
        [m, s] => (0, *m, *s),
        [h, m, s] if *m < 60 => (*h, *m, *s),
        _ => return None,
    };
    if s >= 60 {
        return None;
    }
    Some(h * 3600 + m * 60 + s)
}

/// humans, bots, max players, hibernating.
type PlayerCounts = (Option<u32>, Option<u32>, Option<u32>, Option<bool>);

/// `players : 2 humans, 1 bots (4 max) (not hibernating) (unreserved)`, or
/// the older `players : 2 (4 max)`.
fn parse_players_line(value: &str) -> Result<PlayerCounts, &'static str> {
    let mut humans = None;
    let mut bots = None;
    let mut max = None;
    let tokens: Vec<&str> = value
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .collect();
    for (i, t) in tokens.iter().enumerate() {
        let next = tokens.get(i + 1).copied();
        if let Some(n) = parse_u32(t) {
            match next {
                Some("humans") | Some("human") => humans = Some(n),
                Some("bots") | Some("bot") => bots = Some(n),
                _ if humans.is_none() && i == 0 => humans = Some(n),
                _ => {}
            }
        } else if let Some(n) = t.strip_prefix('(').and_then(parse_u32) {
            if next == Some("max)") {
                max = Some(n);
            }
        }
    }
    if humans.is_none() {
        return Err("no player count");
    }
    let hibernating = if value.contains("(not hibernating)") {
        Some(false)
    } else if value.contains("(hibernating)") {
        Some(true)
    } else {
        None
    };
    Ok((humans, bots, max, hibernating))
}

fn parse_row(row: &str) -> Result<StatusPlayer, StatusError> {
    let bad = |why| StatusError::BadRow {
        row: row.to_string(),
        why,
    };
    let body = row
        .strip_prefix('#')
        .ok_or_else(|| bad("does not start with #"))?;
    let open = body.find('"').ok_or_else(|| bad("no quoted name"))?;
    let close = body.rfind('"').ok_or_else(|| bad("no quoted name"))?;
    if close == open {
        return Err(bad("name quote never closed"));
    }
    let name = body[open + 1..close].to_string();
    let before: Vec<&str> = body[..open].split_whitespace().collect();
    let (userid, slot) = match before.as_slice() {
        [uid] => (
            parse_u32(uid).ok_or_else(|| bad("userid is not a number"))?,
            None,
        ),
        [uid, slot] => (
            parse_u32(uid).ok_or_else(|| bad("userid is not a number"))?,
            Some(parse_u32(slot).ok_or_else(|| bad("slot is not a number"))?),
        ),
        _ => return Err(bad("expected userid [slot] before the name")),
    };
    let after: Vec<&str> = body[close + 1..].split_whitespace().collect();
    let Some((unique_id, rest)) = after.split_first() else {
        return Err(bad("no uniqueid after the name"));
    };
    let unique_id = unique_id.to_string();
    let is_bot = unique_id == "BOT";
    let mut player = StatusPlayer {
        userid,
        slot,
        name,
        steam_id64: steamid::parse_steam_id(&unique_id).ok(),
        unique_id,
        is_bot,
        connected_secs: None,
        ping: None,
        loss: None,
        state: String::new(),
        rate: None,
        adr: None,
    };
    if is_bot {
        // `BOT active` (L4D2) or `BOT active <rate>` (newer branches).
        match rest {
            [state] => player.state = state.to_string(),
            [state, rate] => {
                player.state = state.to_string();
                player.rate = Some(parse_u32(rate).ok_or_else(|| bad("bot rate is not a number"))?);
            }
            _ => return Err(bad("bot row needs `BOT <state> [rate]`")),
        }
        return Ok(player);
    }
    // connected ping loss state rate [adr]. A connecting client can lack adr
    // (e.g. loopback/listen host), so adr is optional.
    let (connected, ping, loss, state, rate, adr) = match rest {
        [c, p, l, s, r, a] => (c, p, l, s, r, Some(a)),
        [c, p, l, s, r] => (c, p, l, s, r, None),
        _ => return Err(bad("expected uniqueid connected ping loss state rate adr")),
    };
    player.connected_secs =
        Some(parse_connected(connected).ok_or_else(|| bad("connected is not mm:ss or h:mm:ss"))?);
    player.ping = Some(parse_u32(ping).ok_or_else(|| bad("ping is not a number"))?);
    player.loss = Some(parse_u32(loss).ok_or_else(|| bad("loss is not a number"))?);
    player.state = state.to_string();
    player.rate = Some(parse_u32(rate).ok_or_else(|| bad("rate is not a number"))?);
    player.adr = adr.map(|a| a.to_string());
    Ok(player)
}

/// Parses `status` output. Unknown lines are ignored; a broken table row or
/// a missing table is an error.
pub fn parse_status(text: &str) -> Result<ServerStatus, StatusError> {
    let mut hostname = None;
    let mut version = String::new();
    let mut udp_ip = String::new();
    let mut map = String::new();
    let mut counts = (None, None, None, None);
    let mut players = Vec::new();
    let mut in_table = false;
    let mut saw_table = false;
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        if in_table {
            let trimmed = line.trim();
            if trimmed == "#end" {
                in_table = false;
                continue;
            }
            if trimmed.starts_with('#') {
                players.push(parse_row(trimmed)?);
            }
            // Anything else inside the table (plugin chatter) is ignored.
            continue;
        }
        if line.starts_with("# userid") || line.starts_with("#userid") {
            in_table = true;
            saw_table = true;
        } else if let Some(v) = header_value(line, "hostname") {
            hostname = Some(v.to_string());
        } else if let Some(v) = header_value(line, "version") {
            version = v.to_string();
        } else if let Some(v) = header_value(line, "udp/ip") {
            udp_ip = v.to_string();
        } else if let Some(v) = header_value(line, "map") {
            map = v.to_string();
        } else if let Some(v) = header_value(line, "players") {
            counts = parse_players_line(v).map_err(|why| StatusError::BadHeader {
                line: line.to_string(),
                why,
            })?;
        }
    }
    let hostname = hostname.ok_or(StatusError::NotStatus)?;
    if !saw_table {
        return Err(StatusError::NoTable);
    }
    let address = udp_ip
        .split_whitespace()
        .next()
        .and_then(|a| a.parse::<SocketAddr>().ok());
    let (humans, bots, max_players, hibernating) = counts;
    Ok(ServerStatus {
        hostname,
        version,
        udp_ip,
        address,
        map,
        humans,
        bots,
        max_players,
        hibernating,
        players,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connected_times() {
        assert_eq!(parse_connected("05:12"), Some(312));
        assert_eq!(parse_connected("1:02:03"), Some(3723));
        assert_eq!(parse_connected("75:00"), Some(4500));
        assert_eq!(parse_connected("1:60:00"), None);
        assert_eq!(parse_connected("00:61"), None);
        assert_eq!(parse_connected("x"), None);
        assert_eq!(parse_connected("1:2:3:4"), None);
    }
}
