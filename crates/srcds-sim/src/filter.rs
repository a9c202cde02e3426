//! IP bans and RCON brute-force protection, modelled on the engine:
//!
//! - `addip`/`removeip`/`listip` and `Filter_ShouldDiscard` follow
//!   `engine/sv_filter.cpp` (Source SDK 2013 tree, e.g. github.com/nillerusr/source-engine):
//!   an IPv4 pattern where a `0` octet is a wildcard, a duration in minutes
//!   (0 = permanent), and every packet or RCON connection from a banned
//!   address is discarded.
//! - [`record_failure`] follows `CRConServer::HandleFailedRconAuth` in
//!   `engine/sv_rcon.cpp` (Source SDK 2013 tree; the CS:GO tree,
//!   github.com/perilouswithadollarsign/cstrike15_src, declares the same
//!   cvars with the same defaults): an address is banned
//!   with `addip <sv_rcon_banpenalty> <ip>` once it has failed more than
//!   `sv_rcon_maxfailures` times in total, or more than `sv_rcon_minfailures`
//!   times within `sv_rcon_minfailuretime` seconds. Defaults 10 / 5 / 30 s,
//!   penalty 0 = permanent; `sv_rcon_whitelist_address` is never banned.

use crate::state::State;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// `MAX_IPFILTERS` (engine/vfilter.h).
const MAX_IPFILTERS: usize = 32_768;
/// The engine tracks at most this many addresses with failures and forgets
/// the one whose last failure is oldest.
const MAX_TRACKED_ADDRESSES: usize = 32;
/// Failure times kept per address (the engine's cvars cap at 20, too).
const MAX_FAILURE_TIMES: usize = 20;

/// One `addip` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct IpFilter {
    mask: [u8; 4],
    compare: [u8; 4],
    /// The duration given to `addip`, in minutes (0: permanent).
    minutes: f64,
    /// When the ban ends (None: permanent).
    until: Option<Instant>,
}

/// `Filter_ConvertString`: up to four decimal octets separated by any one
/// character; an octet that is 0 (or missing) matches anything.
fn parse_pattern(s: &str) -> Option<([u8; 4], [u8; 4])> {
    let mut compare = [0u8; 4];
    let mut mask = [0u8; 4];
    let bytes = s.as_bytes();
    let mut pos = 0;
    for i in 0..4 {
        if !bytes.get(pos).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        let mut value: u32 = 0;
        while let Some(d) = bytes.get(pos).filter(|b| b.is_ascii_digit()) {
            // The engine stores atoi() into a byte: it wraps.
            value = (value * 10 + u32::from(d - b'0')) % 256;
            pos += 1;
        }
        compare[i] = value as u8;
        if value != 0 {
            mask[i] = 255;
        }
        if pos >= bytes.len() {
            break;
        }
        pos += 1;
    }
    Some((mask, compare))
}

impl IpFilter {
    fn matches(&self, ip: Ipv4Addr) -> bool {
        let o = ip.octets();
        (0..4).all(|i| o[i] & self.mask[i] == self.compare[i])
    }

    fn expired(&self, now: Instant) -> bool {
        self.until.is_some_and(|t| t <= now)
    }
}

/// `Filter_ShouldDiscard`: is traffic from `ip` to be dropped? Expired bans
/// are removed on the way, as the engine does.
pub fn should_discard(st: &mut State, ip: IpAddr) -> bool {
    let mode = st.cvar_int("sv_filterban");
    if mode == 0 {
        return false;
    }
    let now = Instant::now();
    st.ip_filters.retain(|f| !f.expired(now));
    // The engine's filters are IPv4; the simulator only listens on IPv4.
    let matched = match ip {
        IpAddr::V4(v4) => st.ip_filters.iter().any(|f| f.matches(v4)),
        IpAddr::V6(_) => false,
    };
    // sv_filterban 1: the list is a ban list; anything else: an allow list.
    if mode == 1 {
        matched
    } else {
        !matched
    }
}

/// `addip <minutes> <ipaddress>`; returns the console output.
pub fn addip(st: &mut State, args: &[String]) -> String {
    let [minutes, ip] = args else {
        return "Usage:  addip < minutes > < ipaddress >\nUse 0 minutes for permanent\n".into();
    };
    let Some((mask, compare)) = parse_pattern(ip) else {
        return format!("Bad filter address: {ip}\n");
    };
    let mut minutes = crate::state::leading_number(minutes);
    if minutes < 0.01 {
        minutes = 0.0;
    }
    let until = (minutes != 0.0)
        .then(|| Instant::now().checked_add(Duration::from_secs_f64(minutes * 60.0)))
        .flatten();
    let filter = IpFilter {
        mask,
        compare,
        minutes,
        until,
    };
    // The same pattern again updates the entry in place.
    let existing = st
        .ip_filters
        .iter()
        .position(|f| f.mask == mask && f.compare == compare);
    match existing {
        Some(i) => st.ip_filters[i] = filter,
        None if st.ip_filters.len() >= MAX_IPFILTERS => {
            return "addip:  IP filter list is full\n".into();
        }
        None => st.ip_filters.push(filter),
    }
    String::new()
}

fn octets_padded(b: [u8; 4]) -> String {
    format!("{:3}.{:3}.{:3}.{:3}", b[0], b[1], b[2], b[3])
}

/// `removeip <slot | ipaddress>`.
pub fn removeip(st: &mut State, args: &[String]) -> String {
    let Some(target) = args.first() else {
        return "Usage:  removeip < slot | ipaddress >\n".into();
    };
    if !target.contains('.') {
        let slot = crate::state::leading_number(target) as i64;
        if slot > 0 && (slot as usize) <= st.ip_filters.len() {
            let removed = st.ip_filters.remove(slot as usize - 1);
            return format!(
                "removeip:  filter removed for {target}, IP {}\n",
                octets_padded(removed.compare)
            );
        }
        return format!("removeip:  invalid slot {}\n", slot - 1);
    }
    let Some((mask, compare)) = parse_pattern(target) else {
        return format!("Bad filter address: {target}\n");
    };
    match st
        .ip_filters
        .iter()
        .position(|f| f.mask == mask && f.compare == compare)
    {
        Some(i) => {
            st.ip_filters.remove(i);
            format!("removeip:  filter removed for {target}\n")
        }
        None => format!("removeip:  couldn't find {target}\n"),
    }
}

/// `listip`.
pub fn listip(st: &mut State) -> String {
    let now = Instant::now();
    st.ip_filters.retain(|f| !f.expired(now));
    let n = st.ip_filters.len();
    let mut s = match n {
        0 => return "IP filter list: empty\n".into(),
        1 => "IP filter list: 1 entry\n".to_string(),
        _ => format!("IP filter list: {n} entries\n"),
    };
    for (i, f) in st.ip_filters.iter().enumerate() {
        let ip = octets_padded(f.compare);
        if f.minutes != 0.0 {
            let _ = writeln!(s, "{} {ip} : {:.3} min", i + 1, f.minutes);
        } else {
            let _ = writeln!(s, "{} {ip} : permanent", i + 1);
        }
    }
    s
}

/// Failed RCON authentications from one address.
#[derive(Debug, Clone)]
pub struct FailedRcon {
    ip: IpAddr,
    /// Every failure since the address was first tracked (never reset).
    count: u64,
    /// The most recent failure times.
    times: VecDeque<Instant>,
}

/// What [`record_failure`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Answer with the usual bad-password reply.
    Refused,
    /// The address is now banned: close the connection without a reply.
    Banned,
}

/// `HandleFailedRconAuth`: counts a failed authentication from `peer` and
/// bans the address when it crossed a limit. Console lines go to `console`.
pub fn record_failure(st: &mut State, peer: SocketAddr, console: &mut Vec<String>) -> Verdict {
    let ip = peer.ip();
    let whitelist = st.cvar("sv_rcon_whitelist_address");
    if !whitelist.is_empty() && whitelist == ip.to_string() {
        console.push(format!(
            "Rcon auth failed from rcon whitelist address {peer}"
        ));
        return Verdict::Refused;
    }
    let now = Instant::now();
    let index = match st.failed_rcons.iter().position(|f| f.ip == ip) {
        Some(i) => i,
        None => {
            if st.failed_rcons.len() >= MAX_TRACKED_ADDRESSES {
                let oldest = st
                    .failed_rcons
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, f)| f.times.back().copied())
                    .map(|(i, _)| i);
                if let Some(i) = oldest {
                    st.failed_rcons.remove(i);
                }
            }
            st.failed_rcons.push(FailedRcon {
                ip,
                count: 0,
                times: VecDeque::new(),
            });
            st.failed_rcons.len() - 1
        }
    };
    let (count, recent_times) = {
        let f = &mut st.failed_rcons[index];
        f.count += 1;
        f.times.push_back(now);
        while f.times.len() > MAX_FAILURE_TIMES {
            f.times.pop_front();
        }
        (f.count, f.times.clone())
    };

    // The cvars' bounds (ConVar min/max), then the engine's sanity swap.
    let mut max = st.cvar_int("sv_rcon_maxfailures").clamp(1, 20);
    let mut min = st.cvar_int("sv_rcon_minfailures").clamp(1, 20);
    if max < min {
        std::mem::swap(&mut max, &mut min);
        st.cvars
            .insert("sv_rcon_maxfailures".into(), max.to_string());
        st.cvars
            .insert("sv_rcon_minfailures".into(), min.to_string());
    }
    let window = st.cvar_float("sv_rcon_minfailuretime").max(1.0);
    let recent = recent_times
        .iter()
        .filter(|t| now.duration_since(**t).as_secs_f64() <= window)
        .count() as i64;
    if count as i64 > max || recent > min {
        console.push(format!("Banning {ip} for rcon hacking attempts"));
        let penalty = st.cvar_int("sv_rcon_banpenalty").max(0);
        let out = addip(st, &[penalty.to_string(), ip.to_string()]);
        if !out.is_empty() {
            console.push(out.trim_end().to_string());
        }
        return Verdict::Banned;
    }
    Verdict::Refused
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn state() -> State {
        State::new(Rng::with_seed(1))
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn patterns_follow_filter_convert_string() {
        assert_eq!(parse_pattern("10.1.2.3"), Some(([255; 4], [10, 1, 2, 3])));
        // 0 octets are wildcards; a short pattern leaves the rest open.
        assert_eq!(
            parse_pattern("192.168.0.0"),
            Some(([255, 255, 0, 0], [192, 168, 0, 0]))
        );
        assert_eq!(parse_pattern("10"), Some(([255, 0, 0, 0], [10, 0, 0, 0])));
        assert_eq!(parse_pattern("x.1.2.3"), None);
        assert_eq!(parse_pattern(""), None);
    }

    #[test]
    fn addip_listip_removeip() {
        let mut st = state();
        let a: IpAddr = "10.0.0.7".parse().unwrap();
        assert!(!should_discard(&mut st, a));
        assert_eq!(addip(&mut st, &s(&["0", "10.0.0.7"])), "");
        assert!(should_discard(&mut st, a));
        assert!(!should_discard(&mut st, "10.0.0.8".parse().unwrap()));
        assert_eq!(addip(&mut st, &s(&["30", "192.168.0.0"])), "");
        assert!(should_discard(&mut st, "192.168.44.1".parse().unwrap()));
        assert_eq!(
            listip(&mut st),
            "IP filter list: 2 entries\n1  10.  0.  0.  7 : permanent\n2 192.168.  0.  0 : 30.000 min\n"
        );
        assert_eq!(
            removeip(&mut st, &s(&["10.0.0.7"])),
            "removeip:  filter removed for 10.0.0.7\n"
        );
        assert!(!should_discard(&mut st, a));
        assert_eq!(
            removeip(&mut st, &s(&["1"])),
            "removeip:  filter removed for 1, IP 192.168.  0.  0\n"
        );
        assert_eq!(listip(&mut st), "IP filter list: empty\n");
        assert!(addip(&mut st, &s(&["1"])).starts_with("Usage:  addip"));
        // sv_filterban 0 turns filtering off.
        addip(&mut st, &s(&["0", "10.0.0.7"]));
        st.cvars.insert("sv_filterban".into(), "0".into());
        assert!(!should_discard(&mut st, a));
    }

    #[test]
    fn brute_force_is_banned_after_the_engine_limits() {
        let mut st = state();
        let peer: SocketAddr = "10.0.0.9:50000".parse().unwrap();
        let mut console = Vec::new();
        // Defaults: more than 5 failures within 30 s bans (the 6th).
        for _ in 0..5 {
            assert_eq!(
                record_failure(&mut st, peer, &mut console),
                Verdict::Refused
            );
        }
        assert_eq!(record_failure(&mut st, peer, &mut console), Verdict::Banned);
        assert_eq!(console, vec!["Banning 10.0.0.9 for rcon hacking attempts"]);
        assert!(should_discard(&mut st, peer.ip()));
        assert!(listip(&mut st).contains(": permanent"));
    }

    #[test]
    fn whitelist_and_swapped_limits() {
        let mut st = state();
        let peer: SocketAddr = "10.0.0.9:50000".parse().unwrap();
        let mut console = Vec::new();
        st.cvars
            .insert("sv_rcon_whitelist_address".into(), "10.0.0.9".into());
        for _ in 0..30 {
            assert_eq!(
                record_failure(&mut st, peer, &mut console),
                Verdict::Refused
            );
        }
        assert!(!should_discard(&mut st, peer.ip()));
        assert!(
            console[0].starts_with("Rcon auth failed from rcon whitelist address 10.0.0.9:50000")
        );

        // max < min is swapped back, as the engine does, and stays swapped.
        let mut st = state();
        st.cvars.insert("sv_rcon_maxfailures".into(), "2".into());
        st.cvars.insert("sv_rcon_minfailures".into(), "20".into());
        st.cvars.insert("sv_rcon_banpenalty".into(), "15".into());
        for _ in 0..2 {
            assert_eq!(
                record_failure(&mut st, peer, &mut console),
                Verdict::Refused
            );
        }
        assert_eq!(record_failure(&mut st, peer, &mut console), Verdict::Banned);
        assert_eq!(st.cvar("sv_rcon_maxfailures"), "20");
        assert_eq!(st.cvar("sv_rcon_minfailures"), "2");
        assert!(listip(&mut st).contains(": 15.000 min"));
    }
}
