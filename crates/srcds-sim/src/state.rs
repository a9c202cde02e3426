//! Mutable server state: cvars, the current map, connected players and log
//! destinations. One mutex guards it; every network thread takes it briefly.

use crate::filter::{FailedRcon, IpFilter};
use crate::rng::Rng;
use crate::userfilter::UserFilter;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

/// Cvars the simulator knows, with srcds's defaults. Setting anything else
/// from a script or RCON gets `Unknown command`, as on a stock server.
pub const DEFAULT_CVARS: &[(&str, &str)] = &[
    ("hostname", "Left 4 Dead 2"),
    ("rcon_password", ""),
    ("sv_password", ""),
    ("sv_logsecret", "0"),
    ("sv_logecho", "1"),
    ("net_usesocketsforloopback", "0"),
    ("sv_logfile", "1"),
    ("sv_log_onefile", "0"),
    ("sv_logbans", "0"),
    ("sv_maxplayers", "-1"),
    ("sv_visiblemaxplayers", "-1"),
    ("mp_gamemode", "coop"),
    ("z_difficulty", "Normal"),
    ("sv_gametypes", "coop,realism,survival,versus,scavenge"),
    ("sv_allow_lobby_connect_only", "1"),
    ("sv_lan", "0"),
    ("sv_region", "255"),
    ("sv_tags", ""),
    ("sv_steamgroup", ""),
    ("sv_steamgroup_exclusive", "0"),
    ("sv_search_key", ""),
    ("sv_alltalk", "0"),
    ("sv_cheats", "0"),
    ("sv_consistency", "1"),
    ("sv_pure", "0"),
    ("sv_hibernate_when_empty", "1"),
    ("sv_allowdownload", "1"),
    ("sv_allowupload", "1"),
    ("sv_downloadurl", ""),
    ("sv_contact", ""),
    ("sv_voiceenable", "1"),
    ("sv_minrate", "5000"),
    ("sv_maxrate", "30000"),
    ("sv_mincmdrate", "0"),
    ("sv_maxcmdrate", "30"),
    ("sv_minupdaterate", "10"),
    ("sv_maxupdaterate", "30"),
    // RCON brute-force protection, with the engine's defaults
    // (engine/sv_rcon.cpp in the Source SDK 2013 and CS:GO trees).
    ("sv_rcon_banpenalty", "0"),
    ("sv_rcon_maxfailures", "10"),
    ("sv_rcon_minfailures", "5"),
    ("sv_rcon_minfailuretime", "30"),
    ("sv_rcon_whitelist_address", ""),
    ("sv_filterban", "1"),
    // Not engine cvars: srcds serves every RCON socket from its single frame
    // loop, so idle sockets cost it nothing; the simulator runs a thread per
    // connection and needs these bounds instead (see rcon_server.rs).
    ("sim_rcon_max_unauthenticated", "16"),
    ("sim_rcon_auth_timeout", "15"),
    // Read when the network comes up, after autoexec.cfg and the command
    // line, like the engine's cvars of the same names (engine/net_ws.cpp).
    ("clientport", "27005"),
    ("tv_port", "27020"),
    ("tv_enable", "0"),
    // The file the game rules exec at every map load (game/server/game.cpp).
    ("servercfgfile", "server.cfg"),
    ("motd_enabled", "1"),
    ("mp_disable_autokick", "0"),
    ("director_no_human_zombies", "0"),
    ("fps_max", "300"),
    ("net_splitpacket_maxrate", "15000"),
    ("decalfrequency", "10"),
];

/// Cvars srcds reports in A2S_RULES (its FCVAR_NOTIFY ones).
pub const RULES_CVARS: &[&str] = &[
    "mp_gamemode",
    "sv_alltalk",
    "sv_cheats",
    "sv_consistency",
    "sv_pure",
    "z_difficulty",
    "sv_gametypes",
];

/// Plausible player names for simulated joins.
pub const PLAYER_NAMES: &[&str] = &[
    "Nick",
    "Rochelle",
    "Coach",
    "Ellis",
    "Zoey",
    "Francis",
    "Louis",
    "Bill",
    "TankBuster",
    "WitchWhisperer",
    "PillsHere",
    "GnomeChompski",
    "Boomerang",
    "SmokerSlayer",
    "HunterHunter",
    "chargerbait",
    "m1ke",
    "Kat",
    "xXSpitterXx",
    "CrescendoKid",
    "saferoom_sam",
    "Moustachio",
    "Jockey Rider",
    "The Heavy",
    "Peanut",
    "Virgil",
    "Whitaker",
    "Keith's Cousin",
    "Midnight Rider",
    "Ugly Pete",
];

/// One connected (simulated) player.
#[derive(Debug, Clone)]
pub struct Player {
    pub userid: u32,
    pub name: String,
    pub steam_id: String,
    /// Remote address as `status` shows it (TEST-NET-3, never contacted).
    pub address: String,
    pub joined: Instant,
    pub ping: u32,
    pub score: i32,
    pub team: String,
}

/// A fake client of the busy game (see game.rs): a survivor bot or a
/// special infected.
#[derive(Debug, Clone)]
pub struct Bot {
    pub userid: u32,
    /// `Coach`, `Hunter`, ...
    pub name: String,
    /// As the extended log block names it (`Mechanic`, `Hunter`, ...).
    pub character: &'static str,
    /// `Survivor` or `Infected`.
    pub team: &'static str,
}

/// Everything the threads share.
#[derive(Debug)]
pub struct State {
    pub cvars: BTreeMap<String, String>,
    pub map: Option<String>,
    /// The humans (simulated players).
    pub players: Vec<Player>,
    /// Bots of the busy game; never in A2S (see game.rs).
    pub bots: Vec<Bot>,
    /// Hibernating: no human, `sv_hibernate_when_empty 1`, busy game.
    pub hibernating: bool,
    pub next_userid: u32,
    pub logging: bool,
    pub log_addresses: Vec<SocketAddr>,
    pub rng: Rng,
    /// `map`/`changelevel` accepted but not yet done: the engine only
    /// schedules the level change (HostState_NewGame / _ChangeLevelMP) and
    /// performs it after the current command batch.
    pub pending_map: Option<PendingMap>,
    /// `addip` bans (sv_filter.cpp).
    pub ip_filters: Vec<IpFilter>,
    /// `banid` bans (sv_filter.cpp).
    pub user_filters: Vec<UserFilter>,
    /// Per-address RCON authentication failures (sv_rcon.cpp).
    pub failed_rcons: Vec<FailedRcon>,
    /// What clients asked for, for benchmarks (`sim_query_counts`).
    pub query_counts: QueryCounts,
    /// Level changes after the first map (`stats`' "Map changes").
    pub map_changes: u32,
    /// Clients that connected since start (`stats`' "Connects").
    pub connects: u32,
}

/// Queries answered, as `sim_query_counts` prints them. Not in the real
/// engine: it lets a benchmark count what a panel costs each server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryCounts {
    /// A2S_INFO answered with the server's info (not a challenge).
    pub a2s_info: u64,
    /// `status` run over RCON.
    pub rcon_status: u64,
}

/// A scheduled level change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMap {
    pub map: String,
    /// `changelevel` (true) or `map` (false): only the console wording differs.
    pub changelevel: bool,
}

impl State {
    pub fn new(rng: Rng) -> Self {
        State {
            cvars: DEFAULT_CVARS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            map: None,
            players: Vec::new(),
            bots: Vec::new(),
            hibernating: false,
            // userid 1 is taken by SourceTV/the host slot on a fresh srcds;
            // the first client gets 2.
            next_userid: 2,
            logging: false,
            log_addresses: Vec::new(),
            rng,
            pending_map: None,
            ip_filters: Vec::new(),
            user_filters: Vec::new(),
            failed_rcons: Vec::new(),
            query_counts: QueryCounts::default(),
            map_changes: 0,
            connects: 0,
        }
    }

    /// A cvar's value ("" if unknown).
    pub fn cvar(&self, name: &str) -> &str {
        self.cvars.get(name).map(String::as_str).unwrap_or("")
    }

    /// A cvar as the engine's `ConVar::GetInt` reads it: the leading number
    /// of the string, truncated toward zero; anything unparsable is 0.
    pub fn cvar_int(&self, name: &str) -> i64 {
        self.cvar_float(name) as i64
    }

    /// A cvar as `ConVar::GetFloat` reads it (`atof`: the leading number).
    pub fn cvar_float(&self, name: &str) -> f64 {
        leading_number(self.cvar(name))
    }

    pub fn hostname(&self) -> &str {
        self.cvar("hostname")
    }

    /// Slots: `sv_maxplayers` if positive, else the game mode's default
    /// (4 for co-op modes, 8 for versus/scavenge).
    pub fn max_players(&self) -> u8 {
        match self.cvar("sv_maxplayers").trim().parse::<i64>() {
            Ok(n) if n > 0 => n.min(32) as u8,
            _ => match self.cvar("mp_gamemode") {
                "versus" | "teamversus" | "scavenge" | "teamscavenge" | "mutation12" => 8,
                _ => 4,
            },
        }
    }

    /// Picks a name not already in use.
    pub fn fresh_name(&mut self) -> String {
        for _ in 0..16 {
            let i = self.rng.range(0, PLAYER_NAMES.len() as u64) as usize;
            let candidate = PLAYER_NAMES[i];
            if !self.players.iter().any(|p| p.name == candidate) {
                return candidate.to_string();
            }
        }
        format!("Survivor{}", self.next_userid)
    }

    /// A new bot record (not yet added).
    pub fn new_bot(&mut self, name: &str, character: &'static str, team: &'static str) -> Bot {
        let userid = self.next_userid;
        self.next_userid += 1;
        Bot {
            userid,
            name: name.to_string(),
            character,
            team,
        }
    }

    /// A new player record (not yet added).
    pub fn new_player(&mut self, name: String) -> Player {
        let userid = self.next_userid;
        self.next_userid += 1;
        let y = self.rng.range(0, 2);
        let z = self.rng.range(10_000_000, 600_000_000);
        let host = self.rng.range(1, 255);
        Player {
            userid,
            name,
            steam_id: format!("STEAM_1:{y}:{z}"),
            address: format!("203.0.113.{host}:27005"),
            joined: Instant::now(),
            ping: self.rng.range(18, 140) as u32,
            score: 0,
            team: "Survivor".to_string(),
        }
    }
}

/// `atof`: the longest leading prefix that parses as a number, else 0.
pub(crate) fn leading_number(s: &str) -> f64 {
    let s = s.trim_start();
    let mut end = 0;
    for (i, c) in s.char_indices() {
        let ok = c.is_ascii_digit() || c == '.' || ((c == '-' || c == '+') && i == 0);
        if !ok {
            break;
        }
        end = i + c.len_utf8();
    }
    // "1.2.3" parses as far as "1.2": shrink until it parses.
    let mut prefix = &s[..end];
    while !prefix.is_empty() {
        if let Ok(v) = prefix.parse::<f64>() {
            return if v.is_finite() { v } else { 0.0 };
        }
        prefix = &prefix[..prefix.len() - 1];
    }
    0.0
}

#[cfg(test)]
mod tests {
    use super::leading_number;

    #[test]
    fn cvar_numbers_read_like_atof() {
        assert_eq!(leading_number("30"), 30.0);
        assert_eq!(leading_number(" 2.5min"), 2.5);
        assert_eq!(leading_number("1.2.3"), 1.2);
        assert_eq!(leading_number("-1"), -1.0);
        assert_eq!(leading_number("abc"), 0.0);
        assert_eq!(leading_number(""), 0.0);
        assert_eq!(leading_number("-"), 0.0);
    }
}
