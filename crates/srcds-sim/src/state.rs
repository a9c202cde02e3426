//! Mutable server state: cvars, the current map, connected players and log
//! destinations. One mutex guards it; every network thread takes it briefly.

use crate::rng::Rng;
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
    ("sv_rcon_banpenalty", "0"),
    ("sv_rcon_maxfailures", "10"),
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

/// Everything the threads share.
#[derive(Debug)]
pub struct State {
    pub cvars: BTreeMap<String, String>,
    pub map: Option<String>,
    pub players: Vec<Player>,
    pub next_userid: u32,
    pub logging: bool,
    pub log_addresses: Vec<SocketAddr>,
    pub rng: Rng,
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
            // userid 1 is taken by SourceTV/the host slot on a fresh srcds;
            // the first client gets 2.
            next_userid: 2,
            logging: false,
            log_addresses: Vec::new(),
            rng,
        }
    }

    /// A cvar's value ("" if unknown).
    pub fn cvar(&self, name: &str) -> &str {
        self.cvars.get(name).map(String::as_str).unwrap_or("")
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
