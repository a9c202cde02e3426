//! Steam ID bans: `banid`/`removeid`/`listid`/`writeid` and the check at a
//! client's validation, following `engine/sv_filter.cpp` and
//! `engine/sv_steamauth.cpp` (Source SDK 2013 tree,
//! github.com/nillerusr/source-engine): a duration in minutes (under 0.01 is
//! permanent), `listid` numbering entries from 1, `writeid` writing only the
//! permanent ones to `cfg/banned_user.cfg` as `banid 0 <id>`, and a banned
//! client dropped with "STEAM UserID <id> is banned" once Steam validates it.
//!
//! Simplification: the engine's tokenizer splits `STEAM_1:0:1234` at the
//! colons and reassembles it; the simulator's keeps it one token, so the
//! same command lines work without the reassembly.

use crate::state::State;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// `MAX_USERFILTERS` (engine/vfilter.h).
const MAX_USERFILTERS: usize = 32_768;
pub const BANNED_USER_FILE: &str = "banned_user.cfg";

/// One `banid` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct UserFilter {
    /// The Steam account id (the `N` of `[U:1:N]`).
    account: u32,
    /// Minutes given to `banid` (0: permanent).
    minutes: f64,
    until: Option<Instant>,
}

/// A Steam id as the engine accepts it: `STEAM_X:Y:Z` (Steam2, any
/// universe digit) or `[U:1:N]` (Steam3). Returns the account id.
pub fn parse_steam_id(s: &str) -> Option<u32> {
    if let Some(rest) = s
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("STEAM_"))
        .map(|_| &s[6..])
    {
        let mut parts = rest.split(':');
        let (x, y, z) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || x.parse::<u8>().ok()? > 5 {
            return None;
        }
        let y: u32 = y.parse().ok().filter(|y| *y <= 1)?;
        let z: u32 = z.parse().ok().filter(|z| *z <= u32::MAX / 2)?;
        return Some(z * 2 + y);
    }
    let inner = s.strip_prefix("[U:1:")?.strip_suffix(']')?;
    inner.parse::<u32>().ok().filter(|n| *n > 0)
}

/// How L4D2 prints a Steam id (`GetUserIDString`: Steam2, universe 1).
pub fn render(account: u32) -> String {
    format!("STEAM_1:{}:{}", account % 2, account / 2)
}

impl UserFilter {
    fn expired(&self, now: Instant) -> bool {
        self.until.is_some_and(|t| t <= now)
    }
}

fn drop_expired(st: &mut State) {
    let now = Instant::now();
    st.user_filters.retain(|f| !f.expired(now));
}

/// `Filter_IsUserBanned` with `sv_filterban` 1 (a ban list; 0 turns the
/// check off, as in the engine).
pub fn is_banned(st: &mut State, steam_id: &str) -> bool {
    let mode = st.cvar_int("sv_filterban");
    if mode == 0 {
        return false;
    }
    drop_expired(st);
    let Some(account) = parse_steam_id(steam_id) else {
        return false;
    };
    let listed = st.user_filters.iter().any(|f| f.account == account);
    if mode == 1 {
        listed
    } else {
        !listed
    }
}

const BANID_USAGE: &str =
    "Usage:  banid < minutes > < userid | uniqueid > { kick }\nUse 0 minutes for permanent\n";

/// What `banid` decided: its console output and, with `kick`, the index of
/// the connected player to drop.
pub struct BanOutcome {
    pub output: String,
    pub kick: Option<(usize, String)>,
}

/// `banid <minutes> <userid | uniqueid> [kick]`.
pub fn banid(st: &mut State, args: &[String]) -> BanOutcome {
    let said = |output: String| BanOutcome { output, kick: None };
    if args.len() < 2 || args.len() > 3 {
        return said(BANID_USAGE.into());
    }
    let mut minutes = crate::state::leading_number(&args[0]);
    if minutes < 0.01 {
        minutes = 0.0;
    }
    let target = &args[1];
    if target.starts_with('#') {
        return said(
            "Usage:  banid < minutes > < userid | uniqueid > { kick }\nNo # necessary\n".into(),
        );
    }
    let kick = args.len() == 3 && args[2].eq_ignore_ascii_case("kick");
    let by_userid = target.starts_with(|c: char| c.is_ascii_digit())
        && target
            .parse::<u64>()
            .is_ok_and(|n| n <= u64::from(u32::MAX));
    let (account, playing) = if by_userid {
        let userid = crate::state::leading_number(target) as u32;
        let Some(i) = st.players.iter().position(|p| p.userid == userid) else {
            return said(format!("banid:  couldn't find userid {userid}\n"));
        };
        match parse_steam_id(&st.players[i].steam_id) {
            Some(a) => (a, Some(i)),
            None => return said(format!("Can't ban users with ID \"{target}\"\n")),
        }
    } else {
        let Some(account) = parse_steam_id(target) else {
            return said(format!("Can't ban users with ID \"{target}\"\n"));
        };
        let playing = st
            .players
            .iter()
            .position(|p| parse_steam_id(&p.steam_id) == Some(account));
        (account, playing)
    };
    let filter = UserFilter {
        account,
        minutes,
        until: (minutes != 0.0)
            .then(|| Instant::now().checked_add(Duration::from_secs_f64(minutes * 60.0)))
            .flatten(),
    };
    // The same id again updates its entry in place.
    match st.user_filters.iter().position(|f| f.account == account) {
        Some(i) => st.user_filters[i] = filter,
        None if st.user_filters.len() >= MAX_USERFILTERS => {
            return said("banid:  user filter list is full\n".into());
        }
        None => st.user_filters.push(filter),
    }
    let duration = if minutes == 0.0 {
        "permanently".to_string()
    } else {
        format!("for {minutes:.2} minutes")
    };
    BanOutcome {
        output: String::new(),
        kick: playing.filter(|_| kick).map(|i| (i, duration)),
    }
}

/// `removeid <slot | uniqueid>`.
pub fn removeid(st: &mut State, args: &[String]) -> String {
    let [target] = args else {
        return "Usage:  removeid < slot | uniqueid >\n".into();
    };
    if target.starts_with('#') {
        return "Usage:  removeid < userid | uniqueid >\nNo # necessary\n".into();
    }
    if target.starts_with(|c: char| c.is_ascii_digit())
        && target
            .parse::<u64>()
            .is_ok_and(|n| n <= u64::from(u32::MAX))
    {
        let slot = crate::state::leading_number(target) as i64;
        if slot > 0 && (slot as usize) <= st.user_filters.len() {
            let removed = st.user_filters.remove(slot as usize - 1);
            return format!(
                "removeid:  filter removed for {target}, ID {}\n",
                render(removed.account)
            );
        }
        return format!("removeid:  invalid slot {}\n", slot - 1);
    }
    let Some(account) = parse_steam_id(target) else {
        return format!("removeid:  invalid ban ID \"{target}\"\n");
    };
    let id = render(account);
    match st.user_filters.iter().position(|f| f.account == account) {
        Some(i) => {
            st.user_filters.remove(i);
            format!("removeid:  filter removed for {id}\n")
        }
        None => format!("removeid:  couldn't find {id}\n"),
    }
}

/// `listid`. The engine lists expired entries until the next check drops
/// them; the simulator drops them first, which a `listid` right after the
/// expiry cannot tell apart from a connection attempt in between.
pub fn listid(st: &mut State) -> String {
    drop_expired(st);
    let n = st.user_filters.len();
    let mut s = match n {
        0 => return "ID filter list: empty\n".into(),
        1 => "ID filter list: 1 entry\n".to_string(),
        _ => format!("ID filter list: {n} entries\n"),
    };
    for (i, f) in st.user_filters.iter().enumerate() {
        if f.minutes != 0.0 {
            let _ = writeln!(s, "{} {} : {:.3} min", i + 1, render(f.account), f.minutes);
        } else {
            let _ = writeln!(s, "{} {} : permanent", i + 1, render(f.account));
        }
    }
    s
}

/// The text `writeid` writes: permanent bans only, CRLF as the engine does.
pub fn banned_user_cfg(st: &State) -> String {
    let mut s = String::new();
    for f in st.user_filters.iter().filter(|f| f.minutes == 0.0) {
        let _ = write!(s, "banid 0 {}\r\n", render(f.account));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steam_ids_in_both_notations() {
        assert_eq!(parse_steam_id("STEAM_1:0:1234"), Some(2468));
        assert_eq!(parse_steam_id("STEAM_0:1:1234"), Some(2469));
        assert_eq!(parse_steam_id("steam_1:1:1"), Some(3));
        assert_eq!(parse_steam_id("[U:1:2469]"), Some(2469));
        assert_eq!(render(2469), "STEAM_1:1:1234");
        for bad in [
            "STEAM_1:2:5",
            "STEAM_1:0",
            "STEAM_ID_LAN",
            "[U:1:0]",
            "[U:2:5]",
            "BOT",
            "",
        ] {
            assert_eq!(parse_steam_id(bad), None, "{bad}");
        }
    }
}
