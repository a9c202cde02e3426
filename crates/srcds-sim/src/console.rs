//! Console commands of the simulated srcds, shared by server.cfg, `+commands`
//! and RCON. Output strings follow srcds's wording where the simulator
//! models the command.

use crate::clock;
use crate::config;
use crate::filter;
use crate::hllog::{self, CONSOLE_TAG};
use crate::net::BindError;
use crate::server::{console, Origin, Server, BUILD, GAME_APP_ID};
use crate::state::{PendingMap, Player, State, DEFAULT_CVARS};
use crate::userfilter;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Instant;

/// `exec` nesting limit (srcds guards against recursive configs too).
const MAX_EXEC_DEPTH: usize = 8;
/// Level changes performed in a row before the simulator suspects a loop.
const MAX_MAP_CHAIN: usize = 8;
/// Upper bound for `sim_long` so a typo cannot eat all memory.
const MAX_SIM_LONG_LINES: usize = 100_000;

fn valid_map_name(map: &str) -> bool {
    !map.is_empty()
        && map.len() <= 64
        && map
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        && !map.contains("..")
}

/// `mm:ss`, or `h:mm:ss` past an hour, as `status` prints connection time.
fn connected_for(since: Instant) -> String {
    let secs = since.elapsed().as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

fn tag(p: &Player) -> String {
    hllog::player_tag(&p.name, p.userid, &p.steam_id, &p.team)
}

fn parse_log_address(args: &[String]) -> Option<SocketAddr> {
    match args {
        [one] => one.parse().ok(),
        [ip, port] => {
            let ip: IpAddr = ip.parse().ok()?;
            Some(SocketAddr::new(ip, port.parse().ok()?))
        }
        _ => None,
    }
}

impl Server {
    /// Engine start up to the network, in the real engine's order. From the
    /// Source engine code (the Source SDK 2013 engine tree,
    /// github.com/nillerusr/source-engine; the CS:GO tree,
    /// github.com/perilouswithadollarsign/cstrike15_src, has the same
    /// server.cfg exec in its game rules):
    ///
    /// 1. `Host_Init` loads the server plugins (`SV_InitGameDLL`, see
    ///    plugins.rs), then queues `exec valve.rc` (engine/host.cpp). The
    ///    stock valve.rc runs `exec autoexec.cfg`, then `stuffcmds`, which
    ///    inserts the command line's `+commands` in argv order
    ///    (`Cmd_StuffCmds_f`, engine/cmd.cpp).
    /// 2. `map` and `changelevel` only schedule the level change
    ///    (`HostState_NewGame` / `HostState_ChangeLevelMP`,
    ///    engine/host_state.cpp: "start a new game as soon as possible"), so
    ///    a `+map` anywhere on the command line loads after all `+commands`.
    /// 3. The network opens after that first command batch ("initialize
    ///    networking for dedicated server after commandline & autoexec.cfg
    ///    have been parsed", `_Host_RunFrame`, engine/host.cpp), then the
    ///    level loads.
    /// 4. Every level load — the first map and each changelevel — creates
    ///    the game rules, whose constructor queues `exec <servercfgfile>`
    ///    (`CMultiplayRules::CMultiplayRules`,
    ///    game/shared/multiplay_gamerules.cpp; `servercfgfile` defaults to
    ///    server.cfg, game/server/game.cpp).
    ///
    /// So server.cfg runs after the whole command line and again at every
    /// map change: a cvar given as `+cvar` and in server.cfg ends with
    /// server.cfg's value, and lines at the end of server.cfg win over the
    /// command line — unless the command line sets `+servercfgfile`, which
    /// makes the engine exec that file instead of server.cfg. The docs say
    /// the same: VDC "Autoexec" (developer.valvesoftware.com/wiki/Autoexec:
    /// once, at startup, before the first map), sourceserver.info/wiki/config
    /// (autoexec.cfg before the start parameters; server.cfg after the map
    /// loads and after every map change), gaming.stackexchange.com/q/2814
    /// (server.cfg at each map load, including map changes).
    pub(crate) fn run_startup_configs(&self) {
        let mut st = self.lock();
        // valve.rc: exec autoexec.cfg (silently skipped when missing) ...
        let out = self.exec_cfg(&mut st, "autoexec.cfg", 0);
        if !out.is_empty() {
            console(out.trim_end());
        }
        // ... then stuffcmds.
        for cmd in &self.args.startup_commands {
            let out = self.run_command(&mut st, cmd, &cmd[1..].join(" "), Origin::CommandLine, 0);
            if !out.is_empty() {
                console(out.trim_end());
            }
        }
        if let Some(map) = self.args.map.clone() {
            if let Err(e) = self.schedule_map(&mut st, &map, false) {
                console(&e);
            }
        }
    }

    /// After the network is up: the scheduled `+map` (running server.cfg)
    /// and the simulated players. An error is where the engine would exit.
    pub(crate) fn start_game(&self) -> Result<(), BindError> {
        let mut st = self.lock();
        console("Connection to Steam servers successful.");
        console("   VAC secure mode is activated.");
        if st.pending_map.is_none() {
            console("Server is hibernating");
        }
        self.run_pending_maps(&mut st)?;
        let want = self.args.sim_players;
        for _ in 0..want {
            if self.join_player(&mut st, None).is_err() {
                break;
            }
        }
        // With nobody joining, a busy server goes to sleep at once.
        self.humans_changed(&mut st);
        Ok(())
    }

    /// Performs scheduled level changes. A server.cfg that changes the map
    /// would make the engine change levels forever; the simulator stops
    /// after a few.
    pub(crate) fn run_pending_maps(&self, st: &mut State) -> Result<(), BindError> {
        for _ in 0..MAX_MAP_CHAIN {
            let Some(pending) = st.pending_map.take() else {
                return Ok(());
            };
            self.change_level(st, &pending);
            self.open_sourcetv(st)?;
        }
        if st.pending_map.take().is_some() {
            console(&format!(
                "srcds-sim: {MAX_MAP_CHAIN} map changes in a row (does {} change the map?); not changing again",
                st.cvar("servercfgfile")
            ));
        }
        Ok(())
    }

    /// `exec <servercfgfile>` as the game rules do at a level load.
    fn exec_server_cfg(&self, st: &mut State) {
        let file = st.cvar("servercfgfile").to_string();
        if file.is_empty() {
            return;
        }
        console(&format!("Executing dedicated server config file {file}"));
        let out = self.exec_cfg(st, &file, 0);
        if !out.is_empty() {
            console(out.trim_end());
        }
    }

    /// `exec <name>` (`Cmd_Exec_f`): `<game>/cfg/<name>`, `.cfg` added when
    /// the name has no extension; missing optional files are quiet.
    fn exec_cfg(&self, st: &mut State, name: &str, depth: usize) -> String {
        if name.contains("..") || name.starts_with('/') || name.contains('\\') {
            return format!("exec {name}: invalid path.\n");
        }
        let file = if Path::new(name).extension().is_some() {
            name.to_string()
        } else {
            format!("{name}.cfg")
        };
        let path = self.game_dir.join("cfg").join(file);
        if !path.is_file() {
            let lower = name.to_ascii_lowercase();
            if ["autoexec.cfg", "joystick.cfg", "game.cfg"]
                .iter()
                .any(|quiet| lower.contains(quiet))
            {
                return String::new();
            }
            return format!("'{name}' not present; not executing.\n");
        }
        self.exec_file(st, &path, depth)
    }

    fn exec_file(&self, st: &mut State, path: &Path, depth: usize) -> String {
        if depth >= MAX_EXEC_DEPTH {
            return format!("exec: too many nested execs at {}\n", path.display());
        }
        let text = match std::fs::read(path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(_) => {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                return format!("exec: couldn't exec {}\n", name.unwrap_or_default());
            }
        };
        let mut out = String::new();
        for cmd in config::parse_script(&text) {
            let raw = cmd[1..].join(" ");
            out.push_str(&self.run_command(st, &cmd, &raw, Origin::Script, depth + 1));
        }
        out
    }

    /// Executes one console line (possibly several `;`-separated commands)
    /// and returns the text srcds would send back over RCON.
    pub fn execute(&self, line: &str, origin: Origin) -> String {
        let commands = config::parse_line(line);
        if commands.is_empty() {
            return String::new();
        }
        let mut st = self.lock();
        if let Origin::Rcon(peer) = origin {
            self.log(&st, &format!("rcon from \"{peer}\": command \"{line}\""));
        }
        let single = commands.len() == 1;
        let mut out = String::new();
        for cmd in &commands {
            let raw = if single {
                config::rest_of_line(line)
            } else {
                cmd[1..].join(" ")
            };
            out.push_str(&self.run_command(&mut st, cmd, &raw, origin, 0));
        }
        // A map change asked for in this batch happens now, after the rest
        // of the batch, as the engine's host state machine does it.
        if let Err(e) = self.run_pending_maps(&mut st) {
            drop(st);
            self.fail(e);
        }
        out
    }

    fn run_command(
        &self,
        st: &mut State,
        cmd: &[String],
        raw_args: &str,
        origin: Origin,
        depth: usize,
    ) -> String {
        let name = cmd[0].to_ascii_lowercase();
        let args = &cmd[1..];
        match name.as_str() {
            "status" => {
                if matches!(origin, Origin::Rcon(_)) {
                    st.query_counts.rcon_status += 1;
                }
                self.status(st)
            }
            "stats" => self.stats(st),
            "version" => self.version_text(),
            "sim_query_counts" => {
                let c = st.query_counts;
                format!("a2s_info {} rcon_status {}\n", c.a2s_info, c.rcon_status)
            }
            "echo" => format!("{raw_args}\n"),
            "say" => {
                console(&format!("Console: {raw_args}"));
                self.log(st, &format!("{CONSOLE_TAG} say \"{raw_args}\""));
                String::new()
            }
            "map" | "changelevel" => match args.first() {
                None => format!("Usage:  {name} <mapname>\n"),
                Some(map) => match self.schedule_map(st, map, name == "changelevel") {
                    Ok(()) => String::new(),
                    Err(e) => format!("{e}\n"),
                },
            },
            "addip" | "banip" => {
                let mut out = String::new();
                if name == "banip" {
                    out.push_str("Note: should use \"addip\" instead of \"banip\".\n");
                }
                out.push_str(&filter::addip(st, args));
                out
            }
            "removeip" => filter::removeip(st, args),
            "listip" => filter::listip(st),
            "kick" => {
                if args.is_empty() {
                    return "Usage:  kick < name > | < #userid >\n".into();
                }
                let target = args.join(" ");
                let index = match target.strip_prefix('#') {
                    Some(id) => id
                        .trim()
                        .parse::<u32>()
                        .ok()
                        .and_then(|id| st.players.iter().position(|p| p.userid == id)),
                    None => st
                        .players
                        .iter()
                        .position(|p| p.name.eq_ignore_ascii_case(&target)),
                };
                self.kick(st, index, &target, "")
            }
            // `kickid` (engine/host_cmd.cpp): a userid when the argument
            // starts with a digit, else a unique id; the message, when given,
            // is the reason the client is dropped with. The engine passes the
            // raw rest of the line; the simulator the unquoted words.
            "kickid" => {
                let Some(who) = args.first() else {
                    return "Usage:  kickid < userid | uniqueid > { message }\n".into();
                };
                let by_userid = who.starts_with(|c: char| c.is_ascii_digit());
                let index = st.players.iter().position(|p| {
                    if by_userid {
                        crate::state::leading_number(who) as u32 == p.userid
                    } else {
                        p.steam_id.eq_ignore_ascii_case(who)
                    }
                });
                let message = args[1..].join(" ");
                match index {
                    Some(_) => self.kick(st, index, who, &message),
                    None if by_userid => format!(
                        "userid \"{}\" not found\n",
                        crate::state::leading_number(who) as i64
                    ),
                    None => format!("uniqueid \"{who}\" not found\n"),
                }
            }
            "banid" => {
                let outcome = userfilter::banid(st, args);
                if let Some((i, duration)) = outcome.kick {
                    // The engine prints this to the client, then drops it.
                    console(&format!(
                        "{}: You have been kicked and banned {duration} by the server.",
                        st.players[i].name
                    ));
                    self.drop_player(st, i, "Kicked and banned");
                }
                outcome.output
            }
            "removeid" => userfilter::removeid(st, args),
            "listid" => userfilter::listid(st),
            "writeid" => self.writeid(st),
            "log" => match args.first().map(|a| a.to_ascii_lowercase()).as_deref() {
                Some("on") | Some("1") => {
                    if !st.logging {
                        st.logging = true;
                        let now = clock::now();
                        self.log(
                            st,
                            &format!(
                                "Log file started (file \"logs/{}\") (game \"{}\") (version \"{BUILD}\")",
                                now.log_file_name(),
                                self.game_dir.display()
                            ),
                        );
                    }
                    "Server logging enabled.\n".into()
                }
                Some("off") | Some("0") => {
                    if st.logging {
                        self.log(st, "Log file closed.");
                        st.logging = false;
                    }
                    "Server logging disabled.\n".into()
                }
                _ => format!(
                    "Usage:  log < on | off >\ncurrently {}logging\n",
                    if st.logging { "" } else { "not " }
                ),
            },
            "logaddress_add" => match parse_log_address(args) {
                None if args.is_empty() => {
                    "logaddress_add:  usage\nlogaddress_add ip:port\n".into()
                }
                None => format!("logaddress_add:  unable to resolve {}\n", args.join(" ")),
                Some(addr) if st.log_addresses.contains(&addr) => {
                    format!("logaddress_add:  {addr} is already in the list\n")
                }
                Some(addr) => {
                    st.log_addresses.push(addr);
                    format!("logaddress_add:  {addr}\n")
                }
            },
            "logaddress_del" => match parse_log_address(args) {
                None => "logaddress_del:  usage\nlogaddress_del ip:port\n".into(),
                Some(addr) => match st.log_addresses.iter().position(|a| *a == addr) {
                    Some(i) => {
                        st.log_addresses.remove(i);
                        format!("logaddress_del:  {addr}\n")
                    }
                    None => format!("logaddress_del:  couldn't find address {addr} in list\n"),
                },
            },
            "logaddress_delall" => {
                st.log_addresses.clear();
                "logaddress_delall:  all addresses cleared\n".into()
            }
            "logaddress_list" => {
                if st.log_addresses.is_empty() {
                    "logaddress_list:  no addresses in the list\n".into()
                } else {
                    let mut s = format!("logaddress_list:  {} entries\n", st.log_addresses.len());
                    for a in &st.log_addresses {
                        let _ = writeln!(s, "{a}");
                    }
                    s
                }
            }
            "exec" => match args {
                [file] => self.exec_cfg(st, file, depth),
                _ => "exec <filename>: execute a script file\n".into(),
            },
            "cvarlist" => {
                let mut s = String::from("cvar list\n--------------\n");
                for (k, v) in &st.cvars {
                    let _ = writeln!(s, "{k:<40} : {v:<10} : , \"sv\"");
                }
                let _ = write!(
                    s,
                    "--------------\n{} total convars/concommands\n",
                    st.cvars.len()
                );
                s
            }
            "users" => {
                let mut s = String::from("<slot:userid:\"name\">\n");
                for (i, p) in st.players.iter().enumerate() {
                    let _ = writeln!(s, "{}:{}:\"{}\"", i, p.userid, p.name);
                }
                let _ = writeln!(s, "{} users", st.players.len());
                s
            }
            "quit" | "exit" => {
                self.shutdown
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                String::new()
            }
            // Test switches of the simulator.
            "sim_crash" => self.crash("sim_crash command"),
            "sim_long" => {
                let n = args
                    .first()
                    .and_then(|a| a.parse::<usize>().ok())
                    .unwrap_or(200)
                    .min(MAX_SIM_LONG_LINES);
                let mut s = String::with_capacity(n * 64);
                for i in 1..=n {
                    let _ = writeln!(s, "sim_long line {i:06} of {n:06}: the quick brown fox jumps over the lazy dog");
                }
                s
            }
            "sim_join" => {
                // `sim_join [name] [steamid]`: a last word that is a Steam id
                // is the joining player's id.
                let (name, steam_id) = match raw_args.rsplit_once(' ') {
                    Some((n, id)) if userfilter::parse_steam_id(id).is_some() => {
                        (n.trim(), Some(id))
                    }
                    _ if userfilter::parse_steam_id(raw_args).is_some() => ("", Some(raw_args)),
                    _ => (raw_args, None),
                };
                let name = (!name.is_empty()).then_some(name);
                match self.join_player_as(st, name, steam_id) {
                    Ok(userid) => format!("sim_join: userid {userid}\n"),
                    Err(e) => format!("sim_join: {e}\n"),
                }
            }
            "sim_step" => {
                let steps = match args.first().map(|a| a.parse::<u32>()) {
                    None => Ok(1),
                    Some(Ok(n)) if (1..=10_000).contains(&n) => Ok(n),
                    Some(_) => Err(()),
                };
                match steps {
                    Err(()) => "Usage:  sim_step [steps 1-10000]\n".into(),
                    Ok(_) if !self.busy() => "sim_step: only with -sim_busy\n".into(),
                    Ok(n) => {
                        for _ in 0..n {
                            self.game_step(st);
                        }
                        String::new()
                    }
                }
            }
            "sim_leave" => {
                let index = if raw_args.is_empty() {
                    (!st.players.is_empty()).then_some(0)
                } else {
                    st.players.iter().position(|p| p.name == raw_args)
                };
                match index {
                    Some(i) => {
                        self.drop_player(st, i, "Disconnect by user.");
                        String::new()
                    }
                    None => "sim_leave: no such player\n".into(),
                }
            }
            _ => self.cvar_command(st, &name, args, origin),
        }
    }

    /// `name` prints a cvar, `name value` sets it; anything else is unknown.
    fn cvar_command(&self, st: &mut State, name: &str, args: &[String], origin: Origin) -> String {
        let Some(default) = DEFAULT_CVARS
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
        else {
            let out = format!("Unknown command \"{name}\"\n");
            if origin == Origin::Script {
                console(out.trim_end());
                return String::new();
            }
            return out;
        };
        match args.first() {
            None => {
                let value = if name == "rcon_password" || name == "sv_password" {
                    // Protected cvars never echo their value.
                    "".to_string()
                } else {
                    st.cvar(name).to_string()
                };
                format!("\"{name}\" = \"{value}\" ( def. \"{default}\" )\n")
            }
            Some(_) => {
                let value = args.join(" ");
                let changed = st.cvar(name) != value;
                st.cvars.insert(name.to_string(), value.clone());
                if changed
                    && origin != Origin::Script
                    && name != "rcon_password"
                    && name != "sv_password"
                {
                    self.log(st, &format!("server_cvar: \"{name}\" \"{value}\""));
                }
                String::new()
            }
        }
    }

    fn kick(&self, st: &mut State, index: Option<usize>, target: &str, message: &str) -> String {
        match index {
            Some(i) => {
                let p = st.players[i].clone();
                self.log(
                    st,
                    &format!(
                        "Kick: {} was kicked by \"Console\" (message \"{message}\")",
                        tag(&p)
                    ),
                );
                let reason = if message.is_empty() {
                    "Kicked by Console"
                } else {
                    message
                };
                self.drop_player(st, i, reason);
                String::new()
            }
            None => format!("Can't kick \"{target}\", no such player\n"),
        }
    }

    /// `map`/`changelevel`: checks the map now (`Host_Map_Helper` and
    /// `Host_Changelevel_f` refuse a missing map at once) and schedules the
    /// level change for after the current command batch.
    pub(crate) fn schedule_map(
        &self,
        st: &mut State,
        map: &str,
        changelevel: bool,
    ) -> Result<(), String> {
        let exists = valid_map_name(map)
            && self
                .game_dir
                .join("maps")
                .join(format!("{map}.bsp"))
                .is_file();
        // The engine's words (engine/host_cmd.cpp, engine/modelloader.cpp
        // of the Source SDK 2013 engine): `Map_IsValid` prints the missing
        // file, then `map` warns "map load failed: … not found or invalid"
        // and `changelevel` "changelevel failed: … not found"; the level
        // that runs (or none, at launch) stays. Real servers print the
        // same, e.g. github.com/Kxnrl/Mapchooser-Redux/issues/1. Output of
        // a command run over RCON goes back to the RCON client only (the
        // engine's redirect, `HandleRedirectAndDebugLog`), as here.
        if !exists {
            let missing = format!("CModelLoader::Map_IsValid:  No such map 'maps/{map}.bsp'\n");
            return Err(if changelevel {
                format!("{missing}changelevel failed: {map} not found")
            } else {
                format!("{missing}map load failed: {map} not found or invalid")
            });
        }
        st.pending_map = Some(PendingMap {
            map: map.to_string(),
            changelevel,
        });
        Ok(())
    }

    /// Loads a scheduled map and runs server.cfg for it.
    fn change_level(&self, st: &mut State, pending: &PendingMap) {
        let map = pending.map.as_str();
        console(&format!(
            "---- Host_{} ----",
            if pending.changelevel {
                "Changelevel"
            } else {
                "NewGame"
            }
        ));
        self.log(st, &format!("Loading map \"{map}\""));
        if st.map.is_some() {
            st.map_changes = st.map_changes.saturating_add(1);
        }
        st.map = Some(map.to_string());
        // The new level's game rules exec server.cfg (see run_startup_configs).
        self.exec_server_cfg(st);
        let crc = map.bytes().fold(0x811C_9DC5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        }) as i32;
        self.log(st, &format!("Started map \"{map}\" (CRC \"{crc}\")"));
        console(&format!("Started map \"{map}\""));
        // The old level's special infected went with it.
        st.bots.retain(|b| b.team != "Infected");
        self.humans_changed(st);
    }

    /// `writeid`: the permanent bans to `cfg/banned_user.cfg`.
    fn writeid(&self, st: &State) -> String {
        let name = format!("cfg/{}", userfilter::BANNED_USER_FILE);
        let mut out = format!("Writing {name}.\n");
        if std::fs::write(self.game_dir.join(&name), userfilter::banned_user_cfg(st)).is_err() {
            let _ = writeln!(out, "Couldn't open {name}");
        }
        out
    }

    /// Connects a simulated player (log: connected, validated, entered, team).
    pub(crate) fn join_player(&self, st: &mut State, name: Option<&str>) -> Result<u32, String> {
        self.join_player_as(st, name, None)
    }

    /// Connects a player with a given Steam id; one on the `banid` list is
    /// dropped once Steam validates it, with the engine's reason
    /// (`CSteam3Server::OnValidateAuthTicketResponseHelper`).
    pub(crate) fn join_player_as(
        &self,
        st: &mut State,
        name: Option<&str>,
        steam_id: Option<&str>,
    ) -> Result<u32, String> {
        if st.map.is_none() {
            return Err("server is not running a map".into());
        }
        if st.players.len() >= usize::from(st.max_players()) {
            return Err("server is full".into());
        }
        let name = match name {
            Some(n) => n.replace(['"', '<', '>'], ""),
            None => st.fresh_name(),
        };
        let mut p = st.new_player(name);
        st.connects = st.connects.saturating_add(1);
        if let Some(account) = steam_id.and_then(userfilter::parse_steam_id) {
            p.steam_id = userfilter::render(account);
        }
        p.team = String::new();
        console(&format!("Client \"{}\" connected ({}).", p.name, p.address));
        self.log(
            st,
            &format!("{} connected, address \"{}\"", tag(&p), p.address),
        );
        if userfilter::is_banned(st, &p.steam_id) {
            let reason = format!("STEAM UserID {} is banned", p.steam_id);
            console(&format!("Dropped {} from server ({reason})", p.name));
            self.log(
                st,
                &format!("{} disconnected (reason \"{reason}\")", tag(&p)),
            );
            return Err(reason);
        }
        self.log(st, &format!("{} STEAM USERID validated", tag(&p)));
        self.log(st, &format!("{} entered the game", tag(&p)));
        self.log(st, &format!("{} joined team \"Survivor\"", tag(&p)));
        p.team = "Survivor".into();
        let userid = p.userid;
        st.players.push(p);
        self.humans_changed(st);
        Ok(userid)
    }

    pub(crate) fn drop_player(&self, st: &mut State, index: usize, reason: &str) {
        if index >= st.players.len() {
            return;
        }
        let p = st.players.remove(index);
        console(&format!("Dropped {} from server ({reason})", p.name));
        self.log(
            st,
            &format!("{} disconnected (reason \"{reason}\")", tag(&p)),
        );
        self.humans_changed(st);
    }

    /// One churn step: drift toward `-sim_players`, with some randomness.
    pub(crate) fn churn(&self) {
        let mut st = self.lock();
        if st.map.is_none() {
            return;
        }
        let target = self.args.sim_players;
        let n = st.players.len();
        let join = if n == 0 {
            true
        } else if n >= usize::from(st.max_players()) {
            false
        } else if n < target {
            st.rng.chance(70)
        } else if n > target {
            st.rng.chance(30)
        } else {
            st.rng.chance(50)
        };
        if join {
            let _ = self.join_player(&mut st, None);
        } else {
            let i = st.rng.range(0, n as u64) as usize;
            self.drop_player(&mut st, i, "Disconnect by user.");
        }
        // Pings wander a little, like real clients.
        for i in 0..st.players.len() {
            let delta = st.rng.range(0, 11) as i64 - 5;
            let ping = (i64::from(st.players[i].ping) + delta).clamp(5, 400) as u32;
            st.players[i].ping = ping;
        }
    }

    /// `version` as L4D2's server prints it (`Version 2.2.2.5 (left4dead2)`,
    /// `Network Version 2.1.0.0`, `Exe build: 16:48:59 Feb  4 2022 (8490) (550)`),
    /// with the PatchVersion from steam.inf. The engine does not know its
    /// Steam build id; the last line is the simulator's own, so tests and
    /// operators can see which build a tree runs.
    pub(crate) fn version_text(&self) -> String {
        let build = self
            .build
            .map_or_else(|| "unknown".to_owned(), |b| b.to_string());
        format!(
            "Version {} ({})\nNetwork Version 2.1.0.0\nExe build: 16:48:59 Feb  4 2022 ({BUILD}) ({GAME_APP_ID})\nsrcds-sim: Steam build {build}\n",
            self.version, self.args.game
        )
    }

    /// `status` in the L4D2 dedicated server's format.
    pub(crate) fn status(&self, st: &State) -> String {
        let humans = st.players.len();
        // A quiet server has no hibernation of its own: empty is asleep.
        let hibernating = if self.busy() {
            st.hibernating
        } else {
            humans == 0
        };
        let mut s = String::new();
        let _ = writeln!(s, "hostname: {}", st.hostname());
        let _ = writeln!(s, "version : {} {BUILD} secure  ", self.version);
        let _ = writeln!(s, "udp/ip  : {}:{}", self.args.ip, self.args.port);
        let _ = writeln!(s, "os      : Linux Dedicated");
        let _ = writeln!(s, "map     : {}", st.map.as_deref().unwrap_or(""));
        let _ = writeln!(
            s,
            "players : {humans} humans, 0 bots ({} max) ({}hibernating) (unreserved)",
            st.max_players(),
            if hibernating { "" } else { "not " }
        );
        s.push('\n');
        s.push_str("# userid name uniqueid connected ping loss state rate adr\n");
        for (slot, p) in st.players.iter().enumerate() {
            let _ = writeln!(
                s,
                "#{:>3} {} \"{}\" {} {} {} 0 active 30000 {}",
                p.userid,
                slot + 1,
                p.name,
                p.steam_id,
                connected_for(p.joined),
                p.ping,
                p.address
            );
        }
        Server::bot_status_rows(st, &mut s);
        s.push_str("#end\n");
        s
    }
}
