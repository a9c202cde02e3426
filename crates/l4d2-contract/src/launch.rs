//! How an instance's game process is started: the ports it owns, the
//! arguments the panel always passes, the arguments a blueprint may add,
//! and the unit and user it runs as.
//!
//! Launch arguments are checked by meaning, not by characters: every token
//! is either a known launch option (`-tickrate 60`), a console command with
//! its values (`+map c1m1_hotel`), or an error that names it. Whatever
//! decides where the server listens, where its logs go, how it is
//! supervised or which binary runs belongs to the panel and is refused.

use crate::InstanceName;

/// The client port is the game port plus this.
pub const CLIENT_PORT_OFFSET: u16 = 10_000;
/// The SourceTV port is the game port plus this.
pub const TV_PORT_OFFSET: u16 = 20_000;
/// Highest game port whose derived ports still fit in 16 bits.
pub const MAX_GAME_PORT: u16 = u16::MAX - TV_PORT_OFFSET;

/// The ports one instance owns. The game port comes from the spec; the
/// engine also binds a client port and, with SourceTV on, a SourceTV port.
/// Deriving both keeps every instance's ports distinct without another
/// allocator, and lets the host allow exactly these (`SocketBindAllow=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GamePorts {
    /// UDP game traffic and TCP RCON.
    pub game: u16,
    /// UDP, `+clientport`.
    pub client: u16,
    /// UDP, `+tv_port`.
    pub tv: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("game port {0} is too high: the client and SourceTV ports (+{CLIENT_PORT_OFFSET}, +{TV_PORT_OFFSET}) must stay below 65536, so game ports go up to {MAX_GAME_PORT}")]
pub struct PortTooHigh(pub u16);

impl GamePorts {
    pub fn for_game_port(game: u16) -> Result<GamePorts, PortTooHigh> {
        if game == 0 || game > MAX_GAME_PORT {
            return Err(PortTooHigh(game));
        }
        Ok(GamePorts {
            game,
            client: game + CLIENT_PORT_OFFSET,
            tv: game + TV_PORT_OFFSET,
        })
    }

    /// `SocketBindAllow=` rules for exactly these ports (plus port 0: the
    /// kernel picking an ephemeral port for an outgoing socket squats nothing).
    pub fn socket_bind_rules(&self) -> Vec<String> {
        vec![
            format!("udp:{}", self.game),
            format!("tcp:{}", self.game),
            format!("udp:{}", self.client),
            format!("udp:{}", self.tv),
            "udp:0".into(),
            "tcp:0".into(),
        ]
    }
}

/// The directory srcds runs the game from (`-game`).
pub const GAME_DIR: &str = "left4dead2";

/// The arguments the panel passes on every start, before the blueprint's.
/// `+ip 0.0.0.0` keeps RCON reachable on loopback; `-norestart` leaves
/// crash restarts to the supervisor (systemd sees every crash);
/// `-strictportbind` makes a taken port a start failure instead of a
/// silent move to the next port.
pub fn managed_args(ports: GamePorts) -> Vec<String> {
    [
        "-game",
        GAME_DIR,
        "-norestart",
        "-strictportbind",
        "+ip",
        "0.0.0.0",
        "+hostport",
        &ports.game.to_string(),
        "+clientport",
        &ports.client.to_string(),
        "+tv_port",
        &ports.tv.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Launch options a blueprint may use, with the kind of value they take.
const OPTIONS: &[(&str, Value)] = &[
    ("-tickrate", Value::Int { min: 10, max: 1000 }),
    ("-maxplayers", Value::Int { min: 1, max: 32 }),
    ("-threads", Value::Int { min: 1, max: 64 }),
    ("-timeout", Value::Int { min: 0, max: 3600 }),
    ("-nohltv", Value::None),
    ("-insecure", Value::None),
    ("-secure", Value::None),
    ("-nomaster", Value::None),
    ("-nobots", Value::None),
    ("-nobreakpad", Value::None),
    ("-nowatchdog", Value::None),
    ("-condebug", Value::None),
    ("-console", Value::None),
    ("-usercon", Value::None),
    ("-noipx", Value::None),
    ("-unrestricted_maxplayers", Value::None),
    // srcds-sim (the stand-in game server) options, for demos and tests.
    ("-sim_players", Value::Int { min: 0, max: 32 }),
    (
        "-sim_churn",
        Value::Int {
            min: 0,
            max: 86_400,
        },
    ),
    (
        "-sim_crash_after",
        Value::Int {
            min: 0,
            max: 86_400,
        },
    ),
    ("-sim_stop_delay", Value::Int { min: 0, max: 60 }),
    ("-sim_log_loopback", Value::None),
    // How often the simulated game asks the simulated Steam for the newest build.
    ("-sim_master_interval", Value::Int { min: 1, max: 3600 }),
    // The busy game: bots, kills, chat, hibernation (seconds per step).
    ("-sim_busy", Value::Int { min: 0, max: 3600 }),
    (
        "-sim_seed",
        Value::Int {
            min: 0,
            max: 4_294_967_295,
        },
    ),
];

/// Launch options that belong to the panel or to the supervisor, with the
/// reason shown to the user.
const OWNED_OPTIONS: &[(&str, &str)] = &[
    ("-game", "left4me always runs left4dead2"),
    ("-port", "every server gets its own port from left4me"),
    ("-ip", "left4me binds every server to 0.0.0.0"),
    ("-strictportbind", "left4me always sets it"),
    (
        "-norestart",
        "left4me always sets it; restarts are the supervisor's job",
    ),
    ("-debug", "it runs a debugger and writes core files"),
    ("-gdb", "it runs a debugger"),
    ("-debuglog", "it writes to a file of its choice"),
    ("-consolelog", "it writes to a file of its choice"),
    ("-pidfile", "it writes to a file of its choice"),
    ("-binary", "it runs another binary"),
    (
        "-autoupdate",
        "the game is updated by left4me for every server at once",
    ),
    ("-steam_dir", "the game is updated by left4me"),
    ("-steamcmd_script", "the game is updated by left4me"),
    ("-steamerr", "the game is updated by left4me"),
    ("-ignoresigint", "left4me stops servers with SIGINT"),
    ("-notrap", "left4me supervises the server"),
];

/// Console commands (`+name`) that belong to the panel.
const OWNED_COMMANDS: &[(&str, &str)] = &[
    ("ip", "left4me binds every server to 0.0.0.0"),
    ("hostip", "left4me binds every server to 0.0.0.0"),
    ("hostport", "every server gets its own port from left4me"),
    ("port", "every server gets its own port from left4me"),
    ("clientport", "left4me assigns it from the server's port"),
    ("tv_port", "left4me assigns it from the server's port"),
    ("rcon_password", "every server gets its own random RCON password"),
    ("sv_logsecret", "left4me sets it so game events reach the live panel"),
    (
        "net_usesocketsforloopback",
        "left4me decides how game logs are delivered",
    ),
    (
        "servercfgfile",
        "left4me writes the server.cfg every server runs; put settings in the blueprint's server.cfg",
    ),
];

/// Console commands starting with this belong to the panel (`log`,
/// `logaddress_add`, `log_verbose_enable`, …): where the game's log goes.
const OWNED_COMMAND_PREFIX: &str = "log";

#[derive(Debug, Clone, Copy)]
enum Value {
    None,
    Int { min: i64, max: i64 },
}

/// A launch argument a blueprint may not use, or a malformed one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchArgError {
    #[error("too many launch arguments: {count}, at most {max}")]
    TooMany { count: usize, max: usize },
    #[error("launch argument {index} is empty")]
    Empty { index: usize },
    #[error("launch argument {arg:?} is longer than {max} characters")]
    TooLong { arg: String, max: usize },
    #[error("launch argument {arg:?} contains {ch:?}; launch arguments are single words without quotes, `$`, `;`, `\\` or control characters")]
    BadCharacter { arg: String, ch: char },
    #[error("`{arg}` is managed by left4me ({reason}); remove it")]
    Owned { arg: String, reason: &'static str },
    #[error("unknown launch option `{arg}`; left4me accepts {known} (console variables go in server.cfg or as `+name value`)")]
    UnknownOption { arg: String, known: String },
    #[error("`{option}` needs a value")]
    MissingValue { option: String },
    #[error("`{option} {value}`: expected a whole number from {min} to {max}")]
    BadNumber {
        option: String,
        value: String,
        min: i64,
        max: i64,
    },
    #[error("`{option}` takes no value, but `{value}` follows it")]
    UnexpectedValue { option: String, value: String },
    #[error("`{arg}` is neither a launch option (-name) nor a console command (+name); put values right after their option")]
    Stray { arg: String },
    #[error("`{arg}` is not a console command name (letters, digits and _ only)")]
    BadCommand { arg: String },
    #[error("`+map {value}`: a map name is letters, digits, `_`, `-` and `.` only")]
    BadMap { value: String },
}

/// Checks a blueprint's launch arguments (already split into words).
pub fn check_user_args(args: &[String]) -> Result<(), LaunchArgError> {
    use crate::spec::{MAX_ARGS, MAX_ARG_LEN};
    if args.len() > MAX_ARGS {
        return Err(LaunchArgError::TooMany {
            count: args.len(),
            max: MAX_ARGS,
        });
    }
    for (index, arg) in args.iter().enumerate() {
        if arg.is_empty() {
            return Err(LaunchArgError::Empty { index });
        }
        if arg.chars().count() > MAX_ARG_LEN {
            return Err(LaunchArgError::TooLong {
                arg: arg.clone(),
                max: MAX_ARG_LEN,
            });
        }
        // systemd splits `$L4D2_ARGS` on whitespace and interprets quotes,
        // `$` and `\`: an argument must survive that unchanged.
        if let Some(ch) = arg.chars().find(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\' | '$' | '`' | ';')
        }) {
            return Err(LaunchArgError::BadCharacter {
                arg: arg.clone(),
                ch,
            });
        }
    }
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if let Some(command) = arg.strip_prefix('+') {
            let values: Vec<&String> = args[i + 1..].iter().take_while(|a| is_value(a)).collect();
            check_command(arg, command, &values)?;
            i += 1 + values.len();
        } else if arg.starts_with('-') && !is_value(arg) {
            let lower = arg.to_ascii_lowercase();
            if let Some((_, reason)) = OWNED_OPTIONS.iter().find(|(o, _)| *o == lower) {
                return Err(LaunchArgError::Owned {
                    arg: arg.clone(),
                    reason,
                });
            }
            let Some((_, kind)) = OPTIONS.iter().find(|(o, _)| *o == lower) else {
                return Err(LaunchArgError::UnknownOption {
                    arg: arg.clone(),
                    known: OPTIONS
                        .iter()
                        .filter(|(o, _)| !o.starts_with("-sim_"))
                        .map(|(o, _)| *o)
                        .collect::<Vec<_>>()
                        .join(" "),
                });
            };
            let next = args.get(i + 1).filter(|a| is_value(a));
            match (kind, next) {
                (Value::None, Some(value)) => {
                    return Err(LaunchArgError::UnexpectedValue {
                        option: arg.clone(),
                        value: value.to_string(),
                    })
                }
                (Value::None, None) => i += 1,
                (Value::Int { .. }, None) => {
                    return Err(LaunchArgError::MissingValue {
                        option: arg.clone(),
                    })
                }
                (Value::Int { min, max }, Some(value)) => {
                    match value.parse::<i64>() {
                        Ok(n) if (*min..=*max).contains(&n) => {}
                        _ => {
                            return Err(LaunchArgError::BadNumber {
                                option: arg.clone(),
                                value: value.to_string(),
                                min: *min,
                                max: *max,
                            })
                        }
                    }
                    i += 2;
                }
            }
        } else {
            return Err(LaunchArgError::Stray { arg: arg.clone() });
        }
    }
    Ok(())
}

/// A word that is a value, not the start of an option or command: it does
/// not start with `+`, and starts with `-` only as a number (`-1`, `-0.5`).
fn is_value(arg: &str) -> bool {
    match arg.as_bytes() {
        [b'+', ..] => false,
        [b'-', rest @ ..] => rest
            .first()
            .is_some_and(|b| b.is_ascii_digit() || *b == b'.'),
        _ => true,
    }
}

fn check_command(arg: &str, command: &str, values: &[&String]) -> Result<(), LaunchArgError> {
    let name = command.to_ascii_lowercase();
    let valid = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid {
        return Err(LaunchArgError::BadCommand { arg: arg.into() });
    }
    if let Some(reason) = owned_cvar(&name) {
        return Err(LaunchArgError::Owned {
            arg: arg.into(),
            reason,
        });
    }
    if name == "map" {
        let Some(map) = values.first() else {
            return Err(LaunchArgError::MissingValue { option: arg.into() });
        };
        if !map
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(LaunchArgError::BadMap {
                value: map.to_string(),
            });
        }
    }
    Ok(())
}

/// Why a console variable or command belongs to the panel (None: a
/// blueprint may set it). Shared with the server.cfg rule.
pub(crate) fn owned_cvar(name: &str) -> Option<&'static str> {
    let name = name.to_ascii_lowercase();
    if let Some((_, reason)) = OWNED_COMMANDS.iter().find(|(c, _)| *c == name) {
        return Some(reason);
    }
    name.starts_with(OWNED_COMMAND_PREFIX)
        .then_some("left4me decides where the game's log goes")
}

/// The systemd unit of an instance.
pub fn server_unit(name: &InstanceName) -> String {
    format!("left4me-server@{name}.service")
}

/// The name of the dynamic user an instance's game process runs as under
/// systemd (`DynamicUser=`, one user per instance). systemd allows user
/// names of at most 31 characters: names that fit become `l4d2-<name>`,
/// longer ones `l4d2h-` plus 24 hex digits of their SHA-256. The two
/// forms differ in the fifth character, so they cannot collide.
pub fn game_user(name: &InstanceName) -> String {
    const MAX_USER: usize = 31;
    let plain = format!("l4d2-{name}");
    if plain.len() <= MAX_USER {
        return plain;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(name.as_str().as_bytes());
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("l4d2h-{hex}")
}

/// Without systemd (local backend run as root) the game runs as this uid
/// plus its game port: each instance its own uid, none with a passwd entry,
/// above the ranges systemd hands out to containers (0x80000–0x6FFFFFFF).
pub const LOCAL_GAME_UID_BASE: u32 = 0x7000_0000;

pub fn local_game_uid(ports: GamePorts) -> u32 {
    LOCAL_GAME_UID_BASE + u32::from(ports.game)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(line: &str) -> Result<(), LaunchArgError> {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        check_user_args(&args)
    }

    #[test]
    fn accepts_what_blueprints_use() {
        for ok in [
            "",
            "+map c1m1_hotel",
            "-tickrate 60 +map c2m1_highway -maxplayers 8",
            "+mp_gamemode versus +sv_gametypes coop,versus",
            "+sv_gravity -800 -nohltv",
            "+exec mycfg.cfg +z_difficulty Impossible",
            "-sim_churn 0 -sim_players 3 +map c8m1_apartment",
            "+map c1m1_hotel -sim_stop_delay 3 -sim_crash_after 60 -sim_log_loopback",
            "+map c2m1_highway -sim_busy 5 -sim_seed 42 -sim_players 1",
            "+sv_lan 1 +sv_cheats 0",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_what_the_panel_owns_naming_it() {
        for (line, named) in [
            ("+hostport 27016", "+hostport"),
            ("-port 27016", "-port"),
            ("+ip 10.0.0.1", "+ip"),
            ("+clientport 1", "+clientport"),
            ("+tv_port 2", "+tv_port"),
            ("+rcon_password x", "+rcon_password"),
            ("+RCON_PASSWORD x", "+RCON_PASSWORD"),
            ("+sv_logsecret 5", "+sv_logsecret"),
            ("+log on", "+log"),
            ("+logaddress_add 1.2.3.4:5", "+logaddress_add"),
            ("+logaddress_delall", "+logaddress_delall"),
            ("+servercfgfile other.cfg", "+servercfgfile"),
            ("-game hl2", "-game"),
            ("-debug", "-debug"),
            ("-gdb", "-gdb"),
            ("-autoupdate", "-autoupdate"),
            ("-steam_dir /x", "-steam_dir"),
            ("-steamcmd_script /x", "-steamcmd_script"),
            ("-binary /bin/sh", "-binary"),
            ("-norestart", "-norestart"),
            ("+map c1m1 -strictportbind", "-strictportbind"),
        ] {
            let e = check(line).unwrap_err();
            assert!(
                matches!(&e, LaunchArgError::Owned { arg, .. } if arg == named),
                "{line}: {e}"
            );
            assert!(e.to_string().contains("managed by left4me"), "{e}");
        }
    }

    #[test]
    fn refuses_malformed_and_unknown() {
        for (line, expected) in [
            ("-tickrate", "needs a value"),
            ("-tickrate fast", "whole number"),
            ("-tickrate 5", "whole number"),
            ("-nohltv 1", "takes no value"),
            ("-frobnicate", "unknown launch option `-frobnicate`"),
            ("c1m1_hotel", "neither a launch option"),
            ("+map", "needs a value"),
            ("+map ../../etc", "map name"),
            ("+9lives 1", "not a console command"),
            ("+a-b 1", "not a console command"),
        ] {
            let e = check(line).unwrap_err().to_string();
            assert!(e.contains(expected), "{line}: {e}");
        }
        let bad_chars = ["a b", "$(reboot)", "x;y", "\"q\"", "a\\b", "\u{7}"];
        for arg in bad_chars {
            assert!(matches!(
                check_user_args(&[arg.to_string()]),
                Err(LaunchArgError::BadCharacter { .. })
            ));
        }
        assert!(matches!(
            check_user_args(&vec!["-nohltv".to_string(); 65]),
            Err(LaunchArgError::TooMany { .. })
        ));
        assert!(matches!(
            check_user_args(&["+x".repeat(200)]),
            Err(LaunchArgError::TooLong { .. })
        ));
    }

    #[test]
    fn ports_and_managed_args() {
        let p = GamePorts::for_game_port(27015).unwrap();
        assert_eq!((p.client, p.tv), (37015, 47015));
        assert!(GamePorts::for_game_port(MAX_GAME_PORT).is_ok());
        assert!(GamePorts::for_game_port(MAX_GAME_PORT + 1).is_err());
        assert!(GamePorts::for_game_port(0).is_err());
        let args = managed_args(p).join(" ");
        assert_eq!(
            args,
            "-game left4dead2 -norestart -strictportbind +ip 0.0.0.0 +hostport 27015 +clientport 37015 +tv_port 47015"
        );
        // The managed arguments are exactly what a blueprint may not pass.
        for owned in managed_args(p).iter().filter(|a| a.starts_with(['-', '+'])) {
            let e = check_user_args(&[owned.clone(), "1".into()]).unwrap_err();
            assert!(matches!(e, LaunchArgError::Owned { .. }), "{owned}: {e}");
        }
        assert!(p.socket_bind_rules().contains(&"tcp:27015".to_string()));
    }

    #[test]
    fn game_users_fit_systemd_and_never_collide() {
        let short = InstanceName::parse("coop-1").unwrap();
        assert_eq!(game_user(&short), "l4d2-coop-1");
        let max_plain = InstanceName::parse(&"a".repeat(26)).unwrap();
        assert_eq!(game_user(&max_plain).len(), 31);
        let long = InstanceName::parse(&"a".repeat(64)).unwrap();
        let user = game_user(&long);
        assert!(user.starts_with("l4d2h-") && user.len() <= 31, "{user}");
        let other = InstanceName::parse(&format!("{}b", "a".repeat(63))).unwrap();
        assert_ne!(game_user(&other), user);
        // A short name cannot imitate the hashed form.
        let imitation = InstanceName::parse(&user[4..]).unwrap();
        assert_ne!(game_user(&imitation), user);
    }
}
