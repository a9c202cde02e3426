//! The busy game (`-sim_busy`): what a real L4D2 server does between the
//! joins and leaves of humans, one step per interval (or per `sim_step`).
//!
//! What it models, from real L4D2 output:
//!
//! - **Survivor bots** fill the survivor slots no human holds. `status`
//!   lists them as `#  3 "Coach" BOT active` rows while its header still
//!   says `0 bots`, and they are in neither A2S_INFO's player count nor its
//!   bots byte (a co-op server with one human shows 1/4 in the server
//!   browser), so A2S and the `status` header agree.
//! - **Special infected bots** (in co-op and versus alike the director's
//!   specials are fake clients) connect, enter and join team "Infected",
//!   die to a survivor, and leave with
//!   `disconnected (reason "Kicked by Console : death anim finished")`.
//! - **Kill lines** in L4D's own form, `(DEATH)` directly before the
//!   killer, with the extended player block
//!   `Name<uid><steam><Team><Character><ALIVE|DEAD><health+temp><setpos_exact x y z; setang p y r><Area n>`
//!   for both killer and victim, then `with "weapon"` (as real L4D/L4D2
//!   logs show, e.g. `(DEATH)"Cee<1101><STEAM_1:1:2696233><Survivor><Manager><ALIVE><67+0><setpos_exact …><Area 76515>" killed "infected<345><><Infected><infected><DEAD><-40><setpos_exact …><Area 78726>" with "hunting_rifle"`).
//! - **Chat**: humans `say` (and now and then `say_team`) a line.
//! - **Hibernation** with `sv_hibernate_when_empty 1`: when the last human
//!   leaves, the bots are gone, the console prints `Server is hibernating`
//!   and nothing more happens until a human joins.
//!
//! Simplified: a human taking a bot's survivor slot (and a bot taking the
//! slot back) changes the bots without log lines, humans are always on the
//! survivor team, and positions, areas and health are random.

use crate::hllog;
use crate::server::{console, Server};
use crate::state::{Bot, Player, State};
use std::fmt::Write as _;

/// Survivor slots of every L4D2 mode the simulator knows.
const SURVIVOR_SLOTS: usize = 4;
/// The survivors' bot names and their characters as the log names them.
const SURVIVORS: &[(&str, &str)] = &[
    ("Nick", "Gambler"),
    ("Rochelle", "Producer"),
    ("Coach", "Coach"),
    ("Ellis", "Mechanic"),
];
const SPECIALS: &[&str] = &["Boomer", "Smoker", "Hunter", "Spitter", "Jockey", "Charger"];
const WEAPONS: &[&str] = &[
    "autoshotgun",
    "pumpshotgun",
    "shotgun_chrome",
    "shotgun_spas",
    "rifle",
    "rifle_ak47",
    "rifle_desert",
    "smg",
    "smg_silenced",
    "hunting_rifle",
    "sniper_military",
    "pistol",
    "pistol_magnum",
    "melee",
];
const CHAT: &[&str] = &[
    "gg",
    "need pills",
    "TANK!",
    "witch ahead, lights off",
    "reloading",
    "wait for me",
    "heal up before the event",
    "nice shot",
    "lol",
    "who has the molotov?",
    "go go go",
    "saferoom is left",
];
/// The disconnect reason a dead special infected bot leaves with.
pub const DEATH_ANIM_FINISHED: &str = "Kicked by Console : death anim finished";

/// A survivor for the kill line: a human or a survivor bot.
enum Killer<'a> {
    Human(&'a Player),
    Bot(&'a Bot),
}

impl Server {
    pub(crate) fn busy(&self) -> bool {
        self.args.sim_busy.is_some()
    }

    /// Special infected the director keeps alive at once: four in versus
    /// (the infected team's slots), three in co-op.
    fn special_slots(st: &State) -> usize {
        match st.cvar("mp_gamemode") {
            "versus" | "teamversus" | "mutation12" => 4,
            _ => 3,
        }
    }

    /// After humans joined or left (or a map loaded): hibernate when the
    /// last one left, wake when one arrived, and keep the survivor slots
    /// filled with bots. Only in busy mode; quiet servers keep no bots.
    pub(crate) fn humans_changed(&self, st: &mut State) {
        if !self.busy() || st.map.is_none() {
            return;
        }
        let hibernate = st.cvar_int("sv_hibernate_when_empty") != 0;
        if st.players.is_empty() && hibernate {
            if !st.hibernating {
                // The level's fake clients go with it, without log lines.
                st.bots.clear();
                st.hibernating = true;
                console("Server is hibernating");
            }
            return;
        }
        st.hibernating = false;
        self.fill_survivor_bots(st);
    }

    /// Survivor bots for every survivor slot no human holds.
    fn fill_survivor_bots(&self, st: &mut State) {
        let humans = st.players.len().min(SURVIVOR_SLOTS);
        let wanted = SURVIVOR_SLOTS - humans;
        let mut have = st.bots.iter().filter(|b| b.team == "Survivor").count();
        while have > wanted {
            // A human took this bot's place.
            if let Some(i) = st.bots.iter().rposition(|b| b.team == "Survivor") {
                st.bots.remove(i);
            }
            have -= 1;
        }
        while have < wanted {
            let Some(&(name, character)) = SURVIVORS
                .iter()
                .find(|(n, _)| !st.bots.iter().any(|b| b.name == *n))
            else {
                break;
            };
            let bot = st.new_bot(name, character, "Survivor");
            self.bot_arrives(st, bot);
            have += 1;
        }
    }

    /// A bot's arrival lines, as the engine logs any fake client's.
    fn bot_arrives(&self, st: &mut State, bot: Bot) {
        let unassigned = hllog::player_tag(&bot.name, bot.userid, "BOT", "");
        self.log(st, &format!("{unassigned} connected, address \"none\""));
        self.log(st, &format!("{unassigned} entered the game"));
        self.log(st, &format!("{unassigned} joined team \"{}\"", bot.team));
        st.bots.push(bot);
    }

    /// One step of the busy game; nothing while hibernating or between maps.
    pub(crate) fn game_step(&self, st: &mut State) {
        if !self.busy() || st.hibernating || st.map.is_none() {
            return;
        }
        if !st.players.is_empty() && st.rng.chance(15) {
            let i = st.rng.range(0, st.players.len() as u64) as usize;
            let line = CHAT[st.rng.range(0, CHAT.len() as u64) as usize];
            let verb = if st.rng.chance(10) { "say_team" } else { "say" };
            let who = hllog::player_tag(
                &st.players[i].name,
                st.players[i].userid,
                &st.players[i].steam_id,
                &st.players[i].team,
            );
            self.log(st, &format!("{who} {verb} \"{line}\""));
        }
        let specials = st.bots.iter().filter(|b| b.team == "Infected").count();
        if specials > 0 && st.rng.chance(45) {
            self.kill_special(st);
        }
        let specials = st.bots.iter().filter(|b| b.team == "Infected").count();
        if specials < Self::special_slots(st) && st.rng.chance(55) {
            let free: Vec<&str> = SPECIALS
                .iter()
                .copied()
                .filter(|n| !st.bots.iter().any(|b| b.name == *n))
                .collect();
            if !free.is_empty() {
                let name = free[st.rng.range(0, free.len() as u64) as usize];
                let bot = st.new_bot(name, name, "Infected");
                self.bot_arrives(st, bot);
            }
        }
    }

    /// A survivor kills a random special infected: the kill line, then the
    /// bot leaves once its death animation finished.
    fn kill_special(&self, st: &mut State) {
        let infected: Vec<usize> = (0..st.bots.len())
            .filter(|&i| st.bots[i].team == "Infected")
            .collect();
        if infected.is_empty() {
            return;
        }
        let victim_index = infected[st.rng.range(0, infected.len() as u64) as usize];
        let survivor_bots: Vec<usize> = (0..st.bots.len())
            .filter(|&i| st.bots[i].team == "Survivor")
            .collect();
        let shooters = st.players.len() + survivor_bots.len();
        if shooters == 0 {
            return;
        }
        let pick = st.rng.range(0, shooters as u64) as usize;
        let weapon = WEAPONS[st.rng.range(0, WEAPONS.len() as u64) as usize];
        let killer_block = {
            let killer = if pick < st.players.len() {
                Killer::Human(&st.players[pick])
            } else {
                Killer::Bot(&st.bots[survivor_bots[pick - st.players.len()]])
            };
            let (name, userid, steam, character) = match killer {
                Killer::Human(p) => (
                    p.name.clone(),
                    p.userid,
                    p.steam_id.clone(),
                    human_character(st, p),
                ),
                Killer::Bot(b) => (b.name.clone(), b.userid, "BOT".to_string(), b.character),
            };
            let health = format!("{}+{}", st.rng.range(1, 101), st.rng.range(0, 30));
            extended_block(
                st, &name, userid, &steam, "Survivor", character, "ALIVE", &health,
            )
        };
        let victim = st.bots[victim_index].clone();
        let overkill = format!("-{}", st.rng.range(1, 80));
        let victim_block = extended_block(
            st,
            &victim.name,
            victim.userid,
            "BOT",
            "Infected",
            victim.character,
            "DEAD",
            &overkill,
        );
        self.log(
            st,
            &format!("(DEATH){killer_block} killed {victim_block} with \"{weapon}\""),
        );
        st.bots.remove(victim_index);
        let tag = hllog::player_tag(&victim.name, victim.userid, "BOT", "Infected");
        self.log(
            st,
            &format!("{tag} disconnected (reason \"{DEATH_ANIM_FINISHED}\")"),
        );
    }

    /// `status` rows of the bots: `#  3 "Coach" BOT active`.
    pub(crate) fn bot_status_rows(st: &State, out: &mut String) {
        for b in &st.bots {
            let _ = writeln!(out, "#{:>3} \"{}\" BOT active", b.userid, b.name);
        }
    }
}

/// The character a human plays: the first survivor no bot plays, in the
/// order humans joined.
fn human_character(st: &State, p: &Player) -> &'static str {
    let position = st
        .players
        .iter()
        .position(|q| q.userid == p.userid)
        .unwrap_or(0);
    SURVIVORS
        .iter()
        .map(|(_, c)| *c)
        .filter(|c| !st.bots.iter().any(|b| b.character == *c))
        .nth(position)
        .unwrap_or("Gambler")
}

/// L4D's extended player block, quoted.
#[allow(clippy::too_many_arguments)]
fn extended_block(
    st: &mut State,
    name: &str,
    userid: u32,
    steam: &str,
    team: &str,
    character: &str,
    life: &str,
    health: &str,
) -> String {
    let coord = |st: &mut State, span: u64| st.rng.range(0, span * 100) as f64 / 100.0;
    let (x, y, z) = (
        coord(st, 8000) - 4000.0,
        coord(st, 8000) - 4000.0,
        coord(st, 600) - 100.0,
    );
    let (pitch, yaw) = (coord(st, 60) - 30.0, coord(st, 360) - 180.0);
    let area = st.rng.range(100, 90_000);
    format!(
        "\"{name}<{userid}><{steam}><{team}><{character}><{life}><{health}><setpos_exact {x:.2} {y:.2} {z:.2}; setang {pitch:.2} {yaw:.2} 0.00><Area {area}>\""
    )
}
