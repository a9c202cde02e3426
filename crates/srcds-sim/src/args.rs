//! The srcds command line: `-flag [value]` launch options and `+command args`
//! console commands run at startup, e.g.
//! `-game left4dead2 +ip 0.0.0.0 +hostport 27015 +map c1m1_hotel -tickrate 60`.
//!
//! Hand-parsed because clap cannot express srcds's `+` commands; unknown
//! options are kept and ignored, as srcds does.
//!
//! `+clientport`, `+tv_port` and `+tv_enable` are plain `+commands`: they set
//! the cvars of those names, which the server reads when it opens the
//! network after autoexec.cfg and the command line, as the engine does.

use std::net::Ipv4Addr;
use std::time::Duration;
use thiserror::Error;

/// A bad srcds command line.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("missing -game <dir> (e.g. -game left4dead2)")]
    MissingGame,
    #[error("missing +hostport <port> (e.g. +hostport 27015)")]
    MissingPort,
    #[error("{flag} needs a value")]
    MissingValue { flag: String },
    #[error("invalid {flag} value {value:?}: {why}")]
    InvalidValue {
        flag: String,
        value: String,
        why: &'static str,
    },
}

/// Launch options the simulator understands.
#[derive(Debug, Clone, PartialEq)]
pub struct SrcdsArgs {
    /// `-game <dir>`, relative to the working directory.
    pub game: String,
    /// `+ip <addr>` (default 0.0.0.0).
    pub ip: Ipv4Addr,
    /// `+hostport <port>` (or `-port <port>`).
    pub port: u16,
    /// `+map <name>`.
    pub map: Option<String>,
    /// `-tickrate <n>`.
    pub tickrate: Option<u32>,
    /// `-sim_players <n>`: simulated players that join at startup (default 2).
    pub sim_players: usize,
    /// `-sim_churn <seconds>`: a player joins or leaves every interval
    /// (default 20; 0 disables churn).
    pub sim_churn: Option<Duration>,
    /// `-sim_crash_after <seconds>`: abort like a crash after that time.
    pub sim_crash_after: Option<Duration>,
    /// `-sim_stop_delay <seconds>`: take that long to shut down after
    /// SIGINT/`quit` (a real server saves and flushes first).
    pub sim_stop_delay: Option<Duration>,
    /// `-sim_busy <seconds>`: the game happens as on a busy real server,
    /// one step per interval: survivor bots fill empty survivor slots,
    /// special infected bots spawn and die (with kill lines), players chat,
    /// and the server hibernates when the last human leaves. Off by default
    /// so tests get quiet servers.
    pub sim_busy: Option<Duration>,
    /// `-sim_seed <n>`: seeds the simulator's random choices (names, pings,
    /// the busy game), so two runs with the same seed and the same steps
    /// produce the same lines.
    pub sim_seed: Option<u64>,
    /// `-sim_master_interval <seconds>` (whole seconds, 1-3600, default
    /// 30): how often the server asks "the master server" (the published
    /// build file) whether its build is still current.
    pub sim_master_interval: Duration,
    /// `-sim_log_loopback`: deliver HL log packets to 127.0.0.1 as well, as
    /// `+net_usesocketsforloopback 1` makes the engine do.
    pub sim_log_loopback: bool,
    /// `-strictportbind`: exit instead of moving to another port when a
    /// port is taken (engine/net_ws.cpp, `NET_OpenSocket`).
    pub strict_port_bind: bool,
    /// `-nohltv`: no SourceTV socket at all.
    pub no_hltv: bool,
    /// `+cvar value` / `+command args`, run in order after autoexec.cfg
    /// (the engine's `stuffcmds`), before the first map and its server.cfg.
    pub startup_commands: Vec<Vec<String>>,
    /// Options we do not model (kept for the startup banner).
    pub ignored: Vec<String>,
}

const DEFAULT_SIM_PLAYERS: usize = 2;
const DEFAULT_CHURN_SECS: u64 = 20;
const DEFAULT_MASTER_INTERVAL_SECS: u64 = 30;
const MAX_MASTER_INTERVAL_SECS: u64 = 3600;

fn parse_num<T: std::str::FromStr>(
    flag: &str,
    value: &str,
    why: &'static str,
) -> Result<T, ArgsError> {
    value.parse().map_err(|_| ArgsError::InvalidValue {
        flag: flag.to_string(),
        value: value.to_string(),
        why,
    })
}

fn parse_port(flag: &str, value: &str) -> Result<u16, ArgsError> {
    match value.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(ArgsError::InvalidValue {
            flag: flag.to_string(),
            value: value.to_string(),
            why: "expected a port number 1-65535",
        }),
    }
}

fn parse_secs(flag: &str, value: &str) -> Result<Duration, ArgsError> {
    let secs: f64 = parse_num(flag, value, "expected seconds")?;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(ArgsError::InvalidValue {
            flag: flag.to_string(),
            value: value.to_string(),
            why: "expected a non-negative number of seconds",
        });
    }
    Ok(Duration::from_secs_f64(secs))
}

fn is_option(token: &str) -> bool {
    // "-1" is a value (e.g. `+sv_maxplayers -1`), not an option.
    (token.starts_with('+') || token.starts_with('-'))
        && token.len() > 1
        && !token[1..].starts_with(|c: char| c.is_ascii_digit() || c == '.')
}

impl SrcdsArgs {
    /// Parses the arguments after the program name.
    pub fn parse<I, S>(args: I) -> Result<Self, ArgsError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let tokens: Vec<String> = args.into_iter().map(Into::into).collect();
        let mut game = None;
        let mut ip = Ipv4Addr::UNSPECIFIED;
        let mut port = None;
        let mut map = None;
        let mut tickrate = None;
        let mut sim_players = DEFAULT_SIM_PLAYERS;
        let mut sim_churn = Some(Duration::from_secs(DEFAULT_CHURN_SECS));
        let mut sim_crash_after = None;
        let mut sim_stop_delay = None;
        let mut sim_log_loopback = false;
        let mut sim_busy = None;
        let mut sim_seed = None;
        let mut sim_master_interval = Duration::from_secs(DEFAULT_MASTER_INTERVAL_SECS);
        let mut strict_port_bind = false;
        let mut no_hltv = false;
        let mut startup_commands = Vec::new();
        let mut ignored = Vec::new();

        let mut i = 0;
        while i < tokens.len() {
            let flag = tokens[i].as_str();
            // Values of this option: following tokens up to the next option.
            let mut end = i + 1;
            while end < tokens.len() && !is_option(&tokens[end]) {
                end += 1;
            }
            let values = &tokens[i + 1..end];
            let first = |name: &str| -> Result<&str, ArgsError> {
                values
                    .first()
                    .map(String::as_str)
                    .ok_or(ArgsError::MissingValue {
                        flag: name.to_string(),
                    })
            };
            match flag {
                "-game" => game = Some(first(flag)?.to_string()),
                "+ip" => {
                    ip = parse_num(flag, first(flag)?, "expected an IPv4 address")?;
                }
                "+hostport" | "-port" | "+port" => port = Some(parse_port(flag, first(flag)?)?),
                "+map" => map = Some(first(flag)?.to_string()),
                "-tickrate" => tickrate = Some(parse_num(flag, first(flag)?, "expected a number")?),
                "-sim_players" => {
                    sim_players = parse_num(flag, first(flag)?, "expected a player count")?;
                }
                "-sim_churn" => {
                    let d = parse_secs(flag, first(flag)?)?;
                    sim_churn = (!d.is_zero()).then_some(d);
                }
                "-sim_crash_after" => sim_crash_after = Some(parse_secs(flag, first(flag)?)?),
                "-sim_stop_delay" => sim_stop_delay = Some(parse_secs(flag, first(flag)?)?),
                "-sim_log_loopback" => sim_log_loopback = true,
                "-sim_busy" => {
                    let d = parse_secs(flag, first(flag)?)?;
                    sim_busy = (!d.is_zero()).then_some(d);
                }
                "-sim_seed" => sim_seed = Some(parse_num(flag, first(flag)?, "expected a number")?),
                "-sim_master_interval" => {
                    let value = first(flag)?;
                    let secs: u64 = match value.parse() {
                        Ok(n) if (1..=MAX_MASTER_INTERVAL_SECS).contains(&n) => n,
                        _ => {
                            return Err(ArgsError::InvalidValue {
                                flag: flag.to_string(),
                                value: value.to_string(),
                                why: "expected whole seconds from 1 to 3600",
                            })
                        }
                    };
                    sim_master_interval = Duration::from_secs(secs);
                }
                "-strictportbind" => strict_port_bind = true,
                "-nohltv" => no_hltv = true,
                _ if flag.starts_with('+') && flag.len() > 1 => {
                    let mut cmd = vec![flag[1..].to_string()];
                    cmd.extend(values.iter().cloned());
                    startup_commands.push(cmd);
                }
                _ => ignored.push(flag.to_string()),
            }
            // Options with no value consume only themselves; unknown `-x v`
            // pairs consume their value too (srcds ignores them likewise).
            i = end.max(i + 1);
        }

        let game = game.ok_or(ArgsError::MissingGame)?;
        if game.is_empty() || game.contains("..") {
            return Err(ArgsError::InvalidValue {
                flag: "-game".into(),
                value: game,
                why: "expected a game directory name such as left4dead2",
            });
        }
        let port = port.ok_or(ArgsError::MissingPort)?;
        Ok(SrcdsArgs {
            game,
            ip,
            port,
            map,
            tickrate,
            sim_players,
            sim_churn,
            sim_crash_after,
            sim_stop_delay,
            sim_log_loopback,
            sim_busy,
            sim_seed,
            sim_master_interval,
            strict_port_bind,
            no_hltv,
            startup_commands,
            ignored,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<SrcdsArgs, ArgsError> {
        SrcdsArgs::parse(s.split_whitespace())
    }

    #[test]
    fn typical_command_line() {
        let a = parse("-game left4dead2 +ip 0.0.0.0 +hostport 27016 +map c1m1_hotel -tickrate 60 -nohltv +sv_lan 1 -sim_players 0 -sim_churn 0 -strictportbind +clientport 27106 +tv_port 27116 -norestart").unwrap();
        assert_eq!(a.game, "left4dead2");
        assert_eq!(a.port, 27016);
        assert_eq!(a.map.as_deref(), Some("c1m1_hotel"));
        assert_eq!(a.tickrate, Some(60));
        assert_eq!(a.sim_players, 0);
        assert_eq!(a.sim_churn, None);
        assert!(a.strict_port_bind && a.no_hltv);
        assert_eq!(
            a.startup_commands,
            vec![
                vec!["sv_lan".to_string(), "1".to_string()],
                vec!["clientport".to_string(), "27106".to_string()],
                vec!["tv_port".to_string(), "27116".to_string()],
            ]
        );
        assert_eq!(a.ignored, vec!["-norestart".to_string()]);
    }

    #[test]
    fn stop_delay() {
        let a = parse("-game left4dead2 +hostport 1 -sim_stop_delay 3").unwrap();
        assert_eq!(a.sim_stop_delay, Some(Duration::from_secs(3)));
        assert!(parse("-game left4dead2 +hostport 1 -sim_stop_delay soon").is_err());
    }

    #[test]
    fn busy_and_seed() {
        let a = parse("-game left4dead2 +hostport 1 -sim_busy 2.5 -sim_seed 42").unwrap();
        assert_eq!(a.sim_busy, Some(Duration::from_millis(2500)));
        assert_eq!(a.sim_seed, Some(42));
        let quiet = parse("-game left4dead2 +hostport 1").unwrap();
        assert_eq!((quiet.sim_busy, quiet.sim_seed), (None, None));
        assert_eq!(
            parse("-game left4dead2 +hostport 1 -sim_busy 0")
                .unwrap()
                .sim_busy,
            None
        );
        assert!(parse("-game left4dead2 +hostport 1 -sim_busy often").is_err());
        assert!(parse("-game left4dead2 +hostport 1 -sim_seed -3").is_err());
        assert!(parse("-game left4dead2 +hostport 1 -sim_seed").is_err());
    }

    #[test]
    fn master_interval() {
        let default = parse("-game left4dead2 +hostport 1").unwrap();
        assert_eq!(default.sim_master_interval, Duration::from_secs(30));
        let a = parse("-game left4dead2 +hostport 1 -sim_master_interval 3600").unwrap();
        assert_eq!(a.sim_master_interval, Duration::from_secs(3600));
        for bad in ["0", "3601", "1.5", "often", "-1"] {
            let line = format!("-game left4dead2 +hostport 1 -sim_master_interval {bad}");
            assert!(
                matches!(parse(&line), Err(ArgsError::InvalidValue { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            parse("-game left4dead2 +hostport 1 -sim_master_interval"),
            Err(ArgsError::MissingValue {
                flag: "-sim_master_interval".into()
            })
        );
    }

    #[test]
    fn negative_values_are_values() {
        let a = parse("-game left4dead2 +hostport 1 +sv_maxplayers -1").unwrap();
        assert_eq!(
            a.startup_commands,
            vec![vec!["sv_maxplayers".to_string(), "-1".to_string()]]
        );
    }

    #[test]
    fn rejects_bad_lines() {
        assert_eq!(parse("+hostport 27015"), Err(ArgsError::MissingGame));
        assert_eq!(parse("-game left4dead2"), Err(ArgsError::MissingPort));
        assert!(matches!(
            parse("-game left4dead2 +hostport 0"),
            Err(ArgsError::InvalidValue { .. })
        ));
        assert!(matches!(
            parse("-game left4dead2 +hostport 70000"),
            Err(ArgsError::InvalidValue { .. })
        ));
        assert!(matches!(
            parse("-game left4dead2 +hostport x"),
            Err(ArgsError::InvalidValue { .. })
        ));
        assert_eq!(
            parse("-game left4dead2 +hostport"),
            Err(ArgsError::MissingValue {
                flag: "+hostport".into()
            })
        );
        assert!(matches!(
            parse("-game ../x +hostport 1"),
            Err(ArgsError::InvalidValue { .. })
        ));
        assert!(matches!(
            parse("-game left4dead2 +hostport 1 +ip nope"),
            Err(ArgsError::InvalidValue { .. })
        ));
    }
}
